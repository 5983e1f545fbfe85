"""Review decisions on cases: the state machine, the queue, and the history.

A case (one content, every copy of it: `lightkeeper.actions.cases`) has no review row until
someone decides it. Then (``case_reviews.state``):

    (undecided) ──confirm──▶ awaiting_approval ──approve (another person)──▶ confirmed
        │   │                      │
        │   └──escalate──▶ escalated ◀──disapprove (another person)
        │                      │
        │      (a senior or admin: confirm / false_positive)
        └──false_positive──▶ false_positive

- **confirm** needs the industry classification (A1, A2, B1, B2) and may carry annotations.
  With the two-person rule on (the default, ``LIGHTKEEPER_REVIEW_TWO_PERSON``) it waits for a
  second person's **approve**; without it, it confirms at once. Only a confirmed case can be
  reported; ``cases.status`` becomes ``decided``.
- **approve** / **disapprove**: only on a case awaiting approval, and never by the person who
  confirmed it. A disapproval escalates the case.
- **escalate**: a senior reviewer (or an admin) decides from there; nobody else may. A case
  once escalated (or disapproved) stays with seniors: a senior's confirmation of it must be
  approved or disapproved by another senior (or an admin), not by the person who escalated.
- **false_positive**: the content is not what the list says. ``cases.status`` becomes
  ``closed``, and every block entry that acted in the case is suppressed for this platform,
  with negative feedback for the list's provider (`lightkeeper.review.feedback`).
- A confirmed case, a false positive, or a reversed one (an upheld appeal,
  `lightkeeper.review.appeals`) is final: only an appeal changes it.

A decision is allowed on any case, also one no policy put in the review queue (no priority).

Each decision is one transaction: the case row is locked (``SELECT … FOR UPDATE`` on
PostgreSQL; SQLite has one writer at a time), the state checked against that locked row, the
review row and ``cases.status`` updated, a ``review_decisions`` row appended (the history is
never updated), any suppression written, a ``decision`` webhook event queued and a
``review.decision`` audit event recorded. Two reviewers deciding one case at once are thus
serialised: the second sees the first's outcome and gets a `Conflict` if its own decision no
longer applies. The person deciding is read back in that transaction too, so an account
disabled or demoted a moment ago cannot decide.

The webhook event tells the platform what became of the content: ``kind``, ``case_id``,
``sha256``, ``state``, ``classification``, ``reinstate`` (true when it turned out not to be
abuse material: the platform may restore the uploads), and the uploader references of the
case (at most `MAX_EVENT_UPLOADERS`, ``uploader_count`` says how many in all). It never names
the reviewer.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, cast, get_args

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Table,
    and_,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import aliased

from lightkeeper.actions import webhooks
from lightkeeper.actions.cases import CASE_MATCHES, CASES, Case, _cases
from lightkeeper.banks import _engine
from lightkeeper.banks.audit import acting_as, record
from lightkeeper.banks.models import (
    CLASSIFICATIONS,
    AppealRow,
    CaseReviewRow,
    ReviewDecisionRow,
    ReviewerRow,
)
from lightkeeper.banks.store import BankStore
from lightkeeper.errors import Conflict, Forbidden, InvalidRequest, NotFound
from lightkeeper.review.accounts import Reviewer, active_in
from lightkeeper.review.feedback import check_allow_bank, suppress_in
from lightkeeper.review.settings import DEFAULT_SETTINGS, ReviewSettings

__all__ = [
    "ANNOTATION_PATTERN",
    "CASE_REVIEWS",
    "DECISION_KINDS",
    "KNOWN_ANNOTATIONS",
    "MAX_ANNOTATIONS",
    "MAX_NOTE_CHARS",
    "REVIEW_DECISIONS",
    "CaseReview",
    "DecisionKind",
    "QueueItem",
    "ReviewDecision",
    "decide",
    "decisions_of",
    "review_of",
    "review_queue",
    "validate_annotations",
]

APPEALS = cast(Table, AppealRow.__table__)
CASE_REVIEWS = cast(Table, CaseReviewRow.__table__)
REVIEW_DECISIONS = cast(Table, ReviewDecisionRow.__table__)
REVIEWERS = cast(Table, ReviewerRow.__table__)

DecisionKind = Literal["confirm", "false_positive", "escalate", "approve", "disapprove"]
DECISION_KINDS: tuple[DecisionKind, ...] = get_args(DecisionKind)

#: An annotation: a short token (NCMEC's file annotations are camelCase words), 1 to 64
#: letters, digits and ``_ . : -``, starting with a letter or digit. Free text goes in the note.
ANNOTATION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
_ANNOTATION = re.compile(ANNOTATION_PATTERN)
MAX_ANNOTATIONS = 20
MAX_NOTE_CHARS = 5000
#: The file annotations NCMEC's CyberTipline reports know, offered by the reviewer UI
#: (others are accepted too, and kept with the decision).
KNOWN_ANNOTATIONS: tuple[str, ...] = (
    "animeDrawingVirtualHentai",
    "potentialMeme",
    "viral",
    "possibleSelfProduction",
    "physicalHarm",
    "violenceGore",
    "bestiality",
    "liveStreaming",
    "infant",
    "generativeAi",
)
#: Uploader references listed in one decision event at most (its body stays small).
MAX_EVENT_UPLOADERS = 500
MAX_QUEUE = 1000

#: Review states after which no decision applies (only an appeal may change the first).
_FINAL = ("confirmed", "false_positive", "reversed")


@dataclass(frozen=True, slots=True)
class CaseReview:
    """Where a case's review stands now (reviewers named by user name)."""

    case_id: int
    state: str
    classification: str | None
    annotations: tuple[str, ...]
    confirmed_by: str | None
    approved_by: str | None
    updated_at: datetime
    #: Whether it was ever escalated (or a confirmation disapproved): from then on only a
    #: senior reviewer or an admin decides it, its approval included.
    escalated: bool = False

    @property
    def senior_only(self) -> bool:
        """Whether only a senior reviewer or an admin may see and decide it now."""
        return self.state == "escalated" or (self.escalated and self.state == "awaiting_approval")

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "state": self.state,
            "classification": self.classification,
            "annotations": list(self.annotations),
            "confirmed_by": self.confirmed_by,
            "approved_by": self.approved_by,
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ReviewDecision:
    """One decision ever taken on a case (the history is never changed)."""

    id: int
    case_id: int
    reviewer: str
    at: datetime
    kind: str
    classification: str | None
    annotations: tuple[str, ...]
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "case_id": self.case_id,
            "reviewer": self.reviewer,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "classification": self.classification,
            "annotations": list(self.annotations),
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class QueueItem:
    """A case in someone's review queue, with its review so far (None: undecided)."""

    case: Case
    review: CaseReview | None


