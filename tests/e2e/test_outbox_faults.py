"""A district's worst hour at the provider, on real parts: Mosquitto, SQLite, the twilio
library over HTTP to the local sink, which refuses every other request with a 503 and
holds some open without an answer. Several calls escalate at once: each notification
is delivered exactly once, none after its call's acknowledgement, and a request that
hangs holds only its own number while the others' messages leave.

The clock is a fake one the test moves, so that the retries of refused requests come
due (an emergency's within seconds); the request timeout runs on real time."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from dispatcher.adapters.db import schema as db
from dispatcher.bootstrap import App, build
from dispatcher.testing import FakeClock
from simulator.broker import MosquittoProcess, free_port
from simulator.phone_network.server import SinkMessage, SmsSinkServer
from tests.e2e.test_end_to_end import device, press, until
from tests.support.app import HOTLINE, TUESDAY_10AM, settings_for
from tests.support.daemon import serving
from tests.support.sms import sms_settings_for

pytestmark = pytest.mark.integration
TOKEN = {"Authorization": "Bearer demo-operator-token"}
# Step 2 far away: the clock moves for the retries, never into another step.
EMERGENCY = {
    "repeat_every_s": 3600,
    "steps": [
        {"delay_s": 0, "targets": ["hotline"]},
        {"delay_s": 3600, "targets": ["street_supervisor"]},
    ],
}


@contextlib.asynccontextmanager
async def daemon(
    tmp_path: Path, broker: MosquittoProcess, sink: SmsSinkServer, root: str, **sms: Any
) -> AsyncIterator[tuple[App, FakeClock, str]]:
    """The daemon as ``eldercall run`` wires it (bootstrap.build and run), on a fake clock."""
    port = free_port()
    settings = settings_for(
        tmp_path,
        mqtt={"url": broker.url, "topic_root": root, "client_id": f"fault-{uuid.uuid4().hex[:8]}"},
        sms=sms_settings_for(sink, **sms).model_dump(),
        http={"listen": f"127.0.0.1:{port}"},
        escalation={"policies": {"emergency": EMERGENCY}},
    )
    clock = FakeClock(TUESDAY_10AM)
    app = await build(settings, clock=clock)
    async with serving(app):
        yield app, clock, f"http://127.0.0.1:{port}/api/v1"


async def moving_the_clock(
    clock: FakeClock, done: Callable[[], bool], within: float = 15.0, step_s: float = 2.0
) -> None:
    """Move the fake clock on (retries come due) until ``done``, for ``within`` real s."""
    async with asyncio.timeout(within):
        while not done():
            clock.advance(step_s)
            await asyncio.sleep(0.1)


def about(messages: list[SinkMessage], calls: list[str]) -> Counter[tuple[str, str]]:
    """How many SMS each (number, call) got."""
    return Counter((m.to, c) for m in messages for c in calls if c in m.body)


async def open_call(broker: MosquittoProcess, root: str, device_id: str) -> str:
    async with device(broker.url, root, device_id) as dev:
        await press(dev, root, device_id, {"ref": f"sos-{device_id}", "type": "emergency"})
        ack = await until(dev, "ack", within=10)
    assert ack["result"] == "ok"
    return str(ack["call_id"])


async def outbox(app: App, calls: list[str]) -> list[Any]:
    async with app.sessions() as s:
        query = select(db.sms_outbox).where(db.sms_outbox.c.call_id.in_(calls))
        return list(await s.execute(query.order_by(db.sms_outbox.c.id)))


async def test_several_emergencies_through_a_failing_provider_each_reach_everyone_once(
    tmp_path: Path, mosquitto: MosquittoProcess, sms_sink: SmsSinkServer, topic_root: str
) -> None:
    async with daemon(tmp_path, mosquitto, sms_sink, topic_root) as (app, clock, api):
        # A first call shows which hotline number the outbox takes first: sent one
        # at a time, a hang there would hold every message behind it.
        first = await open_call(mosquitto, topic_root, "dev-0001")
        await sms_sink.wait_for_async(lambda m: first in m.body, count=len(HOTLINE))
        held = (await outbox(app, [first]))[0].to_number

        # The provider's bad hour: every other request refused, one request hangs.
        sms_sink.fail_every(2, status=503)
        sms_sink.hold(held, times=1)
        calls = list(
            await asyncio.gather(
                *(open_call(mosquitto, topic_root, f"dev-{n:04d}") for n in range(2, 6))
            )
        )
        await sms_sink.wait_for_held(timeout=10)

        async def tried_once() -> list[Any]:
            """The rows, once each has been tried (or is the one held)."""
            async with asyncio.timeout(10):
                while True:
                    rows = await outbox(app, calls)
                    sending = [r for r in rows if r.status == "sending"]
                    tried = [r for r in rows if r.status != "sending" and r.attempts]
                    if len(sending) == 1 and len(tried) == len(HOTLINE) * len(calls) - 1:
                        return rows
                    await asyncio.sleep(0.05)

        rows = await tried_once()
        [hung] = [r.call_id for r in rows if r.status == "sending"]
        # An operator takes a call that has an SMS waiting for its retry.
        retrying = [r.call_id for r in rows if r.status == "pending" and r.call_id != hung]
        assert retrying, "every other request refused, yet no SMS waits for a retry"
        taken = retrying[0]
        async with httpx.AsyncClient(headers=TOKEN) as http:
            answer = await http.post(f"{api}/calls/{taken}/ack", json={"note": "on my way"})
        assert answer.status_code == 200, answer.text
        acked_at = len(sms_sink.messages)
        before_ack = about(sms_sink.messages, calls)

        # Everything else arrives, retried through the refusals, while one hangs.
        wanted = {(n, c) for n in HOTLINE for c in calls if c != taken}
        wanted |= {k for k in before_ack if k[1] == taken}
        others = wanted - {(held, hung)}
        await moving_the_clock(clock, lambda: set(about(sms_sink.messages, calls)) >= others)
        assert sms_sink.held == 1, "the hung request was given up before the others came"

        sms_sink.release_held()
        await moving_the_clock(clock, lambda: set(about(sms_sink.messages, calls)) >= wanted)
        await asyncio.sleep(0.3)  # anything more would have come by now
        clock.advance(30)
        await asyncio.sleep(0.3)

        got = about(sms_sink.messages, calls)
        assert set(got) == wanted, "an acknowledged call's SMS left, or one never came"
        assert set(got.values()) == {1}, [k for k, n in got.items() if n > 1]
        assert not [m for m in sms_sink.messages[acked_at:] if taken in m.body]
        assert len([a for a in sms_sink.attempts if a.http_status == 503]) >= len(wanted) // 2
        taken_rows = [r for r in await outbox(app, [taken])]
        assert {r.status for r in taken_rows} <= {"sent", "cancelled"}
        assert "cancelled" in {r.status for r in taken_rows}


async def test_a_request_that_never_answers_times_out_and_is_sent_again_once(
    tmp_path: Path, mosquitto: MosquittoProcess, sms_sink: SmsSinkServer, topic_root: str
) -> None:
    hung = min(HOTLINE)
    sms_sink.hold(hung, times=1)  # the first request to it never gets an answer
    async with daemon(tmp_path, mosquitto, sms_sink, topic_root, request_timeout_s=1.0) as (
        _,
        clock,
        _api,
    ):
        call_id = await open_call(mosquitto, topic_root, "dev-0001")
        await sms_sink.wait_for_async(lambda m: call_id in m.body, count=len(HOTLINE) - 1)
        await moving_the_clock(clock, lambda: any(m.to == hung for m in sms_sink.messages))
        await asyncio.sleep(0.3)
        clock.advance(30)
        await asyncio.sleep(0.3)
    assert sorted(m.to for m in sms_sink.messages) == sorted(HOTLINE)  # each once
    to_hung = [a.http_status for a in sms_sink.attempts if a.to == hung]
    assert to_hung == [499, 201]  # the daemon gave up on the first, the second arrived
