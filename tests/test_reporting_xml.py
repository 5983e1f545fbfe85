"""The CyberTipline documents as NCMEC's schema wants them: elements in the schema's order,
required ones present, values from the allowed lists, the incident time never in the future,
XML-special characters escaped whatever a profile or a bank says, and responses parsed with
no DTD. The contract server's checks (`check_document`) are the schema's independent
transcription, so the builder is held to them, and the checks to hand-made documents."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lightkeeper.errors import InputError, InvalidRequest
from lightkeeper.reporting.cybertipline import (
    CHILD_PORNOGRAPHY,
    FileFacts,
    ReportFacts,
    evidence_pairs,
    file_details_xml,
    parse_document,
    report_xml,
    xml_text,
)
from lightkeeper.reporting.ncmec_contract import check_document
from lightkeeper.reporting.settings import (
    PRODUCTION_URL,
    TEST_URL,
    ReporterProfile,
    ReportingSettings,
    check_api_url,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PROFILE = ReporterProfile.from_dict(
    {
        "reporting_person": {
            "first_name": "Ana",
            "last_name": "Silva",
            "email": "ana@example.org",
            "phone": "+1 555 0100",
        },
        "contact_person": {"first_name": "Trust", "last_name": "Safety", "email": "ts@example.org"},
        "company_template": "Example Inc.",
        "terms_of_service": "https://example.org/terms",
        "legal_url": "https://example.org/legal",
        "esp_service": "Example Photos",
    }
)
MINIMAL = ReporterProfile.from_dict(
    {"reporting_person": {"first_name": "Ana", "last_name": "Silva", "email": "a@example.org"}}
)
EVIDENCE: dict[str, Any] = {
    "bank": "known",
    "bank_kind": "block",
    "entry_id": 17,
    "signal_type": "pdq",
    "value": "f" * 64,
    "content_value": "e" * 64,
    "distance": 4,
    "threshold": 31,
    "quality": 100,
    "variant": "original",
    "list_name": "industry-list",
    "list_version": "2026-05",
    "external_id": "X-17",
    "classification": "A1",
}


def facts(**overrides: Any) -> ReportFacts:
    values: dict[str, Any] = {
        "case_id": 7,
        "uploaded_at": (NOW - timedelta(days=2), NOW - timedelta(days=1)),
        "uploader": "user-42",
        "classification": "A1",
        "lists": ("industry-list",),
    }
    return ReportFacts(**{**values, **overrides})


def file_facts(**overrides: Any) -> FileFacts:
    values: dict[str, Any] = {
        "uploaded_at": NOW - timedelta(days=1),
        "viewed_by_esp": False,
        "classification": "A1",
        "hashes": (("SHA256", "a" * 64), ("MD5", "b" * 32)),
        "evidence": (EVIDENCE,),
        "note": "reported as a copy of reviewed content",
    }
    return FileFacts(**{**values, **overrides})


def tags(element: ET.Element) -> list[str]:
    return [child.tag for child in element]


def root_of(document: str) -> ET.Element:
    return parse_document(document.encode("utf-8"))


# ---------------------------------------------------------------- the report


def test_the_report_follows_the_schema_order_and_passes_the_contract_checks() -> None:
    root = root_of(report_xml(facts(), PROFILE, now=NOW))
    assert tags(root) == ["incidentSummary", "reporter", "personOrUserReported", "additionalInfo"]
    assert tags(root.find("incidentSummary")) == ["incidentType", "incidentDateTime"]
    assert tags(root.find("reporter")) == [
        "reportingPerson",
        "contactPerson",
        "companyTemplate",
        "termsOfService",
        "legalURL",
    ]
    assert tags(root.find("reporter/reportingPerson")) == [
        "firstName",
        "lastName",
        "phone",
        "email",
    ]
    assert tags(root.find("personOrUserReported")) == ["espIdentifier", "espService"]
    assert root.findtext("incidentSummary/incidentType") == CHILD_PORNOGRAPHY
    assert root.findtext("personOrUserReported/espIdentifier") == "user-42"
    assert check_document(root, "report") == []


def test_the_incident_time_is_the_earliest_upload_with_an_offset() -> None:
    root = root_of(report_xml(facts(), PROFILE, now=NOW))
    assert root.findtext("incidentSummary/incidentDateTime") == "2026-05-30T12:00:00+00:00"
    assert root.find("incidentSummary/incidentDateTimeDescription") is None


def test_an_upload_time_in_the_future_is_clamped_to_now_and_says_so() -> None:
    ahead = facts(uploaded_at=(NOW + timedelta(hours=3),))
    root = root_of(report_xml(ahead, PROFILE, now=NOW))
    assert root.findtext("incidentSummary/incidentDateTime") == "2026-06-01T12:00:00+00:00"
    said = root.findtext("incidentSummary/incidentDateTimeDescription") or ""
    assert "2026-06-01T15:00:00+00:00" in said and "after this report" in said
    assert tags(root.find("incidentSummary"))[-1] == "incidentDateTimeDescription"
    assert check_document(root, "report") == []


def test_a_minimal_profile_and_no_uploader_still_make_a_valid_report() -> None:
    root = root_of(report_xml(facts(uploader=None), MINIMAL, now=NOW))
    assert tags(root) == ["incidentSummary", "reporter", "additionalInfo"]
    assert tags(root.find("reporter")) == ["reportingPerson"]
    assert check_document(root, "report") == []


def test_the_report_names_no_hash_value() -> None:
    text = report_xml(facts(), PROFILE, now=NOW)
    assert "f" * 64 not in text and "e" * 64 not in text


# ---------------------------------------------------------------- file details


def test_file_details_follow_the_schema_order_with_hashes_and_evidence() -> None:
    root = root_of(file_details_xml("4564654", "b0754af7", file_facts(viewed_by_esp=True)))
    assert tags(root) == [
        "reportId",
        "fileId",
        "uploadedToEspTimestamp",
        "fileViewedByEsp",
        "fileRelevance",
        "industryClassification",
        "originalFileHash",
        "originalFileHash",
        "details",
        "additionalInfo",
    ]
    assert root.findtext("fileViewedByEsp") == "true"
    assert root.findtext("industryClassification") == "A1"
    assert [(h.get("hashType"), h.text) for h in root.findall("originalFileHash")] == [
        ("SHA256", "a" * 64),
        ("MD5", "b" * 32),
    ]
    pairs = [(p.findtext("name"), p.findtext("value")) for p in root.findall("details/*")]
    assert pairs == [
        ("bank", "known"),
        ("entryId", "17"),
        ("signalType", "pdq"),
        ("distance", "4"),
        ("threshold", "31"),
        ("listName", "industry-list"),
        ("listVersion", "2026-05"),
        ("externalId", "X-17"),
        ("entryClassification", "A1"),
        ("variant", "original"),
        ("quality", "100"),
        ("matchedValue", "f" * 64),
    ]
    # the matched entry's own value is evidence; the upload's own hash is not repeated there
    assert "e" * 64 not in ET.tostring(root, "unicode")
    assert check_document(root, "fileDetails") == []


def test_a_file_nobody_viewed_says_so() -> None:
    root = root_of(file_details_xml("1", "f", file_facts(viewed_by_esp=False)))
    assert root.findtext("fileViewedByEsp") == "false"


# ---------------------------------------------------------------- the contract's checks


def report_document(*sections: str) -> bytes:
    return f"<report>{''.join(sections)}</report>".encode()


SUMMARY = (
    f"<incidentSummary><incidentType>{CHILD_PORNOGRAPHY}</incidentType>"
    "<incidentDateTime>2026-01-02T03:04:05Z</incidentDateTime></incidentSummary>"
)
REPORTER = "<reporter><reportingPerson><email>a@b.org</email></reportingPerson></reporter>"


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (report_document(REPORTER, SUMMARY), "out of order"),
        (report_document(SUMMARY), "<reporter> is required"),
        (
            report_document(
                SUMMARY.replace(CHILD_PORNOGRAPHY, "Something Else"),
                REPORTER,
            ),
            "is not one of",
        ),
        (
            report_document(
                "<incidentSummary><incidentDateTime>2026-01-02T03:04:05Z</incidentDateTime>"
                f"<incidentType>{CHILD_PORNOGRAPHY}</incidentType></incidentSummary>",
                REPORTER,
            ),
            "out of order",
        ),
        (report_document(SUMMARY.replace("Z<", "<"), REPORTER), "with an offset"),
        (report_document(SUMMARY.replace("2026-01-02", "2999-01-02"), REPORTER), "in the future"),
        (
            report_document(SUMMARY, REPORTER.replace("<email>a@b.org</email>", "")),
            "<email> is required",
        ),
        (
            report_document(
                SUMMARY,
                "<reporter><companyTemplate>X</companyTemplate>"
                "<reportingPerson><email>a@b.org</email></reportingPerson></reporter>",
            ),
            "out of order",
        ),
        (report_document(SUMMARY, REPORTER, "<surprise/>"), "unexpected element"),
        (b"<fileDetails><reportId>1</reportId></fileDetails>", "the root element must be"),
    ],
)
def test_the_contract_checks_refuse_what_the_schema_refuses(document: bytes, problem: str) -> None:
    problems = check_document(parse_document(document), "report")
    assert any(problem in p for p in problems), problems


def test_the_contract_checks_accept_the_schema_minimum() -> None:
    assert check_document(parse_document(report_document(SUMMARY, REPORTER)), "report") == []


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("<fileDetails><fileId>a</fileId></fileDetails>", "<reportId> is required"),
        (
            "<fileDetails><reportId>1</reportId><fileId>a</fileId>"
            "<industryClassification>A1</industryClassification>"
            "<fileViewedByEsp>true</fileViewedByEsp></fileDetails>",
            "out of order",
        ),
        (
            "<fileDetails><reportId>1</reportId><fileId>a</fileId>"
            "<fileViewedByEsp>maybe</fileViewedByEsp></fileDetails>",
            "true or false",
        ),
        (
            "<fileDetails><reportId>1</reportId><fileId>a</fileId>"
            "<originalFileHash>abc</originalFileHash></fileDetails>",
            "hashType",
        ),
        (
            "<fileDetails><reportId>1</reportId><fileId>a</fileId>"
            "<details><nameValuePair><value>v</value><name>n</name></nameValuePair></details>"
            "</fileDetails>",
            "out of order",
        ),
        (
            "<fileDetails><reportId>1</reportId><fileId>a</fileId>"
            "<industryClassification>C9</industryClassification></fileDetails>",
            "is not one of",
        ),
    ],
)
def test_the_contract_checks_refuse_bad_file_details(document: str, problem: str) -> None:
    problems = check_document(parse_document(document.encode()), "fileDetails")
    assert any(problem in p for p in problems), problems


# ---------------------------------------------------------------- any strings at all

_ANY_TEXT = st.text(max_size=40)
# What a profile may hold: any characters but controls (the loader refuses those).
_PROFILE_TEXT = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=60
).filter(str.strip)


@st.composite
def profiles(draw: st.DrawFn) -> ReporterProfile:
    def person(required: bool) -> dict[str, Any]:
        keys = ("first_name", "last_name", "email", "phone")
        return {k: draw(_PROFILE_TEXT) for k in keys if required or draw(st.booleans())}

    data: dict[str, Any] = {"reporting_person": person(True)}
    if draw(st.booleans()):
        data["contact_person"] = person(False)
    for key in ("company_template", "terms_of_service", "legal_url", "esp_service"):
        if draw(st.booleans()):
            data[key] = draw(_PROFILE_TEXT)
    try:
        return ReporterProfile.from_dict(data)
    except InvalidRequest:
        assume(False)
        raise  # unreachable


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    profile=profiles(),
    uploader=st.one_of(st.none(), _ANY_TEXT.filter(bool)),
    lists=st.lists(_ANY_TEXT, max_size=3),
    evidence=st.dictionaries(
        st.sampled_from([key for key in EVIDENCE if key not in ("bank_kind", "content_value")]),
        st.one_of(_ANY_TEXT, st.integers(-(10**6), 10**6)),
        max_size=8,
    ),
    note=st.one_of(st.none(), _ANY_TEXT),
)
def test_any_profile_and_evidence_make_well_formed_documents_the_contract_accepts(
    profile: ReporterProfile,
    uploader: str | None,
    lists: list[str],
    evidence: dict[str, Any],
    note: str | None,
) -> None:
    report = report_xml(facts(uploader=uploader, lists=tuple(lists)), profile, now=NOW)
    root = root_of(report)
    assert check_document(root, "report") == []
    assert root.findtext("reporter/reportingPerson/email") == xml_text(
        profile.reporting_person.email
    )
    if uploader is not None and uploader.strip():
        assert root.findtext("personOrUserReported/espIdentifier") == xml_text(uploader)

    details = root_of(
        file_details_xml("12", "ab", file_facts(evidence=(evidence,), note=note or None))
    )
    assert check_document(details, "fileDetails") == []
    sent = [(p.findtext("name"), p.findtext("value")) for p in details.findall("details/*")]
    assert sent == [(name, xml_text(value)) for name, value in evidence_pairs(evidence)]


def test_xml_special_characters_are_escaped_and_come_back_intact() -> None:
    tricky = "A & B <\"quoted\"> 'co' ]]> &amp;"
    profile = ReporterProfile.from_dict(
        {
            "reporting_person": {"first_name": tricky, "last_name": "L", "email": "e@x.org"},
            "company_template": tricky,
        }
    )
    text = report_xml(facts(uploader="u<1>"), profile, now=NOW)
    assert "A &amp; B &lt;" in text and '<"quoted">' not in text
    root = root_of(text)
    assert root.findtext("reporter/companyTemplate") == tricky
    assert root.findtext("reporter/reportingPerson/firstName") == tricky
    details = file_details_xml("1", "f", file_facts(evidence=({"list_name": "x\x00y</value>"},)))
    pair = root_of(details).find("details/nameValuePair")
    assert pair is not None and pair.findtext("value") == "x\ufffdy</value>"


# ---------------------------------------------------------------- parsing answers


@pytest.mark.parametrize(
    "document",
    [
        b'<!DOCTYPE r [<!ENTITY x "boom">]><reportResponse>&x;</reportResponse>',
        b"<!DOCTYPE reportResponse><reportResponse/>",  # harmless, and refused all the same
        b'<!DOCTYPE r SYSTEM "http://example.org/x.dtd"><reportResponse/>',
        b"<reportResponse><responseCode>0</responseCode>",
        b"",
        b"not xml",
    ],
)
def test_parse_document_refuses_dtds_and_broken_xml(document: bytes) -> None:
    with pytest.raises(ValueError):
        parse_document(document)


def test_parse_document_refuses_oversized_documents() -> None:
    with pytest.raises(ValueError, match="over"):
        parse_document(b"<a>" + b"x" * 2_000_000 + b"</a>")


# ---------------------------------------------------------------- settings and profile


def test_reporting_is_off_unless_a_url_is_set() -> None:
    assert not ReportingSettings.from_env({}).enabled
    on = ReportingSettings.from_env(
        {
            "LIGHTKEEPER_NCMEC_URL": TEST_URL + "/",
            "LIGHTKEEPER_NCMEC_USERNAME": "usr123",
            "LIGHTKEEPER_NCMEC_PASSWORD": "secret",
        }
    )
    assert on.url == TEST_URL and on.username == "usr123"
    assert "secret" not in repr(on)


@pytest.mark.parametrize(
    "url",
    [
        "http://report.cybertip.org/ispws",  # plain http off the loopback interface
        "ftp://example.org/ispws",
        "https:///ispws",
        "https://user:pw@report.cybertip.org/ispws",
    ],
)
def test_api_urls_must_be_https_except_on_loopback(url: str) -> None:
    with pytest.raises(InvalidRequest):
        check_api_url(url)


def test_loopback_and_ncmecs_urls_are_accepted() -> None:
    assert check_api_url(PRODUCTION_URL) == PRODUCTION_URL
    assert check_api_url("http://127.0.0.1:8123/ispws/") == "http://127.0.0.1:8123/ispws"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "reporting_person is required"),
        ({"reporting_person": {"first_name": "A", "last_name": "B"}}, "needs first_name"),
        ({"reporting_person": {"email": "a@b", "nick": "x"}}, "unknown field"),
        (
            {"reporting_person": {"first_name": "A\x07", "last_name": "B", "email": "a@b"}},
            "control character",
        ),
        (
            {"reporting_person": {"first_name": "A" * 101, "last_name": "B", "email": "a@b"}},
            "over 100",
        ),
        ([], "JSON object"),
    ],
)
def test_a_bad_profile_is_refused_with_the_reason(data: object, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        ReporterProfile.from_dict(data)


def test_a_profile_loads_from_its_file(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(PROFILE.to_dict()), encoding="utf-8")
    assert ReporterProfile.load(path) == PROFILE
    settings_ = ReportingSettings.from_env({"LIGHTKEEPER_REPORTER_PROFILE": str(path)})
    assert settings_.profile() == PROFILE
    with pytest.raises(InputError):
        ReporterProfile.load(tmp_path / "missing.json")
    with pytest.raises(InvalidRequest, match="no reporter profile"):
        ReportingSettings.from_env({}).profile()


def test_every_setting_is_documented() -> None:
    from lightkeeper.reporting.settings import SETTINGS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "reporting.md").read_text("utf-8")
    for setting in SETTINGS:
        assert setting.env in doc
