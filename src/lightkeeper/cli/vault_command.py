"""``lightkeeper vault``: the encrypted quarantine, its retention, holds and master keys.

Each subcommand opens the store and the vault (`lightkeeper.actions.vault.Vault`) and calls
one method. The acting user is the local one (``local:NAME``), as in the audit trail; every
read, hold, release and destruction is logged with them and the ``--reason`` given.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from lightkeeper.cli.bank_command import db_option, open_store
from lightkeeper.cli.exit_codes import ExitCode

if TYPE_CHECKING:
    from lightkeeper.actions.vault import Vault, VaultAccess, VaultObject

F = TypeVar("F", bound=Callable[..., Any])


def vault_options(function: F) -> F:
    """``--db``, ``--vault-dir`` and ``--key-file``: where the vault and its keys are."""
    function = click.option(
        "--key-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=(
            "Master key file. [default: $LIGHTKEEPER_VAULT_KEY if set, else "
            "$LIGHTKEEPER_VAULT_KEY_FILE, else vault.key in the data directory]"
        ),
    )(function)
    function = click.option(
        "--vault-dir",
        metavar="DIR",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=(
            "Directory of the encrypted files. [default: $LIGHTKEEPER_VAULT_DIR, else vault/ "
            "in the data directory: the SQLite database's, else ./lightkeeper-data]"
        ),
    )(function)
    return db_option(function)


def _reason_option(help_text: str) -> Callable[[F], F]:
    return click.option("--reason", required=True, metavar="TEXT", help=help_text)


@contextmanager
def open_vault(db: str | None, vault_dir: Path | None, key_file: Path | None) -> Iterator[Vault]:
    """The vault of the store at `db` (see `open_store` for its errors)."""
    from lightkeeper.actions.vault import Vault
    from lightkeeper.actions.vault_crypto import Keyring

    keyring = None if key_file is None else Keyring.from_file(key_file)
    with open_store(db) as store:
        yield Vault.open(store, root=vault_dir, keyring=keyring)


def _actor() -> str:
    from lightkeeper.banks.audit import current_actor

    return current_actor()


def _when(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M}"


def _line(item: VaultObject) -> str:
    state: str = item.state
    if item.destroyed_at is not None:
        state = f"destroyed {_when(item.destroyed_at)}"
    return (
        f"{item.id}\t{item.media_type}\t{item.size}\t{_when(item.created_at)}\t"
        f"keep until {_when(item.retain_until)}\t{state}\t{item.case_ref or '-'}"
    )


def _show(item: VaultObject, log: list[VaultAccess]) -> None:
    for key, value in item.to_dict().items():
        click.echo(f"{key + ':':16}{'-' if value is None else value}")
    click.echo("access log:")
    for entry in log:
        detail = f" ({entry.detail})" if entry.detail else ""
        click.echo(f"  {_when(entry.at)}  {entry.action:<17} {entry.actor}: {entry.reason}{detail}")


@click.group("vault")
def vault_group() -> None:
    """Quarantined content, encrypted at rest (AES-256-GCM, a data key per object wrapped
    by a master key), with retention, legal hold and a log of every access.

    Reading content needs --reason: who read what, when and why is logged. Objects are
    kept until a year after they are reported (`mark-reported`), then `expire` destroys
    them unless on legal hold. See docs/vault.md for the scheme and key management.
    """


@vault_group.command("put")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--media-type", default="application/octet-stream", show_default=True, help="Its type."
)
@_reason_option("Why it is quarantined (logged).")
@click.option("--case", "case_ref", default=None, metavar="REF", help="A case reference.")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@vault_options
def put_command(
    file: Path,
    media_type: str,
    reason: str,
    case_ref: str | None,
    as_json: bool,
    db: str | None,
    vault_dir: Path | None,
    key_file: Path | None,
) -> None:
    """Quarantine FILE's content and print its object id (FILE itself is left alone)."""
    data = file.read_bytes()
    with open_vault(db, vault_dir, key_file) as vault:
        item = vault.put(
            data, media_type=media_type, actor=_actor(), reason=reason, case_ref=case_ref
        )
    click.echo(json.dumps(item.to_dict()) if as_json else item.id)


