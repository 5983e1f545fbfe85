"""Where the bank store lives: one setting, declared once with its default and help.

The URL comes, in order, from the caller (`--db URL` on the command line), from the
environment variable ``LIGHTKEEPER_DATABASE_URL``, or from the default: an SQLite file under
``./lightkeeper-data/``. PostgreSQL is one URL away (``postgresql+psycopg://…``).

A value without ``://`` is taken as a path to an SQLite file, so that ``--db banks.db`` does
what a user expects instead of failing on a missing URL scheme.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url


@dataclass(frozen=True)
class Setting:
    """One configurable value: its name, the environment variable that sets it, its default."""

    name: str
    env: str
    default: str
    help: str


DEFAULT_DATA_DIR = Path("lightkeeper-data")
DEFAULT_DB_FILE = DEFAULT_DATA_DIR / "lightkeeper.db"

DATABASE_URL = Setting(
    name="database_url",
    env="LIGHTKEEPER_DATABASE_URL",
    default=f"sqlite:///{DEFAULT_DB_FILE.as_posix()}",
    help=(
        "SQLAlchemy URL of the bank store (sqlite:///path.db or postgresql+psycopg://…); "
        "a bare path means an SQLite file. Default: ./lightkeeper-data/lightkeeper.db"
    ),
)

#: Every setting of the bank store, for docs and ``--help`` texts.
SETTINGS: tuple[Setting, ...] = (DATABASE_URL,)


def resolve_database_url(url: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The database URL to use: `url` if given, else the environment, else the default."""
    env = os.environ if environ is None else environ
    chosen = url or env.get(DATABASE_URL.env) or DATABASE_URL.default
    if "://" not in chosen:
        chosen = f"sqlite:///{Path(chosen).as_posix()}"
    return chosen


def sqlite_path(url: str) -> Path | None:
    """The file an SQLite URL points at; None for in-memory SQLite and for other databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)
