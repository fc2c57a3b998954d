"""The migrations build exactly the schema that dispatcher/adapters/db/schema.py declares,
on SQLite and on PostgreSQL: column sizes included, since the validator's limits are
checked against schema.py's (tests/services/test_intake_fuzz.py)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db.migrate import HEAD, alembic_config, current_revision, upgrade


def differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, db.metadata))


async def test_the_migrated_database_is_the_declared_schema(empty_database_url: str) -> None:
    engine = db.make_engine(empty_database_url)
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(differences) == []
            assert await conn.run_sync(current_revision) == HEAD
    finally:
        await engine.dispose()


def test_the_migrations_have_one_head_and_the_files_show_the_order() -> None:
    # Branches merged side by side each chain their migration onto the head they saw:
    # two heads means one was not rechained, and the daemon would refuse to upgrade.
    scripts = ScriptDirectory.from_config(alembic_config())
    assert len(scripts.get_heads()) == 1
    # The daemon skips Alembic when a database is at HEAD: a new migration moves it.
    assert scripts.get_current_head() == HEAD, "set migrate.HEAD to the newest revision"
    chain = [s.path.rsplit("/", 1)[-1] for s in reversed(list(scripts.walk_revisions()))]
    assert chain == sorted(chain)
