"""Appeals: a user contests what was done to their upload, and a senior reviewer answers.

The platform files an appeal for one of its users (`file_appeal`; over HTTP,
``POST /v1/cases/{id}/appeals`` with a key of scope ``appeal``) with the user's statement
and their uploader reference, which must be one the case recorded. A case already closed as
a false positive or reversed has nothing left to appeal, and a false positive decided while
an appeal is open answers it: upheld, counted once, as the false positive.

A case has at most one open appeal, since its decision covers every upload of the case.
Filing the same appeal again (same uploader and statement) while it is open returns it
unchanged, so a platform may retry a request whose answer it lost; any other appeal of the
case waits until the open one is decided (`Conflict`). So a reversal is never decided twice.

A senior reviewer or an admin decides it (`decide_appeal`), with a reason, and never one who
confirmed or approved the decision the appeal contests: an appeal is a second look, by a
second person (so a platform that takes appeals needs two seniors or admins):

- **upheld**: the case is ``reversed`` (whatever its review state was, confirmed included),
  ``cases.status`` becomes ``closed``, the entries that matched are suppressed for this
  platform and negative feedback recorded with reason ``appeal_upheld`` — exactly as for a
  false positive (`lightkeeper.review.feedback`) — and a ``decision`` webhook event tells
  the platform to reinstate: ``{"kind": "appeal_upheld", "reinstate": true, "case_id",
  "sha256", "uploaders": […], "appeal_id", …}``. A report already filed for the case is not
  withdrawn by this: retract it with the reporting commands. The reversal is counted in the
  error figures (confirmed against reversed, per algorithm and list).
- **denied**: the case stays as it was; the webhook event says ``appeal_denied`` and
  ``"reinstate": false``.

Filing and deciding are audit events (``review.appeal``, subject ``case/<id>``); a decision is
also a ``review_decisions`` row (``appeal_upheld`` / ``appeal_denied``), all in one
transaction with the webhook event. The case row is locked first, as for any decision, so an
appeal decided while a reviewer decides the same case is serialised with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Row, Table, insert, or_, select, update
from sqlalchemy.orm import aliased

from lightkeeper.actions.cases import CASE_MATCHES, CASES, validate_uploader
from lightkeeper.banks import _engine
from lightkeeper.banks.audit import acting_as, record
from lightkeeper.banks.models import APPEAL_STATUSES, ReviewerRow
from lightkeeper.banks.store import BankStore
from lightkeeper.errors import Conflict, Forbidden, InvalidRequest, NotFound
from lightkeeper.review.accounts import Reviewer, active_in
from lightkeeper.review.decisions import (
    APPEALS,
    CASE_REVIEWS,
    announce_in,
    insert_decision,
    lock_case_in,
    write_review_in,
)
from lightkeeper.review.feedback import check_allow_bank, suppress_in
from lightkeeper.review.settings import DEFAULT_SETTINGS, ReviewSettings

__all__ = [
    "APPEALS",
    "MAX_REASON_CHARS",
    "MAX_STATEMENT_CHARS",
    "Appeal",
    "appeals_of",
    "decide_appeal",
    "file_appeal",
    "get_appeal",
    "list_appeals",
    "own_decisions",
]

REVIEWERS = cast(Table, ReviewerRow.__table__)

MAX_STATEMENT_CHARS = 10_000
MAX_REASON_CHARS = 5000
MAX_LIST = 1000
#: Review states that leave nothing to appeal: the content was already found not abusive.
_CLEARED = ("false_positive", "reversed")


@dataclass(frozen=True, slots=True)
class Appeal:
    """A user's appeal against a case, and the answer once given."""

    id: int
    case_id: int
    uploader: str | None
    statement: str
    received_at: datetime
    #: "open", "upheld" or "denied".
    status: str
    #: The senior reviewer who decided it (user name).
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "case_id": self.case_id,
            "uploader": self.uploader,
            "statement": self.statement,
            "received_at": self.received_at.isoformat(),
            "status": self.status,
            "decided_by": self.decided_by,
            "decided_at": None if self.decided_at is None else self.decided_at.isoformat(),
            "reason": self.reason,
        }


