"""Following the change log in the background, as the service's worker processes do.

What a service relies on: an entry added or removed by another process becomes matchable (or
stops matching) without any call to `refresh`; a matcher made with ``refresh_on_call=False``
never queries the change log itself; errors of an unreachable store are counted and shown,
never fatal; `stop` joins the thread; `status` says where the follower stands; and a snapshot
that lags is rewritten in the background by one process only. Stores are SQLite files (a
background thread and the test share them as two processes would).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from lightkeeper.banks import BankStore
from lightkeeper.matching import IndexFollower, Matcher
from lightkeeper.matching.follower import FollowerStatus
from lightkeeper.matching.snapshot import MANIFEST, SnapshotDir

#: Generous: the behaviour is asserted, not the time (a loaded machine may be slow).
DEADLINE_S = 5.0
INTERVAL = 0.02

PDQ = "f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22"
MD5 = "0123456789abcdef0123456789abcdef"

WRITER = """
import sys
from lightkeeper.banks import BankStore
with BankStore.open(sys.argv[1]) as store:
    if sys.argv[2] == "add":
        for signal_type, value in zip(sys.argv[3::2], sys.argv[4::2]):
            store.add_entry("b", signal_type, value, list_name="late")
    else:
        for entry_id in sys.argv[3:]:
            store.remove_entry(int(entry_id))
