"""The list formats by name: each one a module with a reader and a writer.

A format is plugged in here by name, explicitly, so that ``--format`` values and the names
`detect_format` returns stay stable whatever the modules are called.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from lightkeeper.errors import ListFormatError
from lightkeeper.exchange import csvlist, hma, lines, ncmec
from lightkeeper.exchange.record import Item, Record


class Reader(Protocol):
    def __call__(self, stream: BinaryIO, *, signal_type: str | None = None) -> Iterator[Item]: ...


class Writer(Protocol):
    def __call__(self, records: Iterable[Record], stream: BinaryIO) -> int: ...


@dataclass(frozen=True)
class ListFormat:
    """A list file format: its name, a one-line description, how to read and write it."""

    name: str
    description: str
    read: Reader
    write: Writer


FORMATS: dict[str, ListFormat] = {
    module.NAME: ListFormat(module.NAME, module.DESCRIPTION, module.read, module.write)
    for module in (lines, csvlist, hma, ncmec)
}


def get_format(name: str) -> ListFormat:
    """The format called `name`; `ListFormatError` listing the known ones otherwise."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ListFormatError(
            f"unknown list format {name!r} (known: {', '.join(FORMATS)})"
        ) from None
