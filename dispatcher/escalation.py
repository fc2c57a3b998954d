"""Escalation policies as data, and the pure arithmetic of when each step is due.

A policy is copied onto a call when the call opens (as JSON in the database), so
editing a policy never changes a call already in progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class Target(StrEnum):
    """Who a step notifies. Each is resolved against the rota at the moment the step fires."""

    HOTLINE = "hotline"  # the command centre's operators on duty
    COMMUNITY = "community"  # on duty for the resident's community, else street, else district
    STREET_SUPERVISOR = "street_supervisor"  # the supervisor of the resident's street
    EMERGENCY_CONTACTS = "emergency_contacts"  # the resident's family, in their order


@dataclass(frozen=True)
class Step:
    """Fires ``delay_s`` after escalation starts and notifies every target in ``targets``."""

    delay_s: int
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class Policy:
    """Ordered steps; after the last, the last step repeats every ``repeat_every_s``
    until somebody acknowledges."""

    name: str
    steps: tuple[Step, ...]
    repeat_every_s: int

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("a policy needs at least one step")
        delays = [s.delay_s for s in self.steps]
        if delays != sorted(delays) or delays[0] < 0:
            raise ValueError("step delays must be non-negative and in order")
        if self.repeat_every_s <= 0:
            raise ValueError("repeat_every_s must be positive")

    def step(self, index: int) -> Step:
        """The step fired as number ``index`` (0-based); past the end, the last step again."""
        return self.steps[min(index, len(self.steps) - 1)]

    def due_at(self, started_at: datetime, index: int) -> datetime:
        """When step number ``index`` falls due for an escalation started at ``started_at``."""
        last = len(self.steps) - 1
        if index <= last:
            return started_at + timedelta(seconds=self.steps[index].delay_s)
        repeats = index - last
        return started_at + timedelta(
            seconds=self.steps[last].delay_s + repeats * self.repeat_every_s
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "repeat_every_s": self.repeat_every_s,
            "steps": [{"delay_s": s.delay_s, "targets": list(s.targets)} for s in self.steps],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Policy:
        return cls(
            name=str(data["name"]),
            repeat_every_s=int(data["repeat_every_s"]),
            steps=tuple(
                Step(int(s["delay_s"]), tuple(Target(t) for t in s["targets"]))
                for s in data["steps"]
            ),
        )


_H, _C, _S, _E = (
    Target.HOTLINE,
    Target.COMMUNITY,
    Target.STREET_SUPERVISOR,
    Target.EMERGENCY_CONTACTS,
)

# Emergencies and falls: the hotline at once, the community after a minute, the
# street supervisor and the family after three; then everyone again every three
# minutes until a person acknowledges. Earlier targets stay on each later step, as
# a reminder that the call is still unanswered.
EMERGENCY = Policy(
    name="emergency",
    steps=(Step(0, (_H,)), Step(60, (_H, _C)), Step(180, (_H, _C, _S, _E))),
    repeat_every_s=180,
)
# A service request is not urgent, but it must not be forgotten either.
SERVICE = Policy(
    name="service",
    steps=(Step(0, (_H,)), Step(900, (_H, _C))),
    repeat_every_s=1800,
)
# A device that may not be able to call for help: the hotline, reminded every 4 h.
TECHNICAL = Policy(name="technical", steps=(Step(0, (_H,)),), repeat_every_s=4 * 3600)

DEFAULT_POLICIES: dict[str, Policy] = {
    "emergency": EMERGENCY,
    "fall": EMERGENCY,
    "service": SERVICE,
    "technical": TECHNICAL,
}