# ---------------------------------------------------------------------- validation


def validate_annotations(annotations: Sequence[str]) -> tuple[str, ...]:
    """Annotations as kept: each fits `ANNOTATION_PATTERN`, duplicates dropped (first kept),
    at most `MAX_ANNOTATIONS`; `InvalidRequest` otherwise."""
    if isinstance(annotations, str):
        raise InvalidRequest("annotations are a list of words, not one string")
    kept: dict[str, None] = {}
    for item in annotations:
        if not isinstance(item, str) or not _ANNOTATION.fullmatch(item):
            raise InvalidRequest(
                f"invalid annotation {item!r}: 1-64 letters, digits, '_', '.', ':' or '-', "
                "starting with a letter or digit (put free text in the note)"
            )
        kept[item] = None
    if len(kept) > MAX_ANNOTATIONS:
        raise InvalidRequest(f"at most {MAX_ANNOTATIONS} annotations per decision")
    return tuple(kept)


def _validate_note(note: str) -> str:
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS or "\x00" in note:
        raise InvalidRequest(f"a note is at most {MAX_NOTE_CHARS} characters, without NUL")
    return note


def _validate_classification(kind: str, classification: str | None) -> str | None:
    if kind == "confirm":
        if classification is None:
            raise InvalidRequest(
                f"a confirmation needs a classification: one of {', '.join(CLASSIFICATIONS)}"
            )
        if classification not in CLASSIFICATIONS:
            raise InvalidRequest(
                f"unknown classification {classification!r}; known: {', '.join(CLASSIFICATIONS)}"
            )
        return classification
    if classification is not None:
        raise InvalidRequest(f"a classification goes with a confirmation only, not {kind!r}")
    return None


