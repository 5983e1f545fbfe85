"""BankStore: banks, entries, thresholds, enabling and the change log, as users rely on them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from lightkeeper.banks import (
    BankStore,
    NewEntry,
    RemoveExternalId,
    RemoveValue,
    WriteReport,
    resolve_database_url,
)
from lightkeeper.banks import store as store_module
from lightkeeper.banks._migrate import current_revision, head_revision
from lightkeeper.banks.audit import AUDIT
from lightkeeper.banks.audit import HEAD as AUDIT_HEAD
from lightkeeper.banks.models import Base
from lightkeeper.banks.testing import backends, temporary_store
from lightkeeper.errors import (
    Conflict,
    InvalidRequest,
    InvalidSignal,
    NotFound,
    UnknownSignalType,
)

PDQ_A = "f" * 64
PDQ_B = "0" * 63 + "1"
MD5_A = "d41d8cd98f00b204e9800998ecf8427e"


@pytest.fixture(params=backends())
def store(request: pytest.FixtureRequest) -> Iterator[BankStore]:
    with temporary_store(request.param) as s:
        yield s


@pytest.fixture
def bank(store: BankStore) -> str:
    store.create_bank("test-bank")
    return "test-bank"


# ---------------------------------------------------------------- opening and settings


def test_open_creates_the_directory_and_database(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "banks.db"
    with BankStore.open(f"sqlite:///{path}") as store:
        store.create_bank("b")
    assert path.exists()
    with BankStore.open(str(path)) as store:  # a bare path means SQLite
        assert [b.name for b in store.list_banks()] == ["b"]


def test_open_migrates_to_head_and_the_schema_matches_the_models(store: BankStore) -> None:
    assert current_revision(store.engine) == head_revision() is not None
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []


def test_opening_an_up_to_date_store_again_changes_nothing(tmp_path: Path) -> None:
    url = str(tmp_path / "s.db")
    with BankStore.open(url) as store:
        store.create_bank("kept")
    with BankStore.open(url) as store:
        assert [b.name for b in store.list_banks()] == ["kept"]
        assert current_revision(store.engine) == head_revision()


def test_sqlite_store_is_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    with BankStore.open(str(tmp_path / "s.db")) as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000


def test_database_url_comes_from_argument_then_environment_then_default() -> None:
    env = {"LIGHTKEEPER_DATABASE_URL": "sqlite:////srv/lk.db"}
    assert resolve_database_url("sqlite:///x.db", env) == "sqlite:///x.db"
    assert resolve_database_url(None, env) == "sqlite:////srv/lk.db"
    assert resolve_database_url(None, {}) == "sqlite:///lightkeeper-data/lightkeeper.db"
    assert resolve_database_url("data/banks.db", {}) == "sqlite:///data/banks.db"


# ---------------------------------------------------------------- banks


def test_create_get_list_and_delete_banks(store: BankStore) -> None:
    store.create_bank("ncmec", description="NCMEC list")
    store.create_bank("fp", kind="allow")
    assert [b.name for b in store.list_banks()] == ["fp", "ncmec"]
    bank = store.get_bank("ncmec")
    assert (bank.kind, bank.description, bank.enabled) == ("block", "NCMEC list", True)
    assert (bank.match_dihedral, bank.pdq_quality_floor) == (False, 50)
    assert store.get_bank("fp").kind == "allow"
    store.delete_bank("fp")
    assert [b.name for b in store.list_banks()] == ["ncmec"]
    with pytest.raises(NotFound):
        store.get_bank("fp")


def test_bank_names_are_unique(store: BankStore) -> None:
    store.create_bank("one")
    with pytest.raises(Conflict, match="already exists"):
        store.create_bank("one")
    store.create_bank("two")
    with pytest.raises(Conflict):
        store.update_bank("two", rename="one")


def test_a_name_taken_after_the_check_is_still_already_exists(
    store: BankStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A concurrent creator commits the name between create_bank's check and its insert: the
    # check (blinded once here) sees nothing, and the name's unique constraint refuses.
    store.create_bank("one")
    seen = store_module._find_bank_id
    blinded = [False]

    def check_misses_once(conn: Connection, name: str) -> int | None:
        if not blinded[0]:
            blinded[0] = True
            return None
        return seen(conn, name)

    monkeypatch.setattr(store_module, "_find_bank_id", check_misses_once)
    with pytest.raises(Conflict) as taken:
        store.create_bank("one", description="second")
    assert str(taken.value) == "bank 'one' already exists"
    assert isinstance(taken.value.__cause__, IntegrityError)
    assert [(b.name, b.description) for b in store.list_banks()] == [("one", "")]


def _extend_audit_trail_behind_its_head(store: BankStore) -> None:
    """Someone's hand extends the audit trail past its head: the next audited change fails
    the unique event position, which is no bank name's conflict."""
    with store.engine.begin() as conn:
        position = conn.execute(select(AUDIT_HEAD.c.position)).scalar_one()
        stray = {"actor": "x", "action": "x", "subject": "x", "details": "{}"}
        conn.execute(
            insert(AUDIT),
            {
                **stray,
                "at": datetime.now(UTC),
                "position": position + 1,
                "prev_hash": "0" * 64,
                "hash": "0" * 64,
            },
        )


