"""Where the quarantine vault keeps ciphertext: one file per object, named by its id.

``<vault dir>/ab/cdef…``: the first two hex digits of the object's random id name a
subdirectory (so no directory grows past a few thousand files per million objects), the
other thirty the file. Never the content's hash: a listing would tell which known image is
held. Files hold ciphertext only; they are written atomically (`write_atomic`) and
overwritten before they are unlinked (`shred`). Directories are mode 0700, files 0600.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

#: An object id: 32 lowercase hex digits (a UUID4).
OBJECT_ID = re.compile(r"[0-9a-f]{32}")
#: A temporary file of `write_atomic` (left only by a crash mid-write).
TEMPORARY = re.compile(r"\.[0-9a-f]{30}\.[0-9a-f]{8}\.tmp")


def object_path(root: Path, object_id: str) -> Path:
    """The file of `object_id` under vault directory `root`."""
    return root / object_id[:2] / object_id[2:]


def stored_files(root: Path) -> Iterator[tuple[str | None, Path]]:
    """Every file in the vault's subdirectories: (its object id, or None for a temporary or
    foreign file, its path)."""
    if not root.is_dir():
        return
    for directory in root.iterdir():
        if not (directory.is_dir() and re.fullmatch(r"[0-9a-f]{2}", directory.name)):
            continue
        for path in directory.iterdir():
            if path.is_file():
                object_id = directory.name + path.name
                yield (object_id if OBJECT_ID.fullmatch(object_id) else None), path


def write_atomic(path: Path, payload: bytes) -> None:
    """Write `payload` (ciphertext) to `path`: a temporary file beside it, flushed, renamed."""
    new_directory = not path.parent.exists()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if new_directory:
        fsync_directory(path.parent.parent)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def shred(path: Path) -> bool:
    """Overwrite a file with zeros, flush, unlink it; False when it was not there.

    On copy-on-write and journaling file systems, and SSDs, the old blocks may survive the
    overwrite; what makes destroyed content unrecoverable is its dropped key, not this.
    """
    try:
        descriptor = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return False
    try:
        remaining = os.fstat(descriptor).st_size
        zeros = bytes(min(remaining, 1 << 20))
        while remaining > 0:
            remaining -= os.write(descriptor, zeros[:remaining])
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    path.unlink(missing_ok=True)
    fsync_directory(path.parent)
    return True


def fsync_directory(directory: Path) -> None:
    """Make a rename or unlink in `directory` durable (POSIX; a no-op where unsupported)."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
