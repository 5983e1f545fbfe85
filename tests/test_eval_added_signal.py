"""An added signal measured as its matcher counts (the paired reading), and the issue's crop
and screenshot check: PDQ alone and with the signal, each kind judged against 90 %."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import synthetic_photo
from lightkeeper.banks.records import REGION_NAMES
from lightkeeper.evaluation import checks
from lightkeeper.evaluation.corpus import find_sets
from lightkeeper.evaluation.harness import Evaluation, run_evaluation
from lightkeeper.evaluation.methods import (
    FAR,
    PairedMethod,
    PdqMethod,
    allowed_matrix,
    codes_array,
    copy_distances,
    pdq_of,
)
from lightkeeper.evaluation.report import Calibration, render_markdown, write_json
from lightkeeper.evaluation.results import PairStats, RecallCurve, SetSummary
from lightkeeper.evaluation.scopes import Scope
from lightkeeper.evaluation.transforms import standard_suite
from lightkeeper.signals.regions import PdqRegionsMethod, compatible

BY_ID = {t.id: t for t in standard_suite()}


def hamming(a: bytes, b: bytes) -> int:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


# -- distances over compatible code pairs only ------------------------------------------------

code_st = st.binary(min_size=32, max_size=32)
tagged_st = st.lists(st.tuples(st.integers(0, 2), code_st), min_size=1, max_size=4)
#: Tag 0 meets everything, tag 1 only tag 1, tag 2 only tag 0: like whole codes and windows.
ALLOWED = np.array([[True, True, True], [True, True, False], [True, False, False]])


def paired_min(reference: list[tuple[int, bytes]], query: list[tuple[int, bytes]]) -> int:
    found = [hamming(a, b) for ta, a in reference for tb, b in query if ALLOWED[ta, tb]]
    return min(found, default=FAR)


def split(group: list[tuple[int, bytes]]) -> tuple[np.ndarray, np.ndarray]:
    return codes_array([c for _, c in group]), np.array([t for t, _ in group], dtype=np.intp)


@settings(max_examples=60, deadline=None)
@given(tagged_st, st.lists(tagged_st, min_size=1, max_size=5))
def test_copy_distances_count_only_allowed_pairs(
    reference: list[tuple[int, bytes]], copies: list[list[tuple[int, bytes]]]
) -> None:
    ref_codes, ref_tags = split(reference)
    query_tags = np.concatenate([split(c)[1] for c in copies])
    allowed = ALLOWED[ref_tags[:, None], query_tags[None, :]]
    found = copy_distances(ref_codes, [split(c)[0] for c in copies], allowed)
    assert found.tolist() == [paired_min(reference, c) for c in copies]


def test_pairing_needs_a_mask_of_the_right_shape() -> None:
    codes = codes_array([bytes(32)])
    with pytest.raises(ValueError, match="allowed has shape"):
        copy_distances(codes, [codes], np.ones((2, 1), dtype=bool))


def test_allowed_matrix_asks_the_method_once_per_name_pair() -> None:
    asked: list[tuple[str, str]] = []

    class Asking(PdqRegionsMethod):
        def compatible(self, reference: str, query: str) -> bool:
            asked.append((reference, query))
            return compatible(reference, query)

    method, cache = Asking(), {}
    names_a, names_b = ["whole", "region:left-89"], ["whole", "region:left-97", "region:top-97"]
    first = allowed_matrix(method, names_a, names_b, cache)
    assert first.tolist() == [[True, False, False], [True, True, False]]
    assert np.array_equal(allowed_matrix(method, names_a, names_b, cache), first)
    assert len(asked) == 6


def test_the_region_method_names_its_codes_as_its_matcher_does() -> None:
    image = synthetic_photo(240, 180, seed=2)
    for method in (PdqRegionsMethod(), PdqRegionsMethod(dihedral=True)):
        assert isinstance(method, PairedMethod)
        reference = method.named_reference_codes(image)
        query = method.named_query_codes(image)
        assert reference[0] == ("whole", pdq_of(image).code)
        assert {name for name, _ in reference[1:]} <= set(REGION_NAMES)
        assert method.reference_codes(image) == list(dict.fromkeys(c for _, c in reference))
        assert method.query_codes(image) == list(dict.fromkeys(c for _, c in query))
        wholes = [name for name, _ in query if not name.startswith("region:")]
        assert wholes == (["whole"] + [f"whole:{i}" for i in range(1, 8)])[: len(wholes)]
        assert len(wholes) == (8 if method.dihedral else 1)
        assert method.compatible("whole", "whole:3")
        assert not method.compatible("whole", "region:left-97")


class Decoy:
    """A paired method whose bank and uploads share one decoy code that its matcher never
    compares: counted as the matcher counts, the decoy is invisible; over every code
    pair, everything is at distance 0."""

    name = "pdq+decoy"
    signal_type = "pdq"
    DECOY = bytes(range(32))

    def named_reference_codes(self, image: Image.Image) -> list[tuple[str, bytes]]:
        return [("whole", pdq_of(image).code), ("decoy-bank", self.DECOY)]

    def named_query_codes(self, image: Image.Image) -> list[tuple[str, bytes]]:
        return [("whole", pdq_of(image).code), ("decoy-upload", self.DECOY)]

    def reference_codes(self, image: Image.Image) -> list[bytes]:
        return [code for _, code in self.named_reference_codes(image)]

    def query_codes(self, image: Image.Image) -> list[bytes]:
        return [code for _, code in self.named_query_codes(image)]

    def compatible(self, reference: str, query: str) -> bool:
        return not (reference.startswith("decoy") and query.startswith("decoy"))


def test_the_harness_measures_a_paired_method_as_its_matcher_counts(tmp_path: Path) -> None:
    (tmp_path / "set").mkdir()
    for seed in (1, 2, 3):
        synthetic_photo(160, 120, seed=seed).save(tmp_path / "set" / f"p{seed}.png")
    suite = (BY_ID["none/none"], BY_ID["crop-edge/20%"])
    evaluation = run_evaluation(
        find_sets(tmp_path), methods=[PdqMethod(), Decoy()], suite=suite, workers=1, replicates=0
    )
    assert evaluation.paired == ("pdq+decoy",)
    for transform in ("none/none", "crop-edge/20%"):
        plain = evaluation.curve("set", "pdq", transform)
        paired = evaluation.curve("set", "pdq+decoy", transform)
        assert paired.within == plain.within  # the decoy pairs do not count
    assert evaluation.curve("set", "pdq+decoy", "crop-edge/20%").recall(31) < 1.0
    stats, plain_stats = (evaluation.pair_stats("set", m) for m in ("pdq+decoy", "pdq"))
    assert stats is not None and plain_stats is not None
    assert stats.histogram == plain_stats.histogram and stats.false_matches(31) == 0
    assert stats.all_pairs_minimum == 0  # every code pair: the decoy matches itself
    assert plain_stats.all_pairs_minimum is None  # not a paired method


def test_the_region_signal_finds_crops_pdq_misses_on_the_same_copies(tmp_path: Path) -> None:
    (tmp_path / "set").mkdir()
    for seed in (3, 4):
        synthetic_photo(320, 240, seed=seed).save(tmp_path / "set" / f"p{seed}.png")
    evaluation = run_evaluation(
        find_sets(tmp_path),
        methods=[PdqMethod(dihedral=True), PdqRegionsMethod(dihedral=True)],
        scopes={"pdq+regions+dihedral": Scope(frozenset({"crop-edge"}))},
        suite=(BY_ID["none/none"], BY_ID["crop-edge/10%"]),
        workers=1,
        replicates=0,
    )
    assert [c.transform for c in evaluation.curves("set", "pdq+regions+dihedral")] == [
        "crop-edge/10%"
    ]
    ((check,),) = [checks.crops_and_screenshots(evaluation, "set")]
    (row,) = [r for r in check.rows if r.transform == "crop-edge/10%"]
    assert (row.copies, row.baseline_recall, row.recall, row.passed) == (2, 0.0, 1.0, True)
    assert check.false_matches == 0 and check.baseline == "pdq+dihedral"


# -- the check, on figures made up for it -------------------------------------------------------

SAMPLE = "1 in 4 photos (index mod 4 = 0)"
ADDED = "pdq+regions+dihedral"


def curve(method: str, transform: str, recall: float, copies: int, sample: str) -> RecallCurve:
    """A recall curve whose copies all lie at distance 0 (recall of them) or 200."""
    found = round(recall * copies)
    within = tuple(found if t < 200 else copies for t in range(257))
    family, strength = transform.split("/")
    return RecallCurve(
        "everyday",
        method,
        transform,
        family,
        strength,
        copies,
        within,
        within,
        sample,
        gated_copies=copies,
        gated_within=within,
    )


def pairs(method: str, close: int, total: int = 100) -> PairStats:
    histogram = [0] * 257
    histogram[20] = close
    histogram[120] = total - close
    return PairStats(
        "everyday", method, 15, total, tuple(histogram), 20 if close else 120, (), 0, (0,) * 257
    )


def made_up(added: dict[str, float], *, false_matches: int = 0) -> Evaluation:
    """An evaluation with the added signal at `added` recall (default 95 %) on every crop and
    screenshot edit of a sample, and PDQ alone at 0 % on it but 50 % on every photo."""
    recall = [curve("pdq+dihedral", t, 0.5, 40, "") for t in checks.CROPS_AND_SCREENSHOTS]
    recall += [curve("pdq+dihedral", t, 0.0, 10, SAMPLE) for t in checks.CROPS_AND_SCREENSHOTS]
    recall += [
        curve(ADDED, t, added.get(t, 0.95), 10, SAMPLE) for t in checks.CROPS_AND_SCREENSHOTS
    ]
    return Evaluation(
        seed=0,
        max_side=1024,
        limit=None,
        signal_type="pdq",
        quality_floor=50,
        default_threshold=31,
        methods=("pdq+dihedral", ADDED),
        transforms=checks.CROPS_AND_SCREENSHOTS,
        suite={},
        sets=(SetSummary("everyday", 40, 480, 0, 0, ()),),
        recall=tuple(recall),
        pairs=(pairs("pdq+dihedral", 0), pairs(ADDED, false_matches)),
        quality=(),
        tails=(),
        environment={
            "machine": {"cpu": "test", "cores": 1},
            "workers": 1,
            "date": "today",
            "versions": {},
        },
        seconds=0.0,
        scopes={ADDED: Scope(frozenset({"crop-edge"}), every=4).describe(0)},
        paired=(ADDED,),
    )


def test_every_kind_at_90_percent_with_no_false_match_passes() -> None:
    (check,) = checks.crops_and_screenshots(made_up({"crop-edge/20%": 0.9}), "everyday")
    assert check.passed is True and check.failing == []
    assert check.passing == list(checks.CROPS_AND_SCREENSHOTS)  # 90 % exactly is enough
    assert (check.method, check.baseline, check.sample) == (ADDED, "pdq+dihedral", SAMPLE)
    assert len(check.rows) == 12  # 2 crop kinds x 4 strengths up to 20 %, 4 screenshot layouts


def test_a_kind_under_90_percent_fails_and_is_named() -> None:
    evaluation = made_up({"crop-edge/20%": 0.8, "screenshot/phone": 0.7})
    (check,) = checks.crops_and_screenshots(evaluation, "everyday")
    assert check.passed is False
    assert check.failing == ["crop-edge/20%", "screenshot/phone"]
    assert len(check.passing) == 10
    text = render_markdown(evaluation, Calibration())
    assert "10 of 12 crop and screenshot edits reach 90% at 31" in text
    assert "below it: crop-edge/20%, screenshot/phone" in text
    assert "| crop-edge/20% | 10 | 0.0% | 80.0% | FAIL |" in text


def test_a_false_match_fails_the_check_whatever_the_recall() -> None:
    (check,) = checks.crops_and_screenshots(made_up({}, false_matches=1), "everyday")
    assert check.failing == [] and check.false_matches == 1
    assert check.passed is False


def test_pdq_alone_is_read_on_the_signals_own_copies() -> None:
    (check,) = checks.crops_and_screenshots(made_up({}), "everyday")
    assert {r.baseline_recall for r in check.rows} == {0.0}  # not the 50 % of every photo
    assert {r.copies for r in check.rows} == {10}


def test_a_signal_without_copies_in_a_set_is_not_judged() -> None:
    evaluation = made_up({})
    (check,) = checks.crops_and_screenshots(evaluation, "astro")
    assert not check.measured and check.passed is None
    assert {r.passed for r in check.rows} == {None} and check.false_matches is None


def test_the_baseline_has_the_same_variants_as_the_signal() -> None:
    assert checks.baseline_of("pdq+regions+dihedral") == "pdq+dihedral"
    assert checks.baseline_of("pdq+regions") == "pdq"
    assert checks.added_methods(("pdq", "pdq+dihedral", "pdq+regions")) == ["pdq+regions"]


def test_the_json_carries_each_kinds_verdict(tmp_path: Path) -> None:
    write_json(made_up({"crop-centre/5%": 0.5}), tmp_path / "accuracy.json")
    data = orjson.loads((tmp_path / "accuracy.json").read_bytes())
    (check,) = data["crops_and_screenshots"]
    assert check["failing"] == ["crop-centre/5%"] and check["passed"] is False
    row = next(r for r in check["rows"] if r["transform"] == "crop-centre/5%")
    assert row == {
        "transform": "crop-centre/5%",
        "copies": 10,
        "baseline_recall": 0.0,
        "recall": 0.5,
        "passed": False,
    }


def test_a_signal_is_held_only_to_the_recall_rows_of_the_edits_it_was_measured_on() -> None:
    crops = Scope(frozenset({"crop-edge", "screenshot"}), every=4).describe(0)
    overlays = Scope(frozenset({"text", "watermark", "sticker"})).describe(0)
    labels = [
        r.label
        for r in checks.requirements(
            ("pdq", "pdq+dihedral", "pdq+regions", "pdq+tiles"),
            {"pdq+regions": crops, "pdq+tiles": overlays},
        )
    ][len(checks.MUST_SHOW) :]
    assert labels == [
        "crops <= 20% and screenshots (pdq+dihedral)",
        "crops <= 20% and screenshots (pdq+regions)",
        "no false match among distinct photos (pdq+regions)",
        "overlays covering <= 10% (pdq+tiles)",
        "no false match among distinct photos (pdq+tiles)",
    ]
    # Without scopes (every edit measured) each added signal has all three.
    assert len(checks.requirements(("pdq", "pdq+regions"))) == len(checks.MUST_SHOW) + 3
