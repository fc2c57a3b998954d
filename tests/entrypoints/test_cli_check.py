"""``eldercall check``: the whole data folder at once, every problem with its file:line,
exit 1 on any (issue #10: a typo in policies.toml passed ``rota check``)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from dispatcher.entrypoints.cli import common
from dispatcher.entrypoints.cli import main as cli
from dispatcher.testing import FakeClock
from tests.support.app import DATA, TUESDAY_10AM
from tests.support.ports import isolated_endpoints_toml


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "clock", lambda: FakeClock(TUESDAY_10AM))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    shutil.copytree(DATA, folder)
    return folder


def config(tmp_path: Path, data: Path, extra: str = "") -> Path:
    path = tmp_path / "eldercall.toml"
    path.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "x.db"}"\n'
        f'[data]\ndir = "{data}"\n{isolated_endpoints_toml()}{extra}',
        encoding="utf-8",
    )
    return path


def edit(path: Path, old: str, new: str) -> int:
    """Replace the first ``old``; returns its line number."""
    text = path.read_text(encoding="utf-8")
    at = text.index(old)
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return text.count("\n", 0, at) + 1


def check(capsys: pytest.CaptureFixture[str], cfg: Path) -> tuple[int, str]:
    code = cli.main(["check", "--config", str(cfg)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_the_example_folder_is_fine(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(capsys, config(tmp_path, data))
    assert code == 0, out
    assert out.strip() == f"eldercall check: {data} and the configuration are fine"


def test_a_typo_in_policies_toml_fails_with_its_line(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path, data)
    edit(data / "policies.toml", '"hotline", "community"]', '"hotline", "comunity"]')
    assert cli.main(["rota", "check", "--config", str(cfg)]) == 0  # what issue #10 found
    capsys.readouterr()
    code, out = check(capsys, cfg)
    assert code == 1, out
    # The line of the steps list the target is in.
    line = 1 + (data / "policies.toml").read_text().split("\n").index("steps = [")
    assert f"{data / 'policies.toml'}:{line}: [emergency.steps] step 2: unknown target" in out
    assert "1 problem(s)" in out


def test_every_problem_of_the_files_checked_against_the_directory(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(data / "policies.toml", '"hotline", "community"]', '"hotline", "person:nobody"]')
    edit(data / "passwords.csv", "demo-operator,", "no-such-staff,")
    # Nobody on the hotline at weekends: the daemon would refuse to start.
    edit(data / "rota.toml", 'days = "mon-sun"', 'days = "mon-fri"')
    edit(data / "rota.toml", 'days = "mon-sun"', 'days = "mon-fri"')
    code, out = check(capsys, config(tmp_path, data))
    assert code == 1, out
    assert "policies.toml:" in out and "nobody" in out
    assert "passwords.csv:" in out and "no-such-staff" in out
    assert "command centre" in out
    assert "3 problem(s)" in out


def test_a_directory_that_does_not_load_still_gets_the_syntax_checked(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(data / "rota.toml", 'staff = "demo-operator"', 'staff = "nobody-at-all"')
    (data / "policies.toml").write_text("[emergency\nsteps = 1\n", encoding="utf-8")
    code, out = check(capsys, config(tmp_path, data))
    assert code == 1, out
    assert re.search(rf"{re.escape(str(data / 'rota.toml'))}:\d+: .*nobody-at-all", out), out
    assert f"{data / 'policies.toml'}: " in out and "line 1" in out
    assert "only their syntax was checked" in out


def test_a_bad_configuration_is_a_problem_too(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(capsys, config(tmp_path, data, "[sms]\nthrottle_s = -5\n"))
    assert code == 1, out
    assert "configuration:" in out and "throttle_s" in out
