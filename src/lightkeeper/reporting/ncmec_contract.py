"""A TEST DOUBLE of NCMEC's CyberTipline reporting API, enforcing its published contract.

This is not NCMEC and reaches nothing: it is a real HTTP server on the loopback interface
that answers the way NCMEC's published documentation says the API answers, so that the
client, the report builder and the whole reporting flow can be tested without NCMEC (whose
endpoint cannot be reached from here). Tests, the reviewer UI's browser test and the docs
start it:

    with ContractServer("usr123", "pswd123") as server:
        client = CyberTiplineClient(server.url, "usr123", "pswd123")
        ...
        assert server.reports[report_id].state == "finished"

What it enforces (sources and assumptions in docs/reporting.md):

- HTTP Basic authentication on every call, checked first: none or wrong credentials get
  HTTP 401, whatever the path or the size of the body.
- ``GET /status``: ``reportResponse`` with ``responseCode`` 0.
- ``POST /submit`` (``text/xml``): a ``<report>`` checked against the schema's element order,
  cardinalities and value lists (`SCHEMA`): ``incidentType`` from the allowed list,
  ``incidentDateTime`` ISO 8601 with an offset and not in the future, a reporting person
  with an email. Accepted: a new report id; refused: ``responseCode`` 4100 with the first
  problems in ``responseDescription``.
- ``POST /upload`` (multipart: ``id``, ``file``): a ``fileId`` and the file's MD5 ``hash``,
  only for an open report.
- ``POST /fileinfo`` (``text/xml``): a ``<fileDetails>`` checked likewise, for a file of that
  open report.
- ``POST /finish`` (``id``): ``reportDoneResponse`` with the report id and its files; the
  report is closed: no upload, file details, finish or retraction after it (5102).
- ``POST /retract`` (``id``): an open report is withdrawn; anything after it gets 5101.
- Unknown report id: 5001; unknown file id: 5002; a malformed request: 4000; XML that is
  not well-formed or carries a DTD: 4110. Application answers come with HTTP 200, as
  NCMEC's documented examples do.

Everything received is kept for assertions (`reports`, `calls`), and `fail_next` makes the
next calls to a path fail (HTTP 500, or a dropped connection) to test retries, or lose their
answer after handling them (NCMEC acted, the client never hears it). A call is recorded
*before* it is answered, so a client holding an answer always finds its call in `calls`; an
error of the double itself becomes a recorded HTTP 500, never a silently dropped connection.
Documents are decoded as the XML parser read them (their declared encoding).
"""

from __future__ import annotations

import base64
import codecs
import email.parser
import email.policy
import hashlib
import hmac
import itertools
import random
import re
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs

from lightkeeper.reporting.cybertipline import (
    FILE_RELEVANCES,
    INCIDENT_TYPES,
    INDUSTRY_CLASSIFICATIONS,
    parse_document,
)

__all__ = [
    "CODES",
    "SCHEMA",
    "ContractServer",
    "ReceivedCall",
    "ReceivedFile",
    "ReceivedReport",
    "check_document",
]

#: Response codes NCMEC documents, by meaning.
CODES = {
    "success": 0,
    "server_error": 1000,
    "authentication_required": 2000,
    "invalid_request": 4000,
    "validation_failed": 4100,
    "malformed_xml": 4110,
    "report_does_not_exist": 5001,
    "file_does_not_exist": 5002,
    "report_already_retracted": 5101,
    "report_already_finished": 5102,
}
#: Largest request body accepted (files included).
MAX_BODY = 64 * 1024 * 1024

# ---------------------------------------------------------------------- the schema

Check = Callable[[ET.Element], str | None]


@dataclass(frozen=True, slots=True)
class Particle:
    """One element of a sequence: its name, how many times it may come, and its type: the
    name of a complex type in `SCHEMA`, a check of a simple value, or None for any content."""

    name: str
    kind: str | Check | None
    min: int = 0
    max: int | None = 1


def _text(limit: int | None = None, choices: tuple[str, ...] = ()) -> Check:
    def check(element: ET.Element) -> str | None:
        value = (element.text or "").strip()
        if not value:
            return f"<{element.tag}> is empty"
        if limit is not None and len(value) > limit:
            return f"<{element.tag}> is over {limit} characters"
        if choices and value not in choices:
            return f"<{element.tag}> {value!r} is not one of: {'; '.join(choices)}"
        return None

    return check


