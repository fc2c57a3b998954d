"""The operator REST API: list, inspect, acknowledge and resolve calls; ask who is on duty.

Everything lives under ``/api/v1``. Every answer that is not a success is a JSON
object with an ``error`` string, so the CLI and scripts can print one line; request
validation failures add the pydantic ``detail`` list. The API only translates HTTP
to the ``Operations`` service layer and back: no state lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import structlog
import uvicorn
from fastapi import APIRouter, Body, FastAPI, Header, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from dispatcher.adapters.twilio import webhooks
from dispatcher.adapters.twilio.phone_webhooks import TwilioWebhooks
from dispatcher.core.calls import InvalidTransitionError, Outcome
from dispatcher.entrypoints.http import boards as api_boards
from dispatcher.entrypoints.http import calendars as api_calendars
from dispatcher.entrypoints.http import dispatches as api_dispatches
from dispatcher.entrypoints.http import handover as api_handover
from dispatcher.entrypoints.http import protocols as api_protocols
from dispatcher.entrypoints.http import reports as api_reports
from dispatcher.entrypoints.http import rota as api_rota
from dispatcher.entrypoints.http.api_docs import add_api_docs
from dispatcher.entrypoints.http.body_limit import BodyLimit
from dispatcher.entrypoints.http.deps import (
    EARLIEST,
    ERRORS,
    LATEST,
    PREFIX,
    ErrorBody,
    Note,
    OpsDep,
    Refused,
    StaffDep,
    authenticate,
)
from dispatcher.entrypoints.http.served import Served
from dispatcher.services.boards import Boards
from dispatcher.services.calendar_feeds import CalendarFeeds
from dispatcher.services.clock import Clock, SystemClock
from dispatcher.services.read_models import CallNotFoundError, CallView, OnDutyView, Operations
from dispatcher.services.rota_overrides import RotaOverrides

log = structlog.get_logger(__name__)

# The route groups besides calls and duty are in api_rota, api_reports and
# api_calendars; what they share with this module (the bearer-token dependencies,
# Refused and the error bodies) is in api_deps, re-exported here.
__all__ = [
    "PREFIX",
    "ApiServer",
    "CallStateFilter",
    "ErrorBody",
    "Refused",
    "create_app",
    "serve_api",
]


class CallStateFilter(StrEnum):
    ACTIVE = "active"  # every call not yet resolved
    ALL = "all"
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESPONDER_ON_SITE = "responder_on_site"
    CANCELLED = "cancelled"
    RESOLVED = "resolved"


class HealthBody(BaseModel):
    status: Literal["ok"] = "ok"


class CallList(BaseModel):
    calls: list[CallView]


class OnCallAnswer(BaseModel):
    at: datetime
    on_duty: list[OnDutyView]


class AckBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Note = ""


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Annotated[Note, Field(min_length=1)]


class HandOverBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: Annotated[str, Field(min_length=1, max_length=64, description="the new owner's staff id")]
    note: Note = ""


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Outcome
    note: Note = ""


# ---------------------------------------------------------------- dependencies

CallId = Annotated[str, Path(min_length=1, max_length=64, description="e.g. C-20261128-0007")]
Channel = Annotated[
    Literal["api", "cli"],
    Header(
        alias="X-Eldercall-Channel",
        description="Recorded on the call's timeline: `cli` from the eldercall command.",
    ),
]

_CALL_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    404: {"model": ErrorBody, "description": "No such call"},
}
_CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_CALL_ERRORS,
    409: {"model": ErrorBody, "description": "The call cannot do that in its present state"},
}

router = APIRouter(prefix=PREFIX)


# ---------------------------------------------------------------- routes


@router.get("/health", response_model=HealthBody, tags=["meta"])
async def health() -> HealthBody:
    """Liveness: answers without a token."""
    return HealthBody()


@router.get("/calls", response_model=CallList, responses=ERRORS, tags=["calls"])
async def list_calls(
    ops: OpsDep,
    staff: StaffDep,
    state: Annotated[
        CallStateFilter,
        Query(description="`active` (default) is every call not yet resolved; `all` is every call"),
    ] = CallStateFilter.ACTIVE,
) -> CallList:
    """Calls in a state, newest first, without their timelines: those of the token's
    area and the areas below it only."""
    return CallList(calls=await ops.list_calls(state.value, viewer=staff))


@router.get("/calls/{call_id}", response_model=CallView, responses=_CALL_ERRORS, tags=["calls"])
async def get_call(call_id: CallId, ops: OpsDep, staff: StaffDep) -> CallView:
    """One call with its resident, timeline and SMS notifications, and its device's
    state (`device`: online/offline, battery, last heard, open technical alerts).

    A call outside the token's area is 404, like a missing one. The resident's notes
    (medical, key-safe) are withheld from community duty staff: `resident.redacted`
    then lists `notes`.
    """
    return await ops.get_call(call_id, viewer=staff)


@router.post(
    "/calls/{call_id}/ack", response_model=CallView, responses=_CHANGE_ERRORS, tags=["calls"]
)
async def acknowledge(
    call_id: CallId,
    ops: OpsDep,
    staff: StaffDep,
    body: Annotated[AckBody | None, Body()] = None,
    channel: Channel = "api",
) -> CallView:
    """Acknowledge a call as the token's staff member: escalation stops.

    Acknowledging an acknowledged call again is not an error: the call is returned.
    """
    note = body.note if body else ""
    try:
        return await ops.acknowledge(call_id, staff.id, channel, note, viewer=staff)
    except InvalidTransitionError:
        # Two operators pressing "ack" at once must both succeed; only a call that is
        # past acknowledging (resolved, say) is a conflict.
        call = await ops.get_call(call_id, viewer=staff)
        if call.state in ("acknowledged", "responder_on_site"):
            return call
        raise


@router.post(
    "/calls/{call_id}/take", response_model=CallView, responses=_CHANGE_ERRORS, tags=["calls"]
)
async def take(call_id: CallId, ops: OpsDep, staff: StaffDep, channel: Channel = "api") -> CallView:
    """Take a call as its owner (首问负责), as the console's "take" does: an
    acknowledgement that is refused with 409 when another person holds the call.
    Taking one's own call again returns it unchanged."""
    return await ops.take(call_id, staff.id, channel, viewer=staff)


