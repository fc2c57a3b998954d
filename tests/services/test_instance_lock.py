"""One dispatcher per database: the lease, on a fake clock and a real SQLite database.

A second dispatcher refuses to start beside a live one; a crashed one's expired lease
is taken over (with a warning and a technical alert); a dispatcher whose lease was
taken stops instead of fighting."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from dispatcher.adapters.db.lock_store import SqlLockStore
from dispatcher.adapters.db.transactions import Transactions
from dispatcher.bootstrap import App, run
from dispatcher.services.instance_lock import (
    InstanceLock,
    LeaseLostError,
    LockHeldError,
    Owner,
    owner_is_gone,
)
from dispatcher.testing import FakeClock
from tests.support.app import built_app, settings_for

LEASE_S = 30.0


@pytest.fixture
async def lite_app(tmp_path: Path, clock: FakeClock) -> AsyncIterator[App]:
    built = await built_app(settings_for(tmp_path), clock)
    yield built
    await built.aclose()


def other_dispatcher(
    app: App, clock: FakeClock, host: str = "other-host", pid: int = 4242
) -> InstanceLock:
    """A second daemon's lock on the same database (another owner). Both run in this
    test's process, so each takes the other for alive (as two processes would)."""
    owner = Owner(host, pid, "feedfacecafebeef", "eldercall-dispatcher")
    tx = Transactions(app.sessions, lambda s: SqlLockStore(s, app.intake))
    return InstanceLock(
        tx, clock, owner, lease_s=LEASE_S, renew_every_s=10.0, is_gone=lambda _: False
    )


async def technical_alerts(app: App) -> list[tuple[str, str]]:
    calls = await app.operations.list_calls("all")
    return [(c.device_id, c.detail) for c in calls if c.kind == "technical"]


async def test_a_live_lease_keeps_a_second_dispatcher_out_naming_the_owner(
    lite_app: App, clock: FakeClock
) -> None:
    await lite_app.lock.acquire()
    clock.advance(LEASE_S - 1)
    with pytest.raises(LockHeldError) as refused:
        await other_dispatcher(lite_app, clock).acquire()
    me = lite_app.lock.owner
    assert me.host in str(refused.value) and f"pid {me.pid}" in str(refused.value)
    assert me.instance_id in str(refused.value)
    # Refusing changed nothing: the first one still holds it and renews.
    await lite_app.lock.renew()
    assert await technical_alerts(lite_app) == []


async def test_renewal_keeps_the_lease_live_beyond_its_first_term(
    lite_app: App, clock: FakeClock
) -> None:
    await lite_app.lock.acquire()
    for _ in range(5):
        clock.advance(LEASE_S / 2)
        await lite_app.lock.renew()
    with pytest.raises(LockHeldError):
        await other_dispatcher(lite_app, clock).acquire()


async def test_an_expired_lease_is_taken_over_loudly_with_an_alert(
    lite_app: App, clock: FakeClock
) -> None:
    crashed = other_dispatcher(lite_app, clock, host="crashed-host")
    await crashed.acquire()
    clock.advance(LEASE_S + 1)  # never renewed: the daemon crashed
    with capture_logs() as logs:
        previous = await lite_app.lock.acquire()
    assert previous is not None and previous.owner.host == "crashed-host"
    [warning] = [e for e in logs if e["event"] == "dispatcher_lock_taken_over"]
    assert warning["log_level"] == "warning" and "crashed-host" in warning["previous_owner"]
    [(device, detail)] = await technical_alerts(lite_app)
    assert device == lite_app.settings.mqtt.client_id and "crashed" in detail
    assert warning["call_id"] is not None
    # The crashed daemon, back from a freeze, finds its lease gone.
    with pytest.raises(LeaseLostError):
        await crashed.renew()


async def test_a_released_lock_is_taken_at_once_without_an_alert(
    lite_app: App, clock: FakeClock
) -> None:
    first = other_dispatcher(lite_app, clock)
    await first.acquire()
    await first.release()
    assert await lite_app.lock.acquire() is None
    assert await technical_alerts(lite_app) == []


async def test_a_daemon_whose_lease_was_taken_stops_instead_of_fighting(
    tmp_path: Path, clock: FakeClock
) -> None:
    settings = settings_for(tmp_path, instance={"lease_s": 0.4, "renew_every_s": 0.05})
    app = await built_app(settings, clock)
    try:
        stop = asyncio.Event()
        with capture_logs() as logs:
            running = asyncio.create_task(run(app, stop, serve_http=False))
            while not running.done():
                await asyncio.sleep(0.02)
                if (await other_acquires(app, clock)) is not None:
                    break
            with pytest.raises(LeaseLostError):
                await asyncio.wait_for(running, 10)
        assert stop.is_set()  # every part, MQTT intake too, was told to stop
        assert any(e["event"] == "dispatcher_lock_lost" for e in logs)
    finally:
        await app.aclose()


async def other_acquires(app: App, clock: FakeClock) -> InstanceLock | None:
    """The lease taken from under the running daemon (as if it had been frozen past it)."""
    clock.advance(1.0)
    other = other_dispatcher(app, clock)
    try:
        await other.acquire()
    except LockHeldError:
        return None
    return other


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process of this host that has exited."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


async def test_a_live_lease_of_a_process_gone_from_this_host_is_taken_at_once(
    lite_app: App, clock: FakeClock, dead_pid: int
) -> None:
    crashed = other_dispatcher(lite_app, clock, host=socket.gethostname(), pid=dead_pid)
    await crashed.acquire()
    clock.advance(1)  # well within the lease: restarted at once after a crash
    previous = await lite_app.lock.acquire()
    assert previous is not None and previous.owner.pid == dead_pid
    assert len(await technical_alerts(lite_app)) == 1
    # A live process here, or any process elsewhere, is not taken for gone.
    assert not owner_is_gone(Owner(socket.gethostname(), os.getppid(), "x", "y"))
    assert not owner_is_gone(Owner("another-host", dead_pid, "x", "y"))
