"""Fixtures shared by the reporting tests (test_reports.py, test_reporting_races.py), a pytest
plugin that those modules load with ``pytest_plugins = ("reporting_fixtures",)``: a store on
SQLite and on PostgreSQL, its vault, the NCMEC contract server, a client of it and a senior
reviewer. The helpers they use are in reporting_helpers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lightkeeper.actions.vault import Vault
from lightkeeper.actions.vault_crypto import Keyring
from lightkeeper.banks import BankStore
from lightkeeper.banks.testing import backends, temporary_database
from lightkeeper.reporting.ncmec_client import CyberTiplineClient
from lightkeeper.reporting.ncmec_contract import ContractServer
from lightkeeper.review.accounts import Reviewer, create_reviewer
from reporting_helpers import PASSWORD, USER, make_client


@pytest.fixture(params=backends())
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        (tmp_path / "data").mkdir()
        yield f"sqlite:///{tmp_path / 'data' / 'lightkeeper.db'}"
        return
    with temporary_database("postgresql", migrated=True) as url:
        yield url


@pytest.fixture
def store(store_url: str) -> Iterator[BankStore]:
    with BankStore.open(store_url) as opened:
        opened.create_bank("known", kind="block")
        yield opened


@pytest.fixture
def vault(store: BankStore, tmp_path: Path) -> Vault:
    return Vault(store, tmp_path / "vault", Keyring.from_file(tmp_path / "vault.key"))


@pytest.fixture
def server() -> Iterator[ContractServer]:
    with ContractServer(USER, PASSWORD) as running:
        yield running


@pytest.fixture
def client(server: ContractServer) -> CyberTiplineClient:
    return make_client(server)


@pytest.fixture
def ana(store: BankStore) -> Reviewer:
    return create_reviewer(store, "ana", role="senior")
