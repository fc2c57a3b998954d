"""A database read for watching (a scrape, a readiness probe) that a storm of requests
cannot multiply and a slow database cannot pile up.

At most one run of the work is in flight: a caller that comes while it runs waits for
the same run. A caller waits at most ``timeout_s`` and then gets a TimeoutError, but the
run is never cancelled: cutting a SQLite transaction in half can leave its write lock
with a connection nobody owns (see ``dispatcher.adapters.mqtt.gateway``). The next
caller waits for that same run instead of starting another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class OneAtATime(Generic[T]):
    def __init__(self, work: Callable[[], Awaitable[T]], timeout_s: float) -> None:
        self._work = work
        self._timeout_s = timeout_s
        self._running: asyncio.Future[T] | None = None

    async def __call__(self) -> T:
        if self._running is None:
            self._running = asyncio.ensure_future(self._work())
        running = self._running
        done, _ = await asyncio.wait({running}, timeout=self._timeout_s)
        if not done:
            raise TimeoutError(f"no answer within {self._timeout_s:g} s")
        if self._running is running:
            self._running = None
        return running.result()
