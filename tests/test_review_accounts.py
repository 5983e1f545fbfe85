"""Reviewer accounts, sign-in and sessions as the reviewer pages rely on them, the review
settings, and the ``reviewers`` and ``feedback`` commands. On SQLite and PostgreSQL.

Argon2 costs about a third of a second per hash here, so only the tests about passwords set
any: the others make accounts without one (proxy sign-in).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update

from lightkeeper.banks import BankStore
from lightkeeper.banks.audit import list_events, verify
from lightkeeper.banks.testing import backends, temporary_store
from lightkeeper.cli import review_command
from lightkeeper.cli.main import main
from lightkeeper.errors import Conflict, Forbidden, InvalidRequest, NotFound, Unauthenticated
from lightkeeper.review import accounts
from lightkeeper.review.accounts import (
    MAX_PASSWORD_CHARS,
    REVIEWERS,
    ROLES,
    authenticate,
    create_reviewer,
    get_reviewer,
    list_reviewers,
    set_disabled,
    set_password,
    validate_username,
)
from lightkeeper.review.decisions import decide
from lightkeeper.review.sessions import (
    SESSIONS,
    end_session,
    session_of,
    start_session,
    token_digest,
)
from lightkeeper.review.settings import ReviewSettings
from test_review_decisions import cheap_argon2, make_world

PASSWORD = "correct horse battery"


@pytest.fixture(params=backends())
def store(request: pytest.FixtureRequest) -> Iterator[BankStore]:
    with temporary_store(request.param) as opened:
        yield opened


def stored_hash(store: BankStore, username: str) -> str | None:
    with store.engine.connect() as conn:
        query = select(REVIEWERS.c.password_hash).where(REVIEWERS.c.username == username)
        value: str | None = conn.execute(query).scalar_one()
        return value


def actions(store: BankStore) -> list[tuple[str, str, str]]:
    return [(e.actor, e.action, e.subject) for e in list_events(store.engine)]


# ---------------------------------------------------------------- accounts and passwords


def test_a_reviewer_signs_in_with_a_password_stored_as_argon2id(
    store: BankStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    cheap_argon2(monkeypatch)
    made = create_reviewer(store, "alice", role="senior", password=PASSWORD, display_name="Alice")
    assert (made.username, made.role, made.is_senior, made.disabled) == (
        "alice",
        "senior",
        True,
        False,
    )
    hashed = stored_hash(store, "alice")
    assert hashed is not None and hashed.startswith("$argon2id$") and PASSWORD not in hashed
    assert authenticate(store, "alice", PASSWORD) == made
    # Unknown user, wrong password, disabled account: one message, nothing told apart.
    create_reviewer(store, "proxy-only")  # no password: signs in through the proxy header
    set_disabled(store, "alice", True)
    failures = [
        ("nobody", PASSWORD),
        ("alice", PASSWORD),  # disabled
        ("proxy-only", PASSWORD),
        ("NOT A NAME", PASSWORD),
        ("alice", "x" * 5000),
    ]
    for username, password in failures:
        with pytest.raises(Unauthenticated) as caught:
            authenticate(store, username, password)
        assert str(caught.value) == "unknown user name or wrong password"
    set_disabled(store, "alice", False)
    with pytest.raises(Unauthenticated, match=r"^unknown user name or wrong password$"):
        authenticate(store, "alice", PASSWORD + "!")
    # The longest password there is signs in; it and anything after it does not.
    longest = "p" * MAX_PASSWORD_CHARS
    create_reviewer(store, "dora", password=longest)
    assert authenticate(store, "dora", longest).username == "dora"
    with pytest.raises(Unauthenticated):
        authenticate(store, "dora", longest + "anything")
    created = [a for a in actions(store) if a[1] == "reviewer.create"]
    assert [a[2] for a in created] == ["reviewer:alice", "reviewer:proxy-only", "reviewer:dora"]
    assert all(PASSWORD not in str(e.details) for e in list_events(store.engine))
    assert verify(store.engine).ok


def test_an_old_hash_is_replaced_on_the_next_sign_in(store: BankStore) -> None:
    create_reviewer(store, "bob")
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    with store.engine.begin() as conn:
        conn.execute(update(REVIEWERS).values(password_hash=weak))
    assert authenticate(store, "bob", PASSWORD).username == "bob"
    rehashed = stored_hash(store, "bob")
    assert rehashed is not None and rehashed != weak
    assert not PasswordHasher().check_needs_rehash(rehashed)
    assert authenticate(store, "bob", PASSWORD).username == "bob"
    # A sign-in that rehashes still starts its session (the new hash is not a change).
    with store.engine.begin() as conn:
        conn.execute(update(REVIEWERS).values(password_hash=weak))
    token, _ = start_session(store, authenticate(store, "bob", PASSWORD))
    assert session_of(store, token) is not None


def test_an_unknown_user_costs_a_verification_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer's timing must not tell which user names exist."""
    with temporary_store("sqlite") as store:
        calls: list[str] = []
        real = accounts._verify
        monkeypatch.setattr(accounts, "_verify", lambda h, p: calls.append(h) or real(h, p))
        with pytest.raises(Unauthenticated):
            authenticate(store, "nobody", PASSWORD)
        assert len(calls) == 1 and calls[0].startswith("$argon2id$")


