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
    ├── PluginError                a signal-type plug-in is broken or clashes with another
    └── StoreError                 (banks, issue 3) the store cannot do what was asked
        ├── NotFound
        └── Conflict

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


class PluginError(LightkeeperError):
    code = "plugin_error"


class StoreError(LightkeeperError):
    code = "store_error"


class NotFound(StoreError):
    code = "not_found"
    http_status = 404


class Conflict(StoreError):
    code = "conflict"
    http_status = 409
