"""The operator API's protocols of a call, over the in-memory Operations fake (the real
service's rules are tested on the database in tests/services/test_call_protocols_flow.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from dispatcher.entrypoints.http.app import create_app
from tests.support.fake_ops import FakeOperations, sample_ops

ZHANG = {"Authorization": "Bearer token-zhang"}
OPEN = "C-20261128-0001"  # an emergency
RESOLVED = "C-20261127-0009"  # a fall


@pytest.fixture
def ops() -> FakeOperations:
    return sample_ops()


@pytest.fixture
async def client(ops: FakeOperations) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(ops, ops.clock))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        yield c


async def test_the_protocols_of_a_call_come_with_the_current_one(
    client: httpx.AsyncClient, ops: FakeOperations
) -> None:
    r = await client.get(f"/api/v1/calls/{OPEN}/protocols", headers=ZHANG)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["current"] == "emergency.voice" and body["answerable"] is True
    assert [p["situation"] for p in body["protocols"]] == ["voice", "silent", "smoke"]
    english = await client.get(f"/api/v1/calls/{OPEN}/protocols?lang=en", headers=ZHANG)
    silent = english.json()["protocols"][1]
    assert silent["steps"][-1]["text"] == "Decide: if in doubt, send someone"
    assert silent["steps"][-1]["default"] == "send_someone"
    assert ops.log[-1].viewer == "s-zhang"


async def test_an_answer_is_posted_under_the_tokens_person_and_channel(
    client: httpx.AsyncClient, ops: FakeOperations
) -> None:
    r = await client.post(
        f"/api/v1/calls/{OPEN}/protocols/answers",
        headers={**ZHANG, "X-Eldercall-Channel": "cli"},
        json={
            "protocol": "emergency.silent",
            "step": "call_home",
            "answer": "no_answer",
            "note": "响12声",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["current"] == "emergency.silent"
    answer = body["protocols"][1]["steps"][1]["answer"]
    assert (
        answer["value"] == "no_answer" and answer["by"] == "s-zhang" and answer["by_name"] == "张伟"
    )
    assert answer["channel"] == "cli" and answer["note"] == "响12声"
    done = ops.log[-2]  # the answer, then the read that answered it
    assert (done.method, done.staff_id, done.viewer) == (
        "answer_protocol_step",
        "s-zhang",
        "s-zhang",
    )
    assert done.detail == "emergency.silent call_home = no_answer · 响12声"


async def test_a_situation_is_chosen(client: httpx.AsyncClient) -> None:
    r = await client.post(
        f"/api/v1/calls/{OPEN}/protocols/situation", headers=ZHANG, json={"situation": "smoke"}
    )
    assert r.status_code == 200 and r.json()["current"] == "emergency.smoke"


@pytest.mark.parametrize(
    "body",
    [
        {"protocol": "emergency.voice", "step": "pulse", "answer": "yes"},
        {"protocol": "emergency.voice", "step": "identity", "answer": "perhaps"},
        {"protocol": "fall.fall", "step": "conscious", "answer": "yes"},
    ],
    ids=["step", "answer", "other-kind"],
)
async def test_an_answer_the_protocol_does_not_take_is_422_and_stores_nothing(
    client: httpx.AsyncClient, ops: FakeOperations, body: dict[str, str]
) -> None:
    before = len(ops.calls[OPEN].timeline)
    r = await client.post(f"/api/v1/calls/{OPEN}/protocols/answers", headers=ZHANG, json=body)
    assert r.status_code == 422 and r.json()["error"]
    assert len(ops.calls[OPEN].timeline) == before


@pytest.mark.parametrize(
    "body",
    [
        {"protocol": "emergency", "step": "identity", "answer": "yes"},
        {"protocol": "emergency.voice", "step": "identity", "answer": "yes", "extra": 1},
        {"protocol": "emergency.voice", "step": "identity", "answer": "yes", "note": "a\x00b"},
        {"protocol": "emergency.voice", "step": "identity"},
    ],
    ids=["protocol-id", "extra-key", "control-character", "no-answer"],
)
async def test_a_malformed_answer_is_422_before_the_service(
    client: httpx.AsyncClient, ops: FakeOperations, body: dict[str, object]
) -> None:
    r = await client.post(f"/api/v1/calls/{OPEN}/protocols/answers", headers=ZHANG, json=body)
    assert r.status_code == 422 and r.json()["error"]
    assert not any(x.method == "answer_protocol_step" for x in ops.log)


async def test_refusals_missing_resolved_and_no_token(client: httpx.AsyncClient) -> None:
    answer = {"protocol": "fall.fall", "step": "conscious", "answer": "yes"}
    missing = await client.get("/api/v1/calls/C-20000101-0001/protocols", headers=ZHANG)
    assert missing.status_code == 404 and missing.json()["error"] == "no call C-20000101-0001"
    resolved = await client.post(
        f"/api/v1/calls/{RESOLVED}/protocols/answers", headers=ZHANG, json=answer
    )
    assert resolved.status_code == 409 and "resolved" in resolved.json()["error"]
    anonymous = await client.post(f"/api/v1/calls/{OPEN}/protocols/answers", json=answer)
    assert anonymous.status_code == 401