def _text(value: str, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit or "\x00" in value:
        raise InvalidRequest(f"{what} is 1 to {limit} characters, not blank, without NUL")
    return value.strip()


def _select() -> Any:
    decider = aliased(REVIEWERS)
    return select(APPEALS, decider.c.username.label("decider")).outerjoin(
        decider, decider.c.id == APPEALS.c.decided_by
    )


def _to_appeal(row: Row[Any]) -> Appeal:
    return Appeal(
        id=int(row.id),
        case_id=int(row.case_id),
        uploader=row.uploader,
        statement=row.statement,
        received_at=row.received_at,
        status=row.status,
        decided_by=row.decider,
        decided_at=row.decided_at,
        reason=row.reason,
    )


def _now() -> datetime:
    return datetime.now(UTC)


def file_appeal(
    store: BankStore, case_id: int, *, statement: str, uploader: str | None = None
) -> Appeal:
    """Record a user's appeal against a case, or return the same appeal filed before and still
    open; `NotFound` for no such case, `InvalidRequest` for an uploader the case never recorded,
    `Conflict` for a case already cleared or with another appeal open."""
    statement = _text(statement, "an appeal's statement", MAX_STATEMENT_CHARS)
    if uploader is not None:
        validate_uploader(uploader)

    def work(conn: Connection) -> int:
        now = _now()
        lock_case_in(conn, case_id)
        if uploader is not None:
            recorded = conn.execute(
                select(CASE_MATCHES.c.id)
                .where(CASE_MATCHES.c.case_id == case_id, CASE_MATCHES.c.uploader == uploader)
                .limit(1)
            ).first()
            if recorded is None:
                raise InvalidRequest(f"case {case_id} has no upload by uploader {uploader!r}")
        state = conn.execute(
            select(CASE_REVIEWS.c.state).where(CASE_REVIEWS.c.case_id == case_id)
        ).scalar()
        if state in _CLEARED:
            raise Conflict(
                f"case {case_id} was already closed as {str(state).replace('_', ' ')}: "
                "nothing to appeal"
            )
        pending = conn.execute(
            select(APPEALS.c.id, APPEALS.c.uploader, APPEALS.c.statement).where(
                APPEALS.c.case_id == case_id, APPEALS.c.status == "open"
            )
        ).first()
        if pending is not None:
            if (pending.uploader, pending.statement) == (uploader, statement):
                return int(pending.id)  # a retry: the appeal already filed
            raise Conflict(
                f"case {case_id} already has an open appeal ({pending.id}); its decision "
                "covers every upload of the case"
            )
        appeal_id = int(
            conn.execute(
                insert(APPEALS).returning(APPEALS.c.id),
                {
                    "case_id": case_id,
                    "uploader": uploader,
                    "statement": statement,
                    "received_at": now,
                    "status": "open",
                    "decided_by": None,
                    "decided_at": None,
                    "reason": None,
                },
            ).scalar_one()
        )
        record(
            conn,
            "review.appeal",
            f"case/{case_id}",
            {"appeal_id": appeal_id, "event": "filed", "uploader": uploader},
            at=now,
        )
        return appeal_id

    return get_appeal(store, _engine.write(store.engine, work))


def decide_appeal(
    store: BankStore,
    appeal_id: int,
    reviewer: Reviewer,
    *,
    uphold: bool,
    reason: str,
    settings: ReviewSettings = DEFAULT_SETTINGS,
) -> Appeal:
    """Uphold or deny an open appeal (see the module docstring). `Forbidden` unless the
    reviewer is a senior or an admin, `Conflict` for an appeal already decided."""
    reason = _text(reason, "the reason for an appeal's decision", MAX_REASON_CHARS)
    if not reviewer.is_senior:
        raise Forbidden("only a senior reviewer or an admin may decide an appeal")
    if uphold:
        check_allow_bank(store, settings.false_positive_bank)
    kind = "appeal_upheld" if uphold else "appeal_denied"

    def work(conn: Connection) -> None:
        now = _now()
        found = conn.execute(select(APPEALS).where(APPEALS.c.id == appeal_id)).first()
        if found is None:
            raise NotFound(f"no appeal {appeal_id}")
        case = lock_case_in(conn, int(found.case_id))
        appeal = conn.execute(
            select(APPEALS).where(APPEALS.c.id == appeal_id).with_for_update()
        ).one()
        if appeal.status != "open":
            raise Conflict(f"appeal {appeal_id} was already {appeal.status}")
        person = active_in(conn, reviewer)
        if not person.is_senior:
            raise Forbidden("only a senior reviewer or an admin may decide an appeal")
        review = conn.execute(
            select(CASE_REVIEWS).where(CASE_REVIEWS.c.case_id == case.id).with_for_update()
        ).first()
        state = None if review is None else str(review.state)
        if review is not None and person.id in (review.confirmed_by, review.approved_by):
            raise Forbidden(
                f"you confirmed or approved the decision on case {case.id} that this appeal "
                "contests: another senior reviewer or admin must decide it"
            )
        if uphold and state in _CLEARED:
            # Cleared meanwhile (a false positive answers the open appeal itself; this is a
            # store from before it did): the user is right, and nothing is left to reverse.
            raise Conflict(
                f"case {case.id} is already closed as {state.replace('_', ' ')}: what was "
                "done to the upload is already reversed, and upholding would count the error "
                "twice"
            )
        new_state = state
        if uphold:
            new_state = "reversed"
            write_review_in(conn, int(case.id), review, _reversal_values(review, now))
            conn.execute(
                update(CASES).where(CASES.c.id == case.id).values(status="closed", updated_at=now)
            )
        conn.execute(
            update(APPEALS)
            .where(APPEALS.c.id == appeal_id)
            .values(
                status="upheld" if uphold else "denied",
                decided_by=person.id,
                decided_at=now,
                reason=reason,
            )
        )
        decision_id = insert_decision(
            conn, int(case.id), person, kind, note=f"appeal {appeal_id}: {reason}", at=now
        )
        with acting_as(person.actor):
            if uphold:
                suppress_in(
                    conn,
                    int(case.id),
                    reason="appeal_upheld",
                    allow_bank=settings.false_positive_bank,
                    actor=person.actor,
                    now=now,
                )
            event = {
                "kind": kind,
                "state": new_state,
                "classification": None if review is None else review.classification,
                "reinstate": uphold,
                "appeal_id": appeal_id,
                "appeal_uploader": appeal.uploader,
            }
            announce_in(conn, case, decision_id, event, now)
            record(
                conn,
                "review.appeal",
                f"case/{case.id}",
                {
                    "appeal_id": appeal_id,
                    "event": "upheld" if uphold else "denied",
                    "decision_id": decision_id,
                    "from": state,
                    "to": new_state,
                },
                at=now,
            )

    _engine.write(store.engine, work)
    return get_appeal(store, appeal_id)


def _reversal_values(review: Row[Any] | None, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {"state": "reversed", "updated_at": now}
    if review is None:
        values["annotations"] = "[]"
    return values


def list_appeals(store: BankStore, *, status: str | None = None, limit: int = 100) -> list[Appeal]:
    """Appeals, oldest first (optionally of one status: "open", "upheld", "denied")."""
    if status is not None and status not in APPEAL_STATUSES:
        raise InvalidRequest(
            f"unknown appeal status {status!r}; known: {', '.join(APPEAL_STATUSES)}"
        )
    if not 1 <= limit <= MAX_LIST:
        raise InvalidRequest(f"a limit is from 1 to {MAX_LIST}")
    query = _select().order_by(APPEALS.c.received_at, APPEALS.c.id).limit(limit)
    if status is not None:
        query = query.where(APPEALS.c.status == status)
    rows = _engine.read(store.engine, lambda conn: conn.execute(query).all())
    return [_to_appeal(row) for row in rows]


def own_decisions(store: BankStore, reviewer: Reviewer, case_ids: Iterable[int]) -> set[int]:
    """Which of `case_ids` hold a decision `reviewer` confirmed or approved: their appeals are
    for another senior to answer (`decide_appeal` refuses them)."""
    wanted = sorted(set(case_ids))
    if not wanted:
        return set()
    query = select(CASE_REVIEWS.c.case_id).where(
        CASE_REVIEWS.c.case_id.in_(wanted),
        or_(CASE_REVIEWS.c.confirmed_by == reviewer.id, CASE_REVIEWS.c.approved_by == reviewer.id),
    )
    return {int(i) for i in _engine.read(store.engine, lambda c: c.execute(query).scalars())}


def get_appeal(store: BankStore, appeal_id: int) -> Appeal:
    """One appeal; `NotFound` if there is none."""
    query = _select().where(APPEALS.c.id == appeal_id)
    row = _engine.read(store.engine, lambda conn: conn.execute(query).first())
    if row is None:
        raise NotFound(f"no appeal {appeal_id}")
    return _to_appeal(row)


def appeals_of(store: BankStore, case_id: int) -> list[Appeal]:
    """The appeals against one case, oldest first."""
    query = _select().where(APPEALS.c.case_id == case_id).order_by(APPEALS.c.id)
    rows = _engine.read(store.engine, lambda conn: conn.execute(query).all())
    return [_to_appeal(row) for row in rows]
