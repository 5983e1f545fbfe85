"""Accuracy evaluation: how often a method finds edited copies of listed photos (recall),
how close unrelated photos come (false matches), and which threshold a list size and an
upload volume allow (calibration). DESIGN §5, step 3; docs/accuracy.md has the figures.

    from lightkeeper.evaluation import find_sets, run_evaluation, write_report
    evaluation = run_evaluation(find_sets(Path("corpus")), limit=20)
    write_report(evaluation, Path("accuracy-report"))

Another signal is measured with the same harness by implementing `Method` and passing it
in ``methods=[...]``, or by registering it in `METHOD_FACTORIES` for ``lightkeeper eval
--method NAME``; `PairedMethod` when its matcher compares only some code pairs, and a
`Scope` (``scopes={name: Scope(...)}``) when it is too slow for every copy of every photo.
`crops_and_screenshots` is the crop and screenshot check an added signal is held to.
"""

from __future__ import annotations

from lightkeeper.evaluation.calibration import (
    DEFAULT_TARGET,
    Recommendation,
    TailFit,
    calibration_table,
    fit_tail,
    recommend,
)
from lightkeeper.evaluation.checks import (
    MUST_SHOW,
    CheckResult,
    CropScreenshotCheck,
    Requirement,
    crops_and_screenshots,
    must_show,
)
from lightkeeper.evaluation.corpus import PhotoSet, ensure_corpus, find_sets
from lightkeeper.evaluation.harness import Evaluation, load_original, run_evaluation
from lightkeeper.evaluation.methods import (
    METHOD_FACTORIES,
    Method,
    PairedMethod,
    PdqMethod,
    get_method,
    pairwise_min_distances,
)
from lightkeeper.evaluation.report import Calibration, read_json, write_report
from lightkeeper.evaluation.scopes import REGION_FAMILIES, Scope, parse_method_specs
from lightkeeper.evaluation.transforms import FAMILIES, Transform, standard_suite, transform_rng

__all__ = [
    "DEFAULT_TARGET",
    "FAMILIES",
    "METHOD_FACTORIES",
    "MUST_SHOW",
    "REGION_FAMILIES",
    "Calibration",
    "CheckResult",
    "CropScreenshotCheck",
    "Evaluation",
    "Method",
    "PairedMethod",
    "PdqMethod",
    "PhotoSet",
    "Recommendation",
    "Requirement",
    "Scope",
    "TailFit",
    "Transform",
    "calibration_table",
    "crops_and_screenshots",
    "ensure_corpus",
    "find_sets",
    "fit_tail",
    "get_method",
    "load_original",
    "must_show",
    "pairwise_min_distances",
    "parse_method_specs",
    "read_json",
    "recommend",
    "run_evaluation",
    "standard_suite",
    "transform_rng",
    "write_report",
]