@vault_group.command("list")
@click.option("--all", "include_destroyed", is_flag=True, help="Include destroyed objects.")
@click.option("--case", "case_ref", default=None, metavar="REF", help="Only this case's.")
@click.option("--sha256", default=None, metavar="HEX", help="Only content with this SHA-256.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@vault_options
def list_command(
    include_destroyed: bool,
    case_ref: str | None,
    sha256: str | None,
    as_json: bool,
    db: str | None,
    vault_dir: Path | None,
    key_file: Path | None,
) -> None:
    """List objects: id, media type, size, quarantined, kept until, state, case."""
    with open_vault(db, vault_dir, key_file) as vault:
        items = vault.list_objects(
            include_destroyed=include_destroyed, case_ref=case_ref, sha256=sha256
        )
    for item in items:
        click.echo(json.dumps(item.to_dict()) if as_json else _line(item))


@vault_group.command("show")
@click.argument("object_id")
@click.option("--json", "as_json", is_flag=True, help="Print the record and log as JSON.")
@vault_options
def show_command(
    object_id: str, as_json: bool, db: str | None, vault_dir: Path | None, key_file: Path | None
) -> None:
    """Show an object's record and its access log (never its content)."""
    with open_vault(db, vault_dir, key_file) as vault:
        item = vault.get(object_id)
        log = vault.access_log(object_id)
    if as_json:
        click.echo(json.dumps({**item.to_dict(), "access_log": [e.to_dict() for e in log]}))
        return
    _show(item, log)


@vault_group.command("read")
@click.argument("object_id")
@click.option(
    "--out",
    required=True,
    metavar="FILE",
    help="Where to write the content (a new file, mode 0600), or - for stdout (not a terminal).",
)
@_reason_option("Why you read it (logged with your name).")
@vault_options
def read_command(
    object_id: str,
    out: str,
    reason: str,
    db: str | None,
    vault_dir: Path | None,
    key_file: Path | None,
) -> None:
    """Decrypt an object's content to --out, logging who read it and why."""
    if out == "-" and sys.stdout.isatty():
        raise click.UsageError("refusing to write content to a terminal; give --out FILE")
    target = None if out == "-" else Path(out)
    if target is not None and target.exists():
        raise click.UsageError(f"{out} exists already; the vault writes only new files")
    with open_vault(db, vault_dir, key_file) as vault:
        data = vault.read(object_id, actor=_actor(), reason=reason)
    if target is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    click.echo(f"{len(data)} bytes written to {out}", err=True)


@vault_group.command("verify")
@click.argument("object_ids", nargs=-1, required=True, metavar="OBJECT_ID...")
@click.option("--reason", default="integrity check", show_default=True, help="Logged.")
@vault_options
def verify_command(
    object_ids: tuple[str, ...],
    reason: str,
    db: str | None,
    vault_dir: Path | None,
    key_file: Path | None,
) -> None:
    """Decrypt objects and check their SHA-256, without writing their content anywhere."""
    with open_vault(db, vault_dir, key_file) as vault:
        for object_id in object_ids:
            item = vault.verify(object_id, actor=_actor(), reason=reason)
            click.echo(f"{item.id}\tok\tsha256 {item.sha256}")


@vault_group.command("hold")
@click.argument("object_id")
@_reason_option("Why it is held (a legal matter, a request from authorities …).")
@vault_options
def hold_command(
    object_id: str, reason: str, db: str | None, vault_dir: Path | None, key_file: Path | None
) -> None:
    """Put an object on legal hold: it cannot be destroyed or expire until released."""
    with open_vault(db, vault_dir, key_file) as vault:
        item = vault.hold(object_id, actor=_actor(), reason=reason)
    click.echo(f"{item.id} on legal hold")


@vault_group.command("release")
@click.argument("object_id")
@_reason_option("Why the hold ends.")
@vault_options
def release_command(
    object_id: str, reason: str, db: str | None, vault_dir: Path | None, key_file: Path | None
) -> None:
    """Release an object's legal hold; its retention applies again."""
    with open_vault(db, vault_dir, key_file) as vault:
        item = vault.release_hold(object_id, actor=_actor(), reason=reason)
    click.echo(f"{item.id} released; kept until {_when(item.retain_until)}")


@vault_group.command("mark-reported")
@click.argument("object_id")
@click.option(
    "--at",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
    default=None,
    help="When the report was filed, UTC. [default: now]",
)
@vault_options
def mark_reported_command(
    object_id: str,
    at: datetime | None,
    db: str | None,
    vault_dir: Path | None,
    key_file: Path | None,
) -> None:
    """Record that an object was reported: it is kept a year from then (or longer)."""
    from datetime import UTC

    when = None if at is None else at.replace(tzinfo=UTC)
    with open_vault(db, vault_dir, key_file) as vault:
        item = vault.mark_reported(object_id, when, actor=_actor())
    click.echo(f"{item.id} reported; kept until {_when(item.retain_until)}")


@vault_group.command("destroy")
@click.argument("object_id")
@_reason_option("Why it is destroyed (kept in its tombstone).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@vault_options
def destroy_command(
    object_id: str,
    reason: str,
    yes: bool,
    db: str | None,
    vault_dir: Path | None,
    key_file: Path | None,
) -> None:
    """Destroy an object for good: its key is dropped and its file erased; a tombstone
    records who, when and why. Refused while it is on legal hold."""
    if not yes:
        click.confirm(f"Destroy vault object {object_id} for good?", abort=True, err=True)
    with open_vault(db, vault_dir, key_file) as vault:
        item = vault.destroy(object_id, actor=_actor(), reason=reason)
    click.echo(f"{item.id} destroyed")


@vault_group.command("expire")
@vault_options
def expire_command(db: str | None, vault_dir: Path | None, key_file: Path | None) -> None:
    """Destroy the objects whose retention has ended and that are not on legal hold, and
    remove files no object owns (left by crashes). Run it daily."""
    with open_vault(db, vault_dir, key_file) as vault:
        destroyed = vault.expire(actor=f"{_actor()} (retention)")
        swept = vault.sweep()
    for item in destroyed:
        click.echo(f"{item.id}\tdestroyed\t{item.destroy_reason}")
    click.echo(f"{len(destroyed)} destroyed; {swept} stray files removed", err=True)


@vault_group.command("rotate-key")
@click.option(
    "--no-new-key",
    is_flag=True,
    help=(
        "Re-wrap under the current active key without adding one: finishes an interrupted "
        "rotation, or one to a version added to $LIGHTKEEPER_VAULT_KEY."
    ),
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@vault_options
def rotate_command(
    no_new_key: bool,
    as_json: bool,
    db: str | None,
    vault_dir: Path | None,
    key_file: Path | None,
) -> None:
    """Add a new master key version and re-wrap every object's data key under it.

    Content is not re-encrypted. Old versions stay in the key file: remove one only once
    this reports that no object uses it and every process has reloaded the file.
    """
    with open_vault(db, vault_dir, key_file) as vault:
        report = vault.rotate(new_version=not no_new_key, actor=_actor())
    if as_json:
        click.echo(json.dumps(report.to_dict()))
        return
    made = "new " if report.created else ""
    click.echo(f"{report.rewrapped} data keys re-wrapped under {made}master key {report.version}")
    for object_id in report.failed:
        click.echo(f"lightkeeper: {object_id}: data key does not unwrap; left as it was", err=True)
    unused = [v for v in report.unused_versions if v != report.version]
    if unused:
        click.echo(f"versions no object uses any more: {', '.join(map(str, unused))}")
    if report.failed:
        raise click.exceptions.Exit(ExitCode.INPUT_ERRORS)
