"""Webhooks as a platform relies on them: signed so that the documented snippet verifies them,
retried until a failing or absent receiver is back, each event once to a receiver, never sent
by two dispatchers at once, and finished after a dispatcher dies mid-send.

Every delivery goes to a real HTTP receiver on loopback (the standard library's server in a
thread), on SQLite and on PostgreSQL. Retry delays are shrunk to milliseconds; nothing here
asserts how fast anything is.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from random import Random
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from lightkeeper.actions import webhooks as wh
from lightkeeper.actions.dispatcher import DeliverySettings, Dispatcher, backoff_delay
from lightkeeper.actions.signing import (
    ParsedSignature,
    compute_signature,
    generate_secret,
    parse_signature_header,
    signature_header,
    verify_signature,
)
from lightkeeper.banks import BankStore
from lightkeeper.banks.testing import backends, temporary_database
from lightkeeper.cli import webhooks_command
from lightkeeper.cli.main import main
from lightkeeper.errors import Conflict, InvalidRequest, NotFound, WebhookSignatureError

DOC = Path(__file__).resolve().parents[1] / "docs" / "webhooks.md"

#: Millisecond backoff, short timeouts, quick polls: the behaviour of the defaults, faster.
FAST = DeliverySettings(
    backoff_base=0.005,
    backoff_cap=0.02,
    connect_timeout=2.0,
    read_timeout=5.0,
    total_timeout=8.0,
    poll_interval=0.02,
    stop_grace=0.5,
)


# ---------------------------------------------------------------- the documented snippet


def _documented_snippet() -> str:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"<!-- verification-snippet -->\n```python\n(.*?)```", text, re.DOTALL)
    assert found, "docs/webhooks.md lost its marked verification snippet"
    return found.group(1)


def _documented_verifier() -> Callable[[str, str, bytes], bool]:
    namespace: dict[str, Any] = {}
    exec(compile(_documented_snippet(), str(DOC), "exec"), namespace)
    return namespace["verify_lightkeeper_signature"]  # type: ignore[no-any-return]


verify_as_documented = _documented_verifier()


def test_the_documented_snippet_needs_only_the_standard_library() -> None:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(_documented_snippet())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported and imported <= set(sys.stdlib_module_names)


# ---------------------------------------------------------------- a receiver on loopback


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    #: What the receiver answered; None when it hung up without answering.
    status: int | None

    @property
    def event_id(self) -> str:
        return self.headers["Lightkeeper-Event-Id"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a sender that gave up mid-answer (a timeout) is expected here


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status = receiver.decide()
        receiver.record(Received(dict(self.headers.items()), body, status))
        if status is None:  # hang: hold the request open until the test ends
            receiver.released.wait(30)
            return
        if receiver.delay:
            time.sleep(receiver.delay)
        self.send_response(status)
        if status == receiver.fail_status:
            for name, value in receiver.fail_headers.items():
                self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Receiver:
    """A platform's endpoint: records every request, answers as the test says."""

    def __init__(self, port: int = 0) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        #: Answer `fail_status` to this many requests first (-1: to every request).
        self.failures = 0
        self.fail_status = 500
        #: Headers sent with those failing answers (Location, Retry-After …).
        self.fail_headers: dict[str, str] = {}
        self.hang = False
        self.delay = 0.0
        self.released = threading.Event()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.receiver = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def decide(self) -> int | None:
        with self._lock:
            if self.hang:
                return None
            if self.failures:
                self.failures -= 1 if self.failures > 0 else 0
                return self.fail_status
            return 200

    def record(self, received: Received) -> None:
        with self._lock:
            self._received.append(received)

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def accepted(self) -> list[Received]:
        """Requests answered 2xx: the events this platform has taken in."""
        return [r for r in self.received if r.status is not None and 200 <= r.status < 300]

    def close(self) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()


