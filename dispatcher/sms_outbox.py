"""Sends the SMS outbox through an SmsSender, one claimed row at a time.

A row is claimed (pending → sending) in a transaction that also checks the call
still wants it, so nothing is sent for a call whose acknowledgement has
committed. Temporary failures go back to pending with a jittered backoff; a row
left "sending" by a crash is sent again (a duplicate SMS is better than none).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dispatcher import db
from dispatcher.calls import TimelineEntry
from dispatcher.clock import Clock
from dispatcher.escalator import outbox_row_wanted
from dispatcher.sms import SmsSender, SmsSendError

log = structlog.get_logger(__name__)

STALE_CLAIM = timedelta(minutes=2)
MAX_BACKOFF_S = 300.0


class SmsOutbox:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        sender: SmsSender,
        clock: Clock,
        batch: int = 20,
    ) -> None:
        self._sessions = sessions
        self._sender = sender
        self._clock = clock
        self._batch = batch

    async def send_due(self) -> int:
        """Send what is due now; returns how many were handed to the provider."""
        claimed = await self._claim(self._clock.now())
        sent = 0
        for row in claimed:
            sent += await self._send(row.id, row.call_id, row.to_number, row.body, row.attempts)
        return sent

    async def _claim(self, now: datetime) -> list[Row[Any, Any, Any, Any, Any]]:
        async with self._sessions.begin() as session:
            # Rows a crash left "sending": we cannot know whether they left, so again.
            await session.execute(
                update(db.sms_outbox)
                .where(
                    db.sms_outbox.c.status == "sending",
                    db.sms_outbox.c.claimed_at < now - STALE_CLAIM,
                )
                .values(status="pending")
            )
            rows = list(
                (
                    await session.execute(
                        select(
                            db.sms_outbox.c.id,
                            db.sms_outbox.c.call_id,
                            db.sms_outbox.c.to_number,
                            db.sms_outbox.c.body,
                            db.sms_outbox.c.attempts,
                        )
                        .join(db.calls, db.calls.c.id == db.sms_outbox.c.call_id)
                        .where(
                            db.sms_outbox.c.status == "pending",
                            db.sms_outbox.c.next_attempt_at <= now,
                            outbox_row_wanted(),
                        )
                        .order_by(db.sms_outbox.c.id)
                        .limit(self._batch)
                        .with_for_update(skip_locked=True, of=db.sms_outbox)
                    )
                ).all()
            )
            if rows:
                await session.execute(
                    update(db.sms_outbox)
                    .where(db.sms_outbox.c.id.in_([r.id for r in rows]))
                    .values(status="sending", claimed_at=now)
                )
        return rows

    async def _send(self, row_id: int, call_id: str, to: str, body: str, attempts: int) -> int:
        try:
            receipt = await self._sender.send(to, body)
        except SmsSendError as exc:
            await self._failed(row_id, call_id, to, attempts + 1, exc)
            return 0
        except Exception as exc:  # a bug or an unwrapped network error: retry, never drop
            log.exception("sms_sender_error", call_id=call_id, to=to)
            await self._failed(
                row_id, call_id, to, attempts + 1, SmsSendError(repr(exc), permanent=False)
            )
            return 0
        async with self._sessions.begin() as session:
            await session.execute(
                update(db.sms_outbox)
                .where(db.sms_outbox.c.id == row_id)
                .values(
                    status="sent",
                    provider_sid=receipt.sid,
                    provider_status=receipt.status,
                    attempts=attempts + 1,
                    sent_at=self._clock.now(),
                    error=None,
                )
            )
        log.info("sms_sent", call_id=call_id, to=to, sid=receipt.sid)
        return 1

    async def _failed(
        self, row_id: int, call_id: str, to: str, attempts: int, exc: SmsSendError
    ) -> None:
        now = self._clock.now()
        async with self._sessions.begin() as session:
            if exc.permanent:
                values: dict[str, object] = {"status": "failed", "attempts": attempts}
                session.add(
                    TimelineEntry(now, "system", "sms_failed", "sms", f"{to}: {exc}", call_id)
                )
            else:
                delay = min(MAX_BACKOFF_S, 2.0**attempts) * random.uniform(0.5, 1.0)
                values = {
                    "status": "pending",
                    "attempts": attempts,
                    "next_attempt_at": now + timedelta(seconds=delay),
                }
            await session.execute(
                update(db.sms_outbox)
                .where(db.sms_outbox.c.id == row_id)
                .values(error=str(exc)[:500], **values)
            )
        log.warning("sms_failed", call_id=call_id, to=to, permanent=exc.permanent, error=str(exc))
