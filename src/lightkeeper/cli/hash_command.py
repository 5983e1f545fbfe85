"""``lightkeeper hash``: hash files and directory trees, in parallel, printed in input order.

The work per file is `lightkeeper.hashing`; this module only finds the files, spreads them
over processes, and writes what comes back.

Files are found by `lightkeeper.cli.inputs` (see there how directories are walked).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import click

from lightkeeper.cli.exit_codes import ExitCode
from lightkeeper.cli.inputs import InputPath, collect_inputs
from lightkeeper.cli.options import jobs_option, no_progress_option
from lightkeeper.cli.output import Reporter, display_path, error
from lightkeeper.cli.pool import ignore_interrupts, stop_now
from lightkeeper.cpus import available_cpus
from lightkeeper.errors import InputError, LightkeeperError, MediaError, PluginError

if TYPE_CHECKING:
    from lightkeeper.media.decode import MediaLimits

# The defaults of `lightkeeper.media.decode.DEFAULT_LIMITS`, written out so that ``--help``
# does not import the decoders; tests/test_cli_hash.py checks that they agree.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_PIXELS = 150_000_000

#: Most files handed to a worker at a time.
_MAX_CHUNK = 8

#: ``error_type`` of a file on which Lightkeeper itself failed (a bug), not the input.
INTERNAL_ERROR_TYPE = "internal_error"


@dataclass(frozen=True)
class _Options:
    dihedral: bool
    limits: MediaLimits


@click.command(
    "hash",
    epilog=(
        "Directories are walked recursively in sorted order, hidden files included; "
        "symbolic links are followed, each directory once. "
        "Exit codes: 0 all hashed; 1 some inputs could not be hashed (the others were); "
        "2 usage error; 3 broken installation; 4 no input files found; 70 internal error."
    ),
)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per line, with every hash and what was decoded.",
)
@click.option(
    "--dihedral",
    is_flag=True,
    help="Also the PDQ hashes of the 8 rotations and flips of each image.",
)
@jobs_option("hashes")
@click.option(
    "--max-bytes",
    type=click.IntRange(min=1),
    metavar="N",
    default=DEFAULT_MAX_BYTES,
    show_default=True,
    help="Refuse files larger than this many bytes (before reading them).",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    metavar="N",
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Refuse images with more pixels than this (decompression bombs).",
)
@no_progress_option
def hash_command(
    paths: Sequence[str],
    as_json: bool,
    dihedral: bool,
    jobs: int | None,
    max_bytes: int,
    max_pixels: int,
    no_progress: bool,
) -> None:
    """Print the PDQ, MD5, SHA-1 and SHA-256 hashes of image files.

    Each PATH is a file or a directory. Output keeps the order of the inputs: a line
    `PDQ  q=QUALITY  FILE` per file, or with --json one object per line with the keys
    "file", "pdq", "pdq_quality", "md5", "sha1", "sha256", "format", "width", "height", and
    when relevant "exif_orientation" with "pdq_as_stored", "frames", "pdq_dihedral" and
    "warnings". A file that cannot be hashed is reported on stderr (text) or as {"file",
    "error", "error_type"} plus its exact hashes when its bytes could be read (--json); the
    others go on.

    PDQ is computed on the picture as displayed (EXIF orientation applied); "pdq_as_stored"
    is the hash of the pixels as stored, which is what hashers that ignore EXIF (Meta's
    reference, HMA) put in hash lists.
    """
    # Imported here, not at the top: a broken Pillow or compiled core is then reported as a
    # broken installation (exit 3) rather than breaking `lightkeeper --help`. Importing them
    # before the pool starts also lets forked workers inherit them.
    from lightkeeper import hashing  # noqa: F401
    from lightkeeper.media.decode import DEFAULT_LIMITS
    from lightkeeper.signals.registry import image_signal_types

    image_names = [t.name for t in image_signal_types()]
    options = _Options(
        dihedral=dihedral,
        limits=dataclasses.replace(DEFAULT_LIMITS, max_bytes=max_bytes, max_pixels=max_pixels),
    )
    inputs = list(collect_inputs(paths))
    if not inputs:
        error("no input files found in " + ", ".join(map(display_path, paths)))
        raise click.exceptions.Exit(ExitCode.NO_INPUT)

    failed = internal = 0
    try:
        # The pool forks its workers before the progress bar starts its drawing thread.
        with (
            _records(inputs, options, jobs or available_cpus()) as records,
            Reporter(total=len(inputs), progress=not no_progress) as reporter,
        ):
            for item, record in zip(inputs, records, strict=True):
                if "error" in record:
                    failed += 1
                    internal += record["error_type"] == INTERNAL_ERROR_TYPE
                    if not as_json:
                        reporter.message(str(record["error"]), item.path)
                if as_json:
                    reporter.result(json.dumps({"file": item.path, **record}))
                elif "error" not in record:
                    _write_text(reporter, item.path, record, image_names)
                reporter.advance()
    except BrokenProcessPool:
        error(
            "a worker process died (out of memory, or a crash in a compiled decoder); "
            "the inputs after the last one printed were not hashed"
        )
        raise click.exceptions.Exit(ExitCode.INTERNAL_ERROR) from None
    if failed:
        error(f"{failed} of {len(inputs)} files could not be hashed")
    if internal:
        raise click.exceptions.Exit(ExitCode.INTERNAL_ERROR)
    if failed:
        raise click.exceptions.Exit(ExitCode.INPUT_ERRORS)


def _write_text(
    reporter: Reporter, path: str, record: dict[str, object], image_names: list[str]
) -> None:
    columns = []
    for name in image_names:
        columns.append(str(record[name]))
        if f"{name}_quality" in record:
            columns.append(f"q={record[f'{name}_quality']!s:>3}")
    reporter.result("  ".join([*columns, display_path(path)]))
    for name in image_names:
        variants = record.get(f"{name}_dihedral")
        if isinstance(variants, dict):
            for variant, value in variants.items():
                reporter.result(f"    {variant:<22}{value}")
    warnings = record.get("warnings")
    for warning in warnings if isinstance(warnings, list) else []:
        reporter.message(f"warning: {warning}", path)


@contextmanager
def _records(
    inputs: list[InputPath], options: _Options, jobs: int
) -> Iterator[Iterator[dict[str, object]]]:
    """The record of each input, in input order, hashed over up to `jobs` processes.

    On leaving (Ctrl-C, a closed pipe) the queued work is dropped rather than finished.
    """
    paths = [item.path for item in inputs if item.problem is None]
    workers = min(jobs, len(paths))
    if workers <= 1:
        yield _merge(inputs, (hash_one(path, options) for path in paths))
        return
    # Small chunks: a file takes tens of milliseconds, far more than a round trip, and small
    # chunks keep results streaming, the load balanced at the end, and Ctrl-C prompt.
    chunksize = max(1, min(_MAX_CHUNK, len(paths) // (workers * 4)))
    executor = ProcessPoolExecutor(max_workers=workers, initializer=ignore_interrupts)
    try:
        hashed = executor.map(partial(hash_one, options=options), paths, chunksize=chunksize)
        yield _merge(inputs, hashed)
    except BaseException:
        stop_now(executor)
        raise
    executor.shutdown(wait=True)


def _merge(
    inputs: list[InputPath], hashed: Iterator[dict[str, object]]
) -> Iterator[dict[str, object]]:
    """`hashed` records, with those of the inputs that could not be listed put in place."""
    for item in inputs:
        if item.problem is not None:
            yield {"error": item.problem, "error_type": InputError.code}
        else:
            yield next(hashed)


def hash_one(path: str, options: _Options) -> dict[str, object]:
    """The JSON record of one file: `hash_file`'s dict, or an error with the exact hashes.

    Runs in worker processes. Media and input errors are the input's fault and go in the
    record; a broken installation is raised (the command stops with exit 3); any other
    exception is a bug, recorded with error_type "internal_error" so that the other files
    are still hashed and the command ends with exit 70.
    """
    from lightkeeper import hashing

    data: bytes | None = None
    try:
        data = hashing.read_file(path, limits=options.limits)
        return hashing.hash_bytes(data, dihedral=options.dihedral, limits=options.limits)
    except (ImportError, PluginError):
        raise
    except LightkeeperError as exc:
        record: dict[str, object] = {"error": str(exc), "error_type": exc.code}
        if isinstance(exc, MediaError) and data is not None:
            record.update(hashing.bytes_signals(data))
        return record
    except Exception as exc:
        return {
            "error": f"internal error: {type(exc).__name__}: {exc} (a bug: please report it)",
            "error_type": INTERNAL_ERROR_TYPE,
        }
