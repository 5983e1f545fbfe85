"""Who may see which case: the one rule every case route applies before anything else.

A signed-in person may see a case that was sent to review (it has a review priority; the
others were acted on by policy alone and never meant for a person's eyes), except that an
escalated case is for senior reviewers and admins only, and so is its confirmation's
approval once a senior has confirmed it (`CaseReview.senior_only`). Seeing a case is what
allows acting on it; `lightkeeper.review.decisions.decide` checks again who may take which decision.
"""

from __future__ import annotations

from fastapi import Request

from lightkeeper.actions.cases import CaseDetail, RecordedMatch, get_case
from lightkeeper.review.decisions import CaseReview, review_of
from lightkeeper.service.web.auth import Signed
from lightkeeper.service.web.render import WebError, page_errors
from lightkeeper.service.web.state import store_of

__all__ = ["match_of", "may_see", "visible_case"]


def may_see(signed: Signed, detail: CaseDetail, review: CaseReview | None) -> None:
    """Raise the error page unless this person may see (and so act on) this case."""
    if detail.case.priority is None:
        raise WebError(404, f"Case {detail.case.id} was not sent to review.")
    if review is not None and review.senior_only and not signed.reviewer.is_senior:
        raise WebError(
            403,
            f"Case {detail.case.id} was escalated: only senior reviewers and admins may "
            "see and decide it.",
        )


def visible_case(
    request: Request, signed: Signed, case_id: int
) -> tuple[CaseDetail, CaseReview | None]:
    store = store_of(request)
    with page_errors():
        detail = get_case(store, case_id)
        review = review_of(store, case_id)
    may_see(signed, detail, review)
    return detail, review


def match_of(detail: CaseDetail, match_id: int) -> RecordedMatch:
    for item in detail.matches:
        if item.id == match_id:
            return item
    raise WebError(404, f"Case {detail.case.id} has no copy {match_id}.")