@router.post(
    "/calls/{call_id}/resolve", response_model=CallView, responses=_CHANGE_ERRORS, tags=["calls"]
)
async def resolve(
    call_id: CallId,
    body: ResolveBody,
    ops: OpsDep,
    staff: StaffDep,
    channel: Channel = "api",
) -> CallView:
    """Close a call with its outcome, as the token's staff member."""
    return await ops.resolve(call_id, staff.id, channel, body.outcome, body.note, viewer=staff)


@router.post(
    "/calls/{call_id}/notes", response_model=CallView, responses=_CHANGE_ERRORS, tags=["calls"]
)
async def add_note(
    call_id: CallId, body: NoteBody, ops: OpsDep, staff: StaffDep, channel: Channel = "api"
) -> CallView:
    """Add a line to the call's timeline under the token's staff member."""
    return await ops.add_note(call_id, staff.id, channel, body.note, viewer=staff)


@router.post(
    "/calls/{call_id}/hand-over",
    response_model=CallView,
    responses=_CHANGE_ERRORS,
    tags=["calls"],
)
async def hand_over(
    call_id: CallId, body: HandOverBody, ops: OpsDep, staff: StaffDep, channel: Channel = "api"
) -> CallView:
    """Give a taken call to another person, who owns it from now on: its owner may, or
    a supervisor or admin; 409 otherwise, or when the new owner cannot see the call."""
    return await ops.hand_over(call_id, staff.id, body.to, channel, body.note, viewer=staff)


@router.post(
    "/calls/{call_id}/escalate", response_model=CallView, responses=_CHANGE_ERRORS, tags=["calls"]
)
async def escalate(
    call_id: CallId, ops: OpsDep, staff: StaffDep, channel: Channel = "api"
) -> CallView:
    """Fire the next escalation step now (a taken call goes back to escalating)."""
    return await ops.escalate_now(call_id, staff.id, channel, viewer=staff)


@router.get(
    "/oncall",
    response_model=OnCallAnswer,
    responses={**ERRORS, 404: {"model": ErrorBody, "description": "No such community"}},
    tags=["duty"],
)
async def on_call(
    request: Request,
    ops: OpsDep,
    staff: StaffDep,
    community: Annotated[
        str | None,
        Query(min_length=1, max_length=64, description="A community id; all when left out"),
    ] = None,
    at: Annotated[
        AwareDatetime | None,
        Query(description="RFC 3339 time with an offset, e.g. 2026-11-28T08:00:00+08:00"),
    ] = None,
) -> OnCallAnswer:
    """Who is on duty at a time (default now) for a community, or for all of them."""
    if at is not None and not (EARLIEST <= at.year <= LATEST):
        # Far-off years overflow when the rota converts them between time zones.
        msg = f"the year must be {EARLIEST}..{LATEST}"
        raise Refused(
            422,
            f"query parameter at: {msg}",
            detail=[{"loc": ["query", "at"], "msg": msg, "type": "value_error"}],
        )
    when = at if at is not None else request.state.clock.now()
    try:
        on_duty = await ops.on_duty(at=when, community_id=community)
    except LookupError as exc:
        raise Refused(404, f"no community {community}") from exc
    return OnCallAnswer(at=when, on_duty=on_duty)


