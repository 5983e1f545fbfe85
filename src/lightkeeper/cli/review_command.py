"""``lightkeeper reviewers``, ``appeals`` and ``feedback``: the people who review cases, users'
appeals against cases, and the negative feedback owed to the lists' providers.

Passwords are never taken as an argument (they would land in the shell's history and in
every process listing): they are asked for on the terminal, twice when set, or read as one
line from standard input with ``--password-stdin``.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from lightkeeper.cli.bank_command import db_option, open_store

if TYPE_CHECKING:
    from lightkeeper.review.accounts import Reviewer
    from lightkeeper.review.appeals import Appeal
    from lightkeeper.review.feedback import NegativeFeedback

# Written out so that ``--help`` imports no SQLAlchemy; tests/test_review_accounts.py checks.
_ROLES = ("reviewer", "senior", "admin")
_APPEAL_STATUSES = ("open", "upheld", "denied")

password_stdin_option = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password as one line from standard input instead of asking for it.",
)


def _interactive() -> bool:
    return sys.stdin.isatty()


def _read_password(from_stdin: bool, *, confirm: bool) -> str:
    """The password, from standard input or asked for on the terminal (twice if `confirm`)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not _interactive():
        raise click.UsageError(
            "no terminal to ask for the password on: give it on standard input with "
            "--password-stdin"
        )
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    return password


# ---------------------------------------------------------------------- reviewers


def _reviewer_line(r: Reviewer) -> str:
    cap = "default" if r.daily_reveal_cap is None else str(r.daily_reveal_cap)
    state = "disabled" if r.disabled else "active"
    return f"{r.id}\t{r.username}\t{r.role}\t{state}\treveal cap {cap}\t{r.display_name}"


@click.group("reviewers")
def reviewers_group() -> None:
    """Reviewer accounts for the review pages of `lightkeeper serve`.

    \b
    Roles:
      reviewer  works the queue: confirm, false positive, escalate, approve others
      senior    also decides escalated cases and appeals
      admin     everything a senior may do

    Passwords (12 characters or more) are stored as Argon2id hashes. An account added with
    --no-password signs in only through the trusted reverse-proxy header
    (LIGHTKEEPER_REVIEW_PROXY_HEADER). Disabling an account ends its sessions at once.
    """


@reviewers_group.command("add")
@click.argument("username")
@click.option(
    "--role", type=click.Choice(_ROLES), default="reviewer", show_default=True, help="Role."
)
@click.option("--display-name", metavar="TEXT", help="Name shown in the pages [default: USERNAME].")
@click.option(
    "--reveal-cap",
    type=click.IntRange(0, 100_000),
    default=None,
    help="Clear images this person may reveal per day [default: the service's setting].",
)
@password_stdin_option
@click.option("--no-password", is_flag=True, help="No password: proxy-header sign-in only.")
@click.option("--json", "as_json", is_flag=True, help="Print the account as JSON.")
@db_option
def add_command(
    username: str,
    role: str,
    display_name: str | None,
    reveal_cap: int | None,
    password_stdin: bool,
    no_password: bool,
    as_json: bool,
    db: str | None,
) -> None:
    """Add reviewer USERNAME (lowercase letters, digits, '.', '_', '-')."""
    from typing import cast

    from lightkeeper.review.accounts import Role, create_reviewer, validate_username

    validate_username(username)
    if no_password and password_stdin:
        raise click.UsageError("--no-password and --password-stdin exclude each other")
    password = None if no_password else _read_password(password_stdin, confirm=True)
    with open_store(db) as store:
        reviewer = create_reviewer(
            store,
            username,
            role=cast(Role, role),
            display_name=display_name,
            password=password,
            daily_reveal_cap=reveal_cap,
        )
    click.echo(json.dumps(reviewer.to_dict()) if as_json else _reviewer_line(reviewer))


