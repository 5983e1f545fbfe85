"""Hash banks: named lists of hashes to block (or allow), kept in SQLite or PostgreSQL.

    from lightkeeper.banks import BankStore, NewEntry

    with BankStore.open() as store:              # ./lightkeeper-data/ unless told otherwise
        store.create_bank("ncmec", description="NCMEC industry list")
        store.add_entries("ncmec", [NewEntry("md5", "d41d8cd98f00b204e9800998ecf8427e")])
        for change in store.changes_since(0):    # what an index follower replays
            ...

Importing and exporting list files lives in `lightkeeper.exchange`.
"""

from lightkeeper.banks.records import (
    Bank,
    BankKind,
    Change,
    ChangeOp,
    Entry,
    EntryOp,
    ImportRun,
    ImportStatus,
    IndexRow,
    NewEntry,
    Outcome,
    RemoveExternalId,
    RemoveValue,
    WriteReport,
)
from lightkeeper.banks.settings import DATABASE_URL, resolve_database_url
from lightkeeper.banks.store import BankStore
from lightkeeper.banks.validation import validate_bank_name, validate_new_entry

__all__ = [
    "DATABASE_URL",
    "Bank",
    "BankKind",
    "BankStore",
    "Change",
    "ChangeOp",
    "Entry",
    "EntryOp",
    "ImportRun",
    "ImportStatus",
    "IndexRow",
    "NewEntry",
    "Outcome",
    "RemoveExternalId",
    "RemoveValue",
    "WriteReport",
    "resolve_database_url",
    "validate_bank_name",
    "validate_new_entry",
]
