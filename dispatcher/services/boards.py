"""The command centre's board: on duty at each level and the gaps of the next 24 hours,
devices offline, silent or low on battery with the open technical alerts, today's and
this week's answer times against the targets, and the calls waiting now.

One read of everything, scoped to the viewer's area (``dispatcher.core.scope``), at
the clock's ``now``. The console's board and wall screen and ``GET /api/v1/board``
show the same :class:`BoardView`; the rules are ``dispatcher.core.boards``'s, the
rota's, the link supervision's and the reports'.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import BaseModel

from dispatcher.config import DeviceSettings
from dispatcher.core import boards as rules
from dispatcher.core import queue, reports, scope
from dispatcher.core.calls import CallKind, CallState, Priority
from dispatcher.core.directory import Area, Directory, Staff
from dispatcher.core.directory_holder import DirectoryHolder, ReadsDirectory, hold
from dispatcher.core.reports import AnswerTimes
from dispatcher.core.rota.check import Gap
from dispatcher.services.clock import Clock
from dispatcher.services.operations import CallTimes, call_record
from dispatcher.services.ports import Transactions
from dispatcher.services.read_models import CallView
from dispatcher.services.supervision import offline_since, silent_since

# At most this many devices are listed (the worst first); the count says how many more.
DEVICE_LIMIT = 200


# ---------------------------------------------------------------- the views


class DutyPersonView(BaseModel):
    id: str
    name: str
    phone: str | None
    role: str  # operator, staff, supervisor, admin
    shift_role: str  # primary or backup
    until: datetime | None  # the end of this shift; None: beyond the next 24 hours


class AreaDutyView(BaseModel):
    area_id: str
    area_name: str
    level: str  # district, street, community
    on_duty: list[DutyPersonView]
    # Nobody of its own on duty: the level above that answers now, and its people.
    answered_by_area_id: str | None = None
    answered_by_area_name: str | None = None
    answered_by_level: str | None = None
    answered_by: list[DutyPersonView] = []


class GapView(BaseModel):
    """A period when an area has nobody of its own, and who answers instead."""

    area_id: str
    area_name: str
    level: str
    start: datetime
    end: datetime
    answered_by_area_id: str | None  # None: nobody at any level (a command-centre gap)
    answered_by_area_name: str | None
    answered_by_level: str | None


class DeviceView(BaseModel):
    device_id: str
    resident: str | None  # None: a device nobody is registered for
    community_id: str | None
    community_name: str | None
    problems: list[str]  # offline, silent, battery_low
    last_seen_at: datetime
    status: str
    status_at: datetime
    battery: int | None
    alert_call_id: str | None  # its open technical alert, if any


class AlertView(BaseModel):
    call_id: str
    device_id: str
    detail: str
    state: str
    opened_at: datetime
    resident: str | None
    community_name: str | None
    taken_by: str | None


class DeviceRulesView(BaseModel):
    silent_after_s: int  # heartbeat_s x missed_heartbeats
    offline_grace_s: int
    low_battery_pct: int


class BinView(BaseModel):
    low_s: int
    high_s: int | None  # None: beyond the last edge
    count: int
    unanswered: bool = False  # the calls not answered (yet)


class PeriodView(BaseModel):
    key: str  # today, week
    since: datetime
    until: datetime
    figures: AnswerTimes
    histogram: list[BinView]


class WaitingView(BaseModel):
    calls: int  # nobody has taken them
    alarms: int  # emergencies and falls among them
    oldest_opened_at: datetime | None


class BoardView(BaseModel):
    at: datetime
    timezone: str
    area_id: str  # the viewer's area: everything below is within it
    area_name: str
    horizon_until: datetime
    duty: list[AreaDutyView]
    gaps: list[GapView]
    device_rules: DeviceRulesView
    devices: list[DeviceView]
    devices_more: int  # beyond DEVICE_LIMIT
    alerts: list[AlertView]
    today: PeriodView
    week: PeriodView
    waiting: WaitingView


# ---------------------------------------------------------------- the ports


class Boards(Protocol):
    """What the API and the console ask of the board."""

    async def board(self, viewer: Staff) -> BoardView: ...


class ActiveCalls(Protocol):
    async def list_calls(
        self, state: str | None = None, viewer: Staff | None = None
    ) -> list[CallView]: ...


class BoardStore(Protocol):
    """The board's reads, in one transaction."""

    async def links_to_watch(
        self,
        silent_since: datetime,
        low_battery_pct: int,
        device_ids: frozenset[str] | None,
        limit: int,
    ) -> tuple[list[rules.DeviceLink], int]:
        """The links offline, last heard before ``silent_since`` or at or below
        ``low_battery_pct``, of ``device_ids`` only when given, the longest silent
        first, at most ``limit``; and how many there are in all."""
        ...

    async def call_times(
        self, start: datetime, end: datetime, communities: frozenset[str] | None
    ) -> list[CallTimes]:
        """The calls opened in ``[start, end)``, of ``communities`` only when given."""
        ...


# ---------------------------------------------------------------- the service


