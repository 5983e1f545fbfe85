"""``lightkeeper eval``: measure recall and false matches on a photo corpus, and calibrate.

The work is `lightkeeper.evaluation` (`run_evaluation`, then `write_report`); this module
finds the photo sets (building the shared corpus when asked to and it is missing), shows
progress, prints the summary and the threshold recommendation, and picks the exit code.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lightkeeper.cli.exit_codes import ExitCode
from lightkeeper.cli.options import no_progress_option
from lightkeeper.cli.output import Reporter, display_path, error

if TYPE_CHECKING:
    from lightkeeper.evaluation.harness import Evaluation

#: The defaults of `lightkeeper.evaluation`, written out so that ``--help`` imports nothing
#: heavy; tests/test_eval_cli.py checks that they agree.
DEFAULT_METHODS = ("pdq", "pdq+dihedral")
DEFAULT_MAX_SIDE = 1024
DEFAULT_TARGET = 0.01
DEFAULT_LIST_SIZE = 13_400_000
DEFAULT_UPLOADS = 1_000_000

_SUFFIXES = {"k": 10**3, "m": 10**6, "g": 10**9}


class CountType(click.ParamType[int]):
    """A positive count, written plainly (13400000) or with a k/M/G suffix (13.4M)."""

    name = "count"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().replace("_", "").replace(",", "")
        scale = _SUFFIXES.get(text[-1:].lower(), 1)
        if scale != 1:
            text = text[:-1]
        try:
            # Decimal, not float: 4611686019G is exactly 4611686019000000000.
            count = int((Decimal(text) * scale).to_integral_value(ROUND_HALF_EVEN))
        except (InvalidOperation, ValueError, OverflowError):
            self.fail(f"{value!r} is not a count (e.g. 1000000, 13.4M, 100M)", param, ctx)
        if count < 1:
            self.fail(f"{value!r} must be at least 1", param, ctx)
        return count


def _split(values: Sequence[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@click.command(
    "eval",
    epilog=(
        "Exit codes: 0 the report was written; 1 some photos could not be decoded (the report "
        "covers the others), or the photo directory or corpus cannot be used; 2 usage error; "
        "3 broken installation."
    ),
)
@click.argument("photos_dir", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--corpus",
    type=click.Path(path_type=Path, file_okay=False),
    help="The shared photo corpus here, built from its manifest where files are missing.",
)
@click.option(
    "--manifest",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Corpus manifest for --corpus [default: $LIGHTKEEPER_CORPUS_MANIFEST, else "
    "../shared/corpus/manifest.csv].",
)
@click.option(
    "--from-json",
    "from_json",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Redraw the report from a saved accuracy.json instead of evaluating.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("accuracy-report"),
    show_default=True,
    help="Directory for accuracy.json and accuracy.html.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the transforms.")
@click.option(
    "--sets",
    multiple=True,
    metavar="NAME[,NAME]",
    help="Only these photo sets (subdirectories) [default: all].",
)
@click.option(
    "--method",
    "methods",
    multiple=True,
    metavar="NAME[@K][:FAMILY,…]",
    help="A method to evaluate (repeatable) [default: pdq, pdq+dihedral]; an unknown name "
    "lists the known ones. NAME:FAMILY,… measures its copies in those edit families only, "
    "NAME:all in every one; the region methods (pdq+regions…, pdq+content…) default to "
    "crop-centre, crop-edge, border, screenshot, text, watermark and sticker, the tiles "
    "(pdq+tiles…) to text, watermark and sticker. NAME@K measures a method restricted to "
    "some families on 1 in K photos instead of --sample-every's (@1: every photo).",
)
@click.option(
    "--sample-every",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    metavar="K",
    help="Measure the copies of methods restricted to some families on 1 in K photos of "
    "each set (index mod K = --seed mod K); their unrelated pairs always use every photo.",
)
@click.option(
    "--sample-sets",
    multiple=True,
    metavar="NAME[,NAME]",
    help="Measure the copies of methods restricted to some families in these sets only "
    "[default: all].",
)
@click.option(
    "--copies-every",
    multiple=True,
    metavar="SET=K",
    help="Make every method's copies in photo set SET for 1 in K photos only (index mod K "
    "= --seed mod K), for a set kept for its unrelated pairs, which still use every photo "
    "(repeatable).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    metavar="N",
    help="Only the first N photos of each set (quick runs).",
)
@click.option(
    "--workers",
    "-j",
    type=click.IntRange(min=1),
    metavar="N",
    help="Worker processes [default: all cores]; 1 evaluates in this process.",
)
@click.option(
    "--max-side",
    type=click.IntRange(min=16),
    default=DEFAULT_MAX_SIDE,
    show_default=True,
    metavar="PX",
    help="Scale originals down to at most this many pixels on the long side first.",
)
@click.option(
    "--docs",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also rewrite the generated section of this markdown file (docs/accuracy.md) and "
    "its figures.",
)
@click.option(
    "--list-size",
    type=CountType(),
    default=DEFAULT_LIST_SIZE,
    show_default=True,
    help="Hashes in the list, for the printed recommendation (13.4M, 100M …).",
)
@click.option(
    "--uploads-per-day",
    type=CountType(),
    default=DEFAULT_UPLOADS,
    show_default=True,
    help="Uploads a day, for the printed recommendation.",
)
@click.option(
    "--target",
    type=click.FloatRange(min=0, min_open=True),
    metavar="F",
    default=DEFAULT_TARGET,
    show_default=True,
    help="Expected false matches a day the recommended threshold must stay under.",
)
@click.option(
    "--basis",
    metavar="SET",
    help="Recommend from this set only [default: each set].",
)
@no_progress_option
def eval_command(
    photos_dir: Path | None,
    corpus: Path | None,
    manifest: Path | None,
    from_json: Path | None,
    out_dir: Path,
    seed: int,
    sets: Sequence[str],
    methods: Sequence[str],
    sample_every: int,
    sample_sets: Sequence[str],
    copies_every: Sequence[str],
    limit: int | None,
    workers: int | None,
    max_side: int,
    docs: Path | None,
    list_size: int,
    uploads_per_day: int,
    target: float,
    basis: str | None,
    no_progress: bool,
) -> None:
    """Measure recall and false matches on photos, and recommend a threshold.

    Every photo of PHOTOS_DIR (each subdirectory is a photo set; sets are never pooled) is
    scaled to at most --max-side pixels, copied through the documented transform suite
    (resize, re-encoding, crops, borders, rotations and flips, tone, blur, noise, text,
    stickers, screenshots …; see docs/accuracy.md), and each method's distance from every
    copy to its original and between all pairs of distinct photos of a set is measured.

    Writes accuracy.json (everything) and accuracy.html (tables and plots) to --out,
    prints the must-show checks, the unrelated pairs, the quality-floor shares and the
    calibration table, and the threshold recommended for --list-size and
    --uploads-per-day with the command that sets it on a bank.
    """
    from lightkeeper.evaluation.report import Calibration, read_json, summary_text, write_report

    calibration = Calibration(
        list_size=list_size, uploads_per_day=uploads_per_day, target=target, basis=basis
    )
    failed = 0
    if from_json is not None:
        if photos_dir is not None or corpus is not None:
            raise click.UsageError("--from-json takes no PHOTOS_DIR or --corpus")
        evaluation = read_json(from_json)
    else:
        evaluation = _evaluate(
            photos_dir,
            corpus,
            manifest,
            seed,
            _split(sets),
            list(methods),
            sample_every,
            _split(sample_sets),
            _set_samples(copies_every),
            limit,
            workers,
            max_side,
            no_progress,
        )
        failed = sum(len(s.failed) for s in evaluation.sets)
    if basis is not None and basis not in {s.name for s in evaluation.sets}:
        raise click.BadParameter(f"no set {basis!r} in this evaluation", param_hint="--basis")
    written = write_report(evaluation, out_dir, calibration, docs)
    click.echo(summary_text(evaluation, calibration))
    for what, path in written.items():
        click.echo(f"lightkeeper: wrote {what}: {display_path(str(path))}", err=True)
    for summary in evaluation.sets:
        for name, reason in summary.failed:
            error(reason, f"{summary.name}/{name}")
    if failed:
        raise click.exceptions.Exit(ExitCode.INPUT_ERRORS)


def _set_samples(values: Sequence[str]) -> dict[str, int]:
    """{SET: K} from ``--copies-every SET=K`` values."""
    found: dict[str, int] = {}
    for value in values:
        name, equals, count = value.partition("=")
        if not equals or not name.strip() or not count.strip().isdigit() or int(count) < 1:
            raise click.BadParameter(
                f"{value!r}: expected SET=K, K >= 1 (e.g. A_deb_astro=2)",
                param_hint="--copies-every",
            )
        if name.strip() in found:
            raise click.BadParameter(
                f"set {name.strip()!r} given twice", param_hint="--copies-every"
            )
        found[name.strip()] = int(count)
    return found


def _evaluate(
    photos_dir: Path | None,
    corpus: Path | None,
    manifest: Path | None,
    seed: int,
    sets: list[str],
    method_specs: list[str],
    sample_every: int,
    sample_sets: list[str],
    copies_every: dict[str, int],
    limit: int | None,
    workers: int | None,
    max_side: int,
    no_progress: bool,
) -> Evaluation:
    from lightkeeper.evaluation.corpus import default_manifest, ensure_corpus, find_sets
    from lightkeeper.evaluation.harness import run_evaluation
    from lightkeeper.evaluation.scopes import parse_method_specs

    if (photos_dir is None) == (corpus is None):
        raise click.UsageError("give either PHOTOS_DIR or --corpus DIR (not both)")
    root = photos_dir
    if corpus is not None:
        manifest = manifest or default_manifest()
        if manifest is None:
            raise click.UsageError(
                "no corpus manifest found: pass --manifest or set LIGHTKEEPER_CORPUS_MANIFEST"
            )
        missing = ensure_corpus(corpus, manifest)
        if missing:
            error(f"{missing} manifest files could not be rebuilt; evaluating the others")
        root = corpus
    assert root is not None
    try:
        parsed = parse_method_specs(method_specs, sets=sample_sets or None, every=sample_every)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--method") from None
    chosen = [method for method, _ in parsed] or None
    scopes = {method.name: scope for method, scope in parsed if not scope.is_full}
    photo_sets = find_sets(root, sets or None)
    for option, named in (("--sample-sets", sample_sets), ("--copies-every", copies_every)):
        unknown = sorted(set(named) - {s.name for s in photo_sets})
        if unknown:
            raise click.BadParameter(f"no photo set {unknown[0]!r}", param_hint=option)
    total = sum(len(s.photos[:limit]) for s in photo_sets)
    with Reporter(total=total, progress=not no_progress) as reporter:
        done = [0]

        def advance(count: int, _total: int) -> None:
            reporter.advance(count - done[0])
            done[0] = count

        return run_evaluation(
            photo_sets,
            methods=chosen,
            scopes=scopes,
            copies_every=copies_every,
            seed=seed,
            limit=limit,
            workers=workers,
            max_side=max_side,
            progress=advance,
        )
