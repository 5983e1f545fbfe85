"""The review settings, each from one environment variable with a documented default.

- ``LIGHTKEEPER_REVIEW_TWO_PERSON`` (default ``1``): a confirmation waits for a second
  person's approval before the case counts as confirmed (and may be reported).
- ``LIGHTKEEPER_REVIEW_REVEAL_CAP`` (default ``50``): clear images one reviewer may reveal
  per UTC day, unless their account sets a cap of its own. Exposure to abuse imagery harms
  the people who review it; the cap makes that a decision, not an accident.
- ``LIGHTKEEPER_REVIEW_PROXY_HEADER`` (default unset, off): the request header a trusted
  reverse proxy sets to the signed-in user's name. Only for a service that nothing but that
  proxy can reach: anyone else could set the header too.
- ``LIGHTKEEPER_FALSE_POSITIVE_BANK`` (default ``false-positives``): the allow bank that
  false-positive decisions and upheld appeals add the wrong entry's hash to, so that it stays
  suppressed even if its list brings it back as a new entry (see `lightkeeper.review.feedback`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from lightkeeper.banks.settings import Setting
from lightkeeper.banks.validation import validate_bank_name
from lightkeeper.errors import InvalidRequest

__all__ = [
    "DEFAULT_SETTINGS",
    "FALSE_POSITIVE_BANK",
    "MAX_REVEAL_CAP",
    "PROXY_HEADER",
    "REVEAL_CAP",
    "SETTINGS",
    "TWO_PERSON",
    "ReviewSettings",
    "validate_reveal_cap",
]

TWO_PERSON = Setting(
    "two_person_rule",
    "LIGHTKEEPER_REVIEW_TWO_PERSON",
    "1",
    "1: a confirmation needs a second reviewer's approval before a report; 0: off.",
)
REVEAL_CAP = Setting(
    "daily_reveal_cap",
    "LIGHTKEEPER_REVIEW_REVEAL_CAP",
    "50",
    "Clear images a reviewer may reveal per UTC day (an account may set its own cap).",
)
PROXY_HEADER = Setting(
    "proxy_user_header",
    "LIGHTKEEPER_REVIEW_PROXY_HEADER",
    "",
    "Header a trusted reverse proxy sets to the signed-in reviewer's user name; unset: off.",
)
FALSE_POSITIVE_BANK = Setting(
    "false_positive_bank",
    "LIGHTKEEPER_FALSE_POSITIVE_BANK",
    "false-positives",
    "Allow bank that false-positive decisions add the wrong entry's hash to.",
)

#: Every review setting, for docs and ``--help`` texts.
SETTINGS: tuple[Setting, ...] = (TWO_PERSON, REVEAL_CAP, PROXY_HEADER, FALSE_POSITIVE_BANK)

#: Highest reveal cap accepted (per day): a typo, not a policy, beyond it.
MAX_REVEAL_CAP = 100_000

T = TypeVar("T")

#: An HTTP header name (RFC 9110 token), as a proxy would send it.
_HEADER = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True, slots=True)
class ReviewSettings:
    """How review works on this service; see the module docstring for each setting."""

    two_person_rule: bool = True
    daily_reveal_cap: int = 50
    proxy_user_header: str | None = None
    false_positive_bank: str = "false-positives"

    def __post_init__(self) -> None:
        validate_reveal_cap(self.daily_reveal_cap)
        if self.proxy_user_header is not None:
            validate_header_name(self.proxy_user_header)
        validate_bank_name(self.false_positive_bank)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReviewSettings:
        """The settings the environment gives (`os.environ` unless `env`); `InvalidRequest`
        naming the variable for a value that is not valid."""
        environ = os.environ if env is None else env

        def get(setting: Setting) -> str | None:
            value = environ.get(setting.env, "").strip()
            return value or None

        two_person = True
        if (text := get(TWO_PERSON)) is not None:
            if text.lower() not in _TRUE + _FALSE:
                raise InvalidRequest(f"{TWO_PERSON.env}={text!r}: use 1 or 0")
            two_person = text.lower() in _TRUE
        cap = int(REVEAL_CAP.default)
        if (text := get(REVEAL_CAP)) is not None:
            try:
                cap = int(text)
            except ValueError:
                raise InvalidRequest(f"{REVEAL_CAP.env}={text!r} is not a whole number") from None
            _named(REVEAL_CAP, text, validate_reveal_cap, cap)
        bank = get(FALSE_POSITIVE_BANK) or FALSE_POSITIVE_BANK.default
        _named(FALSE_POSITIVE_BANK, bank, validate_bank_name, bank)
        if (header := get(PROXY_HEADER)) is not None:
            _named(PROXY_HEADER, header, validate_header_name, header)
        return cls(
            two_person_rule=two_person,
            daily_reveal_cap=cap,
            proxy_user_header=header,
            false_positive_bank=bank,
        )


def _named(setting: Setting, text: str, check: Callable[[T], object], value: T) -> None:
    """`check(value)`, its `InvalidRequest` naming the variable and the value it was given."""
    try:
        check(value)
    except InvalidRequest as exc:
        raise InvalidRequest(f"{setting.env}={text!r}: {exc.message}") from None


def validate_header_name(name: str) -> str:
    """An HTTP header name (an RFC 9110 token of at most 100 characters)."""
    if not _HEADER.fullmatch(name):
        raise InvalidRequest(f"{name!r} is not an HTTP header name")
    return name


def validate_reveal_cap(cap: int) -> int:
    """A daily reveal cap: 0 (this person never sees clear images) to `MAX_REVEAL_CAP`."""
    if isinstance(cap, bool) or not isinstance(cap, int) or not 0 <= cap <= MAX_REVEAL_CAP:
        raise InvalidRequest(f"a daily reveal cap is a whole number from 0 to {MAX_REVEAL_CAP}")
    return cap


#: The settings when none are given: every default.
DEFAULT_SETTINGS = ReviewSettings()
