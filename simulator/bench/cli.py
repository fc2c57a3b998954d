"""``python -m simulator.bench [scenario...] [--quick] [--db sqlite|postgres|both]``.

Starts one Mosquitto (free port, ``set_tcp_nodelay true``) and one SMS sink for the
whole run, measures the baselines on them, runs each scenario asked for (all by
default) and writes the figures to docs/benchmarks.md (``--out``). A scenario that
fails or cannot run is reported as "not run" with the reason; the others go on.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from simulator.bench.figures import Figure, fmt
from simulator.bench.report import machine, markdown
from simulator.bench.scenarios import (
    EVERY_DATABASE,
    FULL,
    QUICK,
    SCENARIOS,
    Bench,
    measure_baselines,
)
from simulator.bench.world import SinkProcess
from simulator.broker import MosquittoProcess

DEFAULT_OUT = Path("docs/benchmarks.md")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simulator.bench", description=__doc__)
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="scenario",
        help=f"any of {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny numbers: checks the harness")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the report (markdown)")
    parser.add_argument("--json", type=Path, help="also write the figures here, as JSON")
    parser.add_argument(
        "--label", help="the report's heading (default: Latest, the commit and the time)"
    )
    parser.add_argument(
        "--quiet-machine",
        action="store_true",
        help="the machine ran nothing else meanwhile (else the report says shared)",
    )
    args = parser.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}: choose from {', '.join(SCENARIOS)}")
    args.scenarios = args.scenarios or list(SCENARIOS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    databases = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    figures: list[Figure] = []
    not_run: dict[str, str] = {}
    began = time.time()
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="eldercall-bench-") as tmp:
        work = Path(tmp)
        broker = MosquittoProcess(work / "mosquitto", extra_config="set_tcp_nodelay true")
        sink = SinkProcess(work)
        broker.start()
        sink.start()
        bench = Bench(broker, sink, work, QUICK if args.quick else FULL, say)
        try:
            say(f"broker {broker.url}, SMS sink {sink.url}, work folder {work}")
            say("baselines")
            try:
                for figure in measure_baselines(bench):
                    figures.append(figure)
                    say(figure.line())
            except Exception as exc:
                not_run["baselines"] = _why(exc)
                say(f"  not run: {not_run['baselines']}")
            for name in args.scenarios:
                for db in databases if name in EVERY_DATABASE else databases[:1]:
                    say(f"{name} ({db})")
                    started = time.time()
                    try:
                        found = SCENARIOS[name](bench, db)
                    except Exception as exc:
                        not_run[f"{name} ({db})"] = _why(exc)
                        say(f"  not run: {not_run[f'{name} ({db})']}")
                        traceback.print_exc()
                        continue
                    for figure in found:
                        figures.append(figure)
                        say(figure.line())
                    say(f"  ({time.time() - started:.0f} s)")
        finally:
            bench.close()
            sink.stop()
            broker.stop()
    about = machine() | bench.versions
    about["load average (1 min) at start"] = f"{load_at_start:.2f}"
    about["load average (1 min) at the end"] = about.pop("load average (1 min) now")
    about["bench took"] = f"{time.time() - began:.0f} s"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        markdown(
            figures,
            about,
            label=args.label or default_label(began),
            not_run=not_run,
            shared=not args.quiet_machine,
            quick=args.quick,
            scenarios={name: SCENARIOS[name].__doc__ or "" for name in args.scenarios},
        ),
        encoding="utf-8",
    )
    say(f"wrote {args.out}")
    if args.json is not None:
        # NaN and infinity ("never") are written as strings: JSON has neither.
        rows = [{k: _plain(v) for k, v in asdict(f).items()} for f in figures]
        args.json.write_text(
            json.dumps({"figures": rows, "not_run": not_run, "machine": about}, indent=2),
            encoding="utf-8",
        )
    return 0 if figures else 1


def default_label(began: float) -> str:
    """``Latest: <commit>, <UTC time>``: what the run measured, and when."""
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    commit = done.stdout.strip() if done.returncode == 0 else "a checkout outside git"
    when = datetime.fromtimestamp(began, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"Latest: {commit}, {when}"


def say(text: str) -> None:
    print(text, flush=True)


def _plain(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return fmt(value)
    return value


def _why(exc: Exception) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


if __name__ == "__main__":
    sys.exit(main())
