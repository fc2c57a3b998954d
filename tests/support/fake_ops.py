"""An in-memory stand-in for ``services.read_models.Operations``, for the API and CLI tests.

It keeps a handful of calls in a dict and applies the same state rules the service
layer promises: acknowledging an open call records who and how, acknowledging it
again is harmless, acknowledging or resolving a resolved call is an
``InvalidTransitionError``. It does not apply the area scope or withhold notes (the
real service does, tested on the database): it records who the ``viewer`` was, so
that tests can check the API passed the token's staff on. Not a pytest plugin: import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from dispatcher.adapters.files.protocols import PROTOCOLS, load_protocols
from dispatcher.core import reports
from dispatcher.core.call_protocols import (
    ANSWERED,
    CHOSEN,
    CallProtocol,
    ProtocolAnswerError,
    ProtocolBook,
    answer_detail,
)
from dispatcher.core.calls import AlreadyTakenError, CallKind, InvalidTransitionError, Outcome
from dispatcher.core.directory import Area, Directory, Level, Role, Staff
from dispatcher.core.dispatches import DispatchRequest, InvalidDispatchError
from dispatcher.services.call_protocols import CallProtocolsView, protocols_view
from dispatcher.services.handover_sheet import PRINTED, build_sheet
from dispatcher.services.read_models import (
    CallNotFoundError,
    CallView,
    ContactView,
    DispatchChoice,
    DispatchView,
    HandoverSheetView,
    NotificationView,
    OnDutyView,
    ResidentView,
    StaffView,
    TimelineEntryView,
)
from dispatcher.testing import FakeClock

# 2026-11-28 08:15 in Shanghai.
T0 = datetime(2026, 11, 28, 0, 15, tzinfo=UTC)

ZHANG = Staff(
    id="s-zhang",
    name="张伟",
    phone="+8613800000001",
    area_id="c-yangguang",
    role=Role.STAFF,
    api_token="token-zhang",
)
LI = Staff(
    id="s-li",
    name="李娜",
    phone="+8613800000002",
    area_id="district",
    role=Role.OPERATOR,
    api_token="token-li",
)

WANG = ResidentView(
    id="r-wang",
    name="王秀英",
    age=82,
    address="阳光社区 3号楼 2单元 401",
    community_id="c-yangguang",
    community_name="阳光社区",
    phone="+8610000000401",
    notes="高血压",
    contacts=[ContactView(name="王明", relation="son", phone="+8613900000009")],
)

_RESOLVABLE = ("open", "acknowledged", "responder_on_site", "cancelled")


@dataclass
class Recorded:
    """What the fake was asked to do, for tests to check the API passed it on right."""

    method: str
    call_id: str | None = None
    staff_id: str | None = None
    channel: str | None = None
    note: str | None = None
    outcome: Outcome | None = None
    at: datetime | None = None
    community_id: str | None = None
    until: datetime | None = None
    viewer: str | None = None  # the id of the staff member the API acted for
    detail: str | None = None  # a protocol's answer: "protocol step = answer"


@dataclass
class FakeOperations:
    clock: FakeClock = field(default_factory=lambda: FakeClock(T0 + timedelta(minutes=5)))
    staff: dict[str, Staff] = field(default_factory=dict)
    calls: dict[str, CallView] = field(default_factory=dict)
    # community id -> who answers for it; "*" is the answer when no community is asked for
    duty: dict[str, list[OnDutyView]] = field(default_factory=dict)
    # True: acknowledging an acknowledged call raises, like a stricter service might
    strict_ack: bool = False
    log: list[Recorded] = field(default_factory=list)
    # what the answer-time figures are computed from, and who is who in them
    records: list[reports.CallRecord] = field(default_factory=list)
    directory: Directory | None = None
    # The operator scripts: the shipped protocols.toml unless a test gives its own.
    protocols: ProtocolBook = field(
        default_factory=lambda: load_protocols(
            Path(__file__).resolve().parents[2] / "config" / "data" / PROTOCOLS
        )
    )

    def staff_for_token(self, token: str) -> Staff | None:
        return next((s for s in self.staff.values() if s.api_token == token), None)

    async def list_calls(
        self, state: str | None = None, viewer: Staff | None = None
    ) -> list[CallView]:
        self.log.append(Recorded("list_calls", note=state, viewer=_id(viewer)))
        if state in (None, "active"):
            chosen = [c for c in self.calls.values() if c.state != "resolved"]
        elif state == "all":
            chosen = list(self.calls.values())
        else:
            chosen = [c for c in self.calls.values() if c.state == state]
        chosen.sort(key=lambda c: c.opened_at, reverse=True)
        return [c.model_copy(update={"timeline": [], "notifications": []}) for c in chosen]

    async def get_call(self, call_id: str, viewer: Staff | None = None) -> CallView:
        self.log.append(Recorded("get_call", call_id, viewer=_id(viewer)))
        call = self.calls.get(call_id)
        if call is None:
            raise CallNotFoundError(call_id)
        return call.model_copy(deep=True)

    async def take(
        self, call_id: str, staff_id: str, channel: str, *, viewer: Staff | None = None
    ) -> CallView:
        call = self._call(call_id)
        owner = call.held_by or call.acknowledged_by
        if call.state == "acknowledged" and owner not in (None, staff_id):
            raise AlreadyTakenError(call_id, owner or "?")
        return await self.acknowledge(call_id, staff_id, channel, viewer=viewer)

    async def acknowledge(
        self,
        call_id: str,
        staff_id: str,
        channel: str,
        note: str = "",
        *,
        viewer: Staff | None = None,
    ) -> CallView:
        self.log.append(
            Recorded("acknowledge", call_id, staff_id, channel, note, viewer=_id(viewer))
        )
        call = self._call(call_id)
        if call.state == "resolved":
            raise InvalidTransitionError(f"call {call_id} is already resolved")
        if call.state == "open":
            now = self.clock.now()
            call.state = "acknowledged"
            call.acknowledged_at = now
            call.acknowledged_by = staff_id
            call.next_escalation_at = None
            call.timeline.append(
                TimelineEntryView(
                    at=now, actor=staff_id, action="acknowledged", channel=channel, detail=note
                )
            )
        elif self.strict_ack:
            raise InvalidTransitionError(f"call {call_id} is already {call.state}")
        return call.model_copy(deep=True)

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
        self.log.append(
            Recorded("resolve", call_id, staff_id, channel, note, outcome, viewer=_id(viewer))
        )
        call = self._call(call_id)
        if call.state not in _RESOLVABLE:
            raise InvalidTransitionError(f"call {call_id} is already {call.state}")
        now = self.clock.now()
        call.state = "resolved"
        call.resolved_at = now
        call.resolved_by = staff_id
        call.outcome = outcome.value
        call.note = note or None
        call.timeline.append(
            TimelineEntryView(
                at=now, actor=staff_id, action="resolved", channel=channel, detail=outcome.value
            )
        )
        return call.model_copy(deep=True)

    async def handover_sheet(
        self, call_id: str, staff_id: str, channel: str, *, viewer: Staff | None = None
    ) -> HandoverSheetView:
        """The real sheet's builder over the stored view (no withholding: see above);
        the printing goes on the call's timeline after what the sheet lists."""
        self.log.append(Recorded("handover_sheet", call_id, staff_id, channel, viewer=_id(viewer)))
        call = self._call(call_id)
        now = self.clock.now()
        sheet = build_sheet(call, self.staff, staff_id, channel, now)
        call.timeline.append(
            TimelineEntryView(at=now, actor=staff_id, action=PRINTED, channel=channel)
        )
        return sheet

    async def on_duty(
        self, at: datetime | None = None, community_id: str | None = None
    ) -> list[OnDutyView]:
        self.log.append(Recorded("on_duty", at=at, community_id=community_id))
        if community_id is None:
            return list(self.duty.get("*", []))
        if community_id not in self.duty:
            raise KeyError(community_id)
        return list(self.duty[community_id])

    async def answer_times(
        self, since: datetime, until: datetime | None = None
    ) -> reports.AnswerTimes:
        self.log.append(Recorded("answer_times", at=since, until=until))
        assert self.directory is not None, "give the fake a directory for reports"
        zone = ZoneInfo(self.directory.timezone)
        now = self.clock.now()
        start = since if since.tzinfo else since.replace(tzinfo=zone)
        end = now if until is None else until if until.tzinfo else until.replace(tzinfo=zone)
        return reports.answer_times(
            self.records, since=start, until=end, now=now, directory=self.directory
        )

    def _check_protocol(self, call: CallView, protocol_id: str) -> CallProtocol:
        if call.state == "resolved":
            raise InvalidTransitionError(f"call {call.call_id} is already resolved")
        protocol = self.protocols.get(protocol_id)
        if protocol is None or protocol.kind.value != call.kind:
            raise ProtocolAnswerError(f"no protocol {protocol_id!r} for {call.kind} calls")
        return protocol

    async def call_protocols(
        self, call_id: str, viewer: Staff | None = None, language: str = "zh"
    ) -> CallProtocolsView:
        self.log.append(Recorded("call_protocols", call_id, viewer=_id(viewer), note=language))
        call = self._call(call_id)
        return protocols_view(
            self.protocols,
            call_id=call_id,
            kind=CallKind(call.kind),
            resolved=call.state == "resolved",
            timeline=call.timeline,
            language=language,
            name_of=lambda who: self.staff[who].name if who in self.staff else who,
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
        self.log.append(
            Recorded("choose_protocol", call_id, staff_id, channel, situation, viewer=_id(viewer))
        )
        call = self._call(call_id)
        protocol_id = f"{call.kind}.{situation}"
        self._check_protocol(call, protocol_id)
        call.timeline.append(
            TimelineEntryView(
                at=self.clock.now(),
                actor=staff_id,
                action=CHOSEN,
                channel=channel,
                detail=protocol_id,
            )
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
        detail = answer_detail(protocol_id, step_id, answer, note)
        self.log.append(
            Recorded(
                "answer_protocol_step",
                call_id,
                staff_id,
                channel,
                note,
                viewer=_id(viewer),
                detail=detail,
            )
        )
        call = self._call(call_id)
        step = self._check_protocol(call, protocol_id).step(step_id)
        if step is None or answer not in step.answers:
            raise ProtocolAnswerError(f"no step {step_id} or answer {answer} in {protocol_id}")
        call.timeline.append(
            TimelineEntryView(
                at=self.clock.now(), actor=staff_id, action=ANSWERED, channel=channel, detail=detail
            )
        )
        return await self.call_protocols(call_id, viewer, language)

    async def dispatch(
        self,
        call_id: str,
        staff_id: str,
        channel: str,
        request: DispatchRequest,
        *,
        viewer: Staff | None = None,
    ) -> CallView:
        """Records the dispatch as asked (the responder's name is the ``ref``); the
        real rules (who may be sent, the SMS, taking the call) are the service's."""
        self.log.append(
            Recorded("dispatch", call_id, staff_id, channel, request.note, viewer=_id(viewer))
        )
        call = self._call(call_id)
        if call.state == "resolved":
            raise InvalidDispatchError(f"call {call_id} is already resolved")
        now = self.clock.now()
        call.dispatches.append(
            DispatchView(
                number=len(call.dispatches) + 1,
                responder_kind=request.kind.value,
                responder_ref=request.ref,
                responder_name=request.name or request.ref,
                dispatched_by=staff_id,
                channel=channel,
                dispatched_at=now,
                expected_at=now + timedelta(minutes=request.eta_minutes),
                state="on_the_way",
                note=request.note,
            )
        )
        return call.model_copy(deep=True)

    async def mark_arrived(
        self, call_id: str, number: int, staff_id: str, channel: str, *, viewer: Staff | None = None
    ) -> CallView:
        self.log.append(Recorded("mark_arrived", call_id, staff_id, channel, viewer=_id(viewer)))
        d = self._dispatch(call_id, number)
        d.state, d.arrived_at, d.arrived_by = "arrived", self.clock.now(), staff_id
        self.calls[call_id].state = "responder_on_site"
        return self.calls[call_id].model_copy(deep=True)

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
        self.log.append(
            Recorded("stand_down", call_id, staff_id, channel, note, viewer=_id(viewer))
        )
        d = self._dispatch(call_id, number)
        d.state, d.ended_at, d.ended_by = "stood_down", self.clock.now(), staff_id
        return self.calls[call_id].model_copy(deep=True)

    async def dispatch_choices(
        self, call_id: str, *, viewer: Staff | None = None
    ) -> list[DispatchChoice]:
        self.log.append(Recorded("dispatch_choices", call_id, viewer=_id(viewer)))
        call = self._call(call_id)
        contacts = call.resident.contacts if call.resident else []
        return [
            *(
                DispatchChoice(kind="staff", ref=s.id, name=s.name, phone=s.phone)
                for s in self.staff.values()
            ),
            *(
                DispatchChoice(kind="contact", ref=str(n), name=c.name, phone=c.phone)
                for n, c in enumerate(contacts, start=1)
            ),
            *(DispatchChoice(kind="service", ref=n, name=n) for n in ("120", "110", "119")),
        ]

    def _dispatch(self, call_id: str, number: int) -> DispatchView:
        call = self._call(call_id)
        for d in call.dispatches:
            if d.number == number:
                if d.state not in ("on_the_way", "overdue"):
                    raise InvalidDispatchError(f"dispatch #{number} is {d.state}")
                return d
        raise InvalidDispatchError(f"call {call_id} has no dispatch #{number}")

    def _call(self, call_id: str) -> CallView:
        call = self.calls.get(call_id)
        if call is None:
            raise CallNotFoundError(call_id)
        return call


def _id(viewer: Staff | None) -> str | None:
    return viewer.id if viewer else None


def sample_ops() -> FakeOperations:
    """Two staff with tokens, three calls (open with a resident, open from an unknown
    device, resolved) and a duty rota for one community."""
    ops = FakeOperations(staff={ZHANG.id: ZHANG, LI.id: LI})
    ops.calls["C-20261128-0001"] = CallView(
        call_id="C-20261128-0001",
        device_id="dev-0401",
        kind="emergency",
        priority="critical",
        state="open",
        opened_at=T0,
        unknown_device=False,
        press_count=2,
        resident=WANG,
        escalation_step=1,
        next_escalation_at=T0 + timedelta(minutes=6),
        timeline=[
            TimelineEntryView(at=T0, actor="device", action="opened", channel="mqtt"),
            TimelineEntryView(
                at=T0 + timedelta(seconds=1),
                actor="system",
                action="sms_queued",
                channel="system",
                detail="step 0 to s-zhang",
            ),
        ],
        notifications=[
            NotificationView(
                id=1,
                recipient="s-zhang",
                to_number="+8613800000001",
                step=0,
                status="delivered",
                provider_sid="SM0001",
                attempts=1,
                created_at=T0 + timedelta(seconds=1),
                sent_at=T0 + timedelta(seconds=2),
            )
        ],
    )
    ops.calls["C-20261128-0002"] = CallView(
        call_id="C-20261128-0002",
        device_id="dev-stray",
        kind="service",
        priority="normal",
        state="open",
        opened_at=T0 + timedelta(minutes=2),
        unknown_device=True,
        press_count=1,
        timeline=[
            TimelineEntryView(
                at=T0 + timedelta(minutes=2), actor="device", action="opened", channel="mqtt"
            )
        ],
    )
    ops.calls["C-20261127-0009"] = CallView(
        call_id="C-20261127-0009",
        device_id="dev-0401",
        kind="fall",
        priority="critical",
        state="resolved",
        opened_at=T0 - timedelta(hours=20),
        unknown_device=False,
        press_count=1,
        resident=WANG,
        acknowledged_at=T0 - timedelta(hours=20) + timedelta(minutes=1),
        acknowledged_by="s-li",
        resolved_at=T0 - timedelta(hours=19),
        resolved_by="s-li",
        outcome="visit",
    )
    community = OnDutyView(
        area_id="c-yangguang",
        area_name="阳光社区",
        found_at_area_id="c-yangguang",
        found_at_level="community",
        staff=[
            StaffView(
                id=ZHANG.id, name=ZHANG.name, phone=ZHANG.phone, role="staff", shift_role="primary"
            )
        ],
    )
    night = OnDutyView(
        area_id="c-hehua",
        area_name="荷花社区",
        found_at_area_id="st-east",
        found_at_level="street",
        staff=[StaffView(id="s-zhao", name="赵强", phone=None, role="supervisor")],
    )
    centre = OnDutyView(
        area_id="district",
        area_name="指挥中心",
        found_at_area_id="district",
        found_at_level="district",
        staff=[StaffView(id=LI.id, name=LI.name, phone=LI.phone, role="operator")],
    )
    ops.duty = {
        "c-yangguang": [community],
        "c-hehua": [night],
        "*": [community, night, centre],
    }
    ops.directory = Directory(
        areas={
            "district": Area("district", Level.DISTRICT, "指挥中心", None),
            "st-east": Area("st-east", Level.STREET, "东街道", "district"),
            "c-yangguang": Area("c-yangguang", Level.COMMUNITY, "阳光社区", "st-east"),
        },
        staff={ZHANG.id: ZHANG, LI.id: LI},
        residents={},
        shifts=(),
    )
    # Answered at 20 s and 50 s by the hotline, 90 s by the community, one waiting
    # for 3 minutes at T0 + 5 min, one technical alert answered at 4 min.
    ops.records = [
        _record("C-1", "emergency", 0, 20, LI.id, "api", "district"),
        _record("C-2", "fall", 60, 110, LI.id, "cli", "district"),
        _record("C-3", "service", 90, 180, ZHANG.id, "sms", "community"),
        _record("C-4", "emergency", 120, None, None, None, None),
        _record("C-5", "technical", 0, 240, LI.id, "api", "district"),
    ]
    return ops


def _record(
    call_id: str,
    kind: str,
    opened_s: int,
    answered_s: int | None,
    by: str | None,
    channel: str | None,
    level: str | None,
) -> reports.CallRecord:
    return reports.CallRecord(
        call_id=call_id,
        kind=kind,
        opened_at=T0 + timedelta(seconds=opened_s),
        answered_at=None if answered_s is None else T0 + timedelta(seconds=answered_s),
        answered_by=by,
        answered_channel=channel,
        answered_level=level,
    )
