"""Reading list files as streams: peeking at the start, gzip, and lines of bounded length.

Nothing here reads a whole file into memory: a 13-million-line list is read a buffer at a
time, and a "line" of a gigabyte without a newline is reported as invalid and skipped over
rather than held.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from typing import BinaryIO, cast

#: Bytes looked at to detect a format (and to find a CSV header).
HEAD_BYTES = 64 * 1024
#: Longest line the line-based readers accept; longer ones are reported invalid.
MAX_LINE_BYTES = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"


class _Prefixed(io.RawIOBase):
    """A raw stream that serves `head` first, then the rest of `rest`."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = memoryview(head)
        # read1: whatever is available, so that a pipe's data flows as it comes.
        self._read_rest = getattr(rest, "read1", rest.read)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._read_rest(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def peek(stream: BinaryIO, size: int = HEAD_BYTES) -> tuple[bytes, BinaryIO]:
    """The first bytes of `stream`, and a stream that reads it again from byte 0.

    Works on pipes as well as files: nothing is seeked, and reading stops once at least
    `ENOUGH_BYTES` (or the whole stream, if shorter) are in hand, so a pipe that is still
    being written is not waited on to the end. A gzip stream is decompressed: the bytes
    returned and the stream are the decompressed ones.
    """
    head = _read_head(stream, size)
    whole: BinaryIO = io.BufferedReader(_Prefixed(head, stream), buffer_size=HEAD_BYTES)
    if head.startswith(_GZIP_MAGIC):
        unzipped = cast(BinaryIO, gzip.GzipFile(fileobj=whole, mode="rb"))
        head = _read_head(unzipped, size)
        whole = io.BufferedReader(_Prefixed(head, unzipped), buffer_size=HEAD_BYTES)
    return head, whole


#: Bytes of a file's start that are enough to tell its format.
ENOUGH_BYTES = 4096


def _read_head(stream: BinaryIO, size: int) -> bytes:
    read_some = getattr(stream, "read1", stream.read)
    parts: list[bytes] = []
    have = 0
    while have < size:
        chunk = read_some(size - have)
        if not chunk:
            break
        parts.append(chunk)
        have += len(chunk)
        if have >= ENOUGH_BYTES:
            break
    return b"".join(parts)


def lines(stream: BinaryIO, max_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes | None]]:
    """(line number, line without its line ending) for each line; None for an overlong one.

    A UTF-8 byte-order mark at the start is dropped. CRLF, LF and a last line without an
    ending are all accepted.
    """
    line_no = 0
    readline = stream.readline
    while True:
        raw = readline(max_bytes + 2)
        if not raw:
            return
        line_no += 1
        if line_no == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        if len(raw) == max_bytes + 2 and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):  # skip the rest of the long line
                raw = readline(max_bytes)
            yield line_no, None
            continue
        content = raw.rstrip(b"\r\n")
        yield line_no, (None if len(content) > max_bytes else content)
