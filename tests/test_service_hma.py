"""The HMA 2.0-compatible routes: an HMA client works unchanged against Lightkeeper.

The main test replays the recorded requests of Meta's HMA 2.0 (``hma-api/transcripts.md``,
sections 1 and 2) one by one: the same methods, query strings, JSON bodies and multipart
field names, with our own benign photos and their hashes in place of HMA's. Each answer
must be HMA's byte for byte (status, content type, body) except where Lightkeeper differs
on purpose, listed in `DIFFERENCES` with the reason. Matching steps are polled until the
answer is right, with a deadline of one second after the last bank change: the issue's
bound on how soon a change is matched.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightkeeper.banks.testing import backends, temporary_store
from lightkeeper.hashing import hash_bytes
from lightkeeper.service.routes.hma import (
    find_bank,
    hma_bank_name,
    lightkeeper_bank_name,
)
from lightkeeper.service.testing import TestService, service_client

#: The issue's figure: a bank change is matched within this.
PROPAGATION_S = 1.0
FILLER = "ffffffffffffffffffffffffffffffffffffffffffffffff0123456789abcdef"

# ---------------------------------------------------------------- the transcripts, parsed

#: What HMA's transcripts used, replaced by ours in every request and answer.
HMA_H1 = "15c72a31bdc65b1944e6d1f04a49bdc60a0905e6153a5a3d7434bfe1fdda84be"
HMA_H2 = "c3bc3647aad0dd0b5214246b5806d5f9615e3cd61626ab391f3c55b426eb768e"
HMA_MD5_1 = "970ea944a95d1cd5ba102683b041e554"
HMA_DISTANCE = '{"distance":124}'
HMA_PHOTO_CONTENT_ID = "1006014"
HMA_PYDANTIC_URL = "errors.pydantic.dev/2.14/"

STEP = re.compile(
    r"^### (?P<method>[A-Z]+) (?P<target>\S+)\n(?P<note>.*?)Request:\n```\n(?P<request>.*?)```\n"
    r"Response: \*\*(?P<status>\d+)\*\* `Content-Type: (?P<ctype>[^`]+)`[^\n]*\n"
    r"```\n(?P<body>.*?)\n```",
    re.S | re.M,
)
UPLOAD = re.compile(r'field "(?P<field>\w+)" filename="(?P<filename>[^"]+)"')
FORM_FIELDS = re.compile(r"form fields (?P<fields>\{.*\})\s*$")


@dataclass(frozen=True)
class Step:
    """One recorded request and HMA's answer."""

    section: str
    method: str
    target: str
    note: str
    request: str
    status: int
    content_type: str
    body: str

    @property
    def key(self) -> str:
        return f"{self.method} {self.target}"


def read_transcripts(path: Path) -> list[Step]:
    """The steps of sections 1 (main client flow) and 2 (further endpoints), in order."""
    steps = []
    for chunk in re.split(r"^## ", path.read_text(), flags=re.M):
        section = chunk.split(".", 1)[0]
        if section not in ("1", "2"):
            continue
        for m in STEP.finditer(chunk):
            steps.append(
                Step(
                    section,
                    m["method"],
                    m["target"],
                    m["note"].strip(),
                    m["request"],
                    int(m["status"]),
                    m["ctype"],
                    m["body"],
                )
            )
    return steps


# ------------------------------------------------------ where Lightkeeper differs, and why


def _built_to(body: Any) -> Any:
    """Index timestamps are the server's own: compare whether one is set, not its value."""
    return {
        name: {**status, "built_to": "set" if status["built_to"] > 0 else -1}
        for name, status in body.items()
    }


def _shape(body: Any) -> Any:
    """Counts and times of HMA's 1,000,000-hash bank: compare keys and types only."""
    return {name: {k: type(v).__name__ for k, v in status.items()} for name, status in body.items()}


@dataclass(frozen=True)
class Difference:
    why: str
    #: Our answer, when it differs (a JSON value, or text for non-JSON answers).
    body: Any = None
    #: Applied to both answers before comparing (values that are the server's own).
    normalize: Callable[[Any], Any] | None = None
    #: Any of these bodies is right.
    either: tuple[Any, ...] = ()
    #: HMA-only route that Lightkeeper does not serve (404).
    absent: bool = False


URL_DISABLED = {
    "message": "URL fetching is disabled: Lightkeeper never fetches media from the internet; "
    "upload the file as multipart/form-data instead"
}

