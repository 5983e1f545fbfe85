"""The accuracy report: ``accuracy.json`` (everything), ``accuracy.html`` (one self-contained
page with inline SVG plots, readable at a glance) and the generated section of
``docs/accuracy.md`` (the key tables, between ``<!-- eval:begin -->`` and
``<!-- eval:end -->``, with the figures as SVG files beside it).

Everything here is computed from an `Evaluation` and the calibration settings, so a report
can be redrawn from a saved ``accuracy.json`` without running the evaluation again.
"""

from __future__ import annotations

import dataclasses
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
from lightkeeper.evaluation.checks import (
    crops_and_screenshots,
    must_show,
)
from lightkeeper.evaluation.harness import Evaluation
from lightkeeper.evaluation.tables import (
    Row,
    added_sections,
    crop_rows,
    crop_verdict,
    fit_rows,
    markdown_table,
    measured_checks,
    must_show_rows,
    pair_rows,
    quality_rows,
    recall_rows,
    run_line,
    sci,
    scope_lines,
    short_count,
    text_table,
)

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


# -- JSON --------------------------------------------------------------------------------


def write_json(evaluation: Evaluation, path: Path, calibration: Calibration | None = None) -> None:
    """``accuracy.json``: the evaluation, the must-show checks and the calibration table."""
    body = evaluation.to_json()
    calibration = calibration or Calibration()
    body["must_show"] = [c.__dict__ for s in evaluation.sets for c in must_show(evaluation, s.name)]
    body["crops_and_screenshots"] = [
        {
            **dataclasses.asdict(check),
            "passed": check.passed,
            "passing": check.passing,
            "failing": check.failing,
        }
        for s in evaluation.sets
        for check in crops_and_screenshots(evaluation, s.name)
    ]
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
    if not isinstance(data, dict):
        raise InputError(f"{path}: not an evaluation (a JSON object)")
    try:
        return Evaluation.from_json(data)
    except KeyError as exc:
        raise InputError(f"{path}: not a complete evaluation: no {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"{path}: not a valid evaluation: {exc}") from None


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
            f"{rec.target:g}/day (at {rec.default_threshold}: {sci(rec.expected_at_default)}/day)"
        )
    line = (
        f"{rec.method} on {rec.set}: threshold {rec.threshold} "
        f"({sci(rec.expected_per_day)} expected false matches/day; at "
        f"{rec.default_threshold}: {sci(rec.expected_at_default)}/day)"
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
    t = rec.threshold
    if any(part in rec.method for part in ("+regions", "+content", "+tiles")):
        # The measured distance is the closest of whole-image and region pairs: both
        # thresholds of a bank with regions on bound it.
        return (
            f"lightkeeper bank create {bank}{dihedral} --regions --threshold "
            f"{rec.signal_type}={t} --region-threshold {t}\n"
            f"# an existing bank: PATCH /v1/banks/{bank} "
            f'{{"thresholds": {{"{rec.signal_type}": {t}}}, "regions": true, '
            f'"region_threshold": {t}}}'
        )
    return (
        f"lightkeeper bank create {bank}{dihedral} --threshold {rec.signal_type}={t}\n"
        f"# an existing bank: PATCH /v1/banks/{bank} "
        f'{{"thresholds": {{"{rec.signal_type}": {t}}}}}'
    )


# -- tables, shared by the markdown and the text summary -------------------------------------


def _calibration_rows(evaluation: Evaluation, calibration: Calibration) -> tuple[Row, list[Row]]:
    head = ["set", "method", "list size N"]
    for u in calibration.uploads:
        head += [f"t for U={short_count(u)}/day", f"expected/day at 31, U={short_count(u)}"]
    by_key = {
        (r.set, r.method, r.list_size, r.uploads_per_day): r
        for r in _table(evaluation, calibration)
    }
    rows = []
    for f in evaluation.tails:
        for n in calibration.list_sizes:
            cells = [f.set, f.method, short_count(n)]
            for u in calibration.uploads:
                r = by_key[(f.set, f.method, n, u)]
                cells += [
                    "none" if r.threshold is None else str(r.threshold),
                    sci(r.expected_at_default),
                ]
            rows.append(cells)
    return head, rows


def summary_text(evaluation: Evaluation, calibration: Calibration) -> str:
    """What ``lightkeeper eval`` prints: the checks, the pairs, the recommendation."""
    parts = [
        run_line(evaluation),
        *scope_lines(evaluation),
        "",
        "Must-show checks (recall at the threshold; false matches):",
    ]
    parts.append(text_table(*must_show_rows(evaluation)))
    for check in measured_checks(evaluation):
        parts += [
            "",
            f"Crops up to 20% and screenshots, {check.method} on {check.set}:",
            text_table(*crop_rows(check)),
            crop_verdict(check),
        ]
    parts += [
        "",
        "Unrelated pairs (pairs within each threshold):",
        text_table(*pair_rows(evaluation)),
    ]
    parts += ["", "PDQ quality floor:", text_table(*quality_rows(evaluation))]
    parts += [
        "",
        "Calibration: largest threshold t with uploads/day x list size x p(t) <= "
        f"{calibration.target:g} expected false matches a day (pessimistic bound):",
        text_table(*_calibration_rows(evaluation, calibration)),
        "",
        "Assumptions:",
        *[f"  - {a}" for a in ASSUMPTIONS],
    ]
    parts += [
        "",
        f"Recommended thresholds for N={short_count(calibration.list_size)} hashes and "
        f"U={short_count(calibration.uploads_per_day)} uploads/day (target "
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
        run_line(evaluation),
        "",
        *[f"- {line}" for line in scope_lines(evaluation)],
        "",
        "### Must-show checks",
        "",
        markdown_table(*must_show_rows(evaluation)),
        "",
    ]
    checks = measured_checks(evaluation)
    if checks:
        parts += ["### Crops up to 20% and screenshots", ""]
        for check in checks:
            parts += [
                crop_verdict(check),
                "",
                markdown_table(*crop_rows(check)),
                "",
            ]
    for title, caption, table in added_sections(evaluation):
        parts += [f"### PDQ alone and {title}", "", caption, "", markdown_table(*table), ""]
    parts += [
        f"### Recall at threshold {threshold}",
        "",
        "Share of copies within the threshold of their original (distance only; see the quality "
        "table for copies a bank would not match because their quality is under the floor). "
        "A method measured on a sample of the photos is counted on that sample (see above); "
        "'–': not measured.",
        "",
        markdown_table(*recall_rows(evaluation, threshold)),
        "",
        "### Unrelated pairs",
        "",
        "All pairs of distinct photos within each set (never pooled), with the number of pairs "
        "within each threshold; a pair's distance is the smaller of its two directions.",
        "",
        markdown_table(*pair_rows(evaluation)),
        "",
        "### PDQ quality floor",
        "",
        f"Quality floor {evaluation.quality_floor}: photos under it are not matched by PDQ.",
        "",
        markdown_table(*quality_rows(evaluation)),
        "",
        "### Calibration",
        "",
        "p(t), the chance that an unrelated pair is within t, is the sum over the method's "
        "kinds of code pair (one reference code name against one query code name), each "
        "kind's lower tail fitted on its own pairs and weighed by its share of them (a bound "
        "on the chance that any one is within t); the heaviest kind at 31 is shown with its fit.",
        "",
        markdown_table(*fit_rows(evaluation)),
        "",
        f"Largest threshold t with U x N x p_upper(t) <= {calibration.target:g} expected false "
        f"matches a day, and the expected false matches a day at {threshold}:",
        "",
        markdown_table(*_calibration_rows(evaluation, calibration)),
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
        f"<p>{esc(run_line(evaluation))}</p>",
        "".join(f"<p>{esc(line)}</p>" for line in scope_lines(evaluation)),
        "<h2>Must-show checks</h2>",
        _html_table(*must_show_rows(evaluation)),
    ]
    checks = measured_checks(evaluation)
    if checks:
        parts.append("<h2>Crops up to 20% and screenshots</h2>")
        for check in checks:
            parts += [f"<p>{esc(crop_verdict(check))}</p>", _html_table(*crop_rows(check))]
    for title, caption, table in added_sections(evaluation):
        parts += [f"<h2>PDQ alone and {esc(title)}</h2>", f"<p>{esc(caption)}</p>"]
        parts.append(_html_table(*table))
    parts += [
        "<h2>Calibration</h2>",
        "<p>Largest threshold t with U &times; N &times; p<sub>upper</sub>(t) &le; "
        f"{calibration.target:g} expected false matches a day, and the expected false matches "
        f"a day at {threshold}.</p>",
        _html_table(*_calibration_rows(evaluation, calibration)),
        _html_table(*fit_rows(evaluation)),
        "<ul>" + "".join(f"<li>{esc(a)}</li>" for a in ASSUMPTIONS) + "</ul>",
    ]
    parts.append(
        f"<p>Recommended for N={short_count(calibration.list_size)} hashes and "
        f"U={short_count(calibration.uploads_per_day)} uploads/day:</p><ul>"
    )
    for rec in recs:
        command = f"<pre>{esc(apply_command(rec))}</pre>" if rec.threshold is not None else ""
        parts.append(f"<li>{esc(describe_recommendation(evaluation, rec))}{command}</li>")
    parts.append("</ul>")
    parts += [
        "<h2>Unrelated pairs</h2>",
        _html_table(*pair_rows(evaluation)),
        "<h2>PDQ quality floor</h2>",
        _html_table(*quality_rows(evaluation)),
        "<h2>Figures</h2>",
    ]
    for name, svg in figures.items():
        body = svg[svg.index("<svg") :]  # drop the XML prolog and DOCTYPE: inline SVG has none
        parts.append(
            f'<figure id="{esc(_slug(name))}">{body}<figcaption>{esc(name)}</figcaption></figure>'
        )
    parts += [
        f"<h2>Recall at threshold {threshold}</h2>",
        _html_table(*recall_rows(evaluation, threshold)),
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
