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
  Details are a short JSON text (counts, ids), never a list's hash values in bulk.
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
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Id64, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200))
    #: JSON text (portable: no JSON column type).
    details: Mapped[str] = mapped_column(Text)
