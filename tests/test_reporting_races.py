"""Two processes at one report, on SQLite and PostgreSQL: the report's lease lets one run (or
retraction) at a time, each call re-checks that its step is still needed, and an answer that
no longer fits the report is refused, never applied over it nor silently dropped. "Another
process" is this one with its in-process lock switched off, acting while a call is on its
way. Also the case page's choice of reported users (one live report per case and uploader).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from lightkeeper.actions.cases import get_case
from lightkeeper.actions.vault import Vault
from lightkeeper.banks import BankStore
from lightkeeper.errors import Conflict
from lightkeeper.reporting import _submission
from lightkeeper.reporting.ncmec_client import CyberTiplineClient
from lightkeeper.reporting.ncmec_contract import ContractServer
from lightkeeper.reporting.reports import (
    REPORTS,
    create_report,
    get_report,
    reports_of_case,
    retract_report,
    submit_report,
)
from lightkeeper.reporting.settings import ReportingSettings
from lightkeeper.review.accounts import Reviewer
from lightkeeper.review.settings import ReviewSettings
from lightkeeper.service.testing import TestService, service_client
from lightkeeper.service.web.reporting import NO_UPLOADER, Reporting
from reporting_helpers import PROFILE, confirmed, confirmed_report, make_client, quarantined
from test_review_web import REPORTER, csrf_of, flag, photo, review_settings, signed_in_reviewer

# The store (SQLite and PostgreSQL), vault, contract server, client and reviewer fixtures.
pytest_plugins = ("reporting_fixtures",)


@pytest.fixture
def elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every run acts as a process of its own: no in-process lock to wait on."""
    monkeypatch.setattr(_submission, "_one_run", lambda report_id: contextlib.nullcontext())


def during(api: CyberTiplineClient, path: str, act: Any, *, after: bool = False) -> None:
    """Run `act` while the first call to `path` is on its way: before it reaches NCMEC, or
    (`after`) once NCMEC has answered it."""
    real = api._send
    done: list[bool] = []

    def send(method: str, to: str, body: bytes | None, content_type: str | None) -> Any:
        if to != path or done:
            return real(method, to, body, content_type)
        done.append(True)
        if not after:
            act()
            return real(method, to, body, content_type)
        answer = real(method, to, body, content_type)
        act()
        return answer

    api._send = send  # type: ignore[method-assign]


def set_report(target: BankStore, report_id: int, **values: Any) -> None:
    with target.engine.begin() as conn:
        conn.execute(update(REPORTS).where(REPORTS.c.id == report_id).values(**values))


def test_a_second_process_cannot_submit_a_report_being_submitted(
    store: BankStore,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    client: CyberTiplineClient,
    elsewhere: None,
) -> None:
    case_id, _ = quarantined(store, vault, 31, ["user-1", "user-1"])
    confirmed(store, case_id, ana)
    report = create_report(store, case_id, profile=PROFILE, actor="t")
    refused: list[str] = []

    def second() -> None:
        with pytest.raises(Conflict, match="another process is submitting") as caught:
            submit_report(store, vault, make_client(server), report.id)
        refused.append(str(caught.value))

    during(client, "/submit", second)
    done = submit_report(store, vault, client, report.id)
    assert refused and "try again after" in refused[0]
    assert done.state == "finished"
    assert len(server.calls_to("/submit")) == 1 and len(server.reports) == 1
    assert len(server.calls_to("/upload")) == 2


def test_a_step_done_meanwhile_is_not_sent(
    store: BankStore,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    client: CyberTiplineClient,
) -> None:
    report = confirmed_report(store, vault, ana, 32)
    real_submit = client.submit

    def submit(xml: str, journal: Any = None) -> Any:
        # Another process (that ignored the lease) submitted it since this run read it.
        set_report(store, report.id, ncmec_report_id="424242", state="submitted")
        return real_submit(xml, journal)

    client.submit = submit  # type: ignore[method-assign]
    with pytest.raises(Conflict, match="submitted meanwhile"):
        submit_report(store, vault, client, report.id)
    assert server.calls_to("/submit") == []
    assert get_report(store, report.id).ncmec_report_id == "424242"


def test_an_answer_that_no_longer_fits_is_refused_and_withdrawn_at_ncmec(
    store: BankStore,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    client: CyberTiplineClient,
) -> None:
    report = confirmed_report(store, vault, ana, 33)
    # While NCMEC answers, another process's submit answer is applied.
    during(
        client,
        "/submit",
        lambda: set_report(store, report.id, ncmec_report_id="777", state="submitted"),
        after=True,
    )
    with pytest.raises(Conflict, match="is NCMEC report 777") as caught:
        submit_report(store, vault, client, report.id)
    [opened] = server.reports
    assert f"NCMEC report {opened} that it opened was retracted there" in str(caught.value)
    assert server.report(opened).state == "retracted"
    assert get_report(store, report.id).ncmec_report_id == "777"
    assert server.calls_to("/upload") == []


