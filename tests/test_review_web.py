"""The reviewer web UI over HTTP, as a browser would use it: signing in, the session cookie,
CSRF, roles, the blurred preview and the audited reveal, security headers. On SQLite and
PostgreSQL, against the service of `lightkeeper.service.testing`.

All content is benign: synthetic photos (conftest).
"""

from __future__ import annotations

import io
import itertools
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from PIL import Image
from starlette.routing import Mount

from conftest import synthetic_photo
from lightkeeper.actions.cases import get_case
from lightkeeper.banks.audit import list_events
from lightkeeper.banks.testing import backends
from lightkeeper.hashing import hash_bytes
from lightkeeper.reporting.ncmec_contract import ContractServer
from lightkeeper.reporting.settings import ReportingSettings
from lightkeeper.review.accounts import create_reviewer, get_reviewer
from lightkeeper.review.appeals import file_appeal, get_appeal
from lightkeeper.review.decisions import decide
from lightkeeper.review.settings import ReviewSettings
from lightkeeper.service.testing import TestService, service_client
from lightkeeper.service.web.derivatives import PREVIEW_SIDE
from lightkeeper.service.web.reporting import Reporting
from lightkeeper.service.web.signins import (
    FAILURES_PER_ADDRESS,
    FAILURES_PER_USER,
    SignInLimiter,
)
from lightkeeper.service.web.tickets import ClearImages
from test_service_api import wait_until

PASSWORD = "correct horse battery"
REPORTER = {"first_name": "Ana", "last_name": "Silva", "email": "ana@example.org"}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_TOKEN = re.compile(r'name="token" value="([^"]+)"')


def photo(seed: int = 7) -> bytes:
    out = io.BytesIO()
    synthetic_photo(320, 240, seed=seed).save(out, format="JPEG", quality=92)
    return out.getvalue()


@dataclass
class Flagged:
    """A case recorded through a real match call, and its one recorded match."""

    case_id: int
    match_id: int
    data: bytes


def flag(svc: TestService, data: bytes, *, uploader: str = "user-17") -> Flagged:
    """List `data`'s MD5 in a block bank, then upload it: the default policy blocks,
    quarantines and sends it to review."""
    write = svc.auth("bank:write")
    if svc.client.get("/v1/banks/known", headers=svc.auth("bank:read")).status_code == 404:
        r = svc.client.post("/v1/banks", json={"name": "known"}, headers=write)
        assert r.status_code == 201, r.text
    md5 = str(hash_bytes(data)["md5"])
    entry = {"signal_type": "md5", "value": md5, "classification": "A1"}
    r = svc.client.post("/v1/banks/known/entries", json={"entries": [entry]}, headers=write)
    assert r.status_code == 200, r.text

    def indexed() -> bool:
        found = svc.client.get(
            "/v1/lookup", params={"signal_type": "md5", "value": md5}, headers=svc.auth("lookup")
        )
        return bool(found.json()["results"][0]["matched"])

    wait_until(indexed, what="entry indexed")
    r = svc.client.post(
        "/v1/match", content=data, headers=svc.auth("match"), params={"uploader": uploader}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    detail = get_case(svc.store, int(body["case_id"]))
    return Flagged(detail.case.id, detail.matches[0].id, data)


def browser(svc: TestService) -> TestClient:
    """A client of the same running app with a cookie jar of its own (one person)."""
    return TestClient(svc.client.app, raise_server_exceptions=False, follow_redirects=False)


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    form = client.get("/review/sign-in")
    assert form.status_code == 200, form.text
    token = _TOKEN.search(form.text)
    assert token is not None
    return client.post(
        "/review/sign-in",
        data={"username": username, "password": password, "token": token.group(1), "next": ""},
    )


def csrf_of(client: TestClient, path: str) -> str:
    r = client.get(path)
    assert r.status_code == 200, r.text
    found = _CSRF.search(r.text)
    assert found is not None
    return found.group(1)


@pytest.fixture(scope="module", params=backends())
def svc(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestService]:
    """One running service per backend for the module; each test uses people and content of
    its own, and puts back any review setting it changes."""
    with service_client(tmp_path_factory.mktemp(request.param), request.param) as service:
        yield service


@pytest.fixture(scope="module")
def sqlite_svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestService]:
    with service_client(tmp_path_factory.mktemp("sqlite")) as service:
        yield service


@contextmanager
def review_settings(svc: TestService, settings: ReviewSettings) -> Iterator[None]:
    web = svc.client.app.state.web
    web.configure(review=settings)
    try:
        yield
    finally:
        web.configure(review=ReviewSettings())


