"""Region matching, switched per bank: crops and screenshots of banked photos are matched by
banks with ``regions`` on, and only by them, with evidence naming both codes, within the
bank's own region threshold; region codes follow their entry through the change log into
every process's index, and never reach a matching client.

Photos are Meta's public PDQ test photos (benign); screenshots are drawn here.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from conftest import SHARED_DIR
from lightkeeper.banks import BankStore
from lightkeeper.banks.records import DEFAULT_REGION_THRESHOLD, REGION_NAMES, EntryRegion
from lightkeeper.banks.testing import backends, temporary_store
from lightkeeper.errors import InvalidRequest
from lightkeeper.hashing import hash_bytes
from lightkeeper.matching import Match, Matcher
from lightkeeper.matching.region_codes import banked_image, upload_codes
from lightkeeper.service.app import create_app
from lightkeeper.service.testing import TestService, service_client
from lightkeeper.signals.pdq import hamming_distance
from lightkeeper.signals.regions import compatible, reference_regions, tile_regions

RGB = NDArray[np.uint8]
VECTORS = SHARED_DIR / "pdq-vectors"


def _photo(path: Path, side: int = 512) -> RGB:
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
        return np.asarray(image)


def _encode(rgb: RGB, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(out, fmt, quality=90)
    return out.getvalue()


def _screenshot(photo: RGB) -> RGB:
    """`photo` shrunk into a phone screen: bars, a header line, caption lines below it."""
    screen = Image.new("RGB", (720, 1280), (250, 250, 250))
    draw = ImageDraw.Draw(screen)
    draw.rectangle((0, 0, 720, 40), fill=(0, 0, 0))
    draw.rectangle((0, 1190, 720, 1280), fill=(230, 230, 235))
    draw.text((150, 250), "someone posted this", fill=(60, 60, 64), font_size=28)
    shrunk = Image.fromarray(photo).resize((420, 263), Image.Resampling.LANCZOS)
    screen.paste(shrunk, (150, 300))
    for line in range(3):
        draw.text((30, 600 + 40 * line), "a caption line " * 3, fill=(60, 60, 64), font_size=26)
    return np.asarray(screen)


class Images:
    """The photos and uploads every test uses, hashed once."""

    def __init__(self) -> None:
        self.bridge = _photo(VECTORS / "dih" / "bridge-1-original.jpg")
        self.coaster = _photo(VECTORS / "pen-and-coaster.png")
        self.original = _encode(self.bridge)
        width = self.bridge.shape[1]
        #: The left 10 % cut off, re-encoded as JPEG.
        self.crop = _encode(self.bridge[:, round(0.10 * width) :], "JPEG")
        self.screen = _encode(_screenshot(self.bridge))
        self.signals, self.regions = banked_image(self.original, quality_floor=50)
        self.pdq = str(self.signals["pdq"])
        coaster_signals, self.coaster_regions = banked_image(
            _encode(self.coaster), quality_floor=50
        )
        self.coaster_pdq = str(coaster_signals["pdq"])
        #: Region codes of both photos: every name for the bridge; the coaster's two
        #: bottom-right tiles are plain white desk, under the quality floor.
        self.banked = len(self.regions) + len(self.coaster_regions)
        self.crop_pdq = str(hash_bytes(self.crop)["pdq"])


@pytest.fixture(scope="module")
def images() -> Images:
    return Images()


@pytest.fixture(params=backends())
def store(request: pytest.FixtureRequest) -> Iterator[BankStore]:
    with temporary_store(request.param) as store:
        yield store


def _bank_photos(store: BankStore, images: Images, bank: str) -> int:
    """Add the bridge (and the coaster) to `bank` as an image is added: with its regions."""
    store.add_entry(bank, "pdq", images.coaster_pdq, regions=images.coaster_regions)
    entry, _ = store.add_entry(bank, "pdq", images.pdq, regions=images.regions, list_version="v1")
    return entry.id


def _regions_of(matches: tuple[Match, ...]) -> list[tuple[str, str | None]]:
    return [(m.variant, m.entry_code) for m in matches]


# ------------------------------------------------------------------------- bank settings


def test_stored_region_names_are_the_reference_windows() -> None:
    """The names the store accepts (and the index keys by position) are those the region
    hasher gives a banked image, in its order."""
    regions = [*reference_regions(1000, 800), *tile_regions(1000, 800)]
    assert tuple(r.name for r in regions) == REGION_NAMES


def test_region_settings_default_off_and_are_checked(store: BankStore) -> None:
    plain = store.create_bank("plain")
    assert (plain.regions, plain.region_threshold) == (False, DEFAULT_REGION_THRESHOLD)
    on = store.create_bank("on", regions=True, region_threshold=20)
    assert (on.regions, on.region_threshold) == (True, 20)
    changed = store.update_bank("on", region_threshold=25)
    assert (changed.regions, changed.region_threshold) == (True, 25)
    assert store.update_bank("on", regions=False).regions is False
    for bad in (-1, 257):
        with pytest.raises(InvalidRequest, match="region_threshold"):
            store.create_bank("bad", region_threshold=bad)
        with pytest.raises(InvalidRequest, match="region_threshold"):
            store.update_bank("on", region_threshold=bad)


def test_region_codes_are_kept_for_image_entries_of_banks_with_regions_on(
    store: BankStore, images: Images
) -> None:
    store.create_bank("on", regions=True)
    store.create_bank("off")
    entry, outcome = store.add_entry("on", "pdq", images.pdq, regions=images.regions)
    assert outcome == "added"
    assert store.get_regions([entry.id]) == {entry.id: images.regions}
    assert len(images.regions) == len(REGION_NAMES)
    elsewhere, _ = store.add_entry("off", "pdq", images.pdq, regions=images.regions)
    bare, _ = store.add_entry("on", "pdq", images.coaster_pdq)  # a hash, no image: none
    md5, _ = store.add_entry("on", "md5", "d41d8cd98f00b204e9800998ecf8427e", regions=[])
    assert store.count_regions([entry.id, elsewhere.id, bare.id, md5.id]) == {
        entry.id: len(REGION_NAMES),
        elsewhere.id: 0,
        bare.id: 0,
        md5.id: 0,
    }

    # The same image again changes nothing; other windows replace the old ones, logged as
    # an update of the entry so that every index reads them again.
    seq = store.last_seq()
    assert store.add_entry("on", "pdq", images.pdq, regions=images.regions)[1] == "unchanged"
    assert store.last_seq() == seq
    fewer = images.regions[:3]
    assert store.add_entry("on", "pdq", images.pdq, regions=fewer)[1] == "updated"
    assert store.get_regions([entry.id])[entry.id] == fewer
    [change] = store.changes_since(seq)
    assert (change.op, change.entry_id) == ("update", entry.id)

    with pytest.raises(InvalidRequest, match="unknown region 'region:diagonal-50'"):
        store.add_entry(
            "on", "pdq", images.pdq, regions=[EntryRegion("region:diagonal-50", images.pdq, 90)]
        )


def test_region_codes_go_with_their_entry_and_their_bank(store: BankStore, images: Images) -> None:
    store.create_bank("on", regions=True)
    entry_id = _bank_photos(store, images, "on")
    store.remove_entry(entry_id)
    assert store.get_regions([entry_id]) == {}
    _bank_photos(store, images, "on")
    assert len(list(store.iter_region_rows("on"))) == images.banked
    store.delete_bank("on")
    assert list(store.iter_region_rows()) == []


# ------------------------------------------------------------------------------ matching


def test_a_crop_and_a_screenshot_match_only_banks_with_regions_on(
    store: BankStore, images: Images
) -> None:
    store.create_bank("on", regions=True)
    store.create_bank("off")
    on_id = _bank_photos(store, images, "on")
    _bank_photos(store, images, "off")
    matcher = Matcher(store)

    # The photo itself: a plain whole-hash match in both banks, as without regions.
    whole = matcher.match_bytes(images.original)
    assert {(m.bank, m.variant, m.entry_code) for m in whole.matches} == {
        ("on", "original", None),
        ("off", "original", None),
    }

    # 10 % cut off one edge: too far for the whole hash, caught through the bank's windows.
    assert hamming_distance(images.pdq, images.crop_pdq) > 31
    crop = matcher.match_bytes(images.crop)
    assert [m.bank for m in crop.matches] == ["on"]
    [match] = crop.matches
    assert match.entry_id == on_id and match.list_version == "v1"
    assert match.value == images.pdq  # the entry, never a region entry of its own
    # The evidence names the upload's code and the entry's, which can line up.
    assert match.entry_code is not None
    assert match.entry_code.startswith("region:") or match.variant.startswith("region:")
    assert compatible(match.entry_code, match.variant)
    assert match.threshold == DEFAULT_REGION_THRESHOLD and match.distance <= match.threshold
    stored = {r.region: r.value for r in store.get_regions([on_id])[on_id]}
    code = images.pdq if match.entry_code == "whole" else stored[match.entry_code]
    assert hamming_distance(code, match.content_value) == match.distance
    assert match.to_dict()["entry_code"] == match.entry_code

    # The photo inside a screenshot: found in it, and matched against the whole hash.
    screen = matcher.match_bytes(images.screen)
    assert [(m.bank, m.entry_id) for m in screen.matches] == [("on", on_id)]
    assert screen.matches[0].variant.startswith("region:content")
    assert screen.matches[0].entry_code == "whole"

    # Neither upload matches the other photo of the bank.
    assert all(m.entry_id == on_id for m in crop.matches + screen.matches)


def test_a_stickered_copy_matches_through_a_tile_of_banks_with_regions_on(
    store: BankStore, images: Images
) -> None:
    store.create_bank("on", regions=True)
    store.create_bank("off")
    on_id = _bank_photos(store, images, "on")
    _bank_photos(store, images, "off")
    stickered = Image.fromarray(images.bridge)
    height, width = images.bridge.shape[:2]
    radius = (0.10 * width * height / np.pi) ** 0.5  # an opaque disc over 10 % of the photo
    box = (width * 0.3 - radius, height * 0.7 - radius, width * 0.3 + radius, height * 0.7 + radius)
    ImageDraw.Draw(stickered).ellipse(box, fill=(255, 255, 255))
    upload = _encode(np.asarray(stickered), "JPEG")
    assert hamming_distance(images.pdq, str(hash_bytes(upload)["pdq"])) > 31

    [match] = Matcher(store).match_bytes(upload).matches
    assert (match.bank, match.entry_id, match.value) == ("on", on_id, images.pdq)
    # The evidence names the tile: the same position in the upload and in the entry.
    assert match.variant == match.entry_code and match.variant.startswith("region:tile-")
    stored = {r.region: r.value for r in store.get_regions([on_id])[on_id]}
    assert hamming_distance(stored[match.entry_code], match.content_value) == match.distance
    assert match.distance <= match.threshold == DEFAULT_REGION_THRESHOLD


@pytest.mark.parametrize(
    ("name", "elsewhere", "same", "by_hash"),
    [
        ("region:left-97", "region:right-89", "region:left-89", True),
        ("region:tile-r0c0", "region:tile-r0c1", "region:tile-r0c0", False),
    ],
)
def test_a_region_of_the_upload_meets_only_codes_it_can_line_up_with(
    store: BankStore, images: Images, name: str, elsewhere: str, same: str, by_hash: bool
) -> None:
    """Codes that cannot line up are never counted, however close: here an entry holds, as
    its right-hand window (or another tile), the very code of the upload's left-hand window
    (or top-left tile). A hash looked up by itself meets the bank's windows (a crop hashed
    elsewhere), never a tile: a tile is only a sixteenth of a picture."""
    store.create_bank("on", regions=True)
    _, codes = upload_codes(images.original)
    [code] = [code for code in codes if code.name == name]

    def entry_holding(region_name: str) -> tuple[Match, ...]:
        region = EntryRegion(region_name, code.value, code.quality)
        store.add_entry("on", "pdq", images.coaster_pdq, regions=[region])
        return Matcher(store).match_hashes({}, regions=[code]).matches

    assert entry_holding(elsewhere) == ()
    [match] = entry_holding(same)
    assert (match.variant, match.entry_code, match.distance) == (name, same, 0)
    assert bool(Matcher(store).match_hashes({"pdq": code.value}).matches) == by_hash


def test_the_region_threshold_is_applied(store: BankStore, images: Images) -> None:
    store.create_bank("on", regions=True)
    _bank_photos(store, images, "on")
    matcher = Matcher(store)
    [found] = matcher.match_bytes(images.crop).matches
    store.update_bank("on", region_threshold=found.distance - 1)
    assert matcher.match_bytes(images.crop).matches == ()
    # The bank's threshold for whole hashes is not the region threshold.
    assert [m.variant for m in matcher.match_bytes(images.original).matches] == ["original"]
    store.update_bank("on", region_threshold=found.distance)
    [again] = matcher.match_bytes(images.crop).matches
    assert (again.distance, again.threshold) == (found.distance, found.distance)


def test_a_hash_lookup_meets_the_region_codes_of_banks_with_regions_on(
    store: BankStore, images: Images
) -> None:
    store.create_bank("on", regions=True)
    store.create_bank("off")
    _bank_photos(store, images, "on")
    _bank_photos(store, images, "off")
    matcher = Matcher(store)
    [match] = matcher.match_hashes({"pdq": images.crop_pdq}).matches
    assert (match.bank, match.variant) == ("on", "original")
    assert match.entry_code in REGION_NAMES
    [batched] = matcher.match_many([{"pdq": images.crop_pdq}])
    assert batched.matches == (match,)


def test_entry_changes_reach_another_process_index_without_rebuild(
    store: BankStore, images: Images
) -> None:
    """A second matcher (another process's) follows disables, removals and switches through
    the change log alone: its region index is never loaded afresh."""
    store.create_bank("on", regions=True)
    entry_id = _bank_photos(store, images, "on")
    other = Matcher(store)
    assert other.follower.region_codes() == images.banked

    def no_rebuild() -> None:
        raise AssertionError("the index was loaded afresh")

    other.follower._load = no_rebuild  # type: ignore[method-assign]

    def crop_matches() -> bool:
        return bool(other.match_bytes(images.crop).matches)

    assert crop_matches()
    store.disable_entry(entry_id)
    assert not crop_matches()
    assert other.follower.region_codes() == len(images.coaster_regions)
    store.enable_entry(entry_id)
    assert crop_matches()
    store.update_bank("on", regions=False)
    assert not crop_matches() and other.follower.region_codes() == 0
    store.update_bank("on", regions=True)
    assert crop_matches() and other.follower.region_codes() == images.banked
    store.remove_entry(entry_id)
    assert not crop_matches()
    assert other.follower.region_codes() == len(images.coaster_regions)
    # Added back (a new entry): matched again.
    store.add_entry("on", "pdq", images.pdq, regions=images.regions)
    assert crop_matches()


def test_a_snapshot_holds_the_region_codes(tmp_path: Path, images: Images) -> None:
    with temporary_store("sqlite") as store:
        store.create_bank("on", regions=True)
        entry_id = _bank_photos(store, images, "on")
        first = Matcher(store, snapshot_dir=tmp_path)
        assert first.follower.status().loaded_from == "store"
        second = Matcher(store, snapshot_dir=tmp_path)
        assert second.follower.status().loaded_from == "snapshot"
        assert second.follower.region_codes() == images.banked
        assert second.match_bytes(images.crop).matches
        store.disable_entry(entry_id)  # replayed from the log by the next one
        third = Matcher(store, snapshot_dir=tmp_path)
        assert third.follower.status().loaded_from == "snapshot"
        assert third.match_bytes(images.crop).matches == ()


def test_upload_codes_come_with_the_very_signals_every_other_bank_sees(images: Images) -> None:
    signals, codes = upload_codes(images.screen)
    assert signals == hash_bytes(images.screen)
    names = [code.name for code in codes]
    assert "region:content" in names and any(n.startswith("region:right-") for n in names)
    # A large, detailed JPEG, which the fast path hashes from a reduced plane (6 bits from
    # the full-resolution hash here): switching regions on for one bank must not move the
    # whole-image hash the other banks are matched with.
    blocks = np.random.default_rng(3).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    big = Image.fromarray(blocks).resize((3000, 2000), Image.Resampling.NEAREST)
    out = io.BytesIO()
    big.save(out, "JPEG", quality=90)
    signals, codes = upload_codes(out.getvalue())
    assert signals == hash_bytes(out.getvalue()) and codes


# ------------------------------------------------------------------------------- service


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestService]:
    with service_client(tmp_path_factory.mktemp("regions")) as service:
        yield service


def test_the_api_sets_regions_and_never_shows_region_codes(
    svc: TestService, images: Images
) -> None:
    client, auth = svc.client, svc.auth
    created = client.post(
        "/v1/banks",
        json={"name": "api-on", "regions": True, "region_threshold": 28},
        headers=auth("bank:write"),
    )
    assert created.status_code == 201, created.text
    assert (created.json()["regions"], created.json()["region_threshold"]) == (True, 28)
    refused = client.post(
        "/v1/banks", json={"name": "bad", "region_threshold": 300}, headers=auth("bank:write")
    )
    assert refused.status_code == 422
    patched = client.patch(
        "/v1/banks/api-on", json={"region_threshold": 31}, headers=auth("bank:write")
    ).json()
    assert patched["region_threshold"] == 31
    assert client.get("/v1/banks/api-on", headers=auth("bank:read")).json()["regions"] is True
    entry, _ = svc.store.add_entry("api-on", "pdq", images.pdq, regions=images.regions)

    # A curator sees how many region codes an entry has, not the codes.
    shown = client.get(f"/v1/banks/api-on/entries/{entry.id}", headers=auth("bank:read")).json()
    assert shown["region_codes"] == len(REGION_NAMES)
    page = client.get("/v1/banks/api-on/entries", headers=auth("bank:read")).json()
    assert [e["region_codes"] for e in page["entries"]] == [len(REGION_NAMES)]
    secrets = [r.value for r in images.regions]
    assert not any(code in json.dumps([shown, page]) for code in secrets)

    # A matching client gets the evidence, with both codes named and no bank hash at all.
    def matched() -> dict[str, object]:
        r = client.post("/v1/match", content=images.crop, headers=auth("match"))
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    _wait(lambda: bool(matched()["matches"]), "the crop is matched")
    response = matched()
    [evidence] = response["matches"]  # type: ignore[misc]
    assert evidence["value"] is None and evidence["entry_code"] in REGION_NAMES
    assert evidence["threshold"] == 31 and evidence["distance"] <= 31
    text = json.dumps(response)
    assert images.pdq not in text and not any(code in text for code in secrets)

    looked_up = client.get(
        "/v1/lookup",
        params={"signal_type": "pdq", "value": images.crop_pdq},
        headers=auth("lookup"),
    ).json()
    [hit] = looked_up["results"][0]["matches"]
    assert hit["entry_id"] == entry.id and hit["entry_code"] in REGION_NAMES
    text = json.dumps(looked_up)
    assert images.pdq not in text and not any(code in text for code in secrets)
    # Whole-hash evidence keeps its shape: no entry_code at all.
    whole = client.post("/v1/match", content=images.original, headers=auth("match")).json()
    assert "entry_code" not in whole["matches"][0]
    # The schemas document the new fields.
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "entry_code" in schemas["Evidence"]["properties"]
    assert {"regions", "region_threshold"} <= set(schemas["BankIn"]["properties"])
    assert "region_codes" in schemas["EntryOut"]["properties"]


def test_the_hot_path_answers_region_lookups_as_the_route_does(
    svc: TestService, images: Images, tmp_path: Path
) -> None:
    svc.store.create_bank("hot-on", regions=True)
    svc.store.add_entry("hot-on", "pdq", images.pdq, regions=images.regions)
    read = svc.new_key("lookup", "bank:read")
    plain = create_app(replace(svc.settings, hot_path=False, index_dir=tmp_path / "plain"))
    query = f"/v1/lookup?signal_type=pdq&value={images.crop_pdq}"
    with TestClient(plain) as other:
        apps = (svc.client, other)
        _wait(
            lambda: all(b'"hot-on"' in c.get(query, headers=read).content for c in apps),
            "both apps match",
        )
        for headers in (svc.auth("lookup"), read):
            hot, cold = (c.get(query, headers=headers).content for c in apps)
            assert hot == cold and b'"entry_code"' in hot


def test_hma_banks_a_photo_with_its_regions_and_finds_its_crop(
    svc: TestService, images: Images
) -> None:
    svc.store.create_bank("hma-on", regions=True)
    added = svc.client.post(
        "/c/bank/HMA_ON/content",
        files={"photo": ("bridge.png", images.original)},
        headers=svc.auth("bank:write"),
    )
    assert added.status_code == 200, added.text
    entry_id = added.json()["id"]
    assert svc.store.count_regions([entry_id]) == {entry_id: len(REGION_NAMES)}

    def found() -> dict[str, object]:
        r = svc.client.post(
            "/m/lookup", files={"photo": ("crop.jpg", images.crop)}, headers=svc.auth("match")
        )
        assert r.status_code == 200, r.text
        return r.json()["pdq"]  # type: ignore[no-any-return]

    _wait(lambda: "HMA_ON" in found(), "the crop is found through HMA")
    assert [m["bank_content_id"] for m in found()["HMA_ON"]] == [entry_id]  # type: ignore[index]


# ---------------------------------------------------------------------------------- CLI


def test_the_cli_switches_regions_and_keeps_the_codes_of_added_images(
    tmp_path: Path, images: Images
) -> None:
    from lightkeeper.cli import bank_command
    from lightkeeper.cli.main import main

    assert bank_command.DEFAULT_REGION_THRESHOLD == DEFAULT_REGION_THRESHOLD
    db = str(tmp_path / "banks.db")
    photo = tmp_path / "bridge.png"
    photo.write_bytes(images.original)

    def lk(*args: str) -> str:
        result = CliRunner().invoke(main, [*args, "--db", db])
        assert result.exit_code == 0, result.output
        return result.stdout

    created = lk("bank", "create", "r", "--regions", "--region-threshold", "25")
    assert "regions on (threshold 25)" in created
    added = lk("bank", "add", "r", str(photo))
    assert f"{len(REGION_NAMES)} region codes" in added.splitlines()[0]
    assert "region codes" not in added.splitlines()[1]  # md5: none
    assert "regions off" in lk("bank", "update", "r", "--no-regions")
    shown = json.loads(lk("bank", "show", "r", "--json"))
    assert (shown["regions"], shown["region_threshold"]) == (False, 25)
    updated = lk("bank", "update", "r", "--regions", "--region-threshold", "30")
    assert "regions on (threshold 30)" in updated
    assert "regions        on, threshold 30" in lk("bank", "show", "r").splitlines()
    with BankStore.open(db) as store:
        assert len(list(store.iter_region_rows("r"))) == len(REGION_NAMES)


def test_the_evaluation_knows_the_region_methods() -> None:
    from lightkeeper.evaluation.methods import get_method

    for name in ("pdq+regions", "pdq+regions+dihedral", "pdq+content", "pdq+content+dihedral"):
        assert get_method(name).name == name
