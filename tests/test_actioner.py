"""The actioner as a platform relies on it: a match is refused, quarantined encrypted and put in
a case in one call; a retried request repeats nothing; a crash between the quarantine and the
transaction is completed by `recover`; racing writers make one case; policies keep their
history and a dry run says what a new one would change. On SQLite and PostgreSQL.

All content is benign: synthetic photos (conftest) and random bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from conftest import synthetic_photo
from lightkeeper.actions import actioner as actioner_module
from lightkeeper.actions import webhooks as wh
from lightkeeper.actions.actioner import ACTIONER_ACTOR, Actioner
from lightkeeper.actions.cases import (
    CASE_MATCHES,
    CASES,
    find_recorded,
    get_case,
    list_cases,
    uploader_view,
    validate_request_id,
    validate_uploader,
)
from lightkeeper.actions.policy import DEFAULT_POLICY, Policy
from lightkeeper.actions.policy_store import (
    current_policy,
    dry_run,
    policy_at,
    policy_history,
    set_policy,
)
from lightkeeper.actions.vault import OBJECTS, Vault
from lightkeeper.actions.vault_crypto import Keyring
from lightkeeper.banks import BankStore
from lightkeeper.banks.audit import list_events, verify
from lightkeeper.banks.testing import backends, temporary_database
from lightkeeper.cli.main import main
from lightkeeper.errors import Conflict, InvalidPolicy, InvalidRequest
from lightkeeper.matching import Matcher
from lightkeeper.matching.evidence import MatchResult
from test_vault import assert_nowhere

SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)

NOTIFY_TOO: dict[str, Any] = {
    "rules": [
        *(rule.to_dict() for rule in DEFAULT_POLICY.rules),
        {"name": "tell-us", "match": "exact", "actions": ["notify"]},
    ],
    "priorities": dict(DEFAULT_POLICY.priorities),
}
REVIEW_ONLY: dict[str, Any] = {"rules": [{"name": "look", "actions": ["review"]}]}


def photo(seed: int) -> bytes:
    """A small benign JPEG no other upload of the test shares."""
    buffer = io.BytesIO()
    synthetic_photo(160, 120, seed=seed).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(params=backends())
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":  # a file in the data directory, scanned like the rest
        yield f"sqlite:///{tmp_path / 'data' / 'lightkeeper.db'}"
        return
    with temporary_database("postgresql", migrated=True) as url:
        yield url


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Iterator[BankStore]:
    (tmp_path / "data").mkdir(exist_ok=True)
    with BankStore.open(store_url) as opened:
        opened.create_bank("known", kind="block")
        yield opened


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def vault(store: BankStore, data_dir: Path) -> Vault:
    return Vault(store, data_dir / "vault", Keyring.from_file(data_dir / "vault.key"))


@pytest.fixture
def actioner(vault: Vault) -> Actioner:
    return Actioner(vault, Matcher(vault.store))


def listed(store: BankStore, data: bytes, classification: str | None = None) -> None:
    """Put `data`'s SHA-256 in the block bank (an exact match of the very file)."""
    digest = hashlib.sha256(data).hexdigest()
    store.add_entry("known", "sha256", digest, classification=classification)


def act(actioner: Actioner, data: bytes, request_id: str, uploader: str | None = None) -> Any:
    result = Matcher(actioner.vault.store).match_bytes(data)
    return actioner.act(result, data, request_id=request_id, uploader_ref=uploader)


def counts(store: BankStore) -> dict[str, int]:
    """Rows of everything an action writes."""
    tables = {
        "cases": CASES,
        "matches": CASE_MATCHES,
        "vault": OBJECTS,
        "events": wh.EVENTS,
        "deliveries": wh.DELIVERIES,
    }
    with store.engine.connect() as conn:
        out = {
            name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for name, t in tables.items()
        }
    out["audit"] = len(list_events(store.engine, limit=100_000))
    return out


def subscribe(store: BankStore) -> None:
    """An endpoint for every event type, so that queued events are stored (and counted)."""
    wh.create_endpoint(store, "platform", "http://127.0.0.1:9/hooks")


# ---------------------------------------------------------------- the flow


