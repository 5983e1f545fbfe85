"""The ``/v1`` API as a client uses it: hash and match uploads, look hashes up, curate banks
and their entries, import lists in the background, and read the audit trail and the
service's state. Store-backed behaviour runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lightkeeper.banks.testing import backends
from lightkeeper.hashing import bytes_signals, hash_bytes
from lightkeeper.service.keys import SCOPES, list_keys
from lightkeeper.service.settings import MAX_BATCH
from lightkeeper.service.testing import TestService, service_client

#: The design's promise: a hash added anywhere is matched everywhere within about a second.
PROPAGATION_S = 1.0
#: A file that is no image: matched by its exact hashes only.
DOCUMENT = b"%PDF-1.4\n% a benign stand-in for a listed document\n" + bytes(range(256))


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.02)


def flip_bits(value: str, bits: int) -> str:
    """A PDQ hash `bits` bits away from `value` (a look-alike's hash)."""
    return f"{int(value, 16) ^ ((1 << bits) - 1):064x}"


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


@pytest.fixture(params=backends())
def svc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestService]:
    with service_client(tmp_path, request.param) as service:
        yield service


@pytest.fixture
def sqlite_svc(tmp_path: Path) -> Iterator[TestService]:
    with service_client(tmp_path) as service:
        yield service


