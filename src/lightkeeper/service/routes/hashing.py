"""``POST /v1/hash``: an uploaded file's signals (PDQ with its quality, MD5, SHA-1, SHA-256)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from lightkeeper.errors import MediaError
from lightkeeper.hashing import bytes_signals, hash_bytes
from lightkeeper.media.decode import MediaLimits
from lightkeeper.service.access import needs
from lightkeeper.service.uploads import read_upload

router = APIRouter(prefix="/v1", tags=["hashing"])

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The file, as the raw body or as a part of multipart/form-data",
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


def upload_route(scope: str) -> dict[str, Any]:
    """Route metadata for a route that takes an uploaded file and needs `scope`."""
    return needs(scope) | UPLOAD_BODY


@router.post(
    "/hash",
    openapi_extra=upload_route("hash"),
    summary="Hash an uploaded file",
    response_description="The file's signals: pdq, pdq_quality, md5, sha1, sha256 and facts "
    "about the image (format, width, height …)",
)
async def hash_upload(
    request: Request,
    dihedral: bool = Query(False, description="Also the PDQ hashes of the 8 rotations/flips"),
) -> dict[str, Any]:
    runtime = request.app.state.runtime
    data = await read_upload(request, runtime.settings.max_upload_bytes, ("file",))
    return await run_in_threadpool(signals_of, data, dihedral, runtime.settings.media_limits)


def signals_of(data: bytes, dihedral: bool, limits: MediaLimits) -> dict[str, Any]:
    """The signals of an upload; bytes that are no decodable image still get their exact
    hashes, with the decoding error beside them (a listed video or document is still found)."""
    try:
        return hash_bytes(data, dihedral=dihedral, limits=limits)
    except MediaError as exc:
        return {**bytes_signals(data), "error": str(exc), "error_type": exc.code}
