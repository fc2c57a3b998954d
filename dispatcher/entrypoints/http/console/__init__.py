"""The operator console: the screens a hotline operator works from, served by the
dispatcher itself under ``/console`` (templates here, scripts and styles under
``../static/console``; nothing from the network). ``add_console`` adds it."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from dispatcher.entrypoints.http.console import (
    auth,
    boards,
    device_pages,
    dispatch_pages,
    pages,
    protocol_pages,
    record_pages,
    sheet,
)


def add_console(app: FastAPI) -> None:
    """The console's pages; they serve ``request.state``'s ``accounts``, ``live_queue``
    (a :class:`~dispatcher.services.live_queue.LiveQueue`) and ``directory``."""
    app.include_router(pages.router)
    app.include_router(dispatch_pages.router)
    app.include_router(sheet.router)
    app.include_router(boards.router)  # /console/board, /console/wall
    app.include_router(protocol_pages.router)
    app.include_router(record_pages.router)  # /console/residents
    app.include_router(device_pages.router)  # /console/devices, /console/staff
    app.add_exception_handler(auth.NotSignedInError, _not_signed_in)
    app.add_exception_handler(auth.BadCsrfError, _bad_csrf)


async def _not_signed_in(request: Request, exc: Exception) -> Response:
    if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
        return RedirectResponse(f"{auth.CONSOLE}/login", status_code=303)
    return JSONResponse({"error": "not signed in"}, status_code=401)


async def _bad_csrf(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {"error": "the form's CSRF token is missing or wrong: reload the page"}, status_code=403
    )
