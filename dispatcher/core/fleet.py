"""The morning fleet report: which devices need a visit, and why.

Pure: the devices' links (as stored), the open technical alerts and the directory
come in with ``now``; the report goes out, one row per device with a problem:

- ``offline``: its Last Will said offline, or an offline / missed-heartbeat alert is open;
- ``low_battery``: a ``battery_low`` alert is open, or it last reported at most the
  threshold;
- ``power_lost``: its base unit has no mains power;
- ``never_seen``: registered, never heard from;
- ``silent``: not heard from for a day (or the period set);
- ``never_tested`` / ``not_tested``: no end-to-end test ever, or none within a month.

A row carries what the staff who visit homes need (the resident, address, phone) and
never medical or access details.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from dispatcher.core.directory import Directory


class Problem(StrEnum):
    OFFLINE = "offline"
    LOW_BATTERY = "low_battery"
    POWER_LOST = "power_lost"
    NEVER_SEEN = "never_seen"
    SILENT = "silent"
    NEVER_TESTED = "never_tested"
    NOT_TESTED = "not_tested"


# The report's order: what stops a call for help first.
ORDER = tuple(Problem)


@dataclass(frozen=True)
class Link:
    """A device's link as stored."""

    device_id: str
    last_seen_at: datetime
    status: str  # online / offline
    status_at: datetime
    battery: int | None = None
    power_lost_at: datetime | None = None
    last_test_at: datetime | None = None


@dataclass(frozen=True)
class ReportRules:
    untested_after: timedelta = timedelta(days=30)
    silent_after: timedelta = timedelta(hours=24)
    low_battery_pct: int = 20


class FleetRow(BaseModel):
    device_id: str
    problems: list[Problem]
    resident_id: str | None = None
    resident_name: str = ""
    community_id: str | None = None
    community_name: str = ""
    address: str = ""
    phone: str | None = None
    status: str | None = None  # None: never seen
    last_seen_at: datetime | None = None
    battery: int | None = None
    power_lost_at: datetime | None = None
    last_test_at: datetime | None = None


class FleetReport(BaseModel):
    generated_at: datetime
    timezone: str
    devices_registered: int
    devices_seen: int
    counts: dict[Problem, int] = Field(default_factory=dict)
    rows: list[FleetRow] = Field(default_factory=list)


def _problems(
    link: Link | None, alerts: frozenset[str], rules: ReportRules, now: datetime
) -> list[Problem]:
    if link is None:
        return [Problem.NEVER_SEEN, Problem.NEVER_TESTED]
    found: set[Problem] = set()
    if link.status == "offline" or alerts & {"offline", "heartbeat_missed"}:
        found.add(Problem.OFFLINE)
    if "battery_low" in alerts or (
        link.battery is not None and link.battery <= rules.low_battery_pct
    ):
        found.add(Problem.LOW_BATTERY)
    if link.power_lost_at is not None or "power_lost" in alerts:
        found.add(Problem.POWER_LOST)
    if link.last_seen_at < now - rules.silent_after:
        found.add(Problem.SILENT)
    if link.last_test_at is None:
        found.add(Problem.NEVER_TESTED)
    elif link.last_test_at < now - rules.untested_after:
        found.add(Problem.NOT_TESTED)
    return [p for p in ORDER if p in found]


def fleet_report(
    directory: Directory,
    links: Iterable[Link],
    alerts: Mapping[str, frozenset[str]],
    now: datetime,
    rules: ReportRules = ReportRules(),
    *,
    area_ids: frozenset[str] | None = None,
) -> FleetReport:
    """Every registered device (and every device heard from) with a problem at ``now``.

    ``alerts``: each device's open technical alerts by key. ``area_ids``: only the
    residents of these communities (a viewer's scope); None is the whole district."""
    by_device = {link.device_id: link for link in links}
    residents = directory.residents_by_device
    devices = set(residents) | set(by_device)
    rows: list[FleetRow] = []
    for device_id in sorted(devices):
        resident = residents.get(device_id)
        if area_ids is not None and (resident is None or resident.community_id not in area_ids):
            continue
        link = by_device.get(device_id)
        problems = _problems(link, alerts.get(device_id, frozenset()), rules, now)
        if not problems:
            continue
        area = directory.areas.get(resident.community_id) if resident else None
        rows.append(
            FleetRow(
                device_id=device_id,
                problems=problems,
                resident_id=resident.id if resident else None,
                resident_name=resident.name if resident else "",
                community_id=resident.community_id if resident else None,
                community_name=area.name if area else "",
                address=resident.address if resident else "",
                phone=(resident.phone or resident.mobile) if resident else None,
                status=link.status if link else None,
                last_seen_at=link.last_seen_at if link else None,
                battery=link.battery if link else None,
                power_lost_at=link.power_lost_at if link else None,
                last_test_at=link.last_test_at if link else None,
            )
        )
    rows.sort(key=lambda r: (ORDER.index(r.problems[0]), r.community_id or "", r.device_id))
    counts = {p: sum(p in r.problems for r in rows) for p in ORDER}
    return FleetReport(
        generated_at=now,
        timezone=directory.timezone,
        devices_registered=len(residents),
        devices_seen=len(by_device),
        counts=counts,
        rows=rows,
    )


# Headers for the staff who visit homes: Chinese first, English after, for Excel.
CSV_HEADERS = (
    "设备编号 Device",
    "问题 Problems",
    "老人 Resident",
    "社区 Community",
    "地址 Address",
    "电话 Phone",
    "状态 Status",
    "最后联系 Last seen",
    "电量 Battery %",
    "断电起 Power lost since",
    "最后测试 Last test",
)
PROBLEM_NAMES = {
    Problem.OFFLINE: "离线 offline",
    Problem.LOW_BATTERY: "电量低 low battery",
    Problem.POWER_LOST: "断电 power lost",
    Problem.NEVER_SEEN: "从未上线 never seen",
    Problem.SILENT: "一天无联系 silent",
    Problem.NEVER_TESTED: "从未测试 never tested",
    Problem.NOT_TESTED: "一月未测试 not tested",
}


def report_csv(report: FleetReport, zone: str | None = None) -> bytes:
    """The report as CSV in UTF-8 with a byte-order mark (so Excel reads the Chinese),
    times local to ``zone`` (the report's own by default)."""
    tz = ZoneInfo(zone or report.timezone)

    def when(at: datetime | None) -> str:
        return "" if at is None else at.astimezone(tz).strftime("%Y-%m-%d %H:%M")

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADERS)
    for r in report.rows:
        writer.writerow(
            [
                _cell(r.device_id),
                "; ".join(PROBLEM_NAMES[p] for p in r.problems),
                _cell(r.resident_name),
                _cell(r.community_name),
                _cell(r.address),
                _cell(r.phone or ""),
                r.status or "",
                when(r.last_seen_at),
                "" if r.battery is None else r.battery,
                when(r.power_lost_at),
                when(r.last_test_at),
            ]
        )
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _cell(value: str) -> str:
    """A text cell a spreadsheet shows as text: one starting with = + - @ would be read
    as a formula (a phone number +86... among them), so it gets a leading apostrophe."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
