"""``lightkeeper bank``: create, fill, inspect, export and delete hash banks.

Each subcommand opens the store (`lightkeeper.banks.BankStore`), calls one or two of its
methods or `lightkeeper.exchange`'s, and prints what happened. The store's errors (no such
bank, a malformed hash, a bank name taken) reach the user as one line and exit 1 through the
``lightkeeper`` group; a store that cannot be opened or used exits 5 (`open_store`).

`db_option` and `open_store` are shared with ``match`` and ``scan``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar, cast

import click

from lightkeeper.cli.exit_codes import ExitCode
from lightkeeper.cli.output import display_path, error

if TYPE_CHECKING:
    from lightkeeper.banks import Bank, BankStore, ImportRun, NewEntry
    from lightkeeper.banks.records import EntryRegion
    from lightkeeper.exchange import ImportReport

F = TypeVar("F", bound=Callable[..., Any])

# Written out rather than read from `lightkeeper.banks.settings` and `lightkeeper.exchange`,
# so that ``--help`` imports no SQLAlchemy; tests/test_cli_bank.py checks that they agree.
DATABASE_ENV = "LIGHTKEEPER_DATABASE_URL"
DEFAULT_DATABASE = "./lightkeeper-data/lightkeeper.db"
LIST_FORMATS = ("lines", "csv", "hma", "ncmec")
DEFAULT_QUALITY_FLOOR = 50
DEFAULT_REGION_THRESHOLD = 31
#: Invalid lines of an import listed on stderr in text mode (--json lists up to 1,000).
SHOWN_INVALID_LINES = 10
#: Imports listed by ``bank show``.
SHOWN_IMPORTS = 5


def db_option(function: F) -> F:
    """The ``--db URL`` option every command that touches the store takes."""
    return click.option(
        "--db",
        metavar="URL",
        default=None,
        help=(
            "Bank store: an SQLAlchemy URL (sqlite:///path.db, postgresql+psycopg://…) or "
            f"the path of an SQLite file. [default: ${DATABASE_ENV}, else {DEFAULT_DATABASE}]"
        ),
    )(function)


@contextmanager
def open_store(db: str | None) -> Iterator[BankStore]:
    """The store at `db`, closed afterwards; exit 5 with one line if it cannot be used.

    Database errors that escape the store (a file that is not a database, a server gone,
    a lock held longer than every retry) are the store's problem, not the input's, and not
    a bug either: they get their own exit code, with the database's message.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DBAPIError

    from lightkeeper.banks import BankStore, resolve_database_url
    from lightkeeper.errors import StoreBusy

    url = resolve_database_url(db)
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        shown = url
    try:
        with BankStore.open(url) as store:
            yield store
    except StoreBusy as exc:
        error(str(exc))
        raise click.exceptions.Exit(ExitCode.STORE_UNAVAILABLE) from None
    except DBAPIError as exc:
        error(f"bank store {shown}: {exc.orig}")
        raise click.exceptions.Exit(ExitCode.STORE_UNAVAILABLE) from None
    except ArgumentError as exc:
        error(f"bank store {shown}: not a database URL this installation can open ({exc})")
        raise click.exceptions.Exit(ExitCode.STORE_UNAVAILABLE) from None


def _parse_threshold(
    _ctx: click.Context, _param: click.Parameter, values: Sequence[str]
) -> dict[str, int]:
    thresholds: dict[str, int] = {}
    for value in values:
        signal_type, sep, number = value.partition("=")
        if not sep or not signal_type.strip() or not number.strip().isdigit():
            raise click.BadParameter(f"{value!r} is not TYPE=N (for example pdq=31)")
        thresholds[signal_type.strip().lower()] = int(number)
    return thresholds


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _print_json(data: object) -> None:
    click.echo(json.dumps(data))


@click.group("bank")
def bank_group() -> None:
    """Create, fill, inspect, export and delete hash banks.

    A bank is a named list of hashes. A block bank (the default) makes content that
    matches it a match; an allow bank holds known false positives, and content that
    matches it has its block matches suppressed. Thresholds are per bank and signal type
    (PDQ default 31); PDQ hashes below a bank's quality floor (default 50) are not matched
    against it. A bank with regions on also catches crops, screenshots and overlaid copies
    of the images added to it from files (`bank create --regions`).
    """


