"""``POST /registry/import`` and ``GET /registry/export``: the registry's records as the
exchange files' rows (``eldercall import`` / ``export``).

The file is read at the edge (the CLI reads CSV or ``.xlsx`` with
``dispatcher.adapters.files.exchange``) and its rows are sent as JSON: per kind, each
row's line (and sheet) and the values of the columns the file has. The daemon checks
every row; an import with any error answers 422 with all of them and changes nothing.

Ten thousand residents with a device and two contacts each are some 10 MB of JSON:
the server puts no limit on a request body's size (uvicorn limits the request line
and headers only), and the rows are bounded here per kind.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from dispatcher.core.directory import mask_id_card
from dispatcher.core.registry.importing import Change, Issue, Plan, SourceRow
from dispatcher.entrypoints.http.deps import PREFIX, StaffDep
from dispatcher.entrypoints.http.registry.common import (
    RECORD_ERRORS,
    Channel,
    RegistryDep,
    answering,
)
from dispatcher.services.registry_import import export_records, import_records

router = APIRouter(prefix=PREFIX)

MAX_ROWS = 100_000  # of one kind in one import
MAX_VALUE = 10_000  # longer than any field takes: the record's own check names the row
KindName = Literal["areas", "providers", "staff", "residents", "devices", "contacts"]


class RowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line: int = Field(ge=1, description="the row's line in its file or sheet")
    sheet: str = Field(default="", max_length=100, description="the sheet of a workbook")
    values: dict[
        Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=MAX_VALUE)]
    ] = Field(description="the columns the file has (canonical names), as text")


class ImportBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: dict[KindName, Annotated[list[RowIn], Field(max_length=MAX_ROWS)]]
    dry_run: bool = Field(default=False, description="plan only: change nothing")


class Counts(BaseModel):
    created: int
    changed: int
    unchanged: int


class IssueOut(BaseModel):
    kind: str
    sheet: str
    line: int
    column: str | None
    message: str


class FieldChange(BaseModel):
    before: str
    after: str


class ChangeOut(BaseModel):
    kind: str
    record_id: str
    action: Literal["create", "update"]
    source: str = Field(description="the kind of the row that makes the change")
    sheet: str
    line: int
    fields: dict[str, FieldChange]


class ImportOut(BaseModel):
    dry_run: bool
    applied: bool
    counts: dict[str, Counts]
    changes: list[ChangeOut]
    errors: list[IssueOut]
    warnings: list[IssueOut]


class ExportOut(BaseModel):
    records: dict[str, list[dict[str, str]]]


def _issue(i: Issue) -> IssueOut:
    return IssueOut(kind=i.kind, sheet=i.sheet, line=i.line, column=i.column, message=i.message)


def _shown(column: str, value: str) -> str:
    return mask_id_card(value) if column == "id_card" and value else value


def _change(c: Change) -> ChangeOut:
    return ChangeOut(
        kind=c.kind,
        record_id=c.record_id,
        action="create" if c.action == "create" else "update",
        source=c.source,
        sheet=c.sheet,
        line=c.line,
        fields={
            k: FieldChange(before=_shown(k, b), after=_shown(k, a))
            for k, (b, a) in c.fields.items()
        },
    )


def _out(plan: Plan, dry_run: bool, applied: bool) -> ImportOut:
    return ImportOut(
        dry_run=dry_run,
        applied=applied,
        counts={k: Counts(**v) for k, v in plan.counts.items()},
        changes=[_change(c) for c in plan.changes],
        errors=[_issue(i) for i in plan.errors],
        warnings=[_issue(i) for i in plan.warnings],
    )


@router.post(
    "/registry/import",
    response_model=ImportOut,
    responses={**RECORD_ERRORS, 422: {"description": "The rows have errors: nothing changed"}},
    tags=["registry"],
)
async def import_rows(
    body: ImportBody, viewer: StaffDep, registry: RegistryDep, channel: Channel = "api"
) -> Any:
    """Create and change records from a file's rows, all or nothing, in force at once.

    Records the file does not name, and columns it does not have, are left as they
    are. Every change is audited (action ``import``). With ``dry_run`` nothing is
    changed and the answer says what would be. A second identical import changes
    nothing. Answers 422 with every bad row (its kind, sheet, line, column, reason)."""
    sheets: dict[str, list[SourceRow]] = {
        kind: [SourceRow(r.line, r.values, r.sheet) for r in rows]
        for kind, rows in body.records.items()
    }
    with answering():
        done = await import_records(registry, viewer, sheets, dry_run=body.dry_run, channel=channel)
    out = _out(done.plan, body.dry_run, done.applied)
    if done.plan.errors:
        n = len(done.plan.errors)
        message = f"{n} error{'s' if n != 1 else ''} in the rows: nothing was imported"
        return JSONResponse({"error": message, **out.model_dump()}, status_code=422)
    return out


@router.get(
    "/registry/export", response_model=ExportOut, responses=RECORD_ERRORS, tags=["registry"]
)
async def export_rows(viewer: StaffDep, registry: RegistryDep) -> ExportOut:
    """The records of your area as the exchange files' rows by kind (supervisors and
    admins: it carries whole ID-card numbers). Importing them again changes nothing;
    API tokens are never exported."""
    with answering():
        return ExportOut(records=export_records(registry, viewer))
