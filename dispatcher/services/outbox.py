"""Sends the notification outbox (SMS and voice calls) through a Notifier.

A row is claimed (pending → sending) in a transaction that also checks the call
still wants it, so nothing is sent for a call whose acknowledgement has
committed. Temporary failures go back to pending with a jittered backoff; a row
left "sending" by a crash is sent again (a duplicate SMS is better than none).

Per phone number, SMS are throttled and bundled: a service request or technical
alert waits while that number had an SMS in the last ``throttle_s`` seconds, and
when several open calls are pending for one number they leave as one message that
lists each call with its reply code. An emergency or a fall is never held back (it
carries the pending others along).

Twilio reports what became of each message and call to ``/twilio/status/{row id}``
(:meth:`SmsOutbox.record_status`): a permanent failure moves that person's
notification to their next contact method at once, with the failure on the call's
timeline; a temporary one is retried with backoff.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db.escalator_store import outbox_row, outbox_row_wanted
from dispatcher.core.calls import Call, CallKind, TimelineEntry
from dispatcher.core.contact_methods import Channel, methods_for, next_after, person_phone
from dispatcher.core.directory import Directory
from dispatcher.core.messages import BundleItem, also_sms, bundle_sms
from dispatcher.services.channels import SmsSender, SmsSendError
from dispatcher.services.clock import Clock

log = structlog.get_logger(__name__)

STALE_CLAIM = timedelta(minutes=2)
MAX_BACKOFF_S = 300.0
# A status callback's temporary failure (a handset switched off) needs longer than a
# provider's 503: 30 s, 60 s, 120 s... before trying again.
CALLBACK_BACKOFF_S = 30.0
# At most this many calls in one bundled SMS (it stays well under Twilio's 1600 chars).
BUNDLE_MAX = 12
URGENT_KINDS = frozenset({CallKind.EMERGENCY.value, CallKind.FALL.value})

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
_FINAL_SMS = frozenset({"delivered", "undelivered", "failed", "read"})
_FINAL_VOICE = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
_PROGRESS = {
    "accepted": 0,
    "queued": 0,
    "initiated": 1,
    "sending": 1,
    "ringing": 2,
    "sent": 2,
    "in-progress": 3,
    "answered": 3,
}

_COLUMNS = (
    db.sms_outbox.c.id,
    db.sms_outbox.c.call_id,
    db.sms_outbox.c.step,
    db.sms_outbox.c.recipient,
    db.sms_outbox.c.to_number,
    db.sms_outbox.c.body,
    db.sms_outbox.c.attempts,
    db.sms_outbox.c.channel,
    db.sms_outbox.c.method_order,
    db.sms_outbox.c.language,
    db.sms_outbox.c.reply_code,
    db.sms_outbox.c.summary,
    db.sms_outbox.c.created_at,
    db.calls.c.kind,
)

OutboxRow = Any  # a Row of _COLUMNS


@dataclass(frozen=True)
class Job:
    """One message or call to hand to the provider, for one or more outbox rows."""

    row_id: int  # the row the provider's status callbacks will name
    rows: tuple[OutboxRow, ...]
    channel: str
    to: str
    body: str
    attempts: int

    @property
    def row_ids(self) -> list[int]:
        return [r.id for r in self.rows]

    @property
    def call_id(self) -> str:
        return str(self.rows[0].call_id)


@dataclass(frozen=True)
class Outcome:
    """What a status callback means for the rows it names."""

    kind: str  # "none", "retry" or "failed"
    reason: str = ""


def _backoff(attempts: int, base: float = 1.0) -> float:
    return min(MAX_BACKOFF_S, base * 2.0 ** max(attempts - 1, 0)) * random.uniform(0.5, 1.0)


def _latest_per_call(rows: list[OutboxRow]) -> dict[str, OutboxRow]:
    """Each call's newest row (its latest step), in the order the calls first appear."""
    calls: dict[str, OutboxRow] = {}
    for r in sorted(rows, key=lambda r: r.id):
        calls[r.call_id] = r
    return calls


