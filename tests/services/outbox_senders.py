"""What the outbox tests share: a channel sender whose requests can be held open (a
provider that hangs), counting how many are in flight at once, and a way to open the
dispatcher with ``[sms]`` settings of a test's own (closed when the test is done)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select

from dispatcher.adapters.db import schema as db
from dispatcher.bootstrap import App
from dispatcher.services.channels import Outgoing, Receipt
from dispatcher.testing import FakeChannelSender, FakeClock
from tests.support.app import built_app, event, settings_for

TOPIC = "eldercall/v1/dev/{}/event"


class HoldingSender(FakeChannelSender):
    """A fake sender whose requests matching :meth:`hold` stay open until
    :meth:`release` (or for ever: the provider hangs)."""

    def __init__(self, channel: str = "sms") -> None:
        super().__init__(channel)
        self.in_flight = 0
        self.most_in_flight = 0
        self.held: list[Outgoing] = []  # requests being held open now
        self._hold: Callable[[Outgoing], bool] = lambda _: False
        self._released = asyncio.Event()

    def hold(self, predicate: Callable[[Outgoing], bool]) -> None:
        self._hold = predicate
        self._released.clear()

    def release(self) -> None:
        self._hold = lambda _: False
        self._released.set()

    async def send(self, message: Outgoing) -> Receipt:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self._hold(message):
                self.held.append(message)
                try:
                    await self._released.wait()
                finally:
                    self.held.remove(message)
            await asyncio.sleep(0)  # an answer takes a turn of the loop, at least
            return await super().send(message)
        finally:
            self.in_flight -= 1

    async def wait_until_held(self, count: int = 1, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while len(self.held) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.held)} of {count} requests held")
            await asyncio.sleep(0.005)


@asynccontextmanager
async def open_app(
    tmp_path: Path, database_url: str, clock: FakeClock, sms: FakeChannelSender, **sms_settings: Any
) -> AsyncIterator[App]:
    """The app on this database with ``sms`` as its sender, closed on the way out."""
    settings = settings_for(tmp_path, database={"url": database_url}, sms=sms_settings)
    app = await built_app(settings, clock, sms)
    try:
        yield app
    finally:
        await app.aclose()


async def press(app: App, device: str, kind: str = "emergency", ref: str = "e1") -> str:
    ack = await app.intake.on_event(device, TOPIC.format(device), event(ref, kind))
    assert ack is not None and ack.call_id
    return ack.call_id


async def rows(app: App) -> list[Any]:
    async with app.sessions() as s:
        return list(await s.execute(select(db.sms_outbox).order_by(db.sms_outbox.c.id)))


async def timeline(app: App, call_id: str) -> list[tuple[str, str]]:
    view = await app.operations.get_call(call_id)
    return [(e.action, e.detail) for e in view.timeline]
