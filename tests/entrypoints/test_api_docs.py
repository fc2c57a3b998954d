"""The API docs page (/api/v1/docs) works on a closed network: Swagger UI and everything
else it loads comes from the dispatcher's own /static, and it renders in a browser that
may reach nothing but 127.0.0.1."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Page, expect

from dispatcher.entrypoints.http.app import ApiServer, create_app
from tests.support.fake_ops import sample_ops
from tests.support.ports import free_port

DOCS = "/api/v1/docs"
# Every URL the page's HTML names: attributes, and the spec's url in the Swagger UI call.
REFERENCE = re.compile(r"""(?:\b(?:src|href)\s*=\s*|\burl:\s*)["']([^"']+)["']""")
CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    ops = sample_ops()
    transport = httpx.ASGITransport(app=create_app(ops, ops.clock))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        yield c


@pytest.mark.timeout(30)
async def test_the_docs_page_loads_nothing_from_the_network(client: httpx.AsyncClient) -> None:
    r = await client.get(DOCS)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "SwaggerUIBundle" in html
    assert not re.search(r"""["'(](?:https?:)?//""", html), "an absolute URL in the page"
    # No badge image from validator.swagger.io either.
    assert '"validatorUrl": null' in html

    referenced = REFERENCE.findall(html)
    assert sorted(referenced) == [
        "/api/v1/openapi.json",
        "/static/swagger-ui/favicon-32x32.png",
        "/static/swagger-ui/swagger-ui-bundle.js",
        "/static/swagger-ui/swagger-ui.css",
    ]
    for url in referenced:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        if url.startswith("/static/"):
            suffix = url[url.rindex(".") :]
            kind = asset.headers["content-type"].split(";")[0].strip()
            assert kind in CONTENT_TYPES[suffix], (url, kind)
            assert len(asset.content) > 100, url
    spec = (await client.get("/api/v1/openapi.json")).json()
    assert "/api/v1/calls" in spec["paths"]
    assert DOCS not in spec["paths"]


async def test_static_files_outside_the_folder_are_not_served(client: httpx.AsyncClient) -> None:
    for path in ("/static/swagger-ui/nope.js", "/static/../app.py", "/static/%2e%2e/app.py"):
        r = await client.get(path)
        assert r.status_code == 404, path


@pytest.mark.timeout(60)
async def test_swagger_ui_renders_the_api_offline(page: Page, blocked_requests: list[str]) -> None:
    ops = sample_ops()
    server = ApiServer(create_app(ops, ops.clock), "127.0.0.1", free_port())
    await server.start()
    try:
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        answer = await page.goto(f"{server.base_url}{DOCS}")
        assert answer is not None and answer.ok
        calls = page.locator(".opblock").filter(
            has=page.locator('.opblock-summary-path[data-path="/api/v1/calls"]')
        )
        await expect(calls.first).to_be_visible()
        await expect(calls.first).to_contain_text("GET")
        assert blocked_requests == []
        assert errors == []
        # The guard itself works: a request off the machine is aborted, never sent.
        outcome = await page.evaluate(
            "fetch('https://example.invalid/x').then(() => 'sent', () => 'aborted')"
        )
        assert outcome == "aborted"
        assert blocked_requests == ["https://example.invalid/x"]
    finally:
        await server.stop()
