"""End-to-end tests of devices: a device's chain (button, radio, base unit, broker,
centre) is proven only when a press or a ``test`` event arrives and is stored.

An installer or a resident proves it by pressing while the device is in **test
mode** (set through the API or the CLI for a few minutes: the next press is recorded
as the test, answered ``ok`` without a call, and ends test mode), or the device
sends a periodic ``test`` event by itself (an optional event type of the protocol).
Either sets the device's ``last_test_at``; the fleet report lists the devices never
tested or not tested within the period.

Test mode is held in memory for the intake (a press must not wait for a query) and
in the device's link for a restart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class DeviceTestStore(Protocol):
    async def mark_tested(self, device_id: str, now: datetime, *, end_test_mode: bool) -> None:
        """Record an end-to-end test of the device at ``now`` (its link row inserted
        the first time); ``end_test_mode``: its test mode ends too."""


class TestModes:
    """Which devices are in test mode, until when."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self) -> None:
        self._until: dict[str, datetime] = {}

    def load(self, until: dict[str, datetime]) -> None:
        self._until = dict(until)

    def active(self, device_id: str, now: datetime) -> bool:
        until = self._until.get(device_id)
        return until is not None and now < until

    def started(self, device_id: str, until: datetime) -> None:
        self._until[device_id] = until

    def ended(self, device_id: str) -> None:
        self._until.pop(device_id, None)

    def __len__(self) -> int:
        return len(self._until)