_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def _datetime(*, past: bool = False) -> Check:
    def check(element: ET.Element) -> str | None:
        value = (element.text or "").strip()
        if not _DATETIME.fullmatch(value):
            return f"<{element.tag}> {value!r} is not an ISO 8601 date and time with an offset"
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return f"<{element.tag}> {value!r} is not a valid date and time"
        if past and moment > datetime.now(UTC):
            return f"<{element.tag}> {value} is in the future"
        return None

    return check


def _boolean(element: ET.Element) -> str | None:
    if (element.text or "").strip() not in ("true", "false", "1", "0"):
        return f"<{element.tag}> must be true or false"
    return None


def _integer(element: ET.Element) -> str | None:
    if not re.fullmatch(r"[0-9]{1,18}", (element.text or "").strip()):
        return f"<{element.tag}> must be a whole number"
    return None


def _flag(element: ET.Element) -> str | None:
    if (element.text or "").strip():
        return f"<{element.tag}> is a flag: it takes no content"
    return None


def _hash(element: ET.Element) -> str | None:
    if not element.get("hashType", "").strip():
        return "<originalFileHash> needs a hashType attribute"
    return _text(256)(element)


def _seq(*particles: Particle) -> tuple[Particle, ...]:
    return particles


def P(  # noqa: N802 - reads like the schema it transcribes
    name: str, kind: str | Check | None, min: int = 0, max: int | None = 1
) -> Particle:
    return Particle(name, kind, min, max)


MANY = None
_PERSON = (
    P("firstName", _text(100)),
    P("lastName", _text(100)),
    P("phone", _text(50), 0, MANY),
    P("email", _text(255), 0, MANY),
    P("address", "address", 0, MANY),
)
_ACCOUNT_TAIL = (
    P("profileBio", _text()),
    P("ipCaptureEvent", "ipCaptureEvent", 0, MANY),
    P("deviceId", "deviceId", 0, MANY),
)

