"""The match route acting, as a platform sees it over HTTP: a block match is answered "reject"
in the same call, quarantined encrypted and put in a case; a retried call (same
Idempotency-Key) repeats nothing; a webhook receiver on loopback gets the match event signed;
policies, dry runs, cases and uploaders are served to admin keys only; a crash left behind is
completed when the service starts. On SQLite and PostgreSQL.

All content is benign: synthetic photos (conftest).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from conftest import synthetic_photo
from lightkeeper.actions import webhooks as wh
from lightkeeper.actions.actioner import Actioner
from lightkeeper.actions.cases import CASE_MATCHES, CASES
from lightkeeper.actions.policy import DEFAULT_POLICY
from lightkeeper.actions.vault import OBJECTS, Vault
from lightkeeper.actions.vault_crypto import Keyring
from lightkeeper.banks.testing import backends
from lightkeeper.hashing import hash_bytes
from lightkeeper.matching import Matcher
from lightkeeper.service.app import create_app
from lightkeeper.service.settings import ACTIONS, VAULT_DIR_ENV, VAULT_KEY_FILE_ENV
from lightkeeper.service.testing import TestService, service_client
from test_service_api import wait_until
from test_vault import assert_nowhere
from test_webhooks import Receiver, verify_as_documented

NOTIFY: dict[str, Any] = {
    "rules": [
        *(rule.to_dict() for rule in DEFAULT_POLICY.rules),
        {"name": "tell-us", "actions": ["notify"]},
    ],
    "priorities": dict(DEFAULT_POLICY.priorities),
}
REVIEW_ONLY: dict[str, Any] = {"rules": [{"name": "look", "actions": ["review"]}]}


def photo(seed: int) -> bytes:
    buffer = io.BytesIO()
    synthetic_photo(160, 120, seed=seed).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(params=backends())
def svc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestService]:
    with service_client(tmp_path, request.param) as service:
        yield service


@pytest.fixture
def sqlite_svc(tmp_path: Path) -> Iterator[TestService]:
    with service_client(tmp_path) as service:
        yield service


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def bank(svc: TestService, *entries: dict[str, Any]) -> None:
    """A block bank holding `entries`, once every one of them is in the service's index."""
    write = svc.auth("bank:write")
    if svc.client.get("/v1/banks/known", headers=svc.auth("bank:read")).status_code == 404:
        ok(svc.client.post("/v1/banks", json={"name": "known"}, headers=write), 201)
    ok(svc.client.post("/v1/banks/known/entries", json={"entries": list(entries)}, headers=write))

    def indexed() -> bool:
        batch = {
            "hashes": [{"signal_type": e["signal_type"], "value": e["value"]} for e in entries]
        }
        found = ok(svc.client.post("/v1/lookup", json=batch, headers=svc.auth("lookup")))
        return all(r["matched"] for r in found["results"])

    wait_until(indexed, what="entries indexed")


def listed(svc: TestService, data: bytes, classification: str | None = None) -> None:
    md5 = str(hash_bytes(data)["md5"])
    bank(svc, {"signal_type": "md5", "value": md5, "classification": classification})


def match(svc: TestService, data: bytes, key: str | None = None, **params: str) -> Any:
    headers = svc.auth("match") | ({"Idempotency-Key": key} if key is not None else {})
    return svc.client.post("/v1/match", content=data, headers=headers, params=params)


def counts(svc: TestService) -> dict[str, int]:
    tables = {
        "cases": CASES,
        "matches": CASE_MATCHES,
        "vault": OBJECTS,
        "events": wh.EVENTS,
        "deliveries": wh.DELIVERIES,
    }
    with svc.store.engine.connect() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in tables.items()
        }


def admin(svc: TestService, method: str, path: str, **kwargs: Any) -> Any:
    return svc.client.request(method, path, headers=svc.auth("admin"), **kwargs)


# ---------------------------------------------------------------- the match call


