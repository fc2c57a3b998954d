"""One writer at a time, queued in asyncio rather than in SQLite's busy handler.

SQLite has a single write lock (every writing transaction here begins IMMEDIATE). A
connection that finds it taken waits in SQLite's busy handler, which sleeps between
tries (up to 100 ms a try) while the others take turns: measured under a burst, the
intake's batch lost the lock to the escalator's and the outboxes' short transactions
for seconds, and a third of the samples were the daemon waiting for itself. The
daemon's writers therefore queue here first, first come first served, and reach
SQLite one by one. (PostgreSQL has row locks and needs no gate.)

Never open a gated transaction while holding one in the same task: it would wait for
itself (on SQLite that already failed after the 30 s busy timeout).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class WriteGate:
    def __init__(self) -> None:
        self._held = False
        self._waiting: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        if self._held:
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.append(turn)
            try:
                await turn
            except BaseException:
                if turn.done() and not turn.cancelled():
                    self._pass_on()  # handed the gate just as we were cancelled
                else:
                    turn.cancel()  # skipped when its turn comes
                raise
        else:
            self._held = True
        try:
            yield
        finally:
            self._pass_on()

    def _pass_on(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the gate stays held, by the next in line
                return
        self._held = False
