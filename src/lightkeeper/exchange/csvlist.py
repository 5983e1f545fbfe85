"""The ``csv`` format: a CSV file with a header row, one or more hashes per row.

The header (case and surrounding spaces ignored; a UTF-8 BOM and CRLF line ends are fine)
names the columns. Hashes come in one of two layouts, or both:

- ``signal_type`` and ``value`` columns (``hash`` is accepted for ``value``);
  ``signal_type`` may be left out when the caller names the type;
- one column per signal type, named by it (``pdq``, ``md5``, ``sha1`` …): each non-empty
  cell is a hash of that type, so one row can carry an image's MD5 and PDQ together.

Optional columns: ``external_id`` (or ``id``), ``classification``, ``list_name``,
``list_version``, ``note``, and ``op`` (``add``, the default, or ``remove``/``delete``; a
removal with an external id and no hash removes every entry the list gave that id). Other
columns are ignored, and the import report says which. A row with more fields than the
header is invalid (an unquoted comma); a row with fewer is padded with empty fields.
Comment lines (``#``) may precede the header.

The writer emits ``signal_type,value,external_id,classification,list_name,list_version,note``
(and ``op`` when asked), quoting as CSV requires, so every field round-trips.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Literal, cast

from lightkeeper.errors import ListFormatError
from lightkeeper.exchange import _csvrows
from lightkeeper.exchange.record import Invalid, Item, Notice, Op, Record
from lightkeeper.signals import registry

NAME = "csv"
DESCRIPTION = "CSV with a header: signal_type,value[,external_id,classification,…] or pdq,md5,…"

FIELDS = ("signal_type", "value", "external_id", "classification", "list_name", "list_version")
WRITE_COLUMNS = (*FIELDS, "note")
_ALIASES = {"hash": "value", "id": "external_id", "notes": "note", "comment": "note"}
_OPS: dict[str, Op] = {"": "add", "add": "add", "remove": "remove", "delete": "remove"}

Role = Literal[
    "signal_type",
    "value",
    "external_id",
    "classification",
    "list_name",
    "list_version",
    "note",
    "op",
]


def read(stream: BinaryIO, *, signal_type: str | None = None) -> Iterator[Item]:
    """Records from a CSV list (see the module docstring for the columns)."""
    layout: _Layout | None = None
    for item in _csvrows.rows(stream):
        if isinstance(item, Invalid):
            yield item
            continue
        line_no, row = item
        if layout is None:
            if row[0].lstrip().startswith("#"):
                continue
            layout = _Layout.of(row, line_no, signal_type)
            yield from layout.notices
            continue
        yield from layout.records(line_no, row)


class _Layout:
    """What each column of a CSV list means, decided from its header row."""

    def __init__(self, signal_type: str | None) -> None:
        self.roles: dict[int, Role] = {}
        self.type_columns: dict[int, str] = {}
        self.default_type = signal_type
        self.width = 0
        self.notices: list[Notice] = []

    @classmethod
    def of(cls, header: list[str], line_no: int, signal_type: str | None) -> _Layout:
        layout = cls(signal_type)
        layout.width = len(header)
        known_types = set(registry.all_signal_types())
        ignored: list[str] = []
        for index, cell in enumerate(header):
            name = _csvrows.header_name(cell)
            name = _ALIASES.get(name, name)
            if name in (*FIELDS, "note", "op"):
                layout.roles[index] = cast(Role, name)
            elif name in known_types:
                layout.type_columns[index] = name
            else:
                ignored.append(cell.strip() or f"column {index + 1}")
        has_pair = "value" in layout.roles.values()
        if not has_pair and not layout.type_columns:
            raise ListFormatError(
                f"line {line_no}: the CSV header names no hash column; it needs 'value' "
                "(with 'signal_type', or a signal type given) or a column per signal type "
                f"({', '.join(sorted(known_types)) or 'none registered'})"
            )
        if has_pair and "signal_type" not in layout.roles.values() and signal_type is None:
            raise ListFormatError(
                f"line {line_no}: the CSV has a 'value' column but no 'signal_type' column; "
                "name the signal type (--signal-type)"
            )
        if ignored:
            layout.notices.append(Notice(line_no, f"ignored CSV columns: {', '.join(ignored)}"))
        return layout

    def records(self, line_no: int, row: list[str]) -> Iterator[Item]:
        if len(row) > self.width:
            yield Invalid(line_no, f"{len(row)} fields where the header has {self.width}")
            return
        cells = [cell.strip() for cell in row] + [""] * (self.width - len(row))
        fields: dict[str, str | None] = {role: cells[i] or None for i, role in self.roles.items()}
        op = _OPS.get((fields.pop("op", None) or "").lower())
        if op is None:
            yield Invalid(line_no, f"unknown op {cells[self._index('op')]!r} (add or remove)")
            return
        found = False
        if "value" in self.roles.values():
            value = fields["value"]
            signal_type = (fields.get("signal_type") or self.default_type or "").lower()
            if value is not None:
                if not signal_type:
                    yield Invalid(line_no, "no signal type for this value")
                    return
                found = True
                yield self._record(line_no, op, signal_type, value, fields)
        for index, signal_type in self.type_columns.items():
            if cells[index]:
                found = True
                yield self._record(line_no, op, signal_type, cells[index], fields)
        if not found:
            if op == "remove" and fields.get("external_id"):
                yield self._record(line_no, op, None, None, fields)
            else:
                yield Invalid(line_no, "no hash in this row")

    def _index(self, role: Role) -> int:
        return next(i for i, r in self.roles.items() if r == role)

    @staticmethod
    def _record(
        line_no: int, op: Op, signal_type: str | None, value: str | None, f: dict[str, str | None]
    ) -> Record:
        return Record(
            line_no,
            op,
            signal_type,
            value,
            external_id=f.get("external_id"),
            classification=f.get("classification"),
            list_name=f.get("list_name"),
            list_version=f.get("list_version"),
            note=f.get("note"),
        )


def write(records: Iterable[Record], stream: BinaryIO, *, with_op: bool = False) -> int:
    """Write `records` as CSV with a header; returns how many rows.

    Removals need `with_op` (an ``op`` column); without it they raise `ValueError`.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=True)
    try:
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow((*WRITE_COLUMNS, "op") if with_op else WRITE_COLUMNS)
        count = 0
        for r in records:
            if r.op != "add" and not with_op:
                raise ValueError("write removals with with_op=True (an 'op' column)")
            row = [
                r.signal_type,
                r.value,
                r.external_id,
                r.classification,
                r.list_name,
                r.list_version,
                r.note,
            ]
            writer.writerow([*row, r.op] if with_op else row)
            count += 1
        return count
    finally:
        text.flush()
        text.detach()