def test_a_block_match_is_refused_in_the_same_call_quarantined_and_opens_a_case(
    svc: TestService, tmp_path: Path
) -> None:
    upload = photo(1)
    listed(svc, upload, classification="A1")
    answer = ok(match(svc, upload, "upload-1", uploader="user-1"))
    assert answer["decision"] == "reject" and answer["request_id"] == "upload-1"
    assert answer["actions"] == ["block", "quarantine", "review"]
    assert all(m["value"] is None for m in answer["matches"])
    detail = ok(admin(svc, "GET", f"/v1/cases/{answer['case_id']}"))
    assert (detail["case"]["status"], detail["case"]["priority"]) == ("open", 1)
    [recorded] = detail["matches"]
    assert (recorded["request_id"], recorded["uploader"]) == ("upload-1", "user-1")
    assert recorded["vault_object_id"] == detail["case"]["vault_objects"][0]
    assert recorded["matches"][0]["bank"] == "known"
    # The upload's bytes are nowhere in plain: not in the database, the vault, the index.
    assert (tmp_path / "vault").is_dir()
    assert_nowhere(upload, svc.store, tmp_path)
    # Matching keys never reach cases, policies or webhooks.
    for scope in ("match", "lookup", "hash", "bank:read", "bank:write"):
        for path in ("/v1/cases", f"/v1/cases/{answer['case_id']}", "/v1/policy", "/v1/webhooks"):
            assert svc.client.get(path, headers=svc.auth(scope)).status_code == 403


def test_a_retried_match_call_repeats_no_action(svc: TestService) -> None:
    receiver = Receiver()
    try:
        ok(admin(svc, "POST", "/v1/webhooks", json={"name": "p", "url": receiver.url}), 201)
        upload = photo(2)
        listed(svc, upload)
        first = ok(match(svc, upload, "retry-me", uploader="u-1"))
        after_first = counts(svc)
        assert after_first == {"cases": 1, "matches": 1, "vault": 1, "events": 3, "deliveries": 3}
        again = ok(match(svc, upload, "retry-me", uploader="u-1"))
        fields = ("decision", "actions", "case_id", "request_id", "sha256")
        assert {k: again[k] for k in fields} == {k: first[k] for k in fields}
        assert counts(svc) == after_first
        conflict = match(svc, photo(3), "retry-me")
        assert conflict.status_code == 409, conflict.text
        assert conflict.json()["error"]["code"] == "conflict"
        fresh = ok(match(svc, upload))  # no key: a new request, joining the same case
        assert fresh["request_id"] != "retry-me" and fresh["case_id"] == first["case_id"]
        assert counts(svc)["matches"] == 2
    finally:
        receiver.close()


def test_an_upload_that_matches_nothing_creates_nothing(svc: TestService) -> None:
    listed(svc, photo(4))
    answer = ok(match(svc, photo(5), "nothing-here", uploader="u-2"))
    assert (answer["decision"], answer["actions"], answer["case_id"]) == ("accept", [], None)
    assert answer["request_id"] == "nothing-here"
    assert counts(svc) == {"cases": 0, "matches": 0, "vault": 0, "events": 0, "deliveries": 0}
    assert ok(admin(svc, "GET", "/v1/cases")) == []


def test_malformed_idempotency_keys_and_uploader_references_are_refused(
    sqlite_svc: TestService,
) -> None:
    upload = photo(6)
    for headers, params in (
        ({"Idempotency-Key": "x" * 201}, {}),
        ({"Idempotency-Key": "tab\tinside"}, {}),
        ({}, {"uploader": "has space"}),
        ({}, {"uploader": "a/b"}),
        ({}, {"uploader": "u" * 201}),
    ):
        response = sqlite_svc.client.post(
            "/v1/match",
            content=upload,
            headers=sqlite_svc.auth("match") | headers,
            params=params,
        )
        assert response.status_code == 422, (headers, params, response.text)
    assert counts(sqlite_svc)["matches"] == 0


def test_with_actions_off_the_service_only_matches(tmp_path: Path) -> None:
    with service_client(tmp_path, actions=False) as svc:
        upload = photo(7)
        listed(svc, upload)
        answer = ok(match(svc, upload, "k"))
        assert (answer["decision"], answer["actions"], answer["case_id"]) == ("reject", [], None)
        assert counts(svc) == {"cases": 0, "matches": 0, "vault": 0, "events": 0, "deliveries": 0}
        assert svc.settings.to_env()[ACTIONS.env] == "0"


# ---------------------------------------------------------------- webhooks


