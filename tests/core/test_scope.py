"""The area scope and the details withheld by role (dispatcher.core.scope), on a
small directory: a district, two streets, three communities."""

from __future__ import annotations

import pytest

from dispatcher.core import scope
from dispatcher.core.directory import Area, Directory, Level, Role, Staff

AREAS = {
    "d": Area("d", Level.DISTRICT, "指挥中心", None),
    "s1": Area("s1", Level.STREET, "河西街道", "d"),
    "s2": Area("s2", Level.STREET, "东桥街道", "d"),
    "c1": Area("c1", Level.COMMUNITY, "柳湖社区", "s1"),
    "c2": Area("c2", Level.COMMUNITY, "青石社区", "s1"),
    "c3": Area("c3", Level.COMMUNITY, "梅林社区", "s2"),
}
OPERATOR = Staff("op", "值班员", None, "d", Role.OPERATOR)
ADMIN = Staff("admin", "管理员", None, "d", Role.ADMIN)
DISTRICT_SUPERVISOR = Staff("sup-d", "区主管", None, "d", Role.SUPERVISOR)
STREET_SUPERVISOR = Staff("sup-s1", "街道主管", None, "s1", Role.SUPERVISOR)
COMMUNITY_STAFF = Staff("st-c1", "社区一", None, "c1", Role.STAFF)
STREET_STAFF = Staff("st-s2", "街道值班", None, "s2", Role.STAFF)
LOST = Staff("lost", "无区域", None, "c-gone", Role.STAFF)  # an area no longer in the file
PEOPLE = (
    OPERATOR,
    ADMIN,
    DISTRICT_SUPERVISOR,
    STREET_SUPERVISOR,
    COMMUNITY_STAFF,
    STREET_STAFF,
    LOST,
)
D = Directory(areas=AREAS, staff={s.id: s for s in PEOPLE}, residents={}, shifts=())


def test_an_area_holds_itself_and_everything_below_it() -> None:
    assert scope.areas_within(D, "d") == frozenset(AREAS)
    assert scope.areas_within(D, "s1") == {"s1", "c1", "c2"}
    assert scope.areas_within(D, "s2") == {"s2", "c3"}
    assert scope.areas_within(D, "c1") == {"c1"}
    assert scope.areas_within(D, "c-gone") == frozenset()


@pytest.mark.parametrize(
    ("staff", "visible"),
    [
        (OPERATOR, {"c1", "c2", "c3", None, "c-unknown"}),
        (ADMIN, {"c1", "c2", "c3", None, "c-unknown"}),
        (DISTRICT_SUPERVISOR, {"c1", "c2", "c3", None, "c-unknown"}),
        (STREET_SUPERVISOR, {"c1", "c2"}),
        (STREET_STAFF, {"c3"}),
        (COMMUNITY_STAFF, {"c1"}),
        (LOST, set()),
    ],
    ids=lambda x: x.id if isinstance(x, Staff) else None,
)
def test_each_sees_the_calls_of_their_area_and_below(
    staff: Staff, visible: set[str | None]
) -> None:
    for community in ("c1", "c2", "c3", None, "c-unknown"):
        assert scope.can_see(D, staff, community) is (community in visible), community


def test_a_call_of_no_community_belongs_to_the_district_alone() -> None:
    assert scope.can_see(D, OPERATOR, None)
    assert not scope.can_see(D, STREET_SUPERVISOR, None)
    assert not scope.can_see(D, COMMUNITY_STAFF, None)


def test_the_communities_for_a_query_are_none_for_the_district() -> None:
    assert scope.visible_communities(D, OPERATOR) is None
    assert scope.visible_communities(D, ADMIN) is None
    assert scope.visible_communities(D, STREET_SUPERVISOR) == {"s1", "c1", "c2"}
    assert scope.visible_communities(D, COMMUNITY_STAFF) == {"c1"}
    assert scope.visible_communities(D, LOST) == frozenset()


@pytest.mark.parametrize(
    ("role", "shown"),
    [
        (Role.OPERATOR, True),
        (Role.SUPERVISOR, True),
        (Role.ADMIN, True),
        (Role.STAFF, False),
    ],
)
def test_medical_and_access_details_by_role(role: Role, shown: bool) -> None:
    someone = Staff("x", "X", None, "c1", role)
    assert scope.may_see_medical(someone) is shown
    assert scope.may_see_access(someone) is shown
