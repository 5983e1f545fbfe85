"""The quarantine vault: content encrypted at rest, retention, legal hold, destruction, and a
log of every access, on SQLite and PostgreSQL.

All content is benign: random bytes, text, and synthetic photos (conftest).
"""

from __future__ import annotations

import base64
import hashlib
import io
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from conftest import synthetic_photo
from lightkeeper.actions import vault_crypto
from lightkeeper.actions.vault import OBJECTS, VAULT_DIR, RetentionPolicy, Vault
from lightkeeper.actions.vault_crypto import Keyring, seal, unseal
from lightkeeper.banks import BankStore
from lightkeeper.banks.audit import list_events
from lightkeeper.banks.models import Base
from lightkeeper.banks.testing import backends, temporary_store
from lightkeeper.cli.main import main
from lightkeeper.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    VaultIntegrityError,
    VaultKeyError,
)
from lightkeeper.matching.matcher import Matcher

WHO = "reviewer:ana"
#: For behaviour that does not depend on the database.
SQLITE_ONLY = pytest.mark.parametrize("store", ["sqlite"], indirect=True)
#: Plaintext is looked for in chunks of this many bytes (see `assert_nowhere`).
CHUNK = 32


def content(size: int = 50_000, seed: int = 0) -> bytes:
    """Benign bytes no other test writes: a marker text, then pseudo-random bytes."""
    marker = f"benign test content {seed} ".encode()
    return (marker + hashlib.shake_256(marker).digest(size))[:size]


@pytest.fixture(params=backends())
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BankStore]:
    if request.param == "sqlite":  # a file in the data directory, scanned like the rest
        with BankStore.open(f"sqlite:///{tmp_path / 'data' / 'lightkeeper.db'}") as s:
            yield s
        return
    with temporary_store(request.param) as s:
        yield s


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def vault(store: BankStore, data_dir: Path) -> Vault:
    return Vault(store, data_dir / "vault", Keyring.from_file(data_dir / "vault.key"))


def reopened(vault: Vault, data_dir: Path) -> Vault:
    """The same vault as a new process sees it: fresh keyring read from the key file."""
    return Vault(vault.store, vault.root, Keyring.from_file(data_dir / "vault.key"))


def put(vault: Vault, data: bytes, **kwargs: Any) -> str:
    options = {"media_type": "application/octet-stream", "actor": WHO, "reason": "test"}
    return vault.put(data, **{**options, **kwargs}).id


def database_bytes(store: BankStore) -> bytes:
    """Every value of every table, as bytes."""
    parts: list[bytes] = []
    with store.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        parts.append(bytes(value))
                    elif value is not None:
                        parts.append(str(value).encode("utf-8", "surrogatepass"))
    return b"\0".join(parts)


def directory_bytes(directory: Path) -> Iterator[tuple[Path, bytes]]:
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            yield path, path.read_bytes()


