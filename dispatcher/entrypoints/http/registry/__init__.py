"""The operator API's registry: residents, devices, staff, areas, service providers
and the audit of their changes, under ``/api/v1``.

Each route translates HTTP to :class:`dispatcher.services.registry.Registry` and back;
a refusal of the registry's rules becomes ``{"error": message}`` with the field named
in ``detail`` (422 a record that cannot be, 409 a conflict, 404 not found or outside
the caller's area, 403 a change the caller's role may not make).
"""

from __future__ import annotations

from fastapi import FastAPI

from dispatcher.entrypoints.http.registry import exchange, people, residents


def add_registry(app: FastAPI) -> None:
    """The registry's routes; they serve ``request.state.registry``."""
    app.include_router(residents.router)
    app.include_router(people.router)
    app.include_router(exchange.router)
