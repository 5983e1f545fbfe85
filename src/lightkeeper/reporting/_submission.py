"""The submission state machine behind `lightkeeper.reporting.reports` (see its docstring).

`_Journal` writes every attempt of a call to ``report_calls`` and applies a successful answer
in the transaction that records it; `_Flow` runs the steps of one report from what is stored,
recovering answers that were recorded but not applied; `submit` and `retract` are the bodies
of `reports.submit_report` and `reports.retract_report`.

One run per report at a time. In this process a lock makes a second run wait; across
processes a *lease* on the report row (``lease_owner``, ``lease_until``) is taken by
compare-and-set when a run or a retraction starts (`Conflict` for the second), renewed in the
transaction that writes down each call, and released at the end. It lasts one call's budget
(`CyberTiplineClient.call_budget`) and a margin, so a process that died holding it holds the
report no longer than that. The same transaction re-checks that the step is still needed
(`_Flow.need_submit` …), and each ``apply_*`` refuses an answer that no longer fits the
report (`_Stale`) instead of silently applying nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from lightkeeper.actions.cases import CASE_MATCHES, CASES
from lightkeeper.actions.vault import Vault
from lightkeeper.actions.webhooks import enqueue_in
from lightkeeper.banks import _engine
from lightkeeper.banks.audit import acting_as, record
from lightkeeper.banks.store import BankStore
from lightkeeper.errors import (
    Conflict,
    InvalidRequest,
    NcmecError,
    NotFound,
    StoreBusy,
    StoreError,
    StoreUnavailable,
)
from lightkeeper.reporting.cybertipline import FileFacts, file_details_xml, parse_document
from lightkeeper.reporting.ncmec_client import (
    REPORT_ALREADY_FINISHED,
    REPORT_ALREADY_RETRACTED,
    REPORT_DOES_NOT_EXIST,
    CyberTiplineClient,
    NcmecResponse,
    Step,
    classify,
    parse_answer,
)
from lightkeeper.reporting.reports import (
    CASE_REVIEWS,
    REPORT_CALLS,
    REPORT_FILES,
    REPORTING_ACTOR,
    REPORTS,
    Report,
    ReportFile,
    get_report,
)
from lightkeeper.review.exposure import was_viewed

_EVENT_NAMESPACE = uuid.UUID("0d5f3e8a-7c1b-4e62-9a0f-5b2d6c8e1f47")
_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/bmp": ".bmp",
    "image/tiff": ".tif",
    "image/heif": ".heic",
    "image/avif": ".avif",
}


def _now() -> datetime:
    return datetime.now(UTC)


_LOCKS: dict[int, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@contextmanager
def _one_run(report_id: int) -> Iterator[None]:
    """At most one run per report in this process; others wait."""
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(report_id, threading.Lock())
    with lock:
        yield


Apply = Callable[[Connection, NcmecResponse], None]
#: Why a step is no longer needed (None: it still is); read in the call's transaction.
Check = Callable[[Connection], "str | None"]

#: Seconds a lease lasts beyond one call's budget (local work: reading a file, the database).
LEASE_MARGIN_S = 60.0


class _Stale(Conflict):
    """An answer that no longer fits the report: another run applied another one, or the
    report was retracted meanwhile. Never applied over what is stored."""

    def __init__(self, message: str, *, ncmec_report_id: str | None = None) -> None:
        super().__init__(message)
        #: NCMEC's report id in a submit answer that was not applied (to withdraw it there).
        self.ncmec_report_id = ncmec_report_id


class _Journal:
    """Writes each attempt of one call to ``report_calls`` (see `CallJournal`); before it,
    in the same transaction, renews the run's lease and checks that the step is still
    needed (`check`); applies an accepted answer (`classify`) with `apply` in the
    transaction that records it."""

    def __init__(
        self, flow: _Flow, apply: Apply | None, check: Check | None, *, leased: bool = True
    ) -> None:
        self._flow = flow
        self._apply = apply
        self._check = check
        self._leased = leased

    def before(self, step: Step, request: str) -> int:
        flow = self._flow

        def work(conn: Connection) -> int:
            if self._leased:
                flow.renew(conn)
            reason = None if self._check is None else self._check(conn)
            if reason is not None:
                raise Conflict(
                    f"report {flow.report_id}: {reason}; this run stopped before sending {step}"
                )
            return int(
                conn.execute(
                    insert(REPORT_CALLS).returning(REPORT_CALLS.c.id),
                    {"report_id": flow.report_id, "at": _now(), "step": step, "request": request},
                ).scalar_one()
            )

        handle = _engine.write(flow.store.engine, work)
        flow.pending.add(handle)
        return handle

    def after(
        self,
        handle: int,
        *,
        status: int | None,
        response: str | None,
        error: str | None,
        parsed: NcmecResponse | None,
    ) -> None:
        values = {
            "status_code": status,
            "response": response,
            "error": error[:500] if error else None,
        }
        answered = update(REPORT_CALLS).where(REPORT_CALLS.c.id == handle).values(**values)
        success = status is not None and classify(status, parsed) == "accepted"

        def work(conn: Connection) -> None:
            conn.execute(answered)
            if success and self._apply is not None:
                assert parsed is not None
                self._apply(conn, parsed)

        engine = self._flow.store.engine
        try:
            _engine.write(engine, work)
        except BaseException:
            # Keep NCMEC's answer even when applying it failed (or we were stopped right
            # then): a resume applies it. If even that fails, the call stays pending and
            # `_Flow.interrupted` marks its outcome unknown.
            _engine.write(engine, lambda conn: conn.execute(answered))
            self._flow.pending.discard(handle)
            raise
        self._flow.pending.discard(handle)


# ---------------------------------------------------------------------- the flow


class _Flow:
    """One run of the state machine for one report (see the module docstring)."""

    def __init__(self, store: BankStore, client: CyberTiplineClient | None, report_id: int) -> None:
        self.store = store
        self.client = client
        self.report_id = report_id
        self.subject = f"report/{report_id}"
        #: This run's lease: who holds it, for how long at a time, whether it is held.
        self.owner = uuid.uuid4().hex
        self.lease_s = (0.0 if client is None else client.call_budget) + LEASE_MARGIN_S
        self.leased = False
        #: Calls made by this run not answered yet.
        self.pending: set[int] = set()

    @property
    def api(self) -> CyberTiplineClient:
        if self.client is None:
            raise InvalidRequest("reporting is off: set LIGHTKEEPER_NCMEC_URL")
        return self.client

    def journal(
        self, apply: Apply | None = None, check: Check | None = None, *, leased: bool = True
    ) -> _Journal:
        return _Journal(self, apply, check, leased=leased)

    def write(self, work: Callable[[Connection], Any]) -> Any:
        return _engine.write(self.store.engine, work)

    def load(self) -> Report:
        return get_report(self.store, self.report_id)

    # -- the lease

    def take_lease(self) -> None:
        """Take the report's lease (`NotFound` for no report, `Conflict` while another
        process holds it)."""

        def work(conn: Connection) -> None:
            row = conn.execute(
                select(REPORTS.c.lease_owner, REPORTS.c.lease_until).where(
                    REPORTS.c.id == self.report_id
                )
            ).first()
            if row is None:
                raise NotFound(f"no report {self.report_id}")
            now = _now()
            taken = conn.execute(
                update(REPORTS)
                .where(
                    REPORTS.c.id == self.report_id,
                    or_(
                        REPORTS.c.lease_owner.is_(None),
                        REPORTS.c.lease_until.is_(None),
                        REPORTS.c.lease_until < now,
                    ),
                )
                .values(lease_owner=self.owner, lease_until=now + timedelta(seconds=self.lease_s))
            ).rowcount
            if not taken:
                raise Conflict(self.held_elsewhere(row.lease_until))

        self.write(work)
        self.leased = True

    def held_elsewhere(self, until: datetime | None) -> str:
        after = "" if until is None else f" after {until:%Y-%m-%d %H:%M:%S} UTC"
        return (
            f"another process is submitting (or retracting) report {self.report_id}; "
            f"try again{after}"
        )

    def renew(self, conn: Connection) -> None:
        """Extend the lease, in the caller's transaction; `Conflict` if it was lost."""
        now = _now()
        kept = conn.execute(
            update(REPORTS)
            .where(REPORTS.c.id == self.report_id, REPORTS.c.lease_owner == self.owner)
            .values(lease_until=now + timedelta(seconds=self.lease_s))
        ).rowcount
        if not kept:
            until = conn.execute(
                select(REPORTS.c.lease_until).where(REPORTS.c.id == self.report_id)
            ).scalar()
            raise Conflict(
                f"this run's lease on report {self.report_id} ran out and was taken: "
                + self.held_elsewhere(until)
            )

    def release(self) -> None:
        if not self.leased:
            return
        self.leased = False
        # If the database cannot be reached now, the lease runs out by itself.
        with contextlib.suppress(StoreError, SQLAlchemyError):
            self.write(
                lambda conn: conn.execute(
                    update(REPORTS)
                    .where(REPORTS.c.id == self.report_id, REPORTS.c.lease_owner == self.owner)
                    .values(lease_owner=None, lease_until=None)
                )
            )

    @contextmanager
    def lease(self) -> Iterator[None]:
        self.take_lease()
        try:
            yield
        finally:
            self.release()

    # -- bookkeeping

    def interrupted(self) -> None:
        """Mark this run's unanswered calls: their outcome is unknown (a resume resends)."""
        if not self.pending:
            return
        ids = set(self.pending)
        self.write(
            lambda conn: conn.execute(
                update(REPORT_CALLS)
                .where(REPORT_CALLS.c.id.in_(ids), REPORT_CALLS.c.status_code.is_(None))
                .values(error="interrupted: outcome unknown")
            )
        )
        self.pending.clear()

    def fail(self, message: str) -> None:
        """Leave the report ``failed`` with `message` (while this run holds its lease)."""

        def work(conn: Connection) -> None:
            changed = conn.execute(
                update(REPORTS)
                .where(
                    REPORTS.c.id == self.report_id,
                    REPORTS.c.state.not_in(("finished", "retracted")),
                    REPORTS.c.lease_owner == self.owner,
                )
                .values(state="failed", error=message[:4000], updated_at=_now())
            ).rowcount
            if changed:
                record(conn, "report.failed", self.subject, {"error": message[:300]})

        self.write(work)

    # -- is the step still needed? (`_Journal.before`, in the call's transaction)

    def _open(self, conn: Connection) -> tuple[str | None, Any]:
        row = conn.execute(select(REPORTS).where(REPORTS.c.id == self.report_id)).one()
        if row.state in ("retracted", "finished"):
            return f"it was {row.state} meanwhile", row
        return None, row

    def need_submit(self, conn: Connection) -> str | None:
        reason, row = self._open(conn)
        if reason is None and row.ncmec_report_id is not None:
            reason = f"it was submitted meanwhile (NCMEC report {row.ncmec_report_id})"
        return reason

    def need_upload(self, file_id: int) -> Check:
        def check(conn: Connection) -> str | None:
            reason, _ = self._open(conn)
            file = conn.execute(select(REPORT_FILES).where(REPORT_FILES.c.id == file_id)).one()
            if reason is None and file.ncmec_file_id is not None:
                reason = f"file {file_id} was uploaded meanwhile (NCMEC file {file.ncmec_file_id})"
            if reason is None and file.damaged_at is not None:
                reason = f"file {file_id} was damaged on the way to NCMEC"
            return reason

        return check

    def need_fileinfo(self, file_id: int) -> Check:
        def check(conn: Connection) -> str | None:
            reason, _ = self._open(conn)
            file = conn.execute(select(REPORT_FILES).where(REPORT_FILES.c.id == file_id)).one()
            if reason is None and file.fileinfo_at is not None:
                reason = f"the details of file {file_id} were sent meanwhile"
            return reason

        return check

    def need_finish(self, conn: Connection) -> str | None:
        reason, _ = self._open(conn)
        if reason is None and self._damaged(conn):
            reason = "a file of it was damaged on the way to NCMEC"
        return reason

    def need_retract(self, conn: Connection) -> str | None:
        reason, _ = self._open(conn)
        return reason

    def _damaged(self, conn: Connection) -> list[int]:
        return list(
            conn.execute(
                select(REPORT_FILES.c.id).where(
                    REPORT_FILES.c.report_id == self.report_id,
                    REPORT_FILES.c.damaged_at.is_not(None),
                )
            ).scalars()
        )

    # -- applying answers (each inside the transaction that records the answer)

    def _not_retracted(self, conn: Connection, what: str) -> Any:
        row = conn.execute(select(REPORTS).where(REPORTS.c.id == self.report_id)).one()
        if row.state == "retracted":
            raise _Stale(
                f"report {self.report_id} was retracted: NCMEC's answer to {what} is not applied"
            )
        return row

    def apply_submit(self, conn: Connection, answer: NcmecResponse) -> None:
        if not answer.report_id:
            raise NcmecError("NCMEC accepted the report but answered no report id")
        row = conn.execute(select(REPORTS).where(REPORTS.c.id == self.report_id)).one()
        if row.state == "retracted":
            raise _Stale(
                f"report {self.report_id} was retracted while it was being submitted",
                ncmec_report_id=answer.report_id,
            )
        if row.ncmec_report_id == answer.report_id:
            return
        if row.ncmec_report_id is not None:
            raise _Stale(
                f"report {self.report_id} is NCMEC report {row.ncmec_report_id}: another "
                f"submit's answer (NCMEC report {answer.report_id}) is not applied",
                ncmec_report_id=answer.report_id,
            )
        conn.execute(
            update(REPORTS)
            .where(REPORTS.c.id == self.report_id)
            .values(
                ncmec_report_id=answer.report_id,
                state="submitted",
                error=None,
                updated_at=_now(),
            )
        )
        record(conn, "report.submit", self.subject, {"ncmec_report_id": answer.report_id})

    def apply_upload(self, file_id: int, md5: str | None) -> Apply:
        """Apply an upload's answer: the file id, once NCMEC's MD5 is checked against `md5`
        (the file's; None for a call recorded before it was kept). On a mismatch the file
        is marked damaged instead, and no file id is stored."""

        def apply(conn: Connection, answer: NcmecResponse) -> None:
            if not answer.file_id:
                raise NcmecError("NCMEC accepted a file but answered no file id")
            self._not_retracted(conn, f"an upload of file {file_id}")
            row = conn.execute(select(REPORT_FILES).where(REPORT_FILES.c.id == file_id)).one()
            if row.ncmec_file_id == answer.file_id:
                return
            if row.ncmec_file_id is not None:
                raise _Stale(
                    f"file {file_id} of report {self.report_id} is NCMEC file "
                    f"{row.ncmec_file_id}: another upload's answer is not applied"
                )
            if _mismatch(answer, md5):
                if row.damaged_at is None:
                    conn.execute(
                        update(REPORT_FILES)
                        .where(REPORT_FILES.c.id == file_id)
                        .values(damaged_at=_now())
                    )
                    record(
                        conn,
                        "report.upload",
                        self.subject,
                        {"file": file_id, "ncmec_file_id": answer.file_id, "damaged": True},
                    )
                return
            if row.damaged_at is not None:
                raise _Stale(f"file {file_id} of report {self.report_id} was damaged on the way")
            conn.execute(
                update(REPORT_FILES)
                .where(REPORT_FILES.c.id == file_id)
                .values(ncmec_file_id=answer.file_id, uploaded_at=_now())
            )
            record(
                conn,
                "report.upload",
                self.subject,
                {"file": file_id, "ncmec_file_id": answer.file_id},
            )

        return apply

    def apply_fileinfo(self, file_id: int, viewed: bool) -> Apply:
        def apply(conn: Connection, answer: NcmecResponse) -> None:
            self._not_retracted(conn, f"the details of file {file_id}")
            row = conn.execute(select(REPORT_FILES).where(REPORT_FILES.c.id == file_id)).one()
            if row.fileinfo_at is not None:
                if bool(row.viewed_by_esp) == viewed:
                    return
                raise _Stale(
                    f"the details of file {file_id} of report {self.report_id} were sent "
                    "already, saying otherwise whether a person viewed it"
                )
            conn.execute(
                update(REPORT_FILES)
                .where(REPORT_FILES.c.id == file_id)
                .values(fileinfo_at=_now(), viewed_by_esp=viewed)
            )
            left = conn.execute(
                select(REPORT_FILES.c.id).where(
                    REPORT_FILES.c.report_id == self.report_id, REPORT_FILES.c.fileinfo_at.is_(None)
                )
            ).first()
            if left is None:
                conn.execute(
                    update(REPORTS)
                    .where(
                        REPORTS.c.id == self.report_id, REPORTS.c.state.in_(("submitted", "failed"))
                    )
                    .values(state="files_uploaded", error=None, updated_at=_now())
                )
            record(
                conn, "report.fileinfo", self.subject, {"file": file_id, "viewed_by_esp": viewed}
            )

        return apply

    def apply_finish(self, conn: Connection, answer: NcmecResponse | None) -> None:
        row = self._not_retracted(conn, "finish")
        if row.state == "finished":
            return
        now = _now()
        conn.execute(
            update(REPORTS)
            .where(REPORTS.c.id == self.report_id)
            .values(state="finished", finished_at=now, error=None, updated_at=now)
        )
        case = conn.execute(select(CASES).where(CASES.c.id == row.case_id)).one()
        conn.execute(
            update(CASES).where(CASES.c.id == row.case_id).values(status="reported", updated_at=now)
        )
        known = set(
            conn.execute(
                select(REPORT_FILES.c.ncmec_file_id).where(
                    REPORT_FILES.c.report_id == self.report_id,
                    REPORT_FILES.c.ncmec_file_id.is_not(None),
                )
            ).scalars()
        )
        uploaders = sorted(
            {
                u
                for u in conn.execute(
                    select(CASE_MATCHES.c.uploader)
                    .join(REPORT_FILES, REPORT_FILES.c.case_match_id == CASE_MATCHES.c.id)
                    .where(REPORT_FILES.c.report_id == self.report_id)
                ).scalars()
                if u is not None
            }
        )
        enqueue_in(
            conn,
            "report",
            {
                "kind": "report_filed",
                "report_id": self.report_id,
                "case_id": row.case_id,
                "sha256": case.sha256,
                "ncmec_report_id": row.ncmec_report_id,
                "files": len(known),
                "uploaders": uploaders,
            },
            event_id=str(uuid.uuid5(_EVENT_NAMESPACE, self.subject)),
            at=now,
        )
        listed = set(answer.file_ids) if answer is not None else set()
        record(
            conn,
            "report.finish",
            self.subject,
            {
                "case_id": row.case_id,
                "ncmec_report_id": row.ncmec_report_id,
                "files": len(known),
                "unrecorded_files": sorted(listed - known),
            },
        )

    # -- recovering answers recorded but not applied (a process that died in between)

    def recover(self) -> None:
        """Apply every accepted answer recorded but not applied, in the order of the calls;
        an answer that no longer fits (`_Stale`: another run's, applied over) is skipped, and
        so is one that cannot be applied (`NcmecError`: accepted with no report or file id),
        as when it came: its step is still to do."""

        def work(conn: Connection) -> None:
            self.resume_state(conn)
            calls = conn.execute(
                select(REPORT_CALLS)
                .where(
                    REPORT_CALLS.c.report_id == self.report_id,
                    REPORT_CALLS.c.status_code.is_not(None),
                )
                .order_by(REPORT_CALLS.c.id)
            ).all()
            files = {
                f"lightkeeper-{row.case_match_id}": row.id
                for row in conn.execute(
                    select(REPORT_FILES).where(REPORT_FILES.c.report_id == self.report_id)
                )
            }
            for call in calls:
                answer = parse_answer(call.response, call.status_code)
                if classify(call.status_code, answer) != "accepted":
                    continue
                assert answer is not None
                with contextlib.suppress(_Stale, NcmecError):
                    self.reapply(conn, call, answer, files)

        self.write(work)

    def reapply(
        self, conn: Connection, call: Any, answer: NcmecResponse, files: dict[str, int]
    ) -> None:
        """Apply the recorded answer of `call` (see `recover`)."""
        if call.step == "submit":
            self.apply_submit(conn, answer)
        elif call.step == "upload":
            sent = json.loads(call.request)["file"]
            name = str(sent["filename"]).rsplit(".", 1)[0]
            if name in files:
                md5 = sent.get("md5")
                self.apply_upload(files[name], None if md5 is None else str(md5))(conn, answer)
        elif call.step == "fileinfo":
            details = parse_document(call.request.encode("utf-8"))
            file_id = (details.findtext("fileId") or "").strip()
            viewed = (details.findtext("fileViewedByEsp") or "").strip() == "true"
            row = conn.execute(
                select(REPORT_FILES.c.id).where(
                    REPORT_FILES.c.report_id == self.report_id,
                    REPORT_FILES.c.ncmec_file_id == file_id,
                )
            ).first()
            if row is not None:
                self.apply_fileinfo(row.id, viewed)(conn, answer)
        elif call.step == "finish":
            self.apply_finish(conn, answer)

    def resume_state(self, conn: Connection) -> None:
        """A failed report resumes in the state its stored data says it reached."""
        row = conn.execute(select(REPORTS).where(REPORTS.c.id == self.report_id)).one()
        if row.state != "failed":
            return
        left = conn.execute(
            select(REPORT_FILES.c.id).where(
                REPORT_FILES.c.report_id == self.report_id, REPORT_FILES.c.fileinfo_at.is_(None)
            )
        ).first()
        has_files = conn.execute(
            select(REPORT_FILES.c.id).where(REPORT_FILES.c.report_id == self.report_id)
        ).first()
        state = (
            "draft"
            if row.ncmec_report_id is None
            else "files_uploaded"
            if has_files is not None and left is None
            else "submitted"
        )
        conn.execute(
            update(REPORTS)
            .where(REPORTS.c.id == self.report_id)
            .values(state=state, updated_at=_now())
        )

    # -- the steps (run while holding the lease)

    def run(self, vault: Vault) -> None:
        report = self.load()
        if report.state == "retracted":
            raise Conflict(f"report {report.id} was retracted; make a new report of the case")
        if report.state != "finished":
            self.recover()
            report = self.load()
        if report.state != "finished":
            try:
                self.still_confirmed(report.case_id)
            except Conflict as undone:  # failed, saying why, not back to draft
                self.fail(undone.message)
                raise
            damaged = [f.id for f in report.files if f.damaged_at is not None]
            if damaged:
                # Failed, saying why (recovery may just have found it): no run finishes it.
                refusal = Conflict(
                    f"file(s) {', '.join(map(str, damaged))} of report {report.id} were damaged "
                    "on the way to NCMEC (NCMEC's MD5 was not the file's): the report cannot "
                    f"be finished; retract it (lightkeeper report retract {report.id}) and "
                    "report the case again"
                )
                self.fail(refusal.message)
                raise refusal
            ncmec_id = report.ncmec_report_id
            if ncmec_id is None:
                ncmec_id = self.submit_once(report.xml)
            for file in report.files:
                self.send_file(vault, ncmec_id, file)
            self.finish(ncmec_id)
        self.retain(vault)

    def submit_once(self, xml: str) -> str:
        try:
            answer = self.api.submit(xml, self.journal(self.apply_submit, self.need_submit))
        except _Stale as exc:
            # Our submit opened a report at NCMEC that this one cannot be (it was retracted,
            # or another run's submit was applied): withdraw it there.
            if exc.ncmec_report_id is None:
                raise
            raise Conflict(f"{exc.message}; {self.withdraw(exc.ncmec_report_id)}") from None
        return str(answer.report_id)

    def withdraw(self, ncmec_id: str) -> str:
        """Retract NCMEC report `ncmec_id`, opened by a submit whose answer could not be
        applied; what happened, in words."""

        def noted(conn: Connection, answer: NcmecResponse | None) -> None:
            record(
                conn,
                "report.retract",
                self.subject,
                {"ncmec_report_id": ncmec_id, "at_ncmec": "retracted (an extra submit)"},
            )

        try:
            self.api.retract(ncmec_id, self.journal(noted, leased=False))
        except NcmecError as exc:
            if exc.response_code in (REPORT_ALREADY_RETRACTED, REPORT_DOES_NOT_EXIST):
                return f"NCMEC report {ncmec_id} that it opened is gone there already"
            return (
                f"NCMEC report {ncmec_id} that it opened could not be retracted there ({exc}); "
                "NCMEC deletes it unfinished by itself"
            )
        return f"NCMEC report {ncmec_id} that it opened was retracted there"

    def still_confirmed(self, case_id: int) -> None:
        """Refuse to go on with a case whose confirmation was undone (an upheld appeal)."""
        state = _engine.read(
            self.store.engine,
            lambda conn: conn.execute(
                select(CASE_REVIEWS.c.state).where(CASE_REVIEWS.c.case_id == case_id)
            ).scalar(),
        )
        if state != "confirmed":
            raise Conflict(
                f"case {case_id} is no longer confirmed ({state or 'undecided'}): report "
                f"{self.report_id} is not sent; retract it"
            )

    def read_file(self, vault: Vault, file: ReportFile) -> tuple[bytes, str]:
        """The file's bytes and media type; a vault error fails the report, and is raised."""
        try:
            object_id = file.vault_object_id
            if object_id is None:
                raise StoreError(f"file {file.id} of report {self.report_id} has no vault object")
            data = vault.read(
                object_id,
                actor=REPORTING_ACTOR,
                reason=f"upload to NCMEC's CyberTipline, report {self.report_id}",
            )
            return data, vault.get(object_id).media_type
        except (StoreBusy, StoreUnavailable):
            raise
        except StoreError as exc:  # the vault: a file destroyed, damaged, or its key missing
            self.fail(str(exc))
            raise

    def send_file(self, vault: Vault, ncmec_id: str, file: ReportFile) -> None:
        if file.ncmec_file_id is not None and file.fileinfo_at is not None:
            return
        data, media_type = self.read_file(vault, file)
        md5 = hashlib.md5(data).hexdigest()
        ncmec_file_id = file.ncmec_file_id
        if ncmec_file_id is None:
            answer = self.api.upload(
                ncmec_id,
                data,
                filename=f"lightkeeper-{file.case_match_id}{_EXTENSIONS.get(media_type, '')}",
                media_type=media_type,
                journal=self.journal(self.apply_upload(file.id, md5), self.need_upload(file.id)),
            )
            if _mismatch(answer, md5):  # the file is marked damaged, its id not stored
                raise NcmecError(
                    f"NCMEC's MD5 of file {file.id} of report {self.report_id} (NCMEC file "
                    f"{answer.file_id}) is not the file's: it was damaged on the way. The report "
                    f"cannot be finished: retract it and report the case again"
                )
            ncmec_file_id = str(answer.file_id)
        facts, viewed = self.file_facts(file.case_match_id, data, md5)
        self.api.fileinfo(
            file_details_xml(ncmec_id, ncmec_file_id, facts),
            self.journal(self.apply_fileinfo(file.id, viewed), self.need_fileinfo(file.id)),
        )

    def file_facts(self, case_match_id: int, data: bytes, md5: str) -> tuple[FileFacts, bool]:
        """The file's details, with whether a person viewed it read afresh from the trail."""

        def work(conn: Connection) -> tuple[FileFacts, bool]:
            match = conn.execute(
                select(CASE_MATCHES).where(CASE_MATCHES.c.id == case_match_id)
            ).one()
            classification = conn.execute(
                select(CASE_REVIEWS.c.classification).where(CASE_REVIEWS.c.case_id == match.case_id)
            ).scalar_one()
            viewed = was_viewed(conn, case_match_id)
            note = (
                "A person at the provider viewed this file before reporting it."
                if viewed
                else "No person at the provider viewed this file; it is reported as a copy "
                "of content that a person at the provider reviewed and confirmed."
            )
            facts = FileFacts(
                uploaded_at=match.at,
                viewed_by_esp=viewed,
                classification=str(classification),
                hashes=(("SHA256", hashlib.sha256(data).hexdigest()), ("MD5", md5)),
                evidence=tuple(json.loads(match.evidence)),
                note=note,
            )
            return facts, viewed

        return _engine.read(self.store.engine, work)

    def finish(self, ncmec_id: str) -> None:
        try:
            self.api.finish(ncmec_id, self.journal(self.apply_finish, self.need_finish))
        except NcmecError as exc:
            if exc.response_code != REPORT_ALREADY_FINISHED:
                raise
            # An earlier finish reached NCMEC, its answer did not reach us: it is done.
            self.write(lambda conn: self.apply_finish(conn, None))

    def retain(self, vault: Vault) -> None:
        """Mark each reported file's vault object reported (kept for the retention period)."""
        report = self.load()
        finished_at = report.finished_at
        assert finished_at is not None
        for file in report.files:
            if file.vault_object_id is None:
                continue
            held = vault.get(file.vault_object_id)
            if held.destroyed or (held.reported_at is not None and held.reported_at >= finished_at):
                continue
            vault.mark_reported(
                file.vault_object_id,
                finished_at,
                actor=REPORTING_ACTOR,
                reason=f"reported to NCMEC, CyberTipline report {report.ncmec_report_id}",
            )

    # -- retracting (while holding the lease)

    def retract(self) -> Report:
        report = self.load()
        if report.state == "retracted":
            return report
        if report.state != "finished":
            self.recover()  # an answer recorded but not applied: a report id, a finish
            report = self.load()
        if report.state == "finished":
            raise Conflict(
                f"report {report.id} is finished: NCMEC allows retracting unfinished reports only"
            )

        def retracted(note: str) -> Callable[[Connection, NcmecResponse | None], None]:
            def apply(conn: Connection, answer: NcmecResponse | None) -> None:
                conn.execute(
                    update(REPORTS)
                    .where(REPORTS.c.id == self.report_id, REPORTS.c.state != "finished")
                    .values(state="retracted", error=None, updated_at=_now())
                )
                record(
                    conn,
                    "report.retract",
                    self.subject,
                    {"ncmec_report_id": report.ncmec_report_id, "at_ncmec": note},
                )

            return apply

        if report.ncmec_report_id is None:
            self.write(lambda conn: retracted("never submitted")(conn, None))
            return self.load()
        if self.client is None:
            raise InvalidRequest(
                f"report {report.id} was sent to NCMEC (report {report.ncmec_report_id}): "
                "retracting it needs NCMEC's API, and reporting is off (set LIGHTKEEPER_NCMEC_URL)"
            )
        try:
            self.client.retract(
                report.ncmec_report_id, self.journal(retracted("retracted"), self.need_retract)
            )
        except NcmecError as exc:
            self.interrupted()
            if exc.response_code in (REPORT_ALREADY_RETRACTED, REPORT_DOES_NOT_EXIST):
                note = (
                    "already retracted"
                    if exc.response_code == REPORT_ALREADY_RETRACTED
                    else "unknown to NCMEC (expired unfinished)"
                )
                self.write(lambda conn: retracted(note)(conn, None))
            elif exc.response_code == REPORT_ALREADY_FINISHED:
                raise Conflict(
                    f"NCMEC says report {report.ncmec_report_id} is already finished: run "
                    f"`lightkeeper report submit {report.id}` to record it"
                ) from None
            else:
                raise
        except BaseException:
            self.interrupted()
            raise
        return self.load()


def _mismatch(answer: NcmecResponse, md5: str | None) -> bool:
    """Whether NCMEC's MD5 of an upload is not the file's `md5` (None: not known)."""
    return bool(md5 and answer.hash and answer.hash.strip().lower() != md5.lower())


def submit(store: BankStore, vault: Vault, client: CyberTiplineClient, report_id: int) -> Report:
    with _one_run(report_id):
        flow = _Flow(store, client, report_id)
        flow.take_lease()  # NotFound, or Conflict while another process holds it
        try:
            flow.run(vault)
        except NcmecError as exc:
            flow.interrupted()
            flow.fail(str(exc))
            raise
        except BaseException:
            flow.interrupted()
            raise
        finally:
            flow.release()
    return get_report(store, report_id)


def retract(
    store: BankStore, client: CyberTiplineClient | None, report_id: int, *, actor: str
) -> Report:
    with _one_run(report_id), acting_as(actor):
        flow = _Flow(store, client, report_id)
        with flow.lease():
            return flow.retract()
