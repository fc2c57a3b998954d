"""EngineCycles on the fake clock: a part is stale until it completes a cycle, and again
once its last cycle is older than the limit; the protocol's priority of each event."""

from __future__ import annotations

from devices.protocol import EventType
from dispatcher.services.engine_cycles import EngineCycles
from dispatcher.services.metrics import INVALID, NO_PRIORITY, event_priority
from dispatcher.testing import FakeClock


def test_a_part_is_stale_until_it_cycles_and_once_its_cycle_is_too_old() -> None:
    clock = FakeClock()
    cycles = EngineCycles(clock, ["escalator", "outbox"])
    assert set(cycles.stale(10)) == {"escalator", "outbox"}
    cycles.recorder("escalator")()
    assert set(cycles.stale(10)) == {"outbox"}
    cycles.completed("outbox")
    clock.advance(10)
    assert cycles.stale(10) == {}  # exactly at the limit: not yet stale
    clock.advance(1)
    cycles.completed("outbox")
    assert list(cycles.stale(10)) == ["escalator"]
    assert "11 s ago" in cycles.stale(10)["escalator"]


def test_event_priorities_are_the_protocols() -> None:
    priorities = {t.value: event_priority(t.value) for t in EventType}
    assert priorities["emergency"] == priorities["fall"] == "critical"
    assert priorities["service"] == "normal"
    for technical in ("battery_low", "battery_ok", "power_lost", "power_restored"):
        assert priorities[technical] == "technical"
    assert priorities["cancel"] == priorities["presence"] == NO_PRIORITY
    assert event_priority(INVALID) == NO_PRIORITY
