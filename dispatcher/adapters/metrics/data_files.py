"""The reloaded data files in ``/metrics``: whether the version on disk was refused
(the daemon then runs on an older one), and when the one in force was loaded."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from dispatcher.adapters.metrics.prometheus import Metric, gauge
from dispatcher.services.data_reload import FileStatus


class DataFilesCollector:
    def __init__(self, status: Callable[[], dict[str, FileStatus]]) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        refused = gauge(
            "eldercall_data_file_refused",
            "1 when the file on disk was refused and an older version is in force",
            ["file"],
        )
        loaded = gauge(
            "eldercall_data_file_loaded_timestamp_seconds",
            "When the version in force of the file was loaded (start or reload)",
            ["file"],
        )
        failures = gauge(
            "eldercall_data_file_reload_failures",
            "Versions of the file refused since the daemon started",
            ["file"],
        )
        for name, status in sorted(self._status().items()):
            refused.add_metric([name], 1.0 if status.error is not None else 0.0)
            loaded.add_metric([name], status.loaded_at.timestamp())
            failures.add_metric([name], float(status.failures))
        yield from (refused, loaded, failures)