def bank_setting_options(*, for_update: bool) -> Callable[[F], F]:
    """The six bank settings ``bank create`` and ``bank update`` share, declared once.

    --description, --threshold, --dihedral, --quality-floor, --regions and
    --region-threshold keep one name, type and help in both commands, so that they cannot
    drift apart. ``create`` defaults each to what a new bank gets, and shows it; ``update``
    leaves each unset (None, or no --threshold), which `BankStore.update_bank` reads as
    "keep it as it is".
    """

    def setting(*decls: str, new_bank: object, **attrs: Any) -> Callable[[F], F]:
        """An option defaulting to `new_bank` (shown in --help) on create, to None on update."""
        if for_update:
            return click.option(*decls, default=None, **attrs)
        return click.option(*decls, default=new_bank, show_default=True, **attrs)

    options = [
        click.option(
            "--description",
            default=None if for_update else "",
            help="What the bank holds, for people.",
        ),
        click.option(
            "--threshold",
            "thresholds",
            multiple=True,
            metavar="TYPE=N",
            callback=_parse_threshold,
            help="Largest distance that matches, per signal type (repeatable), e.g. pdq=24.",
        ),
        setting(
            "--dihedral/--no-dihedral",
            new_bank=False,
            help="Also match the 8 rotations and flips of each photo's PDQ against this bank.",
        ),
        setting(
            "--quality-floor",
            new_bank=DEFAULT_QUALITY_FLOOR,
            type=click.IntRange(0, 100),
            metavar="Q",
            help="PDQ hashes of lower quality are not matched against this bank.",
        ),
        setting(
            "--regions/--no-regions",
            new_bank=False,
            # Where a bank is made, what regions are; where one changes, what switching does.
            help="Region matching on or off (codes already kept stay, and match again when on)."
            if for_update
            else "Region matching, to catch crops, screenshots and stickers or captions: keep "
            "the PDQ of 14 crop windows and 16 tiles of each image file added, and look "
            "uploads up with windows and tiles of themselves and with the photo found in a "
            "screenshot.",
        ),
        setting(
            "--region-threshold",
            new_bank=DEFAULT_REGION_THRESHOLD,
            type=click.IntRange(0, 256),
            metavar="N",
            help="Largest distance that matches when a region code takes part.",
        ),
    ]

    def decorate(function: F) -> F:
        for option in reversed(options):  # decorators apply bottom-up; keep the order above
            function = option(function)
        return function

    return decorate


@bank_group.command("create")
@click.argument("name")
@click.option("--allow", is_flag=True, help="An allow bank (known false positives).")
@bank_setting_options(for_update=False)
@db_option
def create_command(
    name: str,
    allow: bool,
    description: str,
    thresholds: dict[str, int],
    dihedral: bool,
    quality_floor: int,
    regions: bool,
    region_threshold: int,
    db: str | None,
) -> None:
    """Create a bank called NAME (lowercase letters, digits, '_' and '-')."""
    with open_store(db) as store:
        bank = store.create_bank(
            name,
            kind="allow" if allow else "block",
            description=description,
            thresholds=thresholds,
            match_dihedral=dihedral,
            pdq_quality_floor=quality_floor,
            regions=regions,
            region_threshold=region_threshold,
        )
    click.echo(f"created {bank.kind} bank {bank.name!r}: {_settings(bank)}")


@bank_group.command("update")
@click.argument("name")
@bank_setting_options(for_update=True)
@click.option(
    "--enable/--disable", "enabled", default=None, help="Let the bank match, or keep it out."
)
@db_option
def update_command(
    name: str,
    description: str | None,
    thresholds: dict[str, int],
    dihedral: bool | None,
    quality_floor: int | None,
    regions: bool | None,
    region_threshold: int | None,
    enabled: bool | None,
    db: str | None,
) -> None:
    """Change the settings of bank NAME; those not given stay as they are."""
    with open_store(db) as store:
        bank = store.update_bank(
            name,
            description=description,
            thresholds=dict(thresholds) or None,
            match_dihedral=dihedral,
            pdq_quality_floor=quality_floor,
            regions=regions,
            region_threshold=region_threshold,
            enabled=enabled,
        )
    state = "" if bank.enabled else " (disabled)"
    click.echo(f"updated {bank.kind} bank {bank.name!r}{state}: {_settings(bank)}")