class Api:
    """The calls these tests make, each with the least scope that may make it."""

    def __init__(self, svc: TestService) -> None:
        self.svc = svc
        self.client = svc.client

    def ok(self, response: Any, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        return response.json()

    def create_bank(self, name: str, **settings: Any) -> dict[str, Any]:
        body = {"name": name, **settings}
        response = self.client.post("/v1/banks", json=body, headers=self.svc.auth("bank:write"))
        return self.ok(response, 201)  # type: ignore[no-any-return]

    def add(self, bank: str, *entries: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(
            f"/v1/banks/{bank}/entries",
            json={"entries": list(entries)},
            headers=self.svc.auth("bank:write"),
        )
        return self.ok(response)  # type: ignore[no-any-return]

    def entries(self, bank: str, **params: Any) -> dict[str, Any]:
        response = self.client.get(
            f"/v1/banks/{bank}/entries", params=params, headers=self.svc.auth("bank:read")
        )
        return self.ok(response)  # type: ignore[no-any-return]

    def patch_bank(self, bank: str, **changes: Any) -> dict[str, Any]:
        response = self.client.patch(
            f"/v1/banks/{bank}", json=changes, headers=self.svc.auth("bank:write")
        )
        return self.ok(response)  # type: ignore[no-any-return]

    def patch_entry(self, bank: str, entry_id: int, **changes: Any) -> Any:
        return self.client.patch(
            f"/v1/banks/{bank}/entries/{entry_id}",
            json=changes,
            headers=self.svc.auth("bank:write"),
        )

    def match(self, data: bytes, scope: str = "match") -> dict[str, Any]:
        response = self.client.post("/v1/match", content=data, headers=self.svc.auth(scope))
        return self.ok(response)  # type: ignore[no-any-return]

    def lookup(self, signal_type: str, value: str) -> dict[str, Any]:
        response = self.client.get(
            "/v1/lookup",
            params={"signal_type": signal_type, "value": value},
            headers=self.svc.auth("lookup"),
        )
        return self.ok(response)["results"][0]  # type: ignore[no-any-return]

    def matched(self, signal_type: str, value: str) -> bool:
        return bool(self.lookup(signal_type, value)["matched"])

    def import_list(self, bank: str, body: bytes, **params: Any) -> Any:
        return self.client.post(
            f"/v1/banks/{bank}/imports",
            content=body,
            params=params,
            headers=self.svc.auth("bank:write"),
        )

    def finished_import(self, import_id: int) -> dict[str, Any]:
        state: dict[str, Any] = {}

        def done() -> bool:
            response = self.client.get(
                f"/v1/imports/{import_id}", headers=self.svc.auth("bank:write")
            )
            state.update(self.ok(response))
            return state["status"] != "running"

        wait_until(done, what=f"import {import_id} finished")
        return state


@pytest.fixture
def api(svc: TestService) -> Api:
    return Api(svc)


# -------------------------------------------------------------------------------- hashing


def test_hash_of_an_upload_is_the_librarys(
    sqlite_svc: TestService, photo_bytes: Callable[..., bytes]
) -> None:
    photo = photo_bytes("jpeg", seed=4, quality=90)
    headers = sqlite_svc.auth("hash")
    client = sqlite_svc.client
    expected = hash_bytes(photo)
    raw = client.post("/v1/hash", content=photo, headers=headers)
    assert raw.status_code == 200
    assert raw.json() == expected
    multipart = client.post(
        "/v1/hash", files={"file": ("a.jpg", photo, "image/jpeg")}, headers=headers
    )
    assert multipart.json() == expected
    # A file part under another name is found too; form fields beside it are ignored.
    other = client.post(
        "/v1/hash", files={"upload": ("x", photo)}, data={"note": "hi"}, headers=headers
    )
    assert other.json() == expected
    dihedral = client.post("/v1/hash", params={"dihedral": "true"}, content=photo, headers=headers)
    assert dihedral.json() == hash_bytes(photo, dihedral=True)
    assert len(dihedral.json()["pdq_dihedral"]) == 8


def test_hash_of_bytes_that_are_no_image_gives_exact_hashes_and_the_reason(
    sqlite_svc: TestService,
) -> None:
    body = sqlite_svc.client.post(
        "/v1/hash", content=DOCUMENT, headers=sqlite_svc.auth("hash")
    ).json()
    assert {k: body[k] for k in bytes_signals(DOCUMENT)} == bytes_signals(DOCUMENT)
    assert body["error_type"] == "unsupported_format"
    assert "PDF" in body["error"]
    assert "pdq" not in body


@pytest.mark.parametrize(
    ("request_kwargs", "code"),
    [
        ({"content": b""}, "bad_upload"),
        ({"files": {"note": (None, "no file here")}}, "bad_upload"),
        (
            {"content": b"--x\r\nbroken", "headers": {"Content-Type": "multipart/form-data"}},
            "bad_upload",
        ),
    ],
    ids=["empty", "multipart-without-file", "multipart-without-boundary"],
)
def test_an_upload_without_a_file_is_400(
    sqlite_svc: TestService, request_kwargs: dict[str, Any], code: str
) -> None:
    headers = {**sqlite_svc.auth("hash"), **request_kwargs.pop("headers", {})}
    response = sqlite_svc.client.post("/v1/hash", headers=headers, **request_kwargs)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code


# -------------------------------------------------------------------------------- matching


def test_a_listed_photo_is_rejected_with_full_evidence(
    api: Api, photo_bytes: Callable[..., bytes]
) -> None:
    original = photo_bytes("png", seed=3)
    listed = str(hash_bytes(original)["pdq"])
    api.create_bank("known")
    api.add(
        "known",
        {
            "signal_type": "pdq",
            "value": listed,
            "list_name": "test-list",
            "list_version": "2024-06",
            "external_id": "x-1",
            "classification": "A1",
        },
    )
    entry_id = api.entries("known")["entries"][0]["id"]
    upload = photo_bytes("jpeg", seed=3, quality=80)  # the same picture, re-encoded
    own = hash_bytes(upload)
    wait_until(lambda: api.match(upload)["matched"], what="entry indexed")

    result = api.match(upload)
    assert result["decision"] == "reject"
    assert result["sha256"] == own["sha256"]
    assert {"pdq", "md5", "sha256"} <= set(result["signals"])
    assert result["error"] is None
    [evidence] = result["matches"]
    assert evidence == {
        "bank": "known",
        "bank_kind": "block",
        "entry_id": entry_id,
        "signal_type": "pdq",
        "value": None,
        "content_value": own["pdq"],
        "distance": hamming(str(own["pdq"]), listed),
        "threshold": 31,
        "quality": own["pdq_quality"],
        "variant": "original",
        "list_name": "test-list",
        "list_version": "2024-06",
        "external_id": "x-1",
        "classification": "A1",
    }
    assert evidence["distance"] <= evidence["threshold"]
    # Multipart uploads are matched the same way.
    multipart = api.client.post(
        "/v1/match", files={"file": ("u.jpg", upload)}, headers=api.svc.auth("match")
    ).json()
    assert multipart["matches"] == result["matches"]

    unrelated = api.match(photo_bytes("png", seed=99))
    assert unrelated["decision"] == "accept"
    assert unrelated["matched"] is False
    assert unrelated["matches"] == [] and unrelated["suppressed"] == []


def test_bytes_that_are_no_image_are_matched_by_exact_hash(api: Api) -> None:
    api.create_bank("documents")
    api.add("documents", {"signal_type": "md5", "value": bytes_signals(DOCUMENT)["md5"]})
    wait_until(lambda: api.match(DOCUMENT)["matched"], what="entry indexed")
    result = api.match(DOCUMENT)
    assert result["decision"] == "reject"
    assert [m["signal_type"] for m in result["matches"]] == ["md5"]
    assert result["matches"][0]["distance"] == 0
    assert result["error_type"] == "unsupported_format"
    assert result["error"]
    assert "pdq" not in result["signals"]
    assert result["sha256"] == bytes_signals(DOCUMENT)["sha256"]


def test_an_allow_bank_suppresses_a_match_visibly(
    api: Api, photo_bytes: Callable[..., bytes]
) -> None:
    photo = photo_bytes("png", seed=21)
    pdq = str(hash_bytes(photo)["pdq"])
    api.create_bank("block-list")
    api.create_bank("false-positives", kind="allow")
    api.add("block-list", {"signal_type": "pdq", "value": pdq})
    api.add("false-positives", {"signal_type": "pdq", "value": flip_bits(pdq, 2)})
    wait_until(lambda: api.match(photo)["allowed"], what="both entries indexed")

    result = api.match(photo)
    assert result["decision"] == "accept"
    assert result["matches"] == []
    [suppressed] = result["suppressed"]
    assert suppressed["match"]["bank"] == "block-list"
    assert suppressed["suppressed_by"]["bank"] == "false-positives"
    assert suppressed["suppressed_by"]["bank_kind"] == "allow"
    assert [a["bank"] for a in result["allowed"]] == ["false-positives"]


def test_lookup_of_one_hash(api: Api, photo_bytes: Callable[..., bytes]) -> None:
    pdq = str(hash_bytes(photo_bytes("png", seed=5))["pdq"])
    api.create_bank("known")
    api.add("known", {"signal_type": "pdq", "value": pdq, "list_version": "v1"})
    wait_until(lambda: api.matched("pdq", flip_bits(pdq, 4)), what="entry indexed")
    found = api.lookup("pdq", flip_bits(pdq, 4).upper())  # any case of hex is the same hash
    assert found["signal_type"] == "pdq"
    assert found["error"] is None
    [evidence] = found["matches"]
    assert evidence["distance"] == 4
    assert evidence["list_version"] == "v1"
    assert not api.matched("pdq", flip_bits(pdq, 64))

    def one(signal_type: str, value: str) -> Any:
        return api.client.get(
            "/v1/lookup",
            params={"signal_type": signal_type, "value": value},
            headers=api.svc.auth("lookup"),
        )

    malformed = one("pdq", "not-a-hash")
    assert malformed.status_code == 422
    assert malformed.json()["error"]["code"] == "invalid_signal"
    unknown = one("photodna", "00")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_signal_type"


def test_lookup_of_a_batch_answers_each_item_in_order(
    api: Api, photo_bytes: Callable[..., bytes]
) -> None:
    pdq = str(hash_bytes(photo_bytes("png", seed=6))["pdq"])
    md5 = bytes_signals(DOCUMENT)["md5"]
    api.create_bank("known")
    api.add("known", {"signal_type": "pdq", "value": pdq}, {"signal_type": "md5", "value": md5})
    wait_until(lambda: api.matched("md5", md5) and api.matched("pdq", pdq), what="indexed")
    items = [
        {"signal_type": "md5", "value": "0" * 32},
        {"signal_type": "pdq", "value": flip_bits(pdq, 3), "quality": 90},
        {"signal_type": "pdq", "value": "zz"},
        {"signal_type": "photodna", "value": "00"},
        {"signal_type": "md5", "value": md5},
        {"signal_type": "pdq", "value": pdq, "quality": 10},  # below the bank's quality floor
    ]
    response = api.client.post("/v1/lookup", json={"hashes": items}, headers=api.svc.auth("lookup"))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["signal_type"], r["value"]) for r in results] == [
        (i["signal_type"], i["value"]) for i in items
    ]
    assert [r["matched"] for r in results] == [False, True, False, False, True, False]
    assert [r["error_type"] for r in results] == [
        None,
        None,
        "invalid_signal",
        "unknown_signal_type",
        None,
        None,
    ]
    assert results[2]["error"] and results[3]["error"]
    assert results[1]["matches"][0]["distance"] == 3
    assert results[1]["quality"] == 90
    assert results[5]["low_quality"] is True