def assert_nowhere(data: bytes, store: BankStore, data_dir: Path) -> None:
    """No fragment of `data` of 63 bytes or more is stored raw, nor the whole of it or a
    64-byte window of it as hex or base64: in any file under `data_dir`, nor in any row.

    Every fragment of 63 bytes holds one of the 32-byte chunks `data` is cut into.
    """
    chunks = {data[i : i + CHUNK] for i in range(0, len(data) - CHUNK + 1, CHUNK)}
    step = max(1, (len(data) - 64) // 12)
    windows = [data[i : i + 64] for i in range(0, len(data) - 64, step)]
    encoded = [data.hex().encode(), base64.b64encode(data)] + [w.hex().encode() for w in windows]
    haystacks = [(Path("<database rows>"), database_bytes(store)), *directory_bytes(data_dir)]
    assert len(haystacks) > 2
    for where, haystack in haystacks:
        for needle in (*chunks, *encoded):
            assert needle not in haystack, f"plaintext found in {where}"


# ---------------------------------------------------------------- storage and encryption


def test_round_trip_keeps_metadata_and_names_files_by_random_id(
    vault: Vault, data_dir: Path
) -> None:
    data = content()
    item = vault.put(data, media_type="Image/JPEG", actor=WHO, reason="matched", case_ref="c-1")
    assert vault.read(item.id, actor=WHO, reason="review") == data
    assert (item.sha256, item.size, item.media_type) == (
        hashlib.sha256(data).hexdigest(),
        len(data),
        "image/jpeg",
    )
    assert (item.created_by, item.case_ref, item.key_version, item.state) == (
        WHO,
        "c-1",
        1,
        "kept",
    )
    assert item.retain_until is None and item.reported_at is None
    path = vault.path_of(item.id)
    assert path == data_dir / "vault" / item.id[:2] / item.id[2:]
    assert path.stat().st_size == len(data) + vault_crypto.FILE_OVERHEAD
    again = put(vault, data)
    assert again != item.id  # no deduplication: each quarantine is its own object
    assert [o.id for o in vault.list_objects(sha256=item.sha256)] == [item.id, again]
    names = [p.name for p in (data_dir / "vault").rglob("*")]
    assert not any(item.sha256[:16] in name for name in names)
    key_file = data_dir / "vault.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((data_dir / "vault").stat().st_mode) == 0o700


def test_plaintext_is_nowhere_in_the_data_directory_or_database(
    vault: Vault, store: BankStore, data_dir: Path
) -> None:
    data = content(40_000, seed=7)
    object_id = put(vault, data)
    assert vault.read(object_id, actor=WHO, reason="review") == data
    vault.verify(object_id, actor=WHO)
    assert_nowhere(data, store, data_dir)


@SQLITE_ONLY
def test_the_scan_finds_plaintext_where_it_is(
    vault: Vault, store: BankStore, data_dir: Path
) -> None:
    data = content(5000, seed=8)
    put(vault, data)
    (data_dir / "vault" / "stray").write_bytes(b"header" + data[1000:1100] + b"trailer")
    with pytest.raises(AssertionError, match=r"plaintext found in .*stray"):
        assert_nowhere(data, store, data_dir)


def test_an_upload_matching_a_block_bank_is_quarantined_encrypted(tmp_path: Path) -> None:
    """The issue's acceptance: match an upload against a block bank, quarantine it, and the
    upload's bytes are found in plain nowhere in the data directory (database included)."""
    data_dir = tmp_path / "lightkeeper-data"
    photo = io.BytesIO()
    synthetic_photo(seed=11).save(photo, format="JPEG", quality=90)
    upload = photo.getvalue()
    with BankStore.open(f"sqlite:///{data_dir / 'lightkeeper.db'}") as store:
        store.create_bank("known", kind="block")
        store.add_entry("known", "sha256", hashlib.sha256(upload).hexdigest())
        result = Matcher(store).match_bytes(upload)
        assert result.matched
        vault = Vault.open(store, environ={})
        item = vault.put(
            upload, media_type="image/jpeg", actor="policy:block", reason="matched bank known"
        )
        assert vault.root == data_dir / "vault"
        assert (data_dir / "vault.key").is_file()
        assert vault.read(item.id, actor=WHO, reason="review") == upload
        assert_nowhere(upload, store, data_dir)


def test_tampered_ciphertext_is_refused_and_the_failure_logged(vault: Vault) -> None:
    object_id = put(vault, content())
    path = vault.path_of(object_id)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(VaultIntegrityError, match="fails authentication"):
        vault.read(object_id, actor=WHO, reason="review")
    with pytest.raises(VaultIntegrityError):
        vault.verify(object_id, actor=WHO)
    actions = [(e.action, e.actor) for e in vault.access_log(object_id)]
    assert actions == [
        ("put", WHO),
        ("read", WHO),
        ("integrity_failure", WHO),
        ("verify", WHO),
        ("integrity_failure", WHO),
    ]


def test_ciphertexts_swapped_between_objects_do_not_decrypt(vault: Vault) -> None:
    first, second = put(vault, content(seed=1)), put(vault, content(seed=2))
    a, b = vault.path_of(first), vault.path_of(second)
    blob_a, blob_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(blob_b)
    b.write_bytes(blob_a)
    for object_id in (first, second):
        with pytest.raises(VaultIntegrityError, match="another object"):
            vault.read(object_id, actor=WHO, reason="review")


def test_wrapped_keys_swapped_between_objects_do_not_unwrap(vault: Vault, store: BankStore) -> None:
    first, second = put(vault, content(seed=1)), put(vault, content(seed=2))
    with store.engine.begin() as conn:
        keys = dict(conn.execute(select(OBJECTS.c.id, OBJECTS.c.wrapped_key)).all())
        for one, other in ((first, second), (second, first)):
            conn.execute(update(OBJECTS).where(OBJECTS.c.id == one).values(wrapped_key=keys[other]))
    with pytest.raises(VaultIntegrityError, match="data key does not unwrap"):
        vault.read(first, actor=WHO, reason="review")


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda blob: blob[: len(blob) // 2], "truncated"),
        (lambda blob: blob[:10], "truncated"),
        (lambda blob: b"", "does not start as a vault file"),
        (lambda blob: blob + b"\0", "damaged"),
        (lambda blob: b"GIF89a" + blob[6:], "does not start as a vault file"),
    ],
)
def test_a_damaged_vault_file_gives_a_clear_error(vault: Vault, damage: Any, message: str) -> None:
    object_id = put(vault, content())
    path = vault.path_of(object_id)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(VaultIntegrityError, match=message):
        vault.read(object_id, actor=WHO, reason="review")


