"""The accuracy report: ``accuracy.json`` (everything), ``accuracy.html`` (one self-contained
page with inline SVG plots, readable at a glance) and the generated section of
``docs/accuracy.md`` (the key tables, between ``<!-- eval:begin -->`` and
``<!-- eval:end -->``, with the figures as SVG files beside it).

Everything here is computed from an `Evaluation` and the calibration settings, so a report
can be redrawn from a saved ``accuracy.json`` without running the evaluation again.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from lightkeeper.errors import InputError
from lightkeeper.evaluation.calibration import (
    DEFAULT_TARGET,
    LIST_SIZES,
    UPLOADS_PER_DAY,
    Recommendation,
    calibration_table,
    recommend,
)
from lightkeeper.evaluation.checks import CheckResult, must_show
from lightkeeper.evaluation.harness import Evaluation

__all__ = [
    "ASSUMPTIONS",
    "BEGIN",
    "END",
    "Calibration",
    "apply_command",
    "read_json",
    "render_html",
    "render_markdown",
    "summary_text",
    "update_docs",
    "write_json",
    "write_report",
]

BEGIN: Final = "<!-- eval:begin -->"
END: Final = "<!-- eval:end -->"
#: Thresholds at which false matches are tabulated.
PAIR_THRESHOLDS: Final = (10, 20, 31, 40, 50, 60)

ASSUMPTIONS: Final = (
    "Expected false matches a day = uploads a day x list size x p(t), p(t) the chance that an "
    "unrelated (upload, list entry) pair lies within t bits.",
    "p(t) is a normal fitted to the lower tail of each set's unrelated-pair distances, "
    "bootstrapped over photos (pairs share photos); the recommendation uses the pessimistic "
    "bound (95% quantile over replicates), and never less than the share of pairs actually "
    "seen within t.",
    "Only pairs whose upload passes the PDQ quality floor are fitted: the matcher does not "
    "match a hash under it, so the others can never be a false match.",
    "Uploads and list entries are taken to be as unrelated as two random photos of one set. "
    "Real uploads may be closer to listed images (the same genre, the same scene), so the "
    "look-alike astronomy set is the stress case; calibrate on photos like your own.",
    "A recommended threshold bounds expected false candidates; every perceptual match still "
    "goes to human review before anything is reported.",
)


@dataclass(frozen=True)
class Calibration:
    """What the calibration table and the printed recommendation are computed for."""

    list_size: int = 13_400_000
    uploads_per_day: int = 1_000_000
    target: float = DEFAULT_TARGET
    list_sizes: tuple[int, ...] = LIST_SIZES
    uploads: tuple[int, ...] = UPLOADS_PER_DAY
    #: The only set recommended from; None: every set.
    basis: str | None = None

    def budget_levels(self) -> dict[str, float]:
        """log10 of target / (N * U) for each distinct N * U of the table (the line a
        pessimistic p(t) must stay under), for the calibration plots."""
        products = sorted({n * u for n in self.list_sizes for u in self.uploads})
        return {f"N×U={p:.3g}": math.log10(self.target / p) for p in products}


def _count(value: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def _pct(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{100 * value:.1f}%"


def _sci(value: float | None) -> str:
    if value is None:
        return "–"
    if value == 0:
        return "0"
    return f"{value:.2g}" if 1e-3 <= abs(value) < 1e4 else f"{value:.1e}"


# -- JSON --------------------------------------------------------------------------------


def write_json(evaluation: Evaluation, path: Path, calibration: Calibration | None = None) -> None:
    """``accuracy.json``: the evaluation, the must-show checks and the calibration table."""
    body = evaluation.to_json()
    calibration = calibration or Calibration()
    body["must_show"] = [c.__dict__ for s in evaluation.sets for c in must_show(evaluation, s.name)]
    body["calibration"] = {
        "target": calibration.target,
        "assumptions": list(ASSUMPTIONS),
        "table": [r.to_json() for r in _table(evaluation, calibration)],
    }
    path.write_bytes(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")


def read_json(path: Path) -> Evaluation:
    """The evaluation saved in an ``accuracy.json``."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read an evaluation: {exc}") from exc
    return Evaluation.from_json(data)


