"""`eldercall run` refuses to start on a bad data file or a bad configuration, and
says which file, which line and what is wrong."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dispatcher.entrypoints.cli.main import main
from tests.support.app import DATA
from tests.support.ports import isolated_endpoints_toml


def config(tmp_path: Path, data: Path, extra: str = "") -> Path:
    path = tmp_path / "eldercall.toml"
    path.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "x.db"}"\n'
        f'[data]\ndir = "{data}"\n{isolated_endpoints_toml()}{extra}',
        encoding="utf-8",
    )
    return path


def test_a_bad_rota_line_stops_the_daemon_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    (data / "rota.toml").unlink()
    rota = data / "rota.csv"
    legacy = Path(__file__).resolve().parents[1] / "data" / "legacy_rota.csv"
    lines = legacy.read_text(encoding="utf-8").splitlines()
    lines.append("c-lh,nobody-here,primary,mon-fri,08:00,18:00")
    rota.write_text("\n".join(lines) + "\n", encoding="utf-8")

    assert main(["run", "--config", str(config(tmp_path, data))]) == 2
    err = capsys.readouterr()
    out = err.out + err.err
    assert f"rota.csv:{len(lines)}" in out and "nobody-here" in out
    assert not (tmp_path / "x.db").exists()  # stopped before touching anything


def test_a_bad_configuration_value_stops_the_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "eldercall.toml"  # no isolated endpoints: they would repeat [mqtt]
    path.write_text(f'[data]\ndir = "{DATA}"\n[mqtt]\nurl = "http://broker"\n', encoding="utf-8")
    assert main(["run", "--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert "mqtt.url" in captured.out + captured.err


def test_a_missing_configuration_file_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(tmp_path / "nope.toml")]) == 2
    captured = capsys.readouterr()
    assert "nope.toml" in captured.out + captured.err
