"""The audit trail's hash chain: what each event's hash covers, and the walk that finds where a
chain was tampered with.

**Encoding (version 1).** An event's ``hash`` is the lowercase hex SHA-256 of the bytes

    b"lightkeeper-audit-v1\\n" + N(id) + N(position) + N(at) + N(actor) + N(action)
                               + N(subject) + N(details) + N(prev_hash)

where ``N(field)`` is the field's netstring: its UTF-8 bytes ``b`` written as
``str(len(b)) + ":" + b + ","``. Integers (``id``, ``position``) are written in decimal
ASCII; ``at`` as UTC with microseconds, ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (`format_timestamp`),
the precision both SQLite (SQLAlchemy's text format) and PostgreSQL (``timestamp``) keep
exactly; ``details`` is the stored JSON text as it is, byte for byte; ``prev_hash`` is the
previous event's hash, or `GENESIS_HASH` (64 zeros) for the first event. Length prefixes make
the encoding unambiguous (no choice of field contents makes two events encode alike), and the
leading tag keeps the digest from colliding with any other use of SHA-256 in Lightkeeper.

**Position.** Ids come from a sequence, and a PostgreSQL sequence skips the numbers taken by a
transaction that rolled back, so ids may have gaps that mean nothing. The chain is therefore
ordered by ``position`` (1, 2, 3 … exactly, assigned under the head lock, unique), which is
hashed too: a missing position is a removed event, never a rolled-back transaction.

**The walk** (`ChainChecker`) reads events in id order, holding only the last two, so a
trail of millions is checked in bounded memory. Each event gets at most one problem:

- ``edited``: its content no longer matches its hash (a field changed in the database, or the
  row moved to another id: the id is hashed). When its position is also out of order, the
  detail says it was moved or swapped.
- ``removed``: positions are missing before it (events deleted).
- ``inserted``: not part of the chain: the next event links to the one before it; or it comes
  after the head, so it was not appended by Lightkeeper.
- ``reordered``: a valid event whose position comes before one already seen.
- ``broken_link``: its ``prev_hash`` is not the previous event's hash although positions are
  in order: one of the two was rewritten and its hash recomputed.
- ``truncated``: the head (or the anchor an operator wrote down) names a position the trail
  no longer reaches: events were removed from the end.
- ``head_mismatch`` / ``head_missing``: the ``audit_head`` row names an event that is not in
  the trail, or is gone; ``anchor_mismatch``: the event at the anchor's position has another
  hash, so the trail was rewritten at or before it.

What no walk can see: someone with write access to the database who recomputes every hash
from some event on, and moves the head to match, leaves a valid chain. Only a head recorded
elsewhere earlier (`ChainHead.anchor`, ``lightkeeper audit verify --expect-head``) exposes that.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lightkeeper.errors import InvalidRequest

#: The ``prev_hash`` of the first event, and the head's hash while the trail is empty.
GENESIS_HASH = "0" * 64
_TAG = b"lightkeeper-audit-v1\n"
_HEX64 = re.compile(r"[0-9a-f]{64}")

#: Every kind of problem `ChainChecker` reports (see the module docstring).
PROBLEM_KINDS = (
    "edited",
    "removed",
    "inserted",
    "reordered",
    "broken_link",
    "truncated",
    "head_mismatch",
    "head_missing",
    "anchor_mismatch",
)


def format_timestamp(at: datetime) -> str:
    """`at` as the chain hashes it: UTC to the microsecond, ``2026-11-22T09:15:02.000123Z``."""
    if at.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    u = at.astimezone(UTC)
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T"
        f"{u.hour:02d}:{u.minute:02d}:{u.second:02d}.{u.microsecond:06d}Z"
    )


def encode_event(
    event_id: int,
    position: int,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    details: str,
    prev_hash: str,
) -> bytes:
    """The exact bytes an event's hash covers (see the module docstring)."""
    fields = (
        str(event_id),
        str(position),
        format_timestamp(at),
        actor,
        action,
        subject,
        details,
        prev_hash,
    )
    out = bytearray(_TAG)
    for field in fields:
        data = field.encode("utf-8")
        out += b"%d:%s," % (len(data), data)
    return bytes(out)


def event_hash(
    event_id: int,
    position: int,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    details: str,
    prev_hash: str,
) -> str:
    """The hex SHA-256 of `encode_event`."""
    encoded = encode_event(event_id, position, at, actor, action, subject, details, prev_hash)
    return hashlib.sha256(encoded).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The chain's last event: what an operator writes down to check the trail against later."""

    event_id: int
    position: int
    hash: str

    @property
    def anchor(self) -> str:
        """``POSITION:HASH``, the form ``lightkeeper audit verify --expect-head`` takes."""
        return f"{self.position}:{self.hash}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "position": self.position,
            "hash": self.hash,
            "anchor": self.anchor,
        }


@dataclass(frozen=True, slots=True)
class Anchor:
    """A head written down earlier: its hash, and its position when known."""

    hash: str
    position: int | None = None


