"""The audit trail is a hash chain: `verify` passes on the trail as Lightkeeper wrote it and
names the event wherever someone edited, removed, inserted or reordered events directly in
the database, or cut off its end; concurrent writers and rolled-back transactions never
break it; the migration chains the events written before it. On SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine

from lightkeeper.banks import BankStore, _engine
from lightkeeper.banks._migrate import alembic_config
from lightkeeper.banks.audit import (
    AUDIT,
    GENESIS_HASH,
    HEAD,
    ChainHead,
    VerifyReport,
    acting_as,
    chain_head,
    event_hash,
    format_timestamp,
    list_events,
    record,
    verify,
)
from lightkeeper.banks.testing import backends, temporary_database, temporary_store
from lightkeeper.cli.exit_codes import ExitCode
from lightkeeper.cli.main import main
from lightkeeper.errors import InvalidRequest
from lightkeeper.service.keys import create_key, revoke_key

MD5_A = "d41d8cd98f00b204e9800998ecf8427e"
PDQ_A = "f" * 64


@pytest.fixture(params=backends())
def store(request: pytest.FixtureRequest) -> Iterator[BankStore]:
    with temporary_store(request.param) as s:
        yield s


# ---------------------------------------------------------------- helpers


def store_operations(store: BankStore) -> None:
    """A realistic trail: banks, entries, keys, under two actors."""
    store.create_bank("known", description="a list")
    with acting_as("key:7 (curator-bot)"):
        entry, _ = store.add_entry("known", "md5", MD5_A)
        store.add_entry("known", "pdq", PDQ_A, list_name="l", list_version="1")
        store.update_bank("known", description="changed", thresholds={"pdq": 20})
        store.disable_entry(entry.id)
    key, _ = create_key(store, "partner", ["lookup"])
    revoke_key(store, key.id)
    store.create_bank("fp", kind="allow")
    store.delete_bank("fp")


def append(store: BankStore, count: int, *, prefix: str = "e") -> None:
    for i in range(count):
        _engine.write(store.engine, lambda conn, i=i: record(conn, "test.event", f"{prefix}{i}"))


def ids(store: BankStore) -> list[int]:
    return [event.id for event in list_events(store.engine, limit=100_000)]


def execute(engine: Engine, statement: Any, params: Any = None) -> None:
    """Tamper: a statement run straight on the database, as someone with its password would."""
    with engine.begin() as conn:
        conn.execute(statement, params)


def row(engine: Engine, event_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(AUDIT).where(AUDIT.c.id == event_id)).one()._mapping)


def found(report: VerifyReport) -> set[tuple[int | None, str]]:
    return {(problem.event_id, problem.kind) for problem in report.problems}


def skip_ids(engine: Engine, count: int) -> None:
    """Make the next id jump by `count`, as a PostgreSQL sequence does after rollbacks."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                sa.text(
                    "SELECT setval(pg_get_serial_sequence('audit_events', 'id'), "
                    "(SELECT max(id) FROM audit_events) + :n)"
                ),
                {"n": count},
            )
        else:
            conn.execute(
                sa.text("UPDATE sqlite_sequence SET seq = seq + :n WHERE name = 'audit_events'"),
                {"n": count},
            )


def swap_contents(engine: Engine, a: int, b: int) -> None:
    """Swap everything but the ids of two events (the unique position via a free value)."""
    first, second = row(engine, a), row(engine, b)
    with engine.begin() as conn:
        conn.execute(sa.update(AUDIT).where(AUDIT.c.id == a).values(position=-1))
        for target, source in ((b, first), (a, second)):
            values = {k: v for k, v in source.items() if k != "id"}
            conn.execute(sa.update(AUDIT).where(AUDIT.c.id == target).values(**values))


