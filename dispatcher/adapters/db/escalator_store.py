"""The database side of :class:`dispatcher.services.escalator.EscalationStore` (and of
:class:`dispatcher.services.notify.NotifyStore`): the due calls, the locked calls and
their timelines, the steps' outbox rows and reply numbers, in one session.

A batch's statements are its cost (each one a trip to the database's thread), so
:meth:`SqlEscalationStore.lock_calls` also reads, for the calls it locks, who was
already queued for which step and the reply numbers they hold: two queries for the
batch instead of one per call and per recipient. That is exact because the store
lives for one transaction and the calls are locked in it: only this store writes their
outbox rows and reply numbers meanwhile, and it keeps what it read up to date.

For the same reason, within :meth:`SqlEscalationStore.deferred_writes` the batch's
outbox rows and timeline entries are written at its end, one multi-row insert each,
rather than a statement (and an ORM flush) per call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Select, and_, bindparam, case, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from dispatcher.adapters.db import reply_codes as replycodes
from dispatcher.adapters.db import schema as db
from dispatcher.core.calls import Call, CallState, Priority, TimelineEntry
from dispatcher.core.notifications.bundle import BUNDLED_CHANNELS, URGENT_KINDS
from dispatcher.core.notifications.item import OutboxItem
from dispatcher.services.notify import OutboxRow
from dispatcher.services.outbox import ClaimAhead


def _due_calls() -> Select[Any]:
    """The calls with a step due by ``:now`` (escalation on open calls, acknowledgement
    timeout on acknowledged ones), alarms first, then the most overdue: one statement,
    built once (every poll asks it, most of them idle). The sort runs over the due rows
    only (the indexes on the due times find them), a few thousand at worst."""
    c = db.calls.c
    now = bindparam("now", type_=c.next_escalation_at.type)
    escalating = and_(c.state == CallState.OPEN.value, c.next_escalation_at <= now)
    acknowledged = and_(c.state == CallState.ACKNOWLEDGED.value, c.next_ack_escalation_at <= now)
    alarms_first = case((c.priority == Priority.CRITICAL.value, 0), else_=1)
    due_at = case((escalating, c.next_escalation_at), else_=c.next_ack_escalation_at)
    return (
        select(c.id, c.state)
        .where(or_(escalating, acknowledged))
        .order_by(alarms_first, due_at, c.id)
        .limit(bindparam("limit", type_=Integer))
    )


_DUE = _due_calls()


class SqlEscalationStore:
    """:class:`~dispatcher.services.escalator.EscalationStore` bound to one session."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        # For the calls lock_calls read ahead: their (timer, step, recipient, created
        # at) outbox rows not cancelled, and their active reply numbers per phone.
        self._queued: dict[str, list[tuple[str | None, int, str, datetime]]] = {}
        self._codes: dict[str, dict[str, int]] = {}
        # New numbers for those calls: each phone read once, written together.
        self._allocations = replycodes.Allocations(session)
        # Within deferred_writes: the rows and timeline entries still to insert.
        self._deferring = False
        self._rows: list[OutboxRow] = []
        self._entries: list[dict[str, Any]] = []
        self._kinds: dict[str, str] = {}  # the locked calls' kinds
        self._claimed: list[OutboxItem] = []

    async def due_calls(self, now: datetime, limit: int) -> tuple[list[str], list[str]]:
        found = (await self._session.execute(_DUE, {"now": now, "limit": 2 * limit})).all()
        escalating = [r.id for r in found if r.state == CallState.OPEN.value][:limit]
        acknowledged = [r.id for r in found if r.state == CallState.ACKNOWLEDGED.value][:limit]
        return escalating, acknowledged

    async def lock_calls(self, call_ids: Sequence[str]) -> list[Call]:
        # One statement for the batch (a row lock each on PostgreSQL; SQLite's write
        # lock is taken at BEGIN IMMEDIATE).
        if not call_ids:
            return []
        ids = list(call_ids)
        found = list(
            await self._session.scalars(
                select(Call)
                .where(db.calls.c.id.in_(ids))
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        )
        locked = [c.id for c in found]
        self._kinds.update({c.id: str(c.kind.value) for c in found})
        self._queued.update({c: [] for c in locked})
        self._codes.update({c: {} for c in locked})
        t = db.sms_outbox.c
        for call_id, timer, step, recipient, created_at in await self._session.execute(
            select(t.call_id, t.timer, t.step, t.recipient, t.created_at).where(
                t.call_id.in_(locked), t.status != "cancelled"
            )
        ):
            self._queued[call_id].append((timer, step, recipient, created_at))
        r = db.reply_codes.c
        for call_id, phone, number in await self._session.execute(
            select(r.call_id, r.phone, r.number).where(r.call_id.in_(locked), r.active)
        ):
            self._codes[call_id][phone] = int(number)
        return found

    def adopt(self, calls: Sequence[Call]) -> None:
        """Calls written in this transaction by another store (the intake's, which
        opened them), taken in as :meth:`lock_calls` would return them, without a
        query: nobody is queued for them yet and they hold no reply numbers."""
        for call in calls:
            if call not in self._session:  # written with Core: not in the session
                make_transient_to_detached(call)  # as if just loaded: its changes tracked
                self._session.add(call)
            self._kinds[call.id] = str(call.kind.value)
            self._queued[call.id] = []
            self._codes[call.id] = {}

    @asynccontextmanager
    async def savepoint(self, call: Call) -> AsyncIterator[None]:
        call_id = call.id  # a rolled-back savepoint expires the call
        await self._allocations.flush()  # what is given outside is not rolled back
        self._allocations.immediate = True
        try:
            # One flush, when the savepoint is released: the call's update and its
            # timeline entries are not needed by the step's own queries (outbox rows
            # and reply numbers are written directly), so not flushed before each one.
            async with self._session.begin_nested():
                with self._session.no_autoflush:
                    yield
        except BaseException:
            self._allocations.forget()  # the rollback took its numbers back
            # The savepoint's rollback undoes what was flushed; the call is read again
            # as it was before it, so that its changes made in Python go too and the
            # batch's commit leaves it as it was (still due); loaded, not expired, so
            # that nothing (a log showing a traceback's locals) loads it on the side.
            # What was read ahead for it is dropped (asked of the database again).
            self._queued.pop(call_id, None)
            self._codes.pop(call_id, None)
            self._rows = [r for r in self._rows if r["call_id"] != call_id]
            self._entries = [e for e in self._entries if e["call_id"] != call_id]
            await self._session.refresh(call)
            raise
        finally:
            self._allocations.immediate = False

    @asynccontextmanager
    async def unflushed(self) -> AsyncIterator[None]:
        with self._session.no_autoflush:
            yield

    @asynccontextmanager
    async def deferred_writes(self, claim_ahead: ClaimAhead | None = None) -> AsyncIterator[None]:
        self._deferring = True
        self._claimed = []
        try:
            yield
            rows = self._rows
            await self._allocations.flush()
            ahead = await self._claimable(rows, claim_ahead) if claim_ahead else []
            if ahead and claim_ahead is not None:
                self._claimed = await self._insert_claimed([rows[n] for n in ahead], claim_ahead)
                taken = set(ahead)
                rows = [r for n, r in enumerate(rows) if n not in taken]
            if rows:
                await self._session.execute(insert(db.sms_outbox), rows)
            if self._entries:
                await self._session.execute(insert(db.timeline), self._entries)
        finally:
            self._deferring = False
            self._rows, self._entries = [], []

    def claimed_ahead(self) -> list[OutboxItem]:
        return list(self._claimed)

    async def _claimable(self, rows: list[OutboxRow], claim: ClaimAhead) -> list[int]:
        """The positions in ``rows`` of up to ``claim.most`` entries the outbox's own
        round would send alone and at once (see ClaimAhead), in the batch's order."""
        per_message: dict[tuple[str, str, str], int] = {}
        for row in rows:
            key = (row["channel"], row["to_number"], row["call_id"])
            per_message[key] = per_message.get(key, 0) + 1
        candidates = [
            n
            for n, row in enumerate(rows)
            if self._kinds.get(row["call_id"]) in URGENT_KINDS
            and per_message[(row["channel"], row["to_number"], row["call_id"])] == 1
        ]
        numbers = {
            rows[n]["to_number"] for n in candidates if rows[n]["channel"] in BUNDLED_CHANNELS
        }
        # Non-urgent entries of this batch ride along in the round's message too.
        carried = {
            (row["channel"], row["to_number"])
            for row in rows
            if self._kinds.get(row["call_id"]) not in URGENT_KINDS
        }
        if numbers:
            # A number with a non-urgent entry pending: its round carries that entry
            # along in the emergency's message, so that one is left to the round.
            o = db.sms_outbox.c
            carried |= {
                (channel, number)
                for channel, number in await self._session.execute(
                    select(o.channel, o.to_number)
                    .join(db.calls, db.calls.c.id == o.call_id)
                    .where(
                        o.status == "pending",
                        o.to_number.in_(sorted(numbers)),
                        db.calls.c.kind.not_in(URGENT_KINDS),
                    )
                    .distinct()
                )
            }
        picked = [
            n for n in candidates if (rows[n]["channel"], rows[n]["to_number"]) not in carried
        ]
        return picked[: claim.most]

    async def _insert_claimed(self, rows: list[OutboxRow], claim: ClaimAhead) -> list[OutboxItem]:
        claimed = [
            {
                **row,
                "status": "sending",
                "claimed_at": claim.now,
                "claimed_by": claim.instance_id,
                "requested_at": claim.now,
            }
            for row in rows
        ]
        t = db.sms_outbox
        ids = list(
            await self._session.scalars(
                insert(t).returning(t.c.id, sort_by_parameter_order=True), claimed
            )
        )
        return [
            OutboxItem(
                id=row_id,
                call_id=row["call_id"],
                step=row["step"],
                recipient=row["recipient"],
                to_number=row["to_number"],
                body=row["body"],
                attempts=row["attempts"],
                channel=row["channel"],
                method_order=row["method_order"],
                language=row["language"],
                reply_code=row["reply_code"],
                summary=row["summary"],
                created_at=row["created_at"],
                kind=self._kinds[row["call_id"]],
            )
            for row_id, row in zip(ids, rows, strict=True)
        ]

    def add_timeline(self, entry: TimelineEntry) -> None:
        if not self._deferring:
            self._session.add(entry)
            return
        self._entries.append(
            {
                "call_id": entry.call_id,
                "at": entry.at,
                "actor": entry.actor,
                "action": entry.action,
                "channel": entry.channel,
                "detail": entry.detail,
            }
        )

    async def reply_code(self, phone: str, call_id: str, now: datetime) -> int:
        codes = self._codes.get(call_id)
        if codes is None:  # a call not read ahead: the one-by-one way
            await self._allocations.flush()
            self._allocations.forget()
            return await replycodes.assign(self._session, phone, call_id, now)
        if phone not in codes:
            codes[phone] = await self._allocations.take(phone, call_id, now)
            if not self._deferring:
                await self._allocations.flush()
        return codes[phone]

    async def queue_notifications(self, rows: list[OutboxRow]) -> None:
        if self._deferring:
            self._rows.extend(rows)
        else:
            await self._session.execute(insert(db.sms_outbox), rows)
        for row in rows:
            queued = self._queued.get(row["call_id"])
            if queued is not None:
                queued.append((row.get("timer"), row["step"], row["recipient"], row["created_at"]))

    async def queued_for_step(
        self, call_id: str, timer: str, step: int, since: datetime
    ) -> set[str]:
        queued = self._queued.get(call_id)
        if queued is not None:
            return {r for tm, st, r, at in queued if tm == timer and st == step and at >= since}
        t = db.sms_outbox.c
        found = await self._session.scalars(
            select(t.recipient)
            .where(
                t.call_id == call_id,
                t.timer == timer,
                t.step == step,
                t.created_at >= since,
                t.status != "cancelled",
            )
            .distinct()
        )
        return set(found)
