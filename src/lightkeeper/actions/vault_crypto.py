"""The quarantine vault's cryptography: master keys, and envelope encryption of content.

Envelope encryption, all of it AES-256-GCM from the ``cryptography`` package:

- each object gets a fresh random 256-bit *data key* and a random 96-bit nonce; its content
  is encrypted under them with associated data naming the object id and the SHA-256 of the
  content, so a ciphertext moved to another object's file fails to decrypt;
- the data key is *wrapped* (encrypted) under a *master key* with a nonce of its own and
  associated data naming the object id and the master key's version; only the wrapped key
  is stored, beside the version that wrapped it.

Master keys come from the environment variable ``LIGHTKEEPER_VAULT_KEY`` when it is set, else
from a key file (``vault.key`` in the data directory unless ``LIGHTKEEPER_VAULT_KEY_FILE``
names another), created with mode 0600 the first time content is put. Several versions may be
present; the highest is the *active* one, which wraps new data keys. Rotating adds a version
and re-wraps data keys under it (`lightkeeper.actions.vault.Vault.rotate`); content is never
re-encrypted. The key file is one version a line::

    # Lightkeeper vault master keys: keep secret, back up apart from the data.
    1 6q1Xw…base64 of 32 bytes…=
    2 pZ0r…=

and the variable holds ``1:BASE64,2:BASE64`` (or a lone ``BASE64``, version 1). A key file
that others may read is refused, as ssh refuses such a private key. The key file is re-read
when it changes on disk, so a long-running service sees a version another process added.

Keys never leave `Keyring`: it wraps and unwraps, and names a key by its *fingerprint*
(HMAC-SHA-256 under the key of a fixed text), never by its bytes; no message, ``repr`` or
log line holds key material.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import stat
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lightkeeper.actions.vault_files import fsync_directory
from lightkeeper.banks.settings import Setting
from lightkeeper.errors import VaultIntegrityError, VaultKeyError

KEY_ENV = Setting(
    name="vault_key",
    env="LIGHTKEEPER_VAULT_KEY",
    default="(unset)",
    help=(
        "Vault master keys, VERSION:BASE64 separated by commas (a lone BASE64 is version 1); "
        "when set, the key file is not used"
    ),
)
KEY_FILE = Setting(
    name="vault_key_file",
    env="LIGHTKEEPER_VAULT_KEY_FILE",
    default="vault.key in the data directory",
    help="Vault master key file (mode 0600, created on first use when absent)",
)

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
#: Starts every vault file: format and version, so a foreign or future file is named as such.
FILE_MAGIC = b"LKVAULT1"
#: Bytes a vault file has beyond its content: the magic and the GCM tag.
FILE_OVERHEAD = len(FILE_MAGIC) + TAG_BYTES
#: Bytes of a wrapped data key: nonce, encrypted key, tag.
WRAPPED_BYTES = NONCE_BYTES + KEY_BYTES + TAG_BYTES

_CONTENT_AD = b"lightkeeper-vault/content/v1\x00"
_WRAP_AD = b"lightkeeper-vault/data-key/v1\x00"
_FINGERPRINT_TEXT = b"lightkeeper-vault/fingerprint/v1"
_MAX_VERSION = 2**31 - 1
_FILE_HEADER = (
    "# Lightkeeper vault master keys: VERSION BASE64, the highest version is active.\n"
    "# Keep this file secret, and back it up apart from the data directory and database.\n"
)
_LINE = re.compile(r"\s*(\d{1,10})\s+(\S+)\s*")


# ---------------------------------------------------------------------- master keys


class Keyring:
    """Versions of the vault master key, from a key file or the environment.

    Build one with `from_file`, `from_environment`, `from_keys` or `resolve`. A file-backed
    keyring reads its file lazily and again whenever it changes, and creates it (with a first
    key) only through `create` or `active_version(create=True)`.
    """

    def __init__(self, keys: Mapping[int, bytes], *, source: str, path: Path | None) -> None:
        self._keys = dict(keys)
        self._source = source
        self._path = path
        self._stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Keyring:
        """Keys kept in the file at `path` (read on first use; see the module docstring)."""
        where = Path(path)
        return cls({}, source=f"key file {where}", path=where)

    @classmethod
    def from_environment(cls, value: str, *, name: str = KEY_ENV.env) -> Keyring:
        """Keys given as the text of environment variable `name` (``1:BASE64,2:BASE64``)."""
        source = f"${name}"
        return cls(_parse_env(value, source), source=source, path=None)

    @classmethod
    def from_keys(cls, keys: Mapping[int, bytes]) -> Keyring:
        """Keys held in memory only (tests, or keys fetched from a secrets manager)."""
        for version, key in keys.items():
            _check_key(version, key, "the keys given")
        if not keys:
            raise VaultKeyError("no master key given")
        return cls(keys, source="keys given in memory", path=None)

    @classmethod
    def resolve(
        cls,
        data_dir: str | os.PathLike[str],
        environ: Mapping[str, str] | None = None,
    ) -> Keyring:
        """The keyring the settings name: ``$LIGHTKEEPER_VAULT_KEY`` if set, else the key file
        ``$LIGHTKEEPER_VAULT_KEY_FILE``, else ``vault.key`` in `data_dir`."""
        env = os.environ if environ is None else environ
        value = env.get(KEY_ENV.env, "").strip()
        if value:
            return cls.from_environment(value)
        return cls.from_file(env.get(KEY_FILE.env) or Path(data_dir) / "vault.key")

    def __repr__(self) -> str:
        return f"<Keyring {self._source}>"

    @property
    def source(self) -> str:
        """Where the keys come from, for messages (never the keys)."""
        return self._source

    @property
    def path(self) -> Path | None:
        """The key file, for a file-backed keyring."""
        return self._path

    def exists(self) -> bool:
        """Whether there are keys: the key file exists, or keys were given."""
        return self._path.exists() if self._path is not None else bool(self._keys)

    def versions(self) -> tuple[int, ...]:
        """The versions present, oldest first."""
        with self._lock:
            return tuple(sorted(self._current()))

    def active_version(self, *, create: bool = False) -> int:
        """The version that wraps new data keys: the highest. With `create`, a missing key
        file is first created holding one new key (version 1)."""
        with self._lock:
            if create and self._path is not None and not self._path.exists():
                with _file_lock(self._path):  # two processes' first puts make one file
                    if not self._path.exists():
                        self._create_file()
            return max(self._current())

    def create(self) -> int:
        """Create the key file with one new key; `VaultKeyError` if it exists already."""
        with self._lock:
            if self._path is None:
                raise VaultKeyError(f"master keys come from {self._source}, not from a file")
            self._create_file()
            return max(self._current())

    def add_version(self) -> int:
        """Add a new random key as the next version, now the active one; returns it.

        The file is replaced atomically (written beside it, flushed to disk, renamed), so a
        crash leaves either the old file or the new one, each complete.
        """
        with self._lock:
            if self._path is None:
                raise VaultKeyError(
                    f"master keys come from {self._source}: add a new VERSION:BASE64 there, "
                    "then re-wrap under it (`lightkeeper vault rotate-key --no-new-key`)"
                )
            with _file_lock(self._path):
                if not self._path.exists():
                    self._create_file()
                self._stamp = None  # under the lock, read what another process wrote
                keys = dict(self._current())
                version = max(keys) + 1
                if version > _MAX_VERSION:
                    raise VaultKeyError(f"{self._source}: no master key version left")
                keys[version] = AESGCM.generate_key(bit_length=256)
                _write_key_file(self._path, keys, exclusive=False)
                self._keys, self._stamp = keys, _stamp(self._path)
                return version

    def fingerprint(self, version: int) -> str:
        """A public name of master key `version`: HMAC-SHA-256 under it of a fixed text."""
        mac = hmac.HMAC(self._key(version), hashes.SHA256())
        mac.update(_FINGERPRINT_TEXT)
        return mac.finalize().hex()[:32]

    def wrap(self, data_key: bytes, *, object_id: str) -> tuple[int, bytes]:
        """`data_key` encrypted under the active master key: (version, wrapped bytes)."""
        version = self.active_version()
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(self._key(version)).encrypt(nonce, data_key, _wrap_ad(object_id, version))
        return version, nonce + sealed

    def unwrap(self, wrapped: bytes, *, version: int, object_id: str) -> bytes:
        """The data key of `object_id`; `VaultIntegrityError` if the wrapped key was altered
        or belongs to another object."""
        key = self._key(version)
        if len(wrapped) != WRAPPED_BYTES:
            raise VaultIntegrityError(
                f"vault object {object_id}: its wrapped data key is {len(wrapped)} bytes, "
                f"not {WRAPPED_BYTES}: damaged"
            )
        try:
            return AESGCM(key).decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _wrap_ad(object_id, version)
            )
        except InvalidTag:
            raise VaultIntegrityError(
                f"vault object {object_id}: its data key does not unwrap under master key "
                f"version {version}: the wrapped key was altered or belongs to another object"
            ) from None

    # ------------------------------------------------------------------ internals

    def _key(self, version: int) -> bytes:
        with self._lock:
            key = self._current().get(version)
        if key is None:
            raise VaultKeyError(
                f"master key version {version} is not in {self._source}: restore it (from a "
                "backup of the key file or variable) to read what it wrapped"
            )
        return key

    def _current(self) -> dict[int, bytes]:
        """The keys, re-read from the file when it changed (caller holds the lock)."""
        if self._path is None:
            return self._keys
        try:
            stamp = _stamp(self._path)
        except FileNotFoundError:
            raise VaultKeyError(
                f"{self._source} does not exist: set {KEY_ENV.env} or {KEY_FILE.env}, or "
                "restore the file from its backup"
            ) from None
        if stamp != self._stamp:
            self._keys = _read_key_file(self._path, self._source)
            self._stamp = stamp
        return self._keys

    def _create_file(self) -> None:
        assert self._path is not None
        _write_key_file(self._path, {1: AESGCM.generate_key(bit_length=256)}, exclusive=True)
        self._stamp = None


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside the key file, so that two processes adding a version
    at once add two versions instead of one overwriting the other (POSIX only)."""
    if os.name != "posix":
        yield
        return
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _stamp(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def _check_key(version: int, key: bytes, source: str) -> None:
    if not 1 <= version <= _MAX_VERSION:
        raise VaultKeyError(f"{source}: master key version {version} is not a positive integer")
    if len(key) != KEY_BYTES:
        raise VaultKeyError(
            f"{source}: master key version {version} is {len(key)} bytes, not {KEY_BYTES}"
        )


def _decode(text: str, source: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise VaultKeyError(f"{source}: {where} is not base64") from None


def _read_key_file(path: Path, source: str) -> dict[int, bytes]:
    try:
        info = path.stat()
        if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise VaultKeyError(
                f"{source} may be read by other users (mode {stat.S_IMODE(info.st_mode):04o}): "
                f"`chmod 600 {path}`"
            )
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise VaultKeyError(f"{source} is not a key file (not ASCII text)") from None
    except OSError as exc:
        raise VaultKeyError(f"{source} cannot be read: {exc.strerror or exc}") from None
    keys: dict[int, bytes] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        # The line is never quoted back: it holds a key.
        found = _LINE.fullmatch(line)
        if found is None:
            raise VaultKeyError(f"{source}, line {number}: expected VERSION BASE64")
        version = int(found.group(1))
        key = _decode(found.group(2), source, f"line {number}")
        _check_key(version, key, f"{source}, line {number}")
        if version in keys:
            raise VaultKeyError(f"{source}, line {number}: version {version} appears twice")
        keys[version] = key
    if not keys:
        raise VaultKeyError(f"{source} holds no key")
    return keys


def _parse_env(value: str, source: str) -> dict[int, bytes]:
    items = [item for item in re.split(r"[,\s]+", value.strip()) if item]
    if len(items) == 1 and ":" not in items[0]:
        key = _decode(items[0], source, "the key")
        _check_key(1, key, source)
        return {1: key}
    keys: dict[int, bytes] = {}
    for position, item in enumerate(items, start=1):
        version_text, sep, encoded = item.partition(":")
        if not sep or not version_text.isdigit() or len(version_text) > 10:
            raise VaultKeyError(f"{source}: item {position} is not VERSION:BASE64")
        version = int(version_text)
        key = _decode(encoded, source, f"item {position}")
        _check_key(version, key, source)
        if version in keys:
            raise VaultKeyError(f"{source}: version {version} appears twice")
        keys[version] = key
    if not keys:
        raise VaultKeyError(f"{source} holds no key")
    return keys


def _write_key_file(path: Path, keys: Mapping[int, bytes], *, exclusive: bool) -> None:
    """Write `keys` to `path` with mode 0600, atomically: a temporary file beside it, flushed
    to disk, renamed over it (`exclusive`: refusing to replace an existing file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = _FILE_HEADER + "".join(
        f"{version} {base64.b64encode(keys[version]).decode('ascii')}\n" for version in sorted(keys)
    )
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            try:
                path.hardlink_to(temporary)  # fails if another process created it first
            except FileExistsError:
                raise VaultKeyError(f"key file {path} exists already") from None
            temporary.unlink()
        else:
            temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def generate_key_text() -> str:
    """A new random master key as base64, for ``LIGHTKEEPER_VAULT_KEY``."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode("ascii")


# ---------------------------------------------------------------------- content


@dataclass(frozen=True, slots=True)
class Sealed:
    """Content encrypted for the vault: the file's bytes and what decrypts them."""

    #: What is written to the vault file: `FILE_MAGIC`, then ciphertext and tag.
    file_bytes: bytes
    data_key: bytes
    nonce: bytes

    def __repr__(self) -> str:
        return f"<Sealed {len(self.file_bytes)} bytes>"


def _content_ad(object_id: str, sha256_hex: str) -> bytes:
    return _CONTENT_AD + object_id.encode("ascii") + b"\x00" + bytes.fromhex(sha256_hex)


def _wrap_ad(object_id: str, version: int) -> bytes:
    return _WRAP_AD + object_id.encode("ascii") + b"\x00" + str(version).encode("ascii")


def seal(data: bytes, *, object_id: str, sha256_hex: str) -> Sealed:
    """Encrypt `data` under a fresh data key and nonce, bound to `object_id` and its hash."""
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = secrets.token_bytes(NONCE_BYTES)
    ciphertext = AESGCM(data_key).encrypt(nonce, data, _content_ad(object_id, sha256_hex))
    return Sealed(FILE_MAGIC + ciphertext, data_key, nonce)


def unseal(
    file_bytes: bytes,
    *,
    data_key: bytes,
    nonce: bytes,
    object_id: str,
    sha256_hex: str,
    size: int,
) -> bytes:
    """The content of a vault file, all of it or nothing: `VaultIntegrityError` when the file
    is not a vault file, is truncated, was altered, or belongs to another object."""
    expected = size + FILE_OVERHEAD
    if not file_bytes.startswith(FILE_MAGIC):
        raise VaultIntegrityError(
            f"vault object {object_id}: its file does not start as a vault file does "
            "(damaged, or replaced by another file)"
        )
    if len(file_bytes) != expected:
        raise VaultIntegrityError(
            f"vault object {object_id}: its file is {len(file_bytes)} bytes, not {expected}: "
            f"{'truncated' if len(file_bytes) < expected else 'damaged'}"
        )
    try:
        return AESGCM(data_key).decrypt(
            nonce, file_bytes[len(FILE_MAGIC) :], _content_ad(object_id, sha256_hex)
        )
    except InvalidTag:
        raise VaultIntegrityError(
            f"vault object {object_id}: its file fails authentication: altered, or the file "
            "of another object"
        ) from None
