"""Pure tests of the policy engine with a fake clock: targets, repeats and exhaustion,
skipping, the acknowledgement timeout, the old JSON format, and properties."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.adapters.files.directory_files import load_directory
from dispatcher.core import calls as lifecycle
from dispatcher.core import routing
from dispatcher.core.calls import Call, CallKind, CallState, Outcome
from dispatcher.core.directory import Area, Contact, Directory, Level, Resident, Role, Shift, Staff
from dispatcher.core.escalation import (
    EMERGENCY,
    EXHAUSTED_TARGETS,
    AckTimeout,
    Policy,
    Step,
    parse_target,
)
from tests.support.app import DATA

T0 = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)  # a Saturday, 10:00 in Shanghai
ALL_WEEK = frozenset(range(1, 8))
ALL_DAY = (time(0, 0), time(0, 0))


def new_call(policy: Policy = EMERGENCY, kind: CallKind = CallKind.EMERGENCY) -> Call:
    call, _ = lifecycle.open_call(
        call_id="C-1",
        device_id="dev-1",
        kind=kind,
        policy=policy,
        now=T0,
        resident_id="r-1",
        community_id="c-1",
    )
    return call


def index_of(due: lifecycle.DueStep | None) -> int | None:
    return None if due is None else due.index


# --- the old format and JSON ---------------------------------------------------------


def test_a_policy_stored_in_the_old_format_still_loads() -> None:
    """Calls stored before issue 3: no channels, no repeat, no acknowledgement timeout."""
    old = {
        "name": "emergency",
        "repeat_every_s": 180,
        "steps": [
            {"delay_s": 0, "targets": ["hotline"]},
            {"delay_s": 60, "targets": ["hotline", "community"]},
        ],
    }
    policy = Policy.from_json(old)
    assert policy.steps[1] == Step(60, ("hotline", "community"), ("sms",))
    assert policy.repeat is None and policy.ack_timeout is None
    assert policy.step(50).targets == ("hotline", "community")  # repeats for ever


def test_a_full_policy_round_trips_through_json() -> None:
    policy = Policy(
        "p",
        (Step(0, ("rotation:days",), ("sms", "voice")), Step(30, ("emergency_contacts:1",))),
        60,
        repeat=3,
        ack_timeout=AckTimeout(120, (Step(0, ("acknowledger",)),), 60),
    )
    assert Policy.from_json(policy.to_json()) == policy


@pytest.mark.parametrize(
    "spec",
    [
        *("", "hotlin", "person:", "person:Bad Id", "on_duty:city", "on_duty:street:boss"),
        *("rotation", "emergency_contacts:0", "emergency_contacts:x", "x:y"),
    ],
)
def test_bad_targets_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_target(spec)
    with pytest.raises(ValueError):
        Step(0, (spec,))


# --- repeats, exhaustion, skipping ---------------------------------------------------


def test_after_its_repeats_a_policy_keeps_reminding_the_command_centre() -> None:
    policy = Policy("p", (Step(0, ("community",)), Step(60, ("community",))), 60, repeat=2)
    assert [policy.is_exhausted(i) for i in range(6)] == [False] * 4 + [True] * 2
    assert policy.step(3).targets == ("community",)
    assert policy.step(4).targets == policy.step(9).targets == EXHAUSTED_TARGETS
    assert policy.due_at(T0, 4) == T0 + timedelta(seconds=60 + 3 * 60)
    # Without a repeat count, the last step repeats for ever (the built-in policies).
    assert not EMERGENCY.is_exhausted(10_000)


def test_a_skipped_step_brings_only_the_next_one_forward() -> None:
    call = new_call()
    assert index_of(lifecycle.take_due_step(call, T0)) == 0
    lifecycle.skip_at_once(call, T0)
    assert index_of(lifecycle.take_due_step(call, T0)) == 1  # not 60 s later
    assert call.next_escalation_at == T0 + timedelta(seconds=180)


# --- the acknowledgement timeout -----------------------------------------------------


def test_ack_timeout_escalates_to_the_holder_then_the_next_levels() -> None:
    call = new_call()
    lifecycle.take_due_step(call, T0)
    acked = T0 + timedelta(seconds=30)
    lifecycle.acknowledge(call, "op-1", "api", acked)
    deadline = acked + timedelta(minutes=45)
    assert call.held_by == "op-1" and call.next_ack_escalation_at == deadline
    assert lifecycle.take_due_ack_step(call, deadline - timedelta(seconds=1)) is None
    assert index_of(lifecycle.take_due_ack_step(call, deadline)) == 0
    assert EMERGENCY.ack_timeout is not None
    assert EMERGENCY.ack_timeout.step(0).targets == ("acknowledger",)
    assert call.next_ack_escalation_at == deadline + timedelta(seconds=300)
    assert index_of(lifecycle.take_due_ack_step(call, deadline + timedelta(seconds=300))) == 1
    assert "street_supervisor" in EMERGENCY.ack_timeout.step(1).targets
    # A new acknowledgement (by anyone) stops it and starts it afresh for them.
    again = deadline + timedelta(seconds=400)
    t = lifecycle.acknowledge(call, "op-2", "sms", again)
    assert [e.action for e in t.timeline] == ["acknowledged"]
    assert call.held_by == "op-2" and call.acknowledged_by == "op-1"
    assert call.acknowledged_at == acked  # the first answer time stays
    assert call.ack_step == 0 and call.next_ack_escalation_at == again + timedelta(minutes=45)
    # Resolving stops it for good.
    lifecycle.resolve(call, "op-2", "api", Outcome.HELPED_BY_PHONE, again)
    assert call.next_ack_escalation_at is None
    assert lifecycle.take_due_ack_step(call, again + timedelta(days=1)) is None


def test_ack_timeout_stops_on_presence_and_on_escalate_now() -> None:
    for change in (
        lambda c: lifecycle.presence(c, T0),
        lambda c: lifecycle.escalate_now(c, "op-1", "sms", T0),
    ):
        call = new_call()
        lifecycle.acknowledge(call, "op-1", "api", T0)
        change(call)
        assert call.next_ack_escalation_at is None and not call.is_ack_escalating


def test_a_policy_without_ack_timeout_sets_none() -> None:
    call = new_call(Policy("p", (Step(0, ("hotline",)),), 60))
    lifecycle.acknowledge(call, "op-1", "api", T0)
    assert call.next_ack_escalation_at is None


# --- the property: no step fires twice, every due step fires ------------------------

SKIPPY = Policy(
    "skippy",
    (Step(0, ("hotline",)), Step(30, ("community",)), Step(60, ("street_supervisor",))),
    45,
    repeat=2,
    ack_timeout=AckTimeout(100, (Step(0, ("acknowledger",)), Step(20, ("hotline",))), 50),
)

action = st.one_of(
    st.tuples(st.just("advance"), st.integers(min_value=0, max_value=200)),
    st.tuples(st.just("join"), st.sampled_from([CallKind.EMERGENCY, CallKind.SERVICE])),
    st.tuples(st.just("ack"), st.sampled_from(["op-1", "op-2"])),
    st.just(("escalate_now", None)),
    st.just(("cancel", None)),
    st.just(("presence", None)),
    st.just(("reload", None)),
)


def reload(call: Call) -> Call:
    """What a restart does to a call: it comes back from its stored columns."""
    again = copy.copy(call)
    again.policy = Policy.from_json(call.policy.to_json())
    return again


@settings(max_examples=300, deadline=None)
@given(
    st.lists(action, max_size=40),
    st.lists(st.booleans(), min_size=1, max_size=30),
)
def test_no_step_fires_twice_and_every_due_step_fires(
    actions: list[tuple[str, object]], nobody: list[bool]
) -> None:
    """Clock advances, presses, acknowledgements, escalate_now, cancels, presence and
    reloads in any order; the engine drains due steps after each, skipping those that
    (by the draw) find nobody. Per escalation, each step index fires once, in order,
    and after the last poll nothing due is left unfired."""
    call = new_call(SKIPPY)
    now = T0
    epoch, ack_epoch = 0, 0
    fired: dict[int, list[int]] = {0: []}
    ack_fired: dict[int, list[int]] = {0: []}
    draws = iter(nobody * 100)

    def drain() -> None:
        # A catch-up (a poll late by more than a step's gap) stands for the steps it
        # missed: each fired step counts as its range first..index.
        while (due := lifecycle.take_due_step(call, now)) is not None:
            fired[epoch].extend(range(due.first, due.index + 1))
            if due.index < call.policy.last and next(draws):
                lifecycle.skip_at_once(call, now)
        while (due := lifecycle.take_due_ack_step(call, now)) is not None:
            ack_fired[ack_epoch].extend(range(due.first, due.index + 1))

    drain()
    for name, arg in actions:
        if call.state is CallState.RESOLVED:
            break
        if name == "advance":
            assert isinstance(arg, int)
            now += timedelta(seconds=arg)
        elif name == "join":
            assert isinstance(arg, CallKind)
            t = lifecycle.join(call, arg, now, SKIPPY)
            if {"reopened", "priority_raised"} & {e.action for e in t.timeline}:
                epoch += 1
                fired[epoch] = []
        elif name == "ack":
            assert isinstance(arg, str)
            if lifecycle.acknowledge(call, arg, "api", now).timeline:
                ack_epoch += 1
                ack_fired[ack_epoch] = []
        elif name == "escalate_now":
            lifecycle.escalate_now(call, "op-1", "sms", now)
        elif name == "cancel":
            lifecycle.cancel(call, now)
        elif name == "presence":
            lifecycle.presence(call, now)
        elif name == "reload":
            call = reload(call)
        drain()
    for indices in fired.values():
        assert indices == list(range(len(indices)))
    for indices in ack_fired.values():
        assert indices == list(range(len(indices)))
    assert call.escalation_step == len(fired[epoch])
    if call.is_escalating:
        assert call.next_escalation_at is not None and call.next_escalation_at > now
    if call.is_ack_escalating:
        assert call.next_ack_escalation_at is not None and call.next_ack_escalation_at > now


# --- targets -------------------------------------------------------------------------


def small_directory() -> Directory:
    areas = {
        "d": Area("d", Level.DISTRICT, "District", None),
        "s": Area("s", Level.STREET, "Street", "d"),
        "c": Area("c", Level.COMMUNITY, "Community", "s"),
    }
    staff = {
        s.id: s
        for s in (
            Staff("op", "Op", "+8613000000001", "d", Role.OPERATOR),
            Staff("sup-d", "SupD", "+8613000000002", "d", Role.SUPERVISOR),
            Staff("sup-s", "SupS", "+8613000000003", "s", Role.SUPERVISOR),
            Staff("c1", "C1", "+8613000000004", "c", Role.STAFF),
            Staff("c2", "C2", "+8613000000005", "c", Role.STAFF),
            Staff("night", "Night", "+8613000000006", "d", Role.STAFF),
        )
    }
    resident = Resident(
        "r",
        "R",
        date(1940, 1, 1),
        "1 Road",
        "c",
        "dev-r",
        contacts=(
            Contact("Son", "son", "+8613000000011"),
            Contact("Daughter", "daughter", "+8613000000012"),
        ),
    )
    shifts = (
        Shift("d", "op", ALL_WEEK, *ALL_DAY),
        Shift("c", "c1", ALL_WEEK, *ALL_DAY, role="primary"),
        Shift("c", "c2", ALL_WEEK, *ALL_DAY, role="backup"),
    )
    return Directory(areas, staff, {"r": resident}, shifts)


def who(directory: Directory, *targets: str, holder: str | None = None) -> list[str]:
    found = routing.recipients(
        directory,
        targets,
        community_id="c",
        resident=directory.residents["r"],
        at=T0,
        holder=holder,
    )
    return [r.id for r in found]


def test_each_kind_of_target_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    d = small_directory()
    assert who(d, "on_duty:community") == ["c1", "c2"]
    assert who(d, "on_duty:community:backup") == ["c2"]
    assert who(d, "on_duty:street") == []  # exactly that level: nobody on the street's rota
    assert who(d, "on_duty:district") == ["op"]
    assert who(d, "person:sup-s") == ["sup-s"]
    assert who(d, "person:gone") == []
    assert who(d, "emergency_contacts") == ["contact:r:1", "contact:r:2"]
    assert who(d, "emergency_contacts:1") == ["contact:r:1"]
    assert who(d, "district_supervisors") == ["sup-d"]
    assert who(d, "street_supervisor") == ["sup-s"]
    assert who(d, "acknowledger", holder="c2") == ["c2"]
    assert who(d, "acknowledger") == []
    assert who(d, "hotline", "on_duty:district", "community") == ["op", "c1", "c2"]  # once each

    rotations = {"nights": ["night"]}

    def fake_rotation_on_call(directory: Directory, rotation_id: str, at: datetime) -> list[Staff]:
        return [directory.staff[s] for s in rotations[rotation_id]]

    monkeypatch.setattr(routing.rota, "rotation_on_call", fake_rotation_on_call)
    assert who(d, "rotation:nights") == ["night"]
    assert who(d, "rotation:unknown") == []  # the rota's KeyError: nobody, not a crash


def test_the_command_centre_fallback_reaches_someone_even_without_a_hotline() -> None:
    d = small_directory()
    assert [r.id for r in routing.command_centre(d, T0)] == ["op"]
    no_hotline = Directory(d.areas, d.staff, d.residents, d.shifts[1:])
    assert [r.id for r in routing.command_centre(no_hotline, T0)] == ["sup-d"]


DIRECTORY = load_directory(DATA, "Asia/Shanghai")


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(2026, 1, 1),
        max_value=datetime(2028, 12, 31),
        timezones=st.just(UTC),
    ),
    st.sampled_from([None, *sorted(a for a in DIRECTORY.areas)]),
    st.integers(min_value=0, max_value=20),
)
def test_at_any_instant_the_emergency_policy_reaches_someone(
    at: datetime, community_id: str | None, index: int
) -> None:
    """Every step of the emergency policy, and the command-centre fallback, names
    somebody at every instant, for every community and for unknown devices."""
    step = EMERGENCY.step(index)
    resident = next(
        (r for r in DIRECTORY.residents.values() if r.community_id == community_id), None
    )
    found = routing.recipients(
        DIRECTORY, step.targets, community_id=community_id, resident=resident, at=at
    )
    assert found
    assert routing.command_centre(DIRECTORY, at)
