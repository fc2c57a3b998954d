"""The morning fleet report, pure: links, open alerts and the directory at ``now``."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

from dispatcher.core.directory import Area, Directory, Level, Resident
from dispatcher.core.fleet import CSV_HEADERS, Link, Problem, ReportRules, fleet_report, report_csv

NOW = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
DAY = timedelta(days=1)


def directory() -> Directory:
    areas = {
        "d": Area("d", Level.DISTRICT, "District", None),
        "s": Area("s", Level.STREET, "Street", "d"),
        "c-a": Area("c-a", Level.COMMUNITY, "柳湖社区", "s"),
        "c-b": Area("c-b", Level.COMMUNITY, "青石社区", "s"),
    }
    residents = {
        f"r-{n}": Resident(
            id=f"r-{n}",
            name=f"居民{n}",
            birth_date=date(1940, 1, 1),
            address=f"柳湖路{n}号",
            community_id="c-a" if n < 7 else "c-b",
            device_id=f"dev-{n}",
            phone="+862164110000",
        )
        for n in range(1, 9)
    }
    return Directory(areas, {}, residents, (), timezone="Asia/Shanghai")


def link(device: str, **kw: object) -> Link:
    values: dict[str, object] = {
        "device_id": device,
        "last_seen_at": NOW - timedelta(minutes=5),
        "status": "online",
        "status_at": NOW - 2 * DAY,
        "battery": 90,
        "last_test_at": NOW - 2 * DAY,
    }
    values.update(kw)
    return Link(**values)  # type: ignore[arg-type]


def links() -> list[Link]:
    return [
        link("dev-1"),  # all well
        link("dev-2", status="offline"),
        link("dev-3", battery=15),
        link("dev-4", last_seen_at=NOW - DAY - timedelta(minutes=1), last_test_at=None),
        link("dev-5", last_test_at=NOW - 31 * DAY, power_lost_at=NOW - timedelta(hours=2)),
        link("dev-6"),  # an open heartbeat_missed alert
        # dev-7 never seen; dev-8 fine.
        link("dev-8"),
        link("dev-x", last_test_at=None),  # heard from, not registered
    ]


ALERTS = {"dev-6": frozenset({"heartbeat_missed"}), "dev-8": frozenset({"battery_low"})}


def test_each_device_with_a_problem_is_listed_with_all_its_problems() -> None:
    report = fleet_report(directory(), links(), ALERTS, NOW)
    got = {r.device_id: r.problems for r in report.rows}
    assert got == {
        "dev-2": [Problem.OFFLINE],
        "dev-3": [Problem.LOW_BATTERY],
        "dev-4": [Problem.SILENT, Problem.NEVER_TESTED],
        "dev-5": [Problem.POWER_LOST, Problem.NOT_TESTED],
        "dev-6": [Problem.OFFLINE],
        "dev-7": [Problem.NEVER_SEEN, Problem.NEVER_TESTED],
        "dev-8": [Problem.LOW_BATTERY],
        "dev-x": [Problem.NEVER_TESTED],
    }
    # What stops a call for help first.
    assert [r.device_id for r in report.rows][:2] == ["dev-2", "dev-6"]
    assert report.counts[Problem.OFFLINE] == 2 and report.counts[Problem.NEVER_TESTED] == 3
    assert report.devices_registered == 8 and report.devices_seen == 8
    seven = next(r for r in report.rows if r.device_id == "dev-7")
    assert seven.resident_name == "居民7" and seven.community_name == "青石社区"
    assert seven.last_seen_at is None and seven.status is None


def test_the_rules_set_the_periods_and_the_threshold() -> None:
    rules = ReportRules(untested_after=40 * DAY, silent_after=2 * DAY, low_battery_pct=10)
    got = {r.device_id: r.problems for r in fleet_report(directory(), links(), {}, NOW, rules).rows}
    assert "dev-3" not in got  # 15 % is not low at 10
    assert got["dev-4"] == [Problem.NEVER_TESTED]  # silent a day, not two
    assert got["dev-5"] == [Problem.POWER_LOST]  # tested 31 days ago, within 40


def test_a_viewers_area_limits_the_rows_to_its_residents() -> None:
    report = fleet_report(directory(), links(), ALERTS, NOW, area_ids=frozenset({"c-b"}))
    assert [r.device_id for r in report.rows] == ["dev-8", "dev-7"]


def test_the_csv_opens_in_excel_with_chinese_headers_and_local_times() -> None:
    data = report_csv(fleet_report(directory(), links(), ALERTS, NOW))
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 byte-order mark
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert tuple(rows[0]) == CSV_HEADERS and "设备编号" in rows[0][0]
    five = next(r for r in rows if r[0] == "dev-5")
    assert five[1] == "断电 power lost; 一月未测试 not tested"
    assert five[2] == "居民5" and five[4] == "柳湖路5号"
    assert five[5] == "'+862164110000"  # not read as a formula
    assert five[7] == "2026-11-24 07:55"  # Shanghai time
    assert five[9] == "2026-11-24 06:00"
    assert len(rows) == 1 + 8