def test_another_constraint_failing_in_create_bank_is_not_called_a_taken_name(
    store: BankStore,
) -> None:
    _extend_audit_trail_behind_its_head(store)
    with pytest.raises(IntegrityError):
        store.create_bank("fresh")
    with pytest.raises(NotFound):
        store.get_bank("fresh")  # the failed transaction left nothing behind


def test_another_constraint_failing_in_update_bank_is_not_called_a_taken_name(
    store: BankStore,
) -> None:
    store.create_bank("old")
    _extend_audit_trail_behind_its_head(store)
    for change in ({"description": "new"}, {"rename": "new"}):
        with pytest.raises(IntegrityError):
            store.update_bank("old", **change)  # type: ignore[arg-type]
    assert [(b.name, b.description) for b in store.list_banks()] == [("old", "")]


@pytest.mark.parametrize("name", ["", "Upper", "has space", "x" * 65, "-leading", "é"])
def test_invalid_bank_names_are_refused(store: BankStore, name: str) -> None:
    with pytest.raises(InvalidRequest, match="bank name"):
        store.create_bank(name)


def test_invalid_bank_settings_are_refused(store: BankStore) -> None:
    with pytest.raises(InvalidRequest):
        store.create_bank("b", kind="maybe")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        store.create_bank("b", pdq_quality_floor=101)
    with pytest.raises(InvalidRequest):
        store.create_bank("b", thresholds={"pdq": 257})
    with pytest.raises(InvalidRequest):
        store.create_bank("b", thresholds={"md5": 3})
    with pytest.raises(UnknownSignalType):
        store.create_bank("b", thresholds={"photodna": 10})
    assert store.list_banks() == []


def test_thresholds_default_per_signal_type_and_can_be_set_and_reset(store: BankStore) -> None:
    bank = store.create_bank("b", thresholds={"pdq": 20})
    assert bank.threshold("pdq") == 20
    assert bank.threshold("md5") == 0
    bank = store.update_bank("b", thresholds={"pdq": None})
    assert bank.threshold("pdq") == 31  # PDQ's default
    assert store.update_bank("b", thresholds={"pdq": 10}).thresholds == {"pdq": 10}


def test_update_bank_changes_only_what_is_given(store: BankStore) -> None:
    store.create_bank("b", description="keep me", thresholds={"pdq": 25})
    bank = store.update_bank("b", match_dihedral=True, pdq_quality_floor=70, enabled=False)
    assert (bank.match_dihedral, bank.pdq_quality_floor, bank.enabled) == (True, 70, False)
    assert (bank.description, bank.thresholds) == ("keep me", {"pdq": 25})
    renamed = store.update_bank("b", rename="c", kind="allow")
    assert (renamed.name, renamed.kind, renamed.id) == ("c", "allow", bank.id)


def test_missing_banks_are_not_found(store: BankStore) -> None:
    for call in (
        lambda: store.get_bank("nope"),
        lambda: store.update_bank("nope", description="x"),
        lambda: store.delete_bank("nope"),
        lambda: store.add_entry("nope", "pdq", PDQ_A),
        lambda: store.count_entries("nope"),
    ):
        with pytest.raises(NotFound, match="nope"):
            call()


# ---------------------------------------------------------------- entries


def test_adding_the_same_hash_twice_keeps_one_entry(store: BankStore, bank: str) -> None:
    entry, outcome = store.add_entry(bank, "pdq", PDQ_A.upper())
    assert (outcome, entry.value) == ("added", PDQ_A)  # stored in canonical form
    again, outcome = store.add_entry(bank, "pdq", PDQ_A)
    assert (outcome, again.id) == ("unchanged", entry.id)
    assert store.count_entries(bank) == 1


