"""Transparency and error figures as a provider publishes them: every figure of a known month,
rows a microsecond outside the period left to the next one, an empty period that gives
zeros, an upheld appeal counted as an error of its algorithm and list, JSON, CSV that parses
back, and an HTML page that stands alone and escapes a bank named ``<script>``. On SQLite
and PostgreSQL.

The review and reporting code that normally writes these tables is built alongside, so the
data is written here row by row, as models.py describes the tables. No hash value here is of
any image: they are digests of short labels.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, cast

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Table, insert

from lightkeeper.banks import BankStore
from lightkeeper.banks.models import (
    AppealRow,
    CaseMatchRow,
    CaseReviewRow,
    CaseRow,
    ReportFileRow,
    ReportRow,
    ReviewDecisionRow,
    ReviewerRow,
)
from lightkeeper.banks.testing import backends, temporary_database
from lightkeeper.cli.main import main
from lightkeeper.errors import InvalidRequest
from lightkeeper.reporting.transparency import (
    CSV_COLUMNS,
    Distribution,
    ErrorCount,
    TransparencyFigures,
    compute,
    compute_figures,
    parse_utc,
    wilson_interval,
)
from lightkeeper.reporting.transparency.page import render_fragment, render_page


def jan(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


START = jan(1)
END = datetime(2026, 2, 1, tzinfo=UTC)
JUST_BEFORE = START - timedelta(microseconds=1)
MARCH = datetime(2026, 3, 2, tzinfo=UTC)
ODD_BANK = "<script>alert(1)</script>"
ODD_LIST = "<b>L</b>"


def table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


def digest(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


class World:
    """Writes the rows the actioner, the reviewers and the reporter would have written, and
    remembers every hash value it wrote (none may reach any output)."""

    def __init__(self, store: BankStore) -> None:
        self.store = store
        self.hashes: set[str] = set()
        self.reports_made = 0
        self.reviewers = {name: self._reviewer(name) for name in ("alice", "bob", "sam")}

    def _insert(self, model: type[Any], **values: Any) -> int:
        with self.store.engine.begin() as conn:
            key = conn.execute(insert(table(model)), values).inserted_primary_key
        assert key is not None
        return int(key[0])

    def _reviewer(self, name: str) -> int:
        role = "senior" if name == "sam" else "reviewer"
        return self._insert(
            ReviewerRow,
            username=name,
            display_name=name.title(),
            role=role,
            password_hash=None,
            disabled=False,
            daily_reveal_cap=None,
            created_at=START - timedelta(days=90),
            created_by="test",
        )

    def evidence(
        self, bank: str, signal_type: str, list_name: str | None, list_version: str | None
    ) -> dict[str, Any]:
        value = digest(f"entry {bank} {signal_type}")
        if signal_type == "md5":
            value = value[:32]
        self.hashes.add(value)
        return {
            "bank": bank,
            "bank_kind": "block",
            "entry_id": len(self.hashes),
            "signal_type": signal_type,
            "value": value,
            "content_value": value,
            "distance": 0,
            "threshold": 31 if signal_type == "pdq" else 0,
            "quality": 100 if signal_type == "pdq" else None,
            "variant": "original",
            "list_name": list_name,
            "list_version": list_version,
            "external_id": None,
            "classification": "A1",
        }

    def case(self, label: str, first_seen: datetime, priority: int | None) -> int:
        sha = digest(f"content {label}")
        self.hashes.add(sha)
        return self._insert(
            CaseRow,
            sha256=sha,
            status="open",
            priority=priority,
            actions="",
            match_count=0,
            first_seen_at=first_seen,
            last_seen_at=first_seen,
            updated_at=first_seen,
        )

    def upload(
        self,
        case_id: int,
        at: datetime,
        uploader: str | None,
        evidence: list[dict[str, Any]],
        actions: str,
    ) -> int:
        return self._insert(
            CaseMatchRow,
            request_id=f"req-{case_id}-{at.isoformat()}",
            case_id=case_id,
            at=at,
            uploader=uploader,
            sha256=digest(f"upload {case_id}"),
            media_type="image/jpeg",
            policy_version=None,
            actions=actions,
            priority=None,
            reject="block" in actions.split(),
            evidence=json.dumps(evidence),
            decision="{}",
            vault_object_id=None,
        )

    def decide(self, case_id: int, who: str, kind: str, at: datetime) -> None:
        self._insert(
            ReviewDecisionRow,
            case_id=case_id,
            reviewer_id=self.reviewers[who],
            at=at,
            kind=kind,
            classification="A1" if kind == "confirm" else None,
            annotations="[]",
            note="",
        )

    def state(self, case_id: int, state: str, at: datetime) -> None:
        self._insert(
            CaseReviewRow,
            case_id=case_id,
            state=state,
            classification="A1" if state in ("confirmed", "reversed") else None,
            annotations="[]",
            confirmed_by=None,
            confirmed_at=None,
            approved_by=None,
            approved_at=None,
            updated_at=at,
        )

    def appeal(
        self,
        case_id: int,
        received: datetime,
        status: str = "open",
        decided: datetime | None = None,
    ) -> None:
        self._insert(
            AppealRow,
            case_id=case_id,
            uploader="u-appeal",
            statement="this is my holiday photo",
            received_at=received,
            status=status,
            decided_by=None if decided is None else self.reviewers["sam"],
            decided_at=decided,
            reason=None if decided is None else "checked",
        )
        if decided is not None:
            self.decide(case_id, "sam", f"appeal_{status}", decided)

    def report(
        self,
        case_id: int,
        state: str,
        created: datetime,
        files: dict[int, bool],
        finished: datetime | None = None,
        updated: datetime | None = None,
    ) -> None:
        self.reports_made += 1
        report_id = self._insert(
            ReportRow,
            case_id=case_id,
            uploader=f"reported-{self.reports_made}",  # one live report per case and uploader
            state=state,
            ncmec_report_id=None if finished is None else f"ncmec-{case_id}-{created.day}",
            xml="<report/>",
            created_at=created,
            created_by="alice",
            updated_at=updated or finished or created,
            finished_at=finished,
            error=None,
        )
        for match_id, viewed in files.items():
            self._insert(
                ReportFileRow,
                report_id=report_id,
                case_match_id=match_id,
                ncmec_file_id=None,
                viewed_by_esp=viewed,
                uploaded_at=None,
                fileinfo_at=None,
            )


def build(store: BankStore) -> World:
    """January 2026, with rows on both edges of it (see the expected figures below)."""
    w = World(store)
    ncmec_pdq = w.evidence("ncmec", "pdq", "NCMEC", "v1")
    ncmec_md5 = w.evidence("ncmec", "md5", "NCMEC", "v1")
    odd_pdq = w.evidence(ODD_BANK, "pdq", ODD_LIST, "v2")
    industry_sha = w.evidence("industry", "sha256", None, None)
    industry_md5 = w.evidence("industry", "md5", None, None)
    industry_pdq = w.evidence("industry", "pdq", None, None)

    # c0: a microsecond before the period; judged a false positive at the very end of it
    # (so in February), and an appeal received a microsecond before January.
    c0 = w.case("c0", JUST_BEFORE, 1)
    m0 = w.upload(c0, JUST_BEFORE, "u9", [ncmec_pdq], "block review")
    w.decide(c0, "alice", "false_positive", END)
    w.state(c0, "false_positive", END)
    w.appeal(c0, JUST_BEFORE)
    w.report(c0, "finished", datetime(2025, 12, 30, tzinfo=UTC), {m0: False}, JUST_BEFORE)

    # c1: two uploads matching two signal types of one list; confirmed by two people;
    # reported (one file seen by a person, one not); an appeal denied.
    c1 = w.case("c1", jan(5, 10), 1)
    m1 = w.upload(c1, jan(5, 10), "u1", [ncmec_pdq, ncmec_md5], "block quarantine review")
    m2 = w.upload(c1, jan(6), "u2", [ncmec_pdq, ncmec_md5], "block quarantine review")
    w.decide(c1, "alice", "confirm", jan(5, 12))
    w.decide(c1, "bob", "approve", jan(5, 14))
    w.state(c1, "confirmed", jan(5, 14))
    w.report(c1, "finished", jan(6), {m1: True, m2: False}, jan(7, 10))
    w.appeal(c1, jan(8), "denied", jan(9, 12))
    w.report(c1, "submitted", jan(30), {})
    w.report(c1, "finished", jan(31), {m1: True}, END)

    # c2: a bank and list with hostile names; judged a false positive.
    c2 = w.case("c2", jan(10), 2)
    w.upload(c2, jan(10), "u1", [odd_pdq], "review notify")
    w.decide(c2, "alice", "false_positive", jan(10, 6))
    w.state(c2, "false_positive", jan(10, 6))
    w.appeal(c2, datetime(2025, 12, 20, tzinfo=UTC), "denied", END)

    # c3: confirmed and reported, then reversed on appeal (an error of pdq and NCMEC v1).
    c3 = w.case("c3", jan(12), 1)
    m4 = w.upload(c3, jan(12), None, [ncmec_pdq], "block review")
    w.decide(c3, "alice", "confirm", jan(12, 1))
    w.decide(c3, "bob", "approve", jan(12, 2))
    w.report(c3, "retracted", jan(12, 5), {m4: True}, jan(13), updated=jan(15))
    w.appeal(c3, jan(13), "upheld", jan(14))
    w.state(c3, "reversed", jan(14))

    # c4: an exact match nobody has looked at yet, with an open appeal.
    c4 = w.case("c4", jan(20), 3)
    w.upload(c4, jan(20), "u3", [industry_sha], "block")
    w.appeal(c4, jan(21))

    # c5: no review asked for.
    c5 = w.case("c5", jan(25), None)
    w.upload(c5, jan(25), "u3", [industry_md5], "notify")

    # c6: confirmed by one person, waiting for the second: no verdict yet.
    c6 = w.case("c6", jan(28), 1)
    w.upload(c6, jan(28), "u4", [ncmec_pdq], "block review")
    w.decide(c6, "alice", "confirm", jan(28, 0, 30))
    w.state(c6, "awaiting_approval", jan(28, 0, 30))

    # c7: escalated to a senior reviewer.
    c7 = w.case("c7", jan(29), 2)
    w.upload(c7, jan(29), "u4", [industry_pdq], "review")
    w.decide(c7, "alice", "escalate", jan(29, 4))
    w.state(c7, "escalated", jan(29, 4))

    # c8: first seen exactly at the end of January, so in February.
    c8 = w.case("c8", END, 1)
    w.upload(c8, END, "u5", [industry_pdq], "review")

    # March: c9 confirmed by one person (the two-person rule off); c10 confirmed, the
    # confirmation disapproved by the second person, then judged a false positive.
    c9 = w.case("c9", MARCH, 1)
    w.upload(c9, MARCH, "u6", [industry_pdq], "block review")
    w.decide(c9, "alice", "confirm", MARCH + timedelta(hours=1))
    w.state(c9, "confirmed", MARCH + timedelta(hours=1))
    c10 = w.case("c10", MARCH, 1)
    w.upload(c10, MARCH, "u6", [industry_md5], "block review")
    w.decide(c10, "alice", "confirm", MARCH + timedelta(hours=1))
    w.decide(c10, "bob", "disapprove", MARCH + timedelta(hours=2))
    w.decide(c10, "sam", "false_positive", MARCH + timedelta(hours=3))
    w.state(c10, "false_positive", MARCH + timedelta(hours=3))
    return w


def errors(confirmed: int, false_positive: int, reversed_: int) -> dict[str, Any]:
    wrong = false_positive + reversed_
    judged = confirmed + wrong
    interval = wilson_interval(wrong, judged)
    return {
        "confirmed": confirmed,
        "false_positive": false_positive,
        "reversed": reversed_,
        "errors": wrong,
        "judged": judged,
        "false_positive_ratio": wrong / judged,
        "interval_low": None if interval is None else interval[0],
        "interval_high": None if interval is None else interval[1],
    }


def distribution(*seconds: float) -> dict[str, Any]:
    """Nearest-rank figures of `seconds` (given in order), as the JSON has them."""
    n = len(seconds)
    return {
        "count": n,
        "median_s": seconds[(n + 1) // 2 - 1],
        "p90_s": seconds[-(-9 * n // 10) - 1],
        "max_s": seconds[-1],
    }


HOUR = 3600.0
JANUARY: dict[str, Any] = {
    "matches": {
        "uploads": 8,
        "contents": 7,
        "uploaders": 4,
        "exact": 4,
        "perceptual_only": 4,
        "by_bank": [
            {"bank": ODD_BANK, "uploads": 1, "matches": 1},
            {"bank": "industry", "uploads": 3, "matches": 3},
            {"bank": "ncmec", "uploads": 4, "matches": 6},
        ],
        "by_signal_type": [
            {"signal_type": "md5", "uploads": 3, "matches": 3},
            {"signal_type": "pdq", "uploads": 6, "matches": 6},
            {"signal_type": "sha256", "uploads": 1, "matches": 1},
        ],
        "by_bank_and_signal_type": [
            {"bank": ODD_BANK, "signal_type": "pdq", "uploads": 1, "matches": 1},
            {"bank": "industry", "signal_type": "md5", "uploads": 1, "matches": 1},
            {"bank": "industry", "signal_type": "pdq", "uploads": 1, "matches": 1},
            {"bank": "industry", "signal_type": "sha256", "uploads": 1, "matches": 1},
            {"bank": "ncmec", "signal_type": "md5", "uploads": 2, "matches": 2},
            {"bank": "ncmec", "signal_type": "pdq", "uploads": 4, "matches": 4},
        ],
    },
    "actions": {
        "uploads": 8,
        "by_action": {"block": 5, "quarantine": 2, "review": 6, "notify": 2},
        "rejected": 5,
    },
    "review": {
        "asked": 6,
        "decided": 5,
        "undecided": 1,
        "resolved": 3,
        "review_rate": 5 / 6,
        "decisions": {
            "confirm": 3,
            "false_positive": 1,
            "escalate": 1,
            "approve": 2,
            "disapprove": 0,
            "appeal_upheld": 1,
            "appeal_denied": 1,
        },
    },
    "errors": {
        "confidence": 0.95,
        "interval_method": "wilson",
        "overall": errors(1, 1, 1),
        "by_signal_type": [
            {"signal_type": "md5", **errors(1, 0, 0)},
            {"signal_type": "pdq", **errors(1, 1, 1)},
        ],
        "by_list": [
            {"bank": ODD_BANK, "list_name": ODD_LIST, "list_version": "v2", **errors(0, 1, 0)},
            {"bank": "ncmec", "list_name": "NCMEC", "list_version": "v1", **errors(1, 0, 1)},
        ],
    },
    "reports": {
        "created": 4,
        "filed": 2,
        "retracted": 1,
        "failed": 0,
        "pending": 1,
        "files": 3,
        "files_viewed": 2,
        "files_not_viewed": 1,
    },
    "delays": {
        "upload_to_decision": distribution(0.5 * HOUR, HOUR, 2 * HOUR, 4 * HOUR, 6 * HOUR),
        "upload_to_report": distribution(24 * HOUR, 48 * HOUR),
    },
    "appeals": {
        "received": 3,
        "upheld": 1,
        "denied": 1,
        "open": 1,
        "decision_time": distribution(24 * HOUR, 36 * HOUR),
    },
}


@pytest.fixture(scope="module", params=backends())
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """One populated store per backend, shared by the tests that only read it."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("transparency") / "lightkeeper.db"
        with BankStore.open(f"sqlite:///{path}") as store:
            yield build(store)
        return
    with temporary_database("postgresql", migrated=True) as url, BankStore.open(url) as store:
        yield build(store)


