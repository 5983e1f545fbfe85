"""`ExactIndex`: which entries hold exactly this value? (MD5, SHA-1, SHA-256, normalised URLs.)

Why a plain dict: exact signals match only on equality, so a hash map answers in one probe and
needs no cleverness; Python's dict is a good one. Two maps are kept: value -> ids (several bank
entries may list the same file) and id -> value (to remove or replace by id).

Identity: as in `HammingIndex`, an id names one value; adding an id again replaces its value
(within one `add` call the last occurrence wins); removing an unknown id is not an error.

Memory: about 190 bytes per entry for 16-byte MD5 values (measured with tracemalloc over
200,000 entries): ~140 B for the two dict slots and the id, ~50 B for the value's bytes object.
13.4 M entries would take ~2.5 GB: fine for the exact lists a service loads, but a reason to
move to sorted fixed-width arrays (as `HammingIndex` does) if national-size exact lists appear.

Files: a `_snapshot` file holding three arrays (ids, value lengths, values concatenated), so
saving and loading never run Python code from the file (no pickle).
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from lightkeeper.errors import IndexFileError
from lightkeeper.index import _snapshot
from lightkeeper.index._validate import as_ids

__all__ = ["ExactIndex"]


def _as_values(values: object, what: str = "values") -> list[bytes]:
    if isinstance(values, (bytes, bytearray, memoryview, str)):
        raise ValueError(f"{what} must be a sequence of bytes values, not a single value")
    if not isinstance(values, Iterable):
        raise ValueError(f"{what} must be a sequence of bytes values")
    out: list[bytes] = []
    for v in values:
        if isinstance(v, bytes):
            out.append(v)
        elif isinstance(v, (bytearray, memoryview)):
            out.append(bytes(v))
        else:
            raise ValueError(f"{what} must be bytes, got {type(v).__name__}")
    return out


class ExactIndex:
    """Exact-value lookup under int64 ids.

    >>> idx = ExactIndex()
    >>> idx.add([1, 2], [md5_a, md5_b])
    >>> idx.lookup([md5_a, md5_c])       # [[1], []]
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # One id per value is the common case: stored bare, a list only when values are shared.
        self._ids_of: dict[bytes, int | list[int]] = {}
        self._value_of: dict[int, bytes] = {}

    def __len__(self) -> int:
        """Number of entries (ids)."""
        return len(self._value_of)

    def __repr__(self) -> str:
        return f"<ExactIndex {len(self._value_of)} entries, {len(self._ids_of)} distinct values>"

    def add(self, ids: object, values: object) -> None:
        """Add entries; an id already present gets the new value."""
        id_list = as_ids(ids).tolist()
        value_list = _as_values(values)
        if len(id_list) != len(value_list):
            raise ValueError(f"got {len(id_list)} ids but {len(value_list)} values")
        with self._lock:
            for key, value in zip(id_list, value_list, strict=True):
                old = self._value_of.get(key)
                if old == value:
                    continue
                if old is not None:
                    self._unlink(key, old)
                self._value_of[key] = value
                held = self._ids_of.get(value)
                if held is None:
                    self._ids_of[value] = key
                elif isinstance(held, int):
                    self._ids_of[value] = [held, key]
                else:
                    held.append(key)

    def remove(self, ids: object) -> int:
        """Remove entries by id; unknown ids are ignored. Returns how many were removed."""
        removed = 0
        with self._lock:
            for key in set(as_ids(ids).tolist()):
                value = self._value_of.pop(key, None)
                if value is not None:
                    self._unlink(key, value)
                    removed += 1
        return removed

    def _unlink(self, key: int, value: bytes) -> None:
        held = self._ids_of[value]
        if isinstance(held, int):
            del self._ids_of[value]
            return
        held.remove(key)
        if len(held) == 1:
            self._ids_of[value] = held[0]

    def lookup(self, values: object) -> list[list[int]]:
        """For each value, the ids holding exactly it, sorted."""
        out: list[list[int]] = []
        get = self._ids_of.get
        for value in _as_values(values):
            held = get(value)
            if held is None:
                out.append([])
            elif isinstance(held, int):
                out.append([held])
            else:
                out.append(sorted(held))
        return out

    # -- files -----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to `path` (atomically: a temporary file, then a rename)."""
        with self._lock:
            keys = np.fromiter(self._value_of.keys(), dtype=np.int64, count=len(self._value_of))
            values = list(self._value_of.values())
        lengths = np.fromiter(map(len, values), dtype=np.uint32, count=len(values))
        blob = np.frombuffer(b"".join(values), dtype=np.uint8)
        meta = _META.pack(len(keys), len(blob))
        sections: list[tuple[int, NDArray[Any]]] = [
            (_IDS, keys),
            (_LENGTHS, lengths),
            (_BLOB, blob),
        ]
        _snapshot.write(Path(path), _MAGIC, _VERSION, meta, sections)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ExactIndex:
        """Read an index written by `save`; a damaged or foreign file raises `IndexFileError`."""
        p = Path(path)
        _, arrays = _snapshot.read(p, _MAGIC, _VERSION, _layout)
        keys, lengths, blob = arrays[_IDS], arrays[_LENGTHS], arrays[_BLOB]
        if int(lengths.sum(dtype=np.uint64)) != len(blob):
            raise IndexFileError(f"{p}: corrupt index file (value lengths)")
        if len(keys) > 1 and len(np.unique(keys)) != len(keys):
            raise IndexFileError(f"{p}: corrupt index file (repeated ids)")
        data = blob.tobytes()
        ends = np.cumsum(lengths, dtype=np.int64).tolist()
        index = cls()
        index.add(keys, _slices(data, ends))
        return index


def _slices(data: bytes, ends: Sequence[int]) -> list[bytes]:
    out: list[bytes] = []
    start = 0
    for end in ends:
        out.append(data[start:end])
        start = end
    return out


# File format: metadata <Q Q> (entries, value bytes); sections ids, lengths, values.
_MAGIC: Final = b"\x89LKEXAC\n"
_VERSION: Final = 1
_META: Final = struct.Struct("<QQ")
_IDS, _LENGTHS, _BLOB = 1, 2, 3


def _layout(meta: bytes) -> _snapshot.Layout:
    if len(meta) != _META.size:
        raise IndexFileError("corrupt index file (metadata)")
    n, total = _META.unpack(meta)
    layout: dict[int, tuple[Any, tuple[int, ...]]] = {
        _IDS: (np.int64, (n,)),
        _LENGTHS: (np.uint32, (n,)),
        _BLOB: (np.uint8, (total,)),
    }
    return layout
