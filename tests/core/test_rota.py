"""Reading the rota at an instant: shift windows, fallback up the levels, supervisors, gaps."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dispatcher.adapters.files.directory_files import load_directory
from dispatcher.core.directory import Area, Directory, Level, Role, Shift, Staff
from dispatcher.core.rota import on_duty as rota

SHANGHAI = ZoneInfo("Asia/Shanghai")
EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "data"
MON, TUE, WED, THU, FRI, SAT, SUN = range(1, 8)


def at(day: int, hhmm: str) -> datetime:
    """Shanghai wall time on a weekday of the week of Monday 2026-11-23 (day 8 = next Monday)."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    return datetime(2026, 11, 22 + day, hour, minute, tzinfo=SHANGHAI)


AREAS = [
    Area("d", Level.DISTRICT, "指挥中心", None),
    Area("s1", Level.STREET, "一街道", "d"),
    Area("s2", Level.STREET, "二街道", "d"),
    Area("c1", Level.COMMUNITY, "一社区", "s1"),
    Area("c2", Level.COMMUNITY, "二社区", "s1"),
]
STAFF = [
    Staff("op1", "操作员一", "+8613800000001", "d", Role.OPERATOR),
    Staff("op2", "操作员二", "+8613800000002", "d", Role.OPERATOR),
    Staff("sup-d", "区主管", "+8613800000003", "d", Role.SUPERVISOR),
    Staff("sup1", "街道主管", "+8613800000004", "s1", Role.SUPERVISOR),
    Staff("st1", "社区一", "+8613800000005", "c1", Role.STAFF),
    Staff("st2", "社区二", "+8613800000006", "c1", Role.STAFF),
]


def shift(
    area: str, staff: str, days: set[int], start: str, end: str, role: str = "primary"
) -> Shift:
    return Shift(area, staff, frozenset(days), time.fromisoformat(start), _end(end), role)


def _end(value: str) -> time:
    # rota.csv's 24:00 loads as 00:00 (see test_datafiles.test_end_24_00_loads_as_midnight).
    return time(0, 0) if value == "24:00" else time.fromisoformat(value)


def directory(*shifts: Shift, staff: list[Staff] = STAFF) -> Directory:
    return Directory(
        areas={a.id: a for a in AREAS},
        staff={s.id: s for s in staff},
        residents={},
        shifts=tuple(shifts),
    )


def ids(people: list[rota.OnDuty]) -> list[str]:
    return [p.staff.id for p in people]


def covered(d: Directory, area: str, when: datetime) -> bool:
    return bool(rota.on_duty(d, area, when))


# --- shift windows ----------------------------------------------------------------------


def test_a_day_shift_is_half_open() -> None:
    d = directory(shift("c1", "st1", {MON, TUE, WED, THU, FRI}, "08:00", "18:00"))
    assert not covered(d, "c1", at(MON, "07:59"))
    assert covered(d, "c1", at(MON, "08:00"))
    assert covered(d, "c1", at(FRI, "17:59"))
    assert not covered(d, "c1", at(FRI, "18:00"))
    assert not covered(d, "c1", at(SAT, "10:00"))
    assert not covered(d, "c2", at(MON, "10:00"))  # exactly that area, not its siblings


def test_an_overnight_shift_belongs_to_the_day_it_starts() -> None:
    d = directory(shift("d", "op1", {FRI}, "22:00", "08:00"))
    assert not covered(d, "d", at(FRI, "21:59"))
    assert covered(d, "d", at(FRI, "22:00"))
    assert covered(d, "d", at(FRI, "23:59"))
    assert covered(d, "d", at(SAT, "00:00"))
    assert covered(d, "d", at(SAT, "03:00"))
    assert not covered(d, "d", at(SAT, "08:00"))
    assert not covered(d, "d", at(FRI, "03:00"))  # Thursday night is not on the rota
    assert not covered(d, "d", at(SAT, "22:30"))


def test_sunday_night_runs_into_monday_across_the_week_end() -> None:
    d = directory(shift("d", "op1", {SUN}, "20:00", "08:00"))
    assert covered(d, "d", at(SUN, "23:30"))
    assert covered(d, "d", at(MON + 7, "00:00"))
    assert covered(d, "d", at(MON + 7, "07:59"))
    assert not covered(d, "d", at(MON + 7, "08:00"))
    assert covered(d, "d", at(MON, "07:00"))  # the previous week's Sunday night
    assert not covered(d, "d", at(SUN, "07:00"))


