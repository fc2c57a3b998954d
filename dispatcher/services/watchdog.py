"""Pages the shift supervisor about calls nobody has taken (``dispatcher.core.watchdog``).

Run in the escalator's cycle (``dispatcher.bootstrap``: the same poller, after the
escalation steps). Each page is ONE transaction: the call locked and checked again
(a take may just have committed), its next due time, the supervisor's SMS in the
outbox and the timeline entry commit together, so a restart neither loses nor
repeats a page. The SMS leaves through the outbox like every other, which sends it
only while the call is still untaken (an acknowledgement cancels it unsent).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from dispatcher.core import watchdog as rules
from dispatcher.core.calls import Call, TimelineEntry
from dispatcher.core.contact_methods import Channel, ContactMethod, first_of_kind, methods_for
from dispatcher.core.directory import Directory
from dispatcher.core.directory_holder import DirectoryHolder, ReadsDirectory, hold
from dispatcher.core.routing import Recipient
from dispatcher.services.clock import Clock
from dispatcher.services.metrics import NULL_METRICS, Metrics
from dispatcher.services.notify import NotifyStore, OutboxRow, outbox_values
from dispatcher.services.ports import Transactions

log = structlog.get_logger(__name__)

TIMER = "watchdog"  # the outbox rows' step numbering: page 1 is step 0
# A call whose page failed is left out of the polls for this long (it stays due).
RETRY_FAILED_AFTER = timedelta(seconds=5)


class WatchdogStore(NotifyStore, Protocol):
    async def due_pages(self, now: datetime, limit: int) -> list[str]:
        """Ids of up to ``limit`` open calls whose page is due by ``now``, alarms
        first, then the most overdue."""
        ...

    async def lock_call(self, call_id: str) -> Call | None:
        """The call, locked for update until the transaction ends."""
        ...

    def add_timeline(self, entry: TimelineEntry) -> None: ...


class SupervisorWatchdog(ReadsDirectory):
    def __init__(
        self,
        tx: Transactions[WatchdogStore],
        directory: Directory | DirectoryHolder,
        clock: Clock,
        on_change: Callable[[], None] = lambda: None,
        metrics: Metrics = NULL_METRICS,
        batch: int = 50,
    ) -> None:
        self._tx = tx
        self._directories = hold(directory)
        self._clock = clock
        self._on_change = on_change  # wakes the SMS outbox
        self._metrics = metrics
        self._batch = batch
        self._failed: dict[str, datetime] = {}

    async def run_due(self) -> int:
        """Page for up to ``batch`` calls whose page is due now, one transaction each;
        returns how many paged."""
        now = self._clock.now()
        self._failed = {c: t for c, t in self._failed.items() if t > now}
        async with self._tx.read() as reader:  # most polls find none: no write lock
            due = await reader.due_pages(now, self._batch + len(self._failed))
        paged = 0
        for call_id in [c for c in due if c not in self._failed][: self._batch]:
            try:
                if await self._page(call_id, now):
                    paged += 1
            except Exception:
                log.exception(
                    "watchdog_failed", call_id=call_id, retry_in_s=RETRY_FAILED_AFTER.seconds
                )
                self._failed[call_id] = now + RETRY_FAILED_AFTER
        if paged:
            self._on_change()
        return paged

    async def _page(self, call_id: str, now: datetime) -> bool:
        async with self._tx.begin() as store:
            call = await store.lock_call(call_id)
            if call is None:
                return False
            page = rules.take_due_page(call, now)  # checked again under the lock
            if page is None:
                return False
            found = rules.shift_supervisors(self._directory, call.community_id, now)
            rows = await self._rows(store, call, found.people, page, now)
            await store.queue_notifications(rows)
            names = "; ".join(f"{p.name} ({p.why})" for p in found.people) or "nobody"
            fallback = {
                "district": " (no supervisor on duty: every supervisor of the district)",
                "command_centre": " (no supervisor at all: the command centre)",
            }.get(found.fallback or "", "")
            store.add_timeline(
                TimelineEntry(
                    now,
                    rules.ACTOR,
                    rules.ACTION,
                    Channel.SMS.value,
                    f"page {page.number} of {page.of}: nobody has taken it for "
                    f"{int(page.waited.total_seconds())} s; {names}{fallback}",
                    call.id,
                )
            )
            kind = call.kind.value
        if found.fallback:
            log.warning(
                "watchdog_no_supervisor_on_duty",
                call_id=call_id,
                community_id=call.community_id,
                fallback=found.fallback,
                recipients=[p.id for p in found.people],
            )
        log.info(
            "watchdog_paged",
            call_id=call_id,
            page=page.number,
            of=page.of,
            waited_s=int(page.waited.total_seconds()),
            recipients=[p.id for p in found.people],
        )
        self._metrics.watchdog_paged(kind)
        self._metrics.step_fired(page.late.total_seconds(), TIMER)
        return True

    async def _rows(
        self,
        store: WatchdogStore,
        call: Call,
        people: list[Recipient],
        page: rules.Page,
        now: datetime,
    ) -> list[OutboxRow]:
        """One SMS per supervisor, carrying their reply number for the call."""
        directory = self._directory
        resident = directory.residents.get(call.resident_id or "")
        rows = []
        for person in people:
            methods = methods_for(directory, person.id, person.phone)
            method = first_of_kind(methods, Channel.SMS) or ContactMethod(
                1, Channel.SMS, person.phone
            )
            code = await store.reply_code(method.number, call.id, now)
            row = outbox_values(
                call,
                resident,
                directory,
                recipient=person.id,
                language=person.language,
                method=method,
                step_index=page.number - 1,
                now=now,
                code=code,
                timer=TIMER,
            )
            row["body"] = rules.page_sms(call, resident, directory, person.language, page, code)
            row["summary"] = rules.page_summary(call, resident, person.language, page)
            rows.append(row)
        return rows
