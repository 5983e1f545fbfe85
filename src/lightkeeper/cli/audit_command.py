"""``lightkeeper audit``: read the audit trail, print its head, and verify its hash chain."""

from __future__ import annotations

import json
import re

import click

from lightkeeper.cli.bank_command import db_option, open_store
from lightkeeper.cli.exit_codes import ExitCode
from lightkeeper.cli.output import error

# Checked here too, so a mistyped head is a usage error (exit 2) before the store is opened.
_ANCHOR = re.compile(r"(?:[1-9][0-9]*:)?[0-9a-fA-F]{64}")


@click.group("audit")
def audit_group() -> None:
    """The audit trail: who changed what, when, in a chain that shows tampering.

    Every bank, entry, import, key and webhook change records an event. Each event's
    SHA-256 covers its content and the event before it, so `verify` finds an event edited,
    removed, inserted or reordered in the database, and says which. Someone who rewrites
    every event from some point on can only be caught against a head written down earlier:
    record `lightkeeper audit head` somewhere else now and then, and pass it to
    `verify --expect-head`. See docs/audit.md.
    """


def _check_anchor(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _ANCHOR.fullmatch(value.strip()):
        raise click.BadParameter(
            f"{value!r} is not a head: POSITION:HASH as `lightkeeper audit head` prints it"
        )
    return value


@audit_group.command("verify")
@click.option(
    "--expect-head",
    metavar="POSITION:HASH",
    callback=_check_anchor,
    help="A head printed earlier by `audit head`: fail unless the trail still reaches it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@db_option
def verify_command(expect_head: str | None, as_json: bool, db: str | None) -> None:
    """Check every event's hash and link; list each problem with its event id.

    Exits 0 when the trail is intact, 11 when it is not (one line per problem on stdout).
    """
    from lightkeeper.banks.audit import verify

    with open_store(db) as store:
        report = verify(store.engine, expect_head=expect_head)
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    else:
        for problem in report.problems:
            click.echo(str(problem))
        unlisted = report.problem_count - len(report.problems)
        if unlisted:
            click.echo(f"… and {unlisted} more problems")
    if report.ok:
        if not as_json:
            head = "empty" if report.last is None else f"head {report.last.anchor}"
            click.echo(f"audit trail intact: {report.events} events, {head}")
        return
    error(
        f"the audit trail failed verification: {report.problem_count} problem(s) "
        f"in {report.events} events"
    )
    raise click.exceptions.Exit(ExitCode.AUDIT_TAMPERED)


@audit_group.command("head")
@click.option("--json", "as_json", is_flag=True, help="Print the head as one JSON object.")
@db_option
def head_command(as_json: bool, db: str | None) -> None:
    """Print the trail's head as POSITION:HASH, to write down somewhere else."""
    from lightkeeper.banks.audit import chain_head

    with open_store(db) as store:
        head = chain_head(store.engine)
    if head is None:
        error("the audit trail has no head row: run `lightkeeper audit verify`")
        raise click.exceptions.Exit(ExitCode.AUDIT_TAMPERED)
    if as_json:
        click.echo(json.dumps(head.to_dict()))
        return
    click.echo(head.anchor)
    click.echo(
        f"event {head.event_id} at position {head.position}; check the trail against it later "
        "with `lightkeeper audit verify --expect-head POSITION:HASH`",
        err=True,
    )


@audit_group.command("list")
@click.option(
    "--after",
    "after_id",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Only events with an id above this one.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=100, show_default=True, help="At most N events."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event and line.")
@db_option
def list_command(after_id: int, limit: int, as_json: bool, db: str | None) -> None:
    """List events, oldest first: id, time (UTC), actor, action, subject, details."""
    from lightkeeper.banks.audit import list_events

    with open_store(db) as store:
        events = list_events(store.engine, after_id=after_id, limit=limit)
    for event in events:
        if as_json:
            click.echo(json.dumps(event.to_dict()))
            continue
        details = json.dumps(event.details, sort_keys=True)
        click.echo(
            f"{event.id}\t{event.at:%Y-%m-%dT%H:%M:%S}Z\t{event.actor}\t{event.action}\t"
            f"{event.subject}\t{details}"
        )