_names = itertools.count(1)


def new_name(prefix: str = "rev") -> str:
    return f"{prefix}{next(_names)}"


def signed_in_reviewer(
    svc: TestService, username: str | None = None, role: str = "reviewer"
) -> TestClient:
    username = username or new_name(role)
    create_reviewer(svc.store, username, role=role, password=PASSWORD)  # type: ignore[arg-type]
    client = browser(svc)
    assert sign_in(client, username).status_code == 303
    return client


# ---------------------------------------------------------------- signing in


def test_without_a_session_pages_send_you_to_sign_in_and_forms_are_refused(
    sqlite_svc: TestService,
) -> None:
    svc = sqlite_svc
    client = browser(svc)
    r = client.get("/review/queue")
    assert r.status_code == 303
    assert r.headers["location"] == "/review/sign-in?next=/review/queue"
    r = client.post("/review/cases/1/decide", data={"kind": "escalate", "csrf": "x"})
    assert r.status_code == 401
    # An API key is no way into the reviewer UI …
    r = client.get("/review/queue", headers=svc.auth("admin"))
    assert r.status_code == 303


def test_every_review_route_but_sign_in_and_static_files_needs_a_session(
    sqlite_svc: TestService,
) -> None:
    """Deny by default: each route of the reviewer UI, found by walking its application."""
    ui = next(
        route.app  # type: ignore[attr-defined]
        for route in sqlite_svc.client.app.routes  # type: ignore[attr-defined]
        if isinstance(route, Mount) and route.path == "/review"
    )
    open_paths = {"/", "/sign-in", "/static/{name}"}
    client = browser(sqlite_svc)
    checked = 0
    for route in iter_route_contexts(ui.routes):
        if route.path is None or route.methods is None or route.path in open_paths:
            continue
        path = "/review" + re.sub(
            r"\{(\w+)(:path)?\}",
            lambda m: "1" if m.group(1).endswith("id") else "x" * 32,
            route.path,
        )
        for method in route.methods - {"HEAD"}:
            r = client.request(method, path, data={"csrf": "x"})
            if method == "GET":
                assert r.status_code == 303, (method, path, r.status_code)
                assert r.headers["location"].startswith("/review/sign-in?next=")
            else:
                assert r.status_code == 401, (method, path, r.status_code)
            checked += 1
    assert checked >= 12


def test_sign_in_sets_a_strict_cookie_that_never_opens_the_api(svc: TestService) -> None:
    name = new_name()
    create_reviewer(svc.store, name, password=PASSWORD)
    client = browser(svc)
    r = sign_in(client, name)
    assert r.status_code == 303 and r.headers["location"] == "/review/queue"
    cookie = next(
        v for k, v in r.headers.multi_items() if k == "set-cookie" and "lk_review_session" in v
    )
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/review"} <= attributes
    assert "secure" not in attributes  # plain http here; https requests get Secure
    assert client.get("/review/queue").status_code == 200
    # … and a session cookie is no way into the API.
    token = client.cookies.get("lk_review_session") or ""
    api = browser(svc)
    api.cookies.set("lk_review_session", token, path="/")
    assert api.get("/v1/cases").status_code == 401
    # Signing out ends the session on the server, not only in the browser.
    csrf = csrf_of(client, "/review/queue")
    assert client.post("/review/sign-out", data={"csrf": csrf}).status_code == 303
    replay = browser(svc)
    replay.cookies.set("lk_review_session", token, path="/review")
    assert replay.get("/review/queue").status_code == 303


def test_over_https_the_cookies_are_secure(sqlite_svc: TestService) -> None:
    name = new_name()
    create_reviewer(sqlite_svc.store, name, password=PASSWORD)
    client = TestClient(
        sqlite_svc.client.app, base_url="https://testserver", follow_redirects=False
    )
    r = sign_in(client, name)
    assert r.status_code == 303
    session = next(v for v in r.headers.get_list("set-cookie") if "lk_review_session=" in v)
    assert "secure" in {part.strip().lower() for part in session.split(";")}


