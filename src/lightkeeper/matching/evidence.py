"""What a match is, with the evidence that lets a person check it later.

A perceptual match is a claim that two pictures are the same; nobody may act on it, let alone
report it, without knowing exactly which list entry it hit, how close it came, under which
threshold, on which picture quality and which rotation. So a `Match` carries all of that,
and a `MatchResult` keeps every match it saw: the ones that act (`matches`), the block
matches an allow bank suppressed (`suppressed`, each with the allow entry that did it) and
the allow-bank matches themselves (`allowed`). Nothing is dropped silently.

Both are frozen values with a `to_dict()` giving JSON-ready data (the CLI's ``--json`` and
scan reports are exactly that dict), so they can be kept, compared and passed to processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lightkeeper.banks import BankKind

#: The variant a match came from when the content's own, displayed hash matched.
ORIGINAL = "original"
#: The variant of the pixels as stored in the file, ignoring its EXIF orientation.
AS_STORED = "as_stored"


@dataclass(frozen=True, slots=True)
class Match:
    """One content matched one bank entry.

    `value` is the entry's hash, which is fine for an operator's own tools; a service decides
    separately what its clients may see (bank contents are never exposed to them).
    """

    bank: str
    bank_kind: BankKind
    entry_id: int
    signal_type: str
    #: The entry's hash (canonical form).
    value: str
    #: The content's hash that matched it (the `variant` below), so that anyone can recompute
    #: `distance` from the two values.
    content_value: str
    #: Hamming bits between `content_value` and `value`; 0 for exact signals.
    distance: int
    #: The bank's threshold for this signal type when the match was made.
    threshold: int
    #: The content's quality for signal types that have one (PDQ), else None.
    quality: int | None
    #: Which hash of the content matched: "original" (as displayed), "as_stored" (pixels as
    #: stored, EXIF ignored), a dihedral variant's name ("rotate90", "flipx" …) or, for a
    #: bank with regions on, a region of the content: a crop window of it ("region:right-97")
    #: or a photo found inside it ("region:content", "region:content-2" …).
    variant: str
    list_name: str | None
    list_version: str | None
    external_id: str | None
    classification: str | None
    #: Which code of the entry matched, when a region took part in the match: "whole" (the
    #: entry's own hash, met by a region of the content) or a crop window of the banked image
    #: ("region:left-89" …), whose code the bank keeps with the entry. Then `distance` is
    #: between `content_value` and that code, and `threshold` is the bank's region threshold.
    #: None for a match of whole hashes.
    entry_code: str | None = None

    def sort_key(self) -> tuple[str, int, int, str]:
        """Deterministic order: bank, distance, entry id (then signal type)."""
        return (self.bank, self.distance, self.entry_id, self.signal_type)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; ``entry_code`` only when a region took part."""
        out: dict[str, Any] = {
            "bank": self.bank,
            "bank_kind": self.bank_kind,
            "entry_id": self.entry_id,
            "signal_type": self.signal_type,
            "value": self.value,
            "content_value": self.content_value,
            "distance": self.distance,
            "threshold": self.threshold,
            "quality": self.quality,
            "variant": self.variant,
            "list_name": self.list_name,
            "list_version": self.list_version,
            "external_id": self.external_id,
            "classification": self.classification,
        }
        if self.entry_code is not None:
            out["entry_code"] = self.entry_code
        return out


@dataclass(frozen=True, slots=True)
class SuppressedMatch:
    """A block match that did not act because the content also matched an allow bank."""

    match: Match
    #: The allow-bank match that suppressed it (the first allow match, in sorted order).
    suppressed_by: Match

    def to_dict(self) -> dict[str, Any]:
        by = self.suppressed_by
        suppressed_by: dict[str, Any] = {
            "bank": by.bank,
            "entry_id": by.entry_id,
            "signal_type": by.signal_type,
            "distance": by.distance,
            "threshold": by.threshold,
            "variant": by.variant,
        }
        if by.entry_code is not None:
            suppressed_by["entry_code"] = by.entry_code
        return {**self.match.to_dict(), "suppressed_by": suppressed_by}


@dataclass(frozen=True, slots=True)
class MatchResult:
    """Everything matching one content found, sorted the same way every time.

    `error` says why part or all of the content could not be examined: a file that cannot be
    read has no signals and no matches; bytes that are not a decodable image still get their
    exact hashes (MD5, SHA-256 …) matched, so a listed video or document is still found.
    """

    file: str | None = None
    sha256: str | None = None
    #: Block-bank matches that act, sorted by (bank, distance, entry id).
    matches: tuple[Match, ...] = ()
    #: Block-bank matches suppressed by an allow bank, same order.
    suppressed: tuple[SuppressedMatch, ...] = ()
    #: Allow-bank matches (known false positives this content is), same order.
    allowed: tuple[Match, ...] = ()
    #: The PDQ quality is below the quality floor of at least one enabled bank, so PDQ was
    #: not matched against that bank (exact hashes still were).
    low_quality: bool = False
    #: The content's PDQ quality, when it was computed.
    quality: int | None = None
    #: Names of the signal types computed for the content and looked up.
    signals: tuple[str, ...] = ()
    error: str | None = None
    #: The error's stable code (`LightkeeperError.code`), for scripts.
    error_type: str | None = None

    @property
    def matched(self) -> bool:
        """Whether any block match acts (suppressed ones do not)."""
        return bool(self.matches)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.file is not None:
            out["file"] = self.file
        out["sha256"] = self.sha256
        out["matched"] = self.matched
        out["matches"] = [m.to_dict() for m in self.matches]
        out["suppressed"] = [s.to_dict() for s in self.suppressed]
        out["allowed"] = [m.to_dict() for m in self.allowed]
        out["low_quality"] = self.low_quality
        out["quality"] = self.quality
        out["signals"] = list(self.signals)
        if self.error is not None:
            out["error"] = self.error
            out["error_type"] = self.error_type
        return out
