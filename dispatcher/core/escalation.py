"""Escalation policies as data, and the pure arithmetic of when each step is due.

A policy is copied onto a call when the call opens (as JSON in the database), so
editing a policy never changes a call already in progress.

Step numbers of one escalation (``index``, 0-based) run on for ever:

- ``0 .. last``: the policy's own steps, each ``delay_s`` after escalation started;
- ``last + 1 .. last + repeat``: the last step again, every ``repeat_every_s``
  (``repeat = None``, the built-in default, repeats it for ever);
- after that the policy is *exhausted*, and the call still must not go silent:
  :data:`EXHAUSTED_TARGETS` (the command-centre hotline and the district's
  supervisors) are reminded every ``repeat_every_s`` until somebody acknowledges.

An acknowledged call that nobody resolves escalates again through the policy's
:class:`AckTimeout`: first the person who acknowledged it, then the next levels.

Beside the steps, a policy's :class:`Watchdog` pages the shift supervisor when nobody
has taken a call some time after it opened (``dispatcher.core.watchdog``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class Target(StrEnum):
    """The named targets. Each is resolved against the rota at the moment the step fires.

    Besides these, a target may be ``rotation:<id>``, ``person:<staff id>``,
    ``on_duty:<community|street|district>[:<primary|backup>]`` or
    ``emergency_contacts:<n>`` (the first n contacts); see :func:`parse_target`.
    """

    HOTLINE = "hotline"  # the command centre's operators on duty
    COMMUNITY = "community"  # on duty for the resident's community, else street, else district
    STREET_SUPERVISOR = "street_supervisor"  # the supervisor of the resident's street
    EMERGENCY_CONTACTS = "emergency_contacts"  # the resident's family, in their order
    DISTRICT_SUPERVISORS = "district_supervisors"  # the district's supervisors
    ACKNOWLEDGER = "acknowledger"  # whoever holds the call (acknowledgement timeout)
    # The maintenance team on duty (rota.toml's schedule of area "maintenance"), else
    # the hotline: technical alerts go to the people who visit homes to fix devices.
    MAINTENANCE = "maintenance"


class TargetKind(StrEnum):
    NAMED = "named"  # one of Target
    ROTATION = "rotation"
    PERSON = "person"
    ON_DUTY = "on_duty"
    CONTACTS = "emergency_contacts"


LEVELS = ("community", "street", "district")
SHIFT_ROLES = ("primary", "backup")
CHANNELS = ("sms", "voice")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class ParsedTarget:
    kind: TargetKind
    name: str = ""  # the Target value, rotation id, staff id or level
    role: str | None = None  # on_duty: primary or backup; None for both
    count: int | None = None  # emergency_contacts:<n>


def parse_target(spec: str) -> ParsedTarget:
    """Read one target spec; raises ValueError saying what is wrong with it."""
    head, _, rest = spec.partition(":")
    if not rest:
        try:
            return ParsedTarget(TargetKind.NAMED, Target(spec).value)
        except ValueError:
            raise ValueError(f"unknown target {spec!r}") from None
    if head == "rotation" or head == "person":
        if not _ID_RE.match(rest):
            raise ValueError(f"target {spec!r}: {rest!r} is not a valid {head} id")
        return ParsedTarget(TargetKind(head), rest)
    if head == "on_duty":
        level, _, role = rest.partition(":")
        if level not in LEVELS:
            raise ValueError(f"target {spec!r}: the level must be one of {', '.join(LEVELS)}")
        if role and role not in SHIFT_ROLES:
            raise ValueError(f"target {spec!r}: the role must be primary or backup")
        return ParsedTarget(TargetKind.ON_DUTY, level, role or None)
    if head == "emergency_contacts":
        if not rest.isdigit() or int(rest) < 1:
            raise ValueError(f"target {spec!r}: the count must be a whole number from 1")
        return ParsedTarget(TargetKind.CONTACTS, count=int(rest))
    raise ValueError(f"unknown target {spec!r}")


def _targets(specs: tuple[str, ...]) -> tuple[str, ...]:
    if not specs:
        raise ValueError("a step needs at least one target")
    for spec in specs:
        parse_target(spec)
    return tuple(str(s) for s in specs)


@dataclass(frozen=True)
class Step:
    """Fires ``delay_s`` after escalation starts and notifies every target in ``targets``,
    by each channel in ``channels``."""

    delay_s: int
    targets: tuple[str, ...]
    channels: tuple[str, ...] = ("sms",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", _targets(tuple(self.targets)))
        if not self.channels:
            raise ValueError("a step needs at least one channel")
        for c in self.channels:
            if c not in CHANNELS:
                raise ValueError(f"unknown channel {c!r} (one of {', '.join(CHANNELS)})")

    def to_json(self) -> dict[str, Any]:
        return {
            "delay_s": self.delay_s,
            "targets": [str(t) for t in self.targets],
            "channels": list(self.channels),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Step:
        return cls(
            int(data["delay_s"]),
            tuple(str(t) for t in data["targets"]),
            tuple(str(c) for c in data.get("channels", ("sms",))),
        )


def _check_steps(steps: tuple[Step, ...], repeat_every_s: int) -> None:
    if not steps:
        raise ValueError("a policy needs at least one step")
    delays = [s.delay_s for s in steps]
    if delays[0] < 0:
        raise ValueError("step delays must not be negative")
    if delays != sorted(delays):
        raise ValueError("steps must be in order of their delays")
    if repeat_every_s <= 0:
        raise ValueError("repeat_every_s must be positive")


def _due(steps: tuple[Step, ...], repeat_every_s: int, start: datetime, index: int) -> datetime:
    last = len(steps) - 1
    if index <= last:
        return start + timedelta(seconds=steps[index].delay_s)
    return start + timedelta(seconds=steps[last].delay_s + (index - last) * repeat_every_s)


def _gap(steps: tuple[Step, ...], repeat_every_s: int, index: int) -> timedelta:
    """From step ``index`` falling due to step ``index + 1`` falling due."""
    last = len(steps) - 1
    if index < last:
        return timedelta(seconds=steps[index + 1].delay_s - steps[index].delay_s)
    return timedelta(seconds=repeat_every_s)


def _latest_due(
    steps: tuple[Step, ...], repeat_every_s: int, first: int, due: datetime, now: datetime
) -> int:
    """Step ``first`` fell due at ``due`` and each later one follows at its gap: the
    last of them due by ``now``. More than ``first`` means the escalation was held up
    (a stop, a suspend, a step of the clock nobody saw) for longer than ``first``'s
    gap to the next: those steps were *missed*, and are caught up as one.

    Steps that fall due at the same moment (a gap of 0) are never merged: they fire
    one after another as they always do, so the catch-up stops before them."""
    last = len(steps) - 1
    index, at = first, due
    while index < last:
        gap = _gap(steps, repeat_every_s, index)
        if gap <= timedelta(0) or at + gap > now:
            return index
        index, at = index + 1, at + gap
    # The repeats (and the reminders once a policy is exhausted) keep one cadence.
    if now < at:
        return index
    return index + (now - at) // timedelta(seconds=repeat_every_s)


def _merged(steps: tuple[Step, ...], between: range, then: Step) -> Step:
    """One step that reaches everyone the steps in ``between`` name, and then ``then``'s:
    a catch-up must not leave out whom a missed step would have told."""
    targets: dict[str, None] = {}
    channels: dict[str, None] = {}
    for step in (*(steps[i] for i in between if i < len(steps)), then):
        targets.update(dict.fromkeys(step.targets))
        channels.update(dict.fromkeys(step.channels))
    return Step(then.delay_s, tuple(targets), tuple(channels))


@dataclass(frozen=True)
class AckTimeout:
    """An acknowledged call not resolved ``after_s`` after the acknowledgement
    escalates again through ``steps`` (delays counted from that deadline), the last
    step repeating every ``repeat_every_s`` until an operator resolves the call or
    somebody acknowledges it again."""

    after_s: int
    steps: tuple[Step, ...]
    repeat_every_s: int

    def __post_init__(self) -> None:
        if self.after_s <= 0:
            raise ValueError("the acknowledgement timeout must be positive")
        _check_steps(self.steps, self.repeat_every_s)

    def step(self, index: int) -> Step:
        return self.steps[min(index, len(self.steps) - 1)]

    def due_at(self, deadline: datetime, index: int) -> datetime:
        return _due(self.steps, self.repeat_every_s, deadline, index)

    def gap_after(self, index: int) -> timedelta:
        return _gap(self.steps, self.repeat_every_s, index)

    def latest_due(self, first: int, due: datetime, now: datetime) -> int:
        """See :meth:`Policy.latest_due`."""
        return _latest_due(self.steps, self.repeat_every_s, first, due, now)

    def catch_up_step(self, first: int, index: int) -> Step:
        """See :meth:`Policy.catch_up_step`."""
        if first == index:
            return self.step(index)
        return _merged(self.steps, range(first, index), self.step(index))

    def to_json(self) -> dict[str, Any]:
        return {
            "after_s": self.after_s,
            "repeat_every_s": self.repeat_every_s,
            "steps": [s.to_json() for s in self.steps],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AckTimeout:
        return cls(
            after_s=int(data["after_s"]),
            repeat_every_s=int(data["repeat_every_s"]),
            steps=tuple(Step.from_json(s) for s in data["steps"]),
        )


@dataclass(frozen=True)
class Watchdog:
    """A call nobody has taken (acknowledged) ``untaken_after_s`` after it opened pages
    the shift supervisor, then again every ``repeat_every_s`` while still untaken,
    ``repeat`` more times at most: bounded, as the policy's own steps go on anyway."""

    untaken_after_s: int = 120
    repeat_every_s: int = 180
    repeat: int = 3

    def __post_init__(self) -> None:
        if self.untaken_after_s <= 0:
            raise ValueError("the watchdog's untaken_after_s must be positive")
        if self.repeat_every_s <= 0:
            raise ValueError("the watchdog's repeat_every_s must be positive")
        if self.repeat < 0:
            raise ValueError("the watchdog's repeat must not be negative")

    @property
    def pages(self) -> int:
        """How many pages a call may send at most: the first and its repeats."""
        return 1 + self.repeat

    def to_json(self) -> dict[str, Any]:
        return {
            "untaken_after_s": self.untaken_after_s,
            "repeat_every_s": self.repeat_every_s,
            "repeat": self.repeat,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Watchdog:
        return cls(int(data["untaken_after_s"]), int(data["repeat_every_s"]), int(data["repeat"]))


# Once a policy's repeats are used up, these are reminded at the repeat interval:
# an unanswered call may be a death, so it never goes silent.
EXHAUSTED_TARGETS: tuple[str, ...] = (Target.HOTLINE.value, Target.DISTRICT_SUPERVISORS.value)


@dataclass(frozen=True)
class Policy:
    """Ordered steps; after the last, the last step repeats every ``repeat_every_s``,
    ``repeat`` times (None: for ever), then :data:`EXHAUSTED_TARGETS` are reminded at
    that interval until somebody acknowledges."""

    name: str
    steps: tuple[Step, ...]
    repeat_every_s: int
    repeat: int | None = None
    ack_timeout: AckTimeout | None = field(default=None)
    watchdog: Watchdog | None = field(default=None)

    def __post_init__(self) -> None:
        _check_steps(self.steps, self.repeat_every_s)
        if self.repeat is not None and self.repeat < 0:
            raise ValueError("repeat must not be negative")

    @property
    def last(self) -> int:
        return len(self.steps) - 1

    def is_exhausted(self, index: int) -> bool:
        """Whether step number ``index`` comes after the policy's repeats are used up."""
        return self.repeat is not None and index > self.last + self.repeat

    def step(self, index: int) -> Step:
        """The step fired as number ``index`` (0-based); past the end, the last step
        again; once exhausted, the command-centre reminder."""
        last = self.steps[min(index, self.last)]
        if self.is_exhausted(index):
            return Step(0, EXHAUSTED_TARGETS, last.channels)
        return last

    def due_at(self, started_at: datetime, index: int) -> datetime:
        """When step number ``index`` falls due for an escalation started at ``started_at``."""
        return _due(self.steps, self.repeat_every_s, started_at, index)

    def gap_after(self, index: int) -> timedelta:
        """From step ``index`` falling due to step ``index + 1`` falling due."""
        return _gap(self.steps, self.repeat_every_s, index)

    def latest_due(self, first: int, due: datetime, now: datetime) -> int:
        """The last step due by ``now`` when step ``first`` fell due at ``due``: ``first``
        itself unless the escalation was held up for longer than its gap to the next."""
        return _latest_due(self.steps, self.repeat_every_s, first, due, now)

    def catch_up_step(self, first: int, index: int) -> Step:
        """The step fired as number ``index`` when steps ``first`` to ``index`` were all
        due at once: step ``index``, reaching also whom the missed policy steps name
        (a missed repeat names nobody new)."""
        if first == index:
            return self.step(index)
        return _merged(self.steps, range(first, min(index, len(self.steps))), self.step(index))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "repeat_every_s": self.repeat_every_s,
            "steps": [s.to_json() for s in self.steps],
            "repeat": self.repeat,
            "ack_timeout": self.ack_timeout.to_json() if self.ack_timeout else None,
            "watchdog": self.watchdog.to_json() if self.watchdog else None,
        }
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Policy:
        """Also reads the format of calls stored before issue 3 (no channels, no
        repeat, no acknowledgement timeout) and before the watchdog (none): those keep
        escalating as they did."""
        ack = data.get("ack_timeout")
        dog = data.get("watchdog")
        repeat = data.get("repeat")
        return cls(
            name=str(data["name"]),
            repeat_every_s=int(data["repeat_every_s"]),
            steps=tuple(Step.from_json(s) for s in data["steps"]),
            repeat=None if repeat is None else int(repeat),
            ack_timeout=AckTimeout.from_json(ack) if ack else None,
            watchdog=Watchdog.from_json(dog) if dog else None,
        )


