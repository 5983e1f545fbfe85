"""The quarantine vault: content held as evidence, encrypted at rest, every access logged.

When a policy quarantines an upload, its bytes go here (`Vault.put`). What is kept where:

- the *ciphertext*, in a file under the vault directory named by the object's random id
  (``<vault dir>/ab/cdef…``), never by its hash: a file name that is a content hash would tell
  anyone listing the directory which known image it holds. Files are written atomically
  (temporary file, flushed to disk, renamed) and hold ciphertext only;
- the *metadata*, in the bank store's database (``vault_objects``): SHA-256 of the original,
  size, media type, case reference, the data key as wrapped by the master key and that key's
  version, the content's nonce, retention, legal hold, and once destroyed a tombstone;
- the *plaintext*, only in this process's memory: it is never written to disk, spooled or
  logged.

The cryptography is in `lightkeeper.actions.vault_crypto`, the file layout in
`lightkeeper.actions.vault_files`, the records returned in `lightkeeper.actions.vault_records`.

Each object is its own: the same bytes put twice are two objects with two keys, retention
periods and holds (no deduplication), so destroying one case's copy never touches another's;
`Vault.list_objects` finds them by SHA-256.

Retention: by `RetentionPolicy`, an object may be destroyed by `Vault.expire` once its
``retain_until`` has passed, and never while on legal hold. `Vault.mark_reported` sets
``retain_until`` to one year after the report (unless it is later already): US law
(18 U.S.C. § 2258A(h), as amended in 2024) has a provider preserve reported content for a
year. Unreported objects are kept until destroyed, unless the policy gives them a period.

Destruction is crypto-shredding: the wrapped data key and nonce are dropped from the
database (the content cannot be decrypted any more, whatever copies of the file survive),
then the file is overwritten and unlinked; the row stays as a tombstone naming who destroyed
it, when and why.

Every put, read, verification, hold, release, report and destruction writes a row to
``vault_access`` with who and why, and an event to the audit trail
(`lightkeeper.banks.audit.record`) in the same transaction. A read is logged *before* the
content is decrypted: no read goes unrecorded, even one that then fails.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import Connection, Row, Table, func, insert, select, update

from lightkeeper.actions.vault_crypto import Keyring, seal, unseal
from lightkeeper.actions.vault_files import (
    OBJECT_ID,
    TEMPORARY,
    object_path,
    shred,
    stored_files,
    write_atomic,
)
from lightkeeper.actions.vault_records import (
    AccessAction,
    RetentionPolicy,
    RotationReport,
    VaultAccess,
    VaultObject,
    to_access,
    to_object,
)
from lightkeeper.banks import _engine
from lightkeeper.banks.audit import acting_as, current_actor, record
from lightkeeper.banks.models import VaultAccessRow, VaultMasterKeyRow, VaultObjectRow
from lightkeeper.banks.settings import DEFAULT_DATA_DIR, Setting, sqlite_path
from lightkeeper.banks.store import BankStore
from lightkeeper.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    VaultIntegrityError,
    VaultKeyError,
)

__all__ = [
    "BATCH_SIZE",
    "MAX_OBJECT_BYTES",
    "RETENTION_ACTOR",
    "VAULT_DIR",
    "RetentionPolicy",
    "RotationReport",
    "Vault",
    "VaultAccess",
    "VaultObject",
    "data_directory",
]

T = TypeVar("T")

OBJECTS = cast(Table, VaultObjectRow.__table__)
ACCESS = cast(Table, VaultAccessRow.__table__)
MASTER_KEYS = cast(Table, VaultMasterKeyRow.__table__)

VAULT_DIR = Setting(
    name="vault_dir",
    env="LIGHTKEEPER_VAULT_DIR",
    default="vault/ in the data directory",
    help=(
        "Directory of the vault's encrypted files; the data directory is the SQLite "
        "database's, else ./lightkeeper-data"
    ),
)

#: Who `Vault.expire` says destroyed an object, unless told otherwise.
RETENTION_ACTOR = "system:retention"
#: Largest content accepted: it is held in memory whole, and AES-GCM takes under 2 GiB a call.
MAX_OBJECT_BYTES = 1 << 30
#: Objects destroyed or re-wrapped per transaction by `expire` and `rotate`.
BATCH_SIZE = 500

_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")
_MAX_ACTOR = 200
_MAX_REASON = 1000
_MAX_CASE_REF = 200


def _now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------- validation


def _who_why(actor: str, reason: str) -> tuple[str, str]:
    actor, reason = actor.strip(), reason.strip()
    if not actor:
        raise InvalidRequest("an actor is required: who is acting")
    if not reason:
        raise InvalidRequest("a reason is required: why the vault is being accessed")
    if len(actor) > _MAX_ACTOR:
        raise InvalidRequest(f"the actor is over {_MAX_ACTOR} characters")
    if len(reason) > _MAX_REASON:
        raise InvalidRequest(f"the reason is over {_MAX_REASON} characters")
    return actor, reason


def _check_id(object_id: str) -> str:
    if not OBJECT_ID.fullmatch(object_id):
        raise InvalidRequest(f"{object_id!r} is not a vault object id (32 hex digits)")
    return object_id


def _media_type(value: str) -> str:
    media_type = value.strip().lower()
    if not _MEDIA_TYPE.fullmatch(media_type):
        raise InvalidRequest(f"{value!r} is not a media type (such as image/jpeg)")
    return media_type


def _case_ref(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > _MAX_CASE_REF or not value.isprintable():
        raise InvalidRequest(f"a case reference is 1 to {_MAX_CASE_REF} printable characters")
    return value


def data_directory(store: BankStore) -> Path:
    """The store's data directory: its SQLite file's, else ``./lightkeeper-data``."""
    path = sqlite_path(store.url)
    return DEFAULT_DATA_DIR if path is None else path.parent


# ---------------------------------------------------------------------- the vault


class Vault:
    """Encrypted quarantine beside a bank store; see the module docstring.

    `root` is the directory of the vault's files, `keyring` its master keys. `Vault.open`
    finds both from the settings. Every method is one or a few short transactions; a vault is
    safe to share between threads.
    """

    def __init__(
        self,
        store: BankStore,
        root: str | os.PathLike[str],
        keyring: Keyring,
        *,
        policy: RetentionPolicy | None = None,
        max_bytes: int = MAX_OBJECT_BYTES,
    ) -> None:
        self._store = store
        self._root = Path(root)
        self._keyring = keyring
        self._policy = policy or RetentionPolicy()
        self._max_bytes = max_bytes

    @classmethod
    def open(
        cls,
        store: BankStore,
        *,
        root: str | os.PathLike[str] | None = None,
        keyring: Keyring | None = None,
        policy: RetentionPolicy | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Vault:
        """The vault of `store`: files in `root`, else ``$LIGHTKEEPER_VAULT_DIR``, else
        ``vault/`` in the data directory; keys from `keyring`, else `Keyring.resolve`."""
        env = os.environ if environ is None else environ
        data_dir = data_directory(store)
        where = root or env.get(VAULT_DIR.env) or data_dir / "vault"
        return cls(
            store,
            where,
            keyring or Keyring.resolve(data_dir, env),
            policy=policy,
        )

    @property
    def store(self) -> BankStore:
        return self._store

    @property
    def root(self) -> Path:
        return self._root

    @property
    def keyring(self) -> Keyring:
        return self._keyring

    @property
    def policy(self) -> RetentionPolicy:
        return self._policy

    def _write(self, work: Callable[[Connection], T]) -> T:
        return _engine.write(self._store.engine, work)

    def _read(self, work: Callable[[Connection], T]) -> T:
        return _engine.read(self._store.engine, work)

    def path_of(self, object_id: str) -> Path:
        """Where an object's ciphertext is kept."""
        _check_id(object_id)
        return object_path(self._root, object_id)

    # ------------------------------------------------------------------ put

    def put(
        self,
        data: bytes,
        *,
        media_type: str,
        actor: str,
        reason: str,
        case_ref: str | None = None,
    ) -> VaultObject:
        """Quarantine `data`: encrypt it, write the ciphertext, record it; returns its record.

        Each call makes a new object, even for bytes the vault holds already.
        """
        actor, reason = _who_why(actor, reason)
        media_type = _media_type(media_type)
        case_ref = _case_ref(case_ref)
        if len(data) > self._max_bytes:
            raise InvalidRequest(
                f"content of {len(data)} bytes is over the vault's limit of {self._max_bytes}"
            )
        self._refuse_new_key_file()
        self._keyring.active_version(create=True)
        object_id = uuid.uuid4().hex
        digest = hashlib.sha256(data).hexdigest()
        sealed = seal(data, object_id=object_id, sha256_hex=digest)
        version, wrapped = self._keyring.wrap(sealed.data_key, object_id=object_id)
        fingerprint = self._keyring.fingerprint(version)
        path = self.path_of(object_id)
        self._root.mkdir(mode=0o700, parents=True, exist_ok=True)  # only its owner lists it
        write_atomic(path, sealed.file_bytes)
        now = _now()
        retain_until = None if self._policy.unreported is None else now + self._policy.unreported
        values = {
            "id": object_id,
            "sha256": digest,
            "size": len(data),
            "media_type": media_type,
            "case_ref": case_ref,
            "created_at": now,
            "created_by": actor,
            "key_version": version,
            "wrapped_key": base64.b64encode(wrapped).decode("ascii"),
            "nonce": base64.b64encode(sealed.nonce).decode("ascii"),
            "retain_until": retain_until,
            "legal_hold": False,
        }

        def work(conn: Connection) -> None:
            self._register_key(conn, version, fingerprint, now)
            conn.execute(insert(OBJECTS), values)
            self._log(
                conn,
                object_id,
                "put",
                actor,
                reason,
                now,
                audit={"size": len(data), "media_type": media_type, "case_ref": case_ref},
            )

        try:
            self._write(work)
        except BaseException:
            path.unlink(missing_ok=True)  # ciphertext whose key was never kept: noise
            raise
        return self.get(object_id)

    def _refuse_new_key_file(self) -> None:
        """Refuse to start a new key file for a vault whose objects need the lost one."""
        if self._keyring.exists():
            return
        used = self._read(lambda conn: conn.execute(select(MASTER_KEYS.c.version)).all())
        if used:
            raise VaultKeyError(
                f"{self._keyring.source} does not exist, but the vault holds objects under "
                f"master key versions {', '.join(str(r.version) for r in used)}: restore it "
                "from its backup (a new key would not read them)"
            )

    def _register_key(self, conn: Connection, version: int, fingerprint: str, at: datetime) -> None:
        known = conn.execute(
            select(MASTER_KEYS.c.fingerprint).where(MASTER_KEYS.c.version == version)
        ).scalar_one_or_none()
        if known is None:
            conn.execute(
                insert(MASTER_KEYS),
                {"version": version, "fingerprint": fingerprint, "created_at": at},
            )
        elif known != fingerprint:
            raise self._wrong_key(version)

    def _wrong_key(self, version: int) -> VaultKeyError:
        return VaultKeyError(
            f"master key version {version} in {self._keyring.source} is not the key this "
            "vault's objects were wrapped with (a wrong key file or variable?)"
        )

    # ------------------------------------------------------------------ reads

    def read(self, object_id: str, *, actor: str, reason: str) -> bytes:
        """The content of an object, all of it, after logging who reads it and why.

        `VaultIntegrityError` when the file or the wrapped key was altered, swapped, truncated
        or lost (and no byte of content is returned); `VaultKeyError` when the master key it
        needs is missing or wrong; `NotFound` for an unknown or destroyed object.
        """
        actor, reason = _who_why(actor, reason)
        row, fingerprint = self._logged_access(_check_id(object_id), "read", actor, reason)
        return self._decrypt(row, fingerprint, actor)

    def verify(self, object_id: str, *, actor: str, reason: str = "integrity check") -> VaultObject:
        """Decrypt an object and check its SHA-256, without returning the content (logged)."""
        actor, reason = _who_why(actor, reason)
        row, fingerprint = self._logged_access(_check_id(object_id), "verify", actor, reason)
        self._decrypt(row, fingerprint, actor)
        return to_object(row)

    def _logged_access(
        self, object_id: str, action: AccessAction, actor: str, reason: str
    ) -> tuple[Row[Any], str | None]:
        """The object's row and its master key's recorded fingerprint, the access logged."""

        def work(conn: Connection) -> tuple[Row[Any], str | None]:
            row = self._row(conn, object_id)
            if row.destroyed_at is not None:
                return row, None
            fingerprint = conn.execute(
                select(MASTER_KEYS.c.fingerprint).where(MASTER_KEYS.c.version == row.key_version)
            ).scalar_one_or_none()
            self._log(conn, object_id, action, actor, reason, _now())
            return row, fingerprint

        row, fingerprint = self._write(work)
        if row.destroyed_at is not None:
            raise _gone(row)
        return row, fingerprint

    def _decrypt(self, row: Row[Any], fingerprint: str | None, actor: str) -> bytes:
        version = int(row.key_version)
        if fingerprint is not None and self._keyring.fingerprint(version) != fingerprint:
            raise self._wrong_key(version)
        try:
            data_key = self._keyring.unwrap(
                base64.b64decode(row.wrapped_key), version=version, object_id=row.id
            )
            try:
                file_bytes = self.path_of(row.id).read_bytes()
            except FileNotFoundError:
                raise VaultIntegrityError(
                    f"vault object {row.id}: its file is missing from {self._root}"
                ) from None
            data = unseal(
                file_bytes,
                data_key=data_key,
                nonce=base64.b64decode(row.nonce),
                object_id=row.id,
                sha256_hex=row.sha256,
                size=row.size,
            )
            if hashlib.sha256(data).hexdigest() != row.sha256:  # unreachable unless GCM broke
                raise VaultIntegrityError(
                    f"vault object {row.id}: content does not match its SHA-256"
                )
        except VaultIntegrityError as exc:
            self._record_failure(row.id, actor, str(exc))
            raise
        return data

    def _record_failure(self, object_id: str, actor: str, message: str) -> None:
        self._write(
            lambda conn: self._log(
                conn,
                object_id,
                "integrity_failure",
                actor,
                "decryption failed",
                _now(),
                detail=message,
            )
        )

    def get(self, object_id: str) -> VaultObject:
        """An object's record (`NotFound` if the vault never held it; tombstones are found)."""
        _check_id(object_id)
        return to_object(self._read(lambda conn: self._row(conn, object_id)))

    def list_objects(
        self,
        *,
        include_destroyed: bool = False,
        case_ref: str | None = None,
        sha256: str | None = None,
        limit: int = 1000,
    ) -> list[VaultObject]:
        """Objects, oldest first: live ones only unless `include_destroyed`."""
        query = select(OBJECTS)
        if not include_destroyed:
            query = query.where(OBJECTS.c.destroyed_at.is_(None))
        if case_ref is not None:
            query = query.where(OBJECTS.c.case_ref == case_ref)
        if sha256 is not None:
            query = query.where(OBJECTS.c.sha256 == sha256.lower())
        query = query.order_by(OBJECTS.c.created_at, OBJECTS.c.id).limit(limit)
        return self._read(lambda conn: [to_object(r) for r in conn.execute(query)])

    def access_log(self, object_id: str | None = None, *, limit: int = 1000) -> list[VaultAccess]:
        """The access log, oldest first (of one object, or of all)."""
        query = select(ACCESS)
        if object_id is not None:
            query = query.where(ACCESS.c.object_id == _check_id(object_id))
        query = query.order_by(ACCESS.c.id).limit(limit)
        return self._read(lambda conn: [to_access(r) for r in conn.execute(query)])

    # ------------------------------------------------------------------ retention

    def hold(self, object_id: str, *, actor: str, reason: str) -> VaultObject:
        """Put an object on legal hold: nothing destroys it until the hold is released."""
        actor, reason = _who_why(actor, reason)
        _check_id(object_id)

        def work(conn: Connection) -> None:
            self._refuse_destroyed_or_held(conn, object_id, "hold")
            now = _now()
            conn.execute(
                update(OBJECTS)
                .where(OBJECTS.c.id == object_id)
                .values(legal_hold=True, hold_reason=reason, held_by=actor, held_at=now)
            )
            self._log(conn, object_id, "hold", actor, reason, now)

        self._write(work)
        return self.get(object_id)

    def release_hold(self, object_id: str, *, actor: str, reason: str) -> VaultObject:
        """Release an object's legal hold; its retention applies again."""
        actor, reason = _who_why(actor, reason)
        _check_id(object_id)

        def work(conn: Connection) -> None:
            row = self._row(conn, object_id)
            if not row.legal_hold:
                raise Conflict(f"vault object {object_id} is not on legal hold")
            now = _now()
            conn.execute(
                update(OBJECTS)
                .where(OBJECTS.c.id == object_id)
                .values(legal_hold=False, hold_reason=None, held_by=None, held_at=None)
            )
            detail = f"held by {row.held_by} since {row.held_at.isoformat()}"
            self._log(conn, object_id, "release", actor, reason, now, detail=detail[:500])

        self._write(work)
        return self.get(object_id)

    def mark_reported(
        self,
        object_id: str,
        at: datetime | None = None,
        *,
        actor: str | None = None,
        reason: str = "report filed",
    ) -> VaultObject:
        """Record that the object was reported at `at` (default: now): it is then kept until
        `at` plus the policy's `after_report` (a year), or longer if it was already."""
        if at is not None and at.tzinfo is None:
            raise InvalidRequest("the report time must be timezone-aware")
        actor, reason = _who_why(actor or current_actor(), reason)
        _check_id(object_id)
        reported_at = at or _now()
        keep_until = reported_at + self._policy.after_report

        def work(conn: Connection) -> None:
            row = self._row(conn, object_id)
            if row.destroyed_at is not None:
                raise _gone(row, Conflict)
            retain_until = row.retain_until
            if retain_until is None or retain_until < keep_until:
                retain_until = keep_until
            conn.execute(
                update(OBJECTS)
                .where(OBJECTS.c.id == object_id)
                .values(reported_at=reported_at, retain_until=retain_until)
            )
            detail = f"reported {reported_at.isoformat()}; kept until {retain_until.isoformat()}"
            self._log(conn, object_id, "report", actor, reason, _now(), detail=detail)

        self._write(work)
        return self.get(object_id)

    def destroy(self, object_id: str, *, actor: str, reason: str) -> VaultObject:
        """Destroy an object for good (refused while on legal hold); returns its tombstone."""
        actor, reason = _who_why(actor, reason)
        _check_id(object_id)

        def work(conn: Connection) -> None:
            self._refuse_destroyed_or_held(conn, object_id, "destroy")
            self._shred_row(conn, object_id, actor, reason, _now())

        self._write(work)
        shred(self.path_of(object_id))
        return self.get(object_id)

    def expire(
        self, now: datetime | None = None, *, actor: str = RETENTION_ACTOR
    ) -> list[VaultObject]:
        """Destroy every object whose retention ended by `now` and that is not on legal hold;
        returns their tombstones."""
        moment = now or _now()
        if moment.tzinfo is None:
            raise InvalidRequest("`now` must be timezone-aware")
        destroyed: list[str] = []
        while True:

            def work(conn: Connection) -> list[str]:
                due = conn.execute(
                    select(OBJECTS.c.id, OBJECTS.c.retain_until)
                    .where(
                        OBJECTS.c.destroyed_at.is_(None),
                        OBJECTS.c.legal_hold.is_(False),
                        OBJECTS.c.retain_until <= moment,
                    )
                    .order_by(OBJECTS.c.retain_until, OBJECTS.c.id)
                    .limit(BATCH_SIZE)
                ).all()
                at = _now()
                for row in due:
                    reason = f"retention ended {row.retain_until.isoformat()}"
                    self._shred_row(conn, row.id, actor, reason, at)
                return [row.id for row in due]

            batch = self._write(work)
            for object_id in batch:
                shred(self.path_of(object_id))
            destroyed += batch
            if len(batch) < BATCH_SIZE:
                break
        return [self.get(object_id) for object_id in destroyed]

    def _shred_row(
        self, conn: Connection, object_id: str, actor: str, reason: str, at: datetime
    ) -> None:
        """Drop the object's wrapped key and nonce, leaving its tombstone (caller's txn)."""
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # zero the freed bytes of the key's old cell in the database file
            conn.exec_driver_sql("PRAGMA secure_delete=ON")
        conn.execute(
            update(OBJECTS)
            .where(OBJECTS.c.id == object_id)
            .values(
                wrapped_key=None,
                nonce=None,
                key_version=None,
                destroyed_at=at,
                destroyed_by=actor,
                destroy_reason=reason,
            )
        )
        if sqlite:
            conn.exec_driver_sql("PRAGMA secure_delete=OFF")
        self._log(conn, object_id, "destroy", actor, reason, at)

    def sweep(self, *, older_than: timedelta = timedelta(hours=1)) -> int:
        """Remove files that no live object owns: those of a put that crashed before its
        record was written, of a destruction that crashed before unlinking, and temporary
        files. Only files older than `older_than`, so a put in progress keeps its file."""
        cutoff = time.time() - older_than.total_seconds()
        candidates: dict[str, Path] = {}
        removed = 0
        for object_id, path in stored_files(self._root):
            if path.stat().st_mtime > cutoff:
                continue
            if object_id is not None:
                candidates[object_id] = path
            elif TEMPORARY.fullmatch(path.name):
                path.unlink(missing_ok=True)
                removed += 1
        ids = list(candidates)
        for start in range(0, len(ids), BATCH_SIZE):
            chunk = ids[start : start + BATCH_SIZE]
            live = self._live_ids(chunk)
            for object_id in chunk:
                if object_id not in live and shred(candidates[object_id]):
                    removed += 1
        return removed

    def _live_ids(self, ids: list[str]) -> set[str]:
        query = select(OBJECTS.c.id).where(OBJECTS.c.id.in_(ids), OBJECTS.c.destroyed_at.is_(None))
        return self._read(lambda conn: set(conn.execute(query).scalars()))

    # ------------------------------------------------------------------ key rotation

    def rotate(
        self,
        *,
        new_version: bool = True,
        actor: str | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> RotationReport:
        """Re-wrap every live object's data key under the active master key; content is not
        touched. With `new_version`, a new master key is first added to the key file.

        Crash-safe: the new key is in the key file, flushed, before any data key is re-wrapped
        under it; each object's wrapped key and version change together in one transaction;
        old versions stay in the file. An interrupted rotation leaves every object readable,
        and running it again (``new_version=False``) finishes it.
        """
        who = actor or current_actor()
        if not self._keyring.exists() and not new_version:
            self._refuse_new_key_file()
        self._check_fingerprints()
        version = self._keyring.add_version() if new_version else self._keyring.active_version()
        now = _now()
        fingerprint = self._keyring.fingerprint(version)
        self._write(lambda conn: self._register_key(conn, version, fingerprint, now))
        rewrapped = 0
        failed: list[str] = []
        after = ""
        while True:

            def work(conn: Connection, after: str = after) -> tuple[list[str], int, list[str]]:
                rows = conn.execute(
                    select(OBJECTS.c.id, OBJECTS.c.key_version, OBJECTS.c.wrapped_key)
                    .where(
                        OBJECTS.c.destroyed_at.is_(None),
                        OBJECTS.c.key_version != version,
                        OBJECTS.c.id > after,
                    )
                    .order_by(OBJECTS.c.id)
                    .limit(batch_size)
                ).all()
                done, bad = 0, []
                for row in rows:
                    try:
                        data_key = self._keyring.unwrap(
                            base64.b64decode(row.wrapped_key),
                            version=row.key_version,
                            object_id=row.id,
                        )
                    except VaultIntegrityError:
                        bad.append(row.id)
                        continue
                    wrapped_under, wrapped = self._keyring.wrap(data_key, object_id=row.id)
                    if wrapped_under != version:
                        raise VaultKeyError(
                            f"{self._keyring.source} changed during the rotation (another "
                            "rotation?); run it again"
                        )
                    conn.execute(
                        update(OBJECTS)
                        .where(OBJECTS.c.id == row.id, OBJECTS.c.key_version == row.key_version)
                        .values(
                            key_version=version,
                            wrapped_key=base64.b64encode(wrapped).decode("ascii"),
                        )
                    )
                    done += 1
                return [row.id for row in rows], done, bad

            seen, done, bad = self._write(work)
            rewrapped += done
            failed += bad
            if not seen:
                break
            after = seen[-1]
        by_version = self._count_by_version()
        details = {"version": version, "created": new_version, "rewrapped": rewrapped}

        def audit(conn: Connection) -> None:
            with acting_as(who):
                record(conn, "vault.rotate", "vault", {**details, "failed": len(failed)})

        self._write(audit)
        return RotationReport(version, new_version, rewrapped, tuple(failed), by_version)

    def _check_fingerprints(self) -> None:
        """`VaultKeyError` if a version in the keyring is not the key the vault recorded."""
        if not self._keyring.exists():
            return
        recorded = self._read(
            lambda conn: {
                r.version: r.fingerprint
                for r in conn.execute(select(MASTER_KEYS.c.version, MASTER_KEYS.c.fingerprint))
            }
        )
        for version in self._keyring.versions():
            if version in recorded and self._keyring.fingerprint(version) != recorded[version]:
                raise self._wrong_key(version)

    def _count_by_version(self) -> dict[int, int]:
        def work(conn: Connection) -> dict[int, int]:
            counts = {r.version: 0 for r in conn.execute(select(MASTER_KEYS.c.version))}
            query = (
                select(OBJECTS.c.key_version, func.count())
                .where(OBJECTS.c.destroyed_at.is_(None))
                .group_by(OBJECTS.c.key_version)
            )
            for version, count in conn.execute(query):
                counts[int(version)] = int(count)
            return counts

        return self._read(work)

    # ------------------------------------------------------------------ internals

    def _row(self, conn: Connection, object_id: str) -> Row[Any]:
        row = conn.execute(select(OBJECTS).where(OBJECTS.c.id == object_id)).first()
        if row is None:
            raise NotFound(f"no vault object {object_id}")
        return row

    def _refuse_destroyed_or_held(
        self, conn: Connection, object_id: str, change: Literal["hold", "destroy"]
    ) -> None:
        """What `hold` and `destroy` check first, in their transaction: `NotFound` if the vault
        never held the object; `Conflict` if it was destroyed or is on legal hold already,
        in words that say which of the two changes was refused."""
        row = self._row(conn, object_id)
        if row.destroyed_at is not None:
            raise _gone(row, Conflict)
        if not row.legal_hold:
            return
        if change == "hold":
            raise Conflict(
                f"vault object {object_id} is on legal hold already "
                f"(by {row.held_by} since {row.held_at:%Y-%m-%d}: {row.hold_reason})"
            )
        raise Conflict(
            f"vault object {object_id} is on legal hold (by {row.held_by}: "
            f"{row.hold_reason}); release the hold before destroying it"
        )

    def _log(
        self,
        conn: Connection,
        object_id: str,
        action: AccessAction,
        actor: str,
        reason: str,
        at: datetime,
        *,
        detail: str | None = None,
        audit: Mapping[str, Any] | None = None,
    ) -> None:
        """One access-log row and one audit event, in the caller's transaction."""
        conn.execute(
            insert(ACCESS),
            {
                "object_id": object_id,
                "at": at,
                "actor": actor,
                "action": action,
                "reason": reason,
                "detail": None if detail is None else detail[:500],
            },
        )
        details: dict[str, Any] = {"reason": reason, **(audit or {})}
        if detail is not None:
            details["detail"] = detail[:500]
        with acting_as(actor):
            record(conn, f"vault.{action}", f"vault:{object_id}", details, at=at)


def _gone(row: Row[Any], error: type[NotFound] | type[Conflict] = NotFound) -> Exception:
    return error(
        f"vault object {row.id} was destroyed on {row.destroyed_at:%Y-%m-%d %H:%M} UTC "
        f"by {row.destroyed_by} ({row.destroy_reason})"
    )
