"""Bring the database schema up to date with Alembic, from inside the daemon."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def head() -> str | None:
    """The newest migration's revision (read once: the scripts do not change while we run)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade(engine: AsyncEngine) -> None:
    """Apply every migration not yet applied (idempotent; safe at every start).

    A database already at the head is only asked its revision: running Alembic's
    upgrade would load every migration script again to find nothing to do."""

    def _run(connection: Connection) -> None:
        if MigrationContext.configure(connection).get_current_revision() == head():
            return
        command.upgrade(alembic_config(connection), "head")

    async with engine.begin() as conn:
        await conn.run_sync(_run)