# ---------------------------------------------------------------------- deciding


#: Decisions that send a case to seniors.
_ESCALATING: Final = ("escalate", "disapprove")


def _now() -> datetime:
    return datetime.now(UTC)


def _state_name(state: str | None) -> str:
    return "undecided" if state is None else state.replace("_", " ")


def _next_state(
    kind: str,
    state: str | None,
    review: Row[Any] | None,
    reviewer: Reviewer,
    case_id: int,
    settings: ReviewSettings,
    escalated: bool,
) -> str:
    """The state `kind` leads to from `state`; the error saying why not, when it may not.
    `escalated`: the case was escalated before, so its approval needs a senior too."""
    if state in _FINAL:
        raise Conflict(
            f"case {case_id} is already {_state_name(state)}: no decision changes it now "
            "(an appeal can reverse it)"
            if state == "confirmed"
            else f"case {case_id} is already closed as {_state_name(state)}"
        )
    if kind in ("approve", "disapprove"):
        if state != "awaiting_approval":
            raise Conflict(
                f"case {case_id} is not awaiting approval (it is {_state_name(state)}): "
                f"nothing to {kind}"
            )
        assert review is not None
        if review.confirmed_by == reviewer.id:
            raise Forbidden(
                f"{reviewer.username} confirmed case {case_id}: under the two-person rule "
                "someone else must approve or disapprove it"
            )
        if escalated and not reviewer.is_senior:
            raise Forbidden(
                f"case {case_id} was escalated: only a senior reviewer or an admin may "
                f"{kind} its confirmation"
            )
        return "confirmed" if kind == "approve" else "escalated"
    if state == "awaiting_approval":
        raise Conflict(
            f"case {case_id} is awaiting approval of its confirmation: approve or disapprove it"
        )
    if state == "escalated" and not reviewer.is_senior:
        raise Forbidden(
            f"case {case_id} is escalated: only a senior reviewer or an admin may decide it"
        )
    if kind == "escalate":
        if state == "escalated":
            raise Conflict(f"case {case_id} is already escalated")
        return "escalated"
    if kind == "confirm":
        return "awaiting_approval" if settings.two_person_rule else "confirmed"
    return "false_positive"


