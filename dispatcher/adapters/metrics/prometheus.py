"""The :class:`~dispatcher.services.metrics.Metrics` port as Prometheus series, in a
registry of its own per app (never prometheus_client's global default registry: two
apps in one process, or two tests, must not count into each other's series).

The services' observations become histograms and counters here; the figures that are a
state of the database (open calls, the outbox's oldest due entry, silent devices) are
read at scrape time by :class:`~dispatcher.adapters.metrics.scrape.ScrapeFigures`,
which this registry collects from. The names are listed in the README ("Watching it").
"""

from __future__ import annotations

import platform
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# The text format every Prometheus server reads.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# An answer is due within a second or two; 10 s is the device's resend timeout.
ANSWER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)
# A step fires within a poll interval (1 s by default); minutes late is an outage.
LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)


class PrometheusMetrics:
    """Implements :class:`dispatcher.services.metrics.Metrics`; :meth:`exposition` is
    the body of ``GET /metrics``."""

    def __init__(self, version: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        info = Info("eldercall_build", "The running dispatcher's version", registry=r)
        info.info({"version": version, "python": platform.python_version()})
        self._answer = Histogram(
            "eldercall_answer_latency_seconds",
            "Device event received to its answer ready to publish, after commit",
            ["priority", "kind"],
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        self._queue = Gauge(
            "eldercall_intake_queue_depth",
            "Device messages received from the broker and waiting to be handled",
            ["priority"],
            registry=r,
        )
        self._batch = Histogram(
            "eldercall_commit_batch_size",
            "Device messages committed per intake transaction",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self._lateness = Histogram(
            "eldercall_escalation_lateness_seconds",
            "How late an escalation step fired after its due time",
            ["timer"],
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self._notifications = Counter(
            "eldercall_notifications",
            "SMS and voice calls by channel and what became of them",
            ["channel", "result"],
            registry=r,
        )
        self._checks = Counter(
            "eldercall_supervision_checks",
            "Link supervision checks run (each looks at every device)",
            registry=r,
        )
        self._watchdog = Counter(
            "eldercall_watchdog_pages",
            "Shift supervisors paged about a call nobody had taken, by call kind",
            ["kind"],
            registry=r,
        )

    # -- the Metrics port ---------------------------------------------------------------------

    def answered(self, priority: str, kind: str, seconds: float) -> None:
        self._answer.labels(priority, kind).observe(max(0.0, seconds))

    def queue_depth(self, priority: str, depth: int) -> None:
        self._queue.labels(priority).set(depth)

    def batch_committed(self, size: int) -> None:
        self._batch.observe(size)

    def step_fired(self, lateness_s: float, timer: str = "escalation") -> None:
        # A clock stepped back can make a step look early: it was not late.
        self._lateness.labels(timer).observe(max(0.0, lateness_s))

    def notification(self, channel: str, result: str) -> None:
        self._notifications.labels(channel, result).inc()

    def supervision_checked(self) -> None:
        self._checks.inc()

    def watchdog_paged(self, kind: str) -> None:
        self._watchdog.labels(kind).inc()

    # -- exposition ---------------------------------------------------------------------------

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)

    def exposition(self) -> bytes:
        """Every series of this app in Prometheus' text format."""
        return generate_latest(self.registry)


def gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    """A gauge family for a collector to fill (a helper for ``scrape``)."""
    return GaugeMetricFamily(name, doc, labels=list(labels))


__all__ = ["CONTENT_TYPE", "Metric", "PrometheusMetrics", "gauge"]
