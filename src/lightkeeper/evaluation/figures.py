"""The plots of the accuracy report, as SVG text (matplotlib, Agg, no pyplot state).

SVG is written with text as text and a fixed hash salt and no date, so the same
evaluation gives the same bytes (the docs' figures only change when the figures do).
"""

from __future__ import annotations

import io
from contextlib import AbstractContextManager
from typing import Final

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lightkeeper.evaluation.checks import MUST_SHOW, added_methods, baseline_of
from lightkeeper.evaluation.harness import Evaluation

__all__ = ["calibration_figure", "histogram_figure", "recall_figure", "render_all"]

#: Thresholds shown on the x axis (nothing of interest happens past 128 bits).
X_MAX: Final = 128


def _style() -> AbstractContextManager[None]:
    """Text kept as text, a fixed hash salt (stable ids), small fonts for small panels."""
    return rc_context(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": "lightkeeper",
            "font.size": 8,
            "axes.titlesize": 9,
            "path.simplify": True,
        }
    )


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    with _style():
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def _threshold_line(ax: Axes, threshold: int) -> None:
    ax.axvline(threshold, color="#888888", linewidth=0.8, linestyle="--")


def _baseline(evaluation: Evaluation, method: str) -> str | None:
    """PDQ alone, drawn dashed beside an added signal measured on some copies only."""
    if method not in evaluation.scopes or method not in added_methods(evaluation.methods):
        return None
    baseline = baseline_of(method)
    return baseline if baseline in evaluation.methods else None


