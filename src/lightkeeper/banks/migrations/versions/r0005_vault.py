"""Quarantine vault: encrypted objects, their holds, destructions and reads (issue 6).

Revision ID: 0005
Revises: 0004
Created: 2026-11-22

Three new tables (see ``models.py`` and ``lightkeeper.actions.vault``): the master key
versions in use with their fingerprints, one row per quarantined object (metadata, wrapped
data key, retention, legal hold, tombstone once destroyed), and the access log. The
ciphertext itself lives in files under the vault directory, not in the database.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "vault_master_keys",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_vault_master_keys")),
    )
    op.create_table(
        "vault_objects",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("case_ref", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=True),
        sa.Column("wrapped_key", sa.String(length=100), nullable=True),
        sa.Column("nonce", sa.String(length=24), nullable=True),
        sa.Column("reported_at", sa.DateTime(), nullable=True),
        sa.Column("retain_until", sa.DateTime(), nullable=True),
        sa.Column("legal_hold", sa.Boolean(), nullable=False),
        sa.Column("hold_reason", sa.Text(), nullable=True),
        sa.Column("held_by", sa.String(length=200), nullable=True),
        sa.Column("held_at", sa.DateTime(), nullable=True),
        sa.Column("destroyed_at", sa.DateTime(), nullable=True),
        sa.Column("destroyed_by", sa.String(length=200), nullable=True),
        sa.Column("destroy_reason", sa.Text(), nullable=True),
        sa.CheckConstraint("size >= 0", name=op.f("ck_vault_objects_size")),
        sa.CheckConstraint(
            "(destroyed_at IS NULL AND wrapped_key IS NOT NULL AND nonce IS NOT NULL "
            "AND key_version IS NOT NULL) OR (destroyed_at IS NOT NULL AND wrapped_key IS NULL "
            "AND nonce IS NULL AND key_version IS NULL)",
            name=op.f("ck_vault_objects_shredded"),
        ),
        sa.CheckConstraint(
            "destroyed_at IS NULL OR NOT legal_hold", name=op.f("ck_vault_objects_hold")
        ),
        sa.ForeignKeyConstraint(
            ["key_version"],
            ["vault_master_keys.version"],
            name=op.f("fk_vault_objects_key_version_vault_master_keys"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vault_objects")),
    )
    op.create_index("ix_vault_objects_sha256", "vault_objects", ["sha256"])
    op.create_index("ix_vault_objects_case_ref", "vault_objects", ["case_ref"])
    op.create_index("ix_vault_objects_retain_until", "vault_objects", ["retain_until"])
    op.create_table(
        "vault_access",
        sa.Column("id", _ID64, autoincrement=True, nullable=False),
        sa.Column("object_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.CheckConstraint(
            "action IN ('put', 'read', 'verify', 'hold', 'release', 'report', 'destroy', "
            "'integrity_failure')",
            name=op.f("ck_vault_access_action"),
        ),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["vault_objects.id"],
            name=op.f("fk_vault_access_object_id_vault_objects"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vault_access")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_vault_access_object_id", "vault_access", ["object_id"])
    op.create_index("ix_vault_access_at", "vault_access", ["at"])


def downgrade() -> None:
    op.drop_index("ix_vault_access_at", table_name="vault_access")
    op.drop_index("ix_vault_access_object_id", table_name="vault_access")
    op.drop_table("vault_access")
    op.drop_index("ix_vault_objects_retain_until", table_name="vault_objects")
    op.drop_index("ix_vault_objects_case_ref", table_name="vault_objects")
    op.drop_index("ix_vault_objects_sha256", table_name="vault_objects")
    op.drop_table("vault_objects")
    op.drop_table("vault_master_keys")