def test_re_adding_updates_given_provenance_and_keeps_the_rest(store: BankStore, bank: str) -> None:
    first, _ = store.add_entry(
        bank, "md5", MD5_A, list_name="ncmec", list_version="1", classification="A1", note="n"
    )
    updated, outcome = store.add_entry(bank, "md5", MD5_A, list_version="2", external_id="x9")
    assert outcome == "updated"
    assert (updated.list_name, updated.list_version, updated.external_id) == ("ncmec", "2", "x9")
    assert (updated.classification, updated.note, updated.added_at) == ("A1", "n", first.added_at)
    assert updated.updated_at >= first.updated_at


def test_same_hash_may_sit_in_two_banks(store: BankStore, bank: str) -> None:
    store.create_bank("other")
    a, _ = store.add_entry(bank, "pdq", PDQ_A)
    b, _ = store.add_entry("other", "pdq", PDQ_A)
    assert a.id != b.id
    assert {e.bank for e in store.lookup("pdq", PDQ_A)} == {bank, "other"}
    assert store.lookup("pdq", PDQ_B) == []


def test_invalid_values_are_refused_and_nothing_of_the_batch_is_written(
    store: BankStore, bank: str
) -> None:
    with pytest.raises(InvalidSignal):
        store.add_entries(bank, [NewEntry("pdq", PDQ_A), NewEntry("pdq", "not-a-hash")])
    with pytest.raises(UnknownSignalType):
        store.add_entries(bank, [NewEntry("nosuch", "x")])
    with pytest.raises(InvalidRequest, match="classification"):
        store.add_entries(bank, [NewEntry("pdq", PDQ_A, classification="x" * 65)])
    assert store.count_entries(bank) == 0


def test_bulk_add_reports_added_updated_unchanged(store: BankStore, bank: str) -> None:
    hashes = [f"{i:064x}" for i in range(250)]
    first = store.add_entries(bank, [NewEntry("pdq", h) for h in hashes], batch_size=100)
    assert first == WriteReport(added=250)
    second = store.add_entries(
        bank,
        [NewEntry("pdq", h, list_version="2" if i < 10 else None) for i, h in enumerate(hashes)],
        batch_size=100,
    )
    assert second == WriteReport(updated=10, unchanged=240)
    assert store.count_entries(bank) == 250
    assert store.count_entries(signal_type="md5") == 0


def test_remove_entries_by_value_and_by_id(store: BankStore, bank: str) -> None:
    a, _ = store.add_entry(bank, "pdq", PDQ_A)
    b, _ = store.add_entry(bank, "pdq", PDQ_B)
    report = store.remove_entries(bank, [("pdq", PDQ_A.upper()), ("md5", MD5_A)])
    assert report == WriteReport(removed=1, unchanged=1)
    assert store.remove_entry(b.id).value == PDQ_B
    assert store.count_entries(bank) == 0
    with pytest.raises(NotFound):
        store.get_entry(a.id)
    with pytest.raises(NotFound):
        store.remove_entry(b.id)


def test_remove_by_external_id_scoped_to_its_list(store: BankStore, bank: str) -> None:
    store.add_entries(
        bank,
        [
            NewEntry("md5", MD5_A, list_name="ncmec", external_id="img1"),
            NewEntry("pdq", PDQ_A, list_name="ncmec", external_id="img1"),
            NewEntry("pdq", PDQ_B, list_name="other", external_id="img1"),
        ],
    )
    report = store.write_batch(bank, [RemoveExternalId("img1", "ncmec")])
    assert report == WriteReport(removed=2)
    assert [e.list_name for e in store.iter_entries(bank)] == ["other"]


def test_a_batch_applies_its_operations_in_order(store: BankStore, bank: str) -> None:
    store.add_entry(bank, "pdq", PDQ_A)
    report = store.write_batch(
        bank,
        [
            RemoveValue("pdq", PDQ_A),
            NewEntry("pdq", PDQ_A, note="back"),  # removed then re-added: present
            NewEntry("pdq", PDQ_B),
            RemoveValue("pdq", PDQ_B),  # added then removed: absent
            NewEntry("md5", MD5_A, external_id="e1"),
            RemoveExternalId("e1"),  # added then removed by id: absent
        ],
    )
    assert [(e.value, e.note) for e in store.iter_entries(bank)] == [(PDQ_A, "back")]
    # A removed and re-added, MD5 added and removed; B's add and removal cancel out.
    assert report == WriteReport(added=2, removed=2, unchanged=2)


