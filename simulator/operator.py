"""A virtual operator: acknowledges and resolves calls through the operator REST API.

It polls ``GET /api/v1/calls`` (the active calls), acknowledges every open call once
it is ``ack_after_s`` old, and resolves an acknowledged (or cancelled) call
``resolve_after_s`` after it was acknowledged (or first seen cancelled). It keeps
going when the API is down or refuses something: it logs and tries again at the next
poll, so a demo survives a dispatcher restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog

log = structlog.get_logger(__name__)

ACK_NOTE = "virtual operator: called the resident, help is on the way"
RESOLVE_NOTE = "virtual operator: closed after follow-up"
MAX_POLL_BACKOFF_S = 10.0


@dataclass
class OperatorStats:
    acked: list[str] = field(default_factory=list)
    resolved: dict[str, str] = field(default_factory=dict)  # call_id -> outcome
    errors: Counter[str] = field(default_factory=Counter)


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _outcome(state: str) -> str:
    if state == "cancelled":
        return "cancelled_by_resident"
    if state == "responder_on_site":
        return "visit"  # someone went to the home
    return "helped_by_phone"


class VirtualOperator:
    def __init__(
        self,
        http: httpx.AsyncClient,
        ack_after_s: float,
        resolve_after_s: float,
        stats: OperatorStats,
    ) -> None:
        self.http = http
        self.ack_after_s = ack_after_s
        self.resolve_after_s = resolve_after_s
        self.stats = stats
        # When we first saw a call in a state that needs closing, for calls whose
        # acknowledged_at the API does not give (and for cancelled ones).
        self._closing_since: dict[str, datetime] = {}
        self._first_seen: dict[str, datetime] = {}

    async def poll_once(self) -> None:
        """One look at the active calls; raises httpx errors when the list fails."""
        response = await self.http.get("/api/v1/calls")
        response.raise_for_status()
        calls = response.json().get("calls", [])
        now = datetime.now(UTC)
        seen: set[str] = set()
        for call in calls:
            call_id = call.get("call_id")
            state = call.get("state")
            if not isinstance(call_id, str) or not isinstance(state, str):
                continue
            seen.add(call_id)
            first_seen = self._first_seen.setdefault(call_id, now)
            if state == "open":
                # opened_at is on the API's clock: the same machine's in a demo.
                opened = _when(call.get("opened_at")) or first_seen
                if (now - opened).total_seconds() >= self.ack_after_s:
                    await self._post(call_id, "ack", {"note": ACK_NOTE})
            elif state in ("acknowledged", "responder_on_site", "cancelled"):
                since = self._closing_since.setdefault(call_id, now)
                if state != "cancelled":
                    since = _when(call.get("acknowledged_at")) or since
                if (now - since).total_seconds() >= self.resolve_after_s:
                    body = {"outcome": _outcome(state), "note": RESOLVE_NOTE}
                    await self._post(call_id, "resolve", body)
        # Forget calls that left the active list (resolved, by us or someone else).
        for gone in set(self._first_seen) - seen:
            self._first_seen.pop(gone, None)
            self._closing_since.pop(gone, None)

    async def _post(self, call_id: str, action: str, body: dict[str, str]) -> None:
        try:
            response = await self.http.post(f"/api/v1/calls/{call_id}/{action}", json=body)
        except httpx.HTTPError as exc:
            self.stats.errors[type(exc).__name__] += 1
            log.warning("operator_request_failed", call_id=call_id, action=action, error=str(exc))
            return
        if response.status_code >= 400:
            # 409: the call changed meanwhile (cancelled, resolved by someone else);
            # the next poll sees its new state.
            self.stats.errors[str(response.status_code)] += 1
            log.warning(
                "operator_request_refused",
                call_id=call_id,
                action=action,
                status=response.status_code,
                body=response.text[:200],
            )
            return
        if action == "ack":
            self.stats.acked.append(call_id)
            log.info("operator acknowledged the call", call_id=call_id)
        else:
            self.stats.resolved[call_id] = body["outcome"]
            log.info("operator resolved the call", call_id=call_id, outcome=body["outcome"])


async def run_virtual_operator(
    api_base: str,
    token: str,
    ack_after_s: float,
    resolve_after_s: float,
    stop: asyncio.Event,
    *,
    poll_s: float = 1.0,
    stats: OperatorStats | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """Act as an operator until ``stop`` is set."""
    stats = stats if stats is not None else OperatorStats()
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=api_base.rstrip("/"), headers=headers, timeout=5.0, transport=transport
    ) as http:
        operator = VirtualOperator(http, ack_after_s, resolve_after_s, stats)
        log.info("virtual operator on duty", api=api_base, ack_after_s=ack_after_s)
        delay = poll_s
        while not stop.is_set():
            try:
                await operator.poll_once()
                delay = poll_s
            except (httpx.HTTPError, ValueError) as exc:
                # Down, restarting, or answering garbage: wait longer, then look again.
                stats.errors[type(exc).__name__] += 1
                log.warning("operator_api_unavailable", api=api_base, error=str(exc))
                delay = min(max(delay, poll_s) * 2, MAX_POLL_BACKOFF_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
        log.info("virtual operator off duty", acked=len(stats.acked), resolved=len(stats.resolved))
