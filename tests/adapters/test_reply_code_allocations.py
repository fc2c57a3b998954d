"""Many reply numbers in one transaction (:class:`replycodes.Allocations`): the same
numbers :func:`replycodes.assign` gives one by one, the smallest not active on the
phone, with the free list kept as assign keeps it; on SQLite and PostgreSQL."""

from __future__ import annotations

import random

from sqlalchemy import select

from dispatcher.adapters.db import reply_codes as replycodes
from dispatcher.adapters.db import schema as db
from dispatcher.bootstrap import App
from dispatcher.services.intake import DeviceMessage
from dispatcher.testing import FakeClock
from tests.support.app import event

PHONE = "+8613900000077"  # nobody's: only these numbers are on it


async def open_calls(app: App, count: int, tag: str) -> list[str]:
    batch = [
        DeviceMessage.read(f"alloc-{tag}-{n}", f"eldercall/v1/dev/alloc-{tag}-{n}/event", raw)
        for n in range(count)
        for raw in [event(f"{tag}{n}", "emergency")]
    ]
    acks = await app.intake.on_batch(batch)
    ids = [a.call_id for a in acks if a is not None and a.call_id is not None]
    assert len(ids) == count
    return ids


def smallest_free(active: set[int]) -> int:
    n = 1
    while n in active:
        n += 1
    return n


async def state_of(app: App) -> tuple[dict[int, str], set[int]]:
    """The phone's active numbers (with their calls) and its free list."""
    r, f = db.reply_codes.c, db.reply_code_free.c
    async with app.sessions() as s:
        rows = await s.execute(select(r.number, r.call_id).where(r.phone == PHONE, r.active))
        active = {int(n): str(c) for n, c in rows}
        free = set(await s.scalars(select(f.number).where(f.phone == PHONE)))
    return active, {int(n) for n in free}


def assert_kept_as_assign_keeps_it(active: dict[int, str], free: set[int]) -> None:
    top = max(active, default=0)
    assert not free & set(active)  # no free number is active
    assert {n for n in range(1, top) if n not in active} <= free  # every gap is free


async def test_a_batch_gives_what_assign_would_give(app: App, clock: FakeClock) -> None:
    rng = random.Random(8)
    calls = await open_calls(app, 260, "a")
    expected: dict[str, int] = {}

    # 1. A burst: 150 new numbers for one phone in one transaction.
    async with app.sessions.begin() as s:
        given = replycodes.Allocations(s)
        for call in calls[:150]:
            expected[call] = await given.take(PHONE, call, clock.now())
        await given.flush()
    assert list(expected.values()) == list(range(1, 151))

    # 2. Most of them resolved (more than one chunk of free numbers), the highest kept.
    retired = rng.sample(calls[:149], 100)
    async with app.sessions.begin() as s:
        for call in retired:
            await replycodes.retire(s, call)
            del expected[call]
    active, free = await state_of(app)
    assert len(free) == 100 and max(active) == 150

    # 3. Then the highest ones too (free numbers above the new highest), and a batch
    #    that uses up every free number and goes on above them.
    async with app.sessions.begin() as s:
        for call in [c for c in calls[:150] if expected.get(c, 0) > 140]:
            await replycodes.retire(s, call)
            del expected[call]
    async with app.sessions.begin() as s:
        given = replycodes.Allocations(s)
        numbers = set(expected.values())
        for call in calls[150:]:
            want = smallest_free(numbers)
            got = await given.take(PHONE, call, clock.now())
            assert got == want, f"{call}: {got} where assign gives {want}"
            numbers.add(got)
            expected[call] = got
        await given.flush()

    active, free = await state_of(app)
    assert active == {n: c for c, n in expected.items()}
    assert_kept_as_assign_keeps_it(active, free)
    # And assign, one by one, carries on from there.
    [late] = await open_calls(app, 1, "b")
    async with app.sessions.begin() as s:
        assert await replycodes.assign(s, PHONE, late, clock.now()) == smallest_free(set(active))


async def test_numbers_above_the_highest_are_dropped_as_assign_drops_them(
    app: App, clock: FakeClock
) -> None:
    calls = await open_calls(app, 8, "c")
    async with app.sessions.begin() as s:
        given = replycodes.Allocations(s)
        for call in calls[:6]:
            await given.take(PHONE, call, clock.now())
        await given.flush()
    async with app.sessions.begin() as s:  # 2, 5 and 6 free; 6 and 5 above the highest
        for call in (calls[1], calls[4], calls[5]):
            await replycodes.retire(s, call)
    async with app.sessions.begin() as s:
        given = replycodes.Allocations(s)
        got = [await given.take(PHONE, c, clock.now()) for c in calls[6:]]
        await given.flush()
    assert got == [2, 5]
    active, free = await state_of(app)
    assert sorted(active) == [1, 2, 3, 4, 5] and free == set()


async def test_immediate_numbers_survive_a_rollback_elsewhere(app: App, clock: FakeClock) -> None:
    """In a savepoint each number is written at once; a savepoint rolled back takes its
    numbers back, and forget() reads the phone again: no number given twice."""
    calls = await open_calls(app, 4, "d")
    async with app.sessions.begin() as s:
        given = replycodes.Allocations(s, immediate=True)
        assert await given.take(PHONE, calls[0], clock.now()) == 1
        try:
            async with s.begin_nested():
                assert await given.take(PHONE, calls[1], clock.now()) == 2
                raise RuntimeError("this call's step failed")
        except RuntimeError:
            given.forget()
        assert await given.take(PHONE, calls[2], clock.now()) == 2  # given back, again
        assert await given.take(PHONE, calls[3], clock.now()) == 3
    active, _ = await state_of(app)
    assert active == {1: calls[0], 2: calls[2], 3: calls[3]}