def free_port() -> int:
    """A loopback port nothing listens on (a receiver that is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll `condition` until true; the timeout only guards against a hung test."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.01)


def deliver_until(dispatcher: Dispatcher, condition: Callable[[], bool], what: str) -> None:
    """Run one-shot passes (as ``lightkeeper webhooks deliver`` from cron) until `condition`."""

    def step() -> bool:
        dispatcher.deliver_due()
        return condition()

    wait_for(step, what)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(params=backends())
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store's URL: an SQLite file (so that several engines and processes can share it)
    or a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lightkeeper.db'}"
        return
    with temporary_database("postgresql", migrated=True) as url:
        yield url


@pytest.fixture
def store(store_url: str) -> Iterator[BankStore]:
    with BankStore.open(store_url) as opened:
        yield opened


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(port: int = 0) -> Receiver:
        made.append(Receiver(port))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def receiver(receiver_factory: Callable[..., Receiver]) -> Receiver:
    return receiver_factory()


@pytest.fixture
def dispatcher_factory(store: BankStore) -> Iterator[Callable[..., Dispatcher]]:
    made: list[Dispatcher] = []

    def make(
        settings: DeliverySettings = FAST, *, on: BankStore | None = None, **kwargs: Any
    ) -> Dispatcher:
        made.append(Dispatcher(on or store, settings, **kwargs))
        return made[-1]

    yield make
    for dispatcher in made:
        dispatcher.close()


def delivered(store: BankStore) -> list[wh.Delivery]:
    return wh.list_deliveries(store, state="delivered", limit=10_000)


# ---------------------------------------------------------------- signed and verified


def test_events_arrive_signed_and_verify_with_the_documented_snippet(
    store: BankStore, receiver: Receiver, dispatcher_factory: Callable[..., Dispatcher]
) -> None:
    endpoint, secret = wh.create_endpoint(
        store, "platform", receiver.url, event_types=["match", "decision"]
    )
    match_id = wh.enqueue(store, "match", {"bank": "ncmec", "distance": 12, "note": "café"})
    wh.enqueue(store, "action", {"action": "block"})  # not subscribed
    decision_id = wh.enqueue(store, "decision", {"case": 7, "verdict": "confirmed"})

    report = dispatcher_factory().deliver_due()

    assert (report.delivered, report.retried, report.dead) == (2, 0, 0)
    got = {r.event_id: r for r in receiver.received}
    assert set(got) == {match_id, decision_id}
    for event_id, request in got.items():
        header = request.headers["Lightkeeper-Signature"]
        assert verify_as_documented(secret, header, request.body)
        assert verify_signature(secret, header, request.body) == int(
            request.headers["Lightkeeper-Timestamp"]
        )
        event = json.loads(request.body)
        assert event["id"] == event_id
        assert event["type"] == request.headers["Lightkeeper-Event-Type"]
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["Lightkeeper-Delivery-Attempt"] == "1"
    assert json.loads(got[match_id].body)["data"] == {
        "bank": "ncmec",
        "distance": 12,
        "note": "café",
    }
    assert got[match_id].body == wh.get_event(store, match_id).body  # the stored bytes, as sent
    [logged] = wh.delivery_log(store, delivered(store)[0].id)
    assert (logged.status_code, logged.error, logged.attempt) == (200, None, 1)
    assert endpoint.id == wh.get_endpoint(store, "platform").id


def test_a_delivery_tampered_with_signed_by_another_secret_or_replayed_is_refused(
    store: BankStore, receiver: Receiver, dispatcher_factory: Callable[..., Dispatcher]
) -> None:
    _, secret = wh.create_endpoint(store, "platform", receiver.url)
    wh.enqueue(store, "report", {"report": 1})
    dispatcher_factory().deliver_due()
    [request] = receiver.received
    header, body = request.headers["Lightkeeper-Signature"], request.body
    tampered = body.replace(b'"report":1', b'"report":2')
    assert tampered != body
    other_secret = generate_secret()
    t = int(request.headers["Lightkeeper-Timestamp"])

    assert not verify_as_documented(secret, header, tampered)
    assert not verify_as_documented(other_secret, header, body)
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify_signature(secret, header, tampered)
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify_signature(other_secret, header, body)
    # The same request, replayed six minutes later, is refused although its MAC is right.
    with pytest.raises(WebhookSignatureError, match="tolerance"):
        verify_signature(secret, header, body, now=t + 360)
    with pytest.raises(WebhookSignatureError, match="tolerance"):
        verify_signature(secret, header, body, now=t - 360)  # and one from the future
    assert verify_signature(secret, header, body, now=t + 299) == t
    stale = signature_header([secret], int(time.time()) - 301, body)
    assert not verify_as_documented(secret, stale, body)
    # A stale timestamp cannot be refreshed without the secret.
    forged = header.replace(f"t={t}", f"t={t + 60}")
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify_signature(secret, forged, body, now=t + 60)


def test_signature_header_format_and_the_mac_recipe() -> None:
    body = b'{"id":"x"}'
    header = signature_header(["whsec_a"], 1_767_225_600, body)
    assert header == f"t=1767225600,v1={compute_signature('whsec_a', 1_767_225_600, body)}"
    import hashlib
    import hmac

    recipe = hmac.new(b"whsec_a", b"1767225600." + body, hashlib.sha256).hexdigest()
    assert parse_signature_header(header) == ParsedSignature(1_767_225_600, (recipe,))
    # Spaces around elements and unknown elements (a later scheme) are tolerated.
    loose = f" t=1767225600 , v2=whatever , v1={recipe} "
    assert verify_signature("whsec_a", loose, body, now=1_767_225_600) == 1_767_225_600


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("", "key=value"),
        ("t=1,v1", "key=value"),
        ("v1=" + "a" * 64, "no t="),
        ("t=12", "no v1="),
        ("t=12,t=13,v1=" + "a" * 64, "more than one t="),
        ("t=-5,v1=" + "a" * 64, "not a timestamp"),
        ("t=١٢,v1=" + "a" * 64, "not a timestamp"),  # digits, but not ASCII ones
        ("t=12,v1=" + "A" * 64, "64 hex digits"),
        ("t=12,v1=" + "a" * 63, "64 hex digits"),
        ("t=12,v1=" + "a" * 64 + "," * 2000, "too long"),
    ],
)
def test_malformed_signature_headers_are_refused_with_the_reason(header: str, why: str) -> None:
    with pytest.raises(WebhookSignatureError, match=why):
        parse_signature_header(header)
    assert not verify_as_documented("whsec_x", header, b"{}")


_ELEMENTS = st.sampled_from(
    ["t=1767225600", "t=", "t=x", "v1=" + "0" * 64, "v1=" + "f" * 65, "v1=", "=", "x=y", " ", ""]
)
_HEADERS = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(_ELEMENTS, st.text(max_size=20)), max_size=8).map(",".join),
)


@given(_HEADERS)
def test_any_header_parses_or_raises_only_the_documented_error(header: str) -> None:
    try:
        parsed = parse_signature_header(header)
    except WebhookSignatureError:
        pass
    else:
        assert parsed.v1 and all(re.fullmatch("[0-9a-f]{64}", mac) for mac in parsed.v1)
    with pytest.raises(WebhookSignatureError):
        verify_signature("whsec_secret", header, b"{}", now=1_767_225_600)
    assert verify_as_documented("whsec_secret", header, b"{}") is False


@given(
    secret=st.text(min_size=1, max_size=60),
    body=st.binary(max_size=300),
    timestamp=st.integers(min_value=0, max_value=10**12 - 1),
    flip=st.integers(min_value=0),
)
def test_a_signature_verifies_for_its_own_body_and_secret_only(
    secret: str, body: bytes, timestamp: int, flip: int
) -> None:
    header = signature_header([secret], timestamp, body)
    assert verify_signature(secret, header, body, now=timestamp) == timestamp
    if body:
        altered = bytearray(body)
        altered[flip % len(body)] ^= 0x01
        with pytest.raises(WebhookSignatureError):
            verify_signature(secret, header, bytes(altered), now=timestamp)
    with pytest.raises(WebhookSignatureError):
        verify_signature(secret + "x", header, body, now=timestamp)


# ---------------------------------------------------------------- failing, absent, hanging, slow


def test_a_receiver_answering_500_gets_the_event_once_it_recovers(
    store: BankStore, receiver: Receiver, dispatcher_factory: Callable[..., Dispatcher]
) -> None:
    _, secret = wh.create_endpoint(store, "platform", receiver.url)
    receiver.failures = 2
    event_id = wh.enqueue(store, "match", {"n": 1})
    dispatcher = dispatcher_factory()

    first = dispatcher.deliver_due()
    assert (first.delivered, first.retried) == (0, 1)
    [pending] = wh.list_deliveries(store, state="pending")
    assert (pending.attempts, pending.last_status, pending.last_error) == (1, 500, "HTTP 500")
    deliver_until(dispatcher, lambda: len(delivered(store)) == 1, "the delivery after recovery")

    requests = receiver.received
    assert [r.status for r in requests] == [500, 500, 200]
    assert {r.event_id for r in requests} == {event_id}
    assert [r.headers["Lightkeeper-Delivery-Attempt"] for r in requests] == ["1", "2", "3"]
    assert all(
        verify_as_documented(secret, r.headers["Lightkeeper-Signature"], r.body) for r in requests
    )
    log = wh.delivery_log(store, delivered(store)[0].id)
    assert [(a.attempt, a.status_code, a.ok) for a in log] == [
        (1, 500, False),
        (2, 500, False),
        (3, 200, True),
    ]
    assert dispatcher.deliver_due().attempted == 0  # delivered is final


def test_a_receiver_down_for_a_while_gets_every_event_exactly_once_when_back(
    store: BankStore,
    receiver_factory: Callable[..., Receiver],
    dispatcher_factory: Callable[..., Dispatcher],
) -> None:
    port = free_port()
    _, secret = wh.create_endpoint(store, "platform", f"http://127.0.0.1:{port}/hooks")
    event_ids = [wh.enqueue(store, "action", {"n": n}) for n in range(6)]
    dispatcher = dispatcher_factory()
    dispatcher.start()

    def refused_twice_each() -> bool:
        pending = wh.list_deliveries(store, state="pending")
        return len(pending) == 6 and all(d.attempts >= 2 for d in pending)

    wait_for(refused_twice_each, "every delivery refused twice")
    [some] = wh.list_deliveries(store, limit=1)
    assert any("Connect" in (a.error or "") for a in wh.delivery_log(store, some.id))
    receiver = receiver_factory(port)  # the platform comes back
    wait_for(lambda: len(delivered(store)) == 6, "every event delivered")
    dispatcher.stop()

    arrived = Counter(r.event_id for r in receiver.received)
    assert arrived == Counter(event_ids)  # every event, each once
    assert all(
        verify_as_documented(secret, r.headers["Lightkeeper-Signature"], r.body)
        for r in receiver.received
    )
    assert dispatcher.report.delivered == 6


def test_a_hanging_receiver_times_out_and_is_retried(
    store: BankStore, receiver: Receiver, dispatcher_factory: Callable[..., Dispatcher]
) -> None:
    receiver.hang = True
    wh.create_endpoint(store, "hangs", receiver.url)
    wh.enqueue(store, "match", {"n": 1})
    settings = replace(FAST, read_timeout=0.3, total_timeout=1.0)

    report = dispatcher_factory(settings).deliver_due()

    assert report.retried == 1
    [pending] = wh.list_deliveries(store, state="pending")
    assert pending.last_status is None and "timed out" in (pending.last_error or "")
    [attempt] = wh.delivery_log(store, pending.id)
    assert attempt.status_code is None and attempt.duration_ms > 0


def test_a_hanging_receiver_does_not_hold_up_deliveries_to_a_healthy_one(
    store: BankStore,
    receiver_factory: Callable[..., Receiver],
    dispatcher_factory: Callable[..., Dispatcher],
) -> None:
    hanging, healthy = receiver_factory(), receiver_factory()
    hanging.hang = True
    wh.create_endpoint(store, "hangs", hanging.url, event_types=["match"])
    wh.create_endpoint(store, "healthy", healthy.url, event_types=["action"])
    # The hanging endpoint's events are first in the queue, more of them than there are slots.
    for n in range(3):
        wh.enqueue(store, "match", {"n": n})
    healthy_ids = [wh.enqueue(store, "action", {"n": n}) for n in range(4)]
    # Two slots, one per endpoint at most; sends that would hang for a minute.
    settings = replace(FAST, concurrency=2, per_endpoint=1, read_timeout=60.0, total_timeout=60.0)
    dispatcher = dispatcher_factory(settings)
    dispatcher.start()

    wait_for(lambda: len(delivered(store)) == 4, "the healthy endpoint's events")
    assert sorted(r.event_id for r in healthy.accepted()) == sorted(healthy_ids)
    # Meanwhile the hanging endpoint holds one send open and nothing has finished there.
    wait_for(lambda: len(hanging.received) == 1, "the hanging endpoint's one send")
    stuck = wh.list_deliveries(store, endpoint="hangs")
    assert all(not wh.delivery_log(store, d.id) for d in stuck)

    dispatcher.stop()  # a clean stop gives the unfinished send back at once
    assert dispatcher.report.released == 1
    hanging.hang = False
    deliver_until(
        dispatcher_factory(), lambda: len(delivered(store)) == 7, "the hanging endpoint's events"
    )
    interrupted = [d for d in wh.list_deliveries(store, endpoint="hangs") if d.attempts == 2]
    assert len(interrupted) == 1
    assert "interrupted" in (wh.delivery_log(store, interrupted[0].id)[0].error or "")


def test_a_slow_receiver_within_the_timeout_succeeds_first_time(
    store: BankStore, receiver: Receiver, dispatcher_factory: Callable[..., Dispatcher]
) -> None:
    receiver.delay = 0.4
    wh.create_endpoint(store, "slow", receiver.url)
    wh.enqueue(store, "decision", {"n": 1})
    report = dispatcher_factory(replace(FAST, read_timeout=3.0)).deliver_due()
    assert (report.delivered, report.retried) == (1, 0)
    [attempt] = wh.delivery_log(store, delivered(store)[0].id)
    assert attempt.status_code == 200 and attempt.duration_ms >= 400


def test_a_redirect_is_not_followed_and_retry_after_is_honoured(
    store: BankStore,
    receiver_factory: Callable[..., Receiver],
    dispatcher_factory: Callable[..., Dispatcher],
) -> None:
    receiver, elsewhere = receiver_factory(), receiver_factory()
    receiver.failures, receiver.fail_status = 1, 307
    receiver.fail_headers = {"Location": elsewhere.url}
    wh.create_endpoint(store, "platform", receiver.url)
    wh.enqueue(store, "match", {"n": 1})
    dispatcher = dispatcher_factory(replace(FAST, backoff_cap=600.0))

    assert dispatcher.deliver_due().retried == 1
    assert elsewhere.received == []
    [pending] = wh.list_deliveries(store)
    assert pending.last_error == "HTTP 307 (redirects are not followed)"

    receiver.failures, receiver.fail_status = 1, 429
    receiver.fail_headers = {"Retry-After": "120"}
    deliver_until(dispatcher, lambda: wh.list_deliveries(store)[0].last_status == 429, "a 429")
    [pending] = wh.list_deliveries(store)
    last = wh.delivery_log(store, pending.id)[-1]
    assert pending.next_attempt_at - last.at >= timedelta(seconds=119)
    assert dispatcher.deliver_due().attempted == 0  # not before the receiver asked


# ---------------------------------------------------------------- dead letters


def test_a_delivery_that_keeps_failing_becomes_a_dead_letter_and_requeue_delivers_it(
    store: BankStore, receiver: Receiver, dispatcher_factory: Callable[..., Dispatcher]
) -> None:
    receiver.failures = -1  # answers 503 until told otherwise
    receiver.fail_status = 503
    wh.create_endpoint(store, "platform", receiver.url)
    event_id = wh.enqueue(store, "report", {"n": 1})
    dispatcher = dispatcher_factory(replace(FAST, max_attempts=3))

    deliver_until(
        dispatcher, lambda: bool(wh.list_deliveries(store, state="dead")), "a dead letter"
    )

    [dead] = wh.list_deliveries(store, state="dead")
    assert (dead.event_id, dead.attempts, dead.last_status) == (event_id, 3, 503)
    assert len(wh.delivery_log(store, dead.id)) == 3
    assert dispatcher.deliver_due().attempted == 0  # a dead letter is not retried

    receiver.failures = 0
    assert wh.requeue(store, [dead.id]) == 1
    assert wh.requeue(store, [dead.id]) == 0  # no longer dead
    assert dispatcher.deliver_due().delivered == 1
    assert [r.status for r in receiver.received] == [503, 503, 503, 200]
    assert wh.get_delivery(store, dead.id).state == "delivered"
    assert len(wh.delivery_log(store, dead.id)) == 4  # the log keeps the failures


def test_a_delivery_failing_past_its_age_limit_becomes_a_dead_letter(
    store: BankStore, receiver: Receiver, dispatcher_factory: Callable[..., Dispatcher]
) -> None:
    receiver.failures = -1
    wh.create_endpoint(store, "platform", receiver.url)
    wh.enqueue(store, "match", {"n": 1})
    four_days_later = lambda: datetime.now(UTC) + timedelta(days=4)  # noqa: E731

    report = dispatcher_factory(clock=four_days_later).deliver_due()

    assert report.dead == 1
    [dead] = wh.list_deliveries(store, state="dead")
    assert dead.attempts == 1
    assert wh.requeue(store, endpoint="platform") == 1
    receiver.failures = 0
    assert dispatcher_factory(clock=four_days_later).deliver_due().delivered == 1


def test_backoff_is_exponential_capped_and_fully_jittered() -> None:
    rng = Random(7)
    for attempts in range(1, 80):
        ceiling = min(3600.0, 5.0 * 2 ** (attempts - 1))
        assert 0.0 <= backoff_delay(attempts, 5.0, 3600.0, rng) <= ceiling
    draws = [backoff_delay(6, 5.0, 3600.0, rng) for _ in range(300)]
    assert min(draws) < 0.25 * 160 and max(draws) > 0.75 * 160  # spread over [0, 160]


# ---------------------------------------------------------------- restarts and several dispatchers

_DISPATCHER_PROCESS = """
import sys, time
from lightkeeper.actions.dispatcher import DeliverySettings, Dispatcher
from lightkeeper.banks import BankStore

