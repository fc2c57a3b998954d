"""The console's devices (``/console/devices``: the list with its search, a device's
page with whom it served and when, moving it to another resident, retiring it) and
staff (``/console/staff``: who, role, area, phone; never a token or a password).

As on the residents' pages (``record_pages``), every rule is the registry's, through
the same ``Registry`` methods the API's routes call, and the staff are shown through
the API's own view of them (``staff_out``: no token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from dispatcher.core.directory import Role
from dispatcher.core.registry.rules import Refused, Why
from dispatcher.entrypoints.http.console import auth
from dispatcher.entrypoints.http.console.records_common import (
    PAGE_SIZE,
    STATUS,
    Paging,
    Viewer,
    audit_trail,
    field_errors,
    registry_of,
    viewer,
)
from dispatcher.entrypoints.http.registry.views import staff_out

router = APIRouter(prefix=auth.CONSOLE, include_in_schema=False)

Search = Annotated[str, Query(max_length=100)]
Offset = Annotated[int, Query(ge=0)]
Csrf = Annotated[str, Form(max_length=128)]


def _resident_names(v: Viewer) -> dict[str, str]:
    return {r.id: r.name for r in registry_of(v.request).directory.residents.values()}


@router.get("/devices")
async def devices_page(
    request: Request, q: Search = "", retired: bool = False, offset: Offset = 0
) -> Response:
    v = await viewer(request)
    page = registry_of(request).devices(
        v.staff, text=q or None, retired=None if retired else False, limit=PAGE_SIZE, offset=offset
    )
    return v.page(
        "records_devices.html",
        devices=page.items,
        paging=Paging(page.offset, page.total),
        q=q,
        retired=retired,
        resident_names=_resident_names(v),
    )


@router.get("/devices/{device_id}")
async def device_page(request: Request, device_id: str) -> Response:
    v = await viewer(request)
    return await _device(v, device_id)


async def _device(
    v: Viewer, device_id: str, status: int = 200, errors: dict[str, str] | None = None
) -> Response:
    registry = registry_of(v.request)
    try:
        found = registry.device(v.staff, device_id)
        history = await registry.device_history(v.staff, device_id)
    except Refused as exc:
        return v.refused(exc)
    return v.page(
        "records_device.html",
        status,
        device=found,
        history=history,
        audit=await audit_trail(v, "device", device_id),
        resident_names=_resident_names(v),
        may_change=registry.may_change(v.staff, "device", device_id),
        errors=errors or {},
    )


@router.post("/devices/{device_id}/move")
async def move_device(
    request: Request,
    device_id: str,
    resident_id: Annotated[str, Form(max_length=64)] = "",
    csrf: Csrf = "",
) -> Response:
    """The device serves ``resident_id`` from now (blank: back in stock)."""
    v = await viewer(request)
    auth.check_csrf(request, v.signed_in, csrf)
    try:
        await registry_of(request).move_device(
            v.staff, device_id, resident_id.strip() or None, "console"
        )
    except Refused as exc:
        return await _refused(v, device_id, exc)
    return RedirectResponse(f"{auth.CONSOLE}/devices/{device_id}", status_code=303)


@router.post("/devices/{device_id}/retire")
async def retire_device(request: Request, device_id: str, csrf: Csrf = "") -> Response:
    v = await viewer(request)
    auth.check_csrf(request, v.signed_in, csrf)
    try:
        await registry_of(request).retire_device(v.staff, device_id)
    except Refused as exc:
        return await _refused(v, device_id, exc)
    return RedirectResponse(f"{auth.CONSOLE}/devices/{device_id}", status_code=303)


async def _refused(v: Viewer, device_id: str, exc: Refused) -> Response:
    if exc.why is Why.NOT_FOUND:
        return v.refused(exc)
    errors = field_errors(exc)
    if next(iter(errors)) != "resident_id":
        errors = {"": str(exc)}
    return await _device(v, device_id, STATUS[exc.why], errors)


# ------------------------------------------------------------------ staff


@router.get("/staff")
async def staff_page(
    request: Request,
    area: Annotated[str, Query(max_length=64)] = "",
    role: Annotated[str, Query(max_length=16)] = "",
    offset: Offset = 0,
) -> Response:
    v = await viewer(request)
    registry = registry_of(request)
    page = registry.staff(
        v.staff, area=area or None, role=role or None, limit=PAGE_SIZE, offset=offset
    )
    return v.page(
        "records_staff.html",
        staff=[staff_out(s) for s in page.items],
        paging=Paging(page.offset, page.total),
        area=area,
        role=role,
        roles=[r.value for r in Role],
        areas=registry.areas(v.staff, limit=500).items,
        area_names={a.id: a.name for a in registry.directory.areas.values()},
    )
