"""Review decisions as reviewers and platforms rely on them: the state machine with the
two-person rule, clear refusals, one transaction per decision, racing reviewers, the queue,
false positives that stop an entry matching for good, reveals counted against a daily cap
and recorded in the audit trail. On SQLite and PostgreSQL.

All content is benign: synthetic photos (conftest).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageEnhance
from sqlalchemy import func, select

from conftest import synthetic_photo
from lightkeeper.actions import webhooks as wh
from lightkeeper.actions.actioner import Actioner
from lightkeeper.actions.cases import get_case
from lightkeeper.actions.policy_store import set_policy
from lightkeeper.actions.vault import Vault
from lightkeeper.actions.vault_crypto import Keyring
from lightkeeper.banks import BankStore
from lightkeeper.banks.audit import list_events, verify
from lightkeeper.banks.records import NewEntry
from lightkeeper.banks.testing import backends, temporary_database
from lightkeeper.errors import Conflict, Forbidden, InvalidRequest, NotFound, RevealCapReached
from lightkeeper.exchange.importer import import_list
from lightkeeper.hashing import hash_bytes
from lightkeeper.matching import Matcher
from lightkeeper.review import accounts
from lightkeeper.review import decisions as decisions_module
from lightkeeper.review.accounts import Reviewer, create_reviewer, set_disabled
from lightkeeper.review.decisions import (
    ANNOTATION_PATTERN,
    MAX_ANNOTATIONS,
    REVIEW_DECISIONS,
    decide,
    decisions_of,
    review_of,
    review_queue,
    validate_annotations,
)
from lightkeeper.review.exposure import (
    REVEALS,
    claim_ticket,
    exposure_today,
    reveal,
    viewed_matches,
    was_viewed,
)
from lightkeeper.review.feedback import export_feedback, list_feedback
from lightkeeper.review.settings import ReviewSettings

# ---------------------------------------------------------------- fixtures shared with
# test_review_appeals.py (imported there as plain functions)


def photo(seed: int) -> bytes:
    """A small benign JPEG no other upload of the test shares."""
    buffer = io.BytesIO()
    synthetic_photo(160, 120, seed=seed).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


_TEMPLATES: dict[str, Path] = {}


def open_url(backend: str, tmp_path: Path, factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database several threads can share: an SQLite file (a copy of one migrated once per
    session: migrating costs more than the tests), or a PostgreSQL database of its own."""
    if backend == "sqlite":
        template = _TEMPLATES.get("sqlite")
        if template is None:
            template = factory.mktemp("review-template") / "lightkeeper.db"
            BankStore.open(f"sqlite:///{template}").close()
            _TEMPLATES["sqlite"] = template
        (tmp_path / "data").mkdir(exist_ok=True)
        target = tmp_path / "data" / "lightkeeper.db"
        shutil.copyfile(template, target)
        yield f"sqlite:///{target}"
        return
    with temporary_database("postgresql", migrated=True) as url:
        yield url


@dataclass
class World:
    """A store with a block bank, a vault, an actioner, and three people."""

    store: BankStore
    vault: Vault
    actioner: Actioner
    alice: Reviewer  # reviewer
    bob: Reviewer  # reviewer
    carol: Reviewer  # senior

    def listed(self, data: bytes, *, pdq: bool = False, classification: str = "A1") -> None:
        """Put `data`'s SHA-256 (and its PDQ, with `pdq`) in the block bank."""
        digest = hashlib.sha256(data).hexdigest()
        self.store.add_entry(
            "known", "sha256", digest, classification=classification, list_name="known-list"
        )
        if pdq:
            value = str(hash_bytes(data)["pdq"])
            self.store.add_entry("known", "pdq", value, classification=classification)

    def case(self, data: bytes, request_id: str, uploader: str | None = "u-1") -> int:
        """Act on one upload of `data`; its case id."""
        result = Matcher(self.store).match_bytes(data)
        outcome = self.actioner.act(result, data, request_id=request_id, uploader_ref=uploader)
        assert outcome.case_id is not None
        return outcome.case_id

    def listed_case(self, seed: int, *, pdq: bool = False, uploader: str = "u-1") -> int:
        data = photo(seed)
        self.listed(data, pdq=pdq)
        return self.case(data, f"req-{seed}", uploader)