"""


def in_another_process(url: str, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", WRITER, url, *args], env=env, check=True)


def eventually(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` until it holds; fail after DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {DEADLINE_S} s: {what}")
        time.sleep(0.01)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'banks.db'}"


@pytest.fixture
def store(url: str) -> Iterator[BankStore]:
    with BankStore.open(url) as store:
        store.create_bank("b")
        yield store


class Calls:
    """Counts the change-log queries a store answers."""

    def __init__(self, store: BankStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for name in ("last_seq", "changes_since"):
            monkeypatch.setattr(store, name, self._counting(getattr(store, name)))

    def _counting(self, method: Callable[..., object]) -> Callable[..., object]:
        def counted(*args: object, **kwargs: object) -> object:
            self.count += 1
            return method(*args, **kwargs)

        return counted


def matched_ids(matcher: Matcher) -> set[int]:
    return {m.entry_id for m in matcher.match_hashes({"pdq": PDQ, "md5": MD5}).matches}


# --------------------------------------------------------------------------- following


def test_an_entry_added_or_removed_by_another_process_is_followed_without_refresh_calls(
    url: str, store: BankStore
) -> None:
    matcher = Matcher(store, refresh_on_call=False)
    matcher.follower.follow(interval=INTERVAL)
    try:
        assert matched_ids(matcher) == set()
        in_another_process(url, "add", "pdq", PDQ, "md5", MD5)
        added = {e.id for e in store.iter_entries("b")}
        eventually(lambda: matched_ids(matcher) == added, "the added entries match")
        in_another_process(url, "remove", *map(str, added))
        eventually(lambda: matcher.follower.sizes() == {}, "the removed entries leave the index")
        assert matched_ids(matcher) == set()
    finally:
        matcher.follower.stop()


def test_a_matcher_without_refresh_on_call_queries_no_change_log(
    store: BankStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    quiet = Matcher(store, refresh_on_call=False)
    default = Matcher(store)
    store.add_entry("b", "md5", MD5)
    calls = Calls(store, monkeypatch)
    assert matched_ids(quiet) == set()  # not followed: the new entry is not seen yet
    quiet.match_bytes(b"not an image")
    assert calls.count == 0
    assert len(matched_ids(default)) == 1  # the default refreshes first (the CLI relies on it)
    assert calls.count > 0
    quiet.follower.refresh()
    assert len(matched_ids(quiet)) == 1


def test_stop_joins_the_thread_and_no_refresh_follows(
    store: BankStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    follower = IndexFollower(store)
    calls = Calls(store, monkeypatch)
    follower.follow(interval=INTERVAL)
    follower.follow(interval=INTERVAL)  # already following: still one thread
    assert sum(t.name == "lightkeeper-index-follower" for t in threading.enumerate()) == 1
    assert follower.status().following
    eventually(lambda: calls.count >= 2, "the thread refreshes")
    follower.stop()
    assert not follower.status().following
    assert not any(t.name == "lightkeeper-index-follower" for t in threading.enumerate())
    after = calls.count
    time.sleep(5 * INTERVAL)
    assert calls.count == after
    follower.stop()  # stopping twice is harmless


def test_follow_needs_a_positive_interval(store: BankStore) -> None:
    follower = IndexFollower(store)
    for interval in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="interval"):
            follower.follow(interval=interval)
    assert not follower.status().following


def test_an_unreachable_store_is_counted_and_following_carries_on(
    store: BankStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    follower = IndexFollower(store)
    real_last_seq = store.last_seq
    failures = iter(range(3))

    def flaky() -> int:
        if next(failures, None) is not None:
            raise OperationalError("SELECT max(seq)", {}, Exception("database unreachable"))
        return real_last_seq()

    monkeypatch.setattr(store, "last_seq", flaky)
    follower.follow(interval=INTERVAL)
    try:
        eventually(lambda: follower.status().errors == 3, "three failed refreshes counted")
        store.add_entry("b", "md5", MD5)
        eventually(lambda: follower.lookup("md5", MD5) != [], "following resumes")
        status = follower.status()
        assert status.following
        assert status.last_error is not None
        assert status.last_error.startswith("OperationalError: ")
        assert "database unreachable" in status.last_error
        assert status.last_error_at is not None and status.last_refresh_at is not None
        assert status.last_refresh_at > status.last_error_at
    finally:
        follower.stop()


# --------------------------------------------------------------------------- status


def test_status_says_where_the_follower_stands(
    store: BankStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add_entry("b", "pdq", PDQ)
    before = datetime.now(UTC)
    follower = IndexFollower(store)
    status = follower.status()
    assert status.loaded and status.loaded_from == "store"
    assert status.last_seq == status.store_seq == store.last_seq()
    assert status.lag == 0
    assert status.sizes == {"pdq": 1}
    assert status.last_refresh_at is not None and status.last_refresh_at >= before
    assert status.last_refresh_at.tzinfo is not None
    assert (status.last_error, status.last_error_at, status.errors) == (None, None, 0)
    assert status.snapshot_seq is None
    assert not status.following
    assert status.is_ready(max_age=60)
    assert not status.is_ready(max_age=1, now=status.last_refresh_at + timedelta(seconds=2))

    # The log moved on, but reading it fails: the lag shows, and readiness goes.
    store.add_entry("b", "md5", MD5)

    def unreachable(*args: object, **kwargs: object) -> list[object]:
        raise OperationalError("SELECT changes", {}, Exception("database unreachable"))

    monkeypatch.setattr(store, "changes_since", unreachable)
    follower.follow(interval=INTERVAL)
    try:
        eventually(lambda: follower.status().errors > 0, "the failure is counted")
        status = follower.status()
        assert status.store_seq == store.last_seq() == status.last_seq + 1
        assert status.lag == 1
        assert status.following
        monkeypatch.undo()
        eventually(lambda: follower.status().lag == 0, "the lag is made up")
        status = follower.status()
        assert status.sizes == {"md5": 1, "pdq": 1}
        assert status.is_ready(max_age=60)
    finally:
        follower.stop()


def test_status_taken_while_changes_are_applied_shows_sizes_and_seq_of_one_moment(
    store: BankStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A status read by another thread halfway through a refresh (after the entries reached
    the index, before the refresh noted its sequence number) must not pair the new sizes with
    the old sequence number: a monitor would see an index that holds the entry and still
    lags (CI at a9f7a6f saw exactly that through /v1/index/status)."""
    store.add_entry("b", "pdq", PDQ)
    follower = IndexFollower(store)
    before = follower.status()
    store.add_entry("b", "md5", MD5)
    seen: list[FollowerStatus] = []
    apply_regions = follower._regions.apply

    def apply_and_look(*args: object, **kwargs: object) -> None:
        seen.append(follower.status())  # the md5 entry is in its index by now
        apply_regions(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(follower._regions, "apply", apply_and_look)
    follower.refresh()
    (during,) = seen
    assert follower.sizes() == {"md5": 1, "pdq": 1}
    assert (during.last_seq, during.sizes) == (before.last_seq, {"pdq": 1})
    assert during.lag == 1
    after = follower.status()
    assert (after.last_seq, after.sizes, after.lag) == (store.last_seq(), {"md5": 1, "pdq": 1}, 0)


# --------------------------------------------------------------------------- snapshots


def manifest_seq(snap: Path) -> int:
    return int(json.loads((snap / MANIFEST).read_text())["last_seq"])


def test_a_lagging_snapshot_is_rewritten_in_the_background(
    store: BankStore, tmp_path: Path
) -> None:
    snap = tmp_path / "snapshots"
    follower = IndexFollower(store, snapshot_dir=snap, snapshot_every=3)
    first = follower.status().snapshot_seq
    assert first == manifest_seq(snap) == store.last_seq()
    follower.follow(interval=INTERVAL)
    try:
        for i in range(3):
            store.add_entry("b", "md5", f"{i + 1:032x}")
        target = store.last_seq()
        eventually(lambda: follower.status().snapshot_seq == target, "a new snapshot")
        assert manifest_seq(snap) == target
    finally:
        follower.stop()
    again = IndexFollower(store, snapshot_dir=snap)
    assert again.status().loaded_from == "snapshot"
    assert again.status().snapshot_seq == target
    assert again.sizes() == {"md5": 3}


def test_a_busy_snapshot_lock_skips_the_rewrite_and_following_goes_on(
    store: BankStore, tmp_path: Path
) -> None:
    snap = tmp_path / "snapshots"
    follower = IndexFollower(store, snapshot_dir=snap, snapshot_every=1)
    first = follower.status().snapshot_seq
    with SnapshotDir(snap).lock(wait=True) as held:  # another process is writing one
        assert held
        follower.follow(interval=INTERVAL)
        store.add_entry("b", "md5", MD5)
        eventually(lambda: follower.lookup("md5", MD5) != [], "following goes on")
        refreshed = follower.status().last_refresh_at
        assert refreshed is not None
        eventually(lambda: follower.status().last_refresh_at != refreshed, "another round")
        assert follower.status().snapshot_seq == first == manifest_seq(snap)
    try:
        eventually(lambda: follower.status().snapshot_seq == store.last_seq(), "written now")
        assert manifest_seq(snap) == store.last_seq()
    finally:
        follower.stop()


def test_a_snapshot_written_by_another_process_is_noted_not_written_again(
    store: BankStore, tmp_path: Path
) -> None:
    snap = tmp_path / "snapshots"
    follower = IndexFollower(store, snapshot_dir=snap, snapshot_every=2)
    for i in range(2):
        store.add_entry("b", "md5", f"{i + 1:032x}")
    other = IndexFollower(store, snapshot_dir=snap)  # stands for another worker process
    written = other.write_snapshot()
    follower.follow(interval=INTERVAL)
    try:
        eventually(lambda: follower.status().snapshot_seq == store.last_seq(), "noted")
        eventually(lambda: follower.status().last_seq == store.last_seq(), "caught up")
    finally:
        follower.stop()
    assert [p.name for p in snap.glob("gen-*")] == [written.name]


def test_a_snapshot_that_could_not_be_written_at_start_up_is_written_once_it_can(
    store: BankStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightkeeper.matching import follower as follower_module

    monkeypatch.setattr(follower_module, "SNAPSHOT_RETRY_S", 0.0)
    snap = tmp_path / "snapshots"
    snap.write_text("in the way")  # say, a volume not mounted yet
    follower = IndexFollower(store, snapshot_dir=snap)
    assert follower.status().errors == 1
    assert follower.status().snapshot_seq is None
    follower.follow(interval=INTERVAL)
    try:
        eventually(lambda: follower.status().errors > 1, "the thread tries again")
        snap.unlink()
        eventually(lambda: follower.status().snapshot_seq == store.last_seq(), "written")
    finally:
        follower.stop()
    assert IndexFollower(store, snapshot_dir=snap).status().loaded_from == "snapshot"
