"""Cases and uploaders: ``GET /v1/cases`` (the review queue, filtered), ``GET /v1/cases/{id}``
(a case with its recorded matches), ``GET /v1/uploaders/{ref}`` (everything one uploader
reference did). ``admin`` scope; the banks' hash values in evidence are shown only to keys
that may read banks (``admin`` may)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Path, Query, Request

from lightkeeper.actions.cases import UPLOADER_PATTERN, get_case, list_cases, uploader_view
from lightkeeper.banks import BankStore
from lightkeeper.service.access import calling_key, needs
from lightkeeper.service.action_schemas import CaseDetailOut, CaseOut, UploaderOut

router = APIRouter(prefix="/v1", tags=["actions"])


def _store(request: Request) -> BankStore:
    store: BankStore = request.app.state.runtime.store
    return store


def _reveal(request: Request) -> bool:
    return calling_key(request).allows("bank:read")


@router.get(
    "/cases",
    openapi_extra=needs("admin"),
    summary="Cases in review-queue order: for review first, most urgent, then oldest",
)
def show_cases(
    request: Request,
    status: Literal["open", "decided", "reported", "closed"] | None = Query(None),
    priority: int | None = Query(None, ge=1, le=9),
    uploader: str | None = Query(
        None, pattern=UPLOADER_PATTERN, description="Only cases with an upload by this reference"
    ),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> list[CaseOut]:
    found = list_cases(
        _store(request),
        status=status,
        priority=priority,
        uploader=uploader,
        limit=limit,
        offset=offset,
    )
    return [CaseOut.of(case) for case in found]


@router.get(
    "/cases/{case_id}",
    openapi_extra=needs("admin"),
    summary="A case with its recorded matches and actions",
)
def show_case(
    request: Request,
    case_id: int = Path(ge=1, le=2**63 - 1),
    limit: int = Query(1000, ge=1, le=1000, description="Most recorded matches listed"),
) -> CaseDetailOut:
    return CaseDetailOut.of(get_case(_store(request), case_id, limit=limit), _reveal(request))


@router.get(
    "/uploaders/{ref}",
    openapi_extra=needs("admin"),
    summary="Everything recorded for one uploader reference: uploads, contents, cases",
)
def show_uploader(
    request: Request,
    ref: str = Path(pattern=UPLOADER_PATTERN, description="The platform's uploader reference"),
    limit: int = Query(100, ge=1, le=1000, description="Most cases and uploads listed"),
) -> UploaderOut:
    view = uploader_view(_store(request), ref, limit=limit)
    return UploaderOut.of(view, _reveal(request))
