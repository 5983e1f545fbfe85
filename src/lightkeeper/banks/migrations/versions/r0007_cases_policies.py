"""Policies with their history, cases and recorded matches (issue 6).

Revision ID: 0007
Revises: 0006
Created: 2026-11-22

Three new tables (see ``models.py`` and ``lightkeeper.actions``): every policy version ever
set, one case per acted-on content (SHA-256), and one recorded match per acted-on upload,
unique on its request id (a retried match call is recognised, never recorded twice).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_policy_versions")),
    )
    op.create_index("ix_policy_versions_created_at", "policy_versions", ["created_at"])
    op.create_table(
        "cases",
        sa.Column("id", _ID64, autoincrement=True, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("actions", sa.String(length=64), nullable=False),
        sa.Column("match_count", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'decided', 'reported', 'closed')", name=op.f("ck_cases_status")
        ),
        sa.CheckConstraint(
            "priority IS NULL OR priority BETWEEN 1 AND 9", name=op.f("ck_cases_priority")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("sha256", name=op.f("uq_cases_sha256")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_cases_status_priority_first_seen_at",
        "cases",
        ["status", "priority", "first_seen_at"],
    )
    op.create_table(
        "case_matches",
        sa.Column("id", _ID64, autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("uploader", sa.String(length=200), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=True),
        sa.Column("actions", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("reject", sa.Boolean(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("decision", sa.Text(), nullable=False),
        sa.Column("vault_object_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_matches_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["policy_version"],
            ["policy_versions.version"],
            name=op.f("fk_case_matches_policy_version_policy_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["vault_object_id"],
            ["vault_objects.id"],
            name=op.f("fk_case_matches_vault_object_id_vault_objects"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_matches")),
        sa.UniqueConstraint("request_id", name=op.f("uq_case_matches_request_id")),
        sa.UniqueConstraint("vault_object_id", name=op.f("uq_case_matches_vault_object_id")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_case_matches_case_id", "case_matches", ["case_id"])
    op.create_index("ix_case_matches_at", "case_matches", ["at"])
    op.create_index("ix_case_matches_uploader", "case_matches", ["uploader"])


def downgrade() -> None:
    op.drop_index("ix_case_matches_uploader", table_name="case_matches")
    op.drop_index("ix_case_matches_at", table_name="case_matches")
    op.drop_index("ix_case_matches_case_id", table_name="case_matches")
    op.drop_table("case_matches")
    op.drop_index("ix_cases_status_priority_first_seen_at", table_name="cases")
    op.drop_table("cases")
    op.drop_index("ix_policy_versions_created_at", table_name="policy_versions")
    op.drop_table("policy_versions")
