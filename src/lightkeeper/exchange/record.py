"""What a list reader yields and a list writer takes: one record per hash, plus diagnostics.

Readers turn a file into a stream of `Record` (a hash to add, or something to remove),
`Invalid` (a line that could not be read, with its number and why), `Skipped` (a line read
fine but holding nothing this installation can use, such as a PhotoDNA hash without a
PhotoDNA plug-in) and `Notice` (a remark on the file, such as a column that was ignored).

Values in a `Record` are as the file wrote them; the importer normalises them with the
signal type, so that a malformed hash is reported with its line number.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Op = Literal["add", "remove"]


class Record(NamedTuple):
    """One hash from a list file (a NamedTuple: a 13-million-line file makes 13 million)."""

    #: 1-based line where the record starts (0 for records not read from a file).
    line_no: int
    op: Op
    #: None only for a removal that names the entry by `external_id` alone (NCMEC deletions).
    signal_type: str | None
    value: str | None
    external_id: str | None = None
    classification: str | None = None
    list_name: str | None = None
    list_version: str | None = None
    note: str | None = None


class Invalid(NamedTuple):
    """A line that could not be read as a record; the rest of the file still is."""

    line_no: int
    reason: str


class Skipped(NamedTuple):
    """A line read correctly but deliberately not imported; `reason` groups them in reports."""

    line_no: int
    reason: str


class Notice(NamedTuple):
    """Something about the file as a whole worth telling (a CSV column that was ignored)."""

    line_no: int
    message: str


Item = Record | Invalid | Skipped | Notice