@reviewers_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per account and line.")
@db_option
def list_command(as_json: bool, db: str | None) -> None:
    """List reviewer accounts (never their passwords)."""
    from lightkeeper.review.accounts import list_reviewers

    with open_store(db) as store:
        found = list_reviewers(store)
    for reviewer in found:
        click.echo(json.dumps(reviewer.to_dict()) if as_json else _reviewer_line(reviewer))


def _set_disabled(username: str, disabled: bool, db: str | None) -> None:
    from lightkeeper.review.accounts import set_disabled

    with open_store(db) as store:
        reviewer = set_disabled(store, username, disabled)
    click.echo(_reviewer_line(reviewer))


@reviewers_group.command("disable")
@click.argument("username")
@db_option
def disable_command(username: str, db: str | None) -> None:
    """Disable USERNAME: no sign-in, no decision, and their sessions end now."""
    _set_disabled(username, True, db)


@reviewers_group.command("enable")
@click.argument("username")
@db_option
def enable_command(username: str, db: str | None) -> None:
    """Enable USERNAME again."""
    _set_disabled(username, False, db)


@reviewers_group.command("passwd")
@click.argument("username")
@password_stdin_option
@db_option
def passwd_command(username: str, password_stdin: bool, db: str | None) -> None:
    """Set a new password for USERNAME (their sessions end)."""
    from lightkeeper.review.accounts import set_password, validate_username

    validate_username(username)
    password = _read_password(password_stdin, confirm=True)
    with open_store(db) as store:
        set_password(store, username, password)
    click.echo(f"password of {username} changed; their sessions were ended", err=True)


# ---------------------------------------------------------------------- appeals


def _appeal_line(a: Appeal) -> str:
    decided = "-" if a.decided_at is None else f"{a.decided_by} {a.decided_at:%Y-%m-%d %H:%M}"
    return (
        f"{a.id}\tcase {a.case_id}\t{a.status}\t{a.received_at:%Y-%m-%d %H:%M}\t"
        f"{a.uploader or '-'}\t{decided}"
    )


@click.group("appeals")
def appeals_group() -> None:
    """Users' appeals against cases, decided by senior reviewers.

    Upholding an appeal reverses the case: it is closed, the entries that matched are
    suppressed for this platform, negative feedback is recorded for the list's provider,
    and a `decision` webhook event tells the platform to reinstate the content.
    """


@appeals_group.command("list")
@click.option("--status", type=click.Choice(_APPEAL_STATUSES), help="Only appeals in this state.")
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="Most listed."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per appeal and line.")
@db_option
def appeals_list_command(status: str | None, limit: int, as_json: bool, db: str | None) -> None:
    """List appeals, oldest first."""
    from lightkeeper.review.appeals import list_appeals

    with open_store(db) as store:
        found = list_appeals(store, status=status, limit=limit)
    for appeal in found:
        click.echo(json.dumps(appeal.to_dict()) if as_json else _appeal_line(appeal))


@appeals_group.command("show")
@click.argument("appeal_id", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="The appeal as JSON.")
@db_option
def appeals_show_command(appeal_id: int, as_json: bool, db: str | None) -> None:
    """Show appeal APPEAL_ID with the user's statement and the answer."""
    from lightkeeper.review.appeals import get_appeal

    with open_store(db) as store:
        appeal = get_appeal(store, appeal_id)
    if as_json:
        click.echo(json.dumps(appeal.to_dict()))
        return
    click.echo(_appeal_line(appeal))
    click.echo(f"statement:\n{appeal.statement}")
    if appeal.reason is not None:
        click.echo(f"reason:\n{appeal.reason}")