def test_a_batch_over_the_limit_is_422(sqlite_svc: TestService) -> None:
    headers = sqlite_svc.auth("lookup")

    def batch(n: int) -> Any:
        hashes = [{"signal_type": "md5", "value": f"{i:032x}"} for i in range(n)]
        return sqlite_svc.client.post("/v1/lookup", json={"hashes": hashes}, headers=headers)

    over = batch(MAX_BATCH + 1)
    assert over.status_code == 422
    at_limit = batch(MAX_BATCH)
    assert at_limit.status_code == 200
    assert len(at_limit.json()["results"]) == MAX_BATCH
    assert batch(0).status_code == 422


# ---------------------------------------------------------------------------------- banks


def test_banks_create_list_show_update_delete(api: Api) -> None:
    created = api.create_bank("ncmec", description="industry list")
    assert created["name"] == "ncmec"
    assert created["kind"] == "block" and created["enabled"] is True
    assert created["thresholds"] == {} and created["pdq_quality_floor"] == 50
    assert created["entries"] == 0
    api.create_bank("alpha", thresholds={"pdq": 20}, kind="allow")

    write, read = api.svc.auth("bank:write"), api.svc.auth("bank:read")
    client = api.client
    again = client.post("/v1/banks", json={"name": "ncmec"}, headers=write)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    for bad in (
        {"name": "Not A Name"},
        {"name": "ok", "thresholds": {"pdq": 257}},
        {"name": "ok", "thresholds": {"md5": 3}},
        {"name": "ok", "kind": "maybe"},
        {"name": "ok", "surprise": 1},
    ):
        response = client.post("/v1/banks", json=bad, headers=write)
        assert response.status_code == 422, (bad, response.text)
    assert client.post(
        "/v1/banks", json={"name": "ok", "thresholds": {"photodna": 3}}, headers=write
    ).status_code in (404, 422)

    listed = api.ok(client.get("/v1/banks", headers=read))
    assert [b["name"] for b in listed] == ["alpha", "ncmec"]
    api.add("ncmec", {"signal_type": "md5", "value": "1" * 32})
    shown = api.ok(client.get("/v1/banks/ncmec", headers=read))
    assert shown["entries"] == 1 and shown["description"] == "industry list"

    changed = api.patch_bank(
        "ncmec", thresholds={"pdq": 20}, kind="allow", enabled=False, pdq_quality_floor=70
    )
    assert changed["thresholds"] == {"pdq": 20}
    assert changed["kind"] == "allow" and changed["enabled"] is False
    assert changed["pdq_quality_floor"] == 70
    assert api.patch_bank("ncmec", thresholds={"pdq": None})["thresholds"] == {}
    assert api.patch_bank("ncmec", kind="block", enabled=True)["enabled"] is True
    renamed = api.patch_bank("ncmec", name="ncmec-2024")
    assert renamed["name"] == "ncmec-2024"
    assert client.get("/v1/banks/ncmec", headers=read).status_code == 404
    assert (
        client.patch("/v1/banks/alpha", json={"name": "ncmec-2024"}, headers=write).status_code
        == 409
    )
    assert client.patch("/v1/banks/nope", json={"enabled": False}, headers=write).status_code == 404

    deleted = client.delete("/v1/banks/ncmec-2024", headers=write)
    assert api.ok(deleted) == {"deleted_entries": 1}
    assert client.get("/v1/banks/ncmec-2024", headers=read).status_code == 404
    assert client.delete("/v1/banks/ncmec-2024", headers=write).status_code == 404
    assert [b["name"] for b in api.ok(client.get("/v1/banks", headers=read))] == ["alpha"]


