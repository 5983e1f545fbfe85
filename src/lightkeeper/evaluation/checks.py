"""The must-show checks of issue 5, computed from an evaluation rather than asserted in prose.

Each `Requirement` names transforms (by id), the method they are judged under, the threshold
and the least recall; the false-match requirement asks for no unrelated pair of the set
within the threshold, all eight variants considered.

Recall is judged as the product finds copies (`RecallCurve.gated_recall`): over the photos
whose PDQ passes the quality floor, the copies the matcher would match, a copy under the
floor counting only through the region codes that pass it (the matcher looks up no hash
under the floor). A photo under the floor has a hash that describes too little of it to be
matched safely, and most of its copies fall under the floor too; the report counts such
photos apart (`SetSummary.originals_below_floor`), and their copies count neither as found
because their distance happens to be small nor as missed. Each check also carries the
distance-only figure over every photo (`CheckResult.every_photo`), shown beside it.
`must_show` evaluates every requirement on one set; the report shows the table for each set
(the everyday set is the one the issue holds to it; the astronomy set is a stress case that
may fail).

An added signal (any method of a run other than the built-in PDQ ones) is held to its own
three: recall >= 90% on crops up to 20% and on screenshots, the overlay row's 99 %, and no
false match (a recall row only where the run measured the signal on those edits at all:
`requirements` with the run's scopes); the same crop and screenshot row is shown for
pdq+dihedral, the baseline it is compared with.

That row gives the worst case only. `crops_and_screenshots` is the issue's second check in
full: for each added signal, each crop kind and strength up to 20 % and each screenshot
layout, the recall of PDQ alone (`baseline_of`: with the same eight variants or none) and
with the signal, on the same copies, each judged against 90 %; and the signal's false
matches among the set's unrelated pairs. Which kinds pass and which do not is read off the
figures, never written by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from lightkeeper.evaluation.harness import Evaluation

__all__ = [
    "ADDED_MIN_RECALL",
    "CROPS_AND_SCREENSHOTS",
    "MUST_SHOW",
    "OVERLAYS",
    "CheckResult",
    "CropScreenshotCheck",
    "CropScreenshotRow",
    "Requirement",
    "added_methods",
    "baseline_of",
    "crops_and_screenshots",
    "measures",
    "must_show",
    "requirements",
]


@dataclass(frozen=True)
class Requirement:
    label: str
    method: str
    #: Transform ids; empty for the false-match requirement.
    transforms: tuple[str, ...]
    threshold: int = 31
    min_recall: float = 0.99


def _ids(family: str, *strengths: str) -> tuple[str, ...]:
    return tuple(f"{family}/{s}" for s in strengths)


#: Overlays covering up to 10 % of the picture: captions, watermarks and stickers.
OVERLAYS: Final = (
    _ids("text", "2%", "5%", "10%")
    + _ids("watermark", "5%", "10%")
    + _ids("sticker", "2%", "5%", "10%")
)

MUST_SHOW: Final[tuple[Requirement, ...]] = (
    Requirement("resize >= 0.5x", "pdq", _ids("resize", "0.5x", "0.75x", "1.5x", "2x")),
    Requirement("JPEG quality >= 30", "pdq", _ids("jpeg", "q30", "q50", "q75", "q95")),
    Requirement("greyscale", "pdq", _ids("greyscale", "L")),
    Requirement("mild blur", "pdq", _ids("blur", "s0.2%", "s0.5%")),
    Requirement("brightness ±20%", "pdq", _ids("brightness", "-20%", "-10%", "+10%", "+20%")),
    Requirement("overlays covering <= 10%", "pdq", OVERLAYS),
    Requirement(
        "flips and 90° rotations (with variants)",
        "pdq+dihedral",
        _ids(
            "dihedral",
            "rotate90",
            "rotate180",
            "rotate270",
            "mirror",
            "flip",
            "transpose",
            "transverse",
        ),
    ),
    Requirement("no false match among distinct photos (8 variants)", "pdq+dihedral", ()),
)


#: Crops up to 20% and screenshot embeddings: what an added region signal must catch.
CROPS_AND_SCREENSHOTS: Final = (
    _ids("crop-centre", "2%", "5%", "10%", "20%")
    + _ids("crop-edge", "2%", "5%", "10%", "20%")
    + _ids("screenshot", "phone", "phone-feed", "desktop", "desktop-thumb")
)
_BUILT_IN: Final = frozenset({"pdq", "pdq+dihedral"})
#: What an added signal must reach on each crop and screenshot row.
ADDED_MIN_RECALL: Final = 0.90


def added_methods(methods: tuple[str, ...]) -> list[str]:
    """The methods of a run that are added signals (not the built-in PDQ ones)."""
    return [m for m in methods if m not in _BUILT_IN]


def baseline_of(method: str) -> str:
    """PDQ alone, as the added signal would match without its extra codes: with the eight
    variants when the signal's name says it uses them, plain otherwise."""
    return "pdq+dihedral" if method.endswith("+dihedral") else "pdq"


