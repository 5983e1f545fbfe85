"""`IndexFollower`: in-memory indexes of the banks, kept current from the store's change log.

Why follow a log instead of rebuilding: a hash added by a curator, an import or another
service process must be matchable everywhere within about a second, and rebuilding the index
of a 13-million-hash list takes minutes (HMA rebuilds and reloads its whole index, 19-76 s on
this machine). Every write to the store appends to its change log in the same transaction,
so a follower that remembers the last sequence number it applied (`last_seq`) only has to
read and apply what came after it.

What is indexed: one index per signal type, `HammingIndex` for Hamming signals (PDQ) and
`ExactIndex` for exact ones (MD5, SHA-1, SHA-256, URL), holding the entries of enabled banks
whose ``enabled`` flag is set, under their entry ids; and beside them the region codes of
images banked with regions on (`RegionIndex`), which follow their entries' changes. An entry
disabled only *until* some time stays indexed: it becomes active again when that time
passes, with no change logged, so the matcher checks `Entry.is_active` on each candidate
instead. The index only proposes candidates; the matcher reads each candidate's entry and
bank before reporting anything.

How changes apply. A change carries the entry's *current* state (see `Change`), and entry
ids are never reused, so applying a change twice, or late, converges on the store's state:

- "add"/"update" of an enabled entry in an indexed bank: (re)insert it; of a disabled one:
  take it out. A change whose entry is gone since carries no value: its "remove" follows.
- "remove": take it out, whatever its bank (a deleted bank logs a removal per entry).
- "bank" (created, renamed, settings changed, enabled, disabled, deleted): reload the banks;
  a bank that became enabled has its entries streamed in, one that became disabled has them
  streamed out. That is the one change that costs as much as the bank is large.

A refresh reads every page of the backlog first and folds it into the last change per entry,
then applies that at once (banks first): a backlog of 100,000 additions is then one insertion
into the index, one merge of its main block, not one per page.

A backlog larger than `REBUILD_BACKLOG` changes (a whole national list imported meanwhile)
is cheaper to load afresh than to replay, and is.

Where the indexes come from at start-up. Without a snapshot directory: from the store, every
entry read (minutes at 13.4 M entries). With one (``snapshot_dir``): from the snapshot there
(`lightkeeper.matching.snapshot`: raw arrays, read with no sort or rebuild), then the log is
replayed from the snapshot's sequence number as a refresh would. A snapshot is used only when
it is intact (checksums), of this format, and of this very store: the same instance id, a log
that reaches the snapshot's sequence number, and at that number the change the snapshot noted
(another database, or this one restored from a backup, differs there). Otherwise the follower
loads from the store and writes a snapshot for the next process. Processes starting together
queue on the snapshot lock, so that one loads from the store and the others load what it wrote.

Staying current without a query per request. The matcher calls `refresh` before each match by
default (one query); a service calls `follow` instead: a daemon thread refreshes every
``interval`` seconds, outlives a store that is briefly unreachable (errors are counted and
shown by `status`, never raised), and rewrites the snapshot once the indexes are
``snapshot_every`` changes past it, unless another process is writing one already. While a
snapshot is written (about 3 s for 13.4 M PDQ entries on the 2-core development machine),
that process's refreshes wait; the other processes, which skip writing, keep following.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from array import array
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import numpy as np

from lightkeeper.banks import Bank, BankStore, Change
from lightkeeper.errors import IndexFileError, LightkeeperError, NotFound
from lightkeeper.index import ExactIndex, HammingIndex
from lightkeeper.index.hamming import CODE_BITS, CODE_BYTES
from lightkeeper.matching.region_index import RegionIndex
from lightkeeper.matching.snapshot import Manifest, Snapshot, SnapshotDir
from lightkeeper.signals import registry
from lightkeeper.signals.exact import HexDigestSignal

#: Changes read from the log per query.
PAGE_SIZE = 10_000
#: A backlog of more changes than this is loaded afresh instead of replayed.
REBUILD_BACKLOG = 200_000
#: Default for `IndexFollower`'s ``snapshot_every``: replaying this many changes at start-up
#: takes about 4 s (SQLite, development machine); writing a snapshot of 13.4 M PDQ entries
#: about 3 s.
SNAPSHOT_EVERY = 100_000
#: Seconds the background thread waits before trying again to write a snapshot that failed
#: (a full disk or a read-only directory would otherwise be retried on every refresh).
SNAPSHOT_RETRY_S = 60.0

LoadedFrom = Literal["snapshot", "store"]

_log = logging.getLogger(__name__)


@cache
def index_kind(signal_type: str) -> str | None:
    """ "hamming", "exact", or None for a signal type no index here can hold.

    `HammingIndex` holds 256-bit codes; a Hamming signal type of another width (none is
    registered today) would need an index of its own, and is not matched.
    """
    try:
        st = registry.get(signal_type)
    except LightkeeperError:
        return None
    if st.comparison == "exact":
        return "exact"
    if st.comparison == "hamming" and st.bits == CODE_BITS:
        return "hamming"
    return None


def hamming_code(value: str) -> bytes:
    """The 32 bytes a canonical 64-hex-digit value is indexed under."""
    code = bytes.fromhex(value)
    if len(code) != CODE_BYTES:
        raise ValueError(f"a {CODE_BITS}-bit code has {CODE_BYTES} bytes, got {len(code)}")
    return code


def exact_key(signal_type: str, value: str) -> bytes:
    """The bytes an exact value is indexed under: the digest itself for hex digests (half the
    memory of its text), the UTF-8 text for anything else (URLs)."""
    if isinstance(registry.get(signal_type), HexDigestSignal):
        return bytes.fromhex(value)
    return value.encode("utf-8")


@dataclass
class _Bulk:
    """Entries gathered for one bulk insertion, in compact arrays (a rebuild may be large)."""

    hamming: dict[str, tuple[array[int], bytearray]] = field(default_factory=dict)
    exact: dict[str, tuple[array[int], list[bytes]]] = field(default_factory=dict)

    def add(self, entry_id: int, signal_type: str, value: str) -> None:
        kind = index_kind(signal_type)
        try:
            if kind == "hamming":
                ids, codes = self.hamming.setdefault(signal_type, (array("q"), bytearray()))
                codes += hamming_code(value)
                ids.append(entry_id)
            elif kind == "exact":
                exact_ids, keys = self.exact.setdefault(signal_type, (array("q"), []))
                keys.append(exact_key(signal_type, value))
                exact_ids.append(entry_id)
        except ValueError:
            pass  # not canonical: the store validates values, so only a damaged row gets here

    def ids(self) -> Iterable[tuple[str, array[int]]]:
        for signal_type, (ids, _) in self.hamming.items():
            yield signal_type, ids
        for signal_type, (ids, _) in self.exact.items():
            yield signal_type, ids


@dataclass
class _Pending:
    """Changes read but not applied yet, folded into the last change per entry.

    A refresh applies everything it read at once, so that a backlog of many pages (an import
    elsewhere, a replay after a snapshot) costs one insertion into each index, one merge of
    its main block, instead of one per page.
    """

    latest: dict[int, Change] = field(default_factory=dict)
    banks_changed: bool = False

    def fold(self, page: list[Change]) -> None:
        for change in page:
            if change.op == "bank":
                self.banks_changed = True
            elif change.entry_id is not None:
                self.latest[change.entry_id] = change


@dataclass(frozen=True, slots=True)
class FollowerStatus:
    """Where a follower stands, for health and readiness checks and metrics.

    A readiness check asks `is_ready`: the indexes are loaded and a refresh succeeded
    recently, so matches reflect the store to within that age.
    """

    #: The indexes are loaded (set once construction finished).
    loaded: bool
    #: Sequence number of the last change applied to the indexes.
    last_seq: int
    #: The newest sequence number in the store at the last refresh.
    store_seq: int
    #: Changes logged but not applied yet, as of the last refresh (``store_seq - last_seq``).
    lag: int
    #: Entries indexed per signal type once the changes up to `last_seq` were applied (never
    #: a count taken halfway through applying a page of changes).
    sizes: dict[str, int]
    #: When the last successful refresh finished (UTC); None before the first.
    last_refresh_at: datetime | None
    #: The newest of those `errors`, as "Type: message"; kept after later successes (compare
    #: `last_error_at` with `last_refresh_at`).
    last_error: str | None
    #: When `last_error` happened (UTC).
    last_error_at: datetime | None
    #: Errors met since the follower was made, by the background thread or while reading or
    #: writing snapshots (neither raises them).
    errors: int
    #: Sequence number of the newest snapshot in the snapshot directory that this follower
    #: knows of (loaded, written, or seen written by another process); None without one.
    snapshot_seq: int | None
    #: Where the indexes were loaded from at start-up.
    loaded_from: LoadedFrom
    #: The background thread (`IndexFollower.follow`) is running.
    following: bool

    def is_ready(self, max_age: float, now: datetime | None = None) -> bool:
        """Loaded, and refreshed successfully within the last `max_age` seconds."""
        if not self.loaded or self.last_refresh_at is None:
            return False
        age = ((now or datetime.now(UTC)) - self.last_refresh_at).total_seconds()
        return age <= max_age


class IndexFollower:
    """Per-signal-type indexes of the enabled entries of enabled banks, following the log.

    Construction loads everything once, from a snapshot when ``snapshot_dir`` holds a usable
    one, else from the store (see the module docstring); `refresh` then applies what changed
    since, and `follow` does so in the background. Searches may run from several threads
    while another refreshes (the indexes allow it); refreshes are serialised.

    ``search_threads`` caps the threads one batched search starts (default: every CPU this
    process may use); a server with many worker processes may want each to start fewer.
    ``paired_tables`` gives the signal types' Hamming indexes paired tables
    (`HammingIndex(paired=True)`): single lookups 3.5 to 5 times and batches up to twice as
    fast at national-list scale, for 1.5x their memory (a service's choice; one-off commands do
    without).
    """

    def __init__(
        self,
        store: BankStore,
        *,
        snapshot_dir: str | os.PathLike[str] | None = None,
        snapshot_every: int = SNAPSHOT_EVERY,
        search_threads: int | None = None,
        paired_tables: bool = False,
    ) -> None:
        if snapshot_every < 1:
            raise ValueError(f"snapshot_every must be at least 1, got {snapshot_every}")
        if search_threads is not None and search_threads < 1:
            raise ValueError(f"search_threads must be at least 1, got {search_threads}")
        self._store = store
        self._search_threads = search_threads
        self._paired = paired_tables
        self._lock = threading.Lock()
        self._banks: dict[int, Bank] = {}
        self._indexed: set[int] = set()
        self._hamming: dict[str, HammingIndex] = {}
        self._exact: dict[str, ExactIndex] = {}
        self._regions = RegionIndex()
        #: The sequence number of the last change applied and the sizes it left, replaced
        #: together (so `status` never pairs one moment's sizes with another's number).
        self._applied: tuple[int, dict[str, int]] = (0, {})
        self._store_seq = 0
        self._last_refresh_at: datetime | None = None
        self._errors = 0
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None
        self._snapshots = (
            None if snapshot_dir is None else SnapshotDir(snapshot_dir, paired=paired_tables)
        )
        self._snapshot_every = snapshot_every
        self._snapshot_seq: int | None = None
        self._snapshot_retry_at = 0.0
        self._loaded_from: LoadedFrom = "store"
        self._loaded = False
        self._thread_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._start()
        self._loaded = True

    # ------------------------------------------------------------------ reading

    @property
    def last_seq(self) -> int:
        """Sequence number of the last change applied."""
        return self._applied[0]

    @property
    def banks(self) -> Mapping[int, Bank]:
        """Every bank in the store, by id, as of the last refresh."""
        return MappingProxyType(self._banks)

    @property
    def snapshot_dir(self) -> Path | None:
        """Where snapshots are loaded from and written to; None when not used."""
        return None if self._snapshots is None else self._snapshots.path

    def sizes(self) -> dict[str, int]:
        """Entries indexed per signal type (for diagnostics and tests)."""
        found = {name: len(index) for name, index in self._hamming.items()}
        found.update({name: len(index) for name, index in self._exact.items()})
        return {name: count for name, count in sorted(found.items()) if count}

    def status(self) -> FollowerStatus:
        """Where the follower stands; never waits for a refresh or a snapshot in progress."""
        (last_seq, sizes), store_seq = self._applied, self._store_seq
        thread = self._thread
        return FollowerStatus(
            loaded=self._loaded,
            last_seq=last_seq,
            store_seq=store_seq,
            lag=max(store_seq - last_seq, 0),
            sizes=sizes,
            last_refresh_at=self._last_refresh_at,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            errors=self._errors,
            snapshot_seq=self._snapshot_seq,
            loaded_from=self._loaded_from,
            following=thread is not None and thread.is_alive(),
        )

    def search(
        self, signal_type: str, codes: Sequence[bytes], radius: int
    ) -> list[list[tuple[int, int]]]:
        """For each code, the (entry id, distance) of indexed entries within `radius`."""
        return self.search_packed(signal_type, b"".join(codes), radius)

    def search_packed(
        self, signal_type: str, packed: bytes, radius: int
    ) -> list[list[tuple[int, int]]]:
        """`search` for codes given end to end in one bytes object (32 bytes each)."""
        count = len(packed) // CODE_BYTES
        index = self._hamming.get(signal_type)
        if index is None or not packed:
            return [[] for _ in range(count)]
        queries = np.frombuffer(packed, dtype=np.uint8).reshape(-1, CODE_BYTES)
        return index.search(queries, radius, workers=self._search_threads)

    def search_regions(
        self, codes: Sequence[bytes], radius: int
    ) -> list[list[tuple[int, str, int]]]:
        """For each PDQ code, the (entry id, region name, distance) of the region codes of
        banked images within `radius` (banks with regions on; see `RegionIndex`)."""
        return self._regions.search(codes, radius, workers=self._search_threads)

    def region_codes(self) -> int:
        """How many region codes are indexed (for diagnostics and tests)."""
        return len(self._regions)

    def lookup(self, signal_type: str, value: str) -> list[int]:
        """Ids of indexed entries holding exactly `value` (canonical)."""
        index = self._exact.get(signal_type)
        if index is None:
            return []
        return index.lookup([exact_key(signal_type, value)])[0]

    # ------------------------------------------------------------------ following

    def refresh(self) -> int:
        """Apply the changes logged since `last_seq`; returns how many were read.

        Cheap when nothing changed: one query for the newest sequence number (an index
        lookup, well under a millisecond on SQLite).
        """
        with self._lock:
            newest = self._store_seq = self._store.last_seq()
            read = 0
            pending = _Pending()
            seq = self.last_seq
            while seq != newest:
                page = self._store.changes_since(seq, limit=PAGE_SIZE)
                if (
                    len(page) == PAGE_SIZE
                    and self._store.last_seq() - page[0].seq > REBUILD_BACKLOG
                ):
                    self._load()  # what was read so far is part of the fresh load
                    pending, seq = _Pending(), self.last_seq
                    read += len(page)
                    continue
                pending.fold(page)
                read += len(page)
                if page:
                    seq = page[-1].seq
                if len(page) < PAGE_SIZE:
                    break
                if len(pending.latest) >= REBUILD_BACKLOG:  # a log that keeps growing
                    self._apply(pending, seq)
                    pending = _Pending()
            self._apply(pending, seq)
            self._store_seq = max(self._store_seq, self.last_seq)
            self._last_refresh_at = datetime.now(UTC)
            return read

    def follow(self, interval: float = 0.2) -> None:
        """Refresh every `interval` seconds in a daemon thread until `stop`.

        Errors (a store briefly unreachable, a full disk when writing a snapshot) are logged,
        counted and shown by `status`; the thread carries on. With a snapshot directory, the
        thread also rewrites the snapshot once the indexes are ``snapshot_every`` changes past
        it. Calling this while already following changes nothing.
        """
        if not interval > 0:
            raise ValueError(f"interval must be a positive number of seconds, got {interval}")
        with self._thread_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = stopping = threading.Event()
            self._thread = threading.Thread(
                target=self._follow,
                args=(interval, stopping),
                name="lightkeeper-index-follower",
                daemon=True,
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop following and wait for the thread to finish what it is doing."""
        with self._thread_lock:
            thread, self._thread = self._thread, None
            self._stopping.set()
        if thread is not None:
            thread.join()

    def _follow(self, interval: float, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                self.refresh()
            except Exception as exc:  # the store may be briefly unreachable: try again later
                self._failed("refresh", exc)
            else:
                self._maybe_rewrite_snapshot()
            stopping.wait(interval)

    def _failed(self, what: str, exc: Exception) -> None:
        self._errors += 1
        self._last_error = f"{type(exc).__name__}: {exc}"
        self._last_error_at = datetime.now(UTC)
        _log.warning("index follower: %s failed: %s", what, self._last_error)

    # ------------------------------------------------------------------ snapshots

    def write_snapshot(self) -> Path:
        """Write a snapshot of the indexes as they are now; returns its generation directory.

        Waits for another process writing one to finish first. Refreshes wait meanwhile.
        """
        if self._snapshots is None:
            raise ValueError("this follower has no snapshot_dir to write a snapshot to")
        with self._snapshots.lock(wait=True):
            return self._write_snapshot(self._snapshots)

    def _write_snapshot(self, snapshots: SnapshotDir) -> Path:
        """Write one now; the caller holds the snapshot lock."""
        with self._lock:
            manifest = snapshots.write(
                last_seq=self.last_seq,
                instance_id=self._instance_id(),
                anchor=self._anchor(self.last_seq),
                indexed_banks=frozenset(self._indexed),
                hamming=self._hamming,
                exact=self._exact,
                regions={"pdq": self._regions.index},
                region_banks=self._regions.banks,
            )
        self._snapshot_seq = manifest.last_seq
        _log.info("index snapshot written at seq %d to %s", manifest.last_seq, snapshots.path)
        return snapshots.path / manifest.generation

    def _snapshot_due(self) -> bool:
        if self._snapshot_seq is None:  # none could be written at start-up: try again
            return True
        return self.last_seq - self._snapshot_seq >= self._snapshot_every

    def _maybe_rewrite_snapshot(self) -> None:
        """From the background thread: rewrite the snapshot if it lags too far behind, unless
        another process wrote a recent one or is writing one now."""
        snapshots = self._snapshots
        if snapshots is None or not self._snapshot_due():
            return
        if time.monotonic() < self._snapshot_retry_at:
            return
        try:
            self._note_snapshot_on_disk(snapshots)
            if not self._snapshot_due():
                return
            with snapshots.lock(wait=False) as acquired:
                if not acquired:
                    return  # another process is writing one; noted at the next refresh
                self._note_snapshot_on_disk(snapshots)  # it may have finished just before
                if self._snapshot_due():
                    self._write_snapshot(snapshots)
        except Exception as exc:  # a full disk or a read-only directory must not stop following
            self._snapshot_retry_at = time.monotonic() + SNAPSHOT_RETRY_S
            self._failed("writing a snapshot", exc)

    def _note_snapshot_on_disk(self, snapshots: SnapshotDir) -> None:
        """Take note of a newer snapshot of this store written by another process."""
        try:
            manifest = snapshots.read_manifest()
        except IndexFileError:
            return  # damaged: the next write replaces it
        if manifest is None or manifest.instance_id != self._instance_id():
            return
        if self._snapshot_seq is None or manifest.last_seq > self._snapshot_seq:
            self._snapshot_seq = manifest.last_seq

    # ------------------------------------------------------------------ start-up

    def _start(self) -> None:
        """Load the indexes (from a snapshot if one is usable) and catch up with the log."""
        snapshots = self._snapshots
        if snapshots is None or not self._start_from_snapshot(snapshots):
            with self._lock:
                self._load()
        self.refresh()

    def _start_from_snapshot(self, snapshots: SnapshotDir) -> bool:
        """Load the snapshot, or load from the store and write one; False when the snapshot
        directory cannot be used at all (the caller then loads from the store)."""
        if self._use_snapshot(snapshots):
            return True
        with ExitStack() as held:
            try:
                held.enter_context(snapshots.lock(wait=True))
            except OSError as exc:  # the directory cannot be created or locked
                self._failed("locking the snapshot directory", exc)
                return False
            # Another process may have written one while this one waited for the lock.
            if self._use_snapshot(snapshots):
                return True
            with self._lock:
                self._load()
            self.refresh()
            try:
                self._write_snapshot(snapshots)
            except (OSError, IndexFileError) as exc:
                self._failed("writing a snapshot", exc)
        return True

    def _use_snapshot(self, snapshots: SnapshotDir) -> bool:
        """Load the snapshot if there is one and it belongs to this store's current log."""
        try:
            snapshot = snapshots.load()
        except IndexFileError as exc:
            _log.warning("index snapshot not used, loading from the store: %s", exc)
            return False
        if snapshot is None:
            return False
        reason = self._unusable(snapshot)
        if reason is not None:
            _log.warning(
                "index snapshot in %s not used, loading from the store: %s", snapshots.path, reason
            )
            return False
        banks = {bank.id: bank for bank in self._store.list_banks()}
        with self._lock:
            self._banks, self._indexed = banks, set(snapshot.manifest.indexed_banks)
            self._hamming, self._exact = snapshot.hamming, snapshot.exact
            self._regions = RegionIndex(snapshot.regions.get("pdq"), snapshot.manifest.region_banks)
            self._applied_up_to(snapshot.manifest.last_seq)
        self._snapshot_seq = snapshot.manifest.last_seq
        self._loaded_from = "snapshot"
        return True

    def _unusable(self, snapshot: Snapshot) -> str | None:
        """Why a snapshot cannot stand for this store's state at its sequence number, if so."""
        manifest: Manifest = snapshot.manifest
        if manifest.instance_id != self._instance_id():
            return f"written for another database (instance {manifest.instance_id})"
        if manifest.last_seq > self._store.last_seq():
            return f"taken at seq {manifest.last_seq}, past the end of this store's change log"
        if manifest.last_seq and (
            manifest.anchor is None or manifest.anchor != self._anchor(manifest.last_seq)
        ):
            return f"this store's change log differs at seq {manifest.last_seq}"
        for signal_type in snapshot.hamming:
            if index_kind(signal_type) != "hamming":
                return f"{signal_type!r} is no longer matched by Hamming distance here"
        for signal_type in snapshot.exact:
            if index_kind(signal_type) != "exact":
                return f"{signal_type!r} is no longer matched exactly here"
        if set(snapshot.regions) - {"pdq"}:
            return "region codes of a signal type other than pdq"
        return None

    def _instance_id(self) -> str | None:
        # BankStore.instance_id arrives with the store's second migration; until then None.
        value = getattr(self._store, "instance_id", None)
        return None if value is None else str(value)

    def _anchor(self, seq: int) -> str | None:
        """A fingerprint of the change at `seq`: what tells this store's log from another's."""
        if seq == 0:
            return None
        page = self._store.changes_since(seq - 1, limit=1)
        if not page or page[0].seq != seq:
            return None
        change = page[0]
        return (
            f"{change.seq}:{change.op}:{change.bank_id}:{change.entry_id}:"
            f"{change.changed_at.isoformat()}"
        )

    def _load(self) -> None:
        """Load every indexed entry afresh, then note where the log stood."""
        seq = self._store.last_seq()  # before reading: changes racing the load are replayed
        banks = {bank.id: bank for bank in self._store.list_banks()}
        indexed = {bank_id for bank_id, bank in banks.items() if bank.enabled}
        bulk = _Bulk()
        if indexed:
            for row in self._store.iter_index_rows():
                if row.bank_id in indexed and row.enabled:
                    bulk.add(row.id, row.signal_type, row.value)
        hamming: dict[str, HammingIndex] = {}
        for signal_type, (ids, codes) in bulk.hamming.items():
            hamming[signal_type] = index = HammingIndex(paired=self._paired)
            index.add(_id_array(ids), np.frombuffer(codes, dtype=np.uint8).reshape(-1, CODE_BYTES))
        exact: dict[str, ExactIndex] = {}
        for signal_type, (exact_ids, keys) in bulk.exact.items():
            exact[signal_type] = exact_index = ExactIndex()
            exact_index.add(_id_array(exact_ids), keys)
        regions = RegionIndex.load(self._store, banks)
        self._banks, self._indexed = banks, indexed
        self._hamming, self._exact = hamming, exact
        self._regions = regions
        self._applied_up_to(seq)

    def _apply(self, pending: _Pending, seq: int) -> None:
        """Apply folded changes, then note `seq` as applied.

        Bank changes first: the banks are reloaded as they are now, so each entry's last
        change is then judged against the banks' current state, as a fresh load would.
        """
        regions_before = self._regions.banks
        if pending.banks_changed:
            self._sync_banks()
        removed: dict[str, array[int]] = {}
        bulk = _Bulk()
        for entry_id, change in pending.latest.items():
            if change.signal_type is None:
                continue
            if change.op == "remove" or not change.enabled:
                removed.setdefault(change.signal_type, array("q")).append(entry_id)
            elif change.bank_id in self._indexed and change.value is not None:
                bulk.add(entry_id, change.signal_type, change.value)
        for signal_type, ids in removed.items():
            self._remove(signal_type, ids)
        self._insert(bulk)
        self._regions.apply(self._store, pending.latest.values(), regions_before)
        self._applied_up_to(seq)

    def _applied_up_to(self, seq: int) -> None:
        """Note the changes up to `seq` as applied, with the sizes they left."""
        self._applied = (seq, self.sizes())

    def _sync_banks(self) -> None:
        """Reload the banks; stream in or out the entries of banks enabled or disabled."""
        banks = {bank.id: bank for bank in self._store.list_banks()}
        indexed: set[int] = set()
        for bank_id in self._indexed:
            bank = banks.get(bank_id)
            if bank is None:
                continue  # deleted: its entries leave through the removals logged with it
            if bank.enabled:
                indexed.add(bank_id)
                continue
            try:
                bulk = self._gather(bank, only_enabled=False)
            except NotFound:  # renamed or deleted meanwhile: retried at that change
                indexed.add(bank_id)
                continue
            for signal_type, ids in bulk.ids():
                self._remove(signal_type, ids)
        for bank_id, bank in banks.items():
            if bank.enabled and bank_id not in self._indexed:
                try:
                    bulk = self._gather(bank, only_enabled=True)
                except NotFound:
                    continue  # retried at its next change
                self._insert(bulk)
                indexed.add(bank_id)
        self._regions.sync(self._store, banks)
        self._banks, self._indexed = banks, indexed

    def _gather(self, bank: Bank, *, only_enabled: bool) -> _Bulk:
        bulk = _Bulk()
        for entry in self._store.iter_entries(bank.name):
            if entry.enabled or not only_enabled:
                bulk.add(entry.id, entry.signal_type, entry.value)
        return bulk

    def _remove(self, signal_type: str, ids: Iterable[int]) -> None:
        kind = index_kind(signal_type)
        index: HammingIndex | ExactIndex | None = (
            self._hamming.get(signal_type) if kind == "hamming" else self._exact.get(signal_type)
        )
        if index is not None:
            index.remove(_id_array(array("q", ids)))

    def _insert(self, bulk: _Bulk) -> None:
        for signal_type, (ids, codes) in bulk.hamming.items():
            index = self._hamming.setdefault(signal_type, HammingIndex(paired=self._paired))
            index.add(_id_array(ids), np.frombuffer(codes, dtype=np.uint8).reshape(-1, CODE_BYTES))
        for signal_type, (exact_ids, keys) in bulk.exact.items():
            self._exact.setdefault(signal_type, ExactIndex()).add(_id_array(exact_ids), keys)


def _id_array(ids: array[int]) -> np.ndarray[tuple[int], np.dtype[np.int64]]:
    return np.frombuffer(ids, dtype=np.int64) if len(ids) else np.empty(0, dtype=np.int64)
