"""Computing the transparency figures of a period from the store.

Every figure is an SQL aggregate, except those that need the evidence JSON (by bank and
signal type, exact or not, errors per algorithm and list): those stream the rows in batches
through a server-side cursor, holding one case's evidence at a time. Percentiles are read
with ``ORDER BY … LIMIT 1 OFFSET k``, so no list of durations is ever held either. All of it
runs in one read transaction (``REPEATABLE READ`` on PostgreSQL, SQLite's snapshot), so the
sections agree with each other. Nothing here ever reads or outputs a hash value.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Final, TypeVar, cast

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Table,
    and_,
    case,
    exists,
    extract,
    func,
    literal,
    select,
)

from lightkeeper.actions.policy import ACTIONS
from lightkeeper.banks.models import (
    DECISION_KINDS,
    AppealRow,
    CaseMatchRow,
    CaseReviewRow,
    CaseRow,
    ReportFileRow,
    ReportRow,
    ReviewDecisionRow,
)
from lightkeeper.banks.store import BankStore
from lightkeeper.errors import InvalidRequest, UnknownSignalType
from lightkeeper.reporting.transparency.figures import (
    ActionFigures,
    AlgorithmErrors,
    AppealFigures,
    BankMatches,
    BankSignalMatches,
    DelayFigures,
    Distribution,
    ErrorCount,
    ErrorFigures,
    ListErrors,
    MatchFigures,
    ReportFigures,
    ReviewFigures,
    SignalMatches,
    TransparencyFigures,
)
from lightkeeper.signals import registry

__all__ = ["compute_figures"]

T = TypeVar("T")

#: Recorded matches read per round trip when streaming evidence.
_BATCH: Final = 1000

_CASES = cast(Table, CaseRow.__table__)
_MATCHES = cast(Table, CaseMatchRow.__table__)
_REVIEWS = cast(Table, CaseReviewRow.__table__)
_DECISIONS = cast(Table, ReviewDecisionRow.__table__)
_APPEALS = cast(Table, AppealRow.__table__)
_REPORTS = cast(Table, ReportRow.__table__)
_REPORT_FILES = cast(Table, ReportFileRow.__table__)

#: Review states that are a verdict on the case.
_VERDICT_STATES: Final = ("confirmed", "false_positive", "reversed")
#: Report states still on their way to NCMEC.
_PENDING_REPORT_STATES: Final = ("draft", "submitted", "files_uploaded")


def compute_figures(store: BankStore, *, start: datetime, end: datetime) -> TransparencyFigures:
    """Every figure for ``[start, end)`` (aware datetimes; see the module docstring for
    what each counts). An empty period gives zeros, and None for ratios and delays."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidRequest("the period's start and end must be timezone-aware (UTC)")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        raise InvalidRequest(
            f"the period is empty: it ends ({end.isoformat()}) at or before it starts "
            f"({start.isoformat()})"
        )

    def work(conn: Connection) -> TransparencyFigures:
        period = _Period(conn, start, end)
        return TransparencyFigures(
            start=start,
            end=end,
            generated_at=datetime.now(UTC),
            matches=_match_figures(period),
            actions=_action_figures(period),
            review=_review_figures(period),
            errors=_error_figures(period),
            reports=_report_figures(period),
            delays=DelayFigures(
                upload_to_decision=_upload_to_decision(period),
                upload_to_report=_upload_to_report(period),
            ),
            appeals=_appeal_figures(period),
        )

    return _snapshot(store, work)


def _snapshot(store: BankStore, work: Callable[[Connection], T]) -> T:
    """One read transaction whose every statement sees the same data: PostgreSQL's default
    (read committed) takes a new snapshot per statement; SQLite's read transaction is one."""
    with store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            return work(conn)


@dataclass(frozen=True, slots=True)
class _Period:
    conn: Connection
    start: datetime
    end: datetime

    def holds(self, column: Any) -> ColumnElement[bool]:
        return and_(column >= self.start, column < self.end)

    def seconds(self, later: Any, earlier: Any) -> ColumnElement[float]:
        """Seconds from `earlier` to `later`, in SQL (no portable way: one per database)."""
        if self.conn.dialect.name == "postgresql":
            return cast(ColumnElement[float], extract("epoch", later - earlier))
        return cast(
            ColumnElement[float], (func.julianday(later) - func.julianday(earlier)) * 86400.0
        )

    def stream(self, query: Select[Any]) -> Iterator[Any]:
        """Rows of `query` a batch at a time (a server-side cursor on PostgreSQL)."""
        result = self.conn.execute(query.execution_options(yield_per=_BATCH))
        try:
            yield from result
        finally:
            result.close()


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


