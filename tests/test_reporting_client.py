"""The CyberTipline client against the contract server (a real HTTP server on loopback that
enforces NCMEC's published contract): Basic auth on every call, the documented answers, the
report's states (open, finished, retracted) and their refusals, retries with backoff on
connection errors and 5xx only, and every attempt written down before it is sent."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lightkeeper.errors import InvalidRequest, NcmecError
from lightkeeper.reporting.cybertipline import (
    FileFacts,
    ReportFacts,
    file_details_xml,
    report_xml,
)
from lightkeeper.reporting.ncmec_client import (
    CyberTiplineClient,
    NcmecResponse,
    Step,
    classify,
    parse_answer,
    parse_response,
)
from lightkeeper.reporting.ncmec_contract import CODES, ContractServer
from lightkeeper.reporting.settings import ReporterProfile, ReportingSettings, check_api_url

USER, PASSWORD = "usr123", "pswd123"
PROFILE = ReporterProfile.from_dict(
    {
        "reporting_person": {"first_name": "Ana", "last_name": "Silva", "email": "a@example.org"},
        "company_template": "Example Inc.",
    }
)
PHOTO = b"\xff\xd8\xff\xe0 not really a jpeg, benign bytes"


class Journal:
    """Remembers every attempt, as `reports` would write them to report_calls."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def before(self, step: Step, request: str) -> int:
        self.calls.append({"step": step, "request": request, "answered": False})
        return len(self.calls) - 1

    def after(
        self,
        handle: int,
        *,
        status: int | None,
        response: str | None,
        error: str | None,
        parsed: NcmecResponse | None,
    ) -> None:
        self.calls[handle].update(
            answered=True, status=status, response=response, error=error, parsed=parsed
        )


@pytest.fixture
def server() -> Iterator[ContractServer]:
    with ContractServer(USER, PASSWORD) as running:
        yield running


def make_client(server: ContractServer, **options: Any) -> CyberTiplineClient:
    sleeps: list[float] = []
    options.setdefault("sleep", sleeps.append)
    client = CyberTiplineClient(server.url, USER, PASSWORD, timeout=5, backoff=0.25, **options)
    client.sleeps = sleeps  # type: ignore[attr-defined]
    return client


@pytest.fixture
def client(server: ContractServer) -> CyberTiplineClient:
    return make_client(server)


def a_report() -> str:
    when = datetime.now(UTC) - timedelta(days=1)
    return report_xml(
        ReportFacts(case_id=1, uploaded_at=(when,), uploader="user-1", classification="A1"),
        PROFILE,
    )


def details(report_id: str, file_id: str, viewed: bool = False) -> str:
    facts = FileFacts(
        uploaded_at=datetime.now(UTC) - timedelta(days=1),
        viewed_by_esp=viewed,
        classification="B1",
        hashes=(("MD5", "0" * 32),),
        evidence=({"bank": "known", "entry_id": 3, "signal_type": "md5", "distance": 0},),
    )
    return file_details_xml(report_id, file_id, facts)


def refused(code: str) -> Any:
    return pytest.raises(NcmecError, match=f"responseCode {CODES[code]}")


# ---------------------------------------------------------------- the documented flow


def test_status_answers_zero_for_good_credentials(client: CyberTiplineClient) -> None:
    answer = client.status()
    assert answer.ok and answer.code == 0 and USER in answer.description


