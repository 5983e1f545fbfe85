"""Matching: ``POST /v1/match`` (an upload, before a platform accepts it) and ``/v1/lookup``
(hashes computed elsewhere: one by query string, or a batch of up to 10,000 as JSON).

Evidence names the bank, entry, signal type, distance, threshold, quality, variant and list
version of every match. The entry's own hash value is left out unless the key may read
banks (``bank:read``): hash lists are confidential, and a matching client only needs the
hash of its own content, which the evidence carries as ``content_value``.

With actions on (the default), an upload with acting matches goes to the actioner
(`lightkeeper.actions.actioner`) in the same call: the answer's ``decision`` is "reject"
exactly when the policy blocks it, with the ``actions`` taken and the ``case_id``. The call is
idempotent under its ``Idempotency-Key`` (the ``request_id``): a retry with the same key
returns the same decision and repeats no action.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from lightkeeper.actions.actioner import Actioner, ActionOutcome
from lightkeeper.actions.cases import REQUEST_ID_PATTERN, UPLOADER_PATTERN
from lightkeeper.banks.audit import acting_as
from lightkeeper.errors import UnknownSignalType
from lightkeeper.matching import Matcher
from lightkeeper.matching.evidence import Match, MatchResult
from lightkeeper.service.access import BATCH_COST_PER_HASH, calling_key, charge, needs
from lightkeeper.service.jsonbody import FastJSONResponse, body_schema, parse_body
from lightkeeper.service.keys import ApiKey
from lightkeeper.service.metrics import MATCHES
from lightkeeper.service.routes.hashing import upload_route
from lightkeeper.service.schemas import (
    LookupRequest,
    LookupResponse,
    MatchOutcome,
    MatchResponse,
)
from lightkeeper.service.uploads import read_upload
from lightkeeper.signals import registry

router = APIRouter(prefix="/v1", tags=["matching"])


def _reveal(request: Request) -> bool:
    return calling_key(request).allows("bank:read")


def _count(matches: tuple[Match, ...]) -> None:
    for match in matches:
        MATCHES.labels(match.bank, match.signal_type).inc()


@router.post(
    "/match",
    openapi_extra=upload_route("match"),
    summary="Match an uploaded file against every enabled bank",
)
async def match_upload(
    request: Request,
    idempotency_key: str | None = Header(
        None,
        alias="Idempotency-Key",
        pattern=REQUEST_ID_PATTERN,
        description="The request's id (1 to 200 printable ASCII characters): a retry with the "
        "same key returns the same answer and repeats no action",
    ),
    uploader: str | None = Query(
        None,
        pattern=UPLOADER_PATTERN,
        description="The platform's opaque reference of who uploaded it (letters, digits and "
        ". _ : @ + = ~ -), recorded with any action so repeat uploaders show",
    ),
) -> MatchResponse:
    runtime = request.app.state.runtime
    data = await read_upload(request, runtime.settings.max_upload_bytes, ("file",))
    matcher: Matcher = runtime.matcher
    seq = matcher.follower.last_seq
    request_id = idempotency_key or str(uuid.uuid4())
    actioner: Actioner | None = runtime.actioner
    actor = calling_key(request).actor

    def match_and_act() -> tuple[MatchResult, ActionOutcome | None]:
        result = matcher.match_bytes(data)
        # A key given may name a request already handled, whatever this match finds now.
        if actioner is None or not (result.matched or idempotency_key is not None):
            return result, None
        with acting_as(actor):
            outcome = actioner.act(result, data, request_id=request_id, uploader_ref=uploader)
        return result, outcome

    result, outcome = await run_in_threadpool(match_and_act)
    _count(result.matches)
    reject = result.matched if outcome is None else outcome.reject
    return MatchResponse(
        decision="reject" if reject else "accept",
        actions=[] if outcome is None else list(outcome.actions),
        case_id=None if outcome is None else outcome.case_id,
        request_id=request_id,
        sha256=result.sha256,
        signals=list(result.signals),
        index_seq=seq,
        error=result.error,
        error_type=result.error_type,
        **MatchOutcome.fields_of(result, _reveal(request)),
    )


def _query(signal_type: str, value: str, quality: int | None) -> Mapping[str, object]:
    hashes: dict[str, object] = {signal_type: value}
    if quality is not None:
        hashes[f"{signal_type}_quality"] = quality
    return hashes


def _evidence(match: Match, reveal: bool) -> dict[str, Any]:
    out = match.to_dict()
    if not reveal:
        out["value"] = None
    return out


def _outcome(signal_type: str, value: str, result: MatchResult, reveal: bool) -> dict[str, Any]:
    """A `LookupResult` as plain JSON. Built directly, not through pydantic: a batch of
    10,000 would otherwise spend more time building and re-validating models than matching
    (the response model still documents it, and the tests check the shape)."""
    if not (result.matches or result.suppressed or result.allowed):  # nearly every item
        return {
            "signal_type": signal_type,
            "value": value,
            "matched": False,
            "matches": [],
            "suppressed": [],
            "allowed": [],
            "low_quality": result.low_quality,
            "quality": result.quality,
            "error": result.error,
            "error_type": result.error_type,
        }
    return {
        "signal_type": signal_type,
        "value": value,
        "matched": result.matched,
        "matches": [_evidence(m, reveal) for m in result.matches],
        "suppressed": [
            {
                "match": _evidence(s.match, reveal),
                "suppressed_by": _evidence(s.suppressed_by, reveal),
            }
            for s in result.suppressed
        ],
        "allowed": [_evidence(m, reveal) for m in result.allowed],
        "low_quality": result.low_quality,
        "quality": result.quality,
        "error": result.error,
        "error_type": result.error_type,
    }


def _lookup(
    matcher: Matcher, items: list[tuple[str, str, int | None]], reveal: bool
) -> list[dict[str, Any]]:
    """Each item's outcome, in request order; an item naming no registered signal type gets
    that error (the matcher itself skips names it does not know)."""
    unknown: dict[int, UnknownSignalType] = {}
    for i, (signal_type, _, _) in enumerate(items):
        try:
            registry.get(signal_type)
        except UnknownSignalType as exc:
            unknown[i] = exc
    queries = [{} if i in unknown else _query(*item) for i, item in enumerate(items)]
    results = matcher.match_many(queries)
    out = []
    for i, ((signal_type, value, _), result) in enumerate(zip(items, results, strict=True)):
        if i in unknown:
            result = MatchResult(error=unknown[i].message, error_type=unknown[i].code)
        _count(result.matches)
        out.append(_outcome(signal_type, value, result, reveal))
    return out


@router.get(
    "/lookup",
    openapi_extra=needs("lookup"),
    summary="Look up one hash",
    response_model=LookupResponse,
)
async def lookup_one(
    request: Request,
    signal_type: str = Query(min_length=1, max_length=32, description="pdq, md5, sha256 …"),
    value: str = Query(min_length=1, max_length=4096, description="The hash"),
    quality: int | None = Query(None, ge=0, le=100, description="PDQ quality, when known"),
) -> Response:
    # One hash: a malformed one is the request's error (422; 404 for an unknown signal type).
    # The well-formed case is usually answered before this, by `service.hotpath`.
    registry.get(signal_type).normalize(value)
    runtime = request.app.state.runtime
    return lookup_response(runtime.matcher, signal_type, value, quality, calling_key(request))


def lookup_response(
    matcher: Matcher, signal_type: str, value: str, quality: int | None, key: ApiKey
) -> Response:
    """The answer to a single lookup (here and on the hot path)."""
    seq = matcher.follower.last_seq
    results = _lookup(matcher, [(signal_type, value, quality)], key.allows("bank:read"))
    return FastJSONResponse({"results": results, "index_seq": seq})


@router.post(
    "/lookup",
    openapi_extra={**needs("lookup"), **body_schema(LookupRequest)},
    summary="Look up a batch of up to 10,000 hashes",
    response_model=LookupResponse,
)
async def lookup_batch(request: Request) -> Response:
    body = parse_body(LookupRequest, await request.body())
    charge(request, max(0.0, (len(body.hashes) - 100) * BATCH_COST_PER_HASH))
    matcher: Matcher = request.app.state.runtime.matcher
    seq = matcher.follower.last_seq
    items = [(h.signal_type, h.value, h.quality) for h in body.hashes]
    results = await run_in_threadpool(_lookup, matcher, items, _reveal(request))
    return FastJSONResponse({"results": results, "index_seq": seq})
