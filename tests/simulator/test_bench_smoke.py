"""The benchmark harness works end to end: ``python -m simulator.bench --quick`` runs the
real daemon, Mosquitto, the databases and the SMS sink on tiny numbers and produces a
figure for every scenario asked for. Nothing is asserted about the figures' values:
timing belongs in the benchmark (``make bench``), never in a test.

The scenarios run in small groups, one bench run per test, so that each stays well
inside the per-test timeout on a shared machine (every scenario starts its own daemon).
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
    found: dict[str, object] = json.loads(figures.read_text())
    assert found["not_run"] == {}, found["not_run"]
    return found


def scenarios_with_figures(found: dict[str, object]) -> set[str]:
    rows = found["figures"]
    assert isinstance(rows, list)
    return {row["scenario"] for row in rows if row["value"] is not None}


@pytest.mark.parametrize(
    "group", [("heartbeat", "burst"), ("flood", "steady"), ("escalation", "rest")]
)
def test_quick_bench_produces_a_figure_for_each_scenario(
    tmp_path: Path, group: tuple[str, ...]
) -> None:
    found = run_bench(tmp_path, *group, "--db", "sqlite")
    made = scenarios_with_figures(found)
    assert "baseline" in made
    numbers = {str(list(SCENARIOS).index(name) + 1) for name in group}
    assert {label.split()[0] for label in made if label != "baseline"} == numbers
    machine = found["machine"]
    assert isinstance(machine, dict)
    assert {"CPU", "cores", "RAM", "kernel", "Python", "Mosquitto", "SQLite"} <= set(machine)


def test_quick_bench_runs_the_burst_on_postgresql(tmp_path: Path) -> None:
    found = run_bench(tmp_path, "burst", "--db", "postgres")
    rows = found["figures"]
    assert isinstance(rows, list)
    assert any("(postgres)" in row["name"] and row["value"] is not None for row in rows)
    machine = found["machine"]
    assert isinstance(machine, dict)
    assert "PostgreSQL" in machine
