"""Unrelated pairs, kind by kind: every photo of a set as the banked reference against every
other photo as the upload, split by the *kind* of code pair.

A method compares a reference and an upload through several code pairs (the upload's eight
rotations and flips, a bank's windows and tiles …), and matches when any one of them is
within the threshold. The calibration (`lightkeeper.evaluation.calibration`) bounds the
chance of that by the sum over the kinds of code pair, each fitted on its own: the kinds are
populations of their own (a tile of a sky meets a tile of another sky far more often than a
whole photo meets a rotated one), while the smallest distance over all of them mixes them
into a distribution whose lower tail is not the extrapolation of its middle.

A kind is one (reference code name, query code name) pair that the method counts: for a
`PairedMethod` its named codes and `compatible`; for any other method the codes' positions
("#0", "#1" …), every pair counting. A photo has a kind's pair with another when it has the
reference code and the other has the query code.

For each kind, `KindPairs` keeps the histogram of its pairs and, to refit them with photos
resampled (the calibration's bootstrap), the pairs in its lower tail; `unrelated_pairs` also
gives the (n, n) matrix of the smallest distance over the counted code pairs, as the
matcher compares a reference and an upload.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from lightkeeper.evaluation.methods import CODE_BITS, FAR, code_signs

__all__ = ["TAIL_SHARE", "KindPairs", "matrix_kind", "unrelated_pairs"]

#: The share of a kind's pairs kept pair by pair (its lower tail), for the bootstrap: the
#: calibration fits up to 1 % of the pairs, and a resample's 1 % point lies well within 5 %.
TAIL_SHARE: Final = 0.05
#: Under this many pairs a kind keeps every pair (no tail fit is possible on so few).
KEEP_ALL_UNDER: Final = 4_000


@dataclass(frozen=True, eq=False)
class KindPairs:
    """The unrelated pairs of one kind of code pair (see the module docstring).

    Pairs are ordered (reference i, upload j), i != j, where photo i has the reference code
    and photo j the query code and counts as an upload (`uploads`).
    """

    reference: str
    query: str
    #: (n,) which photos have the reference code …
    references: NDArray[np.bool_]
    #: … and which have the query code and count as uploads.
    uploads: NDArray[np.bool_]
    #: (CODE_BITS + 1,) distances of every pair.
    histogram: NDArray[np.int64]
    #: Every pair within `cutoff`: reference, upload and distance.
    rows: NDArray[np.intp]
    cols: NDArray[np.intp]
    distances: NDArray[np.intp]
    cutoff: int

    @property
    def name(self) -> str:
        return f"{self.reference} x {self.query}"

    @property
    def pairs(self) -> int:
        return int(self.histogram.sum())

    def weight(self, photo_weight: NDArray[np.float64]) -> float:
        """The pairs' total weight when photo i counts `photo_weight[i]` times (a pair
        weighs the product of its photos')."""
        refs = photo_weight * self.references
        ups = photo_weight * self.uploads
        return float(refs.sum() * ups.sum() - (refs * ups).sum())

    def tail_histogram(self, photo_weight: NDArray[np.float64]) -> NDArray[np.float64]:
        """(cutoff + 1,) the weighted histogram of the pairs within `cutoff`."""
        weights = photo_weight[self.rows] * photo_weight[self.cols]
        return np.bincount(self.distances, weights, self.cutoff + 1).astype(np.float64)


def _kind(
    reference: str,
    query: str,
    distances: NDArray[np.intp],
    references: NDArray[np.bool_],
    uploads: NDArray[np.bool_],
) -> KindPairs:
    """One kind from the (n, n) distances of its code pair (meaningful where both are)."""
    n = len(references)
    counted = references[:, None] & uploads[None, :] & ~np.eye(n, dtype=np.bool_)
    values = distances[counted]
    histogram = np.bincount(values, minlength=CODE_BITS + 1).astype(np.int64)
    cutoff = CODE_BITS
    if len(values) >= KEEP_ALL_UNDER:
        cutoff = int(np.searchsorted(np.cumsum(histogram), TAIL_SHARE * len(values)))
    rows, cols = np.nonzero(counted & (distances <= cutoff))
    return KindPairs(
        reference=reference,
        query=query,
        references=references,
        uploads=uploads,
        histogram=histogram,
        rows=rows.astype(np.intp),
        cols=cols.astype(np.intp),
        distances=distances[rows, cols].astype(np.intp),
        cutoff=cutoff,
    )


