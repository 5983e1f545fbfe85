"""The service's settings: each comes from one environment variable, reaches the workers
through it, and a bad value is refused before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from lightkeeper.banks import BankStore
from lightkeeper.cli.main import main
from lightkeeper.matching import Matcher
from lightkeeper.service.settings import INDEX_THREADS, PAIRED_TABLES, ServiceSettings


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
