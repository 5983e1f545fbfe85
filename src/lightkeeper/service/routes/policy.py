"""The policy: ``GET/PUT /v1/policy``, ``GET /v1/policy/history``, ``POST /v1/policy/dry-run``
(``admin`` scope).

Setting a policy adds a version (the old ones are kept: ``history``, and ``GET /v1/policy?at=``
for the one in force at a past moment); it is audited under the calling key. A dry run applies
a candidate to the recorded matches and lists what would change, writing nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request

from lightkeeper.actions.policy import Policy
from lightkeeper.actions.policy_store import (
    dry_run,
    get_policy_version,
    policy_at,
    policy_history,
    set_policy,
)
from lightkeeper.banks import BankStore
from lightkeeper.banks.audit import acting_as
from lightkeeper.errors import InvalidRequest
from lightkeeper.service.access import calling_key, needs
from lightkeeper.service.action_schemas import DryRunIn, DryRunOut, PolicyIn, PolicyOut

router = APIRouter(prefix="/v1", tags=["actions"])


def _store(request: Request) -> BankStore:
    store: BankStore = request.app.state.runtime.store
    return store


def _out(store: BankStore, version: int | None, policy: Policy) -> PolicyOut:
    if version is None:
        return PolicyOut(
            version=None,
            created_at=None,
            actor=None,
            comment=None,
            sha256=None,
            policy=policy.to_dict(),
        )
    return PolicyOut.of(get_policy_version(store, version))


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise InvalidRequest("`at` needs a time zone (2026-11-22T10:00:00Z)")
    try:
        return when.astimezone(UTC)
    except OverflowError:
        raise InvalidRequest("`at` is out of range once converted to UTC") from None


@router.get(
    "/policy",
    openapi_extra=needs("admin"),
    summary="The policy in force (now, or at a past moment)",
)
def show_policy(
    request: Request,
    at: Annotated[
        datetime | None,
        Query(description="A past moment (with a time zone): the policy in force then"),
    ] = None,
) -> PolicyOut:
    store = _store(request)
    moment = datetime.now(UTC) if at is None else _utc(at)
    return _out(store, *policy_at(store, moment))


@router.put(
    "/policy",
    openapi_extra=needs("admin"),
    summary="Put a new policy in force (a new version; the old ones are kept)",
)
def put_policy(request: Request, body: PolicyIn) -> PolicyOut:
    store = _store(request)
    with acting_as(calling_key(request).actor):
        version = set_policy(store, body.policy.document(), comment=body.comment)
    return PolicyOut.of(get_policy_version(store, version))


@router.get(
    "/policy/history",
    openapi_extra=needs("admin"),
    summary="Every policy version, oldest first",
)
def show_history(request: Request) -> list[PolicyOut]:
    return [PolicyOut.of(v) for v in policy_history(_store(request))]


@router.post(
    "/policy/dry-run",
    openapi_extra=needs("admin"),
    summary="What a candidate policy would have done differently over the recorded matches",
)
def policy_dry_run(request: Request, body: DryRunIn) -> DryRunOut:
    return DryRunOut.of(dry_run(_store(request), body.policy.document(), limit=body.limit))
