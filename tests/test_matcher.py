"""The matcher: what it reports for a content, with which evidence, as the banks change.

Every test runs against SQLite and, where one is configured, PostgreSQL (see
`lightkeeper.banks.testing`). Photos are synthetic (conftest) or Meta's public PDQ test photos.
"""

from __future__ import annotations

import csv
import io
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import SHARED_DIR, encode_photo, synthetic_photo
from lightkeeper import hash_bytes
from lightkeeper.banks import BankStore
from lightkeeper.banks.testing import backends, temporary_store
from lightkeeper.errors import InvalidSignal, LightkeeperError
from lightkeeper.matching import IndexFollower, Match, Matcher, MatchResult

VECTORS = SHARED_DIR / "pdq-vectors"


@pytest.fixture(params=backends())
def store(request: pytest.FixtureRequest) -> Iterator[BankStore]:
    with temporary_store(request.param) as store:
        yield store


def png(image: Image.Image) -> bytes:
    return encode_photo(image, "png")


def flip_bits(value: str, count: int, seed: int = 0) -> str:
    """`value` (hex) with `count` distinct bits flipped: exactly `count` bits away."""
    bits = random.Random(seed).sample(range(len(value) * 4), count)
    number = int(value, 16)
    for bit in bits:
        number ^= 1 << bit
    return f"{number:0{len(value)}x}"


BASE = "f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22"


@pytest.fixture(scope="module")
def photo() -> bytes:
    return png(synthetic_photo(640, 480, seed=7))


@pytest.fixture(scope="module")
def photo_hashes(photo: bytes) -> dict[str, object]:
    return hash_bytes(photo)


# ---------------------------------------------------------------------------------- evidence


def test_pdq_match_carries_its_full_evidence(
    store: BankStore, photo: bytes, photo_hashes: dict[str, object]
) -> None:
    store.create_bank("ncmec", description="industry list")
    entry, _ = store.add_entry(
        "ncmec",
        "pdq",
        str(photo_hashes["pdq"]),
        list_name="ncmec-2024",
        list_version="v3",
        external_id="X-17",
        classification="A1",
    )
    result = Matcher(store).match_bytes(photo)
    assert result.matched
    assert result.matches == (
        Match(
            bank="ncmec",
            bank_kind="block",
            entry_id=entry.id,
            signal_type="pdq",
            value=entry.value,
            content_value=str(photo_hashes["pdq"]),
            distance=0,
            threshold=31,
            quality=photo_hashes["pdq_quality"],  # type: ignore[arg-type]
            variant="original",
            list_name="ncmec-2024",
            list_version="v3",
            external_id="X-17",
            classification="A1",
        ),
    )
    assert result.sha256 == photo_hashes["sha256"]
    assert result.quality == photo_hashes["pdq_quality"]
    assert not result.low_quality and result.error is None
    assert set(result.signals) >= {"pdq", "md5", "sha1", "sha256"}


def test_exact_match_of_a_file_that_is_not_an_image(store: BankStore) -> None:
    document = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
    import hashlib

    store.create_bank("docs")
    entry, _ = store.add_entry("docs", "md5", hashlib.md5(document).hexdigest(), external_id="9")
    result = Matcher(store).match_bytes(document)
    assert [(m.entry_id, m.signal_type, m.distance, m.threshold) for m in result.matches] == [
        (entry.id, "md5", 0, 0)
    ]
    assert result.matches[0].quality is None and result.matches[0].external_id == "9"
    assert result.error is not None and result.error_type == "unsupported_format"
    assert "pdq" not in result.signals


def test_to_dict_is_json_ready_and_names_every_evidence_field(
    store: BankStore, photo: bytes, photo_hashes: dict[str, object]
) -> None:
    import json

    store.create_bank("b")
    store.add_entry("b", "sha256", str(photo_hashes["sha256"]))
    data = json.loads(json.dumps(Matcher(store).match_bytes(photo).to_dict()))
    assert data["matched"] is True
    assert set(data["matches"][0]) == {
        "bank",
        "bank_kind",
        "entry_id",
        "signal_type",
        "value",
        "content_value",
        "distance",
        "threshold",
        "quality",
        "variant",
        "list_name",
        "list_version",
        "external_id",
        "classification",
    }


