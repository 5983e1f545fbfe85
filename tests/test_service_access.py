"""Who may call what on the HTTP service: API keys, scopes, revocation, and the rate, size
and pixel limits that every caller meets.

The route tests enumerate the application's own routes (and its OpenAPI document), so that a
route added later — the HMA-compatible ones included — is held to the same rules without a
change here.
"""

from __future__ import annotations

import hashlib
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from PIL import ImageFile

from lightkeeper.banks.testing import backends
from lightkeeper.hashing import hash_bytes
from lightkeeper.service.access import SCOPE_KEY
from lightkeeper.service.keys import SCOPES, list_keys, revoke_key
from lightkeeper.service.testing import TestService, service_client

#: Routes anyone may call: the health probes, and FastAPI's API documentation.
PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/status",
        "/status/live",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
    }
)
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


# ------------------------------------------------------------------------------- helpers


def operations(app: FastAPI) -> list[tuple[str, str, str | None]]:
    """Every (method, path template, required scope) the application serves.

    From the OpenAPI document (which states each route's scope), plus any route hidden from
    it, which then states no scope at all and must be closed to everyone.
    """
    found: dict[tuple[str, str], str | None] = {}
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                found[(method.upper(), path)] = operation.get(SCOPE_KEY)
    for method, path in _served_routes(app):
        found.setdefault((method, path), None)
    return sorted((method, path, scope) for (method, path), scope in found.items())


def _served_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before routers were included lazily
        routes: list[Any] = list(app.routes)
    else:
        routes = list(iter_route_contexts(app.routes))
    for route in routes:
        path = getattr(route, "path", None)
        for method in getattr(route, "methods", None) or ():
            if path is not None and method != "HEAD":
                yield method, path


def concrete(app: FastAPI, path: str) -> str:
    """`path` with every parameter filled with a plausible value of its declared type."""
    types: dict[str, str] = {}
    for item in app.openapi()["paths"].get(path, {}).values():
        for param in item.get("parameters", []) if isinstance(item, dict) else []:
            if param.get("in") == "path":
                types[param["name"]] = param.get("schema", {}).get("type", "string")
    out = path
    while "{" in out:
        start, end = out.index("{"), out.index("}")
        name = out[start + 1 : end].split(":")[0]
        out = (
            out[:start]
            + ("1" if types.get(name) == "integer" else "no-such-thing")
            + out[end + 1 :]
        )
    return out


def protected(app: FastAPI) -> list[tuple[str, str, str | None]]:
    return [op for op in operations(app) if op[1] not in PUBLIC_PATHS]


def call(svc: TestService, method: str, path: str, headers: dict[str, str] | None = None) -> Any:
    return svc.client.request(method, concrete(svc.client.app, path), headers=headers or {})  # type: ignore[arg-type]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.02)


def tiny_png_claiming(width: int, height: int) -> bytes:
    """A valid-looking PNG of a few dozen bytes whose header claims `width` x `height`: the
    shape of a decompression bomb, without the payload."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(params=backends())
def svc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestService]:
    with service_client(tmp_path, request.param) as service:
        yield service


@pytest.fixture
def sqlite_svc(tmp_path: Path) -> Iterator[TestService]:
    with service_client(tmp_path) as service:
        yield service


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Records every image Pillow decodes (loads the pixels of) during the test."""
    loaded: list[object] = []
    original = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile) -> Any:
        loaded.append(self)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return loaded


# ------------------------------------------------------------------------------- routes