def test_the_whole_flow_submit_upload_fileinfo_finish(
    client: CyberTiplineClient, server: ContractServer
) -> None:
    journal = Journal()
    xml = a_report()
    opened = client.submit(xml, journal)
    assert opened.ok and opened.report_id
    report_id = opened.report_id
    uploaded = client.upload(
        report_id, PHOTO, filename="lightkeeper-1.jpg", media_type="image/jpeg", journal=journal
    )
    assert uploaded.file_id and uploaded.report_id == report_id
    assert uploaded.hash == hashlib.md5(PHOTO).hexdigest()
    assert client.fileinfo(details(report_id, uploaded.file_id, viewed=True), journal).ok
    done = client.finish(report_id, journal)
    assert done.report_id == report_id and done.file_ids == (uploaded.file_id,)

    received = server.report(report_id)
    assert received.xml == xml  # the exact document, byte for byte
    assert received.state == "finished"
    [file] = received.files.values()
    assert (file.filename, file.media_type) == ("lightkeeper-1.jpg", "image/jpeg")
    assert (file.size, file.sha256) == (len(PHOTO), hashlib.sha256(PHOTO).hexdigest())
    assert "<fileViewedByEsp>true</fileViewedByEsp>" in file.fileinfo[0]
    assert [c["step"] for c in journal.calls] == ["submit", "upload", "fileinfo", "finish"]
    assert journal.calls[0]["request"] == xml
    shown = json.loads(journal.calls[1]["request"])
    assert shown["file"]["size"] == len(PHOTO) and len(shown["file"]["sha256"]) == 64
    assert "not really" not in journal.calls[1]["request"]  # the bytes are never recorded
    assert journal.calls[3]["request"] == f"id={report_id}"


def test_a_finished_report_refuses_uploads_details_and_retraction(
    client: CyberTiplineClient,
) -> None:
    report_id = str(client.submit(a_report()).report_id)
    file_id = str(
        client.upload(report_id, PHOTO, filename="a.jpg", media_type="image/jpeg").file_id
    )
    client.finish(report_id)
    with refused("report_already_finished"):
        client.upload(report_id, PHOTO, filename="b.jpg", media_type="image/jpeg")
    with refused("report_already_finished"):
        client.fileinfo(details(report_id, file_id))
    with refused("report_already_finished"):
        client.finish(report_id)
    with refused("report_already_finished"):
        client.retract(report_id)


def test_a_retracted_report_refuses_everything_after(
    client: CyberTiplineClient, server: ContractServer
) -> None:
    report_id = str(client.submit(a_report()).report_id)
    assert client.retract(report_id).ok
    assert server.report(report_id).state == "retracted"
    with refused("report_already_retracted"):
        client.upload(report_id, PHOTO, filename="a.jpg", media_type="image/jpeg")
    with refused("report_already_retracted"):
        client.finish(report_id)
    with refused("report_already_retracted"):
        client.retract(report_id)


def test_unknown_reports_and_files_are_refused(client: CyberTiplineClient) -> None:
    with refused("report_does_not_exist"):
        client.finish("999")
    with refused("report_does_not_exist"):
        client.upload("999", PHOTO, filename="a.jpg", media_type="image/jpeg")
    report_id = str(client.submit(a_report()).report_id)
    with refused("file_does_not_exist"):
        client.fileinfo(details(report_id, "0" * 32))


def test_a_report_out_of_schema_order_is_refused_as_a_validation_failure(
    client: CyberTiplineClient, server: ContractServer
) -> None:
    xml = a_report()
    start, end = xml.index("  <reporter>"), xml.index("  <personOrUserReported>")
    summary_end = xml.index("  <reporter>")
    summary_start = xml.index("  <incidentSummary>")
    swapped = xml[:summary_start] + xml[start:end] + xml[summary_start:summary_end] + xml[end:]
    with pytest.raises(NcmecError, match="responseCode 4100") as caught:
        client.submit(swapped)
    assert caught.value.response_code == 4100 and "out of order" in str(caught.value)
    assert len(server.calls_to("/submit")) == 1  # a refusal is final: never retried
    assert server.reports == {}


def test_a_document_with_a_dtd_is_refused(client: CyberTiplineClient) -> None:
    with pytest.raises(NcmecError, match="responseCode 4110"):
        client.submit('<!DOCTYPE report [<!ENTITY x "y">]>' + a_report().split("?>", 1)[1])


# ---------------------------------------------------------------- credentials


def test_wrong_credentials_get_a_clear_error_and_are_not_retried(server: ContractServer) -> None:
    wrong = CyberTiplineClient(server.url, USER, "not-the-password", backoff=0.0)
    with pytest.raises(NcmecError, match="refused the credentials") as caught:
        wrong.submit(a_report())
    assert caught.value.status == 401
    assert "LIGHTKEEPER_NCMEC_PASSWORD" in str(caught.value)
    assert [c.http_status for c in server.calls] == [401]
    assert server.reports == {}