def test_a_block_match_is_refused_quarantined_encrypted_and_opens_a_case(
    store: BankStore, actioner: Actioner, data_dir: Path
) -> None:
    upload = photo(1)
    listed(store, upload, classification="A1")
    outcome = act(actioner, upload, "req-1", "user-42")
    assert outcome.reject and outcome.actions == ("block", "quarantine", "review")
    assert (outcome.priority, outcome.policy_version, outcome.replayed) == (1, None, False)
    detail = get_case(store, outcome.case_id)
    assert detail.case.sha256 == hashlib.sha256(upload).hexdigest()
    assert (detail.case.status, detail.case.priority, detail.case.match_count) == ("open", 1, 1)
    assert detail.case.vault_objects == (outcome.vault_object_id,)
    [recorded] = detail.matches
    assert (recorded.request_id, recorded.uploader, recorded.reject) == ("req-1", "user-42", True)
    assert recorded.evidence[0]["bank"] == "known" and recorded.media_type == "image/jpeg"
    assert actioner.vault.read(outcome.vault_object_id, actor="t", reason="check") == upload
    assert actioner.vault.get(outcome.vault_object_id).created_by == ACTIONER_ACTOR
    assert_nowhere(upload, store, data_dir)
    [audited] = [e for e in list_events(store.engine) if e.action == "match.act"]
    assert audited.subject == f"case:{outcome.case_id}"
    assert recorded.sha256 not in json.dumps(audited.details)  # the trail holds no content hash
    assert verify(store.engine).ok


def test_an_upload_nothing_acts_on_creates_nothing(store: BankStore, actioner: Actioner) -> None:
    subscribe(store)
    before = counts(store)
    outcome = act(actioner, photo(2), "req-accept")
    assert outcome.actions == () and not outcome.reject and outcome.case_id is None
    assert counts(store) == before
    listed(store, photo(3))
    set_policy(
        store, {"rules": [{"name": "other-bank", "banks": ["elsewhere"], "actions": ["block"]}]}
    )
    before = counts(store)
    assert act(actioner, photo(3), "req-no-rule").actions == ()  # matched, but no rule acts
    assert counts(store) == before


def test_a_retried_request_returns_what_was_done_and_repeats_nothing(
    store: BankStore, actioner: Actioner
) -> None:
    subscribe(store)
    set_policy(store, NOTIFY_TOO)
    upload = photo(4)
    listed(store, upload)
    first = act(actioner, upload, "req-retry", "u-1")
    after_first = counts(store)
    assert after_first["events"] == 4  # match + block, quarantine, review
    again = act(actioner, upload, "req-retry", "u-1")
    assert again.replayed and (again.case_id, again.match_id, again.vault_object_id) == (
        first.case_id,
        first.match_id,
        first.vault_object_id,
    )
    assert again.actions == first.actions
    assert counts(store) == after_first
    with pytest.raises(Conflict, match="other content"):
        act(actioner, photo(5), "req-retry")


def test_webhook_events_carry_evidence_but_never_the_banks_hash_values(
    store: BankStore, actioner: Actioner
) -> None:
    subscribe(store)
    set_policy(store, NOTIFY_TOO)
    upload = photo(6)
    listed(store, upload)
    outcome = act(actioner, upload, "req-events", "u-2")
    deliveries = wh.list_deliveries(store)
    events: dict[str, list[Any]] = {}
    for d in deliveries:
        events.setdefault(d.event_type, []).append(wh.get_event(store, d.event_id).data)
    [match] = events["match"]
    assert (match["request_id"], match["case_id"], match["uploader"]) == (
        "req-events",
        outcome.case_id,
        "u-2",
    )
    assert match["actions"] == ["block", "quarantine", "review", "notify"] and match["reject"]
    assert match["matches"][0]["bank"] == "known" and "value" not in match["matches"][0]
    digest = hashlib.sha256(upload).hexdigest()
    assert match["matches"][0]["content_value"] == digest  # the content's own hash only
    bodies = [wh.get_event(store, d.event_id).body for d in deliveries]
    assert all(b'"value"' not in body for body in bodies)
    actions = {e["action"]: e for e in events["action"]}
    assert set(actions) == {"block", "quarantine", "review"}
    assert actions["quarantine"]["vault_object_id"] == outcome.vault_object_id
    assert actions["review"]["priority"] == 3


# ---------------------------------------------------------------- crashes and races


class Crash(Exception):
    pass