def test_the_route_list_is_complete(sqlite_svc: TestService) -> None:
    """The enumeration the other tests rely on sees every /v1 route the issue names."""
    served = {(method, path) for method, path, _ in operations(sqlite_svc.client.app)}  # type: ignore[arg-type]
    for expected in [
        ("POST", "/v1/hash"),
        ("POST", "/v1/match"),
        ("GET", "/v1/lookup"),
        ("POST", "/v1/lookup"),
        ("POST", "/v1/banks"),
        ("DELETE", "/v1/banks/{name}/entries/{entry_id}"),
        ("POST", "/v1/banks/{name}/imports"),
        ("GET", "/v1/imports/{import_id}"),
        ("GET", "/v1/audit"),
        ("GET", "/metrics"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
    ]:
        assert expected in served


def test_every_route_names_a_known_scope_or_is_public(sqlite_svc: TestService) -> None:
    app: FastAPI = sqlite_svc.client.app  # type: ignore[assignment]
    for method, path, scope in protected(app):
        assert scope in SCOPES, f"{method} {path} states no scope ({scope!r})"


def test_public_routes_need_no_key(sqlite_svc: TestService) -> None:
    app: FastAPI = sqlite_svc.client.app  # type: ignore[assignment]
    public = [op for op in operations(app) if op[1] in PUBLIC_PATHS]
    assert {path for _, path, _ in public} >= {"/healthz", "/readyz", "/openapi.json"}
    for method, path, _ in public:
        response = call(sqlite_svc, method, path)
        assert response.status_code in (200, 503), (method, path, response.text)


def test_no_key_is_401_on_every_other_route(sqlite_svc: TestService) -> None:
    app: FastAPI = sqlite_svc.client.app  # type: ignore[assignment]
    for method, path, _ in protected(app):
        response = call(sqlite_svc, method, path)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer lk_this-key-was-never-issued"},
        {"X-API-Key": "lk_this-key-was-never-issued"},
    ],
    ids=["bearer", "x-api-key"],
)
def test_an_unknown_key_is_401_on_every_route(
    sqlite_svc: TestService, headers: dict[str, str]
) -> None:
    app: FastAPI = sqlite_svc.client.app  # type: ignore[assignment]
    for method, path, _ in protected(app):
        response = call(sqlite_svc, method, path, headers)
        assert response.status_code == 401, (method, path, response.text)


def test_a_key_of_the_wrong_scope_is_403_on_every_route(sqlite_svc: TestService) -> None:
    app: FastAPI = sqlite_svc.client.app  # type: ignore[assignment]
    checked = 0
    for method, path, required in protected(app):
        for scope in SCOPES:
            if scope in (required, "admin"):
                continue
            response = call(sqlite_svc, method, path, sqlite_svc.auth(scope))
            assert response.status_code == 403, (scope, method, path, response.text)
            if path.startswith("/v1/"):  # HMA's routes answer errors in HMA's shape
                assert response.json()["error"]["code"] == "forbidden"
            checked += 1
    assert checked > 50


def test_the_named_scope_and_admin_pass_every_scope_check(svc: TestService) -> None:
    app: FastAPI = svc.client.app  # type: ignore[assignment]
    for method, path, required in protected(app):
        assert required is not None
        for scope in {required, "admin"}:
            response = call(svc, method, path, svc.auth(scope))
            # Past the check the request may still be wrong (no body, no such bank …).
            assert response.status_code not in (401, 403), (scope, method, path, response.text)
            assert response.status_code < 500, (scope, method, path, response.text)


def test_both_header_forms_carry_a_key(sqlite_svc: TestService) -> None:
    secret = sqlite_svc.keys["lookup"]
    for headers in (
        {"Authorization": f"Bearer {secret}"},
        {"authorization": f"bearer {secret}"},
        {"X-API-Key": secret},
    ):
        response = sqlite_svc.client.get("/v1/index/status", headers=headers)
        assert response.status_code == 200, headers
    for wrong in (
        {"Authorization": f"Basic {secret}"},
        {"Authorization": secret},
        {"Authorization": "Bearer "},
        {"X-API-Key": " "},
        {"X-API-Key": secret[:-1]},
    ):
        response = sqlite_svc.client.get("/v1/index/status", headers=wrong)
        assert response.status_code == 401, wrong


def test_a_revoked_key_is_refused_within_a_second(svc: TestService) -> None:
    headers = svc.new_key("lookup", "bank:read")
    assert svc.client.get("/v1/banks", headers=headers).status_code == 200
    key = max(list_keys(svc.store), key=lambda k: k.id)
    revoke_key(svc.store, key.id)
    revoked_at = time.monotonic()
    wait_until(
        lambda: svc.client.get("/v1/banks", headers=headers).status_code == 401,
        timeout=1.5,
        what="revoked key refused",
    )
    assert time.monotonic() - revoked_at < 1.5
    for method, path, _ in protected(svc.client.app):  # type: ignore[arg-type]
        assert call(svc, method, path, headers).status_code == 401, (method, path)
    # Other keys are untouched.
    assert svc.client.get("/v1/banks", headers=svc.auth("bank:read")).status_code == 200


# ------------------------------------------------------------------------ hidden values


