"""The evaluation harness: the Method contract, distances, photo sets, and what a run measures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageEnhance, ImageOps

from conftest import synthetic_photo
from lightkeeper.errors import InputError
from lightkeeper.evaluation import checks
from lightkeeper.evaluation.corpus import PhotoSet, ensure_corpus, find_sets, missing_files
from lightkeeper.evaluation.harness import Evaluation, load_original, run_evaluation
from lightkeeper.evaluation.methods import (
    METHOD_FACTORIES,
    Method,
    PdqMethod,
    codes_array,
    copy_distances,
    get_method,
    pairwise_min_distances,
    pdq_of,
)
from lightkeeper.evaluation.tables import check_cell, pct
from lightkeeper.evaluation.transforms import Transform, standard_suite
from lightkeeper.signals.pdq import hash_pixels, hash_pixels_dihedral, hex_to_code

BY_ID = {t.id: t for t in standard_suite()}
SMALL_SUITE = tuple(
    BY_ID[i]
    for i in ("none/none", "jpeg/q75", "dihedral/transpose", "crop-centre/40%", "greyscale/L")
)

code_st = st.binary(min_size=32, max_size=32)
group_st = st.lists(code_st, min_size=1, max_size=4)


def hamming(a: bytes, b: bytes) -> int:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


def min_distance(a: list[bytes], b: list[bytes]) -> int:
    return min(hamming(x, y) for x in a for y in b)


# -- distances ----------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(group_st, min_size=1, max_size=6), st.lists(group_st, min_size=1, max_size=6))
def test_pairwise_min_distances_is_the_smallest_distance_of_any_code_pair(
    groups_a: list[list[bytes]], groups_b: list[list[bytes]]
) -> None:
    matrix = pairwise_min_distances(
        [codes_array(g) for g in groups_a], [codes_array(g) for g in groups_b]
    )
    expected = [[min_distance(a, b) for b in groups_b] for a in groups_a]
    assert matrix.tolist() == expected


def test_pairwise_min_distances_works_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    from lightkeeper.evaluation import methods

    rng = np.random.default_rng(5)
    groups_a = [rng.integers(0, 256, (int(k), 32), dtype=np.uint8) for k in rng.integers(1, 5, 30)]
    groups_b = [rng.integers(0, 256, (int(k), 32), dtype=np.uint8) for k in rng.integers(1, 5, 20)]
    whole = pairwise_min_distances(groups_a, groups_b)
    monkeypatch.setattr(methods, "_BLOCK_CELLS", 100)  # a few groups per block
    assert np.array_equal(pairwise_min_distances(groups_a, groups_b), whole)


@settings(max_examples=60, deadline=None)
@given(group_st, st.lists(group_st, min_size=1, max_size=6))
def test_copy_distances_match_brute_force(
    reference: list[bytes], copies: list[list[bytes]]
) -> None:
    found = copy_distances(codes_array(reference), [codes_array(c) for c in copies])
    assert found.tolist() == [min_distance(reference, c) for c in copies]


def test_codes_must_be_present_and_32_bytes() -> None:
    with pytest.raises(ValueError, match="at least one code"):
        codes_array([])
    with pytest.raises(ValueError, match="32 bytes"):
        codes_array([b"\x00" * 31])


# -- the Method contract ----------------------------------------------------------------------


def test_pdq_methods_give_the_exact_pdq_of_the_image() -> None:
    image = synthetic_photo(200, 150, seed=3)
    rgb = np.asarray(image)
    plain_hex, quality = hash_pixels(rgb)
    variants, _ = hash_pixels_dihedral(rgb)
    assert PdqMethod().reference_codes(image) == [hex_to_code(plain_hex)]
    assert PdqMethod().query_codes(image) == [hex_to_code(plain_hex)]
    assert PdqMethod(dihedral=True).query_codes(image) == [hex_to_code(v) for v in variants]
    assert pdq_of(image).quality == quality


def test_pdq_of_a_greyscale_image_is_that_of_its_rgb() -> None:
    grey = synthetic_photo(120, 90, seed=4).convert("L")
    assert pdq_of(grey).code == pdq_of(grey.convert("RGB")).code


def test_registry_names_its_methods_and_refuses_unknown_ones() -> None:
    for name in METHOD_FACTORIES:
        method = get_method(name)
        assert isinstance(method, Method) and method.name == name
    with pytest.raises(ValueError, match=r"unknown evaluation method 'nope' \(known: pdq, "):
        get_method("nope")


class CentreRegions:
    """A toy second signal, as another engineer would plug one in: the bank also holds the
    PDQ of the original's central region, so a centre crop is found."""

    name = "pdq+centre"
    signal_type = "pdq"

    def reference_codes(self, image: Image.Image) -> list[bytes]:
        w, h = image.size
        centre = image.crop((w // 5, h // 5, w - w // 5, h - h // 5))
        return [pdq_of(image).code, pdq_of(centre).code]

    def query_codes(self, image: Image.Image) -> list[bytes]:
        return [pdq_of(image).code]


# -- photo sets ---------------------------------------------------------------------------------


def write_set(root: Path, name: str, seeds: list[int], size: tuple[int, int] = (160, 120)) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    for seed in seeds:
        synthetic_photo(*size, seed=seed).save(folder / f"p{seed:02d}.png")


def test_each_subdirectory_is_a_set_and_loose_photos_are_one_more(tmp_path: Path) -> None:
    write_set(tmp_path, "b_set", [1, 2])
    write_set(tmp_path, "a_set", [3])
    (tmp_path / "a_set" / "nested").mkdir()
    synthetic_photo(40, 30).save(tmp_path / "a_set" / "nested" / "deep.jpg")
    (tmp_path / "a_set" / "notes.txt").write_text("not a photo")
    synthetic_photo(40, 30).save(tmp_path / "loose.png")
    (tmp_path / "empty").mkdir()
    sets = find_sets(tmp_path)
    assert [s.name for s in sets] == ["a_set", "b_set", tmp_path.name]
    assert [p.name for p in sets[0].photos] == ["deep.jpg", "p03.png"]
    assert [s.name for s in find_sets(tmp_path, ["b_set"])] == ["b_set"]


def test_photo_set_errors_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a directory"):
        find_sets(tmp_path / "missing")
    with pytest.raises(InputError, match="no photos found"):
        find_sets(tmp_path)
    write_set(tmp_path, "real", [1])
    with pytest.raises(InputError, match=r"no photo set called astro \(found: real\)"):
        find_sets(tmp_path, ["astro"])


FAKE_BUILDER = """
import csv, pathlib, sys
rows = list(csv.DictReader(open(sys.argv[1])))
for row in rows:
    if row["file"] == "broken.png":
        continue
    target = pathlib.Path(sys.argv[2]) / row["set"] / row["file"]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"photo")
print(f"{len(rows) - 1} of {len(rows)} files rebuilt")
sys.exit(int(pathlib.Path(sys.argv[1]).with_name("fail").exists()))
"""


def fake_manifest(folder: Path, files: list[tuple[str, str]]) -> Path:
    folder.mkdir()
    (folder / "build_from_manifest.py").write_text(FAKE_BUILDER)
    lines = ["set,file"] + [f"{s},{f}" for s, f in files]
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def test_ensure_corpus_builds_missing_files_once(tmp_path: Path) -> None:
    manifest = fake_manifest(tmp_path / "shared", [("A_x", "a.png"), ("A_y", "b.png")])
    root = tmp_path / "corpus"
    assert missing_files(root, manifest) == ["A_x/a.png", "A_y/b.png"]
    assert ensure_corpus(root, manifest) == 0
    assert (root / "A_y" / "b.png").read_bytes() == b"photo"
    (root / "A_y" / "b.png").write_bytes(b"kept")
    assert ensure_corpus(root, manifest) == 0  # complete: the builder does not run again
    assert (root / "A_y" / "b.png").read_bytes() == b"kept"


def test_ensure_corpus_reports_files_it_could_not_build(tmp_path: Path) -> None:
    manifest = fake_manifest(tmp_path / "shared", [("A_x", "a.png"), ("A_x", "broken.png")])
    assert ensure_corpus(tmp_path / "corpus", manifest) == 1


def test_a_failing_corpus_build_is_an_input_error(tmp_path: Path) -> None:
    manifest = fake_manifest(tmp_path / "shared", [("A_x", "a.png")])
    (manifest.parent / "fail").touch()
    with pytest.raises(InputError, match="apt-get update"):
        ensure_corpus(tmp_path / "corpus", manifest)


# -- a run ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    write_set(root, "everyday", [1, 2, 3, 4])
    write_set(root, "stress", [5, 6, 7])
    return root


@pytest.fixture(scope="module")
def evaluation(photo_root: Path) -> Evaluation:
    methods = [PdqMethod(), PdqMethod(dihedral=True), CentreRegions()]
    return run_evaluation(
        find_sets(photo_root), methods=methods, suite=SMALL_SUITE, workers=1, replicates=20
    )


def test_recall_curves_are_cumulative_counts_per_set_method_and_transform(
    evaluation: Evaluation,
) -> None:
    assert len(evaluation.recall) == 2 * 3 * len(SMALL_SUITE)
    for curve in evaluation.recall:
        assert len(curve.within) == 257 and curve.within[-1] == curve.copies
        assert list(curve.within) == sorted(curve.within)
        assert all(q <= w for q, w in zip(curve.within_quality, curve.within, strict=True))
    assert evaluation.curve("everyday", "pdq", "none/none").copies == 4
    assert evaluation.curve("stress", "pdq", "none/none").copies == 3


def test_the_original_itself_is_at_distance_zero(evaluation: Evaluation) -> None:
    for method in evaluation.methods:
        assert evaluation.curve("everyday", method, "none/none").recall(0) == 1.0


def test_variants_find_rotations_that_plain_pdq_misses(evaluation: Evaluation) -> None:
    plain = evaluation.curve("everyday", "pdq", "dihedral/transpose")
    variants = evaluation.curve("everyday", "pdq+dihedral", "dihedral/transpose")
    assert plain.recall(31) == 0.0
    assert variants.recall(0) == 1.0  # one of the eight variants is the transpose


def test_a_plugged_in_method_is_measured_like_the_built_in_ones(evaluation: Evaluation) -> None:
    centre = evaluation.curve("everyday", "pdq+centre", "crop-centre/40%")
    plain = evaluation.curve("everyday", "pdq", "crop-centre/40%")
    assert centre.recall(31) == 1.0
    assert plain.recall(31) < 1.0


def test_unrelated_pairs_are_all_distinct_pairs_within_each_set(evaluation: Evaluation) -> None:
    for set_name, photos in (("everyday", 4), ("stress", 3)):
        for method in evaluation.methods:
            stats = evaluation.pair_stats(set_name, method)
            assert stats is not None
            assert stats.pairs == photos * (photos - 1) // 2 == sum(stats.histogram)
            assert stats.minimum == min(i for i, n in enumerate(stats.histogram) if n)
            assert stats.false_matches(256) == stats.pairs


def test_uploads_under_the_quality_floor_are_left_out_of_gated_pairs_and_the_fit(
    tmp_path: Path,
) -> None:
    write_set(tmp_path, "mixed", [1, 2, 3])
    flat = Image.new("RGB", (160, 120), (40, 40, 40))  # PDQ quality 0
    flat.save(tmp_path / "mixed" / "flat1.png")
    flat.save(tmp_path / "mixed" / "flat2.png")  # the same flat picture twice
    result = run_evaluation(find_sets(tmp_path), suite=SMALL_SUITE[:1], workers=1, replicates=5)
    (stats,) = [p for p in result.pairs if p.method == "pdq"]
    assert stats.pairs == 10 and stats.gated_pairs == 9  # the two flat photos never compared
    assert stats.false_matches(0) == 1  # raw: the flat pair is identical …
    assert stats.false_matches(31, gated=True) == 0  # … but no bank would match it
    assert stats.closest[0].distance == 0
    assert (stats.closest[0].quality_a, stats.closest[0].quality_b) == (0, 0)
    (fit,) = [t for t in result.tails if t.method == "pdq"]
    assert fit.quality_floor == 50 and fit.pairs == 3 * 4  # uploads: the 3 photos that pass
    assert fit.observed[0] == 0
    assert result.sets[0].originals_below_floor == 2


def _faded(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A tenth of the contrast: PDQ keeps its bits (2-4 apart) but its quality falls to 6-8."""
    return ImageEnhance.Contrast(image).enhance(0.1)


class MarkedRegion:
    """A toy paired method: the whole image's codes and one code named "region:mark" (the
    PDQ of the original's top half, which an upload is looked up with whatever its own
    quality: the method gates its region codes itself)."""

    name = "pdq+mark"
    signal_type = "pdq"

    def named_reference_codes(self, image: Image.Image) -> list[tuple[str, bytes]]:
        top = pdq_of(image.crop((0, 0, image.width, image.height // 2))).code
        return [("whole", pdq_of(image).code), ("region:mark", top)]

    def named_query_codes(self, image: Image.Image) -> list[tuple[str, bytes]]:
        # The copy's top half, faded back: what a region code that passed its floor gives.
        top = image.crop((0, 0, image.width, image.height // 2))
        restored = ImageOps.autocontrast(top)
        return [("whole", pdq_of(image).code), ("region:mark", pdq_of(restored).code)]

    def reference_codes(self, image: Image.Image) -> list[bytes]:
        return [code for _, code in self.named_reference_codes(image)]

    def query_codes(self, image: Image.Image) -> list[bytes]:
        return [code for _, code in self.named_query_codes(image)]

    def compatible(self, reference: str, query: str) -> bool:
        return reference == query


def test_recall_is_judged_as_the_matcher_finds_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_set(tmp_path, "mixed", [1, 2, 3])
    Image.new("RGB", (160, 120), (40, 40, 40)).save(tmp_path / "mixed" / "flat.png")
    faded = Transform("contrast", "faded", _faded)
    result = run_evaluation(
        find_sets(tmp_path),
        methods=[PdqMethod(), MarkedRegion()],
        suite=(BY_ID["none/none"], faded),
        workers=1,
        replicates=5,
    )
    same = result.curve("mixed", "pdq", "none/none")
    # By distance alone the flat photo is found: its copy is itself. No bank would match
    # it (quality 0), so it is left out of the gated figure, neither found nor missed.
    assert (same.copies, same.recall(0)) == (4, 1.0)
    assert (same.gated_copies, same.gated_recall(0)) == (3, 1.0)
    plain = result.curve("mixed", "pdq", "contrast/faded")
    assert plain.recall(31) == 1.0  # a few bits from the original …
    assert plain.gated_copies == 3 and plain.gated_recall(31) == 0.0  # … and never looked up
    marked = result.curve("mixed", "pdq+mark", "contrast/faded")
    assert marked.gated_recall(31) == 1.0  # found through its region code
    # The checks judge what the matcher finds, and show the distance-only figure beside it.
    monkeypatch.setattr(checks, "MUST_SHOW", (checks.Requirement("faded", "pdq", (faded.id,)),))
    (check, *_) = checks.must_show(result, "mixed")
    assert (check.passed, check.measured, check.worst) == (False, 0.0, "contrast/faded")
    assert (check.every_photo, check.every_photo_worst) == (1.0, "contrast/faded")


def test_more_query_codes_never_give_a_larger_pair_distance(photo_root: Path) -> None:
    sets = find_sets(photo_root)
    plain = pairwise_distances(sets[0], PdqMethod())
    variants = pairwise_distances(sets[0], PdqMethod(dihedral=True))
    assert (variants <= plain).all()


def pairwise_distances(photo_set: PhotoSet, method: Method) -> np.ndarray:
    images = [load_original(p) for p in photo_set.photos]
    return pairwise_min_distances(
        [codes_array(method.reference_codes(i)) for i in images],
        [codes_array(method.query_codes(i)) for i in images],
    )


def test_quality_is_counted_per_set(evaluation: Evaluation) -> None:
    for summary in evaluation.sets:
        assert summary.copies == summary.photos * len(SMALL_SUITE)
        below = [q for q in evaluation.quality if q.set == summary.name]
        assert sum(q.below_floor for q in below) == summary.copies_below_floor
    assert evaluation.quality_floor == 50


def test_the_run_records_how_to_reproduce_it(evaluation: Evaluation) -> None:
    assert evaluation.seed == 0 and evaluation.max_side == 1024
    assert evaluation.transforms == tuple(t.id for t in SMALL_SUITE)
    assert evaluation.suite["jpeg"]["strengths"] == ["q75"]
    assert set(evaluation.environment["versions"]) >= {"python", "numpy", "pillow", "lightkeeper"}


def test_the_json_round_trips(evaluation: Evaluation) -> None:
    data = orjson.loads(orjson.dumps(evaluation.to_json()))
    assert data["schema"] == "lightkeeper-accuracy/1"
    assert Evaluation.from_json(data) == evaluation


def test_a_json_written_before_gated_recall_is_redrawn_but_not_judged(
    evaluation: Evaluation,
) -> None:
    data = orjson.loads(orjson.dumps(evaluation.to_json()))
    for curve in data["recall"]:
        del curve["gated_copies"], curve["gated_within"]
    older = Evaluation.from_json(data)
    (check,) = [c for c in checks.must_show(older, "everyday") if c.label == "JPEG quality >= 30"]
    assert check.passed is None and check.measured is None
    assert check.every_photo == older.curve("everyday", "pdq", "jpeg/q75").recall(31)
    assert check_cell(check) == f"not judged (by distance, every photo: {pct(check.every_photo)})"
    judged = [c for c in checks.must_show(evaluation, "everyday") if c.label == check.label]
    assert judged[0].passed is not None  # the same run, with its gated figures, is judged


def test_a_json_of_another_schema_is_refused(evaluation: Evaluation) -> None:
    with pytest.raises(InputError, match="schema"):
        Evaluation.from_json({**evaluation.to_json(), "schema": "lightkeeper-accuracy/0"})


def figures(evaluation: Evaluation) -> dict[str, object]:
    body = evaluation.to_json()
    for key in ("environment", "seconds"):
        body.pop(key)
    return body


def test_results_do_not_depend_on_worker_processes(
    photo_root: Path, evaluation: Evaluation
) -> None:
    pooled = run_evaluation(
        find_sets(photo_root),
        methods=[PdqMethod(), PdqMethod(dihedral=True), CentreRegions()],
        suite=SMALL_SUITE,
        workers=2,
        replicates=20,
    )
    assert figures(pooled) == figures(evaluation)


def test_the_seed_changes_random_edits_only(photo_root: Path) -> None:
    sets = find_sets(photo_root, ["stress"])
    suite = (BY_ID["none/none"], BY_ID["sticker/20%"])

    def run(seed: int) -> Evaluation:
        return run_evaluation(sets, suite=suite, seed=seed, workers=1, replicates=0)

    first, again, other = run(1), run(1), run(2)
    assert figures(first)["recall"] == figures(again)["recall"]
    sticker = [c.within for c in first.recall if c.family == "sticker"]
    assert sticker != [c.within for c in other.recall if c.family == "sticker"]
    assert figures(first)["pairs"] == figures(other)["pairs"]


def test_a_photo_that_cannot_be_decoded_is_reported_and_the_others_measured(
    tmp_path: Path,
) -> None:
    write_set(tmp_path, "mixed", [1, 2])
    (tmp_path / "mixed" / "p03.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = run_evaluation(find_sets(tmp_path), suite=SMALL_SUITE[:1], workers=1, replicates=0)
    (summary,) = result.sets
    assert summary.photos == 2
    assert [name for name, _ in summary.failed] == ["p03.png"]


def test_limit_takes_the_first_photos_of_each_set(photo_root: Path) -> None:
    result = run_evaluation(
        find_sets(photo_root), suite=SMALL_SUITE[:1], limit=2, workers=1, replicates=0
    )
    assert [(s.name, s.photos) for s in result.sets] == [("everyday", 2), ("stress", 2)]


def test_originals_are_scaled_down_to_max_side(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    synthetic_photo(900, 300, seed=1).save(path)
    assert load_original(path, 300).size == (300, 100)
    assert load_original(path, 2000).size == (900, 300)


def test_methods_must_have_distinct_names(photo_root: Path) -> None:
    with pytest.raises(ValueError, match="distinct names"):
        run_evaluation(find_sets(photo_root), methods=[PdqMethod(), PdqMethod()], workers=1)


def test_must_show_checks_are_computed_from_the_figures(evaluation: Evaluation) -> None:
    results = {c.label: c for c in checks.must_show(evaluation, "everyday")}
    rotations = results["flips and 90° rotations (with variants)"]
    assert rotations.passed is True and rotations.measured == 1.0
    assert rotations.worst == "dihedral/transpose"  # the only one of them in this suite
    assert results["JPEG quality >= 30"].passed is not None  # jpeg/q75 was measured
    assert results["resize >= 0.5x"].passed is None  # not in this suite: not measured
    false_matches = results["no false match among distinct photos (8 variants)"]
    stats = evaluation.pair_stats("everyday", "pdq+dihedral")
    assert stats is not None
    assert false_matches.measured == stats.false_matches(31)
    assert false_matches.passed == (stats.false_matches(31) == 0)


def test_a_failing_requirement_fails(
    evaluation: Evaluation, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Hold plain PDQ to the rotation requirement: it misses every rotation.
    strict = dataclasses.replace(checks.MUST_SHOW[6], method="pdq")
    monkeypatch.setattr(checks, "MUST_SHOW", (strict,))
    result = checks.must_show(evaluation, "everyday")[0]
    assert result.passed is False and result.measured == 0.0
    assert result.worst == "dihedral/transpose"


def test_an_added_signal_is_held_to_crops_screenshots_overlays_and_no_false_match(
    evaluation: Evaluation,
) -> None:
    labels = [c.label for c in checks.must_show(evaluation, "everyday")]
    assert labels[len(checks.MUST_SHOW) :] == [
        "crops <= 20% and screenshots (pdq+dihedral)",
        "crops <= 20% and screenshots (pdq+centre)",
        "overlays covering <= 10% (pdq+centre)",
        "no false match among distinct photos (pdq+centre)",
    ]
    # None of those crops is in this run's suite, so they are not judged.
    crops = checks.must_show(evaluation, "everyday")[len(checks.MUST_SHOW) + 1]
    assert crops.passed is None and crops.required == "recall >= 90%"


def test_transport_to_workers_needs_picklable_methods() -> None:
    import pickle  # transport to the pool, not storage

    for name in METHOD_FACTORIES:
        assert pickle.loads(pickle.dumps(get_method(name))).name == name
