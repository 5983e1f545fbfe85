"""The submission state machine behind `lightkeeper.reporting.reports` (see its docstring).

`_Journal` writes every attempt of a call to ``report_calls`` and applies a successful answer
in the transaction that records it; `_Flow` runs the steps of one report from what is stored,
recovering answers that were recorded but not applied; `submit` and `retract` are the bodies
of `reports.submit_report` and `reports.retract_report`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from lightkeeper.actions.cases import CASE_MATCHES, CASES
from lightkeeper.actions.vault import Vault
from lightkeeper.actions.webhooks import enqueue_in
from lightkeeper.banks import _engine
from lightkeeper.banks.audit import acting_as, record
from lightkeeper.banks.store import BankStore
from lightkeeper.errors import Conflict, InvalidRequest, NcmecError, StoreError
from lightkeeper.reporting.cybertipline import FileFacts, file_details_xml, parse_document
from lightkeeper.reporting.ncmec_client import (
    REPORT_ALREADY_FINISHED,
    REPORT_ALREADY_RETRACTED,
    REPORT_DOES_NOT_EXIST,
    CyberTiplineClient,
    NcmecResponse,
    Step,
    parse_response,
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


class _Journal:
    """Writes each attempt of one call to ``report_calls`` (see `CallJournal`); applies a
    successful answer with `apply` in the transaction that records it."""

    def __init__(self, flow: _Flow, apply: Apply | None) -> None:
        self._flow = flow
        self._apply = apply

    def before(self, step: Step, request: str) -> int:
        flow = self._flow
        cutoff = _now() - timedelta(seconds=flow.api.call_budget)

        def work(conn: Connection) -> int:
            busy = conn.execute(
                select(REPORT_CALLS.c.at)
                .where(
                    REPORT_CALLS.c.report_id == flow.report_id,
                    REPORT_CALLS.c.status_code.is_(None),
                    REPORT_CALLS.c.error.is_(None),
                    REPORT_CALLS.c.at > cutoff,
                    REPORT_CALLS.c.id.not_in(tuple(flow.own) or (0,)),
                )
                .limit(1)
            ).first()
            if busy is not None:
                raise Conflict(
                    f"report {flow.report_id} is being sent by another process (a call is in "
                    f"flight since {busy.at:%H:%M:%S} UTC); try again once it is over"
                )
            return int(
                conn.execute(
                    insert(REPORT_CALLS).returning(REPORT_CALLS.c.id),
                    {"report_id": flow.report_id, "at": _now(), "step": step, "request": request},
                ).scalar_one()
            )

        handle = _engine.write(flow.store.engine, work)
        flow.own.add(handle)
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
        success = status == 200 and parsed is not None and parsed.ok

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
        #: Calls made by this run, and those not answered yet.
        self.own: set[int] = set()
        self.pending: set[int] = set()

    @property
    def api(self) -> CyberTiplineClient:
        if self.client is None:
            raise InvalidRequest("reporting is off: set LIGHTKEEPER_NCMEC_URL")
        return self.client

    def journal(self, apply: Apply | None = None) -> _Journal:
        return _Journal(self, apply)

    def write(self, work: Callable[[Connection], Any]) -> Any:
        return _engine.write(self.store.engine, work)

    def load(self) -> Report:
        return get_report(self.store, self.report_id)

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
        def work(conn: Connection) -> None:
            conn.execute(
                update(REPORTS)
                .where(
                    REPORTS.c.id == self.report_id,
                    REPORTS.c.state.not_in(("finished", "retracted")),
                )
                .values(state="failed", error=message[:4000], updated_at=_now())
            )
            record(conn, "report.failed", self.subject, {"error": message[:300]})

        self.write(work)

    # -- applying answers (each inside the transaction that records the answer)

    def apply_submit(self, conn: Connection, answer: NcmecResponse) -> None:
        if not answer.report_id:
            raise NcmecError("NCMEC accepted the report but answered no report id")
        changed = conn.execute(
            update(REPORTS)
            .where(REPORTS.c.id == self.report_id, REPORTS.c.ncmec_report_id.is_(None))
            .values(
                ncmec_report_id=answer.report_id,
                state="submitted",
                error=None,
                updated_at=_now(),
            )
        ).rowcount
        if changed:
            record(conn, "report.submit", self.subject, {"ncmec_report_id": answer.report_id})

    def apply_upload(self, file_id: int) -> Apply:
        def apply(conn: Connection, answer: NcmecResponse) -> None:
            if not answer.file_id:
                raise NcmecError("NCMEC accepted a file but answered no file id")
            changed = conn.execute(
                update(REPORT_FILES)
                .where(REPORT_FILES.c.id == file_id, REPORT_FILES.c.ncmec_file_id.is_(None))
                .values(ncmec_file_id=answer.file_id, uploaded_at=_now())
            ).rowcount
            if changed:
                record(
                    conn,
                    "report.upload",
                    self.subject,
                    {"file": file_id, "ncmec_file_id": answer.file_id},
                )

        return apply

    def apply_fileinfo(self, file_id: int, viewed: bool) -> Apply:
        def apply(conn: Connection, answer: NcmecResponse) -> None:
            changed = conn.execute(
                update(REPORT_FILES)
                .where(REPORT_FILES.c.id == file_id, REPORT_FILES.c.fileinfo_at.is_(None))
                .values(fileinfo_at=_now(), viewed_by_esp=viewed)
            ).rowcount
            if not changed:
                return
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
        row = conn.execute(select(REPORTS).where(REPORTS.c.id == self.report_id)).one()
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
        def work(conn: Connection) -> None:
            self.resume_state(conn)
            calls = conn.execute(
                select(REPORT_CALLS)
                .where(
                    REPORT_CALLS.c.report_id == self.report_id, REPORT_CALLS.c.status_code == 200
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
                answer = _parsed(call.response)
                if answer is None or not answer.ok:
                    continue
                if call.step == "submit":
                    self.apply_submit(conn, answer)
                elif call.step == "upload":
                    name = str(json.loads(call.request)["file"]["filename"]).rsplit(".", 1)[0]
                    if name in files:
                        self.apply_upload(files[name])(conn, answer)
                elif call.step == "fileinfo":
                    sent = parse_document(call.request.encode("utf-8"))
                    file_id = (sent.findtext("fileId") or "").strip()
                    viewed = (sent.findtext("fileViewedByEsp") or "").strip() == "true"
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

        self.write(work)

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

    # -- the steps

    def run(self, vault: Vault) -> None:
        report = self.load()
        if report.state == "retracted":
            raise Conflict(f"report {report.id} was retracted; make a new report of the case")
        if report.state != "finished":
            self.recover()
            report = self.load()
        if report.state != "finished":
            self.still_confirmed(report.case_id)
            ncmec_id = report.ncmec_report_id
            if ncmec_id is None:
                answer = self.api.submit(report.xml, self.journal(self.apply_submit))
                ncmec_id = str(answer.report_id)
            for file in report.files:
                self.send_file(vault, ncmec_id, file)
            self.finish(ncmec_id)
        self.retain(vault)

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

    def send_file(self, vault: Vault, ncmec_id: str, file: ReportFile) -> None:
        if file.ncmec_file_id is not None and file.fileinfo_at is not None:
            return
        object_id = file.vault_object_id
        if object_id is None:
            raise StoreError(f"file {file.id} of report {self.report_id} has no vault object")
        data = vault.read(
            object_id,
            actor=REPORTING_ACTOR,
            reason=f"upload to NCMEC's CyberTipline, report {self.report_id}",
        )
        md5 = hashlib.md5(data).hexdigest()
        ncmec_file_id = file.ncmec_file_id
        if ncmec_file_id is None:
            media_type = vault.get(object_id).media_type
            answer = self.api.upload(
                ncmec_id,
                data,
                filename=f"lightkeeper-{file.case_match_id}{_EXTENSIONS.get(media_type, '')}",
                media_type=media_type,
                journal=self.journal(self.apply_upload(file.id)),
            )
            ncmec_file_id = str(answer.file_id)
            if answer.hash and answer.hash.lower() != md5:
                raise NcmecError(
                    f"NCMEC's MD5 of file {ncmec_file_id} ({answer.hash}) is not the file's "
                    f"({md5}): it was damaged on the way; retract the report and report again"
                )
        facts, viewed = self.file_facts(file.case_match_id, data, md5)
        self.api.fileinfo(
            file_details_xml(ncmec_id, ncmec_file_id, facts),
            self.journal(self.apply_fileinfo(file.id, viewed)),
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
            self.api.finish(ncmec_id, self.journal(self.apply_finish))
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


def _parsed(text: str | None) -> NcmecResponse | None:
    if not text:
        return None
    try:
        return parse_response(text.encode("utf-8"))
    except ValueError:
        return None


def submit(store: BankStore, vault: Vault, client: CyberTiplineClient, report_id: int) -> Report:
    with _one_run(report_id):
        flow = _Flow(store, client, report_id)
        try:
            flow.run(vault)
        except NcmecError as exc:
            flow.interrupted()
            flow.fail(str(exc))
            raise
        except Conflict:
            flow.interrupted()
            raise
        except StoreError as exc:  # the vault: a file destroyed, damaged, or its key missing
            flow.interrupted()
            flow.fail(str(exc))
            raise
        except BaseException:
            flow.interrupted()
            raise
    return get_report(store, report_id)


def retract(
    store: BankStore, client: CyberTiplineClient | None, report_id: int, *, actor: str
) -> Report:
    with _one_run(report_id), acting_as(actor):
        flow = _Flow(store, client, report_id)
        report = flow.load()
        if report.state == "retracted":
            return report
        if report.state == "finished":
            raise Conflict(
                f"report {report_id} is finished: NCMEC allows retracting unfinished reports only"
            )

        def retracted(note: str) -> Callable[[Connection, NcmecResponse | None], None]:
            def apply(conn: Connection, answer: NcmecResponse | None) -> None:
                conn.execute(
                    update(REPORTS)
                    .where(REPORTS.c.id == report_id, REPORTS.c.state != "finished")
                    .values(state="retracted", error=None, updated_at=_now())
                )
                record(
                    conn,
                    "report.retract",
                    flow.subject,
                    {"ncmec_report_id": report.ncmec_report_id, "at_ncmec": note},
                )

            return apply

        if report.ncmec_report_id is None:
            flow.write(lambda conn: retracted("never submitted")(conn, None))
            return flow.load()
        if client is None:
            raise InvalidRequest(
                f"report {report_id} was sent to NCMEC (report {report.ncmec_report_id}): "
                "retracting it needs NCMEC's API, and reporting is off (set LIGHTKEEPER_NCMEC_URL)"
            )
        try:
            client.retract(report.ncmec_report_id, flow.journal(retracted("retracted")))
        except NcmecError as exc:
            flow.interrupted()
            if exc.response_code in (REPORT_ALREADY_RETRACTED, REPORT_DOES_NOT_EXIST):
                note = (
                    "already retracted"
                    if exc.response_code == REPORT_ALREADY_RETRACTED
                    else "unknown to NCMEC (expired unfinished)"
                )
                flow.write(lambda conn: retracted(note)(conn, None))
            elif exc.response_code == REPORT_ALREADY_FINISHED:
                raise Conflict(
                    f"NCMEC says report {report.ncmec_report_id} is already finished: run "
                    f"`lightkeeper report submit {report_id}` to record it"
                ) from None
            else:
                raise
        except BaseException:
            flow.interrupted()
            raise
        return flow.load()
