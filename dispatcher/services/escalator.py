"""Fires due escalation steps: each step, its notifications and the call's new
escalation state are written in ONE transaction (as GoAlert's engine does), so a
crash or a restart between steps neither loses nor repeats one. Due times live in
the database and are polled, so nothing is kept only in memory.

A step whose targets name nobody is recorded (``step_skipped``) and the next step
falls due at once: it fires in the same poll, in its own transaction. Only steps
before the policy's last can be skipped; the last step (its repeats, and the
reminders once the policy is exhausted) falls back to the command centre when it
names nobody, so an empty policy cannot spin and a call never goes silent.

The acknowledgement timeout (``dispatcher.core.escalation.AckTimeout``) runs the same way
on acknowledged calls, from its own due time ``calls.next_ack_escalation_at``.

A poll late by more than a step's gap to the next (the daemon stopped, the machine
slept) fires ONE catch-up step for all it missed, noted on the timeline
(``catch_up``), never each missed repeat; and nobody already queued for a step of
the call is queued for it again (``notify.not_yet_queued``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Protocol

import structlog

from dispatcher.core import calls as lifecycle
from dispatcher.core import routing
from dispatcher.core.calls import Call, TimelineEntry
from dispatcher.core.directory import Directory
from dispatcher.core.escalation import Step
from dispatcher.services import notify
from dispatcher.services.clock import Clock
from dispatcher.services.metrics import NULL_METRICS, Metrics, seconds_between
from dispatcher.services.notify import NotifyStore, QueuedSteps
from dispatcher.services.ports import Transactions

log = structlog.get_logger(__name__)


class Fired(Enum):
    NOTIFIED = "notified"
    SKIPPED = "skipped"  # nobody to tell: the next step is due at once
    NOBODY = "nobody"  # nobody, not even the command centre: an alarm in the log


class EscalationStore(NotifyStore, QueuedSteps, Protocol):
    """What the escalator reads and writes, bound to one transaction: the calls due,
    the locked call, its timeline, and (as :class:`NotifyStore`, :class:`QueuedSteps`)
    its step's notifications, reply numbers and who was already queued for it."""

    async def due_escalations(self, now: datetime, limit: int) -> list[str]:
        """Ids of open calls whose next escalation step is due, the most overdue first."""
        ...

    async def due_ack_escalations(self, now: datetime, limit: int) -> list[str]:
        """Ids of acknowledged calls whose next acknowledgement-timeout step is due,
        the most overdue first."""
        ...

    async def lock_call(self, call_id: str) -> Call | None:
        """The call, locked for update until the transaction ends."""
        ...

    def add_timeline(self, entry: TimelineEntry) -> None: ...


