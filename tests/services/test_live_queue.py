"""The console's live queue: a watch gives the queue at once and ends when the queue
is closed (the daemon stopping), without waiting for its next heartbeat."""

from __future__ import annotations

import asyncio

from dispatcher.bootstrap import App
from dispatcher.services.live_queue import LiveQueue
from tests.support.app import event


async def test_a_watch_sees_the_queue_and_ends_when_the_queue_is_closed(app: App) -> None:
    ack = await app.intake.on_event(
        "dev-0001", "eldercall/v1/dev/dev-0001/event", event("a", "fall")
    )
    assert ack is not None and ack.call_id
    queue = LiveQueue(app.operations, app.directory, app.clock)
    seen: list[list[str]] = []
    first = asyncio.Event()

    async def watch() -> None:
        # A heartbeat far longer than the test's timeout: only close() can end it.
        async for snapshot in queue.watch(app.directory.staff["wang-fang"], heartbeat_s=3600):
            seen.append([row.call_id for row in snapshot.rows])
            first.set()

    watching = asyncio.create_task(watch())
    await asyncio.wait_for(first.wait(), 5)
    assert seen == [[ack.call_id]]
    assert not watching.done()
    await queue.close()
    await asyncio.wait_for(watching, 5)
    assert seen == [[ack.call_id]]  # ended, nothing more yielded

    # A server started again on the same app: its screens' watches run as before.
    later = queue.watch(app.directory.staff["wang-fang"], heartbeat_s=0.05)
    assert [row.call_id for row in (await anext(later)).rows] == [ack.call_id]
    assert [row.call_id for row in (await anext(later)).rows] == [ack.call_id]  # a repeat
    await later.aclose()
