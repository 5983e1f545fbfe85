"""``lightkeeper eval``: the files it writes, what it prints, the docs it regenerates."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import synthetic_photo
from lightkeeper.banks.store import BankStore
from lightkeeper.cli import eval_command
from lightkeeper.cli.main import main
from lightkeeper.evaluation import calibration, figures, harness, methods, report

QUICK = ["--workers", "1", "--no-progress"]


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["eval", *map(str, args)])


@pytest.fixture
def no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip drawing the plots (seconds each) in tests about something else."""
    monkeypatch.setattr(figures, "render_all", lambda *args: {})


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for set_name, seeds in (("everyday", [1, 2, 3]), ("stress", [4, 5])):
        (root / set_name).mkdir()
        for seed in seeds:
            synthetic_photo(128, 96, seed=seed).save(root / set_name / f"p{seed}.png")
    return root


@pytest.fixture(scope="module")
def report_run(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    out = tmp_path_factory.mktemp("out")
    doc = out / "docs" / "accuracy.md"
    doc.parent.mkdir()
    doc.write_text("# Accuracy\n\nProse.\n\n<!-- eval:begin -->\nold\n<!-- eval:end -->\n\nMore.\n")
    result = run(photos, "--out", out / "report", "--docs", doc, "--limit", "2", *QUICK)
    return result, out


def test_cli_defaults_are_the_librarys() -> None:
    assert eval_command.DEFAULT_METHODS == methods.DEFAULT_METHODS
    assert eval_command.DEFAULT_MAX_SIDE == harness.DEFAULT_MAX_SIDE
    assert eval_command.DEFAULT_TARGET == calibration.DEFAULT_TARGET
    assert report.Calibration().list_size == eval_command.DEFAULT_LIST_SIZE
    assert report.Calibration().uploads_per_day == eval_command.DEFAULT_UPLOADS


def test_it_writes_json_and_a_self_contained_html_page(report_run: tuple[Result, Path]) -> None:
    result, out = report_run
    assert result.exit_code == 0, result.output
    data = orjson.loads((out / "report" / "accuracy.json").read_bytes())
    assert data["schema"] == "lightkeeper-accuracy/1"
    assert [(s["name"], s["photos"]) for s in data["sets"]] == [("everyday", 2), ("stress", 2)]
    assert data["limit"] == 2 and data["seed"] == 0
    assert {row["label"] for row in data["must_show"]} >= {"greyscale", "mild blur"}
    assert len(data["calibration"]["table"]) == 2 * 2 * 3 * 2  # sets x methods x N x U
    page = (out / "report" / "accuracy.html").read_text()
    assert page.count("<svg") >= 4 and "<script" not in page
    assert not re.search(r"(src|href)=\"(https?:|//|[^\"#])", page)  # nothing to fetch


def test_it_rewrites_only_the_generated_section_of_the_docs(
    report_run: tuple[Result, Path],
) -> None:
    _, out = report_run
    text = (out / "docs" / "accuracy.md").read_text()
    assert text.startswith("# Accuracy\n\nProse.\n\n<!-- eval:begin -->\n")
    assert text.endswith("<!-- eval:end -->\n\nMore.\n")
    assert "\nold\n" not in text
    assert "### Must-show checks" in text and "### Calibration" in text
    for link in re.findall(r"\]\((accuracy/[^)]+\.svg)\)", text):
        assert (out / "docs" / link).is_file()
    assert "accuracy/recall-everyday-pdq_dihedral.svg" in text


def test_it_prints_the_checks_and_the_recommendation(report_run: tuple[Result, Path]) -> None:
    result, _ = report_run
    assert "Must-show checks" in result.stdout
    assert "Calibration: largest threshold t" in result.stdout
    assert "lightkeeper bank create NAME --dihedral --threshold pdq=" in result.stdout
    assert "lightkeeper: wrote html:" in result.stderr


def test_the_printed_command_sets_the_threshold_on_a_bank(
    report_run: tuple[Result, Path], tmp_path: Path
) -> None:
    result, _ = report_run
    line = next(
        ln.strip()
        for ln in result.stdout.splitlines()
        if ln.strip().startswith("lightkeeper bank create NAME --dihedral")
    )
    threshold = int(line.rsplit("=", 1)[1])
    db = tmp_path / "banks.db"
    args = line.replace("NAME", "listed").split()[1:]
    created = CliRunner().invoke(main, [*args, "--db", str(db)])
    assert created.exit_code == 0, created.output
    with BankStore.open(f"sqlite:///{db}") as store:
        bank = store.get_bank("listed")
    assert bank.threshold("pdq") == threshold
    assert bank.match_dihedral  # the line printed for pdq+dihedral


@pytest.mark.usefixtures("no_figures")
def test_a_saved_json_redraws_the_same_report(
    report_run: tuple[Result, Path], tmp_path: Path
) -> None:
    first, out = report_run
    again = run("--from-json", out / "report" / "accuracy.json", "--out", tmp_path)
    assert again.exit_code == 0, again.output
    assert again.stdout == first.stdout


@pytest.mark.usefixtures("no_figures")
def test_a_broken_results_file_is_named_not_a_crash(
    report_run: tuple[Result, Path], tmp_path: Path
) -> None:
    _, out = report_run
    saved = orjson.loads((out / "report" / "accuracy.json").read_bytes())
    no_pairs = {k: v for k, v in saved.items() if k != "pairs"}
    bad_scope = {**saved, "scopes": {"pdq": {"families": ["nope"]}}}
    bad_every = {**saved, "scopes": {"pdq": {"set_every": {"everyday": 0}}}}
    for body, message in (
        (no_pairs, "not a complete evaluation: no 'pairs'"),
        (bad_scope, "not a valid evaluation: the scope of pdq: unknown transform families"),
        (bad_every, "not a valid evaluation: the scope of pdq: a photo sample takes 1 in"),
        ([1, 2], "not an evaluation (a JSON object)"),
    ):
        path = tmp_path / "broken.json"
        path.write_bytes(orjson.dumps(body))
        result = run("--from-json", path, "--out", tmp_path / "out")
        assert result.exit_code == 1, result.output
        assert message in result.output and "internal error" not in result.output


@pytest.mark.usefixtures("no_figures")
def test_the_recommendation_follows_list_size_and_volume(report_run: tuple[Result, Path]) -> None:
    _, out = report_run
    saved = out / "report" / "accuracy.json"

    def threshold(*args: str) -> int:
        result = run("--from-json", saved, "--out", out / "again", *args, "--basis", "everyday")
        assert result.exit_code == 0, result.output
        found = re.search(r"pdq on everyday: threshold (\d+)", result.stdout)
        assert found is not None, result.stdout
        return int(found.group(1))

    small = threshold("--list-size", "1k", "--uploads-per-day", "1k")
    large = threshold("--list-size", "100M", "--uploads-per-day", "100M")
    assert small > large


@pytest.mark.usefixtures("no_figures")
def test_methods_can_be_chosen_and_unknown_ones_are_listed(photos: Path, tmp_path: Path) -> None:
    result = run(photos, "--out", tmp_path, "--method", "nope", *QUICK)
    assert result.exit_code == 2
    assert "unknown evaluation method 'nope' (known: pdq, pdq+content" in result.output
    assert "pdq+regions" in result.output
    only = run(
        photos, "--out", tmp_path, "--method", "pdq", "--sets", "stress", "--limit", "2", *QUICK
    )
    assert only.exit_code == 0, only.output
    data = orjson.loads((tmp_path / "accuracy.json").read_bytes())
    assert data["methods"] == ["pdq"] and [s["name"] for s in data["sets"]] == ["stress"]


def test_photos_come_from_exactly_one_place(photos: Path, tmp_path: Path) -> None:
    assert run("--out", tmp_path).exit_code == 2
    both = run(photos, "--corpus", tmp_path, "--out", tmp_path)
    assert both.exit_code == 2 and "not both" in both.output


@pytest.mark.usefixtures("no_figures")
def test_an_unknown_set_or_directory_is_an_input_error(photos: Path, tmp_path: Path) -> None:
    missing = run(photos, "--sets", "astro", "--out", tmp_path, *QUICK)
    assert missing.exit_code == 1
    assert "no photo set called astro (found: everyday, stress)" in missing.stderr


@pytest.mark.usefixtures("no_figures")
def test_an_undecodable_photo_exits_1_after_writing_the_report(tmp_path: Path) -> None:
    (tmp_path / "photos" / "set").mkdir(parents=True)
    for seed in (1, 2):
        synthetic_photo(96, 64, seed=seed).save(tmp_path / "photos" / "set" / f"p{seed}.png")
    (tmp_path / "photos" / "set" / "bad.jpg").write_bytes(b"\xff\xd8\xff broken")
    result = run(tmp_path / "photos", "--out", tmp_path / "out", "--method", "pdq", *QUICK)
    assert result.exit_code == 1
    assert re.search(r"lightkeeper: set/bad.jpg: .+", result.stderr)
    assert (tmp_path / "out" / "accuracy.html").is_file()


@pytest.mark.parametrize(
    ("text", "count"), [("13.4M", 13_400_000), ("1k", 1_000), ("100_000_000", 100_000_000)]
)
def test_counts_take_suffixes(text: str, count: int) -> None:
    assert eval_command.CountType().convert(text, None, None) == count


@settings(max_examples=50, deadline=None)
@given(
    st.integers(min_value=1, max_value=10**12),
    st.sampled_from([("", 1), ("k", 10**3), ("M", 10**6), ("g", 10**9)]),
)
def test_any_count_reads_back(value: int, suffix: tuple[str, int]) -> None:
    letter, scale = suffix
    assert eval_command.CountType().convert(f"{value}{letter}", None, None) == value * scale
    assert eval_command.CountType().convert(f"{value:,}", None, None) == value


def test_a_count_must_be_a_positive_number() -> None:
    import click

    with pytest.raises(click.BadParameter, match="not a count"):
        eval_command.CountType().convert("lots", None, None)
    with pytest.raises(click.BadParameter, match="at least 1"):
        eval_command.CountType().convert("0", None, None)
