"""A throwaway PostgreSQL server, for the tests and the benchmark (beside the broker runner).

initdb in a folder under /tmp that the ``postgres`` user owns when we are root (pytest's
tmp folders are 0700 under root's, where it could not write), the server on a free
loopback port, trust auth, no fsync: a crash loses only throwaway data. A fresh database
per test or scenario: ``create_database``. The pytest fixtures are in
tests/support/postgres.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]

from simulator.broker import free_port

# Where Debian puts the server binaries (not on PATH); ELDERCALL_PG_BIN overrides.
DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")
BIN_ENV = "ELDERCALL_PG_BIN"
SERVER_USER = "postgres"  # initdb and postgres refuse to run as root
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# Looked up here, not in the forked child, where loading anything is unsafe.
_prctl = ctypes.CDLL(None).prctl if sys.platform == "linux" else None


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


def remove_stale_clusters(older_than_s: float = 600) -> None:
    """Folders of runs that were killed (their server died with them: see below)."""
    for folder in Path("/tmp").glob("eldercall-pg-*"):
        with contextlib.suppress(OSError, ValueError):
            if time.time() - folder.stat().st_mtime < older_than_s:
                continue  # perhaps a run starting right now
            pid_file = folder / "data" / "postmaster.pid"
            if pid_file.exists() and Path(f"/proc/{int(pid_file.read_text().split()[0])}").exists():
                continue  # its server is running
            shutil.rmtree(folder)


class PostgresServer:
    """One throwaway cluster: trust auth, no fsync (a crash loses only test data).

    The server runs as a child that dies with its parent (PR_SET_PDEATHSIG), so a
    killed test or bench run leaves no PostgreSQL behind; hence ``postgres`` itself, not pg_ctl,
    which would detach it.
    """

    def __init__(self, bin_dir: Path, *, max_connections: int = 100) -> None:
        self.bin_dir = bin_dir
        self.max_connections = max_connections  # PostgreSQL's default; the bench needs more
        self.port = 0
        # /tmp, not $TMPDIR: the server user must be able to reach the folder.
        self.base = Path(tempfile.mkdtemp(prefix="eldercall-pg-", dir="/tmp"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self._user = pwd.getpwnam(SERVER_USER)
            os.chown(self.base, self._user.pw_uid, self._user.pw_gid)

    def _as_server_user(self) -> None:
        """In the child, before exec: become the server user, then ask to die with our process
        (in that order: changing credentials clears the parent-death signal)."""
        if self._user is not None:
            os.setgroups([])
            os.setgid(self._user.pw_gid)
            os.setuid(self._user.pw_uid)
        if _prctl is not None:
            _prctl(PR_SET_PDEATHSIG, signal.SIGQUIT)  # SIGQUIT: immediate shutdown

    def start(self) -> None:
        done = subprocess.run(
            [
                str(self.bin_dir / "initdb"),
                *("-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"),
                *("--encoding", "UTF8", "--locale", "C"),
            ],
            cwd=self.base,  # the server user may not be allowed into the current folder
            preexec_fn=self._as_server_user,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
        for _attempt in range(3):  # the free port may be taken between probe and bind
            self.port = free_port()
            if self._serve():
                return
        raise RuntimeError(f"PostgreSQL did not start:\n{self._log_tail()}")

    def _serve(self) -> bool:
        """Start the server on self.port; True once it accepts connections."""
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    str(self.bin_dir / "postgres"),
                    *("-D", str(self.data), "-p", str(self.port), "-k", str(self.base)),
                    *("-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"),
                    *("-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
                    *("-c", f"max_connections={self.max_connections}"),
                ],
                cwd=self.base,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self._as_server_user,
                start_new_session=True,  # a terminal's Ctrl-C is for us; we stop it in order
            )
        # postmaster.pid's last line says "ready" once it accepts connections (what
        # pg_ctl -w waits for).
        pid_file = self.data / "postmaster.pid"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False  # e.g. the port was taken meanwhile
            with contextlib.suppress(OSError):
                lines = pid_file.read_text().splitlines()
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    return True
            time.sleep(0.01)
        self.stop_server()
        return False

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop_server(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGINT)  # fast shutdown: clients are cut off
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def stop(self) -> None:
        self.stop_server()
        shutil.rmtree(self.base, ignore_errors=True)

    def version(self) -> str:
        """E.g. ``postgres (PostgreSQL) 16.4``, for reports."""
        done = subprocess.run(
            [str(self.bin_dir / "postgres"), "--version"], capture_output=True, text=True
        )
        return done.stdout.strip()

    def create_database(self, prefix: str, *, template: str | None = None) -> str:
        """``CREATE DATABASE <prefix>_<hex>``, a copy of ``template`` if given (a name
        this method returned); its name (hex only: it is spliced into SQL)."""
        if not re.fullmatch(r"[a-z]+", prefix):
            raise ValueError(f"database prefix must be lowercase letters: {prefix!r}")
        if template is not None and not re.fullmatch(r"[a-z]+_[0-9a-f]{16}", template):
            raise ValueError(f"not a database this server made: {template!r}")
        name = f"{prefix}_{uuid.uuid4().hex[:16]}"
        # FILE_COPY: with fsync off its checkpoints cost little, and it copied the
        # migrated schema in 0.13-0.16 s here, against 0.36-0.38 s for WAL_LOG (the
        # default), which writes every page of the copy to the WAL.
        copy = f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""
        self.admin(f"CREATE DATABASE {name}{copy}")
        return name

    def drop_database(self, name: str) -> None:
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

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
