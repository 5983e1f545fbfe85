"""The routes of Meta's Hasher-Matcher-Actioner 2.0 (HMA, "OpenMediaMatch"), over Lightkeeper.

Why they exist: a service integrated with HMA switches to Lightkeeper by changing its base
URL. Requests, response bodies, status codes and error messages are HMA's, as recorded from
HMA 2.0 itself (``hma-api/transcripts.md``), including its oddities: distances are strings
in ``/m/lookup`` and ``/m/raw_lookup`` but integers in ``/m/compare``, adding a signal
answers 200, keys are sorted, and validation errors (422) are a bare list of pydantic errors.

One deliberate difference everywhere: every route but ``/status`` and ``/status/live`` needs
an API key (HMA has none), with this scope:

- ``hash``: ``GET/POST /h/hash``;
- ``match``: ``POST /m/lookup`` (a file);
- ``lookup``: ``GET /m/lookup``, ``/m/raw_lookup``, ``/m/index/status``, ``POST /m/compare``;
- ``bank:read``: every ``GET /c/…``; ``bank:write``: every ``POST/PUT/DELETE /c/…``.

How HMA's concepts map onto Lightkeeper's:

- **Bank names.** HMA's are UPPER_WITH_UNDERSCORE; Lightkeeper's are lower-case with ``_``
  or ``-``. A bank's HMA name is its name upper-cased with ``-`` made ``_`` ("ncmec-list" →
  "NCMEC_LIST"); a bank created through HMA gets the lower-cased name ("TEST_BANK" →
  "test_bank"), so names round-trip. An HMA name means the bank of that lower-cased name,
  else the bank that differs from it only by ``-`` (the first by name if several do). Banks
  that differ only by ``-`` versus ``_`` share one HMA name: HMA clients see only that one.
  HMA names Lightkeeper cannot hold (starting with ``_``, over 64 characters) get 400;
  a Lightkeeper bank whose name starts with a digit has an HMA name HMA would not create
  ("2024-list" → "2024_LIST"), which reaches it all the same.
- **matching_enabled_ratio** is the bank's enabled flag: 1.0 or 0.0. Lightkeeper has no
  partial ratio, so others get 400; ``seed`` and ``bypass_coinflip`` are accepted and change
  nothing (a disabled bank never matches: HMA's bypass would match it).
- **Content** is one bank entry, and its id the entry's id. One signal per content: a body
  with two signal types gets 400. Adding a hash the bank holds already updates that entry and
  answers its id (HMA makes a second content). ``disable_until_ts``: 0 disabled, 1 enabled,
  a Unix time disabled until then (the entry's ``disabled_until``). ``metadata.content_id``
  is the entry's ``external_id`` and ``note`` its note; ``metadata.content_uri`` and
  ``metadata.json`` are accepted but not kept (the store has no place for them), and
  ``original_media_uri`` is always null (Lightkeeper keeps no media).
- **Signal types.** ``pdq`` is PDQ; ``video_md5`` is Lightkeeper's ``md5`` (both are the MD5
  of the file's bytes); Lightkeeper's others keep their names (``sha1``, ``sha256``, ``url``).
  Listed (index status, ``/c/signal_type``): pdq and video_md5, as HMA's defaults, and any
  other signal type the index holds entries of. A ``photo`` is hashed with pdq, a ``video``
  with video_md5.
- **Matching** is Lightkeeper's matcher: each bank's thresholds, the PDQ quality floor, the
  EXIF and dihedral variants, and allow banks (a block match an allow bank suppresses is not
  reported by ``/m/lookup``). A photo posted to ``/m/lookup`` is matched by its exact file
  hashes as well; those signal types appear in the answer only when they matched.
- **raw_lookup** lists every active entry within its own bank's threshold, allow banks
  included and nothing suppressed. Unlike HMA's, it leaves out disabled banks and entries
  (HMA lists them: a bug not copied), and a bank holding a single PDQ hash matches (HMA's
  never does: ThreatExchange issue #1318).
- **Index status**: ``present`` is true once the index is loaded, which is before the
  service answers (HMA says false until its first build); ``built_to`` is the Unix time of
  the newest change applied (-1 for a signal type with no entries); ``size`` counts the
  entries indexed (enabled ones of enabled banks).
- **URLs** (``url=`` on ``/h/hash``, ``/m/lookup``, ``/c/bank/…/content``): Lightkeeper
  never fetches media from the internet, so these answer 400 saying so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine, Iterable, Mapping
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic
from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from lightkeeper.banks import Bank, BankStore, Entry
from lightkeeper.banks.audit import acting_as
from lightkeeper.banks.records import EntryRegion
from lightkeeper.errors import (
    BadUpload,
    Conflict,
    InvalidRequest,
    InvalidSignal,
    NotFound,
    ServiceError,
)
from lightkeeper.hashing import bytes_signals, hash_bytes
from lightkeeper.matching import Matcher
from lightkeeper.matching.evidence import Match, MatchResult
from lightkeeper.matching.region_codes import banked_image, upload_codes
from lightkeeper.media.decode import MediaLimits
from lightkeeper.service.access import PUBLIC, calling_key, needs
from lightkeeper.service.metrics import MATCHES
from lightkeeper.service.uploads import is_multipart, parse_multipart, read_body
from lightkeeper.signals import registry
from lightkeeper.signals.regions import RegionCode

# ----------------------------------------------------------------------------- responses


class HmaJSON(JSONResponse):
    """Compact JSON with sorted keys, byte for byte as HMA's Flask app writes its answers."""

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
        ).encode("utf-8")


