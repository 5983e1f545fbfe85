"""`RegionIndex`: the region codes of banked images in memory, beside the entries' indexes.

A bank with regions on keeps, for each image added to it, the PDQ of 14 crop windows and 16
tiles of the image (`lightkeeper.banks.records.REGION_NAMES`, stored in ``entry_regions``).
They live in a Hamming index of their own rather than in the entries' PDQ index:

- an upload's crop windows (21 codes) and tiles (16) can only meet windows of the same
  family and the tile at the same position in the bank (see
  `lightkeeper.signals.regions.compatible`), so they search this index only, never the
  entries' index of a national list (about a millisecond per code there, for nothing);
- banks without regions pay nothing: their entries' index is exactly what it was.

Keys. A region code is held under ``entry id x SLOTS + position of its name in
REGION_NAMES``, so a hit names its entry and its window with no table beside the index, and
the snapshot holds the index alone (`lightkeeper.matching.snapshot`). A region never
becomes an entry of its own: a match through it reports its entry.

Following the log. Region codes have no state of their own: they are written with their
entry, in the same transaction, and follow it. So the entries' change log carries them too:

- an entry's "add" or "update" in a bank that holds codes takes the entry's codes out and
  puts back those the store holds now (an entry whose image was added again may have other
  windows), if the entry is enabled;
- its "remove", or an update that disables it, takes them out;
- a bank change (`sync`) loads the codes of a bank that starts holding them (enabled with
  regions on) and drops those of a bank that stops (disabled, or regions turned off).

Entries disabled only until some time stay in, as in the entries' indexes: the matcher
checks each candidate's entry before reporting it.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import numpy as np

from lightkeeper.banks import Bank, BankStore, Change
from lightkeeper.banks.records import REGION_NAMES
from lightkeeper.errors import NotFound
from lightkeeper.index import HammingIndex
from lightkeeper.index.hamming import CODE_BYTES

#: Keys per entry: room for `REGION_NAMES` to grow (names are only appended).
SLOTS: Final = 32
#: The signal type region codes are of.
SIGNAL_TYPE: Final = "pdq"

_SLOT_OF: Final = {name: slot for slot, name in enumerate(REGION_NAMES)}
if len(REGION_NAMES) > SLOTS:  # pragma: no cover - a guard for whoever appends names
    raise AssertionError("REGION_NAMES outgrew the key space: raise SLOTS (a new format)")


def region_key(entry_id: int, region: str) -> int:
    """The id a region code is indexed under; KeyError for a name not in `REGION_NAMES`."""
    return entry_id * SLOTS + _SLOT_OF[region]


def split_key(key: int) -> tuple[int, str]:
    """(entry id, region name) of an indexed key."""
    entry_id, slot = divmod(key, SLOTS)
    return entry_id, REGION_NAMES[slot]


def holding(banks: Mapping[int, Bank]) -> frozenset[int]:
    """The banks whose region codes are indexed: enabled, with regions on."""
    return frozenset(bank_id for bank_id, bank in banks.items() if bank.enabled and bank.regions)


class RegionIndex:
    """Region codes of the enabled entries of the banks in `banks` (see the module docstring).

    Not locked: the follower applies changes under its own lock; searches may run from any
    thread meanwhile (the Hamming index allows it).
    """

    def __init__(self, index: HammingIndex | None = None, banks: Iterable[int] = ()) -> None:
        self.index = index if index is not None else HammingIndex()
        #: The banks whose codes this index holds.
        self.banks: frozenset[int] = frozenset(banks)

    def __len__(self) -> int:
        return len(self.index)

    @classmethod
    def load(cls, store: BankStore, banks: Mapping[int, Bank]) -> RegionIndex:
        """Every code the store holds for the banks that hold them (a fresh load)."""
        loaded = cls(banks=holding(banks))
        if loaded.banks:
            loaded._add(
                (row.entry_id, row.region, row.value)
                for row in store.iter_region_rows()
                if row.bank_id in loaded.banks and row.enabled
            )
        return loaded

    def sync(self, store: BankStore, banks: Mapping[int, Bank]) -> None:
        """After the banks changed: drop the codes of banks that stopped holding them, load
        those of banks that started. A bank renamed or deleted meanwhile (`NotFound`) is
        retried at its next change; a deleted bank's codes leave with its entries' removals."""
        wanted = holding(banks)
        held = set(self.banks & wanted)
        for bank_id in self.banks - wanted:
            bank = banks.get(bank_id)
            if bank is None:
                continue
            try:
                keys = [region_key(r.entry_id, r.region) for r in store.iter_region_rows(bank.name)]
            except NotFound:
                held.add(bank_id)
                continue
            self._remove(keys)
        for bank_id in wanted - self.banks:
            try:
                rows = [
                    (r.entry_id, r.region, r.value)
                    for r in store.iter_region_rows(banks[bank_id].name)
                    if r.enabled
                ]
            except NotFound:
                continue
            self._add(rows)
            held.add(bank_id)
        self.banks = frozenset(held)

    def apply(self, store: BankStore, changes: Iterable[Change], before: frozenset[int]) -> None:
        """Entries' last changes, folded (one per entry), after `sync`: `before` is the set of
        banks held before it, whose entries' removals must still take their codes out."""
        out: list[int] = []
        fresh: list[int] = []
        for change in changes:
            if change.entry_id is None or change.signal_type != SIGNAL_TYPE:
                continue
            if change.bank_id in self.banks or change.bank_id in before:
                out.append(change.entry_id)
            if change.op != "remove" and change.enabled and change.bank_id in self.banks:
                fresh.append(change.entry_id)
        if out:
            self._remove(entry_id * SLOTS + slot for entry_id in out for slot in _SLOTS_USED)
        if fresh:
            regions = store.get_regions(fresh)
            self._add(
                (entry_id, region.region, region.value)
                for entry_id, found in regions.items()
                for region in found
            )

    def search(
        self, codes: Sequence[bytes], radius: int, *, workers: int | None = None
    ) -> list[list[tuple[int, str, int]]]:
        """For each code, the (entry id, region name, distance) of held codes within `radius`
        (`workers`: as `HammingIndex.search`)."""
        if not codes or not len(self.index):
            return [[] for _ in codes]
        queries = np.frombuffer(b"".join(codes), dtype=np.uint8).reshape(-1, CODE_BYTES)
        return [
            [(*split_key(key), distance) for key, distance in hits]
            for hits in self.index.search(queries, radius, workers=workers)
        ]

    def _add(self, rows: Iterable[tuple[int, str, str]]) -> None:
        ids = array("q")
        codes = bytearray()
        for entry_id, region, value in rows:
            slot = _SLOT_OF.get(region)
            if slot is None:
                continue  # a name this version does not know (the store refuses them)
            codes += bytes.fromhex(value)
            ids.append(entry_id * SLOTS + slot)
        if ids:
            self.index.add(
                np.frombuffer(ids, dtype=np.int64),
                np.frombuffer(codes, dtype=np.uint8).reshape(-1, CODE_BYTES),
            )

    def _remove(self, keys: Iterable[int]) -> None:
        wanted = array("q", keys)
        if wanted and len(self.index):
            self.index.remove(np.frombuffer(wanted, dtype=np.int64))


_SLOTS_USED: Final = range(len(REGION_NAMES))
