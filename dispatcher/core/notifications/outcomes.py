"""What a provider's delivery report means for the outbox entries it names, in the
dispatcher's own terms: nothing yet, try again later, or failed for good (the person
moves on to their next contact method). The provider's adapter reads its own form
into a :class:`DeliveryReport` (Twilio's: ``dispatcher.adapters.twilio.delivery_reports``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from dispatcher.core.contact_methods import Channel


class Fate(StrEnum):
    """Where a message or call stands, whatever the provider calls it."""

    UNDER_WAY = "under_way"  # accepted, queued, sending, ringing, in progress
    DELIVERED = "delivered"  # a message reached the handset (or was read)
    COMPLETED = "completed"  # a call was answered (by someone or something) and ended
    UNDELIVERED = "undelivered"  # a message did not arrive, or a call could not be made
    UNANSWERED = "unanswered"  # a call rang out or was busy
    CANCELED = "canceled"


@dataclass(frozen=True)
class DeliveryReport:
    """One delivery report, read from the provider's form."""

    status: str  # the provider's own word ("undelivered"), kept on the entry as it said it
    fate: Fate
    sid: str | None = None  # the provider's id of the message or call it is about
    error_code: int | None = None  # the provider's error code, if it gave one
    error: str | None = None  # what that code means, if the provider's table knows it
    temporary: bool = False  # a failure that may pass (a handset switched off)
    answered_by: str | None = None  # the provider's word for who answered a call
    by_machine: bool = False  # a voicemail or a fax answered, not a person


class StatusOrder(Protocol):
    """The provider's order of its statuses, so that a repeated, late or out-of-order
    report never overwrites what an entry already knows."""

    def is_stale(self, channel: str, known: str | None, new: str) -> bool:
        """Whether a report of ``new`` adds nothing to an entry whose last provider
        status is ``known``: ``known`` is final on ``channel``, or ``new`` comes before it."""
        ...


class Verdict(StrEnum):
    NONE = "none"  # nothing to do (under way, or delivered)
    RETRY = "retry"  # send again after a backoff
    FAILED = "failed"  # failed for good: move on to the next contact method


@dataclass(frozen=True)
class Outcome:
    """What a delivery report means for the entries it names."""

    verdict: Verdict
    reason: str = ""


def sms_outcome(report: DeliveryReport) -> Outcome:
    if report.fate is not Fate.UNDELIVERED:
        return Outcome(Verdict.NONE)
    status, code = report.status, report.error_code
    what = report.error or "no reason given"
    reason = f"SMS {status}, error {code} ({what})" if code else f"SMS {status}"
    return Outcome(Verdict.RETRY if report.temporary else Verdict.FAILED, reason)


def voice_outcome(report: DeliveryReport) -> Outcome:
    if report.fate is Fate.COMPLETED and report.by_machine:
        # A voicemail heard the script; nobody pressed 1.
        return Outcome(Verdict.RETRY, f"voice call answered by {report.answered_by}")
    if report.fate is Fate.UNANSWERED:
        return Outcome(Verdict.RETRY, f"voice call {report.status}")
    if report.fate is Fate.UNDELIVERED:
        return Outcome(Verdict.FAILED, "voice call failed")
    return Outcome(Verdict.NONE)


OUTCOMES: Mapping[str, Callable[[DeliveryReport], Outcome]] = {
    Channel.SMS.value: sms_outcome,
    Channel.VOICE.value: voice_outcome,
}


def outcome(channel: str, report: DeliveryReport) -> Outcome:
    """What ``report`` means for an entry sent on ``channel``."""
    judge = OUTCOMES.get(channel)
    if judge is None:
        raise ValueError(f"no delivery outcomes known for channel {channel!r}")
    return judge(report)


def settle(found: Outcome, attempts: int, retries: int) -> Outcome:
    """``found`` after the retries: a retry past ``retries`` attempts fails for good,
    saying how many attempts were made."""
    if found.verdict is Verdict.RETRY and attempts > retries:
        return Outcome(Verdict.FAILED, f"{found.reason} (after {attempts} attempts)")
    return found
