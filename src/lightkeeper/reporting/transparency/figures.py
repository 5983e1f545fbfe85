"""The values of the transparency figures, and their JSON and CSV forms.

`TransparencyFigures` holds every figure of one period (`lightkeeper.reporting.transparency`
says what each counts); `wilson_interval` gives each false-positive ratio its 95 % interval.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Final

from lightkeeper.actions.policy import ACTIONS
from lightkeeper.banks.models import (
    DECISION_KINDS,
)
from lightkeeper.errors import InvalidRequest

__all__ = [
    "CONFIDENCE",
    "CSV_COLUMNS",
    "ActionFigures",
    "AlgorithmErrors",
    "AppealFigures",
    "BankMatches",
    "BankSignalMatches",
    "DelayFigures",
    "Distribution",
    "ErrorCount",
    "ErrorFigures",
    "ListErrors",
    "MatchFigures",
    "ReportFigures",
    "ReviewFigures",
    "SignalMatches",
    "TransparencyFigures",
    "parse_utc",
    "wilson_interval",
]

#: Confidence level of every interval, and its two-sided normal quantile.
CONFIDENCE: Final = 0.95
_Z: Final = 1.959963984540054
#: Columns of `TransparencyFigures.to_csv`.
CSV_COLUMNS: Final = ("section", "key", "value")


def wilson_interval(errors: int, total: int) -> tuple[float, float] | None:
    """The Wilson score interval of a ratio `errors`/`total` at `CONFIDENCE`; None for no
    cases. Unlike the textbook p ± z·sqrt(p(1-p)/n), it never leaves [0, 1] and does not
    collapse to a point at 0 or 1 errors, which is where small counts usually sit."""
    if total <= 0:
        return None
    if not 0 <= errors <= total:
        raise ValueError(f"errors must be between 0 and total, got {errors} of {total}")
    p = errors / total
    z2 = _Z * _Z
    denominator = 1 + z2 / total
    centre = (p + z2 / (2 * total)) / denominator
    half = _Z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / denominator
    # Exactly 0 (1) with no errors (no correct cases), where rounding would leave a crumb.
    low = 0.0 if errors == 0 else max(0.0, centre - half)
    high = 1.0 if errors == total else min(1.0, centre + half)
    return low, high


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _as_dict(record: Any, *derived: str) -> dict[str, Any]:
    """A record's fields, JSON-ready (records and tuples of them as dicts and lists), then
    the `derived` properties named."""
    out = {f.name: _json_ready(getattr(record, f.name)) for f in fields(record)}
    out.update((name, getattr(record, name)) for name in derived)
    return out


def _json_ready(value: object) -> object:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, Mapping):
        return dict(value)
    return value


@dataclass(frozen=True, slots=True)
class Distribution:
    """Durations in seconds: how many, nearest-rank median and 90th percentile, maximum.
    All None when there are none."""

    count: int = 0
    median_s: float | None = None
    p90_s: float | None = None
    max_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


@dataclass(frozen=True, slots=True)
class BankMatches:
    bank: str
    #: Uploads with at least one acting match in this bank.
    uploads: int
    #: Acting matches in this bank (an upload can hit several entries).
    matches: int

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


@dataclass(frozen=True, slots=True)
class SignalMatches:
    signal_type: str
    uploads: int
    matches: int

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


@dataclass(frozen=True, slots=True)
class BankSignalMatches:
    bank: str
    signal_type: str
    uploads: int
    matches: int

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


@dataclass(frozen=True, slots=True)
class MatchFigures:
    #: Recorded matches (acted-on uploads).
    uploads: int = 0
    #: Distinct contents (cases) among them.
    contents: int = 0
    #: Distinct uploader references among them (uploads without one are not counted).
    uploaders: int = 0
    #: Uploads with at least one exact (cryptographic-hash) match.
    exact: int = 0
    #: Uploads whose acting matches are all perceptual.
    perceptual_only: int = 0
    by_bank: tuple[BankMatches, ...] = ()
    by_signal_type: tuple[SignalMatches, ...] = ()
    by_bank_and_signal_type: tuple[BankSignalMatches, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


@dataclass(frozen=True, slots=True)
class ActionFigures:
    uploads: int = 0
    #: Uploads per action (every action of `lightkeeper.actions.policy.ACTIONS`, in order).
    by_action: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(ACTIONS, 0))
    #: Uploads refused (the policy said block).
    rejected: int = 0

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


@dataclass(frozen=True, slots=True)
class ReviewFigures:
    #: Cases first seen in the period that asked for review.
    asked: int = 0
    #: Of those, cases with at least one human decision when the figures were made.
    decided: int = 0
    #: Of those, cases with a verdict now: confirmed, false positive or reversed.
    resolved: int = 0
    #: Decisions recorded in the period, per kind (every kind, zeros included).
    decisions: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(DECISION_KINDS, 0))

    @property
    def undecided(self) -> int:
        return self.asked - self.decided

    @property
    def review_rate(self) -> float | None:
        """Decided over asked; None when no case asked for review."""
        return _ratio(self.decided, self.asked)

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self, "undecided", "review_rate")


@dataclass(frozen=True, slots=True)
class ErrorCount:
    """Verdicts on cases: confirmed, judged false positive, reversed on appeal."""

    confirmed: int = 0
    false_positive: int = 0
    reversed: int = 0

    @property
    def errors(self) -> int:
        return self.false_positive + self.reversed

    @property
    def judged(self) -> int:
        return self.confirmed + self.errors

    @property
    def false_positive_ratio(self) -> float | None:
        """Errors over verdicts; None without verdicts."""
        return _ratio(self.errors, self.judged)

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.errors, self.judged)

    def to_dict(self) -> dict[str, Any]:
        interval = self.interval
        return {
            "confirmed": self.confirmed,
            "false_positive": self.false_positive,
            "reversed": self.reversed,
            "errors": self.errors,
            "judged": self.judged,
            "false_positive_ratio": self.false_positive_ratio,
            "interval_low": None if interval is None else interval[0],
            "interval_high": None if interval is None else interval[1],
        }


@dataclass(frozen=True, slots=True)
class AlgorithmErrors:
    signal_type: str
    counts: ErrorCount

    def to_dict(self) -> dict[str, Any]:
        return {"signal_type": self.signal_type, **self.counts.to_dict()}


@dataclass(frozen=True, slots=True)
class ListErrors:
    bank: str
    list_name: str | None
    list_version: str | None
    counts: ErrorCount

    def to_dict(self) -> dict[str, Any]:
        return {
            "bank": self.bank,
            "list_name": self.list_name,
            "list_version": self.list_version,
            **self.counts.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class ErrorFigures:
    overall: ErrorCount = ErrorCount()
    by_signal_type: tuple[AlgorithmErrors, ...] = ()
    by_list: tuple[ListErrors, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "confidence": CONFIDENCE,
            "interval_method": "wilson",
            "overall": self.overall.to_dict(),
            "by_signal_type": [e.to_dict() for e in self.by_signal_type],
            "by_list": [e.to_dict() for e in self.by_list],
        }


@dataclass(frozen=True, slots=True)
class ReportFigures:
    created: int = 0
    #: Finished (accepted by NCMEC) in the period, even if retracted since.
    filed: int = 0
    retracted: int = 0
    failed: int = 0
    #: Made in the period and not finished, retracted or failed yet.
    pending: int = 0
    #: Files of the reports filed in the period.
    files: int = 0
    #: Of those, files a person at the provider had viewed (``fileViewedByEsp`` true).
    files_viewed: int = 0

    @property
    def files_not_viewed(self) -> int:
        return self.files - self.files_viewed

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self, "files_not_viewed")


@dataclass(frozen=True, slots=True)
class DelayFigures:
    upload_to_decision: Distribution = Distribution()
    upload_to_report: Distribution = Distribution()

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


@dataclass(frozen=True, slots=True)
class AppealFigures:
    received: int = 0
    upheld: int = 0
    denied: int = 0
    #: Received in the period and still undecided when the figures were made.
    open: int = 0
    #: Receipt to decision, for appeals decided in the period.
    decision_time: Distribution = Distribution()

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


@dataclass(frozen=True, slots=True)
class TransparencyFigures:
    """Every figure for one period; `to_dict` (JSON), `csv_rows` and `to_csv` (CSV)."""

    start: datetime
    end: datetime
    generated_at: datetime
    matches: MatchFigures = MatchFigures()
    actions: ActionFigures = ActionFigures()
    review: ReviewFigures = ReviewFigures()
    errors: ErrorFigures = ErrorFigures()
    reports: ReportFigures = ReportFigures()
    delays: DelayFigures = DelayFigures()
    appeals: AppealFigures = AppealFigures()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every timestamp in ISO 8601 UTC; undefined ratios are None."""
        return {
            "period": {
                "start": self.start.isoformat(),
                "end": self.end.isoformat(),
                "end_exclusive": True,
                "generated_at": self.generated_at.isoformat(),
            },
            "matches": self.matches.to_dict(),
            "actions": self.actions.to_dict(),
            "review": self.review.to_dict(),
            "errors": self.errors.to_dict(),
            "reports": self.reports.to_dict(),
            "delays": self.delays.to_dict(),
            "appeals": self.appeals.to_dict(),
        }

    def csv_rows(self) -> Iterator[tuple[str, str, str]]:
        """One (section, key, value) per figure; see `CSV_COLUMNS` and docs/transparency.md.

        `section` is a top-level key of `to_dict`; `key` is the path below it, parts joined
        by ``/``. A row of a list (a bank, a signal type, a list) is named by its identifying
        values, each with ``%`` and ``/`` percent-encoded (a missing list name or version is
        an empty part): ``by_list/ncmec/NCMEC hashes/2026-01/false_positive_ratio``. Values
        are numbers as Python writes them, ``true``/``false``, text, or empty for None.
        """
        for section, body in self.to_dict().items():
            for key, value in _flatten(body):
                yield section, key, _csv_value(value)

    def to_csv(self) -> str:
        """The figures as CSV text with a header row (`CSV_COLUMNS`)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(self.csv_rows())
        return out.getvalue()


#: Fields that identify a row of a list, in the order they name it in a CSV key.
_IDENTITY: Final = ("bank", "signal_type", "list_name", "list_version")


def _csv_part(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("%", "%25").replace("/", "%2F")


def _flatten(body: object, prefix: str = "") -> Iterator[tuple[str, object]]:
    if isinstance(body, dict):
        for key, value in body.items():
            yield from _flatten(value, f"{prefix}{key}/")
    elif isinstance(body, list):
        for item in body:
            ident = [k for k in _IDENTITY if k in item]
            name = "/".join(_csv_part(item[k]) for k in ident)
            rest = {k: v for k, v in item.items() if k not in ident}
            yield from _flatten(rest, f"{prefix}{name}/")
    else:
        yield prefix.rstrip("/"), body


def _csv_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_utc(text: str) -> datetime:
    """An ISO 8601 date (midnight) or date and time, as an aware UTC datetime; one without
    a zone is UTC. `InvalidRequest` for anything else."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequest(
            f"{text!r} is not an ISO 8601 date or date and time (2026-01-31, 2026-01-31T12:00Z)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
