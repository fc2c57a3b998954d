"""The operator API's board: on duty, gaps, devices, answer times and the waiting
calls, as the console's board shows them, for the token's area."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from dispatcher.entrypoints.http.deps import ERRORS, PREFIX, ErrorBody, Refused, StaffDep
from dispatcher.services.boards import Boards, BoardView

router = APIRouter(prefix=PREFIX)


def _boards(request: Request) -> Boards:
    found: Boards | None = getattr(request.state, "boards", None)
    if found is None:
        raise Refused(503, "the board is not available in this server")
    return found


BoardsDep = Annotated[Boards, Depends(_boards)]

_BOARD_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    503: {"model": ErrorBody, "description": "This server has no board"},
}


@router.get("/board", response_model=BoardView, responses=_BOARD_ERRORS, tags=["board"])
async def board(boards: BoardsDep, staff: StaffDep) -> BoardView:
    """The command centre's board, for the token's area and the areas below it: who is
    on duty at each level and until when (with their phone), the gaps of the next 24
    hours and who answers in them, devices offline, silent past
    `heartbeat_s` x `missed_heartbeats` or with a battery at or below
    `[devices] low_battery_pct`, the open technical alerts, today's and this week's
    answer times (in the district's time zone) against 97.5% within 60 s and 99%
    within 180 s with their distribution, and the calls nobody has taken yet."""
    return await boards.board(staff)
