"""Reveals of clear images, and each reviewer's exposure to them per day.

The reviewer UI shows a blurred, greyscale derivative by default; the clear image of one
recorded match is shown only on an explicit reveal, through `reveal`, which:

1. refuses, recording nothing, once the reviewer has used up their reveals for the UTC day
   (their account's cap, else ``LIGHTKEEPER_REVIEW_REVEAL_CAP``): `RevealCapReached`;
2. reads the quarantined copy from the vault, as ``reviewer:<name>`` with the reason (the
   vault logs that read like any other);
3. records, in one transaction, a ``review_reveals`` row (the exposure counter) and a
   ``review.reveal`` audit event (subject ``case-match/<id>``): the proof that a person saw
   the file. The cap is counted again inside that transaction, so two reveals racing for
   the last one of the day cannot both pass.

Only then are the bytes returned. Recording after the vault read, not before, keeps the
audit trail truthful both ways: a read that fails (a destroyed object, a tampered file)
leaves no ``review.reveal`` behind, and bytes whose reveal could not be recorded are dropped,
never shown.

A reveal made for the reviewer UI carries a one-time ticket (`reveal`'s ``ticket``): its
page fetches the clear image with it, and `claim_ticket` settles that one fetch in the
database, so whichever worker process serves the fetch, the image is served once, to the
person who revealed it, within `TICKET_TTL_S`. Only the ticket's SHA-256 is stored. Such a
reveal is counted against the cap at once, but its ``review.reveal`` event is recorded by
`record_view` when the image is fetched, just before its bytes go out: a page whose image
never loaded is no view.

`was_viewed` answers from the audit trail, not from ``review_reveals``: the trail is the
hash-chained record a report's ``fileViewedByEsp`` must rest on (see docs/review.md). Reads
of the vault by the system (derivatives, report uploads) are not reveals and count as no view.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, func, insert, select, update

from lightkeeper.actions.cases import CASE_MATCHES
from lightkeeper.actions.vault import OBJECTS, Vault
from lightkeeper.banks import _engine
from lightkeeper.banks.audit import AUDIT, acting_as, record
from lightkeeper.banks.models import ReviewRevealRow
from lightkeeper.banks.store import BankStore
from lightkeeper.errors import InvalidRequest, NotFound, RevealCapReached
from lightkeeper.review.accounts import Reviewer, active_in, load_in
from lightkeeper.review.settings import DEFAULT_SETTINGS, ReviewSettings

__all__ = [
    "REVEALS",
    "REVEAL_ACTION",
    "TICKET_TTL_S",
    "Exposure",
    "RevealCapReached",
    "RevealedFile",
    "claim_ticket",
    "exposure_today",
    "record_view",
    "reveal",
    "viewed_matches",
    "was_viewed",
]

REVEALS = cast(Table, ReviewRevealRow.__table__)
#: The audit action of a reveal; its subject is ``case-match/<id>``.
REVEAL_ACTION = "review.reveal"
MAX_REASON_CHARS = 200
#: Seconds a reveal's ticket waits for its one fetch.
TICKET_TTL_S = 120.0


@dataclass(frozen=True, slots=True)
class Exposure:
    """One reviewer's reveals on one UTC day, against their cap."""

    reviewer: str
    day: date
    reveals: int
    cap: int

    @property
    def remaining(self) -> int:
        return max(0, self.cap - self.reveals)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reviewer": self.reviewer,
            "day": self.day.isoformat(),
            "reveals": self.reveals,
            "cap": self.cap,
            "remaining": self.remaining,
        }


def subject_of(case_match_id: int) -> str:
    """The audit subject of a reveal of one recorded match."""
    return f"case-match/{case_match_id}"


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def _cap(reviewer: Reviewer, settings: ReviewSettings) -> int:
    return (
        settings.daily_reveal_cap
        if reviewer.daily_reveal_cap is None
        else reviewer.daily_reveal_cap
    )


def _count_in(conn: Connection, reviewer_id: int, day: date) -> int:
    start, end = _day_bounds(day)
    return int(
        conn.execute(
            select(func.count())
            .select_from(REVEALS)
            .where(REVEALS.c.reviewer_id == reviewer_id, REVEALS.c.at >= start, REVEALS.c.at < end)
        ).scalar_one()
    )


