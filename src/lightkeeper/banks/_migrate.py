"""Bring a database to the newest schema with Alembic, from inside the library.

The migration scripts ship inside the package (``lightkeeper/banks/migrations``), so a
``pip install`` user gets them and `BankStore.open` upgrades any older store on open. The
upgrade runs in one write transaction (``BEGIN IMMEDIATE`` on SQLite): two processes opening
a fresh store at once queue on the lock, and the second finds the schema already at head.

To write a new revision after changing `models.py` (from a checkout)::

    from alembic import command
    from lightkeeper.banks._migrate import alembic_config
    command.revision(alembic_config(), "what changed", autogenerate=True,
                     rev_id="0002")  # with a connection to a store at the previous head
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from lightkeeper.banks import _engine

SCRIPT_LOCATION = "lightkeeper.banks:migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration pointing at the packaged scripts (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest schema revision the installed package knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at; None for an empty database."""
    return _engine.read(
        engine, lambda conn: MigrationContext.configure(conn).get_current_revision()
    )


def migrate_to_head(engine: Engine) -> None:
    """Upgrade the database to `head_revision()`, doing nothing when it is already there."""
    head = head_revision()
    if current_revision(engine) == head:
        return

    def upgrade(conn: Connection) -> None:
        command.upgrade(alembic_config(conn), "head")

    _engine.write(engine, upgrade)
