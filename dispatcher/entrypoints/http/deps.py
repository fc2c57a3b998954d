"""What every route group of the operator API shares: the prefix, the bearer-token
dependencies, the refusal that becomes ``{"error": message}`` and the error bodies.

A module of its own so that ``app.py`` (the app) and the route modules it includes
(``api_rota``, ``api_reports``, ``api_calendars``) import it without a cycle.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from dispatcher.core.directory import Role, Staff
from dispatcher.services.read_models import Operations

PREFIX = "/api/v1"
MAX_NOTE = 2000
EARLIEST, LATEST = 1900, 9000  # years accepted in questions about times


class ErrorBody(BaseModel):
    error: str
    detail: list[dict[str, Any]] | None = None


# A note is text for people: line breaks and tabs, but no other control characters
# (a NUL would not even fit in a PostgreSQL text column).
Note = Annotated[
    str, Field(default="", max_length=MAX_NOTE, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")
]


class Refused(Exception):
    """An answer other than success, decided by a route: becomes ``{"error": message}``."""

    def __init__(
        self,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        detail: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
        self.detail = detail


_bearer = HTTPBearer(
    auto_error=False,
    description="The staff member's API token from the directory's staff file.",
)


def _ops(request: Request) -> Operations:
    ops: Operations = request.state.ops
    return ops


def authenticate(request: Request, authorization: str | None) -> Staff:
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Refused(
            401,
            "missing API token: send the header 'Authorization: Bearer <token>'",
            {"WWW-Authenticate": "Bearer"},
        )
    # The lookup (and its constant-time comparison) is the service layer's job.
    ops: Operations = request.state.ops
    staff = ops.staff_for_token(token)
    if staff is None:
        raise Refused(
            401, "invalid API token", {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )
    request.state.staff_id = staff.id
    return staff


def _staff(
    request: Request,
    # Declared for the OpenAPI security scheme; the header is read below.
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Staff:
    return authenticate(request, request.headers.get("authorization"))


def _supervisor(staff: Annotated[Staff, Depends(_staff)]) -> Staff:
    if staff.role not in (Role.SUPERVISOR, Role.ADMIN):  # an admin may do what they may
        raise Refused(403, "only supervisors may see or change rota overrides")
    return staff


OpsDep = Annotated[Operations, Depends(_ops)]
StaffDep = Annotated[Staff, Depends(_staff)]
SupervisorDep = Annotated[Staff, Depends(_supervisor)]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No or unknown API token"},
    422: {"model": ErrorBody, "description": "The request is malformed"},
}