# ---------------------------------------------------------------- errors


def _where(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        source, rest = parts[0], parts[1:]
        if not rest:
            return "request body" if source == "body" else source
        name = ".".join(rest)
        return name if source == "body" else f"{source} parameter {name}"
    return ".".join(parts)


def _explain(errors: Sequence[Any]) -> str:
    """One readable sentence for the first few validation errors."""
    lines: list[str] = []
    for err in errors[:3]:
        loc = tuple(err.get("loc", ()))
        kind = err.get("type", "")
        if kind == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "")
            lines.append(
                f"the request body is not valid JSON ({reason})"
                if reason
                else "the request body is not valid JSON"
            )
        elif kind == "missing" and loc == ("body",):
            lines.append("a JSON request body is required")
        else:
            lines.append(f"{_where(loc)}: {err.get('msg', 'invalid')}")
    if len(errors) > 3:
        lines.append(f"and {len(errors) - 3} more")
    return "; ".join(lines) or "invalid request"


def _answer(request: Request, status: int, message: str, **extra: Any) -> JSONResponse:
    request.state.error = message
    headers = extra.pop("headers", None)
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


async def _on_refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refused)
    if exc.detail is not None:
        return _answer(request, exc.status, exc.message, headers=exc.headers, detail=exc.detail)
    return _answer(request, exc.status, exc.message, headers=exc.headers)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # FastAPI parses the body before it runs dependencies: without this a client with
    # no token could probe the API's validation rules.
    try:
        authenticate(request, request.headers.get("authorization"))
    except Refused as refused:
        return await _on_refused(request, refused)
    errors = list(exc.errors())
    # Echoing the input back is noise (and could be large); keep where, what and why.
    detail = [
        {k: v for k, v in err.items() if k in ("loc", "msg", "type", "ctx")} for err in errors
    ]
    return _answer(request, 422, _explain(errors), detail=jsonable_encoder(detail))


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = str(exc.detail)
    if exc.status_code in (404, 405) and message in ("Not Found", "Method Not Allowed"):
        # The router's own answers: say which route, so a wrong URL is easy to spot.
        message = f"{message.lower()}: {request.method} {request.url.path}"
    return _answer(request, exc.status_code, message, headers=exc.headers)


async def _on_not_found(request: Request, exc: Exception) -> JSONResponse:
    call_id = request.path_params.get("call_id", str(exc))
    return _answer(request, 404, f"no call {call_id}")


async def _on_conflict(request: Request, exc: Exception) -> JSONResponse:
    return _answer(request, 409, str(exc) or "the call cannot do that in its present state")


async def _on_crash(request: Request, exc: Exception) -> JSONResponse:
    log.exception("api.crash", path=request.url.path)
    return _answer(request, 500, "internal error: see the dispatcher's log")


