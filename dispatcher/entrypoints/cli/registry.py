"""``eldercall residents|devices|staff|areas|providers ...``: the registry through the
operator API: list, show, add, set one field, delete (a device: move, retire).

Values are given as ``FIELD=VALUE`` (``add``) or ``FIELD VALUE`` (``set``); a value
that is a JSON list or object (``contacts``, ``contact_methods``) is read as JSON,
``''`` clears an optional field. The API checks everything and names the field when
a value is refused; this side only shapes the request and prints the answer.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dispatcher.entrypoints.cli import common


@dataclass(frozen=True)
class Kind:
    command: str  # the CLI's word, and the API's path
    noun: str
    columns: tuple[str, ...]  # the list's table
    delete: str = "delete"  # "retire" for devices


KINDS = {
    "residents": Kind(
        "residents", "resident", ("id", "name", "community_id", "address", "device_id")
    ),
    "devices": Kind(
        "devices", "device", ("id", "resident_id", "model", "firmware", "installed_on"), "retire"
    ),
    "staff": Kind("staff", "staff member", ("id", "name", "role", "area_id", "phone")),
    "areas": Kind("areas", "area", ("id", "level", "name", "parent_id")),
    "providers": Kind("providers", "provider", ("id", "name", "service", "area_id", "phone")),
}


def add_registry_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], api: argparse.ArgumentParser
) -> dict[str, argparse._SubParsersAction[argparse.ArgumentParser]]:
    """``residents``, ``devices``, ``areas`` and ``providers``; ``staff`` shares its
    group with the password commands (see :func:`add_record_commands`). Returns each
    group's commands, for the commands of other modules (``devices provision``)."""
    groups = {}
    for name in ("residents", "devices", "areas", "providers"):
        parser = sub.add_parser(name, help=f"the registry's {name}: list, show, add, change")
        commands = parser.add_subparsers(title=f"{name} commands", metavar="COMMAND")
        add_record_commands(commands, api, KINDS[name])
        parser.set_defaults(handler=lambda args, p=parser: _usage(p))
        groups[name] = commands
    return groups


def add_record_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    api: argparse.ArgumentParser,
    kind: Kind,
) -> None:
    listing = commands.add_parser("list", parents=[api], help=f"list {kind.command}")
    listing.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="FILTER=VALUE",
        help="a filter of the API's list (community=c-lh, area=s-hx, role=staff, q=...)",
    )
    listing.add_argument("--limit", type=common.positive_int, default=50)
    listing.add_argument("--offset", type=int, default=0)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list, kind=kind)

    show = commands.add_parser("show", parents=[api], help=f"one {kind.noun} in full")
    show.add_argument("record_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_show, kind=kind)

    add = commands.add_parser("add", parents=[api], help=f"add a {kind.noun}, in force at once")
    add.add_argument("values", nargs="*", metavar="FIELD=VALUE")
    add.add_argument("--from", dest="from_file", metavar="FILE", help="the fields as JSON")
    add.set_defaults(handler=_add, kind=kind)

    change = commands.add_parser("set", parents=[api], help=f"change one field of a {kind.noun}")
    change.add_argument("record_id", metavar="ID")
    change.add_argument("field", metavar="FIELD")
    change.add_argument("value", metavar="VALUE")
    change.set_defaults(handler=_set, kind=kind)

    gone = commands.add_parser(kind.delete, parents=[api], help=f"{kind.delete} a {kind.noun}")
    gone.add_argument("record_id", metavar="ID")
    gone.set_defaults(handler=_delete, kind=kind)

    if kind.command == "devices":
        move = commands.add_parser(
            "move", parents=[api], help="the device serves another resident from now"
        )
        move.add_argument("record_id", metavar="ID")
        move.add_argument("resident", metavar="RESIDENT", help="a resident id, or - for stock")
        move.set_defaults(handler=_move, kind=kind)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _value(text: str) -> Any:
    """A JSON list or object as such, '' as an empty (cleared) value, else the text."""
    if text[:1] in ("[", "{"):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise common.UsageError(f"{text[:40]!r} is not valid JSON: {exc}") from exc
    return text


def _pairs(items: list[str], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise common.UsageError(f"{what} {item!r} is not FIELD=VALUE")
        out[key] = _value(value)
    return out


def _path(kind: Kind, record_id: str | None = None) -> str:
    return (
        f"/{kind.command}" if record_id is None else f"/{kind.command}/{quote(record_id, safe='')}"
    )


def _list(args: argparse.Namespace) -> int:
    kind: Kind = args.kind
    params = {**_pairs(args.where, "--where"), "limit": args.limit, "offset": args.offset}
    with common.Session(args) as s:
        page = s.client.registry("GET", _path(kind), params=params)
    if args.json:
        common.print_json(page)
        return 0
    items = page.get("items", [])
    if not items:
        print(f"No {kind.command}.")
        return 0
    rows = [list(kind.columns)]
    rows += [[_text(item.get(c)) for c in kind.columns] for item in items]
    print(common.table(rows))
    shown = f"{page['offset'] + 1}-{page['offset'] + len(items)}"
    print(f"{shown} of {page['total']}")
    return 0


def _show(args: argparse.Namespace) -> int:
    with common.Session(args) as s:
        record = s.client.registry("GET", _path(args.kind, args.record_id))
    if args.json:
        common.print_json(record)
        return 0
    _print_record(record)
    return 0


def _add(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.from_file:
        try:
            body = json.loads(Path(args.from_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise common.UsageError(f"{args.from_file}: {exc}") from exc
        if not isinstance(body, dict):
            raise common.UsageError(f"{args.from_file}: not a JSON object")
    body |= _pairs(args.values, "value")
    with common.Session(args) as s:
        record = s.client.registry("POST", _path(args.kind), json=body)
    print(f"Added {args.kind.noun} {record['id']}.")
    return 0


def _set(args: argparse.Namespace) -> int:
    with common.Session(args) as s:
        s.client.registry(
            "PATCH", _path(args.kind, args.record_id), json={args.field: _value(args.value)}
        )
    print(f"{args.record_id}: {args.field} changed.")
    return 0


def _delete(args: argparse.Namespace) -> int:
    with common.Session(args) as s:
        s.client.registry("DELETE", _path(args.kind, args.record_id))
    print(f"{args.kind.noun.capitalize()} {args.record_id}: {args.kind.delete}d.")
    return 0


def _move(args: argparse.Namespace) -> int:
    to = None if args.resident == "-" else args.resident
    with common.Session(args) as s:
        s.client.registry(
            "POST", _path(args.kind, args.record_id) + "/move", json={"resident_id": to}
        )
    print(f"Device {args.record_id} now serves {to or 'nobody (in stock)'}.")
    return 0


def _text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _print_record(record: dict[str, Any]) -> None:
    rows = []
    for key, value in record.items():
        if key in ("contacts", "history", "contact_methods") and isinstance(value, list):
            continue
        rows.append((key, _text(value)))
    print("\n".join(common.fields(rows)))
    for contact in record.get("contacts") or []:
        holder = " (key-holder)" if contact.get("key_holder") else ""
        print(
            f"contact {contact['order']}: {contact['name']} ({contact['relation']}) "
            f"{contact['phone']}{holder}"
        )
    for stretch in record.get("history") or []:
        print(f"served {stretch['resident_id']}: {stretch['start']} - {stretch['end'] or 'now'}")
