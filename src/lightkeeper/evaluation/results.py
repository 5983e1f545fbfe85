"""What one evaluation run measured: recall curves, unrelated pairs, quality, fitted tails,
and what is needed to reproduce them; the ``accuracy.json`` layout (`Evaluation.to_json`).

These are plain records, computed by `lightkeeper.evaluation.harness` and read by the
report, the checks and the figures, and read back from a saved JSON without running
anything again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final

from lightkeeper.errors import InputError
from lightkeeper.evaluation.calibration import TailFit
from lightkeeper.evaluation.scopes import Scope

__all__ = [
    "BINS",
    "SCHEMA",
    "ClosePair",
    "CopyQuality",
    "Evaluation",
    "PairStats",
    "RecallCurve",
    "SetSummary",
]

#: Identifies the JSON layout; bumped whenever a field changes meaning or goes away.
SCHEMA: Final = "lightkeeper-accuracy/1"
BINS: Final = 257  # distances 0..256


@dataclass(frozen=True)
class RecallCurve:
    """Copies of one transform, in one set, under one method, by distance to the original."""

    set: str
    method: str
    transform: str
    family: str
    strength: str
    copies: int
    #: Copies within t of their original, t = 0..256.
    within: tuple[int, ...]
    #: … of which the copy's PDQ quality is at least the floor (what a bank would match).
    within_quality: tuple[int, ...]
    #: The photos whose copies are counted: "" every photo of the set, else a sample in
    #: words (`Scope.sample`), the same for every method counted on it.
    sample: str = ""
    #: The copies of originals whose PDQ quality passes the floor (the photos a PDQ bank
    #: can match at all; the others are counted in `SetSummary.originals_below_floor`).
    gated_copies: int = 0
    #: … of which those within t that the matcher would match: the whole image's codes
    #: count only where the copy's PDQ quality passes the floor too, as the matcher looks
    #: up no hash under it (a region code under the floor is never made). Empty in results
    #: written before these were measured.
    gated_within: tuple[int, ...] = ()

    def recall(self, threshold: int) -> float:
        """Distance only: copies within `threshold`, of every photo, whatever their quality."""
        return self.within[threshold] / self.copies if self.copies else float("nan")

    def gated_recall(self, threshold: int) -> float:
        """What the matcher finds: of the copies of photos at or above the quality floor,
        those it would match at `threshold` (NaN when not measured)."""
        if not self.gated_copies or not self.gated_within:
            return float("nan")
        return self.gated_within[threshold] / self.gated_copies


@dataclass(frozen=True)
class ClosePair:
    a: str
    b: str
    distance: int
    #: PDQ quality of each photo (the matcher leaves uploads under the floor unmatched).
    quality_a: int
    quality_b: int


@dataclass(frozen=True)
class PairStats:
    """All unordered pairs of distinct originals of one set under one method; a pair's
    distance is the smaller of its two directions (either photo as the upload).

    The gated figures count only the directions whose upload passes the PDQ quality floor
    (the matcher does not match the others): the false matches a bank could really make.
    """

    set: str
    method: str
    photos: int
    pairs: int
    histogram: tuple[int, ...]
    minimum: int | None
    closest: tuple[ClosePair, ...]
    gated_pairs: int
    gated_histogram: tuple[int, ...]
    #: For a paired method (counted over compatible code pairs only): the smallest distance
    #: over every code pair, compatible or not; what a matcher counting all would see.
    all_pairs_minimum: int | None = None

    def false_matches(self, threshold: int, *, gated: bool = False) -> int:
        return sum((self.gated_histogram if gated else self.histogram)[: threshold + 1])


@dataclass(frozen=True)
class CopyQuality:
    """How many copies of one transform in one set fall under the PDQ quality floor."""

    set: str
    transform: str
    copies: int
    below_floor: int


@dataclass(frozen=True)
class SetSummary:
    name: str
    photos: int
    copies: int
    originals_below_floor: int
    copies_below_floor: int
    #: Photos that could not be read or decoded: (file, reason).
    failed: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Evaluation:
    """Everything one run measured, with what is needed to reproduce it."""

    seed: int
    max_side: int
    limit: int | None
    signal_type: str
    quality_floor: int
    default_threshold: int
    methods: tuple[str, ...]
    transforms: tuple[str, ...]
    suite: dict[str, Any]
    sets: tuple[SetSummary, ...]
    recall: tuple[RecallCurve, ...]
    pairs: tuple[PairStats, ...]
    quality: tuple[CopyQuality, ...]
    tails: tuple[TailFit, ...]
    environment: dict[str, Any]
    seconds: float
    #: The scope of each method measured on some copies only (`Scope.describe`); a method
    #: not named here was measured on every copy.
    scopes: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    #: The methods measured over compatible code pairs only (`PairedMethod`).
    paired: tuple[str, ...] = ()

    def sample(self, method: str, set_name: str) -> str:
        """The photos of a set that `method`'s own copies are counted on ("" for every
        photo): its own sample, and the set's where the run sampled the set's copies."""
        scope = self.scopes.get(method, {})
        return str(scope.get("set_samples", {}).get(set_name, scope.get("sample", "")))

    def curve(
        self, set_name: str, method: str, transform: str, sample: str | None = None
    ) -> RecallCurve:
        """The recall curve of `method` on `transform` in a set, counted on `sample`'s
        photos; by default on the method's own (`sample(method, set_name)`)."""
        wanted = self.sample(method, set_name) if sample is None else sample
        key = (set_name, method, transform, wanted)
        for curve in self.recall:
            if (curve.set, curve.method, curve.transform, curve.sample) == key:
                return curve
        raise KeyError(key)

    def curves(self, set_name: str, method: str) -> list[RecallCurve]:
        """The method's own curves in a set (on its own photos), in suite order."""
        own = self.sample(method, set_name)
        return [
            c for c in self.recall if c.set == set_name and c.method == method and c.sample == own
        ]

    def pair_stats(self, set_name: str, method: str) -> PairStats | None:
        return next((p for p in self.pairs if (p.set, p.method) == (set_name, method)), None)

    def to_json(self) -> dict[str, Any]:
        body = dataclasses.asdict(self)
        body["tails"] = [t.to_json() for t in self.tails]
        return {"schema": SCHEMA, **body}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Evaluation:
        if data.get("schema") != SCHEMA:
            raise InputError(f"not an evaluation of schema {SCHEMA} (got {data.get('schema')!r})")
        return cls(
            seed=data["seed"],
            max_side=data["max_side"],
            limit=data["limit"],
            signal_type=data["signal_type"],
            quality_floor=data["quality_floor"],
            default_threshold=data["default_threshold"],
            methods=tuple(data["methods"]),
            transforms=tuple(data["transforms"]),
            suite=data["suite"],
            sets=tuple(
                SetSummary(**{**s, "failed": tuple(tuple(f) for f in s["failed"])})
                for s in data["sets"]
            ),
            recall=tuple(
                RecallCurve(
                    **{
                        **c,
                        "within": tuple(c["within"]),
                        "within_quality": tuple(c["within_quality"]),
                        "gated_within": tuple(c.get("gated_within", ())),
                    }
                )
                for c in data["recall"]
            ),
            pairs=tuple(
                PairStats(
                    **{
                        **p,
                        "histogram": tuple(p["histogram"]),
                        "gated_histogram": tuple(p["gated_histogram"]),
                        "closest": tuple(ClosePair(**c) for c in p["closest"]),
                    }
                )
                for p in data["pairs"]
            ),
            quality=tuple(CopyQuality(**q) for q in data["quality"]),
            tails=tuple(TailFit.from_json(t) for t in data["tails"]),
            environment=data["environment"],
            seconds=data["seconds"],
            scopes=_checked_scopes(data.get("scopes", {})),
            paired=tuple(data.get("paired", ())),
        )


def _checked_scopes(scopes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The scopes of a results file, each one a valid `Scope` (ValueError names the
    method and what is wrong)."""
    for method, scope in scopes.items():
        try:
            Scope.from_json(scope)
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"the scope of {method}: {exc}") from None
    return dict(scopes)