def test_a_report_being_submitted_cannot_be_retracted_meanwhile(
    store: BankStore,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    client: CyberTiplineClient,
    elsewhere: None,
) -> None:
    report = confirmed_report(store, vault, ana, 34)
    refused: list[bool] = []

    def retract() -> None:
        with pytest.raises(Conflict, match="another process"):
            retract_report(store, None, report.id, actor="reviewer:bea")
        refused.append(True)

    during(client, "/submit", retract)
    assert submit_report(store, vault, client, report.id).state == "finished"
    assert refused


def test_a_submit_answer_landing_on_a_retracted_report_is_retracted_at_ncmec(
    store: BankStore,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    client: CyberTiplineClient,
    elsewhere: None,
) -> None:
    report = confirmed_report(store, vault, ana, 35)
    case_id = report.case_id

    def retract() -> None:
        # This run's lease ran out (a process stalled past it); another retracts the report.
        set_report(store, report.id, lease_until=datetime.now(UTC) - timedelta(seconds=1))
        assert retract_report(store, None, report.id, actor="t").state == "retracted"

    during(client, "/submit", retract)
    with pytest.raises(Conflict, match="retracted while it was being submitted"):
        submit_report(store, vault, client, report.id)
    [opened] = server.reports
    assert server.report(opened).state == "retracted"
    stopped = get_report(store, report.id)
    assert stopped.state == "retracted" and stopped.ncmec_report_id is None
    assert get_case(store, case_id).case.status != "reported"
    assert server.calls_to("/upload") == [] and server.calls_to("/finish") == []


def test_retracting_applies_a_recorded_answer_first(
    store: BankStore,
    vault: Vault,
    ana: Reviewer,
    server: ContractServer,
    client: CyberTiplineClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report = confirmed_report(store, vault, ana, 36)

    def dies(self: Any, conn: Any, answer: Any) -> None:
        raise SystemExit("killed after NCMEC answered, before the id was stored")

    with monkeypatch.context() as patch:
        patch.setattr(_submission._Flow, "apply_submit", dies)
        with pytest.raises(SystemExit):
            submit_report(store, vault, client, report.id)
    assert get_report(store, report.id).ncmec_report_id is None
    retracted = retract_report(store, client, report.id, actor="t")
    [opened] = server.reports
    assert retracted.state == "retracted" and retracted.ncmec_report_id == opened
    assert server.report(opened).state == "retracted"  # withdrawn at NCMEC, not only here


# ---------------------------------------------------------------- the case page


@pytest.fixture(scope="module")
def sqlite_svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestService]:
    with service_client(tmp_path_factory.mktemp("sqlite")) as service:
        yield service


def test_the_case_page_offers_each_uploader_without_a_live_report(
    sqlite_svc: TestService, tmp_path: Path
) -> None:
    svc = sqlite_svc
    data = photo(41)
    flagged = flag(svc, data, uploader="user-1")
    r = svc.client.post("/v1/match", content=data, headers=svc.auth("match"))  # no uploader
    assert r.status_code == 200 and int(r.json()["case_id"]) == flagged.case_id
    profile = tmp_path / "reporter.json"
    profile.write_text(json.dumps({"reporting_person": REPORTER}), encoding="utf-8")
    web = svc.client.app.state.web
    person = signed_in_reviewer(svc)
    case_path = f"/review/cases/{flagged.case_id}"
    with (
        ContractServer("esp", "contract-pass") as ncmec,
        review_settings(svc, ReviewSettings(two_person_rule=False)),
    ):
        settings = ReportingSettings(
            url=ncmec.url, username="esp", password="contract-pass", profile_path=profile
        )
        web.configure(reporting=Reporting.from_settings(settings))
        try:
            csrf = csrf_of(person, case_path)
            decided = person.post(
                f"{case_path}/decide",
                data={"kind": "confirm", "classification": "B1", "csrf": csrf},
            )
            assert decided.status_code == 303

            def offered() -> list[str]:
                page = person.get(case_path).text
                return re.findall(r'<option value="([^"]*)">', page.split('id="reports"')[1])

            assert offered() == ["user-1", NO_UPLOADER]
            r = person.post(f"{case_path}/report", data={"csrf": csrf, "uploader": NO_UPLOADER})
            assert r.status_code == 303 and r.headers["location"].endswith("done=reported")
            assert offered() == ["user-1"]
            r = person.post(f"{case_path}/report", data={"csrf": csrf, "uploader": "user-1"})
            assert r.status_code == 303 and r.headers["location"].endswith("done=reported")
            assert 'id="report"' not in person.get(case_path).text  # every uploader reported
            made = reports_of_case(svc.store, flagged.case_id)
            assert sorted((r.uploader or "", r.state) for r in made) == [
                ("", "finished"),
                ("user-1", "finished"),
            ]
        finally:
            web.configure(reporting=Reporting.from_settings(ReportingSettings()))