def _table(evaluation: Evaluation, calibration: Calibration) -> list[Recommendation]:
    return calibration_table(
        evaluation.tails,
        list_sizes=calibration.list_sizes,
        uploads_per_day=calibration.uploads,
        target=calibration.target,
        default_threshold=evaluation.default_threshold,
    )


# -- the recommendation ---------------------------------------------------------------------


def recommendations(evaluation: Evaluation, calibration: Calibration) -> list[Recommendation]:
    """The recommendation for the calibration's own N and U, per method and set (only the
    basis set when one is given): sets differ, and which one is like a platform's uploads
    is for a person to judge."""
    return [
        recommend(
            fit,
            calibration.list_size,
            calibration.uploads_per_day,
            calibration.target,
            evaluation.default_threshold,
        )
        for fit in evaluation.tails
        if calibration.basis in (None, fit.set)
    ]


def describe_recommendation(evaluation: Evaluation, rec: Recommendation) -> str:
    """One line: the threshold, its expected false matches, and what it rests on."""
    if rec.threshold is None:
        return (
            f"{rec.method} on {rec.set}: no threshold keeps the expected false matches under "
            f"{rec.target:g}/day (at {rec.default_threshold}: {_sci(rec.expected_at_default)}/day)"
        )
    line = (
        f"{rec.method} on {rec.set}: threshold {rec.threshold} "
        f"({_sci(rec.expected_per_day)} expected false matches/day; at "
        f"{rec.default_threshold}: {_sci(rec.expected_at_default)}/day)"
    )
    stats = evaluation.pair_stats(rec.set, rec.method)
    if stats is not None and stats.minimum is not None and rec.threshold >= stats.minimum:
        line += f"; measured pairs lie within it (closest {stats.minimum} bits)"
    elif rec.threshold > rec.default_threshold and stats is not None:
        line += (
            f"; above the default {rec.default_threshold}, this rests on the fitted tail far "
            f"below the closest measured pair ({stats.minimum} bits), not on measurement"
        )
    return line


def apply_command(rec: Recommendation, bank: str = "NAME") -> str:
    """How to set the recommended threshold on a bank, as the CLI and the API spell it."""
    if rec.threshold is None:
        return f"# no {rec.signal_type} threshold meets the target at this list size and volume"
    dihedral = " --dihedral" if rec.method.endswith("+dihedral") else ""
    return (
        f"lightkeeper bank create {bank}{dihedral} --threshold {rec.signal_type}={rec.threshold}\n"
        f"# an existing bank: PATCH /v1/banks/{bank} "
        f'{{"thresholds": {{"{rec.signal_type}": {rec.threshold}}}}}'
    )


# -- tables, shared by the markdown and the text summary -------------------------------------

Row = list[str]


def _must_show_rows(evaluation: Evaluation) -> tuple[Row, list[Row]]:
    sets = [s.name for s in evaluation.sets]
    head = ["requirement", "method", "threshold", *sets]
    by_set = {name: must_show(evaluation, name) for name in sets}
    rows: list[Row] = []
    for index, first in enumerate(by_set[sets[0]] if sets else []):
        cells = [first.label, first.method, str(first.threshold)]
        for name in sets:
            cells.append(_check_cell(by_set[name][index]))
        rows.append(cells)
    return head, rows


def _check_cell(check: CheckResult) -> str:
    if check.passed is None:
        return "not measured"
    mark = "PASS" if check.passed else "FAIL"
    if check.required.startswith("recall"):
        return f"{mark} {_pct(check.measured)} (worst {check.worst})"
    count = int(check.measured or 0)
    return f"{mark} {count} false"


def _recall_rows(evaluation: Evaluation, threshold: int) -> tuple[Row, list[Row]]:
    sets = [s.name for s in evaluation.sets]
    head = ["transform", *[f"{s} {m}" for s in sets for m in evaluation.methods]]
    rows: list[Row] = []
    for transform in evaluation.transforms:
        cells = [transform]
        for s in sets:
            for m in evaluation.methods:
                try:
                    cells.append(_pct(evaluation.curve(s, m, transform).recall(threshold)))
                except KeyError:
                    cells.append("–")
        rows.append(cells)
    return head, rows


