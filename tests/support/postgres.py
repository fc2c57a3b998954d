"""Fixtures: a throwaway PostgreSQL server per test session, a fresh database per test.

- ``postgres``: one server for the whole session (initdb ≈ 1 s, start ≈ 0.1 s), from
  simulator/postgres.py. Stopped and removed at the end; if pytest is killed the server
  dies with it, and the next session removes the folder. Fails clearly when the server
  binaries are not installed.
- ``postgres_url``: ``CREATE DATABASE test_<hex>`` for one test, empty; yields its
  ``postgresql+asyncpg://`` URL and drops it afterwards.
- ``migrated_postgres_url``: the same, a copy of a database migrated once per session
  (``CREATE DATABASE ... TEMPLATE``): the daemon built on it finds its schema at the
  head, as after its first start, and the test does not pay for the migrations.

Started only when a test asks for it, so ``-k sqlite`` never needs PostgreSQL.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator

import pytest

from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db.migrate import upgrade
from simulator.postgres import (
    BIN_ENV,
    DEBIAN_PG_ROOT,
    SERVER_USER,
    PostgresServer,
    find_pg_bin,
    remove_stale_clusters,
)
from tests.support.threads import in_own_loop


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.fail(
            f"PostgreSQL server binaries (initdb, pg_ctl) not found (in ${BIN_ENV} if set, "
            f"else {DEBIAN_PG_ROOT}/<version>/bin or PATH); the tests run every database "
            "test on PostgreSQL too: apt-get install postgresql (or `make system-deps`). "
            "To run only the SQLite half: pytest -k 'not postgres'",
            pytrace=False,
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.fail(
                f"running as root, the tests start PostgreSQL as the {SERVER_USER!r} user, "
                "which does not exist: apt-get install postgresql creates it",
                pytrace=False,
            )
    remove_stale_clusters()
    server = PostgresServer(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    name = postgres.create_database("test")
    yield postgres.url(name)
    postgres.drop_database(name)


@pytest.fixture(scope="session")
def postgres_template(postgres: PostgresServer) -> str:
    """A database migrated to the head, never connected to again (a template must not be)."""
    name = postgres.create_database("template")
    in_own_loop(lambda: migrated(postgres.url(name)))
    return name


@pytest.fixture
def migrated_postgres_url(postgres: PostgresServer, postgres_template: str) -> Iterator[str]:
    name = postgres.create_database("test", template=postgres_template)
    yield postgres.url(name)
    postgres.drop_database(name)


async def migrated(url: str) -> None:
    engine = db.make_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