def _settings(bank: Bank) -> str:
    regions = f"on (threshold {bank.region_threshold})" if bank.regions else "off"
    return (
        f"pdq threshold {bank.threshold('pdq')}, quality floor {bank.pdq_quality_floor}, "
        f"dihedral {'on' if bank.match_dihedral else 'off'}, regions {regions}"
    )


@bank_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per bank and line.")
@db_option
def list_command(as_json: bool, db: str | None) -> None:
    """List the banks with their kind, state and number of entries."""
    with open_store(db) as store:
        rows = [(bank, store.count_entries(bank.name)) for bank in store.list_banks()]
    if as_json:
        for bank, count in rows:
            _print_json({**_bank_dict(bank), "entries": count})
        return
    if not rows:
        click.echo("no banks yet: create one with `lightkeeper bank create NAME`", err=True)
        return
    width = max(len("NAME"), *(len(bank.name) for bank, _ in rows))
    click.echo(f"{'NAME':<{width}}  KIND   ENABLED  {'ENTRIES':>10}  DESCRIPTION")
    for bank, count in rows:
        click.echo(
            f"{bank.name:<{width}}  {bank.kind:<5}  {_yes_no(bank.enabled):<7}  {count:>10,}  "
            f"{bank.description}".rstrip()
        )


@bank_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@db_option
def show_command(name: str, as_json: bool, db: str | None) -> None:
    """Show a bank's settings, its entries counted per signal type, and its latest imports.

    The entries themselves are never printed: use `bank export` for that.
    """
    from lightkeeper.signals import registry

    with open_store(db) as store:
        bank = store.get_bank(name)
        counts = {
            signal_type: store.count_entries(name, signal_type=signal_type)
            for signal_type in registry.all_signal_types()
        }
        imports = store.list_imports(name)[:SHOWN_IMPORTS]
    per_type = {
        signal_type: {
            "entries": count,
            "threshold": bank.threshold(signal_type),
            "threshold_set": signal_type in bank.thresholds,
        }
        for signal_type, count in counts.items()
    }
    if as_json:
        _print_json(
            {
                **_bank_dict(bank),
                "entries": sum(counts.values()),
                "signal_types": per_type,
                "imports": [_import_dict(run) for run in imports],
            }
        )
        return
    lines = [
        f"bank           {bank.name}",
        f"kind           {bank.kind}",
        f"enabled        {_yes_no(bank.enabled)}",
        f"description    {bank.description}".rstrip(),
        f"dihedral       {'on' if bank.match_dihedral else 'off'}",
        f"quality floor  {bank.pdq_quality_floor} (pdq)",
        f"regions        {f'on, threshold {bank.region_threshold}' if bank.regions else 'off'}",
        f"created        {bank.created_at:%Y-%m-%d %H:%M:%S} UTC",
        f"entries        {sum(counts.values()):,}",
    ]
    for signal_type, info in per_type.items():
        how = "set" if info["threshold_set"] else "default"
        lines.append(
            f"  {signal_type:<12} {info['entries']:>10,}  threshold {info['threshold']} ({how})"
        )
    lines.append("imports" if imports else "imports        none")
    for run in imports:
        what = " ".join(
            filter(
                None,
                [
                    f"#{run.id}",
                    f"{run.started_at:%Y-%m-%d %H:%M}",
                    run.format,
                    run.list_name,
                    run.list_version,
                    run.status,
                ],
            )
        )
        lines.append(
            f"  {what}: {run.added:,} added, {run.updated:,} updated, {run.removed:,} removed, "
            f"{run.unchanged:,} unchanged, {run.invalid:,} invalid"
        )
    click.echo("\n".join(lines))


@bank_group.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@db_option
def delete_command(name: str, yes: bool, db: str | None) -> None:
    """Delete a bank and all its entries (asks first unless --yes)."""
    with open_store(db) as store:
        store.get_bank(name)  # NotFound before asking
        count = store.count_entries(name)
        if not yes:
            click.confirm(f"Delete bank {name!r} and its {count:,} entries?", abort=True, err=True)
        deleted = store.delete_bank(name)
    click.echo(f"deleted bank {name!r} and its {deleted:,} entries")


