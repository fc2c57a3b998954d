"""The registry on the running app (SQLite and PostgreSQL): changes in force at once
with no restart, a new device's earlier unknown calls linked to its resident, a
resident with an open call kept, a moved device's history, the audit's before and
after, and the database (not the data folder) read at the next start."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.bootstrap import App
from dispatcher.core.calls import Outcome
from dispatcher.core.directory import Staff
from dispatcher.core.registry.rules import Refused, Why
from dispatcher.services.registry import AuditQuery
from dispatcher.testing import FakeChannelSender, FakeClock
from tests.support.app import built_app, event, settings_for

NEW_RESIDENT = {
    "id": "r-9001",
    "name": "钱淑珍",
    "birth_date": "1938-03-02",
    "address": "柳湖路 9 号 3 栋 2 单元 401",
    "community_id": "c-lh",
    "phone": "+8657188880001",
    "medication": "阿司匹林",
    "contacts": [{"name": "钱伟", "relation": "儿子", "phone": "+8613600009001"}],
}


async def press(app: App, device_id: str, ref: str) -> str:
    ack = await app.intake.on_event(
        device_id, f"eldercall/v1/dev/{device_id}/event", event(ref, "emergency")
    )
    assert ack is not None and ack.call_id is not None
    return ack.call_id


def zhao_min(app: App) -> Staff:  # the district's supervisor
    return app.directory.staff["zhao-min"]


async def test_the_seed_is_the_data_folder_with_one_audit_row_each(app: App) -> None:
    records = await app.registry.records()
    assert {r.id for r in records.residents} == set(app.directory.residents)
    assert len(records.devices) == len(app.directory.residents)
    page = await app.registry.audit(zhao_min(app), AuditQuery(kind="resident", limit=500))
    assert page.total == len(app.directory.residents)
    assert {e.action for e in page.items} == {"seed"} and page.items[0].actor == "seed"


async def test_a_resident_and_device_added_while_running_route_the_next_press(
    app: App, clock: FakeClock, fake_sms: FakeChannelSender
) -> None:
    supervisor = zhao_min(app)
    await app.registry.create_resident(supervisor, NEW_RESIDENT)
    await app.registry.register_device(
        supervisor, {"id": "dev-9001", "model": "YK-2", "resident_id": "r-9001"}
    )
    call_id = await press(app, "dev-9001", "n1")
    view = await app.operations.get_call(call_id)
    assert not view.unknown_device and view.community_id == "c-lh"
    assert view.resident is not None and view.resident.address == NEW_RESIDENT["address"]
    # And the escalation reaches her community and, later, her son: no restart.
    for wait in (0, 61, 120):
        clock.advance(wait)
        await app.escalator.run_due()
        while await app.outbox.send_due():
            pass
    assert "+8613600009001" in {m.to for m in fake_sms.sent}


async def test_an_unknown_devices_call_is_linked_when_the_device_is_registered(
    app: App,
) -> None:
    call_id = await press(app, "dev-stranger", "u1")
    before = await app.operations.get_call(call_id)
    assert before.unknown_device and before.resident is None
    supervisor = zhao_min(app)
    await app.registry.create_resident(supervisor, NEW_RESIDENT)
    await app.registry.register_device(supervisor, {"id": "dev-stranger", "resident_id": "r-9001"})
    after = await app.operations.get_call(call_id)
    assert not after.unknown_device and after.community_id == "c-lh"
    assert after.resident is not None and after.resident.id == "r-9001"
    linked = [e for e in after.timeline if e.action == "resident_linked"]
    assert len(linked) == 1 and linked[0].actor == "zhao-min"
    # The next press joins that call, now hers.
    assert await press(app, "dev-stranger", "u2") == call_id


async def test_a_resident_with_an_open_call_is_not_deleted(app: App) -> None:
    supervisor = zhao_min(app)
    call_id = await press(app, "dev-0001", "d1")
    with pytest.raises(Refused) as refused:
        await app.registry.delete_resident(supervisor, "r-0001")
    assert refused.value.why is Why.CONFLICT and call_id in refused.value.message
    assert "r-0001" in app.directory.residents
    assert (await app.registry.records()).residents[0].id == "r-0001"
    await app.operations.resolve(call_id, "zhao-min", "api", Outcome.FALSE_ALARM)
    await app.registry.delete_resident(supervisor, "r-0001")
    assert "r-0001" not in app.directory.residents
    assert "dev-0001" not in app.directory.residents_by_device
    device = app.registry.device(supervisor, "dev-0001")
    assert device.resident_id is None and device.active


async def test_a_moved_device_keeps_its_history(app: App, clock: FakeClock) -> None:
    supervisor = zhao_min(app)
    await app.registry.create_resident(supervisor, NEW_RESIDENT)
    started = clock.now()
    clock.advance(3 * 86400)
    moved = await app.registry.move_device(supervisor, "dev-0001", "r-9001")
    assert moved.resident_id == "r-9001"
    assert app.directory.residents_by_device["dev-0001"].id == "r-9001"
    assert app.directory.residents["r-0001"].device_id == ""
    history = await app.registry.device_history(supervisor, "dev-0001")
    assert [(a.resident_id, a.start, a.end) for a in history] == [
        ("r-0001", started, clock.now()),
        ("r-9001", clock.now(), None),
    ]
    # A device with an open call stays where it is.
    call_id = await press(app, "dev-0001", "m1")
    with pytest.raises(Refused) as refused:
        await app.registry.move_device(supervisor, "dev-0001", "r-0001")
    assert refused.value.why is Why.CONFLICT and call_id in str(refused.value)
    with pytest.raises(Refused):
        await app.registry.retire_device(supervisor, "dev-0001")


async def test_every_change_is_audited_with_who_when_before_and_after(
    app: App, clock: FakeClock
) -> None:
    supervisor = zhao_min(app)
    was = app.directory.residents["r-0001"].address
    clock.advance(300)
    await app.registry.update_resident(
        supervisor, "r-0001", {"address": "柳湖路 1 号 新楼", "id_card": "110101194105301234"}
    )
    page = await app.registry.audit(supervisor, AuditQuery(record_id="r-0001"))
    change = page.items[0]
    assert (change.actor, change.at, change.action) == ("zhao-min", clock.now(), "update")
    assert change.before is not None and change.after is not None
    assert change.before["address"] == was and change.before["id_card"] == "310105********1228"
    assert change.after["address"] == "柳湖路 1 号 新楼" != change.before["address"]
    assert change.after["id_card"] == "110101********1234"
    assert app.directory.residents["r-0001"].address == "柳湖路 1 号 新楼"
    await app.registry.retire_device(supervisor, "dev-0002")
    retired = (await app.registry.audit(supervisor, AuditQuery(record_id="dev-0002"))).items[0]
    assert retired.action == "retire" and retired.before["resident_id"] == "r-0002"  # type: ignore[index]
    assert retired.after["resident_id"] is None  # type: ignore[index]


async def test_a_street_supervisor_manages_her_street_only_and_staff_only_read(
    app: App,
) -> None:
    sun_li = app.directory.staff["sun-li"]  # 河西: c-lh and c-qs
    await app.registry.update_resident(sun_li, "r-0001", {"mobility": "walks with a stick"})
    other = next(r for r in app.directory.residents.values() if r.community_id == "c-ml")
    with pytest.raises(Refused) as outside:
        await app.registry.update_resident(sun_li, other.id, {"mobility": "x"})
    assert outside.value.why is Why.NOT_FOUND  # not even seen
    with pytest.raises(Refused) as moved_out:
        await app.registry.update_resident(sun_li, "r-0001", {"community_id": "c-ml"})
    assert moved_out.value.why is Why.FORBIDDEN
    ma_lin = app.directory.staff["ma-lin"]  # 柳湖 community staff
    assert {r.community_id for r in app.registry.residents(ma_lin, limit=500).items} == {"c-lh"}
    with pytest.raises(Refused) as reader:
        await app.registry.update_resident(ma_lin, "r-0001", {"mobility": "x"})
    assert reader.value.why is Why.FORBIDDEN
    with pytest.raises(Refused) as bad:
        await app.registry.update_resident(sun_li, "r-0001", {"phone": "12345"})
    assert bad.value.why is Why.INVALID and bad.value.field == "phone"


async def test_a_new_staff_members_token_works_at_once_and_the_rota_keeps_its_people(
    app: App,
) -> None:
    supervisor = zhao_min(app)
    token = "new-operator-token-0001"
    await app.registry.create_staff(
        supervisor,
        {
            "id": "new-op",
            "name": "新值班员",
            "area_id": "d-jb",
            "role": "operator",
            "phone": "+8613800009999",
            "api_token": token,
        },
    )
    found = app.operations.staff_for_token(token)
    assert found is not None and found.id == "new-op"
    await app.registry.delete_staff(supervisor, "new-op")
    assert app.operations.staff_for_token(token) is None
    with pytest.raises(Refused) as on_rota:
        await app.registry.delete_staff(supervisor, "huang-lei")
    assert on_rota.value.why is Why.CONFLICT


async def test_the_next_start_reads_the_database_not_the_data_folder(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    settings = settings_for(tmp_path, database={"url": database_url})
    first = await built_app(settings, clock)
    try:
        supervisor = first.directory.staff["zhao-min"]
        await first.registry.create_resident(supervisor, NEW_RESIDENT)
        await first.registry.register_device(
            supervisor, {"id": "dev-9001", "resident_id": "r-9001"}
        )
    finally:
        await first.aclose()
    again = await built_app(settings, clock)
    try:
        assert again.directory.residents_by_device["dev-9001"].id == "r-9001"
        assert again.directory.residents["r-9001"].contacts[0].name == "钱伟"
        assert again.directory.schedule_by_area  # the rota files read against it
        seeds = await again.registry.audit(
            again.directory.staff["zhao-min"], AuditQuery(kind="area")
        )
        assert seeds.total == len(again.directory.areas)  # seeded once, not twice
    finally:
        await again.aclose()
