"""The bank store's tables, as SQLAlchemy declarative models (schema version: see migrations/).

The schema is kept portable between SQLite and PostgreSQL: no JSON, no arrays, no
database-specific types beyond an integer-id variant, constraint names fixed by a naming
convention so that Alembic can alter them on both.

- ``banks``: a named list, *block* (matches act) or *allow* (known false positives that
  suppress a match), with its per-bank matching options.
- ``bank_thresholds``: per bank and signal type, the largest distance that matches. A bank
  without a row for a signal type uses that signal type's ``default_threshold``.
- ``entries``: one hash in one bank. Its ``id`` (64-bit, never reused: SQLite AUTOINCREMENT)
  is the id the in-memory index stores. Unique on (signal type, value, bank): the same hash
  in the same bank is one row, whatever the number of imports. That unique index leads with
  (signal type, value), so it also serves exact lookups across banks; a second index on
  (signal type, value) would only double the largest index of a 13-million-row table.
- ``entry_regions``: region codes of a banked image, for banks with regions on: the PDQ of
  fixed crop windows of the image, named (``region:left-89`` …), kept with the entry's PDQ
  row and gone with it (cascade). They have no state of their own: an entry disabled or
  removed takes its regions along, through the entry's own change-log rows.
- ``bank_changes``: the change log. Every write to ``entries`` appends a row with an
  increasing ``seq``; index followers replay it from the last ``seq`` they saw instead of
  rebuilding. A removal row keeps the signal type and value, since the entry row is gone;
  add and update rows point at the entry, which holds them (storing 13 million values twice
  would double the database for nothing). No foreign key: the log outlives deleted banks.
- ``import_runs``: one row per list import, so that an import cut short by a crash is visible
  as ``running``/``failed`` with the counts it reached.
- ``store_meta``: key/value facts about the store itself; ``instance_id`` (random, set when
  the schema is created) tells index snapshots of this store from those of another.
- ``api_keys``: the HTTP service's keys. Only the SHA-256 of each key is kept (keys are 256
  random bits, so a fast hash is as safe as a slow one and costs microseconds per request),
  with the key's first characters to recognise it in listings, its scopes and its rate limit.
- ``audit_events``: who changed what, when — every bank change, key creation and revocation.
  Details are a short JSON text (counts, ids), never a list's hash values in bulk. A hash
  chain: each event's ``hash`` commits to its content and to the ``prev_hash`` before it, and
  ``position`` (1, 2, 3 … with no gap, unique: two writers cannot both extend one event)
  orders the chain, since ids from a sequence may skip (see ``lightkeeper.banks.audit``).
- ``audit_head``: one row, the chain's last event (id, position, hash); appends lock it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

#: Fixed constraint names: Alembic can only alter constraints it can name on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: A 64-bit integer primary key that is still SQLite's rowid (only INTEGER PRIMARY KEY is).
Id64 = BigInteger().with_variant(Integer(), "sqlite")

BANK_KINDS = ("block", "allow")
CHANGE_OPS = ("add", "remove", "update", "bank")
IMPORT_STATUSES = ("running", "complete", "failed")


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and read back as timezone-aware UTC.

    SQLite has no time zones and PostgreSQL's ``timestamptz`` converts on the way out; storing
    naive UTC everywhere gives one behaviour on both. Naive datetimes are refused on the way
    in, since their zone is a guess.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class BankRow(Base):
    __tablename__ = "banks"
    __table_args__ = (
        CheckConstraint("kind IN ('block', 'allow')", name="kind"),
        CheckConstraint("pdq_quality_floor BETWEEN 0 AND 100", name="quality_floor"),
        CheckConstraint("region_threshold BETWEEN 0 AND 256", name="region_threshold"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(8), default="block")
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    match_dihedral: Mapped[bool] = mapped_column(Boolean, default=False)
    pdq_quality_floor: Mapped[int] = mapped_column(Integer, default=50)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    regions: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    region_threshold: Mapped[int] = mapped_column(Integer, default=31, server_default=text("31"))


class ThresholdRow(Base):
    __tablename__ = "bank_thresholds"
    __table_args__ = (CheckConstraint("threshold >= 0", name="non_negative"),)

    bank_id: Mapped[int] = mapped_column(
        ForeignKey("banks.id", ondelete="CASCADE"), primary_key=True
    )
    signal_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    threshold: Mapped[int] = mapped_column(Integer)


class EntryRow(Base):
    __tablename__ = "entries"
    __table_args__ = (
        UniqueConstraint("signal_type", "value", "bank_id"),
        Index("ix_entries_bank_id", "bank_id"),
        # NCMEC deletions name entries by their external id only.
        Index(
            "ix_entries_bank_id_external_id",
            "bank_id",
            "external_id",
            sqlite_where=text("external_id IS NOT NULL"),
            postgresql_where=text("external_id IS NOT NULL"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id64, primary_key=True, autoincrement=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"))
    signal_type: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(Text)
    list_name: Mapped[str | None] = mapped_column(String(200))
    list_version: Mapped[str | None] = mapped_column(String(200))
    external_id: Mapped[str | None] = mapped_column(String(200))
    classification: Mapped[str | None] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    note: Mapped[str | None] = mapped_column(Text)


class EntryRegionRow(Base):
    __tablename__ = "entry_regions"
    __table_args__ = (CheckConstraint("quality BETWEEN 0 AND 100", name="quality"),)

    entry_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("entries.id", ondelete="CASCADE"), primary_key=True
    )
    region: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(64))
    quality: Mapped[int] = mapped_column(Integer)


class ChangeRow(Base):
    __tablename__ = "bank_changes"
    __table_args__ = (
        CheckConstraint("op IN ('add', 'remove', 'update', 'bank')", name="op"),
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(Id64, primary_key=True, autoincrement=True)
    bank_id: Mapped[int] = mapped_column(Integer)
    entry_id: Mapped[int | None] = mapped_column(BigInteger)
    op: Mapped[str] = mapped_column(String(8))
    #: Kept for removals only: an added or updated entry still holds its own.
    signal_type: Mapped[str | None] = mapped_column(String(32))
    value: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ImportRunRow(Base):
    __tablename__ = "import_runs"
    __table_args__ = (
        CheckConstraint("status IN ('running', 'complete', 'failed')", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"), index=True)
    format: Mapped[str] = mapped_column(String(16))
    list_name: Mapped[str | None] = mapped_column(String(200))
    list_version: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(8))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    added: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


# ---------------------------------------------------------------- quarantine vault (issue 6)
#
# - ``vault_master_keys``: each master key version that has wrapped a data key, with its
#   fingerprint (an HMAC under the key, never the key), so that a wrong key file is reported
#   as such rather than as tampered content.
# - ``vault_objects``: one quarantined content. Its ciphertext is a file under the vault
#   directory named by ``id`` (random; never the content's hash); the row holds the SHA-256 of
#   the original, the per-object data key as wrapped by master key ``key_version``, the
#   content's nonce (both base64), retention and legal hold. Destroying drops the wrapped key
#   and nonce (crypto-shredding) and keeps the row as a tombstone: who, when, why.
# - ``vault_access``: every put, read, verification, hold, release, report and destruction of
#   an object, with who and why (each also recorded in ``audit_events``).

VAULT_ACCESS_ACTIONS = (
    "put",
    "read",
    "verify",
    "hold",
    "release",
    "report",
    "destroy",
    "integrity_failure",
)


class VaultMasterKeyRow(Base):
    __tablename__ = "vault_master_keys"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class VaultObjectRow(Base):
    __tablename__ = "vault_objects"
    __table_args__ = (
        CheckConstraint("size >= 0", name="size"),
        # A live object has its wrapped key; a destroyed one has none left.
        CheckConstraint(
            "(destroyed_at IS NULL AND wrapped_key IS NOT NULL AND nonce IS NOT NULL "
            "AND key_version IS NOT NULL) OR (destroyed_at IS NOT NULL AND wrapped_key IS NULL "
            "AND nonce IS NULL AND key_version IS NULL)",
            name="shredded",
        ),
        CheckConstraint("destroyed_at IS NULL OR NOT legal_hold", name="hold"),
    )

    #: 32 random hex digits (a UUID4); the ciphertext file's name.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(100))
    case_ref: Mapped[str | None] = mapped_column(String(200), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(200))
    key_version: Mapped[int | None] = mapped_column(ForeignKey("vault_master_keys.version"))
    #: Base64 of the master-key AES-GCM nonce and the wrapped 256-bit data key.
    wrapped_key: Mapped[str | None] = mapped_column(String(100))
    #: Base64 of the content's 96-bit AES-GCM nonce.
    nonce: Mapped[str | None] = mapped_column(String(24))
    reported_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    retain_until: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    hold_reason: Mapped[str | None] = mapped_column(Text)
    held_by: Mapped[str | None] = mapped_column(String(200))
    held_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    destroyed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    destroyed_by: Mapped[str | None] = mapped_column(String(200))
    destroy_reason: Mapped[str | None] = mapped_column(Text)


class VaultAccessRow(Base):
    __tablename__ = "vault_access"
    __table_args__ = (
        CheckConstraint(
            "action IN ('put', 'read', 'verify', 'hold', 'release', 'report', 'destroy', "
            "'integrity_failure')",
            name="action",
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id64, primary_key=True, autoincrement=True)
    object_id: Mapped[str] = mapped_column(ForeignKey("vault_objects.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(String(500))


class StoreMetaRow(Base):
    __tablename__ = "store_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: Space-separated scope names.
    scopes: Mapped[str] = mapped_column(Text)
    #: Requests per second this key may make (None: the service's default).
    rate_limit: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AuditEventRow(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        # "Was this file ever viewed?" (review.reveal events of one recorded match) and other
        # questions about one subject, without reading the whole trail (migration 0008).
        Index("ix_audit_events_action_subject", "action", "subject"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id64, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200))
    #: JSON text (portable: no JSON column type).
    details: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(BigInteger, unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: 0 and position 0 with the genesis hash while the trail is empty.
    event_id: Mapped[int] = mapped_column(BigInteger)
    position: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


# ---------------------------------------------------------------- webhooks (issue 6)
#
# - ``webhook_endpoints``: where events go. The signing secret is kept in clear because the
#   server must sign with it (an HMAC key cannot be stored as a digest); it is shown once,
#   when made, and never listed. After a rotation the previous secret signs too, until
#   ``previous_secret_until``, so receivers can switch without losing a delivery.
# - ``webhook_events``: the outbox. One row per event, its body as canonical JSON (ASCII, so
#   ``Text`` holds the exact bytes that are signed and sent).
# - ``webhook_deliveries``: one event to one endpoint, with its retry state and its lease: a
#   dispatcher claims a row by writing a random ``lease_token`` and a ``lease_until``; a row
#   whose lease ran out (its dispatcher died mid-send) is due again.
# - ``webhook_attempts``: the delivery log, one row per HTTP attempt (never the secret).

WEBHOOK_EVENT_TYPES = ("match", "action", "decision", "report")
DELIVERY_STATES = ("pending", "delivered", "dead")


class WebhookEndpointRow(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(Text)
    #: Space-separated event types (see `WEBHOOK_EVENT_TYPES`).
    event_types: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class WebhookEventRow(Base):
    __tablename__ = "webhook_events"

    #: A UUID, sent as ``Lightkeeper-Event-Id``: receivers deduplicate on it.
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    body: Mapped[str] = mapped_column(Text)


class WebhookDeliveryRow(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'delivered', 'dead')", name="state"),
        UniqueConstraint("event_id", "endpoint_id"),
        Index("ix_webhook_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_id", "endpoint_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id64, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True
    )
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: When the delivery entered the queue (made, or requeued): its age limit counts from here.
    queued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    lease_token: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    dead_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))


class WebhookAttemptRow(Base):
    __tablename__ = "webhook_attempts"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Id64, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    duration_ms: Mapped[int] = mapped_column(Integer)
    #: The HTTP status the endpoint answered, or None when there was no answer.
    status_code: Mapped[int | None] = mapped_column(Integer)
    #: What went wrong (connection refused, timeout …); None for a 2xx answer.
    error: Mapped[str | None] = mapped_column(String(500))


# ---------------------------------------------------------------- policies and cases (issue 6)
#
# - ``policy_versions``: every policy ever set, numbered 1, 2, 3 …, with when, by whom and
#   why; the one with the highest number is in force, and the one in force at any past time
#   is the last set before it (regulators ask). None stored: the built-in default applies.
# - ``cases``: one per content (SHA-256) that a policy acted on: its status (open, then
#   decided, reported or closed by a review), the most urgent review priority seen (None:
#   no match of it called for review, so it is not in the review queue), the union of the
#   actions taken, counts and first/last seen. Unique on the SHA-256, so two processes
#   recording the same content at once make one case.
# - ``case_matches``: one recorded match per acted-on upload: the request id it came under
#   (unique: a retried request is recognised, never recorded twice), the uploader
#   reference the platform passed, the acting matches' evidence (JSON), the policy version
#   in force, the decision, and the vault object holding the upload if it was quarantined.

CASE_STATUSES = ("open", "decided", "reported", "closed")


class PolicyVersionRow(Base):
    __tablename__ = "policy_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    #: The policy as canonical JSON (sorted keys): what `Policy.from_dict` reads back.
    document: Mapped[str] = mapped_column(Text)
    comment: Mapped[str] = mapped_column(Text)


class CaseRow(Base):
    __tablename__ = "cases"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'decided', 'reported', 'closed')", name="status"),
        CheckConstraint("priority IS NULL OR priority BETWEEN 1 AND 9", name="priority"),
        # The review queue: open cases, most urgent first, oldest first.
        Index("ix_cases_status_priority_first_seen_at", "status", "priority", "first_seen_at"),
        # Figures over a period (lightkeeper.reporting.transparency; migration 0008).
        Index("ix_cases_first_seen_at", "first_seen_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id64, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(12), default="open")
    priority: Mapped[int | None] = mapped_column(Integer)
    #: Space-separated union of the actions taken on its matches, in `ACTIONS` order.
    actions: Mapped[str] = mapped_column(String(64))
    #: Recorded matches (acted-on uploads) of this content.
    match_count: Mapped[int] = mapped_column(Integer, default=0)
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CaseMatchRow(Base):
    __tablename__ = "case_matches"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Id64, primary_key=True, autoincrement=True)
    #: The match call's Idempotency-Key, or the id the server made for it.
    request_id: Mapped[str] = mapped_column(String(200), unique=True)
    case_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("cases.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    #: The platform's opaque reference of the uploader, if it passed one.
    uploader: Mapped[str | None] = mapped_column(String(200), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(100))
    #: The policy version in force; None: the built-in default.
    policy_version: Mapped[int | None] = mapped_column(ForeignKey("policy_versions.version"))
    #: Space-separated actions taken, in `ACTIONS` order.
    actions: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int | None] = mapped_column(Integer)
    reject: Mapped[bool] = mapped_column(Boolean)
    #: JSON list of the acting matches' evidence (`Match.to_dict`).
    evidence: Mapped[str] = mapped_column(Text)
    #: JSON of the decision: actions, priority, and per match the rules that selected it.
    decision: Mapped[str] = mapped_column(Text)
    #: The vault object holding the upload, when it was quarantined.
    vault_object_id: Mapped[str | None] = mapped_column(ForeignKey("vault_objects.id"), unique=True)


# ---------------------------------------------------------------- review and reporting (issue 7)
#
# - ``reviewers``: people who review cases: a unique user name, a role (``reviewer``,
#   ``senior`` — decides escalations and appeals — or ``admin``), a password hash (Argon2id;
#   None for an account that signs in only through a trusted reverse-proxy header), and an
#   optional per-person cap on reveals per day (None: the service's setting).
# - ``review_sessions``: signed-in browser sessions. Only the SHA-256 of the session token is
#   kept (the token is 256 random bits), with the CSRF token its forms must carry.
# - ``case_reviews``: one per reviewed case, its review state now: ``escalated`` (waiting for
#   a senior reviewer), ``awaiting_approval`` (confirmed by one person; the two-person rule
#   wants a second), ``confirmed``, ``false_positive`` or ``reversed`` (an upheld appeal),
#   with the classification (A1/A2/B1/B2) and who confirmed and approved. A case with no row
#   has not been decided. ``cases.status`` follows: ``decided`` once confirmed, ``closed``
#   after a false positive or a reversal, ``reported`` once a report is finished.
# - ``review_decisions``: every decision ever taken, never updated: the history behind
#   ``case_reviews`` (who, when, what, with which classification and annotations).
# - ``review_reveals``: every time a person saw the clear image of one recorded match (the
#   default view is a blurred greyscale derivative). Also an audit event; reports read
#   ``fileViewedByEsp`` from the audit trail, and the exposure counters from here.
# - ``negative_feedback``: a list entry judged wrong for this platform (a false-positive
#   decision or an upheld appeal), to export to the list's provider: bank, entry, signal
#   type, list version; ``exported_at`` once handed over.
# - ``appeals``: a user's appeal against a case, and a senior reviewer's answer.
# - ``reports``: NCMEC CyberTipline reports made from confirmed cases: their state in the
#   submission flow, NCMEC's report id, and the exact report XML sent.
# - ``report_files``: the files of a report: which recorded match, NCMEC's file id, and
#   whether a person at the provider viewed it (from the audit trail, when the report was
#   built).
# - ``report_calls``: every call made to NCMEC's API for a report, with the exact payload
#   sent (file bytes by SHA-256 and size only) and the answer.

REVIEWER_ROLES = ("reviewer", "senior", "admin")
REVIEW_STATES = ("escalated", "awaiting_approval", "confirmed", "false_positive", "reversed")
DECISION_KINDS = (
    "confirm",
    "false_positive",
    "escalate",
    "approve",
    "disapprove",
    "appeal_upheld",
    "appeal_denied",
)
CLASSIFICATIONS = ("A1", "A2", "B1", "B2")
FEEDBACK_REASONS = ("false_positive", "appeal_upheld")
APPEAL_STATUSES = ("open", "upheld", "denied")
REPORT_STATES = ("draft", "submitted", "files_uploaded", "finished", "retracted", "failed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class ReviewerRow(Base):
    __tablename__ = "reviewers"
    __table_args__ = (
        CheckConstraint(_in("role", REVIEWER_ROLES), name="role"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id64, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    #: Argon2id hash (PHC string); None: signs in only through the trusted proxy header.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Reveals allowed per day for this person; None: the service's setting.
    daily_reveal_cap: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(200))


class ReviewSessionRow(Base):
    __tablename__ = "review_sessions"

    #: SHA-256 (hex) of the session token; the token itself is never stored.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    reviewer_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("reviewers.id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class CaseReviewRow(Base):
    __tablename__ = "case_reviews"
    __table_args__ = (
        CheckConstraint(_in("state", REVIEW_STATES), name="state"),
        CheckConstraint(
            f"classification IS NULL OR {_in('classification', CLASSIFICATIONS)}",
            name="classification",
        ),
    )

    case_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("cases.id"), primary_key=True, autoincrement=False
    )
    state: Mapped[str] = mapped_column(String(20), index=True)
    classification: Mapped[str | None] = mapped_column(String(2))
    #: JSON list of short annotation strings.
    annotations: Mapped[str] = mapped_column(Text)
    confirmed_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("reviewers.id"))
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    approved_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("reviewers.id"))
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ReviewDecisionRow(Base):
    __tablename__ = "review_decisions"
    __table_args__ = (
        CheckConstraint(_in("kind", DECISION_KINDS), name="kind"),
        CheckConstraint(
            f"classification IS NULL OR {_in('classification', CLASSIFICATIONS)}",
            name="classification",
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id64, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("cases.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("reviewers.id"))
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    kind: Mapped[str] = mapped_column(String(20))
    classification: Mapped[str | None] = mapped_column(String(2))
    #: JSON list of short annotation strings.
    annotations: Mapped[str] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text)


class ReviewRevealRow(Base):
    __tablename__ = "review_reveals"
    __table_args__ = (
        # Exposure counters: one person's reveals in one day.
        Index("ix_review_reveals_reviewer_id_at", "reviewer_id", "at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id64, primary_key=True, autoincrement=True)
    reviewer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("reviewers.id"))
    case_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("cases.id"), index=True)
    case_match_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("case_matches.id"))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    reason: Mapped[str] = mapped_column(String(200))
    # The reviewer UI's one fetch of the clear image (migration 0009): the SHA-256 of the
    # ticket its page points at (never the ticket), and when that one fetch took it. Any
    # worker can settle the fetch; the bytes themselves are never stored here.
    ticket_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    fetched_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class NegativeFeedbackRow(Base):
    __tablename__ = "negative_feedback"
    __table_args__ = (
        CheckConstraint(_in("reason", FEEDBACK_REASONS), name="reason"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id64, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("cases.id"), index=True)
    bank: Mapped[str] = mapped_column(String(200), index=True)
    #: The bank entry judged wrong (no foreign key: the entry may be removed later).
    entry_id: Mapped[int] = mapped_column(BigInteger)
    signal_type: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(200))
    list_name: Mapped[str | None] = mapped_column(String(200))
    list_version: Mapped[str | None] = mapped_column(String(200))
    distance: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    exported_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class EntrySuppressionRow(Base):
    """A list hash judged a false positive here (migration 0010): an entry of this bank with
    this hash is held disabled whenever a list adds it again, even after it was deleted (a
    list that removes and re-adds it, a bank rebuilt under the same name). Per bank name, so
    it never touches another bank's entries, and never allow-lists the listed content."""

    __tablename__ = "entry_suppressions"
    __table_args__ = (
        UniqueConstraint("bank", "signal_type", "value"),
        CheckConstraint(_in("reason", FEEDBACK_REASONS), name="reason"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id64, primary_key=True, autoincrement=True)
    bank: Mapped[str] = mapped_column(String(64))
    signal_type: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(Text)
    case_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("cases.id"), index=True)
    reason: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(200))