def test_bank_settings_change_matching(api: Api, photo_bytes: Callable[..., bytes]) -> None:
    pdq = str(hash_bytes(photo_bytes("png", seed=8))["pdq"])
    near = flip_bits(pdq, 6)
    api.create_bank("known")
    api.add("known", {"signal_type": "pdq", "value": pdq})
    wait_until(lambda: api.matched("pdq", near), what="entry indexed")

    api.patch_bank("known", thresholds={"pdq": 5})
    wait_until(lambda: not api.matched("pdq", near), what="tighter threshold applied")
    assert api.matched("pdq", flip_bits(pdq, 5))
    api.patch_bank("known", thresholds={"pdq": None})
    wait_until(lambda: api.matched("pdq", near), what="default threshold again")

    api.patch_bank("known", enabled=False)
    wait_until(lambda: not api.matched("pdq", pdq), what="disabled bank ignored")
    api.patch_bank("known", enabled=True)
    wait_until(lambda: api.matched("pdq", pdq), what="enabled bank matches")

    api.patch_bank("known", kind="allow")
    wait_until(lambda: not api.matched("pdq", pdq), what="an allow bank does not block")
    assert api.lookup("pdq", pdq)["allowed"][0]["bank"] == "known"


# -------------------------------------------------------------------------------- entries


