"""``lightkeeper transparency``: the transparency and error figures of a period, as JSON, CSV
or a self-contained HTML page."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from lightkeeper.cli.bank_command import db_option, open_store
from lightkeeper.cli.output import display_path

_FORMATS = ("json", "csv", "html")


def _moment(_ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    from lightkeeper.errors import InvalidRequest
    from lightkeeper.reporting.transparency import parse_utc

    try:
        return parse_utc(value)
    except InvalidRequest as exc:
        raise click.BadParameter(str(exc), param=param) from None


@click.command("transparency")
@click.option(
    "--from",
    "start",
    metavar="DATE",
    required=True,
    callback=_moment,
    help="Start of the period, included: an ISO date or date and time (UTC unless it says).",
)
@click.option(
    "--to",
    "end",
    metavar="DATE",
    required=True,
    callback=_moment,
    help="End of the period, not included: --to 2026-02-01 ends with January 31.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_FORMATS),
    default="json",
    show_default=True,
    help="json: one object; csv: section,key,value rows; html: a page with charts.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to this file instead of stdout.",
)
@db_option
def transparency_command(
    start: datetime, end: datetime, fmt: str, output: Path | None, db: str | None
) -> None:
    """Transparency and error figures for the period [--from, --to): matches by bank and
    signal type, actions, the human-review rate, confirmed and false-positive verdicts per
    signal type and per list (with 95% Wilson intervals), reports filed, delays from upload
    to decision and report, and appeals. Never any hash value. See docs/transparency.md.

    \b
    lightkeeper transparency --from 2026-01-01 --to 2026-02-01
    lightkeeper transparency --from 2026-01-01 --to 2026-02-01 --format html -o jan.html
    """
    if end <= start:
        raise click.BadParameter("--to must be after --from", param_hint="--to")
    from lightkeeper.reporting.transparency import compute_figures

    with open_store(db) as store:
        figures = compute_figures(store, start=start, end=end)
    if fmt == "json":
        text = json.dumps(figures.to_dict(), indent=2) + "\n"
    elif fmt == "csv":
        text = figures.to_csv()
    else:
        from lightkeeper.reporting.transparency.page import render_page

        text = render_page(figures)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        from lightkeeper.errors import InputError

        raise InputError(
            f"cannot write {display_path(str(output))}: {exc.strerror or exc}"
        ) from None