settings = DeliverySettings(total_timeout=20.0, read_timeout=20.0, lease=60.0, poll_interval=0.05)
Dispatcher(BankStore.open(sys.argv[1]), settings).start()
time.sleep(120)
"""


def test_a_dispatcher_killed_mid_send_is_finished_by_another_once_its_lease_runs_out(
    store: BankStore,
    store_url: str,
    receiver: Receiver,
    dispatcher_factory: Callable[..., Dispatcher],
) -> None:
    _, secret = wh.create_endpoint(store, "platform", receiver.url)
    event_id = wh.enqueue(store, "match", {"n": 1})
    receiver.hang = True
    process = subprocess.Popen(
        [sys.executable, "-c", _DISPATCHER_PROCESS, store_url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: len(receiver.received) == 1, "the other process's send")
        os.kill(process.pid, signal.SIGKILL)  # dies holding the lease, the answer unrecorded
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        assert process.stderr is not None
        process.stderr.close()
    receiver.hang = False

    # While the dead process's lease runs, nobody else sends the delivery …
    assert dispatcher_factory().deliver_due().attempted == 0
    # … and once it has run out (a clock a minute and a half on), the next dispatcher does.
    later = lambda: datetime.now(UTC) + timedelta(seconds=90)  # noqa: E731
    assert dispatcher_factory(clock=later).deliver_due().delivered == 1

    [done] = delivered(store)
    assert done.attempts == 2  # the killed attempt counts
    [logged] = wh.delivery_log(store, done.id)  # the killed one never got to log
    assert (logged.attempt, logged.status_code) == (2, 200)
    # At least once: the receiver saw the event twice, and its id says it is one event.
    assert [r.event_id for r in receiver.received] == [event_id, event_id]
    assert [r.event_id for r in receiver.accepted()] == [event_id]
    last = receiver.received[-1]
    assert verify_as_documented(secret, last.headers["Lightkeeper-Signature"], last.body)


def test_two_dispatchers_on_one_store_never_send_a_delivery_twice(
    store: BankStore,
    store_url: str,
    receiver: Receiver,
    dispatcher_factory: Callable[..., Dispatcher],
) -> None:
    receiver.delay = 0.005  # so that the two overlap
    wh.create_endpoint(store, "platform", receiver.url)
    event_ids = [wh.enqueue(store, "match", {"n": n}) for n in range(40)]
    with BankStore.open(store_url) as other_store:  # another process's own engine
        settings = replace(FAST, concurrency=4, per_endpoint=4)
        first = dispatcher_factory(settings)
        second = dispatcher_factory(settings, on=other_store)
        first.start()
        second.start()
        wait_for(lambda: len(delivered(store)) == 40, "every event delivered")
        first.stop()
        second.stop()

    assert Counter(r.event_id for r in receiver.received) == Counter(event_ids)
    assert first.report.delivered + second.report.delivered == 40
    assert first.report.lost == second.report.lost == 0


# ---------------------------------------------------------------- endpoints and the outbox


def test_endpoints_are_listed_without_their_secrets(store: BankStore) -> None:
    endpoint, secret = wh.create_endpoint(store, "b-platform", "https://hooks.example.com/lk")
    wh.create_endpoint(store, "a-platform", "http://10.0.0.5:8080/x", event_types=["report"])
    assert secret.startswith("whsec_") and len(secret) >= 6 + 43
    listed = wh.list_endpoints(store)
    assert [e.name for e in listed] == ["a-platform", "b-platform"]
    assert listed[1] == endpoint and endpoint.event_types == wh.EVENT_TYPES
    assert listed[0].event_types == ("report",)
    assert secret not in json.dumps([e.to_dict() for e in listed])
    with pytest.raises(Conflict):
        wh.create_endpoint(store, "a-platform", "https://other.example.com")
    with pytest.raises(NotFound):
        wh.get_endpoint(store, "nobody")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://files.example.com/x",
        "file:///etc/passwd",
        "https://",
        "hooks.example.com/no-scheme",
        "https://user:pass@hooks.example.com/",
        "https://hooks.example.com/#frag",
        "https://hooks.example.com/a b",
        "https://hooks.example.com:99999/",
        "",
    ],
)
def test_endpoint_urls_must_be_plain_http_or_https(store: BankStore, url: str) -> None:
    with pytest.raises(InvalidRequest):
        wh.create_endpoint(store, "p", url)


def test_endpoint_names_and_event_types_are_checked(store: BankStore) -> None:
    for name in ("", "-x", "has space", "x" * 65, "a/b"):
        with pytest.raises(InvalidRequest, match="endpoint name"):
            wh.create_endpoint(store, name, "https://h.example.com")
    with pytest.raises(InvalidRequest, match="unknown event type"):
        wh.create_endpoint(store, "p", "https://h.example.com", event_types=["matches"])
    with pytest.raises(InvalidRequest, match="at least one"):
        wh.create_endpoint(store, "p", "https://h.example.com", event_types=[])
    assert wh.list_endpoints(store) == []


def test_enqueue_checks_the_event_and_queues_only_for_enabled_subscribers(
    store: BankStore,
) -> None:
    wh.create_endpoint(store, "all", "https://a.example.com")
    wh.create_endpoint(store, "reports", "https://r.example.com", event_types=["report"])
    wh.create_endpoint(store, "off", "https://o.example.com", enabled=False)

    event_id = wh.enqueue(store, "match", {"n": 1})
    assert [d.endpoint for d in wh.list_deliveries(store, event_id=event_id)] == ["all"]
    report_id = wh.enqueue(store, "report", {"n": 2})
    assert sorted(d.endpoint for d in wh.list_deliveries(store, event_id=report_id)) == [
        "all",
        "reports",
    ]
    with pytest.raises(InvalidRequest, match="unknown event type"):
        wh.enqueue(store, "upload", {})
    with pytest.raises(InvalidRequest, match="plain JSON"):
        wh.enqueue(store, "match", {"x": float("nan")})
    with pytest.raises(InvalidRequest, match="plain JSON"):
        wh.enqueue(store, "match", {"x": {1, 2}})
    with pytest.raises(InvalidRequest, match="bytes, over"):
        wh.enqueue(store, "match", {"x": "a" * (wh.MAX_BODY_BYTES + 1)})
    with pytest.raises(InvalidRequest, match="UUID"):
        wh.enqueue(store, "match", {}, event_id="not-a-uuid")

    # A caller retrying with its own event id queues the event once.
    fixed = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"
    assert wh.enqueue(store, "match", {"n": 3}, event_id=fixed) == fixed
    assert wh.enqueue(store, "match", {"n": 3}, event_id=fixed) == fixed
    assert len(wh.list_deliveries(store, event_id=fixed)) == 1

    # An event nobody subscribed to is not kept.
    wh.update_endpoint(store, "all", event_types=["match"])
    unwanted = wh.enqueue(store, "decision", {"n": 4})
    with pytest.raises(NotFound):
        wh.get_event(store, unwanted)


def test_enqueue_in_commits_with_the_callers_transaction_or_not_at_all(store: BankStore) -> None:
    wh.create_endpoint(store, "platform", "https://p.example.com")

    def action_then_failure(conn: Any) -> None:
        wh.enqueue_in(conn, "action", {"blocked": True})
        raise RuntimeError("the action failed after queueing its event")

    with pytest.raises(RuntimeError):
        wh.transaction(store, action_then_failure)
    assert wh.list_deliveries(store) == []
    event_id = wh.transaction(store, lambda conn: wh.enqueue_in(conn, "action", {"ok": 1}))
    assert [d.event_id for d in wh.list_deliveries(store)] == [event_id]


def test_a_disabled_endpoint_holds_its_deliveries_and_a_removed_one_drops_them(
    store: BankStore, receiver: Receiver, dispatcher_factory: Callable[..., Dispatcher]
) -> None:
    wh.create_endpoint(store, "platform", receiver.url)
    wh.enqueue(store, "match", {"n": 1})
    wh.update_endpoint(store, "platform", enabled=False)
    dispatcher = dispatcher_factory()
    assert dispatcher.deliver_due().attempted == 0
    wh.update_endpoint(store, "platform", enabled=True)
    assert dispatcher.deliver_due().delivered == 1

    wh.enqueue(store, "match", {"n": 2})
    removed = wh.remove_endpoint(store, "platform")
    assert removed.name == "platform"
    assert wh.list_deliveries(store) == []
    assert dispatcher.deliver_due().attempted == 0
    assert len(receiver.received) == 1


def test_prune_deletes_old_events_that_were_delivered_and_keeps_the_rest(
    store: BankStore, receiver: Receiver, dispatcher_factory: Callable[..., Dispatcher]
) -> None:
    wh.create_endpoint(store, "platform", receiver.url)
    done = wh.enqueue(store, "match", {"n": 1})
    dispatcher_factory().deliver_due()
    waiting = wh.enqueue(store, "match", {"n": 2})
    assert wh.prune(store, older_than=timedelta(days=1)) == 0  # too recent
    assert wh.prune(store, older_than=timedelta(0)) == 1
    with pytest.raises(NotFound):
        wh.get_event(store, done)
    assert wh.get_event(store, waiting).data == {"n": 2}


def test_a_rotated_secret_signs_beside_the_old_one_until_the_overlap_ends(
    store: BankStore, receiver: Receiver, dispatcher_factory: Callable[..., Dispatcher]
) -> None:
    _, old = wh.create_endpoint(store, "platform", receiver.url)
    endpoint, new = wh.rotate_secret(store, "platform", overlap=timedelta(hours=1))
    assert new != old and endpoint.previous_secret_until is not None
    wh.enqueue(store, "match", {"n": 1})
    dispatcher_factory().deliver_due()
    [during] = receiver.received
    header = during.headers["Lightkeeper-Signature"]
    assert len(parse_signature_header(header).v1) == 2
    assert verify_as_documented(old, header, during.body)  # a receiver not yet switched
    assert verify_as_documented(new, header, during.body)  # and one that has

    wh.rotate_secret(store, "platform", overlap=timedelta(0))
    latest = wh.list_endpoints(store)[0]
    assert latest.previous_secret_until is None
    wh.enqueue(store, "match", {"n": 2})
    dispatcher_factory().deliver_due()
    after = receiver.received[-1]
    assert len(parse_signature_header(after.headers["Lightkeeper-Signature"]).v1) == 1
    assert not verify_as_documented(old, after.headers["Lightkeeper-Signature"], after.body)
    assert not verify_as_documented(new, after.headers["Lightkeeper-Signature"], after.body)


def test_delivery_settings_refuse_nonsense() -> None:
    with pytest.raises(InvalidRequest, match="lease"):
        DeliverySettings(total_timeout=30.0, lease=10.0)
    with pytest.raises(InvalidRequest, match="per_endpoint"):
        DeliverySettings(concurrency=2, per_endpoint=3)
    with pytest.raises(InvalidRequest, match="backoff"):
        DeliverySettings(backoff_base=10.0, backoff_cap=5.0)
    assert DeliverySettings().lease_s > DeliverySettings().total_timeout


# ---------------------------------------------------------------- the CLI


def lk(*args: str, db: str) -> Result:
    result = CliRunner().invoke(main, ["webhooks", *args, "--db", db])
    assert "Traceback" not in result.output
    return result


def test_the_cli_lists_what_the_library_knows() -> None:
    assert webhooks_command._EVENT_TYPES == wh.EVENT_TYPES
    assert webhooks_command._STATES == wh.DELIVERY_STATES


def test_cli_adds_delivers_lists_requeues_rotates_and_removes(
    tmp_path: Path, receiver: Receiver
) -> None:
    db = str(tmp_path / "lk.db")
    added = lk("add", "platform", receiver.url, "--event", "match", "--event", "report", db=db)
    assert added.exit_code == 0, added.output
    [secret] = added.stdout.splitlines()  # the secret alone on stdout, for `$(…)`
    assert secret.startswith("whsec_") and "cannot be shown again" in added.stderr
    listed = lk("list", db=db)
    assert listed.stdout == f"platform\t{receiver.url}\tmatch,report\tenabled\n"
    assert secret not in lk("list", "--json", db=db).stdout

    with BankStore.open(db) as store:
        event_id = wh.enqueue(store, "match", {"n": 1})
    sent = lk("deliver", "--json", db=db)
    assert json.loads(sent.stdout)["delivered"] == 1
    [request] = receiver.received
    assert request.event_id == event_id
    assert verify_as_documented(secret, request.headers["Lightkeeper-Signature"], request.body)

    # A dead letter, listed, requeued, delivered.
    receiver.failures = 1
    with BankStore.open(db) as store:
        wh.enqueue(store, "report", {"n": 2})
        dispatcher = Dispatcher(store, replace(FAST, max_attempts=1))
        dispatcher.deliver_due()
        dispatcher.close()
    [dead] = [json.loads(line) for line in lk("dead", "--json", db=db).stdout.splitlines()]
    assert (dead["state"], dead["last_error"]) == ("dead", "HTTP 500")
    assert lk("requeue", db=db).exit_code == 2  # ids or --all, never neither
    assert lk("requeue", "--all", db=db).stdout == "1 dead letter requeued\n"
    assert "1 attempted: 1 delivered" in lk("deliver", db=db).stdout
    log = lk("deliveries", str(dead["id"]), db=db).stdout.splitlines()
    assert "delivered" in log[0] and len(log) == 3
    assert "HTTP 500" in log[1] and "HTTP 200" in log[2]
    assert len(lk("deliveries", "--state", "delivered", db=db).stdout.splitlines()) == 2

    rotated = lk("rotate-secret", "platform", "--overlap", "0", db=db)
    [new_secret] = rotated.stdout.splitlines()
    assert new_secret.startswith("whsec_") and new_secret != secret
    with BankStore.open(db) as store:
        wh.enqueue(store, "match", {"n": 3})
    lk("deliver", db=db)
    last = receiver.received[-1]
    assert verify_as_documented(new_secret, last.headers["Lightkeeper-Signature"], last.body)

    assert lk("remove", "platform", db=db).stdout == "endpoint 'platform' removed\n"
    gone = lk("remove", "platform", db=db)
    assert gone.exit_code == 1 and "no webhook endpoint named 'platform'" in gone.stderr
    bad = lk("add", "files", "ftp://files.example.com/", db=db)
    assert bad.exit_code == 1 and "http:// or https://" in bad.stderr
