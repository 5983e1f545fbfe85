"""The files a command works on: paths named on the command line, and directory trees.

Directory walks are sorted by name at every level, so output order is deterministic. They
include hidden files and directories: a scanner that skipped ``.cache/`` would be trivial to
evade. Symbolic links are followed (to files and to directories), but each directory is
entered once, so a link loop ends the walk of that branch rather than recursing forever.
Sockets, FIFOs and devices met during a walk are skipped; named on the command line they
are reported as errors.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class InputPath:
    """A file to hash, or a path that could not even be listed (with why)."""

    path: str
    problem: str | None = None


def collect_inputs(paths: Sequence[str]) -> Iterator[InputPath]:
    """Files named, and the files under directories named, in a deterministic order."""
    for path in paths:
        if Path(path).is_dir():
            yield from _walk(path)
        else:
            yield InputPath(path)  # missing or unreadable: `read_file` says so, in order


def _walk(root: str) -> Iterator[InputPath]:
    """Regular files under `root`, depth first, sorted by name at every level."""
    seen: set[tuple[int, int]] = set()
    stack: list[Iterator[os.DirEntry[str]]] = []

    def enter(directory: str) -> Iterator[InputPath]:
        try:
            info = Path(directory).stat()
            if (info.st_dev, info.st_ino) in seen:
                return  # a link back into the tree, or a directory linked twice
            seen.add((info.st_dev, info.st_ino))
            with os.scandir(directory) as entries:
                stack.append(iter(sorted(entries, key=lambda entry: entry.name)))
        except OSError as exc:
            yield InputPath(directory, f"cannot list directory: {exc.strerror or exc}")

    yield from enter(root)
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        try:
            if entry.is_dir():
                yield from enter(entry.path)
            elif entry.is_file():
                yield InputPath(entry.path)
            elif entry.is_symlink() and not Path(entry.path).exists():
                yield InputPath(entry.path, "broken symbolic link")
        except OSError as exc:
            yield InputPath(entry.path, f"cannot read: {exc.strerror or exc}")
