"""Region codes of banked images (issue 5): a per-bank switch, its threshold, and region
codes linked to their whole-image entry.

Revision ID: 0003
Revises: 0002
Created: 2026-11-22

``banks`` gains ``regions`` (off) and ``region_threshold`` (31), added in place with server
defaults, so existing banks behave as before. The threshold's range check is a column
constraint of the added column: SQLite accepts those in ``ALTER TABLE … ADD COLUMN``, while
a table constraint would need the table rebuilt (and rebuilding ``banks`` with foreign keys
on would cascade into its entries). ``entry_regions`` is new.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "banks",
        sa.Column("regions", sa.Boolean(), nullable=False, server_default=sa.text("false")),
    )
    op.add_column(
        "banks",
        sa.Column(
            "region_threshold",
            sa.Integer(),
            sa.CheckConstraint(
                "region_threshold BETWEEN 0 AND 256", name=op.f("ck_banks_region_threshold")
            ),
            nullable=False,
            server_default=sa.text("31"),
        ),
    )
    op.create_table(
        "entry_regions",
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("quality", sa.Integer(), nullable=False),
        sa.CheckConstraint("quality BETWEEN 0 AND 100", name=op.f("ck_entry_regions_quality")),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["entries.id"],
            name=op.f("fk_entry_regions_entry_id_entries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("entry_id", "region", name=op.f("pk_entry_regions")),
    )


def downgrade() -> None:
    op.drop_table("entry_regions")
    # In place (SQLite 3.35+ drops columns itself): a rebuilt ``banks`` would cascade.
    op.drop_column("banks", "region_threshold")
    op.drop_column("banks", "regions")