@bank_group.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", *LIST_FORMATS]),
    default="auto",
    show_default=True,
    help="List format; auto tells it from the first bytes.",
)
@click.option(
    "--signal-type",
    metavar="TYPE",
    help="Signal type of hashes whose file does not name it (needed for 64-hex-digit lists).",
)
@click.option("--list-name", help="Record this list name on every entry imported.")
@click.option("--list-version", help="Record this list version on every entry imported.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@db_option
def import_command(
    name: str,
    file: str,
    fmt: str,
    signal_type: str | None,
    list_name: str | None,
    list_version: str | None,
    as_json: bool,
    db: str | None,
) -> None:
    """Import a hash-list FILE ('-' for stdin; gzip is undone) into bank NAME.

    Importing the same list again adds nothing twice. Malformed lines are counted and
    listed (first line numbers) and the rest is imported; the exit code is then 1.
    """
    from lightkeeper.exchange import import_list

    with open_store(db) as store, click.open_file(file, "rb") as stream:
        report = import_list(
            store,
            name,
            cast(BinaryIO, stream),
            fmt=None if fmt == "auto" else fmt,
            signal_type=signal_type,
            list_name=list_name,
            list_version=list_version,
        )
    if as_json:
        _print_json({"bank": name, "file": file, **_report_dict(report)})
    else:
        _print_report(name, file, report)
    if report.invalid:
        raise click.exceptions.Exit(ExitCode.INPUT_ERRORS)


def _print_report(bank: str, file: str, report: ImportReport) -> None:
    click.echo(
        f"imported {display_path(file)} into {bank!r} ({report.format}): "
        f"{report.added:,} added, {report.updated:,} updated, {report.removed:,} removed, "
        f"{report.unchanged:,} unchanged, {report.invalid:,} invalid"
    )
    for line_no, reason in report.invalid_lines[:SHOWN_INVALID_LINES]:
        error(f"line {line_no}: {reason}", file)
    if report.invalid > SHOWN_INVALID_LINES:
        error(f"… and {report.invalid - SHOWN_INVALID_LINES:,} more invalid lines", file)
    for reason, count in sorted(report.skipped.items()):
        error(f"skipped {count:,}: {reason}", file)
    for warning in report.warnings:
        error(f"warning: {warning}", file)


@bank_group.command("export")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(LIST_FORMATS),
    default="csv",
    show_default=True,
    help="List format (lines holds one signal type: add --signal-type).",
)
@click.option("--signal-type", metavar="TYPE", help="Only the entries of this signal type.")
@db_option
def export_command(name: str, file: str, fmt: str, signal_type: str | None, db: str | None) -> None:
    """Write bank NAME's entries to FILE ('-' for stdout), disabled ones included.

    This is the operator's own copy of the operator's own store; a file is written whole
    or not at all.
    """
    from lightkeeper.exchange import export_bank
    from lightkeeper.signals import registry

    if signal_type is not None:
        registry.get(signal_type)
    with open_store(db) as store:
        store.get_bank(name)
        try:
            if file == "-":
                count = export_bank(store, name, sys.stdout.buffer, fmt, signal_type)
                sys.stdout.flush()
            else:
                count = _write_atomically(
                    Path(file), lambda out: export_bank(store, name, out, fmt, signal_type)
                )
        except ValueError as exc:  # e.g. "lines" asked for a bank of several signal types
            raise click.UsageError(str(exc)) from None
    error(f"exported {count:,} entries of {name!r} to {display_path(file)} ({fmt})")


def _write_atomically(path: Path, write: Callable[[BinaryIO], int]) -> int:
    """`write` into a temporary file beside `path`, renamed over it only when complete."""
    from lightkeeper.errors import InputError

    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"cannot write {display_path(str(path))}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            count = write(out)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return count


