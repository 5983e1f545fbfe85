"""Cases and recorded matches: what was acted on, grouped by content and by uploader.

A **case** is one content, identified by its SHA-256, that a policy acted on: every upload of
the same bytes joins it, so that one review decision covers every copy. It carries a status
(``open`` when made; issue 7's review moves it to ``decided``, ``reported`` or ``closed``),
the most urgent review priority any of its matches asked for (None when none asked for
review: it is then not in the review queue), the union of the actions taken, counts, and
when it was first and last seen. A new match joins its case whatever the case's status.

A **recorded match** is one acted-on upload: the request id it came under (unique, so a
retried match call is recognised and never recorded twice), when, the uploader reference
the platform passed (an opaque string: Lightkeeper never knows who it names), the acting
matches' evidence, the policy version in force, the decision (actions, priority, reject),
and the vault object holding the upload when it was quarantined.

`record_in` writes both inside the caller's transaction (the actioner's, see
`lightkeeper.actions.actioner`). Making the case is race-free on both databases: an
``INSERT … ON CONFLICT DO NOTHING`` on the unique SHA-256, then the row read back locked
(``FOR UPDATE`` on PostgreSQL; SQLite has one writer at a time) and updated. Two processes
recording the same content at once make one case, and neither loses its count.

Queries: `get_case` (a case with its matches), `list_cases` (by status, priority or uploader,
in review-queue order: most urgent first, then oldest first), `uploader_view` (everything
one uploader reference did: how many uploads, how many distinct contents, which cases).
Evidence read back includes the banks' hash values; the HTTP layer withholds them from keys
without ``bank:read``, as everywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast, get_args

from sqlalchemy import Connection, Row, Select, Table, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from lightkeeper.actions.policy import ACTIONS, Action, Decision
from lightkeeper.banks import _engine
from lightkeeper.banks.models import CaseMatchRow, CaseRow
from lightkeeper.banks.store import BankStore
from lightkeeper.errors import InvalidRequest, NotFound
from lightkeeper.matching.evidence import Match

__all__ = [
    "CASES",
    "CASE_MATCHES",
    "CASE_STATUSES",
    "REQUEST_ID_PATTERN",
    "UPLOADER_PATTERN",
    "Case",
    "CaseDetail",
    "CaseStatus",
    "RecordedMatch",
    "UploaderView",
    "find_recorded",
    "get_case",
    "iter_recorded",
    "list_cases",
    "match_from_dict",
    "record_in",
    "recorded_in",
    "uploader_view",
    "validate_request_id",
    "validate_uploader",
]

CASES = cast(Table, CaseRow.__table__)
CASE_MATCHES = cast(Table, CaseMatchRow.__table__)

CaseStatus = Literal["open", "decided", "reported", "closed"]
CASE_STATUSES: tuple[CaseStatus, ...] = get_args(CaseStatus)

#: A request id: 1 to 200 printable ASCII characters, not starting or ending with a space
#: (what an HTTP header can carry unchanged).
REQUEST_ID_PATTERN = r"^[!-~](?:[ -~]{0,198}[!-~])?$"
#: An uploader reference: 1 to 200 letters, digits and ``. _ : @ + = ~ -``, starting with a
#: letter or digit (safe in a URL path, a log line and a CSV cell alike).
UPLOADER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+=~-]{0,199}$"
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)
_UPLOADER = re.compile(UPLOADER_PATTERN)
#: Most rows one listing returns.
MAX_LIMIT = 1000


def validate_request_id(value: str) -> str:
    if not isinstance(value, str) or not _REQUEST_ID.fullmatch(value):
        raise InvalidRequest(
            "a request id (Idempotency-Key) is 1 to 200 printable ASCII characters, "
            "without leading or trailing spaces"
        )
    return value


def validate_uploader(value: str) -> str:
    if not isinstance(value, str) or not _UPLOADER.fullmatch(value):
        raise InvalidRequest(
            "an uploader reference is 1 to 200 letters, digits and . _ : @ + = ~ -, "
            "starting with a letter or digit"
        )
    return value


def _actions(text: str) -> tuple[Action, ...]:
    present = set(text.split())
    return tuple(a for a in ACTIONS if a in present)


def _now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Case:
    """One acted-on content and what is known about it so far."""

    id: int
    sha256: str
    status: CaseStatus
    #: Most urgent review priority among its matches (1 first); None: not for review.
    priority: int | None
    actions: tuple[Action, ...]
    #: Recorded matches (uploads) of this content.
    match_count: int
    #: Distinct uploader references among them (uploads without one are not counted).
    uploader_count: int
    first_seen_at: datetime
    last_seen_at: datetime
    updated_at: datetime
    #: Vault objects holding copies of it, oldest first.
    vault_objects: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sha256": self.sha256,
            "status": self.status,
            "priority": self.priority,
            "actions": list(self.actions),
            "match_count": self.match_count,
            "uploader_count": self.uploader_count,
            "first_seen_at": self.first_seen_at.isoformat(),
            "last_seen_at": self.last_seen_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "vault_objects": list(self.vault_objects),
        }


@dataclass(frozen=True, slots=True)
class RecordedMatch:
    """One acted-on upload, as recorded."""

    id: int
    request_id: str
    case_id: int
    at: datetime
    uploader: str | None
    sha256: str
    media_type: str
    policy_version: int | None
    actions: tuple[Action, ...]
    priority: int | None
    reject: bool
    #: The acting matches' evidence, as `Match.to_dict` gave it (hash values included).
    evidence: tuple[dict[str, Any], ...]
    #: The decision: actions, priority, and per match its rules and actions.
    decision: dict[str, Any]
    vault_object_id: str | None

    def matches(self) -> list[Match]:
        """The acting matches, as `Match` values again (for a dry run of another policy)."""
        return [match_from_dict(item) for item in self.evidence]

    def to_dict(self, *, reveal: bool = True) -> dict[str, Any]:
        """JSON-ready; without `reveal`, the banks' hash values (``value``) are withheld."""
        evidence = [dict(e) for e in self.evidence]
        if not reveal:
            for item in evidence:
                item["value"] = None
        return {
            "id": self.id,
            "request_id": self.request_id,
            "case_id": self.case_id,
            "at": self.at.isoformat(),
            "uploader": self.uploader,
            "sha256": self.sha256,
            "media_type": self.media_type,
            "policy_version": self.policy_version,
            "actions": list(self.actions),
            "priority": self.priority,
            "reject": self.reject,
            "matches": evidence,
            "rules": [m.get("rules", []) for m in self.decision.get("matches", [])],
            "vault_object_id": self.vault_object_id,
        }


