"""The board's pure rules at explicit instants: the periods in the district's time
zone, the distribution of answer times at the targets' edges, what is wrong with a
device, who is on duty until when at each level and who answers when nobody is."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dispatcher.core import boards
from dispatcher.core.directory import Area, Directory, Level, Role, Shift, Staff
from dispatcher.core.reports import CallRecord

SHANGHAI = ZoneInfo("Asia/Shanghai")
OPENED = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)

AREAS = [
    Area("d", Level.DISTRICT, "指挥中心", None),
    Area("s1", Level.STREET, "一街道", "d"),
    Area("c1", Level.COMMUNITY, "一社区", "s1"),
    Area("c2", Level.COMMUNITY, "二社区", "s1"),
    Area("s2", Level.STREET, "二街道", "d"),
]
STAFF = [
    Staff("op1", "操作员一", "+8613800000001", "d", Role.OPERATOR),
    Staff("sup1", "街道主管", None, "s1", Role.SUPERVISOR),
    Staff("st1", "社区一", "+8613800000005", "c1", Role.STAFF),
]
EVERY_DAY = frozenset(range(1, 8))


def directory() -> Directory:
    return Directory(
        areas={a.id: a for a in AREAS},
        staff={s.id: s for s in STAFF},
        residents={},
        shifts=(
            Shift("d", "op1", EVERY_DAY, time(0), time(0)),  # around the clock
            Shift("s1", "sup1", EVERY_DAY, time(8), time(20)),
            Shift("c1", "st1", EVERY_DAY, time(9), time(17), "backup"),
        ),
    )


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


def answered(seconds: float | None, kind: str = "emergency") -> CallRecord:
    return CallRecord(
        call_id=f"C-{seconds}",
        kind=kind,
        opened_at=OPENED,
        answered_at=None if seconds is None else OPENED + timedelta(seconds=seconds),
    )


def test_today_starts_at_local_midnight_and_the_week_on_monday() -> None:
    # 01:00 on Tuesday 24 November in Shanghai is still Monday in UTC.
    now = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    today, week = boards.periods(now, "Asia/Shanghai")
    assert today.since == local(24, 0) and today.until == now
    assert week.since == local(23, 0) and week.until == now
    # On a Monday the week and the day begin together.
    monday = local(30, 9).astimezone(UTC)
    today, week = boards.periods(monday, "Asia/Shanghai")
    assert today.since == week.since == local(30, 0)


def test_an_answer_on_a_targets_edge_is_within_it() -> None:
    records = [answered(s) for s in (0, 15, 15.5, 60, 60.5, 180, 181)]
    records += [answered(None), answered(30, "technical")]
    bins = boards.histogram(records)
    by_range = {(b.low_s, b.high_s): b.count for b in bins if not b.unanswered}
    assert by_range[(0, 15)] == 2  # 0 and 15
    assert by_range[(15, 30)] == 1
    assert by_range[(45, 60)] == 1  # exactly 60 s: within 60 s
    assert by_range[(60, 90)] == 1
    assert by_range[(120, 180)] == 1  # exactly 180 s
    assert by_range[(180, None)] == 1
    assert [b.count for b in bins if b.unanswered] == [1]
    assert sum(b.count for b in bins) == 8  # the technical alert is not a resident's call


def test_a_device_is_offline_silent_or_low_by_the_supervisions_thresholds() -> None:
    now = OPENED
    rules = boards.DeviceRules(
        silent_since=now - timedelta(hours=3),
        offline_since=now - timedelta(minutes=5),
        low_battery_pct=20,
    )

    def link(
        seen_h: float, status: str = "online", battery: int | None = None
    ) -> boards.DeviceLink:
        seen = now - timedelta(hours=seen_h)
        return boards.DeviceLink("dev", seen, status, seen, battery)

    assert boards.device_problems(link(1, battery=21), rules) == ()
    assert boards.device_problems(link(1, battery=20), rules) == ("battery_low",)
    assert boards.device_problems(link(3), rules) == ()  # exactly three intervals: not yet
    assert boards.device_problems(link(3.01, "offline", 5), rules) == (
        "offline",
        "silent",
        "battery_low",
    )


def test_the_areas_go_district_first_then_each_street_with_its_communities() -> None:
    d = directory()
    assert [a.id for a in boards.areas_in_order(d, None)] == ["d", "s1", "c1", "c2", "s2"]
    assert [a.id for a in boards.areas_in_order(d, frozenset({"c2", "s1", "c1"}))] == [
        "s1",
        "c1",
        "c2",
    ]


def test_on_duty_says_until_when_and_who_answers_an_empty_area() -> None:
    d = directory()
    now = local(24, 10).astimezone(UTC)
    found = {a.area.id: a for a in boards.duty_board(d, boards.areas_in_order(d, None), now)}
    [operator] = found["d"].on_duty
    assert operator.until is None  # around the clock: beyond the next 24 hours
    [supervisor] = found["s1"].on_duty
    assert supervisor.until == local(24, 20) and supervisor.phone is None
    [backup] = found["c1"].on_duty
    assert backup.shift_role == "backup" and backup.until == local(24, 17)
    assert found["c2"].on_duty == () and found["c2"].answered_by is not None
    assert found["c2"].answered_by.id == "s1"
    assert [p.staff_id for p in found["c2"].answered_by_people] == ["sup1"]
    assert found["s2"].answered_by is not None and found["s2"].answered_by.id == "d"


def test_the_gaps_ahead_are_the_rota_checks_within_the_viewers_areas() -> None:
    d = directory()
    now = local(24, 10).astimezone(UTC)
    gaps = boards.gaps_ahead(d, frozenset({"c1"}), now)
    assert {g.area.id for g in gaps} == {"c1"}
    # 17:00-20:00 the street answers, 20:00-08:00 the command centre, then the street.
    assert [(g.start, g.end, g.answered_by.id if g.answered_by else None) for g in gaps] == [
        (local(24, 17), local(24, 20), "s1"),
        (local(24, 20), local(25, 8), "d"),
        (local(25, 8), local(25, 9), "s1"),
    ]
    assert not any(g.area.level is Level.DISTRICT for g in boards.gaps_ahead(d, None, now))
