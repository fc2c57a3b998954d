"""How long a retry waits: exponential from ``base`` seconds, capped, with jitter so
that many rows failed by one outage do not all come back at the same instant.

The cap depends on what the message is about: an emergency or a fall that failed to
leave is tried again within seconds (1, 2, 4, then every 5 s), because the person it
would reach may be the only one who can help in time; a service request or a technical
alert backs off up to five minutes, so that an outage is not hammered by routine traffic.
"""

from __future__ import annotations

MAX_BACKOFF_S = 300.0
# An emergency or a fall is never left waiting longer than this between two tries.
URGENT_MAX_BACKOFF_S = 5.0
# A status callback's temporary failure (a handset switched off) needs longer than a
# provider's 503: 30 s, 60 s, 120 s... before trying again.
CALLBACK_BACKOFF_S = 30.0
# The jitter is a factor drawn from this range (the caller draws it: this stays pure).
JITTER = (0.5, 1.0)


def backoff_s(attempts: int, jitter: float, base: float = 1.0, cap: float = MAX_BACKOFF_S) -> float:
    """Seconds to wait before the next try after ``attempts`` tries, scaled by
    ``jitter`` (a factor within :data:`JITTER`)."""
    return min(cap, base * 2.0 ** max(attempts - 1, 0)) * jitter


def send_retry_s(attempts: int, jitter: float, *, urgent: bool) -> float:
    """Seconds before a message whose send failed ``attempts`` times is tried again:
    for an urgent call 1, 2, 4, 5, 5... s (scaled by ``jitter``); for the others 2, 4,
    8... up to :data:`MAX_BACKOFF_S`."""
    if urgent:
        return backoff_s(attempts, jitter, cap=URGENT_MAX_BACKOFF_S)
    return backoff_s(attempts + 1, jitter)