#: (section, "METHOD target", occurrence within the section) -> how our answer differs.
DIFFERENCES: dict[tuple[str, str, int], Difference] = {
    ("1", "GET /m/index/status", 0): Difference(
        "the index is loaded before the service answers; HMA builds its first one later",
        body={
            "pdq": {"built_to": -1, "present": True, "size": 0},
            "video_md5": {"built_to": -1, "present": True, "size": 0},
        },
    ),
    ("1", f"GET /m/raw_lookup?signal_type=pdq&signal={HMA_H1}", 0): Difference(
        "HMA needed 25.86 s to match a new signal; Lightkeeper may match it at once",
        either=({"matches": []}, {"matches": [2]}),
    ),
    ("1", "GET /m/index/status", 1): Difference("timestamps", normalize=_built_to),
    ("1", "GET /m/index/status?signal_type=pdq", 0): Difference("timestamps", normalize=_built_to),
    ("2", f"GET /c/bank/TEST_BANK/content/{HMA_PHOTO_CONTENT_ID}?include_signals=true", 0): (
        Difference(
            "the store keeps metadata.content_id (as external_id), not content_uri or json",
            body={
                "bank": {"matching_enabled_ratio": 1.0, "name": "TEST_BANK"},
                "disable_until_ts": 1,
                "id": int(HMA_PHOTO_CONTENT_ID),
                "metadata": {"collab": None, "content_id": "ext-42"},
                "note": "added by photo",
                "original_media_uri": None,
                "signals": {"pdq": HMA_H2},
            },
        )
    ),
    ("2", f"PUT /c/bank/TEST_BANK/content/{HMA_PHOTO_CONTENT_ID}", 0): Difference(
        "the store keeps metadata.content_id (as external_id), not content_uri or json",
        body={
            "bank": {"matching_enabled_ratio": 1.0, "name": "TEST_BANK"},
            "collab_metadata": {},
            "disable_until_ts": 1795349631,
            "id": int(HMA_PHOTO_CONTENT_ID),
            "note": "added by photo",
            "original_media_uri": None,
            "user_metadata": {"content_id": "ext-42"},
        },
    ),
    ("2", f"GET /m/raw_lookup?signal_type=pdq&signal={HMA_H1}", 0): Difference(
        "HMA's raw_lookup matches a disabled bank (a bug); Lightkeeper's does not",
        body={"matches": []},
    ),
    ("2", "GET /h/hash?url=http://127.0.0.1:9/x.jpg", 0): Difference(
        "Lightkeeper never fetches media from the internet", body=URL_DISABLED
    ),
    ("2", "POST /c/bank/TEST_BANK/content", 0): Difference(
        "content ids are the store's own (HMA's store held a million more)",
        normalize=lambda body: {**body, "id": "an id"},
    ),
    ("2", "GET /c/signal_type/index", 0): Difference("HMA's 1M-hash bank", normalize=_shape),
    ("2", "GET /site-map", 0): Difference("Flask's route list: not an HMA API", absent=True),
}


# ------------------------------------------------------------------------------ replaying


@dataclass
class Replay:
    """Our values for HMA's, and when the banks last changed."""

    svc: TestService
    photos: dict[str, bytes]
    substitutions: dict[str, str]
    last_change: float = 0.0
    seen: dict[tuple[str, str], int] = field(default_factory=dict)
    consulted: set[tuple[str, str, int]] = field(default_factory=set)

    def sub(self, text: str) -> str:
        for hma, ours in self.substitutions.items():
            text = text.replace(hma, ours)
        return text

    def send(self, step: Step) -> Any:
        headers = self.svc.auth("admin")
        target = self.sub(step.target)
        lines = step.request.splitlines()[1:]
        if lines and lines[0].startswith("Content-Type: application/json"):
            body = json.loads(self.sub("\n".join(lines[1:])))
            return self.svc.client.request(step.method, target, json=body, headers=headers)
        if lines and lines[0].startswith("multipart/form-data"):
            upload = UPLOAD.search(lines[0])
            assert upload is not None, lines[0]
            form = FORM_FIELDS.search(lines[0])
            data = json.loads(form["fields"]) if form else None
            name = upload["filename"]
            files = {upload["field"]: (name, self.photos[name], "image/jpeg")}
            return self.svc.client.request(
                step.method, target, files=files, data=data, headers=headers
            )
        return self.svc.client.request(step.method, target, headers=headers)

    def check(self, step: Step) -> Any:
        n = self.seen.get((step.section, step.key), 0)
        self.seen[(step.section, step.key)] = n + 1
        diff = DIFFERENCES.get((step.section, step.key, n))
        if diff is not None:
            self.consulted.add((step.section, step.key, n))
        if diff is not None and diff.absent:
            assert self.send(step).status_code == 404
            return None
        expected_text = self.sub(step.body)
        is_json = step.content_type == "application/json"
        expected = json.loads(expected_text) if is_json else expected_text
        if diff is not None and diff.body is not None:
            expected = json.loads(self.sub(json.dumps(diff.body)))
            expected_text = None  # compared as values only
        elif diff is not None and (diff.normalize or diff.either):
            expected_text = None
        status = step.status
        polled = step.target.startswith("/m/") and step.method in ("GET", "POST")
        deadline = max(self.last_change + PROPAGATION_S, time.monotonic())
        while True:
            response = self.send(step)
            got = response.json() if is_json else response.text
            if diff is not None and diff.normalize is not None:
                ok = diff.normalize(got) == diff.normalize(expected)
            elif diff is not None and diff.either:
                ok = got in diff.either
            else:
                ok = got == expected
            if (ok and response.status_code == status) or not polled:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        where = f"{step.method} {step.target} ({step.note or 'no note'})"
        assert response.status_code == status, f"{where}: {response.text}"
        assert response.headers["content-type"] == step.content_type, where
        assert ok, f"{where}:\n got      {got}\n expected {expected}"
        if expected_text is not None:
            assert response.text == expected_text, f"{where}: not byte for byte"
        if step.method != "GET" and step.target.startswith("/c/"):
            self.last_change = time.monotonic()
        return got


