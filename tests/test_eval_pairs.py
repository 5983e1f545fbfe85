"""Unrelated pairs kind by kind, and the tail they give when summed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightkeeper.evaluation.calibration import fit_tail, recommend
from lightkeeper.evaluation.methods import pairwise_min_distances
from lightkeeper.evaluation.pairs import KEEP_ALL_UNDER, KindPairs, matrix_kind, unrelated_pairs

NAMES = ("whole", "whole:1", "region:a", "region:b")


class _Pairing:
    """Regions meet regions of their own name, and the whole meets the whole's variants."""

    name = "paired"
    signal_type = "pdq"

    def compatible(self, reference: str, query: str) -> bool:
        if reference == "whole":
            return query.startswith("whole")
        return reference == query


def _photos(
    draw: st.DrawFn, n: int, *, reference: bool
) -> tuple[list[np.ndarray], list[tuple[str, ...]]]:
    codes, names = [], []
    pool = NAMES[:1] + NAMES[2:] if reference else NAMES
    for _ in range(n):
        chosen = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=len(pool), unique=True))
        seed = draw(st.integers(0, 2**32 - 1))
        rng = np.random.default_rng(seed)
        # Few distinct bits, so that close pairs (and ties) happen.
        base = rng.integers(0, 256, size=32, dtype=np.uint8)
        flips = rng.integers(0, 2, size=(len(chosen), 32), dtype=np.uint8)
        codes.append((base[None, :] ^ flips).astype(np.uint8))
        names.append(tuple(chosen))
    return codes, names


@st.composite
def photo_sets(draw: st.DrawFn) -> tuple:
    n = draw(st.integers(2, 7))
    refs, ref_names = _photos(draw, n, reference=True)
    queries, query_names = _photos(draw, n, reference=False)
    ok = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    return refs, ref_names, queries, query_names, ok


def _paired(case: tuple) -> tuple[np.ndarray, list[KindPairs]]:
    refs, ref_names, queries, query_names, ok = case
    return unrelated_pairs(
        refs,
        queries,
        uploads_ok=ok,
        reference_names=ref_names,
        query_names=query_names,
        compatible=_Pairing().compatible,
    )


@settings(max_examples=60, deadline=None)
@given(photo_sets())
def test_the_nearest_matrix_is_the_smallest_compatible_pair(case: tuple) -> None:
    refs, ref_names, queries, query_names, _ = case
    pairing = _Pairing()
    nearest, _ = _paired(case)
    expected = [
        [
            min(
                (
                    int(np.unpackbits(code_a ^ code_b).sum())
                    for a, code_a in zip(names_a, codes_a, strict=True)
                    for b, code_b in zip(names_b, codes_b, strict=True)
                    if pairing.compatible(a, b)
                ),
                default=256,
            )
            for codes_b, names_b in zip(queries, query_names, strict=True)
        ]
        for codes_a, names_a in zip(refs, ref_names, strict=True)
    ]
    assert nearest.tolist() == expected


@settings(max_examples=60, deadline=None)
@given(photo_sets())
def test_each_kind_holds_exactly_its_own_pairs(case: tuple) -> None:
    refs, ref_names, queries, query_names, ok = case
    pairing = _Pairing()
    _, kinds = _paired(case)
    expected: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
    for i, (codes_a, names_a) in enumerate(zip(refs, ref_names, strict=True)):
        for j, (codes_b, names_b) in enumerate(zip(queries, query_names, strict=True)):
            if i == j or not ok[j]:
                continue
            for a, code_a in zip(names_a, codes_a, strict=True):
                for b, code_b in zip(names_b, codes_b, strict=True):
                    if pairing.compatible(a, b):
                        d = int(np.unpackbits(code_a ^ code_b).sum())
                        expected.setdefault((a, b), []).append((i, j, d))
    assert {(k.reference, k.query) for k in kinds} == set(expected)
    for kind in kinds:
        pairs = expected[(kind.reference, kind.query)]
        histogram = np.bincount([d for _, _, d in pairs], minlength=257)
        assert np.array_equal(kind.histogram, histogram)
        assert kind.pairs == len(pairs)
        assert kind.cutoff == 256  # so few pairs are all kept
        rows, cols, found = kind.rows.tolist(), kind.cols.tolist(), kind.distances.tolist()
        kept = sorted(zip(rows, cols, found, strict=True))
        assert kept == sorted(pairs)
        ones = np.ones(len(refs))
        assert kind.weight(ones) == kind.pairs
        weights = np.arange(1, len(refs) + 1, dtype=np.float64)
        assert kind.weight(weights) == pytest.approx(
            sum(weights[i] * weights[j] for i, j, _ in pairs)
        )


