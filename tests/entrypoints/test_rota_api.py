"""Rota overrides through the API: supervisors only, validated, stored, and in force
at once for the on-duty answer and routing; kept across a restart."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert
from structlog.testing import capture_logs

from dispatcher.adapters.db import schema as db
from dispatcher.bootstrap import App, http_app
from dispatcher.core.rota import on_duty as rota
from dispatcher.core.rota.check import RotaGapError
from dispatcher.entrypoints.cli import common
from dispatcher.entrypoints.cli import main as cli
from dispatcher.entrypoints.http.app import ApiServer
from dispatcher.testing import FakeClock
from tests.support.app import TUESDAY_10AM, built_app, settings_for

SUPERVISOR = {"Authorization": "Bearer demo-zhao-min-91c6ab04"}  # zhao-min, district supervisor
OPERATOR = {"Authorization": "Bearer demo-operator-token"}
T = TUESDAY_10AM


def iso(at: datetime) -> str:
    return at.isoformat()


def body(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "area": "c-lh",
        "kind": "replace",
        "staff": "wu-hong",
        "replaces": "huang-lei",
        "start": iso(T - timedelta(hours=1)),
        "end": iso(T + timedelta(hours=2)),
        "reason": "huang-lei is ill",
    }
    base.update(fields)
    return base


@pytest.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    api = http_app(app)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as c:
        yield c


async def on_duty_lh(client: httpx.AsyncClient) -> list[tuple[str, str]]:
    r = await client.get("/oncall", params={"community": "c-lh"}, headers=OPERATOR)
    assert r.status_code == 200, r.text
    [answer] = r.json()["on_duty"]
    assert answer["found_at_level"] == "community"
    return [(p["id"], p["shift_role"]) for p in answer["staff"]]


async def test_only_supervisors_may_see_or_change_overrides(client: httpx.AsyncClient) -> None:
    for method, path, payload in (
        ("GET", "/rota/overrides", None),
        ("POST", "/rota/overrides", body()),
        ("DELETE", "/rota/overrides/ma-lin-leave", None),
    ):
        r = await client.request(method, path, json=payload, headers=OPERATOR)
        assert r.status_code == 403, (method, r.text)
        assert "supervisors" in r.json()["error"]
    r = await client.get("/rota/overrides")
    assert r.status_code == 401


async def test_an_override_applies_at_once_and_its_deletion_too(
    client: httpx.AsyncClient, app: App
) -> None:
    assert await on_duty_lh(client) == [("huang-lei", "primary"), ("ma-lin", "backup")]

    r = await client.post("/rota/overrides", json=body(), headers=SUPERVISOR)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["source"] == "api" and made["created_by"] == "zhao-min"
    assert made["id"].startswith("ov-")

    assert await on_duty_lh(client) == [("wu-hong", "primary"), ("ma-lin", "backup")]
    # Routing reads the same book: the community target now finds wu-hong.
    found = rota.responsible(app.directory, "c-lh", T)
    assert [p.staff.id for p in found.on_duty] == ["wu-hong", "ma-lin"]

    listed = (await client.get("/rota/overrides", headers=SUPERVISOR)).json()["overrides"]
    assert [o["id"] for o in listed] == [made["id"], "ma-lin-leave", "wang-fang-christmas"]

    r = await client.delete(f"/rota/overrides/{made['id']}", headers=SUPERVISOR)
    assert r.status_code == 200, r.text
    assert await on_duty_lh(client) == [("huang-lei", "primary"), ("ma-lin", "backup")]
    r = await client.delete(f"/rota/overrides/{made['id']}", headers=SUPERVISOR)
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"staff": "zhang-wei"}, "staff 'zhang-wei' is not in the data folder"),
        ({"area": "c-xx"}, "area 'c-xx' is not in the data folder"),
        ({"replaces": None}, "a replace names whose duty it takes"),
        ({"end": iso(T - timedelta(hours=2))}, "ends in the past"),
        ({"start": iso(T + timedelta(hours=3))}, "the end must be after the start"),
        ({"kind": "swap"}, "kind"),
        ({"start": "2026-11-24T10:00:00"}, "start"),  # no offset
        ({"role": "standby"}, "role"),
    ],
)
async def test_a_bad_override_is_422_with_a_clear_message(
    client: httpx.AsyncClient, fields: dict[str, Any], message: str
) -> None:
    r = await client.post("/rota/overrides", json=body(**fields), headers=SUPERVISOR)
    assert r.status_code == 422, r.text
    assert message in r.json()["error"]


async def test_an_override_that_empties_the_command_centre_is_refused(
    client: httpx.AsyncClient,
) -> None:
    # Tuesday night: demo-operator and li-qiang (the hotline rotation) only.
    night = {
        "area": "d-jb",
        "kind": "remove",
        "start": iso(T + timedelta(hours=12)),
        "end": iso(T + timedelta(hours=14)),
        "reason": "training",
    }
    r = await client.post(
        "/rota/overrides", json={**night, "staff": "demo-operator"}, headers=SUPERVISOR
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/rota/overrides", json={**night, "staff": "li-qiang"}, headers=SUPERVISOR
    )
    assert r.status_code == 422
    assert "leave the command centre with nobody" in r.json()["error"]


async def test_a_file_override_cannot_be_deleted_through_the_api(
    client: httpx.AsyncClient,
) -> None:
    r = await client.delete("/rota/overrides/ma-lin-leave", headers=SUPERVISOR)
    assert r.status_code == 409
    assert "rota.toml" in r.json()["error"]


async def test_api_overrides_survive_a_restart(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    first = await built_app(settings, FakeClock(T))
    try:
        api = http_app(first)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=api), base_url="http://test/api/v1"
        ) as c:
            r = await c.post("/rota/overrides", json=body(), headers=SUPERVISOR)
            assert r.status_code == 201
    finally:
        await first.aclose()
    second = await built_app(settings, FakeClock(T))
    try:
        found = rota.on_duty(second.directory, "c-lh", T)
        assert [p.staff.id for p in found] == ["wu-hong", "ma-lin"]
    finally:
        await second.aclose()


async def test_the_daemon_refuses_to_start_on_a_stored_override_that_empties_the_centre(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path)
    first = await built_app(settings, FakeClock(T))
    try:
        async with first.sessions.begin() as session:
            for n, who in enumerate(("demo-operator", "li-qiang")):
                await session.execute(
                    insert(db.rota_overrides).values(
                        id=f"ov-test{n}",
                        area_id="d-jb",
                        kind="remove",
                        staff_id=who,
                        start_at=T + timedelta(hours=12),
                        end_at=T + timedelta(hours=13),
                        reason="",
                        created_by="zhao-min",
                        created_at=T,
                    )
                )
    finally:
        await first.aclose()
    with pytest.raises(RotaGapError, match="command centre d-jb has nobody on duty"):
        await built_app(settings, FakeClock(T))


async def test_the_cli_makes_lists_and_deletes_overrides(
    app: App, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no config/eldercall.toml: the default zone, Asia/Shanghai
    monkeypatch.setattr(common, "clock", lambda: app.clock)
    server = ApiServer(http_app(app), "127.0.0.1", 0)
    await server.start()

    async def run(*argv: str, token: str = "demo-zhao-min-91c6ab04") -> tuple[int, str]:
        code = await asyncio.to_thread(
            cli.main, [*argv, "--api", server.base_url, "--token", token]
        )
        out = capsys.readouterr()
        return code, out.out + out.err

    try:
        with capture_logs():  # the server's log lines, kept off the CLI's output
            await _cli_session(run)
    finally:
        await server.stop()


async def _cli_session(run: Any) -> None:
    code, out = await run(
        "rota", "override", "replace", "--area", "c-lh", "--staff", "wu-hong",
        "--replaces", "huang-lei", "--start", "09:00", "--end", "13:00", "--reason", "ill",
    )  # fmt: skip
    assert code == 0, out
    assert "c-lh  replace wu-hong instead of huang-lei  2026-11-24 09:00 - 2026-11-24 13:00" in out
    made = re.findall(r"ov-[0-9a-f]{10}", out)[0]
    code, out = await run("oncall", "--community", "c-lh", token="demo-operator-token")
    assert code == 0 and "wu-hong" in out and "huang-lei" not in out, out
    assert "柳湖社区 (c-lh): found at community level" in out
    code, out = await run("rota", "overrides")
    assert code == 0 and made in out and "ma-lin-leave" in out, out
    code, out = await run("rota", "overrides", token="demo-operator-token")
    assert code == 1 and "only supervisors" in out, out
    code, out = await run("rota", "delete-override", made)
    assert code == 0 and f"deleted {made}" in out, out
    code, out = await run("oncall", "--community", "c-lh", token="demo-operator-token")
    assert "huang-lei" in out, out
