"""The ``lines`` format: one hash per line, the plainest list there is.

What the reader accepts, line by line:

- ``HASH`` — the hash alone;
- ``HASH,EXTRA`` — anything after the first comma is kept as the entry's note (a file
  name, an id: whatever the list's author put there);
- ``TYPE HASH`` — the signal type named first, as ThreatExchange's plain signal files do
  (``pdq 15c7…``), when TYPE is a registered signal type;
- blank lines and ``#`` comments, skipped. A comment ``# signal_type: NAME`` before the
  first hash names the signal type of the lines that do not name their own.

The signal type of a bare hash comes from, in order: the caller (``--signal-type``), the
``# signal_type:`` comment, or the hash's length — 32 hex digits is MD5, 40 is SHA-1.
**64 hex digits is never guessed**: it is both a PDQ hash and a SHA-256, and taking a
SHA-256 list for PDQ would match unrelated photos by their bits. Such a file is refused with
`ListFormatError` until the type is named.

For URL lists (signal type ``url``) the whole line is the value: URLs contain commas.

The writer emits the ``# signal_type:`` comment, then ``HASH`` or ``HASH,NOTE`` lines; line
breaks inside a note become spaces. A list holds one signal type; export one type at a time
(or use ``csv``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from lightkeeper.errors import ListFormatError
from lightkeeper.exchange import _streams
from lightkeeper.exchange.record import Invalid, Item, Record
from lightkeeper.signals import registry

NAME = "lines"
DESCRIPTION = "one hash per line (optionally 'hash,note'); '#' comments"

_TYPE_COMMENT = re.compile(rb"#\s*signal[_ -]?type\s*[:=]\s*([A-Za-z0-9_.-]+)", re.IGNORECASE)
_HEX = re.compile(rb"[0-9A-Fa-f]+")
_BY_LENGTH = {32: "md5", 40: "sha1"}


def read(stream: BinaryIO, *, signal_type: str | None = None) -> Iterator[Item]:
    """Records from a one-hash-per-line file (see the module docstring for the grammar)."""
    file_type: str | None = None
    seen_hash = False
    known = _registered_names()
    for line_no, raw in _streams.lines(stream):
        if raw is None:
            yield Invalid(line_no, f"line longer than {_streams.MAX_LINE_BYTES} bytes")
            continue
        line = raw.strip()
        if not line:
            continue
        if line.startswith(b"#"):
            match = _TYPE_COMMENT.match(line)
            if match and not seen_hash:
                file_type = match.group(1).decode("ascii").lower()
            continue
        seen_hash = True
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            yield Invalid(line_no, "not UTF-8 text")
            continue
        yield _record(line_no, text, signal_type or file_type, known)


def _record(line_no: int, text: str, declared: str | None, known: frozenset[str]) -> Item:
    head, space, rest = text.partition(" ")
    if space and head.lower() in known and rest.strip():
        return _split(line_no, head.lower(), rest.strip())
    if declared is not None:
        return _split(line_no, declared, text)
    value = text.partition(",")[0].strip()
    encoded = value.encode("ascii", "replace")
    if _HEX.fullmatch(encoded):
        if len(value) == 64:
            raise ListFormatError(
                f"line {line_no}: a 64-hex-digit hash may be PDQ or SHA-256; name the signal "
                "type (--signal-type pdq or sha256, or a '# signal_type: pdq' line first)"
            )
        guessed = _BY_LENGTH.get(len(value))
        if guessed is not None:
            return _split(line_no, guessed, text)
    return Invalid(
        line_no,
        "cannot tell the signal type of this line (not an MD5 or SHA-1 hash); "
        "name it with --signal-type or a '# signal_type: NAME' line",
    )


def _split(line_no: int, signal_type: str, text: str) -> Record:
    if signal_type == "url":
        return Record(line_no, "add", signal_type, text.strip())
    value, comma, extra = text.partition(",")
    note = extra.strip() if comma and extra.strip() else None
    return Record(line_no, "add", signal_type, value.strip(), note=note)


def _registered_names() -> frozenset[str]:
    return frozenset(registry.all_signal_types())


def write(records: Iterable[Record], stream: BinaryIO) -> int:
    """Write `records` (additions of one signal type) as lines; returns how many."""
    count = 0
    signal_type: str | None = None
    for record in records:
        if record.op != "add" or record.signal_type is None or record.value is None:
            raise ValueError("the lines format holds hashes to add, not removals")
        if signal_type is None:
            signal_type = record.signal_type
            stream.write(f"# signal_type: {signal_type}\n".encode())
        elif record.signal_type != signal_type:
            raise ValueError(
                f"the lines format holds one signal type ({signal_type}), "
                f"not also {record.signal_type}: export one type at a time, or use csv"
            )
        note = _one_line(record.note)
        text = record.value if not note or signal_type == "url" else f"{record.value},{note}"
        stream.write(text.encode("utf-8") + b"\n")
        count += 1
    return count


def _one_line(note: str | None) -> str:
    return note.replace("\r", " ").replace("\n", " ").strip() if note else ""
