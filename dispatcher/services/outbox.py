"""Sends the notification outbox (SMS and voice calls), each entry through the sender
of its channel (:class:`~dispatcher.services.channels.Channels`).

An entry is claimed (pending → sending) in a transaction that also checks the call
still wants it, so nothing is sent for a call whose acknowledgement has committed.
Temporary failures go back to pending with a jittered backoff; an entry left "sending"
by a crash is sent again (a duplicate SMS is better than none).

Per phone number, SMS are throttled and bundled (``dispatcher.core.notifications``):
a service request or technical alert waits while that number had an SMS in the last
``throttle_s`` seconds, and several open calls pending for one number leave as one
message that lists each call with its reply code. An emergency or a fall is never held
back (it carries the pending others along).

The provider reports what became of each message and call (:meth:`SmsOutbox.record_status`,
given a :class:`~dispatcher.core.notifications.outcomes.DeliveryReport`): a permanent
failure moves that person's notification to their next contact method at once, with
the failure on the call's timeline; a temporary one is retried with backoff.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from dispatcher.core.calls import Call, TimelineEntry
from dispatcher.core.contact_methods import Channel, methods_for, next_after, person_phone
from dispatcher.core.directory import Directory
from dispatcher.core.notifications import throttle
from dispatcher.core.notifications.backoff import CALLBACK_BACKOFF_S, JITTER, backoff_s
from dispatcher.core.notifications.bundle import BUNDLED_CHANNELS, plan_sms
from dispatcher.core.notifications.item import OutboxItem
from dispatcher.core.notifications.outcomes import (
    DeliveryReport,
    Fate,
    StatusOrder,
    Verdict,
    outcome,
    settle,
)
from dispatcher.services.channels import (
    Channels,
    Outgoing,
    Receipt,
    SendError,
    UnknownChannelError,
)
from dispatcher.services.clock import Clock
from dispatcher.services.metrics import NULL_METRICS, Metrics
from dispatcher.services.notify import NotifyStore, outbox_values
from dispatcher.services.ports import Transactions

log = structlog.get_logger(__name__)

STALE_CLAIM = timedelta(minutes=2)
# The log event of an entry handed to its channel's provider.
_SENT_EVENTS = {Channel.SMS.value: "sms_sent", Channel.VOICE.value: "call_placed"}


@dataclass(frozen=True)
class ReportTarget:
    """The entry a delivery report names, as the report's checks need it."""

    status: str  # ours: pending, sending, sent, failed, cancelled
    channel: str
    provider_sid: str | None
    provider_status: str | None


class OutboxStore(NotifyStore, Protocol):
    """What the outbox reads and writes, bound to one transaction. Reads of pending
    entries only return those whose call still wants them (``Call.wants_notification``)
    and lock them, skipping entries another outbox has locked."""

    async def release_stale_claims(self, claimed_before: datetime) -> None:
        """Entries left "sending" since before ``claimed_before`` go back to pending."""
        ...

    async def due(self, now: datetime, limit: int) -> list[OutboxItem]:
        """Up to ``limit`` pending entries due by ``now``, oldest first, locked."""
        ...

    async def last_sent_at(self, number: str, channel: str) -> datetime | None:
        """When ``number`` was last sent something on ``channel``."""
        ...

    async def hold(self, ids: Sequence[int], until: datetime) -> None:
        """Make the entries due at ``until`` instead."""
        ...

    async def bundle_companions(
        self, number: str, channel: str, besides: Sequence[int]
    ) -> list[OutboxItem]:
        """The other pending non-urgent entries for ``number`` on ``channel`` (due or
        not), oldest first, locked."""
        ...

    async def claim(self, ids: Sequence[int], now: datetime, bundle_id: int | None) -> None:
        """Mark the entries "sending" (one message carries them when ``bundle_id`` is set)."""
        ...

    async def mark_sent(self, ids: Sequence[int], receipt: Receipt, now: datetime) -> None:
        """Record the send; entries a report has already moved on keep their status."""
        ...

    async def count_attempt(self, ids: Sequence[int]) -> None: ...

    async def retry(
        self, ids: Sequence[int], at: datetime, error: str, *, count_attempt: bool
    ) -> None:
        """Back to pending, due at ``at``, with ``error`` said."""
        ...

    async def mark_failed(self, ids: Sequence[int], reason: str, code: int | None) -> None: ...

    async def call(self, call_id: str) -> Call | None: ...

    def add_timeline(self, entry: TimelineEntry) -> None: ...

    async def report_target(self, row_id: int) -> ReportTarget | None:
        """The entry ``row_id``, locked until the transaction ends."""
        ...

    async def report_members(self, row_id: int, status: str, bundled: bool) -> list[OutboxItem]:
        """The entries in ``status`` that one report about ``row_id`` names: that entry,
        and with ``bundled`` those its message carried; locked."""
        ...

    async def record_report(self, ids: Sequence[int], report: DeliveryReport) -> None:
        """Keep what the report said: its status, error code, who answered, and its sid
        if it named one."""
        ...


