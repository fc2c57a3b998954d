"""Twilio's delivery reports in the dispatcher's terms: the form Twilio posts to
``/twilio/status/{row id}`` read into a provider-neutral
:class:`~dispatcher.core.notifications.outcomes.DeliveryReport`, and Twilio's order of
its statuses (:data:`TWILIO_STATUS_ORDER`) so that a late report changes nothing.

A message's report names it by MessageSid (and the older SmsSid) with MessageStatus
(SmsStatus) and an ErrorCode when it failed; a call's by CallSid with CallStatus and,
machine detection being on, AnsweredBy.
"""

from __future__ import annotations

from collections.abc import Mapping

from dispatcher.core.contact_methods import Channel
from dispatcher.core.notifications.outcomes import DeliveryReport, Fate

# Twilio's error codes in SMS status callbacks, and what they mean for us.
SMS_ERRORS = {
    21211: "invalid number",
    21610: "unsubscribed (STOP)",
    21614: "not a mobile number",
    30003: "unreachable handset",
    30004: "message blocked",
    30005: "unknown destination",
    30006: "landline or unreachable carrier",
    30007: "filtered by the carrier",
    30008: "unknown error",
}
# Worth trying again later; any other failure is permanent and moves on at once.
TEMPORARY_SMS_ERRORS = frozenset({30001, 30003, 30008, 30009})

# The statuses after which Twilio reports nothing more about a message or a call.
FINAL_STATUSES: Mapping[str, frozenset[str]] = {
    Channel.SMS.value: frozenset({"delivered", "undelivered", "failed", "read"}),
    Channel.VOICE.value: frozenset({"completed", "busy", "no-answer", "failed", "canceled"}),
}
# How far along the statuses before a final one are.
PROGRESS = {
    "accepted": 0,
    "queued": 0,
    "initiated": 1,
    "sending": 1,
    "ringing": 2,
    "sent": 2,
    "in-progress": 3,
    "answered": 3,
}
FATES = {
    "delivered": Fate.DELIVERED,
    "read": Fate.DELIVERED,
    "completed": Fate.COMPLETED,
    "undelivered": Fate.UNDELIVERED,
    "failed": Fate.UNDELIVERED,
    "busy": Fate.UNANSWERED,
    "no-answer": Fate.UNANSWERED,
    "canceled": Fate.CANCELED,
}


def read_delivery_report(form: Mapping[str, str]) -> DeliveryReport:
    """The report in a status callback's form (a call's when it has a CallStatus)."""
    if "CallStatus" in form:
        sid = form.get("CallSid") or form.get("SmsSid")
        status = form.get("CallStatus", "")
    else:
        sid = form.get("MessageSid") or form.get("SmsSid")
        status = form.get("MessageStatus") or form.get("SmsStatus") or ""
    code_text = form.get("ErrorCode", "")
    code = int(code_text) if code_text.isdigit() else None
    answered_by = form.get("AnsweredBy") or None
    return DeliveryReport(
        status=status,
        fate=FATES.get(status, Fate.UNDER_WAY),
        sid=sid or None,
        error_code=code,
        error=SMS_ERRORS.get(code) if code is not None else None,
        temporary=code in TEMPORARY_SMS_ERRORS,
        answered_by=answered_by,
        by_machine=bool(
            answered_by and (answered_by.startswith("machine") or answered_by == "fax")
        ),
    )


class TwilioStatusOrder:
    """:class:`~dispatcher.core.notifications.outcomes.StatusOrder` over Twilio's statuses."""

    def is_stale(self, channel: str, known: str | None, new: str) -> bool:
        if known in FINAL_STATUSES.get(channel, frozenset()):
            return True
        # An unknown new word counts as the furthest; an unknown known one as the start.
        return PROGRESS.get(new, 9) < PROGRESS.get(known or "", 0)


TWILIO_STATUS_ORDER = TwilioStatusOrder()
