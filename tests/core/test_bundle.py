"""Which SMS leave for one number: urgent calls alone, the others bundled."""

from __future__ import annotations

from dispatcher.core.notifications.bundle import BUNDLE_MAX, latest_per_call, plan_sms
from tests.core.outbox_items import item


def test_latest_per_call_keeps_each_calls_newest_step_in_first_seen_order() -> None:
    items = [item(3, "C-2"), item(1, "C-1"), item(4, "C-1", step=1), item(2, "C-3")]
    latest = latest_per_call(items)
    assert list(latest) == ["C-1", "C-3", "C-2"]
    assert latest["C-1"].id == 4


def test_one_non_urgent_call_leaves_as_its_own_message() -> None:
    [planned] = plan_sms([item(1, "C-1")])
    assert [i.id for i in planned.items] == [1]
    assert planned.body == "service C-1 step 0"


def test_several_non_urgent_calls_leave_as_one_list_with_their_codes() -> None:
    [planned] = plan_sms([item(1, "C-1"), item(2, "C-2"), item(3, "C-1", step=1)])
    assert [i.id for i in planned.items] == [1, 2, 3]
    assert "C-1 summary" in planned.body and "C-2 summary" in planned.body
    assert "service C-1" not in planned.body  # a list, not the calls' own texts


def test_each_urgent_call_gets_its_own_message_and_the_first_carries_the_others() -> None:
    items = [item(1, "C-1"), item(2, "C-2", "emergency"), item(3, "C-3", "fall")]
    first, second = plan_sms(items)
    assert [i.id for i in first.items] == [2, 1]
    assert first.body.startswith("emergency C-2") and "C-1 summary" in first.body
    assert [i.id for i in second.items] == [3]
    assert second.body == "fall C-3 step 0"


def test_calls_past_the_limit_wait_for_the_next_round() -> None:
    items = [item(n, f"C-{n}") for n in range(1, BUNDLE_MAX + 3)]
    [planned] = plan_sms(items)
    assert [i.id for i in planned.items] == list(range(1, BUNDLE_MAX + 1))
    assert plan_sms([]) == []