def recall_figure(evaluation: Evaluation, set_name: str, method: str) -> str:
    """Recall against threshold, one panel per transform family, one line per strength.
    An added signal measured on some copies only also has PDQ alone on the same copies,
    dashed in the same colour."""
    families: dict[str, list[str]] = {}
    for curve in evaluation.curves(set_name, method):
        if curve.family != "none":
            families.setdefault(curve.family, []).append(curve.transform)
    baseline = _baseline(evaluation, method)
    sample = evaluation.sample(method, set_name)
    columns = min(6 if len(families) > 8 else 4, max(1, len(families)))
    rows = max(1, -(-len(families) // columns))
    title = f"{set_name}: recall against threshold, method {method}"
    if baseline is not None:
        title += f" (solid)\nand PDQ alone, {baseline} (dashed), on the same copies"
        title += f": {sample}" if sample else ""
    elif sample:
        title += f"\n{sample}"
    # Margins fixed in inches (a constrained layout of this many panels costs seconds).
    head = 0.6 + 0.2 * title.count("\n")
    height = 1.9 * rows + 0.2 * title.count("\n")
    with _style():
        width = 2.3 * max(columns, 4)
        figure = Figure(figsize=(width, height))
        axes = figure.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
        x = np.arange(X_MAX + 1)
        for ax, (family, transforms) in zip(axes.flat, families.items(), strict=False):
            for transform in transforms:
                curve = evaluation.curve(set_name, method, transform)
                recall = np.array(curve.within[: X_MAX + 1]) / max(curve.copies, 1)
                (line,) = ax.plot(x, recall, linewidth=1.0, label=curve.strength)
                if baseline is not None:
                    try:
                        alone = evaluation.curve(set_name, baseline, transform, sample)
                    except KeyError:
                        continue
                    share = np.array(alone.within[: X_MAX + 1]) / max(alone.copies, 1)
                    ax.plot(x, share, linewidth=0.8, linestyle="--", color=line.get_color())
            _threshold_line(ax, evaluation.default_threshold)
            ax.set_title(family)
            ax.set_ylim(-0.02, 1.02)
            ax.legend(fontsize=6, loc="lower right", frameon=False)
        for ax in list(axes.flat)[len(families) :]:
            ax.set_visible(False)
        figure.subplots_adjust(
            left=0.7 / width,
            right=1 - 0.1 / width,
            bottom=0.53 / height,
            top=1 - head / height,
            hspace=0.35,
        )
        figure.supxlabel("threshold (bits)", y=0.01)
        figure.supylabel("recall", x=0.005)
        figure.suptitle(title)
        return _svg(figure)


def _must_show_ids() -> set[str]:
    return {t for req in MUST_SHOW for t in req.transforms}


def histogram_figure(evaluation: Evaluation, set_name: str) -> str:
    """Distances of copies (mild edits, other edits) and of unrelated pairs, per method."""
    methods = [m for m in evaluation.methods if evaluation.pair_stats(set_name, m) is not None]
    mild = _must_show_ids()
    with _style():
        figure = Figure(figsize=(4.2 * max(1, len(methods)), 3.0), layout="constrained")
        axes = figure.subplots(1, max(1, len(methods)), squeeze=False)
        bins = np.arange(257)
        for ax, method in zip(axes.flat, methods, strict=False):
            groups = {
                "copies, must-show edits": np.zeros(257),
                "copies, other edits": np.zeros(257),
            }
            for curve in evaluation.curves(set_name, method):
                if curve.family == "none":
                    continue
                counts = np.diff(np.concatenate([[0], curve.within]))
                key = (
                    "copies, must-show edits" if curve.transform in mild else "copies, other edits"
                )
                groups[key] += counts
            stats = evaluation.pair_stats(set_name, method)
            assert stats is not None
            groups["unrelated pairs"] = np.array(stats.histogram, dtype=np.float64)
            for (label, counts), colour in zip(
                groups.items(), ("#1b9e77", "#d95f02", "#7570b3"), strict=True
            ):
                total = counts.sum()
                if total:
                    ax.step(
                        bins, counts / total, where="mid", label=label, color=colour, linewidth=1.0
                    )
            _threshold_line(ax, evaluation.default_threshold)
            ax.set_yscale("log")
            ax.set_xlim(0, 256)
            ax.set_title(method)
            ax.set_xlabel("distance (bits)")
            ax.legend(fontsize=6, frameon=False)
        axes.flat[0].set_ylabel("share")
        figure.suptitle(
            f"{set_name}: distances of copies to their original, and of unrelated pairs"
        )
        return _svg(figure)


def calibration_figure(evaluation: Evaluation, set_name: str, levels: dict[str, float]) -> str:
    """p(t) of an unrelated pair: observed share, fitted tail and its pessimistic bound,
    with the budget target / (N * U) of each level drawn across."""
    fits = [t for t in evaluation.tails if t.set == set_name]
    with _style():
        figure = Figure(figsize=(4.2 * max(1, len(fits)), 3.2), layout="constrained")
        axes = figure.subplots(1, max(1, len(fits)), squeeze=False, sharey=True)
        x = np.arange(X_MAX + 1)
        for ax, fit in zip(axes.flat, fits, strict=False):
            observed = np.array(fit.observed[: X_MAX + 1], dtype=np.float64)
            with np.errstate(divide="ignore"):
                share = np.where(
                    observed > 0, np.log10(np.maximum(observed, 1) / fit.pairs), np.nan
                )
            ax.step(x, share, where="post", label="observed", color="#333333")
            ax.plot(x, fit.log10_p[: X_MAX + 1], label="fitted tail", color="#1b9e77")
            ax.plot(
                x,
                fit.log10_p_upper[: X_MAX + 1],
                label=f"{fit.confidence:.0%} bound",
                color="#d95f02",
            )
            for label, level in levels.items():
                ax.axhline(level, color="#7570b3", linewidth=0.6, linestyle=":")
                ax.text(2, level + 0.3, label, fontsize=6, color="#7570b3")
            _threshold_line(ax, evaluation.default_threshold)
            ax.set_ylim(-22, 0.5)
            ax.set_xlim(0, X_MAX)
            ax.set_title(fit.method)
            ax.set_xlabel("threshold t (bits)")
            ax.legend(fontsize=6, frameon=False, loc="lower right")
        axes.flat[0].set_ylabel("log10 P(unrelated pair within t)")
        figure.suptitle(f"{set_name}: lower tail of unrelated-pair distances")
        return _svg(figure)


def render_all(evaluation: Evaluation, levels: dict[str, float]) -> dict[str, str]:
    """Every figure of the report, by file-name stem, in report order."""
    figures: dict[str, str] = {}
    for summary in evaluation.sets:
        name = summary.name
        for method in evaluation.methods:
            if any(c.set == name and c.method == method for c in evaluation.recall):
                figures[f"recall-{name}-{method}"] = recall_figure(evaluation, name, method)
        if any(p.set == name for p in evaluation.pairs):
            figures[f"distances-{name}"] = histogram_figure(evaluation, name)
            figures[f"calibration-{name}"] = calibration_figure(evaluation, name, levels)
    return figures
