"""CSV rows with the line each starts on, for the CSV-based list formats.

Lines are decoded one at a time, so one line that is not UTF-8 (or is absurdly long) is
reported as invalid without stopping the file; `csv` errors likewise cost only their row.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import BinaryIO

from lightkeeper.exchange import _streams
from lightkeeper.exchange.record import Invalid


def rows(stream: BinaryIO) -> Iterator[tuple[int, list[str]] | Invalid]:
    """(first line number, fields) for each non-blank row, and `Invalid` for unreadable ones."""
    problems: dict[int, str] = {}
    reader = csv.reader(_decoded(stream, problems))
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            yield Invalid(start, f"not valid CSV: {exc}")
            continue
        yield from _flush(problems, reader.line_num)
        if row and any(cell.strip() for cell in row):
            yield start, row
    yield from _flush(problems, reader.line_num + 1)


def _decoded(stream: BinaryIO, problems: dict[int, str]) -> Iterator[str]:
    """Text lines for `csv.reader`; undecodable or overlong ones noted and read as blank."""
    for line_no, raw in _streams.lines(stream):
        if raw is None:
            problems[line_no] = f"line longer than {_streams.MAX_LINE_BYTES} bytes"
            yield "\n"
            continue
        try:
            yield raw.decode("utf-8") + "\n"
        except UnicodeDecodeError:
            problems[line_no] = "not UTF-8 text"
            yield "\n"


def _flush(problems: dict[int, str], up_to: int) -> Iterator[Invalid]:
    for line_no in sorted(n for n in problems if n <= up_to):
        yield Invalid(line_no, problems.pop(line_no))


def header_name(cell: str) -> str:
    """A header cell as a column name: trimmed, lowercase, spaces and dashes as underscores."""
    return cell.strip().lower().replace(" ", "_").replace("-", "_")
