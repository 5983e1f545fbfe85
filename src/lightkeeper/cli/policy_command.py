"""``lightkeeper policy``: the policy in force, setting a new one, its history, dry runs."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from lightkeeper.cli.bank_command import db_option, open_store


def _read_document(path: Path) -> Any:
    """A policy document from a JSON file ("-": standard input)."""
    from lightkeeper.errors import InvalidPolicy

    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        return json.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="FILE") from None
    except json.JSONDecodeError as exc:
        raise InvalidPolicy(f"{path}: not JSON: {exc}") from None


def _moment(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@click.group("policy")
def policy_group() -> None:
    """The policy: which matches lead to which actions (block, quarantine, review, notify).

    Every `set` adds a version; the old ones are kept, so `show --at` says what was in force
    at any past moment. `dry-run` applies a candidate to the recorded matches and lists
    what would change, writing nothing. See docs/policy.md for the document format.
    """


@policy_group.command("show")
@click.option(
    "--at",
    "at",
    callback=_moment,
    metavar="TIME",
    help="The policy in force at TIME (ISO 8601, UTC unless it says).",
)
@click.option("--version", "version", type=click.IntRange(min=1), help="A stored version.")
@click.option("--json", "as_json", is_flag=True, help="The version's record as one JSON object.")
@db_option
def show_command(at: datetime | None, version: int | None, as_json: bool, db: str | None) -> None:
    """Print the policy in force (or the one at --at, or --version), as JSON."""
    from lightkeeper.actions.policy_store import get_policy_version, policy_at

    if at is not None and version is not None:
        raise click.UsageError("give --at or --version, not both")
    with open_store(db) as store:
        if version is None:
            version, policy = policy_at(store, at or datetime.now(UTC))
        stored = None if version is None else get_policy_version(store, version)
    if stored is None:
        record: dict[str, Any] = {"version": None, "policy": policy.to_dict()}
        note = "the built-in default policy (none set)"
    else:
        record = stored.to_dict()
        when = f"{stored.created_at:%Y-%m-%d %H:%M:%S}"
        note = f"version {stored.version}, set {when} UTC by {stored.actor}"
        if stored.comment:
            note += f": {stored.comment}"
    if as_json:
        click.echo(json.dumps(record))
        return
    click.echo(note, err=True)
    click.echo(json.dumps(record["policy"], indent=2))


@policy_group.command("set")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--comment", default="", metavar="TEXT", help="Why (kept with the version).")
@db_option
def set_command(file: Path, comment: str, db: str | None) -> None:
    """Put the policy in FILE (JSON; - for standard input) in force as a new version."""
    from lightkeeper.actions.policy_store import set_policy

    document = _read_document(file)
    with open_store(db) as store:
        version = set_policy(store, document, comment=comment)
    click.echo(f"policy version {version} in force")


@policy_group.command("history")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per version and line.")
@db_option
def history_command(as_json: bool, db: str | None) -> None:
    """List every policy version, oldest first: version, time (UTC), actor, rules, comment."""
    from lightkeeper.actions.policy_store import policy_history

    with open_store(db) as store:
        versions = policy_history(store)
    for stored in versions:
        if as_json:
            click.echo(json.dumps(stored.to_dict()))
            continue
        rules = ",".join(rule.name for rule in stored.policy.rules) or "-"
        click.echo(
            f"{stored.version}\t{stored.created_at:%Y-%m-%d %H:%M:%S}\t{stored.actor}\t"
            f"{rules}\t{stored.comment or '-'}"
        )
    if not versions and not as_json:
        click.echo("no policy set: the built-in default is in force", err=True)


@policy_group.command("dry-run")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Most changes listed.",
)
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
@db_option
def dry_run_command(file: Path, limit: int, as_json: bool, db: str | None) -> None:
    """What the policy in FILE would have done differently over the recorded matches.

    One line per recorded match that would change: its id, request id, case, and the
    actions done then and those the candidate would take. Nothing is written.
    """
    from lightkeeper.actions.policy_store import dry_run

    document = _read_document(file)
    with open_store(db) as store:
        report = dry_run(store, document, limit=limit)
    if as_json:
        click.echo(json.dumps(report.to_dict()))
        return
    for change in report.changes:
        old = ",".join(change.old_actions) or "-"
        new = ",".join(change.new_actions) or "-"
        click.echo(
            f"{change.match_id}\t{change.request_id}\tcase {change.case_id}\t"
            f"{old} (priority {change.old_priority}) -> {new} (priority {change.new_priority})"
        )
    more = f" ({report.changed - len(report.changes)} not listed)" if report.truncated else ""
    click.echo(
        f"{report.changed} of {report.examined} recorded matches would change{more}", err=True
    )
