"""首问负责: taking a call makes the taker its owner; nobody else may take it from them
unless its acknowledgement timeout has fired (nobody acted on it)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dispatcher.core import calls as lifecycle
from dispatcher.core.calls import AlreadyTakenError, CallState, Outcome
from tests.core.test_escalation_policy import T0, new_call


def test_the_first_to_take_owns_the_call() -> None:
    call = new_call()
    t = lifecycle.take(call, "ann", "console", T0 + timedelta(seconds=20))
    assert call.state is CallState.ACKNOWLEDGED and call.held_by == "ann"
    assert [e.actor for e in t.timeline] == ["ann"]
    assert t.device_update is not None  # the device hears "acknowledged"


def test_another_operator_cannot_take_a_taken_call() -> None:
    call = new_call()
    lifecycle.take(call, "ann", "console", T0)
    with pytest.raises(AlreadyTakenError) as refused:
        lifecycle.take(call, "bob", "console", T0 + timedelta(seconds=5))
    assert refused.value.owner == "ann" and call.held_by == "ann"


def test_taking_ones_own_call_again_changes_nothing() -> None:
    call = new_call()
    lifecycle.take(call, "ann", "console", T0)
    t = lifecycle.take(call, "ann", "console", T0 + timedelta(seconds=5))
    assert t.timeline == [] and call.held_by == "ann"


def test_a_call_whose_acknowledgement_timed_out_may_be_taken_over() -> None:
    call = new_call()
    lifecycle.take(call, "ann", "console", T0)
    call.ack_step = 1  # the acknowledgement timeout fired: ann did not act on it
    lifecycle.take(call, "bob", "console", T0 + timedelta(minutes=20))
    assert call.held_by == "bob"


def test_a_resolved_call_cannot_be_taken() -> None:
    call = new_call()
    lifecycle.resolve(call, "ann", "console", Outcome.FALSE_ALARM, T0)
    with pytest.raises(lifecycle.InvalidTransitionError):
        lifecycle.take(call, "bob", "console", T0 + timedelta(seconds=1))
