"""The daemon as the end-to-end tests run it.

- ``serving(app)``: in this process, as ``eldercall run`` runs it (bootstrap.run), until
  the test is done; connected to its broker before the test goes on.
- ``eldercall run`` as a real process, for the tests that kill and restart it: its
  configuration file, starting it, its HTTP address, stopping it.

Every daemon process gets the test's broker, topic root and client id, its own SQLite file, a
free HTTP port (never a default one) and the sample data; ``extra`` adds tables."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from dispatcher.bootstrap import App, run
from simulator.broker import free_port
from tests.support.app import DATA


@asynccontextmanager
async def serving(
    app: App, *, serve_http: bool = True, stop_within: float = 15.0
) -> AsyncIterator[None]:
    """Run ``app`` until the block ends (then stop it and close it); the block starts
    once it is connected to its broker (within 10 s)."""
    stop = asyncio.Event()
    task = asyncio.create_task(run(app, stop, serve_http=serve_http))
    try:
        await asyncio.wait_for(app.mqtt.connected.wait(), 10)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, stop_within)
        await app.aclose()


def write_config(
    path: Path, *, broker_url: str, root: str, client_id: str, db: Path, extra: str = ""
) -> Path:
    """The configuration file at ``path``; its path. Escalations are polled every 0.1 s."""
    path.write_text(
        f"""
[mqtt]
url = "{broker_url}"
topic_root = "{root}"
client_id = "{client_id}"
[database]
url = "sqlite+aiosqlite:///{db}"
[http]
listen = "127.0.0.1:{free_port()}"
[data]
dir = "{DATA}"
[escalation]
poll_interval_s = 0.1
{extra}""",
        encoding="utf-8",
    )
    return path


def http_base(config: Path) -> str:
    """``http://host:port`` where the daemon of this configuration listens."""
    listen = tomllib.loads(config.read_text(encoding="utf-8"))["http"]["listen"]
    return f"http://{listen}"


async def start_daemon(config: Path, log: Path) -> asyncio.subprocess.Process:
    """Started, not yet serving: its output (JSON log lines) appended to ``log``."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from dispatcher.entrypoints.cli.main import main; raise SystemExit(main())",
        "run",
        "--config",
        str(config),
        stdout=log.open("ab"),
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def stop_daemon(daemon: asyncio.subprocess.Process, within: float = 10.0) -> int:
    """SIGTERM, then SIGKILL if it has not exited ``within`` seconds; its exit code."""
    if daemon.returncode is None:
        daemon.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(daemon.wait(), within)
    except TimeoutError:
        daemon.kill()
        return await daemon.wait()
