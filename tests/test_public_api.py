"""What `import lightkeeper` offers: a small, pinned API that is cheap to import."""

from __future__ import annotations

import subprocess
import sys

import pytest

import lightkeeper
from lightkeeper import errors

PUBLIC = [
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


def test_all_is_pinned_and_sorted() -> None:
    assert lightkeeper.__all__ == PUBLIC
    assert sorted(lightkeeper.__all__) == lightkeeper.__all__


def test_every_public_name_resolves() -> None:
    for name in lightkeeper.__all__:
        assert getattr(lightkeeper, name) is not None
    assert set(lightkeeper.__all__) <= set(dir(lightkeeper))


def test_exports_are_the_defining_objects() -> None:
    from lightkeeper.hashing import hash_bytes, hash_file
    from lightkeeper.media.decode import MediaLimits

    assert lightkeeper.hash_bytes is hash_bytes
    assert lightkeeper.hash_file is hash_file
    assert lightkeeper.MediaLimits is MediaLimits
    from lightkeeper.banks.store import BankStore
    from lightkeeper.index.hamming import HammingIndex
    from lightkeeper.matching.matcher import Matcher

    assert lightkeeper.BankStore is BankStore
    assert lightkeeper.HammingIndex is HammingIndex
    assert lightkeeper.Matcher is Matcher
    for name in PUBLIC:
        if name[0].isupper() and name not in {
            "MediaLimits",
            "BankStore",
            "HammingIndex",
            "Matcher",
        }:
            assert getattr(lightkeeper, name) is getattr(errors, name)
            assert issubclass(getattr(lightkeeper, name), lightkeeper.LightkeeperError)


def test_version_matches_the_installed_distribution() -> None:
    from importlib.metadata import version

    assert lightkeeper.__version__ == version("lightkeeper")


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'hash_video'"):
        lightkeeper.hash_video  # type: ignore[attr-defined]  # noqa: B018


def test_import_is_cheap() -> None:
    """`import lightkeeper` (and the CLI's --help) load neither Pillow nor NumPy."""
    code = (
        "import sys, lightkeeper, lightkeeper.cli.main;"
        "print(sorted(m for m in ('PIL', 'numpy', 'pillow_heif', 'rich') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