def _families(transforms: tuple[str, ...]) -> set[str]:
    return {t.partition("/")[0] for t in transforms}


def measures(
    scopes: Mapping[str, Mapping[str, Any]], method: str, transforms: tuple[str, ...]
) -> bool:
    """Whether a run's `scopes` (`Evaluation.scopes`) let `method` measure any of
    `transforms` (a method without a scope is measured on every edit)."""
    families = scopes.get(method, {}).get("families")
    return families is None or bool(_families(transforms) & set(families))


def requirements(
    methods: tuple[str, ...], scopes: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Requirement]:
    """`MUST_SHOW`, then the crop, screenshot and false-match rows of each added signal
    (and the crop and screenshot row of its pdq+dihedral baseline); an added signal's
    recall rows only where its scope (`scopes`, by method) covers those edits."""
    found = list(MUST_SHOW)
    scopes = scopes or {}
    for method in methods:
        added = method not in _BUILT_IN
        if method == "pdq+dihedral" or (added and measures(scopes, method, CROPS_AND_SCREENSHOTS)):
            found.append(
                Requirement(
                    f"crops <= 20% and screenshots ({method})",
                    method,
                    CROPS_AND_SCREENSHOTS,
                    min_recall=0.90,
                )
            )
        if added and measures(scopes, method, OVERLAYS):
            found.append(Requirement(f"overlays covering <= 10% ({method})", method, OVERLAYS))
        if added:
            found.append(
                Requirement(f"no false match among distinct photos ({method})", method, ())
            )
    return found


@dataclass(frozen=True)
class CheckResult:
    set: str
    label: str
    method: str
    threshold: int
    #: "recall >= 99%" or "0 false matches".
    required: str
    #: The worst recall over the transforms, or the number of false matches.
    measured: float | None
    #: The transform with the worst recall, or the closest pair ("a ~ b").
    worst: str
    #: None when the run did not measure it (method or transforms not in the run).
    passed: bool | None
    #: For a recall row: the worst recall by distance alone over every photo of the set,
    #: quality aside (what the figure would be without the floor), and its transform.
    every_photo: float | None = None
    every_photo_worst: str = ""


def must_show(evaluation: Evaluation, set_name: str) -> list[CheckResult]:
    """Every `MUST_SHOW` requirement judged on one set of the evaluation."""
    results: list[CheckResult] = []
    for req in requirements(evaluation.methods, evaluation.scopes):
        if not req.transforms:
            stats = evaluation.pair_stats(set_name, req.method)
            if stats is None:
                results.append(
                    CheckResult(
                        set_name,
                        req.label,
                        req.method,
                        req.threshold,
                        "0 false matches",
                        None,
                        "",
                        None,
                    )
                )
                continue
            count = stats.false_matches(req.threshold)
            closest = stats.closest[0] if stats.closest else None
            worst = f"{closest.a} ~ {closest.b} ({closest.distance})" if closest else ""
            results.append(
                CheckResult(
                    set_name,
                    req.label,
                    req.method,
                    req.threshold,
                    "0 false matches",
                    float(count),
                    worst,
                    count == 0,
                )
            )
            continue
        required = f"recall >= {req.min_recall:.0%}"
        measured: list[tuple[float, str]] = []
        every: list[tuple[float, str]] = []
        for transform in req.transforms:
            try:
                curve = evaluation.curve(set_name, req.method, transform)
            except KeyError:
                continue
            if curve.gated_copies:
                measured.append((curve.gated_recall(req.threshold), transform))
            if curve.copies:
                every.append((curve.recall(req.threshold), transform))
        every_recall, every_transform = min(every) if every else (None, "")
        if not measured:
            # No copy of a photo above the floor (or a file written before gated figures
            # were kept): not judged, but the distance-only figure is still shown.
            results.append(
                CheckResult(
                    set_name,
                    req.label,
                    req.method,
                    req.threshold,
                    required,
                    None,
                    "",
                    None,
                    every_recall,
                    every_transform,
                )
            )
            continue
        recall, transform = min(measured)
        results.append(
            CheckResult(
                set_name,
                req.label,
                req.method,
                req.threshold,
                required,
                recall,
                transform,
                recall >= req.min_recall,
                every_recall,
                every_transform,
            )
        )
    return results


