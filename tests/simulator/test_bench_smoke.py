"""The benchmark harness works end to end: ``python -m simulator.bench --quick`` runs the
real daemon, Mosquitto, the databases and the SMS sink on tiny numbers and produces a
figure for every scenario asked for. Nothing is asserted about the figures' values:
timing belongs in the benchmark (``make bench``), never in a test.

Three scenarios only, to keep `make test` short; `make bench BENCH_ARGS=--quick` runs
all six the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.bench.scenarios import SCENARIOS

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def run_bench(tmp_path: Path, *args: str) -> dict[str, object]:
    report, figures = tmp_path / "benchmarks.md", tmp_path / "figures.json"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "simulator.bench", "--quick", *args),
            *("--out", str(report), "--json", str(figures)),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert report.is_file()
    # Headed by what it measured and when: the commit and the time of the run.
    assert any(line.startswith("## Latest: ") for line in report.read_text().splitlines())
    found: dict[str, object] = json.loads(figures.read_text())
    assert found["not_run"] == {}, found["not_run"]
    return found


def scenarios_with_figures(found: dict[str, object]) -> set[str]:
    rows = found["figures"]
    assert isinstance(rows, list)
    return {row["scenario"] for row in rows if row["value"] is not None}


def test_quick_bench_produces_its_figures(tmp_path: Path) -> None:
    # Three scenarios, not six: each starts its own daemon, and the whole suite has a
    # budget of minutes. The press→answer→SMS path (steady), the memory at rest (rest)
    # and the burst with its floor (a responder beside the daemon) cover the harness's
    # parts: world, devices, sink, floor, database read-back.
    group = ("steady", "rest", "burst")
    found = run_bench(tmp_path, *group, "--db", "sqlite")
    made = scenarios_with_figures(found)
    assert "baseline" in made
    numbers = {str(list(SCENARIOS).index(name) + 1) for name in group}
    assert {label.split()[0] for label in made if label != "baseline"} == numbers
    rows = found["figures"]
    assert isinstance(rows, list)
    floors = [r for r in rows if r["scenario"] == "2 burst" and r["name"].startswith("floor:")]
    assert len(floors) == 1 and floors[0]["value"] is not None, floors
    machine = found["machine"]
    assert isinstance(machine, dict)
    assert {"CPU", "cores", "RAM", "kernel", "Python", "Mosquitto", "SQLite"} <= set(machine)
