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

from dispatcher.core.notifications.item import OutboxItem
from dispatcher.services.outbox import Lane, SmsOutbox, claimed_ahead_lanes
from dispatcher.services.wakeup import Wakeup

log = structlog.get_logger(__name__)

# How long a stop waits for the requests in flight to be answered before it cancels
# them (a cancelled one is handed back, as a possible duplicate, at the next start).
STOP_GRACE_S = 5.0


class Handoff:
    """The running loop's free slots, lent to the escalator so that it can claim an
    emergency's messages in the step's own transaction and start them the moment it
    commits (:class:`~dispatcher.services.outbox.ClaimAhead`). A slot is reserved
    before that transaction and counted as busy until the lanes start or the
    reservation is given back, so that nothing claimed ever waits for a slot. Without
    a running loop (tests that drive the outbox themselves) nothing is lent."""

    def __init__(self, outbox: SmsOutbox) -> None:
        self._outbox = outbox
        self._runner: OutboxRunner | None = None
        self._wake: Wakeup | None = None
        self.reserved = 0

    @property
    def instance_id(self) -> str:
        return self._outbox.instance_id

    def attach(self, runner: OutboxRunner, wake: Wakeup) -> None:
        self._runner, self._wake = runner, wake

    def detach(self, runner: OutboxRunner) -> None:
        if self._runner is runner:
            self._runner, self._wake = None, None

    def reserve_free(self) -> int:
        """Reserve every free slot; returns how many (0 without a loop)."""
        runner = self._runner
        got = 0 if runner is None else max(0, runner.free_slots)
        self.reserved += got
        return got

    def give_back(self, reserved: int) -> None:
        self.reserved -= reserved

    async def start(self, items: list[OutboxItem], reserved: int) -> None:
        """Send the entries claimed ahead, one lane each, in the reserved slots (never
        more lanes than reserved); without a loop any more (stopping), hand them back."""
        self.give_back(reserved)
        lanes = claimed_ahead_lanes(items)
        runner, wake = self._runner, self._wake
        for lane in lanes:
            if runner is not None and wake is not None:
                runner.start(lane, wake)
            else:
                await self._outbox.hand_back(lane)


class OutboxRunner:
    def __init__(
        self,
        outbox: SmsOutbox,
        *,
        stop_grace_s: float = STOP_GRACE_S,
        handoff: Handoff | None = None,
    ) -> None:
        self._outbox = outbox
        self._slots = outbox.max_in_flight
        self._stop_grace_s = stop_grace_s
        self._lanes: dict[asyncio.Task[int], Lane] = {}
        self._handoff = handoff

    @property
    def in_flight(self) -> int:
        """How many lanes are being sent now."""
        return len(self._lanes)

    @property
    def free_slots(self) -> int:
        """Slots neither sending nor reserved by the escalator (:class:`Handoff`)."""
        lent = self._handoff.reserved if self._handoff is not None else 0
        return self._slots - len(self._lanes) - lent

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
        if self._handoff is not None:
            self._handoff.attach(self, wake)
        try:
            while not stop.is_set():
                wake.event.clear()
                free = self.free_slots
                if free > 0:
                    lanes = await self._outbox.claim(free, at_once=True)
                    cycled()
                    for lane in lanes:
                        self.start(lane, wake)
                    if lanes:
                        continue  # there may be more right behind, while slots are free
                else:
                    cycled()  # every slot busy is a loop at work, not a stuck one
                await self._wait(wake, interval, stop)
        finally:
            if self._handoff is not None:
                self._handoff.detach(self)
            await self._wind_down()

    def start(self, lane: Lane, wake: Wakeup) -> None:
        """Send ``lane`` in a slot of its own (the caller made sure one is free)."""
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