class HmaRoute(APIRoute):
    """A route whose request validation errors take HMA's shape: a bare list of pydantic
    errors, located without FastAPI's "query"/"body" prefix, with the documentation URL."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return JSONResponse(_hma_errors(request, exc.errors()), status_code=422)

        return run


_PYDANTIC = ".".join(pydantic.VERSION.split(".")[:2])
_LOCATIONS = ("query", "path", "body", "header", "cookie")


def _hma_errors(request: Request, errors: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for error in errors:
        loc = list(error.get("loc", ()))
        where = loc[0] if loc and loc[0] in _LOCATIONS else None
        kind = str(error.get("type", "value_error"))
        value = error.get("input")
        if kind == "missing" and where == "query":
            value = dict(request.query_params)  # HMA validates the query as one model
        out.append(
            {
                "type": kind,
                "loc": _json_safe(loc[1:] if where else loc),
                "msg": str(error.get("msg", "")),
                "input": _json_safe(value),
                "url": f"https://errors.pydantic.dev/{_PYDANTIC}/v/{kind}",
            }
        )
    return out


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return str(value)


def _ok(body: Any, status: int = 200) -> Response:
    return HmaJSON(body, status_code=status)


def _example(example: Any, description: str = "Successful Response") -> dict[int | str, Any]:
    return {
        200: {"description": description, "content": {"application/json": {"example": example}}}
    }


router = APIRouter(tags=["hma"], route_class=HmaRoute, default_response_class=HmaJSON)

URL_DISABLED = (
    "URL fetching is disabled: Lightkeeper never fetches media from the internet; "
    "upload the file as multipart/form-data instead"
)
MISSING_UPLOAD = "Missing multipart/form-data file upload"
NAME_RULE = "Bank names must be UPPER_WITH_UNDERSCORE"
#: Longest note kept on an entry (as ``/v1``).
MAX_NOTE = 10_000

# -------------------------------------------------------------------------- signal types

#: HMA's names for Lightkeeper signal types where they differ: HMA's video_md5 is the MD5 of
#: a file's bytes, which is what Lightkeeper's md5 is.
_TO_HMA = {"md5": "video_md5"}
_FROM_HMA = {hma: ours for ours, hma in _TO_HMA.items()}
#: Always listed, as HMA's default configuration lists them.
_ALWAYS_LISTED = ("pdq", "video_md5")
#: HMA's content types (the multipart field of an upload) and the signal types of each.
CONTENT_TYPES: dict[str, tuple[str, ...]] = {"photo": ("pdq",), "video": ("video_md5",)}


def hma_signal_type(signal_type: str) -> str:
    """HMA's name of a Lightkeeper signal type."""
    return _TO_HMA.get(signal_type, signal_type)


def lightkeeper_signal_type(name: str) -> str | None:
    """The Lightkeeper signal type an HMA signal type name means; None for no such type."""
    if name in _TO_HMA:  # Lightkeeper's own name of a type HMA calls otherwise
        return None
    ours = _FROM_HMA.get(name, name)
    return ours if ours in registry.all_signal_types() else None


def _signal_type(name: str) -> str:
    ours = lightkeeper_signal_type(name)
    if ours is None:
        raise ServiceError(f"No such SignalType '{name}'")
    return ours


def _normalized(name: str, ours: str, value: object) -> str:
    """`value` in canonical form; `InvalidSignal` carrying HMA's wording where it has one."""
    if not isinstance(value, str):
        raise InvalidSignal(f"a {name} signal is a string, not {type(value).__name__}")
    try:
        return registry.get(ours).normalize(value)
    except InvalidSignal as exc:
        if name == "pdq":
            raise InvalidSignal("invalid PDQ hash") from None
        if name == "video_md5":
            raise InvalidSignal(f"{value!r} is not a valid MD5 hash") from None
        raise InvalidSignal(exc.message) from None


def _listed_signal_types(sizes: Mapping[str, int]) -> list[str]:
    names = list(_ALWAYS_LISTED)
    names += sorted({hma_signal_type(s) for s, n in sizes.items() if n} - set(names))
    return names


def _only(signal_type: str | None, names: list[str]) -> list[str]:
    """`names`, or just `signal_type` when one is asked for (HMA's ``signal_type=``)."""
    if signal_type is None:
        return names
    if lightkeeper_signal_type(signal_type) is None:
        raise ServiceError(f"No such signal type '{signal_type}'")
    return [signal_type]


# --------------------------------------------------------------------------------- banks

#: What HMA lets a bank be created as.
HMA_BANK_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
#: What an HMA name of an existing bank can be: Lightkeeper's may start with a digit.
_REACHABLE_NAME = re.compile(r"[A-Z0-9_]{1,64}")


def hma_bank_name(name: str) -> str:
    """HMA's name of a Lightkeeper bank: upper-cased, '-' made '_'."""
    return name.upper().replace("-", "_")


