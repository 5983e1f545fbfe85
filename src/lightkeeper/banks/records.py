"""What the bank store takes and gives back: plain frozen values, no database session attached.

The store hands out these instead of ORM objects so that callers (the index, the CLI, the
service) can keep them, pass them across threads and compare them, without a session that
expires or lazily loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from lightkeeper.signals import registry

BankKind = Literal["block", "allow"]
ChangeOp = Literal["add", "remove", "update", "bank"]
Outcome = Literal["added", "updated", "unchanged"]
ImportStatus = Literal["running", "complete", "failed"]

#: Longest list name, list version and external id the store keeps (PostgreSQL enforces it).
MAX_SOURCE_LEN = 200
#: Longest classification label (A1, B2, "sextortion" …).
MAX_CLASSIFICATION_LEN = 64

#: The region codes an entry of a bank with regions on may hold beside its whole-image PDQ:
#: the PDQ of fixed crop windows of the banked image (`lightkeeper.signals.regions`'s
#: `reference_regions` with its default keeps and families) and of its 4 x 4 tiles
#: (`tile_regions`, appended on 2026-11-23; a test checks both agree). The
#: in-memory index keys a region code by its entry's id and its position here, so this order
#: never changes: new names are only ever appended.
REGION_NAMES: tuple[str, ...] = (
    "region:center-89",
    "region:center-x-89",
    "region:center-y-89",
    "region:left-89",
    "region:right-89",
    "region:top-89",
    "region:bottom-89",
    "region:center-80",
    "region:center-x-80",
    "region:center-y-80",
    "region:left-80",
    "region:right-80",
    "region:top-80",
    "region:bottom-80",
    *(f"region:tile-r{row}c{col}" for row in range(4) for col in range(4)),
)
#: What a bank's `region_threshold` is when not set: PDQ's own default threshold.
DEFAULT_REGION_THRESHOLD = 31


@dataclass(frozen=True, slots=True)
class Bank:
    """A named list of entries and how matches against it are judged."""

    id: int
    name: str
    #: "block": a match acts. "allow": known false positives; a match here suppresses others.
    kind: BankKind
    description: str
    #: A disabled bank keeps its entries but takes part in no match.
    enabled: bool
    #: Query all eight rotations/flips of a PDQ hash against this bank.
    match_dihedral: bool
    #: PDQ hashes of lower quality than this are not matched against this bank.
    pdq_quality_floor: int
    #: Region matching: the bank keeps the PDQ of crop windows and tiles of each image added
    #: to it (`REGION_NAMES`), and uploads are also looked up with windows and tiles of
    #: themselves and with the photo found inside a screenshot. Off by default; see
    #: docs/matching.md.
    regions: bool
    #: The largest distance that matches when either side of a pair is a region code (a pair
    #: of whole-image hashes keeps `threshold("pdq")`).
    region_threshold: int
    #: Thresholds set on this bank, by signal type; others use the signal type's default.
    thresholds: Mapping[str, int]
    created_at: datetime
    updated_at: datetime

    def threshold(self, signal_type: str) -> int:
        """The largest distance that matches in this bank for `signal_type`."""
        if signal_type in self.thresholds:
            return self.thresholds[signal_type]
        return registry.get(signal_type).default_threshold


@dataclass(frozen=True, slots=True)
class NewEntry:
    """One hash to put into a bank, with where it came from."""

    signal_type: str
    value: str
    list_name: str | None = None
    list_version: str | None = None
    external_id: str | None = None
    classification: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One hash in one bank. `id` is stable for the entry's life and never reused."""

    id: int
    bank_id: int
    bank: str
    signal_type: str
    value: str
    list_name: str | None
    list_version: str | None
    external_id: str | None
    classification: str | None
    added_at: datetime
    updated_at: datetime
    enabled: bool
    disabled_until: datetime | None
    note: str | None

    def is_active(self, now: datetime | None = None) -> bool:
        """Whether the entry takes part in matching at `now` (default: the present)."""
        return is_active(self.enabled, self.disabled_until, now)


class IndexRow(NamedTuple):
    """What an in-memory index needs of an entry, and nothing more (loads ~5x faster)."""

    id: int
    bank_id: int
    signal_type: str
    value: str
    enabled: bool
    disabled_until: datetime | None

    def is_active(self, now: datetime | None = None) -> bool:
        """Whether the entry takes part in matching at `now` (default: the present)."""
        return is_active(self.enabled, self.disabled_until, now)


@dataclass(frozen=True, slots=True)
class EntryRegion:
    """One region code of a banked image, kept with its PDQ entry: which window of the
    image (a name of `REGION_NAMES`), its PDQ hash and that hash's quality."""

    region: str
    value: str
    quality: int


class RegionRow(NamedTuple):
    """A region code as an in-memory index loads it: its entry, the entry's bank and state."""

    entry_id: int
    bank_id: int
    region: str
    value: str
    enabled: bool


@dataclass(frozen=True, slots=True)
class RemoveValue:
    """Remove the entry holding this hash from the bank."""

    signal_type: str
    value: str


@dataclass(frozen=True, slots=True)
class RemoveExternalId:
    """Remove every entry a list gave this id (NCMEC deletions name nothing else).

    With `list_name`, only entries imported from that list; ids are unique per list only.
    """

    external_id: str
    list_name: str | None = None


EntryOp = NewEntry | RemoveValue | RemoveExternalId


@dataclass(frozen=True, slots=True)
class Change:
    """One row of the change log, as an index follower replays it.

    ``op``: "add" (a new entry), "update" (metadata or enabled state changed), "remove" (the
    entry is gone; `signal_type` and `value` still say which hash), "bank" (the bank was
    created, changed or deleted; `entry_id`, `signal_type` and `value` are None).

    For "add" and "update", `signal_type`, `value`, `enabled` and `disabled_until` are the
    entry's *current* state; if the entry has been removed since, they are None and its
    "remove" comes later in the log. A follower applies changes in `seq` order and treats
    each as idempotent: adding what it holds or removing what it lacks changes nothing.
    """

    seq: int
    bank_id: int
    #: The bank's current name; None once the bank is deleted.
    bank: str | None
    entry_id: int | None
    op: ChangeOp
    signal_type: str | None
    value: str | None
    enabled: bool | None
    disabled_until: datetime | None
    changed_at: datetime

    def is_active(self, now: datetime | None = None) -> bool:
        """Whether the entry this change leaves behind takes part in matching at `now`."""
        if self.op in ("remove", "bank") or self.enabled is None:
            return False
        return is_active(self.enabled, self.disabled_until, now)


@dataclass(frozen=True, slots=True)
class WriteReport:
    """What a bulk write did: rows added, updated, removed, and inputs that changed nothing."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0

    def __add__(self, other: WriteReport) -> WriteReport:
        return WriteReport(
            self.added + other.added,
            self.updated + other.updated,
            self.removed + other.removed,
            self.unchanged + other.unchanged,
        )


@dataclass(frozen=True, slots=True)
class ImportRun:
    """One list import as recorded in the store: what it reached, and whether it finished."""

    id: int
    bank: str
    format: str
    list_name: str | None
    list_version: str | None
    status: ImportStatus
    started_at: datetime
    finished_at: datetime | None
    added: int
    updated: int
    removed: int
    unchanged: int
    invalid: int
    skipped: int
    error: str | None = field(default=None)


def is_active(enabled: bool, disabled_until: datetime | None, now: datetime | None = None) -> bool:
    """An entry matches when enabled and not inside a temporary disable period."""
    if not enabled:
        return False
    if disabled_until is None:
        return True
    return (now or datetime.now(UTC)) >= disabled_until