def test_unreadable_file_gives_a_result_with_the_error(store: BankStore, tmp_path: Path) -> None:
    store.create_bank("b")
    result = Matcher(store).match_file(tmp_path / "missing.jpg")
    assert result == MatchResult(
        file=str(tmp_path / "missing.jpg"),
        error="no such file or directory",
        error_type="input_error",
    )


def test_malformed_hash_values_are_refused(store: BankStore) -> None:
    matcher = Matcher(store)
    with pytest.raises(InvalidSignal):
        matcher.match_hashes({"pdq": "not-a-hash"})
    with pytest.raises(InvalidSignal):
        matcher.match_hashes({"md5": 12345})


# ---------------------------------------------------------------------------------- thresholds


def test_threshold_edge_per_bank(store: BankStore) -> None:
    store.create_bank("strict", thresholds={"pdq": 10})
    store.create_bank("loose", thresholds={"pdq": 40})
    store.add_entry("strict", "pdq", BASE)
    store.add_entry("loose", "pdq", BASE)
    matcher = Matcher(store)

    def banks_at(distance: int) -> list[tuple[str, int, int]]:
        result = matcher.match_hashes({"pdq": flip_bits(BASE, distance)})
        return [(m.bank, m.distance, m.threshold) for m in result.matches]

    assert banks_at(10) == [("loose", 10, 40), ("strict", 10, 10)]
    assert banks_at(11) == [("loose", 11, 40)]
    assert banks_at(40) == [("loose", 40, 40)]
    assert banks_at(41) == []


@pytest.fixture(scope="module")
def two_threshold_matcher() -> Iterator[Matcher]:
    with temporary_store("sqlite") as store:
        store.create_bank("t8", thresholds={"pdq": 8})
        store.create_bank("t31")
        store.add_entry("t8", "pdq", BASE)
        store.add_entry("t31", "pdq", BASE)
        store.add_entry("t31", "md5", f"{7:032x}")
        yield Matcher(store)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(distance=st.integers(0, 64), seed=st.integers(0, 2**32))
def test_a_hash_matches_each_bank_exactly_within_its_threshold(
    two_threshold_matcher: Matcher, distance: int, seed: int
) -> None:
    result = two_threshold_matcher.match_hashes({"pdq": flip_bits(BASE, distance, seed)})
    expected = [bank for bank, threshold in (("t31", 31), ("t8", 8)) if distance <= threshold]
    assert sorted(m.bank for m in result.matches) == sorted(expected)
    assert all(m.distance == distance for m in result.matches)


def test_results_are_sorted_by_bank_distance_and_entry(store: BankStore) -> None:
    for bank in ("zeta", "alpha"):
        store.create_bank(bank)
    far, _ = store.add_entry("alpha", "pdq", flip_bits(BASE, 9, seed=1))
    near, _ = store.add_entry("alpha", "pdq", flip_bits(BASE, 3, seed=2))
    tie, _ = store.add_entry("alpha", "pdq", flip_bits(BASE, 9, seed=3))
    z, _ = store.add_entry("zeta", "pdq", BASE)
    result = Matcher(store).match_hashes({"pdq": BASE})
    assert [(m.bank, m.entry_id) for m in result.matches] == [
        ("alpha", near.id),
        ("alpha", far.id),
        ("alpha", tie.id),
        ("zeta", z.id),
    ]


# ---------------------------------------------------------------------------------- allow banks


def test_allow_bank_suppresses_block_matches_and_shows_them(
    store: BankStore, photo: bytes, photo_hashes: dict[str, object]
) -> None:
    store.create_bank("block")
    store.create_bank("known-fp", kind="allow")
    blocked, _ = store.add_entry("block", "pdq", str(photo_hashes["pdq"]))
    allow, _ = store.add_entry("known-fp", "pdq", flip_bits(str(photo_hashes["pdq"]), 4))
    result = Matcher(store).match_bytes(photo)
    assert not result.matched and result.matches == ()
    assert [(s.match.entry_id, s.suppressed_by.entry_id) for s in result.suppressed] == [
        (blocked.id, allow.id),
    ]
    assert [(m.bank, m.bank_kind, m.distance) for m in result.allowed] == [("known-fp", "allow", 4)]
    data = result.to_dict()
    assert data["suppressed"][0]["suppressed_by"]["bank"] == "known-fp"
    assert data["suppressed"][0]["entry_id"] == blocked.id


