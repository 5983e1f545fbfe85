"""Audit trail as a hash chain: each event commits to the one before (issue 6).

Revision ID: 0006
Revises: 0005
Created: 2026-11-22
"""

from __future__ import annotations

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
