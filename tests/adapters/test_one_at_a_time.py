"""OneAtATime: a storm of callers shares one run of the work, and a caller that gives
up never cancels it (a SQLite transaction cut in half can keep its write lock)."""

from __future__ import annotations

import asyncio

import pytest

from dispatcher.adapters.metrics.one_at_a_time import OneAtATime


class GatedWork:
    def __init__(self) -> None:
        self.runs = 0
        self.release = asyncio.Event()

    async def __call__(self) -> int:
        self.runs += 1
        await self.release.wait()
        return self.runs


async def test_callers_at_once_share_one_run() -> None:
    work = GatedWork()
    once = OneAtATime(work, timeout_s=30)
    callers = [asyncio.create_task(once()) for _ in range(5)]
    await asyncio.sleep(0)  # every caller is waiting now
    work.release.set()
    assert await asyncio.gather(*callers) == [1] * 5
    assert work.runs == 1


async def test_a_caller_that_gives_up_leaves_the_run_to_the_next() -> None:
    work = GatedWork()
    once = OneAtATime(work, timeout_s=0.05)
    with pytest.raises(TimeoutError):
        await once()  # the work is held: no answer in time
    work.release.set()
    assert await once() == 1  # the same run, let finish
    assert work.runs == 1  # neither cancelled nor started again


async def test_the_next_call_after_a_finished_run_starts_a_new_one() -> None:
    work = GatedWork()
    work.release.set()
    once = OneAtATime(work, timeout_s=30)
    assert [await once(), await once()] == [1, 2]
