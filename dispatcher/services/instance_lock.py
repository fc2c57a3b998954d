"""One dispatcher per database: a lease in the database, renewed while the daemon runs.

Two dispatchers on one database (a second started by mistake, or with the same MQTT
client id on one broker) fight over the broker session and answer each other's
devices into the same calls, and nothing else would say so. So the daemon takes the
lock before it starts any part:

- a live lease of another owner: it refuses to start (:class:`LockHeldError`, naming
  the other owner);
- an expired lease (a daemon that crashed and never released it), or a live one whose
  owner was on this host and whose process is gone (a crash, restarted at once by
  systemd: no waiting out the lease while devices go unanswered): it takes it over,
  logs a warning naming the previous owner and raises a technical alert, since a
  crash is something someone must look at;
- its own lease found taken by another while running (:class:`LeaseLostError`): it
  stops, loudly, rather than fight.

Lease arithmetic is on the injected clock, so tests move time with ``FakeClock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from dispatcher.core.calls import Call
from dispatcher.services.clock import Clock
from dispatcher.services.ports import Transactions

log = structlog.get_logger(__name__)

TAKEN_OVER_ALERT = "dispatcher_taken_over"


@dataclass(frozen=True)
class Owner:
    """Who holds the lock: a process on a host, told apart by a random instance id."""

    host: str
    pid: int
    instance_id: str
    client_id: str  # its MQTT client id

    @classmethod
    def this_process(cls, client_id: str) -> Owner:
        return cls(socket.gethostname(), os.getpid(), secrets.token_hex(8), client_id)

    def __str__(self) -> str:
        return (
            f"host {self.host}, pid {self.pid}, instance {self.instance_id}, "
            f"MQTT client id {self.client_id}"
        )


@dataclass(frozen=True)
class Lease:
    owner: Owner
    acquired_at: datetime
    lease_until: datetime


def owner_is_gone(owner: Owner) -> bool:
    """Whether ``owner`` is certainly not running: it was on this host and its pid is
    ours (a container restarted: pids repeat) or no process at all. On another host
    nothing is certain, and only the lease's expiry counts."""
    if owner.host != socket.gethostname():
        return False
    if owner.pid == os.getpid():
        return True
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # a process of another user: alive
    return False


class LockHeldError(RuntimeError):
    """Another dispatcher holds a live lease on this database."""

    def __init__(self, holder: Lease) -> None:
        super().__init__(
            f"another dispatcher runs on this database ({holder.owner}; since "
            f"{holder.acquired_at.isoformat()}, lease until {holder.lease_until.isoformat()}); "
            "stop it first, or give this one a database of its own"
        )
        self.holder = holder


class LeaseLostError(RuntimeError):
    """Our lease is held by another dispatcher now: we must stop, not fight."""

    def __init__(self, holder: Lease | None) -> None:
        who = str(holder.owner) if holder else "nobody (the lock row was removed)"
        super().__init__(f"this dispatcher's lease was taken by {who}")
        self.holder = holder


class LockStore(Protocol):
    """The lock row, in one transaction."""

    async def current(self) -> Lease | None:
        """The lease as stored, locked for the rest of the transaction."""
        ...

    async def put(self, lease: Lease) -> None:
        """Store ``lease`` as the one lease (insert or replace)."""
        ...

    async def remove(self, instance_id: str) -> None:
        """Delete the lease if ``instance_id`` holds it."""
        ...

    async def raise_alert(self, device_id: str, key: str, now: datetime) -> Call | None:
        """Open a technical alert for ``device_id`` unless one of ``key`` is open."""
        ...


class InstanceLock:
    def __init__(
        self,
        tx: Transactions[LockStore],
        clock: Clock,
        owner: Owner,
        *,
        lease_s: float,
        renew_every_s: float,
        on_alert: Callable[[], None] = lambda: None,
        is_gone: Callable[[Owner], bool] = owner_is_gone,
    ) -> None:
        self._tx = tx
        self._is_gone = is_gone
        self._clock = clock
        self.owner = owner
        self._lease = timedelta(seconds=lease_s)
        self._renew_every_s = renew_every_s
        self._on_alert = on_alert  # wakes the escalator

    async def acquire(self) -> Lease | None:
        """Take the lock; returns the expired lease taken over, if any. Raises
        :class:`LockHeldError` if another owner's lease is live."""
        now = self._clock.now()
        alert: Call | None = None
        async with self._tx.begin() as store:
            found = await store.current()
            if found is not None and found.owner.instance_id != self.owner.instance_id:
                if found.lease_until > now and not self._is_gone(found.owner):
                    raise LockHeldError(found)
            else:
                found = None
            await store.put(Lease(self.owner, now, now + self._lease))
            if found is not None:
                alert = await store.raise_alert(self.owner.client_id, TAKEN_OVER_ALERT, now)
        if found is not None:
            log.warning(
                "dispatcher_lock_taken_over",
                call_id=alert.id if alert else None,
                previous_owner=str(found.owner),
                previous_lease_until=found.lease_until.isoformat(),
                owner=str(self.owner),
            )
            self._on_alert()
        else:
            log.info("dispatcher_lock_acquired", owner=str(self.owner))
        return found

    async def renew(self) -> None:
        """Push our lease forward; :class:`LeaseLostError` if another holds it now."""
        now = self._clock.now()
        async with self._tx.begin() as store:
            found = await store.current()
            if found is None or found.owner.instance_id != self.owner.instance_id:
                raise LeaseLostError(found)
            await store.put(Lease(self.owner, found.acquired_at, now + self._lease))

    async def release(self) -> None:
        """Give the lock up (a clean stop), so that the next daemon starts at once."""
        async with self._tx.begin() as store:
            await store.remove(self.owner.instance_id)
        log.info("dispatcher_lock_released", owner=str(self.owner))

    async def hold(self, stop: asyncio.Event) -> None:
        """Renew the lease until ``stop`` is set. Raises :class:`LeaseLostError` (after
        logging it as an error) when another dispatcher has taken the lock."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._renew_every_s):
                    await stop.wait()
            if stop.is_set():
                return
            try:
                await self.renew()
            except LeaseLostError as exc:
                log.error("dispatcher_lock_lost", error=str(exc), owner=str(self.owner))
                raise