def test_wrong_passwords_are_refused_alike_then_rate_limited(sqlite_svc: TestService) -> None:
    svc = sqlite_svc
    name = new_name()
    create_reviewer(svc.store, name, password=PASSWORD)
    client = browser(svc)
    wrong = sign_in(client, name, "not the password!")
    unknown = sign_in(client, "nobody", "not the password!")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong user name or password" in wrong.text and "Wrong user name" in unknown.text
    # The limit per user name (5 by default; 2 here, to spend less time hashing passwords).
    web = svc.client.app.state.web
    default = web.sign_ins
    web.sign_ins = SignInLimiter(per_user=2)
    try:
        for _ in range(2):
            assert sign_in(client, name, "not the password!").status_code == 401
        # Refused before the password is even checked, right or wrong.
        blocked = sign_in(client, name)
        assert blocked.status_code == 429
        assert "Too many failed sign-ins" in blocked.text
        assert client.get("/review/queue").status_code == 303
        # Another person at the same address is not locked out by it.
        other = new_name()
        create_reviewer(svc.store, other, password=PASSWORD)
        assert sign_in(browser(svc), other).status_code == 303
    finally:
        web.sign_ins = default


def test_the_sign_in_limiter_counts_names_and_addresses_apart() -> None:
    limiter = SignInLimiter()
    for _ in range(FAILURES_PER_USER):
        assert limiter.wait("Ana", "10.0.0.1") == 0
        limiter.failed("ana", "10.0.0.1")
    assert limiter.wait("ana", "10.0.0.2") > 0  # the name, from anywhere
    assert limiter.wait("ben", "10.0.0.1") == 0  # the address is still under its own limit
    for n in range(FAILURES_PER_ADDRESS - FAILURES_PER_USER):
        limiter.failed(f"guess{n}", "10.0.0.1")
    assert limiter.wait("ben", "10.0.0.1") > 0  # now the address, for any name
    limiter.succeeded("ana")
    assert limiter.wait("ana", "10.0.0.2") == 0


def test_the_sign_in_form_needs_its_own_token(sqlite_svc: TestService) -> None:
    name = new_name()
    create_reviewer(sqlite_svc.store, name, password=PASSWORD)
    client = browser(sqlite_svc)
    client.get("/review/sign-in")
    r = client.post(
        "/review/sign-in", data={"username": name, "password": PASSWORD, "token": "forged"}
    )
    assert r.status_code == 403
    assert client.get("/review/queue").status_code == 303


def test_a_trusted_proxy_header_signs_in_only_when_configured(sqlite_svc: TestService) -> None:
    svc = sqlite_svc
    name = new_name()
    create_reviewer(svc.store, name)  # no password: proxy sign-in only
    client = browser(svc)
    header = {"X-Remote-User": name}
    assert client.get("/review/queue", headers=header).status_code == 303  # off by default
    with review_settings(svc, ReviewSettings(proxy_user_header="X-Remote-User")):
        r = client.get("/review/queue", headers=header)
        assert r.status_code == 200
        assert "lk_review_session" in r.headers.get("set-cookie", "")
        stranger = {"X-Remote-User": "mallory"}
        assert client.get("/review/queue", headers=stranger).status_code == 403


# ---------------------------------------------------------------- the case page


def test_case_page_shows_evidence_and_only_a_blurred_greyscale_preview(svc: TestService) -> None:
    flagged = flag(svc, photo())
    ana = signed_in_reviewer(svc)
    queue = ana.get("/review/queue")
    assert f'href="/review/cases/{flagged.case_id}"' in queue.text
    assert "0 / 50" in queue.text  # exposure today

    page = ana.get(f"/review/cases/{flagged.case_id}")
    assert page.status_code == 200
    text = page.text
    evidence, media = text.index('id="evidence"'), text.index('id="media"')
    assert evidence < media  # evidence first
    for shown in ("known", "md5", "A1", "user-17", "0 / 0", "block, quarantine, review"):
        assert shown in text[evidence:media], shown
    md5 = str(hash_bytes(flagged.data)["md5"])
    assert md5 not in text  # the bank's hash value is not shown
    # Never the clear image before a reveal: only the preview route is referenced.
    assert "/review/clear/" not in text
    preview_path = f"/review/cases/{flagged.case_id}/matches/{flagged.match_id}/preview.png"
    assert preview_path in text

    preview = ana.get(preview_path)
    assert preview.status_code == 200
    assert preview.headers["content-type"] == "image/png"
    assert preview.headers["cache-control"] == "no-store"
    image = Image.open(io.BytesIO(preview.content))
    assert image.mode == "L"
    assert max(image.size) <= PREVIEW_SIDE
    assert preview.content != flagged.data
    # A preview is a system read of the vault, never a person's view.
    events = list_events(svc.store.engine, subject=f"case-match/{flagged.match_id}")
    assert not [e for e in events if e.action == "review.reveal"]