def test_codes_without_names_are_kinds_by_position() -> None:
    rng = np.random.default_rng(0)
    refs = [rng.integers(0, 256, size=(1, 32), dtype=np.uint8) for _ in range(5)]
    queries = [rng.integers(0, 256, size=(3, 32), dtype=np.uint8) for _ in range(5)]
    nearest, kinds = unrelated_pairs(refs, queries, uploads_ok=np.ones(5, dtype=bool))
    assert [(k.reference, k.query) for k in kinds] == [("#0", "#0"), ("#0", "#1"), ("#0", "#2")]
    assert np.array_equal(nearest, pairwise_min_distances(refs, queries))
    assert all(k.pairs == 20 for k in kinds)


def test_a_large_kind_keeps_only_its_lower_tail_pair_by_pair() -> None:
    rng = np.random.default_rng(1)
    n = 80  # 6,320 pairs, more than KEEP_ALL_UNDER
    matrix = np.clip(np.rint(rng.normal(128, 10, (n, n))), 0, 256).astype(np.int16)
    kind = matrix_kind(matrix)
    assert kind.pairs == n * (n - 1) > KEEP_ALL_UNDER
    assert kind.cutoff < 128
    assert 0.05 * kind.pairs <= kind.histogram[: kind.cutoff + 1].sum() < 0.1 * kind.pairs
    assert np.array_equal(kind.tail_histogram(np.ones(n)), kind.histogram[: kind.cutoff + 1])


def test_names_must_be_one_per_code_and_distinct() -> None:
    codes = [np.zeros((2, 32), dtype=np.uint8)] * 2
    ok = np.ones(2, dtype=bool)
    with pytest.raises(ValueError, match="same name"):
        unrelated_pairs(
            codes,
            codes,
            uploads_ok=ok,
            reference_names=[("a", "a")] * 2,
            query_names=[("a", "b")] * 2,
        )
    with pytest.raises(ValueError, match="2 codes and 1 names"):
        unrelated_pairs(
            codes, codes, uploads_ok=ok, reference_names=[("a",)] * 2, query_names=[("a", "b")] * 2
        )
    with pytest.raises(ValueError, match="at least 2 photos"):
        unrelated_pairs(codes[:1], codes[:1], uploads_ok=ok[:1])
    with pytest.raises(ValueError, match="name both"):
        unrelated_pairs(codes, codes, uploads_ok=ok, reference_names=[("a", "b")] * 2)


def _normal(n: int, mean: float, sd: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(rng.normal(mean, sd, (n, n))), 0, 256).astype(np.int16)


def test_more_kinds_of_code_pair_never_make_a_lighter_tail() -> None:
    # One kind of code pair with a wide spread (whole photos of one genre), and seven
    # narrow ones (a photo against another's rotations): the smallest distance over all
    # eight is narrower in its middle than the first kind alone, and a normal fitted to
    # it alone called the eight code pairs safer than the one they include.
    n = 160
    wide = _normal(n, 128, 12, seed=0)
    narrow = [_normal(n, 128, 7, seed=s) for s in range(1, 8)]
    nearest = np.minimum.reduce([wide, *narrow])
    one = fit_tail(wide, set_name="s", method="one", replicates=40)
    mixed_only = fit_tail(nearest, set_name="s", method="min", replicates=40)
    eight = fit_tail(
        nearest,
        set_name="s",
        method="eight",
        kinds=[
            matrix_kind(wide, reference="plain", query="plain"),
            *(matrix_kind(m, reference="plain", query=f"turned-{k}") for k, m in enumerate(narrow)),
        ],
        replicates=40,
    )
    assert mixed_only.log10_p[31] < one.log10_p[31]  # what went wrong
    assert eight.kinds == 8 and eight.heaviest == "plain x plain"
    assert all(eight.log10_p[t] >= one.log10_p[t] for t in range(100))
    assert all(eight.log10_p_upper[t] >= one.log10_p_upper[t] for t in range(257))
    assert recommend(eight, 13_400_000, 1_000_000).threshold is not None
    assert (
        recommend(eight, 13_400_000, 1_000_000).threshold
        <= recommend(  # type: ignore[operator]
            one, 13_400_000, 1_000_000
        ).threshold
    )
