"""The transparency figures as an HTML page: charts first, the same numbers in a table under
each, so that the page reads without the pictures (and a screen reader or a regulator can
copy the numbers).

`render_page` gives a complete document that stands alone: the charts are inline SVG drawn
by matplotlib (Agg, no pyplot state), the style sheet is inline, and there is no script, no
font, no image and no link to fetch — it can be mailed, archived or published as it is.
`render_fragment` gives its body, for the reviewer UI to place in its own layout;
`STYLESHEET` is the style sheet it expects.

Bank and list names come from whoever named the bank or the list, so every string from the
data goes through Jinja2's autoescaping; in the charts, matplotlib escapes text it writes
into the SVG, and reads no TeX from it (``parse_math`` off), so a name with ``$`` or ``<``
shows as written.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from lightkeeper.reporting.transparency.figures import (
    CONFIDENCE,
    Distribution,
    ErrorCount,
    TransparencyFigures,
)

__all__ = ["STYLESHEET", "render_fragment", "render_page"]

#: Bars one chart shows at most; the table under it lists every row.
MAX_BARS: Final = 30
#: Characters of a name a chart shows (the table shows it whole).
MAX_LABEL: Final = 40
_BAR: Final = "#4a6fa5"
_ERROR: Final = "#b8433a"
_DELAY_COLOURS: Final = ("#4a6fa5", "#8aa6cf", "#c9d6ea")
#: matplotlib's SVG metadata keys: all set to None, so that none is written.
_SVG_METADATA: Final = ("Creator", "Date", "Format", "Type")
_SVG_STYLE: Final = re.compile(r"<style[^>]*>.*?</style>", re.DOTALL)
_TAG: Final = re.compile(r"<[^<>]+>")

STYLESHEET: Final = """
.lk-transparency { font-family: system-ui, sans-serif; max-width: 64rem; margin: 0 auto;
  padding: 1rem; color: #1d1d1f; line-height: 1.45; }
.lk-transparency h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
.lk-transparency h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ccc; }
.lk-transparency h3 { font-size: 1.05rem; margin-top: 1.4rem; }
.lk-transparency table { border-collapse: collapse; margin: 0.6rem 0 1.2rem; }
.lk-transparency th, .lk-transparency td { border: 1px solid #d4d4d8; padding: 0.25rem 0.6rem;
  text-align: left; vertical-align: top; }
