"""The live queue behind every operator's screen: one poll of the open calls for all
the screens, a new snapshot for each screen whenever something changed.

Calls change in several places (intake, the escalator, an SMS reply, another
operator), so rather than wiring a signal through each, one task reads the open calls
every ``interval_s`` while at least one screen watches, and wakes the screens when
what they show has changed. Each screen gets only the calls of its viewer's area.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Protocol

import structlog
from pydantic import BaseModel

from dispatcher.core import dispatches, scope
from dispatcher.core import queue as rules
from dispatcher.core.calls import CallKind, CallState, Priority
from dispatcher.core.directory import Directory, Staff
from dispatcher.core.directory_holder import DirectoryHolder, ReadsDirectory, hold
from dispatcher.services.clock import Clock
from dispatcher.services.read_models import CallView

log = structlog.get_logger(__name__)


class OpenCalls(Protocol):
    async def list_calls(self, state: str | None = None) -> list[CallView]: ...


class QueueRow(BaseModel):
    call_id: str
    kind: str
    priority: str
    state: str
    opened_at: datetime
    resident: str | None  # None: a device nobody is registered for
    community: str | None
    address: str | None
    escalation_step: int
    press_count: int
    taken_by: str | None  # the owner's id (首问负责)
    taken_by_name: str | None
    untaken: bool
    alarm: bool  # an emergency or fall nobody has taken
    lateness: str  # at ``QueueSnapshot.at``; screens move it on with their clocks
    unattended: bool  # untaken past the flag, at ``QueueSnapshot.at``
    # Its responders (dispatcher.core.dispatches.summary): "overdue", "on_the_way",
    # "arrived" or None; ``attention``: raised again, at the top (a responder overdue).
    responder: str | None = None
    attention: bool = False
    watchdog_paged_at: datetime | None = None  # the shift supervisor paged (first page)


class QueueSnapshot(BaseModel):
    version: int  # grows with every change seen
    at: datetime  # the server's time of the snapshot: screens correct their clocks
    amber_after_s: int = rules.AMBER_AFTER_S
    red_after_s: int = rules.RED_AFTER_S
    untaken_flag_s: int = rules.UNTAKEN_FLAG_S
    waiting: int  # calls nobody has taken
    rows: list[QueueRow]


def _fingerprint(calls: Sequence[CallView]) -> tuple[object, ...]:
    return tuple(
        (
            c.call_id,
            c.state,
            c.escalation_step,
            c.acknowledged_by,
            c.held_by,
            c.press_count,
            tuple(d.state for d in c.dispatches),
            c.watchdog_pages,
        )
        for c in calls
    )


class LiveQueue(ReadsDirectory):
    def __init__(
        self,
        calls: OpenCalls,
        directory: Directory | DirectoryHolder,
        clock: Clock,
        interval_s: float = 0.5,
    ) -> None:
        self._calls = calls
        self._directories = hold(directory)
        self._clock = clock
        self._interval_s = interval_s
        self._latest: list[CallView] = []
        self._fingerprint: tuple[object, ...] | None = None
        self._version = 0
        self._changed = asyncio.Condition()
        self._watchers = 0
        self._poller: asyncio.Task[None] | None = None
        # Bumped by close(): a watch ends when it changes. A count, not a flag, so that
        # a server started again on the same app (a restarted HTTP part) streams again.
        self._closings = 0

    async def snapshot(self, viewer: Staff) -> QueueSnapshot:
        """The queue now, read afresh (a page load, a reconnect)."""
        await self._refresh()
        return self._snapshot_for(viewer)

    async def watch(self, viewer: Staff, heartbeat_s: float = 15.0) -> AsyncIterator[QueueSnapshot]:
        """The queue now, then again at every change (or after ``heartbeat_s`` without
        one, so that a screen knows its connection is alive) until the caller stops or
        the queue is closed."""
        closings = self._closings
        self._watchers += 1
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="live-queue")
        try:
            await self._refresh()
            seen = self._version
            yield self._snapshot_for(viewer)
            while self._closings == closings:
                await self._changed_since(seen, heartbeat_s, closings)
                if self._closings != closings:
                    return
                seen = self._version
                yield self._snapshot_for(viewer)
        finally:
            self._watchers -= 1
            if self._watchers == 0 and self._poller is not None:
                self._poller.cancel()
                self._poller = None

    async def close(self) -> None:
        """End every watch open now (the server is stopping): a screen's stream then
        ends at once, and the HTTP server need not wait out its graceful timeout for
        it. A watch begun later runs as usual."""
        async with self._changed:
            self._closings += 1
            self._changed.notify_all()

    async def _changed_since(self, seen: int, timeout_s: float, closings: int) -> None:
        """Until the version is no longer ``seen``, the queue is closed since
        ``closings``, or ``timeout_s`` has passed."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(
                        lambda: self._version != seen or self._closings != closings
                    ),
                    timeout_s,
                )

    async def poke(self) -> None:
        """Read the calls now rather than at the next poll (after a change made here)."""
        await self._refresh()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self._refresh()
            except Exception:  # the database away for a moment: the screens keep the last
                log.exception("live_queue_poll_failed")

    async def _refresh(self) -> None:
        calls = await self._calls.list_calls("active")
        fingerprint = _fingerprint(calls)
        if fingerprint == self._fingerprint:
            return
        self._latest, self._fingerprint = calls, fingerprint
        async with self._changed:
            self._version += 1
            self._changed.notify_all()

    def _snapshot_for(self, viewer: Staff) -> QueueSnapshot:
        now = self._clock.now()
        d = self._directory
        visible = [c for c in self._latest if scope.can_see(d, viewer, c.community_id)]
        entries = {c.call_id: c for c in visible}
        order = rules.ordered(_entry(c) for c in visible)
        rows = []
        for entry in order:
            call = entries[entry.call_id]
            owner = d.staff.get(entry.taken_by) if entry.taken_by else None
            waited = (now - call.opened_at).total_seconds()
            rows.append(
                QueueRow(
                    call_id=call.call_id,
                    kind=call.kind,
                    priority=call.priority,
                    state=call.state,
                    opened_at=call.opened_at,
                    resident=call.resident.name if call.resident else None,
                    community=call.resident.community_name if call.resident else None,
                    address=call.resident.address if call.resident else None,
                    escalation_step=call.escalation_step,
                    press_count=call.press_count,
                    taken_by=entry.taken_by,
                    taken_by_name=owner.name if owner else entry.taken_by,
                    untaken=rules.is_untaken(entry),
                    alarm=rules.is_new_alarm(entry),
                    lateness=rules.lateness(waited).value,
                    unattended=rules.is_unattended(entry, now),
                    responder=dispatches.summary(d.state for d in call.dispatches),
                    attention=entry.attention,
                    watchdog_paged_at=call.watchdog_paged_at,
                )
            )
        return QueueSnapshot(
            version=self._version,
            at=now,
            waiting=sum(1 for r in rows if r.untaken),
            rows=rows,
        )


def _entry(call: CallView) -> rules.QueueEntry:
    return rules.QueueEntry(
        call_id=call.call_id,
        kind=CallKind(call.kind),
        priority=Priority(call.priority),
        state=CallState(call.state),
        opened_at=call.opened_at,
        taken_by=call.held_by or call.acknowledged_by,
        attention=dispatches.needs_attention([d.state for d in call.dispatches]),
    )
