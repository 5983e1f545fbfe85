"""``lightkeeper match``: match files against the banks, with the evidence of every match.

The work is `lightkeeper.matching.Matcher`; this module finds the files (as ``hash`` does),
prints each result, and picks the exit code: 10 when any file matched a block bank, which
wins over 1 (some files could not be read) and 70 (a bug on some file), because a script
that blocks uploads on 10 must never miss a match for another file's failure.

For a large directory use ``lightkeeper scan``: it runs over every core and can resume.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from lightkeeper.cli.bank_command import db_option, open_store
from lightkeeper.cli.exit_codes import ExitCode
from lightkeeper.cli.hash_command import INTERNAL_ERROR_TYPE
from lightkeeper.cli.inputs import collect_inputs
from lightkeeper.cli.options import no_progress_option
from lightkeeper.cli.output import Reporter, display_path, error

if TYPE_CHECKING:
    from lightkeeper.matching import Match, Matcher, MatchResult


def outcome_exit_code(matched: int, failed: int, internal: int) -> ExitCode:
    """The exit code of a run of ``match`` or ``scan`` (see the module docstring)."""
    if matched:
        return ExitCode.MATCH_FOUND
    if internal:
        return ExitCode.INTERNAL_ERROR
    if failed:
        return ExitCode.INPUT_ERRORS
    return ExitCode.OK


def safe_match(matcher: Matcher, path: str) -> MatchResult:
    """`Matcher.match_file`, with a bug on one file recorded rather than stopping the run.

    Store errors are not caught: a store that fails fails every file alike.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from lightkeeper.errors import PluginError, StoreError
    from lightkeeper.matching import MatchResult

    try:
        return matcher.match_file(path)
    except (ImportError, PluginError, StoreError, SQLAlchemyError):
        raise
    except Exception as exc:
        return MatchResult(
            file=path,
            error=f"internal error: {type(exc).__name__}: {exc} (a bug: please report it)",
            error_type=INTERNAL_ERROR_TYPE,
        )


def describe(match: Match) -> str:
    """One match as a line of text: where it hit, how close, and where the entry came from."""
    parts = [
        f"{match.bank}",
        f"entry {match.entry_id}",
        f"{match.signal_type}",
        f"distance {match.distance} <= {match.threshold}",
    ]
    if match.quality is not None:
        parts.append(f"quality {match.quality}")
    if match.variant != "original":
        parts.append(f"variant {match.variant}")
    source = " ".join(filter(None, [match.list_name, match.list_version]))
    if source:
        parts.append(f"list {source}")
    if match.external_id:
        parts.append(f"id {match.external_id}")
    if match.classification:
        parts.append(f"class {match.classification}")
    return "  ".join(parts)


def text_lines(result: MatchResult) -> list[str]:
    """The readable form of one result: a status line, then one line per match."""
    path = display_path(result.file or "-")
    if result.matches:
        status = "MATCH   "
    elif result.suppressed or result.allowed:
        status = "allowed "
    else:
        status = "no match"
    head = f"{status}  {path}"
    if result.low_quality:
        head += f"  (low quality: pdq quality {result.quality}, PDQ not matched everywhere)"
    lines = [head]
    lines += [f"    {describe(m)}" for m in result.matches]
    for s in result.suppressed:
        by = s.suppressed_by
        lines.append(f"    suppressed: {describe(s.match)}  by {by.bank} entry {by.entry_id}")
    lines += [f"    allowed: {describe(m)}" for m in result.allowed]
    return lines


@click.command(
    "match",
    epilog=(
        "Exit codes: 0 no match; 10 at least one file matched a block bank (even if other "
        "files failed); 1 some files could not be read or decoded, none matched; 2 usage "
        "error; 3 broken installation; 4 no input files found; 5 the bank store cannot be "
        "used; 70 internal error."
    ),
)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file and line.")
@db_option
@no_progress_option
def match_command(paths: Sequence[str], as_json: bool, db: str | None, no_progress: bool) -> None:
    """Match files against every enabled bank, and show the evidence.

    Each PATH is a file or a directory (walked as `hash` walks it). Text output: a line
    `MATCH`, `allowed` or `no match` with the file, then one line per match: bank, entry
    id, signal type, distance and threshold, quality, variant, list and version. With
    --json, one object per file with "file", "sha256", "matched", "matches" (each with
    "bank", "bank_kind", "entry_id", "signal_type", "value", "distance", "threshold",
    "quality", "variant", "list_name", "list_version", "external_id", "classification"),
    "suppressed" (block matches an allow bank suppressed, with "suppressed_by"),
    "allowed", "low_quality", "quality", "signals", and "error" with "error_type" when
    the file could not be read or decoded (a file that is no image is still matched by its
    exact hashes).
    """
    from lightkeeper.matching import Matcher, MatchResult

    inputs = list(collect_inputs(paths))
    if not inputs:
        error("no input files found in " + ", ".join(map(display_path, paths)))
        raise click.exceptions.Exit(ExitCode.NO_INPUT)
    matched = failed = internal = 0
    with open_store(db) as store:
        matcher = Matcher(store)
        with Reporter(total=len(inputs), progress=not no_progress) as reporter:
            for item in inputs:
                if item.problem is not None:
                    result = MatchResult(
                        file=item.path, error=item.problem, error_type="input_error"
                    )
                else:
                    result = safe_match(matcher, item.path)
                matched += result.matched
                if result.error is not None:
                    failed += 1
                    internal += result.error_type == INTERNAL_ERROR_TYPE
                    if not as_json:
                        reporter.message(result.error, item.path)
                if as_json:
                    reporter.result(json.dumps(result.to_dict()))
                elif result.error is None or result.signals:
                    for line in text_lines(result):
                        reporter.result(line)
                reporter.advance()
    if failed:
        error(f"{failed} of {len(inputs)} files could not be matched fully")
    code = outcome_exit_code(matched, failed, internal)
    if code != ExitCode.OK:
        raise click.exceptions.Exit(code)
