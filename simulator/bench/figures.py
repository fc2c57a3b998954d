"""Figures: what a scenario measured, beside what it is compared with.

A latency that never came (an event never answered, an SMS never sent) counts as
infinitely late: a p99 over 200 presses of which 3 went unanswered is "never", not the
p99 of the 197 that were answered.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Figure:
    """One measured number. ``reference`` is the baseline or target it is set against;
    ``higher_is_better`` says which way the ratio should go."""

    scenario: str
    name: str
    value: float | None  # None: not measured (a scenario that could not run)
    unit: str
    reference: float | None = None
    reference_name: str = ""
    higher_is_better: bool = False
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or self.reference in (None, 0) or math.isnan(self.value):
            return None
        assert self.reference is not None
        return self.value / self.reference

    @property
    def meets(self) -> bool | None:
        if self.value is None or self.reference is None or math.isnan(self.value):
            return None
        if self.higher_is_better:
            return self.value >= self.reference
        return self.value <= self.reference

    def cells(self) -> tuple[str, str, str, str, str]:
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}×"
        if math.isinf(self.ratio or 0):
            ratio = "∞"
        verdict = {True: "meets", False: "misses", None: ""}[self.meets]
        reference = (
            ""
            if self.reference is None
            else f"{fmt(self.reference)} {self.unit} ({self.reference_name})"
        )
        value = fmt(self.value)
        if self.value is not None and math.isfinite(self.value):
            value = f"{value} {self.unit}".strip()
        return (self.name, value, reference, ratio, verdict)

    def line(self) -> str:
        name, value, reference, ratio, verdict = self.cells()
        text = f"  {name}: {value}"
        if reference:
            text += f"  vs {reference}  ratio {ratio}  {verdict}"
        if self.note:
            text += f"  [{self.note}]"
        return text


def fmt(value: float | None) -> str:
    if value is None:
        return "not run"
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "never"
    if value == int(value):
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def latencies_ms(starts: dict[str, float], ends: dict[str, float]) -> list[float]:
    """End − start in ms for every key in ``starts``; infinity where no end came."""
    return [
        (ends[key] - start) * 1000 if key in ends else math.inf for key, start in starts.items()
    ]