#: The documents' complex types: each a sequence of particles, in the schema's order.
SCHEMA: dict[str, tuple[Particle, ...]] = {
    "report": _seq(
        P("batchedReport", _flag),
        P("incidentSummary", "incidentSummary", 1),
        P("internetDetails", "internetDetails", 0, MANY),
        P("lawEnforcement", None),
        P("reporter", "reporter", 1),
        P("personOrUserReported", "personOrUserReported"),
        P("intendedRecipient", None, 0, MANY),
        P("victim", None, 0, MANY),
        P("additionalInfo", _text()),
    ),
    "incidentSummary": _seq(
        P("incidentType", _text(choices=INCIDENT_TYPES), 1),
        P("platform", _text(256)),
        P("escalateToHighPriority", _text(3000)),
        P("reportAnnotations", "reportAnnotations"),
        P("incidentDateTime", _datetime(past=True), 1),
        P("incidentDateTimeDescription", _text(3000)),
    ),
    "reportAnnotations": _seq(
        *(
            P(name, _flag)
            for name in (
                "sextortion",
                "csamSolicitation",
                "minorToMinorInteraction",
                "spam",
                "sadisticOnlineExploitation",
                "informational",
            )
        )
    ),
    # A choice of one incident kind; their own content is not checked by this double.
    "internetDetails": _seq(
        *(
            P(name, None)
            for name in (
                "webPageIncident",
                "emailIncident",
                "newsgroupIncident",
                "chatImIncident",
                "onlineGamingIncident",
                "cellPhoneIncident",
                "nonInternetIncident",
                "peer2peerIncident",
            )
        )
    ),
    "reporter": _seq(
        P("reportingPerson", "person", 1),
        P("contactPerson", "person"),
        P("companyTemplate", _text()),
        P("termsOfService", _text()),
        P("legalURL", _text(2083)),
    ),
    "person": _seq(
        *_PERSON,
        P("age", _integer),
        P("ageAssertionDiscrepancy", _boolean),
        P("dateOfBirth", _text()),
    ),
    "address": _seq(
        P("address", _text(255)),
        P("city", _text(100)),
        P("zipCode", _text(20)),
        P("state", _text()),
        P("nonUsaState", _text(100)),
        P("country", _text()),
    ),
    "personOrUserReported": _seq(
        P("personOrUserReportedPerson", "person"),
        P("vehicleDescription", _text(300)),
        P("espIdentifier", _text(255)),
        P("espService", _text(100)),
        P("compromisedAccount", _boolean),
        P("screenName", _text(256)),
        P("displayName", _text(), 0, MANY),
        P("profileUrl", _text(2083), 0, MANY),
        *_ACCOUNT_TAIL,
        P("thirdPartyUserReported", _boolean),
        P("priorCTReports", _integer, 0, MANY),
        P("groupIdentifier", _text(255)),
        P("accountTemporarilyDisabled", _boolean),
        P("accountPermanentlyDisabled", _boolean),
        P("estimatedLocation", None),
        P("allEmailsReported", _boolean),
        P("associatedAccount", None, 0, MANY),
        P("additionalInfo", _text()),
    ),
    "ipCaptureEvent": _seq(
        P("ipAddress", _text(64), 1),
        P(
            "eventName",
            _text(choices=("Login", "Registration", "Purchase", "Upload", "Other", "Unknown")),
        ),
        P("dateTime", _datetime()),
        P("possibleProxy", _boolean),
        P("port", _integer),
    ),
    "deviceId": _seq(
        P("idType", _text(255), 1),
        P("idValue", _text(2083), 1),
        P("eventName", _text()),
        P("dateTime", _datetime()),
    ),
    "fileDetails": _seq(
        P("reportId", _integer, 1),
        P("fileId", _text(64), 1),
        P("originalFileName", _text(2056)),
        P("uploadedToEspTimestamp", _datetime()),
        P("locationOfFile", _text(2083)),
        P("fileViewedByEsp", _boolean),
        P("exifViewedByEsp", _boolean),
        P("publiclyAvailable", _boolean),
        P("fileRelevance", _text(choices=FILE_RELEVANCES)),
        P("fileAnnotations", "fileAnnotations"),
        P("industryClassification", _text(choices=INDUSTRY_CLASSIFICATIONS)),
        P("originalFileHash", _hash, 0, MANY),
        P("ipCaptureEvent", "ipCaptureEvent", 0, MANY),
        P("deviceId", "deviceId", 0, MANY),
        P("details", "details", 0, MANY),
        P("additionalInfo", _text(), 0, MANY),
    ),
    "fileAnnotations": _seq(
        *(
            P(name, _flag)
            for name in (
                "animeDrawingVirtualHentai",
                "potentialMeme",
                "viral",
                "possibleSelfProduction",
                "physicalHarm",
                "violenceGore",
                "bestiality",
                "liveStreaming",
                "infant",
                "generativeAi",
            )
        )
    ),
    "details": _seq(P("nameValuePair", "nameValuePair", 1, MANY)),
    "nameValuePair": _seq(P("name", _text(64), 1), P("value", _text(), 1)),
}

#: Complex types that hold exactly one of their particles (an XSD choice).
_CHOICES = {"internetDetails"}


def _check(element: ET.Element, kind: str, path: str, problems: list[str]) -> None:
    """Check `element` against the complex type `kind`, appending what is wrong."""
    if (element.text or "").strip():
        problems.append(f"{path}: text is not allowed here")
    particles = SCHEMA[kind]
    names = {p.name for p in particles}
    index, count, seen = 0, 0, 0  # the particle reached, its occurrences, children matched

    def missing(upto: int) -> None:
        """Particles index … upto-1 are left behind: were their minimums met?"""
        for position in range(index, upto):
            got = count if position == index else 0
            if got < particles[position].min:
                problems.append(f"{path}: <{particles[position].name}> is required")

    for child in element:
        where = f"{path}/{child.tag}"
        if (child.tail or "").strip():
            problems.append(f"{path}: text is not allowed between elements")
        if child.tag not in names:
            problems.append(f"{where}: unexpected element in <{element.tag}>")
            continue
        target = index
        while target < len(particles) and particles[target].name != child.tag:
            target += 1
        if target == len(particles):
            problems.append(f"{where}: out of order (the schema puts it earlier in <{kind}>)")
            continue
        if target != index:
            missing(target)
            index, count = target, 0
        particle = particles[index]
        count += 1
        seen += 1
        if particle.max is not None and count > particle.max:
            problems.append(f"{where}: at most {particle.max} allowed")
        if isinstance(particle.kind, str):
            _check(child, particle.kind, where, problems)
        elif particle.kind is not None:
            if len(child):
                problems.append(f"{where}: child elements are not allowed here")
            problem = particle.kind(child)
            if problem is not None:
                problems.append(f"{where}: {problem}")
    missing(len(particles))
    if kind in _CHOICES and seen != 1:
        problems.append(f"{path}: exactly one of {', '.join(sorted(names))} is required")


