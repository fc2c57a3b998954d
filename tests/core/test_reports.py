"""Service-level arithmetic (dispatcher.core.reports) on hand-made calls, and the first
answer as the call lifecycle records it. Pure: no database, no clock but ``now``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from dispatcher.core import calls as lifecycle
from dispatcher.core.calls import Call, CallKind, Outcome
from dispatcher.core.directory import Area, Contact, Directory, Level, Resident, Role, Staff
from dispatcher.core.escalation import EMERGENCY
from dispatcher.core.reports import (
    AnswerTimes,
    CallRecord,
    Figures,
    TargetFigures,
    answer_times,
    answerer_level,
    answerer_name,
    nearest_rank,
)

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
SINCE = datetime(2026, 11, 1, tzinfo=UTC)
UNTIL = datetime(2026, 12, 1, tzinfo=UTC)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # long after every call in the period

DIRECTORY = Directory(
    areas={
        "d": Area("d", Level.DISTRICT, "指挥中心", None),
        "s": Area("s", Level.STREET, "河西街道", "d"),
        "c": Area("c", Level.COMMUNITY, "柳湖社区", "s"),
    },
    staff={
        "op": Staff("op", "王芳", "+8610000000001", "d", Role.OPERATOR),
        "sup": Staff("sup", "孙丽", "+8610000000002", "s", Role.SUPERVISOR),
        "duty": Staff("duty", "黄磊", "+8610000000003", "c", Role.STAFF),
    },
    residents={
        "r1": Resident(
            "r1",
            "张桂兰",
            date(1938, 3, 12),
            "柳湖路88弄",
            "c",
            "dev-1",
            contacts=(Contact("张伟", "儿子", "+8613600000001"),),
        )
    },
    shifts=(),
)


def answered(
    seconds: float | None,
    *,
    by: str = "op",
    kind: str = "emergency",
    channel: str = "api",
    level: str | None = "district",
    opened: datetime = T0,
    closed_after: float | None = None,
) -> CallRecord:
    return CallRecord(
        call_id=f"C-{opened:%H%M%S}-{seconds}",
        kind=kind,
        opened_at=opened,
        answered_at=None if seconds is None else opened + timedelta(seconds=seconds),
        answered_by=None if seconds is None else by,
        answered_channel=None if seconds is None else channel,
        answered_level=None if seconds is None else level,
        closed_at=None if closed_after is None else opened + timedelta(seconds=closed_after),
    )


def report(records: list[CallRecord], now: datetime = NOW) -> AnswerTimes:
    return answer_times(records, since=SINCE, until=UNTIL, now=now, directory=DIRECTORY)


def targets(f: Figures) -> tuple[TargetFigures, TargetFigures]:
    sixty, one_eighty = f.targets
    assert (sixty.within_s, sixty.required_pct) == (60, 97.5)
    assert (one_eighty.within_s, one_eighty.required_pct) == (180, 99.0)
    return sixty, one_eighty


# ---------------------------------------------------------------- the arithmetic


def test_an_answer_at_exactly_the_target_is_within_it() -> None:
    r = report([answered(60), answered(60.5), answered(180), answered(181)])
    sixty, one_eighty = targets(r.overall)
    assert (sixty.within, sixty.missed, sixty.pending) == (1, 3, 0)
    assert (one_eighty.within, one_eighty.missed, one_eighty.pending) == (3, 1, 0)
    assert sixty.pct == 25.0 and one_eighty.pct == 75.0
    assert sixty.met is False and one_eighty.met is False


def test_median_and_90th_percentile() -> None:
    # 1..10 s: the median is between 5 and 6; 90% of ten answers is the 9th.
    r = report([answered(s) for s in (7, 3, 10, 1, 5, 2, 9, 4, 8, 6)])
    assert (r.overall.median_s, r.overall.p90_s) == (5.5, 9)
    odd = report([answered(s) for s in (30, 90, 200)])
    assert (odd.overall.median_s, odd.overall.p90_s) == (90, 200)
    one = report([answered(42)])
    assert (one.overall.median_s, one.overall.p90_s) == (42, 42)
    assert nearest_rank([float(s) for s in range(1, 21)], 90) == 18
    assert nearest_rank([float(s) for s in range(1, 71)], 90) == 63
    # 7% of 100 is exactly the 7th, whatever floating point makes of 7 / 100 * 100
    assert nearest_rank([float(s) for s in range(1, 101)], 7) == 7
    assert nearest_rank([], 90) is None


def test_an_empty_period_has_no_figures_rather_than_zero_percent() -> None:
    r = report([answered(10, opened=SINCE - timedelta(seconds=1))])
    assert r.overall.calls == 0 and r.overall.answered == 0
    assert r.overall.median_s is None and r.overall.p90_s is None
    for t in r.overall.targets:
        assert (t.within, t.missed, t.pending, t.pct, t.met) == (0, 0, 0, None, None)
    assert r.by_level == r.by_operator == r.by_kind == r.by_channel == []
    assert r.technical.calls == 0


def test_the_period_includes_since_and_excludes_until() -> None:
    r = report([answered(10, opened=SINCE), answered(10, opened=UNTIL)])
    assert r.overall.calls == 1
    with pytest.raises(ValueError, match="since must be before until"):
        answer_times([], since=UNTIL, until=UNTIL, now=NOW, directory=DIRECTORY)


@pytest.mark.parametrize(
    ("age_s", "sixty", "one_eighty"),
    [
        (40, "pending", "pending"),  # too young to be judged for either target
        (60, "pending", "pending"),  # may still be answered at exactly 60 s
        (61, "missed", "pending"),
        (100, "missed", "pending"),
        (180, "missed", "pending"),
        (181, "missed", "missed"),
        (3600, "missed", "missed"),
    ],
)
def test_an_unanswered_call_is_missed_only_once_older_than_the_target(
    age_s: int, sixty: str, one_eighty: str
) -> None:
    now = T0 + timedelta(seconds=age_s)
    r = report([answered(None)], now=now)
    assert (r.overall.calls, r.overall.answered, r.overall.unanswered) == (1, 0, 1)
    got = []
    for t in r.overall.targets:
        assert t.within == 0
        assert t.missed + t.pending == 1
        got.append("missed" if t.missed else "pending")
        assert t.met is (False if t.missed else None)
    assert got == [sixty, one_eighty]
    # nobody answered it: it belongs to no level, operator or channel
    assert r.by_level == r.by_operator == r.by_channel == []
    assert [k.key for k in r.by_kind] == ["emergency"]


def test_targets_are_met_at_their_exact_share_not_below() -> None:
    # 39 of 40 within 60 s is exactly 97.5%; 38 of 39 is 97.44%.
    met = report([answered(20)] * 39 + [answered(100)])
    sixty, one_eighty = targets(met.overall)
    assert (sixty.pct, sixty.met) == (97.5, True)
    assert (one_eighty.pct, one_eighty.met) == (100.0, True)
    missed = report([answered(20)] * 38 + [answered(100)])
    assert (missed.overall.targets[0].pct, missed.overall.targets[0].met) == (97.44, False)
    # 99 of 100 within 180 s meets the second target; 98 of 100 does not.
    assert report([answered(20)] * 99 + [answered(200)]).overall.targets[1].met is True
    two_late = report([answered(20)] * 98 + [answered(200), answered(None)])
    assert (two_late.overall.targets[1].pct, two_late.overall.targets[1].met) == (98.0, False)


def test_technical_alerts_are_reported_apart() -> None:
    r = report(
        [
            answered(30),
            answered(500, kind="technical"),
            # cleared by itself after 50 s, nobody answered: nothing was left to answer
            answered(None, kind="technical", closed_after=50),
            # cleared by itself after 10 min: it waited unanswered past both targets
            answered(None, kind="technical", closed_after=600),
        ]
    )
    assert (r.overall.calls, r.overall.answered) == (1, 1)
    assert [g.key for g in r.by_kind] == ["emergency"]
    assert [g.key for g in r.by_operator] == ["op"] and r.by_operator[0].calls == 1
    tech = r.technical
    assert (tech.calls, tech.answered, tech.unanswered) == (3, 1, 2)
    sixty, one_eighty = targets(tech)
    assert (sixty.within, sixty.missed, sixty.pending) == (0, 2, 1)
    assert (one_eighty.within, one_eighty.missed, one_eighty.pending) == (0, 2, 1)


def test_every_kind_of_residents_call_counts_in_the_overall_figures() -> None:
    # No outcome is looked at: a false alarm or a cancelled call is judged like any other.
    r = report([answered(30), answered(90, kind="fall"), answered(20, kind="service")])
    assert r.overall.calls == 3
    assert targets(r.overall)[0].within == 2


def test_figures_per_level_operator_kind_and_channel() -> None:
    r = report(
        [
            answered(30, by="op", level="district", channel="api"),
            answered(50, by="op", level="district", channel="cli", kind="fall"),
            answered(90, by="duty", level="community", channel="cli"),
            # stored before the level was recorded: derived from the directory
            answered(200, by="sup", level=None, channel="api", kind="service"),
            answered(150, by="contact:r1:1", level=None, channel="sms"),
            answered(20, by="+8613600000001", level=None, channel="sms"),  # a contact's phone
            answered(70, by="gone", level=None, channel="voice"),  # no longer in the directory
            answered(None),
        ]
    )
    assert (r.overall.calls, r.overall.answered, r.overall.unanswered) == (8, 7, 1)
    levels = {g.key: (g.calls, targets(g)[0].within, targets(g)[1].within) for g in r.by_level}
    assert levels == {
        "community": (1, 0, 1),
        "street": (1, 0, 0),
        "district": (2, 2, 2),
        "family": (2, 1, 2),
        "unknown": (1, 0, 1),
    }
    assert [g.key for g in r.by_level] == ["community", "street", "district", "family", "unknown"]
    operators = {g.key: (g.name, g.level, g.calls, g.median_s) for g in r.by_operator}
    assert operators == {
        "duty": ("黄磊", "community", 1, 90),
        "sup": ("孙丽", "street", 1, 200),
        "op": ("王芳", "district", 2, 40),
        "contact:r1:1": ("张伟 (儿子 of 张桂兰)", "family", 1, 150),
        "+8613600000001": ("张伟 (儿子 of 张桂兰)", "family", 1, 20),
        "gone": ("gone", "unknown", 1, 70),
    }
    assert [g.level for g in r.by_operator] == [
        "community",
        "street",
        "district",
        "family",
        "family",
        "unknown",
    ]
    kinds = {g.key: (g.calls, g.answered, g.unanswered) for g in r.by_kind}
    assert kinds == {"emergency": (6, 5, 1), "fall": (1, 1, 0), "service": (1, 1, 0)}
    assert [g.key for g in r.by_kind] == ["emergency", "fall", "service"]
    channels = {g.key: g.calls for g in r.by_channel}
    assert channels == {"api": 2, "cli": 2, "sms": 2, "voice": 1}


def test_times_come_back_in_the_data_time_zone() -> None:
    r = report([])
    assert r.timezone == "Asia/Shanghai"
    assert r.since.isoformat() == "2026-11-01T08:00:00+08:00"
    assert r.until == UNTIL


def test_answerer_level_and_name() -> None:
    assert answerer_level(DIRECTORY, "op") == "district"
    assert answerer_level(DIRECTORY, "+8610000000003") == "community"  # a staff phone
    assert answerer_level(DIRECTORY, "contact:r1:1") == "family"
    assert answerer_level(DIRECTORY, "contact:r-gone:3") == "family"
    assert answerer_level(DIRECTORY, "stranger") == "unknown"
    assert answerer_level(DIRECTORY, None) == "unknown"
    assert answerer_name(DIRECTORY, "sup") == "孙丽"
    assert answerer_name(DIRECTORY, "contact:r1:1") == "张伟 (儿子 of 张桂兰)"
    assert answerer_name(DIRECTORY, "contact:r1:9") == "contact:r1:9"
    assert answerer_name(DIRECTORY, "stranger") == "stranger"


# ---------------------------------------------------------------- what the lifecycle records


def new_call() -> Call:
    call, _ = lifecycle.open_call(
        call_id="C-1",
        device_id="dev-1",
        kind=CallKind.EMERGENCY,
        policy=EMERGENCY,
        now=T0,
        resident_id="r1",
        community_id="c",
    )
    return call


def test_the_first_acknowledgement_is_the_answer_and_stays() -> None:
    call = new_call()
    assert call.answered_at is None
    lifecycle.acknowledge(call, "duty", "sms", T0 + timedelta(seconds=30))
    lifecycle.escalate_now(call, "duty", "sms", T0 + timedelta(seconds=40))
    lifecycle.acknowledge(call, "op", "api", T0 + timedelta(seconds=90))
    lifecycle.resolve(call, "op", "api", Outcome.VISIT, T0 + timedelta(seconds=900))
    assert (call.answered_at, call.answered_by, call.answered_channel) == (
        T0 + timedelta(seconds=30),
        "duty",
        "sms",
    )


def test_a_resolve_without_acknowledgement_is_the_answer() -> None:
    call = new_call()
    lifecycle.cancel(call, T0 + timedelta(seconds=5))
    lifecycle.resolve(call, "op", "cli", Outcome.CANCELLED_BY_RESIDENT, T0 + timedelta(seconds=45))
    assert (call.answered_at, call.answered_by, call.answered_channel) == (
        T0 + timedelta(seconds=45),
        "op",
        "cli",
    )


def test_a_technical_alert_that_clears_itself_is_not_answered() -> None:
    call = new_call()
    lifecycle.clear_technical(call, T0 + timedelta(seconds=20), "battery ok")
    assert call.answered_at is None and call.answered_by is None
