"""Failed sign-ins, limited per user name and per client address.

Password guessing against the reviewer UI is slowed twice over: Argon2id makes each guess
cost the server (and so the guesser) real time, and this limiter refuses further attempts
for a name, or from an address, once `FAILURES_PER_USER` or `FAILURES_PER_ADDRESS` failures
fall within `FAILURE_WINDOW_S`, before any password is checked. A successful sign-in clears
its name's count (a person who mistyped twice is not locked out later in the day).

An attempt is reserved before its password is checked and settled afterwards
(`SignInLimiter.attempt`): checks still in progress count against the limits together with
the failures recorded, so guesses sent all at once for one name are refused past the limit
like guesses sent one after another. IPv6 clients are counted by their /64 prefix (one
host usually holds a whole /64); an IPv4-mapped IPv6 address counts as its IPv4 address.

Names and addresses are kept in two tables of at most `MAX_TRACKED` entries each. When one
is full, entries with no failure left in the window are dropped first, then the one whose
last failure is oldest among those neither locked nor being checked. A locked entry is never
forgotten to make room, so a flood of new names or addresses cannot unlock anyone: if a
table holds nothing but locked entries (and checks in progress), an attempt with a name or
address it does not hold is refused, with the time until the first of those locks ends,
rather than forget a lock. Names and addresses already held are not affected.

Counts live in the process's memory: each worker of ``lightkeeper serve --workers N``
counts its own, so the effective limit is up to N times higher; a restart forgets them.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = [
    "FAILURES_PER_ADDRESS",
    "FAILURES_PER_USER",
    "FAILURE_WINDOW_S",
    "MAX_TRACKED",
    "SignInAttempt",
    "SignInLimiter",
    "SignInRefused",
    "address_key",
]

#: Failed sign-ins allowed within `FAILURE_WINDOW_S`, per user name and per client address.
FAILURES_PER_USER = 5
FAILURES_PER_ADDRESS = 20
FAILURE_WINDOW_S = 15 * 60.0
#: Most user names, and most client addresses, remembered at once (each table its own).
MAX_TRACKED = 10_000


class SignInRefused(Exception):
    """Too many failed sign-ins: no password is checked; try again in `wait_s` seconds."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"too many failed sign-ins; try again in {math.ceil(wait_s)} s")
        #: Seconds until another attempt may be allowed (more than 0).
        self.wait_s = wait_s