@pytest.fixture(scope="module")
def transcripts(shared_dir: Path) -> list[Step]:
    path = shared_dir / "hma-api" / "transcripts.md"
    steps = read_transcripts(path)
    headings = sum(
        len(re.findall(r"^### ", chunk, flags=re.M))
        for chunk in re.split(r"^## ", path.read_text(), flags=re.M)
        if chunk.split(".", 1)[0] in ("1", "2")
    )
    assert len(steps) == headings > 40, "a recorded step could not be parsed"
    return steps


@pytest.fixture
def photos(photo_bytes: Callable[..., bytes]) -> dict[str, bytes]:
    """Two benign synthetic photos standing in for HMA's photo1.jpg and photo2.jpg."""
    return {
        "photo1.jpg": photo_bytes("jpeg", width=640, height=400, seed=1),
        "photo2.jpg": photo_bytes("jpeg", width=640, height=400, seed=2),
    }


def _pdq(svc: TestService, photo: bytes) -> str:
    r = svc.client.post("/h/hash", files={"photo": ("p.jpg", photo)}, headers=svc.auth("hash"))
    assert r.status_code == 200, r.text
    value: str = r.json()["pdq"]
    return value


@pytest.mark.parametrize("backend", backends())
def test_an_hma_client_flow_works_unchanged(
    tmp_path: Path, backend: str, transcripts: list[Step], photos: dict[str, bytes]
) -> None:
    h1, h2 = (str(hash_bytes(photos[name])["pdq"]) for name in ("photo1.jpg", "photo2.jpg"))
    distance = bin(int(h1, 16) ^ int(h2, 16)).count("1")
    assert distance > 31, "the two photos must not match each other"
    major, minor = pydantic.VERSION.split(".")[:2]
    with service_client(tmp_path, backend) as svc:
        replay = Replay(
            svc,
            photos,
            {
                HMA_H1: h1,
                HMA_H2: h2,
                HMA_MD5_1: hashlib.md5(photos["photo1.jpg"]).hexdigest(),
                HMA_DISTANCE: f'{{"distance":{distance}}}',
                HMA_PYDANTIC_URL: f"errors.pydantic.dev/{major}.{minor}/",
            },
        )
        section_two = [s for s in transcripts if s.section == "2"]
        for step in (s for s in transcripts if s.section == "1"):
            replay.check(step)
        # HMA's section 2 ran with BIG_BANK holding 1,000,000 hashes; ours holds one.
        write = svc.auth("bank:write")
        assert svc.client.post("/c/banks", json={"name": "BIG_BANK"}, headers=write).is_success
        big = {"pdq": "0" * 63 + "1"}
        assert svc.client.post("/c/bank/BIG_BANK/signal", json=big, headers=write).is_success
        for step in section_two:
            if step.key == "POST /c/bank/TEST_BANK/content":
                added = replay.check(step)
                replay.substitutions[HMA_PHOTO_CONTENT_ID] = str(added["id"])
            else:
                replay.check(step)
        assert sum(replay.seen.values()) == len(transcripts)
        assert replay.consulted == set(DIFFERENCES), "a listed difference matched no step"


# ------------------------------------------------------------------------ live and stale