def lightkeeper_bank_name(hma_name: str) -> str:
    """The Lightkeeper name of a bank created through HMA: lower-cased."""
    return hma_name.lower()


def _visible(banks: Iterable[Bank]) -> dict[str, Bank]:
    """The bank each HMA name means: the lower-cased name itself, else the first by name."""
    seen: dict[str, Bank] = {}
    for bank in sorted(banks, key=lambda b: b.name):
        hma = hma_bank_name(bank.name)
        if hma not in seen or bank.name == lightkeeper_bank_name(hma):
            seen[hma] = bank
    return seen


def find_bank(store: BankStore, hma_name: str) -> Bank | None:
    """The bank HMA calls `hma_name` (see the module docstring), or None."""
    if not _REACHABLE_NAME.fullmatch(hma_name):
        return None
    try:
        return store.get_bank(lightkeeper_bank_name(hma_name))
    except NotFound:
        return _visible(store.list_banks()).get(hma_name)


def _bank_or_404(store: BankStore, hma_name: str) -> Bank:
    bank = find_bank(store, hma_name)
    if bank is None:
        raise NotFound(f"bank '{hma_name}' not found")
    return bank


def _bank_json(bank: Bank, ratio: float | None = None) -> dict[str, Any]:
    enabled = 1.0 if bank.enabled else 0.0
    return {
        "matching_enabled_ratio": enabled if ratio is None else ratio,
        "name": hma_bank_name(bank.name),
    }


def _enabled_from_ratio(ratio: float) -> bool:
    if ratio not in (0.0, 1.0):
        raise ServiceError(
            "enabled_ratio must be 0.0 or 1.0: a Lightkeeper bank is enabled or disabled"
        )
    return ratio == 1.0


# ------------------------------------------------------------------------------- content


def _epoch(moment: datetime) -> int:
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def _disable_until_ts(entry: Entry) -> int:
    if not entry.enabled:
        return 0
    if entry.disabled_until is None:
        return 1
    return max(2, _epoch(entry.disabled_until))  # 0 and 1 mean disabled and enabled


def _content_json(entry: Entry, bank: Bank, include_signals: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "bank": _bank_json(bank),
        "disable_until_ts": _disable_until_ts(entry),
        "id": entry.id,
        "original_media_uri": None,
    }
    if entry.external_id is not None:
        out["metadata"] = {"collab": None, "content_id": entry.external_id}
    if entry.note is not None:
        out["note"] = entry.note
    if include_signals:
        out["signals"] = {hma_signal_type(entry.signal_type): entry.value}
    return out


def _entry_in(store: BankStore, bank: Bank, content_id: int) -> Entry | None:
    try:
        entry = store.get_entry(content_id)
    except NotFound:
        return None
    return entry if entry.bank_id == bank.id else None


_METADATA_KEYS = {"content_id", "content_uri", "json", "collab"}