def test_account_rules(store: BankStore, monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_argon2(monkeypatch)
    create_reviewer(store, "carol", daily_reveal_cap=5)
    with pytest.raises(Conflict, match="reviewer 'carol' already exists"):
        create_reviewer(store, "carol")
    with pytest.raises(InvalidRequest, match="12 to 1024 characters"):
        create_reviewer(store, "dave", password="short")
    with pytest.raises(InvalidRequest, match="unknown role 'boss'"):
        create_reviewer(store, "dave", role="boss")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="daily reveal cap"):
        create_reviewer(store, "dave", daily_reveal_cap=-1)
    with pytest.raises(InvalidRequest, match="display name"):
        create_reviewer(store, "dave", display_name="a\nb")
    with pytest.raises(InvalidRequest, match="invalid user name 'Dave'"):
        create_reviewer(store, "Dave")
    with pytest.raises(NotFound, match="no reviewer 'dave'"):
        get_reviewer(store, "dave")
    with pytest.raises(NotFound, match="no reviewer 'dave'"):
        set_password(store, "dave", PASSWORD)
    carol = get_reviewer(store, "carol")
    assert get_reviewer(store, carol.id) == carol and carol.daily_reveal_cap == 5
    assert (carol.role, carol.is_senior, carol.display_name) == ("reviewer", False, "carol")
    assert [r.username for r in list_reviewers(store)] == ["carol"]
    assert set_disabled(store, "carol", True).disabled
    assert set_disabled(store, "carol", True).disabled  # twice: no second event
    assert not set_disabled(store, "carol", False).disabled
    assert [a[1] for a in actions(store)] == [
        "reviewer.create",
        "reviewer.disable",
        "reviewer.enable",
    ]


_NAME_CHARS = st.sampled_from("abcXYZ019._-@ é/")


@given(st.text(_NAME_CHARS, max_size=110))
def test_user_names_are_strict(name: str) -> None:
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789._-")
    ok = (
        1 <= len(name) <= 100
        and set(name) <= allowed
        and name[0] not in "._-"  # never read as a command-line option
    )
    if ok:
        assert validate_username(name) == name
    else:
        with pytest.raises(InvalidRequest):
            validate_username(name)


def test_user_names_at_the_length_limit() -> None:
    assert validate_username("a" * 100) == "a" * 100
    with pytest.raises(InvalidRequest):
        validate_username("a" * 101)


# ---------------------------------------------------------------- sessions


def test_a_session_is_a_random_token_stored_only_as_its_digest(store: BankStore) -> None:
    erin = create_reviewer(store, "erin")
    token, session = start_session(store, erin)
    assert len(token) >= 43 and session.reviewer == erin
    assert len(session.csrf_token) >= 43 and session.csrf_token != token
    assert session.expires_at - datetime.now(UTC) <= timedelta(hours=8)
    with store.engine.connect() as conn:
        [row] = conn.execute(select(SESSIONS)).all()
    assert row.id == token_digest(token) and token not in str(tuple(row))
    found = session_of(store, token)
    assert found is not None and found.reviewer.username == "erin"
    assert found.csrf_token == session.csrf_token
    other, _ = start_session(store, erin)
    end_session(store, token)
    assert session_of(store, token) is None
    end_session(store, token)  # twice: harmless
    assert session_of(store, other) is not None  # only that one ended
    for garbage in ("", "x", token + "x", "a" * 10_000):
        assert session_of(store, garbage) is None
    assert [a[1] for a in actions(store) if a[1].startswith("review.sign")] == [
        "review.sign_in",
        "review.sign_in",
        "review.sign_out",
    ]