def address_key(address: str) -> str:
    """What a client address is counted as: an IPv4 address as itself, an IPv6 address by
    its /64 prefix (``2001:db8::/64``), an IPv4-mapped IPv6 address as its IPv4 address, and
    anything that does not parse as an address (``unknown``, a proxy's name) as its own
    string."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))  # drops any zone too
    return str(ip)


@dataclass
class _Entry:
    """One name's or address's recent failures (oldest first) and checks in progress."""

    failures: deque[float] = field(default_factory=deque)
    pending: int = 0
    #: When its last failure was recorded, or it was made (the table's order).
    active: float = 0.0


@dataclass
class _Table:
    """Entries by key, oldest last failure (or making) first, at most `size` of them."""

    limit: int
    size: int
    entries: OrderedDict[str, _Entry] = field(default_factory=OrderedDict)
    #: Counts changes that may make room (a release, a clearing, an entry dropped).
    version: int = 0
    #: After a scan found no room: `version` then, and until when no lock ends.
    full: tuple[int, float] | None = None

    def recent(self, key: str, cutoff: float) -> _Entry | None:
        entry = self.entries.get(key)
        if entry is not None:
            while entry.failures and entry.failures[0] <= cutoff:
                entry.failures.popleft()
        return entry

    def wait(self, entry: _Entry | None, now: float, window_s: float) -> float:
        """Seconds until `entry` is under its limit again, counting checks in progress as
        failures to come; 0: it is under it now."""
        if entry is None:
            return 0.0
        used = len(entry.failures) + entry.pending
        if used < self.limit:
            return 0.0
        must_expire = used - self.limit + 1
        if must_expire > len(entry.failures):  # the checks in progress alone fill the limit
            return window_s  # if they all fail, this long; less if one succeeds
        return max(entry.failures[must_expire - 1] + window_s - now, 1e-3)

    def entry(self, key: str, now: float) -> _Entry:
        """The entry for `key`, made (as the most recent) if need be: there must be room."""
        found = self.entries.get(key)
        if found is None:
            found = self.entries[key] = _Entry(active=now)
        return found

    def record_failure(self, key: str, now: float) -> None:
        entry = self.entry(key, now)
        entry.failures.append(now)
        entry.active = now
        self.entries.move_to_end(key)

    def release(self, entry: _Entry) -> None:
        entry.pending = max(entry.pending - 1, 0)
        self.version += 1

    def clear(self, key: str) -> None:
        entry = self.entries.get(key)
        if entry is not None:
            entry.failures.clear()
            self.version += 1
            self.drop_if_empty(key)

    def drop_if_empty(self, key: str) -> None:
        entry = self.entries.get(key)
        if entry is not None and not entry.failures and not entry.pending:
            del self.entries[key]
            self.version += 1

    def make_room(self, now: float, window_s: float) -> float:
        """Make room for one more entry; 0 when there is room, else the seconds until some
        entry may be forgotten (nothing is forgotten that is locked or being checked)."""
        if len(self.entries) < self.size:
            return 0.0
        if self.full is not None and self.full[0] == self.version and now < self.full[1]:
            return max(self.full[1] - now, 1.0)  # nothing changed since the last full scan
        cutoff = now - window_s
        # First every entry with no failure left in the window: they are all at the front.
        expired = []
        for key, entry in self.entries.items():
            if entry.active > cutoff:
                break
            if not entry.pending:
                expired.append(key)
        for key in expired:
            del self.entries[key]
        if len(self.entries) < self.size:
            return 0.0
        # Then the one with the oldest last failure that is neither locked nor being checked.
        until = now + window_s
        for key, entry in self.entries.items():
            if entry.pending:
                continue
            while entry.failures and entry.failures[0] <= cutoff:
                entry.failures.popleft()
            if len(entry.failures) < self.limit:
                del self.entries[key]
                return 0.0
            until = min(until, entry.failures[len(entry.failures) - self.limit] + window_s)
        # Full of locks: until the first of them ends, or a check in progress is settled
        # (which changes `version`), there is no room, and no need to look again.
        self.full = (self.version, until)
        return max(until - now, 1.0)


class SignInAttempt:
    """One reserved sign-in attempt (from `SignInLimiter.attempt`): settle it once, with
    `failed` or `succeeded`, after checking the password."""

    def __init__(self, limiter: SignInLimiter, user: str, address: str) -> None:
        self._limiter = limiter
        self._user = user
        self._address = address
        self._settled = False

    @property
    def settled(self) -> bool:
        return self._settled

    def failed(self) -> None:
        """The password was wrong (or the name unknown, or the account disabled): the
        reservation becomes a recorded failure for the name and the address."""
        self._settle(failed=True)

    def succeeded(self) -> None:
        """Signed in: the reservation is released and the name's failures are cleared."""
        self._settle(failed=False, clear_user=True)

    def _release(self) -> None:
        """Neither outcome (the check itself broke): the reservation is released."""
        self._settle(failed=False)

    def _settle(self, *, failed: bool, clear_user: bool = False) -> None:
        if self._settled:
            raise RuntimeError("this sign-in attempt is settled already")
        self._settled = True
        self._limiter._settle(self._user, self._address, failed=failed, clear_user=clear_user)


