"""The operator-facing service layer: the real implementation of ``read_models.Operations``.

Acknowledging or resolving is one transaction: the call's new state, its timeline,
the device's update and the cancellation of every SMS not yet sent for it commit
together, so no SMS leaves for a call after its acknowledgement has committed.

A ``viewer`` (the staff member asking) sees and changes only the calls of their area
and below, and a call outside it is not found, as a missing one is: nobody learns of
another area's calls by guessing ids. ``dispatcher.core.scope`` has the rules.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

import structlog

from dispatcher.core import call_protocols as scripts
from dispatcher.core import calls as lifecycle
from dispatcher.core import reports, scope
from dispatcher.core.calls import (
    Call,
    CallState,
    InvalidTransitionError,
    Outcome,
    TimelineEntry,
    Transition,
)
from dispatcher.core.directory import Directory, Level, Resident, Role, Staff, mask_id_card
from dispatcher.core.directory_holder import DirectoryHolder, ReadsDirectory, hold
from dispatcher.core.dispatches import DispatchRequest
from dispatcher.core.rota import on_duty as rota
from dispatcher.services.call_protocols import (
    CallProtocolsView,
    FixedProtocols,
    ProtocolSource,
    protocols_view,
)
from dispatcher.services.clock import Clock
from dispatcher.services.device_state import DeviceLink, NoRecentContacts, RecentContacts
from dispatcher.services.device_state import device_view as _device_view
from dispatcher.services.dispatches import DispatchDesk, DispatchStore, views
from dispatcher.services.handover_sheet import PRINTED, build_sheet
from dispatcher.services.ports import Transactions
from dispatcher.services.read_models import (
    CallNotFoundError,
    CallView,
    ContactView,
    DispatchChoice,
    HandoverSheetView,
    NotificationView,
    OnDutyView,
    ResidentView,
    StaffView,
    TimelineEntryView,
)

log = structlog.get_logger(__name__)

LIST_LIMIT = 500
_STATES = {s.value for s in CallState}


@dataclass(frozen=True)
class CallTimes:
    """The columns of one call that the answer-time figures read."""

    id: str
    kind: str
    opened_at: datetime
    answered_at: datetime | None
    answered_by: str | None
    answered_channel: str | None
    answered_level: str | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None


class CallStore(DispatchStore, Protocol):
    """What the operators' service reads and writes, bound to one transaction (the
    responders dispatched to calls too: ``DispatchStore``)."""

    async def latest_calls(
        self,
        limit: int,
        *,
        active_only: bool = False,
        state: CallState | None = None,
        communities: frozenset[str] | None = None,
    ) -> list[Call]:
        """The newest calls first, at most ``limit``: only unresolved ones if
        ``active_only``, only those in ``state`` if given, only those of one of the
        ``communities`` if given (``None``: every call, those of no community too)."""
        ...

    async def call(self, call_id: str) -> Call | None: ...

    async def timeline(self, call_id: str) -> list[TimelineEntry]:
        """The call's timeline, oldest first."""
        ...

    async def notifications(self, call_id: str) -> list[NotificationView]:
        """Every SMS or voice call queued for the call, in the order queued."""
        ...

    async def lock_call(self, call_id: str) -> Call | None:
        """The call, locked for update until the transaction ends."""
        ...

    async def record(self, call: Call, transition: Transition, now: datetime) -> None:
        """Append the transition's timeline and queue its device update."""
        ...

    async def cancel_pending_sms(self, call_id: str, why: str) -> int:
        """Cancel the call's SMS not yet sent; how many were cancelled."""
        ...

    def add_timeline(self, entry: TimelineEntry) -> None: ...

    async def call_times(self, start: datetime, end: datetime) -> list[CallTimes]:
        """The calls opened in ``[start, end)``."""
        ...

    async def device_link(self, device_id: str) -> DeviceLink | None:
        """The device's stored link (None: never heard from)."""
        ...

    async def open_technical_alerts(self, device_id: str) -> list[Call]:
        """The device's technical alerts not yet resolved, oldest first."""
        ...