@SQLITE_ONLY
def test_a_missing_vault_file_gives_a_clear_error(vault: Vault) -> None:
    object_id = put(vault, content())
    vault.path_of(object_id).unlink()
    with pytest.raises(VaultIntegrityError, match="file is missing"):
        vault.read(object_id, actor=WHO, reason="review")


def test_a_wrong_or_missing_master_key_is_named_as_such(vault: Vault, data_dir: Path) -> None:
    object_id = put(vault, content())
    other = Vault(vault.store, vault.root, Keyring.from_file(data_dir / "other.key"))
    with pytest.raises(VaultKeyError, match="does not exist"):
        other.read(object_id, actor=WHO, reason="review")
    # A new key file is not made for a vault whose objects need the lost one.
    with pytest.raises(VaultKeyError, match="restore it"):
        put(other, b"more")
    assert not (data_dir / "other.key").exists()
    Keyring.from_file(data_dir / "other.key").create()
    with pytest.raises(VaultKeyError, match="not the key this vault's objects were wrapped"):
        other.read(object_id, actor=WHO, reason="review")
    with pytest.raises(VaultKeyError, match="not the key"):
        put(other, b"more")
    missing_version = Vault(vault.store, vault.root, Keyring.from_keys({2: bytes(32)}))
    with pytest.raises(VaultKeyError, match="version 1 is not in"):
        missing_version.read(object_id, actor=WHO, reason="review")
    assert vault.read(object_id, actor=WHO, reason="review") == content()


@SQLITE_ONLY
def test_reads_of_unknown_or_malformed_ids_are_refused(vault: Vault) -> None:
    with pytest.raises(NotFound):
        vault.read("0" * 32, actor=WHO, reason="review")
    with pytest.raises(InvalidRequest, match="not a vault object id"):
        vault.read("../../etc/passwd", actor=WHO, reason="review")


@SQLITE_ONLY
def test_put_refuses_bad_metadata_and_oversized_content(store: BankStore, data_dir: Path) -> None:
    vault = Vault(store, data_dir / "vault", Keyring.from_keys({1: bytes(32)}), max_bytes=10)
    with pytest.raises(InvalidRequest, match="not a media type"):
        put(vault, b"x", media_type="jpeg")
    with pytest.raises(InvalidRequest, match="case reference"):
        put(vault, b"x", case_ref="c" * 201)
    with pytest.raises(InvalidRequest, match="over the vault's limit of 10"):
        put(vault, b"x" * 11)
    assert vault.list_objects() == [] and not (data_dir / "vault").exists()


