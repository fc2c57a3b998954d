"""Fixtures: a headless Chromium through Playwright's async API, for tests of pages.

- ``browser``: Debian's Chromium (``/usr/bin/chromium``: ``make system-deps``), never a
  browser of Playwright's own (no ``playwright install``: nothing is downloaded here).
  One per test: the suite's event loops are per test (pytest-asyncio's
  ``asyncio_default_fixture_loop_scope = "function"``) and Playwright's objects belong
  to the loop that made them; starting it takes about a second.
- ``page``: a page in a fresh context (no cookies or storage from another test). Every
  Playwright step waits at most ``STEP_TIMEOUT_MS``, so a hung page fails the test. The
  context aborts every request to a host other than 127.0.0.1: what a page needs must
  come from the dispatcher itself, as on the closed network it runs on.
- ``blocked_requests``: the URLs that ``page`` aborted, in order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # The console's alarm sound plays without a click first: a headless test has no
    # user to give the gesture Chromium's autoplay policy asks for.
    "--autoplay-policy=no-user-gesture-required",
]
LAUNCH_TIMEOUT_MS = 30_000
STEP_TIMEOUT_MS = 5_000
# A whole page load (the daemon renders it, Chromium runs it) on the 2-core machine
# while the rest of the suite runs beside it: seen at over 5 s.
NAVIGATION_TIMEOUT_MS = 15_000
ALLOWED_HOSTS = frozenset({"127.0.0.1"})


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} not found: the browser tests run Debian's Chromium "
            "(apt-get install chromium, or `make system-deps`)",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            timeout=LAUNCH_TIMEOUT_MS,
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def blocked_requests() -> list[str]:
    return []


async def loopback_context(browser: Browser, blocked: list[str]) -> BrowserContext:
    """A fresh context whose requests to any host but 127.0.0.1 are aborted (and
    recorded in ``blocked``); for a test that needs a second person's screen."""
    context = await browser.new_context()
    context.set_default_timeout(STEP_TIMEOUT_MS)
    context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)

    async def loopback_only(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname in ALLOWED_HOSTS:
            await route.continue_()
        else:
            blocked.append(url)
            await route.abort("internetdisconnected")

    await context.route("**/*", loopback_only)
    return context


@pytest.fixture
async def page(browser: Browser, blocked_requests: list[str]) -> AsyncIterator[Page]:
    context = await loopback_context(browser, blocked_requests)
    try:
        yield await context.new_page()
    finally:
        await context.close()
