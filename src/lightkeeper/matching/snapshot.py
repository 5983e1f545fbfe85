"""Index snapshots: the follower's indexes on disk, so that a process starts in seconds.

Why: loading 13.4 M entries from the database takes minutes, and every worker process of the
service needs the whole index. A snapshot holds the indexes in their own file formats
(`HammingIndex.save`, `ExactIndex.save`: raw arrays with checksums, read as they are, with no
sort or rebuild) plus what the follower needs to resume following the change log
from there: the sequence number the indexes reflect, the banks that were indexed, and which
database they came from.

Layout of a snapshot directory:

    manifest.json          the current snapshot (JSON, its own SHA-256 inside); replaced whole
    gen-<seq>-<random>/    one generation: an index file per signal type (and one of region codes)
    lock                   held (``fcntl.flock``) by the one process writing a snapshot

Writing is crash-safe: a generation is written into a directory of its own, flushed to disk
(files and directory), and only then named by a new manifest, which is itself written to a
temporary file, flushed and renamed over the old one. A crash at any point leaves either the
old manifest or the new one, each naming complete files; leftover generations are removed by
the next writer. Files are never changed in place, so a process that has mapped a generation
(`SnapshotDir(mapped=True)`) keeps reading it safely after a newer one replaces it (Linux keeps
an unlinked file's data while it is mapped).

Read or mapped. By default a process reads each Hamming index into memory of its own, in huge
pages where the kernel offers them (`lightkeeper.index._memory`): single queries at 13.4 M
codes are about 13 % faster than over a mapped file, whose 4 KiB page-cache pages cost a page
walk per random read. Mapping instead (`mapped=True`) lets processes share one copy through the
page cache, which saves memory only until the follower's first merge of new entries builds a
private main block anyway; it suits many processes over a list that rarely changes.

Readers take no lock: if a writer removes the generation they are reading, they read the
manifest again and load the newer one. Writers take the lock, so two processes never write at
once; the follower waits for it at a cold start (then loads what the other process wrote) and
skips writing in the background when another process holds it.

Nothing here trusts a file: the manifest's checksum, the index files' own checksums and the
entry counts are all checked, and any damage raises `IndexFileError`, upon which the follower
loads from the store instead. Whether a snapshot belongs to *this* store (instance id, change
log) is the follower's check; see `lightkeeper.matching.follower`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from lightkeeper.errors import IndexFileError
from lightkeeper.index import ExactIndex, HammingIndex

#: What the manifest's "format" field says; anything else is not a snapshot manifest.
FORMAT: Final = "lightkeeper-index-snapshot"
#: Version of the snapshot layout (manifest fields, file naming). Bump on any change: older
#: or newer snapshots are then rebuilt from the store, never misread.
FORMAT_VERSION: Final = 2  # 2: region codes (their index and the banks they come from)
MANIFEST: Final = "manifest.json"
LOCK: Final = "lock"
_GENERATION_PREFIX: Final = "gen-"
#: Manifests are small; a larger file is not one of ours.
_MAX_MANIFEST_BYTES: Final = 1 << 20
#: Times a reader retries when writers keep replacing the snapshot under it.
_READ_ATTEMPTS: Final = 3

#: "regions": the region codes of banked images (`lightkeeper.matching.region_index`).
IndexKind = Literal["hamming", "exact", "regions"]


@dataclass(frozen=True, slots=True)
class IndexFile:
    """One index of a snapshot: which signal type, which kind of index, its file, its size."""

    signal_type: str
    kind: IndexKind
    #: File name inside the generation directory.
    file: str
    #: Entries the index held when written; checked again after loading.
    entries: int


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a snapshot is: where the log stood, what was indexed, whose store, which files."""

    #: Sequence number of the last change the indexes reflect.
    last_seq: int
    #: The store's instance id (`BankStore.instance_id`), None for a store without one.
    instance_id: str | None
    #: Fingerprint of the change at `last_seq`: tells a different or restored database apart
    #: even where instance ids agree. None when `last_seq` is 0.
    anchor: str | None
    #: Ids of the banks whose entries the indexes hold (enabled banks, at `last_seq`).
    indexed_banks: frozenset[int]
    created_at: datetime
    #: Name of the generation directory holding the files.
    generation: str
    indexes: tuple[IndexFile, ...]
    #: Ids of the banks whose region codes the region index holds (enabled, regions on).
    region_banks: frozenset[int] = frozenset()

    def to_json(self) -> bytes:
        body = self._body()
        body["checksum"] = _checksum(body)
        return (json.dumps(body, indent=1, sort_keys=True) + "\n").encode("utf-8")

    def _body(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "last_seq": self.last_seq,
            "instance_id": self.instance_id,
            "anchor": self.anchor,
            "indexed_banks": sorted(self.indexed_banks),
            "region_banks": sorted(self.region_banks),
            "created_at": self.created_at.isoformat(),
            "generation": self.generation,
            "indexes": [
                {"signal_type": i.signal_type, "kind": i.kind, "file": i.file, "entries": i.entries}
                for i in self.indexes
            ],
        }

    @classmethod
    def from_json(cls, data: bytes, where: Path) -> Manifest:
        """Parse and check a manifest; anything unexpected raises `IndexFileError`."""
        try:
            body = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise IndexFileError(f"{where}: corrupt snapshot manifest (not JSON)") from exc
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise IndexFileError(f"{where}: not a Lightkeeper index snapshot manifest")
        if body.get("version") != FORMAT_VERSION:
            raise IndexFileError(
                f"{where}: snapshot format version {body.get('version')!r}; "
                f"this Lightkeeper reads {FORMAT_VERSION}"
            )
        stored = body.pop("checksum", None)
        if stored != _checksum(body):
            raise IndexFileError(f"{where}: corrupt snapshot manifest (checksum mismatch)")
        try:
            manifest = cls(
                last_seq=_int(body["last_seq"]),
                instance_id=_optional_str(body["instance_id"]),
                anchor=_optional_str(body["anchor"]),
                indexed_banks=frozenset(_int(b) for b in body["indexed_banks"]),
                created_at=datetime.fromisoformat(_str(body["created_at"])),
                generation=_file_name(body["generation"]),
                indexes=tuple(_index_file(i) for i in body["indexes"]),
                region_banks=frozenset(_int(b) for b in body["region_banks"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFileError(f"{where}: corrupt snapshot manifest ({exc})") from exc
        if set(body) != set(manifest._body()):
            raise IndexFileError(f"{where}: corrupt snapshot manifest (unexpected fields)")
        return manifest


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A snapshot loaded into memory: its manifest and its indexes, by signal type."""

    manifest: Manifest
    hamming: dict[str, HammingIndex]
    exact: dict[str, ExactIndex]
    #: Region codes of banked images, by signal type (PDQ only).
    regions: dict[str, HammingIndex] = field(default_factory=dict)


class SnapshotDir:
    """A directory holding the current snapshot of one store's indexes (see module docstring).

    Safe to use from several threads and processes at once.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, mapped: bool = False, paired: bool = False
    ) -> None:
        self._path = Path(path)
        self._mapped = mapped
        self._paired = paired  # signal types' Hamming indexes get paired tables on loading

    @property
    def path(self) -> Path:
        return self._path

    def __repr__(self) -> str:
        return f"<SnapshotDir {self._path}>"

    # ------------------------------------------------------------------ reading

    def read_manifest(self) -> Manifest | None:
        """The current manifest; None when there is no snapshot, `IndexFileError` if damaged."""
        where = self._path / MANIFEST
        try:
            with where.open("rb") as f:
                data = f.read(_MAX_MANIFEST_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise IndexFileError(f"{where}: cannot read snapshot manifest: {exc}") from exc
        if len(data) > _MAX_MANIFEST_BYTES:
            raise IndexFileError(f"{where}: not a Lightkeeper index snapshot manifest (too large)")
        return Manifest.from_json(data, where)

    def load(self) -> Snapshot | None:
        """Load the current snapshot (Hamming indexes read or mapped, see the module docstring),
        every checksum checked.

        None when there is none; `IndexFileError` when it is damaged, truncated or of another
        format. A snapshot replaced by a writer while it was being read is read again.
        """
        for _ in range(_READ_ATTEMPTS):
            manifest = self.read_manifest()
            if manifest is None:
                return None
            try:
                return self._load(manifest)
            except IndexFileError:
                current = self.read_manifest()
                if current is None or current.generation == manifest.generation:
                    raise
                # A writer replaced the snapshot (and removed the files) meanwhile: read anew.
        raise IndexFileError(f"{self._path}: the snapshot kept changing while being read")

    def _load(self, manifest: Manifest) -> Snapshot:
        folder = self._path / manifest.generation
        hamming: dict[str, HammingIndex] = {}
        exact: dict[str, ExactIndex] = {}
        regions: dict[str, HammingIndex] = {}
        for item in manifest.indexes:
            path = folder / item.file
            index: HammingIndex | ExactIndex
            try:
                if item.kind == "hamming":
                    index = hamming[item.signal_type] = HammingIndex.load(
                        path, mmap=self._mapped, paired=self._paired
                    )
                elif item.kind == "regions":
                    index = regions[item.signal_type] = HammingIndex.load(path, mmap=self._mapped)
                else:
                    index = exact[item.signal_type] = ExactIndex.load(path)
            except OSError as exc:  # a mapped file that vanished after it was opened
                raise IndexFileError(f"{path}: cannot read index file: {exc}") from exc
            if len(index) != item.entries:
                raise IndexFileError(
                    f"{path}: holds {len(index)} entries; the snapshot manifest says {item.entries}"
                )
        if len(hamming) + len(exact) + len(regions) != len(manifest.indexes):
            raise IndexFileError(f"{self._path / MANIFEST}: a signal type is listed twice")
        return Snapshot(manifest, hamming, exact, regions)

    # ------------------------------------------------------------------ writing

    @contextmanager
    def lock(self, *, wait: bool) -> Iterator[bool]:
        """Hold the writers' lock; yields False (holding nothing) if `wait` is False and another
        process or thread holds it. Creates the directory if needed."""
        self._path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                acquired = False
            else:
                acquired = True
            yield acquired
        finally:
            os.close(fd)  # closing the last descriptor releases the lock

    def write(
        self,
        *,
        last_seq: int,
        instance_id: str | None,
        anchor: str | None,
        indexed_banks: frozenset[int],
        hamming: Mapping[str, HammingIndex],
        exact: Mapping[str, ExactIndex],
        regions: Mapping[str, HammingIndex] | None = None,
        region_banks: frozenset[int] = frozenset(),
    ) -> Manifest:
        """Write a new generation and make it current; the caller holds `lock`, and keeps the
        indexes from changing until this returns. Older generations are removed."""
        self._path.mkdir(parents=True, exist_ok=True)
        generation = f"{_GENERATION_PREFIX}{last_seq:012d}-{secrets.token_hex(4)}"
        folder = self._path / generation
        folder.mkdir()
        try:
            files: list[IndexFile] = []
            kinds: list[tuple[IndexKind, Mapping[str, HammingIndex | ExactIndex]]] = [
                ("hamming", hamming),
                ("exact", exact),
                ("regions", regions or {}),
            ]
            for kind, indexes in kinds:
                for signal_type, index in sorted(indexes.items()):
                    if not len(index):
                        continue  # an empty index is made again by the first entry added
                    # Named by position: a plug-in's signal type name need not suit a file name.
                    name = f"{len(files):02d}-{kind}.idx"
                    index.save(folder / name)
                    files.append(IndexFile(signal_type, kind, name, len(index)))
            _fsync_dir(folder)
            manifest = Manifest(
                last_seq=last_seq,
                instance_id=instance_id,
                anchor=anchor,
                indexed_banks=indexed_banks,
                created_at=datetime.now(UTC),
                generation=generation,
                indexes=tuple(files),
                region_banks=region_banks,
            )
            tmp = self._path / (MANIFEST + ".tmp")
            with tmp.open("wb") as f:
                f.write(manifest.to_json())
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(self._path / MANIFEST)
            _fsync_dir(self._path)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self._remove_generations(keep=generation)
        return manifest

    def _remove_generations(self, keep: str) -> None:
        """Remove every generation but `keep`: older ones and those of writers that crashed
        (the caller holds the lock, so no other writer is filling one)."""
        for child in self._path.iterdir():
            if child.name.startswith(_GENERATION_PREFIX) and child.name != keep:
                shutil.rmtree(child, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    """Flush a directory's entries (the names of files just created or renamed) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _checksum(body: Mapping[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a whole number, got {value!r}")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _optional_str(value: object) -> str | None:
    return None if value is None else _str(value)


def _file_name(value: object) -> str:
    """A plain file name: a manifest must never point outside its directory."""
    name = _str(value)
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"not a plain file name: {name!r}")
    return name


def _index_file(value: object) -> IndexFile:
    if not isinstance(value, dict) or set(value) != {"signal_type", "kind", "file", "entries"}:
        raise ValueError(f"not an index entry: {value!r}")
    kind = value["kind"]
    if kind not in ("hamming", "exact", "regions"):
        raise ValueError(f"unknown index kind {kind!r}")
    return IndexFile(
        signal_type=_str(value["signal_type"]),
        kind="hamming" if kind == "hamming" else "regions" if kind == "regions" else "exact",
        file=_file_name(value["file"]),
        entries=_int(value["entries"]),
    )
