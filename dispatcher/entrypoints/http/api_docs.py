"""The API docs page (Swagger UI) and the static files it loads, served by the dispatcher
itself: FastAPI's default page loads Swagger UI from a CDN, which a closed network
cannot reach. Swagger UI is vendored under ``static/swagger-ui`` (see its README.txt);
``/static`` serves the whole folder (the console's scripts and styles are there too)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from dispatcher.entrypoints.http.deps import PREFIX

STATIC_DIR = Path(__file__).parent / "static"
STATIC_URL = "/static"
SWAGGER_UI = f"{STATIC_URL}/swagger-ui"
DOCS_URL = f"{PREFIX}/docs"

router = APIRouter()


@router.get(DOCS_URL, include_in_schema=False)
async def api_docs(request: Request) -> HTMLResponse:
    app: FastAPI = request.app
    assert app.openapi_url is not None
    return get_swagger_ui_html(
        openapi_url=app.openapi_url,
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER_UI}/favicon-32x32.png",
        # No badge image from validator.swagger.io (it sends the spec's URL there).
        swagger_ui_parameters={"validatorUrl": None},
    )


def add_api_docs(app: FastAPI) -> None:
    """``/static`` and the docs page at ``/api/v1/docs`` (create the app with
    ``docs_url=None``)."""
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)
