"""Audit trail as a hash chain: each event commits to the one before (issue 6).

Revision ID: 0006
Revises: 0005
Created: 2026-11-22

``audit_events`` gains ``position`` (unique), ``prev_hash`` and ``hash``; ``audit_head`` (one
row) holds the chain's last event. Events already in the trail are chained here, in id order,
with the same encoding `lightkeeper.banks.audit.record` uses for new ones, so that the first
``lightkeeper audit verify`` after the upgrade passes. That only vouches for those events
from the upgrade on: what was changed before it cannot be told.

The columns are added nullable, filled page by page (bounded memory on any trail), then made
``NOT NULL``: on SQLite that last step rebuilds the table (batch mode), keeping its
``AUTOINCREMENT`` so that no id is ever reused.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from lightkeeper.banks._audit_chain import GENESIS_HASH, event_hash
from lightkeeper.banks.models import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_PAGE = 5000

_EVENTS = sa.table(
    "audit_events",
    sa.column("id", sa.BigInteger()),
    sa.column("at", UtcDateTime()),
    sa.column("actor", sa.String()),
    sa.column("action", sa.String()),
    sa.column("subject", sa.String()),
    sa.column("details", sa.Text()),
    sa.column("position", sa.BigInteger()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
)


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("position", sa.BigInteger(), nullable=True))
    op.add_column("audit_events", sa.Column("prev_hash", sa.String(length=64), nullable=True))
    op.add_column("audit_events", sa.Column("hash", sa.String(length=64), nullable=True))
    head = _chain_existing_events(op.get_bind())
    head_table = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.bulk_insert(head_table, [{"id": 1, **head}])
    with op.batch_alter_table("audit_events", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column("position", existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch.create_unique_constraint(op.f("uq_audit_events_position"), ["position"])


def _chain_existing_events(conn: sa.Connection) -> dict[str, Any]:
    """Chain every event in id order; the head values for the last one (genesis if none)."""
    head: dict[str, Any] = {"event_id": 0, "position": 0, "hash": GENESIS_HASH}
    after = 0
    while True:
        rows = conn.execute(
            sa.select(
                _EVENTS.c.id,
                _EVENTS.c.at,
                _EVENTS.c.actor,
                _EVENTS.c.action,
                _EVENTS.c.subject,
                _EVENTS.c.details,
            )
            .where(_EVENTS.c.id > after)
            .order_by(_EVENTS.c.id)
            .limit(_PAGE)
        ).all()
        if not rows:
            return head
        sealed = []
        for row in rows:
            position = head["position"] + 1
            digest = event_hash(
                row.id,
                position,
                row.at,
                row.actor,
                row.action,
                row.subject,
                row.details,
                head["hash"],
            )
            sealed.append(
                {"b_id": row.id, "b_position": position, "b_prev": head["hash"], "b_hash": digest}
            )
            head = {"event_id": row.id, "position": position, "hash": digest}
        conn.execute(
            sa.update(_EVENTS)
            .where(_EVENTS.c.id == sa.bindparam("b_id"))
            .values(
                position=sa.bindparam("b_position"),
                prev_hash=sa.bindparam("b_prev"),
                hash=sa.bindparam("b_hash"),
            ),
            sealed,
        )
        after = rows[-1].id


def downgrade() -> None:
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_events", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_constraint(op.f("uq_audit_events_position"), type_="unique")
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
        batch.drop_column("position")