@appeals_group.command("file")
@click.argument("case_id", type=click.IntRange(min=1))
@click.option(
    "--statement", required=True, metavar="TEXT", help="The user's statement ('-': stdin)."
)
@click.option("--uploader", metavar="REF", help="The uploader reference of the user appealing.")
@click.option("--json", "as_json", is_flag=True, help="Print the appeal as JSON.")
@db_option
def appeals_file_command(
    case_id: int, statement: str, uploader: str | None, as_json: bool, db: str | None
) -> None:
    """File a user's appeal against case CASE_ID."""
    from lightkeeper.review.appeals import file_appeal

    text = sys.stdin.read() if statement == "-" else statement
    with open_store(db) as store:
        appeal = file_appeal(store, case_id, statement=text, uploader=uploader)
    click.echo(json.dumps(appeal.to_dict()) if as_json else _appeal_line(appeal))


@appeals_group.command("decide")
@click.argument("appeal_id", type=click.IntRange(min=1))
@click.option("--reviewer", "username", required=True, metavar="USER", help="Who decides.")
@click.option("--uphold/--deny", required=True, help="Uphold (reverse the case) or deny.")
@click.option("--reason", required=True, metavar="TEXT", help="Why (kept with the appeal).")
@password_stdin_option
@click.option("--json", "as_json", is_flag=True, help="Print the appeal as JSON.")
@db_option
def appeals_decide_command(
    appeal_id: int,
    username: str,
    uphold: bool,
    reason: str,
    password_stdin: bool,
    as_json: bool,
    db: str | None,
) -> None:
    """Decide appeal APPEAL_ID as senior reviewer USER (who signs in with their password)."""
    from lightkeeper.review.accounts import authenticate
    from lightkeeper.review.appeals import decide_appeal
    from lightkeeper.review.settings import ReviewSettings

    password = _read_password(password_stdin, confirm=False)
    settings = ReviewSettings.from_env()
    with open_store(db) as store:
        reviewer = authenticate(store, username, password)
        appeal = decide_appeal(
            store, appeal_id, reviewer, uphold=uphold, reason=reason, settings=settings
        )
    click.echo(json.dumps(appeal.to_dict()) if as_json else _appeal_line(appeal))


# ---------------------------------------------------------------------- feedback


def _feedback_line(f: NegativeFeedback) -> str:
    exported = "-" if f.exported_at is None else f"exported {f.exported_at:%Y-%m-%d %H:%M}"
    return (
        f"{f.id}\tcase {f.case_id}\t{f.reason}\t{f.bank}\tentry {f.entry_id}\t{f.signal_type}\t"
        f"{f.list_name or '-'} {f.list_version or '-'}\t{f.external_id or '-'}\t"
        f"{f.at:%Y-%m-%d %H:%M}\t{exported}"
    )


@click.group("feedback")
def feedback_group() -> None:
    """Negative feedback: list entries judged wrong for this platform (false positives and
    upheld appeals), to hand back to the list's provider."""


_bank_option = click.option("--bank", metavar="NAME", help="Only feedback on this bank.")


@feedback_group.command("list")
@_bank_option
@click.option("--unexported", is_flag=True, help="Only feedback not exported yet.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per row and line.")
@db_option
def feedback_list_command(
    bank: str | None, unexported: bool, as_json: bool, db: str | None
) -> None:
    """List negative feedback, oldest first."""
    from lightkeeper.review.feedback import list_feedback

    with open_store(db) as store:
        found = list_feedback(store, bank=bank, unexported=unexported)
    for item in found:
        click.echo(json.dumps(item.to_dict()) if as_json else _feedback_line(item))


@feedback_group.command("export")
@_bank_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, not CSV.")
@db_option
def feedback_export_command(bank: str | None, as_json: bool, db: str | None) -> None:
    """Print the feedback not exported yet (CSV with a header, or JSON lines) and mark it
    exported: the next export gives only what came since. The rows carry the entry's hash
    (while the entry exists), for the list's provider; never the reviewer's name."""
    import csv

    from lightkeeper.review.feedback import export_feedback

    with open_store(db) as store:
        rows = export_feedback(store, bank=bank)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    if rows:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
