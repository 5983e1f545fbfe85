"""A service over a throwaway store for tests, with one key per scope.

    with service_client(tmp_path, backend) as svc:
        r = svc.client.get("/v1/banks", headers=svc.auth("bank:read"))

`backend` is "sqlite" (a file under `tmp_path`: the service opens its own connections, so an
in-memory database would not be shared) or "postgresql" (a database of its own on the test
server; see `lightkeeper.banks.testing`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi.testclient import TestClient

from lightkeeper.banks import BankStore
from lightkeeper.banks.testing import temporary_database
from lightkeeper.service.app import create_app
from lightkeeper.service.keys import SCOPES, create_key
from lightkeeper.service.settings import ServiceSettings


@dataclass
class TestService:
    __test__ = False  # not a pytest test class

    client: TestClient
    store: BankStore
    url: str
    settings: ServiceSettings
    #: A key per scope, by scope name.
    keys: dict[str, str] = field(default_factory=dict)

    def auth(self, scope: str) -> dict[str, str]:
        """Headers carrying the key that holds only `scope`."""
        return {"Authorization": f"Bearer {self.keys[scope]}"}

    def new_key(self, *scopes: str, rate_limit: float | None = None) -> dict[str, str]:
        _, secret = create_key(self.store, "test", scopes, rate_limit=rate_limit)
        return {"Authorization": f"Bearer {secret}"}


@contextmanager
def database_url(tmp_path: Path, backend: str) -> Iterator[str]:
    """A fresh database on `backend` that several connections (processes) can share."""
    if backend == "sqlite":
        yield f"sqlite:///{(tmp_path / 'lightkeeper.db').as_posix()}"
        return
    with temporary_database(backend, migrated=True) as url:
        yield url


@contextmanager
def service_client(
    tmp_path: Path,
    backend: str = "sqlite",
    *,
    rate_limit: float = 1e6,
    **settings: object,
) -> Iterator[TestService]:
    """A running app (lifespan started) on a fresh store, with a key per scope."""
    with database_url(tmp_path, backend) as url, BankStore.open(url) as store:
        keys = {
            scope: create_key(store, f"test-{scope}", [scope], rate_limit=rate_limit)[1]
            for scope in SCOPES
        }
        chosen = ServiceSettings(
            database_url=url,
            index_dir=tmp_path / "index",
            # The vault beside the test's files on every backend (never ./lightkeeper-data).
            vault_dir=tmp_path / "vault",
            vault_key_file=tmp_path / "vault.key",
            follow_interval=0.05,
            **settings,  # type: ignore[arg-type]
        )
        with TestClient(create_app(chosen), raise_server_exceptions=False) as client:
            yield TestService(client, store, url, chosen, keys)
