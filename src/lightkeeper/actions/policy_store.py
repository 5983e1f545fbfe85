"""Policies kept in the bank store, with their whole history.

Every `set_policy` adds a *version* (1, 2, 3 …) with the time, the actor (who set it, from
`lightkeeper.banks.audit.current_actor`) and a comment saying why; nothing is ever changed
or removed. The highest version is in force (`current_policy`); with none stored, the
built-in `DEFAULT_POLICY` is, reported as version None. `policy_at` answers the question a
regulator asks: which policy was in force at a given moment.

Each version is audited (``policy.set``) in the same transaction, with the SHA-256 of its
canonical document: the audit trail is hash-chained and the policy table is not, so a
document edited in the database afterwards no longer matches the digest its audit event
committed to (`PolicyVersion.sha256` recomputes it for comparison).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Row, Table, func, insert, select

from lightkeeper.actions.cases import iter_recorded
from lightkeeper.actions.policy import DEFAULT_POLICY, Action, Policy
from lightkeeper.banks import _engine
from lightkeeper.banks.audit import current_actor, record
from lightkeeper.banks.models import PolicyVersionRow
from lightkeeper.banks.store import BankStore
from lightkeeper.errors import InvalidRequest, NotFound

__all__ = [
    "POLICIES",
    "DryRun",
    "DryRunChange",
    "PolicyVersion",
    "canonical_document",
    "current_policy",
    "dry_run",
    "get_policy_version",
    "policy_at",
    "policy_history",
    "set_policy",
]

POLICIES = cast(Table, PolicyVersionRow.__table__)
_MAX_COMMENT = 1000


def canonical_document(policy: Policy) -> str:
    """The policy as stored: JSON with sorted keys and no spaces (one text per policy)."""
    return json.dumps(policy.to_dict(), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """One stored policy: what it says, when it was set, by whom and why."""

    version: int
    created_at: datetime
    actor: str
    comment: str
    policy: Policy
    #: The stored text, exactly (its SHA-256 is in the ``policy.set`` audit event).
    document: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.document.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "actor": self.actor,
            "comment": self.comment,
            "sha256": self.sha256,
            "policy": self.policy.to_dict(),
        }


def _to_version(row: Row[Any]) -> PolicyVersion:
    return PolicyVersion(
        version=row.version,
        created_at=row.created_at,
        actor=row.actor,
        comment=row.comment,
        policy=Policy.from_dict(json.loads(row.document)),
        document=row.document,
    )


def _check_comment(comment: str) -> str:
    comment = comment.strip()
    if len(comment) > _MAX_COMMENT:
        raise InvalidRequest(f"a policy comment is at most {_MAX_COMMENT} characters")
    if any(ord(ch) < 32 and ch not in "\t\n" for ch in comment):
        raise InvalidRequest("a policy comment cannot hold control characters")
    return comment


def _latest(conn: Connection, when: datetime | None = None) -> Row[Any] | None:
    query = select(POLICIES)
    if when is not None:
        query = query.where(POLICIES.c.created_at <= when)
    return conn.execute(query.order_by(POLICIES.c.version.desc()).limit(1)).first()


def current_policy(store: BankStore) -> tuple[int | None, Policy]:
    """The policy in force and its version; (None, `DEFAULT_POLICY`) when none was set."""
    row = _engine.read(store.engine, _latest)
    return (None, DEFAULT_POLICY) if row is None else (row.version, _to_version(row).policy)


def policy_at(store: BankStore, when: datetime) -> tuple[int | None, Policy]:
    """The policy that was in force at `when` (timezone-aware): the last one set at or
    before it; (None, `DEFAULT_POLICY`) before the first."""
    if when.tzinfo is None:
        raise InvalidRequest("the time must be timezone-aware")
    row = _engine.read(store.engine, lambda conn: _latest(conn, when.astimezone(UTC)))
    return (None, DEFAULT_POLICY) if row is None else (row.version, _to_version(row).policy)


def set_policy(store: BankStore, policy: Policy | Mapping[str, Any], *, comment: str = "") -> int:
    """Put `policy` (a `Policy`, or its JSON document, checked whole) in force; returns its
    version. Setting the policy already in force again adds nothing and returns its version.
    """
    chosen = policy if isinstance(policy, Policy) else Policy.from_dict(policy)
    document = canonical_document(chosen)
    note = _check_comment(comment)
    actor = current_actor()

    def work(conn: Connection) -> int:
        latest = _latest(conn)
        if latest is not None and latest.document == document:
            return int(latest.version)
        version = (
            int(conn.execute(select(func.coalesce(func.max(POLICIES.c.version), 0))).scalar_one())
            + 1
        )
        now = datetime.now(UTC)
        conn.execute(
            insert(POLICIES),
            {
                "version": version,
                "created_at": now,
                "actor": actor[:200],
                "document": document,
                "comment": note,
            },
        )
        record(
            conn,
            "policy.set",
            f"policy:{version}",
            {
                "version": version,
                "comment": note[:200],
                "rules": [rule.name for rule in chosen.rules],
                "sha256": hashlib.sha256(document.encode("utf-8")).hexdigest(),
            },
            at=now,
        )
        return version

    # The store's writer transaction: versions are numbered one writer at a time.
    return _engine.write(store.engine, work)


def policy_history(store: BankStore) -> list[PolicyVersion]:
    """Every stored version, oldest first."""
    query = select(POLICIES).order_by(POLICIES.c.version)
    return _engine.read(store.engine, lambda conn: [_to_version(r) for r in conn.execute(query)])


def get_policy_version(store: BankStore, version: int) -> PolicyVersion:
    """One stored version; `NotFound` if there is none."""
    query = select(POLICIES).where(POLICIES.c.version == version)
    row = _engine.read(store.engine, lambda conn: conn.execute(query).first())
    if row is None:
        raise NotFound(f"no policy version {version}")
    return _to_version(row)


# ---------------------------------------------------------------------- dry run


@dataclass(frozen=True, slots=True)
class DryRunChange:
    """One recorded match whose actions or priority a candidate policy would change."""

    match_id: int
    request_id: str
    case_id: int
    at: datetime
    #: What was done (as recorded, under the policy then in force).
    old_actions: tuple[Action, ...]
    old_priority: int | None
    #: What the candidate would have done with the same matches.
    new_actions: tuple[Action, ...]
    new_priority: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "match_id": self.match_id,
            "request_id": self.request_id,
            "case_id": self.case_id,
            "at": self.at.isoformat(),
            "old": {"actions": list(self.old_actions), "priority": self.old_priority},
            "new": {"actions": list(self.new_actions), "priority": self.new_priority},
        }


@dataclass(frozen=True, slots=True)
class DryRun:
    """What a candidate policy would have done differently over the recorded matches."""

    #: Recorded matches examined.
    examined: int
    #: How many of them would change (all of them, even past `limit`).
    changed: int
    #: The changes, oldest first, at most `limit` of them.
    changes: tuple[DryRunChange, ...] = field(default=())
    #: Per action, how many recorded matches would gain it (+) or lose it (-).
    gained: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)

    @property
    def truncated(self) -> bool:
        return self.changed > len(self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "examined": self.examined,
            "changed": self.changed,
            "truncated": self.truncated,
            "gained": dict(self.gained),
            "lost": dict(self.lost),
            "changes": [c.to_dict() for c in self.changes],
        }


def dry_run(
    store: BankStore, candidate: Policy | Mapping[str, Any], *, limit: int = 1000
) -> DryRun:
    """Apply `candidate` to the matches of every recorded (acted-on) upload and compare with
    what was recorded as done: the uploads whose actions or review priority would differ.

    Nothing is written. Past uploads that no policy acted on were never recorded, so a
    candidate that acts on more than today's cannot be judged on them here.
    """
    policy = candidate if isinstance(candidate, Policy) else Policy.from_dict(candidate)
    examined = changed = 0
    found: list[DryRunChange] = []
    gained: dict[str, int] = {}
    lost: dict[str, int] = {}
    for recorded in iter_recorded(store):
        examined += 1
        new = policy.decide(recorded.matches())
        if (new.actions, new.priority) == (recorded.actions, recorded.priority):
            continue
        changed += 1
        for action in set(new.actions) - set(recorded.actions):
            gained[action] = gained.get(action, 0) + 1
        for action in set(recorded.actions) - set(new.actions):
            lost[action] = lost.get(action, 0) + 1
        if len(found) < limit:
            found.append(
                DryRunChange(
                    match_id=recorded.id,
                    request_id=recorded.request_id,
                    case_id=recorded.case_id,
                    at=recorded.at,
                    old_actions=recorded.actions,
                    old_priority=recorded.priority,
                    new_actions=new.actions,
                    new_priority=new.priority,
                )
            )
    return DryRun(
        examined, changed, tuple(found), dict(sorted(gained.items())), dict(sorted(lost.items()))
    )
