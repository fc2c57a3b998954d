"""Delivery over real parts: the real ``twilio`` client against the local Twilio sink, and
the sink's signed status callbacks arriving at the dispatcher's own HTTP route."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from dispatcher.adapters.db import schema as db
from dispatcher.bootstrap import App, build, http_app
from dispatcher.core.contact_methods import Channel, ContactMethod
from dispatcher.entrypoints.http.app import serve_api
from dispatcher.testing import FakeClock
from simulator.phone_network.server import SmsSinkServer
from tests.support.app import HOTLINE, event, settings_for
from tests.support.ports import free_port
from tests.support.sms import sms_settings_for

WANG = "+8613916200101"  # on the hotline at TUESDAY_10AM
OFFICE = "+862155550101"


@dataclass
class Live:
    app: App
    sink: SmsSinkServer
    public_url: str

    async def press(self, device: str, kind: str, ref: str) -> str:
        topic = f"eldercall/v1/dev/{device}/event"
        ack = await self.app.intake.on_event(device, topic, event(ref, kind))
        assert ack is not None and ack.call_id
        return ack.call_id

    async def tick(self) -> None:
        await self.app.escalator.run_due()
        await self.app.outbox.send_due()

    async def rows(self) -> list[Any]:
        async with self.app.sessions() as s:
            return list(await s.execute(select(db.sms_outbox).order_by(db.sms_outbox.c.id)))

    async def until(self, check: Callable[[list[Any]], bool]) -> list[Any]:
        """Wait for the callbacks (posted over HTTP by the sink) to change the outbox."""
        deadline = time.monotonic() + 5.0
        while True:
            rows = await self.rows()
            if check(rows):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"outbox never got there: {[r._asdict() for r in rows]}")
            await asyncio.sleep(0.02)

    def use_methods(self, methods: dict[str, tuple[ContactMethod, ...]]) -> None:
        directory = dataclasses.replace(self.app.directory, contact_methods=methods)
        self.app.directory = directory  # swapped in for every service, as the registry does


@pytest.fixture
async def live(
    tmp_path: Path, clock: FakeClock, make_sms_sink: Callable[..., SmsSinkServer]
) -> AsyncIterator[Live]:
    sink = make_sms_sink(callback_delay_s=0.01)
    port = free_port()
    settings = settings_for(
        tmp_path,
        sms=sms_settings_for(sink, auth_token_secondary="the-next-auth-token").model_dump(),
        http={"listen": f"127.0.0.1:{port}"},
    )
    app = await build(settings, clock=clock)
    api = http_app(app)
    stop, started = asyncio.Event(), asyncio.Event()
    server = asyncio.create_task(serve_api(api, "127.0.0.1", port, stop, started))
    await asyncio.wait_for(started.wait(), 10)
    try:
        yield Live(app, sink, settings.http.base_url)
    finally:
        stop.set()
        await server
        await app.aclose()


def _sms_to(sink: SmsSinkServer, number: str) -> list[str]:
    return [m.body for m in sink.messages if m.to == number]


async def _wait(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5.0
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


async def test_a_landline_gets_the_sms_undelivered_and_is_called_at_once(live: Live) -> None:
    live.sink.script_sms(WANG, "undelivered", 30006)
    call_id = await live.press("dev-0001", "emergency", "l1")
    await live.tick()
    assert {m.to for m in live.sink.messages} == HOTLINE
    sms = next(r for r in await live.rows() if r.to_number == WANG)
    assert live.sink.message(sms.provider_sid).status_callback == (  # type: ignore[union-attr]
        f"{live.public_url}/twilio/status/{sms.id}"
    )

    rows = await live.until(lambda rs: any(r.channel == "voice" for r in rs))
    failed = next(r for r in rows if r.id == sms.id)
    assert (failed.status, failed.provider_status, failed.error_code) == (
        "failed",
        "undelivered",
        30006,
    )
    voice = next(r for r in rows if r.channel == "voice")
    assert (voice.to_number, voice.recipient, voice.status) == (WANG, "wang-fang", "pending")

    await live.app.outbox.send_due()
    await _wait(lambda: len(live.sink.calls) == 1)
    placed = live.sink.calls[0]
    assert placed.to == WANG and placed.machine_detection == "Enable"
    assert placed.url == f"{live.public_url}/twilio/voice/{voice.id}"
    assert set(placed.status_callback_events) == {"initiated", "ringing", "answered", "completed"}
    rows = await live.until(
        lambda rs: any(r.channel == "voice" and r.provider_status == "completed" for r in rs)
    )
    voice = next(r for r in rows if r.channel == "voice")
    assert voice.provider_sid == placed.sid and voice.answered_by == "human"
    # Every callback was signed and accepted by the real route.
    assert live.sink.callbacks and {c.http_status for c in live.sink.callbacks} == {204}

    view = await live.app.operations.get_call(call_id)
    actions = {e.action: e.detail for e in view.timeline}
    assert "30006" in actions["sms_failed"] and WANG in actions["sms_failed"]
    assert "next voice" in actions["notify_fallback"]


async def test_a_temporary_failure_is_retried_with_backoff(live: Live, clock: FakeClock) -> None:
    live.sink.script_sms(WANG, "undelivered", 30003, times=1)
    live.sink.set_status_callbacks(True, 0.01)
    await live.press("dev-0001", "emergency", "t1")
    await live.tick()
    rows = await live.until(lambda rs: any(r.error_code == 30003 for r in rs))
    retry = next(r for r in rows if r.to_number == WANG)
    assert retry.status == "pending" and retry.next_attempt_at > clock.now()
    await live.app.outbox.send_due()
    assert len(_sms_to(live.sink, WANG)) == 1  # not before its time
    clock.advance(31)
    await live.app.outbox.send_due()
    assert len(_sms_to(live.sink, WANG)) == 2
    await live.until(
        lambda rs: any(r.to_number == WANG and r.provider_status == "delivered" for r in rs)
    )
    assert not any(r.channel == "voice" for r in await live.rows())


async def test_an_api_error_is_retried_with_backoff(live: Live, clock: FakeClock) -> None:
    live.sink.fail_next(1, 503)  # the first POST: Twilio is having a bad moment
    await live.press("dev-0001", "emergency", "e1")
    await live.tick()
    assert len(live.sink.messages) == len(HOTLINE) - 1
    waiting = [r for r in await live.rows() if r.status == "pending"]
    assert len(waiting) == 1 and "503" in waiting[0].error
    assert waiting[0].next_attempt_at > clock.now()
    clock.advance(5)
    await live.app.outbox.send_due()
    assert sorted(m.to for m in live.sink.messages) == sorted(HOTLINE)


async def test_a_voicemail_is_not_an_answer_the_next_method_is_called(
    live: Live, clock: FakeClock
) -> None:
    live.use_methods(
        {
            "wang-fang": (
                ContactMethod(1, Channel.VOICE, WANG),
                ContactMethod(2, Channel.VOICE, OFFICE),
            )
        }
    )
    live.sink.script_voice(WANG, "machine")
    await live.press("dev-0001", "emergency", "m1")
    await live.tick()
    await live.until(
        lambda rs: any(r.answered_by == "machine_end_beep" and r.status == "pending" for r in rs)
    )
    clock.advance(61)
    await live.app.outbox.send_due()  # tried once more, then moved on
    await live.until(lambda rs: any(r.to_number == WANG and r.status == "failed" for r in rs))
    await live.app.outbox.send_due()
    await _wait(lambda: [c.to for c in live.sink.calls] == [WANG, WANG, OFFICE])


async def test_a_burst_of_service_calls_is_one_sms_per_number_an_emergency_goes_at_once(
    live: Live,
) -> None:
    ids = [await live.press(f"dev-{n:04d}", "service", f"b{n}") for n in range(1, 11)]
    await live.tick()
    assert sorted(m.to for m in live.sink.messages) == sorted(HOTLINE)
    for body in (m.body for m in live.sink.messages):
        codes = {int(c) for c in re.findall(r"(?:回复|reply) (\d+)A", body)}
        assert codes == set(range(1, 11)) and all(i in body for i in ids)
    urgent = await live.press("dev-0011", "emergency", "b11")
    await live.tick()
    assert len(live.sink.messages) == 2 * len(HOTLINE)
    assert all(urgent in m.body for m in live.sink.messages[len(HOTLINE) :])


async def test_a_callback_with_a_bad_signature_gets_403_and_changes_nothing(
    live: Live,
) -> None:
    await live.press("dev-0001", "emergency", "x1")
    await live.tick()
    sms = next(r for r in await live.rows() if r.to_number == WANG)
    url = f"{live.public_url}/twilio/status/{sms.id}"
    params = {"MessageSid": sms.provider_sid, "MessageStatus": "undelivered", "ErrorCode": "30006"}

    async def post(token: str, fields: dict[str, str]) -> int:
        signature = RequestValidator(token).compute_signature(url, params)
        async with httpx.AsyncClient() as client:
            answer = await client.post(url, data=fields, headers={"X-Twilio-Signature": signature})
        return answer.status_code

    assert await post("not-the-token", params) == 403
    # Signed for other fields: replayed with a changed status.
    assert await post(live.sink.auth_token, {**params, "MessageStatus": "delivered"}) == 403
    async with httpx.AsyncClient() as client:
        assert (await client.post(url, data=params)).status_code == 403
    assert next(r for r in await live.rows() if r.id == sms.id).status == "sent"
    # The secondary token, during a rotation, is accepted.
    assert await post("the-next-auth-token", params) == 204
    assert next(r for r in await live.rows() if r.id == sms.id).status == "failed"


async def test_the_daemon_serves_the_status_route_and_checks_signatures(
    tmp_path: Path, clock: FakeClock, sms_sink: SmsSinkServer
) -> None:
    from dispatcher.bootstrap import run

    port = free_port()
    settings = settings_for(
        tmp_path / "daemon",
        sms=sms_settings_for(sms_sink).model_dump(),
        http={"listen": f"127.0.0.1:{port}"},
        mqtt={"url": "mqtt://127.0.0.1:1"},  # no broker: the MQTT part retries quietly
    )
    (tmp_path / "daemon").mkdir()
    app = await build(settings, clock=clock)
    stop = asyncio.Event()
    daemon = asyncio.create_task(run(app, stop))
    url = f"{settings.http.base_url}/twilio/status/1"
    params = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}
    signature = RequestValidator(sms_sink.auth_token).compute_signature(url, params)
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                try:
                    forged = await client.post(url, data=params)
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.02)
            signed = await client.post(url, data=params, headers={"X-Twilio-Signature": signature})
    finally:
        stop.set()
        await asyncio.wait_for(daemon, 10)
        await app.aclose()
    assert forged.status_code == 403
    assert signed.status_code == 204  # no such row yet: accepted, nothing to change