def test_a_monday_night_shift_does_not_cover_early_monday() -> None:
    d = directory(shift("d", "op1", {MON}, "20:00", "08:00"))
    assert not covered(d, "d", at(MON, "03:00"))
    assert covered(d, "d", at(TUE, "03:00"))


def test_end_24_00_runs_to_midnight() -> None:
    d = directory(shift("d", "op1", {SAT}, "08:00", "24:00"))
    assert covered(d, "d", at(SAT, "23:59"))
    assert not covered(d, "d", at(SUN, "00:00"))
    assert not covered(d, "d", at(SAT, "07:59"))
    whole_day = directory(shift("d", "op1", {SAT}, "00:00", "24:00"))
    assert covered(whole_day, "d", at(SAT, "00:00"))
    assert covered(whole_day, "d", at(SAT, "23:59"))
    assert not covered(whole_day, "d", at(SUN, "00:00"))
    assert not covered(whole_day, "d", at(FRI, "23:59"))


def test_start_equal_to_end_is_24_hours() -> None:
    d = directory(shift("d", "op1", {MON}, "06:00", "06:00"))
    assert not covered(d, "d", at(MON, "05:59"))
    assert covered(d, "d", at(MON, "06:00"))
    assert covered(d, "d", at(MON, "23:00"))
    assert covered(d, "d", at(TUE, "05:59"))
    assert not covered(d, "d", at(TUE, "06:00"))


def test_an_instant_in_another_zone_is_read_in_the_directory_zone() -> None:
    d = directory(
        shift("d", "op1", {MON}, "00:00", "08:00"),
        shift("d", "op2", {SUN}, "08:00", "20:00"),
    )
    # Sunday 16:30 UTC is Monday 00:30 in Shanghai.
    sunday_utc = datetime(2026, 11, 22, 16, 30, tzinfo=UTC)
    assert sunday_utc.isoweekday() == SUN
    assert ids(rota.on_duty(d, "d", sunday_utc)) == ["op1"]
    # Sunday 11:00 UTC is Sunday 19:00 in Shanghai; 12:00 UTC is 20:00, past the shift.
    assert ids(rota.on_duty(d, "d", datetime(2026, 11, 22, 11, 0, tzinfo=UTC))) == ["op2"]
    assert ids(rota.on_duty(d, "d", datetime(2026, 11, 22, 12, 0, tzinfo=UTC))) == []
    # Monday 07:00 in New York (UTC-5) is Monday 20:00 in Shanghai: nobody.
    new_york = datetime(2026, 11, 23, 7, 0, tzinfo=ZoneInfo("America/New_York"))
    assert ids(rota.on_duty(d, "d", new_york)) == []
    # Sunday 11:30 in New York is Monday 00:30 in Shanghai.
    assert ids(rota.on_duty(d, "d", new_york - timedelta(hours=19, minutes=30))) == ["op1"]


def test_a_naive_instant_is_a_programming_error() -> None:
    d = directory(shift("d", "op1", {MON}, "00:00", "24:00"))
    with pytest.raises(ValueError, match="timezone-aware"):
        rota.on_duty(d, "d", datetime(2026, 11, 23, 10, 0))


def test_primaries_come_before_backups_then_file_order() -> None:
    d = directory(
        shift("c1", "st2", {MON}, "08:00", "18:00", role="backup"),
        shift("c1", "sup1", {MON}, "08:00", "18:00"),
        shift("c1", "st1", {MON}, "08:00", "18:00"),
        shift("c1", "op1", {MON}, "08:00", "18:00", role="backup"),
    )
    people = rota.on_duty(d, "c1", at(MON, "09:00"))
    assert [(p.staff.id, p.shift_role) for p in people] == [
        ("sup1", "primary"),
        ("st1", "primary"),
        ("st2", "backup"),
        ("op1", "backup"),
    ]


def test_someone_on_two_overlapping_shifts_is_listed_once_with_the_senior_role() -> None:
    d = directory(
        shift("d", "op1", {MON}, "00:00", "24:00", role="backup"),
        shift("d", "op1", {MON}, "08:00", "20:00"),
    )
    assert [(p.staff.id, p.shift_role) for p in rota.on_duty(d, "d", at(MON, "09:00"))] == [
        ("op1", "primary")
    ]
    assert [(p.staff.id, p.shift_role) for p in rota.on_duty(d, "d", at(MON, "21:00"))] == [
        ("op1", "backup")
    ]


