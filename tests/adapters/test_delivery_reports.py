"""Twilio's status-callback form read into a provider-neutral DeliveryReport, and
Twilio's order of its statuses."""

from __future__ import annotations

from dispatcher.adapters.twilio.delivery_reports import TWILIO_STATUS_ORDER, read_delivery_report
from dispatcher.core.notifications.outcomes import DeliveryReport, Fate

SM = "SM" + "1" * 32
CA = "CA" + "2" * 32


def test_a_message_report_names_its_sid_status_and_error() -> None:
    report = read_delivery_report(
        {"MessageSid": SM, "SmsSid": SM, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    )
    assert report == DeliveryReport(
        status="undelivered",
        fate=Fate.UNDELIVERED,
        sid=SM,
        error_code=30003,
        error="unreachable handset",
        temporary=True,
    )
    older = read_delivery_report({"SmsSid": SM, "SmsStatus": "delivered", "ErrorCode": ""})
    assert (older.sid, older.status, older.fate, older.error_code) == (
        SM,
        "delivered",
        Fate.DELIVERED,
        None,
    )
    landline = read_delivery_report({"MessageStatus": "failed", "ErrorCode": "21614"})
    assert (landline.error, landline.temporary, landline.sid) == (
        "not a mobile number",
        False,
        None,
    )


def test_a_call_report_names_its_sid_status_and_who_answered() -> None:
    machine = read_delivery_report(
        {"CallSid": CA, "CallStatus": "completed", "AnsweredBy": "machine_start"}
    )
    assert (machine.sid, machine.fate, machine.by_machine) == (CA, Fate.COMPLETED, True)
    assert read_delivery_report({"CallStatus": "completed", "AnsweredBy": "fax"}).by_machine
    human = read_delivery_report({"CallSid": CA, "CallStatus": "completed", "AnsweredBy": "human"})
    assert (human.answered_by, human.by_machine) == ("human", False)
    ringing = read_delivery_report({"CallSid": CA, "CallStatus": "ringing", "AnsweredBy": ""})
    assert (ringing.fate, ringing.answered_by) == (Fate.UNDER_WAY, None)
    assert read_delivery_report({"CallStatus": "no-answer"}).fate is Fate.UNANSWERED


def test_a_report_is_stale_after_a_final_status_or_behind_the_known_one() -> None:
    stale = TWILIO_STATUS_ORDER.is_stale
    assert not stale("sms", None, "sent")
    assert not stale("sms", "queued", "delivered")
    assert stale("sms", "delivered", "sent")  # late
    assert stale("sms", "sent", "queued")  # out of order
    assert stale("voice", "busy", "completed")  # a call's final status
    assert not stale("voice", "delivered", "ringing")  # "delivered" is a message's word