@pytest.mark.parametrize("backend", backends())
def test_a_new_signal_is_matchable_within_a_second(
    tmp_path: Path, backend: str, photos: dict[str, bytes]
) -> None:
    with service_client(tmp_path, backend) as svc:
        h1 = _pdq(svc, photos["photo1.jpg"])
        svc.client.post("/c/banks", json={"name": "ONE"}, headers=svc.auth("bank:write"))
        added_at = time.monotonic()
        r = svc.client.post("/c/bank/ONE/signal", json={"pdq": h1}, headers=svc.auth("bank:write"))
        assert r.status_code == 200
        entry = r.json()["id"]
        while True:
            r = svc.client.get(
                f"/m/raw_lookup?signal_type=pdq&signal={h1}", headers=svc.auth("lookup")
            )
            if r.json() == {"matches": [entry]} or time.monotonic() - added_at > PROPAGATION_S:
                break
            time.sleep(0.02)
        # A bank holding one PDQ hash matches (HMA's never does: ThreatExchange #1318).
        assert r.json() == {"matches": [entry]}


def test_status_says_when_the_index_is_stale(tmp_path: Path) -> None:
    with service_client(tmp_path) as svc:
        assert svc.client.get("/status").text == "I-AM-ALIVE"
        runtime = svc.client.app.state.runtime  # type: ignore[attr-defined]
        runtime.index_current = lambda: False
        r = svc.client.get("/status")
        assert (r.status_code, r.text) == (503, "INDEX-STALE")
        assert svc.client.get("/status/live").status_code == 200


# ----------------------------------------------------------------------------- API keys

#: Every HMA route, a request to it, and the scope it needs.
ROUTES: list[tuple[str, str, dict[str, Any], str]] = [
    ("GET", "/h/hash?url=x", {}, "hash"),
    ("POST", "/h/hash", {"files": {"photo": ("p.jpg", b"x")}}, "hash"),
    ("POST", "/m/lookup", {"files": {"photo": ("p.jpg", b"x")}}, "match"),
    ("GET", f"/m/lookup?signal_type=pdq&signal={FILLER}", {}, "lookup"),
    ("GET", f"/m/raw_lookup?signal_type=pdq&signal={FILLER}", {}, "lookup"),
    ("POST", "/m/compare", {"json": {"pdq": [FILLER, FILLER]}}, "lookup"),
    ("GET", "/m/index/status", {}, "lookup"),
    ("GET", "/c/banks", {}, "bank:read"),
    ("POST", "/c/banks", {"json": {"name": "NEW"}}, "bank:write"),
    ("GET", "/c/bank/B", {}, "bank:read"),
    ("PUT", "/c/bank/B", {"json": {"enabled": True}}, "bank:write"),
    ("DELETE", "/c/bank/NONE", {}, "bank:write"),
    ("POST", "/c/bank/B/content", {"files": {"photo": ("p.jpg", b"x")}}, "bank:write"),
    ("POST", "/c/bank/B/signal", {"json": {"pdq": FILLER}}, "bank:write"),
    ("GET", "/c/bank/B/content/1", {}, "bank:read"),
    ("PUT", "/c/bank/B/content/1", {"json": {"disable_until_ts": 1}}, "bank:write"),
    ("DELETE", "/c/bank/B/content/999", {}, "bank:write"),
    ("GET", "/c/signal_type", {}, "bank:read"),
    ("GET", "/c/content_type", {}, "bank:read"),
    ("GET", "/c/signal_type/index", {}, "bank:read"),
]


def test_every_route_but_status_needs_a_key_with_its_scope(tmp_path: Path) -> None:
    with service_client(tmp_path) as svc:
        svc.store.create_bank("b")
        svc.store.add_entry("b", "pdq", FILLER)
        for method, path, kwargs, scope in ROUTES:
            r = svc.client.request(method, path, **kwargs)
            assert r.status_code == 401, path
            assert set(r.json()) == {"message"}, path
            other = "lookup" if scope != "lookup" else "hash"
            r = svc.client.request(method, path, headers=svc.auth(other), **kwargs)
            assert (r.status_code, r.json()) == (
                403,
                {"message": f"this route needs a key with the {scope!r} scope"},
            ), path
            r = svc.client.request(method, path, headers=svc.auth(scope), **kwargs)
            assert r.status_code not in (401, 403, 500), f"{path}: {r.text}"
        for path in ("/status", "/status/live"):
            assert svc.client.get(path).status_code == 200


