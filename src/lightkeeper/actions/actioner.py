"""The actioner: a match result in, the policy's actions carried out once per request.

`Actioner.act` is what the match route calls when an upload has acting matches:

(a) **Idempotency.** A request id already recorded returns the recorded outcome and does
    nothing again (the same id with other content is a `Conflict`).
(b) **Decide** with the policy in force (`policy_store.current_policy`). No action: nothing
    is written at all.
(c) **Quarantine first**, when the decision says so: `Vault.put` encrypts the upload in
    memory and commits its own record, with ``case_ref`` = the request id, actor
    `ACTIONER_ACTOR`, and the uploader reference in the put's logged reason. A vault object
    of this request left by an earlier attempt (see below) is reused instead.
(d) **One transaction** for everything else: the case (opened or joined, race-free), the
    recorded match (unique on the request id) linking the vault object, the webhook events
    (`webhooks.enqueue_in`: a ``match`` event when ``notify`` is among the actions, with the
    evidence but never the banks' hash values; an ``action`` event for each of block,
    quarantine and review), and the audit event (``match.act``), last.
(e) **Wake** the webhook dispatcher, so the events go out now rather than at its next poll.

Why this order loses nothing and duplicates nothing. The only side effect outside the
database is the vault's file, so it comes first; every other effect, *and the record that
the request was handled*, is then committed in one transaction, which either happens whole
or not at all. So after a crash at any point:

- before (c) finished: nothing of the request exists; the platform's retry (same
  Idempotency-Key) starts afresh (a ciphertext file without its record is noise, swept by
  `Vault.sweep`);
- between (c) and (d): a vault object exists that no recorded match references. A retry
  with the same request id finds and reuses it (no second copy); otherwise `recover`
  (at service start-up, or ``lightkeeper actions recover``) finds it once it is a minute
  old, decrypts it in memory, matches it again, and completes (d) under the original request
  id, with the policy that was in force when it was put; if nothing matches any more, it
  destroys the object with that reason recorded. Either way (d) commits exactly once: the
  request id is unique, and so is the link to a vault object, so a retry and a recovery
  racing each other cannot both commit; the loser reads the winner's record;
- after (d) committed: the request is recorded; a retry returns the recorded outcome (a).
  Webhook events were committed with it and the dispatcher delivers them at least once
  from the database, whatever happens to this process; (e) only makes it sooner.

No action is ever recorded without having been taken (quarantine precedes its record), and
no action is taken twice for one request (the record is checked first, and committed once).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, select
from sqlalchemy.exc import IntegrityError

from lightkeeper.actions.cases import (
    CASE_MATCHES,
    RecordedMatch,
    find_recorded,
    record_in,
    validate_request_id,
    validate_uploader,
)
from lightkeeper.actions.policy import Action, Decision
from lightkeeper.actions.policy_store import current_policy, policy_at
from lightkeeper.actions.vault import OBJECTS, Vault, VaultObject
from lightkeeper.actions.vault_records import to_object
from lightkeeper.actions.webhooks import enqueue_in, transaction
from lightkeeper.banks import _engine
from lightkeeper.banks.audit import acting_as, record
from lightkeeper.errors import Conflict, LightkeeperError
from lightkeeper.matching.evidence import Match, MatchResult
from lightkeeper.matching.matcher import Matcher
from lightkeeper.media.sniff import sniff

__all__ = [
    "ACTIONER_ACTOR",
    "RECOVERY_ACTOR",
    "RECOVERY_AGE",
    "ActionOutcome",
    "Actioner",
    "RecoveryReport",
    "media_type_of",
]

log = logging.getLogger("lightkeeper.actions")

#: Who the vault names as having put the objects the actioner quarantines: `recover` looks
#: for this actor's objects only (never an operator's own ``vault put``).
ACTIONER_ACTOR = "system:actioner"
#: Who `recover` acts as (vault reads, destructions, the audit trail).
RECOVERY_ACTOR = "system:recovery"
#: How old an unrecorded vault object must be before `recover` completes it: a request in
#: progress takes far less between its quarantine and its transaction.
RECOVERY_AGE = timedelta(minutes=1)
#: Evidence items carried by one ``match`` webhook event (the count says if there were more).
MAX_EVENT_MATCHES = 100

_REASON_PREFIX = "quarantined by policy; "
_EVENT_NAMESPACE = uuid.UUID("6f1d3c52-52a1-4d7e-9a7c-0c1e8e5b7a30")
_MEDIA_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "heif": "image/heif",
    "avif": "image/avif",
}


def media_type_of(data: bytes) -> str:
    """The media type of an upload, from its own bytes (never from what the client said)."""
    return _MEDIA_TYPES.get(sniff(data) or "", "application/octet-stream")


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """What was done about one request (or, when `replayed`, what had been done)."""

    request_id: str
    actions: tuple[Action, ...]
    priority: int | None
    #: The case the upload joined; None when no action was taken (nothing recorded).
    case_id: int | None
    #: The recorded match; None when no action was taken.
    match_id: int | None
    #: The policy version in force; None for the built-in default.
    policy_version: int | None
    vault_object_id: str | None
    #: True when the request id had been handled already: nothing was done this time.
    replayed: bool = False

    @property
    def reject(self) -> bool:
        """Whether the upload is refused (the policy said ``block``)."""
        return "block" in self.actions

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "actions": list(self.actions),
            "reject": self.reject,
            "priority": self.priority,
            "case_id": self.case_id,
            "match_id": self.match_id,
            "policy_version": self.policy_version,
            "vault_object_id": self.vault_object_id,
            "replayed": self.replayed,
        }

    @classmethod
    def of(cls, recorded: RecordedMatch, *, replayed: bool) -> ActionOutcome:
        return cls(
            request_id=recorded.request_id,
            actions=recorded.actions,
            priority=recorded.priority,
            case_id=recorded.case_id,
            match_id=recorded.id,
            policy_version=recorded.policy_version,
            vault_object_id=recorded.vault_object_id,
            replayed=replayed,
        )


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What `Actioner.recover` did."""

    #: Request ids whose actions were completed.
    completed: tuple[str, ...] = ()
    #: (vault object id, reason) of the objects destroyed.
    destroyed: tuple[tuple[str, str], ...] = ()
    #: (vault object id, error) of those left as they were, to try again.
    failed: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "completed": list(self.completed),
            "destroyed": [{"object_id": o, "reason": r} for o, r in self.destroyed],
            "failed": [{"object_id": o, "error": e} for o, e in self.failed],
        }


