"""The machine a run measured on, and docs/benchmarks.md: the table of its figures."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from simulator.bench.figures import Figure

HEADER = """# Benchmarks

Written by `make bench` (`python -m simulator.bench`): the latest figures of each
scenario of issue 8 ("Hold a district's worst hour"), each beside its baseline or
target. The baselines are measured in the same run, on the same Mosquitto
(`set_tcp_nodelay true`): (a) a bare aiomqtt subscriber's QoS 1 ingest rate (in MQTT 5,
as the daemon speaks it; the 3.1.1 rate is shown beside it), (b) the
broker's QoS 1 round trip to a bare responder at 10 presses a second. A latency that
never came (an event never answered, an SMS never sent by the timeout) counts as
infinitely late, so a p99 reads "never" once more than 1 % are missing. The bench's
own MQTT clients (publishers, listeners, the bare responder) set TCP_NODELAY; the
daemon is run as it is, with the generated configuration of each scenario
(simulator/bench/world.py: a district of N registered devices, one hotline operator on
duty around the clock, an emergency policy that sends an SMS at step 0).
"""


def machine() -> dict[str, str]:
    """CPU model, cores, RAM, kernel, Python, SQLite and Mosquitto versions."""
    cpu = "unknown"
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    ram = "unknown"
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "RAM": ram,
        "kernel": platform.release(),
        "Python": platform.python_version(),
        "Mosquitto": _mosquitto_version(),
        "SQLite": sqlite3.sqlite_version,
        # How busy the cores were, beside the figures: on a shared machine they vary.
        "load average (1 min) now": f"{os.getloadavg()[0]:.2f}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _mosquitto_version() -> str:
    from simulator.broker import find_mosquitto

    binary = find_mosquitto()
    if binary is None:
        return "not installed"
    # mosquitto has no --version: -h prints "mosquitto version X" first.
    done = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=10)
    first = (done.stdout or done.stderr).splitlines()
    return first[0].strip() if first else "unknown"


def markdown(
    figures: list[Figure],
    about: dict[str, str],
    *,
    label: str,
    not_run: dict[str, str],
    shared: bool,
    quick: bool,
    scenarios: dict[str, str],
) -> str:
    lines = [HEADER, f"## {label}", ""]
    if quick:
        lines += ["**Quick mode: tiny numbers, a check that the harness works, not figures.**", ""]
    if shared:
        lines += [
            "The machine was shared with other work while this was measured (other "
            "engineers' builds and tests on the same cores): the figures are lower bounds "
            "of what the daemon does on a quiet machine.",
            "",
        ]
    lines += [
        "| scenario | figure | measured | baseline / target | ratio | verdict | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for figure in figures:
        name, value, reference, ratio, verdict = figure.cells()
        lines.append(
            f"| {figure.scenario} | {name} | {value} | {reference} | {ratio} | {verdict} "
            f"| {figure.note} |"
        )
    for scenario, why in not_run.items():
        lines.append(f"| {scenario} | — | not run | | | | {why} |")
    lines += ["", "## Scenarios", ""]
    lines += [f"- `{name}`: {' '.join(doc.split())}" for name, doc in scenarios.items()]
    lines += ["", "## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in about.items()]
    return "\n".join(lines) + "\n"