def test_sessions_end_on_expiry_disable_and_password_change(
    store: BankStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    cheap_argon2(monkeypatch)
    frank = create_reviewer(store, "frank")
    short, _ = start_session(store, frank, ttl=timedelta(seconds=30))
    with store.engine.begin() as conn:  # half a minute later
        conn.execute(
            update(SESSIONS)
            .where(SESSIONS.c.id == token_digest(short))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert session_of(store, short) is None
    token, _ = start_session(store, frank)
    set_disabled(store, "frank", True)
    assert session_of(store, token) is None
    with pytest.raises(Forbidden, match="'frank' is disabled"):
        start_session(store, frank)
    set_disabled(store, "frank", False)
    assert session_of(store, token) is None  # enabling again does not revive it
    token, _ = start_session(store, frank)
    set_password(store, "frank", PASSWORD)
    assert session_of(store, token) is None
    with pytest.raises(InvalidRequest, match="a session lasts"):
        start_session(store, frank, ttl=timedelta(days=30))


def test_a_sign_in_racing_a_password_change_gets_no_session(
    store: BankStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The password check and the session are two transactions: a password change between
    them (which ends every session) must not let the new session through."""
    cheap_argon2(monkeypatch)
    create_reviewer(store, "gina", password=PASSWORD)
    checked = authenticate(store, "gina", PASSWORD)
    set_password(store, "gina", PASSWORD + "-new")
    with pytest.raises(Unauthenticated, match="password changed"):
        start_session(store, checked)
    assert "review.sign_in" not in [a[1] for a in actions(store)]
    fresh = authenticate(store, "gina", PASSWORD + "-new")
    token, _ = start_session(store, fresh)
    assert session_of(store, token) is not None
    # An account without a password (the proxy path) is unaffected.
    create_reviewer(store, "proxied")
    assert start_session(store, get_reviewer(store, "proxied"))[1].reviewer.username == "proxied"
    # The credential is a digest, never the stored hash itself.
    stored = stored_hash(store, "gina")
    assert stored is not None and stored not in repr(fresh) and fresh.credential != stored


# ---------------------------------------------------------------- settings


def test_settings_come_from_the_environment() -> None:
    assert ReviewSettings.from_env({}) == ReviewSettings()
    assert ReviewSettings() == ReviewSettings(True, 50, None, "false-positives")
    env = {
        "LIGHTKEEPER_REVIEW_TWO_PERSON": "0",
        "LIGHTKEEPER_REVIEW_REVEAL_CAP": "7",
        "LIGHTKEEPER_REVIEW_PROXY_HEADER": "X-Forwarded-User",
        "LIGHTKEEPER_FALSE_POSITIVE_BANK": "fp-local",
    }
    assert ReviewSettings.from_env(env) == ReviewSettings(False, 7, "X-Forwarded-User", "fp-local")
    for name, value, message in [
        ("LIGHTKEEPER_REVIEW_TWO_PERSON", "maybe", "use 1 or 0"),
        ("LIGHTKEEPER_REVIEW_REVEAL_CAP", "ten", "not a whole number"),
        ("LIGHTKEEPER_REVIEW_REVEAL_CAP", "-1", "daily reveal cap"),
        ("LIGHTKEEPER_REVIEW_REVEAL_CAP", "100001", "daily reveal cap"),
        ("LIGHTKEEPER_REVIEW_PROXY_HEADER", "X User", "not an HTTP header name"),
        ("LIGHTKEEPER_FALSE_POSITIVE_BANK", "FP Bank", "invalid bank name"),
    ]:
        with pytest.raises(InvalidRequest, match=re.escape(message)) as caught:
            ReviewSettings.from_env({name: value})
        assert caught.value.message.startswith(f"{name}={value!r}")  # names what to mend


def test_every_setting_is_documented() -> None:
    from lightkeeper.review.settings import SETTINGS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "review.md").read_text("utf-8")
    for setting in SETTINGS:
        assert setting.env in doc


# ---------------------------------------------------------------- the commands


def lk(*args: str, db: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(main, [*args, "--db", db], input=input)
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'lightkeeper.db'}"


def test_reviewers_commands(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_argon2(monkeypatch)
    added = lk(
        "reviewers", "add", "gina", "--role", "senior", "--password-stdin", "--json",
        db=db, input=PASSWORD + "\n",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    record = json.loads(added.stdout)
    assert (record["username"], record["role"], record["disabled"]) == ("gina", "senior", False)
    assert PASSWORD not in added.output
    with BankStore.open(db) as store:
        assert authenticate(store, "gina", PASSWORD).role == "senior"

    # Never a password as an argument; no terminal to ask on and no --password-stdin: refused.
    assert lk("reviewers", "add", "hal", "--password", PASSWORD, db=db).exit_code == 2
    refused = lk("reviewers", "add", "hal", db=db)
    assert refused.exit_code == 2 and "--password-stdin" in refused.output
    # On a terminal it asks twice.
    monkeypatch.setattr(review_command, "_interactive", lambda: True)
    asked = lk("reviewers", "add", "hal", db=db, input=f"{PASSWORD}\n{PASSWORD}\n")
    assert asked.exit_code == 0, asked.output
    mistyped = lk("reviewers", "add", "ivy", db=db, input=f"{PASSWORD}\nother-password\n" * 3)
    assert mistyped.exit_code != 0
    assert lk("reviewers", "add", "jo", "--no-password", "--reveal-cap", "3", db=db).exit_code == 0
    short = lk("reviewers", "add", "kim", "--password-stdin", db=db, input="short\n")
    assert short.exit_code == 1 and "12 to 1024 characters" in short.stderr
    bad = lk("reviewers", "add", "-x", "--no-password", db=db)
    assert bad.exit_code == 2  # read as an option: the user-name rule keeps names clear of it
    dup = lk("reviewers", "add", "jo", "--no-password", db=db)
    assert dup.exit_code == 1 and "already exists" in dup.stderr

    listed = lk("reviewers", "list", "--json", db=db)
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["username"], r["role"], r["daily_reveal_cap"]) for r in rows] == [
        ("gina", "senior", None),
        ("hal", "reviewer", None),
        ("jo", "reviewer", 3),
    ]
    assert lk("reviewers", "disable", "hal", db=db).stdout.split("\t")[3] == "disabled"
    assert "\tdisabled\t" in lk("reviewers", "list", db=db).stdout.splitlines()[1]
    assert lk("reviewers", "enable", "hal", db=db).exit_code == 0
    assert lk("reviewers", "disable", "nobody", db=db).exit_code == 1
    changed = lk(
        "reviewers", "passwd", "jo", "--password-stdin", db=db, input="a much longer one\n"
    )
    assert changed.exit_code == 0, changed.output
    with BankStore.open(db) as store:
        assert authenticate(store, "jo", "a much longer one").username == "jo"


def test_the_roles_written_out_for_help_are_the_librarys() -> None:
    assert review_command._ROLES == ROLES
    from lightkeeper.banks.models import APPEAL_STATUSES

    assert review_command._APPEAL_STATUSES == APPEAL_STATUSES


def test_feedback_commands_list_and_export_once(db: str, tmp_path: Path) -> None:
    with BankStore.open(db) as store:
        world = make_world(store, tmp_path)
        decide(store, world.listed_case(70, pdq=True), world.alice, "false_positive")
    listed = lk("feedback", "list", "--json", db=db)
    rows: list[dict[str, Any]] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(r["signal_type"] for r in rows) == ["pdq", "sha256"]
    assert all(r["actor"] == "reviewer:alice" and r["exported_at"] is None for r in rows)
    assert lk("feedback", "list", "--bank", "other", db=db).stdout == ""
    exported = lk("feedback", "export", db=db)
    lines = exported.stdout.splitlines()
    assert lines[0].startswith("id,case_id,bank,entry_id,signal_type") and len(lines) == 3
    assert "alice" not in exported.stdout
    assert lk("feedback", "export", "--json", db=db).stdout == ""  # once only
    assert len(lk("feedback", "list", "--unexported", db=db).stdout.splitlines()) == 0
