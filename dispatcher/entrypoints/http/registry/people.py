"""The registry's staff, areas and service providers (list, get, create, patch,
delete), and the audit of every change to the registry."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query
from pydantic import AwareDatetime

from dispatcher.core.registry.records import AreaFields, ProviderFields, StaffFields
from dispatcher.entrypoints.http.deps import PREFIX, StaffDep
from dispatcher.entrypoints.http.registry.common import (
    RECORD_ERRORS,
    Limit,
    Offset,
    Page,
    RegistryDep,
    answering,
)
from dispatcher.entrypoints.http.registry.views import AuditOut, StaffOut, audit_out, staff_out
from dispatcher.services.registry import AuditQuery

router = APIRouter(prefix=PREFIX)

Id = Annotated[str, Path(min_length=1, max_length=64)]
Changes = Annotated[
    dict[str, Any],
    Body(description="the fields to change and their new values (others are kept)"),
]


# --- staff -----------------------------------------------------------------------------


@router.get("/staff", response_model=Page[StaffOut], responses=RECORD_ERRORS, tags=["registry"])
async def list_staff(
    viewer: StaffDep,
    registry: RegistryDep,
    area: Annotated[str | None, Query(max_length=64, description="in this area or below")] = None,
    role: Annotated[str | None, Query(max_length=16)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[StaffOut]:
    page = registry.staff(viewer, area=area, role=role, limit=limit, offset=offset)
    return Page(
        items=[staff_out(s) for s in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get(
    "/staff/{staff_id}", response_model=StaffOut, responses=RECORD_ERRORS, tags=["registry"]
)
async def get_staff(staff_id: Id, viewer: StaffDep, registry: RegistryDep) -> StaffOut:
    with answering():
        return staff_out(registry.staff_member(viewer, staff_id))


@router.post(
    "/staff", response_model=StaffOut, status_code=201, responses=RECORD_ERRORS, tags=["registry"]
)
async def create_staff(body: StaffFields, viewer: StaffDep, registry: RegistryDep) -> StaffOut:
    """A new staff member; their API token, if given, works at once."""
    with answering():
        return staff_out(await registry.create_staff(viewer, body.model_dump()))


@router.patch(
    "/staff/{staff_id}", response_model=StaffOut, responses=RECORD_ERRORS, tags=["registry"]
)
async def patch_staff(
    staff_id: Id, changes: Changes, viewer: StaffDep, registry: RegistryDep
) -> StaffOut:
    with answering():
        return staff_out(await registry.update_staff(viewer, staff_id, changes))


@router.delete(
    "/staff/{staff_id}", response_model=StaffOut, responses=RECORD_ERRORS, tags=["registry"]
)
async def delete_staff(staff_id: Id, viewer: StaffDep, registry: RegistryDep) -> StaffOut:
    """Delete a staff member: refused (409) while the rota names them."""
    with answering():
        return staff_out(await registry.delete_staff(viewer, staff_id))


# --- areas -----------------------------------------------------------------------------


@router.get("/areas", response_model=Page[AreaFields], responses=RECORD_ERRORS, tags=["registry"])
async def list_areas(
    viewer: StaffDep,
    registry: RegistryDep,
    level: Annotated[Literal["district", "street", "community"] | None, Query()] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[AreaFields]:
    page = registry.areas(viewer, level=level, limit=limit, offset=offset)
    return Page(items=page.items, total=page.total, limit=page.limit, offset=page.offset)


@router.get(
    "/areas/{area_id}", response_model=AreaFields, responses=RECORD_ERRORS, tags=["registry"]
)
async def get_area(area_id: Id, viewer: StaffDep, registry: RegistryDep) -> AreaFields:
    with answering():
        return registry.area(viewer, area_id)


@router.post(
    "/areas", response_model=AreaFields, status_code=201, responses=RECORD_ERRORS, tags=["registry"]
)
async def create_area(body: AreaFields, viewer: StaffDep, registry: RegistryDep) -> AreaFields:
    with answering():
        return await registry.create_area(viewer, body.model_dump())


@router.patch(
    "/areas/{area_id}", response_model=AreaFields, responses=RECORD_ERRORS, tags=["registry"]
)
async def patch_area(
    area_id: Id, changes: Changes, viewer: StaffDep, registry: RegistryDep
) -> AreaFields:
    with answering():
        return await registry.update_area(viewer, area_id, changes)


@router.delete(
    "/areas/{area_id}", response_model=AreaFields, responses=RECORD_ERRORS, tags=["registry"]
)
async def delete_area(area_id: Id, viewer: StaffDep, registry: RegistryDep) -> AreaFields:
    """Delete an area: refused (409) while anything is in it or the rota names it."""
    with answering():
        return await registry.delete_area(viewer, area_id)


# --- providers -------------------------------------------------------------------------


@router.get(
    "/providers", response_model=Page[ProviderFields], responses=RECORD_ERRORS, tags=["registry"]
)
async def list_providers(
    viewer: StaffDep,
    registry: RegistryDep,
    area: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ProviderFields]:
    page = registry.providers(viewer, area=area, limit=limit, offset=offset)
    return Page(items=page.items, total=page.total, limit=page.limit, offset=page.offset)


@router.get(
    "/providers/{provider_id}",
    response_model=ProviderFields,
    responses=RECORD_ERRORS,
    tags=["registry"],
)
async def get_provider(provider_id: Id, viewer: StaffDep, registry: RegistryDep) -> ProviderFields:
    with answering():
        return registry.provider(viewer, provider_id)


@router.post(
    "/providers",
    response_model=ProviderFields,
    status_code=201,
    responses=RECORD_ERRORS,
    tags=["registry"],
)
async def create_provider(
    body: ProviderFields, viewer: StaffDep, registry: RegistryDep
) -> ProviderFields:
    with answering():
        return await registry.create_provider(viewer, body.model_dump())


@router.patch(
    "/providers/{provider_id}",
    response_model=ProviderFields,
    responses=RECORD_ERRORS,
    tags=["registry"],
)
async def patch_provider(
    provider_id: Id, changes: Changes, viewer: StaffDep, registry: RegistryDep
) -> ProviderFields:
    with answering():
        return await registry.update_provider(viewer, provider_id, changes)


@router.delete(
    "/providers/{provider_id}",
    response_model=ProviderFields,
    responses=RECORD_ERRORS,
    tags=["registry"],
)
async def delete_provider(
    provider_id: Id, viewer: StaffDep, registry: RegistryDep
) -> ProviderFields:
    with answering():
        return await registry.delete_provider(viewer, provider_id)


# --- the audit -------------------------------------------------------------------------


@router.get("/audit", response_model=Page[AuditOut], responses=RECORD_ERRORS, tags=["registry"])
async def list_audit(
    viewer: StaffDep,
    registry: RegistryDep,
    kind: Annotated[
        Literal["area", "staff", "resident", "device", "provider"] | None, Query()
    ] = None,
    record: Annotated[str | None, Query(max_length=64, description="one record's id")] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[AwareDatetime | None, Query()] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[AuditOut]:
    """The changes to the registry's records of your area, newest first (supervisors
    and admins): who, when, the record before and after."""
    query = AuditQuery(
        kind=kind, record_id=record, actor=actor, since=since, limit=limit, offset=offset
    )
    with answering():
        page = await registry.audit(viewer, query)
    return Page(
        items=[audit_out(e, viewer) for e in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )
