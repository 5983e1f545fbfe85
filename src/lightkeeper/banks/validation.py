"""What the store accepts: bank names, kinds, thresholds, quality floors and entry fields.

Kept apart from the store so that the CLI, the HTTP layer and list imports can check input
(and report it per line) before anything touches the database.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from lightkeeper.banks.records import (
    MAX_CLASSIFICATION_LEN,
    MAX_SOURCE_LEN,
    REGION_NAMES,
    BankKind,
    EntryRegion,
    NewEntry,
)
from lightkeeper.errors import InvalidRequest
from lightkeeper.signals import registry

#: Bank names: lowercase letters, digits, "_" and "-", up to 64, starting with a letter or digit.
BANK_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
BANK_KINDS: tuple[BankKind, ...] = ("block", "allow")


def validate_bank_name(name: str) -> str:
    """`name` if it is a valid bank name, else `InvalidRequest` saying why."""
    if not BANK_NAME.fullmatch(name):
        raise InvalidRequest(
            f"invalid bank name {name!r}: use 1-64 lowercase letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def validate_kind(kind: str) -> BankKind:
    """`kind` if it is "block" or "allow", else `InvalidRequest`."""
    if kind not in BANK_KINDS:
        raise InvalidRequest(f"bank kind must be 'block' or 'allow', not {kind!r}")
    return kind


def validate_threshold(signal_type: str, threshold: int) -> int:
    """`threshold` if it fits the signal type (0..bits for Hamming, 0 for exact signals).

    Raises `UnknownSignalType` for an unregistered signal type, `InvalidRequest` otherwise.
    """
    st = registry.get(signal_type)
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
        raise InvalidRequest(f"{signal_type} threshold must be a whole number >= 0")
    if st.comparison == "hamming" and threshold > st.bits:
        raise InvalidRequest(f"{signal_type} threshold {threshold} exceeds its {st.bits} bits")
    if st.comparison == "exact" and threshold != 0:
        raise InvalidRequest(f"{signal_type} matches exactly; its threshold can only be 0")
    return threshold


def validate_quality_floor(floor: int) -> int:
    """`floor` if it is a PDQ quality (0..100), else `InvalidRequest`."""
    if isinstance(floor, bool) or not isinstance(floor, int) or not 0 <= floor <= 100:
        raise InvalidRequest("pdq_quality_floor must be a whole number from 0 to 100")
    return floor


def validate_region_threshold(threshold: int) -> int:
    """`threshold` if it is a PDQ threshold (0..256), else `InvalidRequest`."""
    bits = registry.get("pdq").bits
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 0 <= threshold <= bits:
        raise InvalidRequest(f"region_threshold must be a whole number from 0 to {bits}")
    return threshold


def validate_regions(regions: Sequence[EntryRegion]) -> list[EntryRegion]:
    """`regions` with canonical values, if each names a region of `REGION_NAMES` once, with
    a PDQ hash and a quality from 0 to 100; else `InvalidRequest` (`InvalidSignal` for a
    malformed hash)."""
    pdq = registry.get("pdq")
    seen: set[str] = set()
    checked: list[EntryRegion] = []
    for region in regions:
        if region.region not in REGION_NAMES:
            raise InvalidRequest(f"unknown region {region.region!r}")
        if region.region in seen:
            raise InvalidRequest(f"region {region.region!r} given twice")
        seen.add(region.region)
        quality = region.quality
        if isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 100:
            raise InvalidRequest(f"region {region.region!r}: quality must be from 0 to 100")
        checked.append(replace(region, value=pdq.normalize(region.value)))
    return checked


def validate_new_entry(entry: NewEntry) -> NewEntry:
    """`entry` with its value in canonical form.

    Raises `UnknownSignalType` (no such signal type), `InvalidSignal` (malformed value) or
    `InvalidRequest` (a provenance field too long for the store).
    """
    for name in ("list_name", "list_version", "external_id"):
        value = getattr(entry, name)
        if value is not None and len(value) > MAX_SOURCE_LEN:
            raise InvalidRequest(f"{name} is longer than {MAX_SOURCE_LEN} characters")
    if entry.classification is not None and len(entry.classification) > MAX_CLASSIFICATION_LEN:
        raise InvalidRequest(f"classification is longer than {MAX_CLASSIFICATION_LEN} characters")
    canonical = registry.get(entry.signal_type).normalize(entry.value)
    return entry if canonical == entry.value else replace(entry, value=canonical)
