"""Service levels: how fast calls were answered, against the social-alarm targets.

Pure code: given the calls of a period and ``now``, it computes the figures that
``GET /api/v1/reports/answer-times`` returns and ``eldercall report`` prints. No I/O.

The targets are the social-alarm industry's (for example TEC Quality's code of
practice): 97.5% of calls answered within 60 seconds and 99% within 180 seconds.

How a call is counted, for each target of T seconds:

- A call belongs to the period in which it *opened* (``since <= opened_at < until``),
  wherever its answer fell.
- Its answer time is from ``opened_at`` to its first answer: the first
  acknowledgement, or the resolve when nobody acknowledged first. A call handed back
  later (``escalate_now``) keeps its first answer time.
- Answered within T seconds, T included (an answer at exactly 60 s is within 60 s):
  *within*. Answered later: *missed*.
- Not answered, and waiting for longer than T seconds (until ``now``, or until it
  closed without an answer, as a technical alert that cleared by itself does):
  *missed*. Not answered and waiting for T seconds or less: *pending*, not judged
  for that target yet (it may still be answered in time), so a call opened 40 s
  before ``now`` counts for neither target, and one opened 100 s before counts as
  missed for 60 s and pending for 180 s.
- The share is within / (within + missed); a target is met when the share reaches
  it. With nothing judged, the share and ``met`` are ``None``.
- Every residents' alarm counts, including those the resident cancelled and those
  that turned out false alarms: as industry practice measures it, the centre must
  answer every alarm, and it cannot know a false alarm before answering it.
- Technical alerts (kind ``technical``: battery, power, lost link) are not residents'
  calls: they are reported on their own, never mixed into the residents' figures.
- The median and the 90th percentile are over answered calls only (the unanswered
  are counted beside them). The median of an even number of answers is the mean of
  the two middle ones; the 90th percentile is by nearest rank: the smallest answer
  time that at least 90% of the answers were within.

Per level, per operator and per channel, a call counts under whoever answered it
first, at the level where that person works (``community``, ``street``,
``district``; ``family`` for a resident's emergency contact; ``unknown`` when the
answerer is no longer in the directory). Unanswered calls belong to nobody: they
appear in the overall and per-kind figures only.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from dispatcher.core.directory import Directory, Level

FAMILY = "family"  # a resident's emergency contact answered
UNKNOWN = "unknown"
TECHNICAL = "technical"
CONTACT_PREFIX = "contact:"  # "contact:<resident id>:<n>", as routing names them

LEVEL_ORDER = (Level.COMMUNITY.value, Level.STREET.value, Level.DISTRICT.value, FAMILY, UNKNOWN)
KIND_ORDER = ("emergency", "fall", "service")


@dataclass(frozen=True)
class Target:
    within_s: int
    required_pct: float


TARGETS = (Target(60, 97.5), Target(180, 99.0))


@dataclass(frozen=True)
class CallRecord:
    """What the figures need of one call."""

    call_id: str
    kind: str
    opened_at: datetime
    answered_at: datetime | None = None
    answered_by: str | None = None
    answered_channel: str | None = None
    answered_level: str | None = None  # None on calls stored before it was recorded
    closed_at: datetime | None = None  # resolved_at

    @property
    def answer_s(self) -> float | None:
        if self.answered_at is None:
            return None
        return max(0.0, (self.answered_at - self.opened_at).total_seconds())


# ---------------------------------------------------------------- the figures (JSON)


class TargetFigures(BaseModel):
    within_s: int  # the target: answered within this many seconds ...
    required_pct: float  # ... for at least this share of the calls
    within: int  # answered within ``within_s`` (included)
    missed: int  # answered later, or unanswered for longer than ``within_s``
    pending: int  # unanswered for ``within_s`` or less: not judged yet
    pct: float | None  # within / (within + missed), in percent; None if none judged
    met: bool | None  # pct >= required_pct; None if none judged


class Figures(BaseModel):
    calls: int
    answered: int
    unanswered: int  # not answered: still waiting, or closed without an answer
    median_s: float | None  # of the answered calls' answer times
    p90_s: float | None  # nearest rank
    targets: list[TargetFigures]


class GroupFigures(Figures):
    key: str  # the level, the answerer's id, the kind or the channel
    name: str = ""  # the answerer's name (per operator)
    level: str = ""  # the answerer's level (per operator)


class AnswerTimes(BaseModel):
    """Answer times of the calls opened in ``[since, until)``, as of ``now``."""

    since: datetime
    until: datetime
    now: datetime
    timezone: str
    overall: Figures  # residents' calls: every kind but technical alerts
    by_level: list[GroupFigures] = Field(default_factory=list)
    by_operator: list[GroupFigures] = Field(default_factory=list)
    by_kind: list[GroupFigures] = Field(default_factory=list)
    by_channel: list[GroupFigures] = Field(default_factory=list)
    technical: Figures  # technical alerts, on their own


# ---------------------------------------------------------------- computing


def answer_times(
    records: Iterable[CallRecord],
    *,
    since: datetime,
    until: datetime,
    now: datetime,
    directory: Directory,
) -> AnswerTimes:
    """The figures for the calls among ``records`` that opened in ``[since, until)``."""
    if since >= until:
        raise ValueError("the period is empty: since must be before until")
    chosen = [r for r in records if since <= r.opened_at < until]
    residents = [r for r in chosen if r.kind != TECHNICAL]
    answered = [_with_level(r, directory) for r in residents if r.answered_at is not None]
    zone = ZoneInfo(directory.timezone)

    operators = _groups(answered, lambda r: r.answered_by or UNKNOWN, now, sort=_by_name)
    for group in operators:
        group.name = answerer_name(directory, group.key)
        group.level = next(
            (
                r.answered_level or UNKNOWN
                for r in answered
                if (r.answered_by or UNKNOWN) == group.key
            ),
            UNKNOWN,
        )
    operators.sort(key=lambda g: (_rank(LEVEL_ORDER, g.level), g.name, g.key))

    return AnswerTimes(
        since=since.astimezone(zone),
        until=until.astimezone(zone),
        now=now.astimezone(zone),
        timezone=directory.timezone,
        overall=figures(residents, now),
        by_level=_groups(
            answered, lambda r: r.answered_level or UNKNOWN, now, sort=_ordered(LEVEL_ORDER)
        ),
        by_operator=operators,
        by_kind=_groups(residents, lambda r: r.kind, now, sort=_ordered(KIND_ORDER)),
        by_channel=_groups(answered, lambda r: r.answered_channel or UNKNOWN, now, sort=_by_name),
        technical=figures([r for r in chosen if r.kind == TECHNICAL], now),
    )


def figures(records: Sequence[CallRecord], now: datetime) -> Figures:
    times = sorted(t for r in records if (t := r.answer_s) is not None)
    return Figures(
        calls=len(records),
        answered=len(times),
        unanswered=len(records) - len(times),
        median_s=statistics.median(times) if times else None,
        p90_s=nearest_rank(times, 90),
        targets=[_target(t, records, now) for t in TARGETS],
    )


def nearest_rank(ordered: Sequence[float], percentile: int) -> float | None:
    """The smallest value that at least ``percentile``% of ``ordered`` are at or below."""
    if not ordered:
        return None
    # Whole numbers: 7 / 100 * 100 in floating point is 7.000000000000001, a rank too far.
    rank = max(1, -(-percentile * len(ordered) // 100))
    return ordered[rank - 1]


def _target(target: Target, records: Sequence[CallRecord], now: datetime) -> TargetFigures:
    within = missed = pending = 0
    for r in records:
        answer = r.answer_s
        if answer is not None:
            if answer <= target.within_s:
                within += 1
            else:
                missed += 1
            continue
        end = r.closed_at if r.closed_at is not None else now
        if (end - r.opened_at).total_seconds() > target.within_s:
            missed += 1
        else:
            pending += 1
    judged = within + missed
    return TargetFigures(
        within_s=target.within_s,
        required_pct=target.required_pct,
        within=within,
        missed=missed,
        pending=pending,
        pct=round(100 * within / judged, 2) if judged else None,
        # Compared unrounded: 97.49% is not 97.5%.
        met=(100 * within >= target.required_pct * judged) if judged else None,
    )


def _groups(
    records: Sequence[CallRecord],
    key: Callable[[CallRecord], str],
    now: datetime,
    sort: Callable[[str], tuple[int, str]],
) -> list[GroupFigures]:
    by_key: dict[str, list[CallRecord]] = {}
    for r in records:
        by_key.setdefault(key(r), []).append(r)
    return [
        GroupFigures(key=k, **figures(by_key[k], now).model_dump())
        for k in sorted(by_key, key=sort)
    ]


def _rank(order: Sequence[str], value: str) -> int:
    return order.index(value) if value in order else len(order)


def _ordered(order: Sequence[str]) -> Callable[[str], tuple[int, str]]:
    return lambda k: (_rank(order, k), k)


def _by_name(k: str) -> tuple[int, str]:
    return (0, k)


# ---------------------------------------------------------------- who answered


def _with_level(r: CallRecord, directory: Directory) -> CallRecord:
    if r.answered_level is not None:
        return r
    # Stored before the level was recorded: derive it from today's directory.
    return CallRecord(
        call_id=r.call_id,
        kind=r.kind,
        opened_at=r.opened_at,
        answered_at=r.answered_at,
        answered_by=r.answered_by,
        answered_channel=r.answered_channel,
        answered_level=answerer_level(directory, r.answered_by),
        closed_at=r.closed_at,
    )


def answerer_level(directory: Directory, who: str | None) -> str:
    """The level at which ``who`` works: a staff id (or a staff phone number) gives
    their area's level; a resident's contact (``contact:<resident>:<n>`` or their
    phone number) is ``family``; anyone else is ``unknown``."""
    if not who:
        return UNKNOWN
    if who.startswith(CONTACT_PREFIX):
        return FAMILY
    staff = directory.staff.get(who) or next(
        (s for s in directory.staff.values() if s.phone == who), None
    )
    if staff is not None:
        area = directory.areas.get(staff.area_id)
        return area.level.value if area else UNKNOWN
    if any(c.phone == who for r in directory.residents.values() for c in r.contacts):
        return FAMILY
    return UNKNOWN


def answerer_name(directory: Directory, who: str) -> str:
    """A name a person recognises for ``who``; the id itself when there is none."""
    staff = directory.staff.get(who) or next(
        (s for s in directory.staff.values() if s.phone == who), None
    )
    if staff is not None:
        return staff.name
    if who.startswith(CONTACT_PREFIX):
        resident_id, _, number = who[len(CONTACT_PREFIX) :].rpartition(":")
        resident = directory.residents.get(resident_id)
        if resident is not None and number.isdigit() and 1 <= int(number) <= len(resident.contacts):
            c = resident.contacts[int(number) - 1]
            return f"{c.name} ({c.relation} of {resident.name})"
    for resident in directory.residents.values():
        for c in resident.contacts:
            if c.phone == who:
                return f"{c.name} ({c.relation} of {resident.name})"
    return who
