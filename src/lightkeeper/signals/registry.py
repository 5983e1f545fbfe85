"""Finds signal types through the ``lightkeeper.signal_types`` entry-point group.

Built-in types are registered there too, so one mechanism serves both. Names are checked
at load: an entry point's name must equal its class's `name`, and no two may clash.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from lightkeeper.errors import PluginError, UnknownSignalType
from lightkeeper.signals.base import BytesSignalType, ImageSignalType, SignalType

GROUP = "lightkeeper.signal_types"


@cache
def all_signal_types() -> dict[str, SignalType]:
    """Every registered signal type, by name, sorted by name; loaded once per process."""
    found: dict[str, SignalType] = {}
    for ep in entry_points(group=GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plug-in must say which one it is
            raise PluginError(
                f"signal type plug-in {ep.name!r} ({ep.value}) failed to load: {exc}"
            ) from exc
        if not (isinstance(cls, type) and issubclass(cls, SignalType)):
            raise PluginError(
                f"signal type plug-in {ep.name!r} ({ep.value}) is not a SignalType class"
            )
        declared = getattr(cls, "name", None)
        if declared != ep.name:
            raise PluginError(
                f"signal type plug-in {ep.value} is registered as {ep.name!r} "
                f"but declares name {declared!r}"
            )
        if ep.name in found and type(found[ep.name]) is not cls:
            raise PluginError(f"two signal types claim the name {ep.name!r}")
        found[ep.name] = cls()
    return dict(sorted(found.items()))


def get(name: str) -> SignalType:
    """The signal type registered as `name`; `UnknownSignalType` lists the known names otherwise."""
    types = all_signal_types()
    try:
        return types[name]
    except KeyError:
        known = ", ".join(types) or "none"
        raise UnknownSignalType(f"unknown signal type {name!r} (known: {known})") from None


def bytes_signal_types() -> list[BytesSignalType]:
    return [t for t in all_signal_types().values() if isinstance(t, BytesSignalType)]


def image_signal_types() -> list[ImageSignalType]:
    return [t for t in all_signal_types().values() if isinstance(t, ImageSignalType)]
