"""``lightkeeper keys``: an operator creates, lists and revokes the service's API keys from the
command line, against the same store the service reads."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lightkeeper.banks.testing import backends
from lightkeeper.cli.exit_codes import ExitCode
from lightkeeper.cli.main import main
from lightkeeper.service.keys import KEY_PREFIX, SCOPES
from lightkeeper.service.testing import TestService, service_client


def lk(*args: str, db: str) -> Result:
    result = CliRunner().invoke(main, [*args, "--db", db])
    assert "Traceback" not in result.output
    return result


@pytest.fixture(params=backends())
def svc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestService]:
    with service_client(tmp_path, request.param) as service:
        yield service


def status_with(svc: TestService, secret: str) -> int:
    response = svc.client.get("/v1/index/status", headers={"Authorization": f"Bearer {secret}"})
    return response.status_code


def test_a_created_key_is_printed_once_and_authenticates(svc: TestService) -> None:
    created = lk("keys", "create", "partner-a", "--scope", "lookup", db=svc.url)
    assert created.exit_code == 0, created.output
    [secret] = created.stdout.splitlines()  # the key alone on stdout, for `$(…)`
    assert secret.startswith(KEY_PREFIX) and len(secret) > 40
    assert "cannot be shown again" in created.stderr
    assert secret not in created.stderr

    assert status_with(svc, secret) == 200
    # It holds the scope asked for and nothing more.
    banks = svc.client.get("/v1/banks", headers={"X-API-Key": secret})
    assert banks.status_code == 403


def test_create_with_several_scopes_a_rate_limit_and_json(svc: TestService) -> None:
    created = lk(
        "keys",
        "create",
        "curator",
        "--scope",
        "bank:read",
        "--scope",
        "bank:write",
        "--rate-limit",
        "5",
        "--json",
        db=svc.url,
    )
    assert created.exit_code == 0, created.output
    record = json.loads(created.stdout)
    assert record["scopes"] == ["bank:read", "bank:write"]
    assert record["rate_limit"] == 5
    assert record["revoked_at"] is None
    assert record["key"].startswith(record["prefix"])
    headers = {"Authorization": f"Bearer {record['key']}"}
    assert svc.client.get("/v1/banks", headers=headers).status_code == 200


def test_list_shows_prefixes_never_keys(svc: TestService) -> None:
    secret = lk("keys", "create", "partner-b", "--scope", "match", db=svc.url).stdout.strip()
    listed = lk("keys", "list", db=svc.url)
    assert listed.exit_code == 0, listed.output
    assert secret not in listed.output
    for known in svc.keys.values():
        assert known not in listed.output
    [line] = [row for row in listed.stdout.splitlines() if "partner-b" in row]
    assert secret[:10] in line and "match" in line and "active" in line
    assert len(listed.stdout.splitlines()) == len(SCOPES) + 1  # the helper's keys, and ours

    as_json = lk("keys", "list", "--json", db=svc.url)
    rows = [json.loads(row) for row in as_json.stdout.splitlines()]
    assert secret not in as_json.output
    assert all("key" not in row and "key_hash" not in row for row in rows)
    [ours] = [row for row in rows if row["name"] == "partner-b"]
    assert ours["prefix"] == secret[:10]


def test_a_revoked_key_stops_working(svc: TestService) -> None:
    created = lk("keys", "create", "leaver", "--scope", "lookup", "--json", db=svc.url)
    record = json.loads(created.stdout)
    assert status_with(svc, record["key"]) == 200

    revoked = lk("keys", "revoke", str(record["id"]), db=svc.url)
    assert revoked.exit_code == 0, revoked.output
    assert "revoked" in revoked.stdout
    deadline = time.monotonic() + 1.5  # the service caches keys for a second
    while status_with(svc, record["key"]) != 401:
        assert time.monotonic() < deadline, "revoked key still accepted"
        time.sleep(0.05)
    listed = lk("keys", "list", db=svc.url).stdout
    assert "revoked" in next(row for row in listed.splitlines() if "leaver" in row)
    # Revoking twice is harmless; an unknown id is the user's error.
    assert lk("keys", "revoke", str(record["id"]), db=svc.url).exit_code == 0
    missing = lk("keys", "revoke", "9999", db=svc.url)
    assert missing.exit_code == ExitCode.INPUT_ERRORS
    assert "no API key with id 9999" in missing.output


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "create", "x", "--scope", "superuser"),
        ("keys", "create", "x"),
        ("keys", "create", "x", "--scope", "lookup", "--rate-limit", "0"),
        ("keys", "revoke", "0"),
        ("keys", "revoke", "abc"),
    ],
    ids=["unknown-scope", "no-scope", "zero-rate", "id-zero", "id-not-a-number"],
)
def test_bad_arguments_are_usage_errors(tmp_path: Path, args: tuple[str, ...]) -> None:
    db = str(tmp_path / "keys.db")
    result = lk(*args, db=db)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "Usage:" in result.output
    # Nothing was created.
    assert lk("keys", "list", db=db).stdout == ""
