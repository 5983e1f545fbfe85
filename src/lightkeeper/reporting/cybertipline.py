"""The CyberTipline documents: the report XML and the file details, built in schema order.

NCMEC's API takes two XML documents (see docs/reporting.md for the sources):

- ``<report>``, sent once to open a report (``/submit``): `report_xml`. Its children come
  in the schema's order — ``incidentSummary``, ``reporter``, ``personOrUserReported``,
  ``additionalInfo`` — and within them in theirs (``incidentType`` before
  ``incidentDateTime``; ``reportingPerson`` before ``companyTemplate``, ``termsOfService``,
  ``legalURL``). NCMEC refuses a document out of order.
- ``<fileDetails>``, sent once per uploaded file (``/fileinfo``): `file_details_xml`, with
  ``fileViewedByEsp`` (whether a person at the provider saw the file: the audit trail says),
  ``industryClassification`` (the reviewer's A1/A2/B1/B2), the original file's hashes, and
  the match evidence as ``details`` name/value pairs (bank, entry, signal type, distance,
  threshold, list name and version, external id, and the matched entry's own value). The
  banks' other hash values never go anywhere.

``incidentDateTime`` is the earliest upload time of the reported files, never in the future:
a time ahead of the clock (a platform's skewed clock) is clamped to now, and
``incidentDateTimeDescription`` says so. Times are ISO 8601 with an offset.

Text that XML 1.0 cannot carry (control characters, lone surrogates) is replaced by U+FFFD
and line ends are written as newlines (`xml_text`); ElementTree escapes ``&``, ``<`` and
``>``. Whatever a bank or a platform put in a list name or an uploader reference, the
document stays well formed and reads back as written.

`parse_document` reads an XML document from the network safely: no DTD, hence no entity of
any kind (no "billion laughs", no external entity), a size cap, and errors as `ValueError`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from xml.parsers import expat

from lightkeeper.reporting.settings import Person, ReporterProfile

__all__ = [
    "CHILD_PORNOGRAPHY",
    "FILE_RELEVANCES",
    "INCIDENT_TYPES",
    "INDUSTRY_CLASSIFICATIONS",
    "MAX_DOCUMENT_BYTES",
    "FileFacts",
    "ReportFacts",
    "evidence_pairs",
    "file_details_xml",
    "iso_time",
    "parse_document",
    "report_xml",
    "xml_text",
]

#: The incident type of a report of known abuse imagery.
CHILD_PORNOGRAPHY = "Child Pornography (possession, manufacture, and distribution)"
#: Every ``incidentType`` the schema allows.
INCIDENT_TYPES: tuple[str, ...] = (
    CHILD_PORNOGRAPHY,
    "Child Sex Trafficking",
    "Child Sex Tourism",
    "Child Sexual Molestation",
    "Misleading Domain Name",
    "Misleading Words or Digital Images on the Internet",
    "Online Enticement of Children for Sexual Acts",
    "Unsolicited Obscene Material Sent to a Child",
)
#: The industry classification scale: (A) prepubescent, (B) pubescent; (1) sex act,
#: (2) lascivious exhibition.
INDUSTRY_CLASSIFICATIONS: tuple[str, ...] = ("A1", "A2", "B1", "B2")
FILE_RELEVANCES: tuple[str, ...] = ("Reported", "Supplemental Reported")
#: Largest XML document `parse_document` reads (NCMEC's answers are a few hundred bytes).
MAX_DOCUMENT_BYTES = 1024 * 1024

# Characters XML 1.0 cannot carry at all (tab, newline and return are fine).
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Evidence fields reported as details, in this order, with the name each gets there.
_EVIDENCE_FIELDS: tuple[tuple[str, str], ...] = (
    ("bank", "bank"),
    ("entry_id", "entryId"),
    ("signal_type", "signalType"),
    ("distance", "distance"),
    ("threshold", "threshold"),
    ("list_name", "listName"),
    ("list_version", "listVersion"),
    ("external_id", "externalId"),
    ("classification", "entryClassification"),
    ("variant", "variant"),
    ("quality", "quality"),
    ("value", "matchedValue"),
)


def xml_text(value: object) -> str:
    """`value` as text an XML document carries unchanged: characters XML 1.0 cannot carry
    become U+FFFD, and line ends become ``\\n`` (as any XML parser would read them)."""
    return _NOT_XML.sub("\ufffd", str(value).replace("\r\n", "\n").replace("\r", "\n"))


def iso_time(moment: datetime) -> str:
    """`moment` as ISO 8601 in UTC with its offset, to the second: 2026-03-01T09:30:00+00:00."""
    if moment.tzinfo is None:
        raise ValueError("a report time must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def _add(parent: ET.Element, tag: str, text: object | None = None) -> ET.Element:
    child = ET.SubElement(parent, tag)
    if text is not None:
        child.text = xml_text(text)
    return child


def _person(parent: ET.Element, tag: str, person: Person) -> None:
    """A person in the schema's order: firstName, lastName, phone, email."""
    element = _add(parent, tag)
    if person.first_name:
        _add(element, "firstName", person.first_name)
    if person.last_name:
        _add(element, "lastName", person.last_name)
    if person.phone:
        _add(element, "phone", person.phone)
    if person.email:
        _add(element, "email", person.email)


def _document(root: ET.Element) -> str:
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