def test_entries_add_idempotently_and_page_by_id(api: Api) -> None:
    api.create_bank("known")
    hashes = [{"signal_type": "md5", "value": f"{i:032x}"} for i in range(1, 6)]
    assert api.add("known", *hashes) == {"added": 5, "updated": 0, "removed": 0, "unchanged": 0}
    assert api.add("known", *hashes) == {"added": 0, "updated": 0, "removed": 0, "unchanged": 5}
    relabelled = api.add("known", {**hashes[0], "list_version": "v2"})
    assert relabelled["added"] == 0 and relabelled["updated"] == 1

    pages: list[list[int]] = []
    after = 0
    while True:
        page = api.entries("known", after_id=after, limit=2)
        pages.append([e["id"] for e in page["entries"]])
        if page["next_after_id"] is None:
            break
        after = page["next_after_id"]
    ids = [i for page_ids in pages for i in page_ids]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert [len(p) for p in pages[:2]] == [2, 2]
    everything = api.entries("known")["entries"]
    assert [e["value"] for e in everything] == [h["value"] for h in hashes]
    assert everything[0]["list_version"] == "v2"

    entry = everything[1]
    shown = api.ok(
        api.client.get(f"/v1/banks/known/entries/{entry['id']}", headers=api.svc.auth("bank:read"))
    )
    assert shown == entry
    assert shown["bank"] == "known" and shown["enabled"] is True


