"""The console's residents (``/console/residents``): the list with its search, a
resident's record (her fields as the API shows them, her contacts, her device and its
history, her recent calls, the record's audit), and for the roles the registry lets
change it the forms to create, edit and delete one.

Every rule is the registry's: the same ``Registry`` methods the API's routes call
(``dispatcher.entrypoints.http.registry.residents``), the same view of a resident
(``resident_out``: the ID card masked, medical and access details withheld from a role
that may not see them). A refusal is shown beside the field it names; a change is in
force at once, on every screen, as it is through the API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from dispatcher.core.directory import KeyResident
from dispatcher.core.registry.records import MAX_CONTACTS, ResidentFields
from dispatcher.core.registry.rules import Refused, Why
from dispatcher.entrypoints.http.console import auth
from dispatcher.entrypoints.http.console.pages import _ops
from dispatcher.entrypoints.http.console.records_common import (
    PAGE_SIZE,
    STATUS,
    Paging,
    Viewer,
    audit_trail,
    checked_form,
    field_errors,
    registry_of,
    viewer,
)
from dispatcher.entrypoints.http.registry.views import ResidentOut, resident_out
from dispatcher.services.read_models import CallView

router = APIRouter(prefix=auth.CONSOLE, include_in_schema=False)

RECENT_CALLS = 10
# The form's inputs for a resident's own fields, in the order of the form.
FIELDS = (
    "name",
    "birth_date",
    "sex",
    "community_id",
    "address",
    "building",
    "unit",
    "room",
    "phone",
    "mobile",
    "language",
    "id_card",
    "key_resident",
    "conditions",
    "medication",
    "mobility",
    "key_safe",
    "access_notes",
    "notes",
)
CONTACT_FIELDS = ("name", "relation", "phone", "language")
BLANK_CONTACT_ROWS = 2
Search = Annotated[str, Query(max_length=100)]
Offset = Annotated[int, Query(ge=0)]


def _out(v: Viewer, r: ResidentFields) -> ResidentOut:
    device = registry_of(v.request).device_for(r.id)
    return resident_out(r, device.id if device else None, v.staff)


# ------------------------------------------------------------------ the list


@router.get("/residents")
async def residents_page(
    request: Request,
    q: Search = "",
    community: Search = "",
    offset: Offset = 0,
    # After a delete: which record went (an id only, so a link cannot put words here).
    deleted: Annotated[str, Query(max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")] = "",
) -> Response:
    v = await viewer(request)
    registry = registry_of(request)
    page = registry.residents(
        v.staff, community=community or None, text=q or None, limit=PAGE_SIZE, offset=offset
    )
    return v.page(
        "records_residents.html",
        residents=[_out(v, r) for r in page.items],
        paging=Paging(page.offset, page.total),
        q=q,
        community=community,
        communities=_communities(v),
        area_names=_area_names(v),
        may_create=registry.may_change(v.staff, "resident"),
        deleted=deleted,
    )


def _communities(v: Viewer) -> list[Any]:
    return registry_of(v.request).areas(v.staff, level="community", limit=500).items


def _area_names(v: Viewer) -> dict[str, str]:
    return {a.id: a.name for a in registry_of(v.request).directory.areas.values()}


# ------------------------------------------------------------------ one resident


@router.get("/residents/new")
async def new_resident_form(request: Request) -> Response:
    v = await viewer(request)
    if not registry_of(request).may_change(v.staff, "resident"):
        return v.refused(Refused(Why.FORBIDDEN, None, v.r("may_not_change")))
    blank = {name: "" for name in ("id", *FIELDS)}
    blank["language"] = "zh"
    return _form(v, None, blank, _contact_rows([]), {})


@router.post("/residents")
async def create_resident(request: Request) -> Response:
    v = await viewer(request)
    form = await checked_form(request, v)
    values, rows = _submitted(form, None, set())
    try:
        made = await registry_of(request).create_resident(v.staff, values)
    except Refused as exc:
        return _form_refused(v, None, form, rows, exc)
    return RedirectResponse(f"{auth.CONSOLE}/residents/{made.id}", status_code=303)


@router.get("/residents/{resident_id}")
async def resident_page(request: Request, resident_id: str) -> Response:
    v = await viewer(request)
    return await _record(v, resident_id)


async def _record(v: Viewer, resident_id: str, status: int = 200, **extra: Any) -> Response:
    registry = registry_of(v.request)
    try:
        found = registry.resident(v.staff, resident_id)
    except Refused as exc:
        return v.refused(exc)
    device = registry.device_for(resident_id)
    history = await registry.device_history(v.staff, device.id) if device else []
    return v.page(
        "records_resident.html",
        status,
        resident=_out(v, found),
        device=device,
        history=history,
        calls=await _recent_calls(v, resident_id),
        audit=await audit_trail(v, "resident", resident_id),
        area_names=_area_names(v),
        resident_names={resident_id: found.name},
        may_change=registry.may_change(v.staff, "resident", resident_id),
        **extra,
    )


async def _recent_calls(v: Viewer, resident_id: str) -> list[CallView]:
    # The operations' list of the viewer's calls, newest first (its newest 500): a
    # resident's last few are among them.
    calls = await _ops(v.request).list_calls("all", viewer=v.staff)
    return [c for c in calls if c.resident and c.resident.id == resident_id][:RECENT_CALLS]


@router.get("/residents/{resident_id}/edit")
async def edit_resident_form(request: Request, resident_id: str) -> Response:
    v = await viewer(request)
    registry = registry_of(request)
    try:
        found = registry.resident(v.staff, resident_id)
    except Refused as exc:
        return v.refused(exc)
    if not registry.may_change(v.staff, "resident", resident_id):
        return v.refused(Refused(Why.FORBIDDEN, None, v.r("may_not_change")))
    shown = _out(v, found)
    dumped = shown.model_dump(mode="json")
    values = {k: "" if dumped.get(k) is None else str(dumped[k]) for k in FIELDS}
    values["id_card"] = ""  # blank keeps it; the masked number is the placeholder
    return _form(v, shown, values, _contact_rows(shown.contacts), {})


@router.post("/residents/{resident_id}")
async def update_resident(request: Request, resident_id: str) -> Response:
    v = await viewer(request)
    form = await checked_form(request, v)
    registry = registry_of(request)
    try:
        current = registry.resident(v.staff, resident_id)
    except Refused as exc:
        return v.refused(exc)
    shown = _out(v, current)
    values, rows = _submitted(form, current, set(shown.redacted))
    try:
        await registry.update_resident(v.staff, resident_id, values)
    except Refused as exc:
        if exc.why is Why.NOT_FOUND:
            return v.refused(exc)
        return _form_refused(v, shown, form, rows, exc)
    return RedirectResponse(f"{auth.CONSOLE}/residents/{resident_id}", status_code=303)


@router.post("/residents/{resident_id}/delete")
async def delete_resident(request: Request, resident_id: str) -> Response:
    v = await viewer(request)
    await checked_form(request, v)
    try:
        await registry_of(request).delete_resident(v.staff, resident_id)
    except Refused as exc:
        if exc.why is Why.NOT_FOUND:
            return v.refused(exc)
        # Beside the delete button, on her record: she is still there.
        return await _record(v, resident_id, STATUS[exc.why], delete_error=str(exc))
    return RedirectResponse(f"{auth.CONSOLE}/residents?deleted={resident_id}", status_code=303)


# ------------------------------------------------------------------ the form


def _form(
    v: Viewer,
    shown: ResidentOut | None,
    values: dict[str, str],
    contacts: list[dict[str, Any]],
    errors: dict[str, str],
    status: int = 200,
) -> Response:
    return v.page(
        "records_resident_form.html",
        status,
        resident=shown,
        values=values,
        contacts=contacts,
        errors=errors,
        hidden=set(shown.redacted) if shown else set(),
        fields=FIELDS,
        communities=_communities(v),
        key_residents=[k.value for k in KeyResident],
    )


def _contact_rows(contacts: list[Any]) -> list[dict[str, Any]]:
    rows = [
        {
            "name": c.name,
            "relation": c.relation,
            "phone": c.phone,
            "language": c.language,
            "key_holder": c.key_holder,
            "from": str(n),
        }
        for n, c in enumerate(contacts, start=1)
    ]
    blank = {"name": "", "relation": "", "phone": "", "language": "zh", "key_holder": False}
    room = max(0, min(BLANK_CONTACT_ROWS, MAX_CONTACTS - len(rows)))
    return rows + [{**blank, "from": ""} for _ in range(room)]


def _submitted(
    form: dict[str, str], current: ResidentFields | None, hidden: set[str]
) -> tuple[dict[str, Any], list[int]]:
    """The form as the registry's values (a create's whole record, an edit's changes)
    and the form's row of each contact kept, in order. What the viewer's role may not
    see is not on the form and so not changed; a blank ID card keeps the one on file;
    a contact keeps its ways to be reached (SMS, voice) through the row it came from."""
    names = FIELDS if current else ("id", *FIELDS)
    values: dict[str, Any] = {}
    for name in names:
        if name in hidden or name not in form:
            continue
        value = form[name].strip()
        if name == "id_card" and current is not None and not value:
            continue
        values[name] = value
    contacts, rows = [], []
    for n in range(1, MAX_CONTACTS + BLANK_CONTACT_ROWS + 1):
        row = {f: form.get(f"contact-{n}-{f}", "").strip() for f in CONTACT_FIELDS}
        if not (row["name"] or row["relation"] or row["phone"]):
            continue
        contacts.append(
            {
                **row,
                "language": row["language"] or "zh",
                "key_holder": "yes" if form.get(f"contact-{n}-key_holder") else "no",
                "contact_methods": _methods(current, form.get(f"contact-{n}-from", "")),
            }
        )
        rows.append(n)
    if "contacts_shown" in form:
        values["contacts"] = contacts
    return values, rows


def _methods(current: ResidentFields | None, origin: str) -> list[dict[str, Any]]:
    if current is None or not origin.isdigit():
        return []
    n = int(origin)
    if not 1 <= n <= len(current.contacts):
        return []
    return [m.model_dump() for m in current.contacts[n - 1].contact_methods]


def _form_refused(
    v: Viewer,
    shown: ResidentOut | None,
    form: dict[str, str],
    rows: list[int],
    exc: Refused,
) -> Response:
    """The form again, as it was sent, with the registry's reason beside its field."""
    inputs = {"id", *FIELDS}
    names = {
        f"contacts.{i}.{f}": f"contact-{n}-{f}" for i, n in enumerate(rows) for f in CONTACT_FIELDS
    }
    errors = field_errors(exc, names)
    where = next(iter(errors))
    if where not in inputs and where not in names.values():
        errors = {"": str(exc)}
    values = {name: form.get(name, "") for name in ("id", *FIELDS)}
    contacts = [
        {
            **{f: form.get(f"contact-{n}-{f}", "") for f in CONTACT_FIELDS},
            "key_holder": bool(form.get(f"contact-{n}-key_holder")),
            "from": form.get(f"contact-{n}-from", ""),
        }
        for n in range(1, MAX_CONTACTS + BLANK_CONTACT_ROWS + 1)
        if f"contact-{n}-name" in form
    ]
    return _form(v, shown, values, contacts, errors, STATUS[exc.why])
