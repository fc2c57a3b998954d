"""``eldercall fleet``: the morning fleet report (a table, JSON or a CSV for Excel) and
an installer's test mode, through the operator API."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from dispatcher.core.fleet import PROBLEM_NAMES, FleetReport, report_csv
from dispatcher.entrypoints.cli import common


def add_fleet_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], api: argparse.ArgumentParser
) -> None:
    fleet = sub.add_parser("fleet", help="the devices: the morning report, test mode")
    commands = fleet.add_subparsers(title="fleet commands", metavar="COMMAND")
    report = commands.add_parser(
        "report",
        parents=[api],
        help="offline, low battery, without power, never seen, silent, not tested",
    )
    report.add_argument("--csv", metavar="FILE", help="also write it as CSV (UTF-8, for Excel)")
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    report.set_defaults(handler=_report)
    test = commands.add_parser(
        "test-mode", parents=[api], help="the device's next press is its end-to-end test"
    )
    test.add_argument("device_id", metavar="DEVICE_ID")
    test.add_argument("--minutes", type=common.positive_int, help="how long (default 30)")
    test.add_argument("--end", action="store_true", help="end its test mode now")
    test.set_defaults(handler=_test_mode)
    fleet.set_defaults(handler=lambda _args: _usage(fleet))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _report(args: argparse.Namespace) -> int:
    with common.Session(args) as s:
        report = s.client.fleet_report()
        if args.csv:
            Path(args.csv).write_bytes(report_csv(report, s.tz_name))
        if args.json:
            common.print_json(report.model_dump(mode="json"))
            return 0
        print("\n".join(report_lines(report, s.local)))
        if args.csv:
            print(f"written to {args.csv}")
    return 0


def report_lines(report: FleetReport, local: Callable[[datetime | None, str], str]) -> list[str]:
    def when(at: datetime | None) -> str:
        return local(at, "%m-%d %H:%M")

    counts = ", ".join(f"{PROBLEM_NAMES[p]} {n}" for p, n in report.counts.items() if n)
    lines = [
        f"Fleet report {when(report.generated_at)}: {report.devices_registered} registered, "
        f"{report.devices_seen} heard from; {counts or 'nothing to report'}"
    ]
    rows = [
        [
            r.device_id,
            ", ".join(p.value for p in r.problems),
            r.resident_name or "-",
            r.community_name or "-",
            r.address or "-",
            when(r.last_seen_at),
            "-" if r.battery is None else f"{r.battery}%",
            when(r.last_test_at),
        ]
        for r in report.rows
    ]
    heads = ["DEVICE", "PROBLEMS", "RESIDENT", "COMMUNITY", "ADDRESS", "SEEN", "BATT", "TESTED"]
    if rows:
        lines.append(common.table([heads, *rows]))
    return lines


def _test_mode(args: argparse.Namespace) -> int:
    with common.Session(args) as s:
        until = s.client.test_mode(args.device_id, args.minutes, end=args.end)
        if args.end:
            print(f"{args.device_id}: test mode ended")
        else:
            print(f"{args.device_id}: in test mode until {until}; its next press is the test")
    return 0