@pytest.fixture(scope="module")
def january(world: World) -> TransparencyFigures:
    return compute_figures(world.store, start=START, end=END)


@pytest.fixture(scope="module")
def page(january: TransparencyFigures) -> str:
    """January's page, drawn once per backend (charts take a fraction of a second each)."""
    return render_page(january)


def url_of(store: BankStore) -> str:
    return store.engine.url.render_as_string(hide_password=False)


# ---------------------------------------------------------------------- the figures


def test_every_figure_of_a_month(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Streamed a couple of rows at a time, so that cases straddle the batches.
    monkeypatch.setattr(compute, "_BATCH", 2)
    before = datetime.now(UTC)
    figures = compute_figures(world.store, start=START, end=END)
    out = figures.to_dict()
    period = out.pop("period")
    assert period["start"] == "2026-01-01T00:00:00+00:00"
    assert period["end"] == "2026-02-01T00:00:00+00:00"
    assert period["end_exclusive"] is True
    assert before <= datetime.fromisoformat(period["generated_at"]) <= datetime.now(UTC)
    assert out == JANUARY


def test_an_upheld_appeal_is_an_error_of_its_algorithm_and_list(
    january: TransparencyFigures,
) -> None:
    ncmec = next(row for row in january.errors.by_list if row.bank == "ncmec")
    assert (ncmec.counts.confirmed, ncmec.counts.reversed, ncmec.counts.errors) == (1, 1, 1)
    assert ncmec.counts.false_positive_ratio == 0.5
    assert ncmec.counts.interval == wilson_interval(1, 2)
    pdq = next(row for row in january.errors.by_signal_type if row.signal_type == "pdq")
    assert pdq.counts.reversed == 1


def test_rows_at_the_edges_belong_to_one_period_only(world: World) -> None:
    february = compute_figures(world.store, start=END, end=datetime(2026, 3, 1, tzinfo=UTC))
    assert february.matches.uploads == 1
    assert [(b.bank, b.uploads) for b in february.matches.by_bank] == [("industry", 1)]
    assert (february.review.asked, february.review.decided) == (1, 0)
    assert february.review.decisions["false_positive"] == 1
    assert february.review.decisions["appeal_denied"] == 1
    assert february.errors.overall.false_positive == 1
    assert [(e.list_name, e.counts.false_positive) for e in february.errors.by_list] == [
        ("NCMEC", 1)
    ]
    assert (february.reports.created, february.reports.filed, february.reports.files) == (0, 1, 1)
    assert february.delays.upload_to_decision.count == 1
    assert february.delays.upload_to_decision.max_s == pytest.approx(31 * 86400, abs=0.01)
    assert february.delays.upload_to_report.max_s == (END - jan(5, 10)).total_seconds()
    assert (february.appeals.received, february.appeals.denied) == (0, 1)
    assert february.appeals.decision_time.median_s == 43 * 86400

    december = compute_figures(world.store, start=datetime(2025, 12, 1, tzinfo=UTC), end=START)
    assert (december.matches.uploads, december.matches.exact) == (1, 0)
    # Decided and resolved say what is known now, whenever the decision came.
    assert (december.review.asked, december.review.decided, december.review.resolved) == (1, 1, 1)
    assert sum(december.review.decisions.values()) == 0
    assert december.errors.overall.judged == 0
    assert (december.reports.created, december.reports.filed) == (1, 1)
    assert (december.reports.files_viewed, december.reports.files_not_viewed) == (0, 1)
    assert (december.appeals.received, december.appeals.open) == (2, 1)

    # Consecutive periods add up to the period that spans them.
    span = compute_figures(
        world.store, start=datetime(2025, 12, 1, tzinfo=UTC), end=datetime(2026, 3, 1, tzinfo=UTC)
    )
    january = compute_figures(world.store, start=START, end=END)
    assert span.matches.uploads == sum(f.matches.uploads for f in (december, january, february))
    assert span.reports.filed == 4


def test_a_confirmation_is_a_verdict_unless_it_waits_for_approval(world: World) -> None:
    march = compute_figures(world.store, start=MARCH, end=datetime(2026, 4, 1, tzinfo=UTC))
    assert march.review.decisions["confirm"] == 2
    assert march.review.decisions["disapprove"] == 1
    # c9's lone confirmation is its verdict; c10's was disapproved, then judged wrong.
    assert march.errors.overall == ErrorCount(confirmed=1, false_positive=1)
    assert [(e.signal_type, e.counts) for e in march.errors.by_signal_type] == [
        ("md5", ErrorCount(false_positive=1)),
        ("pdq", ErrorCount(confirmed=1)),
    ]
    assert [(e.bank, e.list_name, e.list_version, e.counts) for e in march.errors.by_list] == [
        ("industry", None, None, ErrorCount(confirmed=1, false_positive=1))
    ]
    assert march.delays.upload_to_decision == Distribution(2, 3600.0, 3600.0, 3600.0)


def test_an_empty_period_gives_zeros(world: World) -> None:
    start, end = datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC)
    figures = compute_figures(world.store, start=start, end=end)
    out = figures.to_dict()
    out.pop("period")
    empty = TransparencyFigures(start=start, end=end, generated_at=start).to_dict()
    empty.pop("period")
    assert out == empty
    assert out["matches"]["uploads"] == 0 and out["matches"]["by_bank"] == []
    assert out["actions"]["by_action"] == {"block": 0, "quarantine": 0, "review": 0, "notify": 0}
    assert out["review"]["review_rate"] is None
    assert out["errors"]["overall"]["judged"] == 0
    assert out["errors"]["overall"]["false_positive_ratio"] is None
    assert out["delays"]["upload_to_decision"] == {
        "count": 0,
        "median_s": None,
        "p90_s": None,
        "max_s": None,
    }
    assert "<svg" not in render_page(figures)
    assert "none in this period" in render_page(figures)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (START, START, "at or before it starts"),
        (END, START, "at or before it starts"),
        (START.replace(tzinfo=None), END, "timezone-aware"),
    ],
)
def test_a_period_must_be_aware_and_not_empty(start: datetime, end: datetime, message: str) -> None:
    with BankStore.open("sqlite://") as store, pytest.raises(InvalidRequest, match=message):
        compute_figures(store, start=start, end=end)


