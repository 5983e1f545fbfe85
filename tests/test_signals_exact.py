"""MD5, SHA-1 and SHA-256 signals: values, canonical form, and the errors list curators see."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightkeeper.errors import InvalidSignal
from lightkeeper.signals.exact import (
    HexDigestSignal,
    Md5Signal,
    Sha1Signal,
    Sha256Signal,
    exact_hashes,
    hex_digests,
)

ALL = [Md5Signal(), Sha1Signal(), Sha256Signal()]

# Digests of b"abc" published in RFC 1321, FIPS 180-2 (test vectors, not our own output).
ABC = {
    "md5": "900150983cd24fb0d6963f7d28e17f72",
    "sha1": "a9993e364706816aba3e25717850c26c9cd0d89d",
    "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
}


@pytest.mark.parametrize("signal", ALL, ids=lambda s: s.name)
def test_published_vectors(signal: HexDigestSignal) -> None:
    assert signal.from_bytes(b"abc") == ABC[signal.name]


def test_names_and_lengths_are_written_out() -> None:
    assert [(s.name, s.hex_length, s.comparison) for s in ALL] == [
        ("md5", 32, "exact"),
        ("sha1", 40, "exact"),
        ("sha256", 64, "exact"),
    ]


def test_exact_hashes_order_and_values() -> None:
    result = exact_hashes(b"abc")
    assert list(result) == ["md5", "sha1", "sha256"]
    assert result == ABC


@given(st.binary(max_size=2000))
def test_exact_hashes_agree_with_hashlib(data: bytes) -> None:
    assert exact_hashes(data) == {
        name: hashlib.new(name, data).hexdigest() for name in ("md5", "sha1", "sha256")
    }


def test_hex_digests_over_chunk_boundaries() -> None:
    data = bytes(range(256)) * 5000  # 1.28 MB: several chunks and a partial one
    assert hex_digests(data, [Sha256Signal()]) == {"sha256": hashlib.sha256(data).hexdigest()}
    assert exact_hashes(b"") == {
        name: hashlib.new(name, b"").hexdigest() for name in ("md5", "sha1", "sha256")
    }


@pytest.mark.parametrize("signal", ALL, ids=lambda s: s.name)
def test_normalize_strips_and_lowercases(signal: HexDigestSignal) -> None:
    value = ABC[signal.name]
    assert signal.normalize(f"  {value.upper()}\n") == value
    assert signal.normalize(value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "md5 value is empty"),
        ("   \t", "md5 value is empty"),
        ("900150983cd24fb0d6963f7d28e17f7", "md5 value must be 32 hex digits, got 31"),
        ("900150983cd24fb0d6963f7d28e17f722", "md5 value must be 32 hex digits, got 33"),
        (
            "900150983cd24fb0d6963f7d28e17g72",
            "md5 value has a non-hex character 'g' at position 30",
        ),
        ("0x0150983cd24fb0d6963f7d28e17f72", "md5 value has a non-hex character 'x' at position 2"),
        ("9001 0983cd24fb0d6963f7d28e17f72", "md5 value has a non-hex character ' ' at position 5"),
        ("9001_0983cd24fb0d6963f7d28e17f72", "md5 value has a non-hex character '_' at position 5"),
        # int(…, 16) would accept Arabic-Indic digits; a hash list must not.
        ("\u0661" * 32, "md5 value has a non-hex character '\u0661' at position 1"),
    ],
)
def test_normalize_rejects_with_precise_message(value: str, message: str) -> None:
    with pytest.raises(InvalidSignal) as caught:
        Md5Signal().normalize(value)
    assert str(caught.value) == message


def test_lengths_are_per_algorithm() -> None:
    with pytest.raises(InvalidSignal, match="sha1 value must be 40 hex digits, got 32"):
        Sha1Signal().normalize(ABC["md5"])
    with pytest.raises(InvalidSignal, match="sha256 value must be 64 hex digits, got 40"):
        Sha256Signal().normalize(ABC["sha1"])


@given(st.sampled_from(ALL), st.text(max_size=80))
def test_normalize_is_idempotent_or_rejects(signal: HexDigestSignal, value: str) -> None:
    try:
        canonical = signal.normalize(value)
    except InvalidSignal:
        return
    assert signal.normalize(canonical) == canonical
    assert len(canonical) == signal.hex_length


@given(st.sampled_from(ALL), st.binary(max_size=64))
def test_from_bytes_is_canonical(signal: HexDigestSignal, data: bytes) -> None:
    value = signal.from_bytes(data)
    assert signal.normalize(value) == value


def test_exact_distance() -> None:
    md5 = Md5Signal()
    assert md5.distance(ABC["md5"], ABC["md5"]) == 0
    assert md5.distance(ABC["md5"], "0" * 32) == 1
