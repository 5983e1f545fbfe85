"""Telling a list file's format from its first bytes.

The rules, in order, on the start of the file (after a BOM and leading blank space):

1. ``<`` — XML: ``ncmec`` if it is NCMEC hash-sharing XML (a ``<queryResult>`` or NCMEC's
   namespace in sight), otherwise an error: no other XML format is read.
2. The first line that is not blank and not a ``#`` comment is looked at as CSV cells:
   ``signal_type`` with ``signal_str`` — ``hma``; ``signal_type``, ``value``/``hash``, or a
   registered signal type's name as a cell — ``csv`` (a header).
3. A line that starts with a hash (hex digits), ``TYPE HASH``, or a URL — ``lines``. A file
   of only comments, or empty, is ``lines`` too (it imports nothing either way).
4. Anything else is an error asking for the format by name: guessing wrong would import
   nonsense or nothing.
"""

from __future__ import annotations

import re

from lightkeeper.errors import ListFormatError
from lightkeeper.exchange import _csvrows, ncmec
from lightkeeper.signals import registry

_BOM = b"\xef\xbb\xbf"
_HEX_START = re.compile(rb"[0-9A-Fa-f]{8,}\s*(,|$)")
_URL_START = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://")


def detect_format(head: bytes) -> str:
    """The name of the format `head` (the first bytes of a file) is in; see the module doc."""
    text = head.removeprefix(_BOM).lstrip()
    if text.startswith(b"<"):
        if b"queryResult" in text or ncmec.NAMESPACE.encode() in text:
            return ncmec.NAME
        raise ListFormatError(
            "this is XML but not NCMEC hash-sharing XML (no <queryResult>); "
            "no other XML list format is read"
        )
    first = _first_line(text)
    if first is None:
        return "lines"
    known = set(registry.all_signal_types())
    cells = {_csvrows.header_name(cell) for cell in first.decode("utf-8", "replace").split(",")}
    if {"signal_type", "signal_str"} <= cells:
        return "hma"
    if cells & {"signal_type", "value", "hash"} or cells & known:
        return "csv"
    word, space, _ = first.partition(b" ")
    if (
        _HEX_START.match(first)
        or _URL_START.match(first)
        or (space and word.decode("utf-8", "replace").lower() in known)
    ):
        return "lines"
    shown = first[:80].decode("utf-8", "replace")
    raise ListFormatError(
        f"cannot tell the list format from its first line {shown!r}; "
        "name it: lines, csv, hma or ncmec"
    )


def _first_line(text: bytes) -> bytes | None:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(b"#"):
            return stripped
    return None
