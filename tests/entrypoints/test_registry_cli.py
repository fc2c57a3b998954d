"""``eldercall residents|devices|staff ...`` against the daemon's own API, served on a
free loopback port over the real database (both backends)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dispatcher.bootstrap import App, http_app
from dispatcher.entrypoints.cli import main as cli
from dispatcher.entrypoints.http.app import ApiServer

TOKEN = "demo-zhao-min-91c6ab04"  # the district's supervisor


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


async def run(capsys: pytest.CaptureFixture[str], api: str, *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(cli.main, [*argv, "--api", api, "--token", TOKEN])
    out, err = capsys.readouterr()
    return code, out, err


async def test_add_set_show_list_and_delete_a_resident(
    app: App, api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await run(
        capsys,
        api,
        "residents",
        "add",
        "id=r-9001",
        "name=钱淑珍",
        "birth_date=1938-03-02",
        "address=柳湖路 9 号",
        "community_id=c-lh",
        'contacts=[{"name": "钱伟", "relation": "儿子", "phone": "+8613600009001"}]',
    )
    assert (code, err) == (0, "") and "r-9001" in out
    code, out, _ = await run(capsys, api, "residents", "set", "r-9001", "room", "401")
    assert code == 0 and app.directory.residents["r-9001"].room == "401"
    code, out, _ = await run(capsys, api, "residents", "show", "r-9001")
    assert code == 0 and "钱淑珍" in out and "contact 1: 钱伟 (儿子)" in out
    code, out, _ = await run(capsys, api, "residents", "list", "--where", "community=c-lh")
    assert code == 0 and "r-9001" in out and "r-0021" not in out
    code, _, err = await run(capsys, api, "residents", "set", "r-9001", "phone", "138")
    assert code == 1 and err.startswith("eldercall: phone:") and "E.164" in err
    code, out, _ = await run(capsys, api, "residents", "delete", "r-9001")
    assert code == 0 and "r-9001" not in app.directory.residents


async def test_devices_add_move_and_retire_keep_the_history(
    app: App, api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = await run(capsys, api, "devices", "add", "id=dev-9001", "model=YK-2")
    assert (code, err) == (0, "")
    code, out, _ = await run(capsys, api, "devices", "move", "dev-0001", "-")
    assert code == 0 and "in stock" in out
    code, out, _ = await run(capsys, api, "devices", "move", "dev-9001", "r-0001")
    assert code == 0 and app.directory.residents_by_device["dev-9001"].id == "r-0001"
    code, out, _ = await run(capsys, api, "devices", "show", "dev-0001")
    assert code == 0 and "served r-0001:" in out
    code, out, _ = await run(capsys, api, "devices", "retire", "dev-0001")
    assert code == 0
    code, _, err = await run(capsys, api, "devices", "move", "dev-0001", "r-0002")
    assert code == 1 and "retired" in err


async def test_staff_records_beside_the_password_commands(
    app: App, api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = await run(
        capsys, api, "staff", "add", "id=qian-li", "name=钱丽", "area_id=c-lh", "role=staff"
    )
    assert (code, err) == (0, "") and "qian-li" in app.directory.staff
    code, out, _ = await run(capsys, api, "staff", "list", "--where", "area=c-lh")
    assert code == 0 and "qian-li" in out and "demo-operator" not in out
    code, _, err = await run(capsys, api, "staff", "delete", "huang-lei")
    assert code == 1 and "on the rota" in err
