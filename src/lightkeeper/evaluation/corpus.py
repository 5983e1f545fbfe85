"""Photo sets: where the evaluation's photos come from, and rebuilding the shared corpus.

A corpus is a directory whose subdirectories are photo sets (``A_deb_terrestrial``,
``A_deb_astro`` …); a directory with photos but no such subdirectory is one set, named
after it. Sets are never pooled: false matches depend on how alike a set's photos are (the
astronomy set is a deliberate stress case), so every figure is given per set.

The shared corpus is rebuilt from Debian and PyPI packages by the project's
``shared/corpus/build_from_manifest.py`` (``apt-get download``, so ``apt-get update``
must have run once on the machine); `ensure_corpus` runs it when files are missing.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from lightkeeper.errors import InputError

__all__ = [
    "PHOTO_SUFFIXES",
    "PhotoSet",
    "default_manifest",
    "ensure_corpus",
    "find_sets",
    "missing_files",
]

#: File name endings read as photos (compared in lower case).
PHOTO_SUFFIXES: Final = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif"}
)

#: Environment variable naming the corpus manifest, when not given explicitly.
MANIFEST_ENV: Final = "LIGHTKEEPER_CORPUS_MANIFEST"


@dataclass(frozen=True)
class PhotoSet:
    """A named set of photos, in sorted path order (a photo's index is its position)."""

    name: str
    photos: tuple[Path, ...]


def _photos_in(directory: Path) -> tuple[Path, ...]:
    found = [
        Path(root) / name
        for root, dirs, files in os.walk(directory)
        for name in files
        if not name.startswith(".") and Path(name).suffix.lower() in PHOTO_SUFFIXES
    ]
    return tuple(sorted(found))


def find_sets(root: Path, names: Sequence[str] | None = None) -> list[PhotoSet]:
    """The photo sets under `root`, sorted by name, or only those in `names` (in that order).

    Each subdirectory holding photos (searched recursively) is a set; photos directly in
    `root` make one more set, named after `root`, so a plain folder of photos works too.
    `InputError` when `root` is not a directory, holds no photo, or lacks a named set.
    """
    if not root.is_dir():
        raise InputError(f"{root}: not a directory of photos")
    sets: list[PhotoSet] = []
    loose = tuple(
        sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
    )
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        photos = _photos_in(child)
        if photos:
            sets.append(PhotoSet(child.name, photos))
    if loose:
        sets.append(PhotoSet(root.resolve().name, loose))
    if not sets:
        raise InputError(f"{root}: no photos found (expected subdirectories of photos)")
    if names is None:
        return sets
    by_name = {s.name: s for s in sets}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise InputError(
            f"{root}: no photo set called {', '.join(unknown)} (found: {', '.join(by_name)})"
        )
    return [by_name[n] for n in names]


def default_manifest() -> Path | None:
    """The shared corpus manifest: ``$LIGHTKEEPER_CORPUS_MANIFEST``, else
    ``../shared/corpus/manifest.csv`` beside the working directory or beside this checkout."""
    configured = os.environ.get(MANIFEST_ENV)
    if configured:
        return Path(configured)
    checkout = Path(__file__).resolve().parents[3]  # src/lightkeeper/evaluation -> repo
    for base in (Path.cwd(), checkout):
        candidate = base.parent / "shared" / "corpus" / "manifest.csv"
        if candidate.is_file():
            return candidate
    return None


def _manifest_rows(manifest: Path) -> list[tuple[str, str]]:
    try:
        with manifest.open(newline="", encoding="utf-8") as handle:
            return [(row["set"], row["file"]) for row in csv.DictReader(handle)]
    except (OSError, KeyError, csv.Error) as exc:
        raise InputError(f"{manifest}: not a readable corpus manifest ({exc})") from exc


def missing_files(root: Path, manifest: Path) -> list[str]:
    """The manifest's files (``set/file``) not present under `root`."""
    return [
        f"{set_name}/{name}"
        for set_name, name in _manifest_rows(manifest)
        if not (root / set_name / name).is_file()
    ]


def ensure_corpus(root: Path, manifest: Path) -> int:
    """Build the corpus into `root` with the manifest's builder when files are missing.

    Returns how many manifest files are still missing afterwards (a package that moved on
    to a new version may drop a few; the builder reports them). `InputError` when the
    builder fails or builds nothing, with what to do about it.
    """
    if not missing_files(root, manifest):
        return 0
    builder = manifest.parent / "build_from_manifest.py"
    if not builder.is_file():
        raise InputError(f"{builder}: the corpus builder is missing")
    print(f"building the photo corpus into {root} (apt and pip downloads) …", file=sys.stderr)
    root.mkdir(parents=True, exist_ok=True)
    # Its report (files rebuilt, any MISSING or CHANGED) goes to stderr: stdout is results.
    done = subprocess.run(
        [sys.executable, str(builder), str(manifest), str(root)],
        check=False,
        capture_output=True,
        text=True,
    )
    sys.stderr.write(done.stdout + done.stderr)
    still = missing_files(root, manifest)
    if done.returncode != 0 or len(still) == len(_manifest_rows(manifest)):
        raise InputError(
            f"could not build the photo corpus into {root} (builder exit {done.returncode}); "
            "it needs apt-get (run `apt-get update` once, as root), dpkg-deb and pip"
        )
    return len(still)
