"""The area scope and the withheld notes through the operator API, in process, on the
real database (both backends) with the example data's staff and their tokens
(config/data/staff.csv): each sees and acts on the calls of their area and below,
another area's call is a 404 like a missing one, community duty staff get no notes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from dispatcher.bootstrap import App
from dispatcher.core.directory import Role, Staff
from dispatcher.entrypoints.http.app import create_app
from dispatcher.entrypoints.http.deps import Refused, _supervisor
from dispatcher.services import operations
from dispatcher.testing import FakeClock
from tests.support.app import event
from tests.support.fake_ops import FakeOperations, sample_ops

OPERATOR = {"Authorization": "Bearer demo-operator-token"}  # district hotline (d-jb)
SUN_LI = {"Authorization": "Bearer demo-sun-li-2a7fe859"}  # 河西 street supervisor (s-hx)
WU_HONG = {"Authorization": "Bearer demo-wu-hong-47d0e3c8"}  # 青石 community staff (c-qs)
MA_LIN = {"Authorization": "Bearer demo-ma-lin-b81f7d25"}  # 柳湖 community staff (c-lh)
NOTE = "硝苯地平"  # in 张桂兰's (r-0001, dev-0001, c-lh) notes and medication
KEY_SAFE = "2580"  # her key safe's code
WITHHELD = ["notes", "conditions", "medication", "mobility", "key_safe", "access_notes"]


@pytest.fixture
async def api(app: App) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(app.operations, app.clock))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client


async def open_call(app: App, device_id: str, ref: str = "e1") -> str:
    ack = await app.intake.on_event(
        device_id, f"eldercall/v1/dev/{device_id}/event", event(ref, "emergency")
    )
    assert ack is not None and ack.call_id is not None
    return ack.call_id


async def listed(api: httpx.AsyncClient, headers: dict[str, str]) -> set[str]:
    r = await api.get("/api/v1/calls", params={"state": "all"}, headers=headers)
    assert r.status_code == 200, r.text
    return {c["call_id"] for c in r.json()["calls"]}


@pytest.fixture
async def calls(app: App) -> dict[str, str]:
    """One call in each of three communities (two of 河西, one of 东桥) and one from a
    device nobody is registered for."""
    return {
        "c-lh": await open_call(app, "dev-0001"),
        "c-qs": await open_call(app, "dev-0011"),
        "c-ml": await open_call(app, "dev-0021"),
        "unknown": await open_call(app, "stranger"),
    }


async def test_community_staff_cannot_list_get_or_change_another_communitys_call(
    app: App, api: httpx.AsyncClient, calls: dict[str, str]
) -> None:
    liuhu = calls["c-lh"]
    assert await listed(api, WU_HONG) == {calls["c-qs"]}
    missing = await api.get("/api/v1/calls/C-19990101-0001", headers=WU_HONG)
    other = await api.get(f"/api/v1/calls/{liuhu}", headers=WU_HONG)
    # Not found, worded as for a call that does not exist: nothing learnt by guessing.
    assert (other.status_code, missing.status_code) == (404, 404)
    assert other.json() == {"error": f"no call {liuhu}"}
    assert "张桂兰" not in other.text
    ack = await api.post(f"/api/v1/calls/{liuhu}/ack", headers=WU_HONG)
    assert ack.status_code == 404 and ack.json() == {"error": f"no call {liuhu}"}
    resolve = await api.post(
        f"/api/v1/calls/{liuhu}/resolve", headers=WU_HONG, json={"outcome": "false_alarm"}
    )
    assert resolve.status_code == 404
    view = await app.operations.get_call(liuhu)
    assert view.state == "open" and view.acknowledged_by is None
    assert "wu-hong" not in {e.actor for e in view.timeline}
    # Their own community's call they may take.
    own = await api.post(f"/api/v1/calls/{calls['c-qs']}/ack", headers=WU_HONG)
    assert own.status_code == 200 and own.json()["acknowledged_by"] == "wu-hong"


async def test_a_street_supervisor_sees_the_calls_of_its_communities(
    api: httpx.AsyncClient, calls: dict[str, str]
) -> None:
    assert await listed(api, SUN_LI) == {calls["c-lh"], calls["c-qs"]}
    assert (await api.get(f"/api/v1/calls/{calls['c-qs']}", headers=SUN_LI)).status_code == 200
    for elsewhere in (calls["c-ml"], calls["unknown"]):
        assert (await api.get(f"/api/v1/calls/{elsewhere}", headers=SUN_LI)).status_code == 404


async def test_the_district_operator_sees_every_call_unknown_devices_too(
    api: httpx.AsyncClient, calls: dict[str, str]
) -> None:
    assert await listed(api, OPERATOR) == set(calls.values())
    stray = await api.get(f"/api/v1/calls/{calls['unknown']}", headers=OPERATOR)
    assert stray.status_code == 200 and stray.json()["unknown_device"] is True


async def test_community_staff_get_the_resident_without_notes_the_operator_with(
    api: httpx.AsyncClient, calls: dict[str, str]
) -> None:
    liuhu = calls["c-lh"]
    staff = await api.get(f"/api/v1/calls/{liuhu}", headers=MA_LIN)
    assert staff.status_code == 200
    resident = staff.json()["resident"]
    assert resident["name"] == "张桂兰" and resident["address"]
    assert resident["notes"] == "" and resident["redacted"] == WITHHELD
    assert all(resident[field] == "" for field in WITHHELD)
    assert NOTE not in staff.text and KEY_SAFE not in staff.text
    assert resident["room"] == "502" and resident["id_card_masked"] == "310105********1228"
    listing = await api.get("/api/v1/calls", headers=MA_LIN)
    assert [c["resident"]["redacted"] for c in listing.json()["calls"]] == [WITHHELD]
    assert NOTE not in listing.text and KEY_SAFE not in listing.text
    taken = await api.post(f"/api/v1/calls/{liuhu}/ack", headers=MA_LIN)
    assert taken.status_code == 200 and NOTE not in taken.text

    for headers in (OPERATOR, SUN_LI):
        shown = (await api.get(f"/api/v1/calls/{liuhu}", headers=headers)).json()["resident"]
        assert NOTE in shown["notes"] and shown["redacted"] == []
        assert NOTE in shown["medication"] and KEY_SAFE in shown["key_safe"]
        assert "310105193803121228" not in str(shown)  # the ID card is masked for everyone


async def test_the_newest_calls_of_other_areas_do_not_crowd_out_ones_own(
    app: App, api: httpx.AsyncClient, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The list is cut at LIST_LIMIT after the scope, in the query, not before it."""
    mine = await open_call(app, "dev-0001")
    others = []
    for device in ("dev-0021", "dev-0022", "dev-0023"):  # 梅林, newer one by one
        clock.advance(10)
        others.append(await open_call(app, device))
    monkeypatch.setattr(operations, "LIST_LIMIT", 2)
    assert await listed(api, MA_LIN) == {mine}
    assert await listed(api, OPERATOR) == set(others[-2:])