# --- matches and actions ------------------------------------------------------------------


@cache
def _is_exact(signal_type: str) -> bool:
    """Whether a signal type compares exactly (cryptographic hashes), as the policy's
    ``match: exact`` selector decides it; one no longer installed counts as perceptual, as
    it does there."""
    try:
        return registry.get(signal_type).comparison == "exact"
    except UnknownSignalType:
        return False


#: What the figures need of one acting match: never its hash values.
_Hit = tuple[str, str, str | None, str | None]  # bank, signal type, list name, list version


def _evidence(text: str) -> tuple[_Hit, ...]:
    """The acting matches of a recorded match, as (bank, signal type, list name, version)."""
    return tuple(
        (
            str(item.get("bank", "")),
            str(item.get("signal_type", "")),
            item.get("list_name"),
            item.get("list_version"),
        )
        for item in orjson.loads(text)
        if isinstance(item, dict)
    )


def _match_figures(period: _Period) -> MatchFigures:
    in_period = period.holds(_MATCHES.c.at)
    uploads, contents, uploaders = period.conn.execute(
        select(
            func.count(),
            func.count(func.distinct(_MATCHES.c.case_id)),
            func.count(func.distinct(_MATCHES.c.uploader)),
        ).where(in_period)
    ).one()
    # Uploads per combination of (bank, signal type) hits: a platform sees a handful of
    # combinations, so the stream costs one parse and one count per upload.
    combinations: Counter[tuple[tuple[str, str], ...]] = Counter()
    query = select(_MATCHES.c.evidence).where(in_period).order_by(_MATCHES.c.id)
    for (text,) in period.stream(query):
        hits = [(bank, signal) for bank, signal, _, _ in _evidence(text)]
        hits.sort()
        combinations[tuple(hits)] += 1

    bank_uploads: Counter[str] = Counter()
    bank_matches: Counter[str] = Counter()
    signal_uploads: Counter[str] = Counter()
    signal_matches: Counter[str] = Counter()
    pair_uploads: Counter[tuple[str, str]] = Counter()
    pair_matches: Counter[tuple[str, str]] = Counter()
    exact = 0
    for pairs, n in combinations.items():
        for bank, signal in pairs:
            bank_matches[bank] += n
            signal_matches[signal] += n
            pair_matches[bank, signal] += n
        for bank in {bank for bank, _ in pairs}:
            bank_uploads[bank] += n
        for signal in {signal for _, signal in pairs}:
            signal_uploads[signal] += n
        for pair in set(pairs):
            pair_uploads[pair] += n
        if any(_is_exact(signal) for _, signal in pairs):
            exact += n
    return MatchFigures(
        uploads=int(uploads),
        contents=int(contents),
        uploaders=int(uploaders),
        exact=exact,
        perceptual_only=int(uploads) - exact,
        by_bank=tuple(
            BankMatches(bank, n, bank_matches[bank]) for bank, n in sorted(bank_uploads.items())
        ),
        by_signal_type=tuple(
            SignalMatches(signal, n, signal_matches[signal])
            for signal, n in sorted(signal_uploads.items())
        ),
        by_bank_and_signal_type=tuple(
            BankSignalMatches(bank, signal, n, pair_matches[bank, signal])
            for (bank, signal), n in sorted(pair_uploads.items())
        ),
    )


def _action_figures(period: _Period) -> ActionFigures:
    # Actions are stored space-separated; padding both sides makes each a whole word.
    padded = literal(" ") + _MATCHES.c.actions + literal(" ")
    row = period.conn.execute(
        select(
            func.count(),
            _count_if(_MATCHES.c.reject),
            *(_count_if(padded.like(f"% {action} %")) for action in ACTIONS),
        ).where(period.holds(_MATCHES.c.at))
    ).one()
    return ActionFigures(
        uploads=int(row[0]),
        rejected=int(row[1]),
        by_action={action: int(n) for action, n in zip(ACTIONS, row[2:], strict=True)},
    )


# --- review and errors --------------------------------------------------------------------


