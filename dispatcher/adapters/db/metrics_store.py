"""The figures ``/metrics`` reads from the database when it is scraped: open calls,
open technical alerts, the outbox's oldest due entry, silent and offline devices.

Three aggregate queries in one read transaction, each over an index or a small table
(``calls`` has no index on ``state`` alone: its open calls are counted by a scan, which
stays cheap at a district's volume and runs at most once per cache period of the
scrape, see ``dispatcher.adapters.metrics.scrape``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from dispatcher.adapters.db import schema as db
from dispatcher.adapters.db.outbox_store import outbox_row_wanted
from dispatcher.core.calls import CallState

_calls = db.calls.c
_outbox = db.sms_outbox.c
_links = db.device_links.c


@dataclass(frozen=True)
class Figures:
    """The database's side of the daemon at one instant."""

    at: datetime
    open_calls: dict[tuple[str, str], int] = field(default_factory=dict)  # (priority, state)
    open_alerts: dict[str, int] = field(default_factory=dict)  # by alert key
    oldest_due_s: float = 0.0  # how long the oldest due, unsent outbox entry has waited
    silent_devices: int = 0
    offline_devices: int = 0


class SqlMetricsStore:
    """Reads :class:`Figures` in the session's (one) transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def figures(self, now: datetime, silent_since: datetime) -> Figures:
        """The figures at ``now``; a device last heard before ``silent_since`` is silent
        (the link supervision's own rule)."""
        open_calls: dict[tuple[str, str], int] = {}
        open_alerts: dict[str, int] = {}
        rows = await self._session.execute(
            select(_calls.priority, _calls.state, _calls.alert_key, func.count())
            .where(_calls.state != CallState.RESOLVED.value)
            .group_by(_calls.priority, _calls.state, _calls.alert_key)
        )
        for priority, state, alert_key, count in rows.all():
            open_calls[(priority, state)] = open_calls.get((priority, state), 0) + count
            if alert_key is not None:
                open_alerts[alert_key] = open_alerts.get(alert_key, 0) + count
        # Pending, or claimed and not yet sent: either way not out of the door. Only the
        # entries the outbox would still send count (an acknowledged call's are not).
        oldest = await self._session.scalar(
            select(func.min(_outbox.next_attempt_at))
            .select_from(db.sms_outbox.join(db.calls, _calls.id == _outbox.call_id))
            .where(
                _outbox.status.in_(("pending", "sending")),
                _outbox.next_attempt_at <= now,
                outbox_row_wanted(),
            )
        )
        devices = (
            await self._session.execute(
                select(
                    func.coalesce(
                        func.sum(case((_links.last_seen_at < silent_since, 1), else_=0)), 0
                    ),
                    func.coalesce(func.sum(case((_links.status == "offline", 1), else_=0)), 0),
                )
            )
        ).one()
        return Figures(
            at=now,
            open_calls=open_calls,
            open_alerts=open_alerts,
            oldest_due_s=_age(oldest, now),
            silent_devices=int(devices[0]),
            offline_devices=int(devices[1]),
        )


def _age(since: datetime | None, now: datetime) -> float:
    if since is None:
        return 0.0
    if since.tzinfo is None:  # an aggregate bypasses the column's type on some backends
        since = since.replace(tzinfo=now.tzinfo)
    return max(0.0, (now - since).total_seconds())


async def database_answers(engine: AsyncEngine) -> None:
    """A trivial query: returns when the database answers, raises when it cannot."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
