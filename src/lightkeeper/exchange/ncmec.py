"""The ``ncmec`` format: NCMEC hash-sharing XML (the ``/v2/entries`` answer), entries and deletions.

The shape, as NCMEC's hash-sharing API returns it (mirrored in Meta's python-threatexchange,
``exchanges/clients/ncmec/hash_api.py`` and its test data)::

    <queryResult xmlns="https://hashsharing.ncmec.org/hashsharing/v2">
      <images count="2" maxTimestamp="2017-10-24T15:10:00Z">
        <image>
          <member id="42">Example Member</member>
          <timestamp>2017-10-24T15:00:00Z</timestamp>
          <id>image1</id>
          <classification>A1</classification>
          <fingerprints><md5>…</md5><sha1>…</sha1><pdna>…</pdna></fingerprints>
          <feedback>…</feedback>
        </image>
        <deletedImage><member id="43">…</member><id>image4</id><timestamp>…</deletedImage>
      </images>
      <videos …><video>…</video><deletedVideo>…</deletedVideo></videos>
      <paging><next>…</next></paging>
    </queryResult>

Each fingerprint of an ``<image>``/``<video>`` becomes one record, with the entry's ``<id>``
as external id and its ``<classification>``. Fingerprint names map to signal types: ``md5``,
``sha1``, ``sha256`` and ``pdq`` to ours, ``pdna`` to ``photodna`` (imported only where a
PhotoDNA plug-in is registered; otherwise skipped and counted). A fingerprint given only by
reference (``<tmk-pdqf href="…"/>``) is skipped. A ``<deletedImage>``/``<deletedVideo>``
becomes a removal of every entry the list gave that id. Namespaces are ignored, so the
file parses with or without one. Member, timestamps, feedback and paging are not kept.

The file is parsed as a stream (expat, fed 64 KiB at a time, so memory stays flat on any
size), with line numbers for every record. Hostile XML is refused outright: any DTD
(``<!DOCTYPE``), hence any entity definition — the "billion laughs" expansion and external
entities both need one — and text of more than 64 KiB in one element.

The writer emits the same shape (one ``<image>`` per run of records sharing an id, deletions
as ``<deletedImage>``); it does not invent members or timestamps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import BinaryIO, NoReturn
from xml.parsers import expat
from xml.sax.saxutils import escape

from lightkeeper.errors import ListFormatError
from lightkeeper.exchange.record import Invalid, Item, Record, Skipped

NAME = "ncmec"
DESCRIPTION = "NCMEC hash-sharing XML (<queryResult> with entries and deletions)"

NAMESPACE = "https://hashsharing.ncmec.org/hashsharing/v2"
#: NCMEC fingerprint element → signal type name (others pass through unchanged).
FINGERPRINT_TYPES = {"pdna": "photodna"}
_FINGERPRINT_NAMES = {v: k for k, v in FINGERPRINT_TYPES.items()}
_ENTRIES = {"image": False, "video": False, "deletedImage": True, "deletedVideo": True}
_TEXT_FIELDS = ("id", "classification")
MAX_TEXT = 64 * 1024
_CHUNK = 64 * 1024
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _refuse(what: str) -> NoReturn:
    raise ListFormatError(f"refused: the XML declares {what}; NCMEC lists have no DTD")


class _Entry:
    def __init__(self, line_no: int, deleted: bool) -> None:
        self.line_no = line_no
        self.deleted = deleted
        self.fields: dict[str, str] = {}
        self.fingerprints: list[tuple[str, str]] = []
        self.problem: str | None = None

    def items(self) -> Iterator[Item]:
        if self.problem:
            yield Invalid(self.line_no, self.problem)
            return
        external_id = self.fields.get("id") or None
        if self.deleted:
            if external_id is None:
                yield Invalid(self.line_no, "a deletion without an <id>")
            else:
                yield Record(self.line_no, "remove", None, None, external_id=external_id)
            return
        if not self.fingerprints:
            yield Invalid(self.line_no, "an entry without fingerprints")
        classification = self.fields.get("classification") or None
        for tag, text in self.fingerprints:
            if not text:
                yield Skipped(self.line_no, f"{tag} fingerprint given only by reference")
                continue
            signal_type = FINGERPRINT_TYPES.get(tag, tag)
            yield Record(
                self.line_no,
                "add",
                signal_type,
                text,
                external_id=external_id,
                classification=classification,
            )


class _Reader:
    """Expat callbacks building entries; finished items collect in `out` between feeds."""

    def __init__(self) -> None:
        self.parser = expat.ParserCreate(namespace_separator="}")
        self.parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        self.parser.StartDoctypeDeclHandler = lambda *_: _refuse("a DTD (<!DOCTYPE …>)")
        self.parser.EntityDeclHandler = lambda *_: _refuse("an entity")
        self.parser.UnparsedEntityDeclHandler = lambda *_: _refuse("an entity")
        self.parser.ExternalEntityRefHandler = lambda *_: _refuse("an external entity")
        self.parser.StartElementHandler = self.start
        self.parser.EndElementHandler = self.end
        self.parser.CharacterDataHandler = self.text
        self.path: list[str] = []
        self.entry: _Entry | None = None
        self.entry_depth = 0
        self.buffer: list[str] | None = None
        self.buffered = 0
        self.buffer_depth = 0
        self.out: list[Item] = []

    def start(self, name: str, _attrs: dict[str, str]) -> None:
        tag = name.rpartition("}")[2]
        if not self.path and tag != "queryResult":
            raise ListFormatError(
                f"line {self.parser.CurrentLineNumber}: not NCMEC hash-sharing XML "
                f"(the document is <{tag}>, not <queryResult>)"
            )
        parent = self.path[-1] if self.path else ""
        self.path.append(tag)
        depth = len(self.path)
        if self.entry is None:
            if tag in _ENTRIES and parent in ("images", "videos"):
                self.entry = _Entry(self.parser.CurrentLineNumber, _ENTRIES[tag])
                self.entry_depth = depth
        elif self.buffer is None and (
            (depth == self.entry_depth + 1 and tag in _TEXT_FIELDS)
            or (depth == self.entry_depth + 2 and parent == "fingerprints")
        ):
            self.buffer, self.buffered, self.buffer_depth = [], 0, depth

    def text(self, data: str) -> None:
        if self.buffer is None:
            return
        self.buffered += len(data)
        if self.buffered > MAX_TEXT:
            if self.entry is not None:
                self.entry.problem = f"an element's text is longer than {MAX_TEXT} characters"
            self.buffer.clear()
            return
        self.buffer.append(data)

    def end(self, _name: str) -> None:
        depth = len(self.path)
        tag = self.path.pop()
        entry = self.entry
        if entry is None:
            return
        if self.buffer is not None and depth == self.buffer_depth:
            value = "".join(self.buffer).strip()
            self.buffer = None
            if depth == self.entry_depth + 2:
                entry.fingerprints.append((tag, value))
            else:
                entry.fields[tag] = value
        elif depth == self.entry_depth:
            self.out.extend(entry.items())
            self.entry = None


def read(stream: BinaryIO, *, signal_type: str | None = None) -> Iterator[Item]:
    """Records from NCMEC hash-sharing XML, streamed; `signal_type` is not needed here."""
    reader = _Reader()
    while True:
        chunk = stream.read(_CHUNK)
        try:
            reader.parser.Parse(chunk, not chunk)
        except expat.ExpatError as exc:
            yield from reader.out
            raise ListFormatError(
                f"line {exc.lineno}: broken XML ({expat.errors.messages[exc.code]})"
            ) from None
        yield from reader.out
        reader.out.clear()
        if not chunk:
            return


def write(records: Iterable[Record], stream: BinaryIO) -> int:
    """Write records as NCMEC hash-sharing XML; returns how many records.

    Additions sharing an external id (one after the other) become one ``<image>``;
    removals must name an external id (NCMEC deletes entries, not hashes).
    """
    stream.write(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    stream.write(f'<queryResult xmlns="{NAMESPACE}">\n  <images>\n'.encode())
    count = 0
    group: list[Record] = []
    for record in records:
        if group and not _same_entry(group[-1], record):
            stream.write(_element(group))
            group = []
        group.append(record)
        count += 1
    if group:
        stream.write(_element(group))
    stream.write(b"  </images>\n</queryResult>\n")
    return count


def _same_entry(a: Record, b: Record) -> bool:
    return (
        a.op == b.op == "add"
        and a.external_id is not None
        and (a.external_id, a.classification) == (b.external_id, b.classification)
    )


def _element(group: list[Record]) -> bytes:
    first = group[0]
    if first.op == "remove":
        if first.external_id is None:
            raise ValueError("NCMEC XML removes entries by id; this removal has no external id")
        return f"    <deletedImage><id>{_text(first.external_id)}</id></deletedImage>\n".encode()
    parts = ["    <image>\n"]
    if first.external_id is not None:
        parts.append(f"      <id>{_text(first.external_id)}</id>\n")
    if first.classification is not None:
        parts.append(f"      <classification>{_text(first.classification)}</classification>\n")
    parts.append("      <fingerprints>\n")
    for record in group:
        if record.signal_type is None or record.value is None:
            raise ValueError("an NCMEC entry needs a signal type and a value")
        tag = _FINGERPRINT_NAMES.get(record.signal_type, record.signal_type)
        parts.append(f"        <{tag}>{_text(record.value)}</{tag}>\n")
    parts.append("      </fingerprints>\n    </image>\n")
    return "".join(parts).encode("utf-8")


def _text(value: str) -> str:
    if _NOT_XML_CHAR.search(value):
        raise ValueError(f"{value!r} holds a character XML cannot carry")
    return escape(value)
