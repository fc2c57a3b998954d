"""``eldercall check [--config FILE]``: the whole data folder checked offline, as the
daemon would read it at start: the configuration, the directory (areas, staff,
residents, contacts, contact methods, rota.csv and rota.toml), passwords.csv,
policies.toml (its targets against the staff and the rota's rotations, with the
configuration's ``[escalation.policies]`` over it) and the command centre's cover for
``[rota] startup_check_days``. Every problem is printed on a line of its own, with
its ``file:line`` where it has one. Exit codes: 0 nothing wrong, 1 any problem,
2 usage.

When the directory does not load, the files checked against it (passwords.csv,
policies.toml) can only be checked for their syntax: the rest waits for the
directory's problems to be fixed, and the output says so.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from dispatcher.adapters.files.directory_files import DataFileError, load_directory
from dispatcher.adapters.files.passwords import load_password_hashes
from dispatcher.adapters.files.policies import POLICIES
from dispatcher.adapters.files.rota_toml import ROTA_TOML
from dispatcher.config import ConfigError, Settings, load_settings
from dispatcher.core.directory import Directory
from dispatcher.core.policy_book import PolicyBook
from dispatcher.core.rota.check import RotaGapError, require_command_centre
from dispatcher.entrypoints.cli import common

PROG = f"{common.PROG} check"


def add_check_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = sub.add_parser(
        "check",
        help="check the configuration and the whole data folder (directory, rota, policies)",
    )
    common.config_option(check)
    check.set_defaults(handler=lambda args: main_check(args.config, common.now()))


def main_check(config: str | None, now: datetime) -> int:
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        return _report([f"configuration: {line}" for line in str(exc).splitlines()], None)
    policy_book: Callable[[Settings, Directory], PolicyBook] = common.import_command(
        "dispatcher.bootstrap", "check"
    ).policy_book
    folder = settings.data.dir
    problems: list[str] = []
    notes: list[str] = []
    try:
        directory = load_directory(folder, settings.data.timezone)
    except DataFileError as exc:
        problems.extend(exc.problems)
        problems.extend(_syntax(folder / ROTA_TOML))
        problems.extend(_syntax(folder / POLICIES))
        notes.append(
            "passwords.csv and policies.toml are checked against the directory: "
            "only their syntax was checked until the problems above are fixed"
        )
        return _report(problems, folder, notes)
    for load in (
        lambda: load_password_hashes(folder, directory),
        lambda: policy_book(settings, directory),
    ):
        try:
            load()
        except DataFileError as exc:
            problems.extend(exc.problems)
    try:
        require_command_centre(directory, now, settings.rota.startup_check_days)
    except RotaGapError as exc:
        problems.append(f"{folder / ROTA_TOML}: {exc}")
    return _report(problems, folder, notes)


def _syntax(path: Path) -> list[str]:
    """A TOML file's syntax alone (its content needs the directory)."""
    try:
        tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return [f"{path}: {exc}"]
    return []


def _report(problems: list[str], folder: Path | None, notes: list[str] | None = None) -> int:
    for line in problems:
        print(line, file=sys.stderr)
    for note in notes or []:
        print(f"({note})", file=sys.stderr)
    if problems:
        print(f"{PROG}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{PROG}: {folder} and the configuration are fine")
    return 0
