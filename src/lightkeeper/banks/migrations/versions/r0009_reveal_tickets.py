"""Reveal tickets settled in the database, so that any worker can serve a reveal's image.

Revision ID: 0009
Revises: 0008
Created: 2026-11-23

``review_reveals`` gains ``ticket_hash`` (the SHA-256 of the one-time ticket the reviewer's
page fetches the clear image with; unique) and ``fetched_at`` (when that fetch took it).
Both are nullable: reveals made before the upgrade, or outside the web UI, have no ticket.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table(
        "review_reveals", table_kwargs={"sqlite_autoincrement": True}
    ) as batch:
        batch.add_column(sa.Column("ticket_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("fetched_at", sa.DateTime(), nullable=True))
        batch.create_unique_constraint(op.f("uq_review_reveals_ticket_hash"), ["ticket_hash"])


def downgrade() -> None:
    with op.batch_alter_table(
        "review_reveals", table_kwargs={"sqlite_autoincrement": True}
    ) as batch:
        batch.drop_constraint(op.f("uq_review_reveals_ticket_hash"), type_="unique")
        batch.drop_column("fetched_at")
        batch.drop_column("ticket_hash")
