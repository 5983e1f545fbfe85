"""Every error Lightkeeper raises on purpose, under one base class.

    LightkeeperError
    ├── MediaError                 the bytes cannot be turned into pixels
    │   ├── EmptyMedia             zero bytes
    │   ├── UnsupportedFormat      not an image format we decode (PDF, video, unknown bytes …)
    │   ├── TruncatedMedia         the file ends before the image does
    │   ├── CorruptMedia           the decoder rejected the data
    │   └── MediaTooLarge          over a byte, pixel or dimension limit (decompression bombs)
    ├── SignalError
    │   ├── InvalidSignal          a malformed hash value (wrong length, not hex, bad URL …)
    │   └── UnknownSignalType      no signal type registered under that name
    ├── InputError                 a path cannot be read (missing, permission, a directory …)
    │   └── ListFormatError        a hash-list file is not in a format we read (header, XML …)
    ├── IndexFileError             an index file is damaged, truncated, foreign or too new
    ├── PluginError                a signal-type plug-in is broken or clashes with another
    ├── InvalidPolicy              a policy document is malformed (field, action, range …)
    ├── WebhookSignatureError      a webhook signature header that is malformed, wrong or stale
    ├── NcmecError                 NCMEC's CyberTipline API refused a call or could not be reached
    ├── StoreError                 (banks) the store cannot do what was asked
    │   ├── NotFound
    │   ├── Conflict
    │   │   └── RevealCapReached   a reviewer used up today's reveals of clear images
    │   ├── InvalidRequest         a bank name, kind, threshold or option not allowed
    │   ├── StoreBusy              the database stayed locked by another writer
    │   ├── StoreUnavailable       no database server could be started or reached
    │   ├── VaultKeyError          a vault master key missing, malformed or not the one used
    │   └── VaultIntegrityError    vault content that fails to decrypt or verify (tampered …)
    └── ServiceError               (HTTP service) a request the service refuses
        ├── Unauthenticated        no API key, or one that is unknown or revoked (401)
        ├── Forbidden              the key lacks the scope the route needs (403)
        ├── RateLimited            the key is over its rate limit (429, with Retry-After)
        ├── PayloadTooLarge        the request body is over the service's limit (413)
        └── BadUpload              no file where one was expected, or a malformed body (400)

Each class carries `code`, a short stable identifier used in JSON output and HTTP
bodies, and `http_status` for the service layer, so that one handler maps them all.
"""

from __future__ import annotations


class LightkeeperError(Exception):
    """Base class of every deliberate Lightkeeper error."""

    code = "error"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class MediaError(LightkeeperError):
    """The bytes could not be decoded into an image."""

    code = "media_error"
    http_status = 422


class EmptyMedia(MediaError):
    code = "empty"


class UnsupportedFormat(MediaError):
    code = "unsupported_format"
    http_status = 415


class TruncatedMedia(MediaError):
    code = "truncated"


class CorruptMedia(MediaError):
    code = "corrupt"


class MediaTooLarge(MediaError):
    code = "too_large"
    http_status = 413


class SignalError(LightkeeperError):
    code = "signal_error"
    http_status = 422


class InvalidSignal(SignalError):
    code = "invalid_signal"


class UnknownSignalType(SignalError):
    code = "unknown_signal_type"
    http_status = 404


class InputError(LightkeeperError):
    """A file named by the user cannot be read: missing, unreadable, a directory, not a file."""

    code = "input_error"
    http_status = 400


class ListFormatError(InputError):
    """A hash-list file cannot be read as the format named or detected: unknown or ambiguous
    format, a missing CSV header, XML that is broken or asks for a DTD or entities."""

    code = "list_format"
    http_status = 422


class InvalidPolicy(LightkeeperError):
    """A policy document is malformed: an unknown field or action, a wrong type, a rule that
    selects nothing or does nothing, a distance or priority out of range."""

    code = "invalid_policy"
    http_status = 422


class IndexFileError(LightkeeperError):
    """An index file cannot be loaded: not an index file, an unknown version, truncated, or a
    checksum that does not match. Rebuild the index from the banks."""

    code = "index_file"


class PluginError(LightkeeperError):
    code = "plugin_error"


class WebhookSignatureError(LightkeeperError):
    """A ``Lightkeeper-Signature`` header that does not verify: malformed, no MAC that
    matches the body and secret, or a timestamp outside the tolerance (a replay)."""

    code = "webhook_signature"
    http_status = 401


class NcmecError(LightkeeperError):
    """A call to NCMEC's CyberTipline API failed: refused credentials (HTTP 401), a non-zero
    ``responseCode`` (validation, unknown or finished report …), or no answer after every
    retry. `response_code` is NCMEC's code when it gave one, `status` the HTTP status."""

    code = "ncmec"
    http_status = 502

    def __init__(
        self, message: str, *, response_code: int | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.response_code = response_code
        self.status = status


class StoreError(LightkeeperError):
    code = "store_error"


class NotFound(StoreError):
    code = "not_found"
    http_status = 404


class Conflict(StoreError):
    code = "conflict"
    http_status = 409


class RevealCapReached(Conflict):
    """A reviewer has revealed as many clear images today (UTC) as their cap allows; nothing
    was revealed or recorded (`lightkeeper.review.exposure`)."""

    code = "reveal_cap_reached"


class InvalidRequest(StoreError):
    """A bank name, kind, threshold or option that the store does not accept."""

    code = "invalid_request"
    http_status = 422


class StoreBusy(StoreError):
    """Another writer held the database lock for longer than every retry waited."""

    code = "store_busy"
    http_status = 503


class StoreUnavailable(StoreError):
    """No database server could be started or reached: binaries missing, start-up failed."""

    code = "store_unavailable"
    http_status = 503


class VaultKeyError(StoreError):
    """The vault's master keys cannot be used: no key file or variable, a malformed one, a
    version that is missing, or a key that is not the one the vault's objects were wrapped
    with (a wrong key file). Messages never include key material."""

    code = "vault_key"
    http_status = 500


class VaultIntegrityError(StoreError):
    """Quarantined content that fails authenticated decryption or its SHA-256 check: a vault
    file or wrapped key that was tampered with, swapped between objects, truncated or lost.
    No part of the plaintext is ever returned."""

    code = "vault_integrity"
    http_status = 500


class ServiceError(LightkeeperError):
    """A request the HTTP service refuses before any work is done."""

    code = "service_error"
    http_status = 400


class Unauthenticated(ServiceError):
    code = "unauthenticated"
    http_status = 401


class Forbidden(ServiceError):
    code = "forbidden"
    http_status = 403


class RateLimited(ServiceError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLarge(ServiceError):
    code = "payload_too_large"
    http_status = 413


class BadUpload(ServiceError):
    code = "bad_upload"
    http_status = 400