# ---------------------------------------------------------------- rotation


def test_rotation_rewraps_keys_without_touching_content(vault: Vault, data_dir: Path) -> None:
    datas = [content(1000 + i, seed=i) for i in range(5)]
    ids = [put(vault, d) for d in datas]
    files = {i: vault.path_of(i).read_bytes() for i in ids}
    report = vault.rotate(actor="admin")
    assert (report.version, report.created, report.rewrapped, report.failed) == (2, True, 5, ())
    assert report.by_version == {1: 0, 2: 5} and report.unused_versions == (1,)
    assert {vault.get(i).key_version for i in ids} == {2}
    assert {i: vault.path_of(i).read_bytes() for i in ids} == files  # not re-encrypted
    fresh = reopened(vault, data_dir)
    assert [fresh.read(i, actor=WHO, reason="check") for i in ids] == datas
    assert fresh.keyring.versions() == (1, 2)
    assert put(fresh, b"new") and fresh.get(fresh.list_objects()[-1].id).key_version == 2
    assert vault.rotate(new_version=False).rewrapped == 0


def test_an_interrupted_rotation_leaves_everything_readable_and_a_rerun_finishes(
    vault: Vault, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datas = [content(500 + i, seed=i) for i in range(5)]
    ids = [put(vault, d) for d in datas]
    real_wrap = Keyring.wrap
    calls = 0

    def crashing_wrap(self: Keyring, data_key: bytes, *, object_id: str) -> tuple[int, bytes]:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt  # the process is killed mid-batch
        return real_wrap(self, data_key, object_id=object_id)

    monkeypatch.setattr(Keyring, "wrap", crashing_wrap)
    with pytest.raises(KeyboardInterrupt):
        vault.rotate(batch_size=2)
    monkeypatch.undo()
    restarted = reopened(vault, data_dir)
    versions = sorted(restarted.get(i).key_version or 0 for i in ids)
    assert versions == [1, 1, 1, 2, 2]  # the first batch committed, the second rolled back
    assert [restarted.read(i, actor=WHO, reason="check") for i in ids] == datas
    report = restarted.rotate(new_version=False)
    assert (report.version, report.rewrapped) == (2, 3)
    assert {restarted.get(i).key_version for i in ids} == {2}
    assert [restarted.read(i, actor=WHO, reason="check") for i in ids] == datas


@SQLITE_ONLY
def test_keys_from_the_environment_rotate_to_a_version_added_there(
    store: BankStore, data_dir: Path
) -> None:
    one, two = vault_crypto.generate_key_text(), vault_crypto.generate_key_text()
    vault = Vault(store, data_dir / "vault", Keyring.from_environment(one))
    object_id = put(vault, b"held")
    with pytest.raises(VaultKeyError, match="add a new VERSION:BASE64 there"):
        vault.rotate()
    both = Vault(store, data_dir / "vault", Keyring.from_environment(f"1:{one}, 2:{two}"))
    assert both.rotate(new_version=False).rewrapped == 1
    assert both.read(object_id, actor=WHO, reason="check") == b"held"
    assert not (data_dir / "vault.key").exists()


# ---------------------------------------------------------------- retention, hold, destruction


def test_destroy_leaves_a_tombstone_and_nothing_to_decrypt(vault: Vault, store: BankStore) -> None:
    object_id = put(vault, content())
    path = vault.path_of(object_id)
    tomb = vault.destroy(object_id, actor="lead:bo", reason="false positive, confirmed")
    assert (tomb.state, tomb.destroyed_by, tomb.destroy_reason) == (
        "destroyed",
        "lead:bo",
        "false positive, confirmed",
    )
    assert tomb.destroyed_at is not None and tomb.key_version is None
    assert not path.exists()
    with store.engine.connect() as conn:
        row = conn.execute(select(OBJECTS).where(OBJECTS.c.id == object_id)).one()
    assert (row.wrapped_key, row.nonce, row.key_version) == (None, None, None)
    assert row.sha256 == tomb.sha256  # the tombstone still says what was held
    with pytest.raises(NotFound, match=r"destroyed on .* by lead:bo"):
        vault.read(object_id, actor=WHO, reason="review")
    with pytest.raises(Conflict, match="destroyed"):
        vault.destroy(object_id, actor=WHO, reason="again")
    assert vault.list_objects() == []
    assert [o.id for o in vault.list_objects(include_destroyed=True)] == [object_id]
    assert [e.action for e in vault.access_log(object_id)] == ["put", "destroy"]


def test_legal_hold_blocks_destruction_and_expiry(vault: Vault) -> None:
    object_id = put(vault, content())
    vault.mark_reported(object_id, datetime.now(UTC) - timedelta(days=400))
    held = vault.hold(object_id, actor="legal:cy", reason="subpoena 42")
    assert (held.state, held.held_by, held.hold_reason) == ("held", "legal:cy", "subpoena 42")
    with pytest.raises(Conflict, match="legal hold"):
        vault.destroy(object_id, actor=WHO, reason="cleanup")
    with pytest.raises(Conflict, match="already"):
        vault.hold(object_id, actor=WHO, reason="again")
    assert vault.expire() == []
    assert vault.read(object_id, actor=WHO, reason="check") == content()
    released = vault.release_hold(object_id, actor="legal:cy", reason="case closed")
    assert (released.legal_hold, released.held_by) == (False, None)
    with pytest.raises(Conflict, match="not on legal hold"):
        vault.release_hold(object_id, actor=WHO, reason="again")
    assert [o.id for o in vault.expire(actor="cron")] == [object_id]
    assert vault.get(object_id).destroyed_by == "cron"
    actions = [e.action for e in vault.access_log(object_id)]
    assert actions == ["put", "report", "hold", "read", "release", "destroy"]


def test_hold_and_destroy_refuse_tombstones_holds_and_unknown_ids_with_the_same_words(
    vault: Vault,
) -> None:
    object_id = put(vault, content())
    held = vault.hold(object_id, actor="legal:cy", reason="subpoena 42")
    assert held.held_at is not None
    day = f"{held.held_at:%Y-%m-%d}"
    with pytest.raises(Conflict) as held_again:
        vault.hold(object_id, actor=WHO, reason="again")
    assert str(held_again.value) == (
        f"vault object {object_id} is on legal hold already (by legal:cy since {day}: subpoena 42)"
    )
    with pytest.raises(Conflict) as destroy_held:
        vault.destroy(object_id, actor=WHO, reason="cleanup")
    assert str(destroy_held.value) == (
        f"vault object {object_id} is on legal hold (by legal:cy: subpoena 42); "
        "release the hold before destroying it"
    )
    vault.release_hold(object_id, actor="legal:cy", reason="case closed")
    vault.destroy(object_id, actor="lead:bo", reason="false positive")
    for refused in (vault.hold, vault.destroy):
        with pytest.raises(
            Conflict,
            match=rf"^vault object {object_id} was destroyed on .* "
            r"UTC by lead:bo \(false positive\)$",
        ):
            refused(object_id, actor=WHO, reason="too late")
        with pytest.raises(NotFound, match=f"^no vault object {'0' * 32}$"):
            refused("0" * 32, actor=WHO, reason="never held")
    actions = [e.action for e in vault.access_log(object_id)]
    assert actions == ["put", "hold", "release", "destroy"]  # refusals change nothing


def test_expiry_follows_retain_until(store: BankStore, data_dir: Path) -> None:
    policy = RetentionPolicy(unreported=timedelta(days=90))
    vault = Vault(store, data_dir / "vault", Keyring.from_file(data_dir / "k"), policy=policy)
    now = datetime.now(UTC)
    first, second, unreported = (put(vault, content(seed=i)) for i in range(3))
    item = vault.get(unreported)
    assert item.retain_until is not None
    assert item.retain_until - item.created_at == timedelta(days=90)
    assert vault.mark_reported(first, now).retain_until == now + timedelta(days=365)
    later = vault.mark_reported(second, now + timedelta(days=100))
    assert later.retain_until == now + timedelta(days=465)
    # A report dated earlier never shortens retention.
    earlier = vault.mark_reported(second, now + timedelta(days=50))
    assert earlier.retain_until == later.retain_until
    assert vault.expire(now) == []
    assert [o.id for o in vault.expire(now + timedelta(days=91))] == [unreported]
    assert vault.expire(now + timedelta(days=364)) == []
    assert [o.id for o in vault.expire(now + timedelta(days=366))] == [first]
    assert vault.get(second).state == "kept"
    reason = vault.get(first).destroy_reason or ""
    assert reason.startswith("retention ended")
    assert [o.id for o in vault.expire(now + timedelta(days=466))] == [second]
    assert not any((data_dir / "vault").rglob("*/*"))


@SQLITE_ONLY
def test_the_default_policy_keeps_unreported_content_until_destroyed(vault: Vault) -> None:
    object_id = put(vault, b"awaiting review")
    assert vault.expire(datetime.now(UTC) + timedelta(days=3650)) == []
    assert vault.get(object_id).state == "kept"


@SQLITE_ONLY
def test_sweep_removes_files_no_live_object_owns(vault: Vault) -> None:
    live = put(vault, b"live")
    orphan = vault.path_of("ab" + "c" * 30)  # a put that crashed before its record
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"ciphertext whose key was never kept")
    temporary = orphan.with_name("." + orphan.name + ".0badf00d.tmp")
    temporary.write_bytes(b"half a write")
    assert vault.sweep() == 0  # too recent: could be a put in progress
    assert vault.sweep(older_than=timedelta(0)) == 2
    assert not orphan.exists() and not temporary.exists()
    assert vault.read(live, actor=WHO, reason="check") == b"live"


