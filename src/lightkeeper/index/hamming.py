"""`HammingIndex`: exact radius search over 256-bit codes (PDQ), at national-list scale.

Why this shape. A bank of 13.4 M PDQ hashes must answer "which entries lie within 31 bits of
this upload?" in about a millisecond, miss nothing, and fit in memory beside everything else.
Brute force reads 429 MB per query (~20 ms at best); approximate indexes miss matches, which
here would mean missed abuse imagery. Multi-index hashing is exact and fast: see `_hamming.c`
for the algorithm; this module owns the arrays, the update policy and the file format.

Layout and updates:

- **main**: an immutable block sorted by id (`ids`, `codes`) with the multi-index tables, plus an
  `alive` flag per row (a removal clears it: a tombstone).
- **delta**: a small append-only block scanned linearly, where new entries land; an entry added
  is found by the very next query.
- When the delta fills up, or tombstones pass a quarter of main, everything alive is merged
  into a new main (sorted merge by id, O(N) table build) and swapped in at once.

Identity: an id names one code. Adding an id again replaces its code (within one `add` call the
last occurrence wins). Removing an unknown id is not an error; `remove` returns how many it
removed.

Memory per entry: 32 (code) + 8 (id) + 1 (alive) + 8 x 6 (tables) = 89 bytes, about 2.8x the raw
code; a 13.4 M list takes ~1.19 GB. While the delta is merged, the old and the new main coexist
(about twice that, briefly). Indexes below `_TABLE_MIN_ROWS` entries keep no tables: a linear
scan of them is as fast.

Paired tables (`HammingIndex(paired=True)`): 8 x 6 more bytes per entry (137 in all, 4.3x the
raw code, ~1.84 GB for 13.4 M) make queries several times faster at national-list scale: each
chunk is also indexed by its low half, so a radius-31 query scans 2 x 17 buckets per chunk
instead of visiting 697 at random (see "Paired tables" in `_hamming.c`). At 13.4 M, in one run
of bench/index_bench.py: single queries p50 0.085 ms against 0.38 ms (uniform codes; 0.11
against 0.59 clustered), batches of 10,000 120,000 queries/s against 60,000 (clustered, where
most time goes to the many matches: 13,800 against 12,700). They are built in memory when the
index is built, merged or loaded, never stored in its file.

Batches: a batch of `_BATCH_MIN_QUERIES` queries or more (a service's bulk lookup, a scan)
goes through the batched algorithm of the compiled core, which walks the tables once, in address
order, for the whole batch: every query's visits to a region of the tables happen together while
that region is in cache, on worker threads of the core's own. Same answers, a fraction of the
memory traffic: 60,000 queries/s at radius 31 over 13.4 M codes in batches of 10,000 on two
cores (120,000 with paired tables), against 2,600 one query after another (bench/index_bench.py).
Single queries keep the latency-tuned path.

Concurrency: searches may run from any number of threads (the compiled core releases the GIL);
each search sees one consistent snapshot. Mutations are serialised by a lock. A search racing a
replacement of an id may briefly see both the old and the new code; it never misses both.

Files: see `_snapshot` (a versioned header, then the raw arrays with an XXH64 checksum each).
The tables are stored too, so loading reads the arrays as they are, with no sort or rebuild, or
memory-maps them (`mmap=True`) so that processes share one copy in the page cache.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from math import comb
from pathlib import Path
from typing import Any, Final, TypeVar

import numpy as np
from numpy.typing import NDArray

from lightkeeper.cpus import available_cpus
from lightkeeper.errors import IndexFileError
from lightkeeper.index import _hamming, _memory, _snapshot
from lightkeeper.index._validate import CODE_BITS, CODE_BYTES, as_codes, as_ids, as_radius

__all__ = ["CODE_BITS", "CODE_BYTES", "HammingIndex", "chunk_thresholds"]

Matches = list[list[tuple[int, int]]]

_NCHUNKS: Final = _hamming.NCHUNKS
_DIR_LEN: Final = _hamming.DIR_LEN
_LOW_PAD: Final = _hamming.LOW_PAD
_NBUCKETS: Final = _DIR_LEN - 1

# Below this many rows the tables cost more than they save (a linear scan of 64 K codes is
# ~2 MB, about as long as visiting the ~5,600 buckets of a radius-31 query).
_TABLE_MIN_ROWS: Final = 1 << 16
# Delta capacity: large enough that merges (O(N)) are rare, small enough that scanning it
# linearly adds little to a query (32 K codes = 1 MB).
_DELTA_MIN_CAP: Final = 4096
_DELTA_MAX_CAP: Final = 32768
# Batches at least this large are split over threads by default.
_PARALLEL_MIN_QUERIES: Final = 64
# Batches at least this large go through the batched algorithm of the compiled core (see its
# "Batched search" section): it visits the buckets in address order for the whole batch, which
# beats one query after another from here on (bench/index_bench.py, 1 M and 13.4 M codes).
# Tests lower it to run the batched path on small indexes.
_BATCH_MIN_QUERIES: Final = 32

# Cost model (nanoseconds, measured on the development machine with bench/index_bench.py) that
# picks the table search or a linear scan for a given size and radius. Only speed depends on it:
# both paths are exact.
_NS_PER_BUCKET: Final = 45.0
_NS_PER_ENTRY: Final = 0.25
_NS_PER_CANDIDATE: Final = 80.0
_NS_PER_CODE: Final = 4.0

_T = TypeVar("_T")


def chunk_thresholds(radius: int) -> tuple[int, ...]:
    """Per-chunk thresholds t_c for a radius: sum(t_c + 1) = radius + 1, spread evenly.

    Pigeonhole: if every chunk differed in at least t_c + 1 bits, the codes would differ in at
    least radius + 1 bits. So every code within `radius` has some chunk c within t_c bits, and
    searching each chunk with its own t_c finds it. A threshold of -1 means "skip this chunk"
    (radius 0 needs only one chunk to agree exactly, and so on).
    """
    base, extra = divmod(radius + 1, _NCHUNKS)
    return tuple(base - 1 + (1 if c < extra else 0) for c in range(_NCHUNKS))


def _within(bits: int, t: int) -> int:
    """How many values of `bits` bits lie within Hamming distance t of a given one."""
    return sum(comb(bits, k) for k in range(min(t, bits) + 1))


# Buckets visited per chunk (high 16 bits within t) and chance that a random 32-bit chunk lies
# within t, for every threshold the core accepts.
_BUCKETS: Final = tuple(_within(16, t) for t in range(_hamming.MAX_THRESHOLD + 1))
_CHUNK_HIT: Final = tuple(_within(32, t) / 2**32 for t in range(_hamming.MAX_THRESHOLD + 1))


def _table_cost(n: int, thresholds: tuple[int, ...]) -> float:
    per_bucket = n / _NBUCKETS
    cost = 0.0
    for t in thresholds:
        if t >= 0:
            cost += _BUCKETS[t] * (_NS_PER_BUCKET + per_bucket * _NS_PER_ENTRY)
            cost += n * _CHUNK_HIT[t] * _NS_PER_CANDIDATE
    return cost


@lru_cache(maxsize=4096)
def _use_tables(n: int, radius: int) -> tuple[int, ...] | None:
    """The thresholds for a table search, or None where a linear scan is expected to be faster."""
    thresholds = chunk_thresholds(radius)
    if max(thresholds) > _hamming.MAX_THRESHOLD:
        return None
    return thresholds if _table_cost(n, thresholds) < n * _NS_PER_CODE else None


# ---------------------------------------------------------------------------------------------
# Input validation


def _last_wins(
    ids: NDArray[np.int64], codes: NDArray[np.uint8]
) -> tuple[NDArray[np.int64], NDArray[np.uint8]]:
    """Sorted unique ids with their codes (fresh arrays); a repeated id keeps its last code."""
    if len(ids) < 2 or bool(np.all(ids[1:] > ids[:-1])):
        return ids.copy(), codes.copy()
    order = np.argsort(ids)
    ordered = ids[order]
    if not bool(np.any(ordered[1:] == ordered[:-1])):
        return ordered, codes[order]
    # Repeated ids (rare): a stable pass over the reversed input finds each id's last row.
    unique, first_in_reversed = np.unique(ids[::-1], return_index=True)
    return unique, codes[len(ids) - 1 - first_in_reversed]


def _positions(sorted_ids: NDArray[np.int64], wanted: NDArray[np.int64]) -> NDArray[np.intp]:
    """Rows of `sorted_ids` holding any of `wanted`."""
    if len(sorted_ids) == 0 or len(wanted) == 0:
        return np.empty(0, dtype=np.intp)
    pos: NDArray[np.intp] = np.minimum(np.searchsorted(sorted_ids, wanted), len(sorted_ids) - 1)
    found: NDArray[np.intp] = pos[sorted_ids[pos] == wanted]
    return found


def _merge_sorted(
    a_ids: NDArray[np.int64],
    a_codes: NDArray[np.uint8],
    b_ids: NDArray[np.int64],
    b_codes: NDArray[np.uint8],
) -> tuple[NDArray[np.int64], NDArray[np.uint8]]:
    """Merge two blocks sorted by (disjoint) ids; an empty side returns the other unchanged."""
    if len(b_ids) == 0:
        return a_ids, a_codes
    if len(a_ids) == 0:
        return b_ids, b_codes
    if len(a_ids) < len(b_ids):
        a_ids, a_codes, b_ids, b_codes = b_ids, b_codes, a_ids, a_codes
    at = np.searchsorted(a_ids, b_ids)
    return np.insert(a_ids, at, b_ids), np.insert(a_codes, at, b_codes, axis=0)


def _parallel_map(fn: Callable[[int], _T], items: range, workers: int) -> list[_T]:
    if workers <= 1 or len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


# ---------------------------------------------------------------------------------------------
# Storage blocks


@dataclass(frozen=True, slots=True)
class _Tables:
    dirs: NDArray[np.uint32]  # (chunks, 65537): bucket offsets by the high 16 bits of a chunk
    lows: NDArray[np.uint16]  # (chunks * n + pad,): low 16 bits of each posting
    slots: NDArray[np.uint32]  # (chunks, n): row of each posting

    @classmethod
    def build(cls, codes: NDArray[np.uint8], *, paired: bool = False) -> _Tables:
        """The tables of `codes` (with `paired`: keyed by each chunk's low half instead)."""
        n = len(codes)
        dirs = np.empty((_NCHUNKS, _DIR_LEN), dtype=np.uint32)
        lows = _memory.empty(_NCHUNKS * n + _LOW_PAD, np.uint16)
        lows[_NCHUNKS * n :] = 0
        slots = _memory.empty((_NCHUNKS, n), np.uint32)

        workers = min(available_cpus(), _NCHUNKS)

        def some(w: int) -> None:
            _hamming.build_tables(codes, n, dirs, lows, slots, range(w, _NCHUNKS, workers), paired)

        _parallel_map(some, range(workers), workers)
        return cls(dirs, lows, slots)


@dataclass(frozen=True, slots=True)
class _Main:
    """The immutable bulk of the index: rows sorted by id, tables over them, tombstone flags."""

    ids: NDArray[np.int64]
    codes: NDArray[np.uint8]
    alive: NDArray[np.uint8]
    tables: _Tables | None
    paired: _Tables | None = None  # only beside `tables`

    @classmethod
    def build(cls, ids: NDArray[np.int64], codes: NDArray[np.uint8], *, paired: bool) -> _Main:
        if len(ids) >= _TABLE_MIN_ROWS:  # the rows queries read at random: into huge pages
            ids, codes = _memory.huge_copy(ids), _memory.huge_copy(codes)
        main = cls(ids, codes, np.ones(len(ids), dtype=np.uint8), None)
        if len(ids) >= _TABLE_MIN_ROWS:
            main = replace(main, tables=_Tables.build(codes))
        return main.with_paired(paired)

    def with_paired(self, paired: bool) -> _Main:
        """This block, with paired tables built now if `paired` asks for them (a block without
        tables gets none)."""
        if paired and self.tables is not None and self.paired is None:
            return replace(self, paired=_Tables.build(self.codes, paired=True))
        return self

    def segment(self) -> _hamming.Segment:
        t, p = self.tables, self.paired
        if t is None:
            return (self.codes, self.ids, self.alive, len(self.ids), None, None, None)
        if p is None:
            return (self.codes, self.ids, self.alive, len(self.ids), t.dirs, t.lows, t.slots)
        return (
            self.codes,
            self.ids,
            self.alive,
            len(self.ids),
            t.dirs,
            t.lows,
            t.slots,
            p.dirs,
            p.lows,
            p.slots,
        )


class _Delta:
    """Recent additions, scanned linearly. Rows are only appended (readers see `count` rows)."""

    __slots__ = ("alive", "capacity", "codes", "count", "ids", "row_of")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.codes = np.zeros((capacity, CODE_BYTES), dtype=np.uint8)
        self.ids = np.zeros(capacity, dtype=np.int64)
        self.alive = np.zeros(capacity, dtype=np.uint8)
        self.count = 0
        self.row_of: dict[int, int] = {}

    def segment(self, count: int) -> _hamming.Segment:
        return (self.codes, self.ids, self.alive, count, None, None, None)

    def live(self) -> tuple[NDArray[np.int64], NDArray[np.uint8]]:
        keep = self.alive[: self.count].astype(bool)
        return self.ids[: self.count][keep], self.codes[: self.count][keep]


def _delta_capacity(main_rows: int) -> int:
    return min(max(main_rows >> 10, _DELTA_MIN_CAP), _DELTA_MAX_CAP)


# ---------------------------------------------------------------------------------------------
# The index


class HammingIndex:
    """Exact radius search over 256-bit codes under int64 ids.

    >>> idx = HammingIndex()
    >>> idx.add(ids, codes)                 # ids: int64 (n,), codes: uint8 (n, 32)
    >>> idx.search(queries, 31)             # [[(id, distance), ...] per query]

    Results list every live entry within the radius exactly once, sorted by (distance, id).
    `paired=True` keeps paired tables too (see the module docstring): 1.5x the memory, single
    queries 3.5 to 5 times and batches up to twice as fast on large indexes, the same answers.
    """

    def __init__(self, *, paired: bool = False) -> None:
        self._paired = paired
        self._lock = threading.Lock()
        empty_ids = np.empty(0, dtype=np.int64)
        empty_codes = np.empty((0, CODE_BYTES), dtype=np.uint8)
        # Readers take this pair in one attribute read, so they always see a consistent snapshot.
        self._state: tuple[_Main, _Delta] = (
            _Main.build(empty_ids, empty_codes, paired=paired),
            _Delta(_delta_capacity(0)),
        )
        self._main_dead = 0
        self._size = 0

    def __len__(self) -> int:
        """Number of live entries."""
        return self._size

    @property
    def paired(self) -> bool:
        """Whether this index keeps paired tables (see the module docstring)."""
        return self._paired

    def __repr__(self) -> str:
        main, delta = self._state
        return (
            f"<HammingIndex {self._size} entries: {len(main.ids)} in main"
            f" ({self._main_dead} removed), {delta.count} in delta>"
        )

    # -- updates ---------------------------------------------------------------------------

    def add(self, ids: object, codes: object) -> None:
        """Add entries; an id already present gets the new code. Matchable on return."""
        id_arr = as_ids(ids)
        code_arr = as_codes(codes, "codes")
        if len(id_arr) != len(code_arr):
            raise ValueError(f"got {len(id_arr)} ids but {len(code_arr)} codes")
        if len(id_arr) == 0:
            return
        new_ids, new_codes = _last_wins(id_arr, code_arr)
        with self._lock:
            delta = self._state[1]
            if delta.count + len(new_ids) > delta.capacity:
                self._merge(new_ids, new_codes)
            else:
                self._append(new_ids, new_codes)

    def remove(self, ids: object) -> int:
        """Remove entries by id; unknown ids are ignored. Returns how many were removed."""
        wanted = np.unique(as_ids(ids))
        with self._lock:
            main, delta = self._state
            rows = _positions(main.ids, wanted)
            rows = rows[main.alive[rows] != 0]
            main.alive[rows] = 0
            self._main_dead += len(rows)
            removed = len(rows)
            if delta.row_of:
                for key in wanted.tolist():
                    row = delta.row_of.pop(key, None)
                    if row is not None:
                        delta.alive[row] = 0
                        removed += 1
            self._size -= removed
            if self._main_dead > max(_TABLE_MIN_ROWS, len(main.ids) // 4):
                self._merge()
            return removed

    def compact(self) -> None:
        """Fold the delta and drop tombstones now (also done automatically when needed)."""
        with self._lock:
            if self._state[1].count or self._main_dead:
                self._merge()

    def _append(self, ids: NDArray[np.int64], codes: NDArray[np.uint8]) -> None:
        main, delta = self._state
        replaced_main = _positions(main.ids, ids)
        replaced_main = replaced_main[main.alive[replaced_main] != 0]
        keys = ids.tolist()
        replaced_delta = [r for r in map(delta.row_of.get, keys) if r is not None]
        start, stop = delta.count, delta.count + len(ids)
        delta.codes[start:stop] = codes
        delta.ids[start:stop] = ids
        delta.alive[start:stop] = 1
        delta.count = stop  # the new rows are visible from here on; then retire the old ones
        delta.alive[replaced_delta] = 0
        main.alive[replaced_main] = 0
        delta.row_of.update(zip(keys, range(start, stop), strict=True))
        self._main_dead += len(replaced_main)
        self._size += len(ids) - len(replaced_main) - len(replaced_delta)

    def _merge(
        self,
        ids: NDArray[np.int64] | None = None,
        codes: NDArray[np.uint8] | None = None,
    ) -> None:
        """Build a new main from every live row plus (ids, codes), sorted and unique, and swap.

        Rows stay sorted by id, so this is a linear merge (no sort of the main block), and a
        bulk load into an empty index copies its input once.
        """
        main, delta = self._state
        if ids is None or codes is None:
            ids = np.empty(0, dtype=np.int64)
            codes = np.empty((0, CODE_BYTES), dtype=np.uint8)
        keep = main.alive.astype(bool)
        keep[_positions(main.ids, ids)] = False
        if keep.all():
            main_ids, main_codes = main.ids, main.codes
        else:
            main_ids, main_codes = main.ids[keep], main.codes[keep]
        del keep
        delta_ids, delta_codes = delta.live()
        fresh = ~np.isin(delta_ids, ids)
        order = np.argsort(delta_ids[fresh])
        extra_ids, extra_codes = _merge_sorted(
            ids, codes, delta_ids[fresh][order], delta_codes[fresh][order]
        )
        all_ids, all_codes = _merge_sorted(main_ids, main_codes, extra_ids, extra_codes)
        del main_ids, main_codes, extra_ids, extra_codes
        if all_ids is main.ids:  # nothing changed but tombstones of delta rows: keep the tables
            new_main = replace(main, alive=np.ones(len(main.ids), np.uint8))
        else:
            new_main = _Main.build(all_ids, all_codes, paired=self._paired)
        self._state = (new_main, _Delta(_delta_capacity(len(all_ids))))
        self._main_dead = 0
        self._size = len(all_ids)

    # -- queries ---------------------------------------------------------------------------

    def search(self, codes: object, radius: int, *, workers: int | None = None) -> Matches:
        """For each query code, every live (id, distance) with distance <= radius.

        `codes`: uint8 array (q, 32). `radius`: 0..256. Results are exact (never a missed or an
        extra entry), sorted by (distance, id). A batch of 32 queries or more searched through
        the tables takes the batched algorithm (see the module docstring) on `workers` threads;
        a linear scan of 64 queries or more is split over `workers` threads. `workers` defaults
        to the CPUs this process may use.
        """
        queries = as_codes(codes, "queries")
        r = as_radius(radius)
        nq = len(queries)
        if nq == 0:
            return []
        main, delta = self._state
        count = delta.count  # rows appended after this read are not part of this search
        segments = (main.segment(), delta.segment(count)) if count else (main.segment(),)
        thresholds = _use_tables(len(main.ids), r) if main.tables is not None else None
        batched = thresholds is not None and nq >= _BATCH_MIN_QUERIES
        if not batched and nq < _PARALLEL_MIN_QUERIES:  # one thread: no need to count CPUs
            return _hamming.search(queries, nq, r, thresholds, segments)
        n_workers = available_cpus() if workers is None else max(1, workers)
        if batched:
            return _hamming.search_batch(queries, nq, r, thresholds, segments, n_workers)
        if n_workers == 1:
            return _hamming.search(queries, nq, r, thresholds, segments)
        bounds = np.linspace(0, nq, min(n_workers, nq) + 1).astype(int)

        def part(i: int) -> Matches:
            lo, hi = int(bounds[i]), int(bounds[i + 1])
            return _hamming.search(queries[lo:hi], hi - lo, r, thresholds, segments)

        out: Matches = []
        for piece in _parallel_map(part, range(len(bounds) - 1), n_workers):
            out.extend(piece)
        return out

    # -- files -----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to `path` (atomically: a temporary file, then a rename).

        Folds the delta and drops tombstones first, so the file holds one sorted block.
        """
        with self._lock:
            if self._state[1].count or self._main_dead:
                self._merge()
            _write_file(Path(path), self._state[0])

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        mmap: bool = False,
        verify: bool = True,
        paired: bool = False,
    ) -> HammingIndex:
        """Read an index written by `save`.

        `mmap=True` maps the arrays instead of reading them (instant, shared between processes).
        `verify=False` skips the checksums (structure is still checked). `paired`: as for the
        constructor (paired tables are built here: files never hold them). A damaged,
        truncated or foreign file raises `IndexFileError`.
        """
        main = _read_file(Path(path), mmap=mmap, verify=verify).with_paired(paired)
        index = cls(paired=paired)
        index._state = (main, _Delta(_delta_capacity(len(main.ids))))
        index._size = len(main.ids)
        return index


# ---------------------------------------------------------------------------------------------
# File format: a `_snapshot` file whose metadata is <I I I Q I> (code bytes, chunks, directory
# bits, rows, flags) and whose sections are the main block's arrays, tables included, so that
# loading needs no sort and no rebuild.

_MAGIC: Final = b"\x89LKHAMM\n"  # high bit and newline catch text-mode or 7-bit damage (as PNG)
_VERSION: Final = 1
_META: Final = struct.Struct("<IIIQI")
_FLAG_TABLES: Final = 1
_CODES, _IDS, _DIRS, _LOWS, _SLOTS = 1, 2, 3, 4, 5


def _layout(meta: bytes) -> _snapshot.Layout:
    if len(meta) != _META.size:
        raise IndexFileError("corrupt index file (metadata)")
    code_bytes, nchunks, dir_bits, n, flags = _META.unpack(meta)
    if (code_bytes, nchunks, dir_bits) != (CODE_BYTES, _NCHUNKS, 16) or n >= 2**32:
        raise IndexFileError("index file layout not supported by this Lightkeeper")
    layout: dict[int, tuple[Any, tuple[int, ...]]] = {
        _CODES: (np.uint8, (n, CODE_BYTES)),
        _IDS: (np.int64, (n,)),
    }
    if flags & _FLAG_TABLES:
        layout[_DIRS] = (np.uint32, (_NCHUNKS, _DIR_LEN))
        layout[_LOWS] = (np.uint16, (_NCHUNKS * n + _LOW_PAD,))
        layout[_SLOTS] = (np.uint32, (_NCHUNKS, n))
    return layout


def _write_file(path: Path, main: _Main) -> None:
    sections: list[tuple[int, NDArray[Any]]] = [(_CODES, main.codes), (_IDS, main.ids)]
    if main.tables is not None:
        t = main.tables
        sections += [(_DIRS, t.dirs), (_LOWS, t.lows), (_SLOTS, t.slots)]
    flags = _FLAG_TABLES if main.tables is not None else 0
    meta = _META.pack(CODE_BYTES, _NCHUNKS, 16, len(main.ids), flags)
    _snapshot.write(path, _MAGIC, _VERSION, meta, sections)


def _read_file(path: Path, *, mmap: bool, verify: bool) -> _Main:
    meta, arrays = _snapshot.read(path, _MAGIC, _VERSION, _layout, mmap=mmap, verify=verify)
    n = _META.unpack(meta)[3]
    ids, codes = arrays[_IDS], arrays[_CODES]
    if n > 1 and not bool(np.all(ids[1:] > ids[:-1])):
        raise IndexFileError(f"{path}: corrupt index file (ids not sorted and unique)")
    tables: _Tables | None = None
    if _DIRS in arrays:
        dirs = arrays[_DIRS]
        if (
            not bool(np.all(dirs[:, 0] == 0))
            or not bool(np.all(dirs[:, -1] == n))
            or bool(np.any(dirs[:, 1:] < dirs[:, :-1]))
        ):
            raise IndexFileError(f"{path}: corrupt index file (bucket directory)")
        tables = _Tables(dirs, arrays[_LOWS], arrays[_SLOTS])
    elif n >= _TABLE_MIN_ROWS:
        tables = _Tables.build(codes)
    return _Main(ids, codes, np.ones(n, dtype=np.uint8), tables)
