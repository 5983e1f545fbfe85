"""URLs as a signal: lists of known-abuse web addresses, matched exactly after normalisation.

A URL list only works if two spellings of one address compare equal, so `UrlSignal.normalize`
produces one canonical form (RFC 3986 section 6 normalisation, plus IDNA for hosts):

- scheme and host lowercased; only ``http`` and ``https`` are accepted;
- internationalised hosts IDNA-encoded (punycode, ``xn--``), one trailing dot dropped;
  IPv4 and IPv6 literals written in their standard form;
- default ports (80 for http, 443 for https) and empty ports dropped;
- an empty userinfo (``http://@host``, ``http://:@host``) and an empty password dropped;
- the fragment dropped (it never reaches the server);
- percent-encoding normalised in userinfo, path and query: escapes of unreserved characters
  decoded, the hex of other escapes uppercased, characters that must be escaped escaped
  (as UTF-8), and a ``%`` that starts no escape written ``%25``;
- ``.`` and ``..`` path segments resolved; an empty path becomes ``/``;
- the query otherwise kept as is (parameter order and ``+`` carry meaning); an empty one dropped.

Hosts are encoded with Python's built-in ``idna`` codec, which implements IDNA 2003: it maps
``ß`` to ``ss`` where browsers (UTS 46, non-transitional) keep it as ``xn--…``. List producers
that use IDNA 2008 should send hosts already in punycode, which pass through unchanged.

Nothing is ever fetched: the URL is only parsed and rewritten.
"""

from __future__ import annotations

import encodings.idna
import ipaddress
import re
import unicodedata
from typing import ClassVar
from urllib.parse import urlsplit

from lightkeeper.errors import InvalidSignal
from lightkeeper.signals.base import Comparison, SignalType

#: Longest URL accepted, before and after normalisation. Browsers and servers cap URLs
#: near 8 KiB; anything longer in a hash list is a mistake or an attack on the list parser.
MAX_URL_LENGTH = 8192

_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_SUB_DELIMS = frozenset("!$&'()*+,;=")
# Characters kept literally in each component (RFC 3986 section 3); anything else is escaped.
_USER_SAFE = _UNRESERVED | _SUB_DELIMS
_PASSWORD_SAFE = _USER_SAFE | {":"}
_PATH_SAFE = _UNRESERVED | _SUB_DELIMS | {":", "@", "/"}
_QUERY_SAFE = _PATH_SAFE | {"?"}
_HEX = frozenset("0123456789abcdefABCDEF")
# Control characters, format characters (zero-width, bidi overrides), surrogates, and every
# kind of space: never part of a URL someone meant to write.
_REJECTED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})
_HOST_LABEL = re.compile(r"[a-z0-9_-]+")
# The label separators IDNA recognises: full stop, ideographic and full-width full stops.
_IDNA_DOTS = re.compile("[.\u3002\uff0e\uff61]")


class UrlSignal(SignalType):
    """A web address, compared exactly after normalisation."""

    name = "url"
    description = "normalised http(s) URL (exact match)"
    comparison: ClassVar[Comparison] = "exact"

    def normalize(self, value: str) -> str:
        """The canonical form of `value` (see the module docstring), or `InvalidSignal`."""
        return normalize_url(value)


