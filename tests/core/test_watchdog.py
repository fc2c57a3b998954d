"""The supervisor watchdog, pure, with explicit ``now``: when a call nobody has taken
pages the shift supervisor, how often, never once taken, cancelled or resolved; who is
paged (the rota's supervisor on duty, else the district's); the text; the setting."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.adapters.files.directory_files import load_directory
from dispatcher.core import calls as lifecycle
from dispatcher.core import watchdog
from dispatcher.core.calls import Call, CallKind, CallState, Outcome
from dispatcher.core.directory import Role
from dispatcher.core.escalation import EMERGENCY, SERVICE, TECHNICAL, Policy, Watchdog
from tests.support.app import DATA, TUESDAY_10AM

DIRECTORY = load_directory(DATA, "Asia/Shanghai")
S = timedelta(seconds=1)
T0 = TUESDAY_10AM
# Sunday 29 November 2026, 03:00 in Shanghai: no supervisor is on shift anywhere.
SUNDAY_3AM = datetime(2026, 11, 28, 19, 0, tzinfo=UTC)


def new_call(
    policy: Policy = EMERGENCY,
    kind: CallKind = CallKind.EMERGENCY,
    community: str | None = "c-lh",
    at: datetime = T0,
) -> Call:
    call, _ = lifecycle.open_call(
        call_id="C-20261124-0001",
        device_id="dev-0001",
        kind=kind,
        policy=policy,
        now=at,
        resident_id="r-0001" if community else None,
        community_id=community,
    )
    return call


def pages_until(call: Call, end: datetime, step: timedelta = S) -> list[datetime]:
    """Every instant from the call's opening to ``end`` (each ``step``) at which it paged."""
    out = []
    at = call.opened_at
    while at <= end:
        if watchdog.take_due_page(call, at) is not None:
            out.append(at)
        at += step
    return out


# --- when ----------------------------------------------------------------------------


def test_an_untaken_emergency_pages_at_120_s_not_before() -> None:
    call = new_call()
    assert call.watchdog_at == T0 + 120 * S
    assert watchdog.take_due_page(call, T0 + 119 * S) is None
    page = watchdog.take_due_page(call, T0 + 120 * S)
    assert page == watchdog.Page(number=1, of=4, waited=120 * S, late=0 * S)
    assert call.watchdog_pages == 1 and call.watchdog_paged_at == T0 + 120 * S
    assert call.watchdog_at == T0 + 300 * S  # the repeat, 180 s later
    assert watchdog.take_due_page(call, T0 + 120 * S) is None  # not twice at one instant


def test_it_repeats_while_untaken_and_stops_after_its_bound() -> None:
    call = new_call()
    paged = pages_until(call, T0 + timedelta(hours=2))
    assert paged == [T0 + n * S for n in (120, 300, 480, 660)]  # 1 + repeat 3
    assert call.watchdog_at is None and call.watchdog_pages == 4
    assert call.watchdog_paged_at == T0 + 120 * S  # the first page stays on record


def test_a_page_late_after_a_stop_is_one_page_and_the_next_counts_from_it() -> None:
    call = new_call()
    late = T0 + timedelta(minutes=30)  # the daemon was down through every page
    page = watchdog.take_due_page(call, late)
    assert page is not None and page.number == 1 and page.late == late - (T0 + 120 * S)
    assert call.watchdog_at == late + 180 * S


@pytest.mark.parametrize("how", ["take", "acknowledge", "resolve", "cancel", "presence"])
def test_a_call_taken_or_closed_before_the_due_time_never_pages(how: str) -> None:
    call = new_call()
    at = T0 + 119 * S
    if how == "take":
        lifecycle.take(call, "wang-fang", "console", at)
    elif how == "acknowledge":
        lifecycle.acknowledge(call, "contact:r-0001:1", "sms", at)  # a person, by SMS
    elif how == "resolve":
        lifecycle.resolve(call, "wang-fang", "api", Outcome.FALSE_ALARM, at)
    elif how == "cancel":
        lifecycle.cancel(call, at)
    else:
        lifecycle.presence(call, at)
    assert call.watchdog_at is None
    assert pages_until(call, T0 + timedelta(hours=1), 10 * S) == []


def test_a_call_taken_between_pages_pages_no_more_even_if_given_back() -> None:
    call = new_call()
    assert watchdog.take_due_page(call, T0 + 120 * S) is not None
    lifecycle.take(call, "wang-fang", "console", T0 + 200 * S)
    lifecycle.escalate_now(call, "wang-fang", "sms", T0 + 210 * S)  # "7E": back to open
    assert call.state is CallState.OPEN
    assert pages_until(call, T0 + timedelta(hours=1), 10 * S) == []
    assert call.watchdog_pages == 1


def test_a_stale_due_time_on_a_call_no_longer_open_is_dropped() -> None:
    call = new_call()
    call.state = CallState.CANCELLED  # as if written without the lifecycle
    assert watchdog.take_due_page(call, T0 + 500 * S) is None
    assert call.watchdog_at is None and call.watchdog_pages == 0