def decide(
    store: BankStore,
    case_id: int,
    reviewer: Reviewer,
    kind: DecisionKind,
    *,
    classification: str | None = None,
    annotations: Sequence[str] = (),
    note: str = "",
    settings: ReviewSettings = DEFAULT_SETTINGS,
) -> CaseReview:
    """Take one decision on a case (see the module docstring); the review as it now stands.

    `NotFound` for no such case, `InvalidRequest` for a malformed decision (a confirmation
    without classification …), `Conflict` when the case's state does not allow it (maybe
    because someone decided it a moment ago), `Forbidden` when this person may not.
    """
    if kind not in DECISION_KINDS:
        raise InvalidRequest(f"unknown decision {kind!r}; known: {', '.join(DECISION_KINDS)}")
    classification = _validate_classification(kind, classification)
    kept = validate_annotations(annotations)
    note = _validate_note(note)
    if kind == "false_positive":
        check_allow_bank(store, settings.false_positive_bank)

    def work(conn: Connection) -> None:
        now = _now()
        case = lock_case_in(conn, case_id)
        person = active_in(conn, reviewer)
        review = conn.execute(
            select(CASE_REVIEWS).where(CASE_REVIEWS.c.case_id == case_id).with_for_update()
        ).first()
        state = None if review is None else str(review.state)
        escalated = bool(conn.execute(select(_escalated(case_id))).scalar())
        new_state = _next_state(kind, state, review, person, case_id, settings, escalated)
        # A confirmation states the classification and annotations afresh; an approval or an
        # escalation adds to them; a disapproval or a false positive withdraws them.
        previous = () if review is None else tuple(json.loads(review.annotations))
        if kind == "confirm":
            annotations: tuple[str, ...] = kept
        elif kind in ("approve", "escalate"):
            annotations = tuple(dict.fromkeys(previous + kept))
        else:
            annotations = ()
        values: dict[str, Any] = {
            "state": new_state,
            "annotations": json.dumps(list(annotations)),
            "updated_at": now,
        }
        if kind == "confirm":
            values.update(classification=classification, confirmed_by=person.id, confirmed_at=now)
            if new_state == "confirmed":
                values.update(approved_by=None, approved_at=None)
        elif kind == "approve":
            values.update(approved_by=person.id, approved_at=now)
        elif kind == "disapprove":
            values.update(classification=None, confirmed_by=None, confirmed_at=None)
        elif kind == "false_positive":
            values.update(classification=None)
        write_review_in(conn, case_id, review, values)
        status = {"confirmed": "decided", "false_positive": "closed"}.get(new_state)
        if status is not None:
            conn.execute(
                update(CASES).where(CASES.c.id == case_id).values(status=status, updated_at=now)
            )
        decision_id = insert_decision(
            conn, case_id, person, kind, classification=classification, annotations=kept, note=note
        )
        with acting_as(person.actor):
            if kind == "false_positive":
                suppress_in(
                    conn,
                    case_id,
                    reason="false_positive",
                    allow_bank=settings.false_positive_bank,
                    actor=person.actor,
                    now=now,
                )
                answer_open_appeals_in(conn, case_id, person, decision_id, now)
            event = {
                "kind": kind,
                "state": new_state,
                "classification": values.get("classification", _classification(review)),
                "reinstate": kind == "false_positive",
            }
            announce_in(conn, case, decision_id, event, now)
            record(
                conn,
                "review.decision",
                f"case/{case_id}",
                {
                    "decision_id": decision_id,
                    "kind": kind,
                    "from": state,
                    "to": new_state,
                    "classification": classification,
                },
                at=now,
            )

    _engine.write(store.engine, work)
    found = review_of(store, case_id)
    assert found is not None
    return found


def _classification(review: Row[Any] | None) -> str | None:
    return None if review is None else review.classification


#: The answer an open appeal gets when its case is closed as a false positive.
FALSE_POSITIVE_ANSWER: Final = (
    "The case was closed as a false positive: what was done to the upload is reversed."
)


def answer_open_appeals_in(
    conn: Connection, case_id: int, person: Reviewer, decision_id: int, now: datetime
) -> list[int]:
    """Answer the case's open appeal as upheld, once its case was cleared by a false
    positive (decision `decision_id`), in the caller's transaction; the ids answered.

    The false positive is the verdict, counted once in the error figures; the appeal gets
    the answer its user was waiting for, and nothing is reversed a second time.
    """
    answered = [
        int(i)
        for i in conn.execute(
            select(APPEALS.c.id).where(APPEALS.c.case_id == case_id, APPEALS.c.status == "open")
        ).scalars()
    ]
    for appeal_id in answered:
        conn.execute(
            update(APPEALS)
            .where(APPEALS.c.id == appeal_id)
            .values(
                status="upheld", decided_by=person.id, decided_at=now, reason=FALSE_POSITIVE_ANSWER
            )
        )
        record(
            conn,
            "review.appeal",
            f"case/{case_id}",
            {"appeal_id": appeal_id, "event": "upheld", "decision_id": decision_id},
            at=now,
        )
    return answered