def make_world(store: BankStore, tmp_path: Path) -> World:
    store.create_bank("known", kind="block")
    wh.create_endpoint(store, "platform", "http://127.0.0.1:9/hooks")  # events are stored
    vault = Vault(store, tmp_path / "vault", Keyring.from_file(tmp_path / "vault.key"))
    return World(
        store,
        vault,
        Actioner(vault, Matcher(store)),
        create_reviewer(store, "alice"),
        create_reviewer(store, "bob", display_name="Bob B."),
        create_reviewer(store, "carol", role="senior"),
    )


def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id at its smallest cost for this test: the defaults take a third of a second a
    hash on this machine, and what these tests check does not depend on the cost."""
    monkeypatch.setattr(
        accounts, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
    monkeypatch.setattr(accounts, "_dummy_hash", None)


def decision_events(store: BankStore) -> list[dict[str, Any]]:
    """The data of every queued ``decision`` webhook event, oldest first."""
    events = [
        wh.get_event(store, d.event_id)
        for d in wh.list_deliveries(store, limit=1000)
        if d.event_type == "decision"
    ]
    return [e.data for e in sorted(events, key=lambda e: (e.created_at, e.data["decision_id"]))]


def audited(store: BankStore, action: str) -> list[Any]:
    return [e for e in list_events(store.engine, limit=100_000) if e.action == action]


def count(store: BankStore, table: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


@pytest.fixture(params=backends())
def store(
    request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BankStore]:
    for url in open_url(request.param, tmp_path, tmp_path_factory):
        with BankStore.open(url) as opened:
            yield opened


@pytest.fixture
def world(store: BankStore, tmp_path: Path) -> World:
    return make_world(store, tmp_path)


SOLO = ReviewSettings(two_person_rule=False)


# ---------------------------------------------------------------- the state machine


def test_a_confirmation_waits_for_another_persons_approval(world: World) -> None:
    store, alice, bob = world.store, world.alice, world.bob
    case_id = world.listed_case(1)
    assert review_of(store, case_id) is None
    review = decide(store, case_id, alice, "confirm", classification="A1", annotations=["viral"])
    assert (review.state, review.classification, review.confirmed_by) == (
        "awaiting_approval",
        "A1",
        "alice",
    )
    assert get_case(store, case_id).case.status == "open"  # not reportable yet
    with pytest.raises(Forbidden, match=r"alice confirmed case .*someone else must approve"):
        decide(store, case_id, alice, "approve")
    review = decide(store, case_id, bob, "approve", note="agree")
    assert (review.state, review.confirmed_by, review.approved_by) == ("confirmed", "alice", "bob")
    assert review.annotations == ("viral",)
    assert get_case(store, case_id).case.status == "decided"
    history = decisions_of(store, case_id)
    assert [(d.kind, d.reviewer, d.classification) for d in history] == [
        ("confirm", "alice", "A1"),
        ("approve", "bob", None),
    ]
    assert history[1].note == "agree"
    # Every decision: its row, an audit event and a webhook event.
    events = audited(store, "review.decision")
    assert [(e.subject, e.actor, e.details["to"]) for e in events] == [
        (f"case/{case_id}", "reviewer:alice", "awaiting_approval"),
        (f"case/{case_id}", "reviewer:bob", "confirmed"),
    ]
    sent = decision_events(store)
    assert [(d["kind"], d["state"], d["reinstate"]) for d in sent] == [
        ("confirm", "awaiting_approval", False),
        ("approve", "confirmed", False),
    ]
    sha256 = get_case(store, case_id).case.sha256
    assert sent[1]["case_id"] == case_id and sent[1]["sha256"] == sha256
    assert sent[1]["uploaders"] == ["u-1"] and sent[1]["classification"] == "A1"
    assert all("alice" not in str(d) and "bob" not in str(d) for d in sent)  # names stay home
    with pytest.raises(Conflict, match=r"already confirmed.*an appeal can reverse it"):
        decide(store, case_id, world.carol, "false_positive")
    assert verify(store.engine).ok


def test_refusals_say_what_is_wrong(world: World) -> None:
    store, alice, bob, carol = world.store, world.alice, world.bob, world.carol
    case_id = world.listed_case(2)
    with pytest.raises(InvalidRequest, match="confirmation needs a classification: one of A1"):
        decide(store, case_id, alice, "confirm")
    with pytest.raises(InvalidRequest, match="unknown classification 'C'"):
        decide(store, case_id, alice, "confirm", classification="C")
    with pytest.raises(InvalidRequest, match="classification goes with a confirmation only"):
        decide(store, case_id, alice, "escalate", classification="A1")
    with pytest.raises(InvalidRequest, match="unknown decision 'delete'"):
        decide(store, case_id, alice, "delete")  # type: ignore[arg-type]
    with pytest.raises(Conflict, match=f"case {case_id} is not awaiting approval .*undecided"):
        decide(store, case_id, bob, "approve")
    with pytest.raises(NotFound, match="no case 999999"):
        decide(store, 999_999, alice, "escalate")
    decide(store, case_id, alice, "escalate", note="not sure")
    with pytest.raises(Forbidden, match="escalated: only a senior reviewer or an admin"):
        decide(store, case_id, bob, "confirm", classification="B1")
    with pytest.raises(Conflict, match="already escalated"):
        decide(store, case_id, carol, "escalate")
    set_disabled(store, "carol", True)
    with pytest.raises(Forbidden, match="'carol' is disabled"):
        decide(store, case_id, carol, "confirm", classification="B1")
    with pytest.raises(Forbidden, match="escalated: only a senior reviewer or an admin"):
        decide(store, case_id, bob, "false_positive")
    # Nothing refused left a trace: one decision, one event each.
    assert [d.kind for d in decisions_of(store, case_id)] == ["escalate"]
    assert len(audited(store, "review.decision")) == 1
    assert len(decision_events(store)) == 1
    # A refused false positive did not make the allow bank either.
    assert "false-positives" not in [b.name for b in store.list_banks()]
    assert [e for e in audited(store, "bank.create") if e.subject == "bank:false-positives"] == []


def test_a_disapproval_escalates_to_a_senior_who_decides(world: World) -> None:
    store, alice, bob, carol = world.store, world.alice, world.bob, world.carol
    case_id = world.listed_case(3)
    decide(store, case_id, alice, "confirm", classification="A2", annotations=["infant"])
    review = decide(store, case_id, bob, "disapprove", note="looks like a meme")
    # The disapproved confirmation's classification and annotations go with it.
    assert (review.state, review.confirmed_by) == ("escalated", None)
    assert (review.classification, review.annotations, review.senior_only) == (None, (), True)
    with pytest.raises(Conflict, match=r"not awaiting approval .*escalated"):
        decide(store, case_id, bob, "approve")
    review = decide(store, case_id, carol, "confirm", classification="B2", annotations=["viral"])
    assert (review.state, review.classification, review.confirmed_by) == (
        "awaiting_approval",
        "B2",
        "carol",
    )
    assert review.annotations == ("viral",) and review.senior_only
    # The case stays with seniors: neither a reviewer (the first confirmer included) approves
    # a senior's confirmation of it, nor finds it in their queue.
    for person in (alice, bob):
        assert case_id not in [item.case.id for item in review_queue(store, person)]
        with pytest.raises(Forbidden, match=r"was escalated: only a senior .* may approve"):
            decide(store, case_id, person, "approve")
    sara = create_reviewer(store, "sara", role="senior")
    assert case_id in [item.case.id for item in review_queue(store, sara)]
    review = decide(store, case_id, sara, "approve")
    assert (review.state, review.approved_by, review.senior_only) == ("confirmed", "sara", False)


def test_a_false_positive_withdraws_an_earlier_classification(world: World) -> None:
    store = world.store
    case_id = world.listed_case(6)
    decide(store, case_id, world.alice, "confirm", classification="A1", annotations=["infant"])
    decide(store, case_id, world.bob, "disapprove")
    review = decide(store, case_id, world.carol, "false_positive")
    assert (review.state, review.classification, review.annotations) == (
        "false_positive",
        None,
        (),
    )
    assert decision_events(store)[-1]["classification"] is None


def test_without_the_two_person_rule_a_confirmation_is_final(world: World) -> None:
    case_id = world.listed_case(4)
    review = decide(
        world.store, case_id, world.alice, "confirm", classification="B1", settings=SOLO
    )
    assert (review.state, review.approved_by) == ("confirmed", None)
    assert get_case(world.store, case_id).case.status == "decided"


def test_a_case_no_policy_sent_for_review_can_still_be_decided(world: World) -> None:
    set_policy(world.store, {"rules": [{"name": "just-block", "actions": ["block"]}]})
    case_id = world.listed_case(5)
    assert get_case(world.store, case_id).case.priority is None
    assert review_queue(world.store, world.alice) == []
    assert decide(world.store, case_id, world.alice, "escalate").state == "escalated"


def test_a_failed_decision_leaves_no_trace(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    store = world.store
    case_id = world.listed_case(6)
    [entry] = store.iter_entries("known")

    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("the outbox is down")

    before = len(list_events(store.engine, limit=100_000))
    monkeypatch.setattr(decisions_module, "announce_in", broken)
    with pytest.raises(RuntimeError):
        decide(store, case_id, world.alice, "false_positive")
    assert review_of(store, case_id) is None
    assert count(store, REVIEW_DECISIONS) == 0 and list_feedback(store) == []
    assert get_case(store, case_id).case.status == "open"
    assert store.get_entry(entry.id).enabled  # the suppression rolled back with the rest
    # Not even the allow bank: it is made inside the decision's transaction.
    assert list_events(store.engine, limit=100_000)[before:] == []
    assert "false-positives" not in [b.name for b in store.list_banks()]


def test_reviewers_deciding_one_case_at_once_cannot_both_succeed(world: World) -> None:
    store = world.store
    people = [world.alice, world.bob, create_reviewer(store, "dave"), world.carol]
    for round_ in range(2):
        case_id = world.listed_case(20 + round_)
        start = threading.Barrier(len(people))

        def one(person: Reviewer, case_id: int = case_id, start: threading.Barrier = start) -> str:
            start.wait()
            try:
                decide(store, case_id, person, "confirm", classification="A1")
            except Conflict:
                return "conflict"
            return "ok"

        with ThreadPoolExecutor(len(people)) as pool:
            outcomes = list(pool.map(one, people))
        assert sorted(outcomes) == ["conflict"] * (len(people) - 1) + ["ok"]
        assert [d.kind for d in decisions_of(store, case_id)] == ["confirm"]
        # Approvals racing: one wins, the rest find the case confirmed already.
        confirmer = review_of(store, case_id)
        assert confirmer is not None
        others = [p for p in people if p.username != confirmer.confirmed_by]
        start = threading.Barrier(len(others))

        def approve(
            person: Reviewer, case_id: int = case_id, start: threading.Barrier = start
        ) -> str:
            start.wait()
            try:
                decide(store, case_id, person, "approve")
            except Conflict:
                return "conflict"
            return "ok"

        with ThreadPoolExecutor(len(others)) as pool:
            outcomes = list(pool.map(approve, others))
        assert sorted(outcomes) == ["conflict"] * (len(others) - 1) + ["ok"]
    assert count(store, REVIEW_DECISIONS) == 4
    assert len(audited(store, "review.decision")) == 4
    assert verify(store.engine).ok


# ---------------------------------------------------------------- the queue


def test_the_queue_holds_what_still_needs_this_person_most_urgent_then_oldest(
    world: World,
) -> None:
    store, alice, bob, carol = world.store, world.alice, world.bob, world.carol
    b2 = photo(30)
    world.listed(b2, classification="B2")  # priority 3
    later_b2 = world.case(b2, "req-b2")
    older_urgent = world.listed_case(31)  # A1: priority 1
    newer_urgent = world.listed_case(32)

    def queue(person: Reviewer) -> list[tuple[int, str | None]]:
        return [
            (item.case.id, None if item.review is None else item.review.state)
            for item in review_queue(store, person)
        ]

    assert queue(alice) == [(older_urgent, None), (newer_urgent, None), (later_b2, None)]
    decide(store, older_urgent, alice, "confirm", classification="A1")
    decide(store, newer_urgent, alice, "escalate")
    assert queue(alice) == [(later_b2, None)]  # her own confirmation is someone else's to approve
    assert queue(bob) == [(older_urgent, "awaiting_approval"), (later_b2, None)]
    assert queue(carol) == [
        (older_urgent, "awaiting_approval"),
        (newer_urgent, "escalated"),
        (later_b2, None),
    ]
    decide(store, older_urgent, bob, "approve")
    decide(store, later_b2, bob, "false_positive")
    assert queue(bob) == [] and queue(carol) == [(newer_urgent, "escalated")]
    [item] = review_queue(store, carol, limit=1)
    assert item.case.priority == 1 and item.review is not None
    with pytest.raises(InvalidRequest, match="queue limit"):
        review_queue(store, carol, limit=0)


# ---------------------------------------------------------------- false positives


def test_a_false_positive_stops_the_entry_matching_for_good(world: World, tmp_path: Path) -> None:
    store = world.store
    upload = photo(40)
    world.listed(upload, pdq=True)
    before = Matcher(store).match_bytes(upload)
    assert {m.signal_type for m in before.matches} == {"pdq", "sha256"}
    case_id = world.case(upload, "req-fp-1", "u-1")
    world.case(upload, "req-fp-2", "u-2")  # a second copy, another uploader
    review = decide(store, case_id, world.alice, "false_positive", note="a garden")
    assert review.state == "false_positive"
    assert get_case(store, case_id).case.status == "closed"

    entries = {m.entry_id: m for m in before.matches}
    assert not any(store.get_entry(i).enabled for i in entries)  # disabled through the log
    feedback = list_feedback(store)
    assert sorted((f.entry_id, f.signal_type, f.reason, f.actor) for f in feedback) == sorted(
        (i, m.signal_type, "false_positive", "reviewer:alice") for i, m in entries.items()
    )
    sha = next(f for f in feedback if f.signal_type == "sha256")
    assert (sha.bank, sha.list_name, sha.distance) == ("known", "known-list", 0)
    allow = store.get_bank("false-positives")
    # The allow bank gets the content's own SHA-256, once, not the matched entries' hashes.
    assert allow.kind == "allow" and store.count_entries("false-positives") == 1
    assert store.find_entry("false-positives", "sha256", hashlib.sha256(upload).hexdigest())
    [event] = decision_events(store)
    assert (event["kind"], event["reinstate"]) == ("false_positive", True)
    assert event["uploaders"] == ["u-1", "u-2"] and event["uploader_count"] == 2

    # A fresh matcher (a new process) and the actioner: the upload no longer blocks.
    after = Matcher(store).match_bytes(upload)
    assert after.matches == () and not after.matched
    outcome = world.actioner.act(after, upload, request_id="req-fp-3", uploader_ref="u-3")
    assert outcome.actions == () and not outcome.reject

    # Importing the list again keeps the entries disabled …
    digest = hashlib.sha256(upload).hexdigest()
    listing = tmp_path / "known.txt"
    listing.write_text(f"{digest}\n", encoding="ascii")
    with listing.open("rb") as stream:
        import_list(store, "known", stream, fmt="lines", signal_type="sha256")
    assert not store.get_entry(sha.entry_id).enabled
    # … and a list that deletes the entry and brings it back adds it disabled, in that bank.
    store.remove_entry(sha.entry_id)
    with listing.open("rb") as stream:
        import_list(store, "known", stream, fmt="lines", signal_type="sha256")
    fresh = store.find_entry("known", "sha256", digest)
    assert fresh is not None and not fresh.enabled and fresh.id != sha.entry_id
    others = [NewEntry("sha256", "ab" * 32), NewEntry("sha256", "cd" * 32)]
    store.add_entries("known", others)  # the rest of the list is added as usual
    assert all(store.find_entry("known", "sha256", e.value).enabled for e in others)
    again = Matcher(store).match_bytes(upload)
    assert again.matches == () and again.suppressed == ()
    assert verify(store.engine).ok


def near_copy(data: bytes) -> bytes:
    """A look-alike of `data`: brighter and re-encoded, so no exact hash is shared."""
    picture = Image.open(io.BytesIO(data)).convert("RGB")
    out = io.BytesIO()
    ImageEnhance.Brightness(picture).enhance(1.06).save(out, format="JPEG", quality=80)
    return out.getvalue()


def test_a_false_positive_on_a_look_alike_never_suppresses_the_listed_picture(
    world: World,
) -> None:
    store = world.store
    listed = photo(303)
    listed_pdq = str(hash_bytes(listed)["pdq"])
    store.add_entry("known", "pdq", listed_pdq, classification="A1")
    look_alike = near_copy(listed)
    assert str(hash_bytes(look_alike)["pdq"]) != listed_pdq
    assert Matcher(store).match_bytes(look_alike).matched
    case_id = world.case(look_alike, "req-303", "u-1")
    decide(store, case_id, world.alice, "false_positive", note="not the listed picture")

    # The look-alike itself is allowed, by its own SHA-256, and matches nothing here now.
    [allowed] = store.iter_entries("false-positives")
    assert (allowed.signal_type, allowed.value) == (
        "sha256",
        hashlib.sha256(look_alike).hexdigest(),
    )
    assert not Matcher(store).match_bytes(look_alike).matches
    # Another list that holds the listed picture still matches it, and its copies: one
    # person's judgement on a look-alike in one list suppresses nothing of another's.
    store.create_bank("other", kind="block")
    store.add_entry("other", "pdq", listed_pdq, classification="A1")
    copy = near_copy(near_copy(listed))
    found = Matcher(store).match_bytes(copy)
    assert [m.bank for m in found.matches] == ["other"] and found.suppressed == ()
    # In the list where it was judged wrong, the hash stays off even if the list re-adds it.
    [entry] = store.iter_entries("known")
    store.remove_entry(entry.id)
    store.add_entry("known", "pdq", listed_pdq, classification="A1")
    assert not store.find_entry("known", "pdq", listed_pdq).enabled


def test_a_block_bank_under_the_false_positive_name_is_refused(world: World) -> None:
    world.store.create_bank("false-positives", kind="block")
    case_id = world.listed_case(41)
    with pytest.raises(InvalidRequest, match="is a block bank, not an allow bank"):
        decide(world.store, case_id, world.alice, "false_positive")
    assert review_of(world.store, case_id) is None


def test_feedback_is_exported_once(world: World) -> None:
    store = world.store
    for seed in (42, 43):
        decide(store, world.listed_case(seed, pdq=True), world.bob, "false_positive")
    assert len(list_feedback(store, unexported=True)) == 4
    first = export_feedback(store, bank="known")
    assert len(first) == 4 and all(row["exported_at"] for row in first)
    assert {row["signal_type"] for row in first} == {"pdq", "sha256"}
    assert all(row["value"] and "actor" not in row for row in first)  # the hash, not the person
    assert export_feedback(store) == [] and list_feedback(store, unexported=True) == []
    assert [e.details["rows"] for e in audited(store, "feedback.export")] == [4]


# ---------------------------------------------------------------- reveals and exposure


def test_reveals_are_audited_counted_and_capped(world: World) -> None:
    store, vault, bob = world.store, world.vault, world.bob
    upload = photo(50)
    world.listed(upload)
    case_id = world.case(upload, "req-r1", "u-1")
    world.case(upload, "req-r2", "u-2")
    first, second = (m.id for m in get_case(store, case_id).matches)
    settings = ReviewSettings(daily_reveal_cap=2)
    assert exposure_today(store, bob, settings).remaining == 2
    data, media_type = reveal(store, vault, bob, first, reason="confirming", settings=settings)
    assert (data, media_type) == (upload, "image/jpeg")
    [event] = audited(store, "review.reveal")
    assert (event.subject, event.actor) == (f"case-match/{first}", "reviewer:bob")
    assert event.details == {"case_id": case_id, "reviewer": "bob", "reason": "confirming"}
    with store.engine.connect() as conn:
        assert was_viewed(conn, first) and not was_viewed(conn, second)
    assert viewed_matches(store, case_id) == {first}
    [read] = [a for a in vault.access_log() if a.action == "read"]
    assert read.actor == "reviewer:bob"

    reveal(store, vault, bob, first, settings=settings)  # the same file again still counts
    exposure = exposure_today(store, bob, settings)
    assert (exposure.reviewer, exposure.reveals, exposure.cap, exposure.remaining) == (
        "bob",
        2,
        2,
        0,
    )
    before = (count(store, REVEALS), len(list_events(store.engine, limit=100_000)))
    with pytest.raises(RevealCapReached, match="bob has revealed 2 of 2 clear images"):
        reveal(store, vault, bob, second, settings=settings)
    assert (count(store, REVEALS), len(list_events(store.engine, limit=100_000))) == before
    assert viewed_matches(store, case_id) == {first}
    # Another person has a cap of their own; an account's own cap wins over the setting.
    careful = create_reviewer(store, "erin", daily_reveal_cap=0)
    with pytest.raises(RevealCapReached, match="0 of 0"):
        reveal(store, vault, careful, second, settings=settings)
    assert exposure_today(store, world.alice, settings).remaining == 2


def test_two_reveals_racing_for_the_last_one_cannot_both_pass(world: World) -> None:
    store, vault = world.store, world.vault
    upload = photo(54)
    world.listed(upload)
    case_id = world.case(upload, "req-race-1", "u-1")
    world.case(upload, "req-race-2", "u-2")
    ids = [m.id for m in get_case(store, case_id).matches]
    settings = ReviewSettings(daily_reveal_cap=1)
    start = threading.Barrier(len(ids))

    def one(match_id: int) -> str:
        start.wait()
        try:
            reveal(store, vault, world.bob, match_id, settings=settings)
        except RevealCapReached:
            return "refused"
        return "shown"

    with ThreadPoolExecutor(len(ids)) as pool:
        assert sorted(pool.map(one, ids)) == ["refused", "shown"]
    assert count(store, REVEALS) == 1 and len(viewed_matches(store, case_id)) == 1
    set_disabled(store, "bob", True)
    with pytest.raises(Forbidden, match="'bob' is disabled"):
        reveal(store, vault, world.bob, ids[0])


def test_a_reveals_ticket_is_taken_once_by_its_reviewer_within_its_time(world: World) -> None:
    store, vault = world.store, world.vault
    upload = photo(56)
    world.listed(upload)
    [match] = get_case(store, world.case(upload, "req-t1", "u-1")).matches
    reveal(store, vault, world.bob, match.id, reason="review of case", ticket="ticket-one")
    reveal(store, vault, world.bob, match.id, ticket="ticket-old")
    with store.engine.connect() as conn:  # only the ticket's digest is stored
        stored = set(conn.execute(select(REVEALS.c.ticket_hash)).scalars())
    assert "ticket-one" not in stored and len(stored) == 2
    # Someone else's fetch, or a wrong ticket, takes nothing and spends nothing.
    assert claim_ticket(store, world.alice, "ticket-one") is None
    assert claim_ticket(store, world.bob, "ticket-unknown") is None
    claimed = claim_ticket(store, world.bob, "ticket-one")
    assert claimed is not None
    assert (claimed.case_match_id, claimed.vault_object_id) == (match.id, match.vault_object_id)
    assert (claimed.media_type, claimed.reason) == ("image/jpeg", "review of case")
    assert claim_ticket(store, world.bob, "ticket-one") is None  # once only
    assert claim_ticket(store, world.bob, "ticket-old", ttl_s=0.0) is None  # too late
    # Fetches racing in several threads (as in several worker processes) get it once.
    reveal(store, vault, world.bob, match.id, ticket="ticket-raced")
    start = threading.Barrier(4)

    def fetch(_: int) -> bool:
        start.wait()
        return claim_ticket(store, world.bob, "ticket-raced") is not None

    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(fetch, range(4))) == [False, False, False, True]
    reveal(store, vault, world.bob, match.id, ticket="ticket-late")
    set_disabled(store, "bob", True)
    with pytest.raises(Forbidden, match="'bob' is disabled"):
        claim_ticket(store, world.bob, "ticket-late")


def test_a_reveal_needs_a_quarantined_copy(world: World) -> None:
    store = world.store
    set_policy(store, {"rules": [{"name": "look", "actions": ["block", "review"]}]})
    case_id = world.listed_case(51)
    [match] = get_case(store, case_id).matches
    with pytest.raises(NotFound, match=r"no copy in the vault .*no clear image to reveal"):
        reveal(store, world.vault, world.bob, match.id)
    with pytest.raises(NotFound, match="no recorded match 999999"):
        reveal(store, world.vault, world.bob, 999_999)
    set_policy(store, {"rules": [{"name": "keep", "actions": ["block", "quarantine"]}]})
    kept = world.listed_case(52)
    [held] = get_case(store, kept).matches
    assert held.vault_object_id is not None
    world.vault.destroy(held.vault_object_id, actor="test", reason="gone")
    with pytest.raises(NotFound, match="was destroyed"):
        reveal(store, world.vault, world.bob, held.id)
    assert count(store, REVEALS) == 0 and audited(store, "review.reveal") == []


def test_a_system_read_of_the_vault_is_not_a_view(world: World) -> None:
    upload = photo(53)
    world.listed(upload)
    case_id = world.case(upload, "req-sys")
    [match] = get_case(world.store, case_id).matches
    assert match.vault_object_id is not None
    world.vault.read(match.vault_object_id, actor="system:derivative", reason="thumbnail")
    assert viewed_matches(world.store, case_id) == set()


# ---------------------------------------------------------------- annotations

_ANNOTATION_CHARS = st.characters(codec="ascii")


@given(st.lists(st.text(_ANNOTATION_CHARS, min_size=0, max_size=70), max_size=25))
def test_annotations_are_short_tokens_kept_in_order_without_duplicates(items: list[str]) -> None:
    import re

    def token(item: str) -> bool:
        return (
            1 <= len(item) <= 64
            and item[0].isascii()
            and item[0].isalnum()
            and all(c.isascii() and (c.isalnum() or c in "_.:-") for c in item)
        )

    unique = list(dict.fromkeys(items))
    if all(token(i) for i in items) and len(unique) <= MAX_ANNOTATIONS:
        assert validate_annotations(items) == tuple(unique)
        assert all(re.fullmatch(ANNOTATION_PATTERN, i) for i in unique)
    else:
        with pytest.raises(InvalidRequest):
            validate_annotations(items)


def test_annotations_must_be_a_list() -> None:
    with pytest.raises(InvalidRequest, match="a list of words"):
        validate_annotations("viral")
    assert validate_annotations(["viral", "infant", "viral"]) == ("viral", "infant")
