"""``routing.Routes``, the escalator's per-batch cache of who the targets name: it
answers exactly what ``routing.recipients`` and ``routing.command_centre`` answer, for
every call of a batch (each community, resident and holder), asked once or again."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import product
from pathlib import Path

from dispatcher.adapters.files.directory_files import load_directory
from dispatcher.core import routing

DATA = Path(__file__).resolve().parents[2] / "config" / "data"
DIRECTORY = load_directory(DATA, "Asia/Shanghai")
TARGETS = [
    ("hotline",),
    ("hotline", "community"),
    ("community", "street_supervisor", "emergency_contacts"),
    ("emergency_contacts:1", "district_supervisors"),
    ("acknowledger", "street_supervisor"),
    ("on_duty:community", "on_duty:street:primary", "person:demo-operator"),
    ("rotation:nobody-has-this",),
]
# Tuesday 10:00 and 03:00 in Shanghai: day staff on duty, then the night shift.
TIMES = [datetime(2026, 11, 24, 2, 0, tzinfo=UTC), datetime(2026, 11, 23, 19, 0, tzinfo=UTC)]


def test_the_cache_answers_what_routing_answers() -> None:
    residents = [*list(DIRECTORY.residents.values())[:6], None]
    holders = [None, "demo-operator", "wang-fang"]
    compared = 0
    for at in TIMES:
        routes = routing.Routes(DIRECTORY, at)
        for _again, targets, resident, holder in product(range(2), TARGETS, residents, holders):
            community = resident.community_id if resident is not None else "c-lh"
            asked = routes.recipients(
                targets, community_id=community, resident=resident, holder=holder
            )
            assert asked == routing.recipients(
                DIRECTORY,
                targets,
                community_id=community,
                resident=resident,
                at=at,
                holder=holder,
            )
            compared += bool(asked)
        assert routes.command_centre() == routing.command_centre(DIRECTORY, at)
        assert routes.command_centre() == routing.command_centre(DIRECTORY, at)
    assert compared > 100  # most of them name somebody: the comparison means something


def test_an_answer_is_a_copy_the_caller_may_change() -> None:
    routes = routing.Routes(DIRECTORY, TIMES[0])
    first = routes.recipients(("hotline",), community_id="c-lh", resident=None)
    first.clear()
    assert routes.recipients(("hotline",), community_id="c-lh", resident=None)
    centre = routes.command_centre()
    centre.clear()
    assert routes.command_centre()
