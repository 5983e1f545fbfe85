"""Banks, their entries and list imports (``/v1/banks/…``, ``/v1/imports/…``, ``/v1/audit``).

Reading a bank's entries (their hash values) needs ``bank:read``; every change needs
``bank:write`` and is recorded in the audit trail under the calling key. A list import runs
in the background: the call answers 202 with the import's record, whose counts grow as
batches commit (``GET /v1/imports/{id}``).
"""

from __future__ import annotations

from itertools import islice
from typing import IO, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from lightkeeper.banks import BankStore, NewEntry
from lightkeeper.banks.audit import acting_as, list_events
from lightkeeper.banks.records import Entry
from lightkeeper.errors import NotFound
from lightkeeper.service.access import calling_key, needs
from lightkeeper.service.routes.hashing import upload_route
from lightkeeper.service.schemas import (
    NO_NUL,
    BankIn,
    BankOut,
    BankPatch,
    EntriesIn,
    EntryOut,
    EntryPage,
    EntryPatch,
    EntryRef,
    ImportOut,
    WriteOut,
)
from lightkeeper.service.uploads import MAX_IMPORT_BYTES, read_upload

router = APIRouter(prefix="/v1", tags=["banks"])

BankName = Path(min_length=1, max_length=64, pattern=NO_NUL, description="The bank's name")
EntryId = Path(ge=1, le=2**63 - 1, description="The entry's id")


def _store(request: Request) -> BankStore:
    store: BankStore = request.app.state.runtime.store
    return store


def _actor(request: Request) -> str:
    return calling_key(request).actor


def _entry_in(request: Request, bank: str, entry_id: int) -> Entry:
    entry = _store(request).get_entry(entry_id)
    if entry.bank != bank:
        raise NotFound(f"bank {bank!r} has no entry {entry_id}")
    return entry


def _ref(entry: Entry) -> EntryRef:
    return EntryRef(
        id=entry.id,
        bank=entry.bank,
        signal_type=entry.signal_type,
        enabled=entry.enabled,
        disabled_until=entry.disabled_until,
    )


# ---------------------------------------------------------------------------------- banks


@router.get("/banks", openapi_extra=needs("bank:read"), summary="List banks")
def list_banks(request: Request) -> list[BankOut]:
    return [BankOut.of(bank) for bank in _store(request).list_banks()]


@router.post("/banks", status_code=201, openapi_extra=needs("bank:write"), summary="Create a bank")
def create_bank(request: Request, body: BankIn) -> BankOut:
    with acting_as(_actor(request)):
        bank = _store(request).create_bank(
            body.name,
            kind=body.kind,
            description=body.description,
            thresholds=body.thresholds,
            match_dihedral=body.match_dihedral,
            pdq_quality_floor=body.pdq_quality_floor,
            enabled=body.enabled,
            regions=body.regions,
            region_threshold=body.region_threshold,
        )
    return BankOut.of(bank, 0)


@router.get("/banks/{name}", openapi_extra=needs("bank:read"), summary="Show a bank")
def show_bank(request: Request, name: str = BankName) -> BankOut:
    store = _store(request)
    return BankOut.of(store.get_bank(name), store.count_entries(name))


@router.patch(
    "/banks/{name}",
    openapi_extra=needs("bank:write"),
    summary="Change a bank: thresholds, kind, enabled, name …",
)
def update_bank(request: Request, body: BankPatch, name: str = BankName) -> BankOut:
    with acting_as(_actor(request)):
        bank = _store(request).update_bank(
            name,
            rename=body.name,
            kind=body.kind,
            description=body.description,
            thresholds=body.thresholds,
            match_dihedral=body.match_dihedral,
            pdq_quality_floor=body.pdq_quality_floor,
            enabled=body.enabled,
            regions=body.regions,
            region_threshold=body.region_threshold,
        )
    return BankOut.of(bank)


@router.delete(
    "/banks/{name}", openapi_extra=needs("bank:write"), summary="Delete a bank and its entries"
)
def delete_bank(request: Request, name: str = BankName) -> dict[str, int]:
    with acting_as(_actor(request)):
        return {"deleted_entries": _store(request).delete_bank(name)}


# -------------------------------------------------------------------------------- entries


@router.get(
    "/banks/{name}/entries",
    openapi_extra=needs("bank:read"),
    summary="A page of a bank's entries, by id",
)
def list_entries(
    request: Request,
    name: str = BankName,
    after_id: int = Query(0, ge=0, le=2**63 - 1),
    limit: int = Query(1000, ge=1, le=10_000),
) -> EntryPage:
    store = _store(request)
    entries = list(islice(store.iter_entries(name, after_id=after_id, page_size=limit), limit))
    regions = store.count_regions(e.id for e in entries if e.signal_type == "pdq")
    return EntryPage(
        entries=[EntryOut.of(e, regions.get(e.id, 0)) for e in entries],
        next_after_id=entries[-1].id if len(entries) == limit else None,
    )