def test_a_receiver_on_loopback_gets_the_match_event_signed(svc: TestService) -> None:
    receiver = Receiver()
    try:
        created = ok(
            admin(
                svc,
                "POST",
                "/v1/webhooks",
                json={"name": "tns", "url": receiver.url, "event_types": ["match"]},
            ),
            201,
        )
        secret = created.pop("secret")
        assert secret.startswith("whsec_")
        listing = ok(admin(svc, "GET", "/v1/webhooks"))
        assert listing == [{k: v for k, v in created.items()}] and secret not in json.dumps(listing)
        ok(admin(svc, "PUT", "/v1/policy", json={"policy": NOTIFY, "comment": "tell us"}))
        upload = photo(8)
        pdq = str(hash_bytes(upload)["pdq"])
        near = f"{int(pdq, 16) ^ 0b1111111:064x}"  # a look-alike's hash: the bank's secret
        bank(svc, {"signal_type": "pdq", "value": near})
        answer = ok(match(svc, upload, "notify-1", uploader="u-3"))
        assert answer["actions"] == ["block", "quarantine", "review", "notify"]
        wait_until(lambda: bool(receiver.accepted()), what="the match event delivered")
        [got] = receiver.accepted()
        assert got.headers["Lightkeeper-Event-Type"] == "match"
        assert verify_as_documented(secret, got.headers["Lightkeeper-Signature"], got.body)
        assert not verify_as_documented(
            "whsec_other", got.headers["Lightkeeper-Signature"], got.body
        )
        event = json.loads(got.body)
        data = event["data"]
        delivered = {"state": "delivered"}
        assert (data["request_id"], data["case_id"], data["uploader"]) == (
            "notify-1",
            answer["case_id"],
            "u-3",
        )
        assert data["matches"][0]["distance"] == 7 and data["matches"][0]["content_value"] == pdq
        assert near not in got.body.decode() and "value" not in data["matches"][0]
        wait_until(
            lambda: bool(ok(admin(svc, "GET", "/v1/webhooks/deliveries", params=delivered))),
            what="the delivery recorded",
        )
        deliveries = ok(admin(svc, "GET", "/v1/webhooks/deliveries", params=delivered))
        assert [d["event_id"] for d in deliveries] == [event["id"]]
        assert ok(admin(svc, "GET", "/v1/webhooks/deliveries", params={"state": "dead"})) == []
        removed = ok(admin(svc, "DELETE", "/v1/webhooks/tns"))
        assert removed["name"] == "tns" and ok(admin(svc, "GET", "/v1/webhooks")) == []
        assert admin(svc, "DELETE", "/v1/webhooks/tns").status_code == 404
    finally:
        receiver.close()


# ---------------------------------------------------------------- policy, dry run, views


