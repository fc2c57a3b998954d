"""The console's accessibility in a real browser (Chromium through Playwright) against the
real daemon, Mosquitto and the local SMS sink, on the queue and on a call's page (open,
then taken), in Chinese and in English: every control has an accessible name (read from
Chromium's own accessibility tree), the Tab key goes through the page in its order with
a visible focus ring at every stop, an amber or red waiting time has its word beside
the colour, and a phone's width needs no sideways scrolling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page

from simulator.broker import MosquittoProcess
from simulator.phone_network.server import SmsSinkServer
from tests.e2e.test_console_browser import ROW, sign_in
from tests.e2e.test_end_to_end import device, press, running_dispatcher, until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# The roles of what a person operates: each needs a name a screen reader can say.
CONTROL_ROLES = frozenset(
    {"button", "textbox", "combobox", "checkbox", "radio", "spinbutton", "link", "listbox"}
)
VISIBLE_CONTROLS = """() => [
  ...document.querySelectorAll("input:not([type=hidden]), select, textarea, button"),
].filter((el) => el.checkVisibility()).length"""
# What sticks out past a phone's width: the innermost such elements.
TOO_WIDE = """() => {
  const out = (el) => el.getBoundingClientRect().right > window.innerWidth + 1;
  return [...document.querySelectorAll("body *")]
    .filter((el) => out(el) && ![...el.children].some(out))
    .map((el) => `${el.tagName.toLowerCase()}#${el.id}.${el.className} ${el.textContent.trim()}`)
    .map((what) => what.slice(0, 60));
}"""
FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const text = (el.textContent || el.value || "").trim().slice(0, 24);
  return {
    index: [...document.querySelectorAll("*")].indexOf(el),
    what: `${el.tagName.toLowerCase()}#${el.id} ${text}`,
    outline: style.outlineStyle,
    width: parseFloat(style.outlineWidth),
  };
}"""


async def controls(page: Page) -> list[tuple[str, str, str]]:
    """(role, accessible name, element) of every control in the page's accessibility tree."""
    cdp = await page.context.new_cdp_session(page)
    try:
        tree = await cdp.send("Accessibility.getFullAXTree")
        found = []
        for node in tree["nodes"]:
            role = node.get("role", {}).get("value")
            if node.get("ignored") or role not in CONTROL_ROLES:
                continue
            name = str(node.get("name", {}).get("value") or "").strip()
            element = ""
            if not name and "backendDOMNodeId" in node:
                described = await cdp.send(
                    "DOM.describeNode", {"backendNodeId": node["backendDOMNodeId"]}
                )
                element = f"{described['node']['nodeName']} {described['node'].get('attributes')}"
            found.append((role, name, element))
        return found
    finally:
        await cdp.detach()


async def check_names(page: Page) -> None:
    found = await controls(page)
    unnamed = [(role, element) for role, name, element in found if not name]
    assert unnamed == []
    # The tree did hold the page's controls (not, say, an empty tree before loading).
    operated = [f for f in found if f[0] != "link"]
    assert len(operated) >= await page.evaluate(VISIBLE_CONTROLS) > 0


async def check_tab_order(page: Page) -> list[dict[str, Any]]:
    """Tab from the top of the page to its end: each stop after the one before in the
    page's order, each with a focus ring."""
    await page.evaluate("document.activeElement && document.activeElement.blur()")
    await page.evaluate("window.scrollTo(0, 0)")
    stops: list[dict[str, Any]] = []
    for _ in range(200):
        await page.keyboard.press("Tab")
        stop = await page.evaluate(FOCUSED)
        if stop is None or any(s["index"] == stop["index"] for s in stops):
            break  # past the last stop: the browser's own controls, or round again
        stops.append(stop)
    else:
        pytest.fail("Tab never came to the end of the page")
    assert [s["index"] for s in stops] == sorted(s["index"] for s in stops), stops
    unringed = [s["what"] for s in stops if s["outline"] == "none" or s["width"] < 2]
    assert unringed == []
    return stops


async def check_phone_width(page: Page) -> None:
    await page.set_viewport_size({"width": 390, "height": 844})
    try:
        wide = await page.evaluate(TOO_WIDE)
        assert wide == [], "\n".join(wide)
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        await page.set_viewport_size({"width": 1280, "height": 900})


async def waited_word(page: Page, call_id: str, seconds: int, colour: str) -> str:
    """The call's waiting-time cell once the page counts ``seconds`` since it opened (the
    page's clock moved on; the server decides nothing here, only the page shows it)."""
    cell = f"{ROW.format(call_id=call_id)} .waited"
    await page.wait_for_function(
        """([callId, seconds, cell, colour]) => {
          const state = window.eldercallConsole;
          const row = state.snapshot.rows.find((r) => r.call_id === callId);
          state.offsetMs = Date.parse(row.opened_at) + seconds * 1000 - Date.now();
          return document.querySelector(cell).classList.contains(colour);
        }""",
        arg=[call_id, seconds, cell, colour],
    )
    return await page.locator(cell).inner_text()


async def test_the_queue_and_a_calls_page_can_be_worked_by_everyone(
    tmp_path: Path,
    mosquitto: MosquittoProcess,
    sms_sink: SmsSinkServer,
    topic_root: str,
    page: Page,
    blocked_requests: list[str],
) -> None:
    async with running_dispatcher(tmp_path, mosquitto, sms_sink, topic_root) as running:
        base = running.api.removesuffix("/api/v1")
        await page.set_viewport_size({"width": 1280, "height": 900})
        await sign_in(page, base, "demo-operator")
        async with device(mosquitto.url, topic_root, "dev-0001") as dev:
            await press(dev, topic_root, "dev-0001", {"ref": "a1", "type": "emergency"})
            call_id = (await until(dev, "ack"))["call_id"]
        row = page.locator(ROW.format(call_id=call_id))
        await row.wait_for(timeout=2000)

        # The queue: named controls, Tab in order with a ring, the colours' words.
        await check_names(page)
        stops = await check_tab_order(page)
        assert stops[0]["what"].startswith("a# 跳到正文")  # the skip link comes first
        assert any("接单" in s["what"] for s in stops)
        assert "较久" in await waited_word(page, call_id, 100, "amber")
        assert "过久" in await waited_word(page, call_id, 200, "red")
        await check_phone_width(page)

        # A call's page, open and then taken (the take form, then the hand-over form).
        call_page = f"{base}/console/calls/{call_id}"
        await page.goto(call_page)
        await check_names(page)
        stops = await check_tab_order(page)
        whats = " | ".join(s["what"] for s in stops)
        for control in ("textarea#note-text", "select#outcome", "select#situation"):
            assert control in whats
        await check_phone_width(page)
        await page.get_by_role("button", name="接单").click()
        await page.wait_for_url(call_page)
        await page.locator("#hand-over-form").wait_for()
        await check_names(page)
        await check_tab_order(page)

        # The same in English, by the switch.
        await page.get_by_role("link", name="English").click()
        await page.wait_for_url(call_page)
        assert await page.locator("html").get_attribute("lang") == "en"
        assert "Keys" in await page.locator("#call-keys").inner_text()
        await check_names(page)
        await check_phone_width(page)
    assert blocked_requests == []  # everything came from the dispatcher itself