def lock_case_in(conn: Connection, case_id: int) -> Row[Any]:
    """The case row, locked until the transaction ends; `NotFound`."""
    case = conn.execute(select(CASES).where(CASES.c.id == case_id).with_for_update()).first()
    if case is None:
        raise NotFound(f"no case {case_id}")
    return case


def write_review_in(
    conn: Connection, case_id: int, review: Row[Any] | None, values: dict[str, Any]
) -> None:
    if review is None:
        full = {
            "case_id": case_id,
            "classification": None,
            "confirmed_by": None,
            "confirmed_at": None,
            "approved_by": None,
            "approved_at": None,
            **values,
        }
        conn.execute(insert(CASE_REVIEWS), full)
    else:
        conn.execute(update(CASE_REVIEWS).where(CASE_REVIEWS.c.case_id == case_id).values(values))


def insert_decision(
    conn: Connection,
    case_id: int,
    person: Reviewer,
    kind: str,
    *,
    classification: str | None = None,
    annotations: Sequence[str] = (),
    note: str = "",
    at: datetime | None = None,
) -> int:
    """Append one row to the decision history (in the caller's transaction); its id."""
    return int(
        conn.execute(
            insert(REVIEW_DECISIONS).returning(REVIEW_DECISIONS.c.id),
            {
                "case_id": case_id,
                "reviewer_id": person.id,
                "at": at or _now(),
                "kind": kind,
                "classification": classification,
                "annotations": json.dumps(list(annotations)),
                "note": note,
            },
        ).scalar_one()
    )


def announce_in(
    conn: Connection, case: Row[Any], decision_id: int, event: dict[str, Any], now: datetime
) -> str:
    """Queue the ``decision`` webhook event of one decision (see the module docstring)."""
    uploaders = list(
        conn.execute(
            select(CASE_MATCHES.c.uploader)
            .where(CASE_MATCHES.c.case_id == case.id, CASE_MATCHES.c.uploader.is_not(None))
            .group_by(CASE_MATCHES.c.uploader)
            .order_by(CASE_MATCHES.c.uploader)
            .limit(MAX_EVENT_UPLOADERS + 1)
        ).scalars()
    )
    count = len(uploaders)
    if count > MAX_EVENT_UPLOADERS:
        count = int(
            conn.execute(
                select(func.count(func.distinct(CASE_MATCHES.c.uploader))).where(
                    CASE_MATCHES.c.case_id == case.id
                )
            ).scalar_one()
        )
        uploaders = uploaders[:MAX_EVENT_UPLOADERS]
    data = {
        **event,
        "case_id": int(case.id),
        "sha256": case.sha256,
        "uploaders": uploaders,
        "uploader_count": count,
        "decision_id": decision_id,
    }
    # One event id per decision: a retried transaction never queues it twice.
    event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"lightkeeper:review-decision:{decision_id}"))
    return webhooks.enqueue_in(conn, "decision", data, event_id=event_id, at=now)


# ---------------------------------------------------------------------- reading


def _escalated(case_id: Any) -> Any:
    """Whether the case's history holds an escalation (or a disapproval, which escalates)."""
    return exists().where(
        REVIEW_DECISIONS.c.case_id == case_id, REVIEW_DECISIONS.c.kind.in_(_ESCALATING)
    )


def _review_select() -> Any:
    confirmer = aliased(REVIEWERS)
    approver = aliased(REVIEWERS)
    return (
        select(
            CASE_REVIEWS,
            confirmer.c.username.label("confirmer"),
            approver.c.username.label("approver"),
            _escalated(CASE_REVIEWS.c.case_id).label("escalated"),
        )
        .outerjoin(confirmer, confirmer.c.id == CASE_REVIEWS.c.confirmed_by)
        .outerjoin(approver, approver.c.id == CASE_REVIEWS.c.approved_by)
    )