def parse_anchor(text: str) -> Anchor:
    """``HASH`` or ``POSITION:HASH`` (as `ChainHead.anchor` writes it); `InvalidRequest` else."""
    position_text, _, hash_text = text.strip().rpartition(":")
    digest = hash_text.lower()
    if not _HEX64.fullmatch(digest):
        raise InvalidRequest(f"{text!r} is not an audit head: 64 hex digits, or POSITION:HASH")
    if not position_text:
        return Anchor(digest)
    if not position_text.isdigit() or int(position_text) < 1:
        raise InvalidRequest(f"{text!r}: the position before ':' must be a positive integer")
    return Anchor(digest, int(position_text))


@dataclass(frozen=True, slots=True)
class ChainEvent:
    """One stored event, as the walk reads it."""

    id: int
    position: int
    at: datetime
    actor: str
    action: str
    subject: str
    details: str
    prev_hash: str
    hash: str

    def computed_hash(self) -> str:
        return event_hash(
            self.id,
            self.position,
            self.at,
            self.actor,
            self.action,
            self.subject,
            self.details,
            self.prev_hash,
        )


@dataclass(frozen=True, slots=True)
class Problem:
    """One place where the trail is not what was appended. `event_id` None: the trail's end."""

    event_id: int | None
    kind: str
    detail: str

    def __str__(self) -> str:
        where = "head" if self.event_id is None else f"event {self.event_id}"
        return f"{where}: {self.kind} ({self.detail})"

    def to_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "kind": self.kind, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What `lightkeeper.banks.audit.verify` found. `problems` holds the first ones found, up
    to the walk's limit; `problem_count` counts them all."""

    events: int
    head: ChainHead | None
    last: ChainHead | None
    problems: tuple[Problem, ...]
    problem_count: int
    #: None when no anchor was given; else whether it was found, hash and position agreeing.
    anchor_found: bool | None

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "head": None if self.head is None else self.head.to_dict(),
            "last": None if self.last is None else self.last.to_dict(),
            "problem_count": self.problem_count,
            "problems": [problem.to_dict() for problem in self.problems],
            "anchor_found": self.anchor_found,
        }


@dataclass(slots=True)
class _Seen:
    """An event the walk has passed: its place, and whether it was flagged."""

    id: int
    position: int
    hash: str
    #: None (it checks out), "edited" (content changed in place), "moved" (content changed
    #: and its position out of order), "other" (another problem reported at it).
    flag: str | None


