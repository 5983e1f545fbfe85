"""The queue and the case page: evidence first, a blurred preview, reveals and decisions.

Routes (all under ``/review``, all for a signed-in person):

- ``GET /queue``: `lightkeeper.review.decisions.review_queue` for the person (most urgent,
  then oldest), with their exposure today (reveals / cap);
- ``GET /cases/{id}``: the case — evidence first (bank, entry, classification, signal type,
  distance and threshold, quality, list and version, variant, uploader reference, the other
  copies, actions taken, policy version), then each copy's media as a blurred greyscale
  preview, then the decision forms the person may use, the reports and the history;
- ``GET /cases/{id}/matches/{m}/preview.png``: the preview (`derivatives`), made per request;
- ``POST /cases/{id}/matches/{m}/reveal``: one explicit reveal (`exposure.reveal` audits it
  and enforces the daily cap); the answer is the case page with that copy's clear image,
  fetched once from ``GET /clear/{ticket}``, by whichever worker serves it (`tickets`);
- ``POST /cases/{id}/decide``: confirm (with A1/A2/B1/B2 and annotations), false positive,
  escalate, approve, disapprove (`decisions.decide`, which enforces who may do what);
- ``POST /cases/{id}/report`` and ``POST /reports/{id}/submit``: see `web.reporting`.

Who may see a case: anyone signed in, for a case sent to review (it has a review priority);
an escalated case only a senior reviewer or an admin. Evidence names the matched entries of
the case only, never their hash values nor anything else of a bank.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from io import BytesIO
from typing import Any, Literal, cast, get_args

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response
from PIL import Image

from lightkeeper.actions.cases import CaseDetail
from lightkeeper.media.decode import decode_image
from lightkeeper.review.decisions import (
    CaseReview,
    DecisionKind,
    decide,
    decisions_of,
    review_queue,
)
from lightkeeper.review.exposure import (
    claim_ticket,
    exposure_today,
    record_view,
    reveal,
    viewed_matches,
)
from lightkeeper.service.access import REVIEW_PREFIX
from lightkeeper.service.web.auth import Signed, SignedIn, check_csrf
from lightkeeper.service.web.derivatives import DERIVATIVE_MEDIA_TYPE, preview_of_object
from lightkeeper.service.web.render import WebError, page, page_errors, redirect
from lightkeeper.service.web.reporting import reports_view
from lightkeeper.service.web.state import store_of, vault_of, web_state
from lightkeeper.service.web.tickets import new_ticket
from lightkeeper.service.web.visibility import match_of, visible_case

__all__ = ["CLASSIFICATIONS", "SHORTCUTS", "case_context", "router"]

router = APIRouter()

CaseId = Path(ge=1, le=2**63 - 1)
MatchId = Path(ge=1, le=2**63 - 1)

Classification = Literal["A1", "A2", "B1", "B2"]
CLASSIFICATIONS: dict[str, str] = {
    "A1": "A1 — prepubescent minor, sex act",
    "A2": "A2 — prepubescent minor, lascivious exhibition",
    "B1": "B1 — pubescent minor, sex act",
    "B2": "B2 — pubescent minor, lascivious exhibition",
}
#: Keyboard shortcuts, as the case page documents them (``static/review.js`` binds them).
SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("r", "reveal the first copy's clear image"),
    ("1 – 4", "choose the classification A1, A2, B1, B2"),
    ("c", "confirm"),
    ("f", "false positive"),
    ("e", "escalate to a senior reviewer"),
    ("a", "approve (second reviewer)"),
    ("d", "disapprove (second reviewer)"),
    ("q", "back to the queue"),
)
#: Media types a browser shows as they are; other images are converted to PNG to be shown.
_SHOWN_AS_IS = ("image/jpeg", "image/png", "image/gif", "image/webp", "image/avif", "image/bmp")
_DONE = {
    "confirm": "Confirmed.",
    "awaiting_approval": "Confirmed; a second reviewer must now approve it.",
    "false_positive": "Marked as a false positive: its entries no longer match here.",
    "escalate": "Escalated to a senior reviewer.",
    "approve": "Approved: the case is confirmed and may be reported.",
    "disapprove": "Disapproved: the case goes to a senior reviewer.",
    "reported": "The report was submitted to NCMEC.",
    "report_failed": "The report could not be completed; see its error below.",
}


@dataclass(frozen=True, slots=True)
class _Forms:
    """Which decision forms the person may use now, and why not when none."""

    decide: bool
    approve: bool
    waiting_note: str | None


def _forms(signed: Signed, review: CaseReview | None) -> _Forms:
    me = signed.reviewer
    if review is None or (review.state == "escalated" and me.is_senior):
        return _Forms(True, False, None)
    if review.state == "awaiting_approval":
        if review.confirmed_by == me.username:
            return _Forms(
                False, False, "You confirmed this case: a second reviewer must approve it."
            )
        return _Forms(False, True, None)
    return _Forms(False, False, None)


def case_context(
    request: Request,
    signed: Signed,
    detail: CaseDetail,
    review: CaseReview | None,
    *,
    revealed: dict[int, str] | None = None,
) -> dict[str, Any]:
    """Everything the case page shows; `revealed`: copy id → ticket of its clear image."""
    store = store_of(request)
    settings = web_state(request).review_settings()
    with page_errors():
        viewed = viewed_matches(store, detail.case.id)
        history = decisions_of(store, detail.case.id)
        exposure = exposure_today(store, signed.reviewer, settings)
    return {
        "case": detail.case,
        "others": detail.matches[1:],
        "copies": detail.matches,
        "review": review,
        "viewed": viewed,
        "history": history,
        "exposure": exposure,
        "forms": _forms(signed, review),
        "classifications": CLASSIFICATIONS,
        "shortcuts": SHORTCUTS,
        "revealed": revealed or {},
        "vault_on": vault_of(request) is not None,
        "done": _DONE.get(request.query_params.get("done", "")),
        **reports_view(request, detail, review),
    }


# ---------------------------------------------------------------------- pages


@router.get("/queue")
def queue_page(request: Request, signed: SignedIn) -> Response:
    store = store_of(request)
    settings = web_state(request).review_settings()
    with page_errors():
        items = review_queue(store, signed.reviewer, limit=50)
        exposure = exposure_today(store, signed.reviewer, settings)
    notice = _DONE.get(request.query_params.get("done", ""))
    return page(request, "queue.html", {"items": items, "exposure": exposure, "done": notice})


@router.get("/cases/{case_id}")
def case_page(request: Request, signed: SignedIn, case_id: int = CaseId) -> Response:
    detail, review = visible_case(request, signed, case_id)
    return page(request, "case.html", case_context(request, signed, detail, review))


@router.get("/cases/{case_id}/matches/{match_id}/preview.png")
def preview(
    request: Request,
    signed: SignedIn,
    case_id: int = CaseId,
    match_id: int = MatchId,
) -> Response:
    detail, _ = visible_case(request, signed, case_id)
    copy = match_of(detail, match_id)
    vault = vault_of(request)
    if vault is None or copy.vault_object_id is None:
        raise WebError(404, "No media is held for this copy.")
    with page_errors(back=f"{REVIEW_PREFIX}/cases/{case_id}"):
        limits = web_state(request).runtime.settings.media_limits
        data = preview_of_object(vault, copy.vault_object_id, limits=limits)
    return Response(data, media_type=DERIVATIVE_MEDIA_TYPE)


@router.post("/cases/{case_id}/matches/{match_id}/reveal")
def reveal_copy(
    request: Request,
    signed: SignedIn,
    case_id: int = CaseId,
    match_id: int = MatchId,
    csrf: str = Form(""),
) -> Response:
    check_csrf(signed, csrf)
    detail, review = visible_case(request, signed, case_id)
    copy = match_of(detail, match_id)
    vault = vault_of(request)
    back = f"{REVIEW_PREFIX}/cases/{case_id}"
    if vault is None or copy.vault_object_id is None:
        raise WebError(404, "No media is held for this copy.", back=back)
    state = web_state(request)
    ticket = new_ticket()
    with page_errors(back=back):
        data, media_type = reveal(
            store_of(request),
            vault,
            signed.reviewer,
            copy.id,
            reason=f"review of case {case_id}",
            settings=state.review_settings(),
            ticket=ticket,
        )
    state.clear_images.put(ticket, signed.reviewer.id, data, media_type)
    context = case_context(request, signed, detail, review, revealed={copy.id: ticket})
    return page(request, "case.html", context)


@router.get("/clear/{ticket}")
def clear_image(
    request: Request,
    signed: SignedIn,
    ticket: str = Path(min_length=20, max_length=100, pattern=r"^[A-Za-z0-9_-]+$"),
) -> Response:
    kept_here = web_state(request).clear_images.take(ticket, signed.reviewer.id)
    with page_errors():
        claimed = claim_ticket(store_of(request), signed.reviewer, ticket)
    vault = vault_of(request)
    if claimed is None or (kept_here is None and vault is None):
        raise WebError(
            410, "This clear image was already shown or has expired: reveal it again to see it."
        )
    if kept_here is not None:
        data, media_type = kept_here
    else:  # the reveal was made in another worker process, whose memory holds the bytes
        assert vault is not None
        with page_errors():
            data = vault.read(
                claimed.vault_object_id,
                actor=signed.reviewer.actor,
                reason=f"reveal: {claimed.reason} (image fetched through another worker)",
            )
        media_type = claimed.media_type
    with page_errors():
        record_view(store_of(request), signed.reviewer, claimed)
    if media_type not in _SHOWN_AS_IS:
        data, media_type = _as_png(data), "image/png"
    return Response(data, media_type=media_type, headers={"Content-Disposition": "inline"})


def _as_png(data: bytes) -> bytes:
    """An image a browser cannot show (TIFF, HEIF …) as a PNG of what a user would see."""
    with page_errors():
        decoded = decode_image(data, reduce=False)
    assert decoded.rgb is not None
    out = BytesIO()
    Image.fromarray(decoded.rgb, "RGB").save(out, format="PNG")
    return out.getvalue()


def _annotations(text: str) -> tuple[str, ...]:
    """Annotation words from the form's field: separated by commas or spaces."""
    return tuple(part for part in re.split(r"[\s,]+", text) if part)