def test_every_review_response_carries_the_security_headers(sqlite_svc: TestService) -> None:
    client = browser(sqlite_svc)
    for path in ("/review/sign-in", "/review/queue", "/review/static/review.js", "/review/nope"):
        r = client.get(path)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "img-src 'self'" in csp
        assert "default-src 'none'" in csp and "'unsafe-inline'" not in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-content-type-options"] == "nosniff"
    page = client.get("/review/sign-in")
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text and " style=" not in page.text  # nothing inline


def test_a_reveal_is_audited_and_its_image_served_once(svc: TestService) -> None:
    flagged = flag(svc, photo(3))
    name = new_name()
    ana = signed_in_reviewer(svc, name)
    case_path = f"/review/cases/{flagged.case_id}"
    csrf = csrf_of(ana, case_path)
    reveal_path = f"{case_path}/matches/{flagged.match_id}/reveal"
    assert ana.post(reveal_path, data={"csrf": "forged"}).status_code == 403
    r = ana.post(reveal_path, data={"csrf": csrf})
    assert r.status_code == 200, r.text
    found = re.search(r'src="(/review/clear/[A-Za-z0-9_-]+)"', r.text)
    assert found is not None

    def views() -> list[Any]:
        events = list_events(svc.store.engine, subject=f"case-match/{flagged.match_id}")
        return [e for e in events if e.action == "review.reveal"]

    assert views() == []  # counted against the cap, but nobody has seen it yet
    clear = ana.get(found.group(1))
    assert clear.status_code == 200 and clear.content == flagged.data
    [seen] = views()  # the view is recorded as the image is served
    assert seen.actor == f"reviewer:{name}"
    assert clear.headers["cache-control"] == "no-store"
    assert ana.get(found.group(1)).status_code == 410  # once only
    assert "1 / 50" in ana.get(case_path).text


def test_a_reveals_image_is_served_by_whichever_worker_the_fetch_reaches(
    svc: TestService,
) -> None:
    flagged = flag(svc, photo(5))
    name = new_name()
    ana = signed_in_reviewer(svc, name)
    bo = signed_in_reviewer(svc)
    case_path = f"/review/cases/{flagged.case_id}"
    r = ana.post(
        f"{case_path}/matches/{flagged.match_id}/reveal", data={"csrf": csrf_of(ana, case_path)}
    )
    found = re.search(r'src="(/review/clear/[A-Za-z0-9_-]+)"', r.text)
    assert r.status_code == 200 and found is not None
    # Another worker process has none of this one's memory: the bytes the reveal read are
    # not there, only what the database holds.
    web = svc.client.app.state.web
    web.clear_images = ClearImages()
    assert bo.get(found.group(1)).status_code == 410  # not the person who revealed
    clear = ana.get(found.group(1))
    assert clear.status_code == 200 and clear.content == flagged.data
    assert ana.get(found.group(1)).status_code == 410  # still once only
    vault = svc.client.app.state.runtime.actioner.vault
    reads = [a for a in vault.access_log() if a.action == "read" and a.actor == f"reviewer:{name}"]
    assert [a.reason for a in reads] == [
        f"reveal: review of case {flagged.case_id}",
        f"reveal: review of case {flagged.case_id} (image fetched through another worker)",
    ]
    events = list_events(svc.store.engine, subject=f"case-match/{flagged.match_id}")
    assert len([e for e in events if e.action == "review.reveal"]) == 1  # one reveal


def test_a_reveal_over_the_daily_cap_is_refused_with_a_reason(sqlite_svc: TestService) -> None:
    svc = sqlite_svc
    flagged = flag(svc, photo(4))
    ana = signed_in_reviewer(svc)
    case_path = f"/review/cases/{flagged.case_id}"
    with review_settings(svc, ReviewSettings(daily_reveal_cap=0)):
        r = ana.post(
            f"{case_path}/matches/{flagged.match_id}/reveal",
            data={"csrf": csrf_of(ana, case_path)},
        )
    assert r.status_code == 409
    assert "allowed today" in r.text and "/review/clear/" not in r.text


# ---------------------------------------------------------------- decisions and roles


def test_a_wrong_csrf_token_decides_nothing(sqlite_svc: TestService) -> None:
    svc = sqlite_svc
    flagged = flag(svc, photo(5))
    ana = signed_in_reviewer(svc)
    path = f"/review/cases/{flagged.case_id}/decide"
    r = ana.post(path, data={"kind": "false_positive", "csrf": "0" * 43})
    assert r.status_code == 403
    assert "CSRF" in r.text
    assert ana.post(path, data={"kind": "false_positive"}).status_code == 403
    assert 'id="review-state">undecided' in ana.get(f"/review/cases/{flagged.case_id}").text


