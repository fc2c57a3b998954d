"""The engine's guarantee on a real database (SQLite and PostgreSQL), property-based:
whatever the sequence of clock advances, presses, acknowledgements, escalate_now,
cancels, restarts (a new Escalator on the same database) and crashes in the middle
of a step's transaction, no step index of an escalation fires twice and every due
step fires."""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db.escalator_store import SqlEscalationStore
from dispatcher.adapters.db.transactions import Transactions
from dispatcher.bootstrap import App
from dispatcher.core.calls import Call, InvalidTransitionError, Outcome, TimelineEntry
from dispatcher.services.escalator import Escalator, Fired
from dispatcher.testing import FakeChannelSender, FakeClock
from tests.services.test_policy_flow import build, event

# Steps 2 and 3 name nobody for an unknown device (no contacts, no community) and
# sometimes for a registered one (c-lh has a backup only on weekday mornings).
POLICY = """
[emergency]
repeat_every_s = 60
repeat = 2
steps = [
  { delay_s = 0, targets = ["hotline"] },
  { delay_s = 20, targets = ["emergency_contacts:1"] },
  { delay_s = 40, targets = ["on_duty:community:backup"] },
  { delay_s = 60, targets = ["street_supervisor"] },
]
[emergency.ack_timeout]
after_s = 120
repeat_every_s = 60
steps = [
  { delay_s = 0, targets = ["acknowledger"] },
  { delay_s = 30, targets = ["on_duty:street:backup"] },
  { delay_s = 40, targets = ["hotline"] },
]
"""
STEP_RE = re.compile(r"^(acknowledgement timeout )?step (\d+) ")
# A catch-up fires one step for the steps missed before it (issue 8).
CATCH_UP_RE = re.compile(r"^catch-up: .*\((acknowledgement timeout )?step (\d+) was due")


class Crash(Exception):
    pass


class CrashingEscalator(Escalator):
    """Dies after queueing a step's notifications, before its transaction commits."""

    async def _notify(self, *args: object, **kwargs: object) -> Fired:
        await super()._notify(*args, **kwargs)  # type: ignore[arg-type]
        raise Crash()


@pytest.fixture
async def engine_app(
    tmp_path: Path, database_url: str, clock: FakeClock, fake_sms: FakeChannelSender
) -> AsyncIterator[App]:
    app = await build(tmp_path, database_url, clock, fake_sms, POLICY)
    yield app
    await app.aclose()


action = st.one_of(
    st.tuples(st.just("advance"), st.integers(min_value=0, max_value=150)),
    st.tuples(st.just("press"), st.sampled_from(["emergency", "service"])),
    st.tuples(st.just("ack"), st.sampled_from(["demo-operator", "wang-fang"])),
    st.just(("escalate_now", "")),
    st.just(("cancel", "")),
    st.just(("restart", "")),
    st.just(("crash", "")),
)
examples = itertools.count()


def fired_steps(entries: list[TimelineEntry]) -> tuple[list[list[int]], list[list[int]]]:
    """Step numbers fired per escalation and per acknowledgement-timeout run, in order."""
    runs: list[list[int]] = []
    ack_runs: list[list[int]] = [[]]
    for e in entries:
        if e.action in ("opened", "reopened", "priority_raised"):
            runs.append([])
        if e.action in ("acknowledged", "priority_raised"):
            ack_runs.append([])
        caught_up = CATCH_UP_RE.match(e.detail)
        if caught_up and e.action == "catch_up":
            # The missed steps, from the first; the escalated entry that follows is the last.
            run = (ack_runs if caught_up.group(1) else runs)[-1]
            first = int(caught_up.group(2))
            missed = int(e.detail.split()[1])
            run.extend(range(first, first + missed))
        found = STEP_RE.match(e.detail)
        if found and e.action in ("escalated", "ack_escalated", "step_skipped", "nobody_to_notify"):
            (ack_runs if found.group(1) else runs)[-1].append(int(found.group(2)))
    return runs, ack_runs


async def drain(escalator: Escalator) -> None:
    """Poll as the daemon does: again at once while something fired."""
    for _ in range(100):
        if not await escalator.run_due():
            return
    raise AssertionError("the escalator keeps firing: a policy spins")


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(action, max_size=25), st.booleans())
async def test_no_step_fires_twice_and_every_due_step_fires_across_restarts(
    engine_app: App, clock: FakeClock, actions: list[tuple[str, object]], registered: bool
) -> None:
    app = engine_app
    n = next(examples)
    device = "dev-0001" if registered else f"prop-{n}"
    ack = await app.intake.on_event(device, "t", event(f"p{n}-0", "emergency"))
    assert ack is not None and ack.call_id
    call_id = ack.call_id
    escalator = Escalator(Transactions(app.sessions, SqlEscalationStore), app.directory, clock)
    await drain(escalator)
    for i, (name, arg) in enumerate(actions):
        if name == "advance":
            assert isinstance(arg, int)
            clock.advance(arg)
        elif name == "press":
            await app.intake.on_event(device, "t", event(f"p{n}-{i + 1}", str(arg)))
        elif name == "ack":
            await app.operations.acknowledge(call_id, str(arg), "api")
        elif name == "escalate_now":
            await app.operations.escalate_now(call_id, "wang-fang", "sms")
        elif name == "cancel":
            await app.intake.on_event(device, "t", event(f"p{n}-{i + 1}", "cancel"))
        elif name == "restart":
            escalator = Escalator(
                Transactions(app.sessions, SqlEscalationStore), app.directory, clock
            )
        elif name == "crash":
            with contextlib.suppress(Crash):
                await CrashingEscalator(
                    Transactions(app.sessions, SqlEscalationStore), app.directory, clock
                ).run_due()
        await drain(escalator)

    now: datetime = clock.now()
    async with app.sessions() as s:
        call = (await s.scalars(select(Call).where(db.calls.c.id == call_id))).one()
        entries = list(
            await s.scalars(
                select(TimelineEntry)
                .where(db.timeline.c.call_id == call_id)
                .order_by(db.timeline.c.id)
            )
        )
    runs, ack_runs = fired_steps(entries)
    for run in runs + ack_runs:
        assert run == list(range(1, len(run) + 1)), entries  # once each, in order
    assert call.escalation_step == len(runs[-1])
    if call.is_escalating:  # nothing due is left unfired
        assert call.next_escalation_at is not None and call.next_escalation_at > now
    if call.is_ack_escalating:  # (a stopped timeout starts again from step 1)
        assert call.ack_step == len(ack_runs[-1])
        assert call.next_ack_escalation_at is not None and call.next_ack_escalation_at > now
    with contextlib.suppress(InvalidTransitionError):  # already resolved
        await app.operations.resolve(call_id, "demo-operator", "api", Outcome.OTHER)
