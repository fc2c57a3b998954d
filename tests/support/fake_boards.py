"""An in-memory stand-in for ``services.boards.Boards``: it answers the board it was
given and records who asked, so that tests of the API and the console check that the
signed-in staff member is passed on (the real service's rules are tested on the
database, tests/services/test_boards.py). Not a pytest plugin: import it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from dispatcher.core import reports
from dispatcher.core.directory import Directory, Staff
from dispatcher.services.boards import (
    AreaDutyView,
    BinView,
    BoardView,
    DeviceRulesView,
    DutyPersonView,
    PeriodView,
    WaitingView,
)

# Tuesday 24 November 2026, 10:00 in Shanghai.
AT = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


@dataclass
class FakeBoards:
    board_view: BoardView
    asked_by: list[str] = field(default_factory=list)

    async def board(self, viewer: Staff) -> BoardView:
        self.asked_by.append(viewer.id)
        return self.board_view.model_copy(deep=True)


def sample_board(directory: Directory) -> BoardView:
    """A board with one person on duty at the command centre and no calls."""
    since = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)

    def period(key: str) -> PeriodView:
        return PeriodView(
            key=key,
            since=since,
            until=AT,
            figures=reports.answer_times([], since=since, until=AT, now=AT, directory=directory),
            histogram=[BinView(low_s=0, high_s=15, count=0)],
        )

    return BoardView(
        at=AT,
        timezone=directory.timezone,
        area_id=directory.district.id,
        area_name=directory.district.name,
        horizon_until=AT.replace(day=25),
        duty=[
            AreaDutyView(
                area_id=directory.district.id,
                area_name=directory.district.name,
                level="district",
                on_duty=[
                    DutyPersonView(
                        id="s-li",
                        name="李娜",
                        phone="+8613800000002",
                        role="operator",
                        shift_role="primary",
                        until=None,
                    )
                ],
            )
        ],
        gaps=[],
        device_rules=DeviceRulesView(silent_after_s=10800, offline_grace_s=300, low_battery_pct=20),
        devices=[],
        devices_more=0,
        alerts=[],
        today=period("today"),
        week=period("week"),
        waiting=WaitingView(calls=0, alarms=0, oldest_opened_at=None),
    )
