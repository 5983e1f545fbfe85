"""A client of NCMEC's CyberTipline reporting API: one method per documented call.

``status`` (GET), ``submit`` (the report XML), ``upload`` (one file, multipart), ``fileinfo``
(a file's details XML), ``finish`` and ``retract`` (the report id as a form field). Every call
carries HTTP Basic credentials, has a timeout, and is retried with exponential backoff when
NCMEC cannot be reached or answers 5xx — and only then: a 401, a 4xx or an answer with a
non-zero ``responseCode`` is final, since sending the same thing again would get the same
answer. Redirects are not followed (a report never goes anywhere but the configured URL).

A retried ``submit`` whose first attempt did reach NCMEC may leave an extra *open* report
there; NCMEC deletes unfinished reports by itself (24 hours after opening, or one hour
after the last change), so it is never filed. A retried upload may likewise add a second
copy of a file to the report.

Every attempt can be written down: the caller passes a `CallJournal`, which hears the exact
request (for an upload, the file's SHA-256 and size, never its bytes) *before* it is sent and
the answer after. `lightkeeper.reporting.reports` keeps them in ``report_calls``.

Answers are parsed with `lightkeeper.reporting.cybertipline.parse_document`: no DTD, no
entities, at most 1 MiB. The client uses the standard library only (``urllib``).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
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
    "Step",
]

Step = Literal["status", "submit", "upload", "fileinfo", "finish", "retract"]

#: NCMEC's response codes the client gives a meaning to.
REPORT_DOES_NOT_EXIST = 5001
REPORT_ALREADY_RETRACTED = 5101
REPORT_ALREADY_FINISHED = 5102
_MAX_BACKOFF = 30.0


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


class _Unreachable(Exception):
    """No answer: connection refused or dropped, DNS, TLS, timeout."""


class CyberTiplineClient:
    """NCMEC's API at `url` (``…/ispws``) with the credentials NCMEC issued.

    `attempts` tries per call on connection errors and 5xx, waiting `backoff`, twice that,
    and so on (at most 30 s) between them; `timeout` seconds per attempt.
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
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
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
        ``file_id`` and NCMEC's MD5 of it (``hash``)."""
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
            except _Unreachable as exc:
                journal.after(handle, status=None, response=None, error=str(exc), parsed=None)
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
            parsed = _parse_or_none(raw, status)
            if status >= 500 and not last:
                journal.after(handle, status=status, response=text, error=None, parsed=parsed)
                self._wait(attempt)
                continue
            journal.after(handle, status=status, response=text, error=None, parsed=parsed)
            return self._final(step, status, text, parsed)
        raise AssertionError("unreachable")  # pragma: no cover

    def _final(
        self, step: Step, status: int, text: str, parsed: NcmecResponse | None
    ) -> NcmecResponse:
        if status == 401:
            raise NcmecError(
                f"NCMEC refused the credentials (HTTP 401) for {step} at {self._url}: check "
                "LIGHTKEEPER_NCMEC_USERNAME and LIGHTKEEPER_NCMEC_PASSWORD (test and production "
                "credentials differ)",
                response_code=None if parsed is None else parsed.code,
                status=401,
            )
        if status >= 500:
            raise NcmecError(
                f"NCMEC answered {step} with HTTP {status} after {self._attempts} attempt(s)",
                response_code=None if parsed is None else parsed.code,
                status=status,
            )
        if parsed is None:
            snippet = " ".join(text.split())[:200]
            raise NcmecError(
                f"NCMEC answered {step} with HTTP {status} and no CyberTipline XML: {snippet!r}",
                status=status,
            )
        if not parsed.ok:
            raise NcmecError(
                f"NCMEC refused {step}: responseCode {parsed.code} "
                f"({parsed.description or 'no description'})",
                response_code=parsed.code,
                status=status,
            )
        if status >= 300:
            raise NcmecError(f"NCMEC answered {step} with HTTP {status}", status=status)
        return parsed

    def _wait(self, attempt: int) -> None:
        self._sleep(min(_MAX_BACKOFF, self._backoff * 2.0 ** (attempt - 1)))

    def _send(
        self, method: str, path: str, body: bytes | None, content_type: str | None
    ) -> tuple[int, bytes]:
        """One HTTP exchange: (status, body up to the answer limit)."""
        headers = {"Authorization": self._auth, "Accept": "text/xml"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(
            self._url + path, data=body, headers=headers, method=method
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as answer:
                return int(answer.status), answer.read(MAX_DOCUMENT_BYTES + 1)
        except urllib.error.HTTPError as exc:
            with exc:
                return int(exc.code), exc.read(MAX_DOCUMENT_BYTES + 1)
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _Unreachable(f"{type(exc).__name__}: {reason}") from None


def _parse_or_none(raw: bytes, status: int) -> NcmecResponse | None:
    try:
        return parse_response(raw, status)
    except ValueError:
        return None
