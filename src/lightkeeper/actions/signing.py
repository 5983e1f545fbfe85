"""Signing webhook deliveries, and checking a signature: the scheme receivers rely on.

Every delivery carries::

    Lightkeeper-Signature: t=1767225600,v1=5f0c…(64 hex digits)

where ``v1`` is HMAC-SHA256, keyed with the endpoint's secret (its UTF-8 bytes, the
``whsec_`` prefix included), over the ASCII timestamp, a full stop, and the raw body bytes:
``f"{t}.".encode() + body``. Signing the timestamp with the body is what makes a captured
request useless later: a receiver refuses timestamps more than `DEFAULT_TOLERANCE_S` from its
own clock, and the timestamp cannot be changed without the secret. Each attempt is signed
afresh, so a retry days later still carries a current timestamp.

While an endpoint's secret is being rotated the header holds one ``v1`` per live secret;
a receiver accepts the request if any of them matches its secret. Elements other than ``t``
and ``v1`` are ignored, so a later scheme (``v2``) can be added beside ``v1``.

`verify_signature` is the library's receiver-side check; ``docs/webhooks.md`` has a
standard-library-only copy for receivers that do not install Lightkeeper.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from lightkeeper.errors import WebhookSignatureError

SIGNATURE_HEADER = "Lightkeeper-Signature"
TIMESTAMP_HEADER = "Lightkeeper-Timestamp"
EVENT_ID_HEADER = "Lightkeeper-Event-Id"
EVENT_TYPE_HEADER = "Lightkeeper-Event-Type"

#: Seconds a signature's timestamp may differ from the receiver's clock.
DEFAULT_TOLERANCE_S = 300
SECRET_PREFIX = "whsec_"
#: Longest header `parse_signature_header` reads (a few rotations' worth of MACs).
MAX_HEADER_CHARS = 1024

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_MAC = re.compile(r"[0-9a-f]{64}")


def generate_secret() -> str:
    """A new signing secret: ``whsec_`` and 256 random bits, URL-safe base64."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``v1`` MAC: hex HMAC-SHA256 of ``"<timestamp>.<body>"`` under `secret`."""
    message = f"{timestamp}.".encode("ascii") + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(signing_secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """The ``Lightkeeper-Signature`` value: the timestamp, then one ``v1`` per secret."""
    if not signing_secrets:
        raise ValueError("at least one secret is needed to sign")
    macs = ",".join(f"v1={compute_signature(s, timestamp, body)}" for s in signing_secrets)
    return f"t={timestamp},{macs}"


@dataclass(frozen=True, slots=True)
class ParsedSignature:
    """A signature header taken apart: its timestamp and its ``v1`` MACs (hex)."""

    timestamp: int
    v1: tuple[str, ...]


def parse_signature_header(header: str) -> ParsedSignature:
    """Take a ``Lightkeeper-Signature`` value apart; `WebhookSignatureError` if malformed.

    Strict about what it uses (one ``t`` of ASCII digits, ``v1`` values of 64 lower-case hex
    digits, at least one), tolerant of spaces around elements and of unknown elements.
    """
    if len(header) > MAX_HEADER_CHARS:
        raise WebhookSignatureError("signature header too long")
    timestamp: int | None = None
    macs: list[str] = []
    for element in header.split(","):
        key, sep, value = element.strip().partition("=")
        if not sep:
            raise WebhookSignatureError("malformed signature header: expected key=value pairs")
        if key == "t":
            if timestamp is not None:
                raise WebhookSignatureError("malformed signature header: more than one t=")
            if not _TIMESTAMP.fullmatch(value):
                raise WebhookSignatureError("malformed signature header: t= is not a timestamp")
            timestamp = int(value)
        elif key == "v1":
            if not _HEX_MAC.fullmatch(value):
                raise WebhookSignatureError("malformed signature header: v1= is not 64 hex digits")
            macs.append(value)
    if timestamp is None:
        raise WebhookSignatureError("malformed signature header: no t= timestamp")
    if not macs:
        raise WebhookSignatureError("malformed signature header: no v1= signature")
    return ParsedSignature(timestamp, tuple(macs))


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Check a delivery; return its signed timestamp, or raise `WebhookSignatureError`.

    Refuses a malformed header, a timestamp more than `tolerance` seconds from `now` (Unix
    seconds; the clock by default) either way, and a body or secret that no ``v1`` MAC was
    made with. MACs are compared in constant time. A verified request may still be a
    duplicate (delivery is at least once): deduplicate on ``Lightkeeper-Event-Id``.
    """
    if tolerance < 0:
        raise ValueError("tolerance must not be negative")
    parsed = parse_signature_header(header)
    current = time.time() if now is None else now
    if abs(current - parsed.timestamp) > tolerance:
        raise WebhookSignatureError(
            f"signature timestamp is {current - parsed.timestamp:+.0f} s from now, "
            f"over the {tolerance:g} s tolerance (a replayed or delayed request)"
        )
    expected = compute_signature(secret, parsed.timestamp, body).encode("ascii")
    # Every candidate is compared, so the time taken does not say which one matched.
    matched = [hmac.compare_digest(expected, mac.encode("ascii")) for mac in parsed.v1]
    if not any(matched):
        raise WebhookSignatureError("signature does not match the body and secret")
    return parsed.timestamp
