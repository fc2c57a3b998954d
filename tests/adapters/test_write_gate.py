"""The SQLite write gate: one holder at a time, first come first served, and a waiter
that is cancelled never keeps the gate from the next."""

from __future__ import annotations

import asyncio

import pytest

from dispatcher.adapters.db.write_gate import WriteGate


async def test_writers_take_turns_in_the_order_they_came() -> None:
    gate, order = WriteGate(), []
    release = asyncio.Event()

    async def writer(name: str) -> None:
        async with gate.hold():
            order.append(f"{name} in")
            if name == "first":
                await release.wait()
            order.append(f"{name} out")

    tasks = [asyncio.create_task(writer(n)) for n in ("first", "second", "third")]
    await asyncio.sleep(0)
    assert order == ["first in"]  # the others wait their turn
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["first in", "first out", "second in", "second out", "third in", "third out"]


async def test_a_cancelled_waiter_does_not_keep_the_gate() -> None:
    gate = WriteGate()
    holding, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with gate.hold():
            holding.set()
            await release.wait()

    async def waiter() -> None:
        async with gate.hold():
            raise AssertionError("a cancelled waiter never holds the gate")

    first = asyncio.create_task(holder())
    await holding.wait()
    doomed = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    release.set()
    await first
    async with asyncio.timeout(5):  # a deadline, not a measurement: it is free again
        async with gate.hold():
            pass


async def test_a_waiter_cancelled_as_its_turn_comes_passes_the_gate_on() -> None:
    gate = WriteGate()
    holding, release = asyncio.Event(), asyncio.Event()
    served: list[str] = []
    tasks: dict[str, asyncio.Task[None]] = {}

    async def holder() -> None:
        async with gate.hold():
            holding.set()
            await release.wait()
        # The gate was just handed to "unlucky"; it is cancelled before it runs.
        tasks["unlucky"].cancel()

    async def waiter(name: str) -> None:
        async with gate.hold():
            served.append(name)

    first = asyncio.create_task(holder())
    await holding.wait()
    tasks["unlucky"] = asyncio.create_task(waiter("unlucky"))
    last = asyncio.create_task(waiter("last"))
    await asyncio.sleep(0)
    release.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await tasks["unlucky"]
    async with asyncio.timeout(5):  # a deadline, not a measurement
        await last
    assert served == ["last"]