def test_every_call_needs_credentials(server: ContractServer) -> None:
    import urllib.error
    import urllib.request

    for path in ("/status", "/submit", "/finish"):
        method = "GET" if path == "/status" else "POST"
        request = urllib.request.Request(server.url + path, data=None, method=method)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 401
        assert caught.value.headers["WWW-Authenticate"].startswith("Basic")
        caught.value.close()


# ---------------------------------------------------------------- retries


def test_a_500_then_a_200_is_retried_once_after_a_backoff(server: ContractServer) -> None:
    client = make_client(server)
    journal = Journal()
    server.fail_next("/submit", status=500)
    answer = client.submit(a_report(), journal)
    assert answer.ok
    assert [c.http_status for c in server.calls_to("/submit")] == [500, 200]
    assert len(server.reports) == 1  # the failed attempt opened nothing
    assert [c["status"] for c in journal.calls] == [500, 200]
    assert client.sleeps == [0.25]  # type: ignore[attr-defined]


def test_a_dropped_connection_is_retried(server: ContractServer) -> None:
    client = make_client(server)
    journal = Journal()
    server.fail_next("/status", status=None)
    assert client.status(journal).ok
    assert journal.calls[0]["status"] is None and journal.calls[0]["error"]
    assert journal.calls[1]["status"] == 200


def test_retries_back_off_then_give_up_with_the_last_status(server: ContractServer) -> None:
    client = make_client(server, attempts=4)
    server.fail_next("/submit", times=4, status=503)
    with pytest.raises(NcmecError, match="HTTP 503 after 4 attempt") as caught:
        client.submit(a_report())
    assert caught.value.status == 503
    assert client.sleeps == [0.25, 0.5, 1.0]  # type: ignore[attr-defined]
    assert server.reports == {}


def test_a_4xx_answer_is_not_retried(server: ContractServer) -> None:
    client = make_client(server)
    server.fail_next("/finish", status=400)
    with pytest.raises(NcmecError, match="HTTP 400"):
        client.finish("1")
    assert len(server.calls_to("/finish")) == 1
    assert client.sleeps == []  # type: ignore[attr-defined]


def test_nothing_listening_is_an_error_after_every_attempt() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps: list[float] = []
    client = CyberTiplineClient(
        f"http://127.0.0.1:{port}/ispws",
        USER,
        PASSWORD,
        attempts=3,
        backoff=0.1,
        sleep=sleeps.append,
    )
    journal = Journal()
    with pytest.raises(NcmecError, match="could not be reached for status after 3 attempt"):
        client.status(journal)
    assert len(journal.calls) == 3 and all(c["error"] for c in journal.calls)
    assert sleeps == [0.1, 0.2]


def test_an_attempt_cut_off_is_written_down_as_interrupted(server: ContractServer) -> None:
    def stop(_: float) -> None:
        raise KeyboardInterrupt

    client = make_client(server, sleep=stop)
    journal = Journal()
    server.fail_next("/submit", status=500)
    with pytest.raises(KeyboardInterrupt):
        client.submit(a_report(), journal)
    assert [c["answered"] for c in journal.calls] == [True]


# ---------------------------------------------------------------- answers and settings


def test_answers_are_parsed_safely() -> None:
    done = parse_response(
        b"<reportDoneResponse><responseCode>0</responseCode><reportId>4564654</reportId>"
        b"<files><fileId>a</fileId><fileId>b</fileId></files></reportDoneResponse>"
    )
    assert done.ok and done.report_id == "4564654" and done.file_ids == ("a", "b")
    with pytest.raises(ValueError):
        parse_response(b'<!DOCTYPE x [<!ENTITY e "0">]><reportResponse>&e;</reportResponse>')
    with pytest.raises(ValueError):
        parse_response(b"<html><body>gateway</body></html>")


