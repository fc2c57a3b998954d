"""``eldercall import FILE... [--dry-run]`` and ``eldercall export FILE``: the registry's
records to and from the files community offices keep (CSV or Excel ``.xlsx``),
against the running daemon.

The file is read here (``dispatcher.adapters.files.exchange``: UTF-8 with or without
BOM, or GB18030/GBK, Chinese headers and values) and its rows are sent to the API,
which checks every one and applies all of them or none. Several files (say
``residents.csv devices.csv contacts.csv``) are one import. A CSV holds one kind of
record, named by its file (``residents.csv``, ``老人.csv``) or by ``--kind``; an
export to CSV writes the kind its file is named after, an ``.xlsx`` every kind.

Exit codes: 0 imported (or a dry run that would import), 1 refused (nothing changed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dispatcher.entrypoints.cli import common
from dispatcher.entrypoints.cli.api_client import ApiError

IMPORT_TIMEOUT_S = 600.0  # ten thousand residents take seconds; a loaded machine more
SHOWN_CREATES = 20  # per kind: the new records' ids beyond this are counted
KINDS = ("areas", "providers", "staff", "residents", "devices", "contacts")


def add_exchange_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], api: argparse.ArgumentParser
) -> None:
    imp = sub.add_parser(
        "import",
        parents=[api],
        help="create and change records from CSV or .xlsx files (all or nothing)",
        description="Records the files name are created or changed; records and "
        "columns they leave out are left alone. A file with any error imports nothing.",
    )
    imp.add_argument("files", nargs="+", metavar="FILE", help=".csv or .xlsx")
    imp.add_argument(
        "--dry-run", action="store_true", help="show what would change; change nothing"
    )
    imp.add_argument(
        "--encoding",
        metavar="ENC",
        help="of a CSV (default: UTF-8, with or without BOM, else GB18030)",
    )
    imp.add_argument(
        "--kind", choices=KINDS, help="the records of a CSV not named after them (one file)"
    )
    imp.set_defaults(handler=_import)

    exp = sub.add_parser(
        "export",
        parents=[api],
        help="write the records of your area to a .xlsx (every kind) or a CSV named after one kind",
    )
    exp.add_argument("file", metavar="FILE", help="district.xlsx, or residents.csv, 老人.csv, ...")
    exp.set_defaults(handler=_export)


def _read(args: argparse.Namespace) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Path]]:
    from dispatcher.adapters.files.directory_files import DataFileError
    from dispatcher.adapters.files.exchange import SheetRow, read_records

    if args.kind and len(args.files) > 1:
        raise common.UsageError("--kind is for one CSV file")
    records: dict[str, list[dict[str, Any]]] = {}
    files: dict[str, Path] = {}
    problems: list[str] = []
    for name in args.files:
        path = Path(name)
        try:
            found = read_records(path, kind=args.kind, encoding=args.encoding)
        except DataFileError as exc:
            problems.extend(exc.problems)
            continue
        for kind, rows in found.items():
            if kind in files:
                problems.append(f"{path}: {kind} are in {files[kind]} already: one file each")
                continue
            files[kind] = path
            records[kind] = [
                {"line": r.line, "sheet": r.sheet, "values": r.given}
                for r in rows
                if isinstance(r, SheetRow)
            ]
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        raise common.UsageError("the file cannot be read: nothing was imported")
    return records, files


def _import(args: argparse.Namespace) -> int:
    records, files = _read(args)
    body = {"records": records, "dry_run": args.dry_run}
    with common.Session(args) as s:
        try:
            plan = s.client.registry(
                "POST", "/registry/import", json=body, timeout=IMPORT_TIMEOUT_S
            )
        except ApiError as exc:
            if exc.status != 422 or not isinstance(exc.data, dict) or "errors" not in exc.data:
                raise
            plan = exc.data
    _print_plan(plan, files)
    if plan.get("errors"):
        n = len(plan["errors"])
        print(f"Refused: {n} error{'s' if n != 1 else ''}; nothing was imported.", file=sys.stderr)
        return 1
    if args.dry_run:
        print("Dry run: nothing was changed.")
    elif plan.get("applied"):
        print("Imported: in force now.")
    else:
        print("Nothing to change.")
    return 0


def _where(item: dict[str, Any], files: dict[str, Path]) -> str:
    kind = item.get("source") or item["kind"]
    path = files.get(kind, Path("?"))
    sheet = f"{item['sheet']}:" if item.get("sheet") else ""
    return f"{path}:{sheet}{item['line']}"


def _print_plan(plan: dict[str, Any], files: dict[str, Path]) -> None:
    counts = plan.get("counts", {})
    rows = [["", "created", "changed", "unchanged"]]
    for kind in KINDS:
        c = counts.get(kind) or {}
        if any(c.values()):
            rows.append([kind, str(c["created"]), str(c["changed"]), str(c["unchanged"])])
    if len(rows) > 1:
        print(common.table(rows))
    changes = plan.get("changes", [])
    created: dict[str, list[str]] = {}
    for change in changes:
        if change["action"] == "create":
            created.setdefault(change["kind"], []).append(change["record_id"])
    for kind, ids in created.items():
        more = f" and {len(ids) - SHOWN_CREATES} more" if len(ids) > SHOWN_CREATES else ""
        print(f"new {kind}: {', '.join(ids[:SHOWN_CREATES])}{more}")
    for change in changes:
        if change["action"] != "update":
            continue
        what = "; ".join(
            f"{column} {v['before'] or '(blank)'!r} -> {v['after'] or '(blank)'!r}"
            for column, v in change["fields"].items()
        )
        print(f"{_where(change, files)}: {change['kind']} {change['record_id']}: {what}")
    for warning in plan.get("warnings", []):
        print(f"{_where(warning, files)}: warning: {_issue(warning)}")
    for error in plan.get("errors", []):
        print(f"{_where(error, files)}: {_issue(error)}", file=sys.stderr)


def _issue(item: dict[str, Any]) -> str:
    return f"{item['column']}: {item['message']}" if item.get("column") else str(item["message"])


def _export(args: argparse.Namespace) -> int:
    from dispatcher.adapters.files.directory_files import DataFileError
    from dispatcher.adapters.files.exchange import kind_of, write_records

    path = Path(args.file)
    suffix = path.suffix.lower()
    kind = kind_of(path.stem)
    if suffix not in (".csv", ".xlsx"):
        raise common.UsageError(f"{path}: give a .xlsx or a .csv file")
    if suffix == ".csv" and kind is None:
        raise common.UsageError(
            f"{path}: a CSV holds one kind of record: name it after them "
            f"({', '.join(f'{k}.csv' for k in KINDS)}), or export to .xlsx"
        )
    with common.Session(args) as s:
        answer = s.client.registry("GET", "/registry/export", timeout=IMPORT_TIMEOUT_S)
    records: dict[str, list[dict[str, str]]] = answer.get("records", {})
    if kind is not None and suffix == ".csv":
        records = {kind: records.get(kind, [])}
    try:
        write_records(path, records)
    except DataFileError as exc:
        raise common.UsageError(str(exc)) from exc
    except OSError as exc:
        raise common.UsageError(f"{path}: cannot write it: {exc.strerror}") from exc
    print(", ".join(f"{len(v)} {k}" for k, v in records.items()) + f" written to {path}.")
    return 0
