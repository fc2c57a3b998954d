"""Sends the notification outbox (SMS and voice calls), each entry through the sender
of its channel (:class:`~dispatcher.services.channels.Channels`).

An entry is claimed (pending → sending) by this dispatcher instance in a transaction
that also checks the call still wants it; just before its provider request, a second
short transaction checks again, so an acknowledgement that committed meanwhile cancels
it instead (status cancelled, said on the call's timeline). Pending entries of calls
that no longer want them (acknowledged, resolved, cancelled) are cancelled at each
claim, whichever path changed the call. Messages to different numbers leave
concurrently (:meth:`SmsOutbox.send_due` here, the daemon's loop in
:mod:`dispatcher.services.outbox_runner`), each provider request bounded by
``request_timeout_s``; one number's messages leave one after the other, but for an
emergency's or a fall's, which never wait behind another.

Temporary failures go back to pending with a jittered backoff, seconds for an emergency
or a fall (``core.notifications.backoff``). At start-up the claims of any other
instance (a crashed one) are handed back at once (:meth:`SmsOutbox.recover_claims`);
one whose request had left is sent again and the call's timeline says it may be a
duplicate (a duplicate SMS is better than none). Within a running daemon a claim older
than :data:`STALE_CLAIM` is handed back too, the backstop for a hung task.

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

import asyncio
import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from dispatcher.core.calls import Call, TimelineEntry
from dispatcher.core.contact_methods import Channel, methods_for, next_after, person_phone
from dispatcher.core.directory import Directory
from dispatcher.core.directory_holder import DirectoryHolder, hold
from dispatcher.core.notifications import throttle
from dispatcher.core.notifications.backoff import (
    CALLBACK_BACKOFF_S,
    JITTER,
    backoff_s,
    send_retry_s,
)
from dispatcher.core.notifications.bundle import BUNDLED_CHANNELS, is_urgent, plan_sms
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
# How often a round also looks for pending entries whose call no longer wants them.
# Those are never sent meanwhile (a round takes only wanted entries, and checks each
# again before it leaves); acknowledging or resolving a call cancels its entries
# itself. This sweep is the safety net, and it reads every pending entry: at every
# round, a backlog of 20,000 made it most of the database's time.
UNWANTED_SWEEP = timedelta(seconds=5)
DEFAULT_REQUEST_TIMEOUT_S = 10.0
DEFAULT_MAX_IN_FLIGHT = 16
# The log event of an entry handed to its channel's provider.
_SENT_EVENTS = {Channel.SMS.value: "sms_sent", Channel.VOICE.value: "call_placed"}


@dataclass(frozen=True)
class ReportTarget:
    """The entry a delivery report names, as the report's checks need it."""

    status: str  # ours: pending, sending, sent, failed, cancelled
    channel: str
    provider_sid: str | None
    provider_status: str | None


@dataclass(frozen=True)
class Released:
    """A claim handed back: the entry is pending again."""

    id: int
    call_id: str
    channel: str
    to_number: str
    requested: bool  # its provider request had begun: it may have left already


@dataclass(frozen=True)
class PendingWork:
    """What the outbox has to do, read without taking the write lock: whether a round
    needs its (writing) transaction at all."""

    next_due: datetime | None  # the earliest due time of a pending entry still wanted
    # Pending entries whose call no longer wants them: 0 or 1 (whether there is any),
    # and 0 on a round that did not look (see UNWANTED_SWEEP).
    unwanted: int
    oldest_claim: datetime | None  # when the oldest entry "sending" was claimed

    def any_by(self, now: datetime, stale_before: datetime) -> bool:
        """Whether a claim round at ``now`` has anything to do."""
        return (
            (self.next_due is not None and self.next_due <= now)
            or self.unwanted > 0
            or self.stale(stale_before)
        )

    def stale(self, claimed_before: datetime) -> bool:
        return self.oldest_claim is not None and self.oldest_claim < claimed_before


@dataclass(frozen=True)
class RowCheck:
    """Whether an entry's call still wants it, and the call's state."""

    id: int
    call_id: str
    wanted: bool
    call_state: str


