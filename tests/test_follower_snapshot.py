"""Index snapshots: a follower starts from one and ends exactly where a load from the store does.

What a service relies on: a snapshot answers every search as the store would; changes made
after it are replayed; a damaged snapshot, or one of another database, is never used (the
store is loaded instead and a good snapshot written); processes starting together end up with
correct indexes and one valid snapshot. Stores run on SQLite and PostgreSQL
(`lightkeeper.banks.testing`); hashes are made up, no image is needed.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from lightkeeper.banks import BankStore
from lightkeeper.banks.testing import backends, temporary_store
from lightkeeper.errors import IndexFileError
from lightkeeper.index import ExactIndex
from lightkeeper.matching import IndexFollower, Matcher
from lightkeeper.matching.snapshot import MANIFEST, SnapshotDir
from lightkeeper.signals import registry

BASE = "f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22"


def flip_bits(value: str, count: int, seed: int) -> str:
    """`value` (hex) with `count` distinct bits flipped: exactly `count` bits away."""
    number = int(value, 16)
    for bit in random.Random(seed).sample(range(len(value) * 4), count):
        number ^= 1 << bit
    return f"{number:0{len(value)}x}"


def values(i: int) -> dict[str, str]:
    """The i-th made-up hash of each signal type (canonical)."""
    return {
        "pdq": flip_bits(BASE, 2 + i % 20, seed=i),
        "md5": f"{i + 1:032x}",
        "sha256": f"{i + 1:064x}",
        "url": registry.get("url").normalize(f"https://example.com/list/{i}"),
    }


ALL_VALUES = [values(i) for i in range(40)]


def add(
    store: BankStore, bank: str, i: int, signal_types: tuple[str, ...] = ("pdq", "md5")
) -> None:
    for signal_type in signal_types:
        store.add_entry(bank, signal_type, ALL_VALUES[i][signal_type], list_name="test")


def entry_id(store: BankStore, bank: str, signal_type: str, value: str) -> int:
    entry = store.find_entry(bank, signal_type, value)
    assert entry is not None
    return entry.id


def held(follower: IndexFollower) -> set[tuple[str, str, int]]:
    """Every (signal type, value, entry id) the follower's indexes hold among ALL_VALUES."""
    found: set[tuple[str, str, int]] = set()
    for hashes in ALL_VALUES:
        for signal_type, value in hashes.items():
            if signal_type == "pdq":
                ids = [i for i, _ in follower.search("pdq", [bytes.fromhex(value)], 0)[0]]
            else:
                ids = follower.lookup(signal_type, value)
            found.update((signal_type, value, entry_id) for entry_id in ids)
    return found


def expected(store: BankStore) -> set[tuple[str, str, int]]:
    """What the indexes must hold: the enabled entries of enabled banks, read from the store."""
    enabled = {bank.name for bank in store.list_banks() if bank.enabled}
    return {
        (e.signal_type, e.value, e.id)
        for e in store.iter_entries()
        if e.enabled and e.bank in enabled
    }


def assert_current(follower: IndexFollower, store: BankStore) -> None:
    """The follower holds exactly what a load from the store gives, at the store's newest seq."""
    assert held(follower) == expected(store)
    assert follower.sizes() == IndexFollower(store).sizes()
    assert follower.last_seq == store.last_seq()


@pytest.fixture(params=backends())
def store(request: pytest.FixtureRequest) -> Iterator[BankStore]:
    with temporary_store(request.param) as store:
        yield store


@pytest.fixture
def snap(tmp_path: Path) -> Path:
    return tmp_path / "snapshots"