@dataclass
class SignInLimiter:
    """Failed sign-ins per user name and per client address, in a sliding window.

    The sign-in page checks a password only inside `attempt`. `wait`, `failed` and
    `succeeded` read and record outside any attempt (tests, tools); they reserve nothing.
    """

    per_user: int = FAILURES_PER_USER
    per_address: int = FAILURES_PER_ADDRESS
    window_s: float = FAILURE_WINDOW_S
    #: Most entries per table (names; addresses).
    max_tracked: int = MAX_TRACKED
    #: Seconds, for the window (a test's fake clock).
    clock: Callable[[], float] = time.monotonic
    _users: _Table = field(init=False)
    _addresses: _Table = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self._users = _Table(self.per_user, self.max_tracked)
        self._addresses = _Table(self.per_address, self.max_tracked)

    @staticmethod
    def _keys(username: str, address: str) -> tuple[str, str]:
        return username.strip().lower(), address_key(address)

    def _waits(self, user: str, address: str, now: float) -> float:
        cutoff = now - self.window_s
        return max(
            self._users.wait(self._users.recent(user, cutoff), now, self.window_s),
            self._addresses.wait(self._addresses.recent(address, cutoff), now, self.window_s),
        )

    @contextmanager
    def attempt(self, username: str, address: str) -> Iterator[SignInAttempt]:
        """Reserve an attempt to check this name's password from this address, or raise
        `SignInRefused` (checking nothing) when the name or the address is at its limit,
        counting the checks already in progress, or when there is no room to remember a
        new name or address without forgetting a locked one.

        Settle the attempt inside the block: ``failed()`` after a wrong password,
        ``succeeded()`` after a right one. Leaving the block by an exception releases an
        unsettled reservation (the exception goes on); leaving it normally without settling
        releases it too, and raises `RuntimeError`, since that is a mistake in the caller.
        """
        user, addr = self._keys(username, address)
        with self._lock:
            now = self.clock()
            wait = self._waits(user, addr, now)
            for table, key in ((self._users, user), (self._addresses, addr)):
                if wait == 0 and key not in table.entries:
                    wait = table.make_room(now, self.window_s)
            if wait > 0:
                raise SignInRefused(wait)
            self._users.entry(user, now).pending += 1
            self._addresses.entry(addr, now).pending += 1
        reserved = SignInAttempt(self, user, addr)
        try:
            yield reserved
        except BaseException:
            if not reserved.settled:
                reserved._release()
            raise
        if not reserved.settled:
            reserved._release()
            raise RuntimeError("a sign-in attempt was left without failed() or succeeded()")

    def _settle(self, user: str, address: str, *, failed: bool, clear_user: bool) -> None:
        with self._lock:
            now = self.clock()
            cutoff = now - self.window_s
            for table, key in ((self._users, user), (self._addresses, address)):
                entry = table.recent(key, cutoff)
                if entry is None:  # cannot happen: an entry being checked is kept
                    continue
                table.release(entry)
                if failed:
                    table.record_failure(key, now)
            if clear_user:
                self._users.clear(user)
            for table, key in ((self._users, user), (self._addresses, address)):
                table.drop_if_empty(key)

    def wait(self, username: str, address: str) -> float:
        """Seconds until another attempt is allowed for this name and address; 0: now
        (checks in progress count as failures to come)."""
        user, addr = self._keys(username, address)
        with self._lock:
            return self._waits(user, addr, self.clock())

    def failed(self, username: str, address: str) -> None:
        """Record a failure without a reservation. A name or address that cannot be
        remembered without forgetting a locked one is not recorded (`attempt` would have
        refused it)."""
        user, addr = self._keys(username, address)
        with self._lock:
            now = self.clock()
            for table, key in ((self._users, user), (self._addresses, addr)):
                table.recent(key, now - self.window_s)
                if key in table.entries or table.make_room(now, self.window_s) == 0:
                    table.record_failure(key, now)

    def succeeded(self, username: str) -> None:
        """Clear this name's failures (its checks in progress still count)."""
        user, _ = self._keys(username, "")
        with self._lock:
            self._users.clear(user)