@router.post("/cases/{case_id}/decide")
def decide_case(
    request: Request,
    signed: SignedIn,
    case_id: int = CaseId,
    csrf: str = Form(""),
    kind: str = Form(""),
    classification: str = Form(""),
    annotations: str = Form(""),
    note: str = Form(""),
) -> Response:
    check_csrf(signed, csrf)
    back = f"{REVIEW_PREFIX}/cases/{case_id}"
    if kind not in get_args(DecisionKind):
        raise WebError(422, f"Unknown decision {kind!r}.", back=back)
    if classification and classification not in CLASSIFICATIONS:
        raise WebError(422, f"Unknown classification {classification!r}.", back=back)
    visible_case(request, signed, case_id)
    settings = web_state(request).review_settings()
    with page_errors(back=back):
        outcome = decide(
            store_of(request),
            case_id,
            signed.reviewer,
            cast(DecisionKind, kind),
            classification=cast(Classification, classification) if classification else None,
            annotations=_annotations(annotations),
            note=note.strip(),
            settings=settings,
        )
    done = outcome.state if kind == "confirm" and outcome.state == "awaiting_approval" else kind
    if outcome.state == "escalated" and not signed.reviewer.is_senior:
        return redirect(request, f"{REVIEW_PREFIX}/queue?done={done}")
    return redirect(request, f"{back}?done={done}")