class Escalator:
    def __init__(
        self,
        tx: Transactions[EscalationStore],
        directory: Directory,
        clock: Clock,
        on_change: Callable[[], None] = lambda: None,
        batch: int = 100,
        metrics: Metrics = NULL_METRICS,
    ) -> None:
        self._tx = tx
        self._metrics = metrics
        self._directory = directory
        self._clock = clock
        self._on_change = on_change  # wakes the SMS outbox
        self._batch = batch

    async def run_due(self) -> int:
        """Fire every step due now (escalation and acknowledgement timeout); returns
        how many fired, skipped steps included."""
        now = self._clock.now()
        async with self._tx.begin() as store:
            due = await store.due_escalations(now, self._batch)
            ack_due = await store.due_ack_escalations(now, self._batch)
        fired = 0
        for call_id in due:
            fired += await self._fire(call_id, now)
        for call_id in ack_due:
            fired += await self._fire_ack(call_id, now)
        if fired:
            self._on_change()
        return fired

    async def _fire(self, call_id: str, now: datetime) -> int:
        """The due step of one call; after a skipped step, the next one too. Each step
        is its own transaction; skips only move forward through the policy's steps
        before its last, so this loop ends."""
        fired = 0
        while True:
            async with self._tx.begin() as store:
                call = await store.lock_call(call_id)
                if call is None:
                    return fired
                due_at = call.next_escalation_at  # for the lateness metric
                # Re-checked under the lock: an acknowledgement may have just committed.
                due = lifecycle.take_due_step(call, now)
                if due is None:
                    return fired
                index = due.index
                if due.missed:
                    self._caught_up(store, call, due, now)
                if call.policy.is_exhausted(index) and not call.policy.is_exhausted(due.first - 1):
                    store.add_timeline(
                        TimelineEntry(
                            now,
                            "system",
                            "policy_exhausted",
                            "system",
                            f"policy {call.policy.name}: steps and repeats used up; "
                            f"reminding the command centre every {call.policy.repeat_every_s} s",
                            call.id,
                        )
                    )
                result = await self._notify(
                    store,
                    call,
                    call.policy.catch_up_step(due.first, index),
                    f"step {index + 1}",
                    can_skip=index < call.policy.last,
                    now=now,
                    step_index=index,
                    holder=None,
                    action="escalated",
                    timer=notify.ESCALATION,
                    since=call.escalation_started_at,
                )
                if result is Fired.SKIPPED:
                    lifecycle.skip_at_once(call, now)
            fired += 1
            self._metrics.step_fired(seconds_between(due_at, self._clock.now()))
            log.info("escalation_step", call_id=call_id, step=index + 1, result=result.value)
            if result is not Fired.SKIPPED:
                return fired

    async def _fire_ack(self, call_id: str, now: datetime) -> int:
        fired = 0
        while True:
            async with self._tx.begin() as store:
                call = await store.lock_call(call_id)
                if call is None:
                    return fired
                due_at = call.next_ack_escalation_at  # for the lateness metric
                due = lifecycle.take_due_ack_step(call, now)
                timeout = call.policy.ack_timeout
                deadline = call.ack_timeout_at
                if due is None or timeout is None or deadline is None:
                    return fired
                index = due.index
                if due.missed:
                    self._caught_up(store, call, due, now, "acknowledgement timeout step")
                if due.first == 0:
                    store.add_timeline(
                        TimelineEntry(
                            now,
                            "system",
                            "ack_timeout",
                            "system",
                            f"acknowledged by {call.held_by} and not resolved within "
                            f"{timeout.after_s} s",
                            call.id,
                        )
                    )
                result = await self._notify(
                    store,
                    call,
                    timeout.catch_up_step(due.first, index),
                    f"acknowledgement timeout step {index + 1}",
                    can_skip=index < len(timeout.steps) - 1,
                    now=now,
                    step_index=index,
                    holder=call.held_by,
                    action="ack_escalated",
                    timer=notify.ACK_TIMEOUT,
                    since=deadline,
                )
                if result is Fired.SKIPPED:
                    lifecycle.skip_ack_at_once(call, now)
            fired += 1
            self._metrics.step_fired(seconds_between(due_at, self._clock.now()), "ack_timeout")
            log.info("ack_timeout_step", call_id=call_id, step=index + 1, result=result.value)
            if result is not Fired.SKIPPED:
                return fired

    def _caught_up(
        self,
        store: EscalationStore,
        call: Call,
        due: lifecycle.DueStep,
        now: datetime,
        label: str = "step",
    ) -> None:
        """Steps missed while escalation was held up fire as one (see ``DueStep``):
        said loudly in the log and on the call's timeline."""
        log.warning(
            "escalation_caught_up",
            call_id=call.id,
            label=label,
            first_step=due.first + 1,
            step=due.index + 1,
            missed=due.missed,
            late_s=round(due.late.total_seconds(), 3),
        )
        store.add_timeline(
            TimelineEntry(now, "system", "catch_up", "system", due.catch_up_note(label), call.id)
        )

    async def _notify(
        self,
        store: EscalationStore,
        call: Call,
        step: Step,
        label: str,
        *,
        can_skip: bool,
        now: datetime,
        step_index: int,
        holder: str | None,
        action: str,
        timer: str,
        since: datetime,
    ) -> Fired:
        resident = self._directory.residents.get(call.resident_id or "")
        people = routing.recipients(
            self._directory,
            step.targets,
            community_id=call.community_id,
            resident=resident,
            at=now,
            holder=holder,
        )
        targets = ", ".join(step.targets)
        if not people:
            if can_skip:
                store.add_timeline(
                    TimelineEntry(
                        now,
                        "system",
                        "step_skipped",
                        "system",
                        f"{label} ({targets}): nobody to notify; the next step at once",
                        call.id,
                    )
                )
                return Fired.SKIPPED
            # The last step names nobody: never silence, the command centre instead.
            people = routing.command_centre(self._directory, now)
            store.add_timeline(
                TimelineEntry(
                    now,
                    "system",
                    "step_fallback",
                    "system",
                    f"{label} ({targets}): nobody to notify; the command centre instead",
                    call.id,
                )
            )
            if not people:
                log.error("nobody_to_notify", call_id=call.id, step=label)
                store.add_timeline(
                    TimelineEntry(
                        now,
                        "system",
                        "nobody_to_notify",
                        "system",
                        f"{label}: not even the command centre has anyone",
                        call.id,
                    )
                )
                return Fired.NOBODY
        fresh, told = await notify.not_yet_queued(store, call, people, step_index, timer, since)
        await notify.queue_step(
            store,
            call,
            resident,
            self._directory,
            fresh,
            step_index,
            now,
            step.channels,
            timer=timer,
        )
        names = "; ".join(f"{p.name} ({p.why})" for p in fresh) or "nobody new"
        if told:
            log.info("already_notified", call_id=call.id, step=label, recipients=len(told))
            names += "; already notified of this step: " + "; ".join(p.name for p in told)
        store.add_timeline(
            TimelineEntry(
                now,
                "system",
                action,
                ",".join(step.channels),
                f"{label} ({targets}): {names}",
                call.id,
            )
        )
        return Fired.NOTIFIED
