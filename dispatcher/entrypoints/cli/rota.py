"""``eldercall rota ...``: check the rota and import shifts (offline), and list, make
and delete overrides through the API.

Registered by ``dispatcher.entrypoints.cli.main.build_parser``; uses the commands'
shared session, parsing and formatting helpers in ``common`` (through the module, so a
test's replacement of ``common.clock`` holds).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dispatcher.entrypoints.cli import common
from dispatcher.services.read_models import OverrideView


def add_rota_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], api: argparse.ArgumentParser
) -> None:
    rota_cmd = sub.add_parser("rota", help="the duty rota: check it")
    rota_sub = rota_cmd.add_subparsers(title="rota commands", metavar="ROTA_COMMAND")
    check = rota_sub.add_parser(
        "check",
        help="report gaps, overlaps and people on duty without a phone (offline); "
        "exit 1 when the command centre has a gap",
    )
    common.config_option(check)
    check.add_argument(
        "--days", type=common.positive_int, default=28, help="how many days to check (default 28)"
    )
    check.add_argument(
        "--from",
        dest="start",
        metavar="TIME",
        help="start of the check (default now); like --at of oncall",
    )
    check.set_defaults(handler=_rota_check)

    imp = rota_sub.add_parser(
        "import",
        help="add the shifts of an iCalendar (.ics) file to rota.toml as dated shifts "
        "(offline; a running daemon sees them after a restart)",
    )
    common.config_option(imp)
    imp.add_argument("file", metavar="FILE", help="the .ics file")
    imp.add_argument("--area", required=True, metavar="ID", help="whose schedule gets them")
    imp.add_argument(
        "--days", type=common.positive_int, default=90, help="how many days to import (default 90)"
    )
    imp.add_argument(
        "--from", dest="start", metavar="TIME", help="first day imported (default now)"
    )
    imp.add_argument("--dry-run", action="store_true", help="print what would be added")
    imp.set_defaults(handler=_rota_import)

    overrides = rota_sub.add_parser(
        "overrides", parents=[api], help="list rota overrides (supervisors)"
    )
    overrides.add_argument("--all", action="store_true", help="also those already over")
    overrides.add_argument("--json", action="store_true", help="print JSON")
    overrides.set_defaults(handler=_rota_overrides)

    add = rota_sub.add_parser(
        "override", parents=[api], help="make a rota override, in force at once (supervisors)"
    )
    add.add_argument("kind", choices=["replace", "add", "remove"])
    add.add_argument("--area", required=True, metavar="ID", help="community, street or district")
    add.add_argument("--staff", required=True, metavar="ID", help="who takes, joins or leaves")
    add.add_argument("--replaces", metavar="ID", help="replace: whose duty is taken")
    add.add_argument("--role", choices=["primary", "backup"])
    add.add_argument("--start", required=True, metavar="TIME", help="like --at of oncall")
    add.add_argument("--end", required=True, metavar="TIME")
    add.add_argument("--reason", default="", help="sickness, holiday, swap...")
    add.set_defaults(handler=_rota_override)

    remove = rota_sub.add_parser(
        "delete-override", parents=[api], help="delete an override made through the API"
    )
    remove.add_argument("override_id", metavar="ID")
    remove.set_defaults(handler=_rota_delete_override)


def _rota_check(args: argparse.Namespace) -> int:
    try:
        rotacli = common.import_command("dispatcher.entrypoints.cli.rota_check", "rota check")
    except common.Unavailable as exc:
        return common.unavailable(exc.command, exc.reason, args)
    now = common.now()
    config = common.config_path(args.config)
    start = common.start_option(args.start, config, now)
    return int(rotacli.main_check(config, args.days, start, now))


def _rota_import(args: argparse.Namespace) -> int:
    from dispatcher.adapters.files import rota_import as rotaimport

    now = common.now()
    config = common.config_path(args.config)
    start = common.start_option(args.start, config, now)
    return rotaimport.main_import(
        config, Path(args.file), args.area, args.days, start, now, dry_run=args.dry_run
    )


def _override_line(o: OverrideView, s: common.Session) -> str:
    who = f"{o.staff_id} instead of {o.replaces}" if o.replaces else o.staff_id
    role = f" as {o.role}" if o.role else ""
    reason = f": {o.reason}" if o.reason else ""
    return (
        f"{o.id}  {o.area_id}  {o.kind} {who}{role}  "
        f"{s.local(o.start, '%Y-%m-%d %H:%M')} - {s.local(o.end, '%Y-%m-%d %H:%M')}"
        f"  ({o.source}, by {o.created_by}){reason}"
    )


def _rota_overrides(args: argparse.Namespace) -> int:
    with common.Session(args) as s:
        found = s.client.list_overrides(include_past=args.all)
        if args.json:
            common.print_json([o.model_dump(mode="json") for o in found])
            return 0
        if not found:
            print("no overrides")
        for o in found:
            print(_override_line(o, s))
        if found:
            print(f"times in {s.tz_name}")
    return 0


def _rota_override(args: argparse.Namespace) -> int:
    with common.Session(args) as s:
        body = {
            "area": args.area,
            "kind": args.kind,
            "staff": args.staff,
            "replaces": args.replaces,
            "role": args.role,
            "start": common.parse_at(args.start, s.tz, s.now).isoformat(),
            "end": common.parse_at(args.end, s.tz, s.now).isoformat(),
            "reason": args.reason,
        }
        made = s.client.create_override(body)
        print(f"made {_override_line(made, s)}")
    return 0


def _rota_delete_override(args: argparse.Namespace) -> int:
    with common.Session(args) as s:
        gone = s.client.delete_override(args.override_id)
        print(f"deleted {_override_line(gone, s)}")
    return 0
