"""Sending queued webhook deliveries: leases, timeouts, retries with backoff, dead letters.

A `Dispatcher` claims due deliveries, sends them, and records the outcome; any number of
them, in any number of processes, may share one store:

- **Claiming** writes a random lease token and a lease expiry into the rows it takes, in one
  short transaction: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (dispatchers skip each other's
  rows instead of queueing behind them), ``BEGIN IMMEDIATE`` on SQLite (one writer at a
  time, so the select-then-update cannot interleave). Two dispatchers never hold one
  delivery at once.
- **Sending** is an HTTP POST of the event's stored bytes, signed afresh
  (`lightkeeper.actions.signing`), with connect, read and total timeouts, at most
  `DeliverySettings.concurrency` at a time, and at most `per_endpoint` of them to any one
  endpoint. Sends run on one asyncio loop, so a receiver that hangs holds its slots until
  the total timeout and no more: the other endpoints' deliveries go on in the other slots,
  and the loop claims more work whenever a slot frees. Redirects are not followed (a 3xx
  is a failure).
- **Recording** is fenced by the lease token: only the holder of the lease may mark a
  delivery delivered, retried or dead. A 2xx answer delivers. Anything else (another status,
  no answer, a timeout) schedules a retry after a delay drawn uniformly between zero and
  ``min(cap, base × 2^(attempts-1))`` ("full jitter": retries from many deliveries spread
  out instead of arriving together), or after the receiver's ``Retry-After`` when that is
  longer. A delivery that has had `max_attempts` attempts, or has been queued longer than
  `max_age`, becomes a dead letter instead (`lightkeeper.actions.webhooks.requeue` revives
  it). Every attempt is logged with its time, duration and status or error.
- **Surviving restarts**: everything lives in the database. A process that dies mid-send
  leaves a lease that runs out (`DeliverySettings.lease_s`, longer than any send), and the
  delivery is due again for whichever dispatcher looks next. A dispatcher stopped cleanly
  gives its unfinished leases back at once. Either way the receiver may see an event twice
  (at least once), and deduplicates on its id.

Database calls run on one thread per dispatcher, one after another (the "one writer"
pattern: SQLite takes writes one at a time anyway), so that the loop never blocks on them.
Deliveries are not ordered: a retried event may arrive after later ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

import httpx
from sqlalchemy import Connection, insert, or_, select, update

from lightkeeper import __version__
from lightkeeper.actions.signing import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature_header,
)
from lightkeeper.actions.webhooks import ATTEMPTS, DELIVERIES, ENDPOINTS, EVENTS, transaction
from lightkeeper.banks import _engine
from lightkeeper.banks.store import BankStore
from lightkeeper.errors import InvalidRequest

T = TypeVar("T")
log = logging.getLogger("lightkeeper.webhooks")

ATTEMPT_HEADER = "Lightkeeper-Delivery-Attempt"
USER_AGENT = f"Lightkeeper-Webhooks/{__version__}"
_ERROR_CHARS = 500

Result = Literal["delivered", "retry", "dead", "lost"]


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """How a dispatcher sends, retries and gives up. Times are in seconds."""

    #: Sends in flight at once (per dispatcher).
    concurrency: int = 8
    #: Sends in flight at once to one endpoint: a hanging one never holds every slot.
    per_endpoint: int = 4
    connect_timeout: float = 5.0
    #: Longest wait for any one read of the answer.
    read_timeout: float = 10.0
    #: Longest a whole attempt may take, connecting and a slow-dripping answer included.
    total_timeout: float = 30.0
    #: First retry delay's upper bound; it doubles with each attempt, up to `backoff_cap`.
    backoff_base: float = 5.0
    backoff_cap: float = 3600.0
    #: Attempts before a delivery becomes a dead letter (`max_age` usually comes first:
    #: with the defaults, three days are about 150 attempts).
    max_attempts: int = 200
    #: Time in the queue before a failing delivery becomes a dead letter.
    max_age: timedelta = timedelta(days=3)
    #: How long a claim holds a delivery; None: `total_timeout` + 30 s. Must outlast a send.
    lease: float | None = None
    #: How often an idle dispatcher looks for due deliveries.
    poll_interval: float = 1.0
    #: On `Dispatcher.stop`, how long sends in flight may still finish.
    stop_grace: float = 5.0

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 1000:
            raise InvalidRequest("concurrency must be between 1 and 1000")
        if not 1 <= self.per_endpoint <= self.concurrency:
            raise InvalidRequest("per_endpoint must be between 1 and concurrency")
        for name in ("connect_timeout", "read_timeout", "total_timeout", "poll_interval"):
            if not getattr(self, name) > 0:
                raise InvalidRequest(f"{name} must be positive")
        if not 0 < self.backoff_base <= self.backoff_cap:
            raise InvalidRequest("backoff_base must be positive and at most backoff_cap")
        if self.max_attempts < 1:
            raise InvalidRequest("max_attempts must be at least 1")
        if self.max_age <= timedelta(0):
            raise InvalidRequest("max_age must be positive")
        if self.lease is not None and not self.lease > self.total_timeout:
            raise InvalidRequest("the lease must be longer than total_timeout")
        if self.stop_grace < 0:
            raise InvalidRequest("stop_grace cannot be negative")

    @property
    def lease_s(self) -> float:
        return self.total_timeout + 30.0 if self.lease is None else self.lease


def backoff_delay(attempts: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait after the `attempts`-th failure: full jitter over an exponential."""
    ceiling = min(cap, base * 2.0 ** min(attempts - 1, 64))
    return rng.uniform(0.0, ceiling)