# ---------------------------------------------------------------------- intervals and dates


@pytest.mark.parametrize(
    ("errors_", "total", "low", "high"),
    # Published values (Wilson 1927; Newcombe 1998, table I).
    [(0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (1, 29, 0.0061, 0.1718), (0, 0, None, None)],
)
def test_wilson_interval_matches_published_values(
    errors_: int, total: int, low: float | None, high: float | None
) -> None:
    interval = wilson_interval(errors_, total)
    if low is None or high is None:
        assert interval is None
        return
    assert interval is not None
    assert interval == pytest.approx((low, high), abs=1e-4)


@given(st.integers(1, 10_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_interval_holds_the_ratio_inside_zero_to_one(case: tuple[int, int]) -> None:
    errors_, total = case
    interval = wilson_interval(errors_, total)
    assert interval is not None
    low, high = interval
    assert 0.0 <= low <= errors_ / total <= high <= 1.0
    assert high - low > 0


def test_wilson_interval_refuses_more_errors_than_cases() -> None:
    with pytest.raises(ValueError, match="between 0 and total"):
        wilson_interval(3, 2)


OFFSETS = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))


@given(st.datetimes(timezones=OFFSETS))
def test_parse_utc_reads_back_any_iso_time(moment: datetime) -> None:
    parsed = parse_utc(moment.isoformat())
    assert parsed == moment and parsed.tzinfo == UTC


@given(st.datetimes())
def test_parse_utc_reads_a_time_without_zone_as_utc(moment: datetime) -> None:
    assert parse_utc(moment.isoformat()) == moment.replace(tzinfo=UTC)


def test_parse_utc_takes_dates_and_reads_no_zone_as_utc() -> None:
    assert parse_utc("2026-01-01") == START
    assert parse_utc("2026-01-31T12:30") == jan(31, 12, 30)
    assert parse_utc("2026-01-31T12:30Z") == jan(31, 12, 30)
    assert parse_utc("2026-01-31T13:30+01:00") == jan(31, 12, 30)
    for bad in ("", "January", "2026-13-01", "2026-01-01T25:00"):
        with pytest.raises(InvalidRequest, match="ISO 8601"):
            parse_utc(bad)


# ---------------------------------------------------------------------- outputs


def test_no_output_holds_a_hash_value(
    world: World, january: TransparencyFigures, page: str
) -> None:
    outputs = {"json": json.dumps(january.to_dict()), "csv": january.to_csv(), "html": page}
    for name, text in outputs.items():
        lowered = text.lower()
        for value in world.hashes:
            assert value not in lowered, f"{name} holds a hash value"


def test_csv_has_one_row_per_figure_and_parses_back(january: TransparencyFigures) -> None:
    rows = list(csv.reader(io.StringIO(january.to_csv())))
    assert tuple(rows[0]) == CSV_COLUMNS
    values = {(section, key): value for section, key, value in rows[1:]}
    assert len(values) == len(rows) - 1, "each (section, key) names one figure"
    assert values["period", "start"] == "2026-01-01T00:00:00+00:00"
    assert values["period", "end_exclusive"] == "true"
    assert values["matches", "uploads"] == "8"
    assert values["matches", "by_bank/ncmec/matches"] == "6"
    assert values["actions", "by_action/review"] == "6"
    assert float(values["review", "review_rate"]) == pytest.approx(5 / 6)
    assert values["delays", "upload_to_report/p90_s"] == "172800.0"
    # A name holding "/" or "%" stays one part of the key: split, then percent-decode.
    odd = [key for section, key in values if section == "errors" and key.startswith("by_list/<")]
    assert len(odd) == 8
    for key in odd:
        _, bank, list_name, version, _figure = key.split("/")
        assert unquote(bank) == ODD_BANK and unquote(list_name) == ODD_LIST and version == "v2"
    assert values["errors", f"by_list/{quote(ODD_BANK)}/{quote(ODD_LIST)}/v2/false_positive"] == (
        "1"
    )
    # Every number of the JSON is in the CSV.
    assert len(values) == leaves(january.to_dict())
    for row in january.to_dict()["errors"]["by_list"]:
        prefix = "by_list/" + "/".join(
            quote(row[k] or "") for k in ("bank", "list_name", "list_version")
        )
        assert values["errors", f"{prefix}/judged"] == str(row["judged"])
        assert float(values["errors", f"{prefix}/interval_high"]) == row["interval_high"]


def quote(part: str) -> str:
    return part.replace("%", "%25").replace("/", "%2F")


def unquote(part: str) -> str:
    return part.replace("%2F", "/").replace("%25", "%")


def leaves(body: Any) -> int:
    if isinstance(body, dict):
        return sum(leaves(v) for k, v in body.items() if k not in IDENTITY)
    if isinstance(body, list):
        return sum(leaves(item) for item in body)
    return 1


IDENTITY = ("bank", "signal_type", "list_name", "list_version")


def test_empty_ratios_are_empty_csv_cells(world: World) -> None:
    figures = compute_figures(
        world.store, start=datetime(2025, 6, 1, tzinfo=UTC), end=datetime(2025, 7, 1, tzinfo=UTC)
    )
    rows = {(s, k): v for s, k, v in list(csv.reader(io.StringIO(figures.to_csv())))[1:]}
    assert rows["review", "review_rate"] == ""
    assert rows["matches", "uploads"] == "0"


class Tags(HTMLParser):
    """Every start tag of a document, with its attributes, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(document: str) -> Tags:
    parser = Tags()
    parser.feed(document)
    parser.close()
    return parser


def test_the_page_stands_alone_and_escapes_names(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    tags = parse(page)
    names = [tag for tag, _ in tags.tags]
    # Nothing to run, nothing to fetch.
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(names)
    for _, attrs in tags.tags:
        assert not {"src", "href", "xlink:href"} & {
            k for k, v in attrs.items() if v and not v.startswith("#")
        }
        assert not any(k.startswith("on") for k in attrs)
    assert "<script" not in page.lower() and ODD_LIST not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # The bank's name reads as written, in the table and in the chart.
    text = " ".join(tags.text)
    assert text.count(ODD_BANK) >= 3
    # Five charts, each labelled, each with a table under it.
    svgs = [attrs for tag, attrs in tags.tags if tag == "svg"]
    assert len(svgs) == 5
    assert all(attrs.get("role") == "img" and attrs.get("aria-label") for attrs in svgs)
    assert names.count("table") == 12


def test_the_page_shows_the_figures(page: str) -> None:
    text = " ".join(" ".join(parse(page).text).split())
    assert "8 acted-on uploads of 7 distinct contents, from 4 distinct uploader references" in text
    assert "Human-review rate 83.3 %" in text
    low, high = wilson_interval(1, 2) or (0.0, 0.0)
    assert f"50.0 % {100 * low:.1f} – {100 * high:.1f} %" in text  # ncmec's ratio and interval
    assert "Upload to first human decision 5 2 h 0 min 6 h 0 min 6 h 0 min" in text
    assert "Median time to a decision 1 d 0 h" in text
    assert "Period from 2026-01-01 to 2026-02-01" in text


def test_the_fragment_embeds_in_another_page(january: TransparencyFigures, page: str) -> None:
    fragment = render_fragment(january)
    assert fragment.lstrip().startswith('<section class="lk-transparency">')
    names = {tag for tag, _ in parse(fragment).tags}
    assert not {"html", "head", "body", "style", "title"} & names
    # The same figures draw the same bytes: the page is the fragment in a document.
    assert fragment in page
    ids = [attrs["id"] for _, attrs in parse(fragment).tags if attrs.get("id")]
    assert len(ids) == len(set(ids)), "the charts' ids are unique in the page"


# ---------------------------------------------------------------------- the command


def test_command_writes_each_format(world: World, tmp_path: Path) -> None:
    runner = CliRunner()
    base = [
        "transparency",
        "--from",
        "2026-01-01",
        "--to",
        "2026-02-01",
        "--db",
        url_of(world.store),
    ]
    result = runner.invoke(main, base)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    out.pop("period")
    assert out == JANUARY

    result = runner.invoke(main, [*base, "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert tuple(rows[0]) == CSV_COLUMNS and ["matches", "uploads", "8"] in rows

    page = tmp_path / "january.html"
    result = runner.invoke(main, [*base, "--format", "html", "--output", str(page)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")

    # A time of day and a zone narrow the period.
    result = runner.invoke(
        main,
        [*base[:1], "--from", "2026-01-10T00:00Z", "--to", "2026-01-10T01:00+00:00", *base[5:]],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["matches"]["uploads"] == 1


def test_command_says_when_it_cannot_write(world: World, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "january.json"
    period = ["--from", "2026-01-01", "--to", "2026-02-01"]
    result = CliRunner().invoke(
        main, ["transparency", *period, "-o", str(missing), "--db", url_of(world.store)]
    )
    assert result.exit_code == 1
    assert f"cannot write {missing}: No such file or directory" in result.stderr


@pytest.mark.parametrize(
    ("dates", "message"),
    [
        (["--from", "2026-02-01", "--to", "2026-01-01"], "--to must be after --from"),
        (["--from", "yesterday", "--to", "2026-01-01"], "not an ISO 8601 date"),
        (["--to", "2026-01-01"], "Missing option '--from'"),
    ],
)
def test_command_refuses_a_bad_period(dates: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["transparency", *dates, "--db", "sqlite://"])
    assert result.exit_code == 2
    assert message in result.stderr