def matrix_kind(
    distances: NDArray[np.integer],
    uploads_ok: NDArray[np.bool_] | None = None,
    *,
    reference: str = "#0",
    query: str = "#0",
) -> KindPairs:
    """A single kind, so named, from a (n, n) matrix of distances (reference i to upload
    j): for a method of one code per photo, or a matrix measured elsewhere."""
    n = distances.shape[0]
    if distances.ndim != 2 or distances.shape != (n, n) or n < 2:
        raise ValueError(f"expected a square matrix of at least 2 x 2, got {distances.shape}")
    every = np.ones(n, dtype=np.bool_)
    ok = every if uploads_ok is None else np.asarray(uploads_ok, dtype=np.bool_)
    cells = np.clip(distances, 0, CODE_BITS).astype(np.intp)
    return _kind(reference, query, cells, every, ok.copy())


def _by_name(
    groups: Sequence[NDArray[np.uint8]], names: Sequence[Sequence[str]] | None
) -> dict[str, tuple[NDArray[np.float32], NDArray[np.bool_]]]:
    """Each code name's codes as ±1 rows, one per photo (zero where the photo lacks it),
    and which photos have it."""
    n = len(groups)
    table: dict[str, tuple[NDArray[np.float32], NDArray[np.bool_]]] = {}
    for i, group in enumerate(groups):
        labels = [f"#{k}" for k in range(len(group))] if names is None else list(names[i])
        if len(labels) != len(group):
            raise ValueError(f"photo {i} has {len(group)} codes and {len(labels)} names")
        if len(set(labels)) != len(labels):
            raise ValueError(f"photo {i} has two codes of the same name")
        for label, signs in zip(labels, code_signs(group), strict=True):
            if label not in table:
                table[label] = (
                    np.zeros((n, CODE_BITS), dtype=np.float32),
                    np.zeros(n, dtype=np.bool_),
                )
            table[label][0][i] = signs
            table[label][1][i] = True
    return table


def unrelated_pairs(
    references: Sequence[NDArray[np.uint8]],
    queries: Sequence[NDArray[np.uint8]],
    *,
    uploads_ok: NDArray[np.bool_],
    reference_names: Sequence[Sequence[str]] | None = None,
    query_names: Sequence[Sequence[str]] | None = None,
    compatible: Callable[[str, str], bool] | None = None,
) -> tuple[NDArray[np.int16], list[KindPairs]]:
    """The smallest distance over the counted code pairs of every (reference i, upload j),
    as a (n, n) matrix (at most CODE_BITS; the diagonal and every upload included), and the
    kinds of code pair, each with the pairs of distinct photos whose upload is ok.

    `references[i]` and `queries[i]` are photo i's codes ((k, 32) uint8); with names (one
    per code, distinct within a photo) and `compatible`, only the pairs it allows count and
    a kind is a pair of names; without, codes are named by position and every pair counts.
    """
    n = len(references)
    if len(queries) != n or len(uploads_ok) != n or n < 2:
        raise ValueError("need the codes of at least 2 photos, as references and as queries")
    if (reference_names is None) != (query_names is None) or (
        compatible is not None and reference_names is None
    ):
        raise ValueError("name both the reference and the query codes to pair them")
    ref_table = _by_name(references, reference_names)
    query_table = _by_name(queries, query_names)
    ok = np.asarray(uploads_ok, dtype=np.bool_)
    nearest = np.full((n, n), FAR, dtype=np.int16)
    kinds: list[KindPairs] = []
    for ref_name, (ref_signs, has_ref) in ref_table.items():
        counted = [name for name in query_table if compatible is None or compatible(ref_name, name)]
        if not counted:
            continue
        stacked = np.concatenate([query_table[name][0] for name in counted])
        all_distances = np.rint((CODE_BITS - ref_signs @ stacked.T) * 0.5).astype(np.intp)
        for k, query_name in enumerate(counted):
            distances = all_distances[:, k * n : (k + 1) * n]
            has_query = query_table[query_name][1]
            both = has_ref[:, None] & has_query[None, :]
            np.minimum(nearest, distances, out=nearest, where=both, casting="unsafe")
            uploads = has_query & ok
            if has_ref.any() and uploads.any():
                kinds.append(_kind(ref_name, query_name, distances, has_ref, uploads))
    return np.minimum(nearest, CODE_BITS), [k for k in kinds if k.pairs]
