"""Who may see what: the area scope of a staff member, and the resident details
withheld from some roles (管理员只能查看自己辖区内的数据).

A person sees, and acts on, the calls and residents of their own area and of every
area below it: the district (the command centre) sees everything, a street its
communities, a community itself. A call with no community (a device nobody is
registered for) belongs to the district alone. Pure: no I/O, the directory is given.
"""

from __future__ import annotations

from dispatcher.core.directory import Directory, Level, Role, Staff

# Medical notes and key-safe (access) details: the hotline operators and the
# supervisors work the call itself (they phone the resident, send help, let the
# ambulance in), so they need them. Community duty staff (``Role.STAFF``) are reached
# by SMS and go round to visit: what they need is in the SMS (who, where), and
# health and key details stay off their phones and screens.
_MEDICAL = frozenset({Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN})
_ACCESS = frozenset({Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN})


def areas_within(directory: Directory, area_id: str) -> frozenset[str]:
    """The area and every area below it (its streets, their communities). An area
    the directory does not know has nothing within it, not even itself."""
    if area_id not in directory.areas:
        return frozenset()
    children: dict[str, list[str]] = {}
    for area in directory.areas.values():
        if area.parent_id is not None:
            children.setdefault(area.parent_id, []).append(area.id)
    found, todo = {area_id}, [area_id]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:  # a cycle in a hand-edited file ends here
                found.add(child)
                todo.append(child)
    return frozenset(found)


def sees_everything(directory: Directory, staff: Staff) -> bool:
    """Staff of the district (the command centre) see every call, those of no
    community among them."""
    area = directory.areas.get(staff.area_id)
    return area is not None and area.level is Level.DISTRICT


def visible_communities(directory: Directory, staff: Staff) -> frozenset[str] | None:
    """The ids of the areas whose calls ``staff`` may see; ``None`` means every call
    (the district's staff), calls of no community included."""
    if sees_everything(directory, staff):
        return None
    return areas_within(directory, staff.area_id)


def can_see(directory: Directory, staff: Staff, community_id: str | None) -> bool:
    """Whether ``staff`` may see (and act on) a call or resident of ``community_id``.
    ``None`` (an unknown device) and a community the directory does not know are
    visible only to the district's staff."""
    if sees_everything(directory, staff):
        return True
    return community_id is not None and community_id in areas_within(directory, staff.area_id)


def may_see_medical(staff: Staff) -> bool:
    """Whether the resident's medical notes are shown to ``staff`` (see ``_MEDICAL``)."""
    return staff.role in _MEDICAL


def may_see_access(staff: Staff) -> bool:
    """Whether key-safe and other access details are shown to ``staff``."""
    return staff.role in _ACCESS