def test_a_bad_entry_refuses_its_whole_batch(api: Api) -> None:
    api.create_bank("known")
    response = api.client.post(
        "/v1/banks/known/entries",
        json={
            "entries": [
                {"signal_type": "md5", "value": "a" * 32},
                {"signal_type": "md5", "value": "not hex"},
            ]
        },
        headers=api.svc.auth("bank:write"),
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_signal"
    assert api.entries("known")["entries"] == []
    missing = api.client.post(
        "/v1/banks/nope/entries",
        json={"entries": [{"signal_type": "md5", "value": "a" * 32}]},
        headers=api.svc.auth("bank:write"),
    )
    assert missing.status_code == 404


def test_entries_disable_enable_and_remove(api: Api) -> None:
    api.create_bank("known")
    api.create_bank("other")
    md5 = "b" * 32
    api.add("known", {"signal_type": "md5", "value": md5})
    api.add("other", {"signal_type": "md5", "value": "c" * 32})
    entry_id = api.entries("known")["entries"][0]["id"]
    other_id = api.entries("other")["entries"][0]["id"]
    wait_until(lambda: api.matched("md5", md5), what="entry indexed")

    disabled = api.ok(api.patch_entry("known", entry_id, enabled=False))
    assert disabled == {
        "id": entry_id,
        "bank": "known",
        "signal_type": "md5",
        "enabled": False,
        "disabled_until": None,
    }
    assert "value" not in disabled  # a curator without bank:read learns no hash from a write
    wait_until(lambda: not api.matched("md5", md5), what="disabled entry ignored")
    api.ok(api.patch_entry("known", entry_id, enabled=True))
    wait_until(lambda: api.matched("md5", md5), what="enabled entry matches")

    until = datetime.now(UTC) + timedelta(days=1)
    later = api.ok(api.patch_entry("known", entry_id, disabled_until=until.isoformat()))
    assert datetime.fromisoformat(later["disabled_until"]) == until
    wait_until(lambda: not api.matched("md5", md5), what="entry disabled until tomorrow")
    past = datetime.now(UTC) - timedelta(seconds=1)
    api.ok(api.patch_entry("known", entry_id, disabled_until=past.isoformat()))
    wait_until(lambda: api.matched("md5", md5), what="a disable period that ended")

    both = api.patch_entry("known", entry_id, enabled=True, disabled_until=until.isoformat())
    assert both.status_code == 422
    naive = api.patch_entry("known", entry_id, disabled_until="2030-01-01T00:00:00")
    assert naive.status_code == 422
    # An entry is reached through its own bank only.
    assert api.patch_entry("known", other_id, enabled=False).status_code == 404
    read = api.svc.auth("bank:read")
    assert api.client.get(f"/v1/banks/known/entries/{other_id}", headers=read).status_code == 404

    write = api.svc.auth("bank:write")
    removed = api.client.delete(f"/v1/banks/known/entries/{entry_id}", headers=write)
    assert api.ok(removed)["id"] == entry_id
    assert api.client.get(f"/v1/banks/known/entries/{entry_id}", headers=read).status_code == 404
    assert (
        api.client.delete(f"/v1/banks/known/entries/{entry_id}", headers=write).status_code == 404
    )
    wait_until(lambda: not api.matched("md5", md5), what="removed entry gone")
    assert api.matched("md5", "c" * 32)


def test_an_entry_added_through_the_api_is_matchable_within_a_second(api: Api) -> None:
    api.create_bank("known")
    status = api.svc.auth("lookup")
    wait_until(
        lambda: api.ok(api.client.get("/v1/index/status", headers=status))["lag"] == 0,
        what="index current",
    )
    md5 = "d" * 32
    assert not api.matched("md5", md5)
    api.add("known", {"signal_type": "md5", "value": md5})
    wait_until(lambda: api.matched("md5", md5), timeout=PROPAGATION_S, what="new entry matched")


def test_text_the_store_cannot_hold_is_refused_not_a_server_error(api: Api) -> None:
    """NUL characters (PostgreSQL text cannot hold them) and times that leave the calendar
    when converted to UTC are the client's error (422) on every backend."""
    api.create_bank("known")
    api.add("known", {"signal_type": "md5", "value": "a" * 32})
    entry_id = api.entries("known")["entries"][0]["id"]
    write, read = api.svc.auth("bank:write"), api.svc.auth("bank:read")
    client = api.client
    refused = [
        client.get("/v1/banks/kn%00own", headers=read),
        client.post("/v1/banks", json={"name": "x", "description": "a\u0000b"}, headers=write),
        client.patch("/v1/banks/known", json={"description": "\u0000"}, headers=write),
        client.post(
            "/v1/banks/known/entries",
            json={"entries": [{"signal_type": "md5", "value": "b" * 32, "note": "\u0000"}]},
            headers=write,
        ),
        api.import_list("known", b"c" * 32, list_name="a\x00b"),
        api.patch_entry("known", entry_id, disabled_until="9999-12-31T23:00:00-14:00"),
        api.patch_entry("known", entry_id, disabled_until="0001-01-01T00:00:00+14:00"),
    ]
    for response in refused:
        assert response.status_code == 422, (response.request.url, response.text)
    assert [e["value"] for e in api.entries("known")["entries"]] == ["a" * 32]
    assert api.ok(client.get("/v1/banks", headers=read))[0]["description"] == ""
    # The far end of the calendar itself is fine.
    far = api.patch_entry("known", entry_id, disabled_until="9999-12-31T23:00:00+00:00")
    assert far.status_code == 200, far.text


# -------------------------------------------------------------------------------- imports


PDQ_LIST = [f"{i:02x}" * 32 for i in (0x11, 0x22, 0x33)]


def test_a_lines_list_imports_in_the_background(api: Api) -> None:
    api.create_bank("known")
    body = ("# signal_type: pdq\n" + "\n".join(PDQ_LIST) + "\nnot-a-hash\n").encode()
    response = api.import_list("known", body, list_name="test-list", list_version="3")
    assert response.status_code == 202, response.text
    started = response.json()
    assert started["bank"] == "known" and started["format"] == "lines"
    assert started["status"] in ("running", "complete")
    done = api.finished_import(started["id"])
    assert done["status"] == "complete", done
    assert (done["added"], done["invalid"], done["error"]) == (3, 1, None)
    assert done["list_version"] == "3" and done["finished_at"] is not None
    entries = api.entries("known")["entries"]
    assert sorted(e["value"] for e in entries) == PDQ_LIST
    assert {e["list_version"] for e in entries} == {"3"}
    wait_until(lambda: api.matched("pdq", PDQ_LIST[1]), what="imported hash matched")

    # The same list again changes nothing; a bare list names its type by parameter.
    again = api.import_list("known", "\n".join(PDQ_LIST).encode(), signal_type="pdq")
    assert again.status_code == 202
    repeat = api.finished_import(again.json()["id"])
    assert (repeat["status"], repeat["added"], repeat["unchanged"]) == ("complete", 0, 3)
    imports = api.ok(api.client.get("/v1/banks/known/imports", headers=api.svc.auth("bank:read")))
    assert [i["id"] for i in imports] == [again.json()["id"], started["id"]]


def test_a_csv_list_imports_from_a_multipart_upload(api: Api) -> None:
    api.create_bank("known")
    csv = b"signal_type,value,external_id,classification\nmd5,%s,e-1,A1\nsha256,%s,e-2,B1\n" % (
        b"e" * 32,
        b"f" * 64,
    )
    response = api.client.post(
        "/v1/banks/known/imports",
        files={"file": ("list.csv", csv, "text/csv")},
        headers=api.svc.auth("bank:write"),
    )
    assert response.status_code == 202, response.text
    done = api.finished_import(response.json()["id"])
    assert (done["status"], done["format"], done["added"]) == ("complete", "csv", 2)
    entries = api.entries("known")["entries"]
    assert {(e["signal_type"], e["external_id"], e["classification"]) for e in entries} == {
        ("md5", "e-1", "A1"),
        ("sha256", "e-2", "B1"),
    }


def test_a_broken_list_fails_clearly_and_loses_nothing(api: Api) -> None:
    api.create_bank("known")
    api.add("known", {"signal_type": "md5", "value": "a" * 32})
    bank_read = api.svc.auth("bank:read")

    # Unreadable from its first line: refused before an import begins.
    refused = api.import_list("known", b"this is not a hash list\n")
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "list_format"
    assert api.ok(api.client.get("/v1/banks/known/imports", headers=bank_read)) == []
    assert api.import_list("known", b"md5,x", format="no-such-format").status_code in (404, 422)
    assert api.import_list("nope", b"a" * 32).status_code == 404
    no_file = api.client.post(
        "/v1/banks/known/imports",
        files={"note": (None, "the list was forgotten")},
        headers=api.svc.auth("bank:write"),
    )
    assert no_file.status_code == 400
    assert no_file.json()["error"]["code"] == "bad_upload"

    # 64 hex digits could be PDQ or SHA-256: the import stops and says so.
    ambiguous = api.import_list("known", ("\n".join(PDQ_LIST) + "\n").encode())
    assert ambiguous.status_code == 202
    failed = api.finished_import(ambiguous.json()["id"])
    assert failed["status"] == "failed"
    assert "signal" in failed["error"].lower()
    assert [e["value"] for e in api.entries("known")["entries"]] == ["a" * 32]
    shown = api.ok(api.client.get("/v1/banks/known", headers=bank_read))
    assert shown["entries"] == 1


# ---------------------------------------------------------------------------------- audit


def test_the_audit_trail_names_the_key_behind_each_change(api: Api) -> None:
    curator = next(k for k in list_keys(api.svc.store) if k.name == "test-bank:write")
    actor = f"key:{curator.id} (test-bank:write)"
    api.create_bank("known")
    api.add("known", {"signal_type": "md5", "value": "a" * 32})
    entry_id = api.entries("known")["entries"][0]["id"]
    api.ok(api.patch_entry("known", entry_id, enabled=False))
    api.patch_bank("known", thresholds={"pdq": 20})
    imported = api.import_list("known", b"# signal_type: pdq\n" + PDQ_LIST[0].encode())
    api.finished_import(imported.json()["id"])
    api.ok(api.client.delete("/v1/banks/known", headers=api.svc.auth("bank:write")))

    admin = api.svc.auth("admin")
    events = api.ok(api.client.get("/v1/audit", headers=admin))
    changes = [e for e in events if e["action"] != "key.create"]
    assert {e["action"] for e in changes} == {
        "bank.create",
        "entries.write",
        "entry.disable",
        "bank.update",
        "import.start",
        "import.finish",
        "bank.delete",
    }
    for event in changes:
        if event["action"] == "entries.write" and event["details"]["import_run"] is not None:
            continue  # see test_an_imports_batches_are_attributed_to_the_key
        assert event["actor"] == actor, event
    by_action = {e["action"]: e for e in changes}
    assert by_action["bank.create"]["subject"] == "bank:known"
    assert by_action["entry.disable"]["details"]["entry_id"] == entry_id
    # The keys made by the test helper are in the trail too, under their creator.
    assert [e["action"] for e in events[: len(SCOPES)]] == ["key.create"] * len(SCOPES)
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)
    # Hash values are confidential: the trail holds counts and ids, never hashes.
    assert "a" * 32 not in str(events) and PDQ_LIST[0] not in str(events)

    page = api.ok(
        api.client.get("/v1/audit", params={"after_id": ids[2], "limit": 2}, headers=admin)
    )
    assert [e["id"] for e in page] == ids[3:5]