def plan_sms(rows: list[OutboxRow], limit: int = BUNDLE_MAX) -> list[tuple[list[OutboxRow], str]]:
    """The SMS that leave for one number now, as (rows they answer for, text).

    Every urgent call (emergency, fall) gets its own full message; the non-urgent calls
    ride along with the first one as a list of codes. Without an urgent call, the
    non-urgent ones leave together: one call's own message, or a list of up to ``limit``
    calls with their reply codes. Rows of calls past ``limit`` stay for the next round.
    """
    urgent = _latest_per_call([r for r in rows if r.kind in URGENT_KINDS])
    others = _latest_per_call([r for r in rows if r.kind not in URGENT_KINDS])
    carried = list(others)[:limit]
    carried_rows = [r for r in rows if r.kind not in URGENT_KINDS and r.call_id in carried]
    items = [BundleItem(others[c].summary or c, others[c].reply_code) for c in carried]
    plans: list[tuple[list[OutboxRow], str]] = []
    for n, (call_id, latest) in enumerate(urgent.items()):
        own = [r for r in rows if r.call_id == call_id and r.kind in URGENT_KINDS]
        if n == 0 and items:
            plans.append((own + carried_rows, also_sms(latest.language, latest.body, items)))
        else:
            plans.append((own, str(latest.body)))
    if not urgent and carried:
        if len(carried) == 1:
            plans.append((carried_rows, str(others[carried[0]].body)))
        else:
            language = others[carried[0]].language
            plans.append((carried_rows, bundle_sms(language, items)))
    return plans


def sms_outcome(status: str, error_code: int | None) -> Outcome:
    if status not in ("undelivered", "failed"):
        return Outcome("none")
    what = SMS_ERRORS.get(error_code or 0, "no reason given")
    reason = f"SMS {status}, error {error_code} ({what})" if error_code else f"SMS {status}"
    return Outcome("retry" if error_code in TEMPORARY_SMS_ERRORS else "failed", reason)


def voice_outcome(status: str, answered_by: str | None) -> Outcome:
    if (
        status == "completed"
        and answered_by
        and (answered_by.startswith("machine") or answered_by == "fax")
    ):
        # A voicemail heard the script; nobody pressed 1.
        return Outcome("retry", f"voice call answered by {answered_by}")
    if status in ("busy", "no-answer"):
        return Outcome("retry", f"voice call {status}")
    if status == "failed":
        return Outcome("failed", "voice call failed")
    return Outcome("none")


