"""What the registry's routes share: the service from the app's state, the paging
query, and the refusals of the registry's rules as HTTP answers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import Depends, Header, Query, Request
from pydantic import BaseModel

from dispatcher.core.registry.rules import Refused as RuleRefused
from dispatcher.core.registry.rules import Why
from dispatcher.entrypoints.http.deps import ERRORS, ErrorBody, Refused
from dispatcher.services.registry import MAX_PAGE, Registry

T = TypeVar("T")

_STATUS = {Why.INVALID: 422, Why.CONFLICT: 409, Why.NOT_FOUND: 404, Why.FORBIDDEN: 403}


def _registry(request: Request) -> Registry:
    found: Registry | None = getattr(request.state, "registry", None)
    if found is None:
        raise Refused(503, "the registry is not available in this server")
    return found


RegistryDep = Annotated[Registry, Depends(_registry)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="at most this many items")]
Offset = Annotated[int, Query(ge=0, description="skip this many items first")]
RecordId = Annotated[str, "a record id"]
Channel = Annotated[
    Literal["api", "cli"],
    Header(
        alias="X-Eldercall-Channel",
        description="Recorded on the timeline of a call linked by this change.",
    ),
]

RECORD_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    403: {"model": ErrorBody, "description": "Your role may not change this record"},
    404: {"model": ErrorBody, "description": "No such record in your area"},
    409: {"model": ErrorBody, "description": "The change conflicts with another record or a call"},
}


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


@contextmanager
def answering() -> Iterator[None]:
    """The registry's refusals as the API's answers, the field named in ``detail``."""
    try:
        yield
    except RuleRefused as exc:
        detail = None
        if exc.field is not None:
            detail = [{"loc": ["body", *exc.field.split(".")], "msg": exc.message}]
        raise Refused(_STATUS[exc.why], str(exc), detail=detail) from exc
