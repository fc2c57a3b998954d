"""``eldercall import`` / ``export`` and ``/api/v1/registry/import|export`` against the
daemon's own API on a free loopback port, over the real database (both backends)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook

from dispatcher.bootstrap import App, http_app
from dispatcher.entrypoints.cli import main as cli
from dispatcher.entrypoints.http.app import ApiServer
from dispatcher.services.registry import AuditQuery

TOKEN = "demo-zhao-min-91c6ab04"  # the district's supervisor
SUN_LI = "demo-sun-li-2a7fe859"  # supervisor of street s-hx (c-lh, c-qs)
HUANG_LEI = "demo-huang-lei-6c9e2a40"  # community staff of c-lh

OFFICE_CSV = (
    "老人编号,姓名,性别,出生日期,家庭住址,社区,设备号,家庭电话\r\n"
    "r-0100,钱桂英,女,1939/4/5,柳湖路9号101室,c-lh,dev-0100,+862164110999\r\n"
    "r-0101,孙德才,男,1941年11月2日,柳湖路9号102室,c-nowhere,dev-0101,\r\n"
    "r-0102,周美华,女,1962-07-01,柳湖路9号103室,c-lh,dev-0102,12345\r\n"
)


@pytest.fixture
async def api(app: App, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[str]:
    for name in ("ELDERCALL_API_URL", "ELDERCALL_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no config/eldercall.toml: built-in defaults
    server = ApiServer(http_app(app), "127.0.0.1", 0)
    await server.start()
    try:
        yield server.base_url
    finally:
        await server.stop()


async def run(
    capsys: pytest.CaptureFixture[str], api: str, *argv: str, token: str = TOKEN
) -> tuple[int, str, str]:
    code = await asyncio.to_thread(cli.main, [*argv, "--api", api, "--token", token])
    out, err = capsys.readouterr()
    return code, out, err


async def test_a_gbk_csv_with_bad_rows_imports_nothing_and_names_each_line(
    app: App, api: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "老人.csv"
    path.write_bytes(OFFICE_CSV.encode("gbk"))
    code, out, err = await run(capsys, api, "import", str(path))
    assert code == 1
    assert f"{path}:3: community: 'c-nowhere' is not an area" in err
    assert f"{path}:4: phone: '12345' is not an E.164 number" in err
    assert "Refused: 2 errors; nothing was imported." in err
    assert "r-0100" not in app.directory.residents  # its good row is not imported either

    fixed = OFFICE_CSV.replace("c-nowhere", "c-lh").replace(",12345", ",")
    path.write_bytes(fixed.encode("gbk"))
    code, out, err = await run(capsys, api, "import", str(path), "--dry-run")
    assert (code, err) == (0, "")
    assert "new residents: r-0100, r-0101, r-0102" in out and "Dry run" in out
    assert f"{path}:4: warning: birth_date: r-0102 is 64" in out  # under 70: imported
    assert "r-0100" not in app.directory.residents

    code, out, err = await run(capsys, api, "import", str(path))
    assert (code, err) == (0, "") and "Imported: in force now." in out
    assert app.directory.residents["r-0101"].birth_date.isoformat() == "1941-11-02"
    assert app.directory.residents_by_device["dev-0100"].id == "r-0100"
    code, out, _ = await run(capsys, api, "import", str(path))
    assert code == 0 and "Nothing to change." in out

    path.write_bytes(fixed.replace("柳湖路9号101室", "柳湖路9号201室").encode("gbk"))
    code, out, _ = await run(capsys, api, "import", str(path))
    assert code == 0
    assert f"{path}:2: residents r-0100: address '柳湖路9号101室' -> '柳湖路9号201室'" in out
    page = await app.registry.audit(app.directory.staff["zhao-min"], AuditQuery(record_id="r-0100"))
    assert [e.action for e in page.items] == ["import", "import"]
    assert page.items[0].before is not None and page.items[0].after is not None
    assert page.items[0].after["address"] == "柳湖路9号201室"


async def test_export_then_import_through_the_cli_changes_nothing(
    app: App, api: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    book = tmp_path / "district.xlsx"
    code, out, err = await run(capsys, api, "export", str(book))
    assert (code, err) == (0, "") and "40 residents" in out
    assert load_workbook(book).sheetnames == [
        "areas", "providers", "staff", "residents", "devices", "contacts"
    ]  # fmt: skip
    code, out, err = await run(capsys, api, "import", str(book))
    assert (code, err) == (0, "") and "Nothing to change." in out

    csv_path = tmp_path / "residents.csv"
    code, out, err = await run(capsys, api, "export", str(csv_path))
    assert code == 0 and csv_path.read_bytes().startswith(b"\xef\xbb\xbf")
    code, out, err = await run(capsys, api, "import", str(csv_path), "--dry-run")
    assert (code, err) == (0, "") and "residents  0        0        40" in out

    code, _, err = await run(capsys, api, "export", str(tmp_path / "everything.csv"))
    assert code == 2 and "name it after them" in err


async def test_the_api_answers_every_error_with_422_and_keeps_scope(app: App, api: str) -> None:
    url = f"{api}/api/v1/registry"
    resident = {
        "id": "r-9001",
        "name": "钱淑珍",
        "birth_date": "1938-03-02",
        "address": "梅林路 1 号",
        "community": "c-ml",  # street s-dq: not sun-li's
        "device_id": "dev-9001",
    }
    body = {"records": {"residents": [{"line": 2, "values": resident}]}}
    async with httpx.AsyncClient(trust_env=False) as http:
        answer = await http.post(
            f"{url}/import", json=body, headers={"Authorization": f"Bearer {SUN_LI}"}
        )
        assert answer.status_code == 422
        data = answer.json()
        assert data["error"] == "1 error in the rows: nothing was imported"
        (error,) = data["errors"]
        assert error["line"] == 2 and "outside your area" in error["message"]
        assert data["applied"] is False

        answer = await http.post(
            f"{url}/import", json=body, headers={"Authorization": f"Bearer {HUANG_LEI}"}
        )
        assert answer.status_code == 403

        answer = await http.get(f"{url}/export", headers={"Authorization": f"Bearer {SUN_LI}"})
        assert answer.status_code == 200
        records = answer.json()["records"]
        assert {r["community"] for r in records["residents"]} <= {"c-lh", "c-qs"}
        assert {a["id"] for a in records["areas"]} == {"s-hx", "c-lh", "c-qs"}
        assert all(s["api_token"] == "" for s in records["staff"])

        body["records"]["residents"][0]["values"]["community"] = "c-lh"
        answer = await http.post(
            f"{url}/import",
            json=body | {"dry_run": True},
            headers={"Authorization": f"Bearer {SUN_LI}"},
        )
        assert answer.status_code == 200
        assert answer.json()["counts"]["residents"]["created"] == 1
        assert "r-9001" not in app.directory.residents
