"""Index snapshot files: a versioned header, then raw NumPy arrays, each with a checksum.

Why this format: an index of 13.4 M hashes must load in about a second, be shareable between
processes through the page cache, and never be executable (no pickle). So a file is a small
header followed by the arrays exactly as they sit in memory; loading reads each one in a single
call (or maps it), and checks it against its XXH64 checksum.

Layout (little-endian):

    <8s I I I>            magic, version, length of the format's own metadata, section count
    metadata              fixed fields of the index kind (sizes, flags)
    sections, each <I I Q Q Q>
                          kind, reserved, offset, length in bytes, XXH64 of the bytes
    <Q>                   XXH64 of everything above
    section data          each section starts on a 4 KiB boundary (so it can be mapped)

Damaged, truncated or foreign files raise `IndexFileError`, never anything less clear.
"""

from __future__ import annotations

import io
import os
import struct
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from lightkeeper.errors import IndexFileError
from lightkeeper.index import _memory
from lightkeeper.index._hamming import xxh64

_HEAD: Final = struct.Struct("<8sIII")
_SECTION: Final = struct.Struct("<IIQQQ")
_CHECK: Final = struct.Struct("<Q")
_ALIGN: Final = 4096
_MAX_SECTIONS: Final = 64
_MAX_META: Final = 4096

#: What a reader expects in each section: dtype and shape, by section kind.
Layout = Mapping[int, tuple[Any, tuple[int, ...]]]


def _align(x: int) -> int:
    return -(-x // _ALIGN) * _ALIGN


def write(
    path: Path,
    magic: bytes,
    version: int,
    meta: bytes,
    sections: Sequence[tuple[int, NDArray[Any]]],
) -> None:
    """Write a snapshot atomically: to `path.tmp`, flushed to disk, then renamed over `path`."""
    if sys.byteorder != "little":
        raise IndexFileError("index files are written on little-endian machines only")
    head = _HEAD.pack(magic, version, len(meta), len(sections)) + meta
    offset = _align(len(head) + _SECTION.size * len(sections) + _CHECK.size)
    placed: list[tuple[int, NDArray[Any]]] = []
    for kind, arr in sections:
        data = np.ascontiguousarray(arr)
        head += _SECTION.pack(kind, 0, offset, data.nbytes, xxh64(data))
        placed.append((offset, data))
        offset = _align(offset + data.nbytes)
    head += _CHECK.pack(xxh64(head))
    end = max([len(head)] + [at + data.nbytes for at, data in placed])
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as f:
            f.write(head)
            for at, data in placed:
                if data.nbytes:
                    f.seek(at)
                    f.write(data.data.cast("B"))
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read(
    path: Path,
    magic: bytes,
    version: int,
    layout: Callable[[bytes], Layout],
    *,
    mmap: bool = False,
    verify: bool = True,
) -> tuple[bytes, dict[int, NDArray[Any]]]:
    """Read a snapshot: its metadata, and each section as an array shaped by `layout(meta)`.

    `layout` parses the metadata (raising `IndexFileError` if it is not acceptable) and says
    which sections must be present with which dtype and shape. `mmap` maps read-only arrays
    instead of reading them; `verify` checks every section's checksum (the header's always is).
    """
    if sys.byteorder != "little":
        raise IndexFileError("index files can be loaded on little-endian machines only")
    try:
        f = path.open("rb")
    except OSError as exc:
        raise IndexFileError(f"{path}: cannot open index file: {exc.strerror}") from exc
    with f:
        size = os.fstat(f.fileno()).st_size
        raw = f.read(_HEAD.size)
        if raw[: len(magic)] != magic[: len(raw)]:
            raise IndexFileError(f"{path}: not a Lightkeeper index file of this kind")
        if len(raw) < _HEAD.size:
            raise IndexFileError(f"{path}: truncated index file (header)")
        _, file_version, meta_len, count = _HEAD.unpack(raw)
        if file_version != version:
            raise IndexFileError(
                f"{path}: index file version {file_version}; this Lightkeeper reads {version}"
            )
        if meta_len > _MAX_META or count > _MAX_SECTIONS:
            raise IndexFileError(f"{path}: corrupt index file (header fields out of range)")
        want = meta_len + _SECTION.size * count + _CHECK.size
        rest = f.read(want)
        if len(rest) < want:
            raise IndexFileError(f"{path}: truncated index file (header)")
        (stored,) = _CHECK.unpack_from(rest, want - _CHECK.size)
        if xxh64(raw + rest[: want - _CHECK.size]) != stored:
            raise IndexFileError(f"{path}: corrupt index file (header checksum mismatch)")
        meta = rest[:meta_len]
        expected = layout(meta)
        arrays: dict[int, NDArray[Any]] = {}
        for i in range(count):
            at = meta_len + i * _SECTION.size
            kind, _, offset, length, checksum = _SECTION.unpack_from(rest, at)
            if kind not in expected or kind in arrays:
                raise IndexFileError(f"{path}: corrupt index file (unexpected section {kind})")
            dtype, shape = expected[kind]
            if length != int(np.prod(shape)) * np.dtype(dtype).itemsize:
                raise IndexFileError(f"{path}: corrupt index file (section {kind} length)")
            if offset + length > size:
                raise IndexFileError(f"{path}: truncated index file (section {kind})")
            arr = _read_array(f, path, offset, dtype, shape, mmap=mmap)
            if verify and xxh64(arr) != checksum:
                raise IndexFileError(f"{path}: corrupt index file (checksum of section {kind})")
            arrays[kind] = arr
        if set(arrays) != set(expected):
            raise IndexFileError(f"{path}: corrupt index file (a section is missing)")
    return meta, arrays


def _read_array(
    f: io.BufferedReader, path: Path, offset: int, dtype: Any, shape: tuple[int, ...], *, mmap: bool
) -> NDArray[Any]:
    if mmap and int(np.prod(shape)) > 0:
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    arr = _memory.empty(shape, dtype)
    if arr.nbytes == 0:
        return arr
    f.seek(offset)
    if f.readinto(arr.data.cast("B")) != arr.nbytes:
        raise IndexFileError(f"{path}: truncated index file")
    return arr