def _pair_rows(evaluation: Evaluation) -> tuple[Row, list[Row]]:
    t = evaluation.default_threshold
    head = [
        "set",
        "method",
        "photos",
        "pairs",
        "min",
        *[f"<= {x}" for x in PAIR_THRESHOLDS],
        f"<= {t}, upload q >= {evaluation.quality_floor}",
        "closest pair (quality)",
    ]
    rows = []
    for p in evaluation.pairs:
        c = p.closest[0] if p.closest else None
        closest = f"{c.a} (q{c.quality_a}) ~ {c.b} (q{c.quality_b})" if c else ""
        rows.append(
            [
                p.set,
                p.method,
                str(p.photos),
                f"{p.pairs:,}",
                str(p.minimum),
                *[str(p.false_matches(x)) for x in PAIR_THRESHOLDS],
                f"{p.false_matches(t, gated=True)} of {p.gated_pairs:,}",
                closest,
            ]
        )
    return head, rows


def _quality_rows(evaluation: Evaluation) -> tuple[Row, list[Row]]:
    head = [
        "set",
        "photos",
        "originals under floor",
        "copies",
        "copies under floor",
        "worst transform",
    ]
    rows = []
    for s in evaluation.sets:
        mine = [q for q in evaluation.quality if q.set == s.name and q.copies]
        worst = max(mine, key=lambda q: q.below_floor / q.copies, default=None)
        originals = s.originals_below_floor / s.photos if s.photos else None
        copies = s.copies_below_floor / s.copies if s.copies else None
        rows.append(
            [
                s.name,
                str(s.photos),
                f"{s.originals_below_floor} ({_pct(originals)})",
                f"{s.copies:,}",
                f"{s.copies_below_floor:,} ({_pct(copies)})",
                f"{worst.transform} {_pct(worst.below_floor / worst.copies)}" if worst else "–",
            ]
        )
    return head, rows


def _fit_rows(evaluation: Evaluation) -> tuple[Row, list[Row]]:
    head = [
        "set",
        "method",
        "pairs fitted",
        "model",
        "mean ± sd",
        "tail mu [95%]",
        "tail sigma [95%]",
        "p(31) fit",
        "p(31) bound",
    ]
    rows = []
    for f in evaluation.tails:
        gate = "" if f.quality_floor is None else f", upload q >= {f.quality_floor}"
        rows.append(
            [
                f.set,
                f.method,
                f"{f.pairs:,} ordered{gate}",
                f.model,
                f"{f.mean:.1f} ± {f.sd:.1f}",
                f"{f.mu:.1f} [{f.mu_interval[0]:.1f}, {f.mu_interval[1]:.1f}]",
                f"{f.sigma:.1f} [{f.sigma_interval[0]:.1f}, {f.sigma_interval[1]:.1f}]",
                _sci(10 ** f.log10_p[31]),
                _sci(f.p_upper(31)),
            ]
        )
    return head, rows


def _calibration_rows(evaluation: Evaluation, calibration: Calibration) -> tuple[Row, list[Row]]:
    head = ["set", "method", "list size N"]
    for u in calibration.uploads:
        head += [f"t for U={_count(u)}/day", f"expected/day at 31, U={_count(u)}"]
    by_key = {
        (r.set, r.method, r.list_size, r.uploads_per_day): r
        for r in _table(evaluation, calibration)
    }
    rows = []
    for f in evaluation.tails:
        for n in calibration.list_sizes:
            cells = [f.set, f.method, _count(n)]
            for u in calibration.uploads:
                r = by_key[(f.set, f.method, n, u)]
                cells += [
                    "none" if r.threshold is None else str(r.threshold),
                    _sci(r.expected_at_default),
                ]
            rows.append(cells)
    return head, rows


def _markdown_table(head: Row, rows: Sequence[Row]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(map(cell, head)) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines)


