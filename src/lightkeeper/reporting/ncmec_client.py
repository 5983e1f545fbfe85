"""A client of NCMEC's CyberTipline reporting API: one method per documented call.

``status`` (GET), ``submit`` (the report XML), ``upload`` (one file, multipart), ``fileinfo``
(a file's details XML), ``finish`` and ``retract`` (the report id as a form field). Every call
carries HTTP Basic credentials and has a timeout. Redirects are not followed (a report never
goes anywhere but the configured URL).

`classify` says what an answer means, for the client and for whoever applies or recovers
answers (`lightkeeper.reporting._submission`), so that they never disagree: *accepted* (any
2xx whose ``responseCode`` is 0), *retry* (a 5xx without a refusal code, or with 1000,
NCMEC's "server error"), or *refused* (a 401, a 3xx or 4xx, a refusal code at any status,
an answer that is not NCMEC's XML). A refusal is final: the same request would get the same
answer. Its error carries NCMEC's ``responseDescription``.

Retries, with exponential backoff, happen for *retry* answers and when no connection could
be made (refused, DNS, TLS, connect timeout): nothing reached NCMEC. A connection that fails
once the request is on its way (a read timeout, the attempt's time running out, a reset, the
answer cut off before the length it announced) is different:
NCMEC may have acted on it. ``fileinfo``, ``finish``, ``retract`` and ``status`` are sent
again (a second ``finish`` or ``retract`` is answered "already finished" or "already
retracted"), but ``submit`` and ``upload`` are not: a second submit would open a second
report, a second upload add a second copy of the file. The call ends with an `NcmecError`
saying the outcome is unknown, the journal records it so, and a person decides whether to
resume (docs/reporting.md). A gateway's 502 or 504 without NCMEC's XML counts the same way for
``submit`` and ``upload``: the gateway may have given up while NCMEC acted.

Every attempt can be written down: the caller passes a `CallJournal`, which hears the exact
request (for an upload, the file's SHA-256, MD5 and size, never its bytes) *before* it is sent and
the answer after. `lightkeeper.reporting.reports` keeps them in ``report_calls``.

Answers are parsed with `lightkeeper.reporting.cybertipline.parse_document`: no DTD, no
entities, at most 1 MiB. The client uses the standard library only (``urllib``).
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import functools
import hashlib
import http.client
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlencode, urlsplit

from lightkeeper.errors import InvalidRequest, NcmecError
from lightkeeper.reporting.cybertipline import MAX_DOCUMENT_BYTES, parse_document
from lightkeeper.reporting.settings import ReportingSettings, check_api_url

__all__ = [
    "CallJournal",
    "CyberTiplineClient",
    "NcmecResponse",
    "Outcome",
    "Step",
    "classify",
    "parse_answer",
    "parse_response",
]

Step = Literal["status", "submit", "upload", "fileinfo", "finish", "retract"]
#: What an answer means (`classify`).
Outcome = Literal["accepted", "retry", "refused"]

#: NCMEC's response codes the client gives a meaning to.
SERVER_ERROR = 1000
REPORT_DOES_NOT_EXIST = 5001
REPORT_ALREADY_RETRACTED = 5101
REPORT_ALREADY_FINISHED = 5102
_MAX_BACKOFF = 30.0
#: Calls never sent again once the request may have reached NCMEC: each would add something.
_AT_MOST_ONCE: frozenset[str] = frozenset({"submit", "upload"})
#: Statuses a gateway in front of NCMEC answers when NCMEC failed it or kept it waiting
#: (502, 504): with no CyberTipline XML in them, NCMEC may still have acted.
_GATEWAY: frozenset[int] = frozenset({502, 504})


@dataclass(frozen=True, slots=True)
class NcmecResponse:
    """One answer of NCMEC's API (``reportResponse`` or ``reportDoneResponse``)."""

    code: int
    description: str
    report_id: str | None = None
    file_id: str | None = None
    #: MD5 of an uploaded file, as NCMEC computed it.
    hash: str | None = None
    #: The files of a finished report.
    file_ids: tuple[str, ...] = ()
    http_status: int = 200

    @property
    def ok(self) -> bool:
        return self.code == 0