def test_a_look_alike_allow_entry_never_hides_an_exact_match_of_the_listed_file(
    store: BankStore, photo: bytes, photo_hashes: dict[str, object]
) -> None:
    store.create_bank("block")
    store.create_bank("known-fp", kind="allow")
    blocked, _ = store.add_entry("block", "pdq", str(photo_hashes["pdq"]))
    exact, _ = store.add_entry("block", "md5", str(photo_hashes["md5"]))
    allow, _ = store.add_entry("known-fp", "pdq", flip_bits(str(photo_hashes["pdq"]), 4))
    result = Matcher(store).match_bytes(photo)
    assert result.matched
    assert [m.entry_id for m in result.matches] == [exact.id]
    assert [(s.match.entry_id, s.suppressed_by.entry_id) for s in result.suppressed] == [
        (blocked.id, allow.id)
    ]


def test_an_exact_allow_entry_suppresses_every_block_match(
    store: BankStore, photo: bytes, photo_hashes: dict[str, object]
) -> None:
    store.create_bank("block")
    store.create_bank("known-fp", kind="allow")
    blocked, _ = store.add_entry("block", "pdq", str(photo_hashes["pdq"]))
    exact, _ = store.add_entry("block", "md5", str(photo_hashes["md5"]))
    allow, _ = store.add_entry("known-fp", "sha256", str(photo_hashes["sha256"]))
    result = Matcher(store).match_bytes(photo)
    assert not result.matched
    assert sorted((s.match.entry_id, s.suppressed_by.entry_id) for s in result.suppressed) == [
        (blocked.id, allow.id),
        (exact.id, allow.id),
    ]


def test_allow_bank_alone_is_no_match(store: BankStore) -> None:
    store.create_bank("known-fp", kind="allow")
    store.add_entry("known-fp", "pdq", BASE)
    result = Matcher(store).match_hashes({"pdq": BASE})
    assert not result.matched and result.suppressed == ()
    assert [m.bank for m in result.allowed] == ["known-fp"]


# ---------------------------------------------------------------------------------- bank state


def test_disabled_entry_is_not_matched_and_re_enabled_is(store: BankStore) -> None:
    store.create_bank("b")
    entry, _ = store.add_entry("b", "pdq", BASE)
    matcher = Matcher(store)
    assert matcher.match_hashes({"pdq": BASE}).matched
    store.disable_entry(entry.id)
    assert not matcher.match_hashes({"pdq": BASE}).matched
    store.enable_entry(entry.id)
    assert matcher.match_hashes({"pdq": BASE}).matched


def test_entry_disabled_until_a_time_matches_again_after_it(store: BankStore) -> None:
    store.create_bank("b")
    entry, _ = store.add_entry("b", "md5", "d41d8cd98f00b204e9800998ecf8427e")
    matcher = Matcher(store)
    hashes = {"md5": "d41d8cd98f00b204e9800998ecf8427e"}
    store.disable_entry(entry.id, until=datetime.now(UTC) + timedelta(hours=1))
    assert not matcher.match_hashes(hashes).matched
    store.disable_entry(entry.id, until=datetime.now(UTC) - timedelta(seconds=1))
    assert matcher.match_hashes(hashes).matched


def test_disabled_bank_is_not_matched_and_re_enabled_is(store: BankStore) -> None:
    store.create_bank("b")
    store.create_bank("other")
    store.add_entry("b", "pdq", BASE)
    store.add_entry("b", "md5", "d41d8cd98f00b204e9800998ecf8427e")
    store.add_entry("other", "pdq", flip_bits(BASE, 2))
    matcher = Matcher(store)
    hashes = {"pdq": BASE, "md5": "d41d8cd98f00b204e9800998ecf8427e"}
    assert {m.bank for m in matcher.match_hashes(hashes).matches} == {"b", "other"}
    store.update_bank("b", enabled=False)
    assert {m.bank for m in matcher.match_hashes(hashes).matches} == {"other"}
    assert matcher.follower.sizes() == {"pdq": 1}
    store.add_entry("b", "pdq", flip_bits(BASE, 5))  # added while disabled
    store.update_bank("b", enabled=True)
    result = matcher.match_hashes(hashes)
    assert sorted((m.bank, m.distance) for m in result.matches) == [
        ("b", 0),
        ("b", 0),
        ("b", 5),
        ("other", 2),
    ]


