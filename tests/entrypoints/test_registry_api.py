"""The registry through the operator API, in process, on the real database (both
backends) with the daemon's own HTTP wiring: create, patch, delete and list with the
example data's tokens; a 4xx names the field; scope and withheld fields."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from dispatcher.bootstrap import App, http_app
from tests.support.app import event

ZHAO_MIN = {"Authorization": "Bearer demo-zhao-min-91c6ab04"}  # district supervisor
SUN_LI = {"Authorization": "Bearer demo-sun-li-2a7fe859"}  # 河西 street supervisor
MA_LIN = {"Authorization": "Bearer demo-ma-lin-b81f7d25"}  # 柳湖 community staff
OPERATOR = {"Authorization": "Bearer demo-operator-token"}

NEW = {
    "id": "r-9001",
    "name": "钱淑珍",
    "birth_date": "1938-03-02",
    "address": "柳湖路 9 号",
    "community_id": "c-lh",
    "id_card": "110101193803021234",
    "medication": "阿司匹林",
    "key_safe": "1234",
}


@pytest.fixture
async def api(app: App) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=http_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client


async def test_a_supervisor_adds_a_resident_and_device_and_the_next_call_is_hers(
    app: App, api: httpx.AsyncClient
) -> None:
    made = await api.post("/api/v1/residents", json=NEW, headers=SUN_LI)
    assert made.status_code == 201, made.text
    assert made.json()["id_card_masked"] == "110101********1234"
    assert "110101193803021234" not in made.text
    device = await api.post(
        "/api/v1/devices", json={"id": "dev-9001", "resident_id": "r-9001"}, headers=SUN_LI
    )
    assert device.status_code == 201, device.text
    ack = await app.intake.on_event(
        "dev-9001", "eldercall/v1/dev/dev-9001/event", event("a1", "emergency")
    )
    assert ack is not None
    call = await api.get(f"/api/v1/calls/{ack.call_id}", headers=OPERATOR)
    assert call.json()["resident"]["address"] == "柳湖路 9 号"
    got = await api.get("/api/v1/devices/dev-9001", headers=ZHAO_MIN)
    assert [h["resident_id"] for h in got.json()["history"]] == ["r-9001"]


async def test_a_bad_field_is_a_422_naming_it_and_changes_nothing(
    app: App, api: httpx.AsyncClient
) -> None:
    bad = await api.post("/api/v1/residents", json={**NEW, "phone": "138"}, headers=ZHAO_MIN)
    assert bad.status_code == 422 and "phone" in bad.json()["error"]
    street = await api.post(
        "/api/v1/residents", json={**NEW, "community_id": "s-hx"}, headers=ZHAO_MIN
    )
    assert street.status_code == 422
    assert street.json()["error"] == "community_id: 's-hx' is a street, not a community"
    assert street.json()["detail"][0]["loc"] == ["body", "community_id"]
    patch = await api.patch(
        "/api/v1/residents/r-0001", json={"birth_date": "1941-13-01"}, headers=ZHAO_MIN
    )
    assert patch.status_code == 422 and patch.json()["error"].startswith("birth_date:")
    unknown = await api.patch("/api/v1/residents/r-0001", json={"colour": "red"}, headers=ZHAO_MIN)
    assert unknown.status_code == 422 and unknown.json()["error"].startswith("colour:")
    assert "r-9001" not in app.directory.residents
    audit = await api.get("/api/v1/audit", params={"record": "r-0001"}, headers=ZHAO_MIN)
    assert [e["action"] for e in audit.json()["items"]] == ["seed"]


async def test_conflicts_are_409_and_other_areas_404(app: App, api: httpx.AsyncClient) -> None:
    twice = await api.post("/api/v1/devices", json={"id": "dev-0001"}, headers=ZHAO_MIN)
    assert twice.status_code == 409 and twice.json()["error"].startswith("id:")
    ack = await app.intake.on_event(
        "dev-0001", "eldercall/v1/dev/dev-0001/event", event("c1", "emergency")
    )
    assert ack is not None
    gone = await api.delete("/api/v1/residents/r-0001", headers=ZHAO_MIN)
    assert gone.status_code == 409 and ack.call_id in gone.json()["error"]
    other = next(r for r in app.directory.residents.values() if r.community_id == "c-ml")
    hidden = await api.get(f"/api/v1/residents/{other.id}", headers=SUN_LI)
    assert hidden.status_code == 404 and hidden.json() == {"error": f"no resident '{other.id}'"}
    reader = await api.patch("/api/v1/residents/r-0001", json={"mobility": "x"}, headers=MA_LIN)
    assert reader.status_code == 403
    audit = await api.get("/api/v1/audit", headers=MA_LIN)
    assert audit.status_code == 403


async def test_community_staff_read_their_community_without_medical_or_access_details(
    api: httpx.AsyncClient,
) -> None:
    await api.post("/api/v1/residents", json=NEW, headers=ZHAO_MIN)
    page = await api.get("/api/v1/residents", params={"limit": 500}, headers=MA_LIN)
    assert {r["community_id"] for r in page.json()["items"]} == {"c-lh"}
    mine = await api.get("/api/v1/residents/r-9001", headers=MA_LIN)
    body = mine.json()
    assert body["medication"] == "" and body["key_safe"] == ""
    assert {"medication", "key_safe", "notes"} <= set(body["redacted"])
    full = await api.get("/api/v1/residents/r-9001", headers=OPERATOR)
    assert full.json()["medication"] == "阿司匹林" and full.json()["redacted"] == []
    paged = await api.get("/api/v1/residents", params={"limit": 5, "offset": 5}, headers=OPERATOR)
    assert paged.json()["total"] == 41 and len(paged.json()["items"]) == 5


async def test_staff_areas_and_providers(app: App, api: httpx.AsyncClient) -> None:
    area = await api.post(
        "/api/v1/areas",
        json={"id": "c-new", "level": "community", "name": "新社区", "parent_id": "s-hx"},
        headers=SUN_LI,
    )
    assert area.status_code == 201, area.text
    provider = await api.post(
        "/api/v1/providers",
        json={
            "id": "p-meals",
            "name": "幸福餐厅",
            "service": "meals",
            "area_id": "c-new",
            "phone": "+8657188881111",
        },
        headers=SUN_LI,
    )
    assert provider.status_code == 201, provider.text
    blocked = await api.delete("/api/v1/areas/c-new", headers=SUN_LI)
    assert blocked.status_code == 409 and "provider p-meals" in blocked.json()["error"]
    token = "brand-new-token-00001"
    staff = await api.post(
        "/api/v1/staff",
        json={
            "id": "qian-li",
            "name": "钱丽",
            "area_id": "c-new",
            "role": "staff",
            "api_token": token,
        },
        headers=SUN_LI,
    )
    assert staff.status_code == 201 and staff.json()["has_api_token"] is True
    assert token not in staff.text
    me = await api.get("/api/v1/staff/qian-li", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200  # the token works at once
    listed = await api.get("/api/v1/providers", headers=OPERATOR)
    assert [p["id"] for p in listed.json()["items"]] == ["p-meals"]
    audit = await api.get(
        "/api/v1/audit", params={"kind": "staff", "record": "qian-li"}, headers=ZHAO_MIN
    )
    assert audit.json()["items"][0]["after"]["api_token"] == "(set)"