def normalize_url(url: str) -> str:
    """The canonical form of an http(s) URL; `InvalidSignal` names what is wrong otherwise."""
    # Lists arrive one URL per line: surrounding ASCII whitespace is line noise, not content.
    url = url.strip(" \t\r\n\f\v")
    if not url:
        raise InvalidSignal("URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidSignal(f"URL is {len(url)} characters long, over the limit {MAX_URL_LENGTH}")
    for position, char in enumerate(url, start=1):
        if unicodedata.category(char) in _REJECTED_CATEGORIES:
            raise InvalidSignal(
                f"URL contains whitespace or a control character (U+{ord(char):04X}) "
                f"at position {position}"
            )
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unbalanced "[" in the host
        raise InvalidSignal(f"URL cannot be parsed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        if not scheme:
            raise InvalidSignal("URL has no scheme: it must start with http:// or https://")
        raise InvalidSignal(f"URL scheme {scheme!r} is not supported (only http and https)")
    if not parts.netloc:
        raise InvalidSignal("URL has no host")

    userinfo, at, hostport = parts.netloc.rpartition("@")
    host, port = _split_port(hostport)
    authority = _normalize_host(host)
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        authority = f"{authority}:{port}"
    if at:
        user, _, password = userinfo.partition(":")
        credentials = _normalize_percent(user, _USER_SAFE)
        if password:
            credentials += ":" + _normalize_percent(password, _PASSWORD_SAFE)
        if credentials:
            authority = f"{credentials}@{authority}"

    path = _remove_dot_segments(_normalize_percent(parts.path, _PATH_SAFE) or "/")
    query = _normalize_percent(parts.query, _QUERY_SAFE)
    canonical = f"{scheme}://{authority}{path}" + (f"?{query}" if query else "")
    if len(canonical) > MAX_URL_LENGTH:
        raise InvalidSignal(
            f"URL is {len(canonical)} characters long once normalised, "
            f"over the limit {MAX_URL_LENGTH}"
        )
    return canonical


def _split_port(hostport: str) -> tuple[str, int | None]:
    """Split ``host[:port]``; an IPv6 host keeps its brackets. An empty port is no port."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise InvalidSignal("URL host has an unclosed '['")
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise InvalidSignal(f"URL has unexpected text {rest!r} after the IPv6 host")
        port_text = rest[1:]
    else:
        host, _, port_text = hostport.partition(":")
    if not port_text:
        return host, None
    if not (port_text.isascii() and port_text.isdigit()):
        raise InvalidSignal(f"URL port {port_text!r} is not a number")
    port = int(port_text)
    if port > 65535:
        raise InvalidSignal(f"URL port {port} is over 65535")
    return host, port


def _normalize_host(host: str) -> str:
    """Lowercase, IDNA-encoded host, or a standard IP literal."""
    if not host:
        raise InvalidSignal("URL has no host")
    if host.startswith("["):
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError as exc:
            raise InvalidSignal(f"URL host {host!r} is not a valid IPv6 address: {exc}") from None
        if address.scope_id is not None:
            raise InvalidSignal(f"URL host {host!r} has an IPv6 zone, which URLs cannot carry")
        return f"[{address.compressed}]"
    given_labels = _IDNA_DOTS.split(_percent_decode_host(host))
    if len(given_labels) > 1 and not given_labels[-1]:
        given_labels.pop()  # the root label: "example.com." names example.com
    labels: list[str] = []
    for label in given_labels:
        if not label:
            raise InvalidSignal(f"URL host {host!r} has an empty label")
        try:
            ascii_label = encodings.idna.ToASCII(label).decode("ascii").lower()
        except UnicodeError as exc:
            raise InvalidSignal(
                f"URL host {host!r} has a label {label!r} that IDNA cannot encode: {exc}"
            ) from None
        if not _HOST_LABEL.fullmatch(ascii_label):
            raise InvalidSignal(
                f"URL host {host!r} has a label {label!r} with characters not allowed in a host"
            )
        labels.append(ascii_label)
    encoded = ".".join(labels)
    if labels[-1].isdigit():
        # A host ending in a number is an IPv4 address or nothing (WHATWG URL standard);
        # ipaddress also refuses the ambiguous octal spelling with leading zeros.
        try:
            return str(ipaddress.IPv4Address(encoded))
        except ValueError as exc:
            raise InvalidSignal(f"URL host {host!r} is not a valid IPv4 address: {exc}") from None
    if len(encoded) > 253:
        raise InvalidSignal(f"URL host is {len(encoded)} characters long, over the DNS limit 253")
    return encoded


def _percent_decode_host(host: str) -> str:
    if "%" not in host:
        return host
    raw = bytearray()
    index = 0
    while index < len(host):
        char = host[index]
        if char == "%":
            escape = host[index + 1 : index + 3]
            if len(escape) != 2 or not set(escape) <= _HEX:
                raise InvalidSignal(f"URL host {host!r} has a broken percent-escape")
            raw.append(int(escape, 16))
            index += 3
        else:
            raw += char.encode("utf-8")
            index += 1
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSignal(f"URL host {host!r} percent-decodes to invalid UTF-8") from None
    for char in decoded:
        if unicodedata.category(char) in _REJECTED_CATEGORIES or char in "%/?#@[]:\\":
            raise InvalidSignal(f"URL host {host!r} percent-decodes to a forbidden {char!r}")
    return decoded


def _normalize_percent(text: str, safe: frozenset[str]) -> str:
    """Decode escapes of unreserved characters, uppercase the others, escape the unsafe."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "%":
            escape = text[index + 1 : index + 3]
            if len(escape) == 2 and set(escape) <= _HEX:
                decoded = chr(int(escape, 16))
                out.append(decoded if decoded in _UNRESERVED else "%" + escape.upper())
                index += 3
                continue
            out.append("%25")  # a lone "%" means itself
        elif char in safe:
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8"))
        index += 1
    return "".join(out)


def _remove_dot_segments(path: str) -> str:
    """Resolve ``.`` and ``..`` segments of an absolute path (RFC 3986 section 5.2.4)."""
    segments = path.split("/")[1:]
    kept: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment in (".", ".."):
            if segment == ".." and kept:
                kept.pop()
            if last:
                kept.append("")  # "/a/b/.." names the directory "/a/"
        else:
            kept.append(segment)
    return "/" + "/".join(kept)
