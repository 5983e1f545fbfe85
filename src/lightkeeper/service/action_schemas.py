"""Request and response bodies of the actioner's routes (``/v1/policy``, ``/v1/cases``,
``/v1/uploaders``, ``/v1/webhooks``): pydantic models that are the OpenAPI document, and that
validate requests before any handler runs. The library checks everything again (a policy
document whole, by `Policy.from_dict`), so these only need to be right, not complete."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lightkeeper.actions.cases import Case as CaseRecord
from lightkeeper.actions.cases import CaseDetail, RecordedMatch, UploaderView
from lightkeeper.actions.policy_store import DryRun, PolicyVersion
from lightkeeper.actions.webhooks import Delivery, Endpoint
from lightkeeper.service.schemas import NO_NUL, ActionName, Evidence

Name = Annotated[str, Field(min_length=1, max_length=100, pattern=NO_NUL)]
Priority = Annotated[int, Field(ge=1, le=9)]
EventName = Literal["match", "action", "decision", "report"]

_EXAMPLE_POLICY: dict[str, Any] = {
    "rules": [
        {"name": "exact-match", "match": "exact", "actions": ["block", "quarantine", "review"]},
        {
            "name": "perceptual-match",
            "match": "perceptual",
            "actions": ["block", "quarantine", "review"],
        },
        {"name": "tell-us", "banks": ["ncii"], "max_distance": 16, "actions": ["notify"]},
    ],
    "priorities": {"A1": 1, "A2": 2, "B1": 2, "B2": 3},
    "default_priority": 3,
}


# ---------------------------------------------------------------------- policy


class RuleDoc(BaseModel):
    """One rule: the matches it selects (every selector given must agree) and its actions."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    actions: list[ActionName] = Field(min_length=1)
    banks: list[Name] = Field(default_factory=list, description="Bank names; empty: any")
    classifications: list[Name] = Field(default_factory=list, description="Empty: any")
    signal_types: list[Name] = Field(default_factory=list, description="Empty: any")
    match: Literal["any", "exact", "perceptual"] = "any"
    max_distance: int | None = Field(None, ge=0, le=256, description="Bits; null: any")
    description: str = Field("", max_length=1000, pattern=NO_NUL)


