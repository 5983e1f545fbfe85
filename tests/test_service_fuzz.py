"""Schemathesis over the whole OpenAPI document: no input, valid or not, gets a 5xx.

Every operation the service documents (the HMA-compatible ones included) is called with
requests generated from its schema — valid ones, and ones that break it — with an admin key
so that they reach the handlers, and without a key. Answers must never be a server error;
successful answers must match the documented response schema; and without a key nothing
but the public probes may succeed.

Bounded and reproducible: a fixed number of examples per operation, derandomized, no
example database, no deadline (the machine is shared).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from lightkeeper.banks.testing import backends
from lightkeeper.service import ServiceSettings, create_app
from lightkeeper.service.testing import TestService, service_client

#: Examples per operation; PostgreSQL gets fewer (the same code, a slower store).
EXAMPLES = {"sqlite": 20, "postgresql": 6}
UNAUTHENTICATED_EXAMPLES = 5
PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/status", "/status/live", "/openapi.json", "/docs", "/redoc"}
)
# The document of an app that is never started: generating requests needs no store.
SCHEMA = schemathesis.openapi.from_dict(
    create_app(ServiceSettings(database_url="sqlite://")).openapi()
)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


def seed(svc: TestService) -> dict[str, object]:
    """Two banks with entries, and an import, (re)made before each operation is fuzzed (an
    earlier one may have deleted them); returns path parameters that name them, so that
    generated requests reach existing records as well as missing ones."""
    write = svc.auth("bank:write")
    entries = [{"signal_type": "md5", "value": f"{i:032x}"} for i in range(1, 6)]
    entries.append({"signal_type": "pdq", "value": "0" * 64})
    for name, kind in (("0", "block"), ("a", "allow")):
        svc.client.post("/v1/banks", json={"name": name, "kind": kind}, headers=write)
        svc.client.patch(f"/v1/banks/{name}", json={"kind": kind, "enabled": True}, headers=write)
        svc.client.post(f"/v1/banks/{name}/entries", json={"entries": entries}, headers=write)
    started = svc.client.post("/v1/banks/0/imports", content=b"f" * 32, headers=write).json()
    page = svc.client.get("/v1/banks/0/entries", headers=svc.auth("bank:read")).json()
    entry_id = page["entries"][1]["id"]
    return {
        "name": "0",
        "bank_name": "0",
        "entry_id": entry_id,
        "content_id": entry_id,
        "import_id": started["id"],
    }


def cases(operation: Any, mode: GenerationMode, known: dict[str, object]) -> st.SearchStrategy[Any]:
    """Generated requests; when the path has parameters, half of them on seeded records."""
    random = operation.as_strategy(mode)
    fixed = {p.name: known[p.name] for p in operation.path_parameters if p.name in known}
    if not fixed:
        return random  # type: ignore[no-any-return]
    return st.one_of(random, operation.as_strategy(mode, path_parameters=fixed))


@pytest.fixture(scope="module", params=backends())
def svc(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestService]:
    with service_client(tmp_path_factory.mktemp("fuzz"), request.param) as service:
        yield service


def send(svc: TestService, case: Any, headers: dict[str, str]) -> Any:
    """Send the case through the service's own client, byte for byte as schemathesis
    serialises it for `requests` (multipart boundaries, raw bodies and all)."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
    prepared = requests.Request(
        method=kwargs["method"],
        url=kwargs["url"],
        headers=kwargs.get("headers"),
        params=kwargs.get("params"),
        data=kwargs.get("data"),
        json=kwargs.get("json"),
        files=kwargs.get("files"),
        cookies=kwargs.get("cookies"),
    ).prepare()
    body = prepared.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    return svc.client.request(
        prepared.method or kwargs["method"],
        prepared.url or kwargs["url"],
        content=body,
        headers=dict(prepared.headers),
    )


def describe(case: Any, response: Any) -> str:
    """What to reproduce a failure with: the answer, and the request as a curl command."""
    answer = f"{response.status_code} {response.text[:500]}"
    return f"{case.operation.label}: {answer}\n{case.as_curl_command()}"


def backend_of(request: pytest.FixtureRequest) -> str:
    return str(request.node.callspec.params["svc"])


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_no_server_error_with_an_admin_key(
    svc: TestService, operation: Any, request: pytest.FixtureRequest
) -> None:
    admin = svc.keys["admin"]
    headers = {"Authorization": f"Bearer {admin}", "X-API-Key": admin}
    known = seed(svc)
    strategy = st.one_of(
        cases(operation, GenerationMode.POSITIVE, known),
        cases(operation, GenerationMode.NEGATIVE, known),
    )

    @given(case=strategy)
    @fuzz_settings(EXAMPLES[backend_of(request)])
    def run(case: Any) -> None:
        response = send(svc, case, headers)
        assert response.status_code < 500, describe(case, response)
        checks = [not_a_server_error]
        if 200 <= response.status_code < 300:
            checks.append(response_schema_conformance)
        case.validate_response(response, checks=checks)

    run()


@pytest.fixture(scope="module")
def sqlite_svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestService]:
    """No store is consulted before a key is checked: one backend is enough without keys."""
    with service_client(tmp_path_factory.mktemp("fuzz-no-key")) as service:
        yield service


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_nothing_succeeds_without_a_key(sqlite_svc: TestService, operation: Any) -> None:
    svc = sqlite_svc

    @given(case=cases(operation, GenerationMode.POSITIVE, seed(svc)))
    @fuzz_settings(UNAUTHENTICATED_EXAMPLES)
    def run(case: Any) -> None:
        # Whatever security headers the case generated are dropped: no key at all.
        case.headers = {
            k: v
            for k, v in (case.headers or {}).items()
            if k.lower() not in ("authorization", "x-api-key")
        }
        response = send(svc, case, {})
        assert response.status_code < 500, describe(case, response)
        if operation.path not in PUBLIC_PATHS:
            assert response.status_code >= 400, describe(case, response)

    run()