# ---------------------------------------------------------------- without a database


async def test_the_api_acts_for_the_tokens_staff() -> None:
    ops: FakeOperations = sample_ops()
    transport = httpx.ASGITransport(app=create_app(ops, ops.clock))
    headers = {"Authorization": "Bearer token-zhang"}
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        await client.get("/api/v1/calls", headers=headers)
        await client.get("/api/v1/calls/C-20261128-0001", headers=headers)
        await client.post("/api/v1/calls/C-20261128-0001/ack", headers=headers)
        await client.post(
            "/api/v1/calls/C-20261128-0001/resolve", headers=headers, json={"outcome": "visit"}
        )
    assert [(x.method, x.viewer) for x in ops.log] == [
        ("list_calls", "s-zhang"),
        ("get_call", "s-zhang"),
        ("acknowledge", "s-zhang"),
        ("resolve", "s-zhang"),
    ]


def test_an_admin_may_do_what_a_supervisor_may() -> None:
    for role in (Role.SUPERVISOR, Role.ADMIN):
        someone = Staff("x", "X", None, "d-jb", role)
        assert _supervisor(someone) is someone
    with pytest.raises(Refused) as refused:
        _supervisor(Staff("op", "Op", None, "d-jb", Role.OPERATOR))
    assert refused.value.status == 403
    assert refused.value.message == "only supervisors may see or change rota overrides"


WANG_FANG = {"Authorization": "Bearer demo-wang-fang-3f9c1a7e"}  # district hotline


async def test_take_makes_the_first_operator_the_owner_and_refuses_the_second(
    app: App, api: httpx.AsyncClient
) -> None:
    call_id = await open_call(app, "dev-0001")
    first = await api.post(f"/api/v1/calls/{call_id}/take", headers=OPERATOR)
    assert first.status_code == 200 and first.json()["acknowledged_by"] == "demo-operator"
    again = await api.post(f"/api/v1/calls/{call_id}/take", headers=OPERATOR)
    assert again.status_code == 200  # one's own call: unchanged
    second = await api.post(f"/api/v1/calls/{call_id}/take", headers=WANG_FANG)
    assert second.status_code == 409
    assert second.json()["error"] == f"call {call_id} is already taken by demo-operator"
    call = await app.operations.get_call(call_id)
    assert call.held_by == "demo-operator"
    assert [e.actor for e in call.timeline if e.action == "acknowledged"] == ["demo-operator"]
    # Out of scope is not found, before anything else.
    assert (await api.post(f"/api/v1/calls/{call_id}/take", headers=WU_HONG)).status_code == 404


async def test_notes_and_hand_over_through_the_api(app: App, api: httpx.AsyncClient) -> None:
    call_id = await open_call(app, "dev-0001")
    assert (await api.post(f"/api/v1/calls/{call_id}/take", headers=OPERATOR)).is_success
    noted = await api.post(f"/api/v1/calls/{call_id}/notes", json={"note": ""}, headers=OPERATOR)
    assert noted.status_code == 422  # an empty note is no note
    noted = await api.post(
        f"/api/v1/calls/{call_id}/notes", json={"note": "rang her"}, headers=OPERATOR
    )
    assert noted.status_code == 200
    # Community staff of another community cannot be given it: they cannot see it.
    refused = await api.post(
        f"/api/v1/calls/{call_id}/hand-over", json={"to": "wu-hong"}, headers=OPERATOR
    )
    assert refused.status_code == 409 and "cannot see" in refused.json()["error"]
    # A street supervisor may move a call someone else holds.
    moved = await api.post(
        f"/api/v1/calls/{call_id}/hand-over", json={"to": "ma-lin"}, headers=SUN_LI
    )
    assert moved.status_code == 200 and moved.json()["held_by"] == "ma-lin"
    escalated = await api.post(f"/api/v1/calls/{call_id}/escalate", headers=MA_LIN)
    assert escalated.status_code == 200 and escalated.json()["state"] == "open"
