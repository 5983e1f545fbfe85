"""The service's settings, each from one environment variable with a documented default.

`lightkeeper serve` sets them from its options; worker processes started by uvicorn read the
same environment, so every worker runs with the same settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from lightkeeper.banks.settings import (
    DATABASE_URL,
    DEFAULT_DATA_DIR,
    resolve_database_url,
    sqlite_path,
)
from lightkeeper.banks.settings import Setting as Setting
from lightkeeper.media.decode import DEFAULT_LIMITS, MediaLimits

INDEX_DIR = Setting(
    "index_dir",
    "LIGHTKEEPER_INDEX_DIR",
    "index/ beside an SQLite store, else ./lightkeeper-data/index",
    "Where index snapshots are kept (each worker loads one, then follows the change log).",
)
MAX_UPLOAD_BYTES = Setting(
    "max_upload_bytes",
    "LIGHTKEEPER_MAX_UPLOAD_BYTES",
    str(64 * 1024 * 1024),
    "Largest request body accepted, in bytes (larger ones get 413 before being read).",
)
MAX_PIXELS = Setting(
    "max_pixels",
    "LIGHTKEEPER_MAX_PIXELS",
    str(DEFAULT_LIMITS.max_pixels),
    "Largest image accepted, in pixels (width x height), checked before decoding.",
)
RATE_LIMIT = Setting(
    "rate_limit",
    "LIGHTKEEPER_RATE_LIMIT",
    "100",
    "Requests per second allowed per API key when the key sets none (all workers together).",
)
WORKERS = Setting(
    "workers",
    "LIGHTKEEPER_WORKERS",
    "1",
    "Worker processes; each enforces its share of every key's rate limit.",
)
INDEX_THREADS = Setting(
    "index_threads",
    "LIGHTKEEPER_INDEX_THREADS",
    "every CPU the process may use",
    "Most threads one batched lookup starts in a worker; cap it when many workers share the "
    "machine's CPUs.",
)
FOLLOW_INTERVAL = Setting(
    "follow_interval",
    "LIGHTKEEPER_FOLLOW_INTERVAL",
    "0.2",
    "Seconds between reads of the change log (bank changes reach every worker within it).",
)

HOT_PATH = Setting(
    "hot_path",
    "LIGHTKEEPER_HOT_PATH",
    "1",
    "1: answer well-formed single lookups (GET /v1/lookup, HMA's GET /m/raw_lookup) on the "
    "hot path (same answers, less CPU); 0: off.",
)

PAIRED_TABLES = Setting(
    "paired_tables",
    "LIGHTKEEPER_PAIRED_TABLES",
    "1",
    "1: each worker's PDQ index keeps paired tables: single lookups 3.5 to 5 times and "
    "batches up to twice as fast at 13.4 M hashes, for 137 bytes per hash instead of 89 "
    "(1.84 GB against 1.19 GB at 13.4 M); 0: the compact index.",
)

ACTIONS = Setting(
    "actions",
    "LIGHTKEEPER_ACTIONS",
    "1",
    "1: act on matches (policy, vault, cases, webhooks); 0: match only.",
)

SETTINGS: tuple[Setting, ...] = (
    DATABASE_URL,
    INDEX_DIR,
    MAX_UPLOAD_BYTES,
    MAX_PIXELS,
    RATE_LIMIT,
    WORKERS,
    INDEX_THREADS,
    FOLLOW_INTERVAL,
    HOT_PATH,
    PAIRED_TABLES,
    ACTIONS,
)

#: The vault's own settings (declared in `lightkeeper.actions.vault` and `vault_crypto`).
VAULT_DIR_ENV = "LIGHTKEEPER_VAULT_DIR"
VAULT_KEY_FILE_ENV = "LIGHTKEEPER_VAULT_KEY_FILE"

#: Most hashes in one batched lookup.
MAX_BATCH = 10_000


@dataclass(frozen=True)
class ServiceSettings:
    database_url: str = field(default_factory=resolve_database_url)
    index_dir: Path | None = None
    max_upload_bytes: int = int(MAX_UPLOAD_BYTES.default)
    max_pixels: int = DEFAULT_LIMITS.max_pixels
    rate_limit: float = float(RATE_LIMIT.default)
    workers: int = 1
    #: Most threads one batched index search starts; None: every CPU the process may use.
    index_threads: int | None = None
    follow_interval: float = float(FOLLOW_INTERVAL.default)
    hot_path: bool = True
    #: Paired tables in the PDQ index (`HammingIndex(paired=True)`).
    paired_tables: bool = True
    #: Act on matches: the policy, the vault, cases and webhooks (`lightkeeper.actions`).
    actions: bool = True
    #: The vault's directory and master key file; None: the vault's own settings
    #: (``LIGHTKEEPER_VAULT_DIR``, ``LIGHTKEEPER_VAULT_KEY[_FILE]``, else the data directory).
    vault_dir: Path | None = None
    vault_key_file: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        env = os.environ if environ is None else environ

        def get(setting: Setting) -> str | None:
            value = env.get(setting.env)
            return value if value else None

        out = cls(database_url=resolve_database_url(None, env))
        changes: dict[str, object] = {}
        if (v := get(INDEX_DIR)) is not None:
            changes["index_dir"] = Path(v)
        if v := env.get(VAULT_DIR_ENV):
            changes["vault_dir"] = Path(v)
        if v := env.get(VAULT_KEY_FILE_ENV):
            changes["vault_key_file"] = Path(v)
        for setting, kind in (
            (MAX_UPLOAD_BYTES, int),
            (MAX_PIXELS, int),
            (RATE_LIMIT, float),
            (WORKERS, int),
            (INDEX_THREADS, _positive),
            (FOLLOW_INTERVAL, float),
            (HOT_PATH, _flag),
            (PAIRED_TABLES, _flag),
            (ACTIONS, _flag),
        ):
            if (v := get(setting)) is not None:
                try:
                    changes[setting.name] = kind(v)
                except ValueError:
                    raise ValueError(f"{setting.env}={v!r} is not a valid value") from None
        return replace(out, **changes)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The environment that gives worker processes these settings."""
        env = {
            DATABASE_URL.env: self.database_url,
            MAX_UPLOAD_BYTES.env: str(self.max_upload_bytes),
            MAX_PIXELS.env: str(self.max_pixels),
            RATE_LIMIT.env: str(self.rate_limit),
            WORKERS.env: str(self.workers),
            FOLLOW_INTERVAL.env: str(self.follow_interval),
            HOT_PATH.env: "1" if self.hot_path else "0",
            PAIRED_TABLES.env: "1" if self.paired_tables else "0",
        }
        if self.index_dir is not None:
            env[INDEX_DIR.env] = str(self.index_dir)
        if self.index_threads is not None:
            env[INDEX_THREADS.env] = str(self.index_threads)
        env[ACTIONS.env] = "1" if self.actions else "0"
        if self.vault_dir is not None:
            env[VAULT_DIR_ENV] = str(self.vault_dir)
        if self.vault_key_file is not None:
            env[VAULT_KEY_FILE_ENV] = str(self.vault_key_file)
        return env

    @property
    def snapshot_dir(self) -> Path | None:
        """Where index snapshots go: None for an in-memory store (tests)."""
        if self.index_dir is not None:
            return self.index_dir
        if self.database_url.startswith("sqlite"):
            path = sqlite_path(self.database_url)
            return None if path is None else path.parent / "index"
        return DEFAULT_DATA_DIR / "index"

    @property
    def media_limits(self) -> MediaLimits:
        return replace(
            DEFAULT_LIMITS,
            max_pixels=self.max_pixels,
            max_bytes=min(DEFAULT_LIMITS.max_bytes, self.max_upload_bytes),
        )


def _flag(value: str) -> bool:
    if value in ("1", "0"):
        return value == "1"
    raise ValueError(value)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number