def test_disable_for_good_and_until_a_time(store: BankStore, bank: str) -> None:
    entry, _ = store.add_entry(bank, "pdq", PDQ_A)
    assert entry.is_active()
    off = store.disable_entry(entry.id)
    assert not off.enabled and not off.is_active()
    until = datetime.now(UTC) + timedelta(days=1)
    paused = store.disable_entry(entry.id, until=until)
    assert paused.disabled_until == until
    assert not paused.is_active()
    assert paused.is_active(now=until + timedelta(seconds=1))
    assert store.enable_entry(entry.id).is_active()
    with pytest.raises(InvalidRequest):
        store.disable_entry(entry.id, until=datetime(2030, 1, 1))  # naive: zone unknown


def test_re_adding_does_not_re_enable_a_disabled_entry(store: BankStore, bank: str) -> None:
    entry, _ = store.add_entry(bank, "pdq", PDQ_A)
    store.disable_entry(entry.id)
    again, _ = store.add_entry(bank, "pdq", PDQ_A, list_version="2")
    assert not again.enabled


def test_iter_entries_streams_every_entry_in_id_order(store: BankStore, bank: str) -> None:
    store.create_bank("other")
    store.add_entries(bank, [NewEntry("pdq", f"{i:064x}") for i in range(25)])
    store.add_entries("other", [NewEntry("md5", f"{i:032x}") for i in range(5)])
    ids = [e.id for e in store.iter_entries(bank, page_size=7)]
    assert len(ids) == 25 and ids == sorted(ids)
    assert len(list(store.iter_entries(page_size=4))) == 30
    assert {e.bank for e in store.iter_entries(signal_type="md5")} == {"other"}


def test_index_rows_are_every_entry_in_brief(store: BankStore, bank: str) -> None:
    store.create_bank("other")
    store.add_entries(bank, [NewEntry("pdq", f"{i:064x}") for i in range(12)])
    store.add_entries("other", [NewEntry("md5", MD5_A)])
    first = next(store.iter_entries(bank))
    store.disable_entry(first.id)
    rows = list(store.iter_index_rows(page_size=5))
    assert [(r.id, r.bank_id, r.signal_type, r.value) for r in rows] == [
        (e.id, e.bank_id, e.signal_type, e.value) for e in store.iter_entries()
    ]
    assert [r.id for r in rows if not r.is_active()] == [first.id]
    assert [r.value for r in store.iter_index_rows(signal_type="md5")] == [MD5_A]


def test_deleting_a_bank_deletes_its_entries(store: BankStore, bank: str) -> None:
    store.add_entries(bank, [NewEntry("pdq", PDQ_A), NewEntry("pdq", PDQ_B)])
    assert store.delete_bank(bank) == 2
    assert store.count_entries() == 0
    assert store.lookup("pdq", PDQ_A) == []


# ---------------------------------------------------------------- change log


def test_change_log_records_every_change_in_order(store: BankStore) -> None:
    assert store.last_seq() == 0
    bank = store.create_bank("b")
    a, _ = store.add_entry("b", "pdq", PDQ_A)
    store.add_entry("b", "pdq", PDQ_A, note="x")
    store.disable_entry(a.id)
    store.remove_entries("b", [("pdq", PDQ_A)])
    changes = store.changes_since(0)
    assert [c.op for c in changes] == ["bank", "add", "update", "update", "remove"]
    assert [c.seq for c in changes] == sorted(c.seq for c in changes)
    assert changes[-1].seq == store.last_seq()
    remove = changes[-1]
    assert (remove.bank_id, remove.bank, remove.entry_id) == (bank.id, "b", a.id)
    assert (remove.signal_type, remove.value) == ("pdq", PDQ_A)
    assert not remove.is_active()
    # Entries removed since are reported without value; their removal follows.
    assert changes[1].value is None and changes[1].entry_id == a.id


def test_change_log_pages_by_sequence_number(store: BankStore, bank: str) -> None:
    store.add_entries(bank, [NewEntry("pdq", f"{i:064x}") for i in range(10)])
    seen, seq = [], 0
    while page := store.changes_since(seq, limit=3):
        seen.extend(page)
        seq = page[-1].seq
    assert [c.op for c in seen].count("add") == 10
    assert [(c.signal_type, c.value) for c in seen if c.op == "add"] == [
        ("pdq", f"{i:064x}") for i in range(10)
    ]
    assert all(c.enabled and c.is_active() for c in seen if c.op == "add")


