"""What a delivery report means, per channel, in provider-neutral terms."""

from __future__ import annotations

import pytest

from dispatcher.core.notifications.outcomes import (
    DeliveryReport,
    Fate,
    Outcome,
    Verdict,
    outcome,
    settle,
)


def test_an_undelivered_sms_fails_for_good_unless_the_error_is_temporary() -> None:
    landline = DeliveryReport(
        "undelivered", Fate.UNDELIVERED, error_code=30006, error="landline or unreachable carrier"
    )
    assert outcome("sms", landline) == Outcome(
        Verdict.FAILED, "SMS undelivered, error 30006 (landline or unreachable carrier)"
    )
    off = DeliveryReport("undelivered", Fate.UNDELIVERED, error_code=30003, temporary=True)
    assert outcome("sms", off) == Outcome(
        Verdict.RETRY, "SMS undelivered, error 30003 (no reason given)"
    )
    assert outcome("sms", DeliveryReport("failed", Fate.UNDELIVERED)).reason == "SMS failed"
    for fate in (Fate.UNDER_WAY, Fate.DELIVERED):
        assert outcome("sms", DeliveryReport("x", fate)).verdict is Verdict.NONE


def test_a_call_answered_by_a_machine_or_unanswered_is_tried_again() -> None:
    machine = DeliveryReport(
        "completed", Fate.COMPLETED, answered_by="machine_end_beep", by_machine=True
    )
    assert outcome("voice", machine) == Outcome(
        Verdict.RETRY, "voice call answered by machine_end_beep"
    )
    busy = DeliveryReport("busy", Fate.UNANSWERED)
    assert outcome("voice", busy) == Outcome(Verdict.RETRY, "voice call busy")
    failed = DeliveryReport("failed", Fate.UNDELIVERED)
    assert outcome("voice", failed) == Outcome(Verdict.FAILED, "voice call failed")
    person = DeliveryReport("completed", Fate.COMPLETED, answered_by="human")
    assert outcome("voice", person).verdict is Verdict.NONE
    assert outcome("voice", DeliveryReport("canceled", Fate.CANCELED)).verdict is Verdict.NONE


def test_a_channel_without_outcomes_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="'push'"):
        outcome("push", DeliveryReport("sent", Fate.UNDER_WAY))


def test_a_retry_past_the_retries_fails_saying_how_many_attempts() -> None:
    retry = Outcome(Verdict.RETRY, "voice call busy")
    assert settle(retry, 1, 1) == retry
    assert settle(retry, 2, 1) == Outcome(Verdict.FAILED, "voice call busy (after 2 attempts)")
    failed = Outcome(Verdict.FAILED, "voice call failed")
    assert settle(failed, 9, 1) == failed
