"""What the ``eldercall`` commands share: the configuration option, the API session, the
clock (replaced in tests), time and table formatting, and the "not available" answer.
The command modules (``main``, ``rota``, ``report``) import this; none reaches into another."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import unicodedata
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from devices.text import clean_text
from dispatcher.config import ConfigError, Settings, load_settings
from dispatcher.entrypoints.cli.api_client import ApiClient
from dispatcher.services.clock import Clock, SteadyClock

PROG = "eldercall"


DEFAULT_CONFIG = "config/eldercall.toml"


URL_ENV = "ELDERCALL_API_URL"


TOKEN_ENV = "ELDERCALL_API_TOKEN"


class UsageError(Exception):
    """Something the user must change in the command line or configuration (exit 2)."""


def clock() -> Clock:
    """The clock of every command, the daemon's included (replaced in tests)."""
    return SteadyClock()


def now() -> datetime:
    return clock().now()


def config_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"configuration file (default {DEFAULT_CONFIG} if it exists)",
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def unavailable(command: str, reason: BaseException, args: argparse.Namespace) -> int:
    print(f"{PROG}: '{command}' is not available in this installation: {reason}", file=sys.stderr)
    return 1


def import_command(module: str, command: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Unavailable(command, exc) from exc


class Unavailable(Exception):
    def __init__(self, command: str, reason: BaseException) -> None:
        super().__init__(command)
        self.command = command
        self.reason = reason


class Session:
    """What an API command needs: a client, the directory's time zone, and now."""

    def __init__(self, args: argparse.Namespace) -> None:
        settings = settings_from(args.config)
        self.tz = zone(settings.data.timezone)
        self.tz_name = settings.data.timezone
        url = args.api or os.environ.get(URL_ENV) or settings.http.base_url
        token = args.token or os.environ.get(TOKEN_ENV)
        if not token:
            raise UsageError(f"no API token: give --token TOKEN or set {TOKEN_ENV}")
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--api must be an http:// or https:// URL, not {url!r}")
        self.client = ApiClient(url, token, channel="cli")
        self.now = now()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def local(self, when: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        return when.astimezone(self.tz).strftime(fmt) if when else "-"

    def ago(self, when: datetime) -> str:
        return duration(self.now - when)


def config_path(config: str | None) -> str | None:
    """``--config``, else the default file when it exists, else none (built-in defaults)."""
    return config or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None)


def start_option(text: str | None, config: str | None, now: datetime) -> datetime | None:
    """``--start`` read in the directory's time zone; none when not given."""
    if not text:
        return None
    return parse_at(text, zone(settings_from(config).data.timezone), now)


def settings_from(config: str | None) -> Settings:
    try:
        return load_settings(config_path(config))
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc


def zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UsageError(f"[data] timezone: unknown time zone {name!r}") from exc


def fields(pairs: Sequence[tuple[str, str]]) -> list[str]:
    width = max(len(k) for k, _ in pairs) + 2
    return [f"  {(k + ':').ljust(width)}{clean_text(v)}" for k, v in pairs]


def width(text: str) -> int:
    """Terminal columns: Chinese names take two each."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def table(rows: Sequence[Sequence[str]]) -> str:
    """Aligned columns. The last guard before the terminal: a cell never carries a
    control character (an escape sequence in a name would recolour or clear the
    operator's screen, a newline would break the row)."""
    rows = [[clean_text(cell) for cell in row] for row in rows]
    widths = [max(width(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [cell + " " * (widths[i] - width(cell)) for i, cell in enumerate(row)]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 600:
        return f"{round(value, 1):g}s"
    return duration(timedelta(seconds=value))  # a long wait reads better as 1h05m


def duration(delta: timedelta) -> str:
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


def print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def parse_at(text: str, tz: tzinfo, now: datetime) -> datetime:
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
