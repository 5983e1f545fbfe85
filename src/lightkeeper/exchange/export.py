"""Writing a bank out as a list file, in any format, streamed from the store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from lightkeeper.banks import BankStore, Entry
from lightkeeper.exchange.formats import get_format
from lightkeeper.exchange.record import Record


def entry_records(entries: Iterator[Entry]) -> Iterator[Record]:
    """Entries as records to write (line number 0: they come from no file)."""
    for e in entries:
        yield Record(
            0,
            "add",
            e.signal_type,
            e.value,
            external_id=e.external_id,
            classification=e.classification,
            list_name=e.list_name,
            list_version=e.list_version,
            note=e.note,
        )


def export_bank(
    store: BankStore, bank: str, stream: BinaryIO, fmt: str, signal_type: str | None = None
) -> int:
    """Write every entry of `bank` (of one signal type, if given) to `stream`; returns how many.

    Disabled entries are exported too: the file is the bank's contents, not what matches
    today. Formats that hold one signal type (``lines``) need `signal_type` when the bank
    holds several, and say so with `ValueError`.
    """
    list_format = get_format(fmt)
    store.get_bank(bank)  # NotFound before anything is written
    return list_format.write(
        entry_records(store.iter_entries(bank, signal_type=signal_type)), stream
    )