class BoardService(ReadsDirectory):
    def __init__(
        self,
        tx: Transactions[BoardStore],
        calls: ActiveCalls,
        directory: Directory | DirectoryHolder,
        clock: Clock,
        devices: DeviceSettings,
    ) -> None:
        self._tx = tx
        self._calls = calls
        self._directories = hold(directory)
        self._clock = clock
        self._devices = devices

    async def board(self, viewer: Staff) -> BoardView:
        now = self._clock.now()
        d = self._directory
        visible = scope.visible_communities(d, viewer)
        home = d.areas.get(viewer.area_id) or d.district
        today, week = rules.periods(now, d.timezone)
        device_rules = rules.DeviceRules(
            silent_since=silent_since(self._devices, now),
            offline_since=offline_since(self._devices, now),
            low_battery_pct=self._devices.low_battery_pct,
        )
        device_ids = (
            None
            if visible is None
            else frozenset(r.device_id for r in d.residents.values() if r.community_id in visible)
        )
        async with self._tx.read() as store:
            links, total = await store.links_to_watch(
                device_rules.silent_since, device_rules.low_battery_pct, device_ids, DEVICE_LIMIT
            )
            # The week holds today: one read, cut in two.
            rows = await store.call_times(week.since, now, visible)
        active = await self._calls.list_calls("active", viewer=viewer)
        records = [call_record(r) for r in rows]
        alerts = [c for c in active if c.kind == CallKind.TECHNICAL.value]
        horizon = now + rules.HORIZON
        return BoardView(
            at=now,
            timezone=d.timezone,
            area_id=home.id,
            area_name=home.name,
            horizon_until=horizon,
            duty=[_duty(a) for a in rules.duty_board(d, rules.areas_in_order(d, visible), now)],
            gaps=[_gap(g) for g in rules.gaps_ahead(d, visible, now)],
            device_rules=DeviceRulesView(
                silent_after_s=self._devices.heartbeat_s * self._devices.missed_heartbeats,
                offline_grace_s=self._devices.offline_grace_s,
                low_battery_pct=self._devices.low_battery_pct,
            ),
            devices=self._devices_view(links, device_rules, alerts),
            devices_more=max(0, total - len(links)),
            alerts=[self._alert(c) for c in alerts],
            today=self._period(today, records, now),
            week=self._period(week, records, now),
            waiting=_waiting(active),
        )

    def _period(
        self, period: rules.Period, records: Sequence[reports.CallRecord], now: datetime
    ) -> PeriodView:
        chosen = [r for r in records if period.since <= r.opened_at < period.until]
        return PeriodView(
            key=period.key,
            since=period.since,
            until=period.until,
            figures=reports.answer_times(
                chosen,
                since=period.since,
                until=max(period.until, period.since + _TICK),
                now=now,
                directory=self._directory,
            ),
            histogram=[
                BinView(low_s=b.low_s, high_s=b.high_s, count=b.count, unanswered=b.unanswered)
                for b in rules.histogram(chosen)
            ],
        )

    def _devices_view(
        self,
        links: Sequence[rules.DeviceLink],
        device_rules: rules.DeviceRules,
        alerts: Sequence[CallView],
    ) -> list[DeviceView]:
        d = self._directory
        alert_of = {c.device_id: c.call_id for c in sorted(alerts, key=lambda c: c.opened_at)}
        out = []
        for link in links:
            problems = rules.device_problems(link, device_rules)
            if not problems:  # the store's choice is a superset; the rule decides
                continue
            resident = d.residents_by_device.get(link.device_id)
            community = d.areas.get(resident.community_id) if resident else None
            out.append(
                DeviceView(
                    device_id=link.device_id,
                    resident=resident.name if resident else None,
                    community_id=resident.community_id if resident else None,
                    community_name=community.name if community else None,
                    problems=list(problems),
                    last_seen_at=link.last_seen_at,
                    status=link.status,
                    status_at=link.status_at,
                    battery=link.battery,
                    alert_call_id=alert_of.get(link.device_id),
                )
            )
        return out

    def _alert(self, call: CallView) -> AlertView:
        owner = call.held_by or call.acknowledged_by
        staff = self._directory.staff.get(owner or "")
        return AlertView(
            call_id=call.call_id,
            device_id=call.device_id,
            detail=call.detail,
            state=call.state,
            opened_at=call.opened_at,
            resident=call.resident.name if call.resident else None,
            community_name=call.resident.community_name if call.resident else None,
            taken_by=staff.name if staff else owner,
        )


# At local midnight "today" has not begun: a period of one microsecond holds no call.
_TICK = timedelta(microseconds=1)


def _person(p: rules.PersonOnDuty) -> DutyPersonView:
    return DutyPersonView(
        id=p.staff_id,
        name=p.name,
        phone=p.phone,
        role=p.role,
        shift_role=p.shift_role,
        until=p.until,
    )


def _duty(a: rules.AreaDuty) -> AreaDutyView:
    above: Area | None = a.answered_by
    return AreaDutyView(
        area_id=a.area.id,
        area_name=a.area.name,
        level=a.area.level.value,
        on_duty=[_person(p) for p in a.on_duty],
        answered_by_area_id=above.id if above else None,
        answered_by_area_name=above.name if above else None,
        answered_by_level=above.level.value if above else None,
        answered_by=[_person(p) for p in a.answered_by_people],
    )


def _gap(g: Gap) -> GapView:
    by = g.answered_by
    return GapView(
        area_id=g.area.id,
        area_name=g.area.name,
        level=g.area.level.value,
        start=g.start,
        end=g.end,
        answered_by_area_id=by.id if by else None,
        answered_by_area_name=by.name if by else None,
        answered_by_level=by.level.value if by else None,
    )


def _waiting(active: Sequence[CallView]) -> WaitingView:
    untaken = [
        c
        for c in active
        if queue.is_untaken(
            queue.QueueEntry(
                call_id=c.call_id,
                kind=CallKind(c.kind),
                priority=Priority(c.priority),
                state=CallState(c.state),
                opened_at=c.opened_at,
                taken_by=c.held_by or c.acknowledged_by,
            )
        )
    ]
    return WaitingView(
        calls=len(untaken),
        alarms=sum(1 for c in untaken if CallKind(c.kind) in queue.ALARMS),
        oldest_opened_at=min((c.opened_at for c in untaken), default=None),
    )
