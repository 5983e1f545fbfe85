"""HammingIndex: exact radius search, updates, files and input checks, against brute force."""

from __future__ import annotations

import struct
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from lightkeeper.errors import IndexFileError, LightkeeperError
from lightkeeper.index import HammingIndex, _hamming, hamming
from lightkeeper.index.hamming import chunk_thresholds


def brute_force(
    ids: np.ndarray, codes: np.ndarray, queries: np.ndarray, radius: int
) -> list[list[tuple[int, int]]]:
    """What every search must return: all (id, distance) within radius, by (distance, id)."""
    out = []
    for q in queries:
        d = np.bitwise_count(codes ^ q).sum(axis=1) if len(codes) else np.empty(0, np.int64)
        sel = np.nonzero(d <= radius)[0]
        out.append(sorted(((int(ids[i]), int(d[i])) for i in sel), key=lambda p: (p[1], p[0])))
    return out


def flip(code: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """`code` with exactly k distinct bits flipped."""
    bits = np.unpackbits(code)
    bits[rng.choice(256, size=k, replace=False)] ^= 1
    return np.packbits(bits)


def random_codes(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, (n, 32), dtype=np.uint8)


def skewed_codes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Codes whose chunks crowd into few buckets with uneven low halves: large buckets, repeated
    values and values far from where interpolation guesses them (the slow paths of the core)."""
    words = np.empty((n, 8), dtype=np.uint32)
    highs = rng.integers(0, 1 << 16, 3, dtype=np.uint32)
    for c in range(8):
        high = highs[rng.integers(0, 3, n)]
        style = rng.integers(0, 3)
        if style == 0:
            low = rng.integers(0, 300, n, dtype=np.uint32)  # all at the bottom of the range
        elif style == 1:
            low = rng.choice(np.array([0, 7, 65535], dtype=np.uint32), n)  # few values, repeated
        else:
            low = rng.integers(0, 1 << 16, n, dtype=np.uint32)
        words[:, c] = (high << 16) | low
    return words.astype("<u4").view(np.uint8).reshape(n, 32)


def clustered_codes(rng: np.random.Generator, n: int) -> np.ndarray:
    centres = random_codes(rng, max(1, n // 50))
    picks = rng.integers(0, len(centres), n)
    out = np.empty((n, 32), dtype=np.uint8)
    for row, p in enumerate(picks):
        out[row] = flip(centres[p], int(rng.integers(0, 21)), rng)
    return out


KINDS = {"uniform": random_codes, "skewed": skewed_codes, "clustered": clustered_codes}


@contextmanager
def strategy(kind: str) -> Iterator[None]:
    """Force the table search (on any size, tables built) or the linear scan."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hamming, "_TABLE_MIN_ROWS", 0)
        if kind == "tables":
            mp.setattr(hamming, "_use_tables", lambda n, r: chunk_thresholds(r))
        else:
            mp.setattr(hamming, "_use_tables", lambda n, r: None)
        yield


def queries_for(codes: np.ndarray, radius: int, rng: np.random.Generator) -> np.ndarray:
    """Random codes, plus codes planted at distance 0, r, r + 1 and in between from the data."""
    out = [random_codes(rng, 3)]
    if len(codes):
        for k in sorted({0, radius, min(radius + 1, 256), int(rng.integers(0, radius + 1))}):
            base = codes[rng.integers(len(codes))]
            out.append(flip(base, k, rng)[None])
        out.append(skewed_codes(rng, 2))
    return np.concatenate(out)


# ---------------------------------------------------------------------------------------------
# The pigeonhole arithmetic


@given(st.integers(0, 256))
def test_thresholds_cover_the_radius_exactly(radius: int) -> None:
    t = chunk_thresholds(radius)
    assert len(t) == 8
    assert sum(x + 1 for x in t) == radius + 1
    assert min(t) >= -1 and max(t) - min(t) <= 1


@given(st.integers(0, 64), st.binary(min_size=32, max_size=32), st.data())
def test_every_code_within_radius_has_a_qualifying_chunk(
    radius: int, a: bytes, data: st.DataObject
) -> None:
    # The claim the whole index rests on, checked on codes at distance exactly `radius`.
    positions = data.draw(st.lists(st.integers(0, 255), min_size=radius, max_size=radius))
    b = bytearray(a)
    for p in set(positions):
        b[p // 8] ^= 1 << (p % 8)
    t = chunk_thresholds(radius)
    x = np.frombuffer(bytes(a), np.uint8) ^ np.frombuffer(bytes(b), np.uint8)
    per_chunk = np.bitwise_count(x).reshape(8, 4).sum(axis=1)
    assert any(per_chunk[c] <= t[c] for c in range(8))


# ---------------------------------------------------------------------------------------------
# Search against brute force


@pytest.mark.parametrize("path", ["tables", "paired", "linear"])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300), radius=st.integers(0, 64))
@settings(max_examples=40, deadline=None)
def test_search_equals_brute_force(path: str, seed: int, n: int, radius: int) -> None:
    rng = np.random.default_rng(seed)
    kind = list(KINDS)[seed % 3]
    codes = KINDS[kind](rng, n)
    if n >= 2:
        codes[1] = codes[0]  # the same code under two ids
    ids = rng.permutation(np.unique(rng.integers(-(2**62), 2**62, 2 * n + 1)))[:n]
    queries = queries_for(codes, radius, rng)
    with strategy("tables" if path == "paired" else path):
        idx = HammingIndex(paired=path == "paired")
        idx.add(ids, codes)
        idx.compact()  # into the main block (with tables): the delta alone is a linear scan
        assert idx.search(queries, radius) == brute_force(ids, codes, queries, radius)


