"""What the quarantine vault tells about its objects: records, never content or keys.

`VaultObject` is one object's metadata and state (kept, held, destroyed); `VaultAccess` one
line of its access log; `RotationReport` what a master key rotation did; `RetentionPolicy`
how long content is kept. `lightkeeper.actions.vault` makes and returns them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Row

AccessAction = Literal[
    "put", "read", "verify", "hold", "release", "report", "destroy", "integrity_failure"
]


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long quarantined content is kept before `Vault.expire` may destroy it."""

    #: After a report is filed (`Vault.mark_reported`): one year, as US law requires.
    after_report: timedelta = timedelta(days=365)
    #: After quarantine, for content never reported; None keeps it until destroyed.
    unreported: timedelta | None = None


@dataclass(frozen=True, slots=True)
class VaultObject:
    """What the vault knows of one object: metadata, never content or keys."""

    id: str
    sha256: str
    size: int
    media_type: str
    case_ref: str | None
    created_at: datetime
    created_by: str
    #: The master key version wrapping its data key; None once destroyed.
    key_version: int | None
    reported_at: datetime | None
    retain_until: datetime | None
    legal_hold: bool
    hold_reason: str | None
    held_by: str | None
    held_at: datetime | None
    destroyed_at: datetime | None
    destroyed_by: str | None
    destroy_reason: str | None

    @property
    def destroyed(self) -> bool:
        return self.destroyed_at is not None

    @property
    def state(self) -> Literal["kept", "held", "destroyed"]:
        if self.destroyed_at is not None:
            return "destroyed"
        return "held" if self.legal_hold else "kept"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "sha256": self.sha256,
            "size": self.size,
            "media_type": self.media_type,
            "case_ref": self.case_ref,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "key_version": self.key_version,
            "reported_at": _iso(self.reported_at),
            "retain_until": _iso(self.retain_until),
            "legal_hold": self.legal_hold,
            "hold_reason": self.hold_reason,
            "held_by": self.held_by,
            "held_at": _iso(self.held_at),
            "destroyed_at": _iso(self.destroyed_at),
            "destroyed_by": self.destroyed_by,
            "destroy_reason": self.destroy_reason,
        }


@dataclass(frozen=True, slots=True)
class VaultAccess:
    """One line of the access log: who did what to an object, when and why."""

    id: int
    object_id: str
    at: datetime
    actor: str
    action: AccessAction
    reason: str
    #: What else is worth knowing (a failure's message, a report's date), or None.
    detail: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object_id": self.object_id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class RotationReport:
    """What `Vault.rotate` did."""

    #: The master key version every data key is now wrapped by.
    version: int
    #: Whether that version was made by this rotation.
    created: bool
    rewrapped: int
    #: Objects whose data key would not unwrap (tampered rows): still under their old key.
    failed: tuple[str, ...]
    #: Live objects per master key version, after the rotation.
    by_version: Mapping[int, int]

    @property
    def unused_versions(self) -> tuple[int, ...]:
        """Registered versions that wrap no live object any more."""
        return tuple(v for v, count in sorted(self.by_version.items()) if count == 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "created": self.created,
            "rewrapped": self.rewrapped,
            "failed": list(self.failed),
            "by_version": {str(v): n for v, n in sorted(self.by_version.items())},
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def to_object(row: Row[Any]) -> VaultObject:
    return VaultObject(
        id=row.id,
        sha256=row.sha256,
        size=row.size,
        media_type=row.media_type,
        case_ref=row.case_ref,
        created_at=row.created_at,
        created_by=row.created_by,
        key_version=row.key_version,
        reported_at=row.reported_at,
        retain_until=row.retain_until,
        legal_hold=bool(row.legal_hold),
        hold_reason=row.hold_reason,
        held_by=row.held_by,
        held_at=row.held_at,
        destroyed_at=row.destroyed_at,
        destroyed_by=row.destroyed_by,
        destroy_reason=row.destroy_reason,
    )


def to_access(row: Row[Any]) -> VaultAccess:
    return VaultAccess(row.id, row.object_id, row.at, row.actor, row.action, row.reason, row.detail)
