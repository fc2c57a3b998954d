"""Fires due escalation steps: each step, its notifications and the call's new
escalation state are written in ONE transaction (as GoAlert's engine does), so a
crash or a restart between steps neither loses nor repeats one. Due times live in
the database and are polled, so nothing is kept only in memory.

A poll fires up to ``batch`` calls' due steps in one transaction (a commit per call
was the ceiling of a district's worst hour), or as many as fit in ``budget_s`` (on
SQLite the transaction holds the one write lock, which the intake of presses waits
for; the rest fire in the next poll, at once). A batch's calls are first fired without
savepoints (their updates, outbox rows and timeline entries written together at the
end: at 10,000 open calls the statements per call were the escalator's ceiling); if
any call fails, nothing of that attempt commits and the batch is fired again, each
call in a SAVEPOINT of its own: a call that fails rolls back alone (it stays due and
is retried after ``RETRY_FAILED_AFTER``), logged with its id, and the others commit.
When more are due than one batch, alarms (critical priority: emergencies, falls) go
first, then the most overdue.

A step whose targets name nobody is recorded (``step_skipped``) and the next step
falls due at once: it fires in the same poll, in the call's savepoint. Only steps
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

import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Protocol

import structlog

from dispatcher.core import calls as lifecycle
from dispatcher.core import routing
from dispatcher.core.calls import Call, TimelineEntry
from dispatcher.core.directory import Directory
from dispatcher.core.directory_holder import DirectoryHolder, ReadsDirectory, hold
from dispatcher.core.escalation import Step
from dispatcher.core.notifications.item import OutboxItem
from dispatcher.services import notify
from dispatcher.services.clock import Clock
from dispatcher.services.metrics import NULL_METRICS, Metrics, seconds_between
from dispatcher.services.notify import NotifyStore, QueuedSteps
from dispatcher.services.outbox import ClaimAhead
from dispatcher.services.outbox_runner import Handoff
from dispatcher.services.ports import Transactions

log = structlog.get_logger(__name__)


class Fired(Enum):
    NOTIFIED = "notified"
    SKIPPED = "skipped"  # nobody to tell: the next step is due at once
    NOBODY = "nobody"  # nobody, not even the command centre: an alarm in the log


# A call whose step failed is left out of the polls for this long (it stays due in
# the database), so that a call that fails every time cannot hold the head of the
# queue and keep the calls behind it waiting.
RETRY_FAILED_AFTER = timedelta(seconds=5)


class EscalationStore(NotifyStore, QueuedSteps, Protocol):
    """What the escalator reads and writes, bound to one transaction: the calls due,
    the locked calls, their timelines, and (as :class:`NotifyStore`,
    :class:`QueuedSteps`) their steps' notifications, reply numbers and who was already
    queued for them."""

    async def due_calls(self, now: datetime, limit: int) -> tuple[list[str], list[str]]:
        """Ids of up to ``limit`` open calls whose next escalation step is due, and of up
        to ``limit`` acknowledged calls whose next acknowledgement-timeout step is due;
        each critical priority first, then the most overdue first."""
        ...

    async def lock_calls(self, call_ids: Sequence[str]) -> list[Call]:
        """The calls that exist among ``call_ids``, locked for update until the
        transaction ends."""
        ...

    def adopt(self, calls: Sequence[Call]) -> None:
        """Calls that this transaction opened (the intake's), taken in as
        :meth:`lock_calls` returns them: nothing queued for them yet."""
        ...

    def savepoint(self, call: Call) -> AbstractAsyncContextManager[None]:
        """A savepoint for one call's steps: an exception inside rolls back what they
        wrote and the call's own changes (so the call stays as it was, due), and is
        raised again."""
        ...

    def add_timeline(self, entry: TimelineEntry) -> None: ...

    def unflushed(self) -> AbstractAsyncContextManager[None]:
        """Within it, the changes made to the calls are not written before the next
        query (they are, together, at the commit or at the next savepoint)."""
        ...

    def deferred_writes(
        self, claim_ahead: ClaimAhead | None = None
    ) -> AbstractAsyncContextManager[None]:
        """Within it, the outbox rows and timeline entries of every call are kept and
        written together (a statement each) when it ends without an exception, instead
        of a statement per call; a call whose savepoint rolls back drops its own. With
        ``claim_ahead``, the entries it allows are written claimed (see
        :class:`ClaimAhead`), and :meth:`claimed_ahead` names them afterwards."""
        ...

    def claimed_ahead(self) -> list[OutboxItem]:
        """The entries the last :meth:`deferred_writes` wrote claimed."""
        ...


@dataclass(frozen=True)
class _Fired:
    """One step fired in a batch, logged and measured once the batch has committed."""

    call_id: str
    timer: str
    step: int
    result: Fired
    due_at: datetime | None


@dataclass
class FirstSteps:
    """The first steps :meth:`Escalator.fire_opened` fired in another's transaction:
    told (logged, measured, their SMS started) once that transaction has committed, or
    their reserved outbox slots given back if it did not."""

    escalator: Escalator
    fired: list[_Fired]
    claimed: list[OutboxItem]
    reserved: int

    async def committed(self) -> None:
        await self.escalator._committed(self.fired, self.claimed, self.reserved)

    def abandoned(self) -> None:
        if self.escalator._handoff is not None:
            self.escalator._handoff.give_back(self.reserved)
        self.reserved = 0


class Escalator(ReadsDirectory):
    def __init__(
        self,
        tx: Transactions[EscalationStore],
        directory: Directory | DirectoryHolder,
        clock: Clock,
        on_change: Callable[[], None] = lambda: None,
        batch: int = 200,
        metrics: Metrics = NULL_METRICS,
        budget_s: float | None = 0.25,
        handoff: Handoff | None = None,
    ) -> None:
        self._tx = tx
        self._metrics = metrics
        self._directories = hold(directory)
        self._clock = clock
        self._on_change = on_change  # wakes the SMS outbox
        self._batch = batch  # calls per poll, and per transaction
        self._budget_s = budget_s  # a poll's transaction stops taking calls after this
        self._failed: dict[str, datetime] = {}  # call id → not polled again before
        # The outbox loop's free slots: an emergency's first messages are claimed in
        # the step's transaction and sent at its commit (see ClaimAhead).
        self._handoff = handoff
        # Other due times run by this cycle (responders overdue: services.dispatches).
        self._also: list[Callable[[], Awaitable[int]]] = []

    def also_poll(self, work: Callable[[], Awaitable[int]]) -> None:
        """Run ``work`` (due times of its own, polled from the database) in every
        :meth:`run_due`; what it returns counts as fired."""
        self._also.append(work)

    async def run_due(self) -> int:
        """Fire the steps due now (escalation and acknowledgement timeout) of up to
        ``batch`` calls, in one transaction; returns how many fired, skipped steps
        included (the daemon's poll runs again at once while this is not 0), and what
        the :meth:`also_poll` work did."""
        also = 0
        for work in self._also:
            try:
                also += await work()
            except Exception:  # its own fault: the escalation steps still fire
                log.exception("escalator_poll_failed", work=getattr(work, "__qualname__", "?"))
        return also + await self._run_steps()

    async def _run_steps(self) -> int:
        now = self._clock.now()
        self._failed = {c: t for c, t in self._failed.items() if t > now}
        fired: list[_Fired] = []
        # Which calls are due is read first, without the write lock: most polls find
        # none, and on SQLite a writing transaction, even an empty one, queues behind
        # every other writer (the next emergency's intake behind it). Each call is
        # checked again under its lock below (an acknowledgement may commit between).
        async with self._tx.read() as reader:
            # Asked for more than a batch, so that calls held back after a failure
            # cannot fill it.
            wanted = self._batch + len(self._failed)
            escalating, acknowledged = await reader.due_calls(now, wanted)
        due = self._batch_of(escalating, self._batch)
        ack_due = self._batch_of(acknowledged, self._batch - len(due))
        if not due and not ack_due:
            return 0
        handoff = self._handoff
        # Every free slot, for as long as the transaction lasts: how many messages its
        # steps write is known only at its end (what it does not claim goes back).
        reserved = handoff.reserve_free() if handoff is not None else 0
        claim = ClaimAhead(reserved, handoff.instance_id, now) if handoff and reserved else None
        try:
            try:
                claimed = await self._fire_batch(now, due, ack_due, fired, claim, isolated=False)
            except Exception:
                # Some call failed, and with it the batch (nothing of it committed):
                # again, each call in a savepoint of its own, so that it fails alone.
                log.warning("escalation_batch_failed", calls=len(due) + len(ack_due))
                fired.clear()
                claimed = await self._fire_batch(now, due, ack_due, fired, claim, isolated=True)
        except BaseException:
            if handoff is not None:
                handoff.give_back(reserved)
            raise
        await self._committed(fired, claimed, reserved)
        return len(fired)

    async def fire_opened(
        self, store: EscalationStore, calls: Sequence[Call], now: datetime
    ) -> FirstSteps:
        """The steps due now of ``calls``, which the caller opened in the transaction
        ``store`` is bound to (the intake's, for an alarm: its first SMS then leaves at
        that commit, without a poll and a transaction of its own). The caller runs this
        in a savepoint, and calls :meth:`FirstSteps.committed` after its commit or
        :meth:`FirstSteps.abandoned` when it does not commit; if this raises, the calls
        are still due and the next poll fires them."""
        handoff = self._handoff
        reserved = handoff.reserve_free() if handoff is not None else 0
        claim = ClaimAhead(reserved, handoff.instance_id, now) if handoff and reserved else None
        fired: list[_Fired] = []
        try:
            store.adopt(calls)
            async with store.deferred_writes(claim), store.unflushed():
                routes = routing.Routes(self._directory, now)
                for call in calls:
                    fired.extend(await self._fire(store, call, now, routes))
        except BaseException:
            if handoff is not None:
                handoff.give_back(reserved)
            raise
        return FirstSteps(self, fired, store.claimed_ahead(), reserved)

    async def _committed(
        self, fired: list[_Fired], claimed: list[OutboxItem], reserved: int
    ) -> None:
        """After the commit of the steps ``fired``: their claimed SMS leave, they count."""
        handoff = self._handoff
        if handoff is not None:
            await handoff.start(claimed, reserved)  # committed: they leave now
        for step in fired:  # committed: now they count
            late = seconds_between(step.due_at, self._clock.now())
            if step.timer == notify.ESCALATION:
                self._metrics.step_fired(late)
                event = "escalation_step"
            else:
                self._metrics.step_fired(late, "ack_timeout")
                event = "ack_timeout_step"
            log.info(event, call_id=step.call_id, step=step.step, result=step.result.value)
        if fired:
            self._on_change()

    async def _fire_batch(
        self,
        now: datetime,
        due: list[str],
        ack_due: list[str],
        fired: list[_Fired],
        claim: ClaimAhead | None,
        *,
        isolated: bool,
    ) -> list[OutboxItem]:
        """The batch's transaction; returns the entries it claimed ahead. ``isolated``:
        each call in a savepoint of its own (a call that fails rolls back alone);
        otherwise none (three statements a call fewer, the calls' updates written
        together at the commit) and a call that fails raises, failing the batch."""
        async with self._tx.begin() as store, store.deferred_writes(claim):
            calls = {c.id: c for c in await store.lock_calls([*due, *ack_due])}
            routes = routing.Routes(self._directory, now)  # the rota read once per batch
            # Elapsed time, not the clock (a fake clock in tests, a wall clock that may
            # step): only how long this transaction holds the database.
            started = time.monotonic()
            work = [(c, self._fire) for c in due] + [(c, self._fire_ack) for c in ack_due]
            for n, (call_id, fire) in enumerate(work):
                spent = time.monotonic() - started
                if n and self._budget_s is not None and spent > self._budget_s:
                    break  # the rest are still due: the next poll, at once
                call = calls.get(call_id)
                if call is None:
                    continue
                if isolated:
                    await self._one_call(store, call, now, routes, fired, fire)
                else:
                    async with store.unflushed():
                        fired.extend(await fire(store, call, now, routes))
        return store.claimed_ahead()

    def _batch_of(self, call_ids: list[str], size: int) -> list[str]:
        return [c for c in call_ids if c not in self._failed][: max(size, 0)]

    async def _one_call(
        self,
        store: EscalationStore,
        call: Call,
        now: datetime,
        routes: routing.Routes,
        fired: list[_Fired],
        fire: Callable[[EscalationStore, Call, datetime, routing.Routes], Awaitable[list[_Fired]]],
    ) -> None:
        """One call's due steps in its own savepoint: if they fail, the call alone is
        rolled back (it stays due), logged, and left out of the polls for a while."""
        call_id = call.id
        steps: list[_Fired] = []
        try:
            async with store.savepoint(call):
                steps = await fire(store, call, now, routes)
        except Exception:
            log.exception(
                "escalation_failed", call_id=call_id, retry_in_s=RETRY_FAILED_AFTER.seconds
            )
            self._failed[call_id] = now + RETRY_FAILED_AFTER
            return
        fired.extend(steps)

    async def _fire(
        self, store: EscalationStore, call: Call, now: datetime, routes: routing.Routes
    ) -> list[_Fired]:
        """The due step of one call (locked); after a skipped step, the next one too.
        Skips only move forward through the policy's steps before its last, so this
        loop ends."""
        fired: list[_Fired] = []
        while True:
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
                routes=routes,
            )
            if result is Fired.SKIPPED:
                lifecycle.skip_at_once(call, now)
            fired.append(_Fired(call.id, notify.ESCALATION, index + 1, result, due_at))
            if result is not Fired.SKIPPED:
                return fired

    async def _fire_ack(
        self, store: EscalationStore, call: Call, now: datetime, routes: routing.Routes
    ) -> list[_Fired]:
        """The due acknowledgement-timeout step of one call (locked), like :meth:`_fire`."""
        fired: list[_Fired] = []
        while True:
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
                routes=routes,
            )
            if result is Fired.SKIPPED:
                lifecycle.skip_ack_at_once(call, now)
            fired.append(_Fired(call.id, notify.ACK_TIMEOUT, index + 1, result, due_at))
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
        routes: routing.Routes,
    ) -> Fired:
        resident = self._directory.residents.get(call.resident_id or "")
        people = routes.recipients(
            step.targets, community_id=call.community_id, resident=resident, holder=holder
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
            people = routes.command_centre()
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