def exposure_today(
    store: BankStore, reviewer: Reviewer, settings: ReviewSettings = DEFAULT_SETTINGS
) -> Exposure:
    """The reviewer's reveals so far this UTC day, and their cap."""

    def work(conn: Connection) -> Exposure:
        current = load_in(conn, reviewer.id)
        day = datetime.now(UTC).date()
        return Exposure(
            current.username, day, _count_in(conn, current.id, day), _cap(current, settings)
        )

    return _engine.read(store.engine, work)


def _refuse(exposure: Exposure) -> RevealCapReached:
    return RevealCapReached(
        f"{exposure.reviewer} has revealed {exposure.reveals} of {exposure.cap} clear images "
        f"allowed today (UTC); the count starts again at midnight UTC. The blurred view "
        "stays available."
    )


def reveal(
    store: BankStore,
    vault: Vault,
    reviewer: Reviewer,
    case_match_id: int,
    *,
    reason: str = "review",
    settings: ReviewSettings = DEFAULT_SETTINGS,
    ticket: str | None = None,
) -> tuple[bytes, str]:
    """The clear content of one recorded match and its media type, for a person to see;
    audited and counted (see the module docstring).

    `RevealCapReached` (a `Conflict`) over the day's cap, `NotFound` for no such match or one
    with no quarantined copy (its policy did not quarantine it, or the copy was destroyed),
    `Forbidden` for a disabled account. With a `ticket`, the reveal can be fetched once more
    with `claim_ticket` (the reviewer UI's image request).
    """
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON_CHARS or "\x00" in reason:
        raise InvalidRequest(f"a reveal needs a reason of 1 to {MAX_REASON_CHARS} characters")

    def check(conn: Connection) -> tuple[Any, Reviewer]:
        person = active_in(conn, reviewer)
        match = conn.execute(
            select(
                CASE_MATCHES.c.case_id,
                CASE_MATCHES.c.media_type,
                CASE_MATCHES.c.vault_object_id,
            ).where(CASE_MATCHES.c.id == case_match_id)
        ).first()
        if match is None:
            raise NotFound(f"no recorded match {case_match_id}")
        if match.vault_object_id is None:
            raise NotFound(
                f"recorded match {case_match_id} has no copy in the vault (its policy did not "
                "quarantine it): there is no clear image to reveal"
            )
        destroyed = conn.execute(
            select(OBJECTS.c.destroyed_at).where(OBJECTS.c.id == match.vault_object_id)
        ).scalar()
        if destroyed is not None:
            raise NotFound(
                f"the vault copy of recorded match {case_match_id} was destroyed "
                f"({destroyed:%Y-%m-%d}): there is no clear image to reveal"
            )
        day = datetime.now(UTC).date()
        exposure = Exposure(
            person.username, day, _count_in(conn, person.id, day), _cap(person, settings)
        )
        if exposure.remaining == 0:
            raise _refuse(exposure)
        return match, person

    match, person = _engine.read(store.engine, check)
    data = vault.read(match.vault_object_id, actor=person.actor, reason=f"reveal: {reason}")

    def work(conn: Connection) -> None:
        now = datetime.now(UTC)
        current = active_in(conn, person)
        day = now.date()
        exposure = Exposure(
            current.username, day, _count_in(conn, current.id, day), _cap(current, settings)
        )
        if exposure.remaining == 0:  # another reveal took the last one meanwhile
            raise _refuse(exposure)
        conn.execute(
            insert(REVEALS),
            {
                "reviewer_id": current.id,
                "case_id": match.case_id,
                "case_match_id": case_match_id,
                "at": now,
                "reason": reason,
                "ticket_hash": None if ticket is None else _digest(ticket),
            },
        )
        if ticket is None:  # else recorded when the ticket's image is fetched
            _record_view_in(conn, current, int(match.case_id), case_match_id, reason, now)

    _engine.write(store.engine, work)
    return data, str(match.media_type)


def _record_view_in(
    conn: Connection,
    person: Reviewer,
    case_id: int,
    case_match_id: int,
    reason: str,
    now: datetime,
) -> None:
    with acting_as(person.actor):
        record(
            conn,
            REVEAL_ACTION,
            subject_of(case_match_id),
            {"case_id": case_id, "reviewer": person.username, "reason": reason},
            at=now,
        )


