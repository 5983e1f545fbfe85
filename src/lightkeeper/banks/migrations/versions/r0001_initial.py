"""Initial bank store schema: banks, thresholds, entries, change log, import runs.

Revision ID: 0001
Revises: none
Created: 2026-11-22

Written out here rather than imported from ``models.py``: a migration is a record of what the
schema was at that revision, and must not change when the models change later.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "banks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("match_dihedral", sa.Boolean(), nullable=False),
        sa.Column("pdq_quality_floor", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('block', 'allow')", name=op.f("ck_banks_kind")),
        sa.CheckConstraint(
            "pdq_quality_floor BETWEEN 0 AND 100", name=op.f("ck_banks_quality_floor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_banks")),
        sa.UniqueConstraint("name", name=op.f("uq_banks_name")),
    )
    op.create_table(
        "bank_thresholds",
        sa.Column("bank_id", sa.Integer(), nullable=False),
        sa.Column("signal_type", sa.String(length=32), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.CheckConstraint("threshold >= 0", name=op.f("ck_bank_thresholds_non_negative")),
        sa.ForeignKeyConstraint(
            ["bank_id"],
            ["banks.id"],
            name=op.f("fk_bank_thresholds_bank_id_banks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("bank_id", "signal_type", name=op.f("pk_bank_thresholds")),
    )
    op.create_table(
        "entries",
        sa.Column("id", _ID64, autoincrement=True, nullable=False),
        sa.Column("bank_id", sa.Integer(), nullable=False),
        sa.Column("signal_type", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("list_name", sa.String(length=200), nullable=True),
        sa.Column("list_version", sa.String(length=200), nullable=True),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("classification", sa.String(length=64), nullable=True),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_until", sa.DateTime(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["bank_id"], ["banks.id"], name=op.f("fk_entries_bank_id_banks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entries")),
        sa.UniqueConstraint(
            "signal_type", "value", "bank_id", name=op.f("uq_entries_signal_type_value_bank_id")
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_entries_bank_id", "entries", ["bank_id"])
    op.create_index(
        "ix_entries_bank_id_external_id",
        "entries",
        ["bank_id", "external_id"],
        sqlite_where=sa.text("external_id IS NOT NULL"),
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )
    op.create_table(
        "bank_changes",
        sa.Column("seq", _ID64, autoincrement=True, nullable=False),
        sa.Column("bank_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=True),
        sa.Column("op", sa.String(length=8), nullable=False),
        sa.Column("signal_type", sa.String(length=32), nullable=True),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "op IN ('add', 'remove', 'update', 'bank')", name=op.f("ck_bank_changes_op")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_bank_changes")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "import_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bank_id", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("list_name", sa.String(length=200), nullable=True),
        sa.Column("list_version", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("invalid", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'complete', 'failed')", name=op.f("ck_import_runs_status")
        ),
        sa.ForeignKeyConstraint(
            ["bank_id"],
            ["banks.id"],
            name=op.f("fk_import_runs_bank_id_banks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_runs")),
    )
    op.create_index("ix_import_runs_bank_id", "import_runs", ["bank_id"])


def downgrade() -> None:
    op.drop_table("import_runs")
    op.drop_table("bank_changes")
    op.drop_index("ix_entries_bank_id_external_id", table_name="entries")
    op.drop_index("ix_entries_bank_id", table_name="entries")
    op.drop_table("entries")
    op.drop_table("bank_thresholds")
    op.drop_table("banks")
