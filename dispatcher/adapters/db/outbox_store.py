"""The database side of :class:`dispatcher.services.outbox.OutboxStore`: claiming,
throttling, bundling, sending and delivery reports of the ``sms_outbox`` table, in one
session. Pending entries are read with the rule of ``Call.wants_notification`` in SQL
(:func:`outbox_row_wanted`) and locked with SKIP LOCKED, so two outboxes never send one
entry twice. A number with a message in flight (an entry "sending") is passed over
until that message is done, which keeps one number's messages in order and its
throttle honest while other numbers' messages leave concurrently; only an emergency or
a fall does not wait for it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from dispatcher.adapters.db import reply_codes as replycodes
from dispatcher.adapters.db import schema as db
from dispatcher.core.calls import DISPATCH_TIMER, Call, CallState, TimelineEntry
from dispatcher.core.notifications.bundle import URGENT_KINDS
from dispatcher.core.notifications.item import OutboxItem
from dispatcher.core.notifications.outcomes import DeliveryReport
from dispatcher.services.channels import Receipt
from dispatcher.services.notify import OutboxRow
from dispatcher.services.outbox import PendingWork, Released, ReportTarget, RowCheck

o = db.sms_outbox

_COLUMNS = (
    o.c.id,
    o.c.call_id,
    o.c.step,
    o.c.recipient,
    o.c.to_number,
    o.c.body,
    o.c.attempts,
    o.c.channel,
    o.c.method_order,
    o.c.language,
    o.c.reply_code,
    o.c.summary,
    o.c.created_at,
    db.calls.c.kind,
)


def outbox_row_wanted() -> ColumnElement[bool]:
    """Whether an outbox row's call still wants it sent (joined on ``calls``): an
    unacknowledged call, or an acknowledged one whose acknowledgement timeout queued
    the row (created since the timeout fell). The same rule as
    ``Call.wants_notification``."""
    return or_(
        db.calls.c.state == CallState.OPEN.value,
        and_(
            db.calls.c.state == CallState.ACKNOWLEDGED.value,
            db.calls.c.ack_timeout_at.is_not(None),
            o.c.created_at >= db.calls.c.ack_timeout_at,
        ),
        and_(o.c.timer == DISPATCH_TIMER, db.calls.c.state != CallState.RESOLVED.value),
    )


def _number_in_flight() -> ColumnElement[bool]:
    """Whether the row's number has another message on the row's channel in flight."""
    flying = o.alias("in_flight")
    return exists().where(
        flying.c.status == "sending",
        flying.c.to_number == o.c.to_number,
        flying.c.channel == o.c.channel,
    )


def _item(row: Row[Any]) -> OutboxItem:
    return OutboxItem(
        id=row.id,
        call_id=row.call_id,
        step=row.step,
        recipient=row.recipient,
        to_number=row.to_number,
        body=row.body,
        attempts=row.attempts,
        channel=row.channel,
        method_order=row.method_order,
        language=row.language,
        reply_code=row.reply_code,
        summary=row.summary,
        created_at=row.created_at,
        kind=row.kind,
    )


def _entries() -> Select[Any]:
    return select(*_COLUMNS).join(db.calls, db.calls.c.id == o.c.call_id)


def _pending() -> Select[Any]:
    """Pending rows still wanted, by due time then as queued: the order the index on
    (status, next_attempt_at) gives, so that a LIMIT stops the walk early."""
    return (
        _entries()
        .where(
            o.c.status == "pending",
            outbox_row_wanted(),
            # An emergency or a fall is never held back, not even by its number's
            # message in flight (it leaves beside it, alone: its companions wait).
            or_(db.calls.c.kind.in_(URGENT_KINDS), not_(_number_in_flight())),
        )
        .order_by(o.c.next_attempt_at, o.c.id)
    )


# How many of its numbers' pending entries a round looks at for companions.
COMPANION_CANDIDATES = 200

# The statements of every round, built once with their parameters bound at execution:
# building them (an alias's columns, each comparison's bind parameter) cost more than
# running them, about half the outbox's time with 10,000 open calls.
_IDS: Any = bindparam("ids", expanding=True)
_DUE_ROWS = (
    _pending()
    .where(o.c.next_attempt_at <= bindparam("now", type_=o.c.next_attempt_at.type))
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True, of=o)
)
_CANDIDATES = (
    select(o.c.id)
    .where(
        o.c.to_number.in_(bindparam("numbers", expanding=True)),
        o.c.channel == bindparam("channel"),
        o.c.status == "pending",
        o.c.id.not_in(bindparam("besides", expanding=True)),
    )
    # No ORDER BY: the index gives each number's entries in queued order, and a sort
    # would read them all before the LIMIT.
    .limit(COMPANION_CANDIDATES)
)
_COMPANIONS = (
    _pending()
    .where(o.c.id.in_(_IDS), db.calls.c.kind.not_in(URGENT_KINDS))
    .order_by(None)
    .order_by(o.c.id)  # in queued order, and found by key
    .with_for_update(skip_locked=True, of=o)
)
# Rows by id; the columns to set are the execution's other parameters (with
# _COUNT_ATTEMPT's own attempts + 1 beside them).
_SET_BY_IDS = update(o).where(o.c.id.in_(_IDS))
_COUNT_ATTEMPT = _SET_BY_IDS.values(attempts=o.c.attempts + 1)


def _mark_sent() -> Any:
    # One statement: entries a report already moved on (failed, or pending for a
    # retry) keep their status and what the report said; only the count and the time
    # of the send are theirs too. (SET's own names are taken: r_ for the receipt.)
    sending = o.c.status == "sending"
    sid = bindparam("r_sid", type_=o.c.provider_sid.type)
    return _SET_BY_IDS.values(
        status=case((sending, "sent"), else_=o.c.status),
        provider_sid=case((sending, sid), else_=o.c.provider_sid),
        # A status report may have come first: keep what it said.
        provider_status=case(
            (
                sending & o.c.provider_sid.is_distinct_from(sid),
                bindparam("r_status", type_=o.c.provider_status.type),
            ),
            else_=o.c.provider_status,
        ),
        attempts=o.c.attempts + 1,
        sent_at=bindparam("r_now", type_=o.c.sent_at.type),
        error=case((sending, None), else_=o.c.error),
    )


_MARK_SENT = _mark_sent()


def _outbox_calls() -> Any:
    return o.join(db.calls, db.calls.c.id == o.c.call_id)


# What the outbox has to do, asked at every round (most of them idle), each part a
# walk of an index that stops at its first row: with a backlog of 20,000 pending SMS
# (10,000 open calls), one aggregate over every pending row took 28 ms a round and,
# with due()'s scan, most of the database thread's time.
# The earliest due time of a pending row still wanted (ix_sms_outbox_status_next).
_NEXT_DUE = (
    select(o.c.next_attempt_at)
    .select_from(_outbox_calls())
    .where(o.c.status == "pending", outbox_row_wanted())
    .order_by(o.c.next_attempt_at)
    .limit(1)
)
# The oldest claim: the rows "sending" are at most the outbox's requests in flight.
_OLDEST_CLAIM = select(func.min(o.c.claimed_at)).where(o.c.status == "sending")
# Whether a pending row's call no longer wants it: this one reads every pending row,
# so the outbox asks it only now and then (SmsOutbox.UNWANTED_SWEEP).
_ANY_UNWANTED = select(func.count()).select_from(
    select(o.c.id)
    .select_from(_outbox_calls())
    .where(o.c.status == "pending", not_(outbox_row_wanted()))
    .limit(1)
    .subquery()
)


def _unclaimed() -> dict[str, Any]:
    """The values that make an entry nobody's claim again."""
    return {"status": "pending", "bundle_id": None, "claimed_by": None, "requested_at": None}