class CallOperations(ReadsDirectory):
    def __init__(
        self,
        tx: Transactions[CallStore],
        directory: Directory | DirectoryHolder,
        clock: Clock,
        on_change: Callable[[], None] = lambda: None,
        on_sms: Callable[[], None] = lambda: None,
        contacts: RecentContacts | None = None,
        protocols: ProtocolSource | None = None,
    ) -> None:
        self._tx = tx
        self._directories = hold(directory)
        self._clock = clock
        self._on_change = on_change  # wakes the device outbox
        # Responders sent to calls (dispatcher.services.dispatches); on_sms wakes the
        # SMS outbox for the message telling a responder where to go.
        self._desk = DispatchDesk(tx, self._directories, clock, self._in_scope, on_change, on_sms)
        # Contact held in memory, newer than the stored links (the heartbeat tracker).
        self._contacts = contacts or NoRecentContacts()
        self._protocols = protocols or FixedProtocols()  # the operator scripts

    def staff_for_token(self, token: str) -> Staff | None:
        # Constant-time comparison against every token: no timing hint of a near miss.
        found = None
        for candidate, staff in self._directory.staff_by_token.items():
            if hmac.compare_digest(candidate.encode(), token.encode()):
                found = staff
        return found

    async def list_calls(
        self, state: str | None = None, viewer: Staff | None = None
    ) -> list[CallView]:
        active_only, only_state = False, None
        if state in (None, "active"):
            active_only = True
        elif state in _STATES:
            only_state = CallState(state)
        elif state != "all":
            raise ValueError(f"unknown state {state!r}")
        # Filtered in the query, not after it: the newest LIST_LIMIT calls of others
        # must not hide the viewer's own.
        communities = None if viewer is None else scope.visible_communities(self._directory, viewer)
        if communities is not None and not communities:
            return []
        async with self._tx.read() as store:
            found = await store.latest_calls(
                LIST_LIMIT, active_only=active_only, state=only_state, communities=communities
            )
            sent = await store.dispatches([c.id for c in found])
        out = [self._view(c, viewer) for c in found]
        by_call = {v.call_id: v for v in out}
        for d in sent:  # the queue shows "responder on the way / overdue"
            by_call[d.call_id].dispatches.extend(views([d], []))
        return out

    async def get_call(self, call_id: str, viewer: Staff | None = None) -> CallView:
        async with self._tx.read() as store:
            call = await store.call(call_id)
            if call is None or not self._in_scope(call, viewer):
                raise CallNotFoundError(f"no call {call_id}")
            entries = await store.timeline(call_id)
            notifications = await store.notifications(call_id)
            view = self._view(call, viewer)
            view.timeline = [
                TimelineEntryView(
                    at=e.at, actor=e.actor, action=e.action, channel=e.channel, detail=e.detail
                )
                for e in entries
            ]
            view.notifications = notifications
            view.dispatches = views(await store.dispatches([call_id]), notifications)
            view.device = _device_view(
                call.device_id,
                await store.device_link(call.device_id),
                self._contacts.latest(call.device_id),
                await store.open_technical_alerts(call.device_id),
                self._clock.now(),
            )
        return view

    async def handover_sheet(
        self, call_id: str, staff_id: str, channel: str, *, viewer: Staff | None = None
    ) -> HandoverSheetView:
        """The hand-over sheet, as ``viewer`` may see it (see ``handover_sheet``);
        printing it goes on the call's timeline, after what the sheet lists."""
        call = await self.get_call(call_id, viewer)  # raises CallNotFoundError
        now = self._clock.now()
        async with self._tx.begin() as store:
            locked = await store.lock_call(call_id)
            # The scope again, on the locked row: it is what the record is added to.
            if locked is None or not self._in_scope(locked, viewer):
                raise CallNotFoundError(f"no call {call_id}")
            store.add_timeline(TimelineEntry(now, staff_id, PRINTED, channel, "", call_id))
        log.info("handover_sheet_printed", call_id=call_id, staff_id=staff_id, channel=channel)
        return build_sheet(call, self._directory.staff, staff_id, channel, now)

    async def acknowledge(
        self,
        call_id: str,
        staff_id: str,
        channel: str,
        note: str = "",
        *,
        viewer: Staff | None = None,
    ) -> CallView:
        return await self._change(
            call_id, lambda c, now: lifecycle.acknowledge(c, staff_id, channel, now, note), viewer
        )

    async def take(
        self, call_id: str, staff_id: str, channel: str, *, viewer: Staff | None = None
    ) -> CallView:
        """首问负责: acknowledge the call as its owner; raises ``AlreadyTakenError``
        when someone else holds it."""
        return await self._change(
            call_id, lambda c, now: lifecycle.take(c, staff_id, channel, now), viewer
        )

    async def resolve(
        self,
        call_id: str,
        staff_id: str,
        channel: str,
        outcome: Outcome,
        note: str = "",
        *,
        viewer: Staff | None = None,
    ) -> CallView:
        return await self._change(
            call_id,
            lambda c, now: lifecycle.resolve(c, staff_id, channel, outcome, now, note),
            viewer,
        )

    async def escalate_now(
        self, call_id: str, staff_id: str, channel: str, *, viewer: Staff | None = None
    ) -> CallView:
        """A notified person cannot help ("7E"): the next step fires at once."""
        return await self._change(
            call_id, lambda c, now: lifecycle.escalate_now(c, staff_id, channel, now), viewer
        )

    async def add_note(
        self, call_id: str, staff_id: str, channel: str, text: str, *, viewer: Staff | None = None
    ) -> CallView:
        return await self._change(
            call_id, lambda c, now: lifecycle.add_note(c, staff_id, channel, now, text), viewer
        )

    async def hand_over(
        self,
        call_id: str,
        staff_id: str,
        to_staff_id: str,
        channel: str,
        note: str = "",
        *,
        viewer: Staff | None = None,
    ) -> CallView:
        """Give the call to another person, who owns it from now on. Only its owner
        may, or a supervisor or admin; the new owner must be someone who can see it."""
        to = self._directory.staff.get(to_staff_id)
        if to is None:
            raise InvalidTransitionError(f"no staff member {to_staff_id!r}")
        may_reassign = viewer is not None and viewer.role in (Role.SUPERVISOR, Role.ADMIN)

        def change(call: Call, now: datetime) -> Transition:
            if not scope.can_see(self._directory, to, call.community_id):
                raise InvalidTransitionError(f"{to.name} ({to.id}) cannot see this call's area")
            return lifecycle.hand_over(
                call, staff_id, to.id, channel, now, note, may_reassign=may_reassign
            )

        return await self._change(call_id, change, viewer)

    async def dispatch(
        self,
        call_id: str,
        staff_id: str,
        channel: str,
        request: DispatchRequest,
        *,
        viewer: Staff | None = None,
    ) -> CallView:
        await self._desk.dispatch(call_id, staff_id, channel, request, viewer)
        return await self.get_call(call_id, viewer)

    async def mark_arrived(
        self, call_id: str, number: int, staff_id: str, channel: str, *, viewer: Staff | None = None
    ) -> CallView:
        await self._desk.mark_arrived(call_id, number, staff_id, channel, viewer)
        return await self.get_call(call_id, viewer)

    async def stand_down(
        self,
        call_id: str,
        number: int,
        staff_id: str,
        channel: str,
        note: str = "",
        *,
        viewer: Staff | None = None,
    ) -> CallView:
        await self._desk.stand_down(call_id, number, staff_id, channel, note, viewer)
        return await self.get_call(call_id, viewer)

    async def dispatch_choices(
        self, call_id: str, *, viewer: Staff | None = None
    ) -> list[DispatchChoice]:
        async with self._tx.read() as store:
            call = await store.call(call_id)
        if call is None or not self._in_scope(call, viewer):
            raise CallNotFoundError(f"no call {call_id}")
        return self._desk.choices(call)

    async def call_protocols(
        self, call_id: str, viewer: Staff | None = None, language: str = "zh"
    ) -> CallProtocolsView:
        async with self._tx.read() as store:
            call = await store.call(call_id)
            if call is None or not self._in_scope(call, viewer):
                raise CallNotFoundError(f"no call {call_id}")
            entries = await store.timeline(call_id)
        return protocols_view(
            self._protocols.book(),
            call_id=call.id,
            kind=call.kind,
            resolved=call.state is CallState.RESOLVED,
            timeline=entries,
            language=language,
            name_of=self._name_of,
        )

    async def choose_protocol(
        self,
        call_id: str,
        staff_id: str,
        channel: str,
        situation: str,
        *,
        viewer: Staff | None = None,
        language: str = "zh",
    ) -> CallProtocolsView:
        book = self._protocols.book()
        await self._append(
            call_id,
            lambda c, now: scripts.choose(book, c, staff_id, channel, now, situation),
            viewer,
        )
        return await self.call_protocols(call_id, viewer, language)

    async def answer_protocol_step(
        self,
        call_id: str,
        staff_id: str,
        channel: str,
        protocol_id: str,
        step_id: str,
        answer: str,
        note: str = "",
        *,
        viewer: Staff | None = None,
        language: str = "zh",
    ) -> CallProtocolsView:
        book = self._protocols.book()
        await self._append(
            call_id,
            lambda c, now: scripts.answer(
                book, c, staff_id, channel, now, protocol_id, step_id, answer, note
            ),
            viewer,
        )
        return await self.call_protocols(call_id, viewer, language)

    async def _append(
        self,
        call_id: str,
        change: Callable[[Call, datetime], Transition],
        viewer: Staff | None,
    ) -> None:
        """A change that only adds to the timeline (a protocol's answer): one transaction
        on the locked call, nothing sent, no escalation touched."""
        now = self._clock.now()
        async with self._tx.begin() as store:
            call = await store.lock_call(call_id)
            if call is None or not self._in_scope(call, viewer):
                raise CallNotFoundError(f"no call {call_id}")
            transition = change(call, now)  # may raise: rolls back, nothing stored
            await store.record(call, transition, now)
        log.info("protocol_recorded", call_id=call_id, detail=transition.timeline[0].detail)

    def _name_of(self, who: str) -> str:
        staff = self._directory.staff.get(who)
        return staff.name if staff else who

    async def _change(
        self,
        call_id: str,
        change: Callable[[Call, datetime], Transition],
        viewer: Staff | None = None,
    ) -> CallView:
        now = self._clock.now()
        async with self._tx.begin() as store:
            call = await store.lock_call(call_id)
            # The scope is checked on the locked row, in the transaction that changes it.
            if call is None or not self._in_scope(call, viewer):
                raise CallNotFoundError(f"no call {call_id}")
            transition = change(call, now)  # may raise InvalidTransitionError: rolls back
            if call.answered_by is not None and call.answered_level is None:
                # Recorded as it is when answered: a later move to another area changes nothing.
                call.answered_level = reports.answerer_level(self._directory, call.answered_by)
            await store.record(call, transition, now)
            if not call.is_escalating:
                cancelled = await store.cancel_pending_sms(call.id, f"call {call.state}")
                if cancelled:
                    store.add_timeline(
                        TimelineEntry(
                            now, "system", "sms_cancelled", "system", f"{cancelled} unsent", call.id
                        )
                    )
        log.info("call_changed", call_id=call_id, state=call.state.value)
        self._on_change()
        return await self.get_call(call_id, viewer)

    async def on_duty(
        self, at: datetime | None = None, community_id: str | None = None
    ) -> list[OnDutyView]:
        when = at or self._clock.now()
        d = self._directory
        if community_id is not None:
            if community_id not in d.areas:
                raise KeyError(f"no area {community_id}")
            areas = [community_id]
        else:
            areas = [d.district.id] + [a.id for a in d.areas.values() if a.level is Level.COMMUNITY]
        out = []
        for area_id in areas:
            found = rota.responsible(d, area_id, when)
            out.append(
                OnDutyView(
                    area_id=area_id,
                    area_name=d.areas[area_id].name,
                    found_at_area_id=found.found_at.id,
                    found_at_level=found.found_at.level.value,
                    found_at_area_name=found.found_at.name,
                    staff=[
                        StaffView(
                            id=o.staff.id,
                            name=o.staff.name,
                            phone=o.staff.phone,
                            role=o.staff.role.value,
                            shift_role=o.shift_role,
                        )
                        for o in found.on_duty
                    ],
                )
            )
        return out

    async def answer_times(
        self, since: datetime, until: datetime | None = None
    ) -> reports.AnswerTimes:
        now = self._clock.now()
        zone = ZoneInfo(self._directory.timezone)
        start = _aware(since, zone)
        end = _aware(until, zone) if until is not None else now
        if start >= end:
            raise ValueError("the period is empty: since must be before until")
        async with self._tx.read() as store:
            rows = await store.call_times(start, end)
        return reports.answer_times(
            [call_record(row) for row in rows],
            since=start,
            until=end,
            now=now,
            directory=self._directory,
        )

    def _in_scope(self, call: Call, viewer: Staff | None) -> bool:
        return viewer is None or scope.can_see(self._directory, viewer, call.community_id)

    def _view(self, call: Call, viewer: Staff | None = None) -> CallView:
        resident = self._directory.residents.get(call.resident_id or "")
        return CallView(
            call_id=call.id,
            device_id=call.device_id,
            kind=call.kind.value,
            priority=call.priority.value,
            state=call.state.value,
            opened_at=call.opened_at,
            unknown_device=call.unknown_device,
            press_count=call.press_count,
            community_id=call.community_id,
            resident=self._resident_view(call, resident, viewer) if resident else None,
            acknowledged_at=call.acknowledged_at,
            acknowledged_by=call.acknowledged_by,
            resolved_at=call.resolved_at,
            resolved_by=call.resolved_by,
            outcome=call.outcome,
            note=call.note,
            escalation_step=call.escalation_step,
            next_escalation_at=call.next_escalation_at,
            detail=call.detail,
            policy=call.policy.name,
            held_by=call.held_by,
            next_ack_escalation_at=call.next_ack_escalation_at,
            watchdog_paged_at=call.watchdog_paged_at,
            watchdog_pages=call.watchdog_pages,
        )

    def _resident_view(self, call: Call, r: Resident, viewer: Staff | None) -> ResidentView:
        community = self._directory.areas.get(r.community_id)
        # Each group is marked as withheld whether or not it holds anything, so that an
        # empty field tells nothing either. The free-text notes may hold medical and
        # key-safe details alike: shown only to a role that may see both.
        medical = viewer is None or scope.may_see_medical(viewer)
        access = viewer is None or scope.may_see_access(viewer)
        redacted = [
            *([] if medical and access else ["notes"]),
            *([] if medical else list(MEDICAL_FIELDS)),
            *([] if access else list(ACCESS_FIELDS)),
        ]
        return ResidentView(
            id=r.id,
            name=r.name,
            age=r.age_on(call.opened_at.date()),
            address=r.address,
            community_id=r.community_id,
            community_name=community.name if community else r.community_id,
            phone=r.phone,
            notes=r.notes if medical and access else "",
            contacts=[
                ContactView(
                    name=c.name, relation=c.relation, phone=c.phone, key_holder=c.key_holder
                )
                for c in r.contacts
            ],
            sex=r.sex,
            id_card_masked=mask_id_card(r.id_card) if r.id_card else "",
            building=r.building,
            unit=r.unit,
            room=r.room,
            mobile=r.mobile,
            language=r.language,
            key_resident=r.key_resident.value,
            conditions=r.conditions if medical else "",
            medication=r.medication if medical else "",
            mobility=r.mobility if medical else "",
            key_safe=r.key_safe if access else "",
            access_notes=r.access_notes if access else "",
            redacted=redacted,
        )


# The resident's fields withheld together from a role that may not see medical, or
# access, details (dispatcher.core.scope).
MEDICAL_FIELDS = ("conditions", "medication", "mobility")
ACCESS_FIELDS = ("key_safe", "access_notes")


def call_record(row: CallTimes) -> reports.CallRecord:
    """What the answer-time figures read of one call's columns."""
    return reports.CallRecord(
        call_id=row.id,
        kind=row.kind,
        opened_at=row.opened_at,
        # A call answered by code that bypassed the lifecycle's record of the
        # first answer still has its first acknowledgement.
        answered_at=row.answered_at or row.acknowledged_at,
        answered_by=row.answered_by or row.acknowledged_by,
        answered_channel=row.answered_channel,
        answered_level=row.answered_level,
        closed_at=row.resolved_at,
    )


def _aware(when: datetime, zone: ZoneInfo) -> datetime:
    """A naive time is in the data's time zone."""
    return when.replace(tzinfo=zone) if when.tzinfo is None else when
