"""Review and reporting (issue 7): reviewers and their sessions, review state and decisions,
reveals, negative feedback, appeals, and NCMEC reports with their files and calls.

Revision ID: 0008
Revises: 0007
Created: 2026-11-22

Indexes on the audit trail by (action, subject) and on cases by first upload, and nine new
tables, described in ``models.py`` (see also ``lightkeeper.review`` and
``lightkeeper.reporting``). Nothing else changes: a case's review state lives in
``case_reviews``, and ``cases.status`` keeps its four values.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_index(
        "ix_audit_events_action_subject", "audit_events", ["action", "subject"], unique=False
    )
    op.create_index("ix_cases_first_seen_at", "cases", ["first_seen_at"], unique=False)
    op.create_table(
        "reviewers",
        sa.Column("id", _ID64, autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("daily_reveal_cap", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.CheckConstraint(
            "role IN ('reviewer', 'senior', 'admin')", name=op.f("ck_reviewers_role")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviewers")),
        sa.UniqueConstraint("username", name=op.f("uq_reviewers_username")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "appeals",
        sa.Column("id", _ID64, autoincrement=True, nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("uploader", sa.String(length=200), nullable=True),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("decided_by", sa.BigInteger(), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'upheld', 'denied')", name=op.f("ck_appeals_status")
        ),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_appeals_case_id_cases")),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["reviewers.id"], name=op.f("fk_appeals_decided_by_reviewers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appeals")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_appeals_case_id"), "appeals", ["case_id"], unique=False)
    op.create_index(op.f("ix_appeals_received_at"), "appeals", ["received_at"], unique=False)
    op.create_index(op.f("ix_appeals_status"), "appeals", ["status"], unique=False)
    op.create_table(
        "case_reviews",
        sa.Column("case_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("classification", sa.String(length=2), nullable=True),
        sa.Column("annotations", sa.Text(), nullable=False),
        sa.Column("confirmed_by", sa.BigInteger(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.Column("approved_by", sa.BigInteger(), nullable=True),
        sa.Column("approved_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "classification IS NULL OR classification IN ('A1', 'A2', 'B1', 'B2')",
            name=op.f("ck_case_reviews_classification"),
        ),
        sa.CheckConstraint(
            "state IN ('escalated', 'awaiting_approval', 'confirmed', 'false_positive',"
            " 'reversed')",
            name=op.f("ck_case_reviews_state"),
        ),
        sa.ForeignKeyConstraint(
            ["approved_by"], ["reviewers.id"], name=op.f("fk_case_reviews_approved_by_reviewers")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_reviews_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["confirmed_by"], ["reviewers.id"], name=op.f("fk_case_reviews_confirmed_by_reviewers")
        ),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_case_reviews")),
    )
    op.create_index(op.f("ix_case_reviews_state"), "case_reviews", ["state"], unique=False)
    op.create_table(
        "negative_feedback",
        sa.Column("id", _ID64, autoincrement=True, nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("bank", sa.String(length=200), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("signal_type", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("list_name", sa.String(length=200), nullable=True),
        sa.Column("list_version", sa.String(length=200), nullable=True),
        sa.Column("distance", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("exported_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            "reason IN ('false_positive', 'appeal_upheld')",
            name=op.f("ck_negative_feedback_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_negative_feedback_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_negative_feedback")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_negative_feedback_at"), "negative_feedback", ["at"], unique=False)
    op.create_index(op.f("ix_negative_feedback_bank"), "negative_feedback", ["bank"], unique=False)
    op.create_index(
        op.f("ix_negative_feedback_case_id"), "negative_feedback", ["case_id"], unique=False
    )
    op.create_table(
        "reports",
        sa.Column("id", _ID64, autoincrement=True, nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("ncmec_report_id", sa.String(length=64), nullable=True),
        sa.Column("xml", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('draft', 'submitted', 'files_uploaded', 'finished', 'retracted', 'failed')",
            name=op.f("ck_reports_state"),
        ),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_reports_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint("ncmec_report_id", name=op.f("uq_reports_ncmec_report_id")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_reports_case_id"), "reports", ["case_id"], unique=False)
    op.create_index(op.f("ix_reports_created_at"), "reports", ["created_at"], unique=False)
    op.create_index(op.f("ix_reports_state"), "reports", ["state"], unique=False)
    op.create_index(op.f("ix_reports_finished_at"), "reports", ["finished_at"], unique=False)
    op.create_table(
        "review_decisions",
        sa.Column("id", _ID64, autoincrement=True, nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("reviewer_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("classification", sa.String(length=2), nullable=True),
        sa.Column("annotations", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "classification IS NULL OR classification IN ('A1', 'A2', 'B1', 'B2')",
            name=op.f("ck_review_decisions_classification"),
        ),
        sa.CheckConstraint(
            "kind IN ('confirm', 'false_positive', 'escalate', 'approve', 'disapprove',"
            " 'appeal_upheld', 'appeal_denied')",
            name=op.f("ck_review_decisions_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_review_decisions_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"],
            ["reviewers.id"],
            name=op.f("fk_review_decisions_reviewer_id_reviewers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_decisions")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_review_decisions_at"), "review_decisions", ["at"], unique=False)
    op.create_index(
        op.f("ix_review_decisions_case_id"), "review_decisions", ["case_id"], unique=False
    )
    op.create_table(
        "review_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("reviewer_id", sa.BigInteger(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["reviewer_id"],
            ["reviewers.id"],
            name=op.f("fk_review_sessions_reviewer_id_reviewers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_sessions")),
    )
    op.create_index(
        op.f("ix_review_sessions_expires_at"), "review_sessions", ["expires_at"], unique=False
    )
    op.create_index(
        op.f("ix_review_sessions_reviewer_id"), "review_sessions", ["reviewer_id"], unique=False
    )
    op.create_table(
        "report_calls",
        sa.Column("id", _ID64, autoincrement=True, nullable=False),
        sa.Column("report_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["reports.id"],
            name=op.f("fk_report_calls_report_id_reports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_calls")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_report_calls_report_id"), "report_calls", ["report_id"], unique=False)
    op.create_table(
        "report_files",
        sa.Column("id", _ID64, autoincrement=True, nullable=False),
        sa.Column("report_id", sa.BigInteger(), nullable=False),
        sa.Column("case_match_id", sa.BigInteger(), nullable=False),
        sa.Column("ncmec_file_id", sa.String(length=64), nullable=True),
        sa.Column("viewed_by_esp", sa.Boolean(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(), nullable=True),
        sa.Column("fileinfo_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_match_id"],
            ["case_matches.id"],
            name=op.f("fk_report_files_case_match_id_case_matches"),
        ),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["reports.id"],
            name=op.f("fk_report_files_report_id_reports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_files")),
        sa.UniqueConstraint(
            "report_id", "case_match_id", name=op.f("uq_report_files_report_id_case_match_id")
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_report_files_report_id"), "report_files", ["report_id"], unique=False)
    op.create_table(
        "review_reveals",
        sa.Column("id", _ID64, autoincrement=True, nullable=False),
        sa.Column("reviewer_id", sa.BigInteger(), nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("case_match_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_review_reveals_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["case_match_id"],
            ["case_matches.id"],
            name=op.f("fk_review_reveals_case_match_id_case_matches"),
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"], ["reviewers.id"], name=op.f("fk_review_reveals_reviewer_id_reviewers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_reveals")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_review_reveals_case_id"), "review_reveals", ["case_id"], unique=False)
    op.create_index(
        "ix_review_reveals_reviewer_id_at", "review_reveals", ["reviewer_id", "at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_audit_events_action_subject", table_name="audit_events")
    op.drop_index("ix_cases_first_seen_at", table_name="cases")
    op.drop_index("ix_review_reveals_reviewer_id_at", table_name="review_reveals")
    op.drop_index(op.f("ix_review_reveals_case_id"), table_name="review_reveals")
    op.drop_table("review_reveals")
    op.drop_index(op.f("ix_report_files_report_id"), table_name="report_files")
    op.drop_table("report_files")
    op.drop_index(op.f("ix_report_calls_report_id"), table_name="report_calls")
    op.drop_table("report_calls")
    op.drop_index(op.f("ix_review_sessions_reviewer_id"), table_name="review_sessions")
    op.drop_index(op.f("ix_review_sessions_expires_at"), table_name="review_sessions")
    op.drop_table("review_sessions")
    op.drop_index(op.f("ix_review_decisions_case_id"), table_name="review_decisions")
    op.drop_index(op.f("ix_review_decisions_at"), table_name="review_decisions")
    op.drop_table("review_decisions")
    op.drop_index(op.f("ix_reports_state"), table_name="reports")
    op.drop_index(op.f("ix_reports_finished_at"), table_name="reports")
    op.drop_index(op.f("ix_reports_created_at"), table_name="reports")
    op.drop_index(op.f("ix_reports_case_id"), table_name="reports")
    op.drop_table("reports")
    op.drop_index(op.f("ix_negative_feedback_case_id"), table_name="negative_feedback")
    op.drop_index(op.f("ix_negative_feedback_bank"), table_name="negative_feedback")
    op.drop_index(op.f("ix_negative_feedback_at"), table_name="negative_feedback")
    op.drop_table("negative_feedback")
    op.drop_index(op.f("ix_case_reviews_state"), table_name="case_reviews")
    op.drop_table("case_reviews")
    op.drop_index(op.f("ix_appeals_status"), table_name="appeals")
    op.drop_index(op.f("ix_appeals_received_at"), table_name="appeals")
    op.drop_index(op.f("ix_appeals_case_id"), table_name="appeals")
    op.drop_table("appeals")
    op.drop_table("reviewers")
