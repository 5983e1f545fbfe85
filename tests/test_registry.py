"""The signal-type registry: built-ins registered as plug-ins are, and broken plug-ins named."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from importlib.metadata import EntryPoint

import pytest

from lightkeeper.errors import InvalidSignal, PluginError, UnknownSignalType
from lightkeeper.signals import registry
from lightkeeper.signals.base import BytesSignalType, ImageSignalType, SignalType
from lightkeeper.signals.exact import HexDigestSignal, Md5Signal

BUILT_INS = ["md5", "pdq", "sha1", "sha256", "url"]


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    """Forget the cached signal types before and after a test that changes entry points."""
    registry.all_signal_types.cache_clear()
    yield
    registry.all_signal_types.cache_clear()


def _use_entry_points(monkeypatch: pytest.MonkeyPatch, *points: tuple[str, str]) -> None:
    found = [EntryPoint(name, value, registry.GROUP) for name, value in points]
    monkeypatch.setattr(registry, "entry_points", lambda group: found)


def test_all_built_ins_are_registered() -> None:
    assert list(registry.all_signal_types()) == BUILT_INS


def test_built_in_names_are_written_out_in_their_class() -> None:
    for name, signal_type in registry.all_signal_types().items():
        cls = type(signal_type)
        assert signal_type.name == name
        # Declared in the class itself, never derived from its name or inherited by accident.
        assert cls.__dict__["name"] == name, cls
        assert signal_type.description
        assert signal_type.comparison in ("hamming", "exact")


def test_families() -> None:
    assert [t.name for t in registry.bytes_signal_types()] == ["md5", "sha1", "sha256"]
    assert [t.name for t in registry.image_signal_types()] == ["pdq"]
    url = registry.get("url")
    assert not isinstance(url, BytesSignalType | ImageSignalType)


def test_get_returns_the_registered_instance() -> None:
    assert isinstance(registry.get("md5"), Md5Signal)
    assert registry.get("sha256") is registry.get("sha256")


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownSignalType) as caught:
        registry.get("photodna")
    assert str(caught.value) == (
        "unknown signal type 'photodna' (known: md5, pdq, sha1, sha256, url)"
    )


# Two distinct canonical values per built-in type, for the contract every type keeps.
SAMPLES = {
    "md5": ("900150983cd24fb0d6963f7d28e17f72", "d41d8cd98f00b204e9800998ecf8427e"),
    "sha1": (
        "a9993e364706816aba3e25717850c26c9cd0d89d",
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    ),
    "sha256": (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ),
    "pdq": (
        "f8f8f0cce0f4e84d0e370a22028f67f0b36e2ed596623e1d33e6339c4e9c9b22",
        "b0a10efd71cc3f429413d48d0ffffe12e34e0e17ada952a9d29684210aa9e5af",
    ),
    "url": ("http://example.com/", "https://example.org/a?b=c"),
}


@pytest.mark.parametrize("name", BUILT_INS)
def test_signal_type_contract(name: str) -> None:
    signal_type = registry.get(name)
    a, b = SAMPLES[name]
    assert signal_type.normalize(a) == a
    assert signal_type.normalize(f" {a.upper() if name != 'url' else a} ") == a
    assert signal_type.distance(a, a) == 0
    assert signal_type.distance(a, b) == signal_type.distance(b, a) > 0
    if signal_type.comparison == "exact":
        assert signal_type.distance(a, b) == 1
    else:
        assert signal_type.distance(a, b) <= signal_type.bits
    with pytest.raises(InvalidSignal):
        signal_type.normalize("not a signal value!")


@pytest.mark.usefixtures("fresh_registry")
def test_a_third_party_plug_in_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = types.ModuleType("lightkeeper_test_plugin")

    class Sha512Signal(HexDigestSignal):
        name = "sha512"
        description = "SHA-512 of the bytes"
        algorithm = "sha512"
        hex_length = 128

    plugin.Sha512Signal = Sha512Signal  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lightkeeper_test_plugin", plugin)
    _use_entry_points(
        monkeypatch,
        ("md5", "lightkeeper.signals.exact:Md5Signal"),
        ("sha512", "lightkeeper_test_plugin:Sha512Signal"),
    )
    assert list(registry.all_signal_types()) == ["md5", "sha512"]
    assert [t.name for t in registry.bytes_signal_types()] == ["md5", "sha512"]
    assert registry.get("sha512").normalize("AB" * 64) == "ab" * 64


@pytest.mark.usefixtures("fresh_registry")
@pytest.mark.parametrize(
    ("points", "message"),
    [
        (
            [("sha1", "lightkeeper.signals.exact:Md5Signal")],
            "signal type plug-in lightkeeper.signals.exact:Md5Signal is registered as 'sha1' "
            "but declares name 'md5'",
        ),
        (
            [("loads", "json:loads")],
            "signal type plug-in 'loads' (json:loads) is not a SignalType class",
        ),
        (
            [("gone", "lightkeeper_no_such_module:Gone")],
            "signal type plug-in 'gone' (lightkeeper_no_such_module:Gone) failed to load: "
            "No module named 'lightkeeper_no_such_module'",
        ),
    ],
)
def test_broken_plug_ins_are_named(
    monkeypatch: pytest.MonkeyPatch, points: list[tuple[str, str]], message: str
) -> None:
    _use_entry_points(monkeypatch, *points)
    with pytest.raises(PluginError) as caught:
        registry.all_signal_types()
    assert str(caught.value) == message


@pytest.mark.usefixtures("fresh_registry")
def test_two_classes_cannot_claim_one_name(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = types.ModuleType("lightkeeper_test_clash")

    class OtherMd5(SignalType):
        name = "md5"
        description = "an impostor"
        comparison = "exact"

        def normalize(self, value: str) -> str:
            return value

    plugin.OtherMd5 = OtherMd5  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lightkeeper_test_clash", plugin)
    _use_entry_points(
        monkeypatch,
        ("md5", "lightkeeper.signals.exact:Md5Signal"),
        ("md5", "lightkeeper_test_clash:OtherMd5"),
    )
    with pytest.raises(PluginError, match="two signal types claim the name 'md5'"):
        registry.all_signal_types()