class CallJournal(Protocol):
    """Hears every attempt: `before` with the exact request, then `after` with the answer."""

    def before(self, step: Step, request: str) -> int:
        """Called before sending; returns a handle for `after`."""
        ...

    def after(
        self,
        handle: int,
        *,
        status: int | None,
        response: str | None,
        error: str | None,
        parsed: NcmecResponse | None,
    ) -> None:
        """Called once the attempt is over: an answer (`status`, `response`, `parsed` when it
        was NCMEC's XML) or an `error` (no answer: unreachable, timed out, interrupted)."""
        ...


class _NoJournal:
    def before(self, step: Step, request: str) -> int:
        return 0

    def after(
        self,
        handle: int,
        *,
        status: int | None,
        response: str | None,
        error: str | None,
        parsed: NcmecResponse | None,
    ) -> None:
        return None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx comes back as an HTTPError, and is final


def parse_response(body: bytes, http_status: int = 200) -> NcmecResponse:
    """An answer's XML as a `NcmecResponse`; `ValueError` when it is not NCMEC's XML."""
    root = parse_document(body)
    if root.tag not in ("reportResponse", "reportDoneResponse"):
        raise ValueError(f"unexpected answer <{root.tag}>")
    code_text = (root.findtext("responseCode") or "").strip()
    if not code_text.lstrip("-").isdigit():
        raise ValueError("the answer has no responseCode")

    def text(tag: str) -> str | None:
        value = root.findtext(tag)
        return value.strip() if value and value.strip() else None

    return NcmecResponse(
        code=int(code_text),
        description=text("responseDescription") or "",
        report_id=text("reportId"),
        file_id=text("fileId"),
        hash=text("hash"),
        file_ids=tuple(
            (f.text or "").strip() for f in root.findall("files/fileId") if (f.text or "").strip()
        ),
        http_status=http_status,
    )


def parse_answer(body: bytes | str | None, http_status: int = 200) -> NcmecResponse | None:
    """`parse_response` of an answer as received or as stored; None when it is not NCMEC's
    XML (an empty body, a proxy's HTML page …)."""
    if not body:
        return None
    try:
        return parse_response(body.encode("utf-8") if isinstance(body, str) else body, http_status)
    except ValueError:
        return None


def classify(status: int, parsed: NcmecResponse | None) -> Outcome:
    """What NCMEC's answer at HTTP `status` (`parsed`: its XML, if it was) means; the one
    rule the client, the journal and recovery all follow (see the module docstring)."""
    if 200 <= status < 300 and parsed is not None and parsed.ok:
        return "accepted"
    if status >= 500 and (parsed is None or parsed.code in (0, SERVER_ERROR)):
        return "retry"
    return "refused"


#: A run of hex digits as long as an MD5 or longer: a hash (an upload's answer carries the
#: file's MD5), kept out of errors, which reach the report's error and the audit trail.
_HEX_RUN = re.compile(r"[0-9A-Fa-f]{32,}")


def _unhashed(text: str) -> str:
    """NCMEC's words in `text`, with any hash in them left out."""
    return _HEX_RUN.sub("[hash left out]", text)


class _ConnectFailed(OSError):
    """No connection could be made (refused, DNS, TLS, proxy, connect timeout): nothing of
    the request was sent."""


