"""CyberTipline reports as a platform and NCMEC rely on them, on SQLite and PostgreSQL: made
only from confirmed cases, each file saying truthfully (from the audit trail) whether a
person viewed it, sent through the documented flow to the contract server, resumed after a
crash or a refusal without filing twice, retracted while unfinished, and, once finished,
the case reported and its files kept in the vault for the retention period.

All content is benign: small synthetic photos (conftest).
"""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from lightkeeper.actions import webhooks as wh
from lightkeeper.actions.cases import CASE_MATCHES, get_case
from lightkeeper.actions.vault import Vault
from lightkeeper.banks import BankStore
from lightkeeper.banks.audit import list_events, verify
from lightkeeper.cli.main import main
from lightkeeper.errors import Conflict, InvalidRequest, NcmecError, NotFound
from lightkeeper.reporting import _submission
from lightkeeper.reporting.cybertipline import parse_document
from lightkeeper.reporting.ncmec_client import CyberTiplineClient
from lightkeeper.reporting.ncmec_contract import ContractServer, check_document
from lightkeeper.reporting.reports import (
    CASE_REVIEWS,
    REPORTS,
    create_report,
    get_report,
    list_reports,
    report_calls,
    reports_of_case,
    retract_report,
    submit_report,
)
from lightkeeper.review.accounts import Reviewer, create_reviewer
from lightkeeper.review.decisions import decide
from lightkeeper.review.exposure import reveal
from reporting_helpers import (
    PASSWORD,
    PROFILE,
    PROFILE_DATA,
    USER,
    confirmed,
    confirmed_report,
    make_client,
    photo,
    quarantined,
)

# The store (SQLite and PostgreSQL), vault, contract server, client and reviewer fixtures.
pytest_plugins = ("reporting_fixtures",)


def fileinfos(server: ContractServer, ncmec_id: str) -> list[ET.Element]:
    report = server.report(ncmec_id)
    return [parse_document(f.fileinfo[-1].encode()) for f in report.files.values() if f.fileinfo]


# ---------------------------------------------------------------- the whole flow