def forge(
    engine: Engine, event_id: int, *, after: dict[str, Any], position: int, valid: bool
) -> None:
    """Insert an event that was never recorded, linked to `after`, with a correct hash (an
    attacker who knows the encoding) or a made-up one."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    fields = ("local:mallory", "bank.delete", "bank:evidence", "{}")
    digest = event_hash(event_id, position, at, *fields, after["hash"]) if valid else "ab" * 32
    execute(
        engine,
        sa.insert(AUDIT),
        {
            "id": event_id,
            "at": at,
            "actor": fields[0],
            "action": fields[1],
            "subject": fields[2],
            "details": fields[3],
            "position": position,
            "prev_hash": after["hash"],
            "hash": digest,
        },
    )


# ---------------------------------------------------------------- an untouched trail


def test_an_untouched_trail_of_store_operations_verifies(store: BankStore) -> None:
    store_operations(store)
    events = list_events(store.engine)
    assert len(events) >= 9
    assert [e.position for e in events] == list(range(1, len(events) + 1))
    assert events[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
    report = verify(store.engine)
    assert report.ok and report.problems == () and report.events == len(events)
    assert report.head == report.last == ChainHead(events[-1].id, len(events), events[-1].hash)
    assert chain_head(store.engine) == report.head


def test_an_empty_trail_verifies_and_its_head_is_the_genesis(store: BankStore) -> None:
    assert chain_head(store.engine) == ChainHead(0, 0, GENESIS_HASH)
    report = verify(store.engine)
    assert report.ok and report.events == 0


def test_each_hash_covers_exactly_the_documented_encoding(store: BankStore) -> None:
    with acting_as("key:1 (a)"):
        append(store, 1)
    [event] = list_events(store.engine)
    stored = row(store.engine, event.id)
    encoded = (
        b"lightkeeper-audit-v1\n"
        + b"%d:%d," % (len(str(event.id)), event.id)
        + b"1:1,"
        + b"27:" + format_timestamp(event.at).encode() + b","
        + b"9:key:1 (a),"
        + b"10:test.event,"
        + b"2:e0,"
        + b"2:{},"
        + b"64:" + GENESIS_HASH.encode() + b","
    )  # fmt: skip
    assert stored["hash"] == hashlib.sha256(encoded).hexdigest()


def test_timestamps_round_trip_through_the_database_to_the_microsecond(store: BankStore) -> None:
    moments = [
        datetime(2026, 11, 22, 9, 15, 2, tzinfo=UTC),  # no microseconds
        datetime(2026, 11, 22, 9, 15, 2, 1, tzinfo=UTC),
        datetime(2026, 11, 22, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2024, 2, 29, 12, 0, 0, 500_000, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(1999, 12, 31, 23, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=-8))),
        datetime.now(UTC),
    ]
    for moment in moments:
        _engine.write(store.engine, lambda conn, m=moment: record(conn, "t", "s", at=m))
    events = list_events(store.engine)
    assert [e.at for e in events] == moments
    assert [format_timestamp(e.at) for e in events] == [format_timestamp(m) for m in moments]
    assert format_timestamp(moments[0]) == "2026-11-22T09:15:02.000000Z"
    assert format_timestamp(moments[3]) == "2024-02-29T06:30:00.500000Z"
    assert verify(store.engine).ok


# ---------------------------------------------------------------- tampering, located


def test_events_edited_in_the_database_are_each_pinpointed(store: BankStore) -> None:
    store_operations(store)
    edits: dict[str, object] = {
        "actor": "local:someone-else",
        "details": '{"entries": 0}',
        "at": datetime(2026, 1, 1, tzinfo=UTC),
        "action": "bank.create",
        "subject": "bank:other",
    }
    targets = ids(store)[1 : 1 + len(edits)]
    assert verify(store.engine).ok
    for target, (column, value) in zip(targets, edits.items(), strict=True):
        execute(store.engine, sa.update(AUDIT).where(AUDIT.c.id == target).values({column: value}))
    report = verify(store.engine)
    assert not report.ok
    assert found(report) == {(target, "edited") for target in targets}
    assert [str(problem) for problem in report.problems] == [
        f"event {target}: edited (its content does not match its hash)" for target in targets
    ]


def test_a_timestamp_moved_by_one_microsecond_is_caught(store: BankStore) -> None:
    append(store, 3)
    target = ids(store)[1]
    at = row(store.engine, target)["at"]
    execute(
        store.engine,
        sa.update(AUDIT).where(AUDIT.c.id == target).values(at=at + timedelta(microseconds=1)),
    )
    assert found(verify(store.engine)) == {(target, "edited")}


def test_a_deleted_middle_event_is_located_after_the_gap(store: BankStore) -> None:
    store_operations(store)
    all_ids = ids(store)
    execute(store.engine, sa.delete(AUDIT).where(AUDIT.c.id == all_ids[4]))
    report = verify(store.engine)
    assert found(report) == {(all_ids[5], "removed")}
    assert "1 event(s) missing before it (position 5)" in str(report.problems[0])


def test_deleting_the_first_events_is_located(store: BankStore) -> None:
    append(store, 5)
    all_ids = ids(store)
    execute(store.engine, sa.delete(AUDIT).where(AUDIT.c.id.in_(all_ids[:2])))
    report = verify(store.engine)
    assert found(report) == {(all_ids[2], "removed")}
    assert "positions 1–2" in report.problems[0].detail


@pytest.mark.parametrize("how", ["contents", "ids"])
def test_a_swapped_pair_is_located(store: BankStore, how: str) -> None:
    append(store, 6)
    all_ids = ids(store)
    a, b = all_ids[2], all_ids[3]
    if how == "contents":
        swap_contents(store.engine, a, b)
    else:
        with store.engine.begin() as conn:  # renumber: b's row takes a's id and back
            for old, new in ((a, -a), (b, a), (-a, b)):
                conn.execute(sa.update(AUDIT).where(AUDIT.c.id == old).values(id=new))
    report = verify(store.engine)
    assert found(report) == {(a, "edited"), (b, "edited")}
    assert all("moved or swapped" in problem.detail for problem in report.problems)


@pytest.mark.parametrize("valid_hash", [True, False])
def test_a_forged_event_inserted_in_an_id_gap_is_located(
    store: BankStore, valid_hash: bool
) -> None:
    append(store, 3, prefix="a")
    skip_ids(store.engine, 10)
    append(store, 3, prefix="b")
    all_ids = ids(store)
    assert all_ids[3] - all_ids[2] > 1  # a gap: no problem in itself
    assert verify(store.engine).ok
    forged = all_ids[2] + 1
    # Its position cannot be 4 (unique): an unused one.
    forge(store.engine, forged, after=row(store.engine, all_ids[2]), position=99, valid=valid_hash)
    report = verify(store.engine)
    assert found(report) == {(forged, "inserted")}
    assert f"event {all_ids[3]} follows event {all_ids[2]}" in report.problems[0].detail


@pytest.mark.parametrize("valid_hash", [True, False])
def test_a_forged_event_appended_past_the_head_is_located(
    store: BankStore, valid_hash: bool
) -> None:
    append(store, 4)
    last = ids(store)[-1]
    forge(store.engine, last + 1, after=row(store.engine, last), position=5, valid=valid_hash)
    report = verify(store.engine)
    assert found(report) == {(last + 1, "inserted")}
    assert "after the head" in report.problems[0].detail


def test_a_truncated_tail_is_caught_by_the_head_row(store: BankStore) -> None:
    append(store, 5)
    all_ids = ids(store)
    execute(store.engine, sa.delete(AUDIT).where(AUDIT.c.id.in_(all_ids[3:])))
    report = verify(store.engine)
    assert found(report) == {(all_ids[4], "truncated")}
    assert "2 event(s) removed from the end" in report.problems[0].detail


def test_a_truncated_tail_with_the_head_moved_back_is_caught_only_by_an_anchor(
    store: BankStore,
) -> None:
    append(store, 5)
    anchor = chain_head(store.engine)
    assert anchor is not None
    append(store, 2, prefix="later")  # the trail goes on growing after the anchor was taken
    assert verify(store.engine, expect_head=anchor.anchor).anchor_found is True
    all_ids = ids(store)
    kept = row(store.engine, all_ids[2])
    with store.engine.begin() as conn:
        conn.execute(sa.delete(AUDIT).where(AUDIT.c.id.in_(all_ids[3:])))
        conn.execute(
            sa.update(HEAD).values(
                event_id=kept["id"], position=kept["position"], hash=kept["hash"]
            )
        )
    assert verify(store.engine).ok  # the documented limit: consistent in itself
    report = verify(store.engine, expect_head=anchor.anchor)
    assert found(report) == {(None, "truncated")}
    assert "ends at position 3, before the expected head at position 5" in str(report.problems[0])
    hash_only = verify(store.engine, expect_head=anchor.hash)
    assert found(hash_only) == {(None, "truncated")} and hash_only.anchor_found is False


def test_a_trail_rewritten_with_recomputed_hashes_is_caught_by_an_anchor(
    store: BankStore,
) -> None:
    append(store, 4)
    anchor = chain_head(store.engine)
    assert anchor is not None
    # Rewrite event 2's actor and re-seal it and every event after it, head included.
    all_ids = ids(store)
    rows = [row(store.engine, event_id) for event_id in all_ids]
    with store.engine.begin() as conn:
        prev = rows[0]["hash"]
        for event_id, old in zip(all_ids[1:], rows[1:], strict=True):
            actor = "local:mallory" if event_id == all_ids[1] else old["actor"]
            digest = event_hash(
                event_id,
                old["position"],
                old["at"],
                actor,
                old["action"],
                old["subject"],
                old["details"],
                prev,
            )
            conn.execute(
                sa.update(AUDIT)
                .where(AUDIT.c.id == event_id)
                .values(actor=actor, prev_hash=prev, hash=digest)
            )
            prev = digest
        conn.execute(sa.update(HEAD).values(hash=prev))
    assert verify(store.engine).ok
    report = verify(store.engine, expect_head=anchor.anchor)
    assert found(report) == {(all_ids[3], "anchor_mismatch")}


def test_an_event_rewritten_with_its_hash_recomputed_breaks_the_next_link(
    store: BankStore,
) -> None:
    append(store, 4)
    all_ids = ids(store)
    old = row(store.engine, all_ids[1])
    digest = event_hash(
        old["id"],
        2,
        old["at"],
        "local:mallory",
        old["action"],
        old["subject"],
        "{}",
        old["prev_hash"],
    )
    execute(
        store.engine,
        sa.update(AUDIT)
        .where(AUDIT.c.id == old["id"])
        .values(actor="local:mallory", details="{}", hash=digest),
    )
    report = verify(store.engine)
    assert found(report) == {(all_ids[2], "broken_link")}
    assert f"event {all_ids[1]}" in report.problems[0].detail


def test_a_missing_head_row_is_reported_and_the_next_append_restores_it(
    store: BankStore,
) -> None:
    append(store, 2)
    execute(store.engine, sa.delete(HEAD))
    assert chain_head(store.engine) is None
    assert found(verify(store.engine)) == {(None, "head_missing")}
    append(store, 1, prefix="after")
    report = verify(store.engine)
    assert report.ok and report.events == 3


def test_the_report_lists_a_bounded_number_of_problems_and_counts_them_all(
    store: BankStore,
) -> None:
    append(store, 6)
    execute(store.engine, sa.update(AUDIT).values(actor="local:everyone"))
    report = verify(store.engine, max_problems=2)
    assert len(report.problems) == 2 and report.problem_count == 6


def test_a_malformed_expected_head_is_refused(store: BankStore) -> None:
    with pytest.raises(InvalidRequest, match="not an audit head"):
        verify(store.engine, expect_head="12:xyz")


# ---------------------------------------------------------------- rollbacks and concurrency


def test_a_rolled_back_append_leaves_no_trace_and_no_false_alarm(store: BankStore) -> None:
    append(store, 2)

    def fails(conn: Connection) -> None:
        record(conn, "test.event", "rolled-back")
        raise RuntimeError("the change failed after its event was recorded")

    for _ in range(3):
        with pytest.raises(RuntimeError):
            _engine.write(store.engine, fails)
    append(store, 2, prefix="after")
    events = list_events(store.engine)
    assert [e.subject for e in events] == ["e0", "e1", "after0", "after1"]
    assert [e.position for e in events] == [1, 2, 3, 4]
    if store.engine.dialect.name == "postgresql":
        assert events[2].id - events[1].id == 4  # the sequence skipped the rolled-back ids
    assert verify(store.engine).ok


def _writers(engine: Engine, threads: int, each: int, transaction: Any) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def run(n: int) -> None:
        try:
            start.wait()
            for i in range(each):
                with acting_as(f"writer-{n}"):
                    transaction(engine, lambda conn, i=i: record(conn, "test.event", f"{n}.{i}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []


def test_threads_appending_to_one_sqlite_file_make_one_chain(tmp_path: Path) -> None:
    with BankStore.open(str(tmp_path / "trail.db")) as store:
        _writers(store.engine, 4, 25, _engine.write)
        report = verify(store.engine)
        assert report.ok and report.events == 100
        assert report.last is not None and report.last.position == 100


def test_concurrent_postgresql_transactions_make_one_chain() -> None:
    """Plain transactions on separate connections, without the bank writers' advisory lock
    (as the webhook tables' transactions run): the head row lock alone keeps them linear."""

    def plain(engine: Engine, work: Any) -> None:
        with engine.begin() as conn:
            work(conn)

    with temporary_store("postgresql") as store:
        _writers(store.engine, 4, 25, plain)
        events = list_events(store.engine)
        assert len(events) == 100 and [e.position for e in events] == list(range(1, 101))
        assert len({e.prev_hash for e in events}) == 100  # no two events extend the same one
        assert verify(store.engine).ok


# ---------------------------------------------------------------- migration


@pytest.mark.parametrize("backend", backends())
def test_the_migration_chains_events_written_before_it(backend: str, tmp_path: Path) -> None:
    with _empty_url(backend, tmp_path) as url:
        engine = _engine.make_engine(url)
        try:
            _engine.write(engine, lambda conn: _alembic(conn, "upgrade", "0005"))
            old = sa.table(
                "audit_events",
                sa.column("at", sa.DateTime()),
                *(sa.column(c) for c in ("id", "actor", "action", "subject", "details")),
            )
            at = datetime(2026, 3, 1, 12, 0, 0, 250_000)  # naive UTC, as 0005 stored it
            execute(
                engine,
                sa.insert(old),
                [
                    {"id": i, "at": at, "actor": "local:old", "action": "bank.create",
                     "subject": f"bank:b{i}", "details": "{}"}
                    for i in (1, 2, 5, 9)  # gaps, as a sequence leaves them
                ],
            )  # fmt: skip
            if backend == "postgresql":  # where the sequence would be after those
                execute(engine, sa.text("SELECT setval('audit_events_id_seq', 9)"))
        finally:
            engine.dispose()
        with BankStore.open(url) as store:
            events = list_events(store.engine)
            assert [(e.id, e.position) for e in events] == [(1, 1), (2, 2), (5, 3), (9, 4)]
            assert events[0].at == at.replace(tzinfo=UTC)
            assert verify(store.engine).ok
            assert chain_head(store.engine) == ChainHead(9, 4, events[-1].hash)
            store.create_bank("after")
            report = verify(store.engine)
            assert report.ok and report.events == 5
            assert list_events(store.engine)[-1].id > 9

            # Down to 0005 and up again: the trail is chained afresh, the same way.
            _engine.write(store.engine, lambda conn: _alembic(conn, "downgrade", "0005"))
            _engine.write(store.engine, lambda conn: _alembic(conn, "upgrade", "head"))
            again = list_events(store.engine)
            assert [e.hash for e in again[:4]] == [e.hash for e in events]
            assert verify(store.engine).ok


def _alembic(conn: Connection, direction: str, revision: str) -> None:
    from alembic import command

    getattr(command, direction)(alembic_config(conn), revision)


@contextmanager
def _empty_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database with no schema yet (a file for SQLite: in-memory ones die with the engine)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    with temporary_database(backend) as url:
        yield url


# ---------------------------------------------------------------- one random tampering


@pytest.fixture(scope="module")
def sqlite_store() -> Iterator[BankStore]:
    with temporary_store("sqlite") as s:
        yield s


_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=30)
_EVENT = st.fixed_dictionaries(
    {
        "actor": _TEXT,
        "action": st.text("abcdefghijklmnopqrstuvwxyz.", min_size=1, max_size=20),
        "subject": _TEXT,
        "details": st.dictionaries(st.text(max_size=5), st.integers() | _TEXT, max_size=3),
        "gap": st.integers(0, 3),
    }
)
_TAMPERING = st.sampled_from(
    ["actor", "action", "subject", "details", "at", "delete", "swap", "insert", "append"]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(_EVENT, min_size=3, max_size=12),
    tampering=_TAMPERING,
    where=st.floats(0, 1, exclude_max=True),
)
def test_verify_flags_exactly_the_place_of_one_random_tampering(
    sqlite_store: BankStore, events: list[dict[str, Any]], tampering: str, where: float
) -> None:
    engine = sqlite_store.engine
    with engine.begin() as conn:  # a fresh trail for each example
        conn.execute(sa.delete(AUDIT))
        conn.execute(sa.update(HEAD).values(event_id=0, position=0, hash=GENESIS_HASH))
    for event in events:
        skip_ids(engine, event["gap"])
        with acting_as(event["actor"] or "x"):
            _engine.write(
                engine,
                lambda conn, e=event: record(conn, e["action"], e["subject"], e["details"]),
            )
    assert verify(engine).ok
    all_ids = ids(sqlite_store)
    k = int(where * len(all_ids))
    target = all_ids[k]

    if tampering in ("actor", "action", "subject", "details", "at"):
        old = row(engine, target)[tampering]
        new: Any = old + timedelta(seconds=1) if tampering == "at" else old + "~"
        execute(engine, sa.update(AUDIT).where(AUDIT.c.id == target).values({tampering: new}))
        expected = {(target, "edited")}
    elif tampering == "delete":
        execute(engine, sa.delete(AUDIT).where(AUDIT.c.id == target))
        last = k == len(all_ids) - 1
        expected = {(target, "truncated")} if last else {(all_ids[k + 1], "removed")}
    elif tampering == "swap":
        k = min(k, len(all_ids) - 2)
        swap_contents(engine, all_ids[k], all_ids[k + 1])
        expected = {(all_ids[k], "edited"), (all_ids[k + 1], "edited")}
    elif tampering == "insert":
        # Into an id gap after event k if there is one, else past the head.
        free = all_ids[k] + 1
        if free in all_ids:
            free = all_ids[-1] + 1
            k = len(all_ids) - 1
        forge(engine, free, after=row(engine, all_ids[k]), position=1000, valid=True)
        expected = {(free, "inserted")}
    else:  # "append": a forged event with a made-up hash, past the head
        free = all_ids[-1] + 1
        forge(engine, free, after=row(engine, all_ids[-1]), position=len(all_ids) + 1, valid=False)
        expected = {(free, "inserted")}

    report = verify(engine)
    assert found(report) == expected, [str(p) for p in report.problems]
    assert report.problem_count == len(expected)


