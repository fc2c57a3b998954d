"""``[sms] request_timeout_s`` reaches the Twilio HTTP client that bootstrap wires: a
provider that never answers is a temporary SendError after that long, from the
adapter itself (the outbox's own timeout is only the backstop)."""

from __future__ import annotations

import asyncio

import pytest

from dispatcher.bootstrap import build_channels
from dispatcher.core.contact_methods import Channel
from dispatcher.services.channels import Outgoing, SendError
from simulator.phone_network.server import SmsSinkServer
from tests.support.sms import sms_settings_for

pytestmark = pytest.mark.integration
HUNG = "+8613800138000"


@pytest.mark.parametrize("channel", [Channel.SMS.value, Channel.VOICE.value])
async def test_a_request_never_answered_fails_after_the_configured_timeout(
    sms_sink: SmsSinkServer, channel: str
) -> None:
    sms_sink.hold(HUNG)
    channels = build_channels(sms_settings_for(sms_sink, request_timeout_s=0.3))
    try:
        message = Outgoing(HUNG, "help", script_url="http://127.0.0.1:1/twilio/voice/1")
        # Well before the adapter's default of 10 s: the setting is what counts.
        with pytest.raises(SendError) as raised:
            async with asyncio.timeout(5):
                await channels.sender(channel).send(message)
    finally:
        await channels.aclose()
        sms_sink.release_held()
    assert not raised.value.permanent
    assert "no answer from SMS provider" in raised.value.message
    assert sms_sink.messages == [] and sms_sink.calls == []


def test_twilios_rest_resources_are_loaded_at_start_not_at_the_first_sms() -> None:
    # In a fresh interpreter: other tests of this run may have loaded them already.
    import subprocess
    import sys

    check = (
        "import sys, dispatcher.adapters.twilio.sender; "
        "print(all(m in sys.modules for m in ("
        "'twilio.rest.api.v2010.account.message', 'twilio.rest.api.v2010.account.call')))"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
