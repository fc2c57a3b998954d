"""Fires due escalation steps: each step, its SMS and the call's new escalation
state are written in ONE transaction (as GoAlert's engine does), so a crash or a
restart between steps neither loses nor repeats one. Due times live in the
database and are polled, so nothing is kept only in memory."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dispatcher import db, notify, routing, store
from dispatcher.calls import Call, CallState, TimelineEntry, take_due_step
from dispatcher.clock import Clock
from dispatcher.directory import Directory

log = structlog.get_logger(__name__)


class Escalator:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        directory: Directory,
        clock: Clock,
        on_change: Callable[[], None] = lambda: None,
        batch: int = 100,
    ) -> None:
        self._sessions = sessions
        self._directory = directory
        self._clock = clock
        self._on_change = on_change  # wakes the SMS outbox
        self._batch = batch

    async def run_due(self) -> int:
        """Fire every step due now; returns how many fired."""
        now = self._clock.now()
        async with self._sessions.begin() as session:
            due = list(
                await session.scalars(
                    select(db.calls.c.id)
                    .where(
                        db.calls.c.state == CallState.OPEN.value,
                        db.calls.c.next_escalation_at <= now,
                    )
                    .order_by(db.calls.c.next_escalation_at)
                    .limit(self._batch)
                )
            )
        fired = 0
        for call_id in due:
            if await self._fire(call_id, now):
                fired += 1
        if fired:
            self._on_change()
        return fired

    async def _fire(self, call_id: str, now: datetime) -> bool:
        async with self._sessions.begin() as session:
            call = await store.lock_call(session, call_id)
            if call is None:
                return False
            # Re-checked under the lock: an acknowledgement may have just committed.
            index = take_due_step(call, now)
            if index is None:
                return False
            queued = await self._notify(session, call, index, now)
        log.info("escalation_step", call_id=call_id, step=index + 1, notified=queued)
        return True

    async def _notify(self, session: AsyncSession, call: Call, index: int, now: datetime) -> int:
        step = call.policy.step(index)
        resident = self._directory.residents.get(call.resident_id or "")
        people = routing.recipients(
            self._directory,
            step.targets,
            community_id=call.community_id,
            resident=resident,
            at=now,
        )
        targets = ", ".join(step.targets)
        if not people:
            # Nobody to tell at this step: say so and let the next step come.
            session.add(
                TimelineEntry(
                    now,
                    "system",
                    "step_skipped",
                    "system",
                    f"step {index + 1} ({targets}): nobody on duty",
                    call.id,
                )
            )
            return 0
        queued = await notify.queue_step(
            session, call, resident, self._directory, people, index, now
        )
        names = "; ".join(f"{p.name} ({p.why})" for p in people)
        session.add(
            TimelineEntry(
                now, "system", "escalated", "sms", f"step {index + 1} ({targets}): {names}", call.id
            )
        )
        return queued