def _retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` in seconds (HTTP dates are ignored: a clock-skew trap)."""
    if value is None or not value.strip().isascii() or not value.strip().isdigit():
        return None
    return float(value.strip())


@dataclass
class DeliveryReport:
    """What one `Dispatcher.deliver_due` (or a running dispatcher, so far) did."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0
    #: Attempts whose lease another dispatcher had taken over meanwhile (a send that took
    #: longer than the lease, or an endpoint removed while it was sent).
    lost: int = 0
    released: int = 0

    @property
    def attempted(self) -> int:
        return self.delivered + self.retried + self.dead + self.lost

    def count(self, result: Result) -> None:
        if result == "delivered":
            self.delivered += 1
        elif result == "retry":
            self.retried += 1
        elif result == "dead":
            self.dead += 1
        else:
            self.lost += 1

    def to_dict(self) -> dict[str, int]:
        return {
            "attempted": self.attempted,
            "delivered": self.delivered,
            "retried": self.retried,
            "dead": self.dead,
            "lost": self.lost,
            "released": self.released,
        }


@dataclass(frozen=True, slots=True)
class _Claim:
    delivery_id: int
    endpoint_id: int
    token: str
    attempt: int
    queued_at: datetime
    event_id: str
    event_type: str
    body: bytes
    url: str
    secrets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Outcome:
    at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    retry_after: float | None = None


@dataclass
class _Running:
    thread: threading.Thread
    ready: threading.Event = field(default_factory=threading.Event)
    loop: asyncio.AbstractEventLoop | None = None
    wake: asyncio.Event | None = None


class Dispatcher:
    """Sends a store's due deliveries; see the module docstring.

    For a service: `start` (a background thread with its own event loop) and `stop`, or use
    it as a context manager. For the CLI and tests: `deliver_due`, one pass over what is due.
    """

    def __init__(
        self,
        store: BankStore,
        settings: DeliverySettings | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or DeliverySettings()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._rng = rng or random.Random()
        self._transport = transport
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lightkeeper-webhooks-db")
        self._running: _Running | None = None
        self._stopping = threading.Event()
        #: What the background dispatcher has done since `start`.
        self.report = DeliveryReport()

    # ------------------------------------------------------------------ entry points

    def deliver_due(self) -> DeliveryReport:
        """Attempt every delivery due now, once each, and wait for the answers.

        Deliveries that fail are rescheduled, not retried within this call. Not for use
        inside a running event loop: await `deliver_due_async` there.
        """
        return asyncio.run(self.deliver_due_async())

    async def deliver_due_async(self) -> DeliveryReport:
        report = DeliveryReport()
        async with self._client() as client:
            await self._pump(client, report, due_by=self._clock())
        return report

    def start(self) -> None:
        """Send in the background until `stop`; does nothing if already started."""
        if self._running is not None:
            return
        self._stopping.clear()
        thread = threading.Thread(
            target=self._thread_main, name="lightkeeper-webhooks", daemon=True
        )
        self._running = _Running(thread)
        thread.start()
        self._running.ready.wait()

    def stop(self, timeout: float | None = None) -> None:
        """Stop claiming; let sends in flight finish for `stop_grace` seconds, then cancel
        them and give their deliveries back (due at once, for any dispatcher)."""
        running = self._running
        if running is None:
            return
        self._stopping.set()
        self.wake()
        if timeout is None:
            timeout = self.settings.stop_grace + self.settings.total_timeout + 30.0
        running.thread.join(timeout)
        self._running = None

    def wake(self) -> None:
        """Look for due deliveries now instead of at the next poll (after an `enqueue`)."""
        running = self._running
        if running is not None and running.loop is not None and running.wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop just closed
                running.loop.call_soon_threadsafe(running.wake.set)

    @property
    def running(self) -> bool:
        return self._running is not None and self._running.thread.is_alive()

    def close(self) -> None:
        """Stop, and release the database thread."""
        self.stop()
        self._db.shutdown(wait=True)

    def __enter__(self) -> Dispatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the loop

    def _thread_main(self) -> None:
        running = self._running
        assert running is not None
        try:
            asyncio.run(self._serve(running))
        except Exception:  # pragma: no cover - a bug; the thread must not die silently
            log.exception("webhook dispatcher stopped by an unexpected error")
        finally:
            running.ready.set()

    async def _serve(self, running: _Running) -> None:
        running.loop = asyncio.get_running_loop()
        running.wake = asyncio.Event()
        running.ready.set()
        async with self._client() as client:
            await self._pump(client, self.report, due_by=None, wake=running.wake)

    def _client(self) -> httpx.AsyncClient:
        s = self.settings
        return httpx.AsyncClient(
            timeout=httpx.Timeout(
                connect=s.connect_timeout,
                read=s.read_timeout,
                write=s.read_timeout,
                pool=s.total_timeout,
            ),
            limits=httpx.Limits(
                max_connections=s.concurrency, max_keepalive_connections=s.concurrency
            ),
            follow_redirects=False,
            transport=self._transport,
            headers={"User-Agent": USER_AGENT},
        )

    async def _pump(
        self,
        client: httpx.AsyncClient,
        report: DeliveryReport,
        *,
        due_by: datetime | None,
        wake: asyncio.Event | None = None,
    ) -> None:
        """Keep up to `concurrency` sends in flight. With `due_by`: until nothing due by then
        is left; without: until `stop`, polling and woken by `wake`."""
        background = due_by is None
        inflight: dict[asyncio.Task[None], _Claim] = {}
        try:
            while not (background and self._stopping.is_set()):
                free = self.settings.concurrency - len(inflight)
                claims: list[_Claim] = []
                if free > 0:
                    try:
                        busy = Counter(claim.endpoint_id for claim in inflight.values())
                        claims = await self._in_db(self._claim, free, due_by or self._clock(), busy)
                    except Exception:
                        if not background:
                            raise
                        log.exception("webhook dispatcher could not claim deliveries")
                    for claim in claims:
                        task = asyncio.create_task(self._attempt(client, claim, report))
                        inflight[task] = claim
                if not background and not inflight:
                    return
                # All free slots filled: more may be due, so claim again as soon as one
                # frees. Otherwise nothing more is due now: look again at the next poll.
                full = free > 0 and len(claims) == free
                waits: set[asyncio.Future[Any]] = set(inflight)
                waker: asyncio.Task[bool] | None = None
                if wake is not None:
                    wake.clear()
                    if self._stopping.is_set():  # its wake-up may have just been cleared
                        break
                    waker = asyncio.create_task(wake.wait())
                    waits.add(waker)
                timeout = self.settings.poll_interval if background and not full else None
                if waits:
                    await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if waker is not None:
                    waker.cancel()
                inflight = {task: claim for task, claim in inflight.items() if not task.done()}
        finally:
            await self._wind_down(inflight, report)

    async def _wind_down(
        self, inflight: dict[asyncio.Task[None], _Claim], report: DeliveryReport
    ) -> None:
        """Give sends in flight `stop_grace`, then cancel them and release their leases."""
        if not inflight:
            return
        _, unfinished = await asyncio.wait(inflight, timeout=self.settings.stop_grace)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        claims = [inflight[task] for task in unfinished]
        if claims:
            try:
                report.released += await self._in_db(self._release, claims)
            except Exception:
                log.exception("webhook dispatcher could not release its leases (they expire)")

    async def _in_db(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, function, *args)

    async def _attempt(
        self, client: httpx.AsyncClient, claim: _Claim, report: DeliveryReport
    ) -> None:
        outcome = await self._send(client, claim)
        try:
            result = await self._in_db(self._finish, claim, outcome)
        except Exception:
            log.exception(
                "could not record delivery %s (its lease will expire and it is sent again)",
                claim.delivery_id,
            )
            return
        report.count(result)
        if result != "delivered":
            log.info(
                "webhook delivery %s to %s: attempt %s %s (%s)",
                claim.delivery_id,
                claim.url,
                claim.attempt,
                result,
                outcome.error,
            )

    async def _send(self, client: httpx.AsyncClient, claim: _Claim) -> _Outcome:
        at = self._clock()
        timestamp = int(at.timestamp())
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: claim.event_id,
            EVENT_TYPE_HEADER: claim.event_type,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature_header(claim.secrets, timestamp, claim.body),
            ATTEMPT_HEADER: str(claim.attempt),
        }
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        retry_after: float | None = None
        try:
            async with asyncio.timeout(self.settings.total_timeout):
                request = client.build_request(
                    "POST", claim.url, content=claim.body, headers=headers
                )
                # The answer's body is never read: only its status matters.
                response = await client.send(request, stream=True)
                await response.aclose()
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}" + (
                    " (redirects are not followed)" if 300 <= status < 400 else ""
                )
                retry_after = _retry_after(response.headers.get("Retry-After"))
        except TimeoutError:
            error = f"timed out after {self.settings.total_timeout:g} s in all"
        except httpx.TimeoutException as exc:
            error = f"{_timeout_kind(exc)} timed out"
        except Exception as exc:  # httpx.HTTPError above all, but a send must always end
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        duration_ms = round((time.monotonic() - started) * 1000)
        return _Outcome(
            at, duration_ms, status, None if error is None else error[:_ERROR_CHARS], retry_after
        )

    # ------------------------------------------------------------------ database work

    def _claim(self, limit: int, due_by: datetime, busy: Counter[int]) -> list[_Claim]:
        """Lease up to `limit` due deliveries, at most `per_endpoint` in flight to any one
        endpoint counting the `busy` sends already in flight."""
        now = self._clock()
        token = secrets.token_hex(16)
        lease_until = now + timedelta(seconds=self.settings.lease_s)
        cap = self.settings.per_endpoint
        full = [endpoint for endpoint, n in busy.items() if n >= cap]

        due_now = (
            select(DELIVERIES.c.id, DELIVERIES.c.endpoint_id)
            .join(ENDPOINTS, ENDPOINTS.c.id == DELIVERIES.c.endpoint_id)
            .where(
                DELIVERIES.c.state == "pending",
                DELIVERIES.c.next_attempt_at <= due_by,
                or_(DELIVERIES.c.lease_until.is_(None), DELIVERIES.c.lease_until <= now),
                ENDPOINTS.c.enabled.is_(True),
                DELIVERIES.c.endpoint_id.not_in(full),
            )
        )
        # An idle poll (nearly all of them) is a read: every worker polls every second, and a
        # write transaction each time would queue them, and SQLite's bank writers, on the lock.
        if _engine.read(self.store.engine, lambda c: c.execute(due_now.limit(1)).first()) is None:
            return []

        def work(conn: Connection) -> list[_Claim]:
            due = (
                due_now.order_by(DELIVERIES.c.next_attempt_at, DELIVERIES.c.id)
                # A window past `limit`, so that one endpoint's backlog at the head of the
                # queue does not hide the others' deliveries (rows left are unlocked at once).
                .limit(limit * 4)
                .with_for_update(skip_locked=True, of=DELIVERIES)  # SQLite leaves it out
            )
            taken = Counter(busy)
            ids: list[int] = []
            for delivery_id, endpoint_id in conn.execute(due):
                if taken[endpoint_id] < cap:
                    ids.append(delivery_id)
                    taken[endpoint_id] += 1
                    if len(ids) == limit:
                        break
            if not ids:
                return []
            conn.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id.in_(ids))
                .values(
                    lease_token=token,
                    lease_until=lease_until,
                    attempts=DELIVERIES.c.attempts + 1,
                )
            )
            rows = conn.execute(
                select(
                    DELIVERIES.c.id,
                    DELIVERIES.c.endpoint_id,
                    DELIVERIES.c.attempts,
                    DELIVERIES.c.queued_at,
                    EVENTS.c.id.label("event_id"),
                    EVENTS.c.type,
                    EVENTS.c.body,
                    ENDPOINTS.c.url,
                    ENDPOINTS.c.secret,
                    ENDPOINTS.c.previous_secret,
                    ENDPOINTS.c.previous_secret_until,
                )
                .join(EVENTS, EVENTS.c.id == DELIVERIES.c.event_id)
                .join(ENDPOINTS, ENDPOINTS.c.id == DELIVERIES.c.endpoint_id)
                .where(DELIVERIES.c.id.in_(ids))
                .order_by(DELIVERIES.c.next_attempt_at, DELIVERIES.c.id)
            ).all()
            return [
                _Claim(
                    delivery_id=row.id,
                    endpoint_id=row.endpoint_id,
                    token=token,
                    attempt=row.attempts,
                    queued_at=row.queued_at,
                    event_id=row.event_id,
                    event_type=row.type,
                    body=row.body.encode("ascii"),
                    url=row.url,
                    secrets=_signing_secrets(
                        row.secret, row.previous_secret, row.previous_secret_until, now
                    ),
                )
                for row in rows
            ]

        return transaction(self.store, work)

    def _finish(self, claim: _Claim, outcome: _Outcome) -> Result:
        s = self.settings
        now = self._clock()
        held = (DELIVERIES.c.id == claim.delivery_id) & (DELIVERIES.c.lease_token == claim.token)
        common = {
            "lease_token": None,
            "lease_until": None,
            "last_status": outcome.status_code,
            "last_error": outcome.error,
        }
        result: Result
        if outcome.error is None:
            result = "delivered"
            values: dict[str, Any] = {"state": "delivered", "delivered_at": now}
        elif claim.attempt >= s.max_attempts or now - claim.queued_at >= s.max_age:
            result = "dead"
            values = {"state": "dead", "dead_at": now}
        else:
            delay = backoff_delay(claim.attempt, s.backoff_base, s.backoff_cap, self._rng)
            if outcome.retry_after is not None:
                delay = max(delay, min(outcome.retry_after, s.backoff_cap))
            result = "retry"
            values = {"next_attempt_at": now + timedelta(seconds=delay)}

        def work(conn: Connection) -> Result:
            changed = conn.execute(update(DELIVERIES).where(held).values(**common, **values))
            still_there = (
                changed.rowcount
                or conn.execute(
                    select(DELIVERIES.c.id).where(DELIVERIES.c.id == claim.delivery_id)
                ).first()
            )
            if still_there:  # an endpoint removed mid-send took its log with it
                conn.execute(
                    insert(ATTEMPTS),
                    {
                        "delivery_id": claim.delivery_id,
                        "attempt": claim.attempt,
                        "at": outcome.at,
                        "duration_ms": outcome.duration_ms,
                        "status_code": outcome.status_code,
                        "error": outcome.error,
                    },
                )
            return result if changed.rowcount else "lost"

        return transaction(self.store, work)

    def _release(self, claims: Sequence[_Claim]) -> int:
        """Give back leases of sends cut short by `stop`: due now, the attempt logged."""
        now = self._clock()

        def work(conn: Connection) -> int:
            released = 0
            for claim in claims:
                changed = conn.execute(
                    update(DELIVERIES)
                    .where(
                        DELIVERIES.c.id == claim.delivery_id,
                        DELIVERIES.c.lease_token == claim.token,
                    )
                    .values(lease_token=None, lease_until=None, next_attempt_at=now)
                ).rowcount
                if changed:
                    released += 1
                    conn.execute(
                        insert(ATTEMPTS),
                        {
                            "delivery_id": claim.delivery_id,
                            "attempt": claim.attempt,
                            "at": now,
                            "duration_ms": 0,
                            "status_code": None,
                            "error": "interrupted: the dispatcher stopped before an answer",
                        },
                    )
            return released

        return transaction(self.store, work)


def _signing_secrets(
    secret: str, previous: str | None, previous_until: datetime | None, now: datetime
) -> tuple[str, ...]:
    if previous is not None and previous_until is not None and now < previous_until:
        return (secret, previous)
    return (secret,)


def _timeout_kind(exc: httpx.TimeoutException) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "connecting"
    if isinstance(exc, httpx.ReadTimeout):
        return "reading the answer"
    if isinstance(exc, httpx.WriteTimeout):
        return "sending the request"
    return "waiting for a connection"
