"""Helpers shared by the reporting tests (test_reports.py, test_reporting_races.py): the
contract server's credentials, a reporter profile, benign quarantined content to report, a
client of the contract server, a confirmed review. Their fixtures are in reporting_fixtures.

All content is benign: small synthetic photos (conftest).
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

from conftest import synthetic_photo
from lightkeeper.actions.actioner import Actioner
from lightkeeper.actions.vault import Vault
from lightkeeper.banks import BankStore
from lightkeeper.matching import Matcher
from lightkeeper.reporting.ncmec_client import CyberTiplineClient
from lightkeeper.reporting.ncmec_contract import ContractServer
from lightkeeper.reporting.reports import Report, create_report
from lightkeeper.reporting.settings import ReporterProfile
from lightkeeper.review.accounts import Reviewer
from lightkeeper.review.decisions import decide
from lightkeeper.review.settings import ReviewSettings

USER, PASSWORD = "usr123", "pswd123"
ONE_PERSON = ReviewSettings(two_person_rule=False)
PROFILE_DATA: dict[str, Any] = {
    "reporting_person": {"first_name": "Ana", "last_name": "Silva", "email": "ana@example.org"},
    "company_template": "Example Inc.",
    "terms_of_service": "https://example.org/terms",
    "esp_service": "Example Photos",
}
PROFILE = ReporterProfile.from_dict(PROFILE_DATA)


def photo(seed: int) -> bytes:
    buffer = io.BytesIO()
    synthetic_photo(96, 72, seed=seed).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_client(server: ContractServer, password: str = PASSWORD) -> CyberTiplineClient:
    return CyberTiplineClient(
        server.url, USER, password, timeout=5, attempts=3, backoff=0.0, sleep=lambda _: None
    )


def quarantined(
    store: BankStore, vault: Vault, seed: int, uploaders: list[str | None]
) -> tuple[int, list[int]]:
    """Listed content uploaded once per uploader: blocked, quarantined, one case."""
    data = photo(seed)
    store.add_entry(
        "known",
        "sha256",
        hashlib.sha256(data).hexdigest(),
        list_name="industry-list",
        list_version="2026-05",
        external_id=f"X-{seed}",
        classification="A1",
    )
    matcher = Matcher(store)
    actioner = Actioner(vault, matcher)
    result = matcher.match_bytes(data)
    matches = []
    case_id = 0
    for n, uploader in enumerate(uploaders):
        outcome = actioner.act(result, data, request_id=f"req-{seed}-{n}", uploader_ref=uploader)
        assert outcome.case_id is not None and outcome.match_id is not None
        case_id = outcome.case_id
        matches.append(outcome.match_id)
    return case_id, matches


def confirmed(
    store: BankStore, case_id: int, reviewer: Reviewer, classification: str = "B1"
) -> None:
    decide(store, case_id, reviewer, "confirm", classification=classification, settings=ONE_PERSON)


def confirmed_report(store: BankStore, vault: Vault, reviewer: Reviewer, seed: int) -> Report:
    """The report (a draft) of a case of one upload by "user-1", confirmed by `reviewer`."""
    case_id, _ = quarantined(store, vault, seed, ["user-1"])
    confirmed(store, case_id, reviewer)
    return create_report(store, case_id, profile=PROFILE, actor="t")
