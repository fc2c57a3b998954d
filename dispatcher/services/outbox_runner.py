"""The daemon's outbox loop: keeps up to ``max_in_flight`` numbers' messages going at
once, claiming more as soon as a slot frees, so that a provider request that hangs
holds only its own slot (and only until its timeout) while every other message leaves.

Each slot is one lane of :class:`~dispatcher.services.outbox.SmsOutbox`: one number's
messages on one channel, sent one after the other (an emergency's is a lane of its
own). The loop claims no more entries than it has free slots, so nothing claimed waits
for a slot (a claim that waited could outlive the stale-claim timeout and be sent
twice).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from dispatcher.services.outbox import Lane, SmsOutbox
from dispatcher.services.wakeup import Wakeup

log = structlog.get_logger(__name__)

# How long a stop waits for the requests in flight to be answered before it cancels
# them (a cancelled one is handed back, as a possible duplicate, at the next start).
STOP_GRACE_S = 5.0


class OutboxRunner:
    def __init__(self, outbox: SmsOutbox, *, stop_grace_s: float = STOP_GRACE_S) -> None:
        self._outbox = outbox
        self._slots = outbox.max_in_flight
        self._stop_grace_s = stop_grace_s
        self._lanes: dict[asyncio.Task[int], Lane] = {}

    @property
    def in_flight(self) -> int:
        """How many lanes are being sent now."""
        return len(self._lanes)

    async def run(
        self,
        wake: Wakeup,
        interval: float,
        stop: asyncio.Event,
        cycled: Callable[[], None] = lambda: None,
    ) -> None:
        """Until ``stop``: hand back a crashed instance's claims, then claim and send
        whatever is due, woken by ``wake``, a lane finishing, or every ``interval`` s.
        ``cycled`` is called after each claim round (``/health/engine``: alive)."""
        await self._outbox.recover_claims()
        try:
            while not stop.is_set():
                wake.event.clear()
                free = self._slots - len(self._lanes)
                if free > 0:
                    lanes = await self._outbox.claim(free)
                    cycled()
                    for lane in lanes:
                        self._start(lane, wake)
                    if lanes:
                        continue  # there may be more right behind, while slots are free
                else:
                    cycled()  # every slot busy is a loop at work, not a stuck one
                await self._wait(wake, interval, stop)
        finally:
            await self._wind_down()

    def _start(self, lane: Lane, wake: Wakeup) -> None:
        task = asyncio.create_task(self._outbox.send_lane(lane))
        self._lanes[task] = lane

        def done(finished: asyncio.Task[int]) -> None:
            self._lanes.pop(finished, None)
            wake()  # a slot is free: claim what waits for it

        task.add_done_callback(done)

    async def _wait(self, wake: Wakeup, interval: float, stop: asyncio.Event) -> None:
        waits = {asyncio.ensure_future(wake.event.wait()), asyncio.ensure_future(stop.wait())}
        try:
            await asyncio.wait(waits, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()

    async def _wind_down(self) -> None:
        if not self._lanes:
            return
        lanes = dict(self._lanes)
        log.info("outbox_stopping", in_flight=len(lanes))
        _, pending = await asyncio.wait(lanes, timeout=self._stop_grace_s)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
            try:
                # Pending again now, not only at the next start: a part restarted within
                # this process keeps its instance id, so recovery would not see them.
                await self._outbox.hand_back(lanes[task])
            except Exception:
                log.exception("outbox_hand_back_failed", rows=[j.row_ids for j in lanes[task]])
