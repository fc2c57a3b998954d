"""What the console's record pages share (``record_pages``: residents; ``device_pages``:
devices and staff): the registry from the app's state, the signed-in viewer and their
language, a refusal of the registry's rules as a page, a list's paging, and an audit
entry as the fields it changed. Every rule is the registry's
(``dispatcher.services.registry.Registry``, the service the API's routes call); these
helpers only translate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from dispatcher.core import texts
from dispatcher.core.directory import Staff
from dispatcher.core.registry.rules import Refused, Why
from dispatcher.entrypoints.http.console import auth
from dispatcher.entrypoints.http.console.pages import _local, _render, language
from dispatcher.entrypoints.http.registry.views import AuditOut, audit_out
from dispatcher.services.accounts import SignedIn
from dispatcher.services.registry import AuditQuery, Registry

SECTION = "console.records."
PAGE_SIZE = 25
AUDIT_SHOWN = 50
STATUS = {Why.INVALID: 422, Why.CONFLICT: 409, Why.NOT_FOUND: 404, Why.FORBIDDEN: 403}


def registry_of(request: Request) -> Registry:
    found: Registry = request.state.registry
    return found


@dataclass(frozen=True)
class Viewer:
    """Who is looking, in which language, with the page helpers their templates use."""

    signed_in: SignedIn
    lang: str
    request: Request

    @property
    def staff(self) -> Staff:
        return self.signed_in.staff

    def r(self, key: str, **values: object) -> str:
        return texts.text(self.lang, SECTION + key, **values)

    def label(self, field: str) -> str:
        """A record field's name on the page (the audit may hold one no form has)."""
        try:
            return self.r(f"field_{field}")
        except KeyError:
            return field

    def local(self, when: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return _local(self.request, when).strftime(fmt) if when else "-"

    def page(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return _render(
            self.request,
            template,
            self.lang,
            status,
            me=self.signed_in,
            r=self.r,
            label=self.label,
            local=self.local,
            staff_names={s.id: s.name for s in registry_of(self.request).directory.staff.values()},
            **context,
        )

    def refused(self, exc: Refused) -> HTMLResponse:
        """A refusal with nothing to show it beside (no form): the message page."""
        return _render(
            self.request,
            "message.html",
            self.lang,
            STATUS[exc.why],
            me=self.signed_in,
            message=self.r("not_found") if exc.why is Why.NOT_FOUND else str(exc),
        )


async def viewer(request: Request) -> Viewer:
    signed_in = await auth.current(request)
    return Viewer(signed_in, language(request, signed_in), request)


async def checked_form(request: Request, v: Viewer) -> dict[str, str]:
    """The posted form's text fields, after its CSRF token is checked."""
    form = await request.form()
    values = {k: val for k, val in form.items() if isinstance(val, str)}
    auth.check_csrf(request, v.signed_in, values.get("csrf", ""))
    return values


@dataclass(frozen=True)
class Paging:
    offset: int
    total: int
    size: int = PAGE_SIZE

    @property
    def previous(self) -> int | None:
        return max(0, self.offset - self.size) if self.offset > 0 else None

    @property
    def next(self) -> int | None:
        return self.offset + self.size if self.offset + self.size < self.total else None

    @property
    def first(self) -> int:
        return min(self.total, self.offset + 1)

    @property
    def last(self) -> int:
        return min(self.total, self.offset + self.size)


@dataclass(frozen=True)
class Change:
    field: str
    before: Any
    after: Any

    @property
    def shown_before(self) -> str:
        return shown(self.before)

    @property
    def shown_after(self) -> str:
        return shown(self.after)


def shown(value: Any) -> str:
    """An audited value as a line of the page: a contact as "name (relation) phone"."""
    if value in (None, "", []):
        return "-"
    if isinstance(value, list):
        return "; ".join(shown(item) for item in value)
    if isinstance(value, dict) and {"name", "phone"} <= set(value):
        relation = f" ({value['relation']})" if value.get("relation") else ""
        return f"{value['name']}{relation} {value['phone']}"
    return str(value)


@dataclass(frozen=True)
class AuditRow:
    entry: AuditOut
    changes: list[Change]


def _changes(e: AuditOut) -> list[Change]:
    before, after = e.before or {}, e.after or {}
    names = [*before, *(k for k in after if k not in before)]
    return [Change(k, before.get(k), after.get(k)) for k in names if before.get(k) != after.get(k)]


async def audit_trail(v: Viewer, kind: str, record_id: str) -> list[AuditRow] | None:
    """The record's changes, newest first, as the viewer may read them (the API's
    view of the audit); None when their role may not read the audit at all."""
    query = AuditQuery(kind=kind, record_id=record_id, limit=AUDIT_SHOWN)
    try:
        found = await registry_of(v.request).audit(v.staff, query)
    except Refused:
        return None
    rows = [audit_out(e, v.staff) for e in found.items]
    return [AuditRow(e, _changes(e)) for e in rows]


def field_errors(exc: Refused, names: dict[str, str] | None = None) -> dict[str, str]:
    """The refusal as {form field: message}: beside the field the registry named
    (``names`` maps a record's field path to the form's input), or ``""`` for the
    form as a whole."""
    field = exc.field or ""
    where = (names or {}).get(field, field)
    return {where: exc.message if field else str(exc)}