class SqlOutboxStore:
    """:class:`~dispatcher.services.outbox.OutboxStore` bound to one session."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _items(
        self, query: Select[Any], params: dict[str, Any] | None = None
    ) -> list[OutboxItem]:
        return [_item(r) for r in (await self._session.execute(query, params)).all()]

    async def _update(self, ids: Sequence[int], **values: Any) -> None:
        """Set these columns (plain values, no expressions) on the rows ``ids``."""
        await self._session.execute(_SET_BY_IDS, {"ids": list(ids), **values})

    async def _release(self, which: ColumnElement[bool]) -> list[Released]:
        claimed = and_(o.c.status == "sending", which)
        rows = (
            await self._session.execute(
                select(o.c.id, o.c.call_id, o.c.channel, o.c.to_number, o.c.requested_at)
                .where(claimed)
                .order_by(o.c.id)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if not rows:
            return []
        await self._update([r.id for r in rows], **_unclaimed())
        return [
            Released(r.id, r.call_id, r.channel, r.to_number, r.requested_at is not None)
            for r in rows
        ]

    async def pending_work(self, *, unwanted: bool = True) -> PendingWork:
        next_due = await self._session.scalar(_NEXT_DUE)
        oldest_claim = await self._session.scalar(_OLDEST_CLAIM)
        found = int(await self._session.scalar(_ANY_UNWANTED) or 0) if unwanted else 0
        return PendingWork(next_due, found, oldest_claim)

    async def release_stale_claims(self, claimed_before: datetime) -> list[Released]:
        return await self._release(o.c.claimed_at < claimed_before)

    async def release_claims_besides(self, instance_id: str) -> list[Released]:
        return await self._release(or_(o.c.claimed_by.is_(None), o.c.claimed_by != instance_id))

    async def release_claimed(self, ids: Sequence[int], instance_id: str) -> list[Released]:
        return await self._release(and_(o.c.id.in_(list(ids)), o.c.claimed_by == instance_id))

    async def unwanted_pending(self, ids: Sequence[int] | None = None) -> list[RowCheck]:
        query = (
            select(o.c.id, o.c.call_id, db.calls.c.state)
            .join(db.calls, db.calls.c.id == o.c.call_id)
            .where(o.c.status == "pending", not_(outbox_row_wanted()))
            .order_by(o.c.id)
        )
        if ids is not None:
            query = query.where(o.c.id.in_(list(ids)))
        rows = (await self._session.execute(query.with_for_update(skip_locked=True, of=o))).all()
        return [RowCheck(r.id, r.call_id, False, r.state) for r in rows]

    async def cancel(self, ids: Sequence[int], reason: str) -> None:
        await self._update(
            ids, status="cancelled", bundle_id=None, requested_at=None, error=reason[:500]
        )

    async def check_claimed(self, ids: Sequence[int], instance_id: str) -> list[RowCheck]:
        rows = (
            await self._session.execute(
                select(o.c.id, o.c.call_id, db.calls.c.state, outbox_row_wanted().label("wanted"))
                .join(db.calls, db.calls.c.id == o.c.call_id)
                .where(
                    o.c.id.in_(list(ids)),
                    o.c.status == "sending",
                    o.c.claimed_by == instance_id,
                )
                .order_by(o.c.id)
                .with_for_update(of=o)
            )
        ).all()
        return [RowCheck(r.id, r.call_id, bool(r.wanted), r.state) for r in rows]

    async def mark_requested(self, ids: Sequence[int], now: datetime) -> None:
        await self._update(ids, requested_at=now)

    async def release(self, ids: Sequence[int]) -> None:
        await self._update(ids, **_unclaimed())

    async def due(self, now: datetime, limit: int) -> list[OutboxItem]:
        return await self._items(_DUE_ROWS, {"now": now, "limit": limit})

    async def last_sent_at(self, number: str, channel: str) -> datetime | None:
        last: datetime | None = await self._session.scalar(
            select(func.max(o.c.sent_at)).where(
                o.c.to_number == number, o.c.channel == channel, o.c.sent_at.is_not(None)
            )
        )
        return last

    async def hold(self, ids: Sequence[int], until: datetime) -> None:
        await self._update(ids, next_attempt_at=until)

    async def bundle_companions(
        self, numbers: Sequence[str], channel: str, besides: Sequence[int]
    ) -> list[OutboxItem]:
        # Among the numbers' first pending entries only: an emergency's are never
        # companions, and when thousands of them wait for one number (the hotline,
        # 10,000 open calls) checking every one of them took 18 ms a round. An entry
        # past these leaves when it is due itself, or with a later round's message.
        # Two statements: given the ids, the second is a lookup by key.
        candidates = (
            await self._session.scalars(
                _CANDIDATES,
                {"numbers": list(numbers), "channel": channel, "besides": list(besides)},
            )
        ).all()
        if not candidates:
            return []
        return await self._items(_COMPANIONS, {"ids": list(candidates)})

    async def claim(
        self,
        ids: Sequence[int],
        now: datetime,
        bundle_id: int | None,
        instance_id: str,
        *,
        requested: bool = False,
    ) -> None:
        await self._update(
            ids,
            status="sending",
            claimed_at=now,
            bundle_id=bundle_id,
            claimed_by=instance_id,
            requested_at=now if requested else None,
        )

    async def mark_sent(self, ids: Sequence[int], receipt: Receipt, now: datetime) -> None:
        await self._session.execute(
            _MARK_SENT,
            {"ids": list(ids), "r_sid": receipt.sid, "r_status": receipt.status, "r_now": now},
        )

    async def count_attempt(self, ids: Sequence[int]) -> None:
        await self._session.execute(_COUNT_ATTEMPT, {"ids": list(ids)})

    async def retry(
        self, ids: Sequence[int], at: datetime, error: str, *, count_attempt: bool
    ) -> None:
        values: dict[str, Any] = {**_unclaimed(), "next_attempt_at": at, "error": error[:500]}
        counted = _COUNT_ATTEMPT if count_attempt else _SET_BY_IDS  # its SET and these
        await self._session.execute(counted, {"ids": list(ids), **values})

    async def mark_failed(self, ids: Sequence[int], reason: str, code: int | None) -> None:
        await self._update(
            ids,
            status="failed",
            bundle_id=None,
            requested_at=None,
            error=reason[:500],
            error_code=code,
        )

    async def call(self, call_id: str) -> Call | None:
        return await self._session.get(Call, call_id)

    def add_timeline(self, entry: TimelineEntry) -> None:
        self._session.add(entry)

    async def reply_code(self, phone: str, call_id: str, now: datetime) -> int:
        return await replycodes.assign(self._session, phone, call_id, now)

    async def queue_notifications(self, rows: list[OutboxRow]) -> None:
        await self._session.execute(insert(o), rows)

    async def report_target(self, row_id: int) -> ReportTarget | None:
        found = (
            await self._session.execute(
                select(o.c.status, o.c.channel, o.c.provider_sid, o.c.provider_status)
                .where(o.c.id == row_id)
                .with_for_update()
            )
        ).first()
        if found is None:
            return None
        return ReportTarget(found.status, found.channel, found.provider_sid, found.provider_status)

    async def report_members(self, row_id: int, status: str, bundled: bool) -> list[OutboxItem]:
        members: ColumnElement[bool] = o.c.id == row_id
        if bundled:
            members = or_(members, o.c.bundle_id == row_id)
        return await self._items(
            _entries().where(members, o.c.status == status).with_for_update(of=o)
        )

    async def record_report(self, ids: Sequence[int], report: DeliveryReport) -> None:
        values: dict[str, Any] = {
            "provider_status": report.status[:16],
            "error_code": report.error_code,
            "answered_by": report.answered_by,
        }
        if report.sid:
            values["provider_sid"] = report.sid
        await self._update(ids, **values)
