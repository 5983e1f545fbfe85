"""The sign-in limiter and the sign-in form under pressure: guesses sent all at once, floods
of new names and addresses, IPv6 neighbours, and several sign-in tabs in one browser.

Over HTTP against the service of `lightkeeper.service.testing`, on SQLite; the password
check is replaced by a slow (or quick) fake wherever only the count of checks matters, since
Argon2 costs about a third of a second per hash here.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from lightkeeper.errors import Unauthenticated
from lightkeeper.review.accounts import SIGN_IN_FAILED, Reviewer, create_reviewer
from lightkeeper.service.testing import TestService, service_client
from lightkeeper.service.web import account
from lightkeeper.service.web.signins import FAILURES_PER_USER, SignInLimiter, SignInRefused

PASSWORD = "correct horse battery"
_TOKEN = re.compile(r'name="token" value="([^"]+)"')
_names = itertools.count(1)


def new_name(prefix: str = "rev") -> str:
    return f"{prefix}{next(_names)}"


def browser(svc: TestService, address: str = "testclient") -> TestClient:
    """A client of the running app with a cookie jar of its own, calling from `address`.

    Not entered as a context manager: each request runs in a portal (an event loop thread)
    of its own, so requests from several threads are handled at the same time."""
    return TestClient(
        svc.client.app,
        raise_server_exceptions=False,
        follow_redirects=False,
        client=(address, 50000),
    )


def form_token(client: TestClient) -> str:
    form = client.get("/review/sign-in")
    assert form.status_code == 200, form.text
    token = _TOKEN.search(form.text)
    assert token is not None
    return token.group(1)


def post_sign_in(client: TestClient, token: str, username: str, password: str) -> Any:
    return client.post(
        "/review/sign-in",
        data={"username": username, "password": password, "token": token, "next": ""},
    )


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    return post_sign_in(client, form_token(client), username, password)


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestService]:
    with service_client(tmp_path_factory.mktemp("sqlite")) as service:
        yield service


@pytest.fixture
def use_limiter(svc: TestService) -> Iterator[Callable[[SignInLimiter], SignInLimiter]]:
    """Put a limiter of the test's own on the app; the app's own comes back after."""
    web = svc.client.app.state.web
    default = web.sign_ins

    def use(limiter: SignInLimiter) -> SignInLimiter:
        web.sign_ins = limiter
        return limiter

    yield use
    web.sign_ins = default


@dataclass
class FakeCheck:
    """A password check that always fails, after `delay_s`; counts what it was asked."""

    delay_s: float = 0.0

    def __post_init__(self) -> None:
        self.checked: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, store: object, username: str, password: str) -> Reviewer:
        with self._lock:
            self.checked.append(username)
        time.sleep(self.delay_s)
        raise Unauthenticated(SIGN_IN_FAILED)


def fake_check(monkeypatch: pytest.MonkeyPatch, delay_s: float = 0.0) -> FakeCheck:
    check = FakeCheck(delay_s)
    monkeypatch.setattr(account, "authenticate", check)
    return check


# ---------------------------------------------------------------- guesses at once


def test_guesses_sent_at_once_check_no_more_passwords_than_the_limit(
    svc: TestService,
    use_limiter: Callable[[SignInLimiter], SignInLimiter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_limiter(SignInLimiter())
    check = fake_check(monkeypatch, delay_s=0.4)  # long enough for all to arrive meanwhile
    name = new_name()
    guesses = 3 * FAILURES_PER_USER
    clients = [browser(svc) for _ in range(guesses)]
    tokens = [form_token(client) for client in clients]
    start = threading.Barrier(guesses)

    def guess(n: int) -> Any:
        start.wait(timeout=5)
        return post_sign_in(clients[n], tokens[n], name, f"guess {n}")

    with ThreadPoolExecutor(guesses) as pool:
        answers = list(pool.map(guess, range(guesses)))
    statuses = sorted(r.status_code for r in answers)
    assert len(check.checked) == FAILURES_PER_USER
    assert statuses == [401] * FAILURES_PER_USER + [429] * (guesses - FAILURES_PER_USER)
    for refused in (r for r in answers if r.status_code == 429):
        assert int(refused.headers["retry-after"]) > 0
        assert "Too many failed sign-ins" in refused.text


def test_past_the_limit_the_form_answers_429_with_retry_after_and_checks_nothing(
    svc: TestService,
    use_limiter: Callable[[SignInLimiter], SignInLimiter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_limiter(SignInLimiter(window_s=600.0))
    check = fake_check(monkeypatch)
    name = new_name()
    client = browser(svc)
    for _ in range(FAILURES_PER_USER):
        assert sign_in(client, name, "wrong").status_code == 401
    refused = sign_in(client, name, "wrong")
    assert refused.status_code == 429
    assert 590 <= int(refused.headers["retry-after"]) <= 600
    assert len(check.checked) == FAILURES_PER_USER


def test_checks_in_progress_count_against_the_limit_until_settled() -> None:
    limiter = SignInLimiter(per_user=3)
    checked = 0
    refused = 0
    lock = threading.Lock()
    start = threading.Barrier(12)

    def guess() -> None:
        nonlocal checked, refused
        start.wait(timeout=5)
        try:
            with limiter.attempt("Ana", "10.0.0.1") as attempt:
                with lock:
                    checked += 1
                time.sleep(0.2)  # the slow password check
                attempt.failed()
        except SignInRefused as e:
            assert e.wait_s > 0
            with lock:
                refused += 1

    threads = [threading.Thread(target=guess) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (checked, refused) == (3, 9)
    assert limiter.wait("ana", "10.9.9.9") > 0


def test_an_attempt_is_settled_once_and_released_when_its_check_breaks() -> None:
    limiter = SignInLimiter(per_user=1)
    with pytest.raises(OSError), limiter.attempt("ana", "10.0.0.1"):
        raise OSError("the database went away")  # neither outcome: nothing is counted
    with limiter.attempt("ana", "10.0.0.1") as attempt:
        assert limiter.wait("ana", "10.0.0.2") > 0  # while it is checked, nobody else
        attempt.succeeded()
        with pytest.raises(RuntimeError):
            attempt.failed()
    with pytest.raises(RuntimeError), limiter.attempt("ana", "10.0.0.1"):
        pass  # settling forgotten: released, and loudly
    assert limiter.wait("ana", "10.0.0.1") == 0


# ---------------------------------------------------------------- floods of new keys


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(limiter: SignInLimiter, username: str, address: str) -> bool:
    """One wrong password through `attempt`; False when it was refused."""
    try:
        with limiter.attempt(username, address) as attempt:
            attempt.failed()
    except SignInRefused:
        return False
    return True


def test_a_flood_of_new_names_from_new_addresses_never_unlocks_a_name() -> None:
    limiter = SignInLimiter(max_tracked=10)
    for _ in range(FAILURES_PER_USER):
        assert fail(limiter, "ana", "192.0.2.1")
    for n in range(200):
        fail(limiter, f"junk{n}", f"198.51.{n // 250}.{n % 250}")
    assert limiter.wait("ana", "203.0.113.9") > 0
    assert not fail(limiter, "ana", "203.0.113.9")


def test_when_every_remembered_name_is_locked_a_new_name_is_refused() -> None:
    clock = FakeClock()
    limiter = SignInLimiter(per_user=1, window_s=60.0, max_tracked=3, clock=clock)
    for name in ("ana", "ben", "cai"):
        assert fail(limiter, name, f"192.0.2.{len(name)}{name[0]}")  # unparsable: own key
    assert not fail(limiter, "dee", "192.0.2.99")  # no room without forgetting a lock
    assert not fail(limiter, "eve", "192.0.2.99")
    assert all(limiter.wait(name, "192.0.2.98") > 0 for name in ("ana", "ben", "cai"))
    limiter.succeeded("cai")  # a lock cleared makes room
    assert fail(limiter, "dee", "192.0.2.99")
    assert not fail(limiter, "eve", "192.0.2.99")
    clock.now += 61.0  # the locks expire, and with them the entries
    assert fail(limiter, "eve", "192.0.2.99")
    assert limiter.wait("ana", "192.0.2.98") == 0


_POOL = 4  # names u0..u3 and addresses 10.0.0.0..10.0.0.3, besides fresh ones
_ops = st.one_of(
    st.tuples(
        st.sampled_from(["fail", "ok"]),
        st.integers(0, _POOL),  # _POOL: a fresh one
        st.integers(0, _POOL),
    ),
    st.tuples(st.just("tick"), st.integers(1, 40), st.just(0)),
    st.tuples(st.just("flood"), st.integers(1, 12), st.just(0)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_ops, max_size=40))
def test_a_lock_lasts_its_whole_time_whatever_else_arrives(
    ops: list[tuple[str, int, int]],
) -> None:
    clock = FakeClock()
    limiter = SignInLimiter(per_user=2, per_address=3, window_s=100.0, max_tracked=4, clock=clock)
    fresh = itertools.count()
    users: set[str] = set()
    addresses: set[str] = set()
    #: Until when each name ("u", name) or address ("a", address) was seen locked.
    locked: dict[tuple[str, str], float] = {}

    def wait_of(kind: str, key: str) -> float:
        if kind == "u":
            return limiter.wait(key, "probe address")  # never used: no count of its own
        return limiter.wait("probe name", key)

    for op, first, second in ops:
        if op == "tick":
            clock.now += first
        elif op == "flood":
            for _ in range(first):
                n = next(fresh)
                users.add(f"junk{n}")
                addresses.add(f"10.1.{n // 250}.{n % 250}")
                fail(limiter, f"junk{n}", f"10.1.{n // 250}.{n % 250}")
        else:
            user = f"u{first}" if first < _POOL else f"new{next(fresh)}"
            address = f"10.0.0.{second}" if second < _POOL else f"10.2.0.{next(fresh) % 250}"
            users.add(user)
            addresses.add(address)
            try:
                with limiter.attempt(user, address) as attempt:
                    if op == "fail":
                        attempt.failed()
                    else:
                        attempt.succeeded()
            except SignInRefused:
                pass
        for (kind, key), until in locked.items():
            if clock.now < until:  # a lock is never lifted early (success needs no lock)
                assert wait_of(kind, key) >= until - clock.now - 1e-6, (kind, key)
        for kind, keys in (("u", users), ("a", addresses)):
            for key in keys:
                wait = wait_of(kind, key)
                if wait > 0:
                    locked[kind, key] = max(locked.get((kind, key), 0.0), clock.now + wait)


# ---------------------------------------------------------------- IPv6 neighbours


def test_ipv6_addresses_in_one_64_share_a_count(
    svc: TestService,
    use_limiter: Callable[[SignInLimiter], SignInLimiter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_limiter(SignInLimiter(per_address=3))
    check = fake_check(monkeypatch)
    for host in ("2001:db8:5:6::1", "2001:db8:5:6::2", "2001:db8:5:6:aaaa::3"):
        assert sign_in(browser(svc, host), new_name(), "wrong").status_code == 401
    neighbour = sign_in(browser(svc, "2001:db8:5:6:ffff:ffff:ffff:ffff"), new_name(), "wrong")
    assert neighbour.status_code == 429
    assert "retry-after" in neighbour.headers
    next_network = sign_in(browser(svc, "2001:db8:5:7::1"), new_name(), "wrong")
    assert next_network.status_code == 401
    assert len(check.checked) == 4


def test_addresses_are_counted_by_ipv4_by_ipv6_64_or_as_given() -> None:
    limiter = SignInLimiter(per_user=100, per_address=2)
    limiter.failed("a", "::ffff:192.0.2.7")  # IPv4-mapped: the IPv4 address
    limiter.failed("b", "192.0.2.7")
    assert limiter.wait("c", "192.0.2.7") > 0
    assert limiter.wait("c", "192.0.2.8") == 0
    limiter.failed("a", "fe80::1%eth0")
    limiter.failed("b", "fe80::2")
    assert limiter.wait("c", "fe80::99") > 0
    limiter.failed("a", "unknown")
    assert limiter.wait("c", "unknown") == 0
    limiter.failed("b", "unknown")
    assert limiter.wait("c", "unknown") > 0
    assert limiter.wait("c", "unknown2") == 0


# ---------------------------------------------------------------- several sign-in tabs


def test_an_older_sign_in_form_still_signs_in_after_another_was_loaded(
    svc: TestService,
) -> None:
    name = new_name()
    create_reviewer(svc.store, name, password=PASSWORD)
    client = browser(svc)
    first = form_token(client)  # one tab
    form_token(client)  # another tab, opened later
    r = post_sign_in(client, first, name, PASSWORD)
    assert r.status_code == 303, r.text
    assert client.get("/review/queue").status_code == 200
    # A cookie that is not a token this page makes is replaced, not put in the form.
    stranger = browser(svc)
    stranger.cookies.set("lk_review_signin", "short", path="/review")
    token = form_token(stranger)
    assert token != "short" and len(token) >= 43