class OutboxStore(NotifyStore, Protocol):
    """What the outbox reads and writes, bound to one transaction. Reads of pending
    entries only return those whose call still wants them (``Call.wants_notification``),
    and none but an emergency's or a fall's for a number that has a message in flight
    (an entry "sending" on that channel), and lock them, skipping entries another
    outbox has locked."""

    async def pending_work(self, *, unwanted: bool = True) -> PendingWork:
        """What a claim round would find (a read: usable outside a writing
        transaction); ``unwanted=False`` does not look for entries to cancel (that
        reads every pending entry) and says there are none."""
        ...

    async def release_stale_claims(self, claimed_before: datetime) -> list[Released]:
        """Entries left "sending" since before ``claimed_before`` go back to pending."""
        ...

    async def release_claims_besides(self, instance_id: str) -> list[Released]:
        """Entries "sending" for any other instance than ``instance_id`` go back to
        pending."""
        ...

    async def release_claimed(self, ids: Sequence[int], instance_id: str) -> list[Released]:
        """Those of ``ids`` still "sending" under ``instance_id``'s claim go back to
        pending."""
        ...

    async def unwanted_pending(self, ids: Sequence[int] | None = None) -> list[RowCheck]:
        """The pending entries (among ``ids``, or all) whose call no longer wants them,
        locked."""
        ...

    async def cancel(self, ids: Sequence[int], reason: str) -> None:
        """Cancel the entries for good, with ``reason`` said."""
        ...

    async def check_claimed(self, ids: Sequence[int], instance_id: str) -> list[RowCheck]:
        """Those of ``ids`` still "sending" under ``instance_id``'s claim, locked, each
        with whether its call still wants it."""
        ...

    async def mark_requested(self, ids: Sequence[int], now: datetime) -> None:
        """The provider request for the entries begins at ``now``."""
        ...

    async def release(self, ids: Sequence[int]) -> None:
        """Hand the claimed entries back (pending, due as they were)."""
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
        self, numbers: Sequence[str], channel: str, besides: Sequence[int]
    ) -> list[OutboxItem]:
        """The other pending non-urgent entries for ``numbers`` on ``channel`` (due or
        not), oldest first, locked."""
        ...

    async def claim(
        self,
        ids: Sequence[int],
        now: datetime,
        bundle_id: int | None,
        instance_id: str,
        *,
        requested: bool = False,
    ) -> None:
        """Mark the entries "sending" under ``instance_id``'s claim (one message carries
        them when ``bundle_id`` is set); with ``requested``, their provider request
        begins at ``now`` too."""
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
    # Claimed in the very transaction that checked its call under lock, and sent at
    # once after its commit (:class:`ClaimAhead`): no second check is needed.
    checked: bool = False

    @property
    def row_ids(self) -> list[int]:
        return [i.id for i in self.items]

    @property
    def call_id(self) -> str:
        return self.items[0].call_id

    @property
    def urgent(self) -> bool:
        return any(is_urgent(i) for i in self.items)


# Jobs sent one after the other, in order: one number's on one channel.
Lane = tuple[Job, ...]


@dataclass(frozen=True)
class ClaimAhead:
    """Up to ``most`` of an escalation step's entries claimed as they are written, in
    the step's own transaction, by the outbox instance ``instance_id`` at ``now``, and
    handed to its loop straight after the commit: the first SMS of an emergency
    without an outbox round (a read, a claim transaction, a check transaction) first.

    Only entries that the outbox's own round would send alone and at once qualify:
    an emergency's or a fall's (never throttled, never held by its number's message
    in flight), one per call and number, for a number with no other pending entry to
    carry along. They are claimed and marked requested (a crash before the request
    hands them back at the next start, noted as possible duplicates); the call was
    checked under its lock in that transaction, so the request needs no second check.
    """

    most: int
    instance_id: str
    now: datetime


def claimed_ahead_lanes(items: Iterable[OutboxItem]) -> list[Lane]:
    """The lanes of entries claimed by :class:`ClaimAhead`: one message each."""
    return lanes_of(
        Job(i.id, (i,), i.channel, i.to_number, i.body, i.attempts, checked=True) for i in items
    )