@pytest.mark.parametrize("kind", list(KINDS))
def test_search_at_table_scale_equals_brute_force(kind: str) -> None:
    # Large enough that tables are built and chosen by the cost model, as in production.
    rng = np.random.default_rng(7)
    n = 70_000
    codes = KINDS[kind](rng, n) if kind != "clustered" else clustered_codes(rng, 3000)
    codes = np.concatenate([codes, random_codes(rng, n - len(codes))]) if len(codes) < n else codes
    ids = np.arange(n, dtype=np.int64) * 3
    idx = HammingIndex()
    idx.add(ids, codes)
    assert hamming._use_tables(n, 31) is not None
    queries = np.concatenate([queries_for(codes, r, rng) for r in (0, 8, 31, 32)])
    for radius in (0, 8, 31, 32):
        assert idx.search(queries, radius) == brute_force(ids, codes, queries, radius)


@pytest.mark.parametrize("paired", [False, True])
def test_every_radius_up_to_64_at_table_scale(paired: bool) -> None:
    rng = np.random.default_rng(3)
    codes = random_codes(rng, 66_000)
    ids = np.arange(len(codes), dtype=np.int64)
    idx = HammingIndex(paired=paired)
    idx.add(ids, codes)
    for radius in range(65):
        queries = np.stack([flip(codes[i], k, rng) for i, k in ((5, radius), (9, radius + 1))])
        with strategy("tables"):
            got = idx.search(queries, radius)
        assert got == brute_force(ids, codes, queries, radius), radius


