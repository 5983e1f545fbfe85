"""Appeals as a platform and its users rely on them: filed against a case (over HTTP with an
``appeal`` key, or the CLI), decided by a senior reviewer; an upheld appeal reverses the case,
tells the platform to reinstate, suppresses the entries and records negative feedback. On
SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from lightkeeper.actions.actioner import Actioner
from lightkeeper.actions.cases import get_case
from lightkeeper.actions.vault import Vault
from lightkeeper.actions.vault_crypto import Keyring
from lightkeeper.banks import BankStore
from lightkeeper.banks.audit import verify
from lightkeeper.banks.testing import backends
from lightkeeper.cli.main import main
from lightkeeper.errors import Conflict, Forbidden, InvalidRequest, NotFound
from lightkeeper.matching import Matcher
from lightkeeper.reporting.transparency import compute_figures
from lightkeeper.review.accounts import create_reviewer
from lightkeeper.review.appeals import (
    APPEALS,
    appeals_of,
    decide_appeal,
    file_appeal,
    get_appeal,
    list_appeals,
)
from lightkeeper.review.decisions import (
    FALSE_POSITIVE_ANSWER,
    decide,
    decisions_of,
    review_of,
)
from lightkeeper.review.feedback import list_feedback
from lightkeeper.service.testing import TestService, service_client
from test_review_decisions import (
    World,
    audited,
    cheap_argon2,
    decision_events,
    make_world,
    open_url,
    photo,
)


@pytest.fixture(params=backends())
def world(
    request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    for url in open_url(request.param, tmp_path, tmp_path_factory):
        with BankStore.open(url) as store:
            yield make_world(store, tmp_path)


def test_an_upheld_appeal_reverses_a_confirmed_case_and_reinstates(world: World) -> None:
    store, alice, bob, carol = world.store, world.alice, world.bob, world.carol
    upload = photo(80)
    world.listed(upload, pdq=True)
    case_id = world.case(upload, "req-a1", "u-7")
    world.case(upload, "req-a2", "u-8")
    decide(store, case_id, alice, "confirm", classification="B2")
    decide(store, case_id, bob, "approve")
    appeal = file_appeal(store, case_id, statement="  My own drawing.  ", uploader="u-7")
    assert (appeal.status, appeal.statement, appeal.uploader) == ("open", "My own drawing.", "u-7")
    assert [a.id for a in list_appeals(store, status="open")] == [appeal.id]
    with pytest.raises(Forbidden, match="only a senior reviewer or an admin"):
        decide_appeal(store, appeal.id, bob, uphold=True, reason="agree")
    with pytest.raises(InvalidRequest, match="reason"):
        decide_appeal(store, appeal.id, carol, uphold=True, reason="   ")

    decided = decide_appeal(store, appeal.id, carol, uphold=True, reason="a drawing, not a photo")
    assert (decided.status, decided.decided_by, decided.reason) == (
        "upheld",
        "carol",
        "a drawing, not a photo",
    )
    review = review_of(store, case_id)
    assert review is not None and review.state == "reversed"
    assert get_case(store, case_id).case.status == "closed"
    assert [d.kind for d in decisions_of(store, case_id)] == ["confirm", "approve", "appeal_upheld"]
    last = decision_events(store)[-1]
    assert (last["kind"], last["reinstate"], last["case_id"], last["appeal_id"]) == (
        "appeal_upheld",
        True,
        case_id,
        appeal.id,
    )
    assert last["sha256"] == get_case(store, case_id).case.sha256
    assert last["uploaders"] == ["u-7", "u-8"] and last["appeal_uploader"] == "u-7"
    feedback = list_feedback(store)
    assert sorted(f.signal_type for f in feedback) == ["pdq", "sha256"]
    assert {(f.reason, f.case_id, f.actor) for f in feedback} == {
        ("appeal_upheld", case_id, "reviewer:carol")
    }
    assert Matcher(store).match_bytes(upload).matches == ()  # stops matching for this platform
    assert [e.details["event"] for e in audited(store, "review.appeal")] == ["filed", "upheld"]
    with pytest.raises(Conflict, match=f"appeal {appeal.id} was already upheld"):
        decide_appeal(store, appeal.id, carol, uphold=False, reason="changed my mind")
    with pytest.raises(Conflict, match="already closed as reversed: nothing to appeal"):
        file_appeal(store, case_id, statement="again")
    assert verify(store.engine).ok


def test_an_appeal_is_decided_by_someone_other_than_who_decided_the_case(world: World) -> None:
    """A senior who confirmed (or approved) the contested decision may not answer its appeal,
    either way; another senior or an admin does."""
    store, alice, carol = world.store, world.alice, world.carol
    confirmed_by_senior = world.listed_case(82, uploader="u-3")
    decide(store, confirmed_by_senior, carol, "confirm", classification="A2")
    decide(store, confirmed_by_senior, alice, "approve")
    approved_by_senior = world.listed_case(83, uploader="u-4")
    decide(store, approved_by_senior, alice, "confirm", classification="A1")
    decide(store, approved_by_senior, carol, "approve")
    for case_id in (confirmed_by_senior, approved_by_senior):
        appeal = file_appeal(store, case_id, statement="not what you think")
        for uphold in (True, False):
            with pytest.raises(Forbidden, match="you confirmed or approved the decision"):
                decide_appeal(store, appeal.id, carol, uphold=uphold, reason="I stand by it")
        assert get_appeal(store, appeal.id).status == "open"
        dave = create_reviewer(store, f"dave-{case_id}", role="senior")
        assert decide_appeal(store, appeal.id, dave, uphold=False, reason="it matches").status == (
            "denied"
        )


def test_a_denied_appeal_leaves_the_case_as_it_was(world: World) -> None:
    store = world.store
    case_id = world.listed_case(81, uploader="u-9")
    decide(store, case_id, world.alice, "escalate")
    appeal = file_appeal(store, case_id, statement="not me")
    admin = create_reviewer(store, "root", role="admin")
    denied = decide_appeal(store, appeal.id, admin, uphold=False, reason="matches the list")
    assert (denied.status, denied.decided_by) == ("denied", "root")
    review = review_of(store, case_id)
    assert review is not None and review.state == "escalated"
    assert list_feedback(store) == []
    last = decision_events(store)[-1]
    assert (last["kind"], last["reinstate"], last["state"]) == ("appeal_denied", False, "escalated")
    assert [a.status for a in appeals_of(store, case_id)] == ["denied"]


def test_one_open_appeal_per_case_and_a_retry_files_nothing_new(world: World) -> None:
    store = world.store
    upload = photo(85)
    world.listed(upload)
    case_id = world.case(upload, "req-r1", "u-1")
    world.case(upload, "req-r2", "u-2")
    first = file_appeal(store, case_id, statement="my photo", uploader="u-1")
    again = file_appeal(store, case_id, statement="  my photo ", uploader="u-1")
    assert again == first
    for uploader, statement in (("u-2", "my photo"), ("u-1", "another reason")):
        with pytest.raises(Conflict, match=f"already has an open appeal \\({first.id}\\)"):
            file_appeal(store, case_id, statement=statement, uploader=uploader)
    assert [e.details["event"] for e in audited(store, "review.appeal")] == ["filed"]
    decide_appeal(store, first.id, world.carol, uphold=False, reason="matches the list")
    second = file_appeal(store, case_id, statement="my photo", uploader="u-2")
    assert second.id != first.id and [a.status for a in appeals_of(store, case_id)] == [
        "denied",
        "open",
    ]


def test_an_appeal_of_an_undecided_case_can_be_upheld(world: World) -> None:
    store = world.store
    case_id = world.listed_case(82)
    appeal = file_appeal(store, case_id, statement="please look", uploader="u-1")
    decide_appeal(store, appeal.id, world.carol, uphold=True, reason="benign")
    review = review_of(store, case_id)
    assert review is not None and (review.state, review.classification) == ("reversed", None)
    with pytest.raises(Conflict, match="already closed as reversed"):
        decide(store, case_id, world.carol, "confirm", classification="A1")


def test_a_false_positive_answers_the_open_appeal_and_counts_one_error(world: World) -> None:
    store = world.store
    case_id = world.listed_case(84)
    appeal = file_appeal(store, case_id, statement="my garden", uploader="u-1")
    decide(store, case_id, world.alice, "false_positive")
    answered = get_appeal(store, appeal.id)
    assert answered.status == "upheld" and answered.reason == FALSE_POSITIVE_ANSWER
    # Nothing is left to decide, and nothing is reversed a second time.
    with pytest.raises(Conflict, match=f"appeal {appeal.id} was already upheld"):
        decide_appeal(store, appeal.id, world.carol, uphold=True, reason="benign")
    assert [d.kind for d in decisions_of(store, case_id)] == ["false_positive"]
    review = review_of(store, case_id)
    assert review is not None and review.state == "false_positive"
    now = datetime.now(UTC)
    figures = compute_figures(store, start=now - timedelta(days=1), end=now + timedelta(days=1))
    errors = figures.errors.overall
    assert (errors.false_positive, errors.reversed) == (1, 0)
    assert figures.appeals.upheld == 1


def test_what_cannot_be_appealed(world: World) -> None:
    store = world.store
    case_id = world.listed_case(83)
    with pytest.raises(NotFound, match="no case 424242"):
        file_appeal(store, 424_242, statement="x")
    with pytest.raises(InvalidRequest, match="has no upload by uploader 'someone-else'"):
        file_appeal(store, case_id, statement="x", uploader="someone-else")
    with pytest.raises(InvalidRequest, match="uploader reference"):
        file_appeal(store, case_id, statement="x", uploader="bad ref")
    with pytest.raises(InvalidRequest, match="statement"):
        file_appeal(store, case_id, statement="\n")
    decide(store, case_id, world.alice, "false_positive")
    with pytest.raises(Conflict, match="already closed as false positive"):
        file_appeal(store, case_id, statement="x")
    with pytest.raises(NotFound, match="no appeal 5"):
        get_appeal(store, 5)
    with pytest.raises(NotFound, match="no appeal 5"):
        decide_appeal(store, 5, world.carol, uphold=True, reason="x")
    with pytest.raises(InvalidRequest, match="unknown appeal status"):
        list_appeals(store, status="pending")
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(APPEALS)).scalar_one() == 0


# ---------------------------------------------------------------- over HTTP


@pytest.fixture(params=backends())
def svc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestService]:
    with service_client(tmp_path, request.param) as service:
        yield service


def test_a_platform_files_and_follows_an_appeal_with_an_appeal_key(
    svc: TestService, tmp_path: Path
) -> None:
    store = svc.store
    store.create_bank("known")
    upload = photo(84)
    store.add_entry("known", "sha256", hashlib.sha256(upload).hexdigest())
    vault = Vault(store, tmp_path / "v2", Keyring.from_file(tmp_path / "v2.key"))
    outcome = Actioner(vault, Matcher(store)).act(
        Matcher(store).match_bytes(upload), upload, request_id="r-http", uploader_ref="u-http"
    )
    case_id = outcome.case_id
    body = {"statement": "It is a photo of my cat.", "uploader": "u-http"}
    for scope in ("match", "bank:write"):
        refused = svc.client.post(
            f"/v1/cases/{case_id}/appeals", json=body, headers=svc.auth(scope)
        )
        assert refused.status_code == 403
    filed = svc.client.post(f"/v1/cases/{case_id}/appeals", json=body, headers=svc.auth("appeal"))
    assert filed.status_code == 201, filed.text
    appeal = filed.json()
    retried = svc.client.post(f"/v1/cases/{case_id}/appeals", json=body, headers=svc.auth("appeal"))
    assert (retried.status_code, retried.json()) == (201, appeal)  # a retry files nothing new
    assert (appeal["status"], appeal["uploader"], appeal["case_id"]) == ("open", "u-http", case_id)
    assert "decided_by" not in appeal  # the platform never learns who reviewed
    [event] = audited(store, "review.appeal")
    assert event.actor.startswith("key:") and event.details["uploader"] == "u-http"

    senior = create_reviewer(store, "sam", role="senior")
    decide_appeal(store, appeal["id"], senior, uphold=False, reason="it matches the list")
    shown = svc.client.get(f"/v1/appeals/{appeal['id']}", headers=svc.auth("appeal"))
    assert shown.status_code == 200, shown.text
    assert (shown.json()["status"], shown.json()["reason"]) == ("denied", "it matches the list")

    for path, payload, status, code in [
        ("/v1/cases/999999/appeals", body, 404, "not_found"),
        (f"/v1/cases/{case_id}/appeals", {**body, "uploader": "nobody"}, 422, "invalid_request"),
        (f"/v1/cases/{case_id}/appeals", {"statement": "  "}, 422, None),
        (f"/v1/cases/{case_id}/appeals", {**body, "extra": 1}, 422, None),
    ]:
        response = svc.client.post(path, json=payload, headers=svc.auth("appeal"))
        assert response.status_code == status, response.text
        if code is not None:
            assert response.json()["error"]["code"] == code
    missing = svc.client.get("/v1/appeals/999999", headers=svc.auth("admin"))
    assert missing.status_code == 404
    assert svc.client.get("/v1/appeals/1", headers=svc.auth("lookup")).status_code == 403


# ---------------------------------------------------------------- the commands


def lk(*args: str, db: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(main, [*args, "--db", db], input=input)
    assert "Traceback" not in result.output
    return result


def test_appeals_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_argon2(monkeypatch)
    db = f"sqlite:///{tmp_path / 'lightkeeper.db'}"
    with BankStore.open(db) as store:
        world = make_world(store, tmp_path)
        case_id = world.listed_case(85, uploader="u-c")
        create_reviewer(store, "sue", role="senior", password="a long enough password")
    filed = lk(
        "appeals", "file", str(case_id), "--statement", "-", "--uploader", "u-c", "--json",
        db=db, input="my statement\n",
    )  # fmt: skip
    assert filed.exit_code == 0, filed.output
    appeal = json.loads(filed.stdout)
    assert (appeal["statement"], appeal["status"]) == ("my statement", "open")
    listed = lk("appeals", "list", "--status", "open", db=db)
    assert listed.stdout.startswith(f"{appeal['id']}\tcase {case_id}\topen\t")
    shown = lk("appeals", "show", str(appeal["id"]), db=db)
    assert "statement:\nmy statement" in shown.stdout
    wrong = lk(
        "appeals", "decide", str(appeal["id"]), "--reviewer", "sue", "--uphold",
        "--reason", "benign", "--password-stdin", db=db, input="not her password\n",
    )  # fmt: skip
    assert wrong.exit_code == 1 and "unknown user name or wrong password" in wrong.stderr
    decided = lk(
        "appeals", "decide", str(appeal["id"]), "--reviewer", "sue", "--uphold",
        "--reason", "benign", "--password-stdin", "--json",
        db=db, input="a long enough password\n",
    )  # fmt: skip
    assert decided.exit_code == 0, decided.output
    assert (json.loads(decided.stdout)["status"], json.loads(decided.stdout)["decided_by"]) == (
        "upheld",
        "sue",
    )
    again = lk("appeals", "show", str(appeal["id"]), "--json", db=db)
    assert json.loads(again.stdout)["reason"] == "benign"
    assert lk("appeals", "show", "99", db=db).exit_code == 1
    assert lk("appeals", "list", "--status", "open", db=db).stdout == ""
