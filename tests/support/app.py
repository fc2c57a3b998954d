"""Building the dispatcher in-process for tests: a real database, fake clock, fake SMS.

The ``app`` fixture runs each test twice, on SQLite (the default) and on PostgreSQL
(production), with ids ``[sqlite]`` and ``[postgres]``."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dispatcher.adapters.db import schema as db
from dispatcher.bootstrap import App, build
from dispatcher.config import Settings, load_settings
from dispatcher.core.contact_methods import Channel
from dispatcher.services.channels import Channels
from dispatcher.testing import FakeChannelSender, FakeClock
from tests.support.ports import free_port, unique_client_id
from tests.support.postgres import migrated
from tests.support.threads import in_own_loop

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "config" / "data"
# Tuesday 24 November 2026, 10:00 in Shanghai: the community's day staff are on duty.
TUESDAY_10AM = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
# The hotline at that time, the c-lh community's staff, the s-hx street supervisor.
HOTLINE = {"+8613800138000", "+8613916200101", "+8613916200104"}
COMMUNITY_LH = {"+8613761400301", "+8613761400302"}
SUPERVISOR_HX = {"+8613817300201"}
R0001_CONTACTS = {"+8613601110001", "+8613601110002"}


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'eldercall.db'}"


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    # Loopback ports nobody listens on and a client id of its own: a test that runs the
    # daemon never reaches a default broker, binds a default port or takes a real session.
    base: dict[str, Any] = {
        "mqtt": {"url": f"mqtt://127.0.0.1:{free_port()}", "client_id": unique_client_id()},
        "http": {"listen": f"127.0.0.1:{free_port()}"},
        "database": {"url": sqlite_url(tmp_path)},
        "data": {"dir": str(DATA), "timezone": "Asia/Shanghai"},
        # No time budget per escalator transaction: a test's one run_due() fires every
        # step due, as it asserts, however loaded the machine (the budget itself is
        # tested in tests/services/test_escalator_batches.py).
        # The first step fired by the poll as every later one, unless a test asks for
        # it in the intake's transaction (tests/services/test_first_step_in_intake.py).
        "escalation": {"poll_interval_s": 0.05, "step_budget_s": 0, "first_step_in_intake": False},
    }
    for key, value in overrides.items():  # one level deep: mqtt={"url": ...} keeps the id
        merge = isinstance(value, dict) and isinstance(base.get(key), dict)
        base[key] = {**base[key], **value} if merge else value
    return load_settings(None, **base)


async def built_app(settings: Settings, clock: FakeClock, *senders: FakeChannelSender) -> App:
    """The daemon with ``senders`` (fakes), and a fresh fake for each channel they leave out."""
    given = {s.channel: s for s in senders}
    channels = Channels(given.get(c.value) or FakeChannelSender(c.value) for c in Channel)
    return await build(settings, clock=clock, channels=channels)


def event(ref: str, type_: str, **fields: Any) -> bytes:
    return json.dumps({"ref": ref, "type": type_, **fields}).encode()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(TUESDAY_10AM)


@pytest.fixture
def fake_sms() -> FakeChannelSender:
    return FakeChannelSender(Channel.SMS.value)


@pytest.fixture
def fake_voice() -> FakeChannelSender:
    return FakeChannelSender(Channel.VOICE.value)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated to the head once per session, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "eldercall.db"
    in_own_loop(lambda: migrated(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database of one test, on each backend in turn, its schema at the head (a copy
    of one migrated once: the migrations themselves are tested on ``empty_database_url``).

    A sync fixture, so that it may ask for the PostgreSQL one only when it is needed
    (see tests/support/postgres.py)."""
    if request.param == "postgres":
        return str(request.getfixturevalue("migrated_postgres_url"))
    shutil.copyfile(request.getfixturevalue("migrated_sqlite"), tmp_path / "eldercall.db")
    return sqlite_url(tmp_path)


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend in turn, for the tests of the migrations."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return sqlite_url(tmp_path)


@pytest.fixture
async def app(
    tmp_path: Path,
    database_url: str,
    clock: FakeClock,
    fake_sms: FakeChannelSender,
    fake_voice: FakeChannelSender,
) -> AsyncIterator[App]:
    settings = settings_for(tmp_path, database={"url": database_url})
    built = await built_app(settings, clock, fake_sms, fake_voice)
    yield built
    await built.aclose()


async def snapshot(app: App) -> dict[str, list[Any]]:
    """Every table a webhook or a replayed request could change, row by row: equal
    snapshots before and after mean the request changed nothing."""
    out = {}
    async with app.sessions() as s:
        for table in (db.calls, db.timeline, db.sms_outbox, db.device_outbox, db.reply_codes):
            rows = await s.execute(select(table).order_by(*table.primary_key.columns))
            out[table.name] = [tuple(r) for r in rows]
    return out
