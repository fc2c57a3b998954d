"""The operator API's rota overrides: list, make and delete them (supervisors only)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from dispatcher.core.rota.model import Override, OverrideKind
from dispatcher.entrypoints.http.deps import (
    EARLIEST,
    ERRORS,
    LATEST,
    PREFIX,
    ErrorBody,
    Note,
    Refused,
    SupervisorDep,
)
from dispatcher.services.read_models import OverrideView
from dispatcher.services.rota_overrides import (
    OverrideInFile,
    OverrideNotFound,
    OverrideRefused,
    OverrideRequest,
    RotaOverrides,
    is_from_api,
)

router = APIRouter(prefix=PREFIX)


class OverrideList(BaseModel):
    overrides: list[OverrideView]


class OverrideBody(BaseModel):
    """A new rota override: ``replace`` (``staff`` takes ``replaces``'s duty), ``add``
    (``staff`` also on duty) or ``remove`` (``staff`` off), for [start, end)."""

    model_config = ConfigDict(extra="forbid")

    area: str = Field(min_length=1, max_length=64, description="a community, street or district id")
    kind: OverrideKind
    staff: str = Field(min_length=1, max_length=64)
    replaces: str | None = Field(default=None, min_length=1, max_length=64)
    role: Literal["primary", "backup"] | None = None
    start: AwareDatetime
    end: AwareDatetime
    reason: Note = ""


def _overrides(request: Request) -> RotaOverrides:
    found: RotaOverrides | None = request.state.overrides
    if found is None:
        raise Refused(503, "rota overrides are not available in this server")
    return found


OverridesDep = Annotated[RotaOverrides, Depends(_overrides)]

_OVERRIDE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    403: {"model": ErrorBody, "description": "Only supervisors may do this"},
}


def _override_view(o: Override) -> OverrideView:
    return OverrideView(
        id=o.id,
        area_id=o.area_id,
        kind=o.kind.value,
        staff_id=o.staff_id,
        replaces=o.replaces,
        role=o.role,
        start=o.start,
        end=o.end,
        reason=o.reason,
        created_by=o.created_by,
        source="api" if is_from_api(o) else "file",
    )


@router.get(
    "/rota/overrides", response_model=OverrideList, responses=_OVERRIDE_ERRORS, tags=["duty"]
)
async def list_overrides(
    supervisor: SupervisorDep,
    overrides: OverridesDep,
    include_past: Annotated[bool, Query(description="also those already over")] = False,
) -> OverrideList:
    """The rota overrides in force or to come (the file's and the API's), by start."""
    return OverrideList(
        overrides=[_override_view(o) for o in overrides.list(include_past=include_past)]
    )


@router.post(
    "/rota/overrides",
    response_model=OverrideView,
    status_code=201,
    responses=_OVERRIDE_ERRORS,
    tags=["duty"],
)
async def create_override(
    body: OverrideBody, supervisor: SupervisorDep, overrides: OverridesDep
) -> OverrideView:
    """Make a rota override; it takes effect at once (routing reads it)."""
    for name, value in (("start", body.start), ("end", body.end)):
        if not (EARLIEST <= value.year <= LATEST):
            raise Refused(422, f"{name}: the year must be {EARLIEST}..{LATEST}")
    request = OverrideRequest(
        area_id=body.area,
        kind=body.kind,
        staff_id=body.staff,
        start=body.start,
        end=body.end,
        replaces=body.replaces,
        role=body.role,
        reason=body.reason,
    )
    try:
        made = await overrides.create(supervisor, request)
    except OverrideRefused as exc:
        raise Refused(422, str(exc)) from exc
    return _override_view(made)


@router.delete(
    "/rota/overrides/{override_id}",
    response_model=OverrideView,
    responses={
        **_OVERRIDE_ERRORS,
        404: {"model": ErrorBody, "description": "No such override"},
        409: {"model": ErrorBody, "description": "The override is written in the rota file"},
    },
    tags=["duty"],
)
async def delete_override(
    override_id: Annotated[str, Path(min_length=1, max_length=64)],
    supervisor: SupervisorDep,
    overrides: OverridesDep,
) -> OverrideView:
    """Delete an override made through the API; it stops applying at once."""
    try:
        gone = await overrides.delete(supervisor, override_id)
    except OverrideNotFound as exc:
        raise Refused(404, f"no override {override_id}") from exc
    except OverrideInFile as exc:
        raise Refused(409, str(exc)) from exc
    return _override_view(gone)
