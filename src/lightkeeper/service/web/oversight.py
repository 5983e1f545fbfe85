"""Appeals and the transparency figures, in the reviewer UI.

- ``GET /review/appeals`` (senior reviewers and admins): the open appeals, oldest first,
  each with its case and the user's statement; ``POST /review/appeals/{id}`` upholds or
  denies one with a reason (`lightkeeper.review.appeals.decide_appeal`: an upheld appeal
  reverses the case, reinstates the content through a webhook and records negative
  feedback);
- ``GET /review/transparency?from=YYYY-MM-DD&to=YYYY-MM-DD`` (anyone signed in): the
  figures of `lightkeeper.reporting.transparency` for those days (UTC, both included;
  default: the last 30 days), drawn by `lightkeeper.reporting.transparency.page`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response
from markupsafe import Markup

from lightkeeper.reporting.transparency import compute_figures
from lightkeeper.reporting.transparency.page import render_fragment
from lightkeeper.review.appeals import decide_appeal, list_appeals, own_decisions
from lightkeeper.service.access import REVIEW_PREFIX
from lightkeeper.service.web.auth import Senior, SignedIn, check_csrf
from lightkeeper.service.web.render import WebError, page, page_errors, redirect
from lightkeeper.service.web.state import store_of, web_state

__all__ = ["DEFAULT_PERIOD_DAYS", "period", "router"]

router = APIRouter()

#: The transparency page's period when none is asked for.
DEFAULT_PERIOD_DAYS = 30
#: Longest appeal reason kept.
_MAX_REASON = 2000


@router.get("/appeals")
def appeals_page(request: Request, signed: Senior) -> Response:
    store = store_of(request)
    with page_errors():
        found = list_appeals(store, status="open")
        own = own_decisions(store, signed.reviewer, (appeal.case_id for appeal in found))
    found.sort(key=lambda appeal: appeal.received_at)
    decided = request.query_params.get("done")
    notice = {"upheld": "Appeal upheld.", "denied": "Appeal denied."}.get(decided or "")
    return page(request, "appeals.html", {"appeals": found, "own": own, "done": notice})


@router.post("/appeals/{appeal_id}")
def decide_appeal_form(
    request: Request,
    signed: Senior,
    appeal_id: int = Path(ge=1, le=2**63 - 1),
    csrf: str = Form(""),
    outcome: str = Form(""),
    reason: str = Form("", max_length=_MAX_REASON),
) -> Response:
    check_csrf(signed, csrf)
    back = f"{REVIEW_PREFIX}/appeals"
    if outcome not in ("uphold", "deny"):
        raise WebError(422, "Choose to uphold or to deny the appeal.", back=back)
    if not reason.strip():
        raise WebError(422, "Give the reason for the answer: the user is told it.", back=back)
    with page_errors(back=back):
        decide_appeal(
            store_of(request),
            appeal_id,
            signed.reviewer,
            uphold=outcome == "uphold",
            reason=reason.strip(),
            settings=web_state(request).review_settings(),
        )
    return redirect(request, f"{back}?done={'upheld' if outcome == 'uphold' else 'denied'}")


#: The days the page's form accepts: far enough either way, and no date arithmetic overflows.
_FIRST_DAY = date(1970, 1, 1)
_LAST_DAY = date(9998, 12, 31)


def period(
    start_text: str | None, end_text: str | None, now: datetime
) -> tuple[datetime, datetime]:
    """The period [start, end) that the ``from`` and ``to`` days (UTC, both included) name;
    without them, the `DEFAULT_PERIOD_DAYS` up to `now`. `WebError` for a bad date."""

    def day(text: str, name: str) -> date:
        try:
            found = date.fromisoformat(text.strip())
        except ValueError:
            raise WebError(422, f"{name} must be a date (YYYY-MM-DD), not {text!r}.") from None
        if not _FIRST_DAY <= found <= _LAST_DAY:
            raise WebError(422, f"{name} must be a day from {_FIRST_DAY} to {_LAST_DAY}.")
        return found

    end = now
    if end_text:
        end = datetime.combine(day(end_text, "to") + timedelta(days=1), time(), tzinfo=UTC)
    if start_text:
        start = datetime.combine(day(start_text, "from"), time(), tzinfo=UTC)
    else:
        start = end - timedelta(days=DEFAULT_PERIOD_DAYS)
    if start >= end:
        raise WebError(422, "The period must start before it ends.")
    return start, end


@router.get("/transparency")
def transparency_page(request: Request, signed: SignedIn) -> Response:
    params = request.query_params
    start, end = period(params.get("from"), params.get("to"), datetime.now(UTC))
    with page_errors():
        figures = compute_figures(store_of(request), start=start, end=end)
        # The fragment is the transparency page's own HTML, escaped where it renders data.
        fragment = Markup(render_fragment(figures))
    context = {
        "fragment": fragment,
        "start": start.date().isoformat(),
        "end": (end - timedelta(microseconds=1)).date().isoformat(),
    }
    return page(request, "transparency.html", context)