@router.post(
    "/banks/{name}/entries",
    openapi_extra=needs("bank:write"),
    summary="Add up to 10,000 entries (adding a hash twice adds it once)",
)
def add_entries(request: Request, body: EntriesIn, name: str = BankName) -> WriteOut:
    new = [
        NewEntry(
            e.signal_type,
            e.value,
            e.list_name,
            e.list_version,
            e.external_id,
            e.classification,
            e.note,
        )
        for e in body.entries
    ]
    with acting_as(_actor(request)):
        return WriteOut.of(_store(request).write_batch(name, new))


@router.get(
    "/banks/{name}/entries/{entry_id}", openapi_extra=needs("bank:read"), summary="Show an entry"
)
def show_entry(request: Request, name: str = BankName, entry_id: int = EntryId) -> EntryOut:
    entry = _entry_in(request, name, entry_id)
    return EntryOut.of(entry, _store(request).count_regions([entry.id])[entry.id])


@router.patch(
    "/banks/{name}/entries/{entry_id}",
    openapi_extra=needs("bank:write"),
    summary="Enable or disable an entry (for good, or until a time)",
)
def update_entry(
    request: Request, body: EntryPatch, name: str = BankName, entry_id: int = EntryId
) -> EntryRef:
    store = _store(request)
    entry = _entry_in(request, name, entry_id)
    with acting_as(_actor(request)):
        if body.disabled_until is not None:
            if body.enabled is not None:
                from lightkeeper.errors import InvalidRequest

                raise InvalidRequest("give either 'enabled' or 'disabled_until', not both")
            entry = store.disable_entry(entry_id, until=body.disabled_until)
        elif body.enabled is True:
            entry = store.enable_entry(entry_id)
        elif body.enabled is False:
            entry = store.disable_entry(entry_id)
    return _ref(entry)


@router.delete(
    "/banks/{name}/entries/{entry_id}",
    openapi_extra=needs("bank:write"),
    summary="Remove an entry",
)
def remove_entry(request: Request, name: str = BankName, entry_id: int = EntryId) -> EntryRef:
    _entry_in(request, name, entry_id)
    with acting_as(_actor(request)):
        return _ref(_store(request).remove_entry(entry_id))


# -------------------------------------------------------------------------------- imports


@router.post(
    "/banks/{name}/imports",
    status_code=202,
    openapi_extra=upload_route("bank:write"),
    summary="Import a hash-list file in the background",
)
async def start_import(
    request: Request,
    name: str = BankName,
    format: str | None = Query(
        None, max_length=32, pattern=NO_NUL, description="Detected when not given"
    ),
    signal_type: str | None = Query(
        None, max_length=32, pattern=NO_NUL, description="For lists that omit it"
    ),
    list_name: str | None = Query(None, max_length=200, pattern=NO_NUL),
    list_version: str | None = Query(None, max_length=200, pattern=NO_NUL),
) -> ImportOut:
    runtime = request.app.state.runtime
    body = await read_upload(request, MAX_IMPORT_BYTES, ("file",), allow_empty=True)

    def write(handle: IO[bytes]) -> None:
        handle.write(body)

    run_id = await run_in_threadpool(
        runtime.start_import,
        _actor(request),
        name,
        write,
        fmt=format,
        signal_type=signal_type,
        list_name=list_name,
        list_version=list_version,
    )
    return await run_in_threadpool(_import_out, runtime.store, run_id)


def _import_out(store: BankStore, run_id: int) -> ImportOut:
    return ImportOut.of(store.get_import(run_id))


@router.get("/banks/{name}/imports", openapi_extra=needs("bank:read"), summary="A bank's imports")
def list_imports(request: Request, name: str = BankName) -> list[ImportOut]:
    return [ImportOut.of(run) for run in _store(request).list_imports(name)]


@router.get(
    "/imports/{import_id}",
    openapi_extra=needs("bank:write"),
    summary="An import's status and counts",
)
def show_import(request: Request, import_id: int = Path(ge=1, le=2**31 - 1)) -> ImportOut:
    return _import_out(_store(request), import_id)


# ---------------------------------------------------------------------------------- audit


@router.get("/audit", openapi_extra=needs("admin"), summary="The audit trail, oldest first")
def audit(
    request: Request,
    after_id: int = Query(0, ge=0, le=2**63 - 1),
    limit: int = Query(1000, ge=1, le=10_000),
) -> list[dict[str, Any]]:
    events = list_events(_store(request).engine, after_id=after_id, limit=limit)
    return [event.to_dict() for event in events]
