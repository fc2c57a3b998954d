"""The console's hand-over sheet for the emergency services: one printable A4 page
(``templates/sheet.html``, styles in ``static/console/sheet.css``). What it holds and
withholds is the service layer's (``Operations.handover_sheet``, the API's JSON too);
this route only renders it, and the sheet's texts are the ``[console.sheet]`` table."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from dispatcher.core import texts
from dispatcher.entrypoints.http.console import auth, pages
from dispatcher.services.read_models import CallNotFoundError

router = APIRouter(prefix=auth.CONSOLE, include_in_schema=False)

SECTION = "console.sheet"


def sheet_texts(lang: str) -> Any:
    """``ts("title")``: a text of the ``[console.sheet]`` table."""

    def ts(key: str, **values: object) -> str:
        return texts.text(lang, f"{SECTION}.{key}", **values)

    return ts


def action_label(lang: str, action: str) -> str:
    """A timeline action in words where the catalogue has them, else its code."""
    found = texts.catalogue(lang).get(SECTION, {}).get(f"action_{action}")
    return found if found is not None else action


@router.get("/calls/{call_id}/sheet", response_class=HTMLResponse)
async def sheet_page(request: Request, call_id: str) -> Response:
    signed_in = await auth.current(request)
    lang = pages.language(request, signed_in)
    t = pages.translator(lang)
    staff = signed_in.staff
    try:
        sheet = await pages._ops(request).handover_sheet(call_id, staff.id, "console", viewer=staff)
    except CallNotFoundError:
        return pages._render(
            request, "message.html", lang, 404, me=signed_in, message=t("not_found")
        )

    def local(when: Any, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        return pages._local(request, when).strftime(fmt) if when else "-"

    return pages._render(
        request,
        "sheet.html",
        lang,
        me=signed_in,
        sheet=sheet,
        ts=sheet_texts(lang),
        local=local,
        action=lambda code: action_label(lang, code),
    )
