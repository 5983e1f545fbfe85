"""The service's settings: each comes from one environment variable, reaches the workers
through it, and a bad value is refused before anything starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import uvicorn
from click.testing import CliRunner

from lightkeeper.banks import BankStore
from lightkeeper.cli.main import main
from lightkeeper.matching import Matcher
from lightkeeper.service.settings import (
    FOLLOW_INTERVAL,
    HOT_PATH,
    INDEX_DIR,
    INDEX_THREADS,
    MAX_UPLOAD_BYTES,
    PAIRED_TABLES,
    SETTINGS,
    ServiceSettings,
)


def test_index_threads_default_to_none_and_round_trip_through_the_environment() -> None:
    assert ServiceSettings.from_env({}).index_threads is None
    assert INDEX_THREADS.env not in ServiceSettings().to_env()
    settings = ServiceSettings(index_threads=3)
    assert ServiceSettings.from_env(settings.to_env()).index_threads == 3


def test_paired_tables_are_on_by_default_and_reach_the_workers() -> None:
    assert ServiceSettings.from_env({}).paired_tables is True
    off = ServiceSettings.from_env({PAIRED_TABLES.env: "0"})
    assert off.paired_tables is False
    assert ServiceSettings.from_env(off.to_env()).paired_tables is False
    with pytest.raises(ValueError, match=PAIRED_TABLES.env):
        ServiceSettings.from_env({PAIRED_TABLES.env: "fast"})


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5"])
def test_a_bad_index_threads_value_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=INDEX_THREADS.env):
        ServiceSettings.from_env({INDEX_THREADS.env: bad})


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--index-threads", "0"], {}), ([], {INDEX_THREADS.env: "none"})],
)
def test_serve_refuses_a_bad_thread_count_before_starting(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        main, ["serve", "--db", f"sqlite:///{tmp_path}/lk.db", *args], env=env
    )
    assert result.exit_code == 2, result.output
    assert "index-threads" in result.output or INDEX_THREADS.env in result.output


def test_a_matcher_refuses_a_thread_cap_below_one() -> None:
    with BankStore.open("sqlite://") as store:
        with pytest.raises(ValueError, match="search_threads"):
            Matcher(store, search_threads=0)
        capped = Matcher(store, search_threads=1)
        assert capped.follower.search("pdq", [bytes(32)] * 40, 31) == [[]] * 40


def test_serve_hands_its_workers_the_settings_it_has_no_option_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A setting without an option of serve (paired tables, the hot path, the follow interval)
    # or an option left unset (the index directory) keeps what the environment says; an option
    # given wins over the environment. Workers read only the environment serve leaves them,
    # which is what the stand-in for uvicorn records here instead of starting them. serve
    # writes them into this process's environment: it is put back as it was, so that no later
    # test in this process inherits them.
    workers_env: dict[str, str] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: workers_env.update(os.environ))
    env: dict[str, str | None] = {setting.env: None for setting in SETTINGS}
    env |= {
        PAIRED_TABLES.env: "0",
        HOT_PATH.env: "0",
        FOLLOW_INTERVAL.env: "0.5",
        INDEX_DIR.env: str(tmp_path / "snapshots"),
        MAX_UPLOAD_BYTES.env: "1000",
    }
    db = f"sqlite:///{tmp_path}/lk.db"
    before = dict(os.environ)
    try:
        result = CliRunner().invoke(main, ["serve", "--db", db, "--max-upload-mb", "2"], env=env)
    finally:
        os.environ.clear()
        os.environ.update(before)
    assert result.exit_code == 0, result.output
    workers = ServiceSettings.from_env(workers_env)
    assert (workers.paired_tables, workers.hot_path, workers.follow_interval) == (False, False, 0.5)
    assert workers.index_dir == tmp_path / "snapshots"
    assert workers.max_upload_bytes == 2 * 1024 * 1024
    assert workers.database_url == db