@pytest.mark.parametrize("paired", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_crowded_buckets_searched_for_exact_low_halves(seed: int, paired: bool) -> None:
    # Every chunk of every code shares one high half, with low halves bunched at the bottom,
    # repeated, or spread: queries whose high halves differ by exactly t bits make the core look
    # up exact low halves in one crowded bucket per chunk (window and galloping search).
    rng = np.random.default_rng(seed)
    n, t = 600, 3
    highs = rng.integers(0, 1 << 16, 8, dtype=np.uint32)
    lows = np.where(
        rng.random((n, 8)) < 0.6,
        rng.integers(0, 200, (n, 8)),
        np.where(rng.random((n, 8)) < 0.5, 40000, rng.integers(0, 1 << 16, (n, 8))),
    ).astype(np.uint32)
    words = (highs[None, :] << 16) | lows
    codes = words.astype("<u4").view(np.uint8).reshape(n, 32)
    ids = np.arange(n, dtype=np.int64)
    queries = []
    for i in rng.integers(0, n, 12):
        q = words[i].copy()
        for c in range(8):
            high_flips = rng.choice(16, size=t, replace=False)
            q[c] ^= np.uint32(sum(1 << (16 + int(b)) for b in high_flips))
        queries.append(q.copy())
        q[int(rng.integers(0, 8))] ^= np.uint32(1 << int(rng.integers(0, 16)))  # one low bit off
        queries.append(q.copy())
        q[:] = (q & 0xFFFF0000) | rng.choice(np.array([0, 199, 200, 39999, 40000, 65535]), 8)
        queries.append(q)
    qcodes = np.array(queries, dtype="<u4").view(np.uint8).reshape(-1, 32)
    with strategy("tables"):
        idx = HammingIndex(paired=paired)  # paired: the crowding is in the paired tables' keys
        idx.add(ids, codes)
        idx.compact()
        for radius in (24, 25, 31):
            assert idx.search(qcodes, radius) == brute_force(ids, codes, qcodes, radius)


@pytest.mark.parametrize("below", [70, 100])
def test_a_run_of_equal_low_halves_crossing_the_lookup_window(below: int) -> None:
    # A bucket of 200 whose 30 equal entries cross one edge of the 32-entry window the core
    # reads around the interpolated position (entries 84..115): all 30 must still be found.
    rng = np.random.default_rng(13)
    low = np.concatenate(
        [
            rng.integers(0, 32768, below),
            np.full(30, 32768),
            rng.integers(32769, 65536, 170 - below),
        ]
    ).astype(np.uint32)
    highs = rng.integers(0, 1 << 16, 8, dtype=np.uint32)
    codes = ((highs[None, :] << 16) | low[:, None]).astype("<u4").view(np.uint8).reshape(-1, 32)
    query = ((highs ^ np.uint32(0b111)) << 16) | np.uint32(32768)  # 3 high bits flipped per chunk
    qcode = query.astype("<u4").view(np.uint8).reshape(1, 32)
    ids = np.arange(len(codes), dtype=np.int64)
    with strategy("tables"):
        idx = HammingIndex()
        idx.add(ids, codes)
        idx.compact()
        got = idx.search(qcode, 31)
    assert got == brute_force(ids, codes, qcode, 31)
    assert len(got[0]) == 30


def test_radius_256_returns_everything_and_bad_radii_are_refused() -> None:
    rng = np.random.default_rng(1)
    codes = random_codes(rng, 50)
    idx = HammingIndex()
    idx.add(np.arange(50), codes)
    assert len(idx.search(codes[:1], 256)[0]) == 50
    for bad in (-1, 257):
        with pytest.raises(ValueError, match="radius"):
            idx.search(codes[:1], bad)
    with pytest.raises(TypeError):
        idx.search(codes[:1], 3.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        idx.search(codes[:1], True)


def test_batches_split_over_threads_give_the_same_answers() -> None:
    rng = np.random.default_rng(2)
    codes = random_codes(rng, 80_000)
    idx = HammingIndex()
    idx.add(np.arange(len(codes)), codes)
    queries = np.stack([flip(codes[i], i % 40, rng) for i in range(200)])
    assert idx.search(queries, 31, workers=4) == idx.search(queries, 31, workers=1)


# ---------------------------------------------------------------------------------------------
# Batched search: the same answers as brute force, through every path of the batched core


@contextmanager
def batched(threshold: int = 1) -> Iterator[None]:
    """Send batches of `threshold` queries or more through the batched algorithm."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hamming, "_BATCH_MIN_QUERIES", threshold)
        yield


def mixed_queries(
    live: np.ndarray, gone: np.ndarray, radius: int, count: int, rng: np.random.Generator
) -> np.ndarray:
    """`count` queries: near live and removed codes (0, radius, radius + 1 bits and in between),
    random codes, and repeats of earlier queries (a batch may hold the same code twice)."""
    out: list[np.ndarray] = []
    pools = [p for p in (live, gone) if len(p)]
    while len(out) < count:
        pick = int(rng.integers(0, 4))
        if pick == 0 and out:
            out.append(out[int(rng.integers(0, len(out)))].copy())
        elif pick == 1 or not pools:
            out.append(random_codes(rng, 1)[0])
        else:
            pool = pools[int(rng.integers(0, len(pools)))]
            k = int(rng.choice([0, radius, min(radius + 1, 256), int(rng.integers(0, radius + 1))]))
            out.append(flip(pool[int(rng.integers(0, len(pool)))], k, rng))
    return np.stack(out) if out else np.empty((0, 32), np.uint8)


@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 300),
    radius=st.integers(0, 64),
    nq=st.integers(0, 80),
    workers=st.sampled_from([1, 3]),
)
@settings(max_examples=40, deadline=None)
def test_batched_search_equals_brute_force(
    seed: int, n: int, radius: int, nq: int, workers: int
) -> None:
    # A main block with tables and tombstones, a delta with new and replacing entries: what a
    # live index looks like between merges.
    rng = np.random.default_rng(seed)
    codes = KINDS[list(KINDS)[seed % 3]](rng, n + 40)
    model = {i: codes[i] for i in range(n)}
    with strategy("tables"), batched():
        idx = HammingIndex()
        idx.add(np.arange(n), codes[:n])
        idx.compact()
        removed = rng.choice(n, size=min(n, int(rng.integers(0, 8))), replace=False).tolist()
        idx.remove(removed)
        gone = np.stack([model.pop(i) for i in removed]) if removed else np.empty((0, 32), np.uint8)
        fresh = rng.integers(0, 2 * n + 20, 20)  # new ids, and ids of main rows: replacements
        idx.add(fresh, codes[n : n + 20])
        for i, code in zip(fresh.tolist(), codes[n : n + 20], strict=True):
            model[i] = code
        again = fresh[:5]  # replaced again, now in the delta
        idx.add(again, codes[n + 20 : n + 25])
        for i, code in zip(again.tolist(), codes[n + 20 : n + 25], strict=True):
            model[i] = code
        ids = np.array(sorted(model), dtype=np.int64)
        live = np.stack([model[i] for i in ids]) if len(ids) else np.empty((0, 32), np.uint8)
        queries = mixed_queries(live, gone, radius, nq, rng)
        assert len(idx) == len(ids)
        got = idx.search(queries, radius, workers=workers)
    assert got == brute_force(ids, live, queries, radius)


@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 400),
    radius=st.integers(0, 64),
    group_bits=st.integers(0, 10),
    join=st.sampled_from([-1, 0, 1]),
    portable=st.booleans(),
    workers=st.integers(1, 4),
    paired=st.booleans(),
)
@settings(max_examples=80, deadline=None)
def test_every_batched_kernel_equals_brute_force(
    seed: int,
    n: int,
    radius: int,
    group_bits: int,
    join: int,
    portable: bool,
    workers: int,
    paired: bool,
) -> None:
    # The core's own knobs: group size (0: its cost model), the join of exact lookups (-1: its
    # cost model), the portable kernels beside the AVX-512 ones, the number of threads, and
    # paired tables (searched beside each chunk's own table when the segment has them).
    rng = np.random.default_rng(seed)
    codes = KINDS[list(KINDS)[seed % 3]](rng, n)
    ids = rng.permutation(n).astype(np.int64) * 5
    with strategy("tables"):
        idx = HammingIndex(paired=paired)
        idx.add(ids, codes)
        idx.compact()
    queries = mixed_queries(codes, codes[:0], radius, 40, rng)
    if radius > 40:
        group_bits = min(group_bits, 6)  # wide thresholds try every mask of the group bits
    got = _hamming.search_batch(
        queries,
        len(queries),
        radius,
        chunk_thresholds(radius),
        (idx._state[0].segment(),),
        workers,
        group_bits,
        join,
        portable,
    )
    assert got == brute_force(ids, codes, queries, radius)


@pytest.mark.parametrize("paired", [False, True])
@pytest.mark.parametrize("group_bits", [1, 4, 9, 12])
def test_batched_lookups_at_the_edges_of_groups(group_bits: int, paired: bool) -> None:
    # Chunks whose high halves sit in the first and last buckets of a group, whatever its size
    # (0x0000, 0xffff, 0x7fff, 0x8000), found from queries whose high halves differ in exactly
    # t bits (exact lookups) or fewer (scans), with the low-half join on and off. With paired
    # tables (keyed by the low half) the low halves sit at the edges too, and the flipped bits
    # fall in either half.
    rng = np.random.default_rng(group_bits)
    n, radius = 300, 31
    edges = np.array([0x0000, 0xFFFF, 0x7FFF, 0x8000], dtype=np.uint32)
    lows = edges[rng.integers(0, 4, (n, 8))] if paired else rng.integers(0, 1 << 16, (n, 8))
    words = (edges[rng.integers(0, 4, (n, 8))] << 16) | lows
    words[::3, :] = (words[::3, :] & 0xFFFF0000) | 7  # one low half shared by many
    codes = words.astype("<u4").view(np.uint8).reshape(n, 32)
    queries = words[rng.integers(0, n, 60)].copy()
    for row in queries:
        for c in range(8):
            flips = rng.choice(32 if paired else 16, size=int(rng.integers(1, 4)), replace=False)
            row[c] ^= np.uint32(sum(1 << ((int(b) + 16) % 32) for b in flips))
    qcodes = queries.astype("<u4").view(np.uint8).reshape(-1, 32)
    ids = np.arange(n, dtype=np.int64)
    with strategy("tables"):
        idx = HammingIndex(paired=paired)
        idx.add(ids, codes)
        idx.compact()
    want = brute_force(ids, codes, qcodes, radius)
    assert sum(map(len, want)) > 60
    segments = (idx._state[0].segment(),)
    t = chunk_thresholds(radius)
    for join in (0, 1):
        got = _hamming.search_batch(qcodes, len(qcodes), radius, t, segments, 2, group_bits, join)
        assert got == want, join


@pytest.mark.parametrize("paired", [False, True])
@pytest.mark.parametrize("kind", ["uniform", "crowded"])
def test_batched_search_at_table_scale_equals_brute_force(kind: str, paired: bool) -> None:
    # Tables built and chosen by the cost model, as in production; a batch large enough for the
    # join of exact lookups. "crowded": a few buckets of thousands of entries (past what the AVX-512
    # kernel holds in registers) and runs of equal low halves.
    rng = np.random.default_rng(21)
    n = 70_000
    codes = random_codes(rng, n)
    if kind == "crowded":
        codes[:6000] = skewed_codes(rng, 6000)
    ids = np.arange(n, dtype=np.int64) * 3
    idx = HammingIndex(paired=paired)
    idx.add(ids, codes)
    assert idx.remove(ids[100:200]) == 100
    idx.add(ids[300:310], random_codes(rng, 10))  # replaced: tombstone in main, row in delta
    live = codes.copy()
    live[300:310] = idx._state[1].codes[:10]
    keep = np.ones(n, bool)
    keep[100:200] = False
    queries = mixed_queries(live[keep], codes[100:200], 31, 300, rng)
    # brute force, once for every radius: distances over 64-bit words
    words = live[keep].view(np.uint64)
    dists = [np.bitwise_count(words ^ q).sum(axis=1) for q in queries.view(np.uint64)]
    for radius in (0, 8, 24, 31):
        assert hamming._use_tables(n, radius) is not None
        want = []
        for d in dists:
            sel = np.nonzero(d <= radius)[0]
            pairs = zip(ids[keep][sel].tolist(), d[sel].tolist(), strict=True)
            want.append(sorted(pairs, key=lambda p: (p[1], p[0])))
        assert idx.search(queries, radius) == want, radius


def test_batches_around_the_switch_give_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(22)
    codes = random_codes(rng, 70_000)
    idx = HammingIndex()
    idx.add(np.arange(len(codes)), codes)
    calls: list[int] = []
    real = _hamming.search_batch

    def spy(queries: np.ndarray, nq: int, *args: object) -> list[list[tuple[int, int]]]:
        calls.append(nq)
        return real(queries, nq, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(_hamming, "search_batch", spy)
    limit = hamming._BATCH_MIN_QUERIES
    queries = np.stack([flip(codes[i], i % 40, rng) for i in range(limit + 1)])
    for nq in (limit - 1, limit, limit + 1):
        got = idx.search(queries[:nq], 31)
        assert got == brute_force(np.arange(len(codes)), codes, queries[:nq], 31)
    assert calls == [limit, limit + 1]  # the batched path from the threshold on, not below


def test_a_batch_larger_than_a_sub_batch_and_crowded_candidates() -> None:
    # 40,000 queries (more than one sub-batch of the core) on 500 codes of which 400 are
    # equal: every query near them has hundreds of candidates, which overflow a worker's
    # candidate buffer more than once.
    rng = np.random.default_rng(23)
    codes = random_codes(rng, 500)
    codes[100:] = codes[0]
    queries = np.concatenate([flip(codes[0], 3, rng)[None], codes[:50]])
    queries = queries[rng.integers(0, len(queries), 40_000)]
    with strategy("tables"), batched():
        idx = HammingIndex()
        idx.add(np.arange(500), codes)
        idx.compact()
        got = idx.search(queries, 31)
    distinct, back = np.unique(queries, axis=0, return_inverse=True)
    want = brute_force(np.arange(500), codes, distinct, 31)
    assert got == [want[i] for i in back.ravel()]


def test_search_batch_refuses_bad_arguments() -> None:
    codes = random_codes(np.random.default_rng(24), 3)
    segment = (codes, np.arange(3, dtype=np.int64), np.ones(3, np.uint8), 3, None, None, None)
    t = chunk_thresholds(8)
    for bad in ((0, 0, -1), (1, 17, -1), (1, -1, -1), (1, 0, 2), (1, 0, -2)):
        workers, group_bits, join = bad
        with pytest.raises(ValueError, match="workers"):
            _hamming.search_batch(codes, 3, 8, t, (segment,), workers, group_bits, join)
    assert _hamming.search_batch(codes, 3, 0, t, (segment,), 2) == [[(i, 0)] for i in range(3)]
    assert _hamming.search_batch(codes, 0, 0, t, (segment,), 2) == []


# ---------------------------------------------------------------------------------------------
# Updates


class IndexAgainstModel(RuleBasedStateMachine):
    """Interleaved adds, replacements, removals, merges and file round trips, checked against a
    plain dict after every step. The delta is tiny so that merges happen all the time."""

    def __init__(self) -> None:
        super().__init__()
        self.mp = pytest.MonkeyPatch()
        self.mp.setattr(hamming, "_TABLE_MIN_ROWS", 0)
        self.mp.setattr(hamming, "_delta_capacity", lambda rows: 8)
        self.mp.setattr(hamming, "_use_tables", lambda n, r: chunk_thresholds(r))
        self.tmp = tempfile.TemporaryDirectory()
        self.rng = np.random.default_rng(0)
        self.idx = HammingIndex()
        self.model: dict[int, np.ndarray] = {}
        self.centre = random_codes(self.rng, 1)[0]

    def teardown(self) -> None:
        self.mp.undo()
        self.tmp.cleanup()

    @initialize(seed=st.integers(0, 2**32 - 1), paired=st.booleans())
    def seed(self, seed: int, paired: bool) -> None:
        self.rng = np.random.default_rng(seed)
        self.idx = HammingIndex(paired=paired)  # paired tables follow every merge and load

    @rule(ids=st.lists(st.integers(0, 40), max_size=12))
    def add(self, ids: list[int]) -> None:
        codes = np.empty((len(ids), 32), dtype=np.uint8)
        for row in range(len(ids)):
            codes[row] = flip(self.centre, int(self.rng.integers(0, 40)), self.rng)
        self.idx.add(np.array(ids, dtype=np.int64), codes)
        for i, c in zip(ids, codes, strict=True):
            self.model[i] = c  # the last occurrence of an id wins

    @rule(ids=st.lists(st.integers(0, 45), max_size=8))
    def remove(self, ids: list[int]) -> None:
        expected = len(set(ids) & set(self.model))
        assert self.idx.remove(np.array(ids, dtype=np.int64)) == expected
        for i in ids:
            self.model.pop(i, None)

    @rule()
    def compact(self) -> None:
        self.idx.compact()

    @rule()
    def save_and_load(self) -> None:
        path = Path(self.tmp.name) / "idx.lkh"
        self.idx.save(path)
        self.idx = HammingIndex.load(path, paired=self.idx.paired)

    @rule(radius=st.integers(0, 64))
    def search(self, radius: int) -> None:
        ids = np.array(sorted(self.model), dtype=np.int64)
        codes = np.stack([self.model[i] for i in ids]) if len(ids) else np.empty((0, 32), np.uint8)
        queries = np.stack([self.centre, flip(self.centre, radius, self.rng)])
        assert self.idx.search(queries, radius) == brute_force(ids, codes, queries, radius)

    @invariant()
    def size(self) -> None:
        assert len(self.idx) == len(self.model)


IndexAgainstModel.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_updates_against_a_model = IndexAgainstModel.TestCase


def test_an_added_entry_is_found_by_the_next_query_and_a_removed_one_is_not() -> None:
    rng = np.random.default_rng(4)
    base = random_codes(rng, 70_000)
    idx = HammingIndex()
    idx.add(np.arange(len(base)), base)
    new = flip(base[10], 5, rng)[None]
    idx.add([999_999], new)
    assert (999_999, 0) in idx.search(new, 0)[0]
    assert idx.remove([999_999, 10, 123_456_789]) == 2
    assert idx.search(new, 31) == [[]]
    assert len(idx) == len(base) - 1


def test_searches_running_beside_updates_see_whole_entries() -> None:
    # Searches release the GIL and read a snapshot; updates (and merges) happen meanwhile.
    rng = np.random.default_rng(14)
    base = random_codes(rng, 70_000)
    idx = HammingIndex()
    idx.add(np.arange(len(base)), base)
    stop = threading.Event()
    errors: list[BaseException] = []

    def searcher() -> None:
        try:
            while not stop.is_set():
                for i, found in enumerate(idx.search(base[:60], 0)):
                    assert found in ([], [(i, 0)]), (i, found)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=searcher) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for step in range(40):
            idx.add(np.arange(10**6 + step * 500, 10**6 + (step + 1) * 500), random_codes(rng, 500))
            idx.remove(np.arange(step * 10, step * 10 + 10))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    assert len(idx) == len(base) + 40 * 500 - 400
    assert idx.search(base[:1], 0) == [[]] and idx.search(base[400:401], 0) == [[(400, 0)]]


def test_readding_an_id_replaces_its_code() -> None:
    rng = np.random.default_rng(5)
    a, b, c = random_codes(rng, 3)
    idx = HammingIndex()
    idx.add([1, 1], np.stack([a, b]))  # within one call, the last occurrence wins
    assert len(idx) == 1
    assert idx.search(np.stack([a, b]), 0) == [[], [(1, 0)]]
    idx.add([1], c[None])  # in a later call, the new code replaces the old one
    assert len(idx) == 1
    assert idx.search(np.stack([b, c]), 0) == [[], [(1, 0)]]
    idx.compact()
    idx.add([1], b[None])  # and once the entry sits in the main block
    assert idx.search(np.stack([b, c]), 0) == [[(1, 0)], []]


def test_empty_index_and_empty_inputs() -> None:
    idx = HammingIndex()
    q = random_codes(np.random.default_rng(6), 2)
    assert len(idx) == 0
    assert idx.search(q, 31) == [[], []]
    assert idx.search(np.empty((0, 32), np.uint8), 31) == []
    idx.add(np.empty(0, np.int64), np.empty((0, 32), np.uint8))
    assert idx.remove([1, 2]) == 0
    assert len(idx) == 0


# ---------------------------------------------------------------------------------------------
# Files


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(8)
    codes = random_codes(rng, 70_000)
    ids = rng.permutation(len(codes)).astype(np.int64)
    idx = HammingIndex()
    idx.add(ids, codes)
    idx.remove(ids[:10])
    idx.add([-5], codes[:1])
    path = tmp_path_factory.mktemp("idx") / "bank.lkh"
    idx.save(path)
    return path, ids, codes


@pytest.mark.parametrize(("mmap", "paired"), [(False, False), (True, False), (True, True)])
def test_save_and_load_round_trip(
    saved: tuple[Path, np.ndarray, np.ndarray], mmap: bool, paired: bool
) -> None:
    path, ids, codes = saved
    idx = HammingIndex.load(path, mmap=mmap, paired=paired)
    assert idx.paired == paired
    assert len(idx) == len(ids) - 10 + 1
    live_ids = np.concatenate([ids[10:], [-5]])
    live_codes = np.concatenate([codes[10:], codes[:1]])
    rng = np.random.default_rng(9)
    queries = np.stack([flip(codes[i], i % 33, rng) for i in range(20)])
    assert idx.search(queries, 31) == brute_force(live_ids, live_codes, queries, 31)
    idx.add([7_000_000], codes[3:4])  # a loaded (even mapped) index still takes updates
    assert (7_000_000, 0) in idx.search(codes[3:4], 0)[0]


def test_paired_tables_are_built_in_memory_and_never_saved(tmp_path: Path) -> None:
    rng = np.random.default_rng(21)
    codes = random_codes(rng, 70_000)
    ids = np.arange(len(codes), dtype=np.int64)
    files = {}
    for paired in (False, True):
        idx = HammingIndex(paired=paired)
        idx.add(ids, codes)
        files[paired] = tmp_path / f"{paired}.lkh"
        idx.save(files[paired])
    assert files[True].read_bytes() == files[False].read_bytes()
    queries = np.stack([flip(codes[i], i % 40, rng) for i in range(40)])
    compact, paired_idx = (
        HammingIndex.load(files[False]),
        HammingIndex.load(files[False], paired=True),
    )
    assert paired_idx.search(queries, 31) == compact.search(queries, 31)
    assert paired_idx.search(queries, 31) == brute_force(ids, codes, queries, 31)
    # A merge (here: after removals past a quarter of the block) rebuilds them with the tables.
    paired_idx.remove(ids[: len(ids) // 2])
    assert paired_idx.paired and paired_idx._state[0].paired is not None
    keep = slice(len(ids) // 2, None)
    assert paired_idx.search(queries, 31) == brute_force(ids[keep], codes[keep], queries, 31)


def test_empty_and_small_indexes_round_trip(tmp_path: Path) -> None:
    for n in (0, 5):
        idx = HammingIndex()
        codes = random_codes(np.random.default_rng(n), n)
        idx.add(np.arange(n), codes)
        idx.save(tmp_path / f"{n}.lkh")
        back = HammingIndex.load(tmp_path / f"{n}.lkh")
        assert len(back) == n
        assert back.search(codes, 0) == idx.search(codes, 0)


def test_damaged_files_raise_index_file_error(
    saved: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    data = saved[0].read_bytes()
    damaged = tmp_path / "damaged.lkh"
    cases = {
        "empty": b"",
        "foreign": b"PK\x03\x04 not an index at all" + bytes(100),
        "header cut": data[:20],
        "table cut": data[:60],
        "payload cut": data[: len(data) // 2],
        "one byte short": data[:-1],
        "version": data[:8] + (99).to_bytes(4, "little") + data[12:],
    }
    _, _, meta_len, count = struct.unpack_from("<8sIII", data)
    for i in range(count):  # a flipped bit inside each section's data
        _, _, offset, length, _ = struct.unpack_from("<IIQQQ", data, 20 + meta_len + 32 * i)
        flipped = bytearray(data)
        flipped[offset + length // 2] ^= 0x40
        cases[f"bit flip in section {i}"] = bytes(flipped)
    for at in (30, 100):  # and in the header: metadata, section table
        flipped = bytearray(data)
        flipped[at] ^= 0x01
        cases[f"bit flip at {at}"] = bytes(flipped)
    for name, content in cases.items():
        damaged.write_bytes(content)
        with pytest.raises(IndexFileError) as info:
            HammingIndex.load(damaged)
        assert str(info.value).startswith(str(damaged)) or "index file" in str(info.value), name
        assert isinstance(info.value, LightkeeperError)
    with pytest.raises(IndexFileError, match="cannot open"):
        HammingIndex.load(tmp_path / "missing.lkh")


def test_a_file_is_replaced_whole_or_not_at_all(
    saved: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    target = tmp_path / "bank.lkh"
    target.write_bytes(saved[0].read_bytes())
    idx = HammingIndex()
    idx.add([1], random_codes(np.random.default_rng(11), 1))
    idx.save(target)
    assert len(HammingIndex.load(target)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["bank.lkh"]  # no temporary file left


def test_xxh64_matches_the_reference_vectors() -> None:
    # Vectors of xxHash's own sanity check (xsum_sanity_check.c), over its generated buffer.
    p32, p64 = 2654435761, 11400714785074694797
    buf, gen = bytearray(), p32
    for _ in range(222):
        buf.append(gen >> 56)
        gen = (gen * p64) % 2**64
    vectors = [
        (0, 0, 0xEF46DB3751D8E999),
        (0, p32, 0xAC75FDA2929B17EF),
        (1, 0, 0xE934A84ADB052768),
        (1, p32, 0x5014607643A9B4C3),
        (4, 0, 0x9136A0DCA57457EE),
        (14, 0, 0x8282DCC4994E35C8),
        (14, p32, 0xC3BD6BF63DEB6DF0),
        (222, 0, 0xB641AE8CB691C174),
        (222, p32, 0x20CB8AB7AE10C14A),
    ]
    for length, seed, expected in vectors:
        assert _hamming.xxh64(bytes(buf[:length]), seed) == expected


# ---------------------------------------------------------------------------------------------
# Input checks


def test_inputs_are_checked_with_clear_messages() -> None:
    idx = HammingIndex()
    good = np.zeros((2, 32), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        idx.add([1, 2], good.astype(np.int64))
    with pytest.raises(ValueError, match=r"shape \(n, 32\)"):
        idx.add([1, 2], np.zeros((2, 31), np.uint8))
    with pytest.raises(ValueError, match=r"shape \(n, 32\)"):
        idx.search(np.zeros(32, np.uint8), 3)
    with pytest.raises(ValueError, match="2 ids but 3 codes"):
        idx.add([1, 2], np.zeros((3, 32), np.uint8))
    with pytest.raises(ValueError, match="integers"):
        idx.add(np.array([1.0, 2.0]), good)
    with pytest.raises(ValueError, match="1-D"):
        idx.add(np.array([[1, 2]]), good)
    with pytest.raises(ValueError, match="int64"):
        idx.add(np.array([2**63, 1], dtype=np.uint64), good)
    with pytest.raises(ValueError, match="uint8"):
        idx.add([1], [b"\x00" * 32])
    assert len(idx) == 0


def test_any_layout_of_uint8_codes_is_accepted_and_copied() -> None:
    rng = np.random.default_rng(12)
    wide = random_codes(rng, 40)
    strided = np.asfortranarray(wide)[::2]  # neither C-contiguous nor every row
    idx = HammingIndex()
    idx.add(np.arange(20, dtype=np.int32), strided)  # other integer dtypes are converted
    assert idx.search(strided, 0) == [[(i, 0)] for i in range(20)]
    mine = wide.copy()
    idx.add([100], mine[1:2])
    mine[1] ^= 1  # the index keeps its own copy of what it was given
    assert idx.search(wide[1:2], 0) == [[(100, 0)]]


# --- memory ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [(5, np.uint16), ((3, 7), np.uint32), (9 << 20, np.uint16), ((3 << 20, 8), np.uint32)],
)
def test_index_arrays_are_ordinary_writable_arrays_whatever_their_backing(
    shape: int | tuple[int, int], dtype: type[np.generic]
) -> None:
    from lightkeeper.index import _memory

    arr = _memory.empty(shape, dtype)
    assert arr.shape == ((shape,) if isinstance(shape, int) else shape)
    assert arr.dtype == dtype and arr.flags.c_contiguous and arr.flags.writeable
    arr[...] = 7
    assert int(arr.sum(dtype=np.int64)) == 7 * arr.size
    copy = _memory.huge_copy(arr)
    assert np.array_equal(copy, arr) and not np.shares_memory(copy, arr)
    if arr.nbytes >= 8 << 20 and _memory.huge_pages_available():
        assert arr.ctypes.data % _memory.HUGE_PAGE == 0  # starts on a huge page boundary


def test_a_loaded_index_is_read_into_memory_of_its_own_unless_mapped(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 256, (70_000, 32), dtype=np.uint8)
    index = HammingIndex()
    index.add(np.arange(70_000), codes)
    index.save(tmp_path / "i.idx")
    read = HammingIndex.load(tmp_path / "i.idx")
    mapped = HammingIndex.load(tmp_path / "i.idx", mmap=True)
    assert not isinstance(read._state[0].codes, np.memmap)
    queries = codes[:40] ^ np.uint8(1)
    assert read.search(queries, 31) == mapped.search(queries, 31) == index.search(queries, 31)
    (tmp_path / "i.idx").unlink()  # a read index no longer needs its file
    assert read.search(queries[:3], 8) == index.search(queries[:3], 8)
