"""A throwaway PostgreSQL for the benchmark, started as tests/support/postgres.py does:
initdb in a folder under /tmp (owned by the ``postgres`` user when we are root), the
server on a free loopback port, no fsync. One server per bench run, a fresh database
per scenario."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]

from simulator.broker import free_port

SERVER_USER = "postgres"  # initdb and postgres refuse to run as root


def find_pg_bin() -> Path | None:
    """The newest Debian /usr/lib/postgresql/<major>/bin, else the one on PATH."""
    majors = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    candidates = sorted(majors, key=lambda p: int(p.parent.name), reverse=True)
    if on_path := shutil.which("initdb"):
        candidates.append(Path(on_path).parent)
    return next((c for c in candidates if (c / "initdb").is_file()), None)


class BenchPostgres:
    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.base = Path(tempfile.mkdtemp(prefix="eldercall-bench-pg-", dir="/tmp"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._user = pwd.getpwnam(SERVER_USER) if os.geteuid() == 0 else None
        if self._user is not None:
            os.chown(self.base, self._user.pw_uid, self._user.pw_gid)

    def _as_server_user(self) -> None:
        if self._user is not None:
            os.setgid(self._user.pw_gid)
            os.setuid(self._user.pw_uid)

    def version(self) -> str:
        done = subprocess.run(
            [str(self.bin_dir / "postgres"), "--version"], capture_output=True, text=True
        )
        return done.stdout.strip()

    def start(self) -> None:
        done = subprocess.run(
            [
                str(self.bin_dir / "initdb"),
                *("-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"),
                *("--encoding", "UTF8", "--locale", "C"),
            ],
            cwd=self.base,
            preexec_fn=self._as_server_user,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
        self.port = free_port()
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    str(self.bin_dir / "postgres"),
                    *("-D", str(self.data), "-p", str(self.port), "-k", str(self.base)),
                    *("-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"),
                    *("-c", "max_connections=200"),
                ],
                cwd=self.base,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self._as_server_user,
                start_new_session=True,
            )
        pid_file = self.data / "postmaster.pid"
        deadline = time.time() + 30
        while time.time() < deadline:
            if self._proc.poll() is not None:
                break
            with contextlib.suppress(OSError):
                lines = pid_file.read_text().splitlines()
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    return
            time.sleep(0.02)
        raise RuntimeError(f"PostgreSQL did not start; see {self.log}")

    def new_database(self) -> str:
        """CREATE DATABASE bench_<hex>; its SQLAlchemy URL."""
        name = f"bench_{uuid.uuid4().hex[:12]}"

        async def create() -> None:
            conn = await asyncpg.connect(
                host="127.0.0.1", port=self.port, user="postgres", database="postgres"
            )
            try:
                await conn.execute(f"CREATE DATABASE {name}")
            finally:
                await conn.close()

        asyncio.run(create())
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.base, ignore_errors=True)
