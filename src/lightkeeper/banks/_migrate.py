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

from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from lightkeeper.banks import _engine

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPT_LOCATION = "lightkeeper.banks:migrations"

#: The newest revision among the packaged scripts, written out so that opening an up-to-date
#: store needs no Alembic import (~1 s in a fresh process, paid by every CLI command and
#: scan worker). `tests/test_banks_store.py` checks it against the scripts' real head.
HEAD_REVISION = "0011"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration pointing at the packaged scripts (no ini file needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest schema revision the installed package's scripts define."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at; None for an empty database."""

    def read(conn: Connection) -> str | None:
        if not inspect(conn).has_table("alembic_version"):
            return None
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        return None if row is None else str(row[0])

    return _engine.read(engine, read)


def migrate_to_head(engine: Engine) -> None:
    """Upgrade the database to `HEAD_REVISION`, doing nothing when it is already there."""
    if current_revision(engine) == HEAD_REVISION:
        return

    def upgrade(conn: Connection) -> None:
        from alembic import command

        command.upgrade(alembic_config(conn), "head")

    _engine.write(engine, upgrade)
