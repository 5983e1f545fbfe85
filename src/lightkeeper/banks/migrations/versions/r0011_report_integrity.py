"""Report integrity: the reported uploader, one live report per case and uploader, a lease.

Revision ID: 0011
Revises: 0010
Created: 2026-11-23

- ``reports.uploader``: the reported user (the uploader reference of the reported copies;
  NULL for the copies with no uploader reference). Existing reports get it from their
  files, or, for a report with no file, from the ``espIdentifier`` of its XML when the case
  has copies by that uploader; otherwise it stays NULL.
- Two partial unique indexes: one live (not retracted) report per case and uploader, and
  one per case for the copies with no uploader reference. The upgrade stops, naming them,
  if existing reports break that rule: retract the extra ones, then upgrade again.
- ``reports.lease_owner`` and ``reports.lease_until``: the run sending or retracting the
  report, and until when (taken by compare-and-set; see lightkeeper.reporting._submission).
- ``report_files.damaged_at``: when NCMEC answered an upload of the file with an MD5 that is
  not the file's.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_LIVE = "state <> 'retracted'"


def _esp_identifier(document: str) -> str | None:
    try:
        root = ET.fromstring(document.encode("utf-8"))
    except ET.ParseError:
        return None
    value = root.findtext("personOrUserReported/espIdentifier")
    return value.strip() if value and value.strip() else None


def _backfill(conn: sa.Connection) -> None:
    conn.execute(
        sa.text(
            "UPDATE reports SET uploader = (SELECT MIN(m.uploader) FROM report_files f "
            "JOIN case_matches m ON m.id = f.case_match_id WHERE f.report_id = reports.id)"
        )
    )
    fileless = conn.execute(
        sa.text(
            "SELECT r.id, r.case_id, r.xml FROM reports r WHERE r.uploader IS NULL AND NOT "
            "EXISTS (SELECT 1 FROM report_files f WHERE f.report_id = r.id)"
        )
    ).all()
    for report_id, case_id, document in fileless:
        uploader = _esp_identifier(document)
        if uploader is None:
            continue
        known = conn.execute(
            sa.text("SELECT 1 FROM case_matches WHERE case_id = :case AND uploader = :who"),
            {"case": case_id, "who": uploader},
        ).first()
        if known is not None:
            conn.execute(
                sa.text("UPDATE reports SET uploader = :who WHERE id = :id"),
                {"who": uploader, "id": report_id},
            )


def _refuse_duplicates(conn: sa.Connection) -> None:
    twice = conn.execute(
        sa.text(
            f"SELECT case_id, uploader, COUNT(*) FROM reports WHERE {_LIVE} "
            "GROUP BY case_id, uploader HAVING COUNT(*) > 1"
        )
    ).all()
    if twice:
        named = "; ".join(f"case {c}, uploader {u!r}: {n} live reports" for c, u, n in twice)
        raise RuntimeError(
            f"more than one live report for a case and uploader ({named}): retract the extra "
            "reports (lightkeeper report retract ID), then upgrade again"
        )


def upgrade() -> None:
    op.add_column("reports", sa.Column("uploader", sa.String(length=200), nullable=True))
    op.add_column("reports", sa.Column("lease_owner", sa.String(length=64), nullable=True))
    op.add_column("reports", sa.Column("lease_until", sa.DateTime(), nullable=True))
    op.add_column("report_files", sa.Column("damaged_at", sa.DateTime(), nullable=True))
    conn = op.get_bind()
    _backfill(conn)
    _refuse_duplicates(conn)
    op.create_index(
        "uq_reports_live_case_uploader",
        "reports",
        ["case_id", "uploader"],
        unique=True,
        sqlite_where=sa.text(f"{_LIVE} AND uploader IS NOT NULL"),
        postgresql_where=sa.text(f"{_LIVE} AND uploader IS NOT NULL"),
    )
    op.create_index(
        "uq_reports_live_case_no_uploader",
        "reports",
        ["case_id"],
        unique=True,
        sqlite_where=sa.text(f"{_LIVE} AND uploader IS NULL"),
        postgresql_where=sa.text(f"{_LIVE} AND uploader IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_reports_live_case_no_uploader", table_name="reports")
    op.drop_index("uq_reports_live_case_uploader", table_name="reports")
    op.drop_column("report_files", "damaged_at")
    op.drop_column("reports", "lease_until")
    op.drop_column("reports", "lease_owner")
    op.drop_column("reports", "uploader")
