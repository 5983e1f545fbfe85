"""``lightkeeper report``: NCMEC CyberTipline reports of confirmed cases.

Each subcommand calls one function of `lightkeeper.reporting.reports`. Where reports go and
who reports come from the settings (`lightkeeper.reporting.settings`): with no
``LIGHTKEEPER_NCMEC_URL``, reporting is off and ``submit``/``retract`` say so. The acting user
is the local one (``local:NAME``), as in the audit trail.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from lightkeeper.cli.bank_command import db_option, open_store
from lightkeeper.cli.vault_command import open_vault, vault_options

if TYPE_CHECKING:
    from lightkeeper.reporting.reports import Report

# Written out so that ``--help`` imports no SQLAlchemy.
_STATES = ("draft", "submitted", "files_uploaded", "finished", "retracted", "failed")


def _actor() -> str:
    from lightkeeper.banks.audit import current_actor

    return current_actor()


def _when(report: Report) -> str:
    return f"{report.created_at:%Y-%m-%d %H:%M}"


def _line(report: Report) -> str:
    sent = sum(1 for f in report.files if f.fileinfo_at is not None)
    who = report.uploader or "(no uploader reference)"
    return (
        f"{report.id}\tcase {report.case_id}\t{who}\t{report.state}\t"
        f"ncmec {report.ncmec_report_id or '-'}\t{sent}/{len(report.files)} files\t"
        f"{_when(report)}\t{report.created_by}"
    )


def _show(report: Report) -> None:
    click.echo(_line(report))
    if report.error:
        click.echo(f"  error: {report.error}")
    for f in report.files:
        viewed = "viewed by a person" if f.viewed_by_esp else "not viewed by a person"
        click.echo(
            f"  file {f.id}\tmatch {f.case_match_id}\tvault {f.vault_object_id or '-'}\t"
            f"ncmec {f.ncmec_file_id or '-'}\t{viewed}\t"
            f"{'details sent' if f.fileinfo_at else 'details not sent'}"
            + ("\tDAMAGED on the way to NCMEC" if f.damaged_at is not None else "")
        )


@click.group("report")
def report_group() -> None:
    """NCMEC CyberTipline reports, made from cases a person confirmed.

    `create` makes a draft from a confirmed case (the XML is kept exactly as it will be
    sent; each file says whether a person viewed it, from the audit trail). `submit` sends
    it: submit, upload and details per file, finish; run it again to resume after a
    failure. Set LIGHTKEEPER_NCMEC_URL, LIGHTKEEPER_NCMEC_USERNAME/PASSWORD and
    LIGHTKEEPER_REPORTER_PROFILE first; see docs/reporting.md.
    """


@report_group.command("create")
@click.argument("case_id", type=click.IntRange(min=1))
@click.option(
    "--uploader", metavar="REF", help="The reported user, when the case has several uploaders."
)
@click.option(
    "--no-uploader",
    "without_uploader",
    is_flag=True,
    help="Report the copies uploaded with no uploader reference (a reported user of their own).",
)
@click.option(
    "--profile",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Reporter profile (JSON). [default: $LIGHTKEEPER_REPORTER_PROFILE]",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@db_option
def create_command(
    case_id: int,
    uploader: str | None,
    without_uploader: bool,
    profile: Path | None,
    as_json: bool,
    db: str | None,
) -> None:
    """Make a draft report of confirmed case CASE_ID; prints its id."""
    from lightkeeper.reporting.reports import create_report
    from lightkeeper.reporting.settings import ReporterProfile, ReportingSettings

    reporter = (
        ReporterProfile.load(profile)
        if profile is not None
        else ReportingSettings.from_env().profile()
    )
    with open_store(db) as store:
        report = create_report(
            store,
            case_id,
            profile=reporter,
            actor=_actor(),
            uploader=uploader,
            without_uploader=without_uploader,
        )
    click.echo(json.dumps(report.to_dict(xml=True)) if as_json else str(report.id))


@report_group.command("submit")
@click.argument("report_id", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@vault_options
def submit_command(
    report_id: int, as_json: bool, db: str | None, vault_dir: Path | None, key_file: Path | None
) -> None:
    """Send report REPORT_ID to NCMEC, or resume sending it; prints NCMEC's report id."""
    from lightkeeper.banks.audit import acting_as
    from lightkeeper.reporting.ncmec_client import CyberTiplineClient
    from lightkeeper.reporting.reports import submit_report

    client = CyberTiplineClient.from_settings()
    with open_vault(db, vault_dir, key_file) as vault, acting_as(_actor()):
        report = submit_report(vault.store, vault, client, report_id)
    click.echo(json.dumps(report.to_dict()) if as_json else str(report.ncmec_report_id))


@report_group.command("retract")
@click.argument("report_id", type=click.IntRange(min=1))
@db_option
def retract_command(report_id: int, db: str | None) -> None:
    """Withdraw report REPORT_ID, which must not be finished."""
    from lightkeeper.reporting.ncmec_client import CyberTiplineClient
    from lightkeeper.reporting.reports import retract_report
    from lightkeeper.reporting.settings import ReportingSettings

    settings = ReportingSettings.from_env()
    # With reporting off, a report never sent can still be withdrawn here.
    client = CyberTiplineClient.from_settings(settings) if settings.enabled else None
    with open_store(db) as store:
        report = retract_report(store, client, report_id, actor=_actor())
    click.echo(_line(report))


@report_group.command("show")
@click.argument("report_id", type=click.IntRange(min=1))
@click.option("--xml", "show_xml", is_flag=True, help="Print the report XML as sent, only.")
@click.option("--calls", is_flag=True, help="Also list every call made to NCMEC.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@db_option
def show_command(
    report_id: int, show_xml: bool, calls: bool, as_json: bool, db: str | None
) -> None:
    """Show report REPORT_ID: state, NCMEC's ids, files and whether a person viewed each."""
    from lightkeeper.reporting.reports import get_report, report_calls

    with open_store(db) as store:
        report = get_report(store, report_id)
        made = report_calls(store, report_id) if calls else []
    if show_xml:
        click.echo(report.xml, nl=False)
        return
    if as_json:
        out = report.to_dict()
        if calls:
            out["calls"] = [c.to_dict() for c in made]
        click.echo(json.dumps(out))
        return
    _show(report)
    for call in made:
        answer = call.error or f"HTTP {call.status_code}"
        click.echo(f"  call {call.id}\t{call.at:%Y-%m-%d %H:%M:%S}\t{call.step}\t{answer}")


@report_group.command("list")
@click.option("--case", "case_id", type=click.IntRange(min=1), help="Only this case's reports.")
@click.option("--state", type=click.Choice(_STATES), help="Only reports in this state.")
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="Most listed."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per report and line.")
@db_option
def list_command(
    case_id: int | None, state: str | None, limit: int, as_json: bool, db: str | None
) -> None:
    """List reports, oldest first: id, case, state, NCMEC's id, files sent, made, by whom."""
    from lightkeeper.reporting.reports import list_reports

    with open_store(db) as store:
        found = list_reports(store, case_id=case_id, state=state, limit=limit)
    for report in found:
        click.echo(json.dumps(report.to_dict()) if as_json else _line(report))
