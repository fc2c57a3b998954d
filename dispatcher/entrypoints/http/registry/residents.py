"""The registry's residents and devices: list (filters, paging), get, create, patch,
delete; a device is registered, moved to another resident and retired."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from dispatcher.core.registry.records import DeviceFields, ResidentFields
from dispatcher.entrypoints.http.deps import PREFIX, StaffDep
from dispatcher.entrypoints.http.registry.common import (
    RECORD_ERRORS,
    Channel,
    Limit,
    Offset,
    Page,
    RegistryDep,
    answering,
)
from dispatcher.entrypoints.http.registry.views import (
    DeviceOut,
    ResidentOut,
    device_out,
    resident_out,
)
from dispatcher.services.registry import Registry

router = APIRouter(prefix=PREFIX)

ResidentId = Annotated[str, Path(min_length=1, max_length=64, description="e.g. r-0001")]
DeviceId = Annotated[str, Path(min_length=1, max_length=64, description="e.g. dev-0001")]
Changes = Annotated[
    dict[str, Any],
    Body(description="the fields to change and their new values (others are kept)"),
]


def _device_id(registry: Registry, resident_id: str) -> str | None:
    found = registry.device_for(resident_id)
    return found.id if found else None


@router.get(
    "/residents", response_model=Page[ResidentOut], responses=RECORD_ERRORS, tags=["registry"]
)
async def list_residents(
    viewer: StaffDep,
    registry: RegistryDep,
    community: Annotated[str | None, Query(description="an area id: residents in it")] = None,
    q: Annotated[
        str | None,
        Query(max_length=100, description="in the name, id, address, device, phone or community"),
    ] = None,
    key_resident: Annotated[bool | None, Query(description="key residents only (or not)")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ResidentOut]:
    """Residents of your area, by id."""
    page = registry.residents(
        viewer, community=community, text=q, key_resident=key_resident, limit=limit, offset=offset
    )
    return Page(
        items=[resident_out(r, _device_id(registry, r.id), viewer) for r in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get(
    "/residents/{resident_id}",
    response_model=ResidentOut,
    responses=RECORD_ERRORS,
    tags=["registry"],
)
async def get_resident(
    resident_id: ResidentId, viewer: StaffDep, registry: RegistryDep
) -> ResidentOut:
    with answering():
        r = registry.resident(viewer, resident_id)
    return resident_out(r, _device_id(registry, r.id), viewer)


@router.post(
    "/residents",
    response_model=ResidentOut,
    status_code=201,
    responses=RECORD_ERRORS,
    tags=["registry"],
)
async def create_resident(
    body: ResidentFields, viewer: StaffDep, registry: RegistryDep
) -> ResidentOut:
    """A new resident, in force at once (supervisors and admins of her community)."""
    with answering():
        made = await registry.create_resident(viewer, body.model_dump())
    return resident_out(made, None, viewer)


@router.patch(
    "/residents/{resident_id}",
    response_model=ResidentOut,
    responses=RECORD_ERRORS,
    tags=["registry"],
)
async def patch_resident(
    resident_id: ResidentId, changes: Changes, viewer: StaffDep, registry: RegistryDep
) -> ResidentOut:
    """Change some of a resident's fields (``contacts`` replaces the whole list)."""
    with answering():
        made = await registry.update_resident(viewer, resident_id, changes)
    return resident_out(made, _device_id(registry, resident_id), viewer)


@router.delete(
    "/residents/{resident_id}",
    response_model=ResidentOut,
    responses=RECORD_ERRORS,
    tags=["registry"],
)
async def delete_resident(
    resident_id: ResidentId, viewer: StaffDep, registry: RegistryDep
) -> ResidentOut:
    """Delete a resident: refused (409) while she has a call not yet resolved."""
    with answering():
        gone = await registry.delete_resident(viewer, resident_id)
    return resident_out(gone, None, viewer)


# --- devices ---------------------------------------------------------------------------


class MoveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resident_id: str | None = Field(
        max_length=64, description="the resident it serves from now; null: back in stock"
    )


@router.get("/devices", response_model=Page[DeviceOut], responses=RECORD_ERRORS, tags=["registry"])
async def list_devices(
    viewer: StaffDep,
    registry: RegistryDep,
    resident: Annotated[str | None, Query(max_length=64)] = None,
    retired: Annotated[bool | None, Query(description="false (default): in service")] = False,
    q: Annotated[
        str | None, Query(max_length=100, description="in the id, model, firmware or resident")
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[DeviceOut]:
    page = registry.devices(
        viewer, resident=resident, retired=retired, text=q, limit=limit, offset=offset
    )
    return Page(
        items=[device_out(d) for d in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get(
    "/devices/{device_id}", response_model=DeviceOut, responses=RECORD_ERRORS, tags=["registry"]
)
async def get_device(device_id: DeviceId, viewer: StaffDep, registry: RegistryDep) -> DeviceOut:
    """A device with its history: whom it served, from when to when."""
    with answering():
        found = registry.device(viewer, device_id)
        history = await registry.device_history(viewer, device_id)
    return device_out(found, history)


@router.post(
    "/devices",
    response_model=DeviceOut,
    status_code=201,
    responses=RECORD_ERRORS,
    tags=["registry"],
)
async def register_device(
    body: DeviceFields, viewer: StaffDep, registry: RegistryDep, channel: Channel = "api"
) -> DeviceOut:
    """Register a device; the calls it opened while unknown become its resident's."""
    with answering():
        made = await registry.register_device(viewer, body.model_dump(), channel)
    return device_out(made)


@router.patch(
    "/devices/{device_id}", response_model=DeviceOut, responses=RECORD_ERRORS, tags=["registry"]
)
async def patch_device(
    device_id: DeviceId,
    changes: Changes,
    viewer: StaffDep,
    registry: RegistryDep,
    channel: Channel = "api",
) -> DeviceOut:
    """Change a device's details; ``{"resident_id": ...}`` alone moves it."""
    with answering():
        made = await registry.update_device(viewer, device_id, changes, channel)
    return device_out(made)


@router.post(
    "/devices/{device_id}/move",
    response_model=DeviceOut,
    responses=RECORD_ERRORS,
    tags=["registry"],
)
async def move_device(
    device_id: DeviceId,
    body: MoveBody,
    viewer: StaffDep,
    registry: RegistryDep,
    channel: Channel = "api",
) -> DeviceOut:
    """The device serves another resident from now; its history keeps the earlier."""
    with answering():
        made = await registry.move_device(viewer, device_id, body.resident_id, channel)
    return device_out(made)


@router.delete(
    "/devices/{device_id}", response_model=DeviceOut, responses=RECORD_ERRORS, tags=["registry"]
)
async def retire_device(device_id: DeviceId, viewer: StaffDep, registry: RegistryDep) -> DeviceOut:
    """Retire a device: it serves nobody from now; its record and history stay."""
    with answering():
        made = await registry.retire_device(viewer, device_id)
    return device_out(made)