_H, _C, _S, _E, _D, _A = (
    Target.HOTLINE.value,
    Target.COMMUNITY.value,
    Target.STREET_SUPERVISOR.value,
    Target.EMERGENCY_CONTACTS.value,
    Target.DISTRICT_SUPERVISORS.value,
    Target.ACKNOWLEDGER.value,
)

# Acknowledged but still not resolved after 45 minutes: remind the person who took
# it, then after 5 more minutes their street supervisor, after 10 the district's
# supervisors and the hotline, and that again every 15 minutes.
EMERGENCY_ACK_TIMEOUT = AckTimeout(
    after_s=45 * 60,
    steps=(Step(0, (_A,)), Step(300, (_A, _S)), Step(600, (_A, _S, _D, _H))),
    repeat_every_s=900,
)
# Emergencies and falls: the hotline at once, the community after a minute, the
# street supervisor and the family after three; then everyone again every three
# minutes until a person acknowledges. Earlier targets stay on each later step, as
# a reminder that the call is still unanswered.
EMERGENCY = Policy(
    name="emergency",
    steps=(Step(0, (_H,)), Step(60, (_H, _C)), Step(180, (_H, _C, _S, _E))),
    repeat_every_s=180,
    ack_timeout=EMERGENCY_ACK_TIMEOUT,
    # Nobody has taken it two minutes after the press: the shift supervisor is paged,
    # and again every three minutes, three more times, while still nobody takes it.
    watchdog=Watchdog(untaken_after_s=120, repeat_every_s=180, repeat=3),
)
# A service request is not urgent, but it must not be forgotten either: taken and
# not done within four hours, the taker is reminded, an hour later their supervisor.
SERVICE = Policy(
    name="service",
    steps=(Step(0, (_H,)), Step(900, (_H, _C))),
    repeat_every_s=1800,
    ack_timeout=AckTimeout(
        after_s=4 * 3600, steps=(Step(0, (_A,)), Step(3600, (_A, _S))), repeat_every_s=4 * 3600
    ),
    # Half an hour untaken (the community has been told for a quarter of an hour).
    watchdog=Watchdog(untaken_after_s=1800, repeat_every_s=1800, repeat=1),
)
# A device that may not be able to call for help: the maintenance team on duty (the
# hotline when the rota has none), reminded every 4 h; taken and not fixed within a
# day, the taker is reminded daily. No watchdog: a power cut
# across a building opens many of these at once (they are grouped, but not all of them).
TECHNICAL = Policy(
    name="technical",
    steps=(Step(0, (Target.MAINTENANCE.value,)),),
    repeat_every_s=4 * 3600,
    ack_timeout=AckTimeout(after_s=24 * 3600, steps=(Step(0, (_A,)),), repeat_every_s=24 * 3600),
)

DEFAULT_POLICIES: dict[str, Policy] = {
    "emergency": EMERGENCY,
    "fall": EMERGENCY,
    "service": SERVICE,
    "technical": TECHNICAL,
}
KINDS = tuple(DEFAULT_POLICIES)
