"""Dispatching responders: the service side of ``dispatcher.core.dispatches``.

:class:`DispatchDesk` makes and changes dispatches for the operators' service
(``CallOperations`` hands its dispatch methods to it), each in one transaction with
the call's change, its timeline and the SMS telling the responder where to go.
:class:`OverdueDispatches` raises the calls whose responders are overdue, polled by
the escalator's cycle from the due times in the database, so that a restart loses
none and each fires once. :func:`presence_arrival` is the intake's: a presence press
marks the earliest responder on the way arrived, in the press's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

import structlog

from dispatcher.core import dispatches as rules
from dispatcher.core.calls import (
    DISPATCH_TIMER,
    Call,
    CallState,
    TimelineEntry,
    Transition,
)
from dispatcher.core.contact_methods import person_phone
from dispatcher.core.directory import Directory, Level, Resident, Staff
from dispatcher.core.directory_holder import DirectoryHolder, ReadsDirectory, hold
from dispatcher.core.dispatches import (
    Dispatch,
    DispatchRequest,
    InvalidDispatchError,
    ResponderKind,
)
from dispatcher.core.messages import call_summary
from dispatcher.core.scope import can_see
from dispatcher.core.texts import language_of
from dispatcher.services.clock import Clock
from dispatcher.services.ports import Transactions
from dispatcher.services.read_models import (
    CallNotFoundError,
    DispatchChoice,
    DispatchView,
    NotificationView,
)

log = structlog.get_logger(__name__)

# Overdue dispatches raised per poll (the rest in the next, at once).
OVERDUE_BATCH = 100


class DispatchStore(Protocol):
    """The dispatch queries, in the caller's transaction (``adapters.db.dispatch_store``)."""

    async def dispatches(self, call_ids: Sequence[str]) -> list[Dispatch]:
        """The dispatches of these calls, by call and number."""
        ...

    async def lock_dispatches(self, call_id: str) -> list[Dispatch]: ...

    async def add_dispatch(self, d: Dispatch) -> None:
        """Insert it (its ``id`` is set)."""
        ...

    async def save_dispatch(self, d: Dispatch) -> None: ...

    async def due_dispatches(self, now: datetime, limit: int) -> list[tuple[int, str]]:
        """(id, call id) of dispatches whose overdue time has come, the earliest first."""
        ...

    async def lock_dispatch(self, dispatch_id: int) -> Dispatch | None: ...

    async def dispatch_reply_code(self, phone: str, call_id: str, now: datetime) -> int: ...

    async def queue_dispatch_sms(self, row: dict[str, Any]) -> int:
        """Insert one outbox row; its id."""
        ...

    async def cancel_dispatch_sms(self, row_id: int, why: str) -> bool: ...


class DispatchCallStore(DispatchStore, Protocol):
    """A dispatch's transaction: the call locked, its changes recorded."""

    async def lock_call(self, call_id: str) -> Call | None: ...

    async def record(self, call: Call, transition: Transition, now: datetime) -> None: ...

    def add_timeline(self, entry: TimelineEntry) -> None: ...


def view(d: Dispatch, statuses: dict[int, str] | None = None) -> DispatchView:
    """The read model of ``d``; ``statuses`` are the call's outbox rows' (id → status)."""
    found = statuses or {}
    return DispatchView(
        number=d.number,
        responder_kind=d.responder_kind.value,
        responder_ref=d.responder_ref,
        responder_name=d.responder_name,
        responder_phone=d.responder_phone,
        dispatched_by=d.dispatched_by,
        channel=d.channel,
        dispatched_at=d.dispatched_at,
        expected_at=d.expected_at,
        state=d.state.value,
        overdue_at=d.overdue_at,
        arrived_at=d.arrived_at,
        arrived_by=d.arrived_by,
        ended_at=d.ended_at,
        ended_by=d.ended_by,
        note=d.note,
        notice_status=found.get(d.notice_id) if d.notice_id else None,
        alert_status=found.get(d.alert_id) if d.alert_id else None,
    )


def views(
    dispatches: Sequence[Dispatch], notifications: Sequence[NotificationView]
) -> list[DispatchView]:
    statuses = {n.id: n.status for n in notifications}
    return [view(d, statuses) for d in dispatches]


def _sms_row(
    call: Call,
    resident: Resident | None,
    *,
    recipient: str,
    to_number: str,
    language: str,
    body: str,
    code: int,
    now: datetime,
) -> dict[str, Any]:
    """One outbox row of a dispatch, as the escalation's are (``notify.outbox_values``),
    marked with ``DISPATCH_TIMER`` so that it is wanted on an acknowledged call."""
    return {
        "call_id": call.id,
        "step": 0,
        "recipient": recipient,
        "to_number": to_number,
        "body": body,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "channel": "sms",
        "method_order": 1,
        "language": language,
        "reply_code": code,
        "summary": call_summary(call, resident, language),
        "timer": DISPATCH_TIMER,
    }