def crash_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next transaction fail, as a process killed between the vault and it would."""
    original = Actioner._record
    calls = {"n": 0}

    def failing(self: Actioner, **kwargs: Any) -> tuple[int, int]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise Crash("killed between the vault put and the transaction")
        return original(self, **kwargs)

    monkeypatch.setattr(Actioner, "_record", failing)


def test_a_crash_between_quarantine_and_transaction_is_completed_by_recover(
    store: BankStore, actioner: Actioner, monkeypatch: pytest.MonkeyPatch
) -> None:
    subscribe(store)
    upload = photo(7)
    listed(store, upload)
    crash_once(monkeypatch)
    with pytest.raises(Crash):
        act(actioner, upload, "req-crash", "u-crash")
    [left] = actioner.pending(older_than=timedelta(0))
    assert counts(store)["cases"] == 0 and left.case_ref == "req-crash"
    assert actioner.recover().completed == ()  # a minute must pass: it may be in progress
    report = actioner.recover(older_than=timedelta(0))
    assert report.completed == ("req-crash",) and not report.destroyed and not report.failed
    recorded = find_recorded(store, "req-crash")
    assert recorded is not None
    assert (recorded.uploader, recorded.vault_object_id) == ("u-crash", left.id)
    assert recorded.at == left.created_at and recorded.actions == ("block", "quarantine", "review")
    assert {d.event_type for d in wh.list_deliveries(store)} == {"action"}
    before = counts(store)
    assert actioner.recover(older_than=timedelta(0)).completed == ()  # done once
    replay = act(actioner, upload, "req-crash", "u-crash")
    assert replay.replayed and replay.vault_object_id == left.id
    assert counts(store) == before
    reads = [a for a in actioner.vault.access_log(left.id) if a.action == "read"]
    assert [a.actor for a in reads] == ["system:recovery"]  # the recovery's read is logged
    assert verify(store.engine).ok


def test_a_retry_after_a_crash_reuses_the_quarantined_copy(
    store: BankStore, actioner: Actioner, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = photo(8)
    listed(store, upload)
    crash_once(monkeypatch)
    with pytest.raises(Crash):
        act(actioner, upload, "req-again")
    outcome = act(actioner, upload, "req-again")
    assert not outcome.replayed and outcome.case_id is not None
    assert [o.id for o in actioner.vault.list_objects()] == [outcome.vault_object_id]
    assert actioner.pending(older_than=timedelta(0)) == []


def test_recovery_destroys_a_quarantine_that_matches_nothing_any_more(
    store: BankStore, actioner: Actioner, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = photo(9)
    listed(store, upload)
    crash_once(monkeypatch)
    with pytest.raises(Crash):
        act(actioner, upload, "req-gone")
    [left] = actioner.pending(older_than=timedelta(0))
    entry = store.find_entry("known", "sha256", hashlib.sha256(upload).hexdigest())
    assert entry is not None
    store.remove_entry(entry.id)
    report = actioner.recover(older_than=timedelta(0))
    assert report.completed == () and report.destroyed == (
        (left.id, "crash recovery: no longer matches any bank"),
    )
    tomb = actioner.vault.get(left.id)
    assert tomb.destroyed and tomb.destroy_reason == "crash recovery: no longer matches any bank"
    assert counts(store)["cases"] == 0


def test_concurrent_uploads_of_one_content_make_one_case(
    store: BankStore, actioner: Actioner
) -> None:
    upload = photo(10)
    listed(store, upload)
    result = Matcher(store).match_bytes(upload)
    start = threading.Barrier(6)

    def one(i: int) -> Any:
        start.wait()
        return actioner.act(result, upload, request_id=f"race-{i}", uploader_ref=f"u{i % 2}")

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(one, range(6)))
    assert len({o.case_id for o in outcomes}) == 1
    [case] = list_cases(store)
    assert (case.match_count, case.uploader_count, len(case.vault_objects)) == (6, 2, 6)
    assert verify(store.engine).ok


def test_the_same_request_at_once_from_two_callers_is_done_once(
    store: BankStore, actioner: Actioner
) -> None:
    upload = photo(11)
    listed(store, upload)
    result = Matcher(store).match_bytes(upload)
    start = threading.Barrier(2)

    def one(_: int) -> Any:
        start.wait()
        return actioner.act(result, upload, request_id="twice", uploader_ref="u")

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(one, range(2)))
    assert len({(o.case_id, o.match_id, o.vault_object_id) for o in outcomes}) == 1
    assert counts(store)["matches"] == 1
    assert [o.id for o in actioner.vault.list_objects()] == [outcomes[0].vault_object_id]


def test_a_request_recorded_while_it_was_being_acted_on_is_not_recorded_twice(
    store: BankStore, actioner: Actioner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the unique request id settles: a second caller passes the idempotency check
    before the first commits, quarantines a copy of its own, and then loses the insert."""
    upload = photo(12)
    listed(store, upload)
    first = act(actioner, upload, "late")
    real = actioner_module.find_recorded
    calls = {"n": 0}

    def not_yet(store: BankStore, request_id: str) -> Any:
        calls["n"] += 1
        return None if calls["n"] == 1 else real(store, request_id)

    monkeypatch.setattr(actioner_module, "find_recorded", not_yet)
    before = counts(store)
    second = act(actioner, upload, "late")
    assert second.replayed and second.match_id == first.match_id
    live = actioner.vault.list_objects()
    every = actioner.vault.list_objects(include_destroyed=True)
    assert [o.id for o in live] == [first.vault_object_id] and len(every) == 2
    assert counts(store)["matches"] == before["matches"]