# ---------------------------------------------------------------- the access log


def test_every_access_is_logged_with_actor_and_reason_here_and_in_the_audit_trail(
    vault: Vault, store: BankStore
) -> None:
    object_id = put(vault, b"evidence", case_ref="case-9")
    vault.read(object_id, actor="reviewer:ana", reason="first review")
    vault.read(object_id, actor="reviewer:bo", reason="second opinion")
    vault.verify(object_id, actor="ops:cy", reason="monthly check")
    log = [(e.action, e.actor, e.reason) for e in vault.access_log(object_id)]
    assert log == [
        ("put", WHO, "test"),
        ("read", "reviewer:ana", "first review"),
        ("read", "reviewer:bo", "second opinion"),
        ("verify", "ops:cy", "monthly check"),
    ]
    events = list_events(store.engine, subject=f"vault:{object_id}")
    assert [(e.action, e.actor, e.details["reason"]) for e in events] == [
        ("vault.put", WHO, "test"),
        ("vault.read", "reviewer:ana", "first review"),
        ("vault.read", "reviewer:bo", "second opinion"),
        ("vault.verify", "ops:cy", "monthly check"),
    ]
    assert events[0].details["case_ref"] == "case-9"


@SQLITE_ONLY
@pytest.mark.parametrize(("actor", "reason"), [("", "why"), ("who", ""), ("who", "   ")])
def test_a_read_without_actor_or_reason_is_refused_and_reads_nothing(
    vault: Vault, actor: str, reason: str
) -> None:
    object_id = put(vault, b"evidence")
    with pytest.raises(InvalidRequest, match="required"):
        vault.read(object_id, actor=actor, reason=reason)
    assert [e.action for e in vault.access_log(object_id)] == ["put"]