@dataclass(frozen=True, slots=True)
class RevealedFile:
    """The recorded match a claimed ticket shows, and where its clear content is."""

    case_id: int
    case_match_id: int
    vault_object_id: str
    media_type: str
    reason: str


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def claim_ticket(
    store: BankStore, reviewer: Reviewer, ticket: str, *, ttl_s: float = TICKET_TTL_S
) -> RevealedFile | None:
    """Take a reveal's one fetch: the file it revealed, if `ticket` is `reviewer`'s, younger
    than `ttl_s` and not fetched before; else None. One transaction marks it fetched, so two
    fetches racing in two processes get it once. `Forbidden` for a disabled account.
    """

    def work(conn: Connection) -> RevealedFile | None:
        person = active_in(conn, reviewer)
        now = datetime.now(UTC)
        digest = _digest(ticket)
        taken = conn.execute(
            update(REVEALS)
            .where(
                REVEALS.c.ticket_hash == digest,
                REVEALS.c.reviewer_id == person.id,
                REVEALS.c.fetched_at.is_(None),
                REVEALS.c.at > now - timedelta(seconds=ttl_s),
            )
            .values(fetched_at=now)
        )
        if taken.rowcount != 1:
            return None
        row = conn.execute(
            select(
                REVEALS.c.case_id,
                REVEALS.c.case_match_id,
                REVEALS.c.reason,
                CASE_MATCHES.c.vault_object_id,
                CASE_MATCHES.c.media_type,
            )
            .join(CASE_MATCHES, CASE_MATCHES.c.id == REVEALS.c.case_match_id)
            .where(REVEALS.c.ticket_hash == digest)
        ).one()
        if row.vault_object_id is None:
            return None
        return RevealedFile(
            int(row.case_id),
            int(row.case_match_id),
            str(row.vault_object_id),
            str(row.media_type),
            row.reason,
        )

    return _engine.write(store.engine, work)


def record_view(store: BankStore, reviewer: Reviewer, revealed: RevealedFile) -> None:
    """Record that `reviewer` is now shown the clear image of a claimed ticket: the
    ``review.reveal`` audit event (see the module docstring). Call it after the bytes were
    read and before they are sent; if it fails, send nothing."""

    def work(conn: Connection) -> None:
        person = active_in(conn, reviewer)
        _record_view_in(
            conn,
            person,
            revealed.case_id,
            revealed.case_match_id,
            revealed.reason,
            datetime.now(UTC),
        )

    _engine.write(store.engine, work)


def was_viewed(conn: Connection, case_match_id: int) -> bool:
    """Whether a person revealed this recorded match, by the audit trail (read in `conn`'s
    transaction)."""
    return case_match_id in _viewed_in(conn, [case_match_id])


def viewed_matches(store: BankStore, case_id: int) -> set[int]:
    """The ids of the case's recorded matches a person revealed (by the audit trail)."""

    def work(conn: Connection) -> set[int]:
        ids = conn.execute(select(CASE_MATCHES.c.id).where(CASE_MATCHES.c.case_id == case_id))
        return _viewed_in(conn, [int(i) for i in ids.scalars()])

    return _engine.read(store.engine, work)


def _viewed_in(conn: Connection, case_match_ids: list[int]) -> set[int]:
    """Those of these recorded matches that the audit trail shows revealed.

    A reveal cannot come before its match was recorded, so only events since then are read
    (through the index on the events' time; a day earlier, for clocks that disagree).
    """
    seen: set[int] = set()
    for start in range(0, len(case_match_ids), 500):
        chunk = case_match_ids[start : start + 500]
        since = conn.execute(
            select(func.min(CASE_MATCHES.c.at)).where(CASE_MATCHES.c.id.in_(chunk))
        ).scalar()
        if since is None:
            continue
        if not isinstance(since, datetime):  # SQLite gives an aggregate back as text
            since = datetime.fromisoformat(str(since))
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        by_subject = {subject_of(i): i for i in chunk}
        subjects = conn.execute(
            select(AUDIT.c.subject)
            .where(
                AUDIT.c.action == REVEAL_ACTION,
                AUDIT.c.subject.in_(list(by_subject)),
                AUDIT.c.at >= since - timedelta(days=1),
            )
            .distinct()
        ).scalars()
        seen.update(by_subject[s] for s in subjects)
    return seen
