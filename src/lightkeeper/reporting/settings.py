"""Reporting's settings and the reporter profile, each declared once with its default and help.

Reporting is **off** unless ``LIGHTKEEPER_NCMEC_URL`` names NCMEC's API: nothing is ever sent
to a default address. NCMEC issues different credentials for its test environment
(`TEST_URL`) and for production (`PRODUCTION_URL`); an operator starts on the first. The
URL must be ``https://``, except on the loopback interface, where the test double of the
contract (`lightkeeper.reporting.ncmec_contract`) listens on plain HTTP.

The *reporter profile* says who reports: NCMEC's ``<reporter>`` block. It is a JSON file
named by ``LIGHTKEEPER_REPORTER_PROFILE``, read and checked by `ReporterProfile.load`:

    {
      "reporting_person": {"first_name": "Ana", "last_name": "Silva",
                           "email": "ana@example.org", "phone": "+1 555 0100"},
      "contact_person": {"first_name": "Trust", "last_name": "Safety",
                         "email": "ts@example.org"},
      "company_template": "Example Inc.",
      "terms_of_service": "https://example.org/terms",
      "legal_url": "https://example.org/legal-process",
      "esp_service": "Example Photos"
    }

Only the reporting person's name and email are required. Lengths are NCMEC's documented
maxima, and control characters are refused, so that a profile that loads always makes a
report that NCMEC's schema accepts.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lightkeeper.banks.settings import Setting
from lightkeeper.errors import InputError, InvalidRequest

__all__ = [
    "NCMEC_ATTEMPTS",
    "NCMEC_PASSWORD",
    "NCMEC_TIMEOUT",
    "NCMEC_URL",
    "NCMEC_USERNAME",
    "PRODUCTION_URL",
    "REPORTER_PROFILE",
    "SETTINGS",
    "TEST_URL",
    "Person",
    "ReporterProfile",
    "ReportingSettings",
    "check_api_url",
]

#: NCMEC's production CyberTipline reporting API.
PRODUCTION_URL = "https://report.cybertip.org/ispws"
#: NCMEC's test environment, for integrating before reporting for real (its own credentials).
TEST_URL = "https://exttest.cybertip.org/ispws"

NCMEC_URL = Setting(
    "ncmec_url",
    "LIGHTKEEPER_NCMEC_URL",
    "",
    f"Base URL of NCMEC's CyberTipline API ({TEST_URL} to test, {PRODUCTION_URL} to report); "
    "empty: reporting is off.",
)
NCMEC_USERNAME = Setting(
    "ncmec_username", "LIGHTKEEPER_NCMEC_USERNAME", "", "User name NCMEC issued (HTTP Basic)."
)
NCMEC_PASSWORD = Setting(
    "ncmec_password", "LIGHTKEEPER_NCMEC_PASSWORD", "", "Password NCMEC issued (HTTP Basic)."
)
NCMEC_TIMEOUT = Setting(
    "ncmec_timeout",
    "LIGHTKEEPER_NCMEC_TIMEOUT",
    "60",
    "Seconds one attempt at a call may take in all, until NCMEC's whole answer (an upload "
    "included).",
)
NCMEC_ATTEMPTS = Setting(
    "ncmec_attempts",
    "LIGHTKEEPER_NCMEC_ATTEMPTS",
    "4",
    "Tries per call when NCMEC cannot be reached or answers 5xx (backoff 1, 2, 4 … s).",
)
REPORTER_PROFILE = Setting(
    "reporter_profile",
    "LIGHTKEEPER_REPORTER_PROFILE",
    "",
    "JSON file naming who reports (NCMEC's <reporter>): see docs/reporting.md.",
)

#: Every reporting setting, for docs and ``--help`` texts.
SETTINGS: tuple[Setting, ...] = (
    NCMEC_URL,
    NCMEC_USERNAME,
    NCMEC_PASSWORD,
    NCMEC_TIMEOUT,
    NCMEC_ATTEMPTS,
    REPORTER_PROFILE,
)

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
# XML 1.0 refuses C0 controls but tab, newline and return; C1 controls and DEL are refused
# here too, as nobody means them in a name or an address.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def check_api_url(url: str) -> str:
    """`url` without a trailing slash, if it may carry reports: https, or http on loopback.

    A URL carrying credentials (``https://user:secret@host``, ``https://:secret@host``) is
    refused, and the error does not repeat it: the credentials go in their own settings, and
    a URL is written into errors, the report's error and the audit trail.
    """
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise InvalidRequest(
            "NCMEC's API URL must not carry a user name or password (user:password@host): "
            "set LIGHTKEEPER_NCMEC_USERNAME and LIGHTKEEPER_NCMEC_PASSWORD instead"
        )
    loopback = (parts.hostname or "") in _LOOPBACK
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise InvalidRequest(
            f"NCMEC's API URL must be https:// (plain http only on the loopback interface, "
            f"for the contract test server), not {url!r}"
        )
    if not parts.hostname or parts.query or parts.fragment:
        raise InvalidRequest(f"{url!r} is not a base URL such as {TEST_URL}")
    return url


def _text(data: Mapping[str, Any], key: str, where: str, limit: int) -> str | None:
    """An optional text field: stripped, None when absent or empty, checked."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"reporter profile: {where}{key} must be a string")
    value = value.strip()
    if not value:
        return None
    if len(value) > limit:
        raise InvalidRequest(f"reporter profile: {where}{key} is over {limit} characters")
    if _CONTROL.search(value):
        raise InvalidRequest(f"reporter profile: {where}{key} contains a control character")
    return value


def _no_unknown(data: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidRequest(
            f"reporter profile: unknown field(s) {', '.join(where + k for k in unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )


@dataclass(frozen=True, slots=True)
class Person:
    """A person in NCMEC's ``<reporter>``: the reporting person or the contact person."""

    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None

    _FIELDS = ("first_name", "last_name", "email", "phone")

    @classmethod
    def from_dict(cls, data: object, where: str) -> Person:
        if not isinstance(data, Mapping):
            raise InvalidRequest(f"reporter profile: {where} must be an object")
        _no_unknown(data, set(cls._FIELDS), f"{where}.")
        prefix = f"{where}."
        return cls(
            first_name=_text(data, "first_name", prefix, 100),
            last_name=_text(data, "last_name", prefix, 100),
            email=_text(data, "email", prefix, 255),
            phone=_text(data, "phone", prefix, 50),
        )

    def to_dict(self) -> dict[str, str | None]:
        return {name: getattr(self, name) for name in self._FIELDS}


@dataclass(frozen=True, slots=True)
class ReporterProfile:
    """Who reports, as NCMEC's ``<reporter>`` block says it; loaded from configuration."""

    reporting_person: Person
    contact_person: Person | None = None
    #: NCMEC's ``companyTemplate``: the company name as NCMEC knows it.
    company_template: str | None = None
    #: The terms of service relevant to the incident (text or a URL).
    terms_of_service: str | None = None
    #: Where law enforcement finds how to serve legal process on the company.
    legal_url: str | None = None
    #: The service the reported user used (``espService``), e.g. the product's name.
    esp_service: str | None = None

    @classmethod
    def from_dict(cls, data: object) -> ReporterProfile:
        """A profile from its JSON form; `InvalidRequest` saying what is wrong."""
        if not isinstance(data, Mapping):
            raise InvalidRequest("reporter profile: the document must be a JSON object")
        known = {
            "reporting_person",
            "contact_person",
            "company_template",
            "terms_of_service",
            "legal_url",
            "esp_service",
        }
        _no_unknown(data, known, "")
        if "reporting_person" not in data:
            raise InvalidRequest("reporter profile: reporting_person is required")
        person = Person.from_dict(data["reporting_person"], "reporting_person")
        if person.email is None or person.first_name is None or person.last_name is None:
            raise InvalidRequest(
                "reporter profile: reporting_person needs first_name, last_name and email "
                "(NCMEC answers the reporting person there)"
            )
        contact = data.get("contact_person")
        contact_person = None if contact is None else Person.from_dict(contact, "contact_person")
        if contact_person is not None and contact_person == Person():
            contact_person = None
        return cls(
            reporting_person=person,
            contact_person=contact_person,
            company_template=_text(data, "company_template", "", 3000),
            terms_of_service=_text(data, "terms_of_service", "", 3000),
            legal_url=_text(data, "legal_url", "", 2083),
            esp_service=_text(data, "esp_service", "", 100),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReporterProfile:
        """The profile in the JSON file at `path` (`InputError` if unreadable)."""
        where = Path(path)
        try:
            text = where.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"reporter profile {where}: cannot be read ({exc})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"reporter profile {where}: not JSON ({exc})") from None
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reporting_person": self.reporting_person.to_dict(),
            "contact_person": None
            if self.contact_person is None
            else self.contact_person.to_dict(),
            "company_template": self.company_template,
            "terms_of_service": self.terms_of_service,
            "legal_url": self.legal_url,
            "esp_service": self.esp_service,
        }


@dataclass(frozen=True, slots=True)
class ReportingSettings:
    """Where reports go and who sends them; `from_env` reads `SETTINGS`."""

    #: NCMEC's API base URL; None: reporting is off.
    url: str | None = None
    username: str = ""
    password: str = field(default="", repr=False)
    profile_path: Path | None = None
    timeout: float = 60.0
    attempts: int = 4

    @property
    def enabled(self) -> bool:
        return self.url is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReportingSettings:
        environ = os.environ if env is None else env

        def get(setting: Setting) -> str:
            return environ.get(setting.env, setting.default).strip()

        url = get(NCMEC_URL)
        profile = get(REPORTER_PROFILE)
        try:
            timeout = float(get(NCMEC_TIMEOUT))
            attempts = int(get(NCMEC_ATTEMPTS))
        except ValueError:
            raise InvalidRequest(
                f"{NCMEC_TIMEOUT.env} is a number of seconds and {NCMEC_ATTEMPTS.env} a whole "
                "number"
            ) from None
        if not (math.isfinite(timeout) and 0 < timeout <= 3600) or not 1 <= attempts <= 20:
            raise InvalidRequest(
                f"{NCMEC_TIMEOUT.env} is from 0 to 3600 seconds and {NCMEC_ATTEMPTS.env} from "
                "1 to 20"
            )
        return cls(
            url=check_api_url(url) if url else None,
            username=environ.get(NCMEC_USERNAME.env, ""),
            password=environ.get(NCMEC_PASSWORD.env, ""),
            profile_path=Path(profile) if profile else None,
            timeout=timeout,
            attempts=attempts,
        )

    def profile(self) -> ReporterProfile:
        """The configured reporter profile (`InvalidRequest` when none is configured)."""
        if self.profile_path is None:
            raise InvalidRequest(
                f"no reporter profile: set {REPORTER_PROFILE.env} to a JSON file naming who "
                "reports (see docs/reporting.md)"
            )
        return ReporterProfile.load(self.profile_path)