def test_every_hma_route_is_documented_with_its_scope(tmp_path: Path) -> None:
    with service_client(tmp_path) as svc:
        spec = svc.client.get("/openapi.json").json()
    hma = {
        (method.upper(), path): op
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if "hma" in op.get("tags", ())
    }
    for method, path, _, scope in ROUTES:
        template = re.sub(r"/c/bank/[A-Z]+", "/c/bank/{bank_name}", path.split("?")[0])
        template = re.sub(r"/content/\d+$", "/content/{content_id}", template)
        assert hma[(method, template)]["x-required-scope"] == scope, (method, template)
    assert hma[("GET", "/status")]["x-required-scope"] == "public"
    assert len(hma) == len(ROUTES) + 2


# ------------------------------------------------------------------------------ bank names

HMA_NAMES = st.from_regex(r"[A-Z0-9][A-Z0-9_]{0,63}", fullmatch=True)
OUR_NAMES = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,63}", fullmatch=True)


@given(HMA_NAMES)
def test_a_bank_created_through_hma_keeps_its_hma_name(name: str) -> None:
    assert hma_bank_name(lightkeeper_bank_name(name)) == name


def test_an_hma_client_reaches_every_bank_by_its_hma_name() -> None:
    with temporary_store("sqlite") as store:

        @settings(max_examples=60, deadline=None)
        @given(OUR_NAMES)
        def check(name: str) -> None:
            store.create_bank(name)
            try:
                found = find_bank(store, hma_bank_name(name))
                assert found is not None and found.name == name
            finally:
                store.delete_bank(name)

        check()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestService]:
    """One service for the tests that only read, or whose requests are all refused."""
    with service_client(tmp_path_factory.mktemp("shared")) as svc:
        svc.client.post("/c/banks", json={"name": "REFUSING"}, headers=svc.auth("bank:write"))
        yield svc


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[TestService]:
    with service_client(tmp_path) as svc:
        yield svc


def _wait_for(svc: TestService, path: str, expected: Any, scope: str = "lookup") -> Any:
    deadline = time.monotonic() + PROPAGATION_S
    while True:
        got = svc.client.get(path, headers=svc.auth(scope)).json()
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def test_banks_made_through_v1_and_through_hma_are_one_set(svc: TestService) -> None:
    read, write = svc.auth("bank:read"), svc.auth("bank:write")
    svc.store.create_bank("ncmec-list")
    svc.store.create_bank("x-y")
    svc.store.create_bank("x_y")  # the same HMA name: the one spelled with "_" wins
    assert svc.client.post("/c/banks", json={"name": "TEST_BANK"}, headers=write).is_success
    assert svc.client.get("/c/banks", headers=read).json() == [
        {"matching_enabled_ratio": 1.0, "name": "NCMEC_LIST"},
        {"matching_enabled_ratio": 1.0, "name": "TEST_BANK"},
        {"matching_enabled_ratio": 1.0, "name": "X_Y"},
    ]
    assert "test_bank" in [b["name"] for b in svc.client.get("/v1/banks", headers=read).json()]
    r = svc.client.post("/c/bank/NCMEC_LIST/signal", json={"pdq": FILLER}, headers=write)
    assert r.status_code == 200
    assert svc.store.get_entry(r.json()["id"]).bank == "ncmec-list"
    hit = {"NCMEC_LIST": [{"bank_content_id": r.json()["id"], "distance": "0"}]}
    assert _wait_for(svc, f"/m/lookup?signal_type=pdq&signal={FILLER}", hit) == hit
    assert svc.client.get("/c/bank/test_bank", headers=read).status_code == 404  # HMA's case
    assert svc.client.post("/c/banks", json={"name": "NCMEC_LIST"}, headers=write).json() == {
        "message": "Bank already exists"
    }
    r = svc.client.post("/c/banks", json={"name": "_LEADING"}, headers=write)
    assert r.status_code == 400 and "cannot be used" in r.json()["message"]


