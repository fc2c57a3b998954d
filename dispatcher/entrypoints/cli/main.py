"""``eldercall``: run the dispatcher, run the demo or the device simulator, and work
calls from a terminal through the operator REST API.

Exit codes: 0 done, 1 the API (or a command it runs) reported an error, 2 usage.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import unicodedata
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta, tzinfo
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dispatcher.config import ConfigError, Settings, load_settings
from dispatcher.core.views import CallView, Outcome
from dispatcher.entrypoints.cli.api_client import ApiClient, ApiError, OnCall
from dispatcher.services.clock import Clock, SystemClock

PROG = "eldercall"
DEFAULT_CONFIG = "config/eldercall.toml"
URL_ENV = "ELDERCALL_API_URL"
TOKEN_ENV = "ELDERCALL_API_TOKEN"
# The same values as dispatcher.entrypoints.http.app.CallStateFilter (a test keeps them equal); not
# imported from there so the CLI does not load FastAPI to list calls.
CALL_STATES = (
    "active",
    "all",
    "open",
    "acknowledged",
    "responder_on_site",
    "cancelled",
    "resolved",
)
DEFAULT_DEMO_HOMES = 10


class UsageError(Exception):
    """Something the user must change in the command line or configuration (exit 2)."""


def _clock() -> Clock:
    """The clock of every command, the daemon's included (replaced in tests)."""
    return SystemClock()


def _now() -> datetime:
    return _clock().now()


# ---------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return handler(args)
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    # Imported here, not at the top: they use this module's helpers.
    from dispatcher.entrypoints.cli import report as cli_report
    from dispatcher.entrypoints.cli import rota as cli_rota

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Emergency call dispatch for elderly residents' home call devices.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = sub.add_parser("run", help="run the dispatcher daemon")
    _config_option(run)
    run.set_defaults(handler=_run)

    demo = sub.add_parser("demo", help="run a self-contained demonstration")
    _config_option(demo)
    demo.add_argument(
        "--homes",
        type=_positive_int,
        default=DEFAULT_DEMO_HOMES,
        help=f"how many simulated homes (default {DEFAULT_DEMO_HOMES})",
    )
    demo.set_defaults(handler=_demo)

    _add_simulate(sub)

    api = argparse.ArgumentParser(add_help=False)
    group = api.add_argument_group("API connection")
    group.add_argument(
        "--api",
        metavar="URL",
        help=f"the dispatcher's API (default ${URL_ENV}, else [http] listen of the config)",
    )
    group.add_argument("--token", help=f"your API token (default ${TOKEN_ENV})")
    _config_option(group)

    calls = sub.add_parser("calls", parents=[api], help="list calls")
    calls.add_argument(
        "--state",
        choices=CALL_STATES,
        default="active",
        help="which calls (default active: every call not yet resolved)",
    )
    calls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    calls.set_defaults(handler=_calls)

    show = sub.add_parser("show", parents=[api], help="show one call in full")
    show.add_argument("call_id", metavar="CALL_ID")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_show)

    ack = sub.add_parser("ack", parents=[api], help="acknowledge a call (stops escalation)")
    ack.add_argument("call_id", metavar="CALL_ID")
    ack.add_argument("--note", default="", help="a note for the call's timeline")
    ack.set_defaults(handler=_ack)

    resolve = sub.add_parser("resolve", parents=[api], help="close a call with its outcome")
    resolve.add_argument("call_id", metavar="CALL_ID")
    resolve.add_argument("--outcome", required=True, choices=[o.value for o in Outcome])
    resolve.add_argument("--note", default="", help="what happened")
    resolve.set_defaults(handler=_resolve)

    oncall = sub.add_parser("oncall", parents=[api], help="who is on duty")
    oncall.add_argument("--community", metavar="ID", help="one community (default: all)")
    oncall.add_argument(
        "--at",
        metavar="TIME",
        help="when (default now): 2026-11-28T08:00+08:00, '2026-11-28 08:00' or 08:00 "
        "(local times are in the directory's time zone)",
    )
    oncall.set_defaults(handler=_oncall)

    cli_report.add_report_parser(sub, api)

    calendars = sub.add_parser(
        "calendars", parents=[api], help="your calendar subscription URLs (iCalendar feeds)"
    )
    calendars.add_argument("--json", action="store_true", help="print JSON")
    calendars.set_defaults(handler=_calendars)

    cli_rota.add_rota_parser(sub, api)
    return parser


