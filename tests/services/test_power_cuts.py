"""A building-wide power cut: many power_lost within a minute in one building (or
community) is ONE grouped alert; later ones join it, restorals clear it. Fake clock,
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from dispatcher.adapters.db import schema as db
from dispatcher.bootstrap import App
from dispatcher.core.calls import CallKind
from dispatcher.services.intake import DeviceMessage
from dispatcher.testing import FakeChannelSender, FakeClock
from tests.services.fleet_data import NEIGHBOURS, TECHNICIAN_PHONE, fleet_data
from tests.support.app import built_app, event, settings_for

TOPIC = "eldercall/v1/dev/x/event"
BUILDING = ["dev-0001", *NEIGHBOURS]  # six devices of 柳湖路88弄3号


@pytest.fixture
async def fleet_app(
    tmp_path: Path, database_url: str, clock: FakeClock, fake_sms: FakeChannelSender
) -> AsyncIterator[App]:
    settings = settings_for(
        tmp_path,
        database={"url": database_url},
        data={"dir": str(fleet_data(tmp_path)), "timezone": "Asia/Shanghai"},
        devices={"power_cut_building_devices": 3, "power_cut_community_devices": 9},
    )
    app = await built_app(settings, clock, fake_sms)
    yield app
    await app.aclose()


async def technical(app: App) -> list[tuple[str, str | None, str]]:
    c = db.calls.c
    async with app.sessions() as s:
        rows = await s.execute(
            select(c.device_id, c.alert_key, c.state).where(c.kind == CallKind.TECHNICAL.value)
        )
        return sorted((r.device_id, r.alert_key, r.state) for r in rows)


async def lose(app: App, device: str, ref: str = "p1") -> str | None:
    ack = await app.intake.on_event(device, TOPIC, event(ref, "power_lost"))
    assert ack is not None and ack.result == "ok"
    return ack.call_id


async def test_three_in_a_building_within_a_minute_are_one_alert_that_others_join(
    fleet_app: App, clock: FakeClock
) -> None:
    first = await lose(fleet_app, "dev-0001")
    clock.advance(20)
    await lose(fleet_app, "dev-0901")
    clock.advance(20)
    group_id = await lose(fleet_app, "dev-0902")  # the third within the minute
    assert group_id is not None and group_id != first
    calls = await technical(fleet_app)
    open_ = [c for c in calls if c[2] == "open"]
    # One open alert for the building; the two individual ones folded into it.
    assert len(open_) == 1 and open_[0][1] == "power_cut"
    assert open_[0][0].startswith("power-cut.b.")
    assert sorted(c[1] for c in calls if c[2] == "resolved") == ["power_lost", "power_lost"]

    clock.advance(600)  # later ones join the cut, however late
    assert await lose(fleet_app, "dev-0903") == group_id
    view = await fleet_app.operations.get_call(group_id)
    assert "4 devices" in view.detail and "dev-0903" in view.detail
    assert "江滨区柳湖路88弄3号" in view.detail
    actions = [t.action for t in view.timeline]
    assert actions.count("device_joined") == 1 and "power_cut" in actions
    folded = await fleet_app.operations.get_call(first or "")
    assert folded.state == "resolved" and group_id in folded.timeline[-1].detail

    # Restorals: noted, and the cut clears when the last device has power again.
    for n, device in enumerate(["dev-0001", "dev-0901", "dev-0902"]):
        ack = await fleet_app.intake.on_event(device, TOPIC, event(f"r{n}", "power_restored"))
        assert ack is not None and ack.call_id is not None
    assert (await fleet_app.operations.get_call(group_id)).state == "open"
    await fleet_app.intake.on_event("dev-0903", TOPIC, event("r9", "power_restored"))
    done = await fleet_app.operations.get_call(group_id)
    assert done.state == "resolved"
    assert [t.action for t in done.timeline].count("power_restored") == 4


async def test_two_in_a_building_or_three_spread_out_stay_single_alerts(
    fleet_app: App, clock: FakeClock
) -> None:
    await lose(fleet_app, "dev-0001")
    clock.advance(30)
    await lose(fleet_app, "dev-0901")
    clock.advance(61)  # the third comes after the first left the window
    await lose(fleet_app, "dev-0902")
    keys = [c[1] for c in await technical(fleet_app) if c[2] == "open"]
    assert keys == ["power_lost"] * 3


async def test_a_cut_arriving_in_one_batch_opens_one_alert_and_pages_once(
    fleet_app: App, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    batch = [DeviceMessage.read(d, TOPIC, event("p1", "power_lost")) for d in BUILDING]
    acks = await fleet_app.intake.on_batch(batch)
    ids = {a.call_id for a in acks if a is not None}
    calls = await technical(fleet_app)
    assert [c[1] for c in calls if c[2] == "open"] == ["power_cut"]
    assert len(ids) == 3  # the first two's own alerts (folded), then the cut for the rest
    await fleet_app.escalator.run_due()
    await fleet_app.outbox.send_due()
    # The maintenance technician on duty (Tuesday 10:00), once for the cut.
    [to_technician] = fake_sms.to(TECHNICIAN_PHONE)
    assert "多台设备同时断电" in to_technician.body and "柳湖路88弄3号" in to_technician.body
    async with fleet_app.sessions() as s:
        lost = await s.scalars(
            select(db.device_links.c.device_id).where(db.device_links.c.power_lost_at.is_not(None))
        )
        assert sorted(lost) == BUILDING


async def test_many_in_one_community_are_one_community_alert(
    fleet_app: App, clock: FakeClock
) -> None:
    # Ten c-lh devices of different buildings (dev-0001 .. dev-0010), none grouped by
    # building but nine within a minute in the community.
    devices = [f"dev-{n:04d}" for n in range(2, 11)]
    for device in devices:
        await lose(fleet_app, device)
        clock.advance(5)
    open_ = [c for c in await technical(fleet_app) if c[2] == "open"]
    assert [c[1] for c in open_] == ["power_cut"]
    assert open_[0][0].startswith("power-cut.c.")


async def test_a_building_s_devices_follow_the_registry(fleet_app: App, clock: FakeClock) -> None:
    """Residents and devices registered while the daemon runs are in their building at
    once: three of them losing power within the minute are one grouped alert."""
    admin = fleet_app.directory.staff["zhao-min"]
    new = ["dev-0981", "dev-0982", "dev-0983"]
    for n, device in enumerate(new, start=1):
        resident = f"r-098{n}"
        await fleet_app.registry.create_resident(
            admin,
            {
                "id": resident,
                "name": f"新邻居{n}",
                "birth_date": "1941-02-03",
                "address": f"江滨区柳湖路90弄1号{n}02室",
                "community_id": "c-lh",
                "building": "1号",
                "room": f"{n}02",
            },
        )
        await fleet_app.registry.register_device(admin, {"id": device, "resident_id": resident})
    for device in new:
        clock.advance(10)
        group_id = await lose(fleet_app, device)
    open_ = [c for c in await technical(fleet_app) if c[2] == "open"]
    assert group_id is not None
    assert len(open_) == 1 and open_[0][1] == "power_cut"
    assert open_[0][0].startswith("power-cut.b.")  # the building's, not a device's
