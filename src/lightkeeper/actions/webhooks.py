"""Webhook endpoints and the event outbox, kept in the bank store's database.

An *endpoint* is a platform's URL that wants some event types (`EVENT_TYPES`). Each has a
signing secret, made when the endpoint is and shown once (like an API key); the server keeps
it, since it must sign with it, but never lists it again. `rotate_secret` makes a new one
and keeps signing with the old one too for an overlap, so a receiver can switch over without
refusing a delivery.

`enqueue` is the outbox: it writes the event (its body as canonical JSON, the exact bytes
that will be signed and sent) and one *delivery* per enabled endpoint subscribed to its type,
in one transaction; `enqueue_in` does the same inside a caller's own transaction, so that an
action and the event announcing it are committed together or not at all. Nothing is sent
here: `lightkeeper.actions.dispatcher` sends what is due, retries failures with backoff and
moves deliveries that keep failing to the dead letters, which `requeue` puts back.

Delivery is *at least once*: a dispatcher that dies after a receiver answered but before it
recorded the answer sends again. Every event has a UUID (``Lightkeeper-Event-Id``, also the
body's ``id``); a receiver that ignores ids it has seen gets each event exactly once.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar, cast, get_args
from urllib.parse import urlsplit

from sqlalchemy import Connection, Row, Select, Table, delete, exists, insert, select, update
from sqlalchemy.exc import IntegrityError

from lightkeeper.actions.signing import generate_secret
from lightkeeper.banks import _engine
from lightkeeper.banks.audit import record
from lightkeeper.banks.models import (
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
    WebhookEventRow,
)
from lightkeeper.banks.store import BankStore
from lightkeeper.errors import Conflict, InvalidRequest, NotFound

T = TypeVar("T")

ENDPOINTS = cast(Table, WebhookEndpointRow.__table__)
EVENTS = cast(Table, WebhookEventRow.__table__)
DELIVERIES = cast(Table, WebhookDeliveryRow.__table__)
ATTEMPTS = cast(Table, WebhookAttemptRow.__table__)

EventType = Literal["match", "action", "decision", "report"]
DeliveryState = Literal["pending", "delivered", "dead"]
#: Every event type, in the order the documentation lists them.
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)
DELIVERY_STATES: tuple[DeliveryState, ...] = get_args(DeliveryState)

#: Largest event body accepted (canonical JSON bytes): events carry evidence, not media.
MAX_BODY_BYTES = 256 * 1024
MAX_URL_CHARS = 2000
#: How long a rotated-out secret still signs, by default.
DEFAULT_ROTATION_OVERLAP = timedelta(hours=24)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _now() -> datetime:
    return datetime.now(UTC)


def transaction(store: BankStore, work: Callable[[Connection], T]) -> T:
    """One write transaction on the webhook tables.

    SQLite: the store's own (``BEGIN IMMEDIATE``, retried while another writer holds the
    lock). PostgreSQL: a plain transaction, without the bank writers' advisory lock, which
    only orders the bank change log: a delivery must not wait behind a 50,000-row import
    batch, and row locks (``FOR UPDATE SKIP LOCKED`` in the dispatcher's claim) are all that
    keeps dispatchers apart.
    """
    engine = store.engine
    if engine.dialect.name != "postgresql":
        return _engine.write(engine, work)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(_engine.BUSY_TIMEOUT_S * 1000)}ms'")
        return work(conn)


# ---------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A receiver of events. Its secret is not here: it is shown once, when made."""

    id: int
    name: str
    url: str
    event_types: tuple[EventType, ...]
    enabled: bool
    created_at: datetime
    updated_at: datetime
    #: While a rotated-out secret still signs (see `rotate_secret`); None when none does.
    previous_secret_until: datetime | None

    def wants(self, event_type: str) -> bool:
        return self.enabled and event_type in self.event_types

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "url": self.url,
            "event_types": list(self.event_types),
            "enabled": self.enabled,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "previous_secret_until": _iso(self.previous_secret_until),
        }


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: EventType
    created_at: datetime
    #: The canonical JSON bytes that are signed and sent.
    body: bytes

    @property
    def data(self) -> dict[str, Any]:
        """The payload given to `enqueue`."""
        return cast(dict[str, Any], json.loads(self.body)["data"])


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event on its way to one endpoint."""

    id: int
    event_id: str
    event_type: EventType
    endpoint: str
    state: DeliveryState
    attempts: int
    queued_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None
    last_status: int | None
    last_error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "endpoint": self.endpoint,
            "state": self.state,
            "attempts": self.attempts,
            "queued_at": self.queued_at.isoformat(),
            "next_attempt_at": self.next_attempt_at.isoformat(),
            "delivered_at": _iso(self.delivered_at),
            "dead_at": _iso(self.dead_at),
            "last_status": self.last_status,
            "last_error": self.last_error,
        }


@dataclass(frozen=True, slots=True)
class Attempt:
    """One HTTP attempt, as the delivery log keeps it."""

    delivery_id: int
    attempt: int
    at: datetime
    duration_ms: int
    #: The endpoint's HTTP status, None when it never answered.
    status_code: int | None
    #: What went wrong; None when the endpoint answered 2xx.
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "attempt": self.attempt,
            "at": self.at.isoformat(),
            "duration_ms": self.duration_ms,
            "status_code": self.status_code,
            "error": self.error,
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# ---------------------------------------------------------------------- validation


def validate_endpoint_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidRequest(
            f"bad endpoint name {name!r}: 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def validate_url(url: str) -> str:
    """An http(s) URL with a host, and nothing that would leak when it is listed."""
    url = url.strip()
    if not url or len(url) > MAX_URL_CHARS:
        raise InvalidRequest(f"a webhook URL needs 1 to {MAX_URL_CHARS} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise InvalidRequest("a webhook URL cannot contain spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port out of range or not a number)
    except ValueError as exc:
        raise InvalidRequest(f"bad webhook URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidRequest(f"a webhook URL must be http:// or https://, not {url!r}")
    if not parts.hostname:
        raise InvalidRequest(f"a webhook URL needs a host: {url!r}")
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest(
            "a webhook URL cannot carry a user name or password (it is listed in clear); "
            "receivers authenticate deliveries by their signature"
        )
    if parts.fragment:
        raise InvalidRequest("a webhook URL cannot have a #fragment (it is never sent)")
    return url


def validate_event_types(event_types: Iterable[str]) -> tuple[EventType, ...]:
    wanted = {t.strip() for t in event_types if t.strip()}
    unknown = sorted(wanted - set(EVENT_TYPES))
    if unknown:
        raise InvalidRequest(
            f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}"
        )
    if not wanted:
        raise InvalidRequest(f"an endpoint needs at least one event type: {', '.join(EVENT_TYPES)}")
    return tuple(t for t in EVENT_TYPES if t in wanted)


# ---------------------------------------------------------------------- endpoints


def _to_endpoint(row: Row[Any]) -> Endpoint:
    return Endpoint(
        id=row.id,
        name=row.name,
        url=row.url,
        event_types=validate_event_types(row.event_types.split()),
        enabled=row.enabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
        previous_secret_until=row.previous_secret_until,
    )


def _load_endpoint(conn: Connection, name: str) -> Row[Any]:
    row = conn.execute(select(ENDPOINTS).where(ENDPOINTS.c.name == name)).first()
    if row is None:
        raise NotFound(f"no webhook endpoint named {name!r}")
    return row


def create_endpoint(
    store: BankStore,
    name: str,
    url: str,
    *,
    event_types: Iterable[str] = EVENT_TYPES,
    enabled: bool = True,
) -> tuple[Endpoint, str]:
    """A new endpoint; returns it and its signing secret (shown this once).

    `Conflict` if the name is taken; `InvalidRequest` for a bad name, URL or event type.
    Events enqueued from now on are delivered to it; earlier ones are not.
    """
    validate_endpoint_name(name)
    url = validate_url(url)
    types = validate_event_types(event_types)
    secret = generate_secret()

    def work(conn: Connection) -> Endpoint:
        if conn.execute(select(ENDPOINTS.c.id).where(ENDPOINTS.c.name == name)).first():
            raise Conflict(f"webhook endpoint {name!r} already exists")
        now = _now()
        conn.execute(
            insert(ENDPOINTS),
            {
                "name": name,
                "url": url,
                "event_types": " ".join(types),
                "enabled": enabled,
                "secret": secret,
                "previous_secret": None,
                "previous_secret_until": None,
                "created_at": now,
                "updated_at": now,
            },
        )
        record(
            conn,
            "webhook.create",
            f"webhook:{name}",
            {"url": url, "event_types": list(types), "enabled": enabled},
            at=now,
        )
        return _to_endpoint(_load_endpoint(conn, name))

    try:
        return transaction(store, work), secret
    except IntegrityError as exc:  # a concurrent creator won the race
        raise Conflict(f"webhook endpoint {name!r} already exists") from exc


def get_endpoint(store: BankStore, name: str) -> Endpoint:
    """The endpoint called `name`; `NotFound` if there is none."""
    return _engine.read(store.engine, lambda conn: _to_endpoint(_load_endpoint(conn, name)))


def list_endpoints(store: BankStore) -> list[Endpoint]:
    """Every endpoint, by name (never their secrets)."""
    query = select(ENDPOINTS).order_by(ENDPOINTS.c.name)
    rows = _engine.read(store.engine, lambda conn: conn.execute(query).all())
    return [_to_endpoint(row) for row in rows]


def update_endpoint(
    store: BankStore,
    name: str,
    *,
    url: str | None = None,
    event_types: Iterable[str] | None = None,
    enabled: bool | None = None,
) -> Endpoint:
    """Change what is given; None leaves it. Pending deliveries go to the new URL; an
    endpoint disabled keeps its pending deliveries, sent once it is enabled again."""
    values: dict[str, Any] = {}
    if url is not None:
        values["url"] = validate_url(url)
    if event_types is not None:
        values["event_types"] = " ".join(validate_event_types(event_types))
    if enabled is not None:
        values["enabled"] = enabled

    def work(conn: Connection) -> Endpoint:
        endpoint_id = _load_endpoint(conn, name).id
        now = _now()
        conn.execute(
            update(ENDPOINTS).where(ENDPOINTS.c.id == endpoint_id).values(updated_at=now, **values)
        )
        record(conn, "webhook.update", f"webhook:{name}", values, at=now)
        return _to_endpoint(_load_endpoint(conn, name))

    return transaction(store, work)


def remove_endpoint(store: BankStore, name: str) -> Endpoint:
    """Delete an endpoint with its deliveries and their log; returns it as it was."""

    def work(conn: Connection) -> Endpoint:
        endpoint = _to_endpoint(_load_endpoint(conn, name))
        pending = conn.execute(
            select(DELIVERIES.c.id).where(
                DELIVERIES.c.endpoint_id == endpoint.id, DELIVERIES.c.state == "pending"
            )
        ).all()
        conn.execute(delete(ENDPOINTS).where(ENDPOINTS.c.id == endpoint.id))  # cascades
        record(conn, "webhook.remove", f"webhook:{name}", {"pending_dropped": len(pending)})
        return endpoint

    return transaction(store, work)


def rotate_secret(
    store: BankStore, name: str, *, overlap: timedelta = DEFAULT_ROTATION_OVERLAP
) -> tuple[Endpoint, str]:
    """A new signing secret for `name`; returns the endpoint and the secret (shown once).

    For `overlap` after this, deliveries carry two ``v1`` signatures, one per secret, so a
    receiver still checking the old secret accepts them until it has switched. A zero
    overlap drops the old secret at once. Rotating again within an overlap drops the
    oldest secret: only the last two ever sign.
    """
    if overlap < timedelta(0):
        raise InvalidRequest("the rotation overlap cannot be negative")
    secret = generate_secret()

    def work(conn: Connection) -> Endpoint:
        row = _load_endpoint(conn, name)
        now = _now()
        keep_old = overlap > timedelta(0)
        conn.execute(
            update(ENDPOINTS)
            .where(ENDPOINTS.c.id == row.id)
            .values(
                secret=secret,
                previous_secret=row.secret if keep_old else None,
                previous_secret_until=now + overlap if keep_old else None,
                updated_at=now,
            )
        )
        record(
            conn,
            "webhook.rotate_secret",
            f"webhook:{name}",
            {"overlap_s": overlap.total_seconds()},
            at=now,
        )
        return _to_endpoint(_load_endpoint(conn, name))

    return transaction(store, work), secret


# ---------------------------------------------------------------------- the outbox


def event_body(
    event_id: str, event_type: str, created_at: datetime, data: Mapping[str, Any]
) -> bytes:
    """The canonical JSON of an event: sorted keys, no spaces, ASCII only.

    One event always has the same bytes, so its signature can be checked against the body
    as received, and the body can be stored as text.
    """
    envelope = {
        "id": event_id,
        "type": event_type,
        "created_at": created_at.isoformat(),
        "data": data,
    }
    try:
        text = json.dumps(
            envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(
            f"event data must be plain JSON (objects with string keys, lists, strings, finite "
            f"numbers, booleans, null): {exc}"
        ) from None
    body = text.encode("ascii")
    if len(body) > MAX_BODY_BYTES:
        raise InvalidRequest(f"event body is {len(body):,} bytes, over {MAX_BODY_BYTES:,}")
    return body


def enqueue(
    store: BankStore,
    event_type: str,
    data: Mapping[str, Any],
    *,
    event_id: str | None = None,
) -> str:
    """Queue an event for every enabled endpoint subscribed to its type; returns its id.

    One transaction: the event and all its deliveries are written, or none. See
    `enqueue_in` for writing them inside a transaction of the caller's.
    """
    return transaction(store, lambda conn: enqueue_in(conn, event_type, data, event_id=event_id))


def enqueue_in(
    conn: Connection,
    event_type: str,
    data: Mapping[str, Any],
    *,
    event_id: str | None = None,
    at: datetime | None = None,
) -> str:
    """`enqueue` inside the caller's write transaction on the store (``conn``).

    `event_id` (a UUID) makes the call idempotent: an event already queued under that id is
    left as it is and its id returned, so a caller retrying its own transaction never queues
    one event twice. An event no endpoint wants is not stored.
    """
    if event_type not in EVENT_TYPES:
        raise InvalidRequest(f"unknown event type {event_type!r}; known: {', '.join(EVENT_TYPES)}")
    if not isinstance(data, Mapping):
        raise InvalidRequest("event data must be a JSON object (a mapping)")
    if event_id is None:
        event_id = str(uuid.uuid4())
    else:
        try:
            event_id = str(uuid.UUID(event_id))
        except ValueError:
            raise InvalidRequest(f"an event id must be a UUID, not {event_id!r}") from None
    created = at or _now()
    body = event_body(event_id, event_type, created, data)
    if conn.execute(select(EVENTS.c.id).where(EVENTS.c.id == event_id)).first() is not None:
        return event_id
    endpoint_ids = [
        row.id
        for row in conn.execute(
            select(ENDPOINTS.c.id, ENDPOINTS.c.event_types).where(ENDPOINTS.c.enabled.is_(True))
        )
        if event_type in row.event_types.split()
    ]
    if not endpoint_ids:
        return event_id
    conn.execute(
        insert(EVENTS),
        {"id": event_id, "type": event_type, "created_at": created, "body": body.decode("ascii")},
    )
    conn.execute(
        insert(DELIVERIES),
        [
            {
                "event_id": event_id,
                "endpoint_id": endpoint_id,
                "state": "pending",
                "attempts": 0,
                "queued_at": created,
                "next_attempt_at": created,
            }
            for endpoint_id in endpoint_ids
        ],
    )
    return event_id


def get_event(store: BankStore, event_id: str) -> Event:
    """A stored event; `NotFound` if there is none (or no endpoint wanted it)."""
    row = _engine.read(
        store.engine,
        lambda conn: conn.execute(select(EVENTS).where(EVENTS.c.id == event_id)).first(),
    )
    if row is None:
        raise NotFound(f"no webhook event {event_id!r}")
    return Event(row.id, row.type, row.created_at, row.body.encode("ascii"))


# ---------------------------------------------------------------------- deliveries


def _delivery_select() -> Select[Any]:
    return (
        select(DELIVERIES, EVENTS.c.type.label("event_type"), ENDPOINTS.c.name.label("endpoint"))
        .join(EVENTS, EVENTS.c.id == DELIVERIES.c.event_id)
        .join(ENDPOINTS, ENDPOINTS.c.id == DELIVERIES.c.endpoint_id)
    )


def _to_delivery(row: Row[Any]) -> Delivery:
    return Delivery(
        id=row.id,
        event_id=row.event_id,
        event_type=row.event_type,
        endpoint=row.endpoint,
        state=row.state,
        attempts=row.attempts,
        queued_at=row.queued_at,
        next_attempt_at=row.next_attempt_at,
        delivered_at=row.delivered_at,
        dead_at=row.dead_at,
        last_status=row.last_status,
        last_error=row.last_error,
    )


def list_deliveries(
    store: BankStore,
    *,
    state: DeliveryState | None = None,
    endpoint: str | None = None,
    event_id: str | None = None,
    limit: int = 100,
) -> list[Delivery]:
    """Deliveries, newest first, optionally of one state, endpoint or event."""
    if state is not None and state not in DELIVERY_STATES:
        raise InvalidRequest(
            f"unknown delivery state {state!r}; known: {', '.join(DELIVERY_STATES)}"
        )

    def work(conn: Connection) -> list[Delivery]:
        query = _delivery_select()
        if state is not None:
            query = query.where(DELIVERIES.c.state == state)
        if endpoint is not None:
            query = query.where(DELIVERIES.c.endpoint_id == _load_endpoint(conn, endpoint).id)
        if event_id is not None:
            query = query.where(DELIVERIES.c.event_id == event_id)
        query = query.order_by(DELIVERIES.c.id.desc()).limit(max(1, limit))
        return [_to_delivery(row) for row in conn.execute(query)]

    return _engine.read(store.engine, work)


def get_delivery(store: BankStore, delivery_id: int) -> Delivery:
    """One delivery; `NotFound` if there is none."""
    query = _delivery_select().where(DELIVERIES.c.id == delivery_id)
    row = _engine.read(store.engine, lambda conn: conn.execute(query).first())
    if row is None:
        raise NotFound(f"no webhook delivery with id {delivery_id}")
    return _to_delivery(row)


def delivery_log(store: BankStore, delivery_id: int) -> list[Attempt]:
    """Every attempt at one delivery, oldest first; `NotFound` for an unknown delivery."""
    get_delivery(store, delivery_id)
    query = select(ATTEMPTS).where(ATTEMPTS.c.delivery_id == delivery_id).order_by(ATTEMPTS.c.id)
    rows = _engine.read(store.engine, lambda conn: conn.execute(query).all())
    return [
        Attempt(r.delivery_id, r.attempt, r.at, r.duration_ms, r.status_code, r.error) for r in rows
    ]


def requeue(
    store: BankStore,
    delivery_ids: Sequence[int] | None = None,
    *,
    endpoint: str | None = None,
) -> int:
    """Put dead letters back in the queue, due now, with a fresh attempt and age budget.

    The deliveries named (those not dead are left alone), else every dead one, of one
    endpoint if named. Returns how many went back.
    """

    def work(conn: Connection) -> int:
        now = _now()
        statement = update(DELIVERIES).where(DELIVERIES.c.state == "dead")
        if delivery_ids is not None:
            statement = statement.where(DELIVERIES.c.id.in_(list(delivery_ids)))
        if endpoint is not None:
            statement = statement.where(
                DELIVERIES.c.endpoint_id == _load_endpoint(conn, endpoint).id
            )
        count = int(
            conn.execute(
                statement.values(
                    state="pending",
                    attempts=0,
                    queued_at=now,
                    next_attempt_at=now,
                    dead_at=None,
                    lease_token=None,
                    lease_until=None,
                )
            ).rowcount
        )
        if count:
            subject = f"webhook:{endpoint}" if endpoint else "webhooks"
            record(conn, "webhook.requeue", subject, {"deliveries": count}, at=now)
        return count

    if delivery_ids is not None and not delivery_ids:
        return 0
    return transaction(store, work)


def prune(store: BankStore, *, older_than: timedelta) -> int:
    """Delete events older than `older_than` whose deliveries all succeeded (with their
    deliveries and log); dead letters and pending deliveries are kept. Returns how many."""
    if older_than < timedelta(0):
        raise InvalidRequest("older_than cannot be negative")

    def work(conn: Connection) -> int:
        unfinished = exists().where(
            DELIVERIES.c.event_id == EVENTS.c.id, DELIVERIES.c.state != "delivered"
        )
        statement = delete(EVENTS).where(EVENTS.c.created_at < _now() - older_than, ~unfinished)
        return int(conn.execute(statement).rowcount)

    return transaction(store, work)