def test_the_client_comes_from_the_settings_and_refuses_when_reporting_is_off(
    server: ContractServer,
) -> None:
    with pytest.raises(InvalidRequest, match="reporting is off"):
        CyberTiplineClient.from_settings(ReportingSettings())
    configured = ReportingSettings.from_env(
        {
            "LIGHTKEEPER_NCMEC_URL": server.url,
            "LIGHTKEEPER_NCMEC_USERNAME": USER,
            "LIGHTKEEPER_NCMEC_PASSWORD": PASSWORD,
            "LIGHTKEEPER_NCMEC_ATTEMPTS": "2",
        }
    )
    client = CyberTiplineClient.from_settings(configured)
    assert client.status().ok
    assert client.call_budget == 2 * 60 + 1.0


# ---------------------------------------------------------------- review findings


def test_one_classification_of_answers_for_client_journal_and_recovery() -> None:
    ok = NcmecResponse(code=0, description="Success")
    refusal = NcmecResponse(code=4100, description="Validation failed")
    busy = NcmecResponse(code=1000, description="Server error")
    assert classify(200, ok) == classify(201, ok) == classify(204, ok) == "accepted"
    assert classify(200, refusal) == classify(500, refusal) == "refused"
    assert classify(302, ok) == classify(401, None) == classify(404, None) == "refused"
    assert classify(200, None) == "refused"
    assert classify(500, None) == classify(503, busy) == "retry"
    assert parse_answer("") is None and parse_answer(b"<html/>") is None
    answer = parse_answer("<reportResponse><responseCode>0</responseCode></reportResponse>")
    assert answer is not None and answer.ok


