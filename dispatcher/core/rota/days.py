"""Day specs of the rota files (``mon-fri``, ``sat,sun``, ``fri-mon``), one reading for
``rota.csv`` and ``rota.toml`` alike."""

from __future__ import annotations

WEEKDAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}


def parse_days(value: str) -> frozenset[int]:
    """ISO weekday numbers of a spec like ``mon-fri``, ``sat,sun`` or ``mon,wed-fri``.

    A range may wrap over the week end (``fri-mon`` is Friday to Monday).
    """
    if not value:
        raise ValueError("is empty")
    days: set[int] = set()
    for part in value.lower().split(","):
        first, sep, last = part.strip().partition("-")
        if first not in WEEKDAYS or (sep and last not in WEEKDAYS):
            raise ValueError(
                f"{value!r} is not a list of days or day ranges "
                "like mon-fri or sat,sun (days: mon tue wed thu fri sat sun)"
            )
        start = WEEKDAYS[first]
        stop = WEEKDAYS[last] if sep else start
        length = (stop - start) % 7 + 1
        days.update((start - 1 + i) % 7 + 1 for i in range(length))
    return frozenset(days)
