"""`IndexFollower`: in-memory indexes of the banks, kept current from the store's change log.

Why follow a log instead of rebuilding: a hash added by a curator, an import or another
service process must be matchable everywhere within about a second, and rebuilding the index
of a 13-million-hash list takes minutes (HMA rebuilds and reloads its whole index, 19-76 s on
this machine). Every write to the store appends to its change log in the same transaction,
so a follower that remembers the last sequence number it applied (`last_seq`) only has to
read and apply what came after it.

What is indexed: one index per signal type, `HammingIndex` for Hamming signals (PDQ) and
`ExactIndex` for exact ones (MD5, SHA-1, SHA-256, URL), holding the entries of enabled banks
whose ``enabled`` flag is set, under their entry ids. An entry disabled only *until* some
time stays indexed: it becomes active again when that time passes, with no change logged, so
the matcher checks `Entry.is_active` on each candidate instead. The index only proposes
candidates; the matcher reads each candidate's entry and bank before reporting anything.

How changes apply. A change carries the entry's *current* state (see `Change`), and entry
ids are never reused, so applying a change twice, or late, converges on the store's state:

- "add"/"update" of an enabled entry in an indexed bank: (re)insert it; of a disabled one:
  take it out. A change whose entry is gone since carries no value: its "remove" follows.
- "remove": take it out, whatever its bank (a deleted bank logs a removal per entry).
- "bank" (created, renamed, settings changed, enabled, disabled, deleted): reload the banks;
  a bank that became enabled has its entries streamed in, one that became disabled has them
  streamed out. That is the one change that costs as much as the bank is large.

A backlog larger than `REBUILD_BACKLOG` changes (a whole national list imported meanwhile)
is cheaper to load afresh than to replay, and is.
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType

import numpy as np

from lightkeeper.banks import Bank, BankStore, Change
from lightkeeper.errors import LightkeeperError, NotFound
from lightkeeper.index import ExactIndex, HammingIndex
from lightkeeper.index.hamming import CODE_BITS, CODE_BYTES
from lightkeeper.signals import registry
from lightkeeper.signals.exact import HexDigestSignal

#: Changes read from the log per query.
PAGE_SIZE = 10_000
#: A backlog of more changes than this is loaded afresh instead of replayed.
REBUILD_BACKLOG = 200_000


@cache
def index_kind(signal_type: str) -> str | None:
    """ "hamming", "exact", or None for a signal type no index here can hold.

    `HammingIndex` holds 256-bit codes; a Hamming signal type of another width (none is
    registered today) would need an index of its own, and is not matched.
    """
    try:
        st = registry.get(signal_type)
    except LightkeeperError:
        return None
    if st.comparison == "exact":
        return "exact"
    if st.comparison == "hamming" and st.bits == CODE_BITS:
        return "hamming"
    return None


def hamming_code(value: str) -> bytes:
    """The 32 bytes a canonical 64-hex-digit value is indexed under."""
    code = bytes.fromhex(value)
    if len(code) != CODE_BYTES:
        raise ValueError(f"a {CODE_BITS}-bit code has {CODE_BYTES} bytes, got {len(code)}")
    return code


def exact_key(signal_type: str, value: str) -> bytes:
    """The bytes an exact value is indexed under: the digest itself for hex digests (half the
    memory of its text), the UTF-8 text for anything else (URLs)."""
    if isinstance(registry.get(signal_type), HexDigestSignal):
        return bytes.fromhex(value)
    return value.encode("utf-8")


@dataclass
class _Bulk:
    """Entries gathered for one bulk insertion, in compact arrays (a rebuild may be large)."""

    hamming: dict[str, tuple[array[int], bytearray]] = field(default_factory=dict)
    exact: dict[str, tuple[array[int], list[bytes]]] = field(default_factory=dict)

    def add(self, entry_id: int, signal_type: str, value: str) -> None:
        kind = index_kind(signal_type)
        try:
            if kind == "hamming":
                ids, codes = self.hamming.setdefault(signal_type, (array("q"), bytearray()))
                codes += hamming_code(value)
                ids.append(entry_id)
            elif kind == "exact":
                exact_ids, keys = self.exact.setdefault(signal_type, (array("q"), []))
                keys.append(exact_key(signal_type, value))
                exact_ids.append(entry_id)
        except ValueError:
            pass  # not canonical: the store validates values, so only a damaged row gets here

    def ids(self) -> Iterable[tuple[str, array[int]]]:
        for signal_type, (ids, _) in self.hamming.items():
            yield signal_type, ids
        for signal_type, (ids, _) in self.exact.items():
            yield signal_type, ids


@dataclass
class _Pending:
    """One page of changes folded into its net effect per entry (last change wins)."""

    adds: dict[str, dict[int, str]] = field(default_factory=dict)
    removes: dict[str, set[int]] = field(default_factory=dict)

    def add(self, entry_id: int, signal_type: str, value: str) -> None:
        self.removes.get(signal_type, set()).discard(entry_id)
        self.adds.setdefault(signal_type, {})[entry_id] = value

    def remove(self, entry_id: int, signal_type: str) -> None:
        self.adds.get(signal_type, {}).pop(entry_id, None)
        self.removes.setdefault(signal_type, set()).add(entry_id)


class IndexFollower:
    """Per-signal-type indexes of the enabled entries of enabled banks, following the log.

    Construction loads everything once; `refresh` then applies what changed since. Searches
    may run from several threads while another refreshes (the indexes allow it); refreshes
    are serialised.
    """

    def __init__(self, store: BankStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._banks: dict[int, Bank] = {}
        self._indexed: set[int] = set()
        self._hamming: dict[str, HammingIndex] = {}
        self._exact: dict[str, ExactIndex] = {}
        self._last_seq = 0
        with self._lock:
            self._load()
        self.refresh()

    # ------------------------------------------------------------------ reading

    @property
    def last_seq(self) -> int:
        """Sequence number of the last change applied."""
        return self._last_seq

    @property
    def banks(self) -> Mapping[int, Bank]:
        """Every bank in the store, by id, as of the last refresh."""
        return MappingProxyType(self._banks)

    def sizes(self) -> dict[str, int]:
        """Entries indexed per signal type (for diagnostics and tests)."""
        found = {name: len(index) for name, index in self._hamming.items()}
        found.update({name: len(index) for name, index in self._exact.items()})
        return {name: count for name, count in sorted(found.items()) if count}

    def search(
        self, signal_type: str, codes: Sequence[bytes], radius: int
    ) -> list[list[tuple[int, int]]]:
        """For each code, the (entry id, distance) of indexed entries within `radius`."""
        index = self._hamming.get(signal_type)
        if index is None or not codes:
            return [[] for _ in codes]
        queries = np.frombuffer(b"".join(codes), dtype=np.uint8).reshape(-1, CODE_BYTES)
        return index.search(queries, radius)

    def lookup(self, signal_type: str, value: str) -> list[int]:
        """Ids of indexed entries holding exactly `value` (canonical)."""
        index = self._exact.get(signal_type)
        if index is None:
            return []
        return index.lookup([exact_key(signal_type, value)])[0]

    # ------------------------------------------------------------------ following

    def refresh(self) -> int:
        """Apply the changes logged since `last_seq`; returns how many were read.

        Cheap when nothing changed: one query for the newest sequence number (an index
        lookup, well under a millisecond on SQLite).
        """
        with self._lock:
            if self._store.last_seq() == self._last_seq:
                return 0
            read = 0
            while True:
                page = self._store.changes_since(self._last_seq, limit=PAGE_SIZE)
                if (
                    len(page) == PAGE_SIZE
                    and self._store.last_seq() - page[0].seq > REBUILD_BACKLOG
                ):
                    self._load()
                    read += len(page)
                    continue
                if page:
                    self._apply(page)
                    self._last_seq = page[-1].seq
                    read += len(page)
                if len(page) < PAGE_SIZE:
                    return read

    def _load(self) -> None:
        """Load every indexed entry afresh, then note where the log stood."""
        seq = self._store.last_seq()  # before reading: changes racing the load are replayed
        banks = {bank.id: bank for bank in self._store.list_banks()}
        indexed = {bank_id for bank_id, bank in banks.items() if bank.enabled}
        bulk = _Bulk()
        if indexed:
            for entry in self._store.iter_entries():
                if entry.bank_id in indexed and entry.enabled:
                    bulk.add(entry.id, entry.signal_type, entry.value)
        hamming: dict[str, HammingIndex] = {}
        for signal_type, (ids, codes) in bulk.hamming.items():
            hamming[signal_type] = index = HammingIndex()
            index.add(_id_array(ids), np.frombuffer(codes, dtype=np.uint8).reshape(-1, CODE_BYTES))
        exact: dict[str, ExactIndex] = {}
        for signal_type, (exact_ids, keys) in bulk.exact.items():
            exact[signal_type] = exact_index = ExactIndex()
            exact_index.add(_id_array(exact_ids), keys)
        self._banks, self._indexed = banks, indexed
        self._hamming, self._exact = hamming, exact
        self._last_seq = seq

    def _apply(self, page: list[Change]) -> None:
        if any(change.op == "bank" for change in page):
            self._sync_banks()
        pending = _Pending()
        for change in page:
            if change.op == "bank" or change.entry_id is None or change.signal_type is None:
                continue
            if change.op == "remove" or not change.enabled:
                pending.remove(change.entry_id, change.signal_type)
            elif change.bank_id in self._indexed and change.value is not None:
                pending.add(change.entry_id, change.signal_type, change.value)
        for signal_type, removed in pending.removes.items():
            self._remove(signal_type, removed)
        bulk = _Bulk()
        for signal_type, added in pending.adds.items():
            for entry_id, value in added.items():
                bulk.add(entry_id, signal_type, value)
        self._insert(bulk)

    def _sync_banks(self) -> None:
        """Reload the banks; stream in or out the entries of banks enabled or disabled."""
        banks = {bank.id: bank for bank in self._store.list_banks()}
        indexed: set[int] = set()
        for bank_id in self._indexed:
            bank = banks.get(bank_id)
            if bank is None:
                continue  # deleted: its entries leave through the removals logged with it
            if bank.enabled:
                indexed.add(bank_id)
                continue
            try:
                bulk = self._gather(bank, only_enabled=False)
            except NotFound:  # renamed or deleted meanwhile: retried at that change
                indexed.add(bank_id)
                continue
            for signal_type, ids in bulk.ids():
                self._remove(signal_type, ids)
        for bank_id, bank in banks.items():
            if bank.enabled and bank_id not in self._indexed:
                try:
                    bulk = self._gather(bank, only_enabled=True)
                except NotFound:
                    continue  # retried at its next change
                self._insert(bulk)
                indexed.add(bank_id)
        self._banks, self._indexed = banks, indexed

    def _gather(self, bank: Bank, *, only_enabled: bool) -> _Bulk:
        bulk = _Bulk()
        for entry in self._store.iter_entries(bank.name):
            if entry.enabled or not only_enabled:
                bulk.add(entry.id, entry.signal_type, entry.value)
        return bulk

    def _remove(self, signal_type: str, ids: Iterable[int]) -> None:
        kind = index_kind(signal_type)
        index: HammingIndex | ExactIndex | None = (
            self._hamming.get(signal_type) if kind == "hamming" else self._exact.get(signal_type)
        )
        if index is not None:
            index.remove(_id_array(array("q", ids)))

    def _insert(self, bulk: _Bulk) -> None:
        for signal_type, (ids, codes) in bulk.hamming.items():
            index = self._hamming.setdefault(signal_type, HammingIndex())
            index.add(_id_array(ids), np.frombuffer(codes, dtype=np.uint8).reshape(-1, CODE_BYTES))
        for signal_type, (exact_ids, keys) in bulk.exact.items():
            self._exact.setdefault(signal_type, ExactIndex()).add(_id_array(exact_ids), keys)


def _id_array(ids: array[int]) -> np.ndarray[tuple[int], np.dtype[np.int64]]:
    return np.frombuffer(ids, dtype=np.int64) if len(ids) else np.empty(0, dtype=np.int64)