.lk-transparency th { background: #f3f4f6; font-weight: 600; }
.lk-transparency td.n { text-align: right; font-variant-numeric: tabular-nums; }
.lk-transparency figure { margin: 0.8rem 0 0.2rem; }
.lk-transparency figure svg { max-width: 100%; height: auto; }
.lk-transparency figcaption { font-size: 0.85rem; color: #555; }
.lk-transparency .lk-note, .lk-transparency .lk-empty { color: #555; font-size: 0.92rem; }
"""

_FRAGMENT: Final = """\
{%- macro rows_or_none(rows, columns) -%}
{%- if not rows %}<tr><td colspan="{{ columns }}" class="lk-empty">none in this period</td></tr>
{%- endif -%}
{%- endmacro -%}
{%- macro chart(svg, caption, empty) -%}
{%- if svg %}<figure>{{ svg }}<figcaption>{{ caption }}</figcaption></figure>
{%- else %}<p class="lk-empty">{{ empty }}</p>{% endif -%}
{%- endmacro -%}
{%- macro error_cells(c) -%}
<td class="n">{{ c.confirmed }}</td><td class="n">{{ c.false_positive }}</td>
<td class="n">{{ c.reversed }}</td><td class="n">{{ c.errors }}</td>
<td class="n">{{ c.judged }}</td><td class="n">{{ c.false_positive_ratio | pct }}</td>
<td class="n">{{ c.interval | interval }}</td>
{%- endmacro -%}
{%- set error_head -%}
<th>Confirmed</th><th>False positive</th><th>Reversed on appeal</th><th>Errors</th>
<th>Verdicts</th><th>False-positive ratio</th><th>{{ confidence }} interval</th>
{%- endset -%}
<section class="lk-transparency">
<h1>Transparency and error figures</h1>
<p>Period from <time datetime="{{ f.start.isoformat() }}">{{ f.start | moment }}</time>
to <time datetime="{{ f.end.isoformat() }}">{{ f.end | moment }}</time> (UTC; the end is not
included). Generated <time datetime="{{ f.generated_at.isoformat() }}">
{{- f.generated_at | moment }}</time>.</p>

<h2 id="matches">Matches</h2>
<p>{{ m.uploads }} acted-on uploads of {{ m.contents }} distinct contents, from {{ m.uploaders }}
distinct uploader references. {{ m.exact }} had an exact (cryptographic-hash) match;
{{ m.perceptual_only }} had perceptual matches only.</p>
<p class="lk-note">An upload that matched several banks or signal types counts once under each
(“uploads”); “matches” counts every list entry it matched.</p>
<h3>By bank</h3>
{{ chart(charts.by_bank, "Uploads with a match in each bank.", "No matches in this period.") }}
<table><thead><tr><th>Bank</th><th>Uploads</th><th>Matches</th></tr></thead><tbody>
{%- for row in m.by_bank %}
<tr><td>{{ row.bank }}</td><td class="n">{{ row.uploads }}</td>
<td class="n">{{ row.matches }}</td></tr>
{%- endfor %}{{ rows_or_none(m.by_bank, 3) }}
</tbody></table>
<h3>By signal type</h3>
{{ chart(charts.by_signal, "Uploads with a match of each signal type.",
   "No matches in this period.") }}
<table><thead><tr><th>Signal type</th><th>Uploads</th><th>Matches</th></tr></thead><tbody>
{%- for row in m.by_signal_type %}
<tr><td>{{ row.signal_type }}</td><td class="n">{{ row.uploads }}</td>
<td class="n">{{ row.matches }}</td></tr>
{%- endfor %}{{ rows_or_none(m.by_signal_type, 3) }}
</tbody></table>
<h3>By bank and signal type</h3>
<table><thead><tr><th>Bank</th><th>Signal type</th><th>Uploads</th><th>Matches</th></tr></thead>
<tbody>
{%- for row in m.by_bank_and_signal_type %}
<tr><td>{{ row.bank }}</td><td>{{ row.signal_type }}</td><td class="n">{{ row.uploads }}</td>
<td class="n">{{ row.matches }}</td></tr>
{%- endfor %}{{ rows_or_none(m.by_bank_and_signal_type, 4) }}
</tbody></table>

<h2 id="actions">Actions</h2>
<table><thead><tr><th>Action</th><th>Uploads</th></tr></thead><tbody>
{%- for action, n in f.actions.by_action.items() %}
<tr><td>{{ action }}</td><td class="n">{{ n }}</td></tr>
{%- endfor %}
<tr><td>rejected (the upload was refused)</td><td class="n">{{ f.actions.rejected }}</td></tr>
<tr><th>acted-on uploads</th><td class="n">{{ f.actions.uploads }}</td></tr>
</tbody></table>

<h2 id="review">Human review</h2>
<table><tbody>
<tr><th>Cases first seen in the period that asked for review</th>
<td class="n">{{ r.asked }}</td></tr>
<tr><th>… with a human decision</th><td class="n">{{ r.decided }}</td></tr>
<tr><th>… still undecided</th><td class="n">{{ r.undecided }}</td></tr>
<tr><th>… with a verdict (confirmed, false positive, reversed)</th>
<td class="n">{{ r.resolved }}</td></tr>
<tr><th>Human-review rate</th><td class="n">{{ r.review_rate | pct }}</td></tr>
</tbody></table>
<h3>Decisions recorded in the period</h3>
<table><thead><tr><th>Decision</th><th>Count</th></tr></thead><tbody>
{%- for kind, n in r.decisions.items() %}
<tr><td>{{ kind | replace("_", " ") }}</td><td class="n">{{ n }}</td></tr>
{%- endfor %}
</tbody></table>

<h2 id="errors">Errors: confirmed matches and false positives</h2>
<p class="lk-note">Verdicts given in the period. A reversal is an appeal upheld, counted in the
period it was decided. A case counts once under each signal type and list that matched it.
The false-positive ratio is errors (false positives and reversals) over verdicts, with its
{{ confidence }} Wilson score interval.</p>
<table><thead><tr><th></th>{{ error_head }}</tr></thead><tbody>
<tr><th>All cases</th>{{ error_cells(e.overall) }}</tr>
</tbody></table>
<h3>Per algorithm (signal type)</h3>
{{ chart(charts.errors_by_signal, "False-positive ratio per signal type; the line is its "
   ~ confidence ~ " interval.", "No verdicts in this period.") }}
<table><thead><tr><th>Signal type</th>{{ error_head }}</tr></thead><tbody>
{%- for row in e.by_signal_type %}
<tr><td>{{ row.signal_type }}</td>{{ error_cells(row.counts) }}</tr>
{%- endfor %}{{ rows_or_none(e.by_signal_type, 8) }}
</tbody></table>
<h3>Per list</h3>
{{ chart(charts.errors_by_list, "False-positive ratio per list; the line is its "
   ~ confidence ~ " interval.", "No verdicts in this period.") }}
<table><thead><tr><th>Bank</th><th>List</th><th>Version</th>{{ error_head }}</tr></thead><tbody>
{%- for row in e.by_list %}
<tr><td>{{ row.bank }}</td><td>{{ row.list_name or "–" }}</td><td>{{ row.list_version or "–" }}</td>
{{ error_cells(row.counts) }}</tr>
{%- endfor %}{{ rows_or_none(e.by_list, 10) }}
</tbody></table>

<h2 id="reports">Reports to NCMEC</h2>
<table><tbody>
<tr><th>Reports made</th><td class="n">{{ p.created }}</td></tr>
<tr><th>Reports filed (finished)</th><td class="n">{{ p.filed }}</td></tr>
<tr><th>Reports retracted</th><td class="n">{{ p.retracted }}</td></tr>
<tr><th>Reports failed</th><td class="n">{{ p.failed }}</td></tr>
<tr><th>Reports made in the period and still pending</th><td class="n">{{ p.pending }}</td></tr>
<tr><th>Files in the reports filed</th><td class="n">{{ p.files }}</td></tr>
<tr><th>… viewed by a person at the provider</th><td class="n">{{ p.files_viewed }}</td></tr>
<tr><th>… not viewed by a person</th><td class="n">{{ p.files_not_viewed }}</td></tr>
</tbody></table>

<h2 id="delays">Time from upload to action</h2>
<p class="lk-note">The match call blocks, quarantines and queues an upload while it is being
uploaded. What takes time is people: these are the delays from a content's first upload to
its first human decision and to a report filed, and from an appeal to its answer.</p>
{{ chart(charts.delays, "Median, 90th percentile and longest delay, in hours.",
   "No decisions, reports or appeal answers in this period.") }}
<table><thead><tr><th>Delay</th><th>Count</th><th>Median</th><th>90th percentile</th>
<th>Longest</th></tr></thead><tbody>
{%- for name, d in delays %}
<tr><td>{{ name }}</td><td class="n">{{ d.count }}</td>
<td class="n">{{ d.median_s | duration }}</td><td class="n">{{ d.p90_s | duration }}</td>
<td class="n">{{ d.max_s | duration }}</td></tr>
{%- endfor %}
</tbody></table>

<h2 id="appeals">Appeals</h2>
<table><tbody>
<tr><th>Appeals received</th><td class="n">{{ a.received }}</td></tr>
<tr><th>Upheld (the decision was reversed)</th><td class="n">{{ a.upheld }}</td></tr>
<tr><th>Denied</th><td class="n">{{ a.denied }}</td></tr>
<tr><th>Received in the period and still open</th><td class="n">{{ a.open }}</td></tr>
<tr><th>Median time to a decision</th>
<td class="n">{{ a.decision_time.median_s | duration }}</td></tr>
</tbody></table>
</section>
"""

_PAGE: Final = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Transparency and error figures, {{ f.start | moment }} to {{ f.end | moment }}</title>
<style>{{ stylesheet }}</style>
</head>
<body>
{{ fragment }}
</body>
</html>
"""


# ---------------------------------------------------------------------- formatting


def _moment(value: datetime) -> str:
    """A UTC time, without the clock when it is midnight (periods are usually whole days)."""
    if (value.hour, value.minute, value.second, value.microsecond) == (0, 0, 0, 0):
        return value.strftime("%Y-%m-%d")
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _interval(value: tuple[float, float] | None) -> str:
    return "–" if value is None else f"{100 * value[0]:.1f} – {100 * value[1]:.1f} %"


def _duration(seconds: float | None) -> str:
    """Seconds as a person reads them: 45 s, 12 min, 3 h 20 min, 2 d 4 h."""
    if seconds is None:
        return "–"
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


def _environment() -> Environment:
    env = Environment(autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True)
    env.filters.update(moment=_moment, pct=_pct, interval=_interval, duration=_duration)
    return env


_ENV: Final = _environment()
_FRAGMENT_TEMPLATE: Final = _ENV.from_string(_FRAGMENT)
_PAGE_TEMPLATE: Final = _ENV.from_string(_PAGE)


# ---------------------------------------------------------------------- charts


def _style() -> AbstractContextManager[None]:
    """Text kept as text (and escaped by the SVG writer), a fixed id salt (same figures, same
    bytes), fonts small enough for a page of charts."""
    return rc_context(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": "lightkeeper-transparency",
            "font.size": 8,
            "axes.titlesize": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )


def _svg(figure: Figure, label: str, name: str) -> Markup:
    """The figure as an inline ``<svg>`` element that can share a page with others.

    matplotlib writes a stand-alone file; inline, its parts would leak into the page: the
    XML prolog and metadata go; its ``<style>`` (which, inline, would style the whole page)
    becomes attributes on the root, which its elements inherit; every id (``figure_1`` in
    every chart) gets the prefix ``lk-NAME-``, and references to them with it. The root is
    labelled for screen readers.
    """
    buffer = io.StringIO()
    with _style():
        figure.savefig(buffer, format="svg", metadata=dict.fromkeys(_SVG_METADATA))
    text = buffer.getvalue()
    svg = _SVG_STYLE.sub("", text[text.index("<svg ") + len("<svg ") :])
    prefix = f"lk-{name}-"

    def own_ids(tag: re.Match[str]) -> str:
        # Inside tags only: text between them is the data's, and stays as written.
        text = tag.group(0).replace(' id="', f' id="{prefix}')
        return text.replace('href="#', f'href="#{prefix}').replace("url(#", f"url(#{prefix}")

    svg = _TAG.sub(own_ids, svg)
    root = (
        f'<svg role="img" aria-label="{html.escape(label, quote=True)}" '
        'stroke-linejoin="round" stroke-linecap="butt" '
    )
    # Safe as markup: matplotlib escapes every text it writes (names included).
    return Markup(root + svg)


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def _figure(rows: int) -> Figure:
    return Figure(figsize=(6.4, 0.9 + 0.26 * max(rows, 1)), layout="constrained")


def _bar_chart(
    name: str, title: str, labels: Sequence[str], values: Sequence[int], xlabel: str
) -> Markup:
    """Horizontal bars, largest on top, at most `MAX_BARS`."""
    ranked = sorted(zip(labels, values, strict=True), key=lambda lv: (-lv[1], lv[0]))[:MAX_BARS]
    ranked.reverse()  # barh draws bottom-up
    with _style():
        figure = _figure(len(ranked))
        ax = figure.add_subplot()
        positions = list(range(len(ranked)))
        bars = ax.barh(positions, [v for _, v in ranked], color=_BAR)
        ax.set_yticks(positions, [_short(name) for name, _ in ranked], parse_math=False)
        ax.bar_label(bars, padding=2)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(xlabel)
        ax.set_title(title, loc="left")
        ax.margins(x=0.1)
    return _svg(figure, title, name)


def _ratio_chart(name: str, title: str, rows: Sequence[tuple[str, ErrorCount]]) -> Markup | None:
    """False-positive ratio per row with its interval as an error bar, rows without a
    verdict left out; None when none is left."""
    judged = [(name, c) for name, c in rows if c.judged][:MAX_BARS]
    if not judged:
        return None
    judged.reverse()
    with _style():
        figure = _figure(len(judged))
        ax = figure.add_subplot()
        positions = list(range(len(judged)))
        ratios = [c.false_positive_ratio or 0.0 for _, c in judged]
        lows = [r - (c.interval or (r, r))[0] for r, (_, c) in zip(ratios, judged, strict=True)]
        highs = [(c.interval or (r, r))[1] - r for r, (_, c) in zip(ratios, judged, strict=True)]
        ax.errorbar(
            ratios, positions, xerr=[lows, highs], fmt="o", color=_ERROR, ecolor=_ERROR, capsize=3
        )
        for position, ratio, (_, c) in zip(positions, ratios, judged, strict=True):
            ax.annotate(
                f"{c.errors}/{c.judged}",
                (ratio, position),
                xytext=(0, 5),
                textcoords="offset points",
                ha="center",
                fontsize=7,
            )
        ax.set_yticks(positions, [_short(name) for name, _ in judged], parse_math=False)
        ax.set_xlim(-0.03, 1.03)  # room for the marks at 0 % and 100 %
        ax.set_ylim(-0.7, len(judged) - 0.3)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel(f"false-positive ratio, {_confidence()} interval")
        ax.set_title(title, loc="left")
    return _svg(figure, title, name)


def _delay_chart(delays: Sequence[tuple[str, Distribution]]) -> Markup | None:
    """Median, 90th percentile and longest delay (hours) per kind of delay that has any."""
    present = [(name, d) for name, d in delays if d.count][::-1]
    if not present:
        return None
    title = "Delays (hours)"
    with _style():
        figure = _figure(3 * len(present))
        ax = figure.add_subplot()
        height = 0.26
        stats = (("median", "median_s"), ("90th percentile", "p90_s"), ("longest", "max_s"))
        for offset, ((stat, attribute), colour) in enumerate(
            zip(stats, _DELAY_COLOURS, strict=True)
        ):
            values = [(getattr(d, attribute) or 0.0) / 3600 for _, d in present]
            positions = [i + (1 - offset) * height for i in range(len(present))]
            bars = ax.barh(positions, values, height=height, color=colour, label=stat)
            ax.bar_label(bars, fmt="%.1f", padding=2, fontsize=7)
        ax.set_yticks(list(range(len(present))), [name for name, _ in present])
        ax.set_xlabel("hours")
        ax.set_title(title, loc="left")
        ax.legend(loc="lower right", fontsize=7)
        ax.margins(x=0.12)
    label = "Delays from upload to decision and to report, and of appeals, in hours"
    return _svg(figure, label, "delays")


def _confidence() -> str:
    return f"{round(100 * CONFIDENCE)} %"


@dataclass(frozen=True, slots=True)
class _Charts:
    by_bank: Markup | None
    by_signal: Markup | None
    errors_by_signal: Markup | None
    errors_by_list: Markup | None
    delays: Markup | None


def _delays(figures: TransparencyFigures) -> list[tuple[str, Distribution]]:
    return [
        ("Upload to first human decision", figures.delays.upload_to_decision),
        ("Upload to report filed", figures.delays.upload_to_report),
        ("Appeal to its decision", figures.appeals.decision_time),
    ]


def _list_label(bank: str, name: str | None, version: str | None) -> str:
    return " ".join(part for part in (bank, "·", name or "–", version or "") if part)


def _charts(figures: TransparencyFigures) -> _Charts:
    m, e = figures.matches, figures.errors
    return _Charts(
        by_bank=_bar_chart(
            "by-bank",
            "Matches by bank",
            [row.bank for row in m.by_bank],
            [row.uploads for row in m.by_bank],
            "uploads",
        )
        if m.by_bank
        else None,
        by_signal=_bar_chart(
            "by-signal",
            "Matches by signal type",
            [row.signal_type for row in m.by_signal_type],
            [row.uploads for row in m.by_signal_type],
            "uploads",
        )
        if m.by_signal_type
        else None,
        errors_by_signal=_ratio_chart(
            "errors-by-signal",
            "False positives per signal type",
            [(row.signal_type, row.counts) for row in e.by_signal_type],
        ),
        errors_by_list=_ratio_chart(
            "errors-by-list",
            "False positives per list",
            [
                (_list_label(row.bank, row.list_name, row.list_version), row.counts)
                for row in e.by_list
            ],
        ),
        delays=_delay_chart(_delays(figures)),
    )


# ---------------------------------------------------------------------- pages


def render_fragment(figures: TransparencyFigures) -> str:
    """The figures as one ``<section class="lk-transparency">``: headings, charts and
    tables, for a page that supplies `STYLESHEET` (or its own)."""
    return _FRAGMENT_TEMPLATE.render(
        f=figures,
        m=figures.matches,
        r=figures.review,
        e=figures.errors,
        p=figures.reports,
        a=figures.appeals,
        delays=_delays(figures),
        charts=_charts(figures),
        confidence=_confidence(),
    )


def render_page(figures: TransparencyFigures) -> str:
    """A complete HTML document of the figures that needs nothing else: inline SVG charts and
    style, no script, nothing fetched."""
    return _PAGE_TEMPLATE.render(
        f=figures,
        # Safe as markup: a constant, and a fragment rendered with autoescaping.
        stylesheet=Markup(STYLESHEET),
        fragment=Markup(render_fragment(figures)),
    )
