"""The tables of the accuracy report, as rows of text cells, shared by the printed summary,
the markdown section of docs/accuracy.md and the HTML page (`lightkeeper.evaluation.report`
lays them out; the calibration table, which needs the calibration settings, stays there).

Every cell is computed from an `Evaluation`: nothing a table says is written by hand, so
the crop and screenshot check's verdict (`crop_verdict`) names the edits that pass and the
ones that do not from the figures themselves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from lightkeeper.evaluation.checks import (
    CheckResult,
    CropScreenshotCheck,
    added_methods,
    crops_and_screenshots,
    must_show,
)
from lightkeeper.evaluation.harness import Evaluation
from lightkeeper.evaluation.scopes import Scope, photo_sample

__all__ = [
    "PAIR_THRESHOLDS",
    "Row",
    "added_rows",
    "added_sections",
    "check_cell",
    "crop_rows",
    "crop_verdict",
    "fit_rows",
    "markdown_table",
    "measured_checks",
    "must_show_rows",
    "pair_rows",
    "pct",
    "quality_rows",
    "recall_rows",
    "run_line",
    "sci",
    "scope_lines",
    "short_count",
    "text_table",
]

#: Thresholds at which false matches are tabulated.
PAIR_THRESHOLDS: Final = (10, 20, 31, 40, 50, 60)

Row = list[str]


def short_count(value: float) -> str:
    """13400000 -> "13.4M"."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def pct(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{100 * value:.1f}%"


def sci(value: float | None) -> str:
    if value is None:
        return "–"
    if value == 0:
        return "0"
    return f"{value:.2g}" if 1e-3 <= abs(value) < 1e4 else f"{value:.1e}"


def must_show_rows(evaluation: Evaluation) -> tuple[Row, list[Row]]:
    sets = [s.name for s in evaluation.sets]
    head = ["requirement", "method", "threshold", *sets]
    by_set = {name: must_show(evaluation, name) for name in sets}
    rows: list[Row] = []
    for index, first in enumerate(by_set[sets[0]] if sets else []):
        cells = [first.label, first.method, str(first.threshold)]
        for name in sets:
            cells.append(check_cell(by_set[name][index]))
        rows.append(cells)
    return head, rows


def check_cell(check: CheckResult) -> str:
    every = ""
    if check.every_photo is not None:
        every = f"by distance, every photo: {pct(check.every_photo)}"
    if check.passed is None:
        # Copies by distance but none of a photo above the quality floor, or a file
        # written before the gated figures were kept.
        return f"not judged ({every})" if every else "not measured"
    mark = "PASS" if check.passed else "FAIL"
    if check.required.startswith("recall"):
        return f"{mark} {pct(check.measured)} (worst {check.worst}{'; ' + every if every else ''})"
    count = int(check.measured or 0)
    return f"{mark} {count} false"


def recall_rows(evaluation: Evaluation, threshold: int) -> tuple[Row, list[Row]]:
    """Recall of every transform, one column per set and method that has copies there; a
    method measured on a sample of the photos says so in its column's head."""
    columns: list[tuple[str, str]] = [
        (s.name, m)
        for s in evaluation.sets
        for m in evaluation.methods
        if evaluation.curves(s.name, m)
    ]
    head = ["transform"]
    for s, m in columns:
        every = evaluation.scopes.get(m, {}).get("every", 1)
        head.append(f"{s} {m}" + (f" (1 in {every} photos)" if every > 1 else ""))
    rows: list[Row] = []
    for transform in evaluation.transforms:
        cells = [transform]
        for s, m in columns:
            try:
                cells.append(pct(evaluation.curve(s, m, transform).recall(threshold)))
            except KeyError:
                cells.append("–")
        rows.append(cells)
    return head, rows


def pair_rows(evaluation: Evaluation) -> tuple[Row, list[Row]]:
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
    paired = bool(evaluation.paired)
    if paired:
        head.insert(5, "min, every code pair")
    rows = []
    for p in evaluation.pairs:
        c = p.closest[0] if p.closest else None
        closest = f"{c.a} (q{c.quality_a}) ~ {c.b} (q{c.quality_b})" if c else ""
        cells = [
            p.set,
            p.method,
            str(p.photos),
            f"{p.pairs:,}",
            str(p.minimum),
            *[str(p.false_matches(x)) for x in PAIR_THRESHOLDS],
            f"{p.false_matches(t, gated=True)} of {p.gated_pairs:,}",
            closest,
        ]
        if paired:
            cells.insert(5, "–" if p.all_pairs_minimum is None else str(p.all_pairs_minimum))
        rows.append(cells)
    return head, rows


def scope_lines(evaluation: Evaluation) -> list[str]:
    """One sentence per set whose copies were made for a sample of its photos, one per
    method measured on some copies only, and one on paired methods."""
    lines = []
    set_every: dict[str, int] = {}
    for scope in evaluation.scopes.values():
        set_every.update(scope.get("set_every") or {})
    for set_name, every in sorted(set_every.items()):
        lines.append(
            f"{set_name}: copies made on {photo_sample(every, evaluation.seed)} only, for every "
            "method; its unrelated pairs on every photo."
        )
    for method, scope in evaluation.scopes.items():
        if Scope.from_json(scope).is_own_full:
            continue  # measured on every copy but for the sets above
        families = ", ".join(scope["families"]) if scope.get("families") else "every family"
        sets = ", ".join(scope["sets"]) if scope.get("sets") else "every set"
        photos = scope.get("sample") or "every photo"
        lines.append(
            f"{method}: copies measured on {families} only, in {sets}, on {photos}; its "
            "unrelated pairs on every photo of every set."
        )
    if evaluation.paired:
        lines.append(
            f"{', '.join(evaluation.paired)}: distances count only the pairs of codes its "
            "matcher compares (a crop window of the upload meets only the bank's windows of "
            "the same family); the pairs table also gives the closest pair over every code pair."
        )
    return lines