# ---------------------------------------------------------------- policies, dry runs, views


def test_policy_history_says_what_was_in_force_when(store: BankStore) -> None:
    assert current_policy(store) == (None, DEFAULT_POLICY)
    before = datetime.now(UTC)
    first = set_policy(store, NOTIFY_TOO, comment="tell the platform")
    time.sleep(0.01)
    between = datetime.now(UTC)
    time.sleep(0.01)
    second = set_policy(store, Policy.from_dict(REVIEW_ONLY), comment="review only")
    assert (first, second) == (1, 2)
    assert set_policy(store, REVIEW_ONLY) == 2  # the one in force again: no new version
    assert policy_at(store, before) == (None, DEFAULT_POLICY)
    assert policy_at(store, between) == (1, Policy.from_dict(NOTIFY_TOO))
    assert policy_at(store, datetime.now(UTC)) == current_policy(store)
    assert current_policy(store)[0] == 2
    history = policy_history(store)
    assert [(v.version, v.comment) for v in history] == [
        (1, "tell the platform"),
        (2, "review only"),
    ]
    audited = [e for e in list_events(store.engine) if e.action == "policy.set"]
    assert [e.details["sha256"] for e in audited] == [v.sha256 for v in history]
    with pytest.raises(InvalidPolicy, match="unknown action"):
        set_policy(store, {"rules": [{"name": "x", "actions": ["report"]}]})
    with pytest.raises(InvalidRequest, match="timezone"):
        policy_at(store, datetime.now())


def test_a_dry_run_reports_what_a_new_policy_would_change(
    store: BankStore, actioner: Actioner
) -> None:
    uploads = [photo(20), photo(21)]
    listed(store, uploads[0], classification="A1")
    listed(store, uploads[1])
    outcomes = [act(actioner, data, f"dry-{i}") for i, data in enumerate(uploads)]
    assert dry_run(store, DEFAULT_POLICY).changed == 0
    before = counts(store)
    report = dry_run(store, REVIEW_ONLY)
    assert (report.examined, report.changed, report.truncated) == (2, 2, False)
    assert report.lost == {"block": 2, "quarantine": 2} and report.gained == {}
    first = report.changes[0]
    assert (first.match_id, first.request_id) == (outcomes[0].match_id, "dry-0")
    assert first.old_actions == ("block", "quarantine", "review") and first.old_priority == 1
    assert first.new_actions == ("review",) and first.new_priority == 3
    limited = dry_run(store, NOTIFY_TOO, limit=1)
    assert (limited.changed, len(limited.changes), limited.truncated) == (2, 1, True)
    assert limited.gained == {"notify": 2}
    assert counts(store) == before  # a dry run writes nothing


def test_the_uploader_view_shows_repeat_uploaders(store: BankStore, actioner: Actioner) -> None:
    a, b = photo(30), photo(31)
    listed(store, a, classification="B2")
    listed(store, b, classification="A1")
    act(actioner, a, "u1-a1", "user-1")
    act(actioner, a, "u1-a2", "user-1")
    act(actioner, b, "u1-b", "user-1")
    act(actioner, a, "u2-a", "user-2")
    view = uploader_view(store, "user-1")
    assert (view.uploads, view.contents) == (3, 2)
    assert [m.request_id for m in view.matches] == ["u1-b", "u1-a2", "u1-a1"]
    assert [c.priority for c in view.cases] == [1, 3]  # review-queue order: A1 first
    assert uploader_view(store, "nobody").uploads == 0
    [shared] = list_cases(store, uploader="user-2")
    assert (shared.match_count, shared.uploader_count) == (3, 2)
    assert [c.priority for c in list_cases(store)] == [1, 3]
    assert list_cases(store, priority=1)[0].sha256 == hashlib.sha256(b).hexdigest()
    assert list_cases(store, status="closed") == []