@dataclass
class _Recovery:
    completed: list[str] = field(default_factory=list)
    destroyed: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def _quarantine_reason(request_id: str, uploader: str | None) -> str:
    origin = json.dumps({"request_id": request_id, "uploader": uploader}, sort_keys=True)
    return _REASON_PREFIX + origin


def _uploader_of(reason: str) -> str | None:
    """The uploader reference a put's logged reason carries (`_quarantine_reason`)."""
    if not reason.startswith(_REASON_PREFIX):
        return None
    try:
        origin = json.loads(reason[len(_REASON_PREFIX) :])
        uploader = origin.get("uploader") if isinstance(origin, dict) else None
        return validate_uploader(uploader) if isinstance(uploader, str) else None
    except (ValueError, LightkeeperError):
        return None


def _event_id(request_id: str, kind: str) -> str:
    """A stable event id per request and event: a repeated transaction queues nothing new."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{request_id}\n{kind}"))


def _public_evidence(match: Match) -> dict[str, Any]:
    """A match's evidence without the bank's hash value (for webhooks)."""
    out = match.to_dict()
    del out["value"]
    return out


class Actioner:
    """Carries out a store's policy on match results; see the module docstring.

    `matcher` is what `recover` matches vault content with again; `on_enqueued` is called
    after each transaction that may have queued webhook events (the service passes its
    dispatcher's ``wake``). Safe to share between threads.
    """

    def __init__(
        self,
        vault: Vault,
        matcher: Matcher,
        *,
        on_enqueued: Callable[[], None] | None = None,
    ) -> None:
        self._vault = vault
        self._store = vault.store
        self._matcher = matcher
        self._on_enqueued = on_enqueued

    @property
    def vault(self) -> Vault:
        return self._vault

    # ------------------------------------------------------------------ acting

    def act(
        self,
        result: MatchResult,
        data: bytes,
        *,
        request_id: str,
        uploader_ref: str | None = None,
        media_type: str | None = None,
    ) -> ActionOutcome:
        """Carry out the policy for one upload (`data`, whose match `result` this is).

        `request_id` names the request (the platform's Idempotency-Key); calling again with
        it returns what was done the first time and does nothing. `uploader_ref` is the
        platform's opaque reference of who uploaded it. `media_type` defaults to what the
        bytes say (`media_type_of`).
        """
        request_id = validate_request_id(request_id)
        uploader = None if uploader_ref is None else validate_uploader(uploader_ref)
        sha256 = result.sha256 or hashlib.sha256(data).hexdigest()
        recorded = find_recorded(self._store, request_id)
        if recorded is not None:
            return self._replay(recorded, sha256)
        if not result.matches:  # no policy acts on nothing
            return ActionOutcome(request_id, (), None, None, None, None, None)
        version, policy = current_policy(self._store)
        decision = policy.decide(result.matches)
        if not decision.actions:
            return ActionOutcome(request_id, (), None, None, None, version, None)
        at = datetime.now(UTC)
        kind = media_type or media_type_of(data)
        object_id = None
        if "quarantine" in decision.actions:
            object_id = self._quarantine(data, sha256, request_id, uploader, kind)
        try:
            case_id, match_id = self._record(
                request_id=request_id,
                at=at,
                uploader=uploader,
                sha256=sha256,
                media_type=kind,
                matches=result.matches,
                decision=decision,
                policy_version=version,
                vault_object_id=object_id,
            )
        except IntegrityError:
            # The same request id (or vault object) was recorded meanwhile: a concurrent
            # retry, or `recover`. Theirs stands; ours was never committed.
            recorded = find_recorded(self._store, request_id)
            if recorded is None:
                raise
            if object_id is not None and object_id != recorded.vault_object_id:
                self._destroy(object_id, f"duplicate quarantine of request {request_id!r}")
            return self._replay(recorded, sha256)
        self._wake()
        return ActionOutcome(
            request_id, decision.actions, decision.priority, case_id, match_id, version, object_id
        )

    def _replay(self, recorded: RecordedMatch, sha256: str) -> ActionOutcome:
        if recorded.sha256 != sha256:
            raise Conflict(
                f"request id {recorded.request_id!r} was used already for other content; "
                "use a new Idempotency-Key for each upload"
            )
        return ActionOutcome.of(recorded, replayed=True)

    def _quarantine(
        self, data: bytes, sha256: str, request_id: str, uploader: str | None, media_type: str
    ) -> str:
        """The id of the vault object holding this request's upload: one an earlier attempt
        of the same request left unrecorded, else a new one."""
        left = self._unrecorded(
            OBJECTS.c.case_ref == request_id, OBJECTS.c.sha256 == sha256, limit=1
        )
        if left:
            return left[0].id
        item = self._vault.put(
            data,
            media_type=media_type,
            actor=ACTIONER_ACTOR,
            reason=_quarantine_reason(request_id, uploader),
            case_ref=request_id,
        )
        return item.id

    def _record(
        self,
        *,
        request_id: str,
        at: datetime,
        uploader: str | None,
        sha256: str,
        media_type: str,
        matches: Sequence[Match],
        decision: Decision,
        policy_version: int | None,
        vault_object_id: str | None,
    ) -> tuple[int, int]:
        """Step (d): the case, the recorded match, the webhook events and the audit event,
        in one transaction; returns (case id, recorded match id)."""

        def work(conn: Connection) -> tuple[int, int]:
            case_id, match_id = record_in(
                conn,
                request_id=request_id,
                at=at,
                uploader=uploader,
                sha256=sha256,
                media_type=media_type,
                matches=matches,
                decision=decision,
                policy_version=policy_version,
                vault_object_id=vault_object_id,
            )
            about = {
                "request_id": request_id,
                "case_id": case_id,
                "match_id": match_id,
                "sha256": sha256,
                "uploader": uploader,
                "at": at.isoformat(),
                "policy_version": policy_version,
            }
            if "notify" in decision.actions:
                evidence = [_public_evidence(m) for m in matches[:MAX_EVENT_MATCHES]]
                data = {
                    **about,
                    "actions": list(decision.actions),
                    "priority": decision.priority,
                    "reject": decision.reject,
                    "matches": evidence,
                    "matches_total": len(matches),
                }
                enqueue_in(conn, "match", data, event_id=_event_id(request_id, "match"), at=at)
            for action in decision.actions:
                if action == "notify":
                    continue  # the match event above is the notification
                detail: dict[str, Any] = {**about, "action": action}
                if action == "quarantine":
                    detail["vault_object_id"] = vault_object_id
                if action == "review":
                    detail["priority"] = decision.priority
                enqueue_in(conn, "action", detail, event_id=_event_id(request_id, action), at=at)
            record(
                conn,
                "match.act",
                f"case:{case_id}",
                {
                    "request_id": request_id,
                    "match_id": match_id,
                    "actions": list(decision.actions),
                    "priority": decision.priority,
                    "policy_version": policy_version,
                    "matches": len(matches),
                    "vault_object": vault_object_id,
                },
            )
            return case_id, match_id

        return transaction(self._store, work)

    def _wake(self) -> None:
        if self._on_enqueued is not None:
            try:
                self._on_enqueued()
            except Exception:  # the events are committed; the next poll sends them
                log.warning("could not wake the webhook dispatcher", exc_info=True)

    def _destroy(self, object_id: str, reason: str) -> None:
        self._vault.destroy(object_id, actor=RECOVERY_ACTOR, reason=reason)

    # ------------------------------------------------------------------ recovery

    def _unrecorded(self, *conditions: Any, limit: int | None = None) -> list[VaultObject]:
        """Live vault objects the actioner put that no recorded match references, oldest
        first."""
        query = (
            select(OBJECTS)
            .outerjoin(CASE_MATCHES, CASE_MATCHES.c.vault_object_id == OBJECTS.c.id)
            .where(
                and_(
                    OBJECTS.c.created_by == ACTIONER_ACTOR,
                    OBJECTS.c.destroyed_at.is_(None),
                    OBJECTS.c.case_ref.is_not(None),
                    CASE_MATCHES.c.id.is_(None),
                    *conditions,
                )
            )
            .order_by(OBJECTS.c.created_at, OBJECTS.c.id)
        )
        if limit is not None:
            query = query.limit(limit)
        return _engine.read(
            self._store.engine, lambda conn: [to_object(r) for r in conn.execute(query)]
        )

    def pending(self, *, older_than: timedelta = RECOVERY_AGE) -> list[VaultObject]:
        """Quarantined objects whose request was never recorded, older than `older_than`."""
        cutoff = datetime.now(UTC) - older_than
        return self._unrecorded(OBJECTS.c.created_at <= cutoff)

    def recover(
        self,
        *,
        older_than: timedelta = RECOVERY_AGE,
        stop: threading.Event | None = None,
    ) -> RecoveryReport:
        """Complete the requests that stopped between quarantine and their transaction.

        Each vault object the actioner put that no recorded match references, and older
        than `older_than`, is decrypted in memory (a logged read), matched again, and its
        actions completed under its original request id and uploader reference, with the
        policy that was in force when it was put; when nothing matches any more (or that
        policy takes no action), it is destroyed with that reason. Objects of a request
        already recorded are duplicates, destroyed as such. `stop` ends the pass early.
        """
        done = _Recovery()
        with acting_as(RECOVERY_ACTOR):
            for item in self.pending(older_than=older_than):
                if stop is not None and stop.is_set():
                    break
                try:
                    self._recover_one(item, done)
                except Exception as exc:  # one bad object must not stop the others
                    log.warning("recovery of vault object %s failed: %s", item.id, exc)
                    done.failed.append((item.id, f"{type(exc).__name__}: {exc}"))
        return RecoveryReport(tuple(done.completed), tuple(done.destroyed), tuple(done.failed))

    def _recover_one(self, item: VaultObject, done: _Recovery) -> None:
        request_id = item.case_ref or f"recovered:{item.id}"
        recorded = find_recorded(self._store, request_id)
        if recorded is not None and recorded.sha256 == item.sha256:
            why = f"duplicate quarantine of request {request_id!r}, completed already"
            self._destroy(item.id, why)
            done.destroyed.append((item.id, why))
            return
        if recorded is not None:  # the id was reused for other content: keep both apart
            request_id = f"recovered:{item.id}"
        put = self._vault.access_log(item.id, limit=1)
        uploader = _uploader_of(put[0].reason) if put else None
        data = self._vault.read(
            item.id, actor=RECOVERY_ACTOR, reason=f"crash recovery of request {request_id!r}"
        )
        result = self._matcher.match_bytes(data)
        version, policy = policy_at(self._store, item.created_at)
        decision = policy.decide(result.matches)
        if not decision.actions:
            why = (
                "crash recovery: no longer matches any bank"
                if not result.matches
                else "crash recovery: the policy in force takes no action on its matches"
            )
            self._destroy(item.id, why)
            done.destroyed.append((item.id, why))
            return
        keep = "quarantine" in decision.actions
        try:
            self._record(
                request_id=request_id,
                at=item.created_at,
                uploader=uploader,
                sha256=item.sha256,
                media_type=item.media_type,
                matches=result.matches,
                decision=decision,
                policy_version=version,
                vault_object_id=item.id if keep else None,
            )
        except IntegrityError:  # a retry of the request (or another process) won the race
            recorded = find_recorded(self._store, request_id)
            if recorded is None:
                raise
            if recorded.vault_object_id != item.id:
                why = f"duplicate quarantine of request {request_id!r}, completed already"
                self._destroy(item.id, why)
                done.destroyed.append((item.id, why))
            return
        done.completed.append(request_id)
        if not keep:
            why = "crash recovery: the policy in force does not quarantine it"
            self._destroy(item.id, why)
            done.destroyed.append((item.id, why))
        self._wake()