def _text_table(head: Row, rows: Sequence[Row]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(head, *rows, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _run_line(evaluation: Evaluation) -> str:
    env = evaluation.environment
    sets = ", ".join(f"{s.name} ({s.photos} photos, {s.copies:,} copies)" for s in evaluation.sets)
    limit = f", first {evaluation.limit} photos per set" if evaluation.limit else ""
    machine = env["machine"]
    used = env.get("photo_cpu_seconds")
    cpu = f" ({used:.0f} s of CPU time in them)" if used is not None else ""
    return (
        f"Seed {evaluation.seed}, {len(evaluation.transforms)} transforms, originals scaled to "
        f"at most {evaluation.max_side} px{limit}; sets: {sets}. {evaluation.seconds:.0f} s on "
        f"{env['workers']} workers{cpu} ({machine['cpu']}, {machine['cores']} cores), "
        f"{env['date']}; lightkeeper {env['versions'].get('lightkeeper')}, numpy "
        f"{env['versions'].get('numpy')}, pillow {env['versions'].get('pillow')}."
    )


def summary_text(evaluation: Evaluation, calibration: Calibration) -> str:
    """What ``lightkeeper eval`` prints: the checks, the pairs, the recommendation."""
    parts = [
        _run_line(evaluation),
        "",
        "Must-show checks (recall at the threshold; false matches):",
    ]
    parts.append(_text_table(*_must_show_rows(evaluation)))
    parts += [
        "",
        "Unrelated pairs (pairs within each threshold):",
        _text_table(*_pair_rows(evaluation)),
    ]
    parts += ["", "PDQ quality floor:", _text_table(*_quality_rows(evaluation))]
    parts += [
        "",
        "Calibration: largest threshold t with uploads/day x list size x p(t) <= "
        f"{calibration.target:g} expected false matches a day (pessimistic bound):",
        _text_table(*_calibration_rows(evaluation, calibration)),
        "",
        "Assumptions:",
        *[f"  - {a}" for a in ASSUMPTIONS],
    ]
    parts += [
        "",
        f"Recommended thresholds for N={_count(calibration.list_size)} hashes and "
        f"U={_count(calibration.uploads_per_day)} uploads/day (target "
        f"{calibration.target:g} expected false matches/day):",
    ]
    for rec in recommendations(evaluation, calibration):
        parts.append("  " + describe_recommendation(evaluation, rec))
        if rec.threshold is not None:
            parts += ["    " + line for line in apply_command(rec).splitlines()]
    return "\n".join(parts)


# -- markdown ---------------------------------------------------------------------------------


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def render_markdown(
    evaluation: Evaluation, calibration: Calibration, figure_links: Sequence[str] = ()
) -> str:
    """The generated section of docs/accuracy.md (without its markers); `figure_links` are
    the figures' paths relative to the document."""
    threshold = evaluation.default_threshold
    parts = [
        "_Generated by `lightkeeper eval` (`make eval`); do not edit by hand._",
        "",
        _run_line(evaluation),
        "",
        "### Must-show checks",
        "",
        _markdown_table(*_must_show_rows(evaluation)),
        "",
        f"### Recall at threshold {threshold}",
        "",
        "Share of copies within the threshold of their original (distance only; see the quality "
        "table for copies a bank would not match because their quality is under the floor).",
        "",
        _markdown_table(*_recall_rows(evaluation, threshold)),
        "",
        "### Unrelated pairs",
        "",
        "All pairs of distinct photos within each set (never pooled), with the number of pairs "
        "within each threshold; a pair's distance is the smaller of its two directions.",
        "",
        _markdown_table(*_pair_rows(evaluation)),
        "",
        "### PDQ quality floor",
        "",
        f"Quality floor {evaluation.quality_floor}: photos under it are not matched by PDQ.",
        "",
        _markdown_table(*_quality_rows(evaluation)),
        "",
        "### Calibration",
        "",
        _markdown_table(*_fit_rows(evaluation)),
        "",
        f"Largest threshold t with U x N x p_upper(t) <= {calibration.target:g} expected false "
        f"matches a day, and the expected false matches a day at {threshold}:",
        "",
        _markdown_table(*_calibration_rows(evaluation, calibration)),
    ]
    if figure_links:
        parts += ["", "### Figures", ""]
        for link in figure_links:
            parts += [f"![{Path(link).stem}]({link})", ""]
    return "\n".join(parts).rstrip() + "\n"


def update_docs(doc: Path, section: str) -> None:
    """Replace the text between the eval markers of `doc` (appending them when absent)."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Accuracy\n"
    block = f"{BEGIN}\n{section.rstrip()}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text, encoding="utf-8")


# -- HTML -------------------------------------------------------------------------------------

_CSS: Final = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
th { background: #f3f3f3; }
td.pass { background: #e3f5e1; } td.fail { background: #fbe0dc; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
pre { background: #f6f6f6; padding: 0.6em; }
"""


def _html_table(head: Row, rows: Sequence[Row]) -> str:
    def cell(text: str, tag: str) -> str:
        css = (
            ' class="pass"'
            if text.startswith("PASS")
            else ' class="fail"'
            if text.startswith("FAIL")
            else ""
        )
        return f"<{tag}{css}>{html.escape(text)}</{tag}>"

    lines = ["<table>", "<tr>" + "".join(cell(h, "th") for h in head) + "</tr>"]
    lines += ["<tr>" + "".join(cell(c, "td") for c in r) + "</tr>" for r in rows]
    lines.append("</table>")
    return "\n".join(lines)


def render_html(evaluation: Evaluation, calibration: Calibration, figures: dict[str, str]) -> str:
    """One self-contained HTML page: tables, then every figure as inline SVG."""
    esc = html.escape
    threshold = evaluation.default_threshold
    family_rows = [
        [name, ", ".join(info["strengths"]), info["what"], info["why"]]
        for name, info in evaluation.suite.items()
    ]
    recs = recommendations(evaluation, calibration)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>Lightkeeper accuracy report</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>Lightkeeper accuracy report</h1>",
        f"<p>{esc(_run_line(evaluation))}</p>",
        "<h2>Must-show checks</h2>",
        _html_table(*_must_show_rows(evaluation)),
        "<h2>Calibration</h2>",
        "<p>Largest threshold t with U &times; N &times; p<sub>upper</sub>(t) &le; "
        f"{calibration.target:g} expected false matches a day, and the expected false matches "
        f"a day at {threshold}.</p>",
        _html_table(*_calibration_rows(evaluation, calibration)),
        _html_table(*_fit_rows(evaluation)),
        "<ul>" + "".join(f"<li>{esc(a)}</li>" for a in ASSUMPTIONS) + "</ul>",
    ]
    parts.append(
        f"<p>Recommended for N={_count(calibration.list_size)} hashes and "
        f"U={_count(calibration.uploads_per_day)} uploads/day:</p><ul>"
    )
    for rec in recs:
        command = f"<pre>{esc(apply_command(rec))}</pre>" if rec.threshold is not None else ""
        parts.append(f"<li>{esc(describe_recommendation(evaluation, rec))}{command}</li>")
    parts.append("</ul>")
    parts += [
        "<h2>Unrelated pairs</h2>",
        _html_table(*_pair_rows(evaluation)),
        "<h2>PDQ quality floor</h2>",
        _html_table(*_quality_rows(evaluation)),
        "<h2>Figures</h2>",
    ]
    for name, svg in figures.items():
        body = svg[svg.index("<svg") :]  # drop the XML prolog and DOCTYPE: inline SVG has none
        parts.append(
            f'<figure id="{esc(_slug(name))}">{body}<figcaption>{esc(name)}</figcaption></figure>'
        )
    parts += [
        f"<h2>Recall at threshold {threshold}</h2>",
        _html_table(*_recall_rows(evaluation, threshold)),
        "<h2>Transform suite</h2>",
        _html_table(["family", "strengths", "what", "why"], family_rows),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(
    evaluation: Evaluation,
    out_dir: Path,
    calibration: Calibration | None = None,
    docs: Path | None = None,
) -> dict[str, Any]:
    """Write accuracy.json and accuracy.html into `out_dir` and, with `docs`, the generated
    section of that markdown file and its figures (in ``<docs dir>/accuracy/``).
    Returns the paths written."""
    from lightkeeper.evaluation.figures import render_all

    calibration = calibration or Calibration()
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = render_all(evaluation, calibration.budget_levels())
    write_json(evaluation, out_dir / "accuracy.json", calibration)
    (out_dir / "accuracy.html").write_text(
        render_html(evaluation, calibration, figures), encoding="utf-8"
    )
    written: dict[str, Any] = {"json": out_dir / "accuracy.json", "html": out_dir / "accuracy.html"}
    if docs is not None:
        figure_dir = docs.parent / "accuracy"
        figure_dir.mkdir(parents=True, exist_ok=True)
        links = []
        for name, svg in figures.items():
            (figure_dir / f"{_slug(name)}.svg").write_text(svg, encoding="utf-8")
            links.append(f"{figure_dir.name}/{_slug(name)}.svg")
        update_docs(docs, render_markdown(evaluation, calibration, links))
        written["docs"] = docs
        written["figures"] = figure_dir
    return written
