"""Fixtures: a local Twilio-compatible SMS endpoint.

``sms_sink`` is a running :class:`~simulator.phone_network.server.SmsSinkServer` on a free port, one
per test (starting one takes a few milliseconds). ``sms_settings`` (or
:func:`sms_settings_for`) points the real Twilio adapter at it. ``make_sms_sink`` builds
sinks with other options (landlines, status callbacks, ``on_message``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dispatcher.config import SmsSettings
from simulator.phone_network.server import SmsSinkServer

SINK_FROM_NUMBER = "+8610000000000"


def sms_settings_for(sink: SmsSinkServer, **overrides: Any) -> SmsSettings:
    """``[sms]`` settings that send through the real Twilio adapter to ``sink``."""
    values: dict[str, Any] = {
        "provider": "twilio",
        "account_sid": sink.account_sid,
        "auth_token": sink.auth_token,
        "from_number": SINK_FROM_NUMBER,
        "api_base": sink.url,
    }
    values.update(overrides)
    return SmsSettings(**values)


@pytest.fixture
def make_sms_sink() -> Iterator[Callable[..., SmsSinkServer]]:
    """A factory: ``make_sms_sink(landlines=[...], status_callbacks=True, ...)``, started.

    Takes the keyword arguments of :class:`SmsSinkServer`; every sink made is stopped
    after the test.
    """
    sinks: list[SmsSinkServer] = []

    def make(**kwargs: Any) -> SmsSinkServer:
        sink = SmsSinkServer(**kwargs)
        sink.start()
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        sink.stop()


@pytest.fixture
def sms_sink(make_sms_sink: Callable[..., SmsSinkServer]) -> SmsSinkServer:
    """A running SMS sink with the default (``SmsSettings()``) account sid and token."""
    return make_sms_sink()


@pytest.fixture
def sms_settings(sms_sink: SmsSinkServer) -> SmsSettings:
    """``[sms]`` settings for the real Twilio adapter, aimed at ``sms_sink``."""
    return sms_settings_for(sms_sink)