class DispatchDesk(ReadsDirectory):
    """Dispatch, mark arrived, stand down: each one transaction on the locked call.
    ``in_scope`` is the operators' service's scope rule (checked on the locked row)."""

    def __init__(
        self,
        tx: Transactions[DispatchCallStore],
        directory: Directory | DirectoryHolder,
        clock: Clock,
        in_scope: Callable[[Call, Staff | None], bool],
        on_change: Callable[[], None] = lambda: None,
        on_sms: Callable[[], None] = lambda: None,
    ) -> None:
        self._tx = tx
        self._directories = hold(directory)
        self._clock = clock
        self._in_scope = in_scope
        self._on_change = on_change  # the device outbox (a take, an arrival)
        self._on_sms = on_sms  # the SMS outbox

    async def dispatch(
        self,
        call_id: str,
        staff_id: str,
        channel: str,
        request: DispatchRequest,
        viewer: Staff | None,
        *,
        notify: bool = True,
    ) -> None:
        now = self._clock.now()
        texted = False
        async with self._tx.begin() as store:
            call = await self._locked(store, call_id, viewer)
            responder = rules.responder_for(self._directory, call, request)
            existing = await store.lock_dispatches(call.id)
            number = max((d.number for d in existing), default=0) + 1
            made = rules.dispatch(
                call, responder, number, staff_id, channel, now, request.eta_minutes, request.note
            )
            d = made.dispatch
            await store.add_dispatch(d)
            if notify and responder.texted and responder.phone:
                d.notice_id = await self._notice(store, call, d, responder, staff_id, now)
                made.transition.note(
                    now, "system", "dispatch_sms_queued", "sms", f"#{d.number} to {responder.phone}"
                )
                await store.save_dispatch(d)
                texted = True
            await store.record(call, made.transition, now)
        log.info(
            "responder_dispatched",
            call_id=call_id,
            number=number,
            kind=responder.kind.value,
            by=staff_id,
        )
        self._on_change()
        if texted:
            self._on_sms()

    async def mark_arrived(
        self, call_id: str, number: int, staff_id: str, channel: str, viewer: Staff | None
    ) -> None:
        now = self._clock.now()
        async with self._tx.begin() as store:
            call = await self._locked(store, call_id, viewer)
            d = await self._one(store, call.id, number)
            transition = rules.mark_arrived(d, call, staff_id, channel, now)
            await store.save_dispatch(d)
            await store.record(call, transition, now)
        log.info("responder_arrived", call_id=call_id, number=number, by=staff_id)
        self._on_change()

    async def stand_down(
        self,
        call_id: str,
        number: int,
        staff_id: str,
        channel: str,
        note: str,
        viewer: Staff | None,
    ) -> None:
        now = self._clock.now()
        async with self._tx.begin() as store:
            call = await self._locked(store, call_id, viewer)
            d = await self._one(store, call.id, number)
            entry = rules.stand_down(d, staff_id, channel, now, note)
            await store.save_dispatch(d)
            if d.notice_id is not None:
                await store.cancel_dispatch_sms(d.notice_id, "responder stood down")
            call.updated_at = now
            store.add_timeline(entry)
        log.info("responder_stood_down", call_id=call_id, number=number, by=staff_id)

    def choices(self, call: Call) -> list[DispatchChoice]:
        """The staff of the call's community and its street, the resident's contacts,
        the emergency services: whom the call's page offers."""
        d = self._directory
        community = d.areas.get(call.community_id or "")
        areas = {community.id, community.parent_id} if community else set()
        staff = sorted(
            (
                s
                for s in d.staff.values()
                if s.area_id in areas and can_see(d, s, call.community_id)
            ),
            # The community's own staff first, then the street's.
            key=lambda s: (d.areas[s.area_id].level is not Level.COMMUNITY, s.name),
        )
        out = [
            DispatchChoice(
                kind=ResponderKind.STAFF.value,
                ref=s.id,
                name=s.name,
                detail=d.areas[s.area_id].name,
                phone=s.phone,
            )
            for s in staff
        ]
        resident = d.residents.get(call.resident_id or "")
        for order, c in enumerate(resident.contacts if resident else (), start=1):
            out.append(
                DispatchChoice(
                    kind=ResponderKind.CONTACT.value,
                    ref=str(order),
                    name=c.name,
                    detail=c.relation,
                    phone=c.phone,
                    key_holder=c.key_holder,
                )
            )
        out.extend(
            DispatchChoice(kind=ResponderKind.SERVICE.value, ref=n, name=n) for n in rules.SERVICES
        )
        return out

    async def _locked(self, store: DispatchCallStore, call_id: str, viewer: Staff | None) -> Call:
        call = await store.lock_call(call_id)
        if call is None or not self._in_scope(call, viewer):
            raise CallNotFoundError(f"no call {call_id}")
        return call

    async def _one(self, store: DispatchCallStore, call_id: str, number: int) -> Dispatch:
        for d in await store.lock_dispatches(call_id):
            if d.number == number:
                return d
        raise InvalidDispatchError(f"call {call_id} has no dispatch #{number}")

    async def _notice(
        self,
        store: DispatchStore,
        call: Call,
        d: Dispatch,
        responder: rules.Responder,
        by: str,
        now: datetime,
    ) -> int:
        assert responder.phone is not None
        resident = self._directory.residents.get(call.resident_id or "")
        language = language_of(responder.language)
        sender = self._directory.staff.get(by)
        body = rules.notice_sms(
            call, resident, self._directory, d, language, sender.name if sender else by
        )
        code = await store.dispatch_reply_code(responder.phone, call.id, now)
        recipient = responder.ref or f"dispatch:{d.number}"
        return await store.queue_dispatch_sms(
            _sms_row(
                call,
                resident,
                recipient=recipient,
                to_number=responder.phone,
                language=language,
                body=body,
                code=code,
                now=now,
            )
        )


