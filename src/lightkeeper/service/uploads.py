"""Request bodies: read with a size cap, and files taken from multipart or raw bodies.

Uploads are held in memory only. Starlette's own form parser spools large files to a
temporary file on disk; content that may be abuse material must not be written anywhere by
a matching call (the quarantine vault, later, stores it encrypted), so multipart bodies are
parsed here from memory with python-multipart's streaming parser.

A file may come as the whole body (``Content-Type: application/octet-stream``, ``image/*``
or anything not multipart) or as one part of ``multipart/form-data``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lightkeeper.errors import BadUpload, PayloadTooLarge

#: Most parts accepted in one multipart body (a file and a few form fields).
MAX_PARTS = 16
#: Largest list file accepted by an import through the API (bigger lists: the CLI).
MAX_IMPORT_BYTES = 1024 * 1024 * 1024


def body_limit(path: str, limit: int) -> int:
    """The body limit of a path: list imports may be larger than uploads."""
    return max(limit, MAX_IMPORT_BYTES) if path.endswith("/imports") else limit


class BodyLimit:
    """Every request body, JSON included, is capped before a handler reads it.

    A declared Content-Length over the limit gets 413 at once (the server itself holds the
    body to its declared length). A body without one (chunked) is read here up to the limit,
    then handed on; one that passes the limit gets 413 without reaching a handler.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope.get("path", ""), self.limit)
        declared: int | None = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
        if declared is not None:
            if declared < 0:
                await _refuse(scope, receive, send, 400, "Content-Length is not a number")
            elif declared > limit:
                text = f"request body of {declared} bytes is over the limit of {limit}"
                await _refuse(scope, receive, send, 413, text)
            else:
                await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > limit:
                message_text = f"request body is over the limit of {limit} bytes"
                await _refuse(scope, receive, send, 413, message_text)
                return
            if not message.get("more_body", False):
                break
        replay = iter(messages)

        async def replayed() -> Message:
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    from lightkeeper.service.app import error_response

    request = Request(scope, receive)
    code = "payload_too_large" if status == 413 else "bad_upload"
    await error_response(request, status, code, message)(scope, receive, send)


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytearray = field(default_factory=bytearray)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) one over `limit` bytes before or while reading it."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadUpload("Content-Length is not a number") from None
        if size > limit:
            raise PayloadTooLarge(f"request body of {size} bytes is over the limit of {limit}")
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise BadUpload("the client went away before sending the whole body") from None
    return b"".join(chunks)


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


def parse_multipart(content_type: str, body: bytes) -> list[Part]:
    """The parts of a ``multipart/form-data`` body, in order."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadUpload("multipart body without a boundary")
    parts: list[Part] = []
    header_field = bytearray()
    header_value = bytearray()
    headers: dict[bytes, bytes] = {}

    def on_part_begin() -> None:
        if len(parts) >= MAX_PARTS:
            raise BadUpload(f"more than {MAX_PARTS} parts in a multipart body")
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers[bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        disposition, options = parse_options_header(headers.get(b"content-disposition", b""))
        if disposition != b"form-data" or b"name" not in options:
            raise BadUpload("a multipart part without a form-data name")
        filename = options.get(b"filename")
        ctype = headers.get(b"content-type")
        parts.append(
            Part(
                name=options[b"name"].decode("utf-8", "replace"),
                filename=None if filename is None else filename.decode("utf-8", "replace"),
                content_type=None if ctype is None else ctype.decode("latin-1"),
            )
        )

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].data.extend(data[start:end])

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise BadUpload(f"malformed multipart body: {exc}") from None
    return parts


async def read_upload(
    request: Request, limit: int, field_names: tuple[str, ...] = (), *, allow_empty: bool = False
) -> bytes:
    """The uploaded file: the first file part of a multipart body (or the part named one of
    `field_names`), else the raw body. An empty upload is refused unless `allow_empty`."""
    body = await read_body(request, limit)
    if is_multipart(request):
        parts = parse_multipart(request.headers["content-type"], body)
        chosen = next((p for p in parts if p.name in field_names), None) or next(
            (p for p in parts if p.filename is not None), None
        )
        if chosen is None:
            names = ", ".join(repr(n) for n in field_names) or "a file part"
            raise BadUpload(f"no file in the multipart body (expected {names})")
        data = bytes(chosen.data)
    else:
        data = body
    if not data and not allow_empty:
        raise BadUpload("the upload is empty")
    return data
