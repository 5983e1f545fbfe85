"""The ``hma`` format: the CSV that Meta's ThreatExchange tooling exports.

HMA 2.0 itself has no bulk export; its banks are filled from the ``threatexchange``
library, whose CLI writes a collaboration's signals as CSV with::

    threatexchange dataset -P --csv > collab.csv

That file has the header ``collab,signal_type,signal_str,category,tags`` (python-threatexchange
``cli/dataset_cmd.py``), one row per signal and collaboration. What this reader makes of it:

- ``signal_str`` is the hash. ``signal_type`` is ThreatExchange's name, mapped to ours:
  ``pdq`` → pdq; ``video_md5``, ``photo_md5``, ``md5`` → md5 (an MD5 of a file's bytes is
  the same whatever the file holds); ``video_sha256``, ``sha256`` → sha256; ``sha1``,
  ``url`` unchanged. Other names pass through and are imported if a signal type of that name
  is registered, skipped otherwise.
- ``collab`` becomes the entry's list name, ``tags`` (space-separated) its classification.
- ``category`` is the collaboration's opinion. Only positive opinions (``POSITIVE_CLASS``,
  older ``TRUE_POSITIVE``, or empty) are imported. ``NEGATIVE_CLASS``/``FALSE_POSITIVE``
  (a known false positive) and ``INVESTIGATION_SEED``/``WORTH_INVESTIGATING`` (a lead, not
  a confirmed match) are skipped and counted by category in the import report: putting them
  into a block bank would block what their owner says is fine or unconfirmed.

Columns may come in any order; ``signal_type`` and ``signal_str`` are required, others
optional. The writer emits the same header, with category ``POSITIVE_CLASS`` and our
signal-type names, which the reader (and ThreatExchange's own tooling) reads back.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import BinaryIO, NamedTuple

from lightkeeper.errors import ListFormatError
from lightkeeper.exchange import _csvrows
from lightkeeper.exchange.record import Invalid, Item, Record, Skipped

NAME = "hma"
DESCRIPTION = "ThreatExchange/HMA CSV: collab,signal_type,signal_str,category,tags"

HEADER = ("collab", "signal_type", "signal_str", "category", "tags")
#: ThreatExchange signal-type names with a different name (or none of their own) here.
TX_SIGNAL_TYPES = {
    "video_md5": "md5",
    "photo_md5": "md5",
    "video_sha256": "sha256",
}
POSITIVE = frozenset({"", "POSITIVE_CLASS", "TRUE_POSITIVE"})


def read(stream: BinaryIO, *, signal_type: str | None = None) -> Iterator[Item]:
    """Records from a ThreatExchange CSV export; `signal_type` fills empty type cells."""
    header: _Header | None = None
    for item in _csvrows.rows(stream):
        if isinstance(item, Invalid):
            yield item
        elif header is None:
            header = _header(*item)
        else:
            yield _row(*item, header, signal_type)


class _Header(NamedTuple):
    columns: dict[str, int]
    width: int


def _header(line_no: int, row: list[str]) -> _Header:
    columns = {_csvrows.header_name(cell): i for i, cell in enumerate(row)}
    missing = [c for c in ("signal_type", "signal_str") if c not in columns]
    if missing:
        raise ListFormatError(
            f"line {line_no}: a ThreatExchange CSV needs the columns {', '.join(HEADER)}; "
            f"missing: {', '.join(missing)}"
        )
    return _Header(columns, len(row))


def _row(line_no: int, row: list[str], header: _Header, default_type: str | None) -> Item:
    columns, width = header
    if len(row) > width:
        return Invalid(line_no, f"{len(row)} fields where the header has {width}")
    cells = [cell.strip() for cell in row] + [""] * (width - len(row))

    def cell(name: str) -> str:
        index = columns.get(name)
        return "" if index is None else cells[index]

    category = cell("category").upper()
    if category not in POSITIVE:
        return Skipped(line_no, f"opinion {category} (not a confirmed positive)")
    tx_type = (cell("signal_type") or default_type or "").lower()
    value = cell("signal_str")
    if not tx_type or not value:
        return Invalid(line_no, "no signal_type or no signal_str")
    return Record(
        line_no,
        "add",
        TX_SIGNAL_TYPES.get(tx_type, tx_type),
        value,
        classification=cell("tags") or None,
        list_name=cell("collab") or None,
    )


def write(records: Iterable[Record], stream: BinaryIO) -> int:
    """Write additions as a ThreatExchange CSV export; returns how many rows."""
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=True)
    try:
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(HEADER)
        count = 0
        for r in records:
            if r.op != "add":
                raise ValueError("the hma format holds signals to add, not removals")
            writer.writerow(
                (
                    r.list_name or "",
                    r.signal_type,
                    r.value,
                    "POSITIVE_CLASS",
                    r.classification or "",
                )
            )
            count += 1
        return count
    finally:
        text.flush()
        text.detach()
