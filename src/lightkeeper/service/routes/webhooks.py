"""Webhook endpoints and deliveries: ``GET/POST /v1/webhooks``, ``DELETE /v1/webhooks/{name}``,
``GET /v1/webhooks/deliveries`` (``state=dead``: the dead letters). ``admin`` scope; a new
endpoint's signing secret is in the creation's answer only, never listed."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Path, Query, Request

from lightkeeper.actions import webhooks as wh
from lightkeeper.banks import BankStore
from lightkeeper.banks.audit import acting_as
from lightkeeper.service.access import calling_key, needs
from lightkeeper.service.action_schemas import (
    DeliveryOut,
    EndpointCreated,
    EndpointIn,
    EndpointOut,
)

router = APIRouter(prefix="/v1", tags=["actions"])


def _store(request: Request) -> BankStore:
    store: BankStore = request.app.state.runtime.store
    return store


@router.get("/webhooks", openapi_extra=needs("admin"), summary="Webhook endpoints (no secrets)")
def show_endpoints(request: Request) -> list[EndpointOut]:
    return [EndpointOut.of(e) for e in wh.list_endpoints(_store(request))]


@router.post(
    "/webhooks",
    status_code=201,
    openapi_extra=needs("admin"),
    summary="Add a webhook endpoint; the answer holds its signing secret, shown this once",
)
def add_endpoint(request: Request, body: EndpointIn) -> EndpointCreated:
    with acting_as(calling_key(request).actor):
        endpoint, secret = wh.create_endpoint(
            _store(request),
            body.name,
            body.url,
            event_types=body.event_types or wh.EVENT_TYPES,
            enabled=body.enabled,
        )
    return EndpointCreated(**EndpointOut.of(endpoint).model_dump(), secret=secret)


@router.delete(
    "/webhooks/{name}",
    openapi_extra=needs("admin"),
    summary="Remove an endpoint with its pending deliveries and delivery log",
)
def remove_endpoint(
    request: Request, name: str = Path(min_length=1, max_length=64, pattern=r"^[^\x00]*$")
) -> EndpointOut:
    with acting_as(calling_key(request).actor):
        return EndpointOut.of(wh.remove_endpoint(_store(request), name))


@router.get(
    "/webhooks/deliveries",
    openapi_extra=needs("admin"),
    summary="Deliveries, newest first (state=dead: the dead letters)",
)
def show_deliveries(
    request: Request,
    state: Literal["pending", "delivered", "dead"] | None = Query(None),
    endpoint: str | None = Query(None, min_length=1, max_length=64, pattern=r"^[^\x00]*$"),
    limit: int = Query(100, ge=1, le=1000),
) -> list[DeliveryOut]:
    found = wh.list_deliveries(_store(request), state=state, endpoint=endpoint, limit=limit)
    return [DeliveryOut.of(d) for d in found]
