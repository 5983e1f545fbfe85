"""``lightkeeper actions``: the actioner's maintenance (crash recovery)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lightkeeper.cli.vault_command import open_vault, vault_options


@click.group("actions")
def actions_group() -> None:
    """The actioner: what happens to uploads that match (see docs/actions.md).

    The service runs `recover` by itself when it starts; run it by hand after a crash
    when the service is not started again soon.
    """


@actions_group.command("recover")
@click.option(
    "--older-than",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="Only quarantines at least this old (younger ones may be in progress).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@vault_options
def recover_command(
    older_than: float,
    as_json: bool,
    db: str | None,
    vault_dir: Path | None,
    key_file: Path | None,
) -> None:
    """Complete the actions of uploads quarantined just before a crash.

    Each quarantined upload that no recorded match references is decrypted in memory,
    matched again, and its case, record, webhook events and audit event are completed
    under its original request id; one that matches nothing any more is destroyed, with
    that reason logged. Webhook events are sent by the service (or `webhooks deliver`).
    """
    from datetime import timedelta

    from lightkeeper.actions.actioner import Actioner
    from lightkeeper.matching import Matcher

    with open_vault(db, vault_dir, key_file) as vault:
        actioner = Actioner(vault, Matcher(vault.store))
        report = actioner.recover(older_than=timedelta(seconds=older_than))
    if as_json:
        click.echo(json.dumps(report.to_dict()))
        return
    for request_id in report.completed:
        click.echo(f"completed\t{request_id}")
    for object_id, reason in report.destroyed:
        click.echo(f"destroyed\t{object_id}\t{reason}")
    for object_id, problem in report.failed:
        click.echo(f"failed\t{object_id}\t{problem}")
    click.echo(
        f"{len(report.completed)} completed, {len(report.destroyed)} destroyed, "
        f"{len(report.failed)} failed",
        err=True,
    )
