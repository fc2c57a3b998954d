"""``python -m simulator.bench.import_residents [--residents N] [--db sqlite|postgres|both]``:
the benchmark of issue 10's import.

Generates an ``.xlsx`` of N residents (10,000 by default) with a device and two
contacts each, in the example district's communities, and imports it through the
registry's import service into a fresh database seeded from config/data (what
``eldercall import`` has the daemon do, less the HTTP hop), then imports it a second
time (which changes nothing). Prints the seconds of each phase and the peak memory:
tracemalloc's peak of the phase (Python allocations) and the process's VmHWM (its
resident high-water mark, all phases so far). Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import TypeVar

from dispatcher.adapters.db import migrate
from dispatcher.adapters.db.registry_store import SqlRegistryStore
from dispatcher.adapters.db.schema import make_engine, make_sessionmaker
from dispatcher.adapters.db.transactions import Transactions
from dispatcher.adapters.files.exchange import SheetRow, read_records, write_records
from dispatcher.bootstrap import open_registry
from dispatcher.config import load_settings
from dispatcher.core.registry.importing import SourceRow
from dispatcher.services.clock import SystemClock
from dispatcher.services.registry_import import import_records

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "config" / "data"
COMMUNITIES = ("c-lh", "c-qs", "c-ml", "c-ty")
T = TypeVar("T")


def workbook_rows(n: int) -> dict[str, list[dict[str, str]]]:
    residents, devices, contacts = [], [], []
    for i in range(n):
        rid, dev = f"r-b{i:05d}", f"dev-b{i:05d}"
        born = date(1930, 1, 1) + timedelta(days=(i * 37) % (365 * 25))
        residents.append(
            {
                "id": rid,
                "name": f"测试老人{i}",
                "birth_date": born.isoformat(),
                "address": f"江滨区测试路{i}号",
                "community": COMMUNITIES[i % len(COMMUNITIES)],
                "device_id": dev,
                "phone": f"+8657180{i:06d}",
                "sex": "F" if i % 2 else "M",
                "building": str(i % 40),
                "room": str(100 + i % 900),
            }
        )
        devices.append({"id": dev, "resident": rid, "model": "YK-2", "firmware": "1.4.2"})
        for order, relation in ((1, "儿子"), (2, "邻居")):
            contacts.append(
                {
                    "resident": rid,
                    "order": str(order),
                    "name": f"联系人{i}-{order}",
                    "relation": relation,
                    "phone": f"+86136{order}{i:07d}",
                }
            )
    return {"residents": residents, "devices": devices, "contacts": contacts}


def vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


TRACE = {"on": False}  # --tracemalloc: Python's peak per phase (and everything slower)


@contextmanager
def phase(name: str, figures: list[tuple[str, float, float, float]]) -> Iterator[None]:
    if TRACE["on"]:
        tracemalloc.start()
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if TRACE["on"] else float("nan")
        tracemalloc.stop()
        figures.append((name, seconds, peak / 2**20, vm_hwm_mib()))


async def timed(
    name: str, figures: list[tuple[str, float, float, float]], step: Callable[[], Awaitable[T]]
) -> T:
    with phase(name, figures):
        return await step()


async def bench(url: str, book: Path, label: str) -> list[tuple[str, float, float, float]]:
    figures: list[tuple[str, float, float, float]] = []
    settings = load_settings(None, database={"url": url}, data={"dir": str(DATA)})
    engine = make_engine(url)
    try:
        await migrate.upgrade(engine)
        registry, _ = await open_registry(
            settings, Transactions(make_sessionmaker(engine), SqlRegistryStore), SystemClock()
        )
        actor = registry.directory.staff["zhao-min"]  # the district's supervisor
        with phase("parse (read_records)", figures):
            sheets = {
                kind: [SourceRow(r.line, r.given, r.sheet) for r in rows if isinstance(r, SheetRow)]
                for kind, rows in read_records(book).items()
            }
        first = await timed(
            "import (plan + one transaction + one swap)",
            figures,
            lambda: import_records(registry, actor, sheets),
        )
        assert first.applied and not first.plan.errors, first.plan.errors[:5]
        for part, took in first.seconds.items():
            figures.append((f"  of which {part}", took, float("nan"), float("nan")))
        again = await timed(
            "the same again (plans zero changes)",
            figures,
            lambda: import_records(registry, actor, sheets),
        )
        assert not again.plan.changes, again.plan.changes[:5]
        for part, took in again.seconds.items():
            figures.append((f"  of which {part}", took, float("nan"), float("nan")))
        print(f"\n{label}: {len(registry.directory.residents)} residents in force")
    finally:
        await engine.dispose()
    return figures


def commit() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        )
        return done.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def print_figures(label: str, figures: list[tuple[str, float, float, float]]) -> None:
    print(f"| {label} | seconds | tracemalloc peak (MiB) | VmHWM so far (MiB) |")
    print("|---|---:|---:|---:|")
    for name, seconds, peak, hwm in figures:
        print(f"| {name} | {seconds:.2f} | {peak:.0f} | {hwm:.0f} |")


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="eldercall-import-") as tmp:
        book = Path(tmp) / "residents.xlsx"
        figures: list[tuple[str, float, float, float]] = []
        with phase(f"generate the .xlsx ({args.residents} residents)", figures):
            write_records(book, workbook_rows(args.residents))
        print(f"commit {commit()}, Python {platform.python_version()}, {os.cpu_count()} cores, "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
              f"workbook {book.stat().st_size / 2**20:.1f} MiB")  # fmt: skip
        print_figures("setup", figures)
        if args.db in ("sqlite", "both"):
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            print_figures("SQLite", await bench(url, book, "SQLite"))
        if args.db in ("postgres", "both"):
            from simulator.postgres import PostgresServer, find_pg_bin

            bin_dir = find_pg_bin()
            if bin_dir is None:
                print("PostgreSQL: not run (no server binaries)")
            else:
                server = PostgresServer(bin_dir)
                server.start()
                try:
                    url = server.url(server.create_database("bench"))
                    print_figures("PostgreSQL", await bench(url, book, "PostgreSQL"))
                finally:
                    server.stop()
        print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.bench.import_residents")
    parser.add_argument("--residents", type=int, default=10_000)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also trace Python's allocations (their peak per phase); the seconds are then "
        "several times longer",
    )
    args = parser.parse_args(argv)
    TRACE["on"] = args.tracemalloc
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
