"""One object for equal values that many records have in common.

The registry holds every resident and device in memory, each read from its own row
(of a file or of the database), so 100,000 residents of a few dozen communities and
some thousands of birth dates held 100,000 copies of each: about 8 MB of the
daemon's 250 at 100,000 residents, in a district whose real data repeats far more
(buildings, units, languages, device models)."""

from __future__ import annotations

import sys
from datetime import date, datetime
from typing import TypeVar

_V = TypeVar("_V")
_DATES: dict[date, date] = {}


def shared(value: _V) -> _V:
    """``value``, or an equal one already held. Only for fields with few distinct
    values: interning a string of its own (an id) would only add an entry to the table
    of interned strings. Interned strings are freed when nothing refers to them; the
    dates, a few thousand, are kept."""
    if isinstance(value, str):
        return sys.intern(value)  # type: ignore[return-value]
    if isinstance(value, date) and not isinstance(value, datetime):  # those seldom repeat
        return _DATES.setdefault(value, value)  # type: ignore[return-value]
    return value
