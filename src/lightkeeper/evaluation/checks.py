"""The must-show checks of issue 5, computed from an evaluation rather than asserted in prose.

Each `Requirement` names transforms (by id), the method they are judged under, the
threshold and the least recall; the false-match requirement asks for no unrelated pair
of the set within the threshold, all eight variants considered. `must_show` evaluates
every requirement on one set; the report shows the table for each set (the everyday set
is the one the issue holds to it; the astronomy set is a stress case that may fail).

An added signal (any method of a run other than the built-in PDQ ones) is held to its own
two: recall >= 90% on crops up to 20% and on screenshots, and no false match; the same
crop and screenshot row is shown for pdq+dihedral, the baseline it is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lightkeeper.evaluation.harness import Evaluation

__all__ = [
    "CROPS_AND_SCREENSHOTS",
    "MUST_SHOW",
    "CheckResult",
    "Requirement",
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


MUST_SHOW: Final[tuple[Requirement, ...]] = (
    Requirement("resize >= 0.5x", "pdq", _ids("resize", "0.5x", "0.75x", "1.5x", "2x")),
    Requirement("JPEG quality >= 30", "pdq", _ids("jpeg", "q30", "q50", "q75", "q95")),
    Requirement("greyscale", "pdq", _ids("greyscale", "L")),
    Requirement("mild blur", "pdq", _ids("blur", "s0.2%", "s0.5%")),
    Requirement("brightness ±20%", "pdq", _ids("brightness", "-20%", "-10%", "+10%", "+20%")),
    Requirement(
        "overlays covering <= 10%",
        "pdq",
        _ids("text", "2%", "5%", "10%")
        + _ids("watermark", "5%", "10%")
        + _ids("sticker", "2%", "5%", "10%"),
    ),
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


def requirements(methods: tuple[str, ...]) -> list[Requirement]:
    """`MUST_SHOW`, then the crop, screenshot and false-match rows of each added signal
    (and the crop and screenshot row of its pdq+dihedral baseline)."""
    found = list(MUST_SHOW)
    for method in methods:
        if method == "pdq+dihedral" or method not in _BUILT_IN:
            found.append(
                Requirement(
                    f"crops <= 20% and screenshots ({method})",
                    method,
                    CROPS_AND_SCREENSHOTS,
                    min_recall=0.90,
                )
            )
        if method not in _BUILT_IN:
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


def must_show(evaluation: Evaluation, set_name: str) -> list[CheckResult]:
    """Every `MUST_SHOW` requirement judged on one set of the evaluation."""
    results: list[CheckResult] = []
    for req in requirements(evaluation.methods):
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
        for transform in req.transforms:
            try:
                curve = evaluation.curve(set_name, req.method, transform)
            except KeyError:
                continue
            if curve.copies:
                measured.append((curve.recall(req.threshold), transform))
        if not measured:
            results.append(
                CheckResult(
                    set_name, req.label, req.method, req.threshold, required, None, "", None
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
            )
        )
    return results