def _review_figures(period: _Period) -> ReviewFigures:
    any_decision = exists().where(_DECISIONS.c.case_id == _CASES.c.id)
    verdict = exists().where(
        _REVIEWS.c.case_id == _CASES.c.id, _REVIEWS.c.state.in_(_VERDICT_STATES)
    )
    asked, decided, resolved = period.conn.execute(
        select(func.count(), _count_if(any_decision), _count_if(verdict)).where(
            _CASES.c.priority.is_not(None), period.holds(_CASES.c.first_seen_at)
        )
    ).one()
    decisions = dict.fromkeys(DECISION_KINDS, 0)
    by_kind = (
        select(_DECISIONS.c.kind, func.count())
        .where(period.holds(_DECISIONS.c.at))
        .group_by(_DECISIONS.c.kind)
    )
    for kind, n in period.conn.execute(by_kind):
        decisions[str(kind)] = int(n)
    return ReviewFigures(
        asked=int(asked), decided=int(decided), resolved=int(resolved), decisions=decisions
    )


#: The verdict each verdict-giving decision kind gives.
_VERDICT_OF: Final = {
    "confirm": "confirmed",
    "approve": "confirmed",
    "false_positive": "false_positive",
    "appeal_upheld": "reversed",
}


def _last_verdicts(period: _Period) -> Select[Any]:
    """(case id, decision kind) of each case's last verdict-giving decision in the period.

    A confirmation is a verdict unless it asked for an approval: one that a later approval
    or disapproval answered, or the one a case still awaiting approval waits on.
    """
    d, later = _DECISIONS, _DECISIONS.alias("later")
    answered = exists().where(
        later.c.case_id == d.c.case_id,
        later.c.id > d.c.id,
        later.c.kind.in_(("approve", "disapprove")),
    )
    waiting = exists().where(
        _REVIEWS.c.case_id == d.c.case_id, _REVIEWS.c.state == "awaiting_approval"
    )
    events = (
        select(d.c.case_id, func.max(d.c.id).label("decision_id"))
        .where(
            period.holds(d.c.at),
            (d.c.kind.in_(("approve", "false_positive", "appeal_upheld")))
            | ((d.c.kind == "confirm") & ~answered & ~waiting),
        )
        .group_by(d.c.case_id)
        .subquery("last_verdict")
    )
    return select(events.c.case_id, d.c.kind).join_from(events, d, d.c.id == events.c.decision_id)


def _error_figures(period: _Period) -> ErrorFigures:
    verdicts = _last_verdicts(period).subquery("verdict")
    overall: Counter[str] = Counter()
    for kind, n in period.conn.execute(
        select(verdicts.c.kind, func.count()).group_by(verdicts.c.kind)
    ):
        overall[_VERDICT_OF[kind]] += int(n)

    by_signal: dict[str, Counter[str]] = {}
    by_list: dict[tuple[str, str | None, str | None], Counter[str]] = {}

    def settle(verdict: str, signals: set[str], lists: set[tuple[str, Any, Any]]) -> None:
        for signal in signals:
            by_signal.setdefault(signal, Counter())[verdict] += 1
        for key in lists:
            by_list.setdefault(key, Counter())[verdict] += 1

    # Every recorded match of each judged case, grouped by case: one case's evidence at a time.
    query = (
        select(verdicts.c.case_id, verdicts.c.kind, _MATCHES.c.evidence)
        .join_from(verdicts, _MATCHES, _MATCHES.c.case_id == verdicts.c.case_id)
        .order_by(verdicts.c.case_id, _MATCHES.c.id)
    )
    current: int | None = None
    verdict = ""
    signals: set[str] = set()
    lists: set[tuple[str, Any, Any]] = set()
    for case_id, kind, text in period.stream(query):
        if case_id != current:
            if current is not None:
                settle(verdict, signals, lists)
            current, verdict, signals, lists = case_id, _VERDICT_OF[kind], set(), set()
        for bank, signal, list_name, list_version in _evidence(text):
            signals.add(signal)
            lists.add((bank, list_name, list_version))
    if current is not None:
        settle(verdict, signals, lists)

    def counts(counter: Counter[str]) -> ErrorCount:
        return ErrorCount(
            confirmed=counter["confirmed"],
            false_positive=counter["false_positive"],
            reversed=counter["reversed"],
        )

    return ErrorFigures(
        overall=counts(overall),
        by_signal_type=tuple(
            AlgorithmErrors(signal, counts(c)) for signal, c in sorted(by_signal.items())
        ),
        by_list=tuple(
            ListErrors(bank, name, version, counts(c))
            for (bank, name, version), c in sorted(
                by_list.items(), key=lambda kv: _list_order(kv[0])
            )
        ),
    )


