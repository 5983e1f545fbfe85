"""Hash-list files in and out of banks: plain lines, CSV, ThreatExchange/HMA CSV, NCMEC XML.

    from lightkeeper.banks import BankStore
    from lightkeeper.exchange import export_bank, import_list

    with BankStore.open() as store, open("list.csv", "rb") as f:
        report = import_list(store, "ncmec", f)          # format detected
        print(report.added, report.invalid_lines[:10])
    with BankStore.open() as store, open("out.xml", "wb") as f:
        export_bank(store, "ncmec", f, "ncmec")

Each format is a module with `read` (a binary stream in, `Record`/`Invalid`/`Skipped`/`Notice`
items out, never the whole file in memory) and `write`; see their docstrings for exactly what
each accepts.
"""

from lightkeeper.exchange.detect import detect_format
from lightkeeper.exchange.export import export_bank
from lightkeeper.exchange.formats import FORMATS, ListFormat, get_format
from lightkeeper.exchange.importer import MAX_INVALID_LINES, ImportReport, import_list
from lightkeeper.exchange.record import Invalid, Item, Notice, Op, Record, Skipped

__all__ = [
    "FORMATS",
    "MAX_INVALID_LINES",
    "ImportReport",
    "Invalid",
    "Item",
    "ListFormat",
    "Notice",
    "Op",
    "Record",
    "Skipped",
    "detect_format",
    "export_bank",
    "get_format",
    "import_list",
]
