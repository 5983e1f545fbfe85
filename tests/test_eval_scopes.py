"""Which copies a method is measured on: family selection, the seeded photo sample, the same
copies for PDQ alone, and the ``--method NAME:FAMILY,…`` / ``--sample-*`` options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import synthetic_photo
from lightkeeper.cli.main import main
from lightkeeper.evaluation import figures
from lightkeeper.evaluation.corpus import find_sets
from lightkeeper.evaluation.harness import Evaluation, run_evaluation
from lightkeeper.evaluation.methods import PdqMethod, pdq_of
from lightkeeper.evaluation.scopes import (
    DEFAULT_FAMILIES,
    OVERLAY_FAMILIES,
    REGION_FAMILIES,
    Scope,
    parse_method_specs,
)
from lightkeeper.evaluation.tables import scope_lines
from lightkeeper.evaluation.transforms import FAMILIES, Transform, standard_suite

BY_ID = {t.id: t for t in standard_suite()}
SUITE = tuple(
    BY_ID[i] for i in ("none/none", "jpeg/q75", "crop-edge/10%", "crop-centre/40%", "sticker/5%")
)


def specs(*values: str, sets: list[str] | None = None, every: int = 1) -> list[tuple[str, Scope]]:
    return [(m.name, s) for m, s in parse_method_specs(list(values), sets=sets, every=every)]


# -- naming methods and their families ------------------------------------------------------


def test_plain_names_measure_every_copy() -> None:
    assert specs("pdq,pdq+dihedral") == [("pdq", Scope()), ("pdq+dihedral", Scope())]


def test_region_methods_default_to_the_families_where_they_matter() -> None:
    assert set(REGION_FAMILIES) == {
        "crop-centre",
        "crop-edge",
        "border",
        "screenshot",
        "text",
        "watermark",
        "sticker",
    }
    assert set(REGION_FAMILIES) <= set(FAMILIES)
    for name in ("pdq+regions", "pdq+regions+dihedral", "pdq+content"):
        assert DEFAULT_FAMILIES[name] == REGION_FAMILIES
        ((_, scope),) = specs(name)
        assert scope.families == frozenset(REGION_FAMILIES)


def test_families_can_be_named_and_all_restores_every_one() -> None:
    assert specs("pdq+regions:crop-edge,border", "pdq") == [
        ("pdq+regions", Scope(frozenset({"crop-edge", "border"}))),
        ("pdq", Scope()),
    ]
    # In one value, a method name after a family list starts the next method.
    assert [n for n, _ in specs("pdq+regions:crop-edge,border,pdq+dihedral")] == [
        "pdq+regions",
        "pdq+dihedral",
    ]
    assert specs("pdq+regions:all") == [("pdq+regions", Scope())]
    assert specs("pdq:sticker") == [("pdq", Scope(frozenset({"sticker"})))]


def test_the_photo_sample_applies_to_restricted_methods_only() -> None:
    found = dict(specs("pdq", "pdq+regions", sets=["everyday"], every=4))
    assert found["pdq"] == Scope()
    assert found["pdq+regions"] == Scope(frozenset(REGION_FAMILIES), frozenset({"everyday"}), 4)


def test_a_method_can_have_its_own_photo_sample() -> None:
    found = dict(
        specs(
            "pdq+regions:crop-edge,pdq+tiles+dihedral@1",
            "pdq+content@2:border",
            sets=["everyday"],
            every=4,
        )
    )
    assert found["pdq+regions"] == Scope(frozenset({"crop-edge"}), frozenset({"everyday"}), 4)
    assert found["pdq+tiles+dihedral"] == Scope(
        frozenset(OVERLAY_FAMILIES), frozenset({"everyday"}), 1
    )
    assert found["pdq+content"] == Scope(frozenset({"border"}), frozenset({"everyday"}), 2)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["pdq+regions:crops"], r"unknown transform families \['crops'\] \(known: none, resize"),
        (["pdq+tiles@0"], r"'pdq\+tiles@0': after '@' comes K >= 1"),
        (["pdq+tiles@x"], r"after '@' comes K >= 1"),
        (["pdq+dihedral@2"], r"pdq\+dihedral@2: pdq\+dihedral is measured on every copy"),
        (["pdq+regions@2:all"], r"pdq\+regions@2: pdq\+regions is measured on every copy"),
        (["pdq+regions:border@2"], r"unknown transform families \['border@2'\]"),
        (["nope"], "unknown evaluation method 'nope'"),
        (["pdq+regions:"], r"no transform family after 'pdq\+regions:'"),
        (["pdq", "pdq"], "named more than once: pdq"),
    ],
)
def test_mistakes_are_named(values: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_method_specs(values)


def test_a_sample_takes_one_photo_in_k_fixed_by_the_seed() -> None:
    scope = Scope(frozenset({"crop-edge"}), frozenset({"everyday"}), every=3)
    assert [i for i in range(10) if scope.covers_photo("everyday", i, seed=4)] == [1, 4, 7]
    assert [i for i in range(10) if scope.covers_photo("everyday", i, seed=0)] == [0, 3, 6, 9]
    assert not scope.covers_photo("stress", 0, seed=0)
    assert scope.covers_family("crop-edge") and not scope.covers_family("jpeg")
    assert scope.sample(4) == "1 in 3 photos (index mod 3 = 1)"
    assert Scope().sample(4) == "" and Scope().is_full and not scope.is_full
    assert Scope.from_json(scope.describe(4)) == scope
    with pytest.raises(ValueError, match="N >= 1"):
        Scope(every=0)


def test_a_set_sample_thins_one_set_for_every_method() -> None:
    plain = Scope().with_set_samples({"stress": 2, "everyday": 1})
    assert plain.set_every == (("stress", 2),) and not plain.is_full and plain.is_own_full
    assert [i for i in range(6) if plain.covers_photo("stress", i, seed=3)] == [1, 3, 5]
    assert [i for i in range(3) if plain.covers_photo("everyday", i, seed=3)] == [0, 1, 2]
    assert plain.sample(3, "stress") == "1 in 2 photos (index mod 2 = 1)"
    assert plain.sample(3, "everyday") == "" == plain.sample(3)
    # With a sample of its own as well, a photo must be in both: 1 in lcm(3, 2) photos.
    own = Scope(frozenset({"crop-edge"}), every=3).with_set_samples({"stress": 2})
    assert [i for i in range(14) if own.covers_photo("stress", i, seed=1)] == [1, 7, 13]
    assert own.sample(1, "stress") == "1 in 6 photos (index mod 6 = 1)"
    assert own.sample(1, "everyday") == "1 in 3 photos (index mod 3 = 1)"
    for scope in (plain, own):
        assert Scope.from_json(orjson.loads(orjson.dumps(scope.describe(1)))) == scope
    with pytest.raises(ValueError, match="N >= 1"):
        Scope().with_set_samples({"stress": 0})


# -- a run with a restricted method -----------------------------------------------------------


class CountingPdq(PdqMethod):
    """PDQ under another name, counting the copies it is asked about."""

    def __init__(self) -> None:
        super().__init__()
        self.name = "pdq+counted"
        self.queries = 0

    def query_codes(self, image: Image.Image) -> list[bytes]:
        self.queries += 1
        return [pdq_of(image).code]


@pytest.fixture(scope="module")
def photo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for name, seeds in (("everyday", [1, 2, 3, 4, 5]), ("stress", [6, 7])):
        (root / name).mkdir()
        for seed in seeds:
            synthetic_photo(160, 120, seed=seed).save(root / name / f"p{seed}.png")
    return root


RESTRICTED = Scope(frozenset({"crop-edge", "sticker"}), frozenset({"everyday"}), every=2)


@pytest.fixture(scope="module")
def scoped(photo_root: Path) -> tuple[Evaluation, CountingPdq]:
    counted = CountingPdq()
    evaluation = run_evaluation(
        find_sets(photo_root),
        methods=[PdqMethod(), PdqMethod(dihedral=True), counted],
        scopes={"pdq+counted": RESTRICTED},
        suite=SUITE,
        seed=1,
        workers=1,
        replicates=5,
    )
    return evaluation, counted


def test_a_restricted_method_is_measured_on_its_families_and_sample_only(
    scoped: tuple[Evaluation, CountingPdq],
) -> None:
    evaluation, counted = scoped
    sample = "1 in 2 photos (index mod 2 = 1)"
    assert evaluation.sample("pdq+counted", "everyday") == sample
    own = evaluation.curves("everyday", "pdq+counted")
    assert [c.transform for c in own] == ["crop-edge/10%", "sticker/5%"]
    assert {(c.copies, c.sample) for c in own} == {(2, sample)}  # photos 1 and 3 of 0..4
    assert evaluation.curves("stress", "pdq+counted") == []
    # 2 photos x 2 copies, plus the query codes of all 7 originals for the unrelated pairs.
    assert counted.queries == 2 * 2 + 7
    assert evaluation.scopes["pdq+counted"]["families"] == ["crop-edge", "sticker"]


def test_pdq_alone_is_also_counted_on_the_same_copies(
    scoped: tuple[Evaluation, CountingPdq],
) -> None:
    evaluation, _ = scoped
    sample = evaluation.sample("pdq+counted", "everyday")
    for method in ("pdq", "pdq+dihedral"):
        everyone = evaluation.curve("everyday", method, "crop-edge/10%")
        same = evaluation.curve("everyday", method, "crop-edge/10%", sample)
        assert (everyone.copies, everyone.sample) == (5, "")
        assert same.copies == 2 and same.sample == sample
        # The restricted method is PDQ under another name: on the same copies, the same.
        assert same.within == evaluation.curve("everyday", "pdq+counted", "crop-edge/10%").within
        # Its own figures (tables, plots) are still every photo's.
        assert all(c.sample == "" for c in evaluation.curves("everyday", method))
    with pytest.raises(KeyError):
        evaluation.curve("everyday", "pdq", "jpeg/q75", sample)  # not a restricted copy


def test_unrelated_pairs_of_a_restricted_method_cover_every_photo(
    scoped: tuple[Evaluation, CountingPdq],
) -> None:
    evaluation, _ = scoped
    for set_name, photos in (("everyday", 5), ("stress", 2)):
        stats = evaluation.pair_stats(set_name, "pdq+counted")
        plain = evaluation.pair_stats(set_name, "pdq")
        assert stats is not None and plain is not None
        assert stats.photos == photos and stats.histogram == plain.histogram


def test_the_scopes_survive_the_json(scoped: tuple[Evaluation, CountingPdq]) -> None:
    evaluation, _ = scoped
    again = Evaluation.from_json(orjson.loads(orjson.dumps(evaluation.to_json())))
    assert again == evaluation
    assert again.sample("pdq+counted", "everyday") == evaluation.sample("pdq+counted", "everyday")


def test_a_copy_no_method_is_measured_on_is_not_made(photo_root: Path) -> None:
    made: list[str] = []

    def recorded(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        made.append("copy")
        return image.rotate(90)

    suite = (BY_ID["none/none"], Transform("rotate", "recorded", recorded))
    evaluation = run_evaluation(
        find_sets(photo_root, ["everyday"]),
        methods=[CountingPdq()],
        scopes={"pdq+counted": Scope(frozenset({"none"}))},
        suite=suite,
        workers=1,
        replicates=0,
    )
    assert made == []
    assert evaluation.sets[0].copies == 5  # the originals' "none" copies only
    assert [q.copies for q in evaluation.quality] == [5, 0]


def test_a_set_sample_makes_that_sets_copies_on_a_sample_and_keeps_every_pair(
    photo_root: Path,
) -> None:
    counted = CountingPdq()
    sets = find_sets(photo_root)
    run = {"suite": SUITE, "seed": 1, "workers": 1, "replicates": 5}
    full = run_evaluation(sets, methods=[PdqMethod()], **run)
    thinned = run_evaluation(
        sets,
        methods=[PdqMethod(), counted],
        scopes={"pdq+counted": RESTRICTED},
        copies_every={"everyday": 3},
        **run,
    )
    # PDQ's copies of everyday photos 1 and 4 of 0..4; the restricted method, whose own
    # sample is 1 in 2, on the photos in both samples: 1 in 6, photo 1.
    assert thinned.sample("pdq", "everyday") == "1 in 3 photos (index mod 3 = 1)"
    assert thinned.sample("pdq+counted", "everyday") == "1 in 6 photos (index mod 6 = 1)"
    assert {c.copies for c in thinned.curves("everyday", "pdq")} == {2}
    assert {c.copies for c in thinned.curves("everyday", "pdq+counted")} == {1}
    assert counted.queries == 1 * 2 + 7
    # PDQ is counted on the restricted method's copies too, and the stress set is untouched.
    assert thinned.curve("everyday", "pdq", "crop-edge/10%", "1 in 6 photos (index mod 6 = 1)")
    assert thinned.curves("stress", "pdq") == full.curves("stress", "pdq")
    assert thinned.sets[0].copies == 2 * len(SUITE) and thinned.sets[1] == full.sets[1]
    # Every photo's unrelated pairs, as without the sample.
    for set_name in ("everyday", "stress"):
        assert thinned.pair_stats(set_name, "pdq") == full.pair_stats(set_name, "pdq")
    assert scope_lines(thinned)[0] == (
        "everyday: copies made on 1 in 3 photos (index mod 3 = 1) only, for every method; "
        "its unrelated pairs on every photo."
    )
    assert not any(line.startswith("pdq:") for line in scope_lines(thinned))
    with pytest.raises(ValueError, match=r"copies sampled in sets not in the run: \['astro'\]"):
        run_evaluation(sets, copies_every={"astro": 2}, **run)


def test_scopes_must_name_methods_of_the_run(photo_root: Path) -> None:
    with pytest.raises(ValueError, match=r"scopes given for methods not in the run: \['x'\]"):
        run_evaluation(find_sets(photo_root), suite=SUITE[:1], scopes={"x": Scope()}, workers=1)


# -- the command line -------------------------------------------------------------------------


def test_the_command_line_names_families_and_the_sample(
    photo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(figures, "render_all", lambda *args: {})
    args = ["eval", str(photo_root), "--out", str(tmp_path), "--workers", "1", "--no-progress"]
    result = CliRunner().invoke(
        main,
        [
            *args,
            "--method",
            "pdq",
            "--method",
            "pdq+content:border,screenshot",
            "--sample-every",
            "3",
            "--sample-sets",
            "stress",
            "--limit",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    data = orjson.loads((tmp_path / "accuracy.json").read_bytes())
    assert data["methods"] == ["pdq", "pdq+content"]
    assert data["scopes"]["pdq+content"] == {
        "families": ["border", "screenshot"],
        "sets": ["stress"],
        "every": 3,
        "offset": 0,
        "sample": "1 in 3 photos (index mod 3 = 0)",
        "set_every": {},
        "set_samples": {},
    }
    own = [c for c in data["recall"] if c["method"] == "pdq+content"]
    assert {c["set"] for c in own} == {"stress"} and {c["copies"] for c in own} == {1}
    assert {c["family"] for c in own} == {"border", "screenshot"}
    assert "pdq+content: copies measured on border, screenshot only, in stress" in result.stdout
    wrong = CliRunner().invoke(main, [*args, "--method", "pdq+regions:crops"])
    assert wrong.exit_code == 2 and "unknown transform families ['crops']" in wrong.output
    no_set = CliRunner().invoke(main, [*args, "--sample-sets", "astro"])
    assert no_set.exit_code == 2 and "no photo set 'astro'" in no_set.output


def test_the_command_line_samples_a_sets_copies(
    photo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(figures, "render_all", lambda *args: {})
    args = ["eval", str(photo_root), "--out", str(tmp_path), "--workers", "1", "--no-progress"]
    result = CliRunner().invoke(main, [*args, "--method", "pdq", "--copies-every", "everyday=2"])
    assert result.exit_code == 0, result.output
    data = orjson.loads((tmp_path / "accuracy.json").read_bytes())
    assert data["scopes"]["pdq"]["set_every"] == {"everyday": 2}
    copies = {(c["set"], c["copies"]) for c in data["recall"]}
    assert copies == {("everyday", 3), ("stress", 2)}  # photos 0, 2, 4 of 0..4; both
    assert "everyday: copies made on 1 in 2 photos (index mod 2 = 0) only" in result.stdout
    for value, message in (
        ("everyday", "expected SET=K, K >= 1"),
        ("everyday=0", "expected SET=K, K >= 1"),
        ("=2", "expected SET=K, K >= 1"),
        ("astro=2", "no photo set 'astro'"),
    ):
        wrong = CliRunner().invoke(main, [*args, "--copies-every", value])
        assert wrong.exit_code == 2 and message in wrong.output, (value, wrong.output)
    twice = ["--copies-every", "stress=2", "--copies-every", "stress=3"]
    wrong = CliRunner().invoke(main, [*args, *twice])
    assert wrong.exit_code == 2 and "set 'stress' given twice" in wrong.output
