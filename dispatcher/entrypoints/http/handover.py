"""The operator API's hand-over sheet for the emergency services: the same content as
the console's printable page (``console/sheet.py``), from the same service method."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path

from dispatcher.entrypoints.http.deps import ERRORS, PREFIX, ErrorBody, OpsDep, StaffDep
from dispatcher.services.read_models import HandoverSheetView

router = APIRouter(prefix=PREFIX)

_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    404: {"model": ErrorBody, "description": "No such call"},
}


@router.get(
    "/calls/{call_id}/handover",
    response_model=HandoverSheetView,
    responses=_ERRORS,
    tags=["calls"],
)
async def handover_sheet(
    call_id: Annotated[str, Path(min_length=1, max_length=64)],
    ops: OpsDep,
    staff: StaffDep,
    channel: Annotated[Literal["api", "cli"], Header(alias="X-Eldercall-Channel")] = "api",
) -> HandoverSheetView:
    """The hand-over sheet for the ambulance crew: address, access (key safe, door
    code, key-holders), conditions and medication, contacts, what has happened so far.
    The key safe and access notes only for roles that may see access details, the
    medical details only for those that may see them (`access_withheld`,
    `medical_withheld` say when they are not). Goes on the call's timeline as
    `handover_sheet_printed`."""
    return await ops.handover_sheet(call_id, staff.id, channel, viewer=staff)
