"""Alembic environment for the bank store: runs on the connection `BankStore.open` passes in.

The caller owns the transaction (see ``lightkeeper.banks._migrate``), so that the whole upgrade
commits or rolls back as one and holds the write lock while it runs.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from lightkeeper.banks.models import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "the bank store migrations run through lightkeeper.banks (BankStore.open), "
        "which passes a connection; the alembic command line is not set up for them"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode copies the table instead.
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