@dataclass(frozen=True, slots=True)
class CaseDetail:
    case: Case
    #: Its recorded matches, oldest first.
    matches: tuple[RecordedMatch, ...]


@dataclass(frozen=True, slots=True)
class UploaderView:
    """Everything recorded for one uploader reference."""

    uploader: str
    #: Acted-on uploads under this reference.
    uploads: int
    #: Distinct contents (SHA-256) among them: above 1, a repeat uploader of known content.
    contents: int
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    #: The cases of those contents, in review-queue order.
    cases: tuple[Case, ...]
    #: The uploads themselves, newest first (at most the limit asked for).
    matches: tuple[RecordedMatch, ...]


def match_from_dict(item: dict[str, Any]) -> Match:
    """A `Match` from its `Match.to_dict` form (unknown keys ignored, missing ones None)."""
    return Match(
        bank=str(item["bank"]),
        bank_kind=item.get("bank_kind", "block"),
        entry_id=int(item["entry_id"]),
        signal_type=str(item["signal_type"]),
        value=str(item.get("value") or ""),
        content_value=str(item.get("content_value") or ""),
        distance=int(item["distance"]),
        threshold=int(item.get("threshold", 0)),
        quality=item.get("quality"),
        variant=str(item.get("variant", "original")),
        list_name=item.get("list_name"),
        list_version=item.get("list_version"),
        external_id=item.get("external_id"),
        classification=item.get("classification"),
        entry_code=item.get("entry_code"),
    )


def _to_recorded(row: Row[Any]) -> RecordedMatch:
    return RecordedMatch(
        id=row.id,
        request_id=row.request_id,
        case_id=row.case_id,
        at=row.at,
        uploader=row.uploader,
        sha256=row.sha256,
        media_type=row.media_type,
        policy_version=row.policy_version,
        actions=_actions(row.actions),
        priority=row.priority,
        reject=bool(row.reject),
        evidence=tuple(json.loads(row.evidence)),
        decision=json.loads(row.decision),
        vault_object_id=row.vault_object_id,
    )


