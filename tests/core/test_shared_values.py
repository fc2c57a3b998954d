"""Residents and devices hold one object for the values many of them have in common
(dispatcher.core.shared_values): 100,000 of each are held in memory."""

from __future__ import annotations

from datetime import date, datetime

from dispatcher.core.directory import Contact, Resident
from dispatcher.core.registry.records import Device, DeviceFields
from dispatcher.core.shared_values import shared


def fresh(text: str) -> str:
    """An equal string that is a new object (as each row read gives)."""
    return "".join(list(text))


def resident(n: int) -> Resident:
    return Resident(
        id=f"r-{n}",
        name=f"Resident {n}",
        birth_date=date.fromisoformat("1940-01-01"),  # a new object each time
        address=f"Street {n}",
        community_id=fresh("c-lh"),
        device_id=f"dev-{n}",
        building=fresh("3号楼"),
        contacts=(Contact(name=f"Child {n}", relation=fresh("女儿"), phone="+8613600000000"),),
    )


def test_equal_values_are_one_object_and_unequal_ones_are_kept() -> None:
    a, b = fresh("c-lh"), fresh("c-lh")
    assert a is not b and shared(a) is shared(b)
    d1, d2 = date(1944, 5, 6), date(1944, 5, 6)
    assert shared(d1) is shared(d2)
    assert shared(date(1944, 5, 7)) == date(1944, 5, 7) and shared(d1) != date(1944, 5, 7)
    moment = datetime(2026, 11, 24, 10, 0)
    assert shared(moment) is moment  # not held: instants seldom repeat
    assert shared(None) is None and shared(3) == 3


def test_two_residents_share_their_community_building_birth_date_and_relation() -> None:
    one, two = resident(1), resident(2)
    assert one.community_id is two.community_id
    assert one.building is two.building
    assert one.birth_date is two.birth_date
    assert one.contacts[0].relation is two.contacts[0].relation
    assert one.name is not two.name and one.name == "Resident 1"  # their own, untouched


def test_two_devices_share_their_model_and_keep_their_ids() -> None:
    def device(n: int) -> Device:
        return Device(DeviceFields(id=f"dev-{n:04d}", model=fresh("YJT-200")))

    one, two = device(1), device(2)
    assert one.fields.model is two.fields.model == "YJT-200"
    assert (one.id, two.id) == ("dev-0001", "dev-0002")