def test_removed_entry_and_deleted_bank_are_gone(store: BankStore) -> None:
    store.create_bank("b")
    store.create_bank("c")
    entry, _ = store.add_entry("b", "pdq", BASE)
    store.add_entry("c", "pdq", BASE)
    matcher = Matcher(store)
    store.remove_entry(entry.id)
    assert [m.bank for m in matcher.match_hashes({"pdq": BASE}).matches] == ["c"]
    store.delete_bank("c")
    assert not matcher.match_hashes({"pdq": BASE}).matched
    assert matcher.follower.sizes() == {}


def test_changed_threshold_applies_to_the_next_match(store: BankStore) -> None:
    store.create_bank("b")
    store.add_entry("b", "pdq", BASE)
    matcher = Matcher(store)
    query = {"pdq": flip_bits(BASE, 20)}
    assert matcher.match_hashes(query).matched
    store.update_bank("b", thresholds={"pdq": 19})
    assert not matcher.match_hashes(query).matched


# ---------------------------------------------------------------------------------- quality


def test_low_quality_photo_is_reported_and_not_pdq_matched(store: BankStore) -> None:
    flat = png(Image.new("RGB", (200, 200), (120, 120, 120)))
    hashes = hash_bytes(flat)
    assert hashes["pdq_quality"] == 0
    store.create_bank("b")
    store.add_entry("b", "pdq", str(hashes["pdq"]))
    md5, _ = store.add_entry("b", "md5", str(hashes["md5"]))
    result = Matcher(store).match_bytes(flat)
    assert result.low_quality and result.quality == 0
    assert [(m.signal_type, m.entry_id) for m in result.matches] == [("md5", md5.id)]


def test_quality_floor_is_per_bank(store: BankStore) -> None:
    store.create_bank("picky", pdq_quality_floor=80)
    store.create_bank("lenient", pdq_quality_floor=20)
    store.add_entry("picky", "pdq", BASE)
    store.add_entry("lenient", "pdq", BASE)
    matcher = Matcher(store)
    result = matcher.match_hashes({"pdq": BASE, "pdq_quality": 50})
    assert [m.bank for m in result.matches] == ["lenient"]
    assert result.low_quality and result.quality == 50
    assert [m.bank for m in matcher.match_hashes({"pdq": BASE, "pdq_quality": 80}).matches] == [
        "lenient",
        "picky",
    ]


# ---------------------------------------------------------------------------------- variants


def test_dihedral_matches_only_in_banks_that_ask_for_it(store: BankStore) -> None:
    original = synthetic_photo(640, 480, seed=1)
    rotated = png(original.rotate(90, expand=True))  # a quarter turn counter-clockwise
    listed = str(hash_bytes(png(original))["pdq"])
    store.create_bank("plain")
    store.create_bank("turned", match_dihedral=True)
    store.add_entry("plain", "pdq", listed)
    entry, _ = store.add_entry("turned", "pdq", listed)
    result = Matcher(store).match_bytes(rotated)
    assert [(m.bank, m.entry_id, m.variant) for m in result.matches] == [
        ("turned", entry.id, "rotate270")
    ]
    assert result.matches[0].distance <= 31


def test_exif_rotated_photo_matches_a_list_of_the_reference_hash(store: BankStore) -> None:
    """Lists made by EXIF-blind hashers hold the hash of the pixels as stored."""
    with (VECTORS / "expected.csv").open() as fh:
        expected = {row["file"]: row["pdq"] for row in csv.DictReader(fh)}
    store.create_bank("reference")
    entries = {
        n: store.add_entry("reference", "pdq", expected[f"exif-rotn/exif-rotn-{n}.jpg"])[0]
        for n in (3, 6, 8)
    }
    matcher = Matcher(store)
    for n, entry in entries.items():
        result = matcher.match_file(VECTORS / "exif-rotn" / f"exif-rotn-{n}.jpg")
        assert [(m.entry_id, m.variant) for m in result.matches] == [(entry.id, "as_stored")]
        assert result.matches[0].distance <= 10