def _to_review(row: Row[Any]) -> CaseReview:
    return CaseReview(
        case_id=int(row.case_id),
        state=row.state,
        classification=row.classification,
        annotations=tuple(json.loads(row.annotations)),
        confirmed_by=row.confirmer,
        approved_by=row.approver,
        updated_at=row.updated_at,
        escalated=bool(row.escalated),
    )


def reviews_in(conn: Connection, case_ids: Sequence[int]) -> dict[int, CaseReview]:
    """The reviews of these cases (undecided ones left out), by case id."""
    found: dict[int, CaseReview] = {}
    for start in range(0, len(case_ids), 1000):
        chunk = case_ids[start : start + 1000]
        rows = conn.execute(_review_select().where(CASE_REVIEWS.c.case_id.in_(chunk)))
        found.update((int(row.case_id), _to_review(row)) for row in rows)
    return found


def review_of(store: BankStore, case_id: int) -> CaseReview | None:
    """Where the review of a case stands; None while nobody decided it (or no such case)."""
    query = _review_select().where(CASE_REVIEWS.c.case_id == case_id)
    row = _engine.read(store.engine, lambda conn: conn.execute(query).first())
    return None if row is None else _to_review(row)


def decisions_of(store: BankStore, case_id: int) -> list[ReviewDecision]:
    """Every decision taken on a case, oldest first (appeal decisions included)."""
    query = (
        select(REVIEW_DECISIONS, REVIEWERS.c.username)
        .join(REVIEWERS, REVIEWERS.c.id == REVIEW_DECISIONS.c.reviewer_id)
        .where(REVIEW_DECISIONS.c.case_id == case_id)
        .order_by(REVIEW_DECISIONS.c.id)
    )
    rows = _engine.read(store.engine, lambda conn: conn.execute(query).all())
    return [
        ReviewDecision(
            id=int(row.id),
            case_id=int(row.case_id),
            reviewer=row.username,
            at=row.at,
            kind=row.kind,
            classification=row.classification,
            annotations=tuple(json.loads(row.annotations)),
            note=row.note,
        )
        for row in rows
    ]


def review_queue(store: BankStore, reviewer: Reviewer, *, limit: int = 50) -> list[QueueItem]:
    """The open cases for review (a priority) that still need this person, most urgent first,
    then oldest: undecided ones; escalated ones for seniors and admins; ones awaiting approval
    that someone else confirmed."""
    if not 1 <= limit <= MAX_QUEUE:
        raise InvalidRequest(f"a queue limit is from 1 to {MAX_QUEUE}")
    state = CASE_REVIEWS.c.state
    awaiting = and_(state == "awaiting_approval", CASE_REVIEWS.c.confirmed_by != reviewer.id)
    needs_me: list[ColumnElement[bool]] = [state.is_(None)]
    if reviewer.is_senior:
        needs_me += [awaiting, state == "escalated"]
    else:
        needs_me.append(and_(awaiting, ~_escalated(CASES.c.id)))
    query = (
        select(CASES)
        .outerjoin(CASE_REVIEWS, CASE_REVIEWS.c.case_id == CASES.c.id)
        .where(CASES.c.status == "open", CASES.c.priority.is_not(None), or_(*needs_me))
        .order_by(CASES.c.priority, CASES.c.first_seen_at, CASES.c.id)
        .limit(limit)
    )

    def work(conn: Connection) -> list[QueueItem]:
        cases = _cases(conn, conn.execute(query).all())
        reviews = reviews_in(conn, [c.id for c in cases])
        return [QueueItem(case, reviews.get(case.id)) for case in cases]

    return _engine.read(store.engine, work)