class _Deadline:
    """Ends one attempt `seconds` after it starts, however slowly the answer comes: a socket
    timeout bounds each read and write, not their sum (a server sending a byte at a time
    would hold an attempt, and the report's lease, for ever). At the deadline the attempt's
    socket is shut down, which ends the read or write under way."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._expired = False
        self._finished = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._token: contextvars.Token[_Deadline | None] | None = None

    def __enter__(self) -> _Deadline:
        self._token = _ATTEMPT.set(self)
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        if self._token is not None:
            _ATTEMPT.reset(self._token)

    def watch(self, sock: socket.socket | None) -> bool:
        """Shut `sock` (the attempt's connection) down at the deadline; False when the
        deadline came already (while connecting: nothing was sent)."""
        with self._lock:
            if self._expired:
                return False
            if sock is not None:
                self._sockets.append(sock)
            return True

    def finish(self) -> bool:
        """The whole answer is in: True, unless the deadline came first."""
        with self._lock:
            self._finished = not self._expired
            return self._finished

    @property
    def expired(self) -> bool:
        with self._lock:
            return self._expired

    def why(self, error: str) -> str:
        """`error`, or that the deadline cut the attempt short (which caused it)."""
        if self.expired:
            return f"timed out: no whole answer within {self.seconds:g} s"
        return error

    def _expire(self) -> None:
        with self._lock:
            if self._finished:
                return
            self._expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


#: The attempt under way in this thread, for the connection to hand its socket to.
_ATTEMPT: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar(
    "ncmec_attempt", default=None
)


def _shut(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for a TLS socket (whose own would touch its TLS
    # state from this thread): the read or write blocked on it ends at once.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


@functools.cache
def _tracked(connection: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
    """`connection` whose connecting errors are `_ConnectFailed`, so that they can be told
    apart from errors once the request is on its way, and whose socket the attempt's
    `_Deadline` shuts down when its time is up."""

    class Tracked(connection):  # type: ignore[valid-type,misc]
        def connect(self) -> None:
            try:
                super().connect()
            except OSError as exc:
                raise _ConnectFailed(f"{type(exc).__name__}: {exc}") from exc
            deadline = _ATTEMPT.get()
            if deadline is not None and not deadline.watch(self.sock):
                self.close()
                raise _ConnectFailed(f"timed out: not connected within {deadline.seconds:g} s")

    return Tracked


class _HTTPHandler(urllib.request.HTTPHandler):
    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return super().do_open(_tracked(http_class), req, **kwargs)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return super().do_open(_tracked(http_class), req, **kwargs)


class _NotSent(Exception):
    """No answer, and nothing was sent: no connection could be made."""


class _Lost(Exception):
    """No answer to a request that was sent, or partly: a read timeout, a reset, a
    connection closed without an answer. NCMEC may have acted on it."""


class CyberTiplineClient:
    """NCMEC's API at `url` (``…/ispws``) with the credentials NCMEC issued.

    `attempts` tries per call when no connection could be made or the answer says *retry*
    (`classify`), waiting `backoff`, twice that, and so on (at most 30 s) between them;
    `timeout` seconds per attempt in all, from connecting to the answer's last byte (so a
    call never outlasts `call_budget`). ``submit`` and ``upload`` are never sent again once
    the request may have reached NCMEC (see the module docstring).
    """

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        *,
        timeout: float = 60.0,
        attempts: int = 4,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise InvalidRequest("a client makes at least one attempt per call")
        self._url = check_api_url(url)
        self._auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self._timeout = timeout
        self._attempts = attempts
        self._backoff = backoff
        self._sleep = sleep
        handlers: list[urllib.request.BaseHandler] = [
            _NoRedirect(),
            _HTTPHandler(),
            _HTTPSHandler(),
        ]
        if (urlsplit(self._url).hostname or "") in ("127.0.0.1", "::1", "localhost"):
            handlers.append(urllib.request.ProxyHandler({}))  # loopback is never proxied
        self._opener = urllib.request.build_opener(*handlers)

    @classmethod
    def from_settings(
        cls, settings: ReportingSettings | None = None, **options: Any
    ) -> CyberTiplineClient:
        """A client as the settings say (`InvalidRequest` when reporting is off)."""
        settings = settings or ReportingSettings.from_env()
        if settings.url is None:
            raise InvalidRequest(
                "reporting is off: set LIGHTKEEPER_NCMEC_URL to NCMEC's API (its test "
                "environment first) and LIGHTKEEPER_NCMEC_USERNAME/PASSWORD to the "
                "credentials NCMEC issued"
            )
        return cls(
            settings.url,
            settings.username,
            settings.password,
            timeout=settings.timeout,
            attempts=settings.attempts,
            **options,
        )

    @property
    def url(self) -> str:
        return self._url

    @property
    def call_budget(self) -> float:
        """Seconds one call may take at most, every attempt and wait included."""
        waits = sum(min(_MAX_BACKOFF, self._backoff * 2.0**n) for n in range(self._attempts - 1))
        return self._attempts * self._timeout + waits

    # ------------------------------------------------------------------ the calls

    def status(self, journal: CallJournal | None = None) -> NcmecResponse:
        """``GET /status``: are the URL and credentials good?"""
        return self._call("status", "GET", "/status", None, None, "", journal)

    def submit(self, report_xml: str, journal: CallJournal | None = None) -> NcmecResponse:
        """``POST /submit``: open a report; the answer carries its ``report_id``."""
        body = report_xml.encode("utf-8")
        return self._call(
            "submit", "POST", "/submit", body, "text/xml; charset=utf-8", report_xml, journal
        )

    def upload(
        self,
        report_id: str,
        data: bytes,
        *,
        filename: str,
        media_type: str,
        journal: CallJournal | None = None,
    ) -> NcmecResponse:
        """``POST /upload``: add a file to an open report; the answer carries its
        ``file_id`` and NCMEC's MD5 of it (``hash``). The request written down names the
        file's SHA-256, MD5 and size (so that a recorded answer can be checked later), never
        its bytes."""
        boundary = f"lightkeeper-{uuid.uuid4().hex}"
        safe_name = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
        body = b"".join(
            [
                f"--{boundary}\r\n".encode(),
                b'Content-Disposition: form-data; name="id"\r\n\r\n',
                report_id.encode("utf-8"),
                f"\r\n--{boundary}\r\n".encode(),
                f'Content-Disposition: form-data; name="file"; filename="{safe_name}"\r\n'.encode(),
                f"Content-Type: {media_type}\r\n\r\n".encode(),
                data,
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        shown = json.dumps(
            {
                "id": report_id,
                "file": {
                    "filename": safe_name,
                    "media_type": media_type,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "md5": hashlib.md5(data).hexdigest(),
                    "size": len(data),
                },
            },
            sort_keys=True,
        )
        content_type = f"multipart/form-data; boundary={boundary}"
        return self._call("upload", "POST", "/upload", body, content_type, shown, journal)

    def fileinfo(self, details_xml: str, journal: CallJournal | None = None) -> NcmecResponse:
        """``POST /fileinfo``: the details of an uploaded file."""
        body = details_xml.encode("utf-8")
        return self._call(
            "fileinfo", "POST", "/fileinfo", body, "text/xml; charset=utf-8", details_xml, journal
        )

    def finish(self, report_id: str, journal: CallJournal | None = None) -> NcmecResponse:
        """``POST /finish``: file the report with NCMEC (no change after it)."""
        return self._form("finish", "/finish", report_id, journal)

    def retract(self, report_id: str, journal: CallJournal | None = None) -> NcmecResponse:
        """``POST /retract``: withdraw a report that is not finished."""
        return self._form("retract", "/retract", report_id, journal)

    # ------------------------------------------------------------------ machinery

    def _form(
        self, step: Step, path: str, report_id: str, journal: CallJournal | None
    ) -> NcmecResponse:
        form = urlencode({"id": report_id})
        return self._call(
            step,
            "POST",
            path,
            form.encode("ascii"),
            "application/x-www-form-urlencoded",
            form,
            journal,
        )

    def _call(
        self,
        step: Step,
        method: str,
        path: str,
        body: bytes | None,
        content_type: str | None,
        shown: str,
        journal: CallJournal | None,
    ) -> NcmecResponse:
        """Send with retries; the final answer, or `NcmecError`."""
        journal = journal or _NoJournal()
        for attempt in range(1, self._attempts + 1):
            last = attempt == self._attempts
            handle = journal.before(step, shown)
            try:
                status, raw = self._send(method, path, body, content_type)
            except (_NotSent, _Lost) as exc:
                unknown = isinstance(exc, _Lost) and step in _AT_MOST_ONCE
                error = f"outcome unknown: {exc}" if unknown else str(exc)
                journal.after(handle, status=None, response=None, error=error, parsed=None)
                if unknown:
                    raise NcmecError(self._unknown(step, str(exc))) from None
                if last:
                    raise NcmecError(
                        f"NCMEC's API at {self._url} could not be reached for {step} after "
                        f"{self._attempts} attempt(s): {exc}"
                    ) from None
                self._wait(attempt)
                continue
            except BaseException as exc:  # interrupted mid-call: the outcome is unknown
                journal.after(
                    handle,
                    status=None,
                    response=None,
                    error=f"interrupted: {type(exc).__name__}",
                    parsed=None,
                )
                raise
            text = raw.decode("utf-8", "replace")
            parsed = parse_answer(raw, status)
            outcome = classify(status, parsed)
            # A gateway's page, not NCMEC's answer: it may have given up waiting while NCMEC
            # acted, so for submit and upload this is a lost answer, not one to retry.
            gateway = (
                outcome == "retry"
                and parsed is None
                and status in _GATEWAY
                and step in _AT_MOST_ONCE
            )
            lost = f"HTTP {status} from a gateway" if gateway else None
            journal.after(
                handle,
                status=status,
                response=text,
                error=None if lost is None else f"outcome unknown: {lost}",
                parsed=parsed,
            )
            if lost is not None:
                raise NcmecError(self._unknown(step, lost)) from None
            if outcome == "retry" and not last:
                self._wait(attempt)
                continue
            if outcome == "accepted":
                assert parsed is not None
                return parsed
            raise self._refusal(step, status, text, parsed, outcome)
        raise AssertionError("unreachable")  # pragma: no cover

    def _unknown(self, step: Step, reason: str) -> str:
        what = (
            "whether NCMEC opened a report is unknown. Sending it again may open a second "
            "report there, which NCMEC deletes unfinished by itself"
            if step == "submit"
            else "whether NCMEC added the file to the report is unknown. Sending it again may "
            "add a second copy; the finish audit event names any file Lightkeeper has no "
            "record of"
        )
        return (
            f"NCMEC's API at {self._url} took the {step} request but its answer was lost "
            f"({reason}): {what}. It is not sent again by itself: resume the report to send "
            "it again, or retract it"
        )

    def _refusal(
        self, step: Step, status: int, text: str, parsed: NcmecResponse | None, outcome: Outcome
    ) -> NcmecError:
        """The error for an answer that is not accepted (`classify`), NCMEC's words in it."""
        code = None if parsed is None else parsed.code
        described = "" if parsed is None else _unhashed(parsed.description) or "no description"
        said = "" if parsed is None else f": responseCode {parsed.code} ({described})"
        if status == 401:
            return NcmecError(
                f"NCMEC refused the credentials (HTTP 401) for {step} at {self._url}: check "
                "LIGHTKEEPER_NCMEC_USERNAME and LIGHTKEEPER_NCMEC_PASSWORD (test and production "
                f"credentials differ){said}",
                response_code=code,
                status=401,
            )
        if outcome == "retry":
            return NcmecError(
                f"NCMEC answered {step} with HTTP {status} after {self._attempts} attempt(s){said}",
                response_code=code,
                status=status,
            )
        if parsed is None:
            snippet = _unhashed(" ".join(text.split()))[:200]
            return NcmecError(
                f"NCMEC answered {step} with HTTP {status} and no CyberTipline XML: {snippet!r}",
                status=status,
            )
        if not parsed.ok:
            return NcmecError(
                f"NCMEC refused {step}: responseCode {parsed.code} ({described}), HTTP {status}",
                response_code=parsed.code,
                status=status,
            )
        return NcmecError(f"NCMEC answered {step} with HTTP {status}{said}", status=status)

    def _wait(self, attempt: int) -> None:
        self._sleep(min(_MAX_BACKOFF, self._backoff * 2.0 ** (attempt - 1)))

    def _send(
        self, method: str, path: str, body: bytes | None, content_type: str | None
    ) -> tuple[int, bytes]:
        """One HTTP exchange, within `timeout` seconds in all: (status, body up to the
        answer limit). An answer cut short (fewer bytes than its Content-Length) is no
        answer: `_Lost`, like a reset."""
        headers = {"Authorization": self._auth, "Accept": "text/xml"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(
            self._url + path, data=body, headers=headers, method=method
        )
        with _Deadline(self._timeout) as deadline:
            try:
                try:
                    answer = self._opener.open(request, timeout=self._timeout)
                    response = answer
                except urllib.error.HTTPError as refused:  # an answer all the same
                    answer, response = refused, refused.fp
                with answer:
                    status = int(answer.code)
                    raw = answer.read(MAX_DOCUMENT_BYTES + 1)
                    left = getattr(response, "length", None)
                    if len(raw) <= MAX_DOCUMENT_BYTES and left:
                        raise http.client.IncompleteRead(raw, left)
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, _ConnectFailed):
                    raise _NotSent(str(exc.reason)) from None
                # Failed while sending: part of the request, or all of it, may have arrived.
                raise _Lost(deadline.why(f"{type(exc).__name__}: {exc.reason}")) from None
            except (TimeoutError, http.client.HTTPException, OSError) as exc:
                raise _Lost(deadline.why(f"{type(exc).__name__}: {exc}")) from None
            if not deadline.finish():
                raise _Lost(deadline.why(""))
            return status, raw