def lanes_of(jobs: Iterable[Job]) -> list[Lane]:
    """``jobs`` grouped by channel and number, each group in the jobs' order; an
    emergency's or a fall's job is a lane of its own, so that it never waits behind
    another request to that number (one that hangs, say)."""
    lanes: list[Lane] = []
    by_number: dict[tuple[str, str], list[Job]] = {}
    for job in jobs:
        if job.urgent:
            lanes.append((job,))
        else:
            by_number.setdefault((job.channel, job.to), []).append(job)
    return lanes + [tuple(group) for group in by_number.values()]


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
        directory: Directory | DirectoryHolder | None = None,
        public_url: str = "http://127.0.0.1:8080",
        throttle_s: float = 60.0,
        voice_retries: int = 1,
        callback_retries: int = 3,
        on_change: Callable[[], None] = lambda: None,
        metrics: Metrics = NULL_METRICS,
        instance_id: str = "",
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        self._tx = tx
        self._metrics = metrics
        self._channels = channels
        self._clock = clock
        self._batch = batch
        self._status_order = status_order
        self._directories = None if directory is None else hold(directory)
        self._public_url = public_url.rstrip("/")
        self._throttle = timedelta(seconds=throttle_s)
        # How many times a report's temporary failure is retried, per channel.
        self._retries = {Channel.SMS.value: callback_retries, Channel.VOICE.value: voice_retries}
        self._on_change = on_change  # wakes the outbox for a fallback queued by a callback
        self._swept_at: datetime | None = None  # the last look for unwanted entries
        # Whose claims are ours: minted at each start, so a restart knows every other
        # claim was a crashed instance's.
        self.instance_id = instance_id or uuid.uuid4().hex
        self._request_timeout_s = request_timeout_s
        self.max_in_flight = max_in_flight
        # Sends answered and not yet recorded, and the task recording them.
        self._to_record: list[tuple[list[int], Receipt, asyncio.Future[None]]] = []
        self._recorder: asyncio.Task[None] | None = None

    @property
    def _directory(self) -> Directory | None:
        # The directory in force (the registry swaps it): read afresh each time.
        return None if self._directories is None else self._directories.current

    def status_url(self, row_id: int) -> str:
        return f"{self._public_url}/twilio/status/{row_id}"

    def voice_url(self, row_id: int) -> str:
        return f"{self._public_url}/twilio/voice/{row_id}"

    async def send_due(self) -> int:
        """Send what is due now, up to ``max_in_flight`` numbers at once, and wait for
        it; returns how many were handed to the provider. One round of the daemon's
        loop (:class:`~dispatcher.services.outbox_runner.OutboxRunner`)."""
        slots = asyncio.Semaphore(self.max_in_flight)

        async def one(lane: Lane) -> int:
            async with slots:
                return await self.send_lane(lane)

        lanes = await self.claim(self._batch)
        return sum(await asyncio.gather(*(one(lane) for lane in lanes)))

    async def recover_claims(self) -> int:
        """Hand back at once every claim another instance holds (only one dispatcher
        runs per database, so another instance's claim is a crashed one's); returns
        how many. Run at start-up, before sending."""
        now = self._clock.now()
        async with self._tx.begin() as store:
            released = await store.release_claims_besides(self.instance_id)
            self._note_resends(store, released, now, "after a restart")
        if released:
            log.warning(
                "outbox_claims_recovered",
                rows=[r.id for r in released],
                in_flight=sum(r.requested for r in released),
            )
        return len(released)

    async def hand_back(self, lane: Lane) -> int:
        """Hand back what ``lane`` still holds, its sending cut short (a stop that could
        not wait for the provider's answer); returns how many entries."""
        ids = [i for job in lane for i in job.row_ids]
        now = self._clock.now()
        async with self._tx.begin() as store:
            released = await store.release_claimed(ids, self.instance_id)
            self._note_resends(store, released, now, "after a stop")
        return len(released)

    # -- claiming ---------------------------------------------------------------------------

    async def claim(self, limit: int, *, at_once: bool = False) -> list[Lane]:
        """Claim up to ``limit`` due entries, planned into messages, grouped into the
        lanes :meth:`send_lane` sends. Cancels the pending entries of calls that no
        longer want them on the way.

        ``at_once``: the caller starts every lane the moment this returns (the daemon's
        loop, which claims no more than its free slots). The first message of each lane
        is then marked requested in this transaction, which checked its call, and sent
        without a second check (as :class:`ClaimAhead`); the lane's later ones, which
        wait for it, are checked again before they leave.

        A round first asks, in a read that takes no write lock, whether there is
        anything to do (entries due, entries to cancel, a stale claim): most rounds
        find nothing, and on SQLite a writing transaction, even an empty one, queues
        behind every other writer and the next emergency's intake behind it."""
        now = self._clock.now()
        stale_before = now - STALE_CLAIM
        swept = self._swept_at
        sweep = swept is None or not swept <= now < swept + UNWANTED_SWEEP
        async with self._tx.read() as reader:
            work = await reader.pending_work(unwanted=sweep)
        if sweep:
            self._swept_at = now
        if not work.any_by(now, stale_before):
            return []
        async with self._tx.begin() as store:
            if work.stale(stale_before):
                # A hung task's claim (the restart's are recovered at start-up): we
                # cannot know whether it left, so again.
                stale = await store.release_stale_claims(stale_before)
                self._note_resends(store, stale, now, "after its claim went stale")
            if work.unwanted:
                await self._cancel(store, await store.unwanted_pending(), now)
            # (Entries that became unwanted since the read are not due below: they are
            # cancelled at the next round.)
            due = await store.due(now, limit)
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
            jobs.extend(await self._claim_bundled(store, by_number, now))
            lanes = lanes_of(jobs)
            if at_once:
                lanes = [(replace(lane[0], checked=True), *lane[1:]) for lane in lanes]
            for lane in lanes:
                for job in lane:
                    bundle_id = job.row_id if len(job.items) > 1 else None
                    await store.claim(
                        job.row_ids, now, bundle_id, self.instance_id, requested=job.checked
                    )
        return lanes

    def _note_resends(
        self, store: OutboxStore, released: Sequence[Released], now: datetime, why: str
    ) -> None:
        """Say on each call's timeline which of its messages may now leave twice."""
        for row in released:
            if not row.requested:
                continue  # never handed to the provider: sending it is no duplicate
            store.add_timeline(
                TimelineEntry(
                    now,
                    "system",
                    "notify_resent",
                    row.channel,
                    f"possible duplicate: sent again {why} ({row.channel} to {row.to_number})",
                    row.call_id,
                )
            )
            log.warning("notify_resent", call_id=row.call_id, row=row.id, why=why)

    async def _cancel(
        self, store: OutboxStore, unwanted: Sequence[RowCheck], now: datetime
    ) -> None:
        """Cancel entries their calls no longer want, said once per call."""
        by_call: dict[str, list[RowCheck]] = {}
        for row in unwanted:
            by_call.setdefault(row.call_id, []).append(row)
        for call_id, rows in by_call.items():
            reason = f"call {rows[0].call_state}"
            await store.cancel([r.id for r in rows], reason)
            store.add_timeline(
                TimelineEntry(
                    now,
                    "system",
                    "sms_cancelled",
                    "system",
                    f"{len(rows)} unsent: {reason}",
                    call_id,
                )
            )
            log.info("notify_cancelled", call_id=call_id, rows=[r.id for r in rows], why=reason)

    async def _claim_bundled(
        self,
        store: OutboxStore,
        by_number: dict[tuple[str, str], list[OutboxItem]],
        now: datetime,
    ) -> list[Job]:
        """The due entries of each number planned into messages, with the pending
        entries they carry along; a number held by its throttle gets none."""
        sending: dict[tuple[str, str], list[OutboxItem]] = {}
        for (channel, number), due in by_number.items():
            if throttle.applies(due, self._throttle):
                last = await store.last_sent_at(number, channel)
                until = throttle.held_until(last, now, self._throttle)
                if until is not None:
                    # Held, not dropped: it leaves when the window ends, or sooner with
                    # an emergency to the same number.
                    await store.hold([i.id for i in due], until)
                    log.info("sms_throttled", to=number, held=len(due), until=until.isoformat())
                    continue
            sending[(channel, number)] = due
        jobs: list[Job] = []
        for channel in dict.fromkeys(c for c, _n in sending):
            numbers = [n for c, n in sending if c == channel]
            besides = [i.id for (c, _n), due in sending.items() if c == channel for i in due]
            # The non-urgent entries pending for these numbers but not due (held by the
            # throttle, or past this batch) leave in the same message: one query for
            # every number of the round.
            others: dict[str, list[OutboxItem]] = {}
            for item in await store.bundle_companions(numbers, channel, besides):
                others.setdefault(item.to_number, []).append(item)
            for number in numbers:
                for planned in plan_sms(sending[(channel, number)] + others.get(number, [])):
                    primary = min(planned.items, key=lambda i: i.id)
                    attempts = max(i.attempts for i in planned.items)
                    jobs.append(
                        Job(primary.id, planned.items, channel, number, planned.body, attempts)
                    )
        return jobs

    # -- sending ----------------------------------------------------------------------------

    async def send_lane(self, lane: Lane) -> int:
        """Send one number's jobs in order; returns how many the provider accepted.
        Never raises: a job that fails unexpectedly keeps its claim (the stale-claim
        backstop hands it back) and the lane goes on."""
        sent = 0
        for job in lane:
            try:
                sent += await self._send(job)
            except Exception:
                log.exception("outbox_job_failed", call_id=job.call_id, rows=job.row_ids)
        return sent

    async def _still_wanted(self, job: Job) -> bool:
        """Whether ``job`` may go to the provider now: every entry still claimed by us
        and still wanted by its call. Entries no longer wanted are cancelled; the rest
        of a job that may not go are handed back, to be planned again without them."""
        now = self._clock.now()
        async with self._tx.begin() as store:
            checks = await store.check_claimed(job.row_ids, self.instance_id)
            unwanted = [c for c in checks if not c.wanted]
            if not unwanted and len(checks) == len(job.items):
                await store.mark_requested(job.row_ids, now)
                return True
            await self._cancel(store, unwanted, now)
            if keep := [c.id for c in checks if c.wanted]:
                await store.release(keep)
        log.info(
            "notify_not_sent",
            call_id=job.call_id,
            to=job.to,
            rows=job.row_ids,
            cancelled=[c.id for c in unwanted],
        )
        self._on_change()  # what was handed back is planned again at once
        return False

    async def _send(self, job: Job) -> int:
        if not job.checked and not await self._still_wanted(job):
            return 0
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
            # The sender has its own timeout (Twilio's HTTP client); this one holds for
            # any sender, so a hung request only ever holds its own lane.
            async with asyncio.timeout(self._request_timeout_s):
                receipt = await sender.send(message)
        except SendError as exc:
            await self._failed(job, exc)
            return 0
        except TimeoutError:
            log.warning(
                "sms_request_timeout",
                call_id=job.call_id,
                to=job.to,
                timeout_s=self._request_timeout_s,
            )
            no_answer = (
                f"no answer from the {job.channel} provider in {self._request_timeout_s:g} s"
            )
            await self._failed(job, SendError(no_answer, permanent=False))
            return 0
        except Exception as exc:  # a bug or an unwrapped network error: retry, never drop
            log.exception("sms_sender_error", call_id=job.call_id, to=job.to)
            await self._failed(job, SendError(repr(exc), permanent=False))
            return 0
        await self._record_sent(job.row_ids, receipt)
        self._metrics.notification(job.channel, "sent")
        event = _SENT_EVENTS.get(job.channel, f"{job.channel}_sent")
        log.info(event, call_id=job.call_id, to=job.to, sid=receipt.sid, rows=job.row_ids)
        return 1

    async def _record_sent(self, ids: list[int], receipt: Receipt) -> None:
        """Record a send, in one transaction with the sends recorded at the same time
        (those of the other lanes answered meanwhile); returns once it is committed.
        A transaction per send was most of the outbox's writing under a burst, and on
        SQLite each one queues behind (and holds up) the intake and the escalator."""
        recorded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._to_record.append((ids, receipt, recorded))
        if self._recorder is None:
            self._recorder = asyncio.create_task(self._record_all())
        await asyncio.shield(recorded)  # a lane cancelled now: the record is made still

    async def _record_all(self) -> None:
        try:
            while self._to_record:
                batch: list[tuple[list[int], Receipt, asyncio.Future[None]]] = []
                try:
                    async with self._tx.begin() as store:
                        # Taken once the transaction has begun: what queued while it
                        # waited for the write lock is in it too.
                        batch, self._to_record = self._to_record, []
                        now = self._clock.now()
                        for ids, receipt, _ in batch:
                            await store.mark_sent(ids, receipt, now)
                except BaseException as exc:
                    # Each send waiting here is told (as it was by its own transaction):
                    # its claim stays, and the stale-claim backstop hands it back.
                    if not batch:  # failed before it was taken
                        batch, self._to_record = self._to_record, []
                    for *_, recorded in batch:
                        if recorded.done():
                            continue
                        if isinstance(exc, Exception):
                            recorded.set_exception(exc)
                        else:
                            recorded.cancel()
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for *_, recorded in batch:
                    if not recorded.done():
                        recorded.set_result(None)
        finally:
            self._recorder = None

    async def _failed(self, job: Job, exc: SendError) -> None:
        now = self._clock.now()
        attempts = job.attempts + 1
        async with self._tx.begin() as store:
            if exc.permanent:
                await store.count_attempt(job.row_ids)
                await self._give_up(store, list(job.items), f"{job.to}: {exc}", now, exc.code)
            else:
                delay = send_retry_s(attempts, _jitter(), urgent=job.urgent)
                await store.retry(
                    job.row_ids, now + timedelta(seconds=delay), str(exc), count_attempt=True
                )
                # Acknowledged while the request was out: nothing left to retry for.
                await self._cancel(store, await store.unwanted_pending(job.row_ids), now)
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
                await self._cancel(store, await store.unwanted_pending(ids), now)
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
