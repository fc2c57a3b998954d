"""Fixtures: a throwaway PostgreSQL server per test session, a fresh database per test.

- ``postgres``: one server for the whole session (initdb ≈ 1 s, start ≈ 0.1 s), on a
  free loopback port, in a folder under /tmp that the ``postgres`` user owns (pytest's
  tmp folders are 0700 under root's, where it could not write). Stopped and removed
  at the end. Fails clearly when the server binaries are not installed.
- ``postgres_url``: ``CREATE DATABASE test_<hex>`` for one test; yields its
  ``postgresql+asyncpg://`` URL and drops it afterwards.

Started only when a test asks for it, so ``-k sqlite`` never needs PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

# Where Debian puts the server binaries (not on PATH); ELDERCALL_PG_BIN overrides.
DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")
BIN_ENV = "ELDERCALL_PG_BIN"
SERVER_USER = "postgres"  # initdb and postgres refuse to run as root


def find_pg_bin() -> Path | None:
    """The folder holding initdb and pg_ctl: $ELDERCALL_PG_BIN, the newest Debian
    /usr/lib/postgresql/<major>/bin, or the one on PATH."""
    if os.environ.get(BIN_ENV):  # asked for explicitly: that one or none
        chosen = Path(os.environ[BIN_ENV])
        return chosen if (chosen / "initdb").is_file() and (chosen / "pg_ctl").is_file() else None
    candidates: list[Path] = []
    majors = [p for p in DEBIAN_PG_ROOT.glob("*/bin") if p.parent.name.isdigit()]
    candidates += sorted(majors, key=lambda p: int(p.parent.name), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One throwaway cluster: trust auth, no fsync (a crash loses only test data)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = 0
        # /tmp, not $TMPDIR: the server user must be able to reach the folder.
        self.base = Path(tempfile.mkdtemp(prefix="eldercall-pg-", dir="/tmp"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self._as_root = os.geteuid() == 0
        if self._as_root:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(self.base, user.pw_uid, user.pw_gid)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", SERVER_USER, "--"] if self._as_root else []
        # cwd: the server user may not be allowed into the current folder.
        return subprocess.run(
            [*prefix, *args], cwd=self.base, capture_output=True, text=True, timeout=60
        )

    def start(self) -> None:
        done = self._run(
            str(self.bin_dir / "initdb"),
            *("-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"),
            *("--encoding", "UTF8", "--locale", "C"),
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
        for _attempt in range(3):  # the free port may be taken between probe and bind
            self.port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            pg_ctl = str(self.bin_dir / "pg_ctl")
            started = self._run(
                pg_ctl,
                *("-D", str(self.data), "-l", str(self.log), "-w", "-t", "30"),
                *("-o", options, "start"),
            )
            if started.returncode == 0:
                return
        log = self.log.read_text(errors="replace") if self.log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start:\n{started.stderr}\n{log[-3000:]}")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.base, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        """Run one statement on the ``postgres`` database, from sync code.

        In a thread with its own loop: a sync fixture may run while the test's
        event loop is set but not running, and must not touch it.
        """

        async def run() -> None:
            conn = await asyncpg.connect(
                host="127.0.0.1", port=self.port, user="postgres", database="postgres"
            )
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, run()).result(timeout=60)


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
    server = PostgresServer(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:16]}"
    assert re.fullmatch(r"test_[0-9a-f]{16}", name)  # it is spliced into SQL
    postgres.admin(f"CREATE DATABASE {name}")
    yield postgres.url(name)
    postgres.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