def test_a_confirmed_case_is_reported_end_to_end(
    store: BankStore,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    client: CyberTiplineClient,
) -> None:
    wh.create_endpoint(store, "platform", "http://127.0.0.1:9/hooks")
    case_id, [seen, unseen] = quarantined(store, vault, 1, ["user-42", "user-42"])
    reveal(store, vault, ana, seen, reason="decide the case")
    confirmed(store, case_id, ana)

    draft = create_report(store, case_id, profile=PROFILE, actor="reviewer:ana")
    assert (draft.state, draft.ncmec_report_id, draft.created_by) == ("draft", None, "reviewer:ana")
    assert {f.case_match_id: f.viewed_by_esp for f in draft.files} == {seen: True, unseen: False}
    assert check_document(parse_document(draft.xml.encode()), "report") == []

    done = submit_report(store, vault, client, draft.id)
    assert done.state == "finished" and done.finished_at is not None and done.error is None
    assert done.ncmec_report_id is not None
    received = server.report(done.ncmec_report_id)
    assert received.state == "finished" and received.xml == draft.xml
    assert len(received.files) == 2
    data = photo(1)
    assert {f.sha256 for f in received.files.values()} == {hashlib.sha256(data).hexdigest()}
    viewed = {
        d.findtext("fileId"): d.findtext("fileViewedByEsp")
        for d in fileinfos(server, done.ncmec_report_id)
    }
    by_match = {f.case_match_id: f.ncmec_file_id for f in done.files}
    assert viewed == {by_match[seen]: "true", by_match[unseen]: "false"}
    [details] = fileinfos(server, done.ncmec_report_id)[:1]
    assert details.findtext("industryClassification") == "B1"
    hashes = {h.get("hashType"): h.text for h in details.findall("originalFileHash")}
    assert hashes == {
        "SHA256": hashlib.sha256(data).hexdigest(),
        "MD5": hashlib.md5(data).hexdigest(),
    }
    names = {p.findtext("name"): p.findtext("value") for p in details.findall("details/*")}
    assert names["listName"] == "industry-list" and names["externalId"] == "X-1"

    # the case is reported, its files kept a year, the platform told, everything audited
    assert get_case(store, case_id).case.status == "reported"
    for file in done.files:
        assert file.vault_object_id is not None
        held = vault.get(file.vault_object_id)
        assert held.reported_at == done.finished_at
        assert held.retain_until is not None
        assert held.retain_until - done.finished_at == timedelta(days=365)
    [event] = [d for d in wh.list_deliveries(store) if d.event_type == "report"]
    sent = wh.get_event(store, event.event_id).data
    assert sent["ncmec_report_id"] == done.ncmec_report_id and sent["case_id"] == case_id
    assert sent["uploaders"] == ["user-42"]
    actions = [e.action for e in list_events(store.engine, subject=f"report/{draft.id}")]
    assert actions[0] == "report.create" and actions[-1] == "report.finish"
    assert actions.count("report.upload") == 2 and actions.count("report.fileinfo") == 2
    assert verify(store.engine).ok

    # every call was written down, as sent: the XML exactly, uploads without their bytes
    calls = report_calls(store, draft.id)
    assert [c.step for c in calls] == [
        "submit",
        "upload",
        "fileinfo",
        "upload",
        "fileinfo",
        "finish",
    ]
    assert calls[0].request == draft.xml and calls[0].status_code == 200
    upload = json.loads(calls[1].request)
    assert upload["file"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert upload["file"]["size"] == len(data)
    # reading the files to upload them was a system read, not a view by a person
    readers = {a.actor for a in vault.access_log() if a.action == "read"}
    assert readers == {"reviewer:ana", "system:reporting"}

    # running it again changes nothing and calls nobody; a finished report stays finished
    before = len(server.calls)
    assert submit_report(store, vault, client, draft.id).state == "finished"
    assert len(server.calls) == before
    with pytest.raises(Conflict, match="finished"):
        retract_report(store, client, draft.id, actor="t")
    with pytest.raises(NcmecError) as caught:  # and NCMEC takes no more files for it
        client.upload(done.ncmec_report_id, b"more", filename="x.jpg", media_type="image/jpeg")
    assert caught.value.response_code == 5102
    assert server.report(done.ncmec_report_id).state == "finished"


# ---------------------------------------------------------------- what can be reported


def test_only_a_confirmed_case_can_be_reported(
    store: BankStore, vault: Vault, ana: Reviewer
) -> None:
    case_id, _ = quarantined(store, vault, 3, ["user-1"])
    with pytest.raises(Conflict, match="only a confirmed case"):
        create_report(store, case_id, profile=PROFILE, actor="t")
    decide(store, case_id, ana, "confirm", classification="A2")  # two-person rule: waiting
    with pytest.raises(Conflict, match="awaiting_approval"):
        create_report(store, case_id, profile=PROFILE, actor="t")
    bea = create_reviewer(store, "bea")
    decide(store, case_id, bea, "approve")
    assert create_report(store, case_id, profile=PROFILE, actor="t").state == "draft"


def test_one_report_per_uploader_and_none_twice(
    store: BankStore, vault: Vault, ana: Reviewer, client: CyberTiplineClient
) -> None:
    case_id, [first, second, third] = quarantined(store, vault, 4, ["user-1", "user-2", "user-1"])
    confirmed(store, case_id, ana)
    with pytest.raises(Conflict, match="2 uploader references"):
        create_report(store, case_id, profile=PROFILE, actor="t")
    with pytest.raises(InvalidRequest, match="no upload by uploader"):
        create_report(store, case_id, profile=PROFILE, actor="t", uploader="user-9")
    mine = create_report(store, case_id, profile=PROFILE, actor="t", uploader="user-1")
    assert [f.case_match_id for f in mine.files] == [first, third]
    root = parse_document(mine.xml.encode())
    assert root.findtext("personOrUserReported/espIdentifier") == "user-1"
    with pytest.raises(Conflict, match="already has a live report"):
        create_report(store, case_id, profile=PROFILE, actor="t", uploader="user-1")
    theirs = create_report(store, case_id, profile=PROFILE, actor="t", uploader="user-2")
    assert [f.case_match_id for f in theirs.files] == [second]
    retract_report(store, None, mine.id, actor="t")  # never sent: withdrawn here only
    again = create_report(store, case_id, profile=PROFILE, actor="t", uploader="user-1")
    assert [r.id for r in reports_of_case(store, case_id)] == [mine.id, theirs.id, again.id]
    assert [r.id for r in list_reports(store, state="retracted")] == [mine.id]


def test_a_case_whose_confirmation_was_undone_is_not_sent(
    store: BankStore,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    client: CyberTiplineClient,
) -> None:
    report = confirmed_report(store, vault, ana, 14)
    case_id = report.case_id
    with store.engine.begin() as conn:  # as an upheld appeal leaves it
        conn.execute(
            update(CASE_REVIEWS).where(CASE_REVIEWS.c.case_id == case_id).values(state="reversed")
        )
    for _ in range(2):  # a resume is refused the same way, and leaves it failed saying why
        with pytest.raises(Conflict, match="no longer confirmed"):
            submit_report(store, vault, client, report.id)
        refused = get_report(store, report.id)
        assert server.calls == [] and refused.state == "failed"
        assert refused.error is not None and "no longer confirmed" in refused.error
    assert retract_report(store, client, report.id, actor="t").state == "retracted"


def test_an_upload_time_ahead_of_the_clock_is_clamped(
    store: BankStore,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    client: CyberTiplineClient,
) -> None:
    case_id, [match] = quarantined(store, vault, 5, ["user-1"])
    ahead = datetime.now(UTC) + timedelta(days=1)
    with store.engine.begin() as conn:
        conn.execute(update(CASE_MATCHES).where(CASE_MATCHES.c.id == match).values(at=ahead))
    confirmed(store, case_id, ana)
    report = create_report(store, case_id, profile=PROFILE, actor="t")
    root = parse_document(report.xml.encode())
    when = datetime.fromisoformat(root.findtext("incidentSummary/incidentDateTime") or "")
    assert when <= datetime.now(UTC)
    assert "after this report" in (
        root.findtext("incidentSummary/incidentDateTimeDescription") or ""
    )
    assert submit_report(store, vault, client, report.id).state == "finished"


# ---------------------------------------------------------------- failures and resumption


class CrashOn:
    """A client that dies (as a process would) just before its `nth` call of `step`."""

    def __init__(self, real: CyberTiplineClient, step: str, nth: int = 1) -> None:
        self._real, self._step, self._left = real, step, nth

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._real, name)
        if name != self._step:
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self._left -= 1
            if self._left == 0:
                raise SystemExit("killed")
            return attribute(*args, **kwargs)

        return call