def _config_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"configuration file (default {DEFAULT_CONFIG} if it exists)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


# ---------------------------------------------------------------- commands run in-process


def _unavailable(command: str, reason: BaseException, args: argparse.Namespace) -> int:
    print(f"{PROG}: '{command}' is not available in this installation: {reason}", file=sys.stderr)
    return 1


def _import(module: str, command: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise _Unavailable(command, exc) from exc


class _Unavailable(Exception):
    def __init__(self, command: str, reason: BaseException) -> None:
        super().__init__(command)
        self.command = command
        self.reason = reason


def _run(args: argparse.Namespace) -> int:
    try:
        bootstrap = _import("dispatcher.bootstrap", "run")
    except _Unavailable as exc:
        return _unavailable(exc.command, exc.reason, args)
    return int(bootstrap.main_run(args.config, clock=_clock()))


def _demo(args: argparse.Namespace) -> int:
    try:
        demo = _import("simulator.demo", "demo")
    except _Unavailable as exc:
        return _unavailable(exc.command, exc.reason, args)
    return int(demo.main_demo(args.config, args.homes))


def _add_simulate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The simulator brings its own options; without it every other command still works."""
    try:
        simulator_cli = importlib.import_module("simulator.cli")
        add_arguments = simulator_cli.add_simulate_arguments
        run_simulate = simulator_cli.run_simulate
    except Exception as exc:  # not written yet, or broken: say so when it is asked for
        # No option prefix: whatever options follow are taken in, so the answer is
        # "not available" rather than "unrecognized arguments".
        stand_in = sub.add_parser(
            "simulate",
            help="simulate home call devices (unavailable)",
            prefix_chars="\x00",
            add_help=False,
        )
        stand_in.add_argument("rest", nargs="*")
        stand_in.set_defaults(handler=partial(_unavailable, "simulate", exc))
        return
    simulate = sub.add_parser("simulate", help="simulate home call devices against a broker")
    add_arguments(simulate)
    simulate.set_defaults(handler=lambda args: int(run_simulate(args)))


# ---------------------------------------------------------------- API commands


class _Session:
    """What an API command needs: a client, the directory's time zone, and now."""

    def __init__(self, args: argparse.Namespace) -> None:
        settings = _settings(args.config)
        self.tz = _zone(settings.data.timezone)
        self.tz_name = settings.data.timezone
        url = args.api or os.environ.get(URL_ENV) or settings.http.base_url
        token = args.token or os.environ.get(TOKEN_ENV)
        if not token:
            raise UsageError(f"no API token: give --token TOKEN or set {TOKEN_ENV}")
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--api must be an http:// or https:// URL, not {url!r}")
        self.client = ApiClient(url, token, channel="cli")
        self.now = _now()

    def __enter__(self) -> _Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def local(self, when: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        return when.astimezone(self.tz).strftime(fmt) if when else "-"

    def ago(self, when: datetime) -> str:
        return _duration(self.now - when)


def _settings(config: str | None) -> Settings:
    path = config or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None)
    try:
        return load_settings(path)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UsageError(f"[data] timezone: unknown time zone {name!r}") from exc


def _calls(args: argparse.Namespace) -> int:
    with _Session(args) as s:
        calls = s.client.list_calls(args.state)
        if args.json:
            _print_json([c.model_dump(mode="json") for c in calls])
            return 0
        if not calls:
            print("no calls" if args.state == "all" else f"no {args.state} calls")
            return 0
        rows = [
            ["ID", "STATE", "KIND", "PRIORITY", "OPENED", "AGE", "RESIDENT", "COMMUNITY", "ACK BY"]
        ]
        for c in calls:
            rows.append(
                [
                    c.call_id,
                    c.state,
                    c.kind,
                    c.priority,
                    s.local(c.opened_at, "%m-%d %H:%M"),
                    s.ago(c.opened_at),
                    _who(c),
                    c.resident.community_name if c.resident else "-",
                    c.acknowledged_by or "-",
                ]
            )
        print(_table(rows))
        print(f"{len(calls)} call{'s' if len(calls) != 1 else ''}; times in {s.tz_name}")
    return 0


def _show(args: argparse.Namespace) -> int:
    with _Session(args) as s:
        call = s.client.get_call(args.call_id)
        if args.json:
            _print_json(call.model_dump(mode="json"))
            return 0
        print("\n".join(_call_lines(call, s)))
    return 0


def _ack(args: argparse.Namespace) -> int:
    with _Session(args) as s:
        call = s.client.acknowledge(args.call_id, args.note)
        print(
            f"{call.call_id} is {call.state}: acknowledged by {call.acknowledged_by or '?'} "
            f"at {s.local(call.acknowledged_at)} ({s.tz_name})"
        )
    return 0


def _resolve(args: argparse.Namespace) -> int:
    with _Session(args) as s:
        call = s.client.resolve(args.call_id, Outcome(args.outcome), args.note)
        print(
            f"{call.call_id} is {call.state}: {call.outcome} by {call.resolved_by or '?'} "
            f"at {s.local(call.resolved_at)} ({s.tz_name})"
        )
    return 0


def _oncall(args: argparse.Namespace) -> int:
    with _Session(args) as s:
        at = _parse_at(args.at, s.tz, s.now) if args.at else None
        answer = s.client.on_duty(args.community, at)
        print("\n".join(_oncall_lines(answer, s)))
    return 0


def _calendars(args: argparse.Namespace) -> int:
    with _Session(args) as s:
        found = s.client.my_calendars()
    if args.json:
        _print_json(found)
        return 0
    print(f"your shifts: {found['shifts']}")
    for schedule in found.get("schedules", []):
        print(f"{schedule['area_id']} ({schedule['name']}): {schedule['url']}")
    print("subscribe in a calendar app; the token in these URLs only reads calendars")
    return 0


# ---------------------------------------------------------------- formatting


def _who(call: CallView) -> str:
    if call.resident is None:
        return "unknown device"
    return f"{call.resident.name} ({call.resident.age})"


def _call_lines(call: CallView, s: _Session) -> list[str]:
    presses = "once" if call.press_count == 1 else f"{call.press_count} times"
    fields: list[tuple[str, str]] = [
        ("State", call.state),
        ("Device", f"{call.device_id} (pressed {presses})"),
        ("Opened", f"{s.local(call.opened_at)} ({s.ago(call.opened_at)} ago)"),
    ]
    if call.acknowledged_at or call.acknowledged_by:
        fields.append(
            ("Acknowledged", f"{s.local(call.acknowledged_at)} by {call.acknowledged_by or '?'}")
        )
    if call.resolved_at or call.outcome:
        fields.append(("Resolved", f"{s.local(call.resolved_at)} by {call.resolved_by or '?'}"))
        fields.append(("Outcome", call.outcome or "-"))
    if call.note:
        fields.append(("Note", call.note))
    if call.escalation_step or call.next_escalation_at:
        nxt = f", next at {s.local(call.next_escalation_at)}" if call.next_escalation_at else ""
        fields.append(("Escalation", f"step {call.escalation_step}{nxt}"))
    if call.detail:
        fields.append(("Problem", call.detail))

    lines = [f"Call {call.call_id}: {call.kind}, {call.priority} priority"]
    lines += _fields(fields)
    lines.append("")
    r = call.resident
    if r is None:
        lines.append("Resident: unknown device (no resident is registered for it)")
    else:
        lines.append(f"Resident: {r.name}, {r.age}")
        rfields = [
            ("Address", r.address),
            ("Community", f"{r.community_name} ({r.community_id})"),
            ("Phone", r.phone or "-"),
        ]
        if r.notes:
            rfields.append(("Notes", r.notes))
        lines += _fields(rfields)
        if r.contacts:
            lines.append("  Contacts:")
            for number, c in enumerate(r.contacts, 1):
                lines.append(f"    {number}. {c.name} ({c.relation}) {c.phone}")
        else:
            lines.append("  Contacts:   none")
    lines.append("")
    lines.append("Timeline:")
    if call.timeline:
        rows = [
            [s.local(e.at, "%m-%d %H:%M:%S"), e.actor, e.action, e.channel, e.detail]
            for e in call.timeline
        ]
        lines += ["  " + line for line in _table(rows).splitlines()]
    else:
        lines.append("  (empty)")
    lines.append("")
    lines.append("SMS notifications:")
    if call.notifications:
        rows = []
        for n in call.notifications:
            sent = f"sent {s.local(n.sent_at, '%m-%d %H:%M:%S')}" if n.sent_at else "not sent"
            extra = n.error or n.provider_sid or ""
            tries = f"{n.attempts} attempt{'s' if n.attempts != 1 else ''}"
            rows.append(
                [
                    f"#{n.id}",
                    f"step {n.step}",
                    n.recipient,
                    n.to_number if n.channel == "sms" else f"{n.to_number} ({n.channel})",
                    n.status,
                    sent,
                    tries,
                    extra,
                ]
            )
        lines += ["  " + line for line in _table(rows).splitlines()]
    else:
        lines.append("  (none)")
    lines.append("")
    lines.append(f"Times are in {s.tz_name}.")
    return lines


def _oncall_lines(answer: OnCall, s: _Session) -> list[str]:
    lines = [f"On duty at {s.local(answer.at, '%Y-%m-%d %H:%M')} ({s.tz_name})"]
    if not answer.on_duty:
        lines.append("  nobody")
    for duty in answer.on_duty:
        lines.append("")
        head = f"{duty.area_name} ({duty.area_id})"
        if duty.found_at_area_id != duty.area_id:
            head += (
                f": nobody on duty there; answered at {duty.found_at_level} level"
                f" by {duty.found_at_area_id}"
            )
        else:
            head += f": found at {duty.found_at_level} level"
        lines.append(head)
        if not duty.staff:
            lines.append("  nobody")
            continue
        rows = [[p.name, p.id, p.role, p.shift_role, p.phone or "(no phone)"] for p in duty.staff]
        lines += ["  " + line for line in _table(rows).splitlines()]
    return lines


def _fields(pairs: Sequence[tuple[str, str]]) -> list[str]:
    width = max(len(k) for k, _ in pairs) + 2
    return [f"  {(k + ':').ljust(width)}{v}" for k, v in pairs]


def _width(text: str) -> int:
    """Terminal columns: Chinese names take two each."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(row)]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 600:
        return f"{round(value, 1):g}s"
    return _duration(timedelta(seconds=value))  # a long wait reads better as 1h05m


def _duration(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def _parse_at(text: str, tz: tzinfo, now: datetime) -> datetime:
    """An RFC 3339 time, or a local date and time, or a local time today."""
    value = text.strip()
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        try:
            clock = time.fromisoformat(value)
        except ValueError:
            raise UsageError(
                f"--at: cannot read {text!r}: give 2026-11-28T08:00+08:00, "
                f"'2026-11-28 08:00' or 08:00 (a local time)"
            ) from None
        today: date = now.astimezone(tz).date()
        when = datetime.combine(today, clock)
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return when
