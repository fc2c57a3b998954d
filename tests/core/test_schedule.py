"""The rota model: rotations (hand-offs, every N, daylight saving), rules, dated
shifts, overrides, intervals, gaps and overlaps, and the three-level fallback."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.adapters.files.directory_files import load_directory
from dispatcher.core.directory import Area, Directory, Level, Role, Staff
from dispatcher.core.rota import check as rotacheck
from dispatcher.core.rota import on_duty as rota
from dispatcher.core.rota.model import (
    BACKUP,
    PRIMARY,
    DatedShift,
    Override,
    OverrideBook,
    OverrideKind,
    Rotation,
    Rule,
    Schedule,
    Unit,
    add_dated_shifts,
    swap,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
LONDON = ZoneInfo("Europe/London")
EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "data"
ALL_WEEK = frozenset(range(1, 8))
H = timedelta(hours=1)

AREAS = [
    Area("d", Level.DISTRICT, "指挥中心", None),
    Area("s1", Level.STREET, "一街道", "d"),
    Area("c1", Level.COMMUNITY, "一社区", "s1"),
]
STAFF = [
    Staff("a", "Ann", "+441000000001", "d", Role.OPERATOR),
    Staff("b", "Bob", "+441000000002", "d", Role.OPERATOR),
    Staff("c", "Cai", "+441000000003", "d", Role.OPERATOR),
    Staff("sup", "Sue", "+441000000004", "s1", Role.SUPERVISOR),
    Staff("x", "Xu", None, "c1", Role.STAFF),
    Staff("y", "Yan", "+441000000006", "c1", Role.STAFF),
]


def wall(tz: ZoneInfo, *args: int) -> datetime:
    """A local wall time in ``tz``, as the UTC instant (so differences are real time)."""
    return datetime(*args, tzinfo=tz).astimezone(UTC)  # type: ignore[misc]


def rule(
    days: frozenset[int] = ALL_WEEK,
    start: str = "00:00",
    end: str = "00:00",
    *,
    rotation: str | None = None,
    staff: str | None = None,
    role: str = PRIMARY,
    shared: bool = False,
) -> Rule:
    return Rule(
        days,
        time.fromisoformat(start),
        time.fromisoformat(end),
        role,
        rotation_id=rotation,
        staff_id=staff,
        shared=shared,
    )


def directory(
    schedules: dict[str, Schedule],
    rotations: list[Rotation] = (),  # type: ignore[assignment]
    overrides: list[Override] = (),  # type: ignore[assignment]
    tz: str = "Europe/London",
) -> Directory:
    return Directory(
        areas={a.id: a for a in AREAS},
        staff={s.id: s for s in STAFF},
        residents={},
        shifts=(),
        timezone=tz,
        rotations={r.id: r for r in rotations},
        schedules=schedules,
        overrides=OverrideBook(overrides),
    )


def ids(people: list[rota.OnDuty]) -> list[str]:
    return [p.staff.id for p in people]


# --- rotations --------------------------------------------------------------------------


def test_a_daily_rotation_hands_over_at_the_wall_clock_time() -> None:
    r = Rotation("r", Unit.DAY, 1, datetime(2026, 11, 23, 8, 0), ("a", "b", "c"), "Asia/Shanghai")
    assert r.on_call(wall(SHANGHAI, 2026, 11, 23, 8, 0)) == "a"
    assert r.on_call(wall(SHANGHAI, 2026, 11, 24, 7, 59)) == "a"
    assert r.on_call(wall(SHANGHAI, 2026, 11, 24, 8, 0)) == "b"
    assert r.on_call(wall(SHANGHAI, 2026, 11, 25, 12, 0)) == "c"
    assert r.on_call(wall(SHANGHAI, 2026, 11, 26, 8, 0)) == "a"
    # Before the first hand-off the turns run backwards: the anchor only sets the phase.
    assert r.on_call(wall(SHANGHAI, 2026, 11, 23, 7, 59)) == "c"


def test_every_n_days_and_weeks() -> None:
    every3 = Rotation("r", Unit.DAY, 3, datetime(2026, 11, 23, 8, 0), ("a", "b"), "Asia/Shanghai")
    assert every3.on_call(wall(SHANGHAI, 2026, 11, 25, 23, 0)) == "a"
    assert every3.on_call(wall(SHANGHAI, 2026, 11, 26, 8, 0)) == "b"
    assert every3.on_call(wall(SHANGHAI, 2026, 11, 29, 8, 0)) == "a"
    weekly2 = Rotation("w", Unit.WEEK, 2, datetime(2026, 11, 23, 9, 0), ("a", "b"), "Asia/Shanghai")
    assert weekly2.on_call(wall(SHANGHAI, 2026, 12, 7, 8, 59)) == "a"
    assert weekly2.on_call(wall(SHANGHAI, 2026, 12, 7, 9, 0)) == "b"
    assert weekly2.on_call(wall(SHANGHAI, 2026, 12, 21, 9, 0)) == "a"
    assert weekly2.handoffs(
        wall(SHANGHAI, 2026, 11, 23, 0, 0), wall(SHANGHAI, 2027, 1, 1, 0, 0)
    ) == [
        wall(SHANGHAI, 2026, 11, 23, 9, 0),
        wall(SHANGHAI, 2026, 12, 7, 9, 0),
        wall(SHANGHAI, 2026, 12, 21, 9, 0),
    ]


def test_an_hourly_rotation_every_12_hours() -> None:
    r = Rotation("h", Unit.HOUR, 12, datetime(2026, 11, 24, 8, 0), ("a", "b", "c"), "Asia/Shanghai")
    assert r.on_call(wall(SHANGHAI, 2026, 11, 24, 19, 59)) == "a"
    assert r.on_call(wall(SHANGHAI, 2026, 11, 24, 20, 0)) == "b"
    assert r.on_call(wall(SHANGHAI, 2026, 11, 25, 8, 0)) == "c"
    assert r.on_call(wall(SHANGHAI, 2026, 11, 25, 20, 0)) == "a"


def test_daily_hand_offs_keep_their_wall_time_across_london_dst() -> None:
    r = Rotation("r", Unit.DAY, 1, datetime(2026, 3, 27, 8, 0), ("a", "b"), "Europe/London")
    # Clocks go forward on Sunday 29 March 2026: the shift across it lasts 23 hours.
    sat = r.shift_index(wall(LONDON, 2026, 3, 28, 12, 0))
    assert r.shift_start(sat) == wall(LONDON, 2026, 3, 28, 8, 0)
    assert r.shift_start(sat + 1) == wall(LONDON, 2026, 3, 29, 8, 0)
    assert r.shift_start(sat + 1) - r.shift_start(sat) == 23 * H
    assert r.shift_start(sat + 1).astimezone(LONDON).hour == 8
    # Clocks go back on Sunday 25 October 2026: that shift lasts 25 hours.
    oct24 = r.shift_index(wall(LONDON, 2026, 10, 24, 12, 0))
    assert r.shift_start(oct24 + 1) - r.shift_start(oct24) == 25 * H
    assert r.shift_start(oct24 + 1).astimezone(LONDON).hour == 8
    # No hour is lost or doubled: a week of shifts is exactly the real time it spans.
    start = wall(LONDON, 2026, 3, 25, 8, 0)
    first = r.shift_index(start)
    spans = [r.shift_start(i + 1) - r.shift_start(i) for i in range(first, first + 7)]
    assert sum(spans, timedelta()) == r.shift_start(first + 7) - r.shift_start(first)
    assert sorted(spans) == [23 * H] + [24 * H] * 6


def test_an_hourly_rotation_counts_real_hours_when_the_clocks_go_back() -> None:
    r = Rotation("h", Unit.HOUR, 1, datetime(2026, 10, 24, 0, 0), ("a", "b"), "Europe/London")
    # 00:00 BST to 03:00 GMT on 25 October is four real hours: four hand-offs.
    start = wall(LONDON, 2026, 10, 25, 0, 0)
    end = wall(LONDON, 2026, 10, 25, 3, 0)
    handoffs = r.handoffs(start, end)
    assert end - start == 4 * H
    assert len(handoffs) == 4
    assert [b - a for a, b in pairwise(handoffs)] == [H] * 3
    # The two 01:30s (BST then GMT) are different shifts with different people.
    first = datetime(2026, 10, 25, 1, 30, tzinfo=LONDON, fold=0).astimezone(UTC)
    second = datetime(2026, 10, 25, 1, 30, tzinfo=LONDON, fold=1).astimezone(UTC)
    assert second - first == H
    assert r.on_call(first) != r.on_call(second)


def test_a_hand_off_in_the_skipped_hour_is_read_with_the_old_offset() -> None:
    r = Rotation("r", Unit.DAY, 1, datetime(2026, 3, 27, 1, 30), ("a", "b"), "Europe/London")
    i = r.shift_index(wall(LONDON, 2026, 3, 29, 12, 0))
    # 01:30 does not exist on 29 March: it is 01:30 GMT, i.e. 02:30 BST (RFC 5545).
    assert r.shift_start(i) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_shanghai_has_no_dst_so_every_daily_shift_is_24_hours() -> None:
    r = Rotation("r", Unit.DAY, 1, datetime(2026, 1, 1, 8, 0), ("a", "b"), "Asia/Shanghai")
    first = r.shift_index(wall(SHANGHAI, 2026, 1, 1, 9, 0))
    assert {r.shift_start(i + 1) - r.shift_start(i) for i in range(first, first + 366)} == {24 * H}


# --- rules ------------------------------------------------------------------------------


def test_an_overnight_rule_belongs_to_the_day_it_starts() -> None:
    fri_night = rule(frozenset({5}), "22:00", "08:00", staff="a")
    d = directory({"d": Schedule("d", (fri_night,), timezone="Asia/Shanghai")}, tz="Asia/Shanghai")
    assert ids(rota.on_duty(d, "d", wall(SHANGHAI, 2026, 11, 27, 22, 0))) == ["a"]
    assert ids(rota.on_duty(d, "d", wall(SHANGHAI, 2026, 11, 28, 7, 59))) == ["a"]
    assert ids(rota.on_duty(d, "d", wall(SHANGHAI, 2026, 11, 28, 8, 0))) == []
    assert ids(rota.on_duty(d, "d", wall(SHANGHAI, 2026, 11, 26, 23, 0))) == []  # Thursday


def test_a_24_hour_rule_is_25_hours_on_the_day_the_clocks_go_back() -> None:
    sunday = rule(frozenset({7}), "00:00", "00:00", staff="a")
    d = directory({"d": Schedule("d", (sunday,), timezone="Europe/London")})
    start, end = wall(LONDON, 2026, 10, 24, 0, 0), wall(LONDON, 2026, 10, 27, 0, 0)
    [only] = rota.intervals(d, "d", start, end)
    assert only.end - only.start == 25 * H
    assert (only.start, only.end) == (
        wall(LONDON, 2026, 10, 25, 0, 0),
        wall(LONDON, 2026, 10, 26, 0, 0),
    )


def test_an_around_the_clock_rota_has_no_gap_across_either_dst_change() -> None:
    r = Rotation("r", Unit.DAY, 1, datetime(2026, 1, 1, 8, 0), ("a", "b"), "Europe/London")
    day = rule(ALL_WEEK, "08:00", "20:00", rotation="r")
    night = rule(ALL_WEEK, "20:00", "08:00", staff="c")
    d = directory({"d": Schedule("d", (day, night), timezone="Europe/London")}, [r])
    for month, sunday in ((3, 29), (10, 25)):
        start = wall(LONDON, 2026, month, sunday - 2, 0, 0)
        end = wall(LONDON, 2026, month, sunday + 2, 0, 0)
        assert rota.district_gaps(d, start, end) == []
        pieces = rota.intervals(d, "d", start, end)
        covered = sum((i.end - i.start for i in pieces), timedelta())
        assert covered == end - start  # no lost hour, no doubled hour


def test_primaries_before_backups_and_each_person_once() -> None:
    rules = (
        rule(staff="y", role=BACKUP),
        rule(staff="x"),
        rule(staff="y", shared=True),
    )
    d = directory({"c1": Schedule("c1", rules, timezone="Europe/London")})
    people = rota.on_duty(d, "c1", wall(LONDON, 2026, 6, 1, 12, 0))
    assert [(p.staff.id, p.shift_role) for p in people] == [("x", PRIMARY), ("y", PRIMARY)]


def test_dated_shifts_add_to_a_schedule() -> None:
    s = Schedule(
        "c1", (rule(frozenset({1}), "08:00", "12:00", staff="x"),), timezone="Europe/London"
    )
    extra = DatedShift("y", wall(LONDON, 2026, 6, 2, 9, 0), wall(LONDON, 2026, 6, 2, 17, 0), BACKUP)
    d = directory({"c1": add_dated_shifts(s, [extra])})
    assert [
        (p.staff.id, p.shift_role) for p in rota.on_duty(d, "c1", wall(LONDON, 2026, 6, 2, 10, 0))
    ] == [("y", BACKUP)]
    assert rota.on_duty(d, "c1", wall(LONDON, 2026, 6, 2, 17, 0)) == []
    with pytest.raises(ValueError):
        DatedShift("y", datetime(2026, 6, 2, 9), datetime(2026, 6, 2, 17))


# --- overrides --------------------------------------------------------------------------

NOON = wall(LONDON, 2026, 6, 1, 12, 0)
PERIOD = (wall(LONDON, 2026, 6, 1, 8, 0), wall(LONDON, 2026, 6, 1, 16, 0))


def _day(*overrides: Override) -> Directory:
    day = Schedule("d", (rule(staff="a"), rule(staff="b", role=BACKUP)), timezone="Europe/London")
    return directory({"d": day}, overrides=list(overrides))


def test_replace_gives_the_duty_to_another_person_in_the_same_role() -> None:
    o = Override(
        "o1", "d", OverrideKind.REPLACE, *PERIOD, staff_id="c", replaces="a", reason="sick"
    )
    d = _day(o)
    assert [(p.staff.id, p.shift_role) for p in rota.on_duty(d, "d", NOON)] == [
        ("c", PRIMARY),
        ("b", BACKUP),
    ]
    assert ids(rota.on_duty(d, "d", PERIOD[1])) == ["a", "b"]  # over at its end


def test_add_and_remove() -> None:
    add = Override("o1", "d", OverrideKind.ADD, *PERIOD, staff_id="c", role=BACKUP)
    remove = Override("o2", "d", OverrideKind.REMOVE, *PERIOD, staff_id="a", reason="holiday")
    assert ids(rota.on_duty(_day(add), "d", NOON)) == ["a", "b", "c"]
    assert [(p.staff.id, p.shift_role) for p in rota.on_duty(_day(remove), "d", NOON)] == [
        ("b", BACKUP)
    ]
    before = wall(LONDON, 2026, 6, 1, 7, 59)
    assert ids(rota.on_duty(_day(remove), "d", before)) == ["a", "b"]


def test_a_swap_is_two_replaces() -> None:
    monday = (wall(LONDON, 2026, 6, 1, 0, 0), wall(LONDON, 2026, 6, 2, 0, 0))
    tuesday = (wall(LONDON, 2026, 6, 2, 0, 0), wall(LONDON, 2026, 6, 3, 0, 0))
    r = Rotation("r", Unit.DAY, 1, datetime(2026, 6, 1, 0, 0), ("a", "b"), "Europe/London")
    s = Schedule("d", (rule(rotation="r"),), timezone="Europe/London")
    first, second = swap("sw", "d", "a", "b", monday, tuesday)
    d = directory({"d": s}, [r], [first, second])
    assert ids(rota.on_duty(d, "d", wall(LONDON, 2026, 6, 1, 12, 0))) == ["b"]
    assert ids(rota.on_duty(d, "d", wall(LONDON, 2026, 6, 2, 12, 0))) == ["a"]
    assert ids(rota.on_duty(d, "d", wall(LONDON, 2026, 6, 3, 12, 0))) == ["a"]


def test_rotation_on_call_follows_replaces_and_removes() -> None:
    r = Rotation("r", Unit.DAY, 1, datetime(2026, 6, 1, 0, 0), ("a", "b"), "Europe/London")
    s = Schedule("d", (rule(rotation="r"),), timezone="Europe/London")
    sick = Override("o1", "d", OverrideKind.REPLACE, *PERIOD, staff_id="c", replaces="a")
    d = directory({"d": s}, [r], [sick])
    assert [p.id for p in rota.rotation_on_call(d, "r", NOON)] == ["c"]
    assert [p.id for p in rota.rotation_on_call(d, "r", PERIOD[1])] == ["a"]
    d.overrides.remove("o1")  # the book is live: a change applies at once
    assert [p.id for p in rota.rotation_on_call(d, "r", NOON)] == ["a"]
    with pytest.raises(KeyError):
        rota.rotation_on_call(d, "nope", NOON)


def test_bad_overrides_are_refused() -> None:
    with pytest.raises(ValueError, match="end must be after"):
        Override("o", "d", OverrideKind.ADD, PERIOD[1], PERIOD[0], staff_id="a")
    with pytest.raises(ValueError, match="replaces"):
        Override("o", "d", OverrideKind.REPLACE, *PERIOD, staff_id="a")
    with pytest.raises(ValueError, match="themselves"):
        Override("o", "d", OverrideKind.REPLACE, *PERIOD, staff_id="a", replaces="a")


# --- intervals, gaps, overlaps, levels --------------------------------------------------


def test_intervals_merge_and_carry_what_ical_needs() -> None:
    r = Rotation("r", Unit.DAY, 1, datetime(2026, 6, 1, 8, 0), ("a", "b"), "Europe/London")
    s = Schedule(
        "d",
        (rule(ALL_WEEK, "08:00", "20:00", rotation="r"), rule(staff="c", shared=True)),
        timezone="Europe/London",
    )
    d = directory({"d": s}, [r])
    start, end = wall(LONDON, 2026, 6, 1, 0, 0), wall(LONDON, 2026, 6, 3, 0, 0)
    got = [(i.staff_id, i.start, i.end) for i in rota.intervals(d, "d", start, end)]
    assert got == [
        ("c", start, end),  # merged over two days
        ("a", wall(LONDON, 2026, 6, 1, 8, 0), wall(LONDON, 2026, 6, 1, 20, 0)),
        ("b", wall(LONDON, 2026, 6, 2, 8, 0), wall(LONDON, 2026, 6, 2, 20, 0)),
    ]
    first = rota.intervals(d, "d", start, end)[1]
    assert (first.staff_name, first.area_id, first.area_name, first.schedule_name, first.role) == (
        "Ann",
        "d",
        "指挥中心",
        "指挥中心",
        PRIMARY,
    )
    assert [i.start for i in rota.person_intervals(d, "a", start, end)] == [
        wall(LONDON, 2026, 6, 1, 8, 0)
    ]


def test_check_reports_gaps_overlaps_and_missing_phones() -> None:
    schedules = {
        "d": Schedule(
            "d",
            (
                rule(ALL_WEEK, "08:00", "20:00", staff="a"),
                rule(ALL_WEEK, "12:00", "14:00", staff="b"),
            ),
            timezone="Europe/London",
        ),
        "s1": Schedule(
            "s1", (rule(ALL_WEEK, "09:00", "17:00", staff="sup"),), timezone="Europe/London"
        ),
        "c1": Schedule(
            "c1", (rule(ALL_WEEK, "10:00", "11:00", staff="x"),), timezone="Europe/London"
        ),
    }
    d = directory(schedules)
    start, end = wall(LONDON, 2026, 6, 1, 0, 0), wall(LONDON, 2026, 6, 2, 0, 0)
    report = rotacheck.check(d, start, end)
    centre = [(g.start, g.end) for g in report.command_centre_gaps]
    assert centre == [
        (start, wall(LONDON, 2026, 6, 1, 8, 0)),
        (wall(LONDON, 2026, 6, 1, 20, 0), end),
    ]
    c1 = [
        (
            g.start.astimezone(LONDON).hour,
            g.end.astimezone(LONDON).hour,
            g.answered_by.id if g.answered_by else None,
        )
        for g in report.gaps
        if g.area.id == "c1"
    ]
    assert c1 == [
        (0, 8, None),
        (8, 9, "d"),
        (9, 10, "s1"),
        (11, 17, "s1"),
        (17, 20, "d"),
        (20, 0, None),
    ]
    [overlap] = report.overlaps
    assert (overlap.area.id, overlap.staff_ids) == ("d", ("a", "b"))
    assert overlap.end - overlap.start == 2 * H
    assert [n.staff.id for n in report.no_phone] == ["x"]
    text = "\n".join(rotacheck.format_report(report, d))
    assert "GAP" in text and "FAIL" in text


def test_a_shared_rule_is_not_an_overlap() -> None:
    s = Schedule("d", (rule(staff="a"), rule(staff="b", shared=True)), timezone="Europe/London")
    d = directory({"d": s})
    assert rotacheck.check(d, NOON, NOON + 24 * H).overlaps == []


def test_the_answer_says_at_which_level_it_was_found() -> None:
    schedules = {
        "d": Schedule("d", (rule(staff="a"),), timezone="Europe/London"),
        "s1": Schedule(
            "s1", (rule(ALL_WEEK, "09:00", "17:00", staff="sup"),), timezone="Europe/London"
        ),
        "c1": Schedule(
            "c1", (rule(ALL_WEEK, "10:00", "11:00", staff="y"),), timezone="Europe/London"
        ),
    }
    d = directory(schedules)
    found = [rota.responsible(d, "c1", wall(LONDON, 2026, 6, 1, h, 30)) for h in (10, 12, 20)]
    assert [(r.level, ids(r.on_duty)) for r in found] == [
        (Level.COMMUNITY, ["y"]),
        (Level.STREET, ["sup"]),
        (Level.DISTRICT, ["a"]),
    ]


def test_require_command_centre_raises_on_a_gap() -> None:
    d = directory(
        {
            "d": Schedule(
                "d", (rule(ALL_WEEK, "08:00", "20:00", staff="a"),), timezone="Europe/London"
            )
        }
    )
    with pytest.raises(rotacheck.RotaGapError, match="command centre d has nobody on duty"):
        rotacheck.require_command_centre(d, NOON, 1)
    rotacheck.require_command_centre(d, NOON, 0)  # 0 days: no check


# --- properties -------------------------------------------------------------------------

EXAMPLE_DIRECTORY = load_directory(EXAMPLE)
instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(at=instants, area=st.sampled_from([None, "c-lh", "c-qs", "c-ml", "c-ty", "s-hx", "s-dq"]))
def test_the_example_command_centre_always_resolves_to_someone(
    at: datetime, area: str | None
) -> None:
    found = rota.responsible(EXAMPLE_DIRECTORY, area, at)
    assert found.on_duty, at
    assert rota.hotline(EXAMPLE_DIRECTORY, at), at


zones = st.sampled_from(["Asia/Shanghai", "Europe/London", "America/New_York", "Australia/Sydney"])


@st.composite
def valid_rotas(draw: st.DrawFn) -> tuple[Directory, str]:
    """A command centre covered around the clock by rotations (day and night) whose
    people may be replaced or swapped, but never removed without a stand-in."""
    tz = draw(zones)
    handoff = draw(st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2029, 1, 1)))
    people = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=4).map(tuple)
    unit = draw(st.sampled_from(list(Unit)))
    rotations = [
        Rotation(
            "day",
            unit,
            draw(st.integers(1, 5)),
            handoff.replace(second=0, microsecond=0),
            draw(people),
            tz,
        ),
        Rotation(
            "night",
            draw(st.sampled_from(list(Unit))),
            draw(st.integers(1, 3)),
            handoff.replace(second=0, microsecond=0),
            draw(people),
            tz,
        ),
    ]
    split = draw(st.sampled_from(["08:00", "07:30", "01:30", "02:00"]))
    rules = (
        rule(ALL_WEEK, split, "20:00", rotation="day"),
        rule(ALL_WEEK, "20:00", split, rotation="night"),
    )
    overrides = []
    for n in range(draw(st.integers(0, 3))):
        start = draw(
            st.datetimes(
                min_value=datetime(2026, 1, 1),
                max_value=datetime(2028, 1, 1),
                timezones=st.just(UTC),
            )
        )
        length = timedelta(hours=draw(st.integers(1, 24 * 14)))
        who, instead = draw(st.permutations(["a", "b", "c"]))[:2]
        overrides.append(
            Override(
                f"o{n}",
                "d",
                OverrideKind.REPLACE,
                start,
                start + length,
                staff_id=who,
                replaces=instead,
            )
        )
    d = directory({"d": Schedule("d", rules, timezone=tz)}, rotations, overrides, tz=tz)
    return d, tz


@settings(max_examples=150, deadline=None)
@given(
    case=valid_rotas(),
    at=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)
    ),
)
def test_a_valid_generated_rota_always_has_someone_at_the_command_centre(
    case: tuple[Directory, str], at: datetime
) -> None:
    d, _ = case
    assert rota.responsible(d, "c1", at).on_duty, at
    assert rota.district_gaps(d, at, at + timedelta(days=3)) == []


@settings(max_examples=200, deadline=None)
@given(
    unit=st.sampled_from(list(Unit)),
    every=st.integers(1, 6),
    tz=zones,
    handoff=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2029, 1, 1)),
    at=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
)
def test_a_rotation_always_places_an_instant_in_exactly_one_shift(
    unit: Unit, every: int, tz: str, handoff: datetime, at: datetime
) -> None:
    r = Rotation("r", unit, every, handoff.replace(second=0, microsecond=0), ("a", "b", "c"), tz)
    i = r.shift_index(at)
    assert r.shift_start(i) <= at < r.shift_start(i + 1)
    if unit is not Unit.HOUR:
        # Daily and weekly hand-offs keep the anchor's wall-clock time, except when
        # that time does not exist on the day (then it is read with the old offset).
        local = r.shift_start(i).astimezone(ZoneInfo(tz))
        anchor = r.handoff.time()
        assert (
            local.time() == anchor
            or abs(
                datetime.combine(local.date(), local.time())
                - datetime.combine(local.date(), anchor)
            )
            <= 2 * H
        )