@dataclass(frozen=True)
class CropScreenshotRow:
    """One crop kind and strength, or one screenshot layout, under one added signal."""

    transform: str
    #: Copies the signal was measured on (None: not measured in this set).
    copies: int | None
    #: Recall of PDQ alone (`CropScreenshotCheck.baseline`) on the same copies, and with the
    #: signal, at the threshold; None where not measured.
    baseline_recall: float | None
    recall: float | None
    passed: bool | None


@dataclass(frozen=True)
class CropScreenshotCheck:
    """The issue's crop and screenshot check for one added signal in one set."""

    set: str
    method: str
    baseline: str
    threshold: int
    min_recall: float
    #: The photos the signal's copies were measured on ("" every photo of the set).
    sample: str
    rows: tuple[CropScreenshotRow, ...]
    #: Unrelated pairs of the set within the threshold under the signal (all its codes,
    #: paired as its matcher counts), with the number of pairs and the closest; None when
    #: the run has no pairs for it.
    false_matches: int | None
    pairs: int | None
    closest: int | None
    baseline_false_matches: int | None

    @property
    def passing(self) -> list[str]:
        return [r.transform for r in self.rows if r.passed]

    @property
    def failing(self) -> list[str]:
        return [r.transform for r in self.rows if r.passed is False]

    @property
    def measured(self) -> bool:
        return any(r.passed is not None for r in self.rows)

    @property
    def passed(self) -> bool | None:
        """Every measured row reaches the least recall and no false match; None when no
        row was measured (the verdict on the recall and on the pairs is shown apart)."""
        if not self.measured or self.false_matches is None:
            return None
        return not self.failing and self.false_matches == 0


def _recall(
    evaluation: Evaluation, set_name: str, method: str, transform: str, sample: str
) -> tuple[int, float] | None:
    try:
        curve = evaluation.curve(set_name, method, transform, sample)
    except KeyError:
        return None
    if not curve.gated_copies:
        return None
    return curve.gated_copies, curve.gated_recall(evaluation.default_threshold)


def crops_and_screenshots(evaluation: Evaluation, set_name: str) -> list[CropScreenshotCheck]:
    """The crop and screenshot check of every added signal of the run in one set: per
    transform of `CROPS_AND_SCREENSHOTS`, PDQ alone and with the signal on the same copies
    (the signal's own photo sample) at the default threshold, as the product finds them
    (`RecallCurve.gated_recall`: copies of the photos at or above the quality floor), each
    row judged against `ADDED_MIN_RECALL`; and the signal's false matches among the set's
    unrelated pairs."""
    threshold = evaluation.default_threshold
    found: list[CropScreenshotCheck] = []
    for method in added_methods(evaluation.methods):
        baseline = baseline_of(method)
        sample = evaluation.sample(method, set_name)
        rows = []
        for transform in CROPS_AND_SCREENSHOTS:
            mine = _recall(evaluation, set_name, method, transform, sample)
            base = _recall(evaluation, set_name, baseline, transform, sample)
            rows.append(
                CropScreenshotRow(
                    transform=transform,
                    copies=mine[0] if mine else None,
                    baseline_recall=base[1] if base else None,
                    recall=mine[1] if mine else None,
                    passed=(mine[1] >= ADDED_MIN_RECALL) if mine else None,
                )
            )
        stats = evaluation.pair_stats(set_name, method)
        base_stats = evaluation.pair_stats(set_name, baseline)
        found.append(
            CropScreenshotCheck(
                set=set_name,
                method=method,
                baseline=baseline,
                threshold=threshold,
                min_recall=ADDED_MIN_RECALL,
                sample=sample,
                rows=tuple(rows),
                false_matches=stats.false_matches(threshold) if stats else None,
                pairs=stats.pairs if stats else None,
                closest=stats.minimum if stats else None,
                baseline_false_matches=base_stats.false_matches(threshold) if base_stats else None,
            )
        )
    return found