def _cases(conn: Connection, rows: Sequence[Row[Any]]) -> list[Case]:
    """`Case` records for case rows, with their uploader counts and vault objects."""
    ids = [row.id for row in rows]
    uploaders: dict[int, int] = {}
    vault: dict[int, list[str]] = {}
    if ids:
        counted = (
            select(CASE_MATCHES.c.case_id, func.count(func.distinct(CASE_MATCHES.c.uploader)))
            .where(CASE_MATCHES.c.case_id.in_(ids))
            .group_by(CASE_MATCHES.c.case_id)
        )
        uploaders = {int(case_id): int(n) for case_id, n in conn.execute(counted)}
        held = (
            select(CASE_MATCHES.c.case_id, CASE_MATCHES.c.vault_object_id)
            .where(CASE_MATCHES.c.case_id.in_(ids), CASE_MATCHES.c.vault_object_id.is_not(None))
            .order_by(CASE_MATCHES.c.id)
        )
        for case_id, object_id in conn.execute(held):
            vault.setdefault(int(case_id), []).append(object_id)
    return [
        Case(
            id=row.id,
            sha256=row.sha256,
            status=row.status,
            priority=row.priority,
            actions=_actions(row.actions),
            match_count=row.match_count,
            uploader_count=uploaders.get(row.id, 0),
            first_seen_at=row.first_seen_at,
            last_seen_at=row.last_seen_at,
            updated_at=row.updated_at,
            vault_objects=tuple(vault.get(row.id, ())),
        )
        for row in rows
    ]


# ---------------------------------------------------------------------- writing


def record_in(
    conn: Connection,
    *,
    request_id: str,
    at: datetime,
    uploader: str | None,
    sha256: str,
    media_type: str,
    matches: Iterable[Match],
    decision: Decision,
    policy_version: int | None,
    vault_object_id: str | None,
) -> tuple[int, int]:
    """Open or join the case of `sha256` and record one match event, in the caller's write
    transaction; returns (case id, recorded match id).

    A request id recorded already raises the database's ``IntegrityError`` (the caller's
    transaction is then to be rolled back and the recorded outcome read instead).
    """
    now = _now()
    dialect_insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(
        dialect_insert(CASES)
        .values(
            sha256=sha256,
            status="open",
            priority=None,
            actions="",
            match_count=0,
            first_seen_at=at,
            last_seen_at=at,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["sha256"])
    )
    case = conn.execute(select(CASES).where(CASES.c.sha256 == sha256).with_for_update()).one()
    priorities = [p for p in (case.priority, decision.priority) if p is not None]
    conn.execute(
        update(CASES)
        .where(CASES.c.id == case.id)
        .values(
            priority=min(priorities, default=None),
            actions=" ".join(
                a for a in ACTIONS if a in set(case.actions.split()) | set(decision.actions)
            ),
            match_count=CASES.c.match_count + 1,
            first_seen_at=min(case.first_seen_at, at),
            last_seen_at=max(case.last_seen_at, at),
            updated_at=now,
        )
    )
    match_id = conn.execute(
        insert(CASE_MATCHES).returning(CASE_MATCHES.c.id),
        {
            "request_id": request_id,
            "case_id": case.id,
            "at": at,
            "uploader": uploader,
            "sha256": sha256,
            "media_type": media_type,
            "policy_version": policy_version,
            "actions": " ".join(decision.actions),
            "priority": decision.priority,
            "reject": decision.reject,
            "evidence": json.dumps([m.to_dict() for m in matches], sort_keys=True),
            "decision": json.dumps(decision.to_dict(), sort_keys=True),
            "vault_object_id": vault_object_id,
        },
    ).scalar_one()
    return int(case.id), int(match_id)


# ---------------------------------------------------------------------- reading


def recorded_in(conn: Connection, request_id: str) -> RecordedMatch | None:
    row = conn.execute(select(CASE_MATCHES).where(CASE_MATCHES.c.request_id == request_id)).first()
    return None if row is None else _to_recorded(row)


def find_recorded(store: BankStore, request_id: str) -> RecordedMatch | None:
    """The match recorded under `request_id`, if any."""
    return _engine.read(store.engine, lambda conn: recorded_in(conn, request_id))