@dataclass(frozen=True, slots=True)
class ReportFacts:
    """What a report says, gathered from a confirmed case (see `lightkeeper.reporting.reports`)."""

    case_id: int
    #: Upload times of the reported content; the earliest is the incident time.
    uploaded_at: tuple[datetime, ...]
    #: The platform's opaque reference of the uploader (an ESP user id), if it passed one.
    uploader: str | None
    #: The reviewer's industry classification of the content.
    classification: str
    incident_type: str = CHILD_PORNOGRAPHY
    #: Recorded uploads of the content by this uploader, and how many are reported with a file.
    uploads: int = 1
    files: int = 1
    #: Names of the hash lists that matched (for the summary sentence).
    lists: tuple[str, ...] = ()


def _incident_time(facts: ReportFacts, now: datetime) -> tuple[datetime, str | None]:
    earliest = min(facts.uploaded_at, default=now)
    if earliest <= now:
        return earliest, None
    return now, (
        f"The platform recorded the first upload at {iso_time(earliest)}, after this report "
        f"was made; the incident time was set to the time of the report."
    )


def report_xml(facts: ReportFacts, profile: ReporterProfile, *, now: datetime | None = None) -> str:
    """The ``<report>`` document for `facts`, reported by `profile`, in schema order."""
    if facts.incident_type not in INCIDENT_TYPES:
        raise ValueError(f"unknown incident type {facts.incident_type!r}")
    moment, clamped = _incident_time(facts, now or datetime.now(UTC))
    report = ET.Element("report")

    summary = _add(report, "incidentSummary")
    _add(summary, "incidentType", facts.incident_type)
    _add(summary, "incidentDateTime", iso_time(moment))
    if clamped is not None:
        _add(summary, "incidentDateTimeDescription", clamped)

    reporter = _add(report, "reporter")
    _person(reporter, "reportingPerson", profile.reporting_person)
    if profile.contact_person is not None:
        _person(reporter, "contactPerson", profile.contact_person)
    if profile.company_template:
        _add(reporter, "companyTemplate", profile.company_template)
    if profile.terms_of_service:
        _add(reporter, "termsOfService", profile.terms_of_service)
    if profile.legal_url:
        _add(reporter, "legalURL", profile.legal_url)

    if facts.uploader is not None and facts.uploader.strip():
        reported = _add(report, "personOrUserReported")
        _add(reported, "espIdentifier", facts.uploader)
        if profile.esp_service:
            _add(reported, "espService", profile.esp_service)

    lists = ", ".join(facts.lists) or "a hash list"
    copies = "upload" if facts.uploads == 1 else "uploads"
    _add(
        report,
        "additionalInfo",
        f"Identified by hash match against {lists}, then confirmed by human review "
        f"(industry classification {facts.classification}). {facts.uploads} recorded "
        f"{copies} of this content; {facts.files} attached. Case {facts.case_id}.",
    )
    return _document(report)


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What one file's details say; the ids are NCMEC's, the rest from the recorded match."""

    uploaded_at: datetime
    #: Whether a person at the provider viewed this file (the audit trail says).
    viewed_by_esp: bool
    classification: str
    #: Original file hashes as (hash type, hex): SHA256 always, MD5 when computed.
    hashes: tuple[tuple[str, str], ...]
    #: The acting matches' evidence (`Match.to_dict` form).
    evidence: tuple[Mapping[str, Any], ...] = field(default=())
    #: A sentence for ``additionalInfo``; None for none.
    note: str | None = None


def evidence_pairs(item: Mapping[str, Any]) -> list[tuple[str, str]]:
    """One match's evidence as (name, value) pairs, in a fixed order; absent or blank ones
    are left out (the schema refuses an empty value)."""
    pairs = []
    for key, name in _EVIDENCE_FIELDS:
        value = item.get(key)
        if value is None or not str(value).strip():
            continue
        pairs.append((name, str(value)))
    return pairs


def file_details_xml(report_id: str, file_id: str, facts: FileFacts) -> str:
    """The ``<fileDetails>`` document for an uploaded file, in schema order."""
    if facts.classification not in INDUSTRY_CLASSIFICATIONS:
        raise ValueError(f"unknown industry classification {facts.classification!r}")
    details = ET.Element("fileDetails")
    _add(details, "reportId", report_id)
    _add(details, "fileId", file_id)
    _add(details, "uploadedToEspTimestamp", iso_time(facts.uploaded_at))
    _add(details, "fileViewedByEsp", "true" if facts.viewed_by_esp else "false")
    _add(details, "fileRelevance", "Reported")
    _add(details, "industryClassification", facts.classification)
    for hash_type, value in facts.hashes:
        _add(details, "originalFileHash", value).set("hashType", xml_text(hash_type))
    for item in facts.evidence:
        pairs = evidence_pairs(item)
        if not pairs:
            continue
        group = _add(details, "details")
        for name, value in pairs:
            pair = _add(group, "nameValuePair")
            _add(pair, "name", name)
            _add(pair, "value", value)
    if facts.note and facts.note.strip():
        _add(details, "additionalInfo", facts.note)
    return _document(details)


# ---------------------------------------------------------------------- parsing


def _refuse(what: str) -> None:
    raise ValueError(f"refused: the document carries {what}")


def parse_document(data: bytes, *, limit: int = MAX_DOCUMENT_BYTES) -> ET.Element:
    """The root element of the XML document `data`; `ValueError` when it is not one.

    A DTD (``<!DOCTYPE``) is refused outright, with it any entity declaration, internal or
    external; so are documents over `limit` bytes.
    """
    if len(data) > limit:
        raise ValueError(f"refused: the document is over {limit:,} bytes")
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = lambda *_: _refuse("a DTD (<!DOCTYPE …>)")
    parser.EntityDeclHandler = lambda *_: _refuse("an entity declaration")
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise ValueError(f"not well-formed XML: {expat.errors.messages[exc.code]}") from None
    return builder.close()