def test_cases_not_for_review_come_after_the_queue(store: BankStore, actioner: Actioner) -> None:
    c, d = photo(40), photo(41)
    listed(store, c)
    listed(store, d, classification="A1")
    set_policy(store, {"rules": [{"name": "refuse", "actions": ["block"]}]})
    act(actioner, c, "block-only")
    set_policy(store, DEFAULT_POLICY)
    act(actioner, d, "reviewed")
    assert [(x.priority, x.actions) for x in list_cases(store)] == [
        (1, ("block", "quarantine", "review")),
        (None, ("block",)),
    ]


@given(st.text(max_size=210))
def test_request_ids_and_uploader_references_are_checked(text: str) -> None:
    for check, allowed in (
        (validate_request_id, lambda ch: " " <= ch <= "~"),
        (validate_uploader, lambda ch: ch.isascii() and (ch.isalnum() or ch in "._:@+=~-")),
    ):
        try:
            assert check(text) == text
        except InvalidRequest:
            continue
        assert 1 <= len(text) <= 200 and all(allowed(ch) for ch in text)
        assert text == text.strip()


# ---------------------------------------------------------------- the command line


@SQLITE_ONLY
def test_the_command_line_sets_policies_lists_cases_and_recovers(
    store: BankStore,
    store_url: str,
    actioner: Actioner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner = CliRunner()
    db = ["--db", store_url]
    upload = photo(50)
    listed(store, upload)
    act(actioner, upload, "cli-1", "user-9")
    document = tmp_path / "policy.json"
    document.write_text(json.dumps(REVIEW_ONLY))

    dry = runner.invoke(main, ["policy", "dry-run", str(document), "--json", *db])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["changed"] == 1
    done = runner.invoke(main, ["policy", "set", str(document), "--comment", "calm", *db])
    assert done.exit_code == 0 and "policy version 1 in force" in done.stdout
    history = runner.invoke(main, ["policy", "history", *db])
    assert history.stdout.startswith("1\t") and "\tlook\tcalm" in history.stdout
    shown = runner.invoke(main, ["policy", "show", "--at", "2000-01-01T00:00:00Z", "--json", *db])
    assert json.loads(shown.stdout)["version"] is None
    bad = tmp_path / "bad.json"
    bad.write_text('{"rules": [{"name": "x", "actions": ["report"]}]}')
    refused = runner.invoke(main, ["policy", "set", str(bad), *db])
    assert refused.exit_code == 1 and "unknown action 'report'" in refused.output

    listing = runner.invoke(main, ["cases", "list", "--json", *db])
    [case] = [json.loads(line) for line in listing.stdout.splitlines()]
    assert case["match_count"] == 1
    shown_case = runner.invoke(main, ["cases", "show", str(case["id"]), *db])
    assert "cli-1\tuser-9" in shown_case.stdout
    who = runner.invoke(main, ["cases", "uploader", "user-9", *db])
    assert "1 uploads of 1 distinct contents" in who.stdout

    set_policy(store, DEFAULT_POLICY)
    other = photo(51)
    listed(store, other)
    crash_once(monkeypatch)
    with pytest.raises(Crash):
        act(actioner, other, "cli-crash")
    with store.engine.begin() as conn:  # a minute ago, as a crash before a restart leaves it
        conn.execute(update(OBJECTS).values(created_at=datetime.now(UTC) - timedelta(minutes=2)))
    vault = [
        "--vault-dir",
        str(actioner.vault.root),
        "--key-file",
        str(tmp_path / "data" / "vault.key"),
    ]
    recovered = runner.invoke(main, ["actions", "recover", "--json", *db, *vault])
    assert recovered.exit_code == 0, recovered.output
    assert json.loads(recovered.stdout)["completed"] == ["cli-crash"]


def test_a_match_result_without_acting_matches_is_not_recorded(
    store: BankStore, actioner: Actioner
) -> None:
    empty = MatchResult(sha256="0" * 64)
    assert actioner.act(empty, b"x", request_id="nothing").case_id is None
    assert find_recorded(store, "nothing") is None
    with pytest.raises(InvalidRequest):
        actioner.act(empty, b"x", request_id=" padded ")
    with pytest.raises(InvalidRequest):
        actioner.act(empty, b"x", request_id="ok", uploader_ref="has space")