@pytest.fixture
def listed(svc: TestService, photo_bytes: Callable[..., bytes]) -> tuple[bytes, str, str]:
    """A photo, and a block bank holding a PDQ hash 6 bits from the photo's own and the MD5
    of the photo: (photo, stored pdq value, stored md5 value)."""
    photo = photo_bytes("png", seed=11)
    signals = hash_bytes(photo)
    pdq = str(signals["pdq"])
    near = f"{int(pdq, 16) ^ 0b111111:064x}"  # a look-alike's hash: never the client's own
    write = svc.auth("bank:write")
    assert svc.client.post("/v1/banks", json={"name": "known"}, headers=write).status_code == 201
    entries = [
        {"signal_type": "pdq", "value": near, "list_version": "v7"},
        {"signal_type": "md5", "value": str(signals["md5"])},
    ]
    added = svc.client.post("/v1/banks/known/entries", json={"entries": entries}, headers=write)
    assert added.json()["added"] == 2
    wait_until(
        lambda: (
            svc.client.get("/v1/index/status", headers=svc.auth("lookup")).json()["lag"] == 0
            and svc.client.post("/v1/match", content=photo, headers=svc.auth("match")).json()[
                "matched"
            ]
        ),
        timeout=5,
        what="entries indexed",
    )
    return photo, near, str(signals["md5"])


def test_matching_keys_never_see_a_banks_hash_values(
    svc: TestService, listed: tuple[bytes, str, str]
) -> None:
    photo, near, _ = listed
    own = str(hash_bytes(photo)["pdq"])  # what a client has: its own content's hash
    client = svc.client
    seen: list[tuple[str, Any]] = []
    for scope in ("hash", "match", "lookup"):
        headers = svc.auth(scope)
        seen += [
            (scope, client.post("/v1/hash", content=photo, headers=headers)),
            (scope, client.post("/v1/match", content=photo, headers=headers)),
            (scope, client.post("/v1/match", files={"file": ("a.png", photo)}, headers=headers)),
            (
                scope,
                client.get(
                    "/v1/lookup", params={"signal_type": "pdq", "value": own}, headers=headers
                ),
            ),
            (
                scope,
                client.post(
                    "/v1/lookup",
                    json={"hashes": [{"signal_type": "pdq", "value": own}]},
                    headers=headers,
                ),
            ),
            (scope, client.get("/v1/index/status", headers=headers)),
            (scope, client.get("/v1/banks/known/entries", headers=headers)),
            (scope, client.get("/v1/banks", headers=headers)),
        ]
        # HMA's matching routes, where served: ids and distances, never values.
        paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
        hma_query = {"signal_type": "pdq", "signal": own, "include_distance": "true"}
        for path in ("/m/lookup", "/m/raw_lookup"):
            if "get" in paths.get(path, {}):
                seen.append((scope, client.get(path, params=hma_query, headers=headers)))
        if "post" in paths.get("/m/lookup", {}):
            uploaded = client.post("/m/lookup", files={"photo": ("a.png", photo)}, headers=headers)
            seen.append((scope, uploaded))
    answered = 0
    for scope, response in seen:
        if response.status_code == 200:
            answered += 1
            # The look-alike hash the bank stores appears nowhere, in any field.
            assert near not in response.text, (scope, response.request.url)
            assert near.upper() not in response.text
        else:
            assert response.status_code == 403, (scope, response.request.url, response.text)
    assert answered >= 5

    match = client.post("/v1/match", content=photo, headers=svc.auth("match")).json()
    assert match["decision"] == "reject"
    assert {m["signal_type"] for m in match["matches"]} == {"pdq", "md5"}
    assert all(m["value"] is None for m in match["matches"])
    batch = {"hashes": [{"signal_type": "pdq", "value": own}]}
    found = client.post("/v1/lookup", json=batch, headers=svc.auth("lookup")).json()
    assert found["results"][0]["matched"]
    assert found["results"][0]["matches"][0]["value"] is None


def test_bank_read_sees_the_values(svc: TestService, listed: tuple[bytes, str, str]) -> None:
    photo, near, md5 = listed
    headers = svc.new_key("match", "bank:read")
    match = svc.client.post("/v1/match", content=photo, headers=headers).json()
    assert {m["signal_type"]: m["value"] for m in match["matches"]} == {"pdq": near, "md5": md5}
    admin = svc.client.post("/v1/match", content=photo, headers=svc.auth("admin")).json()
    assert {m["value"] for m in admin["matches"]} == {near, md5}
    entries = svc.client.get("/v1/banks/known/entries", headers=svc.auth("bank:read")).json()
    assert {e["value"] for e in entries["entries"]} == {near, md5}


