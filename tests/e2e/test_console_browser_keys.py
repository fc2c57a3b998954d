"""The console's keys in a real browser (Chromium through Playwright) against the real
daemon, Mosquitto and the local SMS sink, pressed as an operator presses them: on the
queue j/k select and t takes the selected call (its device hears ``acknowledged``), and
a new snapshot leaves the keyboard's focus where it was; on a call's page t takes the
call, n goes to the note (the letters typed there are text, never keys) and Ctrl+Enter
saves it onto the timeline, r goes to the outcome and resolves nothing by itself."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page

from simulator.broker import MosquittoProcess
from simulator.phone_network.server import SmsSinkServer
from tests.e2e.test_console_browser import ROW, sign_in
from tests.e2e.test_console_browser_dispatch import call_update
from tests.e2e.test_end_to_end import TOKEN, device, press, running_dispatcher, until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FOCUSED_ID = "document.activeElement && document.activeElement.id"


async def test_an_operator_takes_notes_and_goes_to_resolve_from_the_keyboard(
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
        async with (
            device(mosquitto.url, topic_root, "dev-0001") as first,
            device(mosquitto.url, topic_root, "dev-0002") as second,
            httpx.AsyncClient(base_url=running.api, headers=TOKEN) as api,
        ):
            await press(first, topic_root, "dev-0001", {"ref": "k1", "type": "emergency"})
            call_id = (await until(first, "ack"))["call_id"]
            row = page.locator(ROW.format(call_id=call_id))
            await row.wait_for(timeout=2000)
            # The keys are shown; the selected row's take button says which key takes it.
            hint = await page.locator("#queue-keys").inner_text()
            assert "快捷键" in hint and "接选中的呼叫" in hint
            take = row.get_by_role("button", name="接单")
            assert await take.get_attribute("aria-keyshortcuts") == "t"

            # A new call rebuilds the rows; the focus stays on the button it was on.
            await take.focus()
            await press(second, topic_root, "dev-0002", {"ref": "k2", "type": "fall"})
            other_id = (await until(second, "ack"))["call_id"]
            other = page.locator(ROW.format(call_id=other_id))
            await other.wait_for(timeout=2000)
            still = await page.evaluate(
                "[document.activeElement.closest('tr')?.dataset.callId,"
                " document.activeElement.className]"
            )
            assert still == [call_id, "take primary"]

            # j selects the second row, t takes it: its device hears it at once.
            await page.evaluate("document.activeElement.blur()")
            await page.keyboard.press("j")
            assert await other.get_attribute("aria-current") == "true"
            assert await row.get_attribute("aria-current") is None
            await page.keyboard.press("t")
            assert (await call_update(second, "acknowledged"))["call_id"] == other_id
            await other.locator("text=已接单: 演示值班员").wait_for()
            assert "untaken" in (await row.get_attribute("class") or "")  # not the first

            # The call's page: t takes it.
            call_page = f"{base}/console/calls/{call_id}"
            await page.goto(call_page)
            hint = await page.locator("#call-keys").inner_text()
            for word in ("接单", "添加记录", "结案"):
                assert word in hint
            keyed = {
                "#take-form button": "t",
                "#note-text": "n",
                "#note-form button": "Control+Enter",
                "#outcome": "r",
            }
            for selector, keys in keyed.items():
                assert await page.locator(selector).get_attribute("aria-keyshortcuts") == keys
            await page.keyboard.press("t")
            assert (await call_update(first, "acknowledged"))["call_id"] == call_id
            await page.locator("#call-state", has_text="已接单").wait_for()
            # The page after the take: its keys are the deferred script's, there once
            # the page has loaded (the element above is there while it still parses).
            await page.wait_for_load_state("load")
            assert await page.locator("#take-form").count() == 0

            # n goes to the note without typing an n; what is typed there is text, not keys.
            await page.keyboard.press("n")
            assert await page.evaluate(FOCUSED_ID) == "note-text"
            assert await page.locator("#note-text").input_value() == ""
            await page.keyboard.type("老人头晕 rnt")
            assert await page.evaluate(FOCUSED_ID) == "note-text"
            assert await page.locator("#note-text").input_value() == "老人头晕 rnt"
            await page.keyboard.press("Control+Enter")
            await page.locator("#timeline-h + table", has_text="老人头晕 rnt").wait_for()
            await page.wait_for_load_state("load")  # the page after the note, its keys ready
            call = (await api.get(f"/calls/{call_id}")).json()
            notes = [(e["action"], e["detail"], e["channel"]) for e in call["timeline"]]
            assert ("note", "老人头晕 rnt", "console") in notes

            # r goes to the outcome; nothing is resolved until an outcome is chosen.
            await page.keyboard.press("r")
            assert await page.evaluate(FOCUSED_ID) == "outcome"
            assert await page.locator("#outcome").input_value() == ""
            await page.locator("#resolve-form").get_by_role("button", name="结案").click()
            assert await page.evaluate("document.getElementById('outcome').validity.valid") is False
            assert (await api.get(f"/calls/{call_id}")).json()["state"] == "acknowledged"
            await page.locator("#outcome").select_option("helped_by_phone")
            await page.keyboard.press("Tab")  # the resolve form's note, then its button
            assert await page.evaluate(FOCUSED_ID) == "resolve-note"
            await page.keyboard.press("Tab")
            await page.keyboard.press("Enter")
            assert (await call_update(first, "resolved"))["call_id"] == call_id
            await page.locator(".resolved").wait_for()
            # A resolved call has no actions: its keys are gone with them.
            assert await page.locator("#call-keys").count() == 0
            call = (await api.get(f"/calls/{call_id}")).json()
            assert (call["state"], call["outcome"]) == ("resolved", "helped_by_phone")
    assert blocked_requests == []  # everything came from the dispatcher itself