def added_rows(evaluation: Evaluation, set_name: str, method: str) -> tuple[Row, list[Row]]:
    """Every transform the added `method` was measured on in a set: its copies, and recall at
    the default threshold of the built-in PDQ methods and of the method on the same copies."""
    sample = evaluation.sample(method, set_name)
    others = [m for m in evaluation.methods if m not in added_methods(evaluation.methods)]
    head = ["transform", "copies", *[f"{m} (PDQ alone)" for m in others], method]
    threshold = evaluation.default_threshold
    rows: list[Row] = []
    for transform in evaluation.transforms:
        try:
            mine = evaluation.curve(set_name, method, transform, sample)
        except KeyError:
            continue
        cells = [transform, str(mine.copies)]
        for other in others:
            try:
                cells.append(
                    pct(evaluation.curve(set_name, other, transform, sample).recall(threshold))
                )
            except KeyError:
                cells.append("–")
        rows.append([*cells, pct(mine.recall(threshold))])
    return head, rows


def crop_rows(check: CropScreenshotCheck) -> tuple[Row, list[Row]]:
    head = [
        "edit",
        "copies",
        f"PDQ alone ({check.baseline})",
        f"with {check.method}",
        f">= {check.min_recall:.0%}",
    ]
    rows: list[Row] = []
    for row in check.rows:
        verdict = "not measured" if row.passed is None else "PASS" if row.passed else "FAIL"
        rows.append(
            [
                row.transform,
                "–" if row.copies is None else str(row.copies),
                pct(row.baseline_recall),
                pct(row.recall),
                verdict,
            ]
        )
    if check.false_matches is not None:
        verdict = "PASS" if check.false_matches == 0 else "FAIL"
        base = "–" if check.baseline_false_matches is None else str(check.baseline_false_matches)
        rows.append(
            [
                f"unrelated pairs within {check.threshold} (closest {check.closest} bits)",
                f"{check.pairs:,}",
                base,
                str(check.false_matches),
                f"{verdict} (no false match)",
            ]
        )
    return head, rows


def crop_verdict(check: CropScreenshotCheck) -> str:
    """The check's outcome in one sentence, from the figures."""
    measured = [r for r in check.rows if r.passed is not None]
    sample = f", on {check.sample}" if check.sample else ""
    text = (
        f"{check.method} on {check.set}{sample}: {len(check.passing)} of {len(measured)} crop "
        f"and screenshot edits reach {check.min_recall:.0%} at {check.threshold}"
    )
    if check.failing:
        text += f"; below it: {', '.join(check.failing)}"
    if check.false_matches is not None:
        text += (
            f"; {check.false_matches} false matches among {check.pairs:,} unrelated pairs "
            f"(closest {check.closest} bits)"
        )
    verdict = {True: "PASS", False: "FAIL", None: "not judged"}[check.passed]
    return f"{text}. Overall: {verdict}."


def measured_checks(evaluation: Evaluation) -> list[CropScreenshotCheck]:
    return [
        check
        for s in evaluation.sets
        for check in crops_and_screenshots(evaluation, s.name)
        if check.measured
    ]


def added_sections(evaluation: Evaluation) -> list[tuple[str, str, tuple[Row, list[Row]]]]:
    """(title, caption, table) for each added method and set with copies of it."""
    found = []
    for s in evaluation.sets:
        for method in added_methods(evaluation.methods):
            head, rows = added_rows(evaluation, s.name, method)
            if rows:
                sample = evaluation.sample(method, s.name)
                photos = sample or "every photo"
                found.append(
                    (
                        f"{method} on {s.name}",
                        f"Recall at {evaluation.default_threshold} of every edit {method} was "
                        f"measured on, on {photos} of the set, with PDQ alone counted on the "
                        "same copies.",
                        (head, rows),
                    )
                )
    return found


def quality_rows(evaluation: Evaluation) -> tuple[Row, list[Row]]:
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
                f"{s.originals_below_floor} ({pct(originals)})",
                f"{s.copies:,}",
                f"{s.copies_below_floor:,} ({pct(copies)})",
                f"{worst.transform} {pct(worst.below_floor / worst.copies)}" if worst else "–",
            ]
        )
    return head, rows


def fit_rows(evaluation: Evaluation) -> tuple[Row, list[Row]]:
    head = [
        "set",
        "method",
        "pairs fitted",
        "kinds of code pair",
        "heaviest kind at 31 (its model)",
        "mean ± sd",
        "its tail mu [95%]",
        "its tail sigma [95%]",
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
                str(f.kinds),
                f"{f.heaviest or 'the one'} ({f.model})",
                f"{f.mean:.1f} ± {f.sd:.1f}",
                f"{f.mu:.1f} [{f.mu_interval[0]:.1f}, {f.mu_interval[1]:.1f}]",
                f"{f.sigma:.1f} [{f.sigma_interval[0]:.1f}, {f.sigma_interval[1]:.1f}]",
                sci(10 ** f.log10_p[31]),
                sci(f.p_upper(31)),
            ]
        )
    return head, rows


def markdown_table(head: Row, rows: Sequence[Row]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(map(cell, head)) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines)


def text_table(head: Row, rows: Sequence[Row]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(head, *rows, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def run_line(evaluation: Evaluation) -> str:
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
