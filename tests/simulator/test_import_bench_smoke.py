"""The import benchmark (``python -m simulator.bench.import_residents``) runs end to end
on a few residents: workbook, parse, import, the same again. Its figures are printed,
never asserted: timing belongs in the benchmark, not in a test."""

from __future__ import annotations

import pytest

from simulator.bench import import_residents


def test_the_import_benchmark_runs_on_a_few_residents(capsys: pytest.CaptureFixture[str]) -> None:
    assert import_residents.main(["--residents", "12", "--db", "sqlite"]) == 0
    out = capsys.readouterr().out
    assert "SQLite: 52 residents in force" in out  # the example district's 40 and 12
    assert "| the same again (plans zero changes) |" in out
