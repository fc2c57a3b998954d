"""How long a retry waits: exponential from ``base`` seconds, capped, with jitter so
that many rows failed by one outage do not all come back at the same instant."""

from __future__ import annotations

MAX_BACKOFF_S = 300.0
# A status callback's temporary failure (a handset switched off) needs longer than a
# provider's 503: 30 s, 60 s, 120 s... before trying again.
CALLBACK_BACKOFF_S = 30.0
# The jitter is a factor drawn from this range (the caller draws it: this stays pure).
JITTER = (0.5, 1.0)


def backoff_s(attempts: int, jitter: float, base: float = 1.0) -> float:
    """Seconds to wait before the next try after ``attempts`` tries, scaled by
    ``jitter`` (a factor within :data:`JITTER`)."""
    return min(MAX_BACKOFF_S, base * 2.0 ** max(attempts - 1, 0)) * jitter
