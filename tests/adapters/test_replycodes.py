"""Reply codes: one small number per (phone, open call), retired when the call is
resolved; and Twilio's request signatures checked with the library's validator."""

from __future__ import annotations

from twilio.request_validator import RequestValidator

from dispatcher.adapters.db import reply_codes as replycodes
from dispatcher.adapters.twilio import signature as twilio_signature
from dispatcher.bootstrap import App
from dispatcher.core.calls import Outcome
from dispatcher.testing import FakeClock
from tests.support.app import event

PHONE = "+8613800138000"  # demo-operator, on the hotline around the clock


async def open_call(app: App, device: str, ref: str) -> str:
    ack = await app.intake.on_event(
        device, f"eldercall/v1/dev/{device}/event", event(ref, "emergency")
    )
    assert ack is not None and ack.call_id is not None
    return ack.call_id


async def test_each_open_call_of_a_phone_has_its_own_number_until_resolved(
    app: App, clock: FakeClock
) -> None:
    first, second = await open_call(app, "dev-0001", "a"), await open_call(app, "dev-0002", "b")
    async with app.sessions.begin() as s:
        n1 = await replycodes.assign(s, PHONE, first, clock.now())
        n2 = await replycodes.assign(s, PHONE, second, clock.now())
        again = await replycodes.assign(s, PHONE, first, clock.now())
        other_phone = await replycodes.assign(s, "+8613900000000", second, clock.now())
    assert (n1, n2, again, other_phone) == (1, 2, 1, 1)
    async with app.sessions() as s:
        assert await replycodes.find(s, PHONE, 2) == second
        assert await replycodes.find(s, PHONE, 3) is None

    await app.operations.resolve(first, "demo-operator", "api", Outcome.FALSE_ALARM, "")
    third = await open_call(app, "dev-0003", "c")
    async with app.sessions.begin() as s:
        assert await replycodes.find(s, PHONE, 1) is None  # stale now
        assert await replycodes.assign(s, PHONE, third, clock.now()) == 1  # reused


async def test_escalation_sms_carries_the_reply_code(app: App, clock: FakeClock) -> None:
    call_id = await open_call(app, "dev-0001", "a")
    await app.escalator.run_due()
    async with app.sessions() as s:
        assert await replycodes.find(s, PHONE, 1) == call_id


def test_signatures_are_checked_against_either_token() -> None:
    url, params = "https://centre.example/twilio/sms", {"From": PHONE, "Body": "1A"}
    signed = RequestValidator("new-token").compute_signature(url, params)
    assert twilio_signature.is_valid(url, params, signed, ["old-token", "new-token"])
    assert not twilio_signature.is_valid(url, params, signed, ["old-token"])
    assert not twilio_signature.is_valid(url, {**params, "Body": "1C"}, signed, ["new-token"])
    assert not twilio_signature.is_valid(url, params, None, ["new-token"])
