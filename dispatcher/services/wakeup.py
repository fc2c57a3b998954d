"""A poke from one component to a poller: there is work now, do not wait for the poll."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class Wakeup:
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self) -> None:
        self.event.set()