def test_a_5xx_carrying_a_refusal_is_final_and_says_ncmecs_words(
    server: ContractServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ContractServer.handle

    def at_500(self: ContractServer, method: str, path: str, headers: Any, body: bytes) -> Any:
        return 500, real(self, method, path, headers, body)[1]

    monkeypatch.setattr(ContractServer, "handle", at_500)
    client = make_client(server)
    with pytest.raises(NcmecError, match="Validation failed") as caught:
        client.submit("<report><reporter/></report>")
    assert caught.value.response_code == 4100 and caught.value.status == 500
    assert len(server.calls_to("/submit")) == 1 and client.sleeps == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", [None, 502, 504])
def test_a_lost_submit_or_upload_answer_is_not_sent_again(
    server: ContractServer, status: int | None
) -> None:
    """NCMEC acted, then its answer was lost: the connection closed (None), or a gateway in
    front of it gave up waiting (its 502 or 504 page is no answer to retry). Sending submit
    or upload again would open the report, or add the file, twice."""
    client = make_client(server)
    journal = Journal()
    why = "" if status is None else f" \\(HTTP {status} from a gateway"
    server.fail_next("/submit", status=status, handled=True)
    with pytest.raises(NcmecError, match=f"its answer was lost{why}"):
        client.submit(a_report(), journal)
    assert len(server.reports) == 1 and len(server.calls_to("/submit")) == 1
    assert [c["error"].startswith("outcome unknown") for c in journal.calls] == [True]
    [report_id] = server.reports
    server.fail_next("/upload", status=status, handled=True)
    with pytest.raises(NcmecError, match="a second copy"):
        client.upload(report_id, PHOTO, filename="a.jpg", media_type="image/jpeg")
    assert len(server.report(report_id).files) == 1 and client.sleeps == []  # type: ignore[attr-defined]
    # A finish whose answer was lost is sent again: NCMEC answers "already finished".
    server.fail_next("/finish", status=status, handled=True)
    with pytest.raises(NcmecError) as caught:
        client.finish(report_id)
    assert caught.value.response_code == 5102 and len(server.calls_to("/finish")) == 2


def test_an_upload_request_records_the_files_md5_for_recovery(client: CyberTiplineClient) -> None:
    journal = Journal()
    report_id = str(client.submit(a_report()).report_id)
    client.upload(report_id, PHOTO, filename="a.jpg", media_type="image/jpeg", journal=journal)
    assert json.loads(journal.calls[0]["request"])["file"]["md5"] == hashlib.md5(PHOTO).hexdigest()


@pytest.mark.parametrize(
    "url",
    [
        "https://user:secret@exttest.cybertip.org/ispws",
        "https://:secret@exttest.cybertip.org/ispws",
        "http://:secret@127.0.0.1:9/ispws",
    ],
)
def test_a_url_carrying_credentials_is_refused_without_repeating_them(url: str) -> None:
    with pytest.raises(InvalidRequest, match="user name or password") as caught:
        check_api_url(url)
    assert "secret" not in str(caught.value)


def test_the_contract_server_reads_a_document_in_its_declared_encoding(
    client: CyberTiplineClient, server: ContractServer
) -> None:
    xml = a_report().replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
    xml = xml.replace("Case 1.", "Caf\u00e9 1.")
    answer = client._call("submit", "POST", "/submit", xml.encode("latin-1"), "text/xml", xml, None)
    assert answer.ok and answer.report_id
    assert "Caf\u00e9 1." in server.report(answer.report_id).xml


def test_an_error_of_the_contract_server_is_a_recorded_500(
    server: ContractServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: ContractServer, headers: Any, body: bytes) -> bytes:
        raise RuntimeError("a bug in the double")

    monkeypatch.setattr(ContractServer, "_finish", broken)
    client = make_client(server, attempts=2)
    with pytest.raises(NcmecError, match="HTTP 500 after 2"):
        client.finish("1")
    assert [c.http_status for c in server.calls_to("/finish")] == [500, 500]


def test_credentials_are_checked_before_a_wrong_path_or_a_body_too_large(
    server: ContractServer,
) -> None:
    import urllib.error
    import urllib.request

    base = server.url.rsplit("/ispws", 1)[0]
    for url, headers in (
        (base + "/elsewhere", {}),
        (server.url + "/nothing-here", {}),
        (server.url + "/submit", {"Content-Length": str(128 * 1024 * 1024)}),
    ):
        request = urllib.request.Request(url, data=b"", headers=headers, method="POST")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 401
        caught.value.close()


@contextmanager
def scripted_server(*parts: tuple[float, bytes]) -> Iterator[str]:
    """A server on loopback that reads one request and answers it with `parts`, each
    (seconds to wait first, bytes to send), then closes the connection."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stopped = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError):
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                for wait, data in parts:
                    if stopped.wait(wait):
                        return
                    connection.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/ispws"
    finally:
        stopped.set()
        listener.close()
        thread.join(timeout=5)


GOOD = b"<reportResponse><responseCode>0</responseCode></reportResponse>"


def test_an_attempt_ends_at_its_timeout_however_slowly_the_answer_comes() -> None:
    # The report's lease lasts one call's budget (attempts x timeout + waits): an attempt
    # that outlived its timeout would let another process take the report mid-call.
    slowly = [(0.0, b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nX-Slow: ")]
    slowly += [(0.05, b"a")] * 60  # 3 s, each byte far within the timeout
    slowly += [(0.0, b"\r\nContent-Length: %d\r\n\r\n%s" % (len(GOOD), GOOD))]
    with scripted_server(*slowly) as url:
        client = CyberTiplineClient(url, USER, PASSWORD, timeout=0.5, attempts=1)
        journal = Journal()
        started = time.monotonic()
        with pytest.raises(NcmecError, match="timed out"):
            client.status(journal)
        took = time.monotonic() - started
    assert took < 1.5  # the budget (0.5 s) and a moment to close the connection
    assert "timed out" in journal.calls[0]["error"]


def test_an_answer_cut_short_is_a_lost_answer_not_sent_again() -> None:
    # Fewer bytes than announced: no answer (it was not a 5xx to retry, nor a refusal).
    cut = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 100\r\n\r\nshort"
    with scripted_server((0.0, cut)) as url:
        client = CyberTiplineClient(url, USER, PASSWORD, timeout=2, attempts=2, backoff=0)
        journal = Journal()
        with pytest.raises(NcmecError, match="its answer was lost"):
            client.submit(a_report(), journal)
    assert len(journal.calls) == 1 and journal.calls[0]["error"].startswith("outcome unknown")