# --- who is responsible -----------------------------------------------------------------

LAYERED = directory(
    shift("c1", "st1", {MON, TUE, WED, THU, FRI}, "08:00", "18:00"),
    shift("s1", "sup1", {MON, TUE, WED, THU, FRI, SAT}, "08:30", "17:30"),
    shift("d", "op1", set(range(1, 8)), "00:00", "24:00"),
)


@pytest.mark.parametrize(
    ("when", "level", "found"),
    [
        (at(MON, "10:00"), "c1", ["st1"]),  # the community's own staff
        (at(SAT, "10:00"), "s1", ["sup1"]),  # the community is closed: its street
        (at(MON, "07:00"), "d", ["op1"]),  # both closed: the district
        (at(SUN, "12:00"), "d", ["op1"]),
    ],
)
def test_responsibility_falls_back_community_street_district(
    when: datetime, level: str, found: list[str]
) -> None:
    r = rota.responsible(LAYERED, "c1", when)
    assert r.asked.id == "c1"
    assert r.found_at.id == level
    assert ids(r.on_duty) == found
    assert r.fell_back is (level != "c1")


def test_a_street_falls_back_to_the_district() -> None:
    r = rota.responsible(LAYERED, "s1", at(SUN, "10:00"))
    assert (r.asked.id, r.found_at.level, ids(r.on_duty)) == ("s1", Level.DISTRICT, ["op1"])


@pytest.mark.parametrize("area", [None, "", "c-unknown"])
def test_an_unknown_area_goes_straight_to_the_district(area: str | None) -> None:
    # st1 is on duty for c1: an unregistered device must not land there or anywhere below.
    r = rota.responsible(LAYERED, area, at(MON, "10:00"))
    assert r.asked.level is Level.DISTRICT
    assert r.found_at.id == "d"
    assert ids(r.on_duty) == ["op1"]


def test_a_broken_rota_gives_the_district_with_nobody() -> None:
    d = directory(shift("c1", "st1", {MON}, "08:00", "18:00"))
    r = rota.responsible(d, "c1", at(TUE, "03:00"))
    assert r.asked.id == "c1"
    assert r.found_at.level is Level.DISTRICT
    assert r.on_duty == []
    assert rota.hotline(d, at(TUE, "03:00")) == []


def test_the_hotline_is_the_districts_operators_only() -> None:
    d = directory(
        shift("d", "sup-d", {MON}, "08:00", "18:00"),
        shift("d", "op2", {MON}, "08:00", "18:00", role="backup"),
        shift("d", "op1", {MON}, "08:00", "18:00"),
        shift("c1", "op1", {TUE}, "08:00", "18:00"),  # an operator covering a community
    )
    assert ids(rota.hotline(d, at(MON, "09:00"))) == ["op1", "op2"]
    assert ids(rota.on_duty(d, "d", at(MON, "09:00"))) == ["sup-d", "op1", "op2"]
    assert rota.hotline(d, at(TUE, "09:00")) == []


# --- supervisors ------------------------------------------------------------------------


def test_supervisors_prefer_the_street_on_shift_then_the_district_on_shift() -> None:
    d = directory(
        shift("s1", "sup1", {MON}, "08:00", "18:00"),
        shift("d", "sup-d", {MON, TUE}, "08:00", "18:00"),
    )
    assert [s.id for s in rota.supervisors(d, "c1", at(MON, "09:00"))] == ["sup1"]
    assert [s.id for s in rota.supervisors(d, "s1", at(MON, "09:00"))] == ["sup1"]
    assert [s.id for s in rota.supervisors(d, "c1", at(TUE, "09:00"))] == ["sup-d"]
    assert [s.id for s in rota.supervisors(d, None, at(MON, "09:00"))] == ["sup-d"]


def test_supervisors_fall_back_to_those_off_shift() -> None:
    d = directory(shift("s1", "sup1", {MON}, "08:00", "18:00"))
    # Nobody supervises on shift at night: the street's supervisor, though off shift.
    assert [s.id for s in rota.supervisors(d, "c2", at(MON, "23:00"))] == ["sup1"]
    # s2 has no supervisor of its own: the district's.
    assert [s.id for s in rota.supervisors(d, "s2", at(MON, "09:00"))] == ["sup-d"]


