"""One outbox entry as the outbox's decisions see it: a message or call to one person
about one call, at one escalation step, by one of their contact methods."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class OutboxItem:
    id: int
    call_id: str
    step: int
    recipient: str  # a staff id or "contact:<resident id>:<n>"
    to_number: str  # E.164
    body: str  # the SMS text, or the script a voice call reads
    attempts: int
    channel: str  # a Channel value: "sms", "voice"
    method_order: int  # which of the person's contact methods (1 first)
    language: str
    reply_code: int | None
    summary: str | None  # the short line naming the call in a bundled SMS
    created_at: datetime
    kind: str  # the call's CallKind value
