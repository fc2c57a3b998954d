"""Bring the database schema up to date with Alembic, from inside the daemon."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration's revision. A database already there is only asked its
# revision, and Alembic is not even imported: it stays in memory once loaded (about
# 10 MB of the daemon's), and loading every migration script to find nothing to do
# took 18 ms at each start. tests/adapters/test_migrations.py checks this is the head.
HEAD = "0019_outbox_number_index"


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def current_revision(connection: Connection) -> str | None:
    """The database's revision, as Alembic records it (None: never migrated)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    found = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return found[0] if len(found) == 1 else None


async def upgrade(engine: AsyncEngine) -> None:
    """Apply every migration not yet applied (idempotent; safe at every start)."""

    def _run(connection: Connection) -> None:
        if current_revision(connection) == HEAD:
            return
        from alembic import command

        command.upgrade(alembic_config(connection), "head")

    async with engine.begin() as conn:
        await conn.run_sync(_run)
