"""Reporting a confirmed case to NCMEC's CyberTipline from the case page.

- ``POST /review/cases/{id}/report``: `lightkeeper.reporting.reports.create_report` builds the
  report (``fileViewedByEsp`` per file from the audit trail's reveals; a case uploaded by
  several uploader references gets one report per uploader, the form names which — the
  copies with no uploader reference being one of them, `NO_UPLOADER`), then
  `submit_report` runs NCMEC's flow — submit, upload and fileinfo per file, finish — and the
  case page shows NCMEC's report id and the report's state;
- ``POST /review/reports/{id}/submit``: resumes a report whose submission stopped (NCMEC
  unreachable, a crash): the flow is idempotent and picks up where it stopped.

Only a confirmed case can be reported (the reports module refuses anything else). Reporting
is off until ``LIGHTKEEPER_NCMEC_URL`` names NCMEC's API and ``LIGHTKEEPER_REPORTER_PROFILE``
names who reports (`lightkeeper.reporting.settings`); the case page then says so instead of
showing the button.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response

from lightkeeper.actions.cases import CaseDetail
from lightkeeper.errors import Conflict, LightkeeperError, NcmecError, StoreError
from lightkeeper.reporting.ncmec_client import CyberTiplineClient
from lightkeeper.reporting.reports import (
    Report,
    create_report,
    get_report,
    reports_of_case,
    submit_report,
)
from lightkeeper.reporting.settings import REPORTER_PROFILE, ReporterProfile, ReportingSettings
from lightkeeper.review.decisions import CaseReview
from lightkeeper.service.access import REVIEW_PREFIX
from lightkeeper.service.web.auth import SignedIn, check_csrf
from lightkeeper.service.web.render import WebError, page_errors, redirect
from lightkeeper.service.web.state import store_of, vault_of, web_state
from lightkeeper.service.web.visibility import visible_case

__all__ = ["NO_UPLOADER", "Reporting", "report_choices", "reports_view", "router"]

router = APIRouter()

#: The form value choosing the copies uploaded with no uploader reference (no uploader
#: reference can be it: they start with a letter or a digit).
NO_UPLOADER = "~none"


@dataclass(frozen=True, slots=True)
class Reporting:
    """Whether this service reports, with what, or why not."""

    settings: ReportingSettings | None
    profile: ReporterProfile | None
    #: Why reporting is off, for the case page; None when it is on.
    problem: str | None

    @property
    def enabled(self) -> bool:
        return self.problem is None

    @classmethod
    def from_settings(cls, settings: ReportingSettings) -> Reporting:
        if not settings.enabled:
            return cls(
                settings,
                None,
                "Reporting is off on this service: set LIGHTKEEPER_NCMEC_URL (and NCMEC's "
                "credentials) to report confirmed cases to NCMEC's CyberTipline.",
            )
        if settings.profile_path is None:
            return cls(
                settings,
                None,
                f"Reporting is off: set {REPORTER_PROFILE.env} to the reporter profile "
                "(who reports) before reporting.",
            )
        try:
            profile = settings.profile()
        except LightkeeperError as exc:
            return cls(settings, None, f"Reporting is off: {exc.message}")
        return cls(settings, profile, None)

    @classmethod
    def from_env(cls) -> Reporting:
        try:
            settings = ReportingSettings.from_env()
        except LightkeeperError as exc:
            return cls(None, None, f"Reporting is off: {exc.message}")
        return cls.from_settings(settings)

    def client(self) -> CyberTiplineClient:
        assert self.settings is not None and self.enabled
        return CyberTiplineClient.from_settings(self.settings)


def report_choices(uploaders: set[str | None], reports: list[Report]) -> list[tuple[str, str]]:
    """The reported users a new report may name, as (form value, label): each uploader of
    the case (None: the copies with no uploader reference, `NO_UPLOADER`) without a live
    (not retracted) report."""
    live = {r.uploader for r in reports if r.state != "retracted"}
    open_ = [u for u in uploaders if u not in live]
    named = sorted(u for u in open_ if u is not None)
    choices = [(u, u) for u in named]
    if None in open_:
        choices.append((NO_UPLOADER, "(no uploader reference)"))
    return choices


def reports_view(request: Request, detail: CaseDetail, review: CaseReview | None) -> dict[str, Any]:
    """The case page's report section: the case's reports and whether it may be reported
    (confirmed, and an uploader of it — or its copies with no uploader reference — without
    a live report; a case with several gets one report each, the form names which)."""
    case_id = detail.case.id
    uploaders = {copy.uploader for copy in detail.matches}
    reporting = web_state(request).reporting()
    with page_errors():
        reports = reports_of_case(store_of(request), case_id)
    confirmed = review is not None and review.state == "confirmed"
    choices = report_choices(uploaders, reports)
    return {
        "reports": reports,
        "reporting_on": reporting.enabled,
        "reporting_note": reporting.problem,
        "can_report": confirmed and bool(choices),
        # With several uploaders, each gets a report of their own: the form names one.
        "report_uploaders": choices if len(uploaders) > 1 else [],
    }


def _submit(request: Request, reporting: Reporting, report_id: int, back: str) -> Response:
    vault = vault_of(request)
    if vault is None:
        raise WebError(409, "The vault is off on this service: no file can be reported.", back=back)
    try:
        report = submit_report(store_of(request), vault, reporting.client(), report_id)
    except (NcmecError, StoreError) as exc:
        if isinstance(exc, Conflict):  # retracted, or being sent by another process now
            raise WebError(409, exc.message, back=back) from exc
        # Recorded on the report (state "failed" and the error), shown on the case page.
        return redirect(request, f"{back}?done=report_failed")
    done = "reported" if report.state == "finished" else "report_failed"
    return redirect(request, f"{back}?done={done}")


@router.post("/cases/{case_id}/report")
def report_case(
    request: Request,
    signed: SignedIn,
    case_id: int = Path(ge=1, le=2**63 - 1),
    csrf: str = Form(""),
    uploader: str = Form("", max_length=200),
) -> Response:
    check_csrf(signed, csrf)
    visible_case(request, signed, case_id)
    back = f"{REVIEW_PREFIX}/cases/{case_id}"
    reporting = web_state(request).reporting()
    if not reporting.enabled or reporting.profile is None:
        raise WebError(409, reporting.problem or "Reporting is off.", back=back)
    without = uploader == NO_UPLOADER
    with page_errors(back=back):
        report = create_report(
            store_of(request),
            case_id,
            profile=reporting.profile,
            actor=f"reviewer:{signed.reviewer.username}",
            uploader=None if without else uploader or None,
            without_uploader=without,
        )
    return _submit(request, reporting, report.id, back)


@router.post("/reports/{report_id}/submit")
def resume_report(
    request: Request,
    signed: SignedIn,
    report_id: int = Path(ge=1, le=2**63 - 1),
    csrf: str = Form(""),
) -> Response:
    check_csrf(signed, csrf)
    with page_errors():
        report = get_report(store_of(request), report_id)
    visible_case(request, signed, report.case_id)
    back = f"{REVIEW_PREFIX}/cases/{report.case_id}"
    reporting = web_state(request).reporting()
    if not reporting.enabled:
        raise WebError(409, reporting.problem or "Reporting is off.", back=back)
    return _submit(request, reporting, report.id, back)
