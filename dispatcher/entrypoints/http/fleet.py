"""The operator API's fleet: the morning report (JSON or CSV) and test mode."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from dispatcher.core.fleet import FleetReport, report_csv
from dispatcher.entrypoints.http.deps import ERRORS, PREFIX, Refused, StaffDep
from dispatcher.services.fleet import Fleet, UnknownDeviceError

router = APIRouter(prefix=PREFIX, tags=["fleet"])

DeviceId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class TestModeRequest(BaseModel):
    minutes: int | None = Field(default=None, ge=1, le=24 * 60)


class TestModeView(BaseModel):
    device_id: str
    until: datetime | None


def _fleet(request: Request) -> Fleet:
    fleet: Fleet | None = getattr(request.state, "fleet", None)
    if fleet is None:
        raise Refused(503, "the fleet is not served by this app")
    return fleet


@router.get(
    "/fleet/report",
    response_model=FleetReport,
    responses={**ERRORS, 200: {"content": {"text/csv": {}}}},
)
async def fleet_report(
    request: Request,
    staff: StaffDep,
    format: Annotated[Literal["json", "csv"], Query(description="json, or csv for Excel")] = "json",
) -> FleetReport | Response:
    """The devices that need a visit: offline, low battery, without power, never seen,
    silent for a day, never tested or not tested for a month; the viewer's area only.
    ``format=csv``: UTF-8 with a byte-order mark, Chinese and English headers."""
    report = await _fleet(request).report(staff)
    if format == "csv":
        day = report.generated_at.strftime("%Y%m%d")
        return Response(
            report_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="fleet-{day}.csv"'},
        )
    return report


@router.post("/fleet/devices/{device_id}/test-mode", response_model=TestModeView, responses=ERRORS)
async def start_test_mode(
    request: Request, staff: StaffDep, device_id: DeviceId, body: TestModeRequest | None = None
) -> TestModeView:
    """Test mode: the device's next press within the period (default 30 min) is its
    end-to-end test, answered without opening a call; the press after it is real."""
    try:
        until = await _fleet(request).start_test_mode(
            device_id, body.minutes if body else None, by=staff.id
        )
    except UnknownDeviceError:
        raise Refused(404, f"no device {device_id!r} is registered or known") from None
    return TestModeView(device_id=device_id, until=until)


@router.delete(
    "/fleet/devices/{device_id}/test-mode", response_model=TestModeView, responses=ERRORS
)
async def end_test_mode(request: Request, staff: StaffDep, device_id: DeviceId) -> TestModeView:
    await _fleet(request).end_test_mode(device_id, by=staff.id)
    return TestModeView(device_id=device_id, until=None)


def add_fleet(app: FastAPI) -> None:
    """The fleet's routes; they serve ``request.state.fleet`` (503 without it)."""
    app.include_router(router)