def test_renaming_and_enabling_a_bank(svc: TestService) -> None:
    write = svc.auth("bank:write")
    svc.client.post("/c/banks", json={"name": "A_BANK"}, headers=write)
    svc.client.post("/c/banks", json={"name": "TAKEN"}, headers=write)
    r = svc.client.put("/c/bank/A_BANK", json={"name": "B_BANK", "enabled": False}, headers=write)
    assert r.text == '{"matching_enabled_ratio":0,"name":"B_BANK"}'
    assert not svc.store.get_bank("b_bank").enabled
    r = svc.client.put("/c/bank/B_BANK", json={"name": "TAKEN"}, headers=write)
    assert (r.status_code, r.json()) == (403, {"message": "Bank name already exists"})
    r = svc.client.put("/c/bank/B_BANK", json={"name": "bad-name"}, headers=write)
    assert (r.status_code, r.json()) == (
        400,
        {"message": "Bank names must be UPPER_WITH_UNDERSCORE"},
    )
    r = svc.client.put("/c/bank/B_BANK", json={"enabled_ratio": 0.5}, headers=write)
    assert r.status_code == 400 and "0.0 or 1.0" in r.json()["message"]
    r = svc.client.put("/c/bank/B_BANK", json={"enabled_ratio": 1.0}, headers=write)
    assert r.text == '{"matching_enabled_ratio":1.0,"name":"B_BANK"}'
    r = svc.client.put("/c/bank/NOPE", json={"enabled": True}, headers=write)
    assert (r.status_code, r.json()) == (404, {"message": "Bank not found"})
    r = svc.client.post("/c/banks", json={"name": "OFF", "enabled": False}, headers=write)
    assert r.json() == {"matching_enabled_ratio": 0.0, "name": "OFF"}
    assert svc.client.delete("/c/bank/OFF", headers=write).json() == {"message": "Done"}
    assert [b.name for b in svc.store.list_banks()] == ["b_bank", "taken"]


# -------------------------------------------------------------------------------- content


def test_disable_until_ts_is_the_entrys_enabled_state(svc: TestService) -> None:
    read, write = svc.auth("bank:read"), svc.auth("bank:write")
    svc.client.post("/c/banks", json={"name": "B"}, headers=write)
    svc.client.post("/c/banks", json={"name": "OTHER"}, headers=write)
    entry = svc.client.post("/c/bank/B/signal", json={"pdq": FILLER}, headers=write).json()["id"]
    lookup = f"/m/lookup?signal_type=pdq&signal={FILLER}"
    hit = {"B": [{"bank_content_id": entry, "distance": "0"}]}
    assert _wait_for(svc, lookup, hit) == hit

    def put(ts: int) -> Any:
        return svc.client.put(
            f"/c/bank/B/content/{entry}", json={"disable_until_ts": ts}, headers=write
        )

    assert put(0).json()["disable_until_ts"] == 0
    assert not svc.store.get_entry(entry).enabled
    assert _wait_for(svc, lookup, {}) == {}
    later = int(time.time()) + 3600
    assert put(later).json()["disable_until_ts"] == later
    stored = svc.store.get_entry(entry)
    assert stored.enabled and stored.disabled_until is not None
    assert int(stored.disabled_until.timestamp()) == later
    assert _wait_for(svc, lookup, {}) == {}
    assert put(1).json()["disable_until_ts"] == 1
    assert _wait_for(svc, lookup, hit) == hit
    assert put(-1).json() == {"message": "disable_until_ts must be a non-negative integer"}
    assert put(later + 6 * 365 * 86400).json() == {
        "message": "disable_until_ts must be less than 5 years in the future"
    }
    # A content is reached through its own bank only.
    r = svc.client.get(f"/c/bank/OTHER/content/{entry}", headers=read)
    assert (r.status_code, r.json()) == (404, {"message": f"content '{entry}' not found"})
    assert svc.client.delete(f"/c/bank/OTHER/content/{entry}", headers=write).json() == {
        "deleted": 0
    }
    assert svc.client.delete(f"/c/bank/B/content/{entry}", headers=write).json() == {"deleted": 1}
    assert svc.client.delete(f"/c/bank/B/content/{entry}", headers=write).json() == {"deleted": 0}


def test_a_hash_added_twice_is_one_content(svc: TestService) -> None:
    write = svc.auth("bank:write")
    svc.client.post("/c/banks", json={"name": "B"}, headers=write)
    first = svc.client.post("/c/bank/B/signal", json={"pdq": FILLER}, headers=write).json()
    again = svc.client.post(
        "/c/bank/B/signal", json={"pdq": FILLER.upper(), "note": "seen twice"}, headers=write
    ).json()
    assert first == again == {"id": first["id"], "signals": {"pdq": FILLER}}
    assert svc.store.get_entry(first["id"]).note == "seen twice"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "No signals given"),
        ({"note": "only a note"}, "No signals given"),
        ({"pdq": FILLER, "video_md5": "0" * 32}, "Lightkeeper keeps one signal per content"),
        ({"md5": "0" * 32}, "No such signal type md5"),
        ({"video_md5": "xyz"}, "Invalid video_md5 signal: 'xyz' is not a valid MD5 hash"),
        ({"pdq": 7}, "Invalid pdq signal: a pdq signal is a string, not int"),
        ({"pdq": FILLER, "note": 3}, "note must be a string"),
        ({"pdq": FILLER, "metadata": {"k": 1}}, "Invalid metadata: unexpected keys k"),
        ({"pdq": FILLER, "metadata": "x"}, "metadata should be a json object"),
        (["pdq", FILLER], "Request input was not a dict"),
    ],
)
def test_a_signal_body_hma_would_refuse_is_refused(
    shared: TestService, body: Any, message: str
) -> None:
    r = shared.client.post("/c/bank/REFUSING/signal", json=body, headers=shared.auth("bank:write"))
    assert r.status_code == 400
    assert r.json()["message"].startswith(message)
    assert shared.store.count_entries("refusing") == 0


