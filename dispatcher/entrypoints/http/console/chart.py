"""The board's chart of answer times, drawn on the server as SVG (no script, nothing
downloaded): per bin of answer time, the share of today's and of this week's calls,
with the two target lines (60 s and 180 s) at the bins' edges.

Geometry only: the numbers come from the board (``services.boards.PeriodView``), the
SVG itself is the template ``_answer_chart.html``; the text table beside it says the
same in words.
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.core.reports import TARGETS
from dispatcher.services.boards import BinView, PeriodView

WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 40, 56
_SCALES = (10, 20, 40, 60, 80, 100)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: str  # today, week
    pct: float
    count: int


@dataclass(frozen=True)
class Label:
    x: float
    text: str


@dataclass(frozen=True)
class TargetLine:
    x: float
    within_s: int
    required_pct: float


@dataclass(frozen=True)
class Tick:
    y: float
    pct: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    top: int
    plot_width: float
    plot_height: float
    bars: list[Bar]
    labels: list[Label]
    targets: list[TargetLine]
    ticks: list[Tick]


def bin_label(b: BinView, not_answered: str) -> str:
    if b.unanswered:
        return not_answered
    if b.high_s is None:
        return f">{b.low_s}"
    return f"{b.low_s}–{b.high_s}"


def share(b: BinView, period: PeriodView) -> float:
    """The bin's share of the period's residents' calls, in percent."""
    total = sum(x.count for x in period.histogram)
    return 100 * b.count / total if total else 0.0


def answer_chart(today: PeriodView, week: PeriodView, not_answered: str) -> Chart:
    bins = len(today.histogram)
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    group = plot_w / bins
    bar_w = group * 0.36
    highest = max(
        [share(b, p) for p in (today, week) for b in p.histogram] + [0.0],
    )
    scale = next((s for s in _SCALES if highest <= s), 100)
    bars = []
    for i in range(bins):
        for j, period in enumerate((today, week)):
            b = period.histogram[i]
            pct = share(b, period)
            h = plot_h * pct / scale
            bars.append(
                Bar(
                    x=LEFT + i * group + group * 0.14 + j * bar_w,
                    y=TOP + plot_h - h,
                    width=bar_w,
                    height=h,
                    series=period.key,
                    pct=round(pct, 1),
                    count=b.count,
                )
            )
    labels = [
        Label(LEFT + (i + 0.5) * group, bin_label(b, not_answered))
        for i, b in enumerate(today.histogram)
    ]
    # A target's line stands at the right edge of the last bin within it.
    targets = []
    for target in TARGETS:
        edge = next((i for i, b in enumerate(today.histogram) if b.high_s == target.within_s), None)
        if edge is not None:
            targets.append(
                TargetLine(LEFT + (edge + 1) * group, target.within_s, target.required_pct)
            )
    ticks = [Tick(TOP + plot_h - plot_h * v / scale, v) for v in (0, scale // 2, scale)]
    return Chart(WIDTH, HEIGHT, LEFT, TOP, plot_w, plot_h, bars, labels, targets, ticks)