@bank_group.command("add")
@click.argument("name")
@click.argument("items", nargs=-1, required=True, metavar="PATH_OR_HASH...")
@click.option(
    "--signal-type",
    metavar="TYPE",
    help="Signal type of the hash values given (guessed from the length for MD5 and SHA-1).",
)
@click.option("--list-name", help="List name recorded on the entries.")
@click.option("--list-version", help="List version recorded on the entries.")
@click.option("--classification", help="Classification recorded on the entries (A1, B2 …).")
@click.option("--note", help="A note recorded on the entries.")
@db_option
def add_command(
    name: str,
    items: Sequence[str],
    signal_type: str | None,
    list_name: str | None,
    list_version: str | None,
    classification: str | None,
    note: str | None,
    db: str | None,
) -> None:
    """Add files' hashes, or hash values, to bank NAME.

    A file is hashed: its PDQ is added when its quality reaches the bank's quality floor,
    and its MD5 and SHA-256 always; in a bank with regions on, the PDQ of its crop windows
    are kept with its PDQ entry (hash values added as such have none). Anything that is not
    a file is taken as a hash value. Every item is checked before anything is added: one
    bad item adds nothing.
    """
    from lightkeeper.banks import NewEntry

    provenance = {
        "list_name": list_name,
        "list_version": list_version,
        "classification": classification,
        "note": note,
    }
    with open_store(db) as store:
        bank = store.get_bank(name)
        planned: list[tuple[str, NewEntry, list[EntryRegion] | None]] = []
        problems = 0
        for item in items:
            try:
                for signal, value, why, regions in _item_hashes(item, signal_type, bank):
                    if value is None:
                        error(f"warning: {why}", item)
                    else:
                        planned.append((item, NewEntry(signal, value, **provenance), regions))
            except _ItemError as exc:
                error(str(exc), item)
                problems += 1
        if problems:
            error(f"{problems} of {len(items)} items are not usable; nothing was added")
            raise click.exceptions.Exit(ExitCode.INPUT_ERRORS)
        for item, new, regions in planned:
            entry, outcome = store.add_entry(
                name,
                new.signal_type,
                new.value,
                list_name=new.list_name,
                list_version=new.list_version,
                classification=new.classification,
                note=new.note,
                regions=regions,
            )
            where = "" if item.lower() == entry.value else f"  {display_path(item)}"
            kept = "" if regions is None else f"  {len(regions)} region codes"
            click.echo(
                f"{outcome:<9} {entry.signal_type:<6} {entry.value}  entry {entry.id}{kept}{where}"
            )


class _ItemError(Exception):
    """An item of `bank add` that is neither a readable file nor a valid hash value."""


def _item_hashes(
    item: str, signal_type: str | None, bank: Bank
) -> Iterator[tuple[str, str | None, str, list[EntryRegion] | None]]:
    """(signal type, value or None, why not, region codes to keep or None) for what
    `bank add` takes from one item."""
    from lightkeeper.errors import LightkeeperError, MediaError
    from lightkeeper.hashing import bytes_signals, hash_bytes, read_file
    from lightkeeper.matching.region_codes import banked_image

    if Path(item).is_file():
        try:
            data = read_file(item)
        except LightkeeperError as exc:
            raise _ItemError(str(exc)) from None
        exact = bytes_signals(data)
        regions: list[EntryRegion] | None = None
        try:
            if bank.regions:
                hashes, regions = banked_image(data, quality_floor=bank.pdq_quality_floor)
            else:
                hashes = hash_bytes(data)
        except MediaError as exc:
            yield "pdq", None, f"no PDQ ({exc}): adding its exact hashes only", None
        else:
            quality = hashes["pdq_quality"]
            if isinstance(quality, int) and quality < bank.pdq_quality_floor:
                yield (
                    "pdq",
                    None,
                    f"PDQ quality {quality} is below the bank's floor {bank.pdq_quality_floor}: "
                    "PDQ not added (it would match too much); exact hashes added",
                    None,
                )
            else:
                yield "pdq", str(hashes["pdq"]), "", regions
        yield "md5", exact["md5"], "", None
        yield "sha256", exact["sha256"], "", None
        return
    if Path(item).is_dir():
        raise _ItemError("is a directory: name the files in it")
    yield (*_literal_hash(item, signal_type), None)