# ------------------------------------------------------------------ signal types, matching


def test_video_md5_is_lightkeepers_md5_of_the_file(
    svc: TestService, photos: dict[str, bytes]
) -> None:
    """An MD5 list loaded through /v1 matches photos posted to HMA's /m/lookup."""
    photo = photos["photo1.jpg"]
    md5 = hashlib.md5(photo).hexdigest()
    svc.store.create_bank("md5-list")
    entry, _ = svc.store.add_entry("md5-list", "md5", md5)
    svc.store.create_bank("sha-list")
    svc.store.add_entry("sha-list", "sha256", hashlib.sha256(b"other").hexdigest())
    hit = [{"bank_content_id": entry.id, "distance": "0"}]
    lookup = f"/m/raw_lookup?signal_type=video_md5&signal={md5}&include_distance=true"
    assert _wait_for(svc, lookup, {"matches": hit}) == {"matches": hit}
    r = svc.client.post("/m/lookup", files={"photo": ("p.jpg", photo)}, headers=svc.auth("match"))
    assert r.json() == {"pdq": {}, "video_md5": {"MD5_LIST": hit}}
    r = svc.client.post(
        "/m/lookup?types=pdq", files={"photo": ("p.jpg", photo)}, headers=svc.auth("match")
    )
    assert r.json() == {"pdq": {}}
    r = svc.client.post("/m/lookup", files={"video": ("v.mp4", photo)}, headers=svc.auth("match"))
    assert r.json() == {"video_md5": {"MD5_LIST": hit}}
    r = svc.client.get(f"/m/raw_lookup?signal_type=md5&signal={md5}", headers=svc.auth("lookup"))
    assert (r.status_code, r.json()) == (400, {"message": "No such SignalType 'md5'"})
    listed = [{"enabled_ratio": 1.0, "name": n} for n in ("pdq", "video_md5", "sha256")]
    assert _wait_for(svc, "/c/signal_type", listed, scope="bank:read") == listed
    status = svc.client.get("/m/index/status", headers=svc.auth("lookup")).json()
    assert {name: s["size"] for name, s in status.items()} == {
        "pdq": 0,
        "video_md5": 1,
        "sha256": 1,
    }
    r = svc.client.get(
        f"/c/bank/MD5_LIST/content/{entry.id}?include_signals=true", headers=svc.auth("bank:read")
    )
    assert r.json()["signals"] == {"video_md5": md5}


def test_allow_banks_suppress_lookups_but_raw_lookup_lists_every_entry(
    svc: TestService,
) -> None:
    block = svc.store.add_entry(svc.store.create_bank("block").name, "pdq", FILLER)[0]
    allow = svc.store.add_entry(
        svc.store.create_bank("known-benign", kind="allow").name, "pdq", FILLER
    )[0]
    raw = f"/m/raw_lookup?signal_type=pdq&signal={FILLER}"
    both = {"matches": sorted([block.id, allow.id])}
    assert _wait_for(svc, raw, both) == both
    r = svc.client.get(raw + "&banks=KNOWN_BENIGN", headers=svc.auth("lookup"))
    assert r.json() == {"matches": [allow.id]}
    r = svc.client.get(f"/m/lookup?signal_type=pdq&signal={FILLER}", headers=svc.auth("lookup"))
    assert r.json() == {}


def test_uploads_take_hmas_field_names(shared: TestService, photos: dict[str, bytes]) -> None:
    photo, hash_key = photos["photo1.jpg"], shared.auth("hash")

    def post(path: str, **kwargs: Any) -> Any:
        return shared.client.post(path, headers=hash_key, **kwargs)

    r = post("/h/hash", files=[("photo", ("a.jpg", photo)), ("photo", ("b.jpg", photo))])
    assert r.json() == {"message": "Only one file allowed per request"}
    r = post("/h/hash?types=video_md5", files={"photo": ("a.jpg", photo)})
    assert r.json() == {"message": "signal type 'video_md5' doesn't exist or is disabled"}
    assert post("/h/hash?types=,", files={"photo": ("a.jpg", photo)}).json() == {
        "message": "empty signal type selection"
    }
    r = post("/h/hash", data={"photo": "not a file"})
    assert r.json() == {"message": "Missing multipart/form-data file upload"}
    r = post("/h/hash", files={"photo": ("a.jpg", b"not an image")})
    assert r.status_code in (415, 422) and set(r.json()) == {"message"}