def test_deleting_a_bank_logs_a_removal_per_entry(store: BankStore, bank: str) -> None:
    store.add_entries(bank, [NewEntry("pdq", PDQ_A), NewEntry("md5", MD5_A)])
    seq = store.last_seq()
    store.delete_bank(bank)
    changes = store.changes_since(seq)
    assert [c.op for c in changes] == ["remove", "remove", "bank"]
    assert {(c.signal_type, c.value) for c in changes[:2]} == {("pdq", PDQ_A), ("md5", MD5_A)}
    assert all(c.bank is None for c in changes)  # the bank is gone


def test_entry_ids_are_never_reused(store: BankStore, bank: str) -> None:
    a, _ = store.add_entry(bank, "pdq", PDQ_A)
    store.remove_entry(a.id)
    b, _ = store.add_entry(bank, "pdq", PDQ_A)
    assert b.id > a.id


# A follower that replays the log must end up with exactly the store's entries, whatever
# the mix of adds, removals and removals by external id, in and across batches.
_VALUES = st.sampled_from([f"{i:064x}" for i in range(5)])
_EXT = st.sampled_from([None, "e1", "e2"])
_OPS = st.lists(
    st.one_of(
        st.builds(
            NewEntry,
            st.just("pdq"),
            _VALUES,
            external_id=_EXT,
            note=st.sampled_from([None, "a", "b"]),
        ),
        st.builds(RemoveValue, st.just("pdq"), _VALUES),
        st.builds(RemoveExternalId, st.sampled_from(["e1", "e2"])),
    ),
    max_size=8,
)


@pytest.fixture(scope="module", params=backends())
def shared_store(request: pytest.FixtureRequest) -> Iterator[BankStore]:
    with temporary_store(request.param) as s:
        yield s


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(_OPS, max_size=4))
def test_batches_apply_in_order_and_the_change_log_rebuilds_the_bank(
    shared_store: BankStore, batches: list[list[NewEntry | RemoveValue | RemoveExternalId]]
) -> None:
    store = shared_store
    if any(b.name == "prop" for b in store.list_banks()):
        store.delete_bank("prop")
    start = store.last_seq()
    store.create_bank("prop")
    model: dict[str, tuple[str | None, str | None]] = {}  # value -> (external id, note)
    for batch in batches:
        store.write_batch("prop", batch)
        for op in batch:  # the same operations, one at a time
            if isinstance(op, NewEntry):
                ext, note = model.get(op.value, (None, None))
                model[op.value] = (op.external_id or ext, op.note or note)
            elif isinstance(op, RemoveValue):
                model.pop(op.value, None)
            else:
                model = {v: m for v, m in model.items() if m[0] != op.external_id}
    assert {e.value: (e.external_id, e.note) for e in store.iter_entries("prop")} == model
    follower: dict[int, str] = {}
    for change in store.changes_since(start, limit=100_000):
        if change.op == "remove" and change.entry_id is not None:
            follower.pop(change.entry_id, None)
        elif change.op in ("add", "update") and change.value is not None:
            assert change.entry_id is not None
            follower[change.entry_id] = change.value
    assert sorted(follower.values()) == sorted(model)


def test_written_out_head_revision_is_the_scripts_head() -> None:
    from lightkeeper.banks import _migrate

    assert _migrate.head_revision() == _migrate.HEAD_REVISION


def test_an_import_is_read_back_by_its_id(store: BankStore, bank: str) -> None:
    first = store.start_import(bank, "lines", list_name="l", list_version="1")
    second = store.start_import(bank, "csv", list_name=None, list_version=None)
    store.finish_import(first, "complete", invalid=2)
    run = store.get_import(first)
    assert (run.id, run.bank, run.format, run.status, run.invalid) == (
        first,
        bank,
        "lines",
        "complete",
        2,
    )
    assert store.get_import(second).status == "running"
    with pytest.raises(NotFound):
        store.get_import(second + 1)


def test_get_entries_reads_many_ids_at_once(store: BankStore, bank: str) -> None:
    values = [f"{i:032x}" for i in range(1, 2_501)]  # past one query's thousand ids
    store.add_entries(bank, [NewEntry("md5", v) for v in values])
    by_value = {e.value: e for e in store.iter_entries(bank)}
    ids = [by_value[v].id for v in values]
    store.remove_entry(ids[7])
    wanted = [*ids[::-1], ids[0], 10**12]  # any order, repeats and unknown ids
    found = store.get_entries(wanted)
    assert sorted(found) == sorted(set(ids) - {ids[7]})
    assert found[ids[1]] == store.get_entry(ids[1])
    assert store.get_entries([]) == {}