# ---------------------------------------------------------------- properties


@pytest.fixture
def memory_vault(tmp_path: Path) -> Iterator[Vault]:
    with BankStore.open("sqlite://") as store:
        yield Vault(store, tmp_path / "vault", Keyring.from_keys({1: b"k" * 32}))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=3000))
def test_any_bytes_round_trip_through_the_vault(memory_vault: Vault, data: bytes) -> None:
    object_id = put(memory_vault, data)
    assert memory_vault.read(object_id, actor=WHO, reason="property") == data
    assert memory_vault.get(object_id).size == len(data)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2000), flip=st.integers(min_value=0))
def test_sealed_content_opens_only_unaltered_and_only_as_its_own_object(
    data: bytes, flip: int
) -> None:
    digest = hashlib.sha256(data).hexdigest()
    sealed = seal(data, object_id="a" * 32, sha256_hex=digest)
    common = {"data_key": sealed.data_key, "nonce": sealed.nonce, "size": len(data)}
    assert unseal(sealed.file_bytes, object_id="a" * 32, sha256_hex=digest, **common) == data
    with pytest.raises(VaultIntegrityError):
        unseal(sealed.file_bytes, object_id="b" * 32, sha256_hex=digest, **common)
    blob = bytearray(sealed.file_bytes)
    blob[flip % len(blob)] ^= 1 + flip % 255
    with pytest.raises(VaultIntegrityError):
        unseal(bytes(blob), object_id="a" * 32, sha256_hex=digest, **common)


