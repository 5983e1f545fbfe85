"""Appeals: ``POST /v1/cases/{case_id}/appeals`` (the platform files a user's appeal against
a case) and ``GET /v1/appeals/{appeal_id}`` (its status and answer). ``appeal`` scope: the
key of a platform's backend, which may file and follow appeals and nothing else.

A senior reviewer decides the appeal (`lightkeeper.review.appeals`); the platform learns the
outcome from the ``decision`` webhook event, or by polling here. The answer names no
reviewer; the reviewer's reason is shared with the platform, to pass on to its user.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from lightkeeper.actions.cases import UPLOADER_PATTERN
from lightkeeper.banks import BankStore
from lightkeeper.banks.audit import acting_as
from lightkeeper.review.appeals import MAX_STATEMENT_CHARS, Appeal, file_appeal, get_appeal
from lightkeeper.service.access import calling_key, needs

router = APIRouter(prefix="/v1", tags=["review"])

#: Largest id a path accepts (the columns are 64-bit).
_MAX_ID = 2**63 - 1


def _store(request: Request) -> BankStore:
    store: BankStore = request.app.state.runtime.store
    return store


class AppealIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"statement": "This is a photo of my own garden.", "uploader": "u-4711"}]
        },
    )

    statement: str = Field(
        min_length=1,
        max_length=MAX_STATEMENT_CHARS,
        pattern=r"^[^\x00]*\S[^\x00]*$",
        description="The user's statement, as they wrote it",
    )
    uploader: str | None = Field(
        None,
        pattern=UPLOADER_PATTERN,
        description="The appealing user's uploader reference (one the case recorded)",
    )


class AppealOut(BaseModel):
    id: int
    case_id: int
    uploader: str | None
    statement: str
    received_at: datetime
    status: Literal["open", "upheld", "denied"] = Field(
        description="upheld: the case was reversed; reinstate the content"
    )
    decided_at: datetime | None
    reason: str | None = Field(description="The reviewer's reason, once decided")

    @classmethod
    def of(cls, appeal: Appeal) -> AppealOut:
        return cls(
            id=appeal.id,
            case_id=appeal.case_id,
            uploader=appeal.uploader,
            statement=appeal.statement,
            received_at=appeal.received_at,
            status=appeal.status,  # type: ignore[arg-type]
            decided_at=appeal.decided_at,
            reason=appeal.reason,
        )


@router.post(
    "/cases/{case_id}/appeals",
    openapi_extra=needs("appeal"),
    status_code=201,
    summary="File a user's appeal against a case (a senior reviewer decides it)",
)
def post_appeal(
    request: Request, body: AppealIn, case_id: int = Path(ge=1, le=_MAX_ID)
) -> AppealOut:
    with acting_as(calling_key(request).actor):
        appeal = file_appeal(
            _store(request), case_id, statement=body.statement, uploader=body.uploader
        )
    return AppealOut.of(appeal)


@router.get(
    "/appeals/{appeal_id}",
    openapi_extra=needs("appeal"),
    summary="An appeal: open, upheld (reinstate the content) or denied, with the reason",
)
def show_appeal(request: Request, appeal_id: int = Path(ge=1, le=_MAX_ID)) -> AppealOut:
    return AppealOut.of(get_appeal(_store(request), appeal_id))