class OverdueDispatches(ReadsDirectory):
    """Raises the calls whose responders have not arrived by their expected time:
    each overdue dispatch once, with its timeline entry and an SMS to the call's owner
    in one transaction. Run by the escalator's cycle (``Escalator.also_poll``)."""

    def __init__(
        self,
        tx: Transactions[DispatchCallStore],
        directory: Directory | DirectoryHolder,
        clock: Clock,
        on_sms: Callable[[], None] = lambda: None,
    ) -> None:
        self._tx = tx
        self._directories = hold(directory)
        self._clock = clock
        self._on_sms = on_sms

    async def run_due(self) -> int:
        """Raise the calls of the dispatches due now; how many were taken (0: none)."""
        now = self._clock.now()
        async with self._tx.read() as reader:  # most polls find none: no write lock
            due = await reader.due_dispatches(now, OVERDUE_BATCH)
        if not due:
            return 0
        raised: list[tuple[str, int]] = []
        async with self._tx.begin() as store:
            for dispatch_id, call_id in due:
                call = await store.lock_call(call_id)
                d = await store.lock_dispatch(dispatch_id)
                if call is None or d is None:
                    continue
                entry = rules.take_overdue(d, call, now)  # re-checked under the lock
                if entry is not None:
                    store.add_timeline(entry)
                    d.alert_id = await self._alert(store, call, d, now)
                    raised.append((call.id, d.number))
                await store.save_dispatch(d)
        for call_id, number in raised:
            log.warning("responder_overdue", call_id=call_id, number=number)
        if raised:
            self._on_sms()
        return len(due)

    async def _alert(
        self, store: DispatchCallStore, call: Call, d: Dispatch, now: datetime
    ) -> int | None:
        owner = rules.owner_of(call, d)
        phone = person_phone(self._directory, owner)
        if phone is None:
            log.error("responder_overdue_nobody_to_tell", call_id=call.id, owner=owner)
            return None
        staff = self._directory.staff.get(owner)
        language = language_of(staff.language if staff else None)
        resident = self._directory.residents.get(call.resident_id or "")
        code = await store.dispatch_reply_code(phone, call.id, now)
        row_id = await store.queue_dispatch_sms(
            _sms_row(
                call,
                resident,
                recipient=owner,
                to_number=phone,
                language=language,
                body=rules.overdue_sms(call, resident, d, language),
                code=code,
                now=now,
            )
        )
        store.add_timeline(
            TimelineEntry(
                now,
                "system",
                "dispatch_sms_queued",
                "sms",
                f"#{d.number} overdue: to {owner}",
                call.id,
            )
        )
        return row_id


async def presence_arrival(
    store: DispatchStore, call: Call, transition: Transition, now: datetime
) -> Dispatch | None:
    """The presence key was pressed on ``call``'s device: the earliest responder on
    the way is marked arrived, on the press's transition (``rules.on_presence``)."""
    if call.state is CallState.RESOLVED:
        return None
    going = [d for d in await store.lock_dispatches(call.id) if d.going]
    if not going:
        return None
    arrived = rules.on_presence(going, now)
    if arrived is not None:
        await store.save_dispatch(arrived)
        entry = rules.presence_note(arrived, now)
        transition.note(entry.at, entry.actor, entry.action, entry.channel, entry.detail)
    return arrived
