"""The rota's iCalendar feeds over HTTP: feed tokens (not API tokens), who may read
what, and feeds that read back as the same shifts as the rota."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from structlog.testing import capture_logs

from dispatcher.adapters.files.directory_files import load_directory
from dispatcher.bootstrap import App, http_app
from dispatcher.core.rota import ical
from dispatcher.core.rota import on_duty as rota
from dispatcher.entrypoints.cli import main as cli
from dispatcher.entrypoints.http.app import ApiServer, create_app
from dispatcher.services.calendar_feeds import CalendarFeeds, feed_token
from dispatcher.testing import FakeClock

DATA = Path(__file__).resolve().parents[2] / "config" / "data"
OPERATOR = {"Authorization": "Bearer demo-wang-fang-3f9c1a7e"}  # wang-fang, operator


@pytest.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    api = http_app(app)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def token_of(app: App, staff_id: str) -> str:
    found = feed_token(app.directory.staff[staff_id])
    assert found is not None
    return found


def window(app: App) -> tuple[datetime, datetime]:
    return CalendarFeeds(app.directory, app.clock).window()


def read_back(app: App, data: bytes) -> set[tuple[str | None, str, object, object]]:
    start, end = window(app)
    shifts = ical.import_calendar(
        data,
        window_start=start,
        window_end=end,
        default_timezone="Asia/Shanghai",
    )
    return {(s.staff_id, s.role, s.start, s.end) for s in shifts}


def expected(found: list[rota.Interval]) -> set[tuple[str | None, str, object, object]]:
    return {(i.staff_id, i.role, i.start, i.end) for i in found}


def test_the_feed_token_is_not_the_api_token_and_follows_it(app: App) -> None:
    staff = app.directory.staff["ma-lin"]
    token = feed_token(staff)
    assert token is not None and len(token) == 32
    assert staff.api_token is not None and token not in staff.api_token
    assert token != token_of(app, "huang-lei")


def test_a_feed_keeps_its_uids_all_day(app: App) -> None:
    """Calendar apps refetch every hour or so: the window moves by whole days, so a
    shift cut by it keeps its UID (a new UID would show the shift twice)."""
    feeds = CalendarFeeds(app.directory, app.clock)
    morning = feeds.area_feed("d-jb")
    assert isinstance(app.clock, FakeClock)
    app.clock.advance(3 * 3600 + 17)
    afternoon = feeds.area_feed("d-jb")

    def uids(data: bytes) -> set[bytes]:
        return {line for line in data.splitlines() if line.startswith(b"UID:")}

    assert uids(morning) == uids(afternoon) and len(uids(morning)) > 10


async def test_an_area_feed_reads_back_as_the_rota(app: App, client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/rota/c-lh.ics", params={"token": token_of(app, "wu-hong")})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/calendar; charset=utf-8"
    assert r.headers["content-disposition"] == 'inline; filename="c-lh.ics"'
    want = expected(rota.intervals(app.directory, "c-lh", *window(app)))
    assert len(want) > 50
    assert read_back(app, r.content) == want


async def test_a_person_feed_reads_back_as_their_shifts(
    app: App, client: httpx.AsyncClient
) -> None:
    want = expected(rota.person_intervals(app.directory, "ma-lin", *window(app)))
    assert want
    for reader in ("ma-lin", "zhao-min"):  # herself, a supervisor
        r = await client.get(
            "/api/v1/staff/ma-lin/shifts.ics", params={"token": token_of(app, reader)}
        )
        assert r.status_code == 200, r.text
        assert read_back(app, r.content) == want


async def test_feeds_refuse_bad_tokens_and_other_peoples_shifts(
    app: App, client: httpx.AsyncClient
) -> None:
    api_token = app.directory.staff["ma-lin"].api_token
    for params in ({}, {"token": "0" * 32}, {"token": api_token}):
        r = await client.get("/api/v1/rota/c-lh.ics", params=params)
        assert r.status_code == 401, params
        r = await client.get("/api/v1/staff/ma-lin/shifts.ics", params=params)
        assert r.status_code == 401, params
    r = await client.get(
        "/api/v1/staff/ma-lin/shifts.ics", params={"token": token_of(app, "huang-lei")}
    )
    assert r.status_code == 403
    good = {"token": token_of(app, "zhao-min")}
    assert (await client.get("/api/v1/rota/c-zz.ics", params=good)).status_code == 404
    assert (await client.get("/api/v1/staff/nobody/shifts.ics", params=good)).status_code == 404


@pytest.mark.parametrize(
    "token", ["zhao-min\u00e9", "\u5bc6" * 32, "0" * 31 + "\u00e9", "\x00", "%ff%fe"]
)
async def test_a_token_with_non_ascii_or_control_characters_is_unknown_not_a_500(
    app: App, client: httpx.AsyncClient, token: str
) -> None:
    # compare_digest refuses a str with non-ASCII characters: the feed must not crash.
    for path in ("/api/v1/rota/c-lh.ics", "/api/v1/staff/ma-lin/shifts.ics"):
        r = await client.get(path, params={"token": token})
        assert r.status_code == 401, (path, token, r.text)
    raw = await client.get("/api/v1/rota/c-lh.ics?token=%C3%A9%FF")  # not even UTF-8
    assert raw.status_code == 401, raw.text


async def test_my_calendars_give_urls_that_work_and_the_token_is_not_logged(
    app: App, client: httpx.AsyncClient
) -> None:
    assert (await client.get("/api/v1/me/calendars")).status_code == 401
    r = await client.get("/api/v1/me/calendars", headers=OPERATOR)
    assert r.status_code == 200, r.text
    found = r.json()
    token = token_of(app, "wang-fang")
    assert found["shifts"] == f"http://test/api/v1/staff/wang-fang/shifts.ics?token={token}"
    assert {s["area_id"] for s in found["schedules"]} == set(app.directory.areas)
    with capture_logs() as logs:
        for url in [found["shifts"], *(s["url"] for s in found["schedules"])]:
            parts = urlsplit(url)
            got = await client.get(f"{parts.path}?{parts.query}")
            assert got.status_code == 200, (url, got.text)
            assert got.content.startswith(b"BEGIN:VCALENDAR")
    assert logs and token not in repr(logs)


async def test_feeds_answer_503_when_not_wired(app: App) -> None:
    api = create_app(app.operations, app.clock)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.get("/api/v1/rota/c-lh.ics", params={"token": token_of(app, "ma-lin")})
    assert r.status_code == 503


def test_the_public_url_is_the_base_of_the_feed_urls(app: App) -> None:
    feeds = CalendarFeeds(app.directory, app.clock, "https://centre.example.org/")
    urls = feeds.urls(app.directory.staff["ma-lin"], "http://ignored")
    assert str(urls["shifts"]).startswith("https://centre.example.org/api/v1/staff/ma-lin/")


async def test_the_cli_prints_urls_a_calendar_app_can_fetch(
    app: App, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no config/eldercall.toml
    server = ApiServer(http_app(app), "127.0.0.1", 0)
    await server.start()
    try:
        with capture_logs():
            code = await asyncio.to_thread(
                cli.main,
                ["calendars", "--api", server.base_url, "--token", "demo-ma-lin-b81f7d25"],
            )
            out = capsys.readouterr().out
            assert code == 0, out
            token = token_of(app, "ma-lin")
            mine = f"{server.base_url}/api/v1/staff/ma-lin/shifts.ics?token={token}"
            assert f"your shifts: {mine}" in out
            assert f"c-lh (柳湖社区): {server.base_url}/api/v1/rota/c-lh.ics?token={token}" in out
            async with httpx.AsyncClient(trust_env=False) as plain:  # no bearer header
                r = await plain.get(mine)
        assert r.status_code == 200, r.text
        assert read_back(app, r.content)
    finally:
        await server.stop()


@pytest.mark.parametrize("zone", ["Europe/London", "Asia/Shanghai"])
def test_a_feed_across_daylight_saving_reads_back_as_the_rota(tmp_path: Path, zone: str) -> None:
    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    rota_toml = data / "rota.toml"
    rota_toml.write_text(
        f'timezone = "{zone}"\n' + rota_toml.read_text(encoding="utf-8"), encoding="utf-8"
    )
    directory = load_directory(data)
    clock = FakeClock(datetime(2027, 3, 20, 12, 0, tzinfo=UTC))  # the spring change is ahead
    feeds = CalendarFeeds(directory, clock)
    start, end = feeds.window()
    for area in ("d-jb", "c-lh"):
        data_ics = feeds.area_feed(area)
        assert f"TZID:{zone}".encode() in data_ics
        shifts = ical.import_calendar(
            data_ics, window_start=start, window_end=end,
            default_timezone=zone,
        )  # fmt: skip
        got = {(s.staff_id, s.role, s.start, s.end) for s in shifts}
        assert got == expected(rota.intervals(directory, area, start, end))
