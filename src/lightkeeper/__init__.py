"""Lightkeeper: find, stop, review and report known abuse imagery, with hashes only.

The public API is what `__all__` lists. Everything but the errors is loaded on first use,
so ``import lightkeeper`` does not import Pillow, NumPy or SQLAlchemy (the CLI's ``--help``
and the error classes stay cheap to reach).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from lightkeeper.errors import (
    CorruptMedia,
    EmptyMedia,
    InputError,
    InvalidSignal,
    LightkeeperError,
    MediaError,
    MediaTooLarge,
    PluginError,
    SignalError,
    StoreError,
    TruncatedMedia,
    UnknownSignalType,
    UnsupportedFormat,
)

if TYPE_CHECKING:
    from lightkeeper.banks.store import BankStore
    from lightkeeper.hashing import hash_bytes, hash_file
    from lightkeeper.index.hamming import HammingIndex
    from lightkeeper.matching.matcher import Matcher
    from lightkeeper.media.decode import MediaLimits

__version__ = "0.1.0"

__all__ = [
    "BankStore",
    "CorruptMedia",
    "EmptyMedia",
    "HammingIndex",
    "InputError",
    "InvalidSignal",
    "LightkeeperError",
    "Matcher",
    "MediaError",
    "MediaLimits",
    "MediaTooLarge",
    "PluginError",
    "SignalError",
    "StoreError",
    "TruncatedMedia",
    "UnknownSignalType",
    "UnsupportedFormat",
    "__version__",
    "hash_bytes",
    "hash_file",
]

# Public name -> module that defines it, imported on first access.
_LAZY = {
    "hash_bytes": "lightkeeper.hashing",
    "hash_file": "lightkeeper.hashing",
    "MediaLimits": "lightkeeper.media.decode",
    "BankStore": "lightkeeper.banks.store",
    "HammingIndex": "lightkeeper.index.hamming",
    "Matcher": "lightkeeper.matching.matcher",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lightkeeper' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
