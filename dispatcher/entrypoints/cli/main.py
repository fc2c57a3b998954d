"""``eldercall``: run the dispatcher, run the demo or the device simulator, and work
calls from a terminal through the operator REST API.

Exit codes: 0 done, 1 the API (or a command it runs) reported an error, 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial
from importlib.metadata import entry_points
from typing import Any

from dispatcher.core.calls import Outcome
from dispatcher.entrypoints.cli import common
from dispatcher.entrypoints.cli.api_client import ApiError, OnCall
from dispatcher.services.read_models import CallView

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
    except common.UsageError as exc:
        print(f"{common.PROG}: {exc}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"{common.PROG}: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    # Imported here, not at the top: they use this module's helpers.
    from dispatcher.entrypoints.cli import check as cli_check
    from dispatcher.entrypoints.cli import devices as cli_devices
    from dispatcher.entrypoints.cli import exchange as cli_exchange
    from dispatcher.entrypoints.cli import fleet as cli_fleet
    from dispatcher.entrypoints.cli import registry as cli_registry
    from dispatcher.entrypoints.cli import report as cli_report
    from dispatcher.entrypoints.cli import rota as cli_rota
    from dispatcher.entrypoints.cli import staff as cli_staff

    parser = argparse.ArgumentParser(
        prog=common.PROG,
        description="Emergency call dispatch for elderly residents' home call devices.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = sub.add_parser("run", help="run the dispatcher daemon")
    common.config_option(run)
    run.set_defaults(handler=_run)

    demo = sub.add_parser("demo", help="run a self-contained demonstration")
    common.config_option(demo)
    demo.add_argument(
        "--homes",
        type=common.positive_int,
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
        help=f"the dispatcher's API (default ${common.URL_ENV}, else [http] listen of the config)",
    )
    group.add_argument("--token", help=f"your API token (default ${common.TOKEN_ENV})")
    common.config_option(group)

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
    cli_fleet.add_fleet_parser(sub, api)
    cli_staff.add_staff_parser(sub, api)
    groups = cli_registry.add_registry_parsers(sub, api)
    cli_exchange.add_exchange_parsers(sub, api)

    calendars = sub.add_parser(
        "calendars", parents=[api], help="your calendar subscription URLs (iCalendar feeds)"
    )
    calendars.add_argument("--json", action="store_true", help="print JSON")
    calendars.set_defaults(handler=_calendars)

    cli_rota.add_rota_parser(sub, api)
    cli_check.add_check_parser(sub)
    cli_devices.add_account_commands(groups["devices"])
    return parser


# ---------------------------------------------------------------- commands run in-process


def _run(args: argparse.Namespace) -> int:
    try:
        bootstrap = common.import_command("dispatcher.bootstrap", "run")
    except common.Unavailable as exc:
        return common.unavailable(exc.command, exc.reason, args)
    return int(bootstrap.main_run(args.config, clock=common.clock()))


def _demo(args: argparse.Namespace) -> int:
    try:
        demo = _registered("demo")
    except common.Unavailable as exc:
        return common.unavailable(exc.command, exc.reason, args)
    return int(demo.main_demo(args.config, args.homes))


def _registered(command: str) -> Any:
    """The module the simulator registers for ``command`` (``[project.entry-points.
    "eldercall.commands"]`` in pyproject.toml): the daemon never imports the simulator by
    name, and works without it."""
    found = entry_points(group="eldercall.commands", name=command)
    if not found:
        raise common.Unavailable(command, LookupError("the simulator is not installed"))
    try:
        return next(iter(found)).load()
    except ImportError as exc:
        raise common.Unavailable(command, exc) from exc


def _add_simulate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The simulator brings its own options; without it every other command still works."""
    try:
        simulator_cli = _registered("simulate")
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
        stand_in.set_defaults(handler=partial(common.unavailable, "simulate", exc))
        return
    simulate = sub.add_parser("simulate", help="simulate home call devices against a broker")
    add_arguments(simulate)
    simulate.set_defaults(handler=lambda args: int(run_simulate(args)))


# ---------------------------------------------------------------- API commands


def _calls(args: argparse.Namespace) -> int:
    with common.Session(args) as s:
        calls = s.client.list_calls(args.state)
        if args.json:
            common.print_json([c.model_dump(mode="json") for c in calls])
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
        print(common.table(rows))
        print(f"{len(calls)} call{'s' if len(calls) != 1 else ''}; times in {s.tz_name}")
    return 0


def _show(args: argparse.Namespace) -> int:
    with common.Session(args) as s:
        call = s.client.get_call(args.call_id)
        if args.json:
            common.print_json(call.model_dump(mode="json"))
            return 0
        print("\n".join(_call_lines(call, s)))
    return 0


def _ack(args: argparse.Namespace) -> int:
    with common.Session(args) as s:
        call = s.client.acknowledge(args.call_id, args.note)
        print(
            f"{call.call_id} is {call.state}: acknowledged by {call.acknowledged_by or '?'} "
            f"at {s.local(call.acknowledged_at)} ({s.tz_name})"
        )
    return 0


def _resolve(args: argparse.Namespace) -> int:
    with common.Session(args) as s:
        call = s.client.resolve(args.call_id, Outcome(args.outcome), args.note)
        print(
            f"{call.call_id} is {call.state}: {call.outcome} by {call.resolved_by or '?'} "
            f"at {s.local(call.resolved_at)} ({s.tz_name})"
        )
    return 0


def _oncall(args: argparse.Namespace) -> int:
    with common.Session(args) as s:
        at = common.parse_at(args.at, s.tz, s.now) if args.at else None
        answer = s.client.on_duty(args.community, at)
        print("\n".join(_oncall_lines(answer, s)))
    return 0


def _calendars(args: argparse.Namespace) -> int:
    with common.Session(args) as s:
        found = s.client.my_calendars()
    if args.json:
        common.print_json(found)
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


def _call_lines(call: CallView, s: common.Session) -> list[str]:
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
    lines += common.fields(fields)
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
        lines += common.fields(rfields)
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
        lines += ["  " + line for line in common.table(rows).splitlines()]
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
                    n.to_number + _CHANNEL_SUFFIXES.get(n.channel, f" ({n.channel})"),
                    n.status,
                    sent,
                    tries,
                    extra,
                ]
            )
        lines += ["  " + line for line in common.table(rows).splitlines()]
    else:
        lines.append("  (none)")
    lines.append("")
    lines.append(f"Times are in {s.tz_name}.")
    return lines


# How a notification's number is shown per channel: an SMS (the usual channel) as the
# bare number; any other channel is named after it, "+86... (voice)".
_CHANNEL_SUFFIXES = {"sms": ""}


def _oncall_lines(answer: OnCall, s: common.Session) -> list[str]:
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
        lines += ["  " + line for line in common.table(rows).splitlines()]
    return lines