class ChainChecker:
    """Walks a trail fed in id order and reports where it departs from an appended chain.

    `head` is the stored ``audit_head`` row read in the same snapshot as the events (None when
    the row is missing); `anchor`, a head an operator wrote down earlier.
    """

    def __init__(
        self, head: ChainHead | None, *, anchor: Anchor | None = None, max_problems: int = 1000
    ) -> None:
        self._head = head
        self._anchor = anchor
        self._anchor_found: bool | None = None if anchor is None else False
        self._anchor_checked = False
        self._max_problems = max_problems
        self._problems: list[Problem] = []
        self._problem_count = 0
        self._last_problem_id: int | None = None
        self._events = 0
        self._prev: _Seen | None = None
        self._before: _Seen | None = None
        #: The last event that checked out, and how many flagged events came after it: an
        #: event edited in place still holds its position, one inserted holds none, so the
        #: next position is anywhere from trusted + 1 to trusted + 1 + run.
        self._trusted: _Seen | None = None
        self._flagged_run = 0
        self._head_seen = False
        #: The head's hash turned up, in an event moved away from the head's id.
        self._head_moved = False
        self._after_head: int | None = None
        self._max_position = 0
        self._last: ChainHead | None = None

    def _report(self, event_id: int | None, kind: str, detail: str) -> None:
        # A later finding about the same event knows more (an "edited" event turns out to
        # be an inserted one): it replaces the earlier one instead of adding a second.
        if event_id is not None and event_id == self._last_problem_id:
            if self._problems and self._problems[-1].event_id == event_id:
                self._problems[-1] = Problem(event_id, kind, detail)
            return
        self._problem_count += 1
        self._last_problem_id = event_id
        if len(self._problems) < self._max_problems:
            self._problems.append(Problem(event_id, kind, detail))

    def feed(self, event: ChainEvent) -> None:
        """Check the next event in id order against the ones before it."""
        self._events += 1
        prev, before, trusted = self._prev, self._before, self._trusted
        lowest = (0 if trusted is None else trusted.position) + 1
        highest = lowest + self._flagged_run
        seen = _Seen(event.id, event.position, event.hash, None)
        next_before = prev

        if event.computed_hash() != event.hash:
            detail = "its content does not match its hash"
            seen.flag = "edited"
            if event.position != highest:
                detail += (
                    f"; it holds position {event.position} where {highest} comes next: "
                    "moved or swapped"
                )
                seen.flag = "moved"
            self._report(event.id, "edited", detail)
        elif event.prev_hash == (GENESIS_HASH if prev is None else prev.hash):
            follows = 1 if prev is None else prev.position + 1
            if event.position != follows:
                seen.flag = "other"
                self._report(
                    event.id,
                    "broken_link",
                    f"it links to the event before it but holds position {event.position}, "
                    f"not {follows}: its hash was recomputed",
                )
        elif prev is not None and self._skips(event, prev, before, trusted):
            # The event before it is not part of the chain: this one continues the chain from
            # the event before that (or from its start).
            anchor = before if prev.flag is None else trusted
            linked = "the start of the trail" if anchor is None else f"event {anchor.id}"
            self._report(
                prev.id, "inserted", f"not in the chain: event {event.id} follows {linked}"
            )
            next_before = anchor
        elif event.position > highest:
            missing = event.position - highest
            span = (
                f"position {highest}"
                if missing == 1
                else f"positions {highest}–{event.position - 1}"
            )
            seen.flag = "other"
            self._report(event.id, "removed", f"{missing} event(s) missing before it ({span})")
        elif event.position < lowest:
            seen.flag = "other"
            self._report(
                event.id,
                "reordered",
                f"it holds position {event.position}, but position {lowest} comes next",
            )
        elif prev is None or prev.flag is None:
            seen.flag = "other"
            previous = "the genesis hash" if prev is None else f"event {prev.id}'s hash"
            self._report(
                event.id,
                "broken_link",
                f"its prev_hash is not {previous}: it, or the event before it, was rewritten "
                "and its hash recomputed",
            )
        # else: the break is explained by the flagged event before it, already reported.

        self._prev, self._before = seen, next_before
        if seen.flag is None:
            self._trusted, self._flagged_run = seen, 0
        else:
            self._flagged_run += 1
        self._track_ends(event)

    @staticmethod
    def _skips(event: ChainEvent, prev: _Seen, before: _Seen | None, trusted: _Seen | None) -> bool:
        """Whether `event` continues the chain from before `prev`, leaving `prev` out.

        After an event that checked out, the chain would continue from the one before it;
        after a flagged one, from the last event that checked out (or the chain's start).
        """
        if prev.flag is None:
            target = before
            if target is not None and target.flag is not None:
                return False
        else:
            target = trusted
        if target is None:
            return event.prev_hash == GENESIS_HASH and event.position == 1
        return event.prev_hash == target.hash and event.position == target.position + 1

    def _track_ends(self, event: ChainEvent) -> None:
        self._last = ChainHead(event.id, event.position, event.hash)
        self._max_position = max(self._max_position, event.position)
        head = self._head
        if self._head_seen:
            if self._after_head is None:
                self._after_head = event.id
        elif head is not None and event.hash == head.hash:
            if (event.id, event.position) == (head.event_id, head.position):
                self._head_seen = True
            else:
                self._head_moved = True
        anchor = self._anchor
        if anchor is None or self._anchor_checked:
            return
        if anchor.position is None:
            if event.hash == anchor.hash:
                self._anchor_found = self._anchor_checked = True
        elif event.position == anchor.position:
            self._anchor_checked = True
            self._anchor_found = event.hash == anchor.hash
            if not self._anchor_found:
                self._report(
                    event.id,
                    "anchor_mismatch",
                    f"the expected head at position {anchor.position} has hash "
                    f"{anchor.hash[:16]}…, this event {event.hash[:16]}…: the trail was "
                    "rewritten at or before it",
                )

    def finish(self) -> VerifyReport:
        """Check the trail's end against the head and the anchor; the report."""
        head, last = self._head, self._last
        if head is None:
            self._report(None, "head_missing", "the audit_head row is gone: the end is unchecked")
        elif self._head_seen:
            if self._after_head is not None:
                self._report(
                    self._after_head,
                    "inserted",
                    f"it comes after the head (event {head.event_id}): not appended by Lightkeeper",
                )
        elif self._head_moved:
            pass  # the event moved away from the head's id is reported where it now is
        elif last is None:
            if head.position != 0 or head.hash != GENESIS_HASH:
                self._report(
                    head.event_id,
                    "truncated",
                    f"the trail is empty but its head is event {head.event_id} at position "
                    f"{head.position}: every event was removed",
                )
        elif self._max_position < head.position:
            self._report(
                head.event_id,
                "truncated",
                f"the head is event {head.event_id} at position {head.position}, the trail ends "
                f"at position {self._max_position}: {head.position - self._max_position} "
                "event(s) removed from the end",
            )
        else:
            self._report(
                head.event_id,
                "head_mismatch",
                f"the head names event {head.event_id} at position {head.position} with hash "
                f"{head.hash[:16]}…, which is not in the trail: rewritten",
            )
        anchor = self._anchor
        if anchor is not None and not self._anchor_checked:
            if anchor.position is not None and (last is None or last.position < anchor.position):
                ends = "is empty" if last is None else f"ends at position {last.position}"
                self._report(
                    None,
                    "truncated",
                    f"the trail {ends}, before the expected head at position {anchor.position}: "
                    "events were removed from the end",
                )
            else:
                self._report(
                    None,
                    "truncated",
                    f"no event has the expected head's hash {anchor.hash[:16]}…: events were "
                    "removed from the end, or the trail was rewritten before it",
                )
        return VerifyReport(
            events=self._events,
            head=head,
            last=last,
            problems=tuple(self._problems),
            problem_count=self._problem_count,
            anchor_found=self._anchor_found,
        )