def test_a_crash_mid_flow_resumes_without_submitting_twice(
    store: BankStore,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    client: CyberTiplineClient,
) -> None:
    case_id, _ = quarantined(store, vault, 6, ["user-1", "user-1", "user-1"])
    confirmed(store, case_id, ana)
    report = create_report(store, case_id, profile=PROFILE, actor="t")
    with pytest.raises(SystemExit):
        submit_report(store, vault, CrashOn(client, "upload", nth=2), report.id)  # type: ignore[arg-type]
    stopped = get_report(store, report.id)
    assert stopped.state == "submitted" and stopped.ncmec_report_id is not None
    assert [f.ncmec_file_id is not None for f in stopped.files] == [True, False, False]

    done = submit_report(store, vault, client, report.id)
    assert done.state == "finished" and done.ncmec_report_id == stopped.ncmec_report_id
    assert len(server.calls_to("/submit")) == 1
    assert len(server.calls_to("/upload")) == 3  # the first file was not sent again
    assert len(server.report(str(done.ncmec_report_id)).files) == 3


def test_an_answer_recorded_but_not_applied_is_applied_on_resume(
    store: BankStore,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    client: CyberTiplineClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report = confirmed_report(store, vault, ana, 7)

    def dies(*args: Any) -> None:
        raise SystemExit("killed after NCMEC answered, before the id was stored")

    with monkeypatch.context() as patch:
        patch.setattr(_submission._Flow, "apply_submit", lambda self, conn, answer: dies())
        with pytest.raises(SystemExit):
            submit_report(store, vault, client, report.id)
    assert get_report(store, report.id).ncmec_report_id is None
    [call] = report_calls(store, report.id)
    assert call.status_code == 200 and "reportId" in (call.response or "")

    done = submit_report(store, vault, client, report.id)
    assert done.state == "finished"
    assert len(server.calls_to("/submit")) == 1  # NCMEC's recorded answer was used


def test_a_500_then_a_200_is_retried_and_recorded(
    store: BankStore,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    client: CyberTiplineClient,
) -> None:
    report = confirmed_report(store, vault, ana, 8)
    server.fail_next("/upload", status=500)
    assert submit_report(store, vault, client, report.id).state == "finished"
    steps = [(c.step, c.status_code) for c in report_calls(store, report.id)]
    assert steps == [
        ("submit", 200),
        ("upload", 500),
        ("upload", 200),
        ("fileinfo", 200),
        ("finish", 200),
    ]
    assert len(server.report(str(get_report(store, report.id).ncmec_report_id)).files) == 1


def test_wrong_credentials_fail_the_report_clearly_and_it_resumes_once_fixed(
    store: BankStore,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    client: CyberTiplineClient,
) -> None:
    report = confirmed_report(store, vault, ana, 9)
    with pytest.raises(NcmecError, match="refused the credentials"):
        submit_report(store, vault, make_client(server, "wrong"), report.id)
    failed = get_report(store, report.id)
    assert failed.state == "failed" and "credentials" in (failed.error or "")
    assert len(report_calls(store, report.id)) == 1  # a 401 is not retried
    assert submit_report(store, vault, client, report.id).state == "finished"


def test_a_report_being_sent_elsewhere_is_not_sent_twice(
    store: BankStore,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    client: CyberTiplineClient,
) -> None:
    report = confirmed_report(store, vault, ana, 10)
    until = datetime.now(UTC) + timedelta(minutes=5)
    with store.engine.begin() as conn:  # another process holds the report's lease
        conn.execute(
            update(REPORTS)
            .where(REPORTS.c.id == report.id)
            .values(lease_owner="elsewhere", lease_until=until)
        )
    with pytest.raises(Conflict, match="another process is submitting") as caught:
        submit_report(store, vault, client, report.id)
    assert f"try again after {until:%Y-%m-%d %H:%M:%S} UTC" in str(caught.value)
    with pytest.raises(Conflict, match="another process"):
        retract_report(store, client, report.id, actor="t")
    assert get_report(store, report.id).state == "draft" and server.calls == []
    with store.engine.begin() as conn:  # that process died: its lease runs out
        conn.execute(
            update(REPORTS)
            .where(REPORTS.c.id == report.id)
            .values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert submit_report(store, vault, client, report.id).state == "finished"
    with store.engine.connect() as conn:  # released at the end of the run
        lease = conn.execute(
            select(REPORTS.c.lease_owner, REPORTS.c.lease_until).where(REPORTS.c.id == report.id)
        ).one()
    assert tuple(lease) == (None, None)


# ---------------------------------------------------------------- retraction


def test_an_unfinished_report_is_retracted_at_ncmec_and_stays_retracted(
    store: BankStore,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    client: CyberTiplineClient,
) -> None:
    report = confirmed_report(store, vault, ana, 11)
    case_id = report.case_id
    server.fail_next("/finish", times=3, status=502)
    with pytest.raises(NcmecError, match="HTTP 502"):
        submit_report(store, vault, client, report.id)
    failed = get_report(store, report.id)
    assert failed.state == "failed" and failed.ncmec_report_id is not None
    assert all(f.fileinfo_at is not None for f in failed.files)

    retracted = retract_report(store, client, report.id, actor="reviewer:ana")
    assert retracted.state == "retracted"
    assert server.report(str(failed.ncmec_report_id)).state == "retracted"
    assert retract_report(store, client, report.id, actor="t").state == "retracted"
    with pytest.raises(Conflict, match="retracted"):
        submit_report(store, vault, client, report.id)
    assert get_case(store, case_id).case.status == "decided"
    assert "report.retract" in [
        e.action for e in list_events(store.engine, subject=f"report/{report.id}")
    ]


# ---------------------------------------------------------------- the command line


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # a thin layer: once is enough
def test_the_report_commands(
    store: BankStore,
    store_url: str,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    tmp_path: Path,
) -> None:
    case_id, _ = quarantined(store, vault, 13, ["user-1"])
    confirmed(store, case_id, ana)
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(PROFILE_DATA), encoding="utf-8")
    env = {
        "LIGHTKEEPER_DATABASE_URL": store_url,
        "LIGHTKEEPER_VAULT_DIR": str(vault.root),
        "LIGHTKEEPER_VAULT_KEY_FILE": str(tmp_path / "vault.key"),
        "LIGHTKEEPER_REPORTER_PROFILE": str(profile),
        "LIGHTKEEPER_NCMEC_URL": server.url,
        "LIGHTKEEPER_NCMEC_USERNAME": USER,
        "LIGHTKEEPER_NCMEC_PASSWORD": PASSWORD,
        "LIGHTKEEPER_NCMEC_ATTEMPTS": "1",
    }
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(main, ["report", *args], env=env)
        assert result.exit_code == 0, result.output
        return result.output

    report_id = run("create", str(case_id)).strip()
    off = runner.invoke(
        main, ["report", "submit", report_id], env={**env, "LIGHTKEEPER_NCMEC_URL": ""}
    )
    assert off.exit_code == 1 and "reporting is off" in off.output
    assert run("show", report_id, "--xml").startswith('<?xml version="1.0" encoding="UTF-8"?>')
    ncmec_id = run("submit", report_id).strip()
    assert server.report(ncmec_id).state == "finished"
    shown = run("show", report_id, "--calls")
    assert "finished" in shown and "not viewed by a person" in shown and "finish" in shown
    assert f"ncmec {ncmec_id}" in run("list", "--case", str(case_id))
    refused = runner.invoke(main, ["report", "retract", report_id], env=env)
    assert refused.exit_code == 1 and "finished" in refused.output


# ---------------------------------------------------------------- integrity (review findings)


@pytest.fixture
def damaged_md5(monkeypatch: pytest.MonkeyPatch) -> str:
    """The contract server answers every upload with an MD5 that is not the file's (the file
    was damaged on the way); returns that MD5."""
    wrong = "0" * 32
    real_upload = ContractServer._upload

    def damaged(self: ContractServer, headers: Any, body: bytes) -> bytes:
        answer = real_upload(self, headers, body)
        return re.sub(rb"<hash>[0-9a-f]+</hash>", f"<hash>{wrong}</hash>".encode(), answer)

    monkeypatch.setattr(ContractServer, "_upload", damaged)
    return wrong


def test_an_md5_mismatch_marks_the_file_damaged_and_no_resume_finishes_it(
    store: BankStore,
    store_url: str,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    client: CyberTiplineClient,
    damaged_md5: str,
) -> None:
    report = confirmed_report(store, vault, ana, 21)
    with pytest.raises(NcmecError, match="damaged on the way"):
        submit_report(store, vault, client, report.id)
    failed = get_report(store, report.id)
    [file] = failed.files
    assert failed.state == "failed" and file.ncmec_file_id is None and file.damaged_at is not None
    with pytest.raises(Conflict, match="damaged"):  # resuming never finishes it
        submit_report(store, vault, client, report.id)
    assert server.calls_to("/finish") == [] and len(server.calls_to("/upload")) == 1
    shown = CliRunner().invoke(
        main, ["report", "show", str(report.id)], env={"LIGHTKEEPER_DATABASE_URL": store_url}
    )
    assert shown.exit_code == 0 and "DAMAGED on the way to NCMEC" in shown.output
    # No content hash in the report's error or in the audit trail.
    md5 = hashlib.md5(photo(21)).hexdigest()
    events = list_events(store.engine, subject=f"report/{report.id}")
    said = json.dumps([e.details for e in events]) + (get_report(store, report.id).error or "")
    assert md5 not in said and damaged_md5 not in said
    assert retract_report(store, client, report.id, actor="t").state == "retracted"


def killed_after_the_upload_answer(
    store: BankStore,
    vault: Vault,
    client: CyberTiplineClient,
    report_id: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Submit the report, the process killed after NCMEC answered the upload and before the
    file id was stored: the answer is in the journal only."""

    def dies(self: Any, file_id: int, md5: str | None) -> Any:
        def apply(conn: Any, answer: Any) -> None:
            raise SystemExit("killed after NCMEC answered, before the file id was stored")

        return apply

    with monkeypatch.context() as patch:
        patch.setattr(_submission._Flow, "apply_upload", dies)
        with pytest.raises(SystemExit):
            submit_report(store, vault, client, report_id)


def test_a_recorded_upload_answer_is_checked_before_it_is_applied_on_resume(
    store: BankStore,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    client: CyberTiplineClient,
    monkeypatch: pytest.MonkeyPatch,
    damaged_md5: str,
) -> None:
    report = confirmed_report(store, vault, ana, 22)
    killed_after_the_upload_answer(store, vault, client, report.id, monkeypatch)
    with pytest.raises(Conflict, match="damaged"):  # recovery checked NCMEC's MD5
        submit_report(store, vault, client, report.id)
    [file] = get_report(store, report.id).files
    assert file.ncmec_file_id is None and file.damaged_at is not None
    assert server.calls_to("/fileinfo") == [] and server.calls_to("/finish") == []


def test_an_upload_whose_answer_was_lost_is_not_sent_again_by_itself(
    store: BankStore,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    client: CyberTiplineClient,
) -> None:
    report = confirmed_report(store, vault, ana, 23)
    server.fail_next("/upload", status=None, handled=True)  # NCMEC added it; no answer came
    with pytest.raises(NcmecError, match="its answer was lost"):
        submit_report(store, vault, client, report.id)
    assert len(server.calls_to("/upload")) == 1  # not retried within the call
    failed = get_report(store, report.id)
    assert failed.state == "failed" and "unknown" in (failed.error or "")
    assert (report_calls(store, report.id)[-1].error or "").startswith("outcome unknown")
    # A person decides: resuming sends it again, and the finish names the copy not recorded.
    done = submit_report(store, vault, client, report.id)
    assert done.state == "finished" and len(server.calls_to("/upload")) == 2
    [finish] = [
        e
        for e in list_events(store.engine, subject=f"report/{report.id}")
        if e.action == "report.finish"
    ]
    assert len(finish.details["unrecorded_files"]) == 1


def test_any_2xx_accepted_by_the_client_is_applied_by_the_journal(
    store: BankStore,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    client: CyberTiplineClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report = confirmed_report(store, vault, ana, 24)
    real_handle = ContractServer.handle

    def created(self: ContractServer, method: str, path: str, headers: Any, body: bytes) -> Any:
        status, payload = real_handle(self, method, path, headers, body)
        return (201 if path == "/submit" else status), payload

    monkeypatch.setattr(ContractServer, "handle", created)
    done = submit_report(store, vault, client, report.id)
    [ncmec_id] = server.reports
    assert done.state == "finished" and done.ncmec_report_id == ncmec_id


def test_submitting_an_unknown_report_writes_nothing(
    store: BankStore, vault: Vault, client: CyberTiplineClient
) -> None:
    with pytest.raises(NotFound):
        submit_report(store, vault, client, 999)
    assert list_events(store.engine, subject="report/999") == []


def test_a_report_with_no_file_blocks_only_its_own_uploader(
    store: BankStore, vault: Vault, ana: Reviewer
) -> None:
    case_id, [first, _] = quarantined(store, vault, 25, ["user-1", "user-2"])
    with store.engine.begin() as conn:  # user-1's copy was not quarantined
        conn.execute(
            update(CASE_MATCHES).where(CASE_MATCHES.c.id == first).values(vault_object_id=None)
        )
    confirmed(store, case_id, ana)
    mine = create_report(store, case_id, profile=PROFILE, actor="t", uploader="user-1")
    assert mine.files == () and mine.uploader == "user-1"
    theirs = create_report(store, case_id, profile=PROFILE, actor="t", uploader="user-2")
    assert theirs.uploader == "user-2" and len(theirs.files) == 1
    with pytest.raises(Conflict, match="already has a live report"):
        create_report(store, case_id, profile=PROFILE, actor="t", uploader="user-1")


def test_copies_with_no_uploader_reference_are_a_reported_user_of_their_own(
    store: BankStore, vault: Vault, ana: Reviewer
) -> None:
    case_id, [anonymous, named] = quarantined(store, vault, 26, [None, "user-1"])
    confirmed(store, case_id, ana)
    with pytest.raises(Conflict, match="no uploader reference"):
        create_report(store, case_id, profile=PROFILE, actor="t")
    first = create_report(store, case_id, profile=PROFILE, actor="t", without_uploader=True)
    assert first.uploader is None and [f.case_match_id for f in first.files] == [anonymous]
    assert parse_document(first.xml.encode()).find("personOrUserReported") is None
    with pytest.raises(Conflict, match="no uploader reference; retract it"):
        create_report(store, case_id, profile=PROFILE, actor="t", without_uploader=True)
    second = create_report(store, case_id, profile=PROFILE, actor="t", uploader="user-1")
    assert [f.case_match_id for f in second.files] == [named]


def test_the_database_holds_one_live_report_per_case_and_uploader(
    store: BankStore, vault: Vault, ana: Reviewer
) -> None:
    case_id, _ = quarantined(store, vault, 27, [None, "user-1"])
    confirmed(store, case_id, ana)
    made = {
        who: create_report(
            store,
            case_id,
            profile=PROFILE,
            actor="t",
            uploader=who,
            without_uploader=who is None,
        )
        for who in (None, "user-1")
    }
    now = datetime.now(UTC)
    for who, report in made.items():
        row = {
            "case_id": case_id,
            "uploader": who,
            "state": "draft",
            "xml": report.xml,
            "created_at": now,
            "created_by": "t",
            "updated_at": now,
        }
        with pytest.raises(IntegrityError), store.engine.begin() as conn:
            conn.execute(insert(REPORTS), row)
        retract_report(store, None, report.id, actor="t")
        with store.engine.begin() as conn:  # once the first is retracted, a second may live
            conn.execute(insert(REPORTS), row)


def test_the_incident_time_is_that_of_the_reported_files(
    store: BankStore, vault: Vault, ana: Reviewer
) -> None:
    case_id, [early, late] = quarantined(store, vault, 28, ["user-1", "user-1"])
    first = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with store.engine.begin() as conn:  # the earliest copy is not in the vault: not reported
        conn.execute(
            update(CASE_MATCHES)
            .where(CASE_MATCHES.c.id == early)
            .values(vault_object_id=None, at=first)
        )
        conn.execute(
            update(CASE_MATCHES)
            .where(CASE_MATCHES.c.id == late)
            .values(at=first + timedelta(days=3))
        )
    confirmed(store, case_id, ana)
    report = create_report(store, case_id, profile=PROFILE, actor="t")
    assert [f.case_match_id for f in report.files] == [late]
    when = parse_document(report.xml.encode()).findtext("incidentSummary/incidentDateTime")
    assert when == "2026-01-05T03:04:05+00:00"


# ---------------------------------------------------------------- migration 0011


def _alembic(store: BankStore, direction: str, revision: str) -> None:
    from alembic import command

    from lightkeeper.banks import _engine
    from lightkeeper.banks._migrate import alembic_config

    _engine.write(
        store.engine, lambda conn: getattr(command, direction)(alembic_config(conn), revision)
    )


def test_the_migration_gives_existing_reports_their_uploader(
    store: BankStore, vault: Vault, ana: Reviewer
) -> None:
    two, [_, second] = quarantined(store, vault, 29, ["user-1", "user-2"])
    anonymous, _ = quarantined(store, vault, 30, [None])
    mixed, [nameless, _] = quarantined(store, vault, 31, [None, "user-3"])
    with store.engine.begin() as conn:  # copies not in the vault: reports with no file
        conn.execute(
            update(CASE_MATCHES)
            .where(CASE_MATCHES.c.id.in_((second, nameless)))
            .values(vault_object_id=None)
        )
    for case_id in (two, anonymous, mixed):
        confirmed(store, case_id, ana)
    made = [
        create_report(store, two, profile=PROFILE, actor="t", uploader="user-1"),
        create_report(store, two, profile=PROFILE, actor="t", uploader="user-2"),
        create_report(store, anonymous, profile=PROFILE, actor="t"),
        create_report(store, mixed, profile=PROFILE, actor="t", without_uploader=True),
        create_report(store, mixed, profile=PROFILE, actor="t", uploader="user-3"),
    ]
    retract_report(store, None, made[0].id, actor="t")
    made.append(create_report(store, two, profile=PROFILE, actor="t", uploader="user-1"))
    assert [bool(r.files) for r in made] == [True, False, True, False, True, True]

    _alembic(store, "downgrade", "0010")
    _alembic(store, "upgrade", "head")
    assert [get_report(store, r.id).uploader for r in made] == [r.uploader for r in made]
    for live in (made[3], made[4]):  # no uploader; user-3: each has a live report
        with pytest.raises(IntegrityError), store.engine.begin() as conn:
            conn.execute(insert(REPORTS), _copy_of(live))

    # Two live reports for one case and uploader stop the upgrade, which changes nothing;
    # once the extra one is retracted, it goes through.
    _alembic(store, "downgrade", "0010")
    with store.engine.begin() as conn:
        extra = conn.execute(
            insert(REPORTS).returning(REPORTS.c.id),
            {k: v for k, v in _copy_of(made[2]).items() if k != "uploader"},
        ).scalar_one()
    with pytest.raises(RuntimeError, match=rf"case {anonymous}, uploader None: 2 live reports"):
        _alembic(store, "upgrade", "head")
    with store.engine.begin() as conn:
        conn.execute(update(REPORTS).where(REPORTS.c.id == extra).values(state="retracted"))
    _alembic(store, "upgrade", "head")
    assert [get_report(store, r.id).uploader for r in made] == [r.uploader for r in made]
    assert get_report(store, extra).uploader is None


def _copy_of(report: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "case_id": report.case_id,
        "uploader": report.uploader,
        "state": "draft",
        "xml": report.xml,
        "created_at": now,
        "created_by": "t",
        "updated_at": now,
    }


@pytest.mark.parametrize("then", ["resume", "retract"])
def test_an_accepted_answer_without_its_id_blocks_neither_resuming_nor_retracting(
    store: BankStore,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    client: CyberTiplineClient,
    monkeypatch: pytest.MonkeyPatch,
    then: str,
) -> None:
    report = confirmed_report(store, vault, ana, 32)
    real_submit = ContractServer._submit

    def no_id(self: ContractServer, headers: Any, body: bytes) -> bytes:
        return re.sub(rb"<reportId>[^<]*</reportId>", b"", real_submit(self, headers, body))

    with monkeypatch.context() as patch:
        patch.setattr(ContractServer, "_submit", no_id)
        with pytest.raises(NcmecError, match="answered no report id"):
            submit_report(store, vault, client, report.id)
    assert get_report(store, report.id).state == "failed"
    # The recorded answer (accepted, but with nothing to apply) is passed over by recovery.
    if then == "resume":
        done = submit_report(store, vault, client, report.id)
        assert done.state == "finished" and len(server.calls_to("/submit")) == 2
    else:
        assert retract_report(store, client, report.id, actor="t").state == "retracted"


def test_an_answer_that_is_not_ncmecs_xml_leaks_no_hash_into_the_error(
    store: BankStore,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    client: CyberTiplineClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report = confirmed_report(store, vault, ana, 33)
    real_upload = ContractServer._upload

    def garbled(self: ContractServer, headers: Any, body: bytes) -> bytes:
        answer = real_upload(self, headers, body)  # NCMEC's MD5 of the file in it
        return re.sub(rb"<response(Code|Description)>[^<]*</response\1>", b"", answer)

    monkeypatch.setattr(ContractServer, "_upload", garbled)
    with pytest.raises(NcmecError, match="no CyberTipline XML") as caught:
        submit_report(store, vault, client, report.id)
    data = photo(33)
    hashes = (hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest())
    events = list_events(store.engine, subject=f"report/{report.id}")
    said = str(caught.value) + json.dumps([e.details for e in events])
    said += get_report(store, report.id).error or ""
    assert not any(h in said.lower() for h in hashes)


def test_a_report_made_meanwhile_elsewhere_is_refused_naming_its_uploader(
    store: BankStore, vault: Vault, ana: Reviewer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightkeeper.reporting import reports

    case_id, _ = quarantined(store, vault, 34, ["user-1"])
    confirmed(store, case_id, ana)
    first = create_report(store, case_id, profile=PROFILE, actor="t")
    retract_report(store, None, first.id, actor="t")
    real_was_viewed = reports.was_viewed

    def raced(conn: Any, match_id: int) -> bool:
        # Another reviewer's report of the same uploader lands after this one's check.
        conn.execute(insert(REPORTS), _copy_of(first))
        return real_was_viewed(conn, match_id)

    monkeypatch.setattr(reports, "was_viewed", raced)
    with pytest.raises(Conflict, match="already has a live report for uploader 'user-1'"):
        create_report(store, case_id, profile=PROFILE, actor="t")  # the one uploader, unnamed


def test_a_report_with_a_damaged_file_is_left_failed_saying_why(
    store: BankStore,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    client: CyberTiplineClient,
    monkeypatch: pytest.MonkeyPatch,
    damaged_md5: str,
) -> None:
    report = confirmed_report(store, vault, ana, 35)
    killed_after_the_upload_answer(store, vault, client, report.id, monkeypatch)
    assert get_report(store, report.id).state == "submitted"
    for _ in range(2):  # found on resume (the recorded answer), then again on the next one
        with pytest.raises(Conflict, match="damaged"):
            submit_report(store, vault, client, report.id)
        stopped = get_report(store, report.id)
        assert stopped.state == "failed" and "damaged" in (stopped.error or "")