class _RequestLog:
    """One structured log line per request, with the outcome (pure ASGI: sees the
    status of every answer, error handlers' included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        state: dict[str, Any] = scope.setdefault("state", {})

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            fields: dict[str, Any] = {
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            }
            call_id = scope.get("path_params", {}).get("call_id")
            if call_id:
                fields["call_id"] = call_id
            for key in ("staff_id", "error"):
                if key in state:
                    fields[key] = state[key]
            if status >= 500:
                log.error("api.request", **fields)
            elif status >= 400:
                log.warning("api.request", **fields)
            elif scope["method"] == "GET":
                # Consoles poll the queue every second or so: reads are debug, changes info.
                log.debug("api.request", **fields)
            else:
                log.info("api.request", **fields)


# ---------------------------------------------------------------- app and server


# A part of the routes beyond the API's own (the console, the registry, ...): a function
# of the module that adds them, so that it can be part of the key of the routes' cache.
RoutesPart = Callable[[FastAPI], None]


def create_app(
    ops: Operations,
    clock: Clock | None = None,
    twilio: TwilioWebhooks | None = None,
    overrides: RotaOverrides | None = None,
    calendars: CalendarFeeds | None = None,
    boards: Boards | None = None,
    *,
    parts: Sequence[RoutesPart] = (),
    **services: Any,
) -> Served:
    """The API over ``ops``; ``clock`` gives "now" for on-duty questions without a time;
    ``twilio`` adds Twilio's webhooks under ``/twilio`` (signed, no bearer token),
    delivery reports among them when it has an outbox;
    ``overrides`` serves the rota override routes (503 without it); ``calendars`` the
    iCalendar feeds (503 without it); ``boards`` the board (503 without it).
    ``parts`` add routes of their own, which find ``services`` in ``request.state``."""
    return Served(
        _routes(twilio is not None, *parts),
        ops=ops,
        clock=clock or SystemClock(),
        twilio=twilio,
        overrides=overrides,
        calendars=calendars,
        boards=boards,
        **services,
    )


@functools.cache
def _routes(twilio: bool, *parts: RoutesPart) -> FastAPI:
    """The routes, built once per process for each set of them (see served.py)."""
    app = FastAPI(
        title="Eldercall operator API",
        version="1",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=None,  # served by add_api_docs, from static files of our own
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.include_router(router)
    app.include_router(api_reports.router)
    app.include_router(api_rota.router)
    app.include_router(api_calendars.router)
    app.include_router(api_dispatches.router)
    app.include_router(api_handover.router)
    app.include_router(api_boards.router)
    app.include_router(api_protocols.router)
    add_api_docs(app)
    if twilio:
        app.include_router(webhooks.router)
    for add in parts:
        add(app)
    app.add_exception_handler(Refused, _on_refused)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(CallNotFoundError, _on_not_found)
    app.add_exception_handler(InvalidTransitionError, _on_conflict)
    app.add_exception_handler(Exception, _on_crash)
    app.add_middleware(BodyLimit)
    app.add_middleware(_RequestLog)  # added last: outermost, it logs the 413s too
    return app


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to its host process and says when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The daemon owns SIGINT/SIGTERM and stops us through ``stop``.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.listening.set()


def _bounded_h11(max_connections: int | None) -> type[H11Protocol]:
    """h11 with a hard bound on open connections and a deadline for the first request.

    uvicorn's ``limit_concurrency`` only answers 503 once a request arrives, and a
    connection that never sends one is never timed out: 1,100 idle connections under a
    soft limit of 1,024 file descriptors stopped MQTT intake while they were held. A
    connection beyond ``max_connections`` is closed at once (its descriptor freed), and
    a new one that sends nothing is closed after ``timeout_keep_alive``, as an idle
    keep-alive connection is."""

    class BoundedH11(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if max_connections is not None and len(self.connections) > max_connections:
                log.warning("api.connection_refused", open=len(self.connections) - 1)
                transport.close()
                return
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    return BoundedH11


class ApiServer:
    """The API served by uvicorn inside the running event loop.

    ``start()`` binds (raising ``OSError`` if the address is taken, rather than
    uvicorn's ``sys.exit``) and returns once connections are accepted; ``port`` is
    then the real port, useful with port 0.
    """

    def __init__(
        self,
        app: ASGIApp,
        host: str,
        port: int,
        *,
        max_connections: int | None = None,
        keep_alive_s: float = 5.0,
    ) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._max_connections = max_connections
        self._keep_alive_s = keep_alive_s
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = port

    @property
    def base_url(self) -> str:
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self._host, self._host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            lifespan="off",  # the daemon owns resources; the app has none of its own
            log_config=None,  # leave logging to the daemon's structlog setup
            access_log=False,  # _RequestLog writes one line per request
            timeout_graceful_shutdown=5,
            http=_bounded_h11(self._max_connections),
            limit_concurrency=self._max_connections,
            timeout_keep_alive=self._keep_alive_s,  # type: ignore[arg-type]  # a float works
            h11_max_incomplete_event_size=16 * 1024,  # request line and headers
        )
        self._server = server = _EmbeddedServer(config)
        self._task = task = asyncio.create_task(server.serve(sockets=[sock]), name="api-server")
        listening = asyncio.create_task(server.listening.wait())
        await asyncio.wait({task, listening}, return_when=asyncio.FIRST_COMPLETED)
        if not server.listening.is_set():
            listening.cancel()
            sock.close()
            await task  # raises what went wrong
            raise RuntimeError("the API server stopped before it listened")
        log.info("api.listening", url=self.base_url)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        if isinstance(self._app, Served):
            await self._app.close()
        self._server.should_exit = True
        try:
            await self._task
        finally:
            self._server = None
            self._task = None
            log.info("api.stopped")


async def serve_api(
    app: ASGIApp,
    host: str,
    port: int,
    stop: asyncio.Event,
    started: asyncio.Event | None = None,
    *,
    max_connections: int | None = None,
    keep_alive_s: float = 5.0,
) -> None:
    """Serve ``app`` on ``host:port`` until ``stop`` is set; ``started`` is set once it
    listens. Installs no signal handlers. Raises ``OSError`` if it cannot bind.

    At most ``max_connections`` open connections (``[http] max_connections``), idle
    ones closed after ``keep_alive_s``: HTTP clients can never take the file
    descriptors MQTT intake needs."""
    server = ApiServer(app, host, port, max_connections=max_connections, keep_alive_s=keep_alive_s)
    await server.start()
    try:
        if started is not None:
            started.set()
        await stop.wait()
    finally:
        await server.stop()