# ---------------------------------------------------------------- the command line


def lk(*args: str, db: str) -> Result:
    result = CliRunner().invoke(main, [*args, "--db", db])
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    with BankStore.open(url) as store:
        store_operations(store)
    return url


def test_cli_verify_passes_on_an_untouched_trail(db: str) -> None:
    result = lk("audit", "verify", db=db)
    assert result.exit_code == ExitCode.OK, result.output
    assert result.stdout.startswith("audit trail intact: 9 events, head 9:")


def test_cli_verify_lists_each_problem_and_exits_11(db: str) -> None:
    engine = sa.create_engine(db)
    try:
        execute(engine, sa.update(AUDIT).where(AUDIT.c.id == 3).values(actor="local:mallory"))
        execute(engine, sa.delete(AUDIT).where(AUDIT.c.id == 6))
    finally:
        engine.dispose()
    result = lk("audit", "verify", db=db)
    assert result.exit_code == ExitCode.AUDIT_TAMPERED == 11
    assert result.stdout.splitlines() == [
        "event 3: edited (its content does not match its hash)",
        "event 7: removed (1 event(s) missing before it (position 6))",
    ]
    assert "failed verification: 2 problem(s) in 8 events" in result.stderr


def test_cli_head_is_what_verify_expects(db: str) -> None:
    head = lk("audit", "head", db=db)
    assert head.exit_code == 0
    [anchor] = head.stdout.splitlines()
    assert anchor.startswith("9:") and len(anchor) == 2 + 64
    assert lk("audit", "verify", "--expect-head", anchor, db=db).exit_code == 0

    engine = sa.create_engine(db)
    try:
        with engine.begin() as conn:  # cut the last event and move the head back
            conn.execute(sa.delete(AUDIT).where(AUDIT.c.id == 9))
            kept = conn.execute(sa.select(AUDIT).where(AUDIT.c.id == 8)).one()
            conn.execute(sa.update(HEAD).values(event_id=8, position=8, hash=kept.hash))
    finally:
        engine.dispose()
    assert lk("audit", "verify", db=db).exit_code == 0
    result = lk("audit", "verify", "--expect-head", anchor, db=db)
    assert result.exit_code == ExitCode.AUDIT_TAMPERED
    assert result.stdout.startswith("head: truncated (the trail ends at position 8, before")


def test_cli_rejects_a_malformed_expected_head(db: str) -> None:
    result = lk("audit", "verify", "--expect-head", "not-a-hash", db=db)
    assert result.exit_code == ExitCode.USAGE
    assert "is not a head" in result.output


def test_cli_list_pages_through_the_trail(db: str) -> None:
    result = lk("audit", "list", "--after", "2", "--limit", "3", db=db)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["3", "4", "5"]
    assert lines[0].split("\t")[2:4] == ["key:7 (curator-bot)", "entries.write"]
    as_json = lk("audit", "list", "--limit", "1", "--json", db=db)
    [event] = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert event["id"] == 1 and event["position"] == 1 and event["prev_hash"] == GENESIS_HASH


def test_the_documented_outside_verifier_reproduces_every_hash(db: str) -> None:
    """docs/audit.md shows a verifier written from the encoding alone: it must agree."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "audit.md").read_text("utf-8")
    [code] = re.findall(r"```python\n(.*?)```", doc, flags=re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    listed = lk("audit", "list", "--json", db=db)
    events = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(events) == 9
    assert [namespace["event_hash"](event) for event in events] == [e["hash"] for e in events]