def test_a_reviewer_cannot_decide_an_escalated_case_but_a_senior_can(svc: TestService) -> None:
    flagged = flag(svc, photo(6))
    ana = signed_in_reviewer(svc)
    case_path = f"/review/cases/{flagged.case_id}"
    csrf = csrf_of(ana, case_path)
    r = ana.post(f"{case_path}/decide", data={"kind": "escalate", "csrf": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/review/queue?done=escalate"
    assert ana.get(case_path).status_code == 403
    refused = ana.post(
        f"{case_path}/decide", data={"kind": "confirm", "classification": "A1", "csrf": csrf}
    )
    assert refused.status_code == 403
    assert f'href="{case_path}"' not in ana.get("/review/queue").text

    sara = signed_in_reviewer(svc, role="senior")
    assert f'href="{case_path}"' in sara.get("/review/queue").text
    r = sara.post(
        f"{case_path}/decide",
        data={"kind": "confirm", "classification": "B2", "csrf": csrf_of(sara, case_path)},
    )
    assert r.status_code == 303
    assert 'id="review-state">awaiting approval' in sara.get(case_path).text


def test_appeals_are_answered_by_seniors_only(sqlite_svc: TestService) -> None:
    svc = sqlite_svc
    flagged = flag(svc, photo(10), uploader="user-99")
    appeal = file_appeal(
        svc.store, flagged.case_id, statement="<b>my own photo</b>", uploader="user-99"
    )
    ana = signed_in_reviewer(svc)
    r = ana.get("/review/appeals")
    assert r.status_code == 403 and "senior" in r.text
    sara = signed_in_reviewer(svc, role="senior")
    page = sara.get("/review/appeals")
    assert page.status_code == 200
    assert "&lt;b&gt;my own photo&lt;/b&gt;" in page.text  # a user's words, escaped
    path = f"/review/appeals/{appeal.id}"
    csrf = csrf_of(sara, "/review/appeals")
    refused = ana.post(path, data={"csrf": csrf, "outcome": "deny", "reason": "no"})
    assert refused.status_code == 403
    no_reason = sara.post(path, data={"csrf": csrf, "outcome": "deny", "reason": " "})
    assert no_reason.status_code == 422
    r = sara.post(path, data={"csrf": csrf, "outcome": "deny", "reason": "it is the listed image"})
    assert r.status_code == 303 and r.headers["location"] == "/review/appeals?done=denied"
    assert get_appeal(svc.store, appeal.id).status == "denied"
    assert f'id="appeal-{appeal.id}"' not in sara.get("/review/appeals").text


def test_a_senior_is_not_offered_the_appeal_of_their_own_decision(sqlite_svc: TestService) -> None:
    svc = sqlite_svc
    flagged = flag(svc, photo(13), uploader="user-97")
    sara = signed_in_reviewer(svc, "sara-own", role="senior")
    decide(
        svc.store,
        flagged.case_id,
        get_reviewer(svc.store, "sara-own"),
        "confirm",
        classification="A1",
    )
    ana = create_reviewer(svc.store, "ana-approves")
    decide(svc.store, flagged.case_id, ana, "approve")
    appeal = file_appeal(svc.store, flagged.case_id, statement="not me", uploader="user-97")
    page = sara.get("/review/appeals").text
    mine = page.split(f'id="appeal-{appeal.id}"')[1].split("</article>")[0]
    assert "another senior reviewer or admin answers it" in mine and "<form" not in mine
    r = sara.post(
        f"/review/appeals/{appeal.id}",
        data={"csrf": csrf_of(sara, "/review/appeals"), "outcome": "deny", "reason": "stands"},
    )
    assert r.status_code == 403 and "another senior reviewer or admin must decide it" in r.text
    other = signed_in_reviewer(svc, role="senior")
    theirs = other.get("/review/appeals").text.split(f'id="appeal-{appeal.id}"')[1]
    assert "<form" in theirs.split("</article>")[0]


def test_an_appeal_upheld_in_the_browser_uses_the_configured_allow_bank(
    sqlite_svc: TestService,
) -> None:
    svc = sqlite_svc
    flagged = flag(svc, photo(11), uploader="user-98")
    appeal = file_appeal(svc.store, flagged.case_id, statement="a garden", uploader="user-98")
    sara = signed_in_reviewer(svc, role="senior")
    csrf = csrf_of(sara, "/review/appeals")
    with review_settings(svc, ReviewSettings(false_positive_bank="fp-local")):
        r = sara.post(
            f"/review/appeals/{appeal.id}",
            data={"csrf": csrf, "outcome": "uphold", "reason": "benign"},
        )
    assert r.status_code == 303, r.text
    assert svc.store.get_bank("fp-local").kind == "allow"
    assert svc.store.count_entries("fp-local") == 1


def test_the_transparency_page_embeds_the_figures(sqlite_svc: TestService) -> None:
    flag(sqlite_svc, photo(9))
    ana = signed_in_reviewer(sqlite_svc)
    r = ana.get("/review/transparency")
    assert r.status_code == 200
    assert "<svg" in r.text and "<script" not in r.text.split("</head>")[1]
    assert 'href="/review/static/transparency.css"' in r.text
    assert ana.get("/review/static/transparency.css").status_code == 200
    assert ana.get("/review/transparency?from=2026-13-01").status_code == 422
    for query in ("to=9999-12-31", "to=0001-01-05", "from=0001-01-01&to=0001-01-02"):
        assert ana.get(f"/review/transparency?{query}").status_code == 422, query
    # A `from` more than the default 30 days back is not overflowed by that default.
    assert ana.get("/review/transparency?from=1970-01-01&to=1970-01-02").status_code == 200
    # The form's days are both included; the figures state the period as the CLI takes it.
    january = ana.get("/review/transparency?from=2026-01-01&to=2026-01-31").text
    assert 'name="from" value="2026-01-01"' in january
    assert 'name="to" value="2026-01-31"' in january
    assert '<time datetime="2026-02-01T00:00:00+00:00">2026-02-01</time>' in january


def test_reporting_off_is_explained_on_a_confirmed_case(sqlite_svc: TestService) -> None:
    svc = sqlite_svc
    flagged = flag(svc, photo(8))
    ana = signed_in_reviewer(svc)
    case_path = f"/review/cases/{flagged.case_id}"
    with review_settings(svc, ReviewSettings(two_person_rule=False)):
        r = ana.post(
            f"{case_path}/decide",
            data={"kind": "confirm", "classification": "A2", "csrf": csrf_of(ana, case_path)},
        )
    assert r.status_code == 303
    page = ana.get(case_path).text
    assert 'id="reporting-off"' in page and "LIGHTKEEPER_NCMEC_URL" in page
    assert 'id="report"' not in page


def test_a_report_that_failed_shows_its_error_and_resumes(
    sqlite_svc: TestService, tmp_path: Path
) -> None:
    svc = sqlite_svc
    flagged = flag(svc, photo(12))
    profile = tmp_path / "reporter.json"
    profile.write_text(json.dumps({"reporting_person": REPORTER}), encoding="utf-8")
    web = svc.client.app.state.web
    ana = signed_in_reviewer(svc)
    case_path = f"/review/cases/{flagged.case_id}"
    with (
        ContractServer("esp", "contract-pass") as ncmec,
        review_settings(svc, ReviewSettings(two_person_rule=False)),
    ):
        settings = ReportingSettings(
            url=ncmec.url,
            username="esp",
            password="contract-pass",
            profile_path=profile,
            attempts=1,
        )
        web.configure(reporting=Reporting.from_settings(settings))
        try:
            csrf = csrf_of(ana, case_path)
            decided = ana.post(
                f"{case_path}/decide",
                data={"kind": "confirm", "classification": "B1", "csrf": csrf},
            )
            assert decided.status_code == 303
            ncmec.fail_next("/submit", status=503)
            r = ana.post(f"{case_path}/report", data={"csrf": csrf})
            assert r.status_code == 303 and r.headers["location"].endswith("done=report_failed")
            page = ana.get(r.headers["location"]).text
            assert "could not be completed" in page
            assert '<td class="report-state">failed</td>' in page
            found = re.search(r'action="(/review/reports/\d+/submit)"', page)
            assert found is not None  # "Resume submission"
            assert ana.post(found.group(1), data={"csrf": csrf}).status_code == 303
            page = ana.get(case_path).text
            assert '<td class="report-state">finished</td>' in page
            (ncmec_id,) = ncmec.reports
            assert ncmec_id in page
            assert 'id="report"' not in page  # one live report per uploader
        finally:
            web.configure(reporting=Reporting.from_settings(ReportingSettings()))