class AppealRow(Base):
    __tablename__ = "appeals"
    __table_args__ = (
        CheckConstraint(_in("status", APPEAL_STATUSES), name="status"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id64, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("cases.id"), index=True)
    #: The platform's opaque reference of the person appealing.
    uploader: Mapped[str | None] = mapped_column(String(200))
    statement: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    status: Mapped[str] = mapped_column(String(12), index=True)
    decided_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("reviewers.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reason: Mapped[str | None] = mapped_column(Text)


class ReportRow(Base):
    __tablename__ = "reports"
    __table_args__ = (
        CheckConstraint(_in("state", REPORT_STATES), name="state"),
        # One live (not retracted) report per case and reported uploader; the copies with
        # no uploader reference are a group of their own (a unique index holds NULLs apart).
        Index(
            "uq_reports_live_case_uploader",
            "case_id",
            "uploader",
            unique=True,
            sqlite_where=text("state <> 'retracted' AND uploader IS NOT NULL"),
            postgresql_where=text("state <> 'retracted' AND uploader IS NOT NULL"),
        ),
        Index(
            "uq_reports_live_case_no_uploader",
            "case_id",
            unique=True,
            sqlite_where=text("state <> 'retracted' AND uploader IS NULL"),
            postgresql_where=text("state <> 'retracted' AND uploader IS NULL"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id64, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("cases.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    #: The reported user: the uploader reference of the reported copies (None: the copies
    #: with no uploader reference).
    uploader: Mapped[str | None] = mapped_column(String(200))
    #: NCMEC's report id, once the submit call answered with one.
    ncmec_report_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: The report XML exactly as submitted.
    xml: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    created_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    error: Mapped[str | None] = mapped_column(Text)
    #: The run sending (or retracting) the report, and until when it may: taken by
    #: compare-and-set, renewed before each call to NCMEC, released at the end.
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ReportFileRow(Base):
    __tablename__ = "report_files"
    __table_args__ = (
        UniqueConstraint("report_id", "case_match_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id64, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("reports.id", ondelete="CASCADE"), index=True
    )
    case_match_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("case_matches.id"))
    #: NCMEC's file id, once the upload call answered with one.
    ncmec_file_id: Mapped[str | None] = mapped_column(String(64))
    #: Whether a person at the provider viewed the file, from the audit trail.
    viewed_by_esp: Mapped[bool] = mapped_column(Boolean)
    uploaded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    fileinfo_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: When NCMEC answered an upload of the file with an MD5 that is not the file's: the
    #: file was damaged on the way, and the report cannot be finished (only retracted).
    damaged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ReportCallRow(Base):
    __tablename__ = "report_calls"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Id64, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("reports.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    #: status, submit, upload, fileinfo, finish or retract.
    step: Mapped[str] = mapped_column(String(16))
    #: The exact request sent (for an upload: the file's SHA-256 and size, never its bytes).
    request: Mapped[str] = mapped_column(Text)
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(String(500))
