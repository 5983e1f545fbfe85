"""CyberTipline reports: made from confirmed cases, sent to NCMEC by a resumable state machine.

`create_report` turns a case that a person confirmed (``case_reviews.state`` =
``confirmed``) into a *draft*: the report XML (`lightkeeper.reporting.cybertipline`), kept
exactly as it will be sent, and one file per recorded upload whose bytes the vault holds,
each with whether a person at the provider viewed it — read from the audit trail
(`lightkeeper.review.exposure.was_viewed`), never assumed. A report names one reported
user (``reports.uploader``), so a case uploaded by several uploader references needs one
report per uploader; the copies with no uploader reference are a group of their own. One
live (not retracted) report per case and uploader: checked here, and held by a unique
index of the database.

`submit_report` then runs the documented flow, each step stored before the next:

    draft ──submit──▶ submitted ──upload + fileinfo, per file──▶ files_uploaded ──finish──▶ finished
      │                   │                                            │
      └──────────────────┴─────────── retract_report ─────────────────┴──▶ retracted
    (any step that fails after the client's retries: failed, with the error; run again to resume)

Why it never files twice, and loses nothing, whatever stops it:

- Every call is written to ``report_calls`` with its exact payload *before* it is sent, and
  its answer after. A successful answer is applied — the NCMEC report id, a file id,
  "details sent", "finished" — in the same transaction as the answer is recorded (the
  machinery is in `lightkeeper.reporting._submission`).
- A run resumes from what is stored: no second ``submit`` once a report id is known; a file
  with a file id is not uploaded again; a file whose details were accepted is skipped. An
  answer recorded but not applied (the process died in between) is applied on resume.
- One run per report at a time: a lock in this process, and across processes a *lease* on
  the report (``reports.lease_owner``, ``lease_until``), taken by compare-and-set when a run
  or a retraction starts, renewed before each call, released at the end. A run that cannot
  take it gets `Conflict`. Before each call, in the transaction that writes it down, the
  step is checked to be still needed (no NCMEC report id yet for a submit, no file id for
  an upload, no details sent for a fileinfo, the report not retracted or finished); an
  answer that no longer fits the report is never applied over what is stored.
- A call whose answer was lost after it was sent has an unknown outcome: ``submit`` and
  ``upload`` are then not sent again by the client (a second report, a second copy), the
  run stops, and resuming it sends them again. A ``finish`` sent again is answered
  "already finished" (5102), which is taken as done. The finish answer lists the report's
  files; any the journal does not know are named in the audit.
- NCMEC's MD5 of an uploaded file is checked before its file id is stored (on resume too):
  a file damaged on the way is marked so, and the report can then only be retracted.

On finish, in one transaction: the report ``finished``, the case ``reported``, a webhook
event ``report`` and the audit event. Then each file's vault object is marked reported
(`Vault.mark_reported`: kept for the retention period, a year), which a re-run completes if
it was cut short. Reading a file from the vault to upload it is a system read
(``system:reporting``), logged by the vault, and not a view by a person.

Audit events (subject ``report/<id>``): ``report.create``, ``report.submit``,
``report.upload``, ``report.fileinfo``, ``report.finish``, ``report.retract``,
``report.failed``. They name NCMEC's ids, never content hashes; nor does a report's error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Row, Table, insert, select
from sqlalchemy.exc import IntegrityError

from lightkeeper.actions.cases import CASE_MATCHES, CASES, validate_uploader
from lightkeeper.actions.vault import Vault
from lightkeeper.banks import _engine
from lightkeeper.banks.audit import acting_as, record
from lightkeeper.banks.models import (
    REPORT_STATES,
    CaseReviewRow,
    ReportCallRow,
    ReportFileRow,
    ReportRow,
)
from lightkeeper.banks.store import BankStore
from lightkeeper.errors import Conflict, InvalidRequest, NotFound
from lightkeeper.reporting.cybertipline import (
    CHILD_PORNOGRAPHY,
    INCIDENT_TYPES,
    INDUSTRY_CLASSIFICATIONS,
    ReportFacts,
    report_xml,
)
from lightkeeper.reporting.ncmec_client import CyberTiplineClient
from lightkeeper.reporting.settings import ReporterProfile
from lightkeeper.review.exposure import was_viewed

__all__ = [
    "REPORTING_ACTOR",
    "REPORT_STATES",
    "Report",
    "ReportCall",
    "ReportFile",
    "create_report",
    "get_report",
    "list_reports",
    "report_calls",
    "reports_of_case",
    "retract_report",
    "submit_report",
]

REPORTS = cast(Table, ReportRow.__table__)
REPORT_FILES = cast(Table, ReportFileRow.__table__)
REPORT_CALLS = cast(Table, ReportCallRow.__table__)
CASE_REVIEWS = cast(Table, CaseReviewRow.__table__)

#: Who reads the vault to upload a reported file (a system read, not a person's view).
REPORTING_ACTOR = "system:reporting"


def _now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class ReportFile:
    """One file of a report: a recorded upload whose bytes the vault holds."""

    id: int
    case_match_id: int
    vault_object_id: str | None
    #: NCMEC's file id, once the upload was answered.
    ncmec_file_id: str | None
    #: Whether a person at the provider viewed the file (the audit trail, when last told).
    viewed_by_esp: bool
    uploaded_at: datetime | None
    fileinfo_at: datetime | None
    #: When NCMEC's MD5 of an upload of it was not the file's (damaged on the way).
    damaged_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "case_match_id": self.case_match_id,
            "vault_object_id": self.vault_object_id,
            "ncmec_file_id": self.ncmec_file_id,
            "viewed_by_esp": self.viewed_by_esp,
            "uploaded_at": _iso(self.uploaded_at),
            "fileinfo_at": _iso(self.fileinfo_at),
            "damaged_at": _iso(self.damaged_at),
        }


@dataclass(frozen=True, slots=True)
class Report:
    """A CyberTipline report and where it stands in the submission flow."""

    id: int
    case_id: int
    state: str
    ncmec_report_id: str | None
    created_at: datetime
    created_by: str
    finished_at: datetime | None
    error: str | None
    files: tuple[ReportFile, ...]
    updated_at: datetime
    #: The report XML, exactly as submitted (or to be).
    xml: str
    #: The reported user: the uploader reference of the reported copies (None: the copies
    #: with no uploader reference).
    uploader: str | None = None

    def to_dict(self, *, xml: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "case_id": self.case_id,
            "uploader": self.uploader,
            "state": self.state,
            "ncmec_report_id": self.ncmec_report_id,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "updated_at": self.updated_at.isoformat(),
            "finished_at": _iso(self.finished_at),
            "error": self.error,
            "files": [f.to_dict() for f in self.files],
        }
        if xml:
            out["xml"] = self.xml
        return out


@dataclass(frozen=True, slots=True)
class ReportCall:
    """One call made to NCMEC for a report, as sent and as answered."""

    id: int
    at: datetime
    step: str
    #: The exact request sent (an upload: the file's SHA-256 and size, never its bytes).
    request: str
    status_code: int | None
    response: str | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "step": self.step,
            "request": self.request,
            "status_code": self.status_code,
            "response": self.response,
            "error": self.error,
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _files(conn: Connection, report_ids: Sequence[int]) -> dict[int, list[ReportFile]]:
    rows = conn.execute(
        select(REPORT_FILES, CASE_MATCHES.c.vault_object_id)
        .join(CASE_MATCHES, CASE_MATCHES.c.id == REPORT_FILES.c.case_match_id)
        .where(REPORT_FILES.c.report_id.in_(report_ids))
        .order_by(REPORT_FILES.c.id)
    )
    out: dict[int, list[ReportFile]] = {}
    for row in rows:
        out.setdefault(int(row.report_id), []).append(
            ReportFile(
                id=row.id,
                case_match_id=row.case_match_id,
                vault_object_id=row.vault_object_id,
                ncmec_file_id=row.ncmec_file_id,
                viewed_by_esp=bool(row.viewed_by_esp),
                uploaded_at=row.uploaded_at,
                fileinfo_at=row.fileinfo_at,
                damaged_at=row.damaged_at,
            )
        )
    return out


def _reports(conn: Connection, rows: Sequence[Row[Any]]) -> list[Report]:
    files = _files(conn, [row.id for row in rows]) if rows else {}
    return [
        Report(
            id=row.id,
            case_id=row.case_id,
            state=row.state,
            ncmec_report_id=row.ncmec_report_id,
            created_at=row.created_at,
            created_by=row.created_by,
            finished_at=row.finished_at,
            error=row.error,
            files=tuple(files.get(row.id, ())),
            updated_at=row.updated_at,
            xml=row.xml,
            uploader=row.uploader,
        )
        for row in rows
    ]


def _load(conn: Connection, report_id: int) -> Report:
    row = conn.execute(select(REPORTS).where(REPORTS.c.id == report_id)).first()
    if row is None:
        raise NotFound(f"no report {report_id}")
    return _reports(conn, [row])[0]


# ---------------------------------------------------------------------- queries


def get_report(store: BankStore, report_id: int) -> Report:
    """A report with its files (`NotFound`)."""
    return _engine.read(store.engine, lambda conn: _load(conn, report_id))


def reports_of_case(store: BankStore, case_id: int) -> list[Report]:
    """The reports made from a case, oldest first."""
    return list_reports(store, case_id=case_id, limit=1000)


def list_reports(
    store: BankStore, *, case_id: int | None = None, state: str | None = None, limit: int = 100
) -> list[Report]:
    """Reports, oldest first, optionally of one case or in one state."""
    if state is not None and state not in REPORT_STATES:
        raise InvalidRequest(f"unknown report state {state!r}; known: {', '.join(REPORT_STATES)}")
    if not 1 <= limit <= 1000:
        raise InvalidRequest("a limit is from 1 to 1000")
    query = select(REPORTS)
    if case_id is not None:
        query = query.where(REPORTS.c.case_id == case_id)
    if state is not None:
        query = query.where(REPORTS.c.state == state)
    query = query.order_by(REPORTS.c.id).limit(limit)
    return _engine.read(store.engine, lambda conn: _reports(conn, conn.execute(query).all()))


def report_calls(store: BankStore, report_id: int) -> list[ReportCall]:
    """Every call made to NCMEC for a report, in order (`NotFound` for an unknown report)."""

    def work(conn: Connection) -> list[ReportCall]:
        _load(conn, report_id)
        rows = conn.execute(
            select(REPORT_CALLS)
            .where(REPORT_CALLS.c.report_id == report_id)
            .order_by(REPORT_CALLS.c.id)
        )
        return [
            ReportCall(r.id, r.at, r.step, r.request, r.status_code, r.response, r.error)
            for r in rows
        ]

    return _engine.read(store.engine, work)


# ---------------------------------------------------------------------- making a report


def _lists(matches: Sequence[Row[Any]]) -> tuple[str, ...]:
    names = set()
    for match in matches:
        for item in json.loads(match.evidence):
            name = item.get("list_name") or item.get("bank")
            if name:
                names.add(str(name))
    return tuple(sorted(names))


def create_report(
    store: BankStore,
    case_id: int,
    *,
    profile: ReporterProfile,
    actor: str,
    uploader: str | None = None,
    without_uploader: bool = False,
    incident_type: str = CHILD_PORNOGRAPHY,
    now: datetime | None = None,
) -> Report:
    """A draft report of confirmed case `case_id`, with the files the vault holds.

    `uploader` picks the reported user when the case has uploads by several (each gets its
    own report), and `without_uploader` the copies uploaded with no uploader reference (a
    group of their own); by default the case must have one group. `Conflict` when the case
    is not confirmed, when it needs a choice, or when a live (not retracted) report of the
    case for that uploader already exists.
    """
    if incident_type not in INCIDENT_TYPES:
        raise InvalidRequest(f"unknown incident type {incident_type!r}")
    if uploader is not None:
        validate_uploader(uploader)
        if without_uploader:
            raise InvalidRequest("name an uploader, or ask for the copies without one: not both")
    moment = now or _now()
    #: The reported user chosen (by default the case's one), for the error of a race.
    picked: list[str | None] = []

    def work(conn: Connection) -> int:
        case = conn.execute(select(CASES).where(CASES.c.id == case_id).with_for_update()).first()
        if case is None:
            raise NotFound(f"no case {case_id}")
        review = conn.execute(select(CASE_REVIEWS).where(CASE_REVIEWS.c.case_id == case_id)).first()
        state = "undecided" if review is None else review.state
        if state != "confirmed":
            raise Conflict(
                f"case {case_id} is {state}: only a confirmed case can be reported (a person "
                "must confirm it, and a second approve it when the two-person rule is on)"
            )
        assert review is not None
        if review.classification not in INDUSTRY_CLASSIFICATIONS:
            raise Conflict(f"case {case_id} was confirmed without an industry classification")
        matches = conn.execute(
            select(CASE_MATCHES)
            .where(CASE_MATCHES.c.case_id == case_id)
            .order_by(CASE_MATCHES.c.id)
        ).all()
        groups: dict[str | None, list[Row[Any]]] = {}
        for match in matches:
            groups.setdefault(match.uploader, []).append(match)
        subject: str | None
        if uploader is not None or without_uploader:
            subject = uploader
            if subject not in groups:
                raise InvalidRequest(
                    f"case {case_id} has no upload by uploader {uploader!r}"
                    if uploader is not None
                    else f"case {case_id} has no upload without an uploader reference"
                )
        elif len(groups) <= 1:
            subject = next(iter(groups), None)
        else:
            names = ", ".join(sorted(repr(u) for u in groups if u is not None))
            if None in groups:
                names += " and copies with no uploader reference"
            raise Conflict(
                f"case {case_id} has uploads by {len(groups)} uploader references ({names}); "
                "a report names one reported user: make one report per uploader"
            )
        picked[:] = [subject]
        chosen = groups.get(subject, [])
        live = _live_report_id(conn, case_id, subject)
        if live is not None:
            raise Conflict(_live_report(case_id, subject, live))
        files = [m for m in chosen if m.vault_object_id is not None]
        viewed = {m.id: was_viewed(conn, m.id) for m in files}
        facts = ReportFacts(
            case_id=case_id,
            # The incident time: the earliest upload of the reported files (of the
            # uploader's copies when the vault holds none of them).
            uploaded_at=tuple(m.at for m in (files or chosen)),
            uploader=subject,
            classification=review.classification,
            incident_type=incident_type,
            uploads=len(chosen),
            files=len(files),
            lists=_lists(chosen),
        )
        document = report_xml(facts, profile, now=moment)
        report_id = int(
            conn.execute(
                insert(REPORTS).returning(REPORTS.c.id),
                {
                    "case_id": case_id,
                    "uploader": subject,
                    "state": "draft",
                    "ncmec_report_id": None,
                    "xml": document,
                    "created_at": moment,
                    "created_by": actor,
                    "updated_at": moment,
                    "finished_at": None,
                    "error": None,
                },
            ).scalar_one()
        )
        if files:
            conn.execute(
                insert(REPORT_FILES),
                [
                    {"report_id": report_id, "case_match_id": m.id, "viewed_by_esp": viewed[m.id]}
                    for m in files
                ],
            )
        record(
            conn,
            "report.create",
            f"report/{report_id}",
            {
                "case_id": case_id,
                "files": len(files),
                "viewed_by_esp": sum(viewed.values()),
                "uploads": len(chosen),
            },
        )
        return report_id

    with acting_as(actor):
        try:
            report_id = _engine.write(store.engine, work)
        except IntegrityError:  # another process made one meanwhile: the unique index says so
            who = picked[0] if picked else uploader
            raise Conflict(_live_report(case_id, who, None)) from None
    return get_report(store, report_id)


def _live_report_id(conn: Connection, case_id: int, uploader: str | None) -> int | None:
    """The case's report for `uploader` (None: its copies without one) that is not retracted."""
    same = REPORTS.c.uploader.is_(None) if uploader is None else REPORTS.c.uploader == uploader
    found = conn.execute(
        select(REPORTS.c.id).where(
            REPORTS.c.case_id == case_id, REPORTS.c.state != "retracted", same
        )
    ).scalar()
    return None if found is None else int(found)


