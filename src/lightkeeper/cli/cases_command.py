"""``lightkeeper cases``: the cases opened by actions, their recorded matches, and uploaders."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from lightkeeper.cli.bank_command import db_option, open_store

if TYPE_CHECKING:
    from lightkeeper.actions.cases import Case, RecordedMatch

# Written out so that ``--help`` imports no SQLAlchemy.
_STATUSES = ("open", "decided", "reported", "closed")


def _case_line(case: Case) -> str:
    priority = "-" if case.priority is None else str(case.priority)
    return (
        f"{case.id}\t{case.status}\tpriority {priority}\t{','.join(case.actions) or '-'}\t"
        f"{case.match_count} uploads\t{case.uploader_count} uploaders\t"
        f"{case.first_seen_at:%Y-%m-%d %H:%M}\t{case.last_seen_at:%Y-%m-%d %H:%M}\t{case.sha256}"
    )


def _match_line(m: RecordedMatch) -> str:
    banks = ",".join(sorted({str(e["bank"]) for e in m.evidence}))
    return (
        f"  {m.id}\t{m.at:%Y-%m-%d %H:%M:%S}\t{m.request_id}\t{m.uploader or '-'}\t"
        f"{','.join(m.actions)}\tpolicy {m.policy_version or 'default'}\t{banks}\t"
        f"vault {m.vault_object_id or '-'}"
    )


@click.group("cases")
def cases_group() -> None:
    """Cases: one per content (SHA-256) a policy acted on, with every recorded upload of it.

    A case is opened by the first acted-on upload of a content and joined by every later
    one; its priority is the most urgent review priority seen (- when none asked for
    review). `list` gives the review-queue order: for review first, most urgent, oldest.
    """


@cases_group.command("list")
@click.option("--status", type=click.Choice(_STATUSES), help="Only cases with this status.")
@click.option("--priority", type=click.IntRange(1, 9), help="Only cases of this priority.")
@click.option("--uploader", metavar="REF", help="Only cases with an upload by this reference.")
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="Most listed."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per case and line.")
@db_option
def list_command(
    status: str | None,
    priority: int | None,
    uploader: str | None,
    limit: int,
    as_json: bool,
    db: str | None,
) -> None:
    """List cases in review-queue order."""
    from lightkeeper.actions.cases import list_cases

    with open_store(db) as store:
        found = list_cases(store, status=status, priority=priority, uploader=uploader, limit=limit)
    for case in found:
        click.echo(json.dumps(case.to_dict()) if as_json else _case_line(case))


@cases_group.command("show")
@click.argument("case_id", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="The case and its matches as JSON.")
@db_option
def show_command(case_id: int, as_json: bool, db: str | None) -> None:
    """Show case CASE_ID and its recorded matches (uploads), oldest first."""
    from lightkeeper.actions.cases import get_case

    with open_store(db) as store:
        detail = get_case(store, case_id)
    if as_json:
        out = {**detail.case.to_dict(), "matches": [m.to_dict() for m in detail.matches]}
        click.echo(json.dumps(out))
        return
    click.echo(_case_line(detail.case))
    for m in detail.matches:
        click.echo(_match_line(m))


@cases_group.command("uploader")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="The uploader's record as JSON.")
@db_option
def uploader_command(ref: str, as_json: bool, db: str | None) -> None:
    """Everything recorded for uploader reference REF: uploads, distinct contents, cases."""
    from lightkeeper.actions.cases import uploader_view

    with open_store(db) as store:
        view = uploader_view(store, ref)
    if as_json:
        out = {
            "uploader": view.uploader,
            "uploads": view.uploads,
            "contents": view.contents,
            "cases": [c.to_dict() for c in view.cases],
            "matches": [m.to_dict() for m in view.matches],
        }
        click.echo(json.dumps(out, default=str))
        return
    click.echo(f"{view.uploader}: {view.uploads} uploads of {view.contents} distinct contents")
    for case in view.cases:
        click.echo(_case_line(case))