def test_policies_are_versioned_and_the_dry_run_says_what_would_change(svc: TestService) -> None:
    default = ok(admin(svc, "GET", "/v1/policy"))
    assert default["version"] is None and default["policy"] == DEFAULT_POLICY.to_dict()
    uploads = [photo(10), photo(11)]
    for i, upload in enumerate(uploads):
        listed(svc, upload, classification="A1" if i == 0 else None)
    answers = [ok(match(svc, upload, f"dry-{i}")) for i, upload in enumerate(uploads)]

    dry = ok(admin(svc, "POST", "/v1/policy/dry-run", json={"policy": REVIEW_ONLY}))
    assert (dry["examined"], dry["changed"], dry["truncated"]) == (2, 2, False)
    assert dry["lost"] == {"block": 2, "quarantine": 2}
    by_request = {c["request_id"]: c for c in dry["changes"]}
    first = by_request["dry-0"]
    assert first["old"] == {"actions": ["block", "quarantine", "review"], "priority": 1}
    assert first["new"] == {"actions": ["review"], "priority": 3}
    detail = ok(admin(svc, "GET", f"/v1/cases/{answers[0]['case_id']}"))
    assert first["match_id"] == detail["matches"][0]["id"]
    assert counts(svc)["matches"] == 2  # a dry run writes nothing

    before = datetime.now(UTC).isoformat()
    put = ok(admin(svc, "PUT", "/v1/policy", json={"policy": REVIEW_ONLY, "comment": "calmer"}))
    assert (put["version"], put["comment"]) == (1, "calmer") and put["actor"].startswith("key:")
    history = ok(admin(svc, "GET", "/v1/policy/history"))
    assert [v["version"] for v in history] == [1]
    assert ok(admin(svc, "GET", "/v1/policy", params={"at": before}))["version"] is None
    assert ok(admin(svc, "GET", "/v1/policy"))["version"] == 1
    after = ok(match(svc, photo(12)))
    assert (after["decision"], after["actions"]) == ("accept", [])  # nothing listed
    listed(svc, photo(12))
    reviewed = ok(match(svc, photo(12)))
    assert (reviewed["decision"], reviewed["actions"]) == ("accept", ["review"])
    bad = admin(
        svc, "PUT", "/v1/policy", json={"policy": {"rules": [{"name": " ", "actions": ["block"]}]}}
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_policy"
    naive = admin(svc, "GET", "/v1/policy", params={"at": "2026-01-01T00:00:00"})
    assert naive.status_code == 422


def test_cases_and_uploaders_show_repeat_uploads(svc: TestService) -> None:
    a, b = photo(20), photo(21)
    listed(svc, a, classification="B2")
    listed(svc, b, classification="A1")
    ok(match(svc, a, uploader="repeat-1"))
    ok(match(svc, a, uploader="repeat-1"))
    ok(match(svc, b, uploader="repeat-1"))
    ok(match(svc, a, uploader="other"))
    view = ok(admin(svc, "GET", "/v1/uploaders/repeat-1"))
    assert (view["uploads"], view["contents"]) == (3, 2)
    assert [c["priority"] for c in view["cases"]] == [1, 3]
    queue = ok(admin(svc, "GET", "/v1/cases", params={"status": "open"}))
    assert [(c["priority"], c["match_count"], c["uploader_count"]) for c in queue] == [
        (1, 1, 1),
        (3, 3, 2),
    ]
    mine = ok(admin(svc, "GET", "/v1/cases", params={"uploader": "other"}))
    assert [c["id"] for c in mine] == [queue[1]["id"]]
    assert ok(admin(svc, "GET", "/v1/uploaders/nobody"))["uploads"] == 0
    assert admin(svc, "GET", "/v1/cases/999999").status_code == 404


# ---------------------------------------------------------------- crash recovery


def test_a_quarantine_left_by_a_crash_is_completed_when_the_service_starts(
    sqlite_svc: TestService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = sqlite_svc
    upload = photo(30)
    listed(svc, upload)
    vault = Vault(svc.store, tmp_path / "vault", Keyring.from_file(tmp_path / "vault.key"))
    crashing = Actioner(vault, Matcher(svc.store))

    def killed(**_: Any) -> tuple[int, int]:
        raise RuntimeError("killed between the vault put and the transaction")

    monkeypatch.setattr(crashing, "_record", killed)
    result = Matcher(svc.store).match_bytes(upload)
    with pytest.raises(RuntimeError):
        crashing.act(result, upload, request_id="before-restart", uploader_ref="u-9")
    with svc.store.engine.begin() as conn:  # it happened before the restart, minutes ago
        conn.execute(update(OBJECTS).values(created_at=datetime.now(UTC) - timedelta(minutes=5)))
    assert counts(svc)["matches"] == 0

    restarted = create_app(replace(svc.settings, index_dir=tmp_path / "index-2"))
    with TestClient(restarted) as client:
        wait_until(lambda: counts(svc)["matches"] == 1, what="recovery at start-up")
        [case] = client.get("/v1/cases", headers=svc.auth("admin")).json()
        assert case["match_count"] == 1 and len(case["vault_objects"]) == 1
    retried = ok(match(svc, upload, "before-restart", uploader="u-9"))
    assert retried["case_id"] == case["id"] and counts(svc)["vault"] == 1


def test_the_vault_settings_names_match_the_vaults_own() -> None:
    from lightkeeper.actions.vault import VAULT_DIR
    from lightkeeper.actions.vault_crypto import KEY_FILE

    assert (VAULT_DIR.env, KEY_FILE.env) == (VAULT_DIR_ENV, VAULT_KEY_FILE_ENV)
