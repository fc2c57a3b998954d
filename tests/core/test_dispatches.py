"""Dispatching responders, as pure rules: who may be sent, the expected time's bounds,
arrival (by an operator or the presence key), standing down, and overdue once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devices.protocol import CallUpdateState
from dispatcher.adapters.files.directory_files import load_directory
from dispatcher.core import calls as lifecycle
from dispatcher.core import dispatches as rules
from dispatcher.core.calls import Call, CallKind, CallState, Outcome
from dispatcher.core.dispatches import (
    DispatchRequest,
    DispatchState,
    InvalidDispatchError,
    ResponderKind,
)
from dispatcher.core.escalation import EMERGENCY
from tests.support.app import DATA

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
DIRECTORY = load_directory(DATA, "Asia/Shanghai")


def new_call() -> Call:
    call, _ = lifecycle.open_call(
        call_id="C-1",
        device_id="dev-0001",
        kind=CallKind.EMERGENCY,
        policy=EMERGENCY,
        now=T0,
        resident_id="r-0001",
        community_id="c-lh",
    )
    return call


def send(call: Call, request: DispatchRequest, number: int = 1) -> rules.Dispatched:
    responder = rules.responder_for(DIRECTORY, call, request)
    return rules.dispatch(call, responder, number, "wang-fang", "console", T0, request.eta_minutes)


def test_each_kind_of_responder_is_found() -> None:
    call = new_call()
    staff = rules.responder_for(DIRECTORY, call, DispatchRequest(ResponderKind.STAFF, "ma-lin"))
    assert (staff.name, staff.phone, staff.texted) == ("马琳", "+8613761400302", True)
    holder = rules.responder_for(DIRECTORY, call, DispatchRequest(ResponderKind.CONTACT, "2"))
    assert (holder.ref, holder.name, holder.phone) == (
        "contact:r-0001:2",
        "钱阿姨",
        "+8613601110002",
    )
    service = rules.responder_for(DIRECTORY, call, DispatchRequest(ResponderKind.SERVICE, "120"))
    assert service.ref == "120" and not service.texted  # the operator phones 120
    other = rules.responder_for(
        DIRECTORY,
        call,
        DispatchRequest(ResponderKind.OTHER, name="楼长 老刘", phone="+8613700000000"),
    )
    assert (other.name, other.phone, other.texted) == ("楼长 老刘", "+8613700000000", True)


@pytest.mark.parametrize(
    "request_",
    [
        DispatchRequest(ResponderKind.STAFF, "nobody"),
        DispatchRequest(ResponderKind.STAFF, "zheng-hua"),  # 梅林社区: cannot see 柳湖's call
        DispatchRequest(ResponderKind.CONTACT, "3"),  # she has two contacts
        DispatchRequest(ResponderKind.CONTACT, "x"),
        DispatchRequest(ResponderKind.SERVICE, "999"),
        DispatchRequest(ResponderKind.OTHER, name="  "),
    ],
)
def test_a_responder_who_cannot_be_sent_is_refused(request_: DispatchRequest) -> None:
    with pytest.raises(InvalidDispatchError):
        rules.responder_for(DIRECTORY, new_call(), request_)


@pytest.mark.parametrize("minutes", [0, -5, rules.MAX_ETA_MIN + 1])
def test_the_expected_arrival_is_bounded(minutes: int) -> None:
    call = new_call()
    with pytest.raises(InvalidDispatchError):
        send(call, DispatchRequest(ResponderKind.STAFF, "ma-lin", eta_minutes=minutes))
    assert call.state is CallState.OPEN  # nothing changed


def test_dispatching_takes_an_untaken_call_and_is_on_the_timeline() -> None:
    call = new_call()
    made = send(call, DispatchRequest(ResponderKind.STAFF, "ma-lin", eta_minutes=20))
    d = made.dispatch
    assert call.state is CallState.ACKNOWLEDGED and call.held_by == "wang-fang"
    assert made.transition.device_update is CallUpdateState.ACKNOWLEDGED
    assert d.state is DispatchState.ON_THE_WAY
    assert d.expected_at == d.overdue_due_at == T0 + timedelta(minutes=20)
    last = made.transition.timeline[-1]
    assert (last.actor, last.action, last.channel) == ("wang-fang", "dispatched", "console")
    assert "马琳" in last.detail and "20 min" in last.detail


def test_a_resolved_call_takes_no_dispatch() -> None:
    call = new_call()
    lifecycle.resolve(call, "wang-fang", "api", Outcome.FALSE_ALARM, T0)
    with pytest.raises(InvalidDispatchError):
        send(call, DispatchRequest(ResponderKind.SERVICE, "120"))


def test_presence_marks_the_earliest_person_on_the_way_not_the_ambulance() -> None:
    call = new_call()
    ambulance = send(call, DispatchRequest(ResponderKind.SERVICE, "120"), 1).dispatch
    ma = send(call, DispatchRequest(ResponderKind.STAFF, "ma-lin"), 2).dispatch
    son = send(call, DispatchRequest(ResponderKind.CONTACT, "1"), 3).dispatch
    later = T0 + timedelta(minutes=5)
    assert rules.on_presence([son, ambulance, ma], later) is ma
    assert ma.state is DispatchState.ARRIVED and ma.arrived_by == "device"
    assert ma.overdue_due_at is None  # no longer polled
    assert rules.on_presence([son, ambulance, ma], later) is son
    assert rules.on_presence([son, ambulance, ma], later) is ambulance  # nobody else left
    assert rules.on_presence([son, ambulance, ma], later) is None


def test_an_operator_marks_arrived_as_the_presence_key_would() -> None:
    call = new_call()
    d = send(call, DispatchRequest(ResponderKind.STAFF, "ma-lin")).dispatch
    t = rules.mark_arrived(d, call, "wang-fang", "console", T0 + timedelta(minutes=3))
    assert call.state is CallState.RESPONDER_ON_SITE and call.next_ack_escalation_at is None
    assert t.device_update is CallUpdateState.RESPONDER_ON_SITE
    entry = t.timeline[-1]
    assert (entry.actor, entry.action, entry.channel) == (
        "wang-fang",
        "responder_on_site",
        "console",
    )
    with pytest.raises(InvalidDispatchError):  # arrived once
        rules.mark_arrived(d, call, "wang-fang", "console", T0 + timedelta(minutes=4))


def test_overdue_fires_once_and_not_for_an_arrived_or_stood_down_dispatch() -> None:
    call = new_call()
    late = send(call, DispatchRequest(ResponderKind.STAFF, "ma-lin", eta_minutes=10), 1).dispatch
    came = send(call, DispatchRequest(ResponderKind.STAFF, "huang-lei", eta_minutes=10), 2).dispatch
    off = send(call, DispatchRequest(ResponderKind.CONTACT, "1", eta_minutes=10), 3).dispatch
    rules.mark_arrived(came, call, "wang-fang", "console", T0 + timedelta(minutes=9))
    rules.stand_down(off, "wang-fang", "console", T0 + timedelta(minutes=9), "not needed")
    assert rules.take_overdue(late, call, T0 + timedelta(minutes=10) - timedelta(seconds=1)) is None
    at = T0 + timedelta(minutes=12)
    entry = rules.take_overdue(late, call, at)
    assert entry is not None and entry.action == "responder_overdue" and "马琳" in entry.detail
    assert late.state is DispatchState.OVERDUE and late.overdue_due_at is None
    assert rules.take_overdue(late, call, at + timedelta(minutes=5)) is None  # once
    assert rules.take_overdue(came, call, at) is None and rules.take_overdue(off, call, at) is None
    assert rules.needs_attention([late, came]) and not rules.needs_attention([came, off])
    assert rules.summary([d.state.value for d in (came, late)]) == "overdue"
    # The call's own state is unchanged: it keeps its owner (see the module's docstring).
    assert call.state is CallState.RESPONDER_ON_SITE and call.held_by == "wang-fang"
    # An overdue responder who turns up after all is marked arrived.
    rules.mark_arrived(late, call, "wang-fang", "console", at + timedelta(minutes=1))
    assert late.state is DispatchState.ARRIVED


def test_a_dispatch_of_a_resolved_call_is_stood_down_at_its_time_without_raising() -> None:
    call = new_call()
    d = send(call, DispatchRequest(ResponderKind.STAFF, "ma-lin", eta_minutes=5)).dispatch
    lifecycle.resolve(call, "wang-fang", "api", Outcome.HELPED_BY_PHONE, T0 + timedelta(minutes=1))
    assert rules.take_overdue(d, call, T0 + timedelta(minutes=6)) is None
    assert d.state is DispatchState.STOOD_DOWN and d.ended_by == "system"


def test_the_where_to_go_sms_names_the_home_and_never_the_notes() -> None:
    call = new_call()
    d = send(call, DispatchRequest(ResponderKind.STAFF, "ma-lin", eta_minutes=15)).dispatch
    resident = DIRECTORY.residents["r-0001"]
    body = rules.notice_sms(call, resident, DIRECTORY, d, "zh", "王芳")
    assert "张桂兰" in body and "柳湖路88弄3号502室" in body and "15 分钟" in body
    assert "王芳" in body and "C-1" in body
    for secret in ("硝苯地平", "高血压", "2580", "钥匙"):
        assert secret not in body
    english = rules.overdue_sms(call, resident, d, "en")
    assert "马琳" in english and "C-1" in english and "not arrived" in english


def test_a_dispatch_sms_is_wanted_on_a_taken_call_until_it_is_resolved() -> None:
    call = new_call()
    send(call, DispatchRequest(ResponderKind.STAFF, "ma-lin"))
    assert call.state is CallState.ACKNOWLEDGED
    assert not call.wants_notification(T0)  # an escalation SMS: no longer
    assert call.wants_notification(T0, lifecycle.DISPATCH_TIMER)
    lifecycle.resolve(call, "wang-fang", "api", Outcome.VISIT, T0 + timedelta(minutes=9))
    assert not call.wants_notification(T0, lifecycle.DISPATCH_TIMER)
