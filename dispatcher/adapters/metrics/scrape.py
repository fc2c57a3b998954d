"""The figures ``/metrics`` reads from the database at scrape time, as a Prometheus
collector.

``refresh()`` (awaited by the route before it renders) reads them in one read
transaction, at most once per ``cache_s`` on the daemon's clock however many scrapers
ask, and waits at most ``timeout_s`` for the database (:class:`OneAtATime`).
``collect()`` (synchronous, called by prometheus_client while rendering) only hands out
what the last refresh read. When the database did not answer, the figures are left
out rather than shown stale, and ``eldercall_metrics_database_up`` says 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Protocol

import structlog
from prometheus_client.metrics_core import Metric

from dispatcher.adapters.db.metrics_store import Figures
from dispatcher.adapters.metrics.one_at_a_time import OneAtATime
from dispatcher.adapters.metrics.prometheus import gauge
from dispatcher.services.clock import Clock
from dispatcher.services.ports import Transactions

log = structlog.get_logger(__name__)

CACHE_S = 2.0
TIMEOUT_S = 5.0


class FiguresStore(Protocol):
    async def figures(self, now: datetime, silent_since: datetime) -> Figures: ...


class ScrapeFigures:
    def __init__(
        self,
        tx: Transactions[FiguresStore],
        clock: Clock,
        silent_after_s: float,
        *,
        cache_s: float = CACHE_S,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self._tx = tx
        self._clock = clock
        self._silent_after = timedelta(seconds=silent_after_s)
        self._cache = timedelta(seconds=cache_s)
        self._read_once = OneAtATime(self._read, timeout_s)
        self._figures: Figures | None = None
        self._up = False

    async def refresh(self) -> None:
        now = self._clock.now()
        last = self._figures
        # A clock stepped back (now before the last read) reads again.
        if self._up and last is not None and last.at <= now < last.at + self._cache:
            return
        try:
            self._figures = await self._read_once()
            self._up = True
        except Exception as exc:  # the scrape still answers, with what is in memory
            self._up = False
            log.warning("metrics_database_unavailable", error=repr(exc))

    async def _read(self) -> Figures:
        now = self._clock.now()
        async with self._tx.read() as store:
            return await store.figures(now, now - self._silent_after)

    def describe(self) -> Iterator[Metric]:
        return iter(self._families(None, every=True))

    def collect(self) -> Iterator[Metric]:
        return iter(self._families(self._figures if self._up else None))

    def _families(self, figures: Figures | None, *, every: bool = False) -> list[Metric]:
        """The families with what ``figures`` say; without figures only the ``up`` one
        (or, with ``every``, every family empty: their names, for the registry)."""
        up = gauge(
            "eldercall_metrics_database_up",
            "1 when the last scrape-time read of the database succeeded",
        )
        up.add_metric([], 1.0 if figures is not None else 0.0)
        calls = gauge(
            "eldercall_calls_open",
            "Calls not yet resolved, by priority and state",
            ["priority", "state"],
        )
        alerts = gauge(
            "eldercall_technical_alerts_open",
            "Technical alerts not yet resolved, by alert",
            ["alert"],
        )
        oldest = gauge(
            "eldercall_outbox_oldest_pending_age_seconds",
            "How long the oldest due and unsent SMS or voice call has waited (0: none)",
        )
        silent = gauge(
            "eldercall_devices_silent",
            "Devices not heard for as many heartbeat intervals as raise an alert",
        )
        offline = gauge(
            "eldercall_devices_offline", "Devices whose last status is offline (Last Will)"
        )
        if figures is None:
            return [up, calls, alerts, oldest, silent, offline] if every else [up]
        for (priority, state), count in sorted(figures.open_calls.items()):
            calls.add_metric([priority, state], count)
        for alert, count in sorted(figures.open_alerts.items()):
            alerts.add_metric([alert], count)
        oldest.add_metric([], figures.oldest_due_s)
        silent.add_metric([], figures.silent_devices)
        offline.add_metric([], figures.offline_devices)
        return [up, calls, alerts, oldest, silent, offline]