def _list_order(key: tuple[str, str | None, str | None]) -> tuple[str, str, str]:
    bank, name, version = key
    return bank, name or "", version or ""


# --- reports, delays, appeals -------------------------------------------------------------


def _report_figures(period: _Period) -> ReportFigures:
    r = _REPORTS.c
    row = period.conn.execute(
        select(
            _count_if(period.holds(r.created_at)),
            _count_if(period.holds(r.finished_at)),
            _count_if(and_(r.state == "retracted", period.holds(r.updated_at))),
            _count_if(and_(r.state == "failed", period.holds(r.updated_at))),
            _count_if(and_(r.state.in_(_PENDING_REPORT_STATES), period.holds(r.created_at))),
        )
    ).one()
    files, viewed = period.conn.execute(
        select(func.count(), _count_if(_REPORT_FILES.c.viewed_by_esp))
        .join_from(_REPORT_FILES, _REPORTS, _REPORTS.c.id == _REPORT_FILES.c.report_id)
        .where(period.holds(r.finished_at))
    ).one()
    created, filed, retracted, failed, pending = (int(n) for n in row)
    return ReportFigures(
        created=created,
        filed=filed,
        retracted=retracted,
        failed=failed,
        pending=pending,
        files=int(files),
        files_viewed=int(viewed),
    )


def _distribution(period: _Period, durations: Select[Any]) -> Distribution:
    """Count, nearest-rank median and 90th percentile, and maximum of a one-column query of
    seconds, each read by the database (``ORDER BY … LIMIT 1 OFFSET k``)."""
    sub = durations.subquery("durations")
    seconds = sub.c[0]
    count, longest = period.conn.execute(select(func.count(), func.max(seconds))).one()
    if not count:
        return Distribution()

    def rank(fraction: float) -> float:
        # Nearest rank: the smallest value with at least `fraction` of them at or below it.
        offset = max(math.ceil(fraction * count) - 1, 0)
        value = period.conn.execute(
            select(seconds).order_by(seconds).limit(1).offset(offset)
        ).scalar_one()
        return _seconds_value(value)

    return Distribution(
        count=int(count),
        median_s=rank(0.5),
        p90_s=rank(0.9),
        max_s=_seconds_value(longest),
    )


def _seconds_value(value: object) -> float:
    """Seconds rounded to the millisecond (SQLite's julianday arithmetic is good to ~10 µs)."""
    return round(float(cast(float, value)), 3)


def _upload_to_decision(period: _Period) -> Distribution:
    first = (
        select(_DECISIONS.c.case_id, func.min(_DECISIONS.c.at).label("first_at"))
        .group_by(_DECISIONS.c.case_id)
        .subquery("first_decision")
    )
    return _distribution(
        period,
        select(period.seconds(first.c.first_at, _CASES.c.first_seen_at))
        .join_from(first, _CASES, _CASES.c.id == first.c.case_id)
        .where(period.holds(first.c.first_at)),
    )


def _upload_to_report(period: _Period) -> Distribution:
    return _distribution(
        period,
        select(period.seconds(_REPORTS.c.finished_at, _CASES.c.first_seen_at))
        .join_from(_REPORTS, _CASES, _CASES.c.id == _REPORTS.c.case_id)
        .where(period.holds(_REPORTS.c.finished_at)),
    )


def _appeal_figures(period: _Period) -> AppealFigures:
    a = _APPEALS.c
    decided = period.holds(a.decided_at)
    received, upheld, denied, still_open = period.conn.execute(
        select(
            _count_if(period.holds(a.received_at)),
            _count_if(and_(a.status == "upheld", decided)),
            _count_if(and_(a.status == "denied", decided)),
            _count_if(and_(a.status == "open", period.holds(a.received_at))),
        )
    ).one()
    decision_time = _distribution(
        period,
        select(period.seconds(a.decided_at, a.received_at)).where(
            decided, a.status.in_(("upheld", "denied"))
        ),
    )
    return AppealFigures(
        received=int(received),
        upheld=int(upheld),
        denied=int(denied),
        open=int(still_open),
        decision_time=decision_time,
    )
