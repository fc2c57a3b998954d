"""Which device message goes first, and which device is flooding: the pure decisions
in front of the intake's batches.

A district's worst hour is a power cut (every base unit sends ``power_lost``), a storm
of heartbeats, a device gone mad; somewhere in it one resident presses the red
button. So the intake never takes messages in arrival order alone:

- :class:`Lane` orders them: alarms (emergency, fall), then the other call events,
  then technical events and statuses, then heartbeats and what cannot be read.
- :class:`LaneQueue` hands them out lane by lane, while keeping one device's call
  events (emergency, fall, service, cancel, presence) in their arrival order: an
  alarm takes the same device's waiting call events ahead with it, so a
  ``cancel`` pressed before a new ``emergency`` is still applied before it.
- :class:`FloodLimiter` gives each device a token bucket for everything but alarms;
  what is over the limit is dropped and counted, one summary a minute per device.
  Alarms are never dropped.

Times are plain seconds from any monotonic clock, given by the caller.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Generic, TypeVar

from devices.protocol import EventType


class Lane(IntEnum):
    """Lower goes first."""

    ALARM = 0  # emergency, fall: a life may depend on it
    CALL = 1  # service, cancel, presence: they change a resident's call
    TECHNICAL = 2  # battery, power, the device's status
    ROUTINE = 3  # heartbeats, unreadable messages, topics we do not serve


_ALARMS = frozenset({EventType.EMERGENCY, EventType.FALL})
_CALL_EVENTS = frozenset({EventType.SERVICE, EventType.CANCEL, EventType.PRESENCE})


def lane_of(event_type: EventType | None, *, status: bool = False) -> Lane:
    """The lane of a device event of ``event_type`` (None: it could not be read), or of
    a status message."""
    if status:
        return Lane.TECHNICAL
    if event_type is None or event_type is EventType.HEARTBEAT:
        return Lane.ROUTINE
    if event_type in _ALARMS:
        return Lane.ALARM
    if event_type in _CALL_EVENTS:
        return Lane.CALL
    return Lane.TECHNICAL


T = TypeVar("T")


@dataclass(eq=False)
class _Entry(Generic[T]):
    item: T
    device_id: str | None
    moved: bool = False  # taken into the alarm lane ahead of its device's alarm


class LaneQueue(Generic[T]):
    """Items in lanes, taken lowest lane first and in arrival order within a lane.

    Keeps per-device order among call events: when an alarm of a device is put, the
    device's call events still waiting in :attr:`Lane.CALL` move into the alarm lane
    just ahead of it (O(that device's waiting events), not O(queue))."""

    def __init__(self) -> None:
        self._lanes: dict[Lane, deque[_Entry[T]]] = {lane: deque() for lane in Lane}
        self._calls_of: dict[str, deque[_Entry[T]]] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def has_alarm(self) -> bool:
        """An alarm is waiting: the next batch should not wait for company."""
        return bool(self._lanes[Lane.ALARM])

    def put(self, item: T, lane: Lane, device_id: str | None) -> None:
        entry = _Entry(item, device_id)
        if lane is Lane.ALARM and device_id is not None:
            for waiting in self._calls_of.pop(device_id, ()):
                if not waiting.moved:
                    waiting.moved = True
                    self._lanes[Lane.ALARM].append(_Entry(waiting.item, device_id))
        elif lane is Lane.CALL and device_id is not None:
            self._calls_of.setdefault(device_id, deque()).append(entry)
        self._lanes[lane].append(entry)
        self._size += 1

    def take(self, limit: int, others: int | None = None) -> list[T]:
        """Up to ``limit`` items, alarms first; of the other lanes at most ``others``
        (a batch of technical events or heartbeats stays short, so that an alarm
        arriving meanwhile waits for little)."""
        out: list[T] = []
        self._take_lane(Lane.ALARM, out, limit)
        room = limit if others is None else min(limit, len(out) + others)
        for lane in (Lane.CALL, Lane.TECHNICAL, Lane.ROUTINE):
            self._take_lane(lane, out, room)
        return out

    def _take_lane(self, lane: Lane, out: list[T], room: int) -> None:
        queue = self._lanes[lane]
        while queue and len(out) < room:
            entry = queue.popleft()
            if entry.moved:
                continue  # already handed out from the alarm lane
            if lane is Lane.CALL and entry.device_id is not None:
                self._forget_call(entry)
            out.append(entry.item)
            self._size -= 1

    def clear(self) -> list[T]:
        """Empty the queue; returns what was in it."""
        rest = self.take(self._size)
        self._calls_of.clear()
        return rest

    def _forget_call(self, entry: _Entry[T]) -> None:
        assert entry.device_id is not None
        waiting = self._calls_of.get(entry.device_id)
        if waiting and waiting[0] is entry:
            waiting.popleft()
            if not waiting:
                del self._calls_of[entry.device_id]


@dataclass
class _Bucket:
    tokens: float
    at: float
    dropped: int = 0
    first_drop_at: float | None = None


@dataclass(frozen=True)
class DropSummary:
    """What was dropped from one device since ``since`` (monotonic seconds)."""

    device_id: str
    dropped: int
    since: float


@dataclass
class FloodLimiter:
    """A token bucket per device for its non-alarm messages.

    ``rate`` tokens a second, up to ``burst``; a message over the limit is dropped and
    counted, and :meth:`summaries` reports each flooding device once per
    ``summary_every_s``. Idle devices' buckets are forgotten (:meth:`sweep`)."""

    rate: float
    burst: float
    summary_every_s: float = 60.0
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    # The devices with drops not yet summarised, in the order they began: what
    # summaries() looks at (not every device heard from, thousands in a storm).
    _dropping: dict[str, None] = field(default_factory=dict)

    def allow(self, device_id: str, now: float) -> bool:
        """Whether ``device_id`` may send one more non-alarm message now; False
        counts it as dropped."""
        bucket = self._buckets.get(device_id)
        if bucket is None:
            bucket = self._buckets[device_id] = _Bucket(tokens=self.burst, at=now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        bucket.dropped += 1
        if bucket.first_drop_at is None:
            bucket.first_drop_at = now
            self._dropping[device_id] = None
        return False

    def summaries(self, now: float, *, all_due: bool = False) -> list[DropSummary]:
        """The devices whose drops have been counted for ``summary_every_s`` (or all
        with drops, when ``all_due``); their counts start again."""
        out = []
        for device_id in list(self._dropping):
            bucket = self._buckets[device_id]
            since = bucket.first_drop_at
            if since is None or (not all_due and now - since < self.summary_every_s):
                continue
            out.append(DropSummary(device_id, bucket.dropped, since))
            bucket.dropped, bucket.first_drop_at = 0, None
            del self._dropping[device_id]
        return out

    def sweep(self, now: float) -> None:
        """Forget devices whose bucket is full again and who have no drops to report.
        Goes over every device heard from lately: now and then, not at every batch."""
        full_after = self.burst / self.rate if self.rate > 0 else float("inf")
        idle = [
            d
            for d, b in self._buckets.items()
            if b.first_drop_at is None and now - b.at >= full_after
        ]
        for device_id in idle:
            del self._buckets[device_id]

    def dropped(self, device_id: str) -> int:
        """How many of the device's messages were dropped since its last summary."""
        bucket = self._buckets.get(device_id)
        return bucket.dropped if bucket else 0