def test_urls_are_never_fetched(shared: TestService) -> None:
    svc = shared
    for path, scope in (
        ("/h/hash?url=http://127.0.0.1:9/x.jpg", "hash"),
        ("/m/lookup?url=http://127.0.0.1:9/x.jpg", "lookup"),
    ):
        r = svc.client.get(path, headers=svc.auth(scope))
        assert (r.status_code, r.json()) == (400, URL_DISABLED)
    r = svc.client.post(
        "/c/bank/REFUSING/content?url=http://x/y.jpg", headers=svc.auth("bank:write")
    )
    assert (r.status_code, r.json()) == (400, URL_DISABLED)
    r = svc.client.get("/h/hash", headers=svc.auth("hash"))
    assert r.json() == {"message": "url is required"}
    r = svc.client.get("/m/lookup", headers=svc.auth("lookup"))
    assert r.json() == {"message": "Either url or both signal and signal_type are required"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (["a", "b"], "Request input was not a dict"),
        ({"pdq": "x"}, "Comparison hashes for pdq was not a list"),
        ({"foo": ["a", "b"]}, "No such SignalType 'foo'"),
        ({"pdq": [FILLER, "abc"]}, "Invalid pdq hash: invalid PDQ hash"),
    ],
)
def test_compare_refuses_what_hma_refuses(shared: TestService, body: Any, message: str) -> None:
    r = shared.client.post("/m/compare", json=body, headers=shared.auth("lookup"))
    assert (r.status_code, r.json()) == (400, {"message": message})


def test_compare_exact_signals_says_only_whether_they_match(shared: TestService) -> None:
    body = {"video_md5": ["0" * 32, "0" * 32], "sha1": ["0" * 40, "1" * 40]}
    r = shared.client.post("/m/compare", json=body, headers=shared.auth("lookup"))
    assert r.json() == {"sha1": [False, {}], "video_md5": [True, {}]}


# --------------------------------------------------------------------------- never a 500

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=70),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=8,
)
PDQ_LIKE = st.sampled_from([FILLER, FILLER.upper(), "abc", "", "\x00", "g" * 64])
SIGNAL_BODIES = st.dictionaries(
    st.sampled_from(["pdq", "video_md5", "sha256", "url", "md5", "note", "metadata", "x"]),
    JSON | PDQ_LIKE,
    max_size=3,
)


def test_any_json_body_gets_an_answer_in_hmas_shape(tmp_path: Path) -> None:
    with service_client(tmp_path) as svc:
        svc.client.post("/c/banks", json={"name": "B"}, headers=svc.auth("bank:write"))

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(
            body=JSON | SIGNAL_BODIES,
            route=st.sampled_from(["/m/compare", "/c/bank/B/signal", "/c/banks", "/c/bank/B"]),
        )
        def check(body: Any, route: str) -> None:
            method = "PUT" if route == "/c/bank/B" else "POST"
            r = svc.client.request(method, route, json=body, headers=svc.auth("admin"))
            assert r.status_code in (200, 201, 400, 403, 404, 422), r.text
            shape = r.json()
            if r.status_code == 422:
                assert isinstance(shape, list) and all("loc" in e and "msg" in e for e in shape)
            elif r.status_code >= 400:
                assert set(shape) == {"message"}

        check()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    signal_type=st.sampled_from(["pdq", "video_md5", "url", "sha1", "foo", ""]),
    signal=PDQ_LIKE | st.text(max_size=80),
    extra=st.sampled_from(["", "&include_distance=maybe", "&banks=,,", "&include_distance=1"]),
)
def test_any_query_gets_an_answer_in_hmas_shape(
    shared: TestService, signal_type: str, signal: str, extra: str
) -> None:
    client, key = shared.client, shared.auth("lookup")
    for route in ("/m/raw_lookup", "/m/lookup"):
        r = client.get(route, params={"signal_type": signal_type, "signal": signal}, headers=key)
        assert r.status_code in (200, 400, 422), r.text
        r = client.get(f"{route}?signal_type={signal_type}{extra}", headers=key)
        assert r.status_code in (200, 400, 422), r.text