# ---------------------------------------------------------------------------------- following


WRITER = """
import sys
from lightkeeper.banks import BankStore
with BankStore.open(sys.argv[1]) as store:
    for signal_type, value in zip(sys.argv[2::2], sys.argv[3::2]):
        store.add_entry("b", signal_type, value, list_name="late")
"""


def test_hash_added_by_another_process_is_matched_without_a_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, photo: bytes, photo_hashes: dict[str, object]
) -> None:
    url = f"sqlite:///{tmp_path / 'banks.db'}"
    with BankStore.open(url) as store:
        store.create_bank("b")
        store.add_entry("b", "pdq", BASE)
        matcher = Matcher(store)
        assert not matcher.match_bytes(photo).matched

        def no_reload(*args: object, **kwargs: object) -> Iterator[object]:
            raise AssertionError("the matcher reloaded a bank instead of following the log")

        monkeypatch.setattr(store, "iter_entries", no_reload)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        added = ["pdq", str(photo_hashes["pdq"]), "md5", str(photo_hashes["md5"])]
        subprocess.run([sys.executable, "-c", WRITER, url, *added], env=env, check=True)
        result = matcher.match_bytes(photo)
        assert sorted((m.signal_type, m.list_name) for m in result.matches) == [
            ("md5", "late"),
            ("pdq", "late"),
        ]
        assert matcher.refresh() == 0  # nothing new: one cheap query


OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "remove", "disable", "enable", "bank_off", "bank_on", "refresh"]),
        st.sampled_from(["a", "b"]),
        st.integers(0, 5),
    ),
    max_size=25,
)


def _indexed(follower: IndexFollower, values: list[str]) -> dict[str, set[int]]:
    """Every entry id the follower holds, per signal type."""
    found = follower.search("pdq", [bytes.fromhex(BASE)], 256)[0]
    md5 = {i for v in values for i in follower.lookup("md5", f"{int(v[:8], 16):032x}")}
    return {"pdq": {entry_id for entry_id, _ in found}, "md5": md5}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_following_the_log_ends_where_a_fresh_load_starts(
    ops: list[tuple[str, str, int]],
) -> None:
    values = [flip_bits(BASE, 3, seed=i) for i in range(6)]
    with temporary_store("sqlite") as store:
        store.create_bank("a")
        store.create_bank("b", enabled=False)
        follower = IndexFollower(store)
        for op, bank, i in ops:
            value = values[i]
            pdq = store.find_entry(bank, "pdq", value)
            if op == "add":
                store.add_entry(bank, "pdq", value)
                store.add_entry(bank, "md5", f"{int(value[:8], 16):032x}")
            elif op == "remove" and pdq is not None:
                store.remove_entry(pdq.id)
            elif op == "disable" and pdq is not None:
                store.disable_entry(pdq.id)
            elif op == "enable" and pdq is not None:
                store.enable_entry(pdq.id)
            elif op in ("bank_off", "bank_on"):
                store.update_bank(bank, enabled=op == "bank_on")
            elif op == "refresh":
                follower.refresh()
        follower.refresh()
        fresh = IndexFollower(store)
        assert _indexed(follower, values) == _indexed(fresh, values)
        assert follower.last_seq == fresh.last_seq == store.last_seq()
        expected = {
            e.id
            for e in store.iter_entries(signal_type="pdq")
            if e.enabled and store.get_bank(e.bank).enabled
        }
        assert _indexed(fresh, values)["pdq"] == expected


def test_match_bytes_of_the_same_content_is_deterministic(
    store: BankStore, photo: bytes, photo_hashes: dict[str, object]
) -> None:
    for name in ("b1", "b2", "b3"):
        store.create_bank(name)
        store.add_entry(name, "pdq", flip_bits(str(photo_hashes["pdq"]), 2))
        store.add_entry(name, "sha256", str(photo_hashes["sha256"]))
    matcher = Matcher(store)
    first = matcher.match_bytes(photo)
    assert len(first.matches) == 6
    assert all(matcher.match_bytes(photo) == first for _ in range(3))
    assert Matcher(store).match_bytes(io.BytesIO(photo).getvalue()) == first