class SmsOutbox:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        sender: SmsSender,
        clock: Clock,
        batch: int = 20,
        *,
        directory: Directory | None = None,
        public_url: str = "http://127.0.0.1:8080",
        throttle_s: float = 60.0,
        voice_retries: int = 1,
        callback_retries: int = 3,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self._sender = sender
        self._clock = clock
        self._batch = batch
        self._directory = directory
        self._public_url = public_url.rstrip("/")
        self._throttle = timedelta(seconds=throttle_s)
        self._voice_retries = voice_retries
        self._callback_retries = callback_retries
        self._on_change = on_change  # wakes the outbox for a fallback queued by a callback

    def status_url(self, row_id: int) -> str:
        return f"{self._public_url}/twilio/status/{row_id}"

    def voice_url(self, row_id: int) -> str:
        return f"{self._public_url}/twilio/voice/{row_id}"

    async def send_due(self) -> int:
        """Send what is due now; returns how many were handed to the provider."""
        jobs = await self._claim(self._clock.now())
        sent = 0
        for job in jobs:
            sent += await self._send(job)
        return sent

    # -- claiming ---------------------------------------------------------------------------

    def _pending(self) -> Any:
        return (
            select(*_COLUMNS)
            .join(db.calls, db.calls.c.id == db.sms_outbox.c.call_id)
            .where(
                db.sms_outbox.c.status == "pending",
                outbox_row_wanted(),
            )
            .order_by(db.sms_outbox.c.id)
        )

    async def _claim(self, now: datetime) -> list[Job]:
        async with self._sessions.begin() as session:
            # Rows a crash left "sending": we cannot know whether they left, so again.
            await session.execute(
                update(db.sms_outbox)
                .where(
                    db.sms_outbox.c.status == "sending",
                    db.sms_outbox.c.claimed_at < now - STALE_CLAIM,
                )
                .values(status="pending", bundle_id=None)
            )
            due = list(
                (
                    await session.execute(
                        self._pending()
                        .where(db.sms_outbox.c.next_attempt_at <= now)
                        .limit(self._batch)
                        .with_for_update(skip_locked=True, of=db.sms_outbox)
                    )
                ).all()
            )
            jobs: list[Job] = []
            by_number: dict[str, list[OutboxRow]] = {}
            for r in due:
                if r.channel == Channel.VOICE.value:
                    jobs.append(Job(r.id, (r,), r.channel, r.to_number, r.body, r.attempts))
                else:
                    by_number.setdefault(r.to_number, []).append(r)
            for number, rows in by_number.items():
                jobs.extend(await self._claim_sms(session, number, rows, now))
            for job in jobs:
                await session.execute(
                    update(db.sms_outbox)
                    .where(db.sms_outbox.c.id.in_(job.row_ids))
                    .values(
                        status="sending",
                        claimed_at=now,
                        bundle_id=job.row_id if len(job.rows) > 1 else None,
                    )
                )
        return jobs

    async def _claim_sms(
        self, session: AsyncSession, number: str, due: list[OutboxRow], now: datetime
    ) -> list[Job]:
        urgent = any(r.kind in URGENT_KINDS for r in due)
        if not urgent and self._throttle:
            last = await session.scalar(
                select(func.max(db.sms_outbox.c.sent_at)).where(
                    db.sms_outbox.c.to_number == number,
                    db.sms_outbox.c.channel == Channel.SMS.value,
                    db.sms_outbox.c.sent_at.is_not(None),
                )
            )
            if last is not None and now - last < self._throttle:
                # Held, not dropped: it leaves when the window ends, or sooner with an
                # emergency to the same number.
                await session.execute(
                    update(db.sms_outbox)
                    .where(db.sms_outbox.c.id.in_([r.id for r in due]))
                    .values(next_attempt_at=last + self._throttle)
                )
                until = (last + self._throttle).isoformat()
                log.info("sms_throttled", to=number, held=len(due), until=until)
                return []
        # The non-urgent rows pending for this number but not due (held by the throttle,
        # or past this batch) leave in the same message.
        others = list(
            (
                await session.execute(
                    self._pending()
                    .where(
                        db.sms_outbox.c.to_number == number,
                        db.sms_outbox.c.channel == Channel.SMS.value,
                        db.calls.c.kind.not_in(URGENT_KINDS),
                        db.sms_outbox.c.id.not_in([r.id for r in due]),
                    )
                    .with_for_update(skip_locked=True, of=db.sms_outbox)
                )
            ).all()
        )
        jobs = []
        for rows, body in plan_sms(due + others):
            primary = min(rows, key=lambda r: r.id)
            attempts = max(r.attempts for r in rows)
            jobs.append(Job(primary.id, tuple(rows), Channel.SMS.value, number, body, attempts))
        return jobs

    # -- sending ----------------------------------------------------------------------------

    async def _send(self, job: Job) -> int:
        callback = self.status_url(job.row_id)
        try:
            if job.channel == Channel.VOICE.value:
                receipt = await self._sender.place_call(
                    job.to, self.voice_url(job.row_id), status_callback=callback
                )
            else:
                receipt = await self._sender.send(job.to, job.body, status_callback=callback)
        except SmsSendError as exc:
            await self._failed(job, exc)
            return 0
        except Exception as exc:  # a bug or an unwrapped network error: retry, never drop
            log.exception("sms_sender_error", call_id=job.call_id, to=job.to)
            await self._failed(job, SmsSendError(repr(exc), permanent=False))
            return 0
        now = self._clock.now()
        t = db.sms_outbox
        async with self._sessions.begin() as session:
            # Rows a callback already moved on (failed, or pending for a retry).
            await session.execute(
                update(t)
                .where(t.c.id.in_(job.row_ids), t.c.status != "sending")
                .values(attempts=t.c.attempts + 1, sent_at=now)
            )
            await session.execute(
                update(t)
                .where(t.c.id.in_(job.row_ids), t.c.status == "sending")
                .values(
                    status="sent",
                    provider_sid=receipt.sid,
                    # A status callback may have come first: keep what it said.
                    provider_status=case(
                        (t.c.provider_sid == receipt.sid, t.c.provider_status),
                        else_=receipt.status,
                    ),
                    attempts=t.c.attempts + 1,
                    sent_at=now,
                    error=None,
                )
            )
        event = "call_placed" if job.channel == Channel.VOICE.value else "sms_sent"
        log.info(event, call_id=job.call_id, to=job.to, sid=receipt.sid, rows=job.row_ids)
        return 1

    async def _failed(self, job: Job, exc: SmsSendError) -> None:
        now = self._clock.now()
        attempts = job.attempts + 1
        async with self._sessions.begin() as session:
            if exc.permanent:
                await session.execute(
                    update(db.sms_outbox)
                    .where(db.sms_outbox.c.id.in_(job.row_ids))
                    .values(attempts=db.sms_outbox.c.attempts + 1)
                )
                await self._give_up(session, list(job.rows), f"{job.to}: {exc}", now, exc.code)
            else:
                await session.execute(
                    update(db.sms_outbox)
                    .where(db.sms_outbox.c.id.in_(job.row_ids))
                    .values(
                        status="pending",
                        attempts=db.sms_outbox.c.attempts + 1,
                        next_attempt_at=now + timedelta(seconds=_backoff(attempts + 1)),
                        bundle_id=None,
                        error=str(exc)[:500],
                    )
                )
        log.warning(
            "sms_failed",
            call_id=job.call_id,
            to=job.to,
            channel=job.channel,
            permanent=exc.permanent,
            error=str(exc),
        )

    async def _give_up(
        self,
        session: AsyncSession,
        rows: list[OutboxRow],
        reason: str,
        now: datetime,
        code: int | None = None,
    ) -> None:
        """Mark ``rows`` failed for good, say so on each call's timeline, and move each
        person on to their next contact method."""
        await session.execute(
            update(db.sms_outbox)
            .where(db.sms_outbox.c.id.in_([r.id for r in rows]))
            .values(status="failed", bundle_id=None, error=reason[:500], error_code=code)
        )
        # Once per person and call: a bundle may hold several steps of one call.
        done: set[tuple[str, str]] = set()
        for r in sorted(rows, key=lambda r: r.id, reverse=True):  # the latest step first
            if (r.call_id, r.recipient) in done:
                continue
            done.add((r.call_id, r.recipient))
            session.add(
                TimelineEntry(now, "system", f"{r.channel}_failed", r.channel, reason, r.call_id)
            )
            await self._fall_back(session, r, reason, now)

    async def _fall_back(
        self, session: AsyncSession, row: OutboxRow, reason: str, now: datetime
    ) -> None:
        if self._directory is None:
            return
        call = await session.get(Call, row.call_id)
        if call is None or not call.wants_notification(row.created_at):
            return  # acknowledged or closed meanwhile: nobody needs reaching any more
        directory = self._directory
        phone = person_phone(directory, row.recipient) or row.to_number
        method = next_after(methods_for(directory, row.recipient, phone), row.method_order)
        if method is None:
            session.add(
                TimelineEntry(
                    now,
                    "system",
                    "notify_exhausted",
                    row.channel,
                    f"{row.recipient}: no contact method left after {row.channel} to "
                    f"{row.to_number}",
                    row.call_id,
                )
            )
            return
        resident = directory.residents.get(call.resident_id or "")
        values = await outbox_row(
            session,
            call,
            resident,
            directory,
            recipient=row.recipient,
            language=row.language,
            method=method,
            step_index=row.step,
            now=now,
        )
        await session.execute(insert(db.sms_outbox), [values])
        session.add(
            TimelineEntry(
                now,
                "system",
                "notify_fallback",
                method.kind.value,
                f"{row.recipient}: {row.channel} to {row.to_number} failed; "
                f"next {method.kind.value} to {method.number}",
                row.call_id,
            )
        )
        log.info(
            "notify_fallback",
            call_id=row.call_id,
            recipient=row.recipient,
            channel=method.kind.value,
            to=method.number,
        )

    # -- status callbacks -------------------------------------------------------------------

    async def record_status(self, row_id: int, params: Mapping[str, str]) -> bool:
        """Apply one of Twilio's status callbacks for the message or call of ``row_id``.

        Returns False when there is no such row. Idempotent: a repeated or late callback
        changes nothing once the row has moved on (failed, retried, cancelled).
        """
        now = self._clock.now()
        queued = False
        async with self._sessions.begin() as session:
            found = (
                await session.execute(
                    select(
                        db.sms_outbox.c.status,
                        db.sms_outbox.c.channel,
                        db.sms_outbox.c.provider_sid,
                        db.sms_outbox.c.provider_status,
                    )
                    .where(db.sms_outbox.c.id == row_id)
                    .with_for_update()
                )
            ).first()
            if found is None:
                return False
            voice = found.channel == Channel.VOICE.value
            sid = params.get("CallSid" if voice else "MessageSid") or params.get("SmsSid")
            status = (
                params.get("CallStatus", "")
                if voice
                else params.get("MessageStatus") or params.get("SmsStatus") or ""
            )
            # A callback may beat our own record of the send ("sending": the provider
            # answered, we have not written its sid yet); it then names a new sid.
            # A late callback of the previous attempt names the old sid, whose status is
            # already final, and is dropped below.
            same_attempt = not sid or sid == found.provider_sid
            in_flight = found.status == "sending"
            if not in_flight and (found.status != "sent" or not same_attempt):
                log.info("status_ignored", row=row_id, status=status, ours=found.status)
                return True
            known = found.provider_status if same_attempt else None
            final = _FINAL_VOICE if voice else _FINAL_SMS
            if known in final or _PROGRESS.get(status, 9) < _PROGRESS.get(known or "", 0):
                return True  # out of order or repeated: the row already knows better
            code_text = params.get("ErrorCode", "")
            code = int(code_text) if code_text.isdigit() else None
            answered_by = params.get("AnsweredBy") or None
            members = db.sms_outbox.c.id == row_id
            if not voice:
                members = or_(members, db.sms_outbox.c.bundle_id == row_id)
            rows = list(
                (
                    await session.execute(
                        select(*_COLUMNS)
                        .join(db.calls, db.calls.c.id == db.sms_outbox.c.call_id)
                        .where(members, db.sms_outbox.c.status == found.status)
                        .with_for_update(of=db.sms_outbox)
                    )
                ).all()
            )
            changes: dict[str, Any] = {
                "provider_status": status[:16],
                "error_code": code,
                "answered_by": answered_by,
            }
            if sid:
                changes["provider_sid"] = sid
            await session.execute(
                update(db.sms_outbox)
                .where(db.sms_outbox.c.id.in_([r.id for r in rows]))
                .values(**changes)
            )
            outcome = voice_outcome(status, answered_by) if voice else sms_outcome(status, code)
            retries = self._voice_retries if voice else self._callback_retries
            attempts = max((r.attempts for r in rows), default=0) + int(in_flight)
            if outcome.kind == "retry" and attempts <= retries:
                delay = _backoff(attempts, CALLBACK_BACKOFF_S)
                await session.execute(
                    update(db.sms_outbox)
                    .where(db.sms_outbox.c.id.in_([r.id for r in rows]))
                    .values(
                        status="pending",
                        bundle_id=None,
                        next_attempt_at=now + timedelta(seconds=delay),
                        error=outcome.reason,
                    )
                )
                log.warning("delivery_retry", row=row_id, reason=outcome.reason, in_s=delay)
            elif outcome.kind != "none":
                reason = f"{found.channel} to {rows[0].to_number if rows else '?'}: "
                reason += outcome.reason
                if outcome.kind == "retry":
                    reason += f" (after {attempts} attempts)"
                await self._give_up(session, rows, reason, now, code)
                queued = True
        if queued:
            self._on_change()
        return True
