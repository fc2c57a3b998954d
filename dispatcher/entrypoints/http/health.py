"""Watching the daemon: ``/metrics`` for Prometheus and three health checks.

- ``GET /health/live``: the process answers (200), nothing more: a restart is the cure
  only when even this fails.
- ``GET /health/ready``: the database answers a trivial query within its timeout AND the
  MQTT gateway is connected and subscribed; else 503 naming the part that is not.
- ``GET /health/engine``: the escalator and the outbox each completed a poll cycle
  recently (an idle poller still completes one every poll interval); else 503 naming
  the part that is stale. A poller that hangs or fails on every cycle shows here.
- ``GET /health/data``: ``rota.toml`` and ``policies.toml`` as they are on disk are the
  versions in force (200); else 503 with each refused file's problems (the daemon
  runs on with the version it had: someone must fix the file). Each file's last load.

None of them needs the API's bearer token (they are outside ``/api/v1``, and no route
here depends on the token): a monitoring system holds no staff token. They tell
nothing about residents or calls beyond counts; ``[http] listen`` decides who can
reach them (127.0.0.1 by default).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from dispatcher.adapters.metrics.prometheus import CONTENT_TYPE, PrometheusMetrics
from dispatcher.adapters.metrics.scrape import ScrapeFigures
from dispatcher.services.data_reload import FileStatus
from dispatcher.services.engine_cycles import EngineCycles

OK = "ok"


@dataclass(frozen=True)
class Watch:
    """What the routes look at, wired by ``dispatcher.bootstrap.http_app``."""

    database: Callable[[], Awaitable[object]]  # returns when the database answers
    mqtt_connected: Callable[[], bool]  # connected to the broker and subscribed
    cycles: EngineCycles
    engine_max_age_s: float
    metrics: PrometheusMetrics
    figures: ScrapeFigures
    # The reloaded data files (dispatcher.services.data_reload); none when not wired.
    data_files: Callable[[], dict[str, FileStatus]] = dict


router = APIRouter(tags=["watching"])


def add_health(app: FastAPI) -> None:
    """``/metrics`` and ``/health/*``; they watch ``request.state.watch`` (a :class:`Watch`)."""
    app.include_router(router)


def _watch(request: Request) -> Watch:
    watch: Watch = request.state.watch
    return watch


@router.get("/health/live")
async def live() -> dict[str, str]:
    """The process answers."""
    return {"status": OK}


@router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    """The database answers and the MQTT gateway is connected and subscribed."""
    watch = _watch(request)
    checks: dict[str, str] = {}
    try:
        await watch.database()
        checks["database"] = OK
    except Exception as exc:
        # The driver's own words (SQLAlchemy's wrapper adds the SQL and a link).
        checks["database"] = f"not reachable: {getattr(exc, 'orig', None) or exc!r}"
    checks["mqtt"] = (
        OK if watch.mqtt_connected() else "not connected to the broker or not subscribed"
    )
    return _answer(checks, "not ready")


@router.get("/health/engine")
async def engine(request: Request) -> JSONResponse:
    """The escalator and the outbox each completed a cycle within the limit."""
    watch = _watch(request)
    stale = watch.cycles.stale(watch.engine_max_age_s)
    return _answer({part: stale.get(part, OK) for part in watch.cycles.parts}, "stale")


@router.get("/health/data")
async def data(request: Request) -> JSONResponse:
    """The rota and policies files on disk are those in force, or why not."""
    files = _watch(request).data_files()
    checks = {name: OK if f.error is None else "refused" for name, f in files.items()}
    body, status = _body(checks, "file refused")
    body["files"] = {
        name: {
            "loaded_at": f.loaded_at.isoformat(),
            "reloads": f.reloads,
            "failures": f.failures,
            **(
                {"error": f.error, "error_at": f.error_at.isoformat() if f.error_at else None}
                if f.error is not None
                else {}
            ),
        }
        for name, f in files.items()
    }
    return JSONResponse(body, status_code=status)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Every series in Prometheus' text format; the database's figures at most a
    couple of seconds old."""
    watch = _watch(request)
    await watch.figures.refresh()
    return Response(watch.metrics.exposition(), media_type=CONTENT_TYPE)


def _answer(checks: dict[str, str], what: str) -> JSONResponse:
    body, status = _body(checks, what)
    return JSONResponse(body, status_code=status)


def _body(checks: dict[str, str], what: str) -> tuple[dict[str, Any], int]:
    bad = [part for part, said in checks.items() if said != OK]
    body: dict[str, Any] = {"status": OK if not bad else what, "checks": checks}
    if bad:
        body["error"] = f"{what}: " + "; ".join(f"{part} {checks[part]}" for part in bad)
    return body, 503 if bad else 200
