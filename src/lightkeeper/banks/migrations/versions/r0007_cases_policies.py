"""Policies with their history, cases and recorded matches (issue 6).

Revision ID: 0007
Revises: 0006
Created: 2026-11-22
"""

from __future__ import annotations

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