def refuse_loading_entries(store: BankStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any read of the whole entry table fail: proves the indexes came from a snapshot."""

    def refuse(*args: object, **kwargs: object) -> Iterator[object]:
        raise AssertionError("the follower loaded entries from the store")

    monkeypatch.setattr(store, "iter_index_rows", refuse)
    monkeypatch.setattr(store, "iter_entries", refuse)


# --------------------------------------------------------------------------- round trip


def test_a_snapshot_answers_every_search_as_a_load_from_the_store(
    store: BankStore, snap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create_bank("a")
    store.create_bank("off", enabled=False)
    store.create_bank("allow", kind="allow", thresholds={"pdq": 40})
    for i in range(12):
        add(store, "a", i, ("pdq", "md5", "sha256", "url"))
    for i in range(12, 16):
        add(store, "off", i)
    add(store, "allow", 16, ("pdq", "sha256"))
    store.disable_entry(entry_id(store, "a", "pdq", ALL_VALUES[3]["pdq"]))

    first = IndexFollower(store, snapshot_dir=snap)
    assert first.status().loaded_from == "store"
    assert first.status().snapshot_seq == store.last_seq()
    assert (snap / MANIFEST).is_file()

    from_store = IndexFollower(store)
    with monkeypatch.context() as patch:
        refuse_loading_entries(store, patch)
        second = IndexFollower(store, snapshot_dir=snap)
    assert second.status().loaded_from == "snapshot"
    assert held(second) == held(from_store) == expected(store)
    assert second.sizes() == from_store.sizes()
    queries = [bytes.fromhex(ALL_VALUES[i]["pdq"]) for i in range(0, 20, 3)] + [bytes.fromhex(BASE)]
    for radius in (0, 8, 31, 256):
        assert second.search("pdq", queries, radius) == from_store.search("pdq", queries, radius)
    assert dict(second.banks) == dict(from_store.banks)


def test_a_matcher_on_a_snapshot_gives_the_same_results(store: BankStore, snap: Path) -> None:
    store.create_bank("a")
    store.create_bank("allow", kind="allow")
    for i in range(8):
        add(store, "a", i, ("pdq", "md5"))
    add(store, "allow", 5, ("pdq",))
    Matcher(store, snapshot_dir=snap)  # writes the snapshot
    on_snapshot = Matcher(store, snapshot_dir=snap)
    assert on_snapshot.follower.status().loaded_from == "snapshot"
    plain = Matcher(store)
    for i in (0, 5, 7, 30):
        query = {"pdq": flip_bits(ALL_VALUES[i]["pdq"], 4, seed=99), "md5": ALL_VALUES[i]["md5"]}
        assert on_snapshot.match_hashes(query) == plain.match_hashes(query)


def test_paired_tables_reach_the_index_however_it_is_loaded(store: BankStore, snap: Path) -> None:
    store.create_bank("a")
    for i in range(10):
        add(store, "a", i, ("pdq", "md5"))
    compact = IndexFollower(store, snapshot_dir=snap)  # writes the snapshot
    from_store = IndexFollower(store, paired_tables=True)
    from_snapshot = IndexFollower(store, snapshot_dir=snap, paired_tables=True)
    assert from_snapshot.status().loaded_from == "snapshot"
    add(store, "a", 10, ("pdq",))  # and entries that arrive by the change log
    queries = [bytes.fromhex(flip_bits(ALL_VALUES[i]["pdq"], 5, seed=i)) for i in range(12)]
    for follower in (compact, from_store, from_snapshot):
        follower.refresh()
        assert follower._hamming["pdq"].paired == (follower is not compact)
        assert follower.search("pdq", queries, 31) == compact.search("pdq", queries, 31)


def test_an_empty_store_snapshots_and_loads(store: BankStore, snap: Path) -> None:
    IndexFollower(store, snapshot_dir=snap)
    follower = IndexFollower(store, snapshot_dir=snap)
    assert follower.status().loaded_from == "snapshot"
    assert follower.sizes() == {}
    store.create_bank("a")
    add(store, "a", 1)
    follower.refresh()
    assert_current(follower, store)


# --------------------------------------------------------------------------- replay


def test_changes_after_the_snapshot_are_replayed(store: BankStore, snap: Path) -> None:
    for name in ("a", "b", "gone"):
        store.create_bank(name)
    store.create_bank("later", enabled=False)
    for i in range(6):
        add(store, "a", i)
        add(store, "b", 6 + i)
        add(store, "gone", 12 + i)
        add(store, "later", 18 + i)
    IndexFollower(store, snapshot_dir=snap)  # the snapshot, then every kind of change:
    add(store, "a", 30, ("pdq", "md5", "url"))
    store.remove_entry(entry_id(store, "a", "pdq", ALL_VALUES[0]["pdq"]))
    store.disable_entry(entry_id(store, "a", "md5", ALL_VALUES[1]["md5"]))
    until = datetime.now(UTC) + timedelta(days=1)
    store.disable_entry(entry_id(store, "a", "pdq", ALL_VALUES[2]["pdq"]), until=until)
    store.update_bank("b", enabled=False)
    store.update_bank("later", enabled=True)
    store.delete_bank("gone")
    store.create_bank("gone")  # same name, new bank
    add(store, "gone", 31)
    store.update_bank("a", thresholds={"pdq": 10}, rename="renamed")

    follower = IndexFollower(store, snapshot_dir=snap)
    assert follower.status().loaded_from == "snapshot"
    assert_current(follower, store)
    assert {bank.name for bank in follower.banks.values()} == {"renamed", "b", "gone", "later"}
    renamed = next(b for b in follower.banks.values() if b.name == "renamed")
    assert renamed.threshold("pdq") == 10


def test_a_snapshot_far_behind_the_log_is_loaded_afresh_and_rewritten(
    snap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightkeeper.matching import follower as follower_module

    monkeypatch.setattr(follower_module, "PAGE_SIZE", 3)
    monkeypatch.setattr(follower_module, "REBUILD_BACKLOG", 5)
    with temporary_store("sqlite") as store:
        store.create_bank("a")
        IndexFollower(store, snapshot_dir=snap, snapshot_every=1)
        for i in range(10):
            add(store, "a", i)
        follower = IndexFollower(store, snapshot_dir=snap, snapshot_every=1)
        assert_current(follower, store)


OPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["add", "remove", "disable", "enable", "pause", "bank_off", "bank_on", "bank_delete"]
        ),
        st.sampled_from(["a", "b"]),
        st.integers(0, 5),
    ),
    max_size=10,
)


def apply(store: BankStore, ops: list[tuple[str, str, int]]) -> None:
    for op, bank, i in ops:
        if op == "bank_delete":
            store.delete_bank(bank)
            store.create_bank(bank, enabled=bank == "a")
            continue
        if op in ("bank_off", "bank_on"):
            store.update_bank(bank, enabled=op == "bank_on")
            continue
        entry = store.find_entry(bank, "pdq", ALL_VALUES[i]["pdq"])
        if op == "add":
            add(store, bank, i)
        elif entry is None:
            continue
        elif op == "remove":
            store.remove_entry(entry.id)
        elif op == "disable":
            store.disable_entry(entry.id)
        elif op == "pause":
            store.disable_entry(entry.id, until=datetime.now(UTC) + timedelta(hours=1))
        elif op == "enable":
            store.enable_entry(entry.id)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=OPS, after=OPS)
def test_snapshot_plus_replay_equals_a_fresh_load(
    before: list[tuple[str, str, int]], after: list[tuple[str, str, int]]
) -> None:
    with temporary_store("sqlite") as store, tempfile.TemporaryDirectory() as snap:
        store.create_bank("a")
        store.create_bank("b", enabled=False)
        writer = IndexFollower(store, snapshot_dir=snap)
        apply(store, before)
        writer.refresh()
        writer.write_snapshot()
        apply(store, after)
        follower = IndexFollower(store, snapshot_dir=snap)
        assert follower.status().loaded_from == "snapshot"
        assert follower.status().snapshot_seq == writer.last_seq
        assert_current(follower, store)


# --------------------------------------------------------------------------- never used


def _index_files(snap: Path) -> dict[str, Path]:
    manifest = json.loads((snap / MANIFEST).read_text())
    folder = snap / manifest["generation"]
    return {item["signal_type"]: folder / item["file"] for item in manifest["indexes"]}


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _rewrite_manifest(snap: Path, **changes: object) -> None:
    """Change manifest fields and re-seal it with a valid checksum (a well-formed lie)."""
    import hashlib

    body = json.loads((snap / MANIFEST).read_text())
    body.pop("checksum")
    body.update(changes)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    body["checksum"] = hashlib.sha256(canonical.encode()).hexdigest()
    (snap / MANIFEST).write_text(json.dumps(body))


def _damage(snap: Path, how: str) -> None:
    files = _index_files(snap)
    manifest = snap / MANIFEST
    if how == "truncated pdq file":
        with files["pdq"].open("r+b") as f:
            f.truncate(files["pdq"].stat().st_size // 2)
    elif how == "flipped bit in a pdq code":
        _flip(files["pdq"], 4096)  # the first section (codes) starts at 4 KiB
    elif how == "flipped bit in the md5 values":
        _flip(files["md5"], files["md5"].stat().st_size - 1)
    elif how == "flipped bit in the manifest's seq":
        text = manifest.read_text()
        seq = json.loads(text)["last_seq"]
        manifest.write_text(text.replace(f'"last_seq": {seq}', f'"last_seq": {seq - 1}'))
    elif how == "manifest not JSON":
        manifest.write_bytes(b"\x00garbage")
    elif how == "missing md5 file":
        files["md5"].unlink()
    elif how == "pdq file of another generation":
        shutil.copy(files["md5"], files["pdq"])
    elif how == "wrong entry count":
        body = json.loads(manifest.read_text())
        body["indexes"][0]["entries"] += 1
        _rewrite_manifest(snap, indexes=body["indexes"])
    elif how == "older format":
        _rewrite_manifest(snap, version=0)
    elif how == "unknown signal kind":
        body = json.loads(manifest.read_text())
        body["indexes"][0]["kind"] = "faiss"
        _rewrite_manifest(snap, indexes=body["indexes"])
    elif how == "path outside the snapshot":
        _rewrite_manifest(snap, generation="..")
    else:
        raise AssertionError(how)


DAMAGE = [
    "truncated pdq file",
    "flipped bit in a pdq code",
    "flipped bit in the md5 values",
    "flipped bit in the manifest's seq",
    "manifest not JSON",
    "missing md5 file",
    "pdq file of another generation",
    "wrong entry count",
    "older format",
    "unknown signal kind",
    "path outside the snapshot",
]


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_snapshot_is_never_used_and_is_rebuilt(
    snap: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    with temporary_store("sqlite") as store:
        store.create_bank("a")
        for i in range(10):
            add(store, "a", i)
        IndexFollower(store, snapshot_dir=snap)
        _damage(snap, how)
        with pytest.raises(IndexFileError):
            SnapshotDir(snap).load()

        follower = IndexFollower(store, snapshot_dir=snap)
        assert follower.status().loaded_from == "store"
        assert "index snapshot not used" in caplog.text
        assert_current(follower, store)
        again = IndexFollower(store, snapshot_dir=snap)  # the snapshot was written anew
        assert again.status().loaded_from == "snapshot"
        assert_current(again, store)


@pytest.mark.parametrize("how", ["other database", "restored backup", "backup behind it"])
def test_a_snapshot_of_another_database_is_not_used(tmp_path: Path, snap: Path, how: str) -> None:
    original = f"sqlite:///{tmp_path / 'banks.db'}"
    with BankStore.open(original) as store:
        store.create_bank("a")
        for i in range(4):
            add(store, "a", i)
    shutil.copy(tmp_path / "banks.db", tmp_path / "backup.db")
    with BankStore.open(original) as store:
        for i in range(4, 8):
            add(store, "a", i)
        IndexFollower(store, snapshot_dir=snap)
        snapshot_seq = store.last_seq()

    if how == "other database":
        other = f"sqlite:///{tmp_path / 'other.db'}"
    else:  # the same database (same instance id) restored from a backup taken earlier
        other = f"sqlite:///{tmp_path / 'backup.db'}"
    with BankStore.open(other) as store:
        if how != "backup behind it":
            if how == "other database":
                store.create_bank("a")
            for i in range(20, 30):  # other entries, past the snapshot's seq
                add(store, "a", i)
            assert store.last_seq() >= snapshot_seq
        follower = IndexFollower(store, snapshot_dir=snap)
        assert follower.status().loaded_from == "store"
        assert_current(follower, store)


@pytest.mark.parametrize("anchor", [None, "7:add:1:7:2000-01-01T00:00:00+00:00"])
def test_a_snapshot_whose_log_fingerprint_does_not_match_is_not_used(
    snap: Path, anchor: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with temporary_store("sqlite") as store:
        store.create_bank("a")
        add(store, "a", 0)
        IndexFollower(store, snapshot_dir=snap)
        _rewrite_manifest(snap, anchor=anchor)
        assert SnapshotDir(snap).load() is not None  # well-formed, but not of this log
        follower = IndexFollower(store, snapshot_dir=snap)
        assert follower.status().loaded_from == "store"
        assert "change log differs" in caplog.text
        assert_current(follower, store)


@pytest.mark.parametrize("backend", backends())
def test_a_cloned_database_that_diverged_is_told_apart(snap: Path, backend: str) -> None:
    """A clone (a copy of the files, CREATE DATABASE … TEMPLATE) keeps the instance id; its
    change log still differs from the original's at the snapshot's seq."""
    with temporary_store(backend) as first, temporary_store(backend) as second:
        with second.engine.begin() as conn:  # make `second` a clone of `first`
            conn.execute(
                text("UPDATE store_meta SET value = :v WHERE key = 'instance_id'"),
                {"v": first.instance_id},
            )
        assert second.instance_id == first.instance_id
        for store, offset in ((first, 0), (second, 10)):
            store.create_bank("a")
            for i in range(5):
                add(store, "a", offset + i)
        IndexFollower(first, snapshot_dir=snap)
        follower = IndexFollower(second, snapshot_dir=snap)
        assert follower.status().loaded_from == "store"
        assert_current(follower, second)


# --------------------------------------------------------------------------- crashes


def test_a_write_that_fails_midway_leaves_the_previous_snapshot(
    snap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with temporary_store("sqlite") as store:
        store.create_bank("a")
        add(store, "a", 0)
        writer = IndexFollower(store, snapshot_dir=snap)
        before = (snap / MANIFEST).read_bytes()
        add(store, "a", 1)
        writer.refresh()

        def crash(self: ExactIndex, path: str | os.PathLike[str]) -> None:
            Path(path).write_bytes(b"half a file")
            raise OSError("disk full")

        monkeypatch.setattr(ExactIndex, "save", crash)
        with pytest.raises(OSError, match="disk full"):
            writer.write_snapshot()
        monkeypatch.undo()
        assert (snap / MANIFEST).read_bytes() == before
        assert len(list(snap.glob("gen-*"))) == 1  # the half-written generation is gone
        follower = IndexFollower(store, snapshot_dir=snap)
        assert follower.status().loaded_from == "snapshot"
        assert_current(follower, store)


def test_leftovers_of_a_killed_writer_are_ignored_then_removed(snap: Path) -> None:
    with temporary_store("sqlite") as store:
        store.create_bank("a")
        add(store, "a", 0)
        IndexFollower(store, snapshot_dir=snap)
        stray = snap / "gen-000000000999-deadbeef"
        stray.mkdir()
        (stray / "00-hamming.idx").write_bytes(b"partial")
        (snap / (MANIFEST + ".tmp")).write_bytes(b'{"format": "lightkeeper-index-snap')
        follower = IndexFollower(store, snapshot_dir=snap)
        assert follower.status().loaded_from == "snapshot"
        follower.write_snapshot()
        assert not stray.exists()
        assert not (snap / (MANIFEST + ".tmp")).exists()
        assert len(list(snap.glob("gen-*"))) == 1


def test_an_unusable_snapshot_directory_does_not_stop_the_follower(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    with temporary_store("sqlite") as store:
        store.create_bank("a")
        add(store, "a", 0)
        follower = IndexFollower(store, snapshot_dir=not_a_directory)
        status = follower.status()
        assert status.loaded_from == "store"
        assert status.errors == 1
        assert status.last_error is not None and "Error" in status.last_error
        assert_current(follower, store)


def test_write_snapshot_needs_a_snapshot_directory() -> None:
    with temporary_store("sqlite") as store, pytest.raises(ValueError, match="snapshot_dir"):
        IndexFollower(store).write_snapshot()


# --------------------------------------------------------------------------- processes

#: What a worker process reports: where it loaded from, its seq, what its indexes hold.
Started = tuple[str, int, list[tuple[str, str, int]]]


def _start_in_child(url: str, snap: str, barrier: Barrier, results: Queue[Started]) -> None:
    """A worker process: wait for the other, then build a follower on the shared snapshot."""
    with BankStore.open(url) as store:
        barrier.wait()
        follower = IndexFollower(store, snapshot_dir=snap)
        results.put((follower.status().loaded_from, follower.last_seq, sorted(held(follower))))


def test_two_processes_starting_at_once_share_one_snapshot(tmp_path: Path, snap: Path) -> None:
    url = f"sqlite:///{tmp_path / 'banks.db'}"
    with BankStore.open(url) as store:
        store.create_bank("a")
        for i in range(20):
            add(store, "a", i, ("pdq", "md5", "sha256"))
        want = (store.last_seq(), sorted(expected(store)))
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    workers = [
        ctx.Process(target=_start_in_child, args=(url, str(snap), barrier, results))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    got = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    results.close()
    results.join_thread()
    assert sorted(loaded_from for loaded_from, _, _ in got) == ["snapshot", "store"]
    assert all((seq, found) == want for _, seq, found in got)
    assert len(list(snap.glob("gen-*"))) == 1
    assert sorted(p.name for p in snap.iterdir() if not p.name.startswith("gen-")) == [
        "lock",
        MANIFEST,
    ]
    with BankStore.open(url) as store:
        follower = IndexFollower(store, snapshot_dir=snap)
        assert follower.status().loaded_from == "snapshot"
        assert_current(follower, store)
