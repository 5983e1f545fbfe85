"""Entry suppressions: list hashes judged false positives, held disabled if a list re-adds them.

Revision ID: 0010
Revises: 0009
Created: 2026-11-23

Until now a false positive also put the matched entry's hash in the allow bank, so that a
list deleting and re-adding the entry could not bring it back. For a perceptual hash that
suppressed matches of the *listed* picture in every bank. ``entry_suppressions`` replaces
that: one row per (bank name, signal type, value) judged a false positive, and an entry
added to that bank with that hash is added disabled. Allow entries made by earlier false
positives stay where they are: removing them is a decision for the operator (docs/review.md).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_ID64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "entry_suppressions",
        sa.Column("id", _ID64, autoincrement=True, nullable=False),
        sa.Column("bank", sa.String(length=64), nullable=False),
        sa.Column("signal_type", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.CheckConstraint(
            "reason IN ('false_positive', 'appeal_upheld')",
            name=op.f("ck_entry_suppressions_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_entry_suppressions_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entry_suppressions")),
        sa.UniqueConstraint(
            "bank",
            "signal_type",
            "value",
            name=op.f("uq_entry_suppressions_bank_signal_type_value"),
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_entry_suppressions_case_id"), "entry_suppressions", ["case_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_entry_suppressions_case_id"), table_name="entry_suppressions")
    op.drop_table("entry_suppressions")