def _literal_hash(item: str, signal_type: str | None) -> tuple[str, str, str]:
    from lightkeeper.errors import LightkeeperError
    from lightkeeper.signals import registry

    if signal_type is None:
        text = item.strip()
        hexadecimal = bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)
        guessed = {32: "md5", 40: "sha1"}.get(len(text)) if hexadecimal else None
        if guessed is None:
            if hexadecimal and len(text) == 64:
                raise _ItemError(
                    "64 hex digits may be a PDQ hash or a SHA-256: name it with --signal-type"
                )
            raise _ItemError(
                "no such file, and not an MD5 or SHA-1 value "
                "(name the signal type of other hash values with --signal-type)"
            )
        signal_type = guessed
    try:
        return signal_type, registry.get(signal_type).normalize(item), ""
    except LightkeeperError as exc:
        raise _ItemError(str(exc)) from None


@bank_group.command("remove")
@click.argument("name")
@click.argument("items", nargs=-1, required=True, metavar="HASH_OR_ENTRY_ID...")
@click.option(
    "--signal-type",
    metavar="TYPE",
    help="Signal type of the hash values given [default: every type the value fits].",
)
@db_option
def remove_command(
    name: str, items: Sequence[str], signal_type: str | None, db: str | None
) -> None:
    """Remove entries from bank NAME, by entry id (a number) or by hash value.

    Items not in the bank are reported and the others still removed (exit 1 then).
    """
    from lightkeeper.errors import LightkeeperError, NotFound
    from lightkeeper.signals import registry

    types = [signal_type] if signal_type else list(registry.all_signal_types())
    missing = 0
    with open_store(db) as store:
        store.get_bank(name)
        for item in items:
            if item.isdigit() and len(item) <= 18:
                try:
                    entry = store.get_entry(int(item))
                    if entry.bank != name:
                        raise NotFound(f"entry {item} is not in bank {name!r}")
                    store.remove_entry(entry.id)
                except NotFound as exc:
                    error(str(exc), item)
                    missing += 1
                    continue
                click.echo(f"removed   {entry.signal_type:<6} {entry.value}  entry {entry.id}")
                continue
            removed = False
            for candidate in types:
                try:
                    found = store.find_entry(name, candidate, item)
                except LightkeeperError:
                    continue  # not a value of this signal type
                if found is not None:
                    store.remove_entry(found.id)
                    click.echo(f"removed   {found.signal_type:<6} {found.value}  entry {found.id}")
                    removed = True
            if not removed:
                error(f"not in bank {name!r}", item)
                missing += 1
    if missing:
        raise click.exceptions.Exit(ExitCode.INPUT_ERRORS)


def _bank_dict(bank: Bank) -> dict[str, Any]:
    return {
        "name": bank.name,
        "kind": bank.kind,
        "enabled": bank.enabled,
        "description": bank.description,
        "match_dihedral": bank.match_dihedral,
        "pdq_quality_floor": bank.pdq_quality_floor,
        "regions": bank.regions,
        "region_threshold": bank.region_threshold,
        "thresholds": dict(bank.thresholds),
        "created_at": bank.created_at.isoformat(),
        "updated_at": bank.updated_at.isoformat(),
    }


def _import_dict(run: ImportRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "format": run.format,
        "list_name": run.list_name,
        "list_version": run.list_version,
        "status": run.status,
        "started_at": run.started_at.isoformat(),
        "finished_at": None if run.finished_at is None else run.finished_at.isoformat(),
        "added": run.added,
        "updated": run.updated,
        "removed": run.removed,
        "unchanged": run.unchanged,
        "invalid": run.invalid,
        "skipped": run.skipped,
        "error": run.error,
    }


def _report_dict(report: ImportReport) -> dict[str, Any]:
    return {
        "format": report.format,
        "import_id": report.import_id,
        "added": report.added,
        "updated": report.updated,
        "removed": report.removed,
        "unchanged": report.unchanged,
        "invalid": report.invalid,
        "invalid_lines": [{"line": n, "reason": why} for n, why in report.invalid_lines],
        "invalid_lines_omitted": report.invalid_lines_omitted,
        "skipped": dict(sorted(report.skipped.items())),
        "warnings": report.warnings,
    }
