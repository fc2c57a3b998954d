"""``eldercall staff``: console passwords, set on the server against the database
(as ``passwd`` is, not through the API: the first password comes before any login)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from dispatcher.entrypoints.cli import common


def add_staff_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    api: argparse.ArgumentParser | None = None,
) -> None:
    staff = sub.add_parser("staff", help="staff records (through the API) and console passwords")
    commands = staff.add_subparsers(title="staff commands", metavar="COMMAND")
    if api is not None:
        # list, show, add, set, delete: the registry's staff records.
        from dispatcher.entrypoints.cli import registry

        registry.add_record_commands(commands, api, registry.KINDS["staff"])

    set_password = commands.add_parser(
        "set-password",
        help="set a staff member's console password (ends their sessions)",
        description="Set the console password of STAFF_ID, stored as an argon2id hash; "
        "every session the staff member had ends. Asks twice on a terminal.",
    )
    set_password.add_argument("staff_id", metavar="STAFF_ID")
    set_password.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    common.config_option(set_password)
    set_password.set_defaults(handler=_set_password)

    hash_password = commands.add_parser(
        "hash-password",
        help="print the argon2id hash of a password (for a data folder's passwords.csv)",
    )
    hash_password.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    hash_password.set_defaults(handler=_hash_password)
    staff.set_defaults(handler=lambda args: _usage(staff))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # One line; the newline that ends it is not part of the password.
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != first:
        raise common.UsageError("the two passwords differ; nothing was changed")
    return first


def _set_password(args: argparse.Namespace) -> int:
    from dispatcher.adapters.files.directory_files import DataFileError
    from dispatcher.services.accounts import PasswordRejectedError

    # Through import_command, as `eldercall run` reaches bootstrap: the layers
    # contract keeps entrypoints from importing the wiring by name.
    accounts_only = common.import_command("dispatcher.bootstrap", "staff").accounts_only

    settings = common.settings_from(args.config)
    password = _read_password(args.password_stdin)

    async def set_it() -> int:
        async with accounts_only(settings) as accounts:
            ended: int = await accounts.set_password(args.staff_id, password)
        return ended

    try:
        ended = asyncio.run(set_it())
    except PasswordRejectedError as exc:
        print(f"{common.PROG}: {exc}; nothing was changed", file=sys.stderr)
        return 1
    except DataFileError as exc:
        print(f"{common.PROG}: the data folder has errors:", file=sys.stderr)
        print("\n".join(f"  {p}" for p in exc.problems), file=sys.stderr)
        return 1
    sessions = f"{ended} session{'s' if ended != 1 else ''}"
    print(f"password set for {args.staff_id}; {sessions} ended")
    return 0


def _hash_password(args: argparse.Namespace) -> int:
    bootstrap = common.import_command("dispatcher.bootstrap", "staff")
    hasher = bootstrap.password_hasher()
    print(hasher.hash(_read_password(args.password_stdin)))
    return 0