@pytest.mark.parametrize("backlog", [1_000, 5])
def test_long_logs_are_read_in_pages_or_loaded_afresh(
    monkeypatch: pytest.MonkeyPatch, backlog: int
) -> None:
    from lightkeeper.matching import follower as follower_module

    monkeypatch.setattr(follower_module, "PAGE_SIZE", 3)
    monkeypatch.setattr(follower_module, "REBUILD_BACKLOG", backlog)
    values = [flip_bits(BASE, 3, seed=i) for i in range(12)]
    with temporary_store("sqlite") as store:
        store.create_bank("a")
        matcher = Matcher(store)
        entries = [store.add_entry("a", "pdq", value)[0] for value in values]
        for entry in entries[::3]:
            store.remove_entry(entry.id)
        store.disable_entry(entries[1].id)
        assert matcher.refresh() > 0
        assert matcher.follower.last_seq == store.last_seq()
        live = {e.id for e in entries[2::3]} | {e.id for e in entries[4::3]}
        found = matcher.follower.search("pdq", [bytes.fromhex(BASE)], 256)[0]
        assert {entry_id for entry_id, _ in found} == live
        assert {m.entry_id for m in matcher.match_hashes({"pdq": BASE}).matches} == live


def test_the_matching_api_is_pinned() -> None:
    import lightkeeper.matching

    assert lightkeeper.matching.__all__ == [
        "AS_STORED",
        "ORIGINAL",
        "FollowerStatus",
        "IndexFollower",
        "Match",
        "MatchResult",
        "Matcher",
        "SuppressedMatch",
    ]


def test_evidence_lets_anyone_recompute_the_distance(
    store: BankStore, photo: bytes, photo_hashes: dict[str, object]
) -> None:
    store.create_bank("block")
    store.add_entry("block", "pdq", flip_bits(str(photo_hashes["pdq"]), 7))
    (match,) = Matcher(store).match_bytes(photo).matches
    assert match.content_value == photo_hashes["pdq"]
    assert (int(match.value, 16) ^ int(match.content_value, 16)).bit_count() == match.distance == 7


# ---------------------------------------------------------------------------------- batches


# Plain PDQ items (a hash, its quality at most) take the batch's fast path unless they find a
# candidate; the odd spellings below must come out exactly as a single call words them.
_ODD_PDQ = {
    "upper": lambda v: v.upper(),
    "padded": lambda v: f" {v} ",
    "inner-space": lambda v: v[:10] + " " + v[11:],
    "short": lambda v: v[:62],
    "non-ascii": lambda v: v[:63] + "é",
}


@settings(max_examples=40, deadline=None)
@given(
    picks=st.lists(
        st.tuples(
            st.sampled_from(["near", "far", "exact", "bad", "unknown", "bool-quality", *_ODD_PDQ]),
            st.integers(0, 40),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_a_batch_matches_each_item_as_a_single_call_would(
    two_threshold_matcher: Matcher, picks: list[tuple[str, int]]
) -> None:
    items: list[dict[str, object]] = []
    for kind, bits in picks:
        if kind == "near":
            items.append({"pdq": flip_bits(BASE, bits, seed=bits), "pdq_quality": 90})
        elif kind == "far":
            items.append({"pdq": flip_bits(BASE, 100 + bits, seed=bits)})
        elif kind == "exact":
            items.append({"md5": f"{bits:032x}"})
        elif kind == "bad":
            items.append({"pdq": "xyz"})
        elif kind == "bool-quality":
            items.append({"pdq": flip_bits(BASE, 100 + bits, seed=bits), "pdq_quality": True})
        elif kind in _ODD_PDQ:
            near = bits % 2 == 0  # both a candidate (general path) and none (fast path)
            value = flip_bits(BASE, bits if near else 100 + bits, seed=bits)
            items.append({"pdq": _ODD_PDQ[kind](value)})
        else:
            items.append({"pdq": BASE, "pdq_quality": bits})  # quality below and above floors
    batch = two_threshold_matcher.match_many(items)
    assert len(batch) == len(items)
    for item, result in zip(items, batch, strict=True):
        try:
            single = two_threshold_matcher.match_hashes(item)
        except LightkeeperError as exc:
            assert result.error_type == exc.code and not result.matches
            continue
        assert result == single
