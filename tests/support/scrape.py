"""Reading the daemon's ``/metrics`` in tests: the HTTP app as bootstrap wires it, over
httpx's ASGI transport, and the text parsed by prometheus_client's own parser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from prometheus_client.parser import text_string_to_metric_families

from dispatcher.bootstrap import App, http_app


@asynccontextmanager
async def http_client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app``'s HTTP app, without any token."""
    transport = httpx.ASGITransport(app=http_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://eldercall.test") as c:
        yield c


class Scrape:
    """One scrape of ``/metrics``: family names and sample values."""

    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(self, sample: str, **labels: str) -> float | None:
        """The value of the sample named ``sample`` with exactly ``labels``; None when
        the scrape has no such sample."""
        for family in self.families.values():
            for s in family.samples:
                if s.name == sample and s.labels == labels:
                    return float(s.value)
        return None

    def count(self, sample: str, **labels: str) -> float:
        """As :meth:`value`, 0 for a sample not yet exposed (a counter never counted)."""
        return self.value(sample, **labels) or 0.0


async def scrape(client: httpx.AsyncClient) -> Scrape:
    r = await client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return Scrape(r.text)
