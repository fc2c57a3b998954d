"""rota.toml and policies.toml reloaded while the daemon runs (issue #10): a changed
file is checked as at start and swapped in; a bad one leaves the running version in
force, says why in the log, ``/health/data`` and ``/metrics``. Through the service as
bootstrap wires it, on a copy of the example data folder, time from the FakeClock;
the poll called directly (one test lets the daemon's own loop find the change)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from devices.protocol import AckResult
from dispatcher.adapters.db import schema as db
from dispatcher.adapters.files.watch import FileWatch
from dispatcher.bootstrap import App
from dispatcher.core.rota import on_duty
from dispatcher.core.rota.model import OverrideKind
from dispatcher.services.data_reload import DataReloader
from dispatcher.services.rota_overrides import OverrideRequest
from dispatcher.testing import FakeClock
from tests.support.app import DATA, TUESDAY_10AM, built_app, event, settings_for
from tests.support.scrape import http_client, scrape

TOPIC = "eldercall/v1/dev/{}/event"


@dataclass
class World:
    app: App
    data: Path
    clock: FakeClock

    @property
    def reloader(self) -> DataReloader:
        assert self.app.reloader is not None
        return self.app.reloader

    def edit(self, name: str, old: str, new: str) -> None:
        path = self.data / name
        text = path.read_text(encoding="utf-8")
        assert old in text, (name, old)
        path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture
async def world(tmp_path: Path, clock: FakeClock) -> AsyncIterator[World]:
    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    settings = settings_for(tmp_path, data={"dir": str(data), "timezone": "Asia/Shanghai"})
    app = await built_app(settings, clock)
    yield World(app, data, clock)
    await app.aclose()


def hotline_ids(app: App, at: datetime = TUESDAY_10AM) -> set[str]:
    return {d.staff.id for d in on_duty.hotline(app.directory, at)}


async def stored_policy_delays(app: App, call_id: str) -> list[int]:
    async with app.sessions() as s:
        policy = await s.scalar(select(db.calls.c.policy).where(db.calls.c.id == call_id))
    return [step.delay_s for step in policy.steps]


async def press(app: App, device_id: str, ref: str) -> str:
    ack = await app.intake.on_event(device_id, TOPIC.format(device_id), event(ref, "emergency"))
    assert ack is not None and ack.result is AckResult.OK and ack.call_id
    return ack.call_id


async def test_nothing_changed_nothing_reloaded(world: World) -> None:
    assert world.reloader.poll() == []
    # Touched but the same text (an editor's save, a checkout): not a change.
    path = world.data / "policies.toml"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert world.reloader.poll() == []


async def test_a_new_policies_file_applies_to_calls_opened_after_it(world: World) -> None:
    before = await press(world.app, "dev-0001", "e1")
    world.edit("policies.toml", "{ delay_s = 60, targets", "{ delay_s = 30, targets")
    world.clock.advance(7)
    assert world.reloader.poll() == ["policies.toml"]
    status = world.reloader.status()["policies.toml"]
    assert status.error is None and status.reloads == 1 and status.loaded_at == world.clock.now()

    after = await press(world.app, "dev-0002", "e2")
    assert await stored_policy_delays(world.app, after) == [0, 30, 180]
    # The call in progress keeps the policy it opened with.
    assert await stored_policy_delays(world.app, before) == [0, 60, 180]


async def test_a_bad_policies_file_keeps_the_running_one_and_says_why(world: World) -> None:
    world.edit("policies.toml", '"hotline", "community"]', '"hotline", "comunity"]')
    assert world.reloader.poll() == []
    status = world.reloader.status()["policies.toml"]
    assert status.error is not None and status.failures == 1
    assert "policies.toml:" in status.error and "comunity" in status.error
    call = await press(world.app, "dev-0001", "e1")
    assert await stored_policy_delays(world.app, call) == [0, 60, 180]

    async with http_client(world.app) as client:
        r = await client.get("/health/data")
        assert r.status_code == 503
        body = r.json()
        assert body["checks"] == {"rota.toml": "ok", "policies.toml": "refused"}
        assert "comunity" in body["files"]["policies.toml"]["error"]
        figures = await scrape(client)
        assert figures.value("eldercall_data_file_refused", file="policies.toml") == 1.0
        assert figures.value("eldercall_data_file_refused", file="rota.toml") == 0.0

        # Asked again without a change: the same error, not one more failure.
        assert world.reloader.poll() == []
        assert world.reloader.status()["policies.toml"].failures == 1
        # Fixed: in force, the error gone.
        world.edit("policies.toml", '"hotline", "comunity"]', '"hotline", "community"]')
        world.edit("policies.toml", "{ delay_s = 60, targets", "{ delay_s = 45, targets")
        assert world.reloader.poll() == ["policies.toml"]
        r = await client.get("/health/data")
        assert r.status_code == 200 and "error" not in r.json()["files"]["policies.toml"]
    call = await press(world.app, "dev-0002", "e2")
    assert await stored_policy_delays(world.app, call) == [0, 45, 180]


async def test_a_new_rota_is_in_force_at_once_and_keeps_the_api_overrides(world: World) -> None:
    assert "demo-operator" in hotline_ids(world.app)
    supervisor = world.app.directory.staff["zhao-min"]
    made = await world.app.overrides.create(
        supervisor,
        OverrideRequest(
            area_id="d-jb",
            kind=OverrideKind.ADD,
            staff_id="chen-jing",
            start=datetime(2026, 11, 24, 0, 0, tzinfo=UTC),
            end=datetime(2026, 11, 25, 0, 0, tzinfo=UTC),
            reason="extra hands",
        ),
    )
    world.edit("rota.toml", 'staff = "demo-operator"', 'staff = "emma-liu"')
    assert world.reloader.poll() == ["rota.toml"]
    on = hotline_ids(world.app)
    assert "demo-operator" not in on and {"emma-liu", "chen-jing"} <= on
    assert world.app.directory.overrides.get(made.id) is not None
    # Everyone holds the same directory: the API's answer moved too.
    [district] = await world.app.operations.on_duty(TUESDAY_10AM, "d-jb")
    assert "demo-operator" not in {p.id for p in district.staff}


async def test_a_reloaded_rota_and_a_registry_change_keep_each_other(world: World) -> None:
    """The rota file and the registry both put a new directory in force through one
    holder: a registry change after a reload keeps the new rota, and a staff member
    added through the registry can be named by the next rota file."""
    world.edit("rota.toml", 'staff = "demo-operator"', 'staff = "emma-liu"')
    assert world.reloader.poll() == ["rota.toml"]
    admin = world.app.directory.staff["zhao-min"]
    await world.app.registry.create_staff(
        admin,
        {"id": "gu-wei", "name": "顾伟", "phone": "+8613700000777", "area_id": "d-jb"}
        | {"role": "operator"},
    )
    on = hotline_ids(world.app)
    assert "emma-liu" in on and "demo-operator" not in on
    world.edit("rota.toml", 'staff = "emma-liu"', 'staff = "gu-wei"')
    assert world.reloader.poll() == ["rota.toml"], world.reloader.status()["rota.toml"].error
    assert "gu-wei" in hotline_ids(world.app)
    assert "gu-wei" in world.app.directory.staff


async def test_a_bad_rota_file_keeps_the_running_rota(world: World) -> None:
    world.edit("rota.toml", 'staff = "demo-operator"', 'staff = "nobody-at-all"')
    assert world.reloader.poll() == []
    status = world.reloader.status()["rota.toml"]
    assert status.error is not None and "rota.toml:" in status.error
    assert "nobody-at-all" in status.error
    assert "demo-operator" in hotline_ids(world.app)


async def test_a_rota_that_leaves_the_command_centre_empty_is_refused(world: World) -> None:
    # The hotline rotation and the demo operator both gone at weekends.
    world.edit("rota.toml", 'days = "mon-sun"', 'days = "mon-fri"')
    world.edit("rota.toml", 'days = "mon-sun"', 'days = "mon-fri"')
    assert world.reloader.poll() == []
    error = world.reloader.status()["rota.toml"].error or ""
    assert "command centre" in error and "nobody on duty" in error
    saturday_noon = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
    assert "demo-operator" in hotline_ids(world.app, saturday_noon)


async def test_a_rota_without_a_rotation_the_policies_name_is_refused(world: World) -> None:
    world.edit(
        "policies.toml",
        '{ delay_s = 60, targets = ["hotline", "community"] }',
        '{ delay_s = 60, targets = ["hotline", "community", "rotation:c-lh-backup"] }',
    )
    assert world.reloader.poll() == ["policies.toml"]
    world.edit("rota.toml", 'rotation = "c-lh-backup"', 'staff = "ma-lin"')
    world.edit("rota.toml", 'id = "c-lh-backup"', 'id = "c-lh-spare"')
    assert world.reloader.poll() == []
    error = world.reloader.status()["rota.toml"].error or ""
    assert "c-lh-backup" in error and "policies" in error
    assert "c-lh-backup" in world.app.directory.rotations


async def test_a_file_gone_keeps_the_running_version(world: World) -> None:
    (world.data / "policies.toml").unlink()
    (world.data / "rota.toml").rename(world.data / "rota.toml.saving")
    assert world.reloader.poll() == []
    status = world.reloader.status()
    assert "no such file" in (status["policies.toml"].error or "")
    assert "no such file" in (status["rota.toml"].error or "")
    assert "demo-operator" in hotline_ids(world.app)
    (world.data / "rota.toml.saving").rename(world.data / "rota.toml")
    # Back: loaded again (the same rota), and no longer said to be refused.
    assert world.reloader.poll() == ["rota.toml"]
    assert world.reloader.status()["rota.toml"].error is None


async def test_the_daemon_loop_finds_the_change(world: World) -> None:
    stop = asyncio.Event()
    loop = asyncio.ensure_future(world.reloader.run(0.01, stop))
    try:
        world.edit("rota.toml", 'staff = "demo-operator"', 'staff = "emma-liu"')
        async with asyncio.timeout(5):
            while world.reloader.status()["rota.toml"].reloads == 0:  # noqa: ASYNC110  # a poller
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await loop
    assert "demo-operator" not in hotline_ids(world.app)


def test_the_watch_sees_content_not_touches(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text("a = 1\n")
    watch = FileWatch({"f": path})
    assert watch.changed() == []
    path.write_text("a = 1\n")  # rewritten, same bytes
    assert watch.changed() == []
    path.write_text("a = 2\n")  # the same size, new bytes
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 1))
    assert watch.changed() == ["f"]
    assert watch.changed() == []
    path.unlink()
    assert watch.changed() == ["f"]
    path.write_text("a = 2\n")
    assert watch.changed() == ["f"]
