"""Outbox entries for the tests of the outbox's pure decisions."""

from __future__ import annotations

from datetime import UTC, datetime

from dispatcher.core.notifications.item import OutboxItem

T = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def item(id_: int, call_id: str, kind: str = "service", step: int = 0) -> OutboxItem:
    return OutboxItem(
        id=id_,
        call_id=call_id,
        step=step,
        recipient="wang-fang",
        to_number="+8613916200101",
        body=f"{kind} {call_id} step {step}",
        attempts=0,
        channel="sms",
        method_order=1,
        language="en",
        reply_code=id_,
        summary=f"{call_id} summary",
        created_at=T,
        kind=kind,
    )