class PolicyDoc(BaseModel):
    """A policy document (docs/policy.md): rules, review priorities by classification."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE_POLICY]})

    rules: list[RuleDoc]
    priorities: dict[str, Priority] = Field(default_factory=dict)
    default_priority: Priority = 3

    def document(self) -> dict[str, Any]:
        return self.model_dump()


class PolicyIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"policy": _EXAMPLE_POLICY, "comment": "notify on NCII matches"}]
        },
    )

    policy: PolicyDoc
    comment: str = Field("", max_length=1000, pattern=NO_NUL, description="Why (kept)")


class PolicyOut(BaseModel):
    version: int | None = Field(description="Its version; null: the built-in default")
    created_at: datetime | None
    actor: str | None
    comment: str | None
    sha256: str | None = Field(description="SHA-256 of the stored document (in the audit trail)")
    policy: dict[str, Any] = Field(description="The policy document")

    @classmethod
    def of(cls, stored: PolicyVersion) -> PolicyOut:
        return cls(
            version=stored.version,
            created_at=stored.created_at,
            actor=stored.actor,
            comment=stored.comment,
            sha256=stored.sha256,
            policy=stored.policy.to_dict(),
        )


class DryRunIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"policy": _EXAMPLE_POLICY}]}
    )

    policy: PolicyDoc
    limit: int = Field(100, ge=1, le=1000, description="Most changes listed")


class ActionsOut(BaseModel):
    actions: list[ActionName]
    priority: int | None


class DryRunChangeOut(BaseModel):
    match_id: int
    request_id: str
    case_id: int
    at: datetime
    old: ActionsOut = Field(description="What was done, as recorded")
    new: ActionsOut = Field(description="What the candidate policy would have done")


class DryRunOut(BaseModel):
    examined: int = Field(description="Recorded matches examined")
    changed: int = Field(description="How many of them would change")
    truncated: bool = Field(description="More changed than are listed")
    gained: dict[str, int] = Field(description="Per action, recorded matches that gain it")
    lost: dict[str, int] = Field(description="Per action, recorded matches that lose it")
    changes: list[DryRunChangeOut]

    @classmethod
    def of(cls, report: DryRun) -> DryRunOut:
        return cls.model_validate(report.to_dict())


# ---------------------------------------------------------------------- cases


class CaseOut(BaseModel):
    id: int
    sha256: str = Field(description="The content's SHA-256")
    status: Literal["open", "decided", "reported", "closed"]
    priority: int | None = Field(description="Most urgent review priority; null: not for review")
    actions: list[ActionName]
    match_count: int = Field(description="Acted-on uploads of this content")
    uploader_count: int = Field(description="Distinct uploader references among them")
    first_seen_at: datetime
    last_seen_at: datetime
    updated_at: datetime
    vault_objects: list[str] = Field(description="Vault objects holding copies")

    @classmethod
    def of(cls, case: CaseRecord) -> CaseOut:
        return cls.model_validate(case.to_dict())


class RecordedMatchOut(BaseModel):
    id: int
    request_id: str
    case_id: int
    at: datetime
    uploader: str | None
    sha256: str
    media_type: str
    policy_version: int | None = Field(description="Policy in force; null: the built-in default")
    actions: list[ActionName]
    priority: int | None
    reject: bool
    matches: list[Evidence] = Field(description="The acting matches' evidence")
    rules: list[list[str]] = Field(description="Per match, the rules that selected it")
    vault_object_id: str | None

    @classmethod
    def of(cls, recorded: RecordedMatch, reveal: bool) -> RecordedMatchOut:
        return cls.model_validate(recorded.to_dict(reveal=reveal))


class CaseDetailOut(BaseModel):
    case: CaseOut
    matches: list[RecordedMatchOut] = Field(description="Its recorded matches, oldest first")

    @classmethod
    def of(cls, detail: CaseDetail, reveal: bool) -> CaseDetailOut:
        return cls(
            case=CaseOut.of(detail.case),
            matches=[RecordedMatchOut.of(m, reveal) for m in detail.matches],
        )


class UploaderOut(BaseModel):
    uploader: str
    uploads: int = Field(description="Acted-on uploads under this reference")
    contents: int = Field(description="Distinct contents among them (above 1: a repeat uploader)")
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    cases: list[CaseOut]
    matches: list[RecordedMatchOut] = Field(description="Its uploads, newest first")

    @classmethod
    def of(cls, view: UploaderView, reveal: bool) -> UploaderOut:
        return cls(
            uploader=view.uploader,
            uploads=view.uploads,
            contents=view.contents,
            first_seen_at=view.first_seen_at,
            last_seen_at=view.last_seen_at,
            cases=[CaseOut.of(c) for c in view.cases],
            matches=[RecordedMatchOut.of(m, reveal) for m in view.matches],
        )


# ---------------------------------------------------------------------- webhooks


class EndpointIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "trust-safety",
                    "url": "https://tns.example.com/lightkeeper",
                    "event_types": ["match", "decision"],
                }
            ]
        },
    )

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    url: str = Field(min_length=1, max_length=2000, pattern=NO_NUL)
    event_types: list[EventName] | None = Field(None, description="null: every event type")
    enabled: bool = True


class EndpointOut(BaseModel):
    id: int
    name: str
    url: str
    event_types: list[EventName]
    enabled: bool
    created_at: datetime
    updated_at: datetime
    previous_secret_until: datetime | None = Field(
        description="Until when a rotated-out secret still signs too"
    )

    @classmethod
    def of(cls, endpoint: Endpoint) -> EndpointOut:
        return cls.model_validate(endpoint.to_dict())


class EndpointCreated(EndpointOut):
    secret: str = Field(description="The signing secret: shown this once, store it now")


class DeliveryOut(BaseModel):
    id: int
    event_id: str
    event_type: EventName
    endpoint: str
    state: Literal["pending", "delivered", "dead"]
    attempts: int
    queued_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None
    last_status: int | None
    last_error: str | None

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryOut:
        return cls.model_validate(delivery.to_dict())