def get_case(store: BankStore, case_id: int, *, limit: int = MAX_LIMIT) -> CaseDetail:
    """A case and its recorded matches (the first `limit`, oldest first); `NotFound`."""

    def work(conn: Connection) -> CaseDetail:
        row = conn.execute(select(CASES).where(CASES.c.id == case_id)).first()
        if row is None:
            raise NotFound(f"no case {case_id}")
        matches = conn.execute(
            select(CASE_MATCHES)
            .where(CASE_MATCHES.c.case_id == case_id)
            .order_by(CASE_MATCHES.c.id)
            .limit(_limit(limit))
        )
        return CaseDetail(_cases(conn, [row])[0], tuple(_to_recorded(r) for r in matches))

    return _engine.read(store.engine, work)


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"a limit is from 1 to {MAX_LIMIT}")
    return limit


def _queue_order() -> tuple[Any, ...]:
    """Review-queue order: cases for review first, most urgent, then oldest, then by id."""
    return (
        CASES.c.priority.is_(None),
        CASES.c.priority,
        CASES.c.first_seen_at,
        CASES.c.id,
    )


def list_cases(
    store: BankStore,
    *,
    status: str | None = None,
    priority: int | None = None,
    uploader: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Case]:
    """Cases in review-queue order (see `_queue_order`), optionally of one status, one
    priority, or with a match from one uploader reference."""
    if status is not None and status not in CASE_STATUSES:
        raise InvalidRequest(f"unknown case status {status!r}; known: {', '.join(CASE_STATUSES)}")
    if offset < 0:
        raise InvalidRequest("an offset cannot be negative")
    query = select(CASES)
    if status is not None:
        query = query.where(CASES.c.status == status)
    if priority is not None:
        query = query.where(CASES.c.priority == priority)
    if uploader is not None:
        validate_uploader(uploader)
        mine = select(CASE_MATCHES.c.case_id).where(CASE_MATCHES.c.uploader == uploader)
        query = query.where(CASES.c.id.in_(mine))
    query = query.order_by(*_queue_order()).limit(_limit(limit)).offset(offset)
    return _engine.read(store.engine, lambda conn: _cases(conn, conn.execute(query).all()))


def uploader_view(store: BankStore, uploader: str, *, limit: int = 100) -> UploaderView:
    """Everything recorded for one uploader reference (an unknown one has zero uploads)."""
    validate_uploader(uploader)
    mine = CASE_MATCHES.c.uploader == uploader

    def work(conn: Connection) -> UploaderView:
        uploads, contents, first, last = conn.execute(
            select(
                func.count(),
                func.count(func.distinct(CASE_MATCHES.c.sha256)),
                func.min(CASE_MATCHES.c.at),
                func.max(CASE_MATCHES.c.at),
            ).where(mine)
        ).one()
        case_rows = conn.execute(
            select(CASES)
            .where(CASES.c.id.in_(select(CASE_MATCHES.c.case_id).where(mine)))
            .order_by(*_queue_order())
            .limit(_limit(limit))
        ).all()
        matches = conn.execute(
            select(CASE_MATCHES).where(mine).order_by(CASE_MATCHES.c.id.desc()).limit(limit)
        )
        # min/max come back as text from SQLite (no type for an aggregate): re-read them.
        return UploaderView(
            uploader=uploader,
            uploads=int(uploads),
            contents=int(contents),
            first_seen_at=_as_time(first),
            last_seen_at=_as_time(last),
            cases=tuple(_cases(conn, case_rows)),
            matches=tuple(_to_recorded(r) for r in matches),
        )

    return _engine.read(store.engine, work)


def _as_time(value: object) -> datetime | None:
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iter_recorded(store: BankStore, *, batch: int = 500) -> Iterator[RecordedMatch]:
    """Every recorded match, oldest first, read a batch per transaction (bounded memory)."""
    after = 0
    while True:
        query = (
            select(CASE_MATCHES)
            .where(CASE_MATCHES.c.id > after)
            .order_by(CASE_MATCHES.c.id)
            .limit(batch)
        )

        def page(conn: Connection, query: Select[Any] = query) -> Sequence[Row[Any]]:
            return conn.execute(query).all()

        rows = _engine.read(store.engine, page)
        for row in rows:
            yield _to_recorded(row)
        if len(rows) < batch:
            return
        after = rows[-1].id