def test_an_imports_batches_are_attributed_to_the_key(sqlite_svc: TestService) -> None:
    api = Api(sqlite_svc)
    curator = next(k for k in list_keys(api.svc.store) if k.name == "test-bank:write")
    api.create_bank("known")
    imported = api.import_list("known", b"# signal_type: pdq\n" + PDQ_LIST[0].encode())
    assert api.finished_import(imported.json()["id"])["added"] == 1
    events = api.ok(api.client.get("/v1/audit", headers=api.svc.auth("admin")))
    [write] = [e for e in events if e["action"] == "entries.write"]
    assert write["details"]["import_run"] == imported.json()["id"]
    assert write["actor"] == f"key:{curator.id} (test-bank:write)"


# ---------------------------------------------------------------------------------- state


def test_index_status_readiness_and_metrics(api: Api) -> None:
    api.create_bank("known")
    api.add(
        "known",
        {"signal_type": "md5", "value": "a" * 32},
        {"signal_type": "pdq", "value": PDQ_LIST[0]},
    )
    status_headers = api.svc.auth("lookup")

    def status() -> dict[str, Any]:
        return api.ok(api.client.get("/v1/index/status", headers=status_headers))  # type: ignore[no-any-return]

    wait_until(lambda: status()["signal_types"].get("pdq", {}).get("size") == 1, what="indexed")
    state = status()
    assert state["loaded"] is True and state["current"] is True
    assert state["signal_types"]["md5"] == {"size": 1}
    assert state["lag"] == 0 and state["last_seq"] == state["store_seq"] > 0
    assert state["last_refresh_at"] is not None

    ready = api.client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert api.ok(api.client.get("/healthz")) == {"status": "ok"}

    assert api.lookup("md5", "a" * 32)["matched"]
    metrics = api.client.get("/metrics", headers=api.svc.auth("admin"))
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'lightkeeper_http_requests_total{method="GET",route="/v1/lookup",status="200"}' in text
    assert 'lightkeeper_index_entries{signal_type="pdq"} 1.0' in text
    assert 'lightkeeper_matches_total{bank="known",signal_type="md5"}' in text
    assert "lightkeeper_index_lag_changes 0.0" in text