# ---------------------------------------------------------------- master key sources


def test_the_key_file_is_created_private_and_lists_versions(tmp_path: Path) -> None:
    keyring = Keyring.from_file(tmp_path / "keys" / "vault.key")
    assert not keyring.exists()
    assert keyring.active_version(create=True) == 1
    assert keyring.add_version() == 2
    text = (tmp_path / "keys" / "vault.key").read_text()
    assert [line.split()[0] for line in text.splitlines() if not line.startswith("#")] == [
        "1",
        "2",
    ]
    assert stat.S_IMODE((tmp_path / "keys" / "vault.key").stat().st_mode) == 0o600
    assert "=" not in repr(keyring) and str(tmp_path) in keyring.source
    with pytest.raises(VaultKeyError, match="exists already"):
        keyring.create()


def test_processes_putting_first_at_once_share_one_new_key_file(tmp_path: Path) -> None:
    path = tmp_path / "vault.key"
    keyrings = [Keyring.from_file(path) for _ in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        versions = list(pool.map(lambda k: k.active_version(create=True), keyrings))
    assert versions == [1] * 8
    assert len({k.fingerprint(1) for k in keyrings}) == 1


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "vault.key"
    Keyring.from_file(path).create()
    path.chmod(0o644)
    with pytest.raises(VaultKeyError, match="chmod 600"):
        Keyring.from_file(path).versions()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no key"),
        ("# only a comment\n", "holds no key"),
        ("1 not-base64!\n", "line 1 is not base64"),
        (f"1 {base64.b64encode(b'short').decode()}\n", "5 bytes, not 32"),
        (f"x {base64.b64encode(bytes(32)).decode()}\n", "line 1: expected VERSION BASE64"),
        (f"0 {base64.b64encode(bytes(32)).decode()}\n", "not a positive integer"),
        (f"1 {base64.b64encode(bytes(32)).decode()}\n" * 2, "line 2: version 1 appears twice"),
    ],
)
def test_malformed_key_files_are_refused_without_quoting_keys(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "vault.key"
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(VaultKeyError, match=message) as caught:
        Keyring.from_file(path).versions()
    for word in text.split():
        if len(word) > 8:
            assert word not in str(caught.value)


def test_environment_keys_parse_versions_and_a_lone_key() -> None:
    one, two = vault_crypto.generate_key_text(), vault_crypto.generate_key_text()
    assert Keyring.from_environment(one).versions() == (1,)
    keyring = Keyring.from_environment(f"3:{two}, 1:{one}")
    assert (keyring.versions(), keyring.active_version()) == ((1, 3), 3)
    assert Keyring.resolve("/nowhere", {"LIGHTKEEPER_VAULT_KEY": one}).source == (
        "$LIGHTKEEPER_VAULT_KEY"
    )
    resolved = Keyring.resolve("/data", {"LIGHTKEEPER_VAULT_KEY_FILE": "/etc/lk/vault.key"})
    assert resolved.path == Path("/etc/lk/vault.key")
    assert Keyring.resolve("/data", {}).path == Path("/data/vault.key")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_environment_text_parses_or_is_refused_cleanly(text: str) -> None:
    try:
        keyring = Keyring.from_environment(text)
    except VaultKeyError as exc:
        assert "Traceback" not in str(exc)
        return
    assert keyring.versions()


# ---------------------------------------------------------------- command line


def test_the_command_line_manages_the_vault(tmp_path: Path) -> None:
    db = tmp_path / "data" / "lightkeeper.db"
    evidence = tmp_path / "upload.bin"
    evidence.write_bytes(content(3000, seed=5))
    runner = CliRunner()

    def lk(*args: str | Path) -> Any:
        result = runner.invoke(main, [*map(str, args), "--db", str(db)])
        assert "Traceback" not in result.output, result.output
        return result

    put_result = lk("vault", "put", evidence, "--media-type", "image/png", "--reason", "manual")
    assert put_result.exit_code == 0, put_result.output
    object_id = put_result.stdout.strip()
    assert (tmp_path / "data" / "vault.key").is_file()
    assert object_id in lk("vault", "list").stdout
    missing_reason = lk("vault", "read", object_id, "--out", tmp_path / "x")
    assert missing_reason.exit_code == 2 and "--reason" in missing_reason.output
    out = tmp_path / "read.bin"
    read = lk("vault", "read", object_id, "--out", out, "--reason", "second review")
    assert read.exit_code == 0, read.output
    assert out.read_bytes() == evidence.read_bytes()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert lk("vault", "read", object_id, "--out", out, "--reason", "again").exit_code == 2
    assert "\tok\t" in lk("vault", "verify", object_id).stdout
    assert lk("vault", "hold", object_id, "--reason", "subpoena").exit_code == 0
    refused = lk("vault", "destroy", object_id, "--reason", "cleanup", "--yes")
    assert refused.exit_code == 1 and "legal hold" in refused.stderr
    assert lk("vault", "release", object_id, "--reason", "closed").exit_code == 0
    rotated = lk("vault", "rotate-key")
    assert rotated.exit_code == 0 and "1 data keys re-wrapped under new master key 2" in (
        rotated.stdout
    )
    assert lk("vault", "mark-reported", object_id, "--at", "2020-01-01").exit_code == 0
    expired = lk("vault", "expire")
    assert expired.exit_code == 0 and f"{object_id}\tdestroyed" in expired.stdout
    shown = lk("vault", "show", object_id)
    assert "destroyed_by:" in shown.stdout and "second review" in shown.stdout
    assert not list((tmp_path / "data" / "vault").rglob("*/*"))


def test_the_command_line_asks_before_destroying(tmp_path: Path) -> None:
    db = str(tmp_path / "lightkeeper.db")
    runner = CliRunner()
    evidence = tmp_path / "e.bin"
    evidence.write_bytes(b"e")
    object_id = runner.invoke(
        main, ["vault", "put", str(evidence), "--reason", "r", "--db", db]
    ).stdout.strip()
    args = ["vault", "destroy", object_id, "--reason", "r", "--db", db]
    assert runner.invoke(main, args, input="n\n").exit_code == 1
    assert runner.invoke(main, args, input="y\n").exit_code == 0
    assert list((tmp_path / "vault" / object_id[:2]).iterdir()) == []


def test_every_vault_setting_is_documented_and_named_in_the_help() -> None:
    guide = (Path(__file__).resolve().parents[1] / "docs" / "vault.md").read_text()
    help_text = CliRunner().invoke(main, ["vault", "list", "--help"]).output
    for setting in (VAULT_DIR, vault_crypto.KEY_ENV, vault_crypto.KEY_FILE):
        assert f"`{setting.env}`" in guide
        assert f"${setting.env}" in help_text
