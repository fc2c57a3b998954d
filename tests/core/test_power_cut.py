"""The grouped power-cut rule: places of residents and the threshold within a window,
with explicit instants."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from dispatcher.core.directory import Area, Directory, Level, Resident
from dispatcher.core.power_cut import (
    PlaceIndex,
    PlaceKind,
    PowerCutRule,
    building_address,
    describe,
    places_of,
)

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def resident(n: int, address: str, building: str = "", room: str = "", community: str = "c-a"):
    return Resident(
        id=f"r-{n}",
        name=f"R{n}",
        birth_date=date(1940, 1, 1),
        address=address,
        community_id=community,
        device_id=f"dev-{n}",
        building=building,
        room=room,
    )


def directory(*residents: Resident) -> Directory:
    areas = {
        "d": Area("d", Level.DISTRICT, "District", None),
        "s": Area("s", Level.STREET, "Street", "d"),
        "c-a": Area("c-a", Level.COMMUNITY, "柳湖社区", "s"),
        "c-b": Area("c-b", Level.COMMUNITY, "青石社区", "s"),
    }
    return Directory(areas, {}, {r.id: r for r in residents}, ())


def test_the_building_is_the_address_without_the_flat() -> None:
    assert building_address(resident(1, "柳湖路88弄3号502室", "3号", "502")) == "柳湖路88弄3号"
    assert building_address(resident(2, "柳湖路88弄3号 502", "3号", "502")) == "柳湖路88弄3号"
    # No room to strip: the address up to the building.
    assert building_address(resident(3, "柳湖路88弄3号楼东", "3号")) == "柳湖路88弄3号"
    # Neither: the building is not known (only the community groups her).
    assert building_address(resident(4, "柳湖路120号2楼")) is None


def test_two_flats_of_one_building_share_a_place_and_others_do_not() -> None:
    a = resident(1, "柳湖路88弄3号502室", "3号", "502")
    b = resident(2, "柳湖路88弄3号101室", "3号", "101")
    c = resident(3, "柳湖路88弄5号101室", "5号", "101")
    d = resident(4, "青石路1号101室", "1号", "101", community="c-b")
    index = PlaceIndex.of(directory(a, b, c, d))
    [building_a, community_a] = index.places("dev-1")
    assert building_a.kind is PlaceKind.BUILDING and community_a.kind is PlaceKind.COMMUNITY
    assert index.members(building_a) == ("dev-1", "dev-2")
    assert index.members(community_a) == ("dev-1", "dev-2", "dev-3")
    assert index.places("dev-4")[1].label == "青石社区"
    assert index.places("unknown") == []
    # The grouped alert's id stands for the place: stable, distinct, a column's size.
    assert building_a.group_id == index.places("dev-2")[0].group_id
    assert building_a.group_id != index.places("dev-3")[0].group_id
    assert len(building_a.group_id) <= 64
    assert places_of(a, directory(a))[0].key == "c-a|柳湖路88弄3号"


def test_a_cut_is_n_losses_within_the_window_before_now() -> None:
    rule = PowerCutRule(building_devices=3, community_devices=5, window=timedelta(seconds=60))
    [building, community] = PlaceIndex.of(directory(resident(1, "x3号1室", "3号", "1"))).places(
        "dev-1"
    )
    two = {"a": NOW - timedelta(seconds=10), "b": NOW}
    assert not rule.is_cut(building, two, NOW)
    three = {**two, "c": NOW - timedelta(seconds=59)}
    assert rule.is_cut(building, three, NOW)
    assert not rule.is_cut(community, three, NOW)  # a community needs more
    # One outside the window does not count, nor one "after" now.
    stale = {**two, "c": NOW - timedelta(seconds=61)}
    assert not rule.is_cut(building, stale, NOW)
    assert rule.recent({**three, "z": NOW + timedelta(seconds=1)}, NOW) == ["c", "a", "b"]


def test_the_detail_lists_the_devices_and_stops_at_a_limit() -> None:
    [building, _] = PlaceIndex.of(directory(resident(1, "x3号1室", "3号", "1"))).places("dev-1")
    text = describe(building, [f"dev-{n:03d}" for n in range(50)], shown=3)
    assert "50 devices" in text and "dev-000, dev-001, dev-002 … (+47)" in text