def check_document(root: ET.Element, expected: str) -> list[str]:
    """What is wrong with the document `root` as a `expected` (``report`` or
    ``fileDetails``): an empty list when it follows the schema."""
    if root.tag != expected:
        return [f"the root element must be <{expected}>, not <{root.tag}>"]
    problems: list[str] = []
    _check(root, expected, expected, problems)
    # the reporting person must be reachable: NCMEC requires an email there
    person = root.find("reporter/reportingPerson") if expected == "report" else None
    if person is not None and person.find("email") is None:
        problems.append("report/reporter/reportingPerson: <email> is required")
    return problems


# ---------------------------------------------------------------------- what it received


@dataclass
class ReceivedFile:
    file_id: str
    filename: str
    media_type: str
    size: int
    sha256: str
    md5: str
    #: Every ``<fileDetails>`` document received for it, as sent.
    fileinfo: list[str] = field(default_factory=list)


@dataclass
class ReceivedReport:
    report_id: str
    #: The ``<report>`` document as sent.
    xml: str
    state: Literal["open", "finished", "retracted"] = "open"
    files: dict[str, ReceivedFile] = field(default_factory=dict)

    @property
    def root(self) -> ET.Element:
        return parse_document(self.xml.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class ReceivedCall:
    method: str
    path: str
    http_status: int
    #: NCMEC's ``responseCode`` answered; None for a 401, an injected failure or a 404.
    response_code: int | None


# ---------------------------------------------------------------------- the server


def _response(code: int, description: str, **fields: str) -> bytes:
    root = ET.Element("reportResponse")
    ET.SubElement(root, "responseCode").text = str(code)
    ET.SubElement(root, "responseDescription").text = description
    for name, value in fields.items():
        ET.SubElement(root, name).text = value
    return b'<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root)


class _Refusal(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


class ContractServer:
    """The test double, on 127.0.0.1 and a free port, in a background thread; a context
    manager. `url` is its base URL (…/ispws)."""

    def __init__(self, username: str = "usr123", password: str = "pswd123") -> None:
        self._credentials = (username, password)
        self._lock = threading.Lock()
        self._ids = itertools.count(random.randrange(10**6, 10**9))
        self._failures: dict[str, list[tuple[int | None, bool]]] = {}
        self.reports: dict[str, ReceivedReport] = {}
        self.calls: list[ReceivedCall] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle

    def start(self) -> ContractServer:
        handler = _handler_for(self)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        # A short poll interval: `stop` returns within it.
        self._thread = threading.Thread(
            target=lambda: httpd.serve_forever(poll_interval=0.05),
            name="ncmec-contract",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ContractServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the contract server is not running")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/ispws"

    # -- test controls and records

    def fail_next(
        self, path: str, *, times: int = 1, status: int | None = 500, handled: bool = False
    ) -> None:
        """Make the next `times` calls to `path` (``/submit`` …) fail before being handled:
        HTTP `status`, or the connection closed without an answer when `status` is None.
        With `handled`, the call is handled first (a report opened, a file added …), then
        the connection is closed without an answer (`status` None: NCMEC acted, its answer
        was lost), or answered `status` with a page that is not NCMEC's (a gateway that gave
        up waiting after NCMEC acted)."""
        with self._lock:
            self._failures.setdefault(path, []).extend([(status, handled)] * times)

    def calls_to(self, path: str) -> list[ReceivedCall]:
        with self._lock:
            return [c for c in self.calls if c.path == path]

    def report(self, report_id: str) -> ReceivedReport:
        with self._lock:
            return self.reports[report_id]

    # -- request handling (called from the handler's thread)

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        want_user, want_password = self._credentials
        return hmac.compare_digest(user.encode(), want_user.encode()) & hmac.compare_digest(
            password.encode(), want_password.encode()
        )

    def _take_failure(self, path: str) -> tuple[int | None, bool] | None:
        with self._lock:
            queued = self._failures.get(path)
            if queued:
                return queued.pop(0)
            return None

    def _record(self, method: str, path: str, status: int, code: int | None) -> None:
        with self._lock:
            self.calls.append(ReceivedCall(method, path, status, code))

    def _open_report(self, report_id: str) -> ReceivedReport:
        found = self.reports.get(report_id)
        if found is None:
            raise _Refusal(CODES["report_does_not_exist"], f"Report {report_id} does not exist")
        if found.state == "finished":
            raise _Refusal(CODES["report_already_finished"], "Report already finished")
        if found.state == "retracted":
            raise _Refusal(CODES["report_already_retracted"], "Report already retracted")
        return found

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, bytes]:
        """One call: (HTTP status, body). Raises nothing: a client's mistake is NCMEC's
        refusal, an error of the double itself an HTTP 500."""
        try:
            if method == "GET" and path == "/status":
                return 200, _response(0, f"Remote User : {self._credentials[0]}")
            if method != "POST":
                return 404, b"not found"
            route = {
                "/submit": self._submit,
                "/upload": self._upload,
                "/fileinfo": self._fileinfo,
                "/finish": self._finish,
                "/retract": self._retract,
            }.get(path)
            if route is None:
                return 404, b"not found"
            with self._lock:
                return 200, route(headers, body)
        except _Refusal as refusal:
            return 200, _response(refusal.code, refusal.description)
        except Exception as exc:  # the double's own error: answered and recorded, not dropped
            return 500, f"contract server error: {type(exc).__name__}".encode()

    def _xml(self, headers: Any, body: bytes, expected: str) -> ET.Element:
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type not in ("text/xml", "application/xml"):
            raise _Refusal(CODES["invalid_request"], "Content-Type must be text/xml")
        try:
            root = parse_document(body)
        except ValueError as exc:
            raise _Refusal(CODES["malformed_xml"], f"Malformed XML: {exc}") from None
        problems = check_document(root, expected)
        if problems:
            raise _Refusal(
                CODES["validation_failed"], "Validation failed: " + "; ".join(problems[:5])
            )
        return root

    def _submit(self, headers: Any, body: bytes) -> bytes:
        self._xml(headers, body, "report")
        report_id = str(next(self._ids))
        self.reports[report_id] = ReceivedReport(report_id, _decoded(body))
        return _response(0, "Success", reportId=report_id)

    def _upload(self, headers: Any, body: bytes) -> bytes:
        fields, files = _multipart(headers, body)
        report_id = fields.get("id", "").strip()
        if not report_id or "file" not in files:
            raise _Refusal(CODES["invalid_request"], "An upload needs the fields id and file")
        report = self._open_report(report_id)
        filename, media_type, data = files["file"]
        file_id = uuid.uuid4().hex
        md5 = hashlib.md5(data).hexdigest()
        report.files[file_id] = ReceivedFile(
            file_id, filename, media_type, len(data), hashlib.sha256(data).hexdigest(), md5
        )
        return _response(0, "Success", reportId=report_id, fileId=file_id, hash=md5)

    def _fileinfo(self, headers: Any, body: bytes) -> bytes:
        root = self._xml(headers, body, "fileDetails")
        report_id = (root.findtext("reportId") or "").strip()
        file_id = (root.findtext("fileId") or "").strip()
        report = self._open_report(report_id)
        if file_id not in report.files:
            raise _Refusal(CODES["file_does_not_exist"], f"File {file_id} does not exist")
        report.files[file_id].fileinfo.append(_decoded(body))
        return _response(0, "Success", reportId=report_id)

    def _finish(self, headers: Any, body: bytes) -> bytes:
        report = self._open_report(_form_id(headers, body))
        report.state = "finished"
        root = ET.Element("reportDoneResponse")
        ET.SubElement(root, "responseCode").text = "0"
        ET.SubElement(root, "reportId").text = report.report_id
        files = ET.SubElement(root, "files")
        for file_id in report.files:
            ET.SubElement(files, "fileId").text = file_id
        return b'<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root)

    def _retract(self, headers: Any, body: bytes) -> bytes:
        report = self._open_report(_form_id(headers, body))
        report.state = "retracted"
        return _response(0, "Success", reportId=report.report_id)


_DECLARED = re.compile(rb"""<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def _decoded(body: bytes) -> str:
    """An XML document's text, decoded as the XML parser read it: by its byte-order mark,
    else its declared encoding, else UTF-8."""
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return body.decode("utf-16")
    if body.startswith(codecs.BOM_UTF8):
        return body[len(codecs.BOM_UTF8) :].decode("utf-8")
    declared = _DECLARED.match(body)
    encoding = declared.group(1).decode("ascii") if declared else "utf-8"
    try:
        return body.decode(encoding)
    except (LookupError, UnicodeDecodeError):
        return body.decode("utf-8", "replace")


def _form_id(headers: Any, body: bytes) -> str:
    """The ``id`` field of a form, url-encoded or multipart."""
    content_type = (headers.get("Content-Type") or "").lower()
    if content_type.startswith("multipart/"):
        fields, _ = _multipart(headers, body)
        value = fields.get("id", "")
    else:
        try:
            value = parse_qs(body.decode("ascii"), strict_parsing=False).get("id", [""])[0]
        except UnicodeDecodeError:
            value = ""
    if not value.strip():
        raise _Refusal(CODES["invalid_request"], "The field id (the report id) is required")
    return value.strip()


def _multipart(
    headers: Any, body: bytes
) -> tuple[dict[str, str], dict[str, tuple[str, str, bytes]]]:
    """The text fields and files of a multipart/form-data body."""
    content_type = headers.get("Content-Type") or ""
    if not content_type.lower().startswith("multipart/form-data"):
        raise _Refusal(CODES["invalid_request"], "Expected multipart/form-data")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body
    )
    if not message.is_multipart():
        raise _Refusal(CODES["invalid_request"], "Malformed multipart body")
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is None:
            fields[name] = data.decode("utf-8", "replace")
        else:
            files[name] = (filename, part.get_content_type(), data)
    return fields, files


def _code(status: int, payload: bytes) -> int | None:
    """The ``responseCode`` of an answer, for `ContractServer.calls`."""
    if status != 200:
        return None
    try:
        return int(parse_document(payload).findtext("responseCode") or "")
    except ValueError:
        return None


def _handler_for(server: ContractServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ncmec-contract-double/1"

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: tests assert on `ContractServer.calls` instead

        def _serve(self, method: str) -> None:
            prefix = "/ispws"
            path = self.path.split("?", 1)[0]
            routed = path.startswith(prefix + "/")
            if routed:
                path = path[len(prefix) :]
            try:
                length = max(0, int(self.headers.get("Content-Length") or 0))
            except ValueError:
                length = 0
            body = self.rfile.read(length) if 0 < length <= MAX_BODY else b""
            if length > MAX_BODY:
                self.close_connection = True  # its body is left unread
            if not server._authorized(self.headers.get("Authorization")):
                # Checked first: every call needs credentials, a wrong path or a body too
                # large included. Recorded before answering, like every other call: a
                # client that has its answer must find the call in `calls`.
                server._record(method, path, 401, None)
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="ispws"')
                payload = _response(CODES["authentication_required"], "Authentication required")
                self._finish(payload, "text/xml")
                return
            if not routed:
                self._answer(method, path, 404, b"not found")
                return
            if length > MAX_BODY:
                self._answer(method, path, 413, b"too large")
                return
            failure = server._take_failure(path)
            if failure is not None and not failure[1]:
                status = failure[0]
                server._record(method, path, status or 0, None)
                if status is None:
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(status)
                self._finish(b"injected failure", "text/plain")
                return
            status, payload = server.handle(method, path, self.headers, body)
            if failure is not None and failure[0] is not None:
                # Handled, then a gateway's answer in place of NCMEC's (a 504 after its wait).
                server._record(method, path, failure[0], None)
                self.send_response(failure[0])
                self._finish(b"injected gateway failure", "text/plain")
                return
            if failure is not None:  # handled, then the answer is lost
                server._record(method, path, status, _code(status, payload))
                self.close_connection = True
                self.connection.close()
                return
            self._answer(method, path, status, payload)

        def _answer(self, method: str, path: str, status: int, payload: bytes) -> None:
            server._record(method, path, status, _code(status, payload))
            self.send_response(status)
            self._finish(payload, "text/xml" if status == 200 else "text/plain")

        def _finish(self, payload: bytes, content_type: str) -> None:
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

    return Handler