# --------------------------------------------------------------------------- rate limits


def test_a_key_over_its_rate_gets_429_with_retry_after(sqlite_svc: TestService) -> None:
    headers = sqlite_svc.new_key("lookup", rate_limit=2)
    statuses = []
    for _ in range(20):
        response = sqlite_svc.client.get("/v1/index/status", headers=headers)
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[0] == 200
    assert statuses[-1] == 429, statuses
    assert response.json()["error"]["code"] == "rate_limited"
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit() and int(retry_after) >= 1
    # Other keys have buckets of their own.
    other = sqlite_svc.client.get("/v1/index/status", headers=sqlite_svc.auth("lookup"))
    assert other.status_code == 200
    time.sleep(int(retry_after))
    assert sqlite_svc.client.get("/v1/index/status", headers=headers).status_code == 200


def test_a_large_batch_costs_more_than_one_request(sqlite_svc: TestService) -> None:
    headers = sqlite_svc.new_key("lookup", rate_limit=5)
    batch = {"hashes": [{"signal_type": "md5", "value": f"{i:032x}"} for i in range(2_000)]}
    first = sqlite_svc.client.post("/v1/lookup", json=batch, headers=headers)
    assert first.status_code == 200  # a full bucket pays for any one request
    again = sqlite_svc.client.post("/v1/lookup", json=batch, headers=headers)
    assert again.status_code == 429
    assert int(again.headers["Retry-After"]) >= 1


# ------------------------------------------------------------------------ size and pixels


@pytest.mark.parametrize("route", ["/v1/hash", "/v1/match"])
def test_a_body_over_the_upload_limit_is_413(tmp_path: Path, route: str) -> None:
    with service_client(tmp_path, max_upload_bytes=1_000) as svc:
        headers = svc.auth("admin")
        at_limit = svc.client.post(route, content=b"x" * 1_000, headers=headers)
        assert at_limit.status_code == 200
        over = svc.client.post(route, content=b"x" * 1_001, headers=headers)
        assert over.status_code == 413
        assert over.json()["error"]["code"] == "payload_too_large"

        def chunks() -> Iterator[bytes]:
            for _ in range(20):
                yield b"y" * 100

        chunked = svc.client.post(route, content=chunks(), headers=headers)
        assert "content-length" not in {k.lower() for k in chunked.request.headers}
        assert chunked.status_code == 413
        multipart = svc.client.post(route, files={"file": ("a.bin", b"z" * 2_000)}, headers=headers)
        assert multipart.status_code == 413


def test_an_image_over_the_pixel_limit_is_refused_undecoded(
    tmp_path: Path, photo_bytes: Callable[..., bytes], decodes: list[object]
) -> None:
    small = photo_bytes("png", width=90, height=90, seed=1)  # 8,100 pixels
    large = photo_bytes("png", width=120, height=100, seed=2)  # 12,000 pixels
    with service_client(tmp_path, max_pixels=10_000) as svc:
        headers = svc.auth("admin")
        assert "pdq" in svc.client.post("/v1/hash", content=small, headers=headers).json()
        assert decodes, "the spy sees a decode"
        decodes.clear()
        for route in ("/v1/hash", "/v1/match"):
            body = svc.client.post(route, content=large, headers=headers).json()
            assert body["error_type"] == "too_large", body
            assert "10,000" in body["error"]
            assert "pdq" not in body and "pdq" not in body.get("signals", [])
            assert body.get("sha256") == hashlib.sha256(large).hexdigest()  # still matched exactly
        assert decodes == []


def test_a_decompression_bomb_is_refused_undecoded(
    sqlite_svc: TestService, decodes: list[object]
) -> None:
    bomb = tiny_png_claiming(40_000, 40_000)  # 1.6 gigapixels in under 100 bytes
    assert len(bomb) < 100
    for route in ("/v1/hash", "/v1/match"):
        response = sqlite_svc.client.post(route, content=bomb, headers=sqlite_svc.auth("admin"))
        assert response.status_code == 200
        assert response.json()["error_type"] == "too_large"
    assert decodes == []
