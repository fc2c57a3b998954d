"""The operator API's reports: answer times against the social-alarm targets."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from dispatcher.core.reports import AnswerTimes
from dispatcher.entrypoints.http.deps import (
    EARLIEST,
    ERRORS,
    LATEST,
    PREFIX,
    OpsDep,
    Refused,
    StaffDep,
)

router = APIRouter(prefix=PREFIX)


@router.get(
    "/reports/answer-times",
    response_model=AnswerTimes,
    responses=ERRORS,
    tags=["reports"],
)
async def answer_times(
    ops: OpsDep,
    staff: StaffDep,
    since: Annotated[
        datetime,
        Query(
            description="Start of the period (included), ISO 8601: 2026-11-01, "
            "2026-11-01T08:00 or with an offset; a time without one is in the data's time zone"
        ),
    ],
    until: Annotated[
        datetime | None,
        Query(description="End of the period (excluded), as `since`; default now"),
    ] = None,
) -> AnswerTimes:
    """Answer times of the calls opened in the period against the social-alarm targets
    (97.5% within 60 s, 99% within 180 s): overall, per level, per operator, per kind
    and per channel; technical alerts apart. Any staff member may read it."""
    for name, when in (("since", since), ("until", until)):
        if when is not None and not (EARLIEST <= when.year <= LATEST):
            msg = f"the year must be {EARLIEST}..{LATEST}"
            raise Refused(
                422,
                f"query parameter {name}: {msg}",
                detail=[{"loc": ["query", name], "msg": msg, "type": "value_error"}],
            )
    try:
        return await ops.answer_times(since, until)
    except ValueError as exc:
        raise Refused(
            422,
            f"query parameters since, until: {exc}",
            detail=[{"loc": ["query", "until"], "msg": str(exc), "type": "value_error"}],
        ) from exc