def _live_report(case_id: int, uploader: str | None, report_id: int | None) -> str:
    who = "its copies with no uploader reference" if uploader is None else f"uploader {uploader!r}"
    which = "" if report_id is None else f" ({report_id})"
    return (
        f"case {case_id} already has a live report{which} for {who}; retract it before "
        "making another"
    )


# ---------------------------------------------------------------------- sending


def submit_report(
    store: BankStore, vault: Vault, client: CyberTiplineClient, report_id: int
) -> Report:
    """Run (or resume) the submission of report `report_id` to its end: submit, each file's
    upload and details, finish; then the vault keeps the files for the retention period.

    Idempotent: a finished report is returned as it is (completing its retention marks).
    When NCMEC refuses a call or stays unreachable after the client's retries, the report is
    left ``failed`` with the error, and the error raised (`NcmecError`; a vault error when a
    file cannot be read); calling again resumes. `Conflict` for a retracted report, a case no
    longer confirmed (an upheld appeal), a file damaged on the way to NCMEC, or while another
    process holds the report's lease (it is sending or retracting it).
    """
    from lightkeeper.reporting._submission import submit  # the state machine needs these records

    return submit(store, vault, client, report_id)


def retract_report(
    store: BankStore, client: CyberTiplineClient | None, report_id: int, *, actor: str
) -> Report:
    """Withdraw a report that is not finished: at NCMEC when it has a report id there, else
    only here (then `client` may be None). It takes the report's lease, as a run does, and
    first applies any answer recorded but not applied. `Conflict` for a finished report
    (NCMEC allows retracting unfinished reports only), or while another process holds the
    lease; a retracted report is returned as it is."""
    from lightkeeper.reporting._submission import retract

    return retract(store, client, report_id, actor=actor)
