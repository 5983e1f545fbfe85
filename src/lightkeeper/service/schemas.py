"""Request and response bodies of the ``/v1`` API (pydantic models: they are the OpenAPI
document, and requests are validated against them before any handler runs)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lightkeeper.banks import Bank, ImportRun, WriteReport
from lightkeeper.banks.records import DEFAULT_REGION_THRESHOLD, Entry
from lightkeeper.matching.evidence import Match, MatchResult, SuppressedMatch
from lightkeeper.service.settings import MAX_BATCH

#: Text without NUL characters, which PostgreSQL cannot store: refused (422) on every
#: backend alike, before it reaches the store.
NO_NUL = r"^[^\x00]*$"

SignalName = Field(
    min_length=1, max_length=32, pattern=NO_NUL, description="Signal type: pdq, md5, sha256 …"
)
HashValue = Field(
    min_length=1,
    max_length=4096,
    pattern=NO_NUL,
    description="The hash, as the signal type writes it",
)


def optional_text(max_length: int, *, min_length: int = 0, description: str | None = None) -> Any:
    """A stored, optional free-text field."""
    return Field(
        None,
        min_length=min_length,
        max_length=max_length,
        pattern=NO_NUL,
        description=description,
    )


class Evidence(BaseModel):
    """Why content matched one bank entry."""

    bank: str
    bank_kind: Literal["block", "allow"]
    entry_id: int
    signal_type: str
    value: str | None = Field(
        None, description="The entry's own hash: only for keys with the bank:read scope"
    )
    content_value: str = Field(description="The content's hash that matched")
    distance: int
    threshold: int
    quality: int | None
    variant: str = Field(
        description="The content's hash that matched: original, as_stored, a rotation or "
        "flip (rotate90, flipx …) or, for a bank with regions on, a region of the content: "
        "a crop window (region:right-97 …) or a photo found inside it (region:content …)"
    )
    list_name: str | None
    list_version: str | None
    external_id: str | None
    classification: str | None
    entry_code: str | None = Field(
        None,
        exclude_if=lambda code: code is None,
        description="Only when a region took part: the entry's code that matched, 'whole' "
        "(its own hash) or a crop window of the banked image (region:left-89 …); distance "
        "and threshold (the bank's region_threshold) are then those of that pair. The code "
        "itself is never shown",
    )

    @classmethod
    def of(cls, match: Match, reveal: bool) -> Evidence:
        data = match.to_dict()
        if not reveal:
            data["value"] = None
        return cls(**data)


class Suppressed(BaseModel):
    match: Evidence
    suppressed_by: Evidence

    @classmethod
    def of(cls, item: SuppressedMatch, reveal: bool) -> Suppressed:
        return cls(
            match=Evidence.of(item.match, reveal),
            suppressed_by=Evidence.of(item.suppressed_by, reveal),
        )


class MatchOutcome(BaseModel):
    matched: bool = Field(description="Whether a block-bank match acts")
    matches: list[Evidence]
    suppressed: list[Suppressed]
    allowed: list[Evidence]
    low_quality: bool
    quality: int | None

    @classmethod
    def fields_of(cls, result: MatchResult, reveal: bool) -> dict[str, Any]:
        return {
            "matched": result.matched,
            "matches": [Evidence.of(m, reveal) for m in result.matches],
            "suppressed": [Suppressed.of(s, reveal) for s in result.suppressed],
            "allowed": [Evidence.of(m, reveal) for m in result.allowed],
            "low_quality": result.low_quality,
            "quality": result.quality,
        }


ActionName = Literal["block", "quarantine", "review", "notify"]


class MatchResponse(MatchOutcome):
    decision: Literal["reject", "accept"] = Field(
        description="reject: the policy blocks the upload (with the default policy: a block "
        "bank matched); the upload should not be accepted"
    )
    actions: list[ActionName] = Field(
        default_factory=list,
        description="What the policy did about the upload (empty when nothing matched, or "
        "when the service only matches)",
    )
    case_id: int | None = Field(None, description="The case the upload joined, when acted on")
    request_id: str = Field(
        description="The Idempotency-Key sent, else an id the server made: retrying with it "
        "as Idempotency-Key returns this answer again and repeats no action"
    )
    sha256: str | None
    signals: list[str]
    index_seq: int = Field(description="Change-log position of the index that answered")
    error: str | None = None
    error_type: str | None = None


class HashRequestItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signal_type: str = SignalName
    value: str = HashValue
    quality: int | None = Field(None, ge=0, le=100, description="PDQ quality, when known")


class LookupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hashes: list[HashRequestItem] = Field(min_length=1, max_length=MAX_BATCH)


class LookupResult(MatchOutcome):
    """One looked-up hash's outcome; a malformed hash or unknown signal type in a batch gets
    `error` (and no matches) instead of failing the whole batch."""

    signal_type: str
    value: str
    error: str | None = None
    error_type: str | None = Field(None, description="invalid_signal, unknown_signal_type …")


class LookupResponse(BaseModel):
    results: list[LookupResult]
    index_seq: int


class BankIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    kind: Literal["block", "allow"] = "block"
    description: str = Field("", max_length=10_000, pattern=NO_NUL)
    thresholds: dict[str, int] = Field(default_factory=dict)
    match_dihedral: bool = False
    pdq_quality_floor: int = Field(50, ge=0, le=100)
    enabled: bool = True
    regions: bool = Field(
        False,
        description="Region matching (crops, screenshots and overlays): keep the PDQ of crop "
        "windows and tiles of each image added from a file, and look uploads up with regions "
        "of themselves",
    )
    region_threshold: int = Field(
        DEFAULT_REGION_THRESHOLD,
        ge=0,
        le=256,
        description="Largest distance that matches when a region code takes part",
    )


class BankPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = optional_text(64, min_length=1, description="Rename")
    kind: Literal["block", "allow"] | None = None
    description: str | None = optional_text(10_000)
    thresholds: dict[str, int | None] | None = Field(
        None, description="Per signal type; null returns a signal type to its default"
    )
    match_dihedral: bool | None = None
    pdq_quality_floor: int | None = Field(None, ge=0, le=100)
    enabled: bool | None = None
    regions: bool | None = Field(None, description="Region matching on or off")
    region_threshold: int | None = Field(None, ge=0, le=256)


class BankOut(BaseModel):
    id: int
    name: str
    kind: Literal["block", "allow"]
    description: str
    enabled: bool
    match_dihedral: bool
    pdq_quality_floor: int
    regions: bool = Field(description="Region matching (crops, screenshots and overlays) is on")
    region_threshold: int
    thresholds: dict[str, int]
    created_at: datetime
    updated_at: datetime
    entries: int | None = Field(None, description="Entry count (shown for one bank)")

    @classmethod
    def of(cls, bank: Bank, entries: int | None = None) -> BankOut:
        return cls(
            id=bank.id,
            name=bank.name,
            kind=bank.kind,
            description=bank.description,
            enabled=bank.enabled,
            match_dihedral=bank.match_dihedral,
            pdq_quality_floor=bank.pdq_quality_floor,
            regions=bank.regions,
            region_threshold=bank.region_threshold,
            thresholds=dict(bank.thresholds),
            created_at=bank.created_at,
            updated_at=bank.updated_at,
            entries=entries,
        )


class EntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signal_type: str = SignalName
    value: str = HashValue
    list_name: str | None = optional_text(200)
    list_version: str | None = optional_text(200)
    external_id: str | None = optional_text(200)
    classification: str | None = optional_text(64)
    note: str | None = optional_text(10_000)


class EntriesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entries: list[EntryIn] = Field(min_length=1, max_length=MAX_BATCH)


class EntryPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    disabled_until: datetime | None = Field(
        None, description="Disable until this time (with a time zone); needs enabled unset"
    )

    @field_validator("disabled_until")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        """In UTC, as the store keeps it: a time near year 1 or 9999 whose UTC form falls
        outside the calendar is refused here rather than failing in the store."""
        if value is None or value.tzinfo is None:
            return value  # the store says why a time without a zone is refused
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("disabled_until is out of range once converted to UTC") from None


class EntryOut(BaseModel):
    id: int
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
    region_codes: int = Field(
        0,
        description="How many region codes (crop windows of the banked image) the entry "
        "holds; the codes themselves are never shown",
    )

    @classmethod
    def of(cls, entry: Entry, region_codes: int = 0) -> EntryOut:
        out = cls.model_validate(entry, from_attributes=True)
        out.region_codes = region_codes
        return out


class EntryRef(BaseModel):
    """An entry as a curator without bank:read sees it after a write: no hash value."""

    id: int
    bank: str
    signal_type: str
    enabled: bool
    disabled_until: datetime | None


class EntryPage(BaseModel):
    entries: list[EntryOut]
    next_after_id: int | None = Field(description="Pass as after_id for the next page")


class WriteOut(BaseModel):
    added: int
    updated: int
    removed: int
    unchanged: int

    @classmethod
    def of(cls, report: WriteReport) -> WriteOut:
        return cls.model_validate(report, from_attributes=True)


class ImportOut(BaseModel):
    id: int
    bank: str
    format: str
    list_name: str | None
    list_version: str | None
    status: Literal["running", "complete", "failed"]
    started_at: datetime
    finished_at: datetime | None
    added: int
    updated: int
    removed: int
    unchanged: int
    invalid: int
    skipped: int
    error: str | None

    @classmethod
    def of(cls, run: ImportRun) -> ImportOut:
        return cls.model_validate(run, from_attributes=True)


class SignalIndexStatus(BaseModel):
    size: int


class IndexStatus(BaseModel):
    loaded: bool
    current: bool = Field(description="Refreshed from the change log within the staleness limit")
    last_seq: int = Field(description="Last change-log sequence number applied")
    store_seq: int = Field(description="Newest sequence number seen in the store")
    lag: int = Field(description="Changes not yet applied")
    last_refresh_at: datetime | None
    loaded_from: str
    snapshot_seq: int | None
    signal_types: dict[str, SignalIndexStatus]
