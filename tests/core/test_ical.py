"""iCalendar export and import of shifts: DST-exact, round trips, real apps' files, bad files."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from icalendar import Calendar

from dispatcher.core.rota.ical import (
    IcsError,
    ImportedShift,
    ShiftInterval,
    export_calendar,
    import_calendar,
    shift_uid,
    vtimezone,
)

LONDON = ZoneInfo("Europe/London")
SHANGHAI = ZoneInfo("Asia/Shanghai")
DATA = Path(__file__).resolve().parents[1] / "data"
NOW = datetime(2026, 11, 24, 2, 0, 0, 123456, tzinfo=UTC)
WIDE = {
    "window_start": datetime(2025, 1, 1, tzinfo=UTC),
    "window_end": datetime(2028, 1, 1, tzinfo=UTC),
}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def shift(staff: str, start: datetime, end: datetime, role: str = "primary") -> ShiftInterval:
    names = {"zw": "张伟", "ln": "李娜", "wf": "王芳"}
    return ShiftInterval(staff, names[staff], "liuhu", "柳湖社区", role, start, end)


def daily_rotation(zone: ZoneInfo, first: date, days: int) -> list[ShiftInterval]:
    """08:00-08:00 local each day, handing off between three people."""
    eight = [datetime.combine(first + timedelta(days=n), time(8), zone) for n in range(days + 1)]
    return [shift(["zw", "ln", "wf"][n % 3], eight[n], eight[n + 1]) for n in range(days)]


def imported(data: bytes, zone: str = "Europe/London", **window: datetime) -> list[ImportedShift]:
    return import_calendar(data, default_timezone=zone, **(window or WIDE))


def ics(*events: str, header: str = "") -> bytes:
    body = "\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", header, *events])
    return (body + "\nEND:VCALENDAR\n").replace("\n\n", "\n").replace("\n", "\r\n").encode()


def event(uid: str, *lines: str, summary: str = "Duty") -> str:
    head = ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z", f"SUMMARY:{summary}"]
    return "\n".join([*head, *lines, "END:VEVENT"])


def hours(s: ImportedShift) -> float:
    return (s.end - s.start) / timedelta(hours=1)


# --- export -----------------------------------------------------------------------------


def test_export_of_a_shanghai_schedule_is_an_rfc5545_calendar_apps_can_subscribe_to() -> None:
    shifts = [
        shift(
            "zw",
            datetime(2026, 11, 23, 8, tzinfo=SHANGHAI),
            datetime(2026, 11, 23, 20, tzinfo=SHANGHAI),
        ),
        shift(
            "ln",
            datetime(2026, 11, 23, 20, tzinfo=SHANGHAI),
            datetime(2026, 11, 24, 8, tzinfo=SHANGHAI),
            role="backup",
        ),
    ]
    data = export_calendar(shifts, name="柳湖社区 值班", timezone="Asia/Shanghai", now=NOW)

    lines = data.split(b"\r\n")
    assert data.endswith(b"END:VCALENDAR\r\n") and b"\n" not in data.replace(b"\r\n", b"")
    assert all(len(line) <= 75 for line in lines), "content lines are folded at 75 octets"
    text = data.decode().replace("\r\n ", "")  # unfold
    assert "\r\nX-WR-CALNAME:柳湖社区 值班\r\n" in text
    assert "\r\nX-WR-TIMEZONE:Asia/Shanghai\r\n" in text
    assert "\r\nREFRESH-INTERVAL;VALUE=DURATION:PT1H\r\n" in text
    assert "\r\nX-PUBLISHED-TTL:PT1H\r\n" in text
    assert "\r\nDTSTART;TZID=Asia/Shanghai:20261123T080000\r\n" in text
    assert "\r\nDTEND;TZID=Asia/Shanghai:20261124T080000\r\n" in text
    assert "\r\nSUMMARY:值班 On duty: 张伟 (primary) — 柳湖社区\r\n" in text
    assert "\r\nSUMMARY:值班 On duty: 李娜 (backup) — 柳湖社区\r\n" in text
    assert text.count("\r\nDTSTAMP:20261124T020000Z\r\n") == 2

    calendar = Calendar.from_ical(data)
    [zone] = calendar.timezones
    assert str(zone["TZID"]) == "Asia/Shanghai"
    assert zone.daylight == [] and len(zone.standard) == 1
    assert zone.standard[0].decoded("TZOFFSETTO") == timedelta(hours=8)
    events = calendar.events
    assert [str(e["UID"]) for e in events] == [shift_uid(s) for s in shifts]
    assert [e.decoded("DTSTART") for e in events] == [s.start for s in shifts]
    assert [str(e["X-ELDERCALL-ROLE"]) for e in events] == ["primary", "backup"]


def test_export_in_utc_writes_utc_times_and_no_vtimezone() -> None:
    one = shift("zw", utc(2026, 3, 28, 8), utc(2026, 3, 29, 7))
    text = export_calendar([one], name="x", timezone="UTC", now=NOW).decode()
    assert "BEGIN:VTIMEZONE" not in text
    assert "\r\nDTSTART:20260328T080000Z\r\n" in text
    assert "\r\nDTEND:20260329T070000Z\r\n" in text


@pytest.mark.parametrize(
    "bad",
    [
        shift("zw", datetime(2026, 3, 28, 8), utc(2026, 3, 29, 7)),  # naive
        shift("zw", utc(2026, 3, 28, 8), utc(2026, 3, 28, 8)),  # empty
        shift("zw", utc(2026, 3, 28, 8), utc(2026, 3, 28, 7)),  # backwards
        shift("zw", utc(2026, 3, 28, 8), utc(2026, 3, 28, 9), role="chief"),
    ],
)
def test_export_refuses_shifts_that_are_not_shifts(bad: ShiftInterval) -> None:
    with pytest.raises(ValueError):
        export_calendar([bad], name="x", timezone="Europe/London", now=NOW)


def test_export_refuses_an_unknown_zone() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        export_calendar([], name="x", timezone="Mars/Olympus", now=NOW)


def test_uids_are_stable_so_subscribed_calendars_update_rather_than_duplicate() -> None:
    shifts = daily_rotation(SHANGHAI, date(2026, 11, 23), 3)

    def uids(data: bytes) -> list[str]:
        return re.findall(r"\r\nUID:([^\r]+)", data.decode())

    first = export_calendar(shifts, name="a", timezone="Asia/Shanghai", now=NOW)
    # Later, in another order, with a renamed person and given in another zone: same UIDs.
    renamed = [
        ShiftInterval(
            s.staff_id,
            s.staff_name + "（改名）",
            s.schedule_id,
            "新名字",
            s.role,
            s.start.astimezone(UTC),
            s.end,
        )
        for s in shifts
    ]
    again = export_calendar(
        reversed(renamed), name="b", timezone="Asia/Shanghai", now=NOW + timedelta(days=1)
    )
    assert uids(first) == uids(again) == [shift_uid(s) for s in shifts]
    assert len(set(uids(first))) == 3
    # A shift given twice is one event; a changed shift is a different event.
    assert uids(
        export_calendar(shifts + shifts[:1], name="a", timezone="Asia/Shanghai", now=NOW)
    ) == uids(first)
    moved = shift(shifts[0].staff_id, shifts[0].start, shifts[0].end + timedelta(hours=1))
    assert shift_uid(moved) != shift_uid(shifts[0])
    other_role = shift(shifts[0].staff_id, shifts[0].start, shifts[0].end, role="backup")
    assert shift_uid(other_role) != shift_uid(shifts[0])


def test_round_trip_gives_back_the_same_shifts() -> None:
    shifts = [
        *daily_rotation(LONDON, date(2026, 3, 26), 5),
        shift(
            "ln",
            datetime(2026, 3, 28, 20, tzinfo=LONDON),
            datetime(2026, 3, 29, 8, tzinfo=LONDON),
            "backup",
        ),
        # Given in Shanghai time, exported into a London calendar.
        shift(
            "wf",
            datetime(2026, 10, 24, 23, tzinfo=SHANGHAI),
            datetime(2026, 10, 25, 11, tzinfo=SHANGHAI),
        ),
        # Seconds are kept; microseconds are dropped (iCalendar times have whole seconds).
        shift("zw", utc(2026, 12, 31, 23, 59, 59), datetime(2027, 1, 1, 6, 0, 30, 999, tzinfo=UTC)),
    ]
    data = export_calendar(shifts, name="柳湖社区", timezone="Europe/London", now=NOW)

    back = imported(data)

    expected = sorted(
        (
            ImportedShift(
                person=s.staff_name,
                role=s.role,
                start=s.start.astimezone(UTC),
                end=s.end.astimezone(UTC).replace(microsecond=0),
                uid=shift_uid(s),
                staff_id=s.staff_id,
            )
            for s in shifts
        ),
        key=lambda s: (s.start, s.end, s.person),
    )
    assert back == expected
    assert all(s.start.tzinfo is UTC and s.end.tzinfo is UTC for s in back)


# --- daylight saving --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "first", "lengths"),
    [
        # Last Sunday of March 2026 is the 29th: the shift from Saturday 08:00 is 23 h.
        (LONDON, date(2026, 3, 26), [24, 24, 23, 24, 24, 24, 24]),
        # Last Sunday of October 2026 is the 25th: the shift from Saturday 08:00 is 25 h.
        (LONDON, date(2026, 10, 22), [24, 24, 25, 24, 24, 24, 24]),
        (SHANGHAI, date(2026, 3, 26), [24] * 7),
    ],
)
def test_a_daily_rotation_across_a_dst_change_neither_loses_nor_doubles_an_hour(
    zone: ZoneInfo, first: date, lengths: list[int]
) -> None:
    week = daily_rotation(zone, first, 7)
    exported = export_calendar(week, name="r", timezone=str(zone), now=NOW)
    # The same rotation as one recurring event, as a person would write it in an app.
    recurring = ics(
        event(
            "rotation",
            f"DTSTART;TZID={zone}:{first:%Y%m%d}T080000",
            f"DTEND;TZID={zone}:{first + timedelta(days=1):%Y%m%d}T080000",
            "RRULE:FREQ=DAILY;COUNT=7",
        )
    )
    for data in (exported, recurring):
        shifts = imported(data, str(zone))
        assert [hours(s) for s in shifts] == lengths
        assert all(a.end == b.start for a, b in itertools.pairwise(shifts)), "hand-offs meet"
        elapsed = shifts[-1].end - shifts[0].start
        assert sum((s.end - s.start for s in shifts), timedelta()) == elapsed
        assert [s.start.astimezone(zone).hour for s in shifts] == [8] * 7


def test_the_vtimezone_gives_each_change_as_local_time_before_it() -> None:
    component = vtimezone("Europe/London", date(2026, 1, 1), date(2028, 1, 1))
    text = component.to_ical().decode()
    # RFC 5545 3.6.5 (and tzurl.org, Outlook, Google): onset in the TZOFFSETFROM offset.
    assert "DTSTART:20260329T010000" in text  # 01:00 GMT, the clocks jump to 02:00 BST
    assert "DTSTART:20261025T020000" in text  # 02:00 BST, the clocks go back to 01:00 GMT
    assert "20270328T010000" in text and "20271031T020000" in text


@pytest.mark.parametrize(
    "zone", ["Europe/London", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe"]
)
def test_every_vtimezone_change_is_a_real_change_of_offset(zone: str) -> None:
    tz = ZoneInfo(zone)
    component = vtimezone(zone, date(2026, 1, 1), date(2028, 1, 1))
    changes = 0
    for observance in (*component.standard, *component.daylight):
        before, after = observance.decoded("TZOFFSETFROM"), observance.decoded("TZOFFSETTO")
        if before == after:
            continue
        onsets = [observance.decoded("DTSTART")]
        rdates = observance.get("RDATE")
        for listed in rdates if isinstance(rdates, list) else [rdates] if rdates else []:
            onsets += [d.dt for d in listed.dts]
        for onset in onsets:
            instant = (onset - before).replace(tzinfo=UTC)
            assert (instant - timedelta(seconds=1)).astimezone(tz).utcoffset() == before
            assert instant.astimezone(tz).utcoffset() == after
            changes += 1
    assert changes == 4  # two a year, two years


def test_a_repeated_local_time_on_fall_back_day_is_its_first_occurrence() -> None:
    # RFC 5545 3.3.5: 01:30 on 25 Oct 2026 happens at 00:30 UTC (BST) and at 01:30 UTC
    # (GMT); a TZID time means the first. The same with Outlook's own VTIMEZONE.
    data = ics(
        event(
            "fallback",
            "DTSTART;TZID=Europe/London:20261025T013000",
            "DTEND;TZID=Europe/London:20261025T030000",
        ),
        event(
            "fallback-outlook",
            "DTSTART;TZID=GMT Standard Time:20261025T013000",
            "DTEND;TZID=GMT Standard Time:20261025T030000",
        ),
        header=OUTLOOK_LONDON_VTIMEZONE,
    )
    for s in imported(data):
        assert (s.start, s.end) == (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 3)), s.uid
        assert hours(s) == 2.5


def test_a_shift_starting_in_the_second_repeated_hour_is_written_in_utc_and_comes_back() -> None:
    first = shift("zw", datetime(2026, 10, 25, 1, 30, tzinfo=LONDON), utc(2026, 10, 25, 8))
    second = shift("ln", datetime(2026, 10, 25, 1, 30, fold=1, tzinfo=LONDON), utc(2026, 10, 25, 8))
    assert first.start.astimezone(UTC) == utc(2026, 10, 25, 0, 30)
    assert second.start.astimezone(UTC) == utc(2026, 10, 25, 1, 30)
    data = export_calendar([first, second], name="r", timezone="Europe/London", now=NOW)

    text = data.decode()
    assert "\r\nDTSTART;TZID=Europe/London:20261025T013000\r\n" in text
    assert "\r\nDTSTART:20261025T013000Z\r\n" in text
    assert [(s.person, s.start) for s in imported(data)] == [
        ("张伟", utc(2026, 10, 25, 0, 30)),
        ("李娜", utc(2026, 10, 25, 1, 30)),
    ]


def test_a_skipped_local_time_on_spring_forward_day_uses_the_offset_before_the_gap() -> None:
    # 01:30 on 29 Mar 2026 does not exist in London (01:00 GMT -> 02:00 BST). RFC 5545
    # 3.3.5: read it with the offset before the gap, so 01:30 GMT = 02:30 BST; the shift
    # to 03:30 BST lasts one hour. Outlook's own VTIMEZONE (read by dateutil) gives the same.
    data = ics(
        event(
            "gap",
            "DTSTART;TZID=Europe/London:20260329T013000",
            "DTEND;TZID=Europe/London:20260329T033000",
        ),
        event(
            "gap-outlook",
            "DTSTART;TZID=GMT Standard Time:20260329T013000",
            "DTEND;TZID=GMT Standard Time:20260329T033000",
        ),
        header=OUTLOOK_LONDON_VTIMEZONE,
    )
    shifts = imported(data)
    assert len(shifts) == 2
    for s in shifts:
        assert (s.start, s.end) == (utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2, 30)), s.uid
        assert s.start.astimezone(LONDON).strftime("%H:%M %Z") == "02:30 BST"


OUTLOOK_LONDON_VTIMEZONE = """BEGIN:VTIMEZONE
TZID:GMT Standard Time
BEGIN:STANDARD
DTSTART:16011028T020000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10
TZOFFSETFROM:+0100
TZOFFSETTO:-0000
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010325T010000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3
TZOFFSETFROM:-0000
TZOFFSETTO:+0100
END:DAYLIGHT
END:VTIMEZONE"""


# --- import -----------------------------------------------------------------------------


def test_rrule_with_exdate_a_moved_occurrence_and_a_cancelled_one() -> None:
    data = ics(
        event(
            "weekly",
            "DTSTART;TZID=Asia/Shanghai:20261102T080000",
            "DTEND;TZID=Asia/Shanghai:20261102T200000",
            "RRULE:FREQ=WEEKLY;BYDAY=MO,TH;UNTIL=20261119T235959Z",
            "EXDATE;TZID=Asia/Shanghai:20261105T080000,20261116T080000",
            "ATTENDEE;CN=张伟:mailto:zw@example.cn",
        ),
        event(
            "weekly",
            "RECURRENCE-ID;TZID=Asia/Shanghai:20261109T080000",
            "DTSTART;TZID=Asia/Shanghai:20261110T090000",
            "DTEND;TZID=Asia/Shanghai:20261110T210000",
            "ATTENDEE;CN=李娜:mailto:ln@example.cn",
            "SEQUENCE:1",
            summary="Duty (swapped)",
        ),
        event(
            "weekly",
            "RECURRENCE-ID;TZID=Asia/Shanghai:20261112T080000",
            "DTSTART;TZID=Asia/Shanghai:20261112T080000",
            "DTEND;TZID=Asia/Shanghai:20261112T200000",
            "STATUS:CANCELLED",
            "SEQUENCE:1",
        ),
    )
    shifts = imported(data, "Asia/Shanghai")
    assert [(s.person, s.start, s.end, s.uid) for s in shifts] == [
        ("张伟", utc(2026, 11, 2, 0), utc(2026, 11, 2, 12), "weekly#20261102T000000Z"),
        # 5 Nov excluded; 9 Nov moved to Tuesday 10th at 09:00 and taken by 李娜
        ("李娜", utc(2026, 11, 10, 1), utc(2026, 11, 10, 13), "weekly#20261109T000000Z"),
        # 12 Nov cancelled; 16 Nov excluded
        ("张伟", utc(2026, 11, 19, 0), utc(2026, 11, 19, 12), "weekly#20261119T000000Z"),
    ]


def test_rdate_adds_occurrences() -> None:
    data = ics(
        event(
            "extra",
            "DTSTART;TZID=Europe/London:20261024T200000",
            "DTEND;TZID=Europe/London:20261025T080000",
            "RDATE;TZID=Europe/London:20261031T200000",
        )
    )
    assert [(s.start, hours(s)) for s in imported(data)] == [
        (utc(2026, 10, 24, 19), 13.0),  # 20:00 BST to 08:00 GMT across the change
        (utc(2026, 10, 31, 20), 12.0),
    ]


@pytest.mark.parametrize(
    ("zone", "day", "length"),
    [
        ("Europe/London", "20260329", 23),
        ("Europe/London", "20261025", 25),
        ("Europe/London", "20260330", 24),
        ("Asia/Shanghai", "20260329", 24),
    ],
)
def test_all_day_events_run_midnight_to_midnight_in_the_default_zone(
    zone: str, day: str, length: int
) -> None:
    data = ics(event("day", f"DTSTART;VALUE=DATE:{day}", summary="王芳"))  # no DTEND: one day
    [s] = imported(data, zone)
    assert hours(s) == length
    assert s.start.astimezone(ZoneInfo(zone)).strftime("%Y%m%d %H:%M") == f"{day} 00:00"
    assert s.person == "王芳"


def test_multi_day_all_day_event_and_its_dst_change() -> None:
    data = ics(event("leave", "DTSTART;VALUE=DATE:20260328", "DTEND;VALUE=DATE:20260331"))
    [s] = imported(data)
    assert (s.start, s.end, hours(s)) == (utc(2026, 3, 28, 0), utc(2026, 3, 30, 23), 71)


def test_floating_times_are_in_the_default_zone() -> None:
    data = ics(event("float", "DTSTART:20261124T080000", "DURATION:PT12H"))
    [s] = imported(data, "Asia/Shanghai")
    assert (s.start, s.end) == (utc(2026, 11, 24, 0), utc(2026, 11, 24, 12))
    [s] = imported(data, "Europe/London")
    assert (s.start, s.end) == (utc(2026, 11, 24, 8), utc(2026, 11, 24, 20))


def test_only_shifts_overlapping_the_window_are_returned_whole() -> None:
    data = export_calendar(
        daily_rotation(SHANGHAI, date(2026, 11, 20), 6), name="r", timezone="Asia/Shanghai", now=NOW
    )
    window = {
        "window_start": datetime(2026, 11, 22, 12, tzinfo=SHANGHAI),
        "window_end": datetime(2026, 11, 24, 8, tzinfo=SHANGHAI),  # exclusive: a hand-off
    }
    shifts = imported(data, "Asia/Shanghai", **window)
    assert [s.start.astimezone(SHANGHAI).day for s in shifts] == [22, 23]
    assert shifts[0].start == datetime(2026, 11, 22, 8, tzinfo=SHANGHAI)  # not clipped


def test_person_and_role_rules() -> None:
    data = ics(
        event("cn", "DTSTART:20261124T000000Z", "DTEND:20261124T010000Z",
              "ATTENDEE;CN=张伟:mailto:zw@example.cn", "ATTENDEE;CN=李娜:mailto:ln@example.cn",
              "CATEGORIES:Rota,BACKUP"),
        event("mail", "DTSTART:20261124T010000Z", "DTEND:20261124T020000Z",
              "ATTENDEE:MAILTO:ln@example.cn", "X-ELDERCALL-ROLE:Backup", "CATEGORIES:primary"),
        event("tel", "DTSTART:20261124T020000Z", "DTEND:20261124T030000Z",
              "ATTENDEE:tel:+8613800000007"),
        event("summary", "DTSTART:20261124T030000Z", "DTEND:20261124T040000Z", summary=" 王芳 "),
    )  # fmt: skip
    assert [(s.uid, s.person, s.role, s.staff_id) for s in imported(data)] == [
        ("cn", "张伟", "backup", None),
        ("mail", "ln@example.cn", "backup", None),
        ("tel", "+8613800000007", "primary", None),
        ("summary", "王芳", "primary", None),
    ]


def test_a_calendar_exported_by_google_calendar() -> None:
    data = (DATA / "google_rota.ics").read_bytes()
    series = "4k3j2h1g0f9e8d7c6b5a4k3j2h@google.com"
    li_na = "7f6e5d4c3b2a19087f6e5d4c3b@google.com"
    wang_fang = "5e4d3c2b1a0f5e4d3c2b1a0f5e@google.com"
    zw = ("Zhang Wei", "primary")
    assert [(s.person, s.role, s.start, s.end, s.uid) for s in imported(data)] == [
        (*zw, utc(2026, 3, 23, 8), utc(2026, 3, 23, 20), f"{series}#20260323T080000Z"),
        (*zw, utc(2026, 3, 25, 8), utc(2026, 3, 25, 20), f"{series}#20260325T080000Z"),
        # moved two hours later by an override
        (*zw, utc(2026, 3, 27, 10), utc(2026, 3, 27, 22), f"{series}#20260327T080000Z"),
        # Google writes single events in UTC, and puts the address in CN
        ("li.na@example.org", "primary", utc(2026, 3, 28, 20), utc(2026, 3, 29, 7), li_na),
        # all day on the day the clocks go forward: 23 h
        ("Wang Fang", "primary", utc(2026, 3, 29, 0), utc(2026, 3, 29, 23), wang_fang),
        # summer time: 08:00 BST is 07:00 UTC. 1 April is an EXDATE; 26 March is cancelled.
        (*zw, utc(2026, 3, 30, 7), utc(2026, 3, 30, 19), f"{series}#20260330T070000Z"),
        (*zw, utc(2026, 4, 3, 7), utc(2026, 4, 3, 19), f"{series}#20260403T070000Z"),
    ]


def test_a_calendar_exported_by_outlook() -> None:
    data = (DATA / "outlook_rota.ics").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # Outlook's BOM
    shifts = imported(data, "Asia/Shanghai")
    assert [(s.person, s.role, s.start, s.end) for s in shifts] == [
        ("刘洋", "backup", utc(2026, 11, 23, 12), utc(2026, 11, 24, 0)),
        ("chen.jing@example.cn", "primary", utc(2026, 11, 24, 0), utc(2026, 11, 24, 12)),
        ("刘洋", "backup", utc(2026, 11, 30, 12), utc(2026, 12, 1, 0)),
        ("刘洋", "backup", utc(2026, 12, 7, 12), utc(2026, 12, 8, 0)),
    ]
    assert shifts[0].uid.endswith("F1E2D3C4B5A69788796A5B4C3D2E1F0#20261123T120000Z")


def test_a_file_s_own_vtimezone_wins_over_one_with_the_same_tzid_read_earlier() -> None:
    def zone_file(offset: str, with_vtimezone: bool = True) -> bytes:
        vtz = "\n".join(
            ["BEGIN:VTIMEZONE", "TZID:Rota Zone", "BEGIN:STANDARD", "DTSTART:19700101T000000",
             f"TZOFFSETFROM:{offset}", f"TZOFFSETTO:{offset}", "END:STANDARD", "END:VTIMEZONE"]
        )  # fmt: skip
        return ics(
            event(
                "z",
                "DTSTART;TZID=Rota Zone:20261124T080000",
                "DTEND;TZID=Rota Zone:20261124T200000",
            ),
            header=vtz if with_vtimezone else "",
        )

    assert imported(zone_file("+0800"))[0].start == utc(2026, 11, 24, 0)
    assert imported(zone_file("+0000"))[0].start == utc(2026, 11, 24, 8)
    with pytest.raises(IcsError, match="TZID 'Rota Zone'"):
        imported(zone_file("+0800", with_vtimezone=False))


# --- bad files --------------------------------------------------------------------------

TIMES = ("DTSTART:20261124T000000Z", "DTEND:20261124T010000Z")
LONDON_DAY = (
    "DTSTART;TZID=Europe/London:20261124T080000",
    "DTEND;TZID=Europe/London:20261124T200000",
)
ONE = ics(event("a", *TIMES))


def bad(name: str, data: bytes, message: str) -> object:
    return pytest.param(data, message, id=name)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        bad("empty", b"", "empty"),
        bad("blank", b"  \r\n", "empty"),
        bad("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "not an iCalendar file"),
        bad("json", b'{"shifts": []}', "not an iCalendar file"),
        bad("garbage", b"BEGIN:VCALENDAR\r\nnot a content line\r\n", "not a readable iCalendar"),
        bad(
            "gbk",
            "BEGIN:VCALENDAR\r\nX-WR-CALNAME:值班\r\nEND:VCALENDAR".encode("gbk"),
            "not UTF-8",
        ),
        bad("vtodo", ONE.replace(b"VCALENDAR", b"VTODO"), "not an iCalendar file"),
        bad("two", ONE * 2, "expected one VCALENDAR, found VCALENDAR, VCALENDAR"),
        bad(
            "no-dtstart",
            ics(event("shift-7", "DTEND:20261124T010000Z")),
            "VEVENT UID 'shift-7' \\('Duty'\\): has no DTSTART",
        ),
        bad(
            "end-before-start",
            ics(event("shift-8", "DTSTART:20261124T020000Z", "DTEND:20261124T010000Z")),
            "UID 'shift-8' .*DTEND 2026-11-24T01:00:00\\+00:00 is before DTSTART 2026-11-24T02",
        ),
        bad(
            "end-equals-start",
            ics(event("shift-9", "DTSTART:20261124T020000Z", "DTEND:20261124T020000Z")),
            "UID 'shift-9' .*DTEND equals DTSTART, so the shift has no length",
        ),
        bad("no-end", ics(event("a", TIMES[0])), "has no DTEND or DURATION"),
        bad(
            "end-and-duration", ics(event("a", *TIMES, "DURATION:PT1H")), "both DTEND and DURATION"
        ),
        bad(
            "negative-duration",
            ics(event("a", TIMES[0], "DURATION:-PT1H")),
            "DURATION -1 day, 23:00:00 is not positive",
        ),
        bad(
            "date-and-datetime",
            ics(event("a", "DTSTART;VALUE=DATE:20261124", "DTEND:20261125T000000Z")),
            "must both be dates or both date-times",
        ),
        bad(
            "unknown-tzid",
            ics(
                event(
                    "shift-10",
                    "DTSTART;TZID=Mars/Olympus:20261124T080000",
                    "DTEND;TZID=Mars/Olympus:20261124T200000",
                )
            ),
            "UID 'shift-10' .*DTSTART uses TZID 'Mars/Olympus', which is neither a VTIMEZONE",
        ),
        bad(
            "unknown-tzid-in-exdate",
            ics(event("a", *LONDON_DAY, "EXDATE;TZID=Europe/Lndon:20261124T080000")),
            "EXDATE uses TZID 'Europe/Lndon'",
        ),
        bad(
            "bad-date",
            ics(event("shift-11", "DTSTART:2026-11-24 08:00", TIMES[1])),
            "UID 'shift-11' .*cannot read DTSTART",
        ),
        bad(
            "bad-rrule",
            ics(event("shift-12", *TIMES, "RRULE:FREQ=SOMETIMES")),
            "UID 'shift-12' .*cannot read RRULE",
        ),
        bad(
            "no-uid",
            ics(event("a", *TIMES, summary="Night").replace("UID:a\n", "")),
            "VEVENT #1 \\('Night'\\): has no UID",
        ),
        bad(
            "bad-role",
            ics(event("a", *TIMES, "X-ELDERCALL-ROLE:chief")),
            "X-ELDERCALL-ROLE must be one of",
        ),
        bad("nobody", ics(event("a", *TIMES, summary="")), "names nobody"),
        bad(
            "repeated-sequence",
            ics(event("a", *TIMES, "SEQUENCE:1", "SEQUENCE:2")),
            "UID 'a' .*has 2 SEQUENCE properties",
        ),
        bad(
            "repeated-dtstart",
            ics(event("a", *TIMES, "DTSTART:20261124T003000Z")),
            "has 2 DTSTART properties",
        ),
        bad(
            "rrule-without-freq",
            ics(event("a", *TIMES), event("shift-13", *TIMES, "RRULE:COUNT=3;BYDAY=MO")),
            "cannot expand VEVENT UID 'shift-13' \\('Duty'\\): .*freq",
        ),
        bad(
            "not-gregorian",
            ics(event("a", *TIMES), header="CALSCALE:JULIAN"),
            "CALSCALE is JULIAN: only the Gregorian calendar is supported",
        ),
        bad(
            # 01:30 does not exist that day: it is 02:30 BST, after the end at 02:00 BST
            "starts-in-the-spring-gap",
            ics(
                event(
                    "a",
                    "DTSTART;TZID=Europe/London:20260329T013000",
                    "DTEND;TZID=Europe/London:20260329T020000",
                )
            ),
            "DTEND .* is before DTSTART",
        ),
    ],
)
def test_bad_files_raise_icserror_saying_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(IcsError, match=message):
        imported(data)


def test_import_refuses_bad_arguments() -> None:
    data = ics(event("a", *TIMES))
    with pytest.raises(ValueError, match="unknown time zone"):
        import_calendar(data, default_timezone="Nowhere", **WIDE)
    with pytest.raises(ValueError, match="timezone-aware"):
        import_calendar(
            data,
            default_timezone="UTC",
            window_start=datetime(2026, 1, 1),
            window_end=utc(2027, 1, 1),
        )
    with pytest.raises(ValueError, match="after window_start"):
        import_calendar(
            data, default_timezone="UTC", window_start=utc(2027, 1, 1), window_end=utc(2026, 1, 1)
        )


def test_a_repeated_uid_is_refused_by_name() -> None:
    data = ics(event("a", *TIMES).replace("UID:a", "UID:a\nUID:b"))
    with pytest.raises(IcsError, match="VEVENT UID 'a' \\('Duty'\\): has 2 UID properties"):
        imported(data)


FIXTURE_LINES = [
    (DATA / name).read_bytes().split(b"\r\n") for name in ("google_rota.ics", "outlook_rota.ics")
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_damaged_app_file_gives_shifts_or_icserror_never_another_exception(
    data: st.DataObject,
) -> None:
    lines = list(data.draw(st.sampled_from(FIXTURE_LINES)))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(lines) - 1))
        change = data.draw(st.sampled_from(["drop", "repeat", "cut", "poke"]))
        if change == "drop":
            del lines[at]
        elif change == "repeat":
            lines.insert(at, lines[data.draw(st.integers(0, len(lines) - 1))])
        elif change == "cut":
            lines[at] = lines[at][: data.draw(st.integers(0, len(lines[at])))]
        elif lines[at]:
            where = data.draw(st.integers(0, len(lines[at]) - 1))
            byte = data.draw(st.sampled_from(list(b'0123456789:;=,"TZ-+ ABXP\xff')))
            lines[at] = lines[at][:where] + bytes([byte]) + lines[at][where + 1 :]
    try:
        shifts = imported(b"\r\n".join(lines))
    except IcsError:
        return
    assert all(s.start < s.end and s.start.tzinfo is UTC for s in shifts)
