"""Which device message goes first, and which device is flooding (pure, no clock: the
times are given)."""

from __future__ import annotations

from devices.protocol import EventType
from dispatcher.core.intake_priority import FloodLimiter, Lane, LaneQueue, lane_of


def test_lanes_put_alarms_first_then_call_events_then_technical_then_routine() -> None:
    assert lane_of(EventType.EMERGENCY) is lane_of(EventType.FALL) is Lane.ALARM
    assert {lane_of(t) for t in (EventType.SERVICE, EventType.CANCEL, EventType.PRESENCE)} == {
        Lane.CALL
    }
    assert lane_of(EventType.POWER_LOST) is lane_of(EventType.BATTERY_LOW) is Lane.TECHNICAL
    assert lane_of(None, status=True) is Lane.TECHNICAL
    assert lane_of(EventType.HEARTBEAT) is lane_of(None) is Lane.ROUTINE
    assert Lane.ALARM < Lane.CALL < Lane.TECHNICAL < Lane.ROUTINE


def test_an_alarm_queued_last_is_taken_first() -> None:
    queue: LaneQueue[str] = LaneQueue()
    for n in range(100):
        queue.put(f"heartbeat-{n}", Lane.ROUTINE, f"hb-{n}")
        queue.put(f"power-{n}", Lane.TECHNICAL, f"base-{n}")
    queue.put("service", Lane.CALL, "dev-2")
    queue.put("sos", Lane.ALARM, "dev-1")
    first = queue.take(3)
    assert first == ["sos", "service", "power-0"]
    assert len(queue) == 199
    rest = queue.take(1000)
    assert rest[:99] == [f"power-{n}" for n in range(1, 100)]
    assert rest[99:] == [f"heartbeat-{n}" for n in range(100)]
    assert len(queue) == 0 and queue.take(5) == []


def test_an_alarm_takes_its_own_devices_earlier_call_events_ahead_with_it() -> None:
    queue: LaneQueue[str] = LaneQueue()
    queue.put("a: service", Lane.CALL, "dev-a")
    queue.put("b: cancel", Lane.CALL, "dev-b")
    queue.put("a: cancel", Lane.CALL, "dev-a")
    queue.put("c: sos", Lane.ALARM, "dev-c")
    queue.put("a: sos", Lane.ALARM, "dev-a")
    queue.put("a: presence", Lane.CALL, "dev-a")
    # dev-a's service and cancel were pressed before its sos: applied before it.
    assert queue.take(10) == [
        "c: sos",
        "a: service",
        "a: cancel",
        "a: sos",
        "b: cancel",
        "a: presence",
    ]
    assert len(queue) == 0


def test_take_respects_the_limit_across_lanes_and_moved_entries() -> None:
    queue: LaneQueue[str] = LaneQueue()
    queue.put("a1", Lane.CALL, "a")
    queue.put("a2", Lane.ALARM, "a")
    queue.put("t", Lane.TECHNICAL, "b")
    assert queue.take(1) == ["a1"]
    assert len(queue) == 2
    assert queue.take(1) == ["a2"]
    assert queue.take(1) == ["t"]
    assert len(queue) == 0


def test_a_flooding_device_is_limited_alone_and_summarised_once_per_period() -> None:
    limiter = FloodLimiter(rate=1.0, burst=3, summary_every_s=60)
    assert [limiter.allow("mad", 0.0) for _ in range(5)] == [True, True, True, False, False]
    assert limiter.allow("calm", 0.0)  # another device has a bucket of its own
    assert limiter.dropped("mad") == 2 and limiter.dropped("calm") == 0
    assert limiter.allow("mad", 1.0)  # one token a second
    assert not limiter.allow("mad", 1.0)
    assert limiter.summaries(59.0) == []  # not a minute since the first drop yet
    [summary] = limiter.summaries(60.0)
    assert (summary.device_id, summary.dropped, summary.since) == ("mad", 3, 0.0)
    assert limiter.summaries(61.0) == [] and limiter.dropped("mad") == 0


def test_summaries_look_only_at_the_devices_with_drops() -> None:
    # A storm of heartbeats from thousands of calm devices: the summaries, looked for
    # every second, go over the one device that floods, not over every bucket.
    limiter = FloodLimiter(rate=1.0, burst=2, summary_every_s=60)
    for n in range(1000):
        limiter.allow(f"calm-{n}", 0.0)
    for _ in range(5):
        limiter.allow("mad", 0.0)
    assert list(limiter._dropping) == ["mad"]
    [summary] = limiter.summaries(60.0)
    assert (summary.device_id, summary.dropped) == ("mad", 3)
    assert limiter._dropping == {} and limiter.summaries(120.0) == []
    assert [limiter.allow("mad", 120.0) for _ in range(3)] == [True, True, False]
    assert list(limiter._dropping) == ["mad"]


def test_all_due_summaries_and_idle_buckets_are_forgotten() -> None:
    limiter = FloodLimiter(rate=2.0, burst=2, summary_every_s=60)
    for _ in range(4):
        limiter.allow("mad", 10.0)
    limiter.allow("calm", 10.0)
    limiter.sweep(10.5)  # buckets not yet full again are kept
    assert set(limiter._buckets) == {"mad", "calm"}
    limiter.sweep(500.0)  # idle; but the one with drops to report is kept
    assert set(limiter._buckets) == {"mad"} and limiter.dropped("mad") == 2
    assert [(s.device_id, s.dropped) for s in limiter.summaries(11.0, all_due=True)] == [("mad", 2)]
    limiter.sweep(500.0)
    assert limiter._buckets == {}


def test_a_batch_takes_every_alarm_but_only_so_many_others() -> None:
    queue: LaneQueue[str] = LaneQueue()
    for n in range(10):
        queue.put(f"power-{n}", Lane.TECHNICAL, f"base-{n}")
    queue.put("sos-1", Lane.ALARM, "dev-1")
    queue.put("sos-2", Lane.ALARM, "dev-2")
    assert queue.take(100, others=3) == ["sos-1", "sos-2", "power-0", "power-1", "power-2"]
    assert queue.take(100, others=3) == ["power-3", "power-4", "power-5"]
    assert queue.take(2, others=3) == ["power-6", "power-7"]  # the limit still holds
    assert len(queue) == 2


def test_the_queue_says_when_an_alarm_is_waiting() -> None:
    q: LaneQueue[str] = LaneQueue()
    q.put("hb", Lane.ROUTINE, "d1")
    q.put("cancel", Lane.CALL, "d2")
    assert not q.has_alarm
    q.put("sos", Lane.ALARM, "d2")  # takes d2's cancel along into the alarm lane
    assert q.has_alarm
    assert q.take(1) == ["cancel"]
    assert q.has_alarm
    assert q.take(1) == ["sos"]
    assert not q.has_alarm
