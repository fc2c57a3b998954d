"""`eldercall rota check` (offline report, exit codes, the database's overrides) and
the daemon refusing to start when the command centre has a gap."""

from __future__ import annotations

import asyncio
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from dispatcher.adapters.db import schema as db
from dispatcher.entrypoints.cli import common
from dispatcher.entrypoints.cli import main as cli
from dispatcher.testing import FakeClock
from tests.support.app import DATA, TUESDAY_10AM, built_app, settings_for
from tests.support.ports import isolated_endpoints_toml

T = TUESDAY_10AM

# A command centre staffed around the clock by one person, except while an override
# takes them off on Wednesday 2 December (eight days after T).
ONE_OPERATOR = """
[[schedule]]
area = "d-jb"

[[schedule.rule]]
days = "mon-sun"
start = "00:00"
end = "24:00"
staff = "demo-operator"

[[schedule]]
area = "c-ty"

[[schedule.rule]]
days = "mon-fri"
start = "08:00"
end = "17:00"
staff = "xu-yan"

[[schedule.rule]]
days = "tue"
start = "09:00"
end = "12:00"
staff = "zheng-hua"

[[override]]
id = "off-on-the-2nd"
area = "d-jb"
kind = "remove"
staff = "demo-operator"
start = 2026-12-02T10:00:00
end = 2026-12-02T11:30:00
reason = "dentist"
"""


def folder(tmp_path: Path, rota_toml: str | None = None) -> Path:
    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    if rota_toml is not None:
        (data / "rota.toml").write_text(rota_toml, encoding="utf-8")
    return data


def config(tmp_path: Path, data: Path, extra: str = "") -> Path:
    path = tmp_path / "eldercall.toml"
    path.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "x.db"}"\n'
        f'[data]\ndir = "{data}"\n{isolated_endpoints_toml()}{extra}',
        encoding="utf-8",
    )
    return path


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "clock", lambda: FakeClock(T))


def check(capsys: pytest.CaptureFixture[str], cfg: Path, *args: str) -> tuple[int, str]:
    code = cli.main(["rota", "check", "--config", str(cfg), *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_the_example_rota_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(capsys, config(tmp_path, DATA))
    assert code == 0, out
    assert "Rota check from 2026-11-24 Tue 10:00 to 2026-12-22 Tue 10:00" in out
    assert "no database at" in out
    assert "always someone on duty" in out
    # 柳湖 on a Tuesday evening: the streets' evening turn, then the district.
    assert "    2026-11-24 Tue 18:00 - 21:00  -> street s-hx" in out
    assert "Overlaps (primaries from different rules, none marked shared):\n  none" in out
    assert out.rstrip().splitlines()[-1].startswith("OK: the command centre is always staffed")


def test_a_command_centre_gap_fails_within_the_days_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path, folder(tmp_path, ONE_OPERATOR))
    code, out = check(capsys, cfg, "--days", "7")
    assert code == 0, out
    code, out = check(capsys, cfg, "--days", "14")
    assert code == 1, out
    assert "  GAP, nobody on duty: 2026-12-02 Wed 10:00 - 11:30" in out
    assert "FAIL: the command centre has 1 gap(s)" in out


def test_overlaps_and_people_without_a_phone_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = folder(tmp_path, ONE_OPERATOR)
    staff = data / "staff.csv"
    staff.write_text(
        staff.read_text(encoding="utf-8").replace(",+8613761400305,", ",,"), encoding="utf-8"
    )
    code, out = check(capsys, config(tmp_path, data), "--days", "7")
    assert code == 0, out
    assert "  c-ty 2026-11-24 Tue 10:00 - 12:00: xu-yan, zheng-hua (from rota.toml:" in out
    assert "  xu-yan 徐燕: on duty for c-ty, first from 2026-11-24 Tue 10:00" in out


def test_a_bad_data_folder_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(capsys, config(tmp_path, folder(tmp_path, "[[rotation]]\nid = 3\n")))
    assert code == 2
    assert "rota.toml:1: rotation: id 3 is not a valid id" in out


def test_overrides_in_the_database_are_included(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = folder(tmp_path, ONE_OPERATOR.split("[[override]]")[0])
    cfg = config(tmp_path, data)

    async def store_override() -> None:
        app = await built_app(
            settings_for(
                tmp_path,
                data={"dir": str(data)},
                database={"url": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"},
            ),
            FakeClock(T),
        )
        try:
            async with app.sessions.begin() as session:
                await session.execute(
                    insert(db.rota_overrides).values(
                        id="ov-sick",
                        area_id="d-jb",
                        kind="remove",
                        staff_id="demo-operator",
                        start_at=T + timedelta(days=3),
                        end_at=T + timedelta(days=3, hours=1),
                        reason="sick",
                        created_by="zhao-min",
                        created_at=T,
                    )
                )
        finally:
            await app.aclose()

    asyncio.run(store_override())
    code, out = check(capsys, cfg)
    assert code == 1, out
    assert "1 override(s) from the API included" in out
    assert "GAP, nobody on duty: 2026-11-27 Fri 10:00 - 11:00" in out


def test_the_daemon_refuses_to_start_on_a_command_centre_gap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gap = ONE_OPERATOR.replace("2026-12-02T10:00:00", "2026-11-29T10:00:00").replace(
        "2026-12-02T11:30:00", "2026-11-29T11:30:00"
    )
    cfg = config(tmp_path, folder(tmp_path, gap), "[rota]\nstartup_check_days = 28\n")
    assert cli.main(["run", "--config", str(cfg)]) == 2
    out = capsys.readouterr()
    text = out.out + out.err
    [line] = [x for x in text.splitlines() if "rota_gap" in x]
    assert "the command centre d-jb has nobody on duty from 2026-11-29 Sun 10:00" in line
    assert not (tmp_path / "x.db").exists()  # refused before touching the database


def test_the_startup_check_looks_as_far_as_the_setting_says(tmp_path: Path) -> None:
    data = folder(tmp_path, ONE_OPERATOR)  # the gap is 8 days away

    async def build(days: int) -> None:
        app = await built_app(
            settings_for(tmp_path, data={"dir": str(data)}, rota={"startup_check_days": days}),
            FakeClock(T),
        )
        await app.aclose()

    from dispatcher.core.rota.check import RotaGapError

    asyncio.run(build(7))
    with pytest.raises(RotaGapError):
        asyncio.run(build(9))
    assert datetime(2026, 12, 2, 2, tzinfo=T.tzinfo) - T == timedelta(days=8)