def _text(what: str, value: object, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ServiceError(f"{what} must be a string")
    if len(value) > limit or "\x00" in value:
        raise ServiceError(f"{what} must be at most {limit} characters, without NUL")
    return value


def _external_id(metadata: object) -> str | None:
    """The content_id of HMA's content metadata (the one field the store keeps)."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise ServiceError("metadata should be a json object")
    unexpected = sorted(set(metadata) - _METADATA_KEYS)
    if unexpected:
        raise ServiceError(f"Invalid metadata: unexpected keys {', '.join(unexpected)}")
    return _text("metadata.content_id", metadata.get("content_id"), 200)


def _add(
    request: Request,
    bank: Bank,
    signals: dict[str, str],
    external_id: str | None,
    note: str | None,
    regions: list[EntryRegion] | None = None,
) -> dict[str, Any]:
    """Bank one content of one signal (with the region codes of its image, for a bank with
    regions on); answers HMA's ``{"id", "signals"}``."""
    if not signals:
        raise ServiceError("No signals given")
    if len(signals) > 1:
        raise ServiceError(
            "Lightkeeper keeps one signal per content: add one signal type per request"
        )
    [(name, value)] = signals.items()
    ours = lightkeeper_signal_type(name)
    if ours is None:
        raise ServiceError(f"No such signal type {name}")
    try:
        canonical = _normalized(name, ours, value)
    except InvalidSignal as exc:
        raise ServiceError(f"Invalid {name} signal: {exc}") from None
    with acting_as(calling_key(request).actor):
        entry, _ = _store(request).add_entry(
            bank.name, ours, canonical, external_id=external_id, note=note, regions=regions
        )
    return {"id": entry.id, "signals": {name: canonical}}


# ------------------------------------------------------------------------------ uploads


def _multipart(description: str, *fields: str) -> dict[str, Any]:
    """OpenAPI of a multipart body: a file in a field naming its content type, and `fields`."""
    properties: dict[str, Any] = {
        name: {"type": "string", "format": "binary"} for name in CONTENT_TYPES
    }
    properties |= {name: {"type": "string"} for name in fields}
    schema = {"type": "object", "properties": properties}
    content = {"multipart/form-data": {"schema": schema}}
    return {"requestBody": {"required": True, "description": description, "content": content}}


UPLOAD = _multipart("One file, in the field naming its content type: photo or video")
CONTENT_UPLOAD = _multipart(
    "One file (photo or video), and optionally metadata (a JSON object: content_id, "
    "content_uri, json) and a note",
    "metadata",
    "note",
)


async def _upload(request: Request, missing: str) -> tuple[str, bytes, dict[str, str]]:
    """The one uploaded file: its content type (the field name), its bytes, and the form's
    other fields."""
    body = await read_body(request, _runtime(request).settings.max_upload_bytes)
    parts = parse_multipart(request.headers["content-type"], body) if is_multipart(request) else []
    files = [part for part in parts if part.filename is not None]
    if not files:
        raise BadUpload(missing)
    if len(files) > 1:
        raise BadUpload("Only one file allowed per request")
    if files[0].name not in CONTENT_TYPES:
        raise BadUpload(f"no such content_type: '{files[0].name}'")
    fields = {p.name: bytes(p.data).decode("utf-8", "replace") for p in parts if p.filename is None}
    return files[0].name, bytes(files[0].data), fields


def _selected(content_type: str, types: str | None) -> tuple[str, ...]:
    """The HMA signal types to compute for `content_type` (HMA's ``types=`` choice)."""
    available = CONTENT_TYPES[content_type]
    if types is None:
        return available
    chosen: list[str] = []
    for name in (n.strip() for n in types.split(",")):
        if not name:
            continue
        if name not in available:
            raise ServiceError(f"signal type '{name}' doesn't exist or is disabled")
        chosen.append(name)
    if not chosen:
        raise ServiceError("empty signal type selection")
    return tuple(dict.fromkeys(chosen))


def _signals_of(
    content_type: str, data: bytes, limits: MediaLimits, dihedral: bool = False
) -> dict[str, object]:
    """Lightkeeper's signals of an upload, as `lightkeeper.hashing.hash_bytes` names them."""
    if content_type == "photo":
        return hash_bytes(data, dihedral=dihedral, limits=limits)
    return dict(bytes_signals(data))


def _upload_codes(
    content_type: str, data: bytes, limits: MediaLimits, dihedral: bool
) -> tuple[dict[str, object], list[RegionCode]]:
    """`_signals_of`, with a photo's region codes (for banks with regions on)."""
    if content_type == "photo":
        return upload_codes(data, dihedral=dihedral, limits=limits)
    return _signals_of(content_type, data, limits, dihedral), []


def _banked_image(
    content_type: str, data: bytes, limits: MediaLimits, bank: Bank
) -> tuple[dict[str, object], list[EntryRegion] | None]:
    """`_signals_of` for a content to bank, with the region codes of a photo when the bank
    keeps them (None otherwise: nothing to replace)."""
    if content_type == "photo" and bank.regions:
        return banked_image(data, quality_floor=bank.pdq_quality_floor, limits=limits)
    return _signals_of(content_type, data, limits), None


def _runtime(request: Request) -> Any:
    return request.app.state.runtime


def _store(request: Request) -> BankStore:
    store: BankStore = _runtime(request).store
    return store


def _matcher(request: Request) -> Matcher:
    matcher: Matcher = _runtime(request).matcher
    return matcher


# -------------------------------------------------------------------------------- /h/hash


@router.get(
    "/h/hash",
    openapi_extra=needs("hash"),
    summary="HMA: hash the media at a URL (disabled: Lightkeeper never fetches media)",
    responses={400: {"description": "Always: URL fetching is disabled"}},
)
def hma_hash_url(
    url: str | None = Query(None, description="Refused: no URL is fetched"),
) -> Response:
    raise ServiceError("url is required" if url is None else URL_DISABLED)


@router.post(
    "/h/hash",
    openapi_extra=needs("hash") | UPLOAD,
    summary="HMA: hash an uploaded photo or video",
    responses=_example({"pdq": "15c72a31bdc65b1944e6d1f04a49bdc60a0905e6153a5a3d7434bfe1fdda84be"}),
)
async def hma_hash(
    request: Request,
    types: str | None = Query(None, description="Comma-separated signal types to compute"),
) -> Response:
    content_type, data, _ = await _upload(request, MISSING_UPLOAD)
    selected = _selected(content_type, types)
    limits = _runtime(request).settings.media_limits
    signals = await run_in_threadpool(_signals_of, content_type, data, limits)
    return _ok({name: signals[_FROM_HMA.get(name, name)] for name in selected})


# ------------------------------------------------------------------------------- matching


def _distance(match: Match) -> dict[str, Any]:
    return {"bank_content_id": match.entry_id, "distance": str(match.distance)}


def _banks(banks: str | None) -> set[str] | None:
    return set(banks.split(",")) if banks else None


def _by_bank(matches: Iterable[Match], banks: set[str] | None) -> dict[str, list[dict[str, Any]]]:
    """Matches reported to the client, by HMA bank name (and counted in the metrics)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for match in matches:
        name = hma_bank_name(match.bank)
        if banks is None or name in banks:
            out.setdefault(name, []).append(_distance(match))
            MATCHES.labels(match.bank, match.signal_type).inc()
    return out


def hma_signal(signal_type: str, signal: str) -> tuple[str, str]:
    """Lightkeeper's signal type and the canonical value of an HMA ``signal_type`` and
    ``signal``; `ServiceError` (400, HMA's wording) for an unknown type or a bad value."""
    ours = _signal_type(signal_type)
    try:
        return ours, _normalized(signal_type, ours, signal)
    except InvalidSignal as exc:
        raise ServiceError(f"invalid signal: {exc}") from None


def _match_one(request: Request, signal_type: str, signal: str) -> MatchResult:
    ours, canonical = hma_signal(signal_type, signal)
    return _matcher(request).match_hashes({ours: canonical})


def raw_lookup_response(
    matcher: Matcher, signal: tuple[str, str], include_distance: bool, banks: str | None
) -> Response:
    """The answer to ``GET /m/raw_lookup`` for a `signal` from `hma_signal` (here and on
    the hot path, `lightkeeper.service.hotpath`)."""
    ours, canonical = signal
    result = matcher.match_hashes({ours: canonical})
    wanted = _banks(banks)
    found: dict[int, Match] = {}
    for match in [*result.matches, *(s.match for s in result.suppressed), *result.allowed]:
        if wanted is None or hma_bank_name(match.bank) in wanted:
            found.setdefault(match.entry_id, match)
    ordered = sorted(found.values(), key=lambda m: (m.distance, m.entry_id))
    if include_distance:
        return _ok({"matches": [_distance(m) for m in ordered]})
    return _ok({"matches": [m.entry_id for m in ordered]})


BanksParam = Query(None, description="Comma-separated bank names: report only these")
CompareBody = Body(
    description='Signal type to a pair of hashes: {"pdq": ["<hash>", "<hash>"]}',
    examples=[{"pdq": ["15c7" + "0" * 60, "c3bc" + "0" * 60]}],
)
SignalBody = Body(
    description='One signal type and its hash, and an optional note: {"pdq": "<hash>"}',
    examples=[{"pdq": "15c72a31" + "0" * 56, "note": "from case 42"}],
)
SeedParam = Query(None, description="Accepted for HMA clients; no effect (no partial ratios)")
BypassParam = Query(False, description="Accepted for HMA clients; no effect")


@router.get(
    "/m/raw_lookup",
    openapi_extra=needs("lookup"),
    summary="HMA: the entries a hash matches, by id (enabled banks and entries only)",
    responses=_example({"matches": [{"bank_content_id": 2, "distance": "0"}]}),
)
async def hma_raw_lookup(
    request: Request,
    signal_type: str = Query(description="pdq, video_md5, sha1, sha256 or url"),
    signal: str = Query(description="The hash"),
    include_distance: bool = Query(False, description="Give each id with its distance"),
    banks: str | None = BanksParam,
) -> Response:
    return raw_lookup_response(
        _matcher(request), hma_signal(signal_type, signal), include_distance, banks
    )


@router.get(
    "/m/lookup",
    openapi_extra=needs("lookup"),
    summary="HMA: the banks a hash matches, with each entry's id and distance",
    responses=_example({"TEST_BANK": [{"bank_content_id": 2, "distance": "0"}]}),
)
async def hma_lookup(
    request: Request,
    signal_type: str | None = Query(None, description="pdq, video_md5, sha1, sha256 or url"),
    signal: str | None = Query(None, description="The hash"),
    url: str | None = Query(None, description="Refused: no URL is fetched"),
    content_type: str | None = Query(None, description="With url only"),
    types: str | None = Query(None, description="With url only"),
    banks: str | None = BanksParam,
    seed: str | None = SeedParam,
    bypass_coinflip: bool = BypassParam,
) -> Response:
    if url:
        raise ServiceError(URL_DISABLED)
    if not signal or not signal_type:
        raise ServiceError("Either url or both signal and signal_type are required")
    result = _match_one(request, signal_type, signal)
    return _ok(_by_bank(result.matches, _banks(banks)))


@router.post(
    "/m/lookup",
    openapi_extra=needs("match") | UPLOAD,
    summary="HMA: hash an uploaded photo or video and look it up",
    responses=_example({"pdq": {"TEST_BANK": [{"bank_content_id": 2, "distance": "0"}]}}),
)
async def hma_lookup_upload(
    request: Request,
    types: str | None = Query(None, description="Comma-separated signal types to use"),
    banks: str | None = BanksParam,
    seed: str | None = SeedParam,
    bypass_coinflip: bool = BypassParam,
) -> Response:
    content_type, data, _ = await _upload(request, MISSING_UPLOAD)
    selected = _selected(content_type, types)
    matcher = _matcher(request)
    dihedral = any(b.enabled and b.match_dihedral for b in matcher.follower.banks.values())
    limits = _runtime(request).settings.media_limits
    used = {_FROM_HMA.get(name, name) for name in selected}
    regions: list[RegionCode] = []
    if matcher.uses_regions and "pdq" in used:  # and crops and screenshots of listed photos
        signals, regions = await run_in_threadpool(
            _upload_codes, content_type, data, limits, dihedral
        )
    else:
        signals = await run_in_threadpool(_signals_of, content_type, data, limits, dihedral)
    if types is None:  # the exact file hashes too: a listed file is found whatever its type
        used |= {st.name for st in registry.bytes_signal_types()}
    query = {key: value for key, value in signals.items() if _belongs(key, used)}
    result = await run_in_threadpool(matcher.match_hashes, query, regions=regions)
    out: dict[str, Any] = {name: {} for name in selected}
    for name, found in _by_signal_type(result.matches, _banks(banks)).items():
        out[name] = found
    return _ok(out)


def _belongs(key: str, signal_types: set[str]) -> bool:
    """Whether a key of `hash_bytes`'s output is one of these signal types or goes with one
    (``pdq_quality``, ``pdq_as_stored``, ``pdq_dihedral``)."""
    return key in signal_types or any(key.startswith(f"{name}_") for name in signal_types)


def _by_signal_type(
    matches: Iterable[Match], banks: set[str] | None
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    grouped: dict[str, list[Match]] = {}
    for match in matches:
        grouped.setdefault(hma_signal_type(match.signal_type), []).append(match)
    return {name: found for name, group in grouped.items() if (found := _by_bank(group, banks))}


@router.post(
    "/m/compare",
    openapi_extra=needs("lookup"),
    summary="HMA: compare pairs of hashes: whether they match, and their distance",
    responses=_example({"pdq": [False, {"distance": 124}]}),
)
async def hma_compare(body: Any = CompareBody) -> Response:
    if not isinstance(body, dict):
        raise ServiceError("Request input was not a dict")
    out: dict[str, Any] = {}
    for name, pair in body.items():
        if not isinstance(pair, list):
            raise ServiceError(f"Comparison hashes for {name} was not a list")
        if len(pair) != 2:
            raise ServiceError("Comparison hash list length must be exactly 2")
        ours = _signal_type(name)
        try:
            left, right = (_normalized(name, ours, value) for value in pair)
        except InvalidSignal as exc:
            raise ServiceError(f"Invalid {name} hash: {exc}") from None
        st = registry.get(ours)
        if st.comparison == "exact":
            out[name] = [left == right, {}]
        else:
            distance = st.distance(left, right)
            out[name] = [distance <= st.default_threshold, {"distance": distance}]
    return _ok(out)


def _applied_at(store: BankStore, seq: int) -> int:
    """Unix time of change `seq` (-1 when there is none)."""
    if seq <= 0:
        return -1
    page = store.changes_since(seq - 1, limit=1)
    return _epoch(page[0].changed_at) if page and page[0].seq == seq else -1


@router.get(
    "/m/index/status",
    openapi_extra=needs("lookup"),
    summary="HMA: the index of each signal type: present, built to when, size",
    responses=_example({"pdq": {"built_to": 1795343732, "present": True, "size": 2}}),
)
def hma_index_status(
    request: Request, signal_type: str | None = Query(None, description="Only this one")
) -> Response:
    status = _matcher(request).follower.status()
    built = _applied_at(_store(request), status.last_seq)
    out = {}
    for name in _only(signal_type, _listed_signal_types(status.sizes)):
        size = status.sizes.get(_FROM_HMA.get(name, name), 0)
        out[name] = {"built_to": built if size else -1, "present": status.loaded, "size": size}
    return _ok(out)


# ------------------------------------------------------------------------------ curation


class HmaBankIn(BaseModel):
    """HMA's bank creation: a name, and enabled or enabled_ratio (1.0 or 0.0 here)."""

    name: str
    enabled: bool | None = None
    enabled_ratio: float | None = None


class HmaBankPatch(BaseModel):
    """HMA's bank change: a new name, enabled or enabled_ratio; what is left out stays."""

    name: str | None = None
    enabled: bool | None = None
    enabled_ratio: float | None = None


BankName = Path(description="The bank's HMA name (UPPER_WITH_UNDERSCORE)")
ContentId = Path(ge=1, le=2**63 - 1, description="The content's id (Lightkeeper's entry id)")
BANK_EXAMPLE = {"matching_enabled_ratio": 1.0, "name": "TEST_BANK"}


@router.get(
    "/c/banks",
    openapi_extra=needs("bank:read"),
    summary="HMA: list banks",
    responses=_example([BANK_EXAMPLE]),
)
def hma_banks(request: Request) -> Response:
    banks = _visible(_store(request).list_banks())
    return _ok([_bank_json(banks[name]) for name in sorted(banks)])


@router.post(
    "/c/banks",
    status_code=201,
    openapi_extra=needs("bank:write"),
    summary="HMA: create a bank",
    responses={201: {"content": {"application/json": {"example": BANK_EXAMPLE}}}},
)
def hma_create_bank(request: Request, body: HmaBankIn) -> Response:
    if not HMA_BANK_NAME.fullmatch(body.name):
        raise ServiceError(NAME_RULE)
    enabled = True
    if body.enabled_ratio is not None:
        enabled = _enabled_from_ratio(body.enabled_ratio)
    elif body.enabled is not None:
        enabled = body.enabled
    store = _store(request)
    if find_bank(store, body.name) is not None:
        return _ok({"message": "Bank already exists"}, 403)
    try:
        with acting_as(calling_key(request).actor):
            bank = store.create_bank(lightkeeper_bank_name(body.name), enabled=enabled)
    except InvalidRequest as exc:
        raise ServiceError(f"Bank name {body.name!r} cannot be used: {exc}") from None
    except Conflict:  # a concurrent creator won the race
        return _ok({"message": "Bank already exists"}, 403)
    return _ok(_bank_json(bank), 201)


@router.get(
    "/c/bank/{bank_name}",
    openapi_extra=needs("bank:read"),
    summary="HMA: show a bank",
    responses=_example(BANK_EXAMPLE),
)
def hma_bank(request: Request, bank_name: str = BankName) -> Response:
    return _ok(_bank_json(_bank_or_404(_store(request), bank_name)))


@router.put(
    "/c/bank/{bank_name}",
    openapi_extra=needs("bank:write"),
    summary="HMA: rename, enable or disable a bank",
    responses=_example({"matching_enabled_ratio": 0, "name": "TEST_BANK"}),
)
def hma_update_bank(request: Request, body: HmaBankPatch, bank_name: str = BankName) -> Response:
    store = _store(request)
    bank = find_bank(store, bank_name)
    if bank is None:
        raise NotFound("Bank not found")
    enabled: bool | None = None
    ratio: float | None = None
    if body.enabled is not None:
        enabled, ratio = body.enabled, 1 if body.enabled else 0  # HMA answers an int here
    if body.enabled_ratio is not None:
        enabled, ratio = _enabled_from_ratio(body.enabled_ratio), body.enabled_ratio
    rename: str | None = None
    if body.name is not None and body.name != hma_bank_name(bank.name):
        if not HMA_BANK_NAME.fullmatch(body.name):
            raise ServiceError(NAME_RULE)
        if find_bank(store, body.name) is not None:
            return _ok({"message": "Bank name already exists"}, 403)
        rename = lightkeeper_bank_name(body.name)
    try:
        with acting_as(calling_key(request).actor):
            bank = store.update_bank(bank.name, rename=rename, enabled=enabled)
    except InvalidRequest as exc:
        raise ServiceError(f"Bank name {body.name!r} cannot be used: {exc}") from None
    return _ok(_bank_json(bank, ratio))


@router.delete(
    "/c/bank/{bank_name}",
    openapi_extra=needs("bank:write"),
    summary="HMA: delete a bank and its content (a missing bank is no error)",
    responses=_example({"message": "Done"}),
)
def hma_delete_bank(request: Request, bank_name: str = BankName) -> Response:
    store = _store(request)
    bank = find_bank(store, bank_name)
    if bank is not None:
        with acting_as(calling_key(request).actor), suppress(NotFound):  # deleted meanwhile
            store.delete_bank(bank.name)
    return _ok({"message": "Done"})


@router.post(
    "/c/bank/{bank_name}/content",
    openapi_extra=needs("bank:write") | CONTENT_UPLOAD,
    summary="HMA: add an uploaded photo or video to a bank (hashed here)",
    responses=_example({"id": 3, "signals": {"pdq": "c3bc3647" + "0" * 56}}),
)
async def hma_add_content(
    request: Request,
    bank_name: str = BankName,
    url: str | None = Query(None, description="Refused: no URL is fetched"),
) -> Response:
    store = _store(request)
    bank = await run_in_threadpool(_bank_or_404, store, bank_name)
    if url:
        raise ServiceError(URL_DISABLED)
    content_type, data, fields = await _upload(
        request, "Neither `url` nor multipart file upload was received"
    )
    metadata: object = None
    if "metadata" in fields:
        try:
            metadata = json.loads(fields["metadata"])
        except ValueError:
            raise ServiceError("metadata should be a json object") from None
    external_id = _external_id(metadata)
    note = _text("note", fields.get("note"), MAX_NOTE)
    limits = _runtime(request).settings.media_limits
    signals, regions = await run_in_threadpool(_banked_image, content_type, data, limits, bank)
    name = CONTENT_TYPES[content_type][0]
    value = str(signals[_FROM_HMA.get(name, name)])
    added = await run_in_threadpool(_add, request, bank, {name: value}, external_id, note, regions)
    return _ok(added)


@router.post(
    "/c/bank/{bank_name}/signal",
    openapi_extra=needs("bank:write"),
    summary="HMA: add a hash to a bank",
    responses=_example({"id": 2, "signals": {"pdq": "15c72a31" + "0" * 56}}),
)
def hma_add_signal(
    request: Request,
    bank_name: str = BankName,
    body: Any = SignalBody,
) -> Response:
    bank = _bank_or_404(_store(request), bank_name)
    if not isinstance(body, dict):
        raise ServiceError("Request input was not a dict")
    signals = {k: v for k, v in body.items() if k not in ("note", "metadata")}
    note = _text("note", body.get("note"), MAX_NOTE)
    return _ok(_add(request, bank, signals, _external_id(body.get("metadata")), note))


@router.get(
    "/c/bank/{bank_name}/content/{content_id}",
    openapi_extra=needs("bank:read"),
    summary="HMA: show a content of a bank (with its hash on include_signals=true)",
    responses=_example(
        {
            "bank": BANK_EXAMPLE,
            "disable_until_ts": 1,
            "id": 2,
            "original_media_uri": None,
            "signals": {"pdq": "15c72a31" + "0" * 56},
        }
    ),
)
def hma_content(
    request: Request,
    bank_name: str = BankName,
    content_id: int = ContentId,
    include_signals: str = Query("false", description="'true' to include the hash"),
) -> Response:
    store = _store(request)
    bank = _bank_or_404(store, bank_name)
    entry = _entry_in(store, bank, content_id)
    if entry is None:
        raise NotFound(f"content '{content_id}' not found")
    return _ok(_content_json(entry, bank, include_signals.lower() == "true"))


class HmaContentPatch(BaseModel):
    """HMA's content change: 0 disables, 1 enables, a Unix time disables until then."""

    disable_until_ts: int | None = None


@router.put(
    "/c/bank/{bank_name}/content/{content_id}",
    openapi_extra=needs("bank:write"),
    summary="HMA: enable (1), disable (0) or disable until a Unix time a content",
)
def hma_update_content(
    request: Request,
    body: HmaContentPatch,
    bank_name: str = BankName,
    content_id: int = ContentId,
) -> Response:
    store = _store(request)
    bank = _bank_or_404(store, bank_name)
    entry = _entry_in(store, bank, content_id)
    if entry is None:
        raise NotFound(f"content '{content_id}' not found")
    ts = body.disable_until_ts
    if ts is not None:
        if ts < 0:
            raise ServiceError("disable_until_ts must be a non-negative integer")
        if ts > _epoch(datetime.now(UTC) + timedelta(days=365 * 5)):
            raise ServiceError("disable_until_ts must be less than 5 years in the future")
        with acting_as(calling_key(request).actor):
            if ts == 0:
                entry = store.disable_entry(entry.id)
            elif ts == 1:
                entry = store.enable_entry(entry.id)
            else:
                entry = store.disable_entry(entry.id, until=datetime.fromtimestamp(ts, UTC))
    user = None if entry.external_id is None else {"content_id": entry.external_id}
    return _ok(
        {
            "bank": _bank_json(bank),
            "collab_metadata": {},
            "disable_until_ts": _disable_until_ts(entry),
            "id": entry.id,
            "note": entry.note,
            "original_media_uri": None,
            "user_metadata": user,
        }
    )


@router.delete(
    "/c/bank/{bank_name}/content/{content_id}",
    openapi_extra=needs("bank:write"),
    summary="HMA: remove a content from a bank",
    responses=_example({"deleted": 1}),
)
def hma_delete_content(
    request: Request, bank_name: str = BankName, content_id: int = ContentId
) -> Response:
    store = _store(request)
    bank = _bank_or_404(store, bank_name)
    deleted = 0
    if _entry_in(store, bank, content_id) is not None:
        with acting_as(calling_key(request).actor):
            try:
                store.remove_entry(content_id)
                deleted = 1
            except NotFound:
                pass  # removed meanwhile
    return _ok({"deleted": deleted})


@router.get(
    "/c/signal_type",
    openapi_extra=needs("bank:read"),
    summary="HMA: the signal types in use",
    responses=_example([{"enabled_ratio": 1.0, "name": "pdq"}]),
)
def hma_signal_types(request: Request) -> Response:
    sizes = _matcher(request).follower.status().sizes
    return _ok([{"enabled_ratio": 1.0, "name": n} for n in _listed_signal_types(sizes)])


@router.get(
    "/c/content_type",
    openapi_extra=needs("bank:read"),
    summary="HMA: the content types uploads may name",
    responses=_example([{"enabled": True, "name": "photo"}]),
)
def hma_content_types() -> Response:
    return _ok([{"enabled": True, "name": name} for name in CONTENT_TYPES])


@router.get(
    "/c/signal_type/index",
    openapi_extra=needs("bank:read"),
    summary="HMA: entries in the store and in the index, per signal type",
)
def hma_signal_type_index(
    request: Request, signal_type: str | None = Query(None, description="Only this one")
) -> Response:
    store = _store(request)
    status = _matcher(request).follower.status()
    newest_seq = store.last_seq()
    built, newest = _applied_at(store, status.last_seq), _applied_at(store, newest_seq)
    out = {}
    for name in _only(signal_type, _listed_signal_types(status.sizes)):
        ours = _FROM_HMA.get(name, name)
        size, in_db = status.sizes.get(ours, 0), store.count_entries(signal_type=ours)
        out[name] = {
            "db_size": in_db,
            "index_built_to": built if size else -1,
            "index_out_of_date": newest_seq > status.last_seq,
            "index_size": size,
            "newest_db_item": newest if in_db else -1,
        }
    return _ok(out)


# -------------------------------------------------------------------------------- /status


@router.get(
    "/status",
    openapi_extra=needs(PUBLIC),
    response_class=HTMLResponse,
    summary="HMA: I-AM-ALIVE when the index is loaded and current, else 503",
    responses={503: {"description": "INDEX-NOT-LOADED or INDEX-STALE"}},
)
def hma_status(request: Request) -> Response:
    runtime = _runtime(request)
    if not runtime.matcher.follower.status().loaded:
        return HTMLResponse("INDEX-NOT-LOADED", status_code=503)
    if not runtime.index_current():
        return HTMLResponse("INDEX-STALE", status_code=503)
    return HTMLResponse("I-AM-ALIVE")


@router.get(
    "/status/live",
    openapi_extra=needs(PUBLIC),
    response_class=HTMLResponse,
    summary="HMA: I-AM-ALIVE while the process answers",
)
def hma_live() -> Response:
    return HTMLResponse("I-AM-ALIVE")
