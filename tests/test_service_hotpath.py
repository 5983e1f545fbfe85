"""The hot path answers single lookups exactly as the FastAPI routes do.

Each request is sent to two apps over one store: one with the hot path (the default), one
without it (``hot_path=False``); status, body and the headers a client reads must agree. The
requests cover what the hot path answers (well-formed lookups that match, miss, match below
the quality floor, with and without ``bank:read``; HMA's raw lookups with and without
distances and bank filters) and what it must leave to the route (no key, wrong scope,
unknown signal type, malformed or repeated parameters), on ``GET /v1/lookup`` and HMA's
``GET /m/raw_lookup``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightkeeper.service import hotpath
from lightkeeper.service.app import create_app
from lightkeeper.service.testing import TestService, service_client

PDQ = "f" * 32 + "0" * 32
NEAR = "f" * 31 + "e" + "0" * 32  # one bit away
MD5 = "a" * 32


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestService, TestClient]]:
    tmp_path: Path = tmp_path_factory.mktemp("hotpath")
    with service_client(tmp_path) as svc:
        svc.store.create_bank("known")
        svc.store.add_entry("known", "pdq", PDQ, list_version="v7", classification="A1")
        svc.store.add_entry("known", "md5", MD5)
        svc.keys["read"] = svc.new_key("lookup", "bank:read")["Authorization"][7:]
        plain = create_app(replace(svc.settings, hot_path=False, index_dir=tmp_path / "plain"))
        with TestClient(plain, raise_server_exceptions=False) as other:
            deadline = time.monotonic() + 10
            while not all(
                c.get(
                    "/v1/lookup",
                    params={"signal_type": "md5", "value": MD5},
                    headers=svc.auth(key),
                ).json()["results"][0]["matched"]
                for c in (svc.client, other)
                for key in ("lookup", "read")
            ):
                assert time.monotonic() < deadline, "entries not indexed"
                time.sleep(0.05)
            yield svc, other


def _same(
    pair: tuple[TestService, TestClient],
    query: str,
    headers: dict[str, str],
    path: str = "/v1/lookup",
) -> None:
    svc, plain = pair
    hot = svc.client.get(f"{path}?{query}", headers=headers)
    cold = plain.get(f"{path}?{query}", headers=headers)
    assert hot.status_code == cold.status_code, (query, hot.text, cold.text)
    assert hot.content == cold.content, query
    for name in ("content-type", "retry-after", "content-length"):
        assert hot.headers.get(name) == cold.headers.get(name), (query, name)


CASES = [
    f"signal_type=pdq&value={PDQ}",
    f"signal_type=pdq&value={NEAR.upper()}",
    f"signal_type=pdq&value={NEAR}&quality=90",
    f"signal_type=pdq&value={NEAR}&quality=10",  # below the bank's quality floor
    f"signal_type=md5&value={MD5}",
    f"signal_type=md5&value={'b' * 32}",
    f"value={PDQ}&signal_type=pdq&other=ignored",
    # Left to the route:
    "signal_type=photodna&value=00",
    "signal_type=pdq&value=zz",
    f"signal_type=pdq&value={PDQ}&quality=101",
    f"signal_type=pdq&value={PDQ}&quality=-1",
    f"signal_type=pdq&value={PDQ}&quality=07",
    f"signal_type=pdq&value={PDQ}&quality=x",
    f"signal_type=pdq&signal_type=md5&value={MD5}",
    f"signal_type=pdq&value={PDQ}&value={NEAR}",
    "signal_type=pdq",
    f"value={PDQ}",
    "",
    f"signal_type=&value={PDQ}",
    f"signal_type={'p' * 33}&value={PDQ}",
    f"signal_type=pdq&value={'0' * 4097}",
    f"signal_type=pdq&value={PDQ}&&",
    "signal_type=pd%ffq&value=00",
]


RAW_CASES = [
    f"signal_type=pdq&signal={PDQ}",
    f"signal_type=pdq&signal={NEAR.upper()}&include_distance=true",
    f"signal_type=pdq&signal={NEAR}&include_distance=1",
    f"signal_type=pdq&signal={NEAR}&include_distance=false",
    f"signal_type=pdq&signal={NEAR}&include_distance=0&banks=KNOWN",
    f"signal_type=pdq&signal={PDQ}&banks=OTHER,NONE&include_distance=true",
    f"signal_type=video_md5&signal={MD5}&include_distance=true",
    f"signal_type=video_md5&signal={'b' * 32}",
    f"signal={PDQ}&signal_type=pdq&other=ignored",
    # Left to the route:
    f"signal_type=pdq&signal={PDQ}&include_distance=yes",
    f"signal_type=pdq&signal={PDQ}&include_distance=TRUE",
    f"signal_type=pdq&signal={PDQ}&include_distance=maybe",
    f"signal_type=pdq&signal={PDQ}&banks=",
    "signal_type=photodna&signal=00",
    "signal_type=md5&signal=00",
    "signal_type=pdq&signal=zz",
    f"signal_type=video_md5&signal={PDQ}",
    f"signal_type=pdq&signal_type=video_md5&signal={MD5}",
    f"signal_type=pdq&signal={PDQ}&signal={NEAR}",
    "signal_type=pdq",
    f"signal={PDQ}",
    "",
    f"signal_type=pdq&signal={'0' * 4097}",
    f"signal_type=pdq&value={PDQ}",
]


@pytest.mark.parametrize(
    ("path", "query"),
    [("/v1/lookup", q) for q in CASES] + [("/m/raw_lookup", q) for q in RAW_CASES],
)
@pytest.mark.parametrize("scope", ["lookup", "bank:read", "match", None])
def test_same_answer_with_and_without_the_hot_path(
    pair: tuple[TestService, TestClient], path: str, query: str, scope: str | None
) -> None:
    svc, _ = pair
    # "bank:read" here: a key with lookup and bank:read, which sees the bank's hash values.
    headers = {} if scope is None else svc.auth("read" if scope == "bank:read" else scope)
    _same(pair, query, headers, path)


def test_unknown_and_revoked_keys_fall_through_to_a_401(
    pair: tuple[TestService, TestClient],
) -> None:
    response = pair[0].client.get(
        f"/v1/lookup?signal_type=pdq&value={PDQ}", headers={"Authorization": "Bearer lk_nope"}
    )
    assert response.status_code == 401
    _same(pair, f"signal_type=pdq&value={PDQ}", {"Authorization": "Bearer lk_nope"})


@pytest.mark.parametrize(
    "url",
    [f"/v1/lookup?signal_type=md5&value={MD5}", f"/m/raw_lookup?signal_type=pdq&signal={PDQ}"],
)
def test_the_rate_limit_holds_on_the_hot_path(
    pair: tuple[TestService, TestClient], url: str
) -> None:
    svc, plain = pair
    key = svc.new_key("lookup", rate_limit=1.0)  # 1 request/s: a bucket of 2 requests
    codes = [svc.client.get(url, headers=key).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    limited = svc.client.get(url, headers=key)
    assert int(limited.headers["retry-after"]) >= 1
    # The route's own answer when limited: the same body and header.
    for _ in range(2):
        plain.get(url, headers=key)  # the other app keeps buckets of its own
    cold = plain.get(url, headers=key)
    assert cold.status_code == 429
    assert cold.content == limited.content
    assert cold.headers["retry-after"] == limited.headers["retry-after"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["signal_type", "value", "quality", "x"]),
            st.text(alphabet="0123456789abcdefpdqm5%&=+ ", max_size=70),
        ),
        max_size=4,
    )
)
def test_any_query_string_gets_the_routes_answer(
    pair: tuple[TestService, TestClient], params: list[tuple[str, str]]
) -> None:
    query = "&".join(f"{name}={value}" for name, value in params)
    _same(pair, query, pair[0].auth("lookup"))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["signal_type", "signal", "include_distance", "banks", "x"]),
            st.sampled_from(["pdq", "video_md5", "true", "0", "KNOWN", PDQ, NEAR, MD5])
            | st.text(alphabet="0123456789abcdefpdqvideo_m5TRUEKNOW%&=+, ", max_size=70),
        ),
        max_size=5,
    )
)
def test_any_raw_lookup_query_gets_the_routes_answer(
    pair: tuple[TestService, TestClient], params: list[tuple[str, str]]
) -> None:
    query = "&".join(f"{name}={value}" for name, value in params)
    _same(pair, query, pair[0].auth("lookup"), "/m/raw_lookup")


def test_the_hot_path_answers_well_formed_lookups_only(
    pair: tuple[TestService, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    answered: list[bool] = []
    original = hotpath.LookupHotPath._answer

    def spy(self: hotpath.LookupHotPath, request: Request, endpoint: object) -> object:
        answer = original(self, request, endpoint)  # type: ignore[arg-type]
        answered.append(answer is not None)
        return answer

    monkeypatch.setattr(hotpath.LookupHotPath, "_answer", spy)
    svc, _ = pair
    for url, scope, expected in [
        (f"/v1/lookup?signal_type=pdq&value={NEAR}&quality=90", "lookup", True),
        (f"/v1/lookup?signal_type=md5&value={MD5}", "read", True),
        ("/v1/lookup?signal_type=pdq&value=zz", "lookup", False),
        (f"/v1/lookup?signal_type=pdq&value={PDQ}", "match", False),
        (f"/m/raw_lookup?signal_type=pdq&signal={NEAR}&include_distance=true", "lookup", True),
        (f"/m/raw_lookup?signal_type=video_md5&signal={MD5}&banks=KNOWN", "lookup", True),
        ("/m/raw_lookup?signal_type=pdq&signal=zz", "lookup", False),
        (f"/m/raw_lookup?signal_type=pdq&signal={PDQ}&include_distance=on", "lookup", False),
        (f"/m/raw_lookup?signal_type=pdq&signal={PDQ}", "match", False),
    ]:
        answered.clear()
        response = svc.client.get(url, headers=svc.auth(scope))
        assert answered == [expected], url
        assert response.status_code == (200 if expected else response.status_code)
    # A raw lookup answered here finds the bank's entry, with its distance.
    found = svc.client.get(
        f"/m/raw_lookup?signal_type=pdq&signal={NEAR}&include_distance=true",
        headers=svc.auth("lookup"),
    ).json()
    assert [m["distance"] for m in found["matches"]] == ["1"]