@dataclass(frozen=True)
class Job:
    """One message or call to hand to the provider, for one or more outbox entries."""

    row_id: int  # the entry the provider's status callbacks will name
    items: tuple[OutboxItem, ...]
    channel: str
    to: str
    body: str
    attempts: int

    @property
    def row_ids(self) -> list[int]:
        return [i.id for i in self.items]

    @property
    def call_id(self) -> str:
        return self.items[0].call_id


def _jitter() -> float:
    return random.uniform(*JITTER)


class SmsOutbox:
    def __init__(
        self,
        tx: Transactions[OutboxStore],
        channels: Channels,
        clock: Clock,
        batch: int = 20,
        *,
        status_order: StatusOrder,
        directory: Directory | None = None,
        public_url: str = "http://127.0.0.1:8080",
        throttle_s: float = 60.0,
        voice_retries: int = 1,
        callback_retries: int = 3,
        on_change: Callable[[], None] = lambda: None,
        metrics: Metrics = NULL_METRICS,
    ) -> None:
        self._tx = tx
        self._metrics = metrics
        self._channels = channels
        self._clock = clock
        self._batch = batch
        self._status_order = status_order
        self._directory = directory
        self._public_url = public_url.rstrip("/")
        self._throttle = timedelta(seconds=throttle_s)
        # How many times a report's temporary failure is retried, per channel.
        self._retries = {Channel.SMS.value: callback_retries, Channel.VOICE.value: voice_retries}
        self._on_change = on_change  # wakes the outbox for a fallback queued by a callback

    def status_url(self, row_id: int) -> str:
        return f"{self._public_url}/twilio/status/{row_id}"

    def voice_url(self, row_id: int) -> str:
        return f"{self._public_url}/twilio/voice/{row_id}"

    async def send_due(self) -> int:
        """Send what is due now; returns how many were handed to the provider."""
        jobs = await self._claim(self._clock.now())
        sent = 0
        for job in jobs:
            sent += await self._send(job)
        return sent

    # -- claiming ---------------------------------------------------------------------------

    async def _claim(self, now: datetime) -> list[Job]:
        async with self._tx.begin() as store:
            # Entries a crash left "sending": we cannot know whether they left, so again.
            await store.release_stale_claims(now - STALE_CLAIM)
            due = await store.due(now, self._batch)
            jobs: list[Job] = []
            by_number: dict[tuple[str, str], list[OutboxItem]] = {}
            for item in due:
                if item.channel in BUNDLED_CHANNELS:
                    by_number.setdefault((item.channel, item.to_number), []).append(item)
                else:
                    jobs.append(
                        Job(
                            item.id, (item,), item.channel, item.to_number, item.body, item.attempts
                        )
                    )
            for (channel, number), items in by_number.items():
                jobs.extend(await self._claim_bundled(store, channel, number, items, now))
            for job in jobs:
                await store.claim(job.row_ids, now, job.row_id if len(job.items) > 1 else None)
        return jobs

    async def _claim_bundled(
        self,
        store: OutboxStore,
        channel: str,
        number: str,
        due: list[OutboxItem],
        now: datetime,
    ) -> list[Job]:
        if throttle.applies(due, self._throttle):
            last = await store.last_sent_at(number, channel)
            until = throttle.held_until(last, now, self._throttle)
            if until is not None:
                # Held, not dropped: it leaves when the window ends, or sooner with an
                # emergency to the same number.
                await store.hold([i.id for i in due], until)
                log.info("sms_throttled", to=number, held=len(due), until=until.isoformat())
                return []
        # The non-urgent entries pending for this number but not due (held by the
        # throttle, or past this batch) leave in the same message.
        others = await store.bundle_companions(number, channel, [i.id for i in due])
        jobs = []
        for planned in plan_sms(due + others):
            primary = min(planned.items, key=lambda i: i.id)
            attempts = max(i.attempts for i in planned.items)
            jobs.append(Job(primary.id, planned.items, channel, number, planned.body, attempts))
        return jobs

    # -- sending ----------------------------------------------------------------------------

    async def _send(self, job: Job) -> int:
        message = Outgoing(
            job.to,
            job.body,
            status_callback=self.status_url(job.row_id),
            script_url=self.voice_url(job.row_id),
        )
        try:
            sender = self._channels.sender(job.channel)
        except UnknownChannelError as exc:  # never another channel: the person's next method
            log.error("channel_unknown", call_id=job.call_id, channel=job.channel, error=str(exc))
            await self._failed(job, SendError(str(exc), permanent=True))
            return 0
        try:
            receipt = await sender.send(message)
        except SendError as exc:
            await self._failed(job, exc)
            return 0
        except Exception as exc:  # a bug or an unwrapped network error: retry, never drop
            log.exception("sms_sender_error", call_id=job.call_id, to=job.to)
            await self._failed(job, SendError(repr(exc), permanent=False))
            return 0
        async with self._tx.begin() as store:
            await store.mark_sent(job.row_ids, receipt, self._clock.now())
        self._metrics.notification(job.channel, "sent")
        event = _SENT_EVENTS.get(job.channel, f"{job.channel}_sent")
        log.info(event, call_id=job.call_id, to=job.to, sid=receipt.sid, rows=job.row_ids)
        return 1

    async def _failed(self, job: Job, exc: SendError) -> None:
        now = self._clock.now()
        attempts = job.attempts + 1
        async with self._tx.begin() as store:
            if exc.permanent:
                await store.count_attempt(job.row_ids)
                await self._give_up(store, list(job.items), f"{job.to}: {exc}", now, exc.code)
            else:
                at = now + timedelta(seconds=backoff_s(attempts + 1, _jitter()))
                await store.retry(job.row_ids, at, str(exc), count_attempt=True)
        self._metrics.notification(
            job.channel, f"failed_{'permanent' if exc.permanent else 'temporary'}"
        )
        log.warning(
            "sms_failed",
            call_id=job.call_id,
            to=job.to,
            channel=job.channel,
            permanent=exc.permanent,
            error=str(exc),
        )

    async def _give_up(
        self,
        store: OutboxStore,
        items: list[OutboxItem],
        reason: str,
        now: datetime,
        code: int | None = None,
    ) -> None:
        """Mark ``items`` failed for good, say so on each call's timeline, and move each
        person on to their next contact method."""
        await store.mark_failed([i.id for i in items], reason, code)
        # Once per person and call: a bundle may hold several steps of one call.
        done: set[tuple[str, str]] = set()
        for item in sorted(items, key=lambda i: i.id, reverse=True):  # the latest step first
            if (item.call_id, item.recipient) in done:
                continue
            done.add((item.call_id, item.recipient))
            store.add_timeline(
                TimelineEntry(
                    now, "system", f"{item.channel}_failed", item.channel, reason, item.call_id
                )
            )
            await self._fall_back(store, item, now)

    async def _fall_back(self, store: OutboxStore, item: OutboxItem, now: datetime) -> None:
        if self._directory is None:
            return
        call = await store.call(item.call_id)
        if call is None or not call.wants_notification(item.created_at):
            return  # acknowledged or closed meanwhile: nobody needs reaching any more
        directory = self._directory
        phone = person_phone(directory, item.recipient) or item.to_number
        method = next_after(methods_for(directory, item.recipient, phone), item.method_order)
        if method is None:
            store.add_timeline(
                TimelineEntry(
                    now,
                    "system",
                    "notify_exhausted",
                    item.channel,
                    f"{item.recipient}: no contact method left after {item.channel} to "
                    f"{item.to_number}",
                    item.call_id,
                )
            )
            return
        resident = directory.residents.get(call.resident_id or "")
        code = await store.reply_code(method.number, call.id, now)
        values = outbox_values(
            call,
            resident,
            directory,
            recipient=item.recipient,
            language=item.language,
            method=method,
            step_index=item.step,
            now=now,
            code=code,
        )
        await store.queue_notifications([values])
        store.add_timeline(
            TimelineEntry(
                now,
                "system",
                "notify_fallback",
                method.kind.value,
                f"{item.recipient}: {item.channel} to {item.to_number} failed; "
                f"next {method.kind.value} to {method.number}",
                item.call_id,
            )
        )
        log.info(
            "notify_fallback",
            call_id=item.call_id,
            recipient=item.recipient,
            channel=method.kind.value,
            to=method.number,
        )

    # -- delivery reports -------------------------------------------------------------------

    async def record_status(self, row_id: int, report: DeliveryReport) -> bool:
        """Apply the provider's delivery report on the message or call of ``row_id``.

        Returns False when there is no such entry. Idempotent: a repeated or late report
        changes nothing once the entry has moved on (failed, retried, cancelled).
        """
        now = self._clock.now()
        queued = False
        status, sid = report.status, report.sid
        async with self._tx.begin() as store:
            found = await store.report_target(row_id)
            if found is None:
                return False
            # A report may beat our own record of the send ("sending": the provider
            # answered, we have not written its sid yet); it then names a new sid.
            # A late report of the previous attempt names the old sid, whose status is
            # already final, and is dropped below.
            same_attempt = not sid or sid == found.provider_sid
            in_flight = found.status == "sending"
            if not in_flight and (found.status != "sent" or not same_attempt):
                log.info("status_ignored", row=row_id, status=status, ours=found.status)
                return True
            known = found.provider_status if same_attempt else None
            if self._status_order.is_stale(found.channel, known, status):
                return True  # out of order or repeated: the entry already knows better
            bundled = found.channel in BUNDLED_CHANNELS
            items = await store.report_members(row_id, found.status, bundled)
            ids = [i.id for i in items]
            await store.record_report(ids, report)
            attempts = max((i.attempts for i in items), default=0) + int(in_flight)
            what = settle(outcome(found.channel, report), attempts, self._retries[found.channel])
            if what.verdict is Verdict.RETRY:
                delay = backoff_s(attempts, _jitter(), CALLBACK_BACKOFF_S)
                at = now + timedelta(seconds=delay)
                await store.retry(ids, at, what.reason, count_attempt=False)
                log.warning("delivery_retry", row=row_id, reason=what.reason, in_s=delay)
            elif what.verdict is Verdict.FAILED:
                to = items[0].to_number if items else "?"
                reason = f"{found.channel} to {to}: {what.reason}"
                await self._give_up(store, items, reason, now, report.error_code)
                queued = True
        if queued:
            self._on_change()
        if report.fate is not Fate.UNDER_WAY:  # queued, ringing...: no outcome yet
            self._metrics.notification(found.channel, report.fate.value)
        return True