def test_supervisors_ignore_people_on_shift_who_are_not_supervisors() -> None:
    d = directory(shift("s1", "st1", {MON}, "08:00", "18:00"))
    assert [s.id for s in rota.supervisors(d, "c1", at(MON, "09:00"))] == ["sup1"]


def test_no_supervisor_at_all_is_an_empty_list() -> None:
    staff = [s for s in STAFF if s.role is not Role.SUPERVISOR]
    assert rota.supervisors(directory(staff=staff), "c1", at(MON, "09:00")) == []


# --- gaps -------------------------------------------------------------------------------


def test_gaps_are_the_samples_when_the_district_has_nobody() -> None:
    d = directory(
        shift("d", "op1", {MON}, "08:00", "20:00"),
        shift("c1", "st1", {MON}, "00:00", "24:00"),  # a community does not close a gap
    )
    found = rota.gaps(d, at(MON, "00:00"), at(TUE, "00:00"), step=timedelta(hours=1))
    assert [g.hour for g in found] == [0, 1, 2, 3, 4, 5, 6, 7, 20, 21, 22, 23]
    assert rota.gaps(d, at(MON, "08:00"), at(MON, "20:00")) == []


def test_gaps_need_a_positive_step() -> None:
    with pytest.raises(ValueError):
        rota.gaps(directory(), at(MON, "00:00"), at(TUE, "00:00"), step=timedelta(0))


# --- the shipped example ----------------------------------------------------------------


def test_the_example_district_is_never_without_someone() -> None:
    d = load_directory(EXAMPLE)
    assert rota.gaps(d, at(MON, "00:00"), at(MON + 7, "00:00"), step=timedelta(minutes=5)) == []


@pytest.mark.parametrize(
    ("area", "when", "level", "first"),
    [
        ("c-lh", at(TUE, "10:00"), Level.COMMUNITY, "huang-lei"),
        ("c-lh", at(MON, "10:00"), Level.COMMUNITY, "ma-lin"),  # the daily rotation
        ("c-qs", at(TUE, "18:00"), Level.STREET, "sun-li"),  # the streets' evening turn
        ("c-ml", at(TUE, "18:00"), Level.STREET, "sun-li"),
        ("c-ty", at(TUE, "10:00"), Level.STREET, "zhou-jun"),  # 桃源 has no Tuesday cover
        ("c-lh", at(SAT, "14:00"), Level.STREET, "sun-li"),  # 河西 works Saturdays
        ("c-ml", at(SAT, "14:00"), Level.DISTRICT, "demo-operator"),  # 东桥 does not
        ("c-qs", at(WED, "21:00"), Level.DISTRICT, "demo-operator"),
        (None, at(MON, "10:00"), Level.DISTRICT, "demo-operator"),
    ],
)
def test_the_example_rota_shows_the_fallback(
    area: str | None, when: datetime, level: Level, first: str
) -> None:
    r = rota.responsible(load_directory(EXAMPLE), area, when)
    assert r.found_at.level is level
    assert r.on_duty[0].staff.id == first


def test_the_example_community_lists_primary_then_backup() -> None:
    r = rota.responsible(load_directory(EXAMPLE), "c-lh", at(TUE, "10:00"))
    assert [(p.staff.id, p.shift_role) for p in r.on_duty] == [
        ("huang-lei", "primary"),
        ("ma-lin", "backup"),
    ]


def test_the_example_night_hotline() -> None:
    d = load_directory(EXAMPLE)
    # The hotline rotation: 12 hours each for wang-fang, li-qiang, chen-jing from
    # Tuesday 08:00; Sunday 20:00 is the 11th hand-off after it, chen-jing's turn.
    assert ids(rota.hotline(d, at(TUE, "21:00"))) == ["demo-operator", "li-qiang"]
    assert ids(rota.hotline(d, at(SUN, "23:00"))) == ["demo-operator", "chen-jing"]
    assert ids(rota.hotline(d, at(MON + 7, "03:00"))) == ["demo-operator", "chen-jing"]
    assert ids(rota.hotline(d, at(MON + 7, "08:00"))) == [
        "demo-operator",
        "wang-fang",
        "emma-liu",
    ]
    assert ids(rota.hotline(d, at(TUE, "10:00"))) == ["demo-operator", "wang-fang", "emma-liu"]