def test_a_reopened_call_counts_again_from_the_new_press() -> None:
    call = new_call()
    lifecycle.cancel(call, T0 + 30 * S)
    lifecycle.join(call, CallKind.EMERGENCY, T0 + 600 * S, EMERGENCY)
    assert call.state is CallState.OPEN and call.watchdog_at == T0 + 720 * S


def test_a_service_request_raised_to_an_emergency_follows_the_emergency_watchdog() -> None:
    call = new_call(SERVICE, CallKind.SERVICE)
    assert call.watchdog_at == T0 + timedelta(minutes=30)
    lifecycle.join(call, CallKind.EMERGENCY, T0 + 90 * S, EMERGENCY)
    assert call.watchdog_at == T0 + 120 * S  # untaken since it opened


def test_technical_alerts_and_policies_without_a_watchdog_never_page() -> None:
    call = new_call(TECHNICAL, CallKind.TECHNICAL)
    assert call.watchdog_at is None
    assert pages_until(call, T0 + timedelta(days=1), timedelta(minutes=5)) == []


def test_the_watchdog_travels_with_the_policy_json() -> None:
    again = Policy.from_json(EMERGENCY.to_json())
    assert again.watchdog == Watchdog(120, 180, 3) and again == EMERGENCY
    old = {k: v for k, v in EMERGENCY.to_json().items() if k != "watchdog"}
    assert Policy.from_json(old).watchdog is None  # calls stored before: never paged


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"untaken_after_s": 0}, "untaken_after_s must be positive"),
        ({"repeat_every_s": -5}, "repeat_every_s must be positive"),
        ({"repeat": -1}, "repeat must not be negative"),
    ],
)
def test_a_bad_watchdog_is_refused(fields: dict[str, int], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Watchdog(**fields)


# --- whom ----------------------------------------------------------------------------


def test_the_supervisor_on_duty_for_the_nearest_level_is_paged() -> None:
    # c-lh is in 河西街道 (s-hx), whose supervisor sun-li is on shift on Tuesday morning;
    # the district's zhao-min (on shift too, as a backup) is not asked first.
    found = watchdog.shift_supervisors(DIRECTORY, "c-lh", T0)
    assert [p.id for p in found.people] == ["sun-li"]
    assert found.found_at is not None and found.found_at.id == "s-hx"
    assert found.fallback is None
    assert [p.id for p in watchdog.shift_supervisors(DIRECTORY, "c-ml", T0).people] == ["zhou-jun"]


def test_an_unregistered_device_pages_the_district_supervisor_on_duty() -> None:
    found = watchdog.shift_supervisors(DIRECTORY, None, T0)
    assert [p.id for p in found.people] == ["zhao-min"] and found.fallback is None


def test_with_no_supervisor_on_duty_every_district_supervisor_is_paged() -> None:
    found = watchdog.shift_supervisors(DIRECTORY, "c-lh", SUNDAY_3AM)
    assert [p.id for p in found.people] == ["zhao-min"]
    assert found.found_at is None and found.fallback == "district"


def test_with_no_supervisor_at_all_the_command_centre_is_paged() -> None:
    staff = {k: s for k, s in DIRECTORY.staff.items() if s.role is not Role.SUPERVISOR}
    bare = dataclasses.replace(DIRECTORY, staff=staff)
    found = watchdog.shift_supervisors(bare, "c-lh", SUNDAY_3AM)
    assert found.fallback == "command_centre" and found.people
    assert all(bare.staff[p.id].role is Role.OPERATOR for p in found.people)


# --- what ----------------------------------------------------------------------------


def test_the_page_names_resident_community_kind_wait_and_reply_code() -> None:
    call = new_call()
    page = watchdog.take_due_page(call, T0 + 125 * S)
    assert page is not None
    resident = DIRECTORY.residents["r-0001"]
    zh = watchdog.page_sms(call, resident, DIRECTORY, "zh", page, 3)
    assert "张桂兰" in zh and "柳湖社区" in zh and "紧急呼叫" in zh
    assert "2分5秒" in zh and "回复 3A 确认" in zh and call.id in zh
    en = watchdog.page_sms(call, resident, DIRECTORY, "en", page, 3)
    assert "SUPERVISOR ALERT" in en and "2 min 5 s" in en and "reply 3A" in en
    assert "柳湖路88弄" not in zh + en  # the page names the community, not the address
    assert "untaken for 2 min 5 s" in watchdog.page_summary(call, resident, "en", page)


def test_the_page_of_an_unregistered_device_names_the_device() -> None:
    call = new_call(community=None)
    page = watchdog.take_due_page(call, T0 + 40 * S + 120 * S)
    assert page is not None
    assert "dev-0001" in watchdog.page_sms(call, None, DIRECTORY, "en", page, None)
