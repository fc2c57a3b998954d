"""The call page's protocol over HTTP, in process, on the real database (both backends)
and the production wiring: shown step by step, answered by form posts without script
(session and CSRF), each answer on the timeline with who and when, in Chinese or English."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from dispatcher.bootstrap import App, http_app
from dispatcher.core.calls import Outcome
from tests.entrypoints.test_console import open_call, sign_in
from tests.support.app import snapshot

HTML = {"accept": "text/html"}


@pytest.fixture
async def web(app: App) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=http_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as client:
        yield client


def step_html(page: str, step_id: str) -> str:
    found = re.search(rf'<li id="step-{step_id}".*?</li>', page, re.DOTALL)
    assert found is not None, f"no step {step_id} on the page"
    return found.group(0)


async def test_the_call_page_shows_the_default_protocol_step_by_step(
    app: App, web: httpx.AsyncClient
) -> None:
    call_id = await open_call(app, "dev-0001")
    await sign_in(web, "wang-fang")
    page = (await web.get(f"/console/calls/{call_id}", headers=HTML)).text
    assert "处置规程" in page and "紧急呼叫：老人能应答" in page and "已完成 0/8 步" in page
    identity = step_html(page, "identity")
    assert "核实身份" in identity
    assert 'name="answer" value="yes"' in identity and 'name="answer" value="no"' in identity
    family = step_html(page, "family")
    assert 'type="checkbox" name="answer" value="done"' in family
    assert 'name="unchecked" value="not_done"' in family
    # The other situations of an emergency can be picked.
    assert '<option value="silent">紧急呼叫：按了红键，无人应答</option>' in page


async def test_answering_posts_a_form_and_the_page_shows_who_and_when(
    app: App, web: httpx.AsyncClient
) -> None:
    call_id = await open_call(app, "dev-0001")
    csrf = await sign_in(web, "wang-fang")
    chosen = await web.post(
        f"/console/calls/{call_id}/protocol/situation", data={"csrf": csrf, "situation": "silent"}
    )
    assert chosen.status_code == 303
    assert chosen.headers["location"] == f"/console/calls/{call_id}#protocol"
    page = (await web.get(f"/console/calls/{call_id}", headers=HTML)).text
    # The silent emergency's decision defaults to sending someone, preselected.
    decision = step_html(page, "decision")
    assert "默认：派人上门" in decision
    assert 'value="send_someone" checked' in decision

    answered = await web.post(
        f"/console/calls/{call_id}/protocol/answer",
        data={
            "csrf": csrf,
            "protocol": "emergency.silent",
            "step": "call_home",
            "answer": "no_answer",
            "note": "响了12声",
        },
    )
    assert answered.status_code == 303
    # A checkbox left unticked: the form's "unchecked" value is the answer.
    unticked = await web.post(
        f"/console/calls/{call_id}/protocol/answer",
        data={
            "csrf": csrf,
            "protocol": "emergency.silent",
            "step": "community",
            "unchecked": "not_done",
        },
    )
    assert unticked.status_code == 303
    page = (await web.get(f"/console/calls/{call_id}", headers=HTML)).text
    call_home = step_html(page, "call_home")
    assert "✓ 无人接听 · 王芳 · 11-24 10:00:00 · console · 响了12声" in call_home
    assert 'value="no_answer" checked' in call_home
    assert "✓ 未完成 · 王芳" in step_html(page, "community")
    assert "已完成 2/6 步" in page
    call = await app.operations.get_call(call_id)
    assert [
        (e.actor, e.channel, e.detail) for e in call.timeline if e.action == "protocol_answer"
    ] == [
        ("wang-fang", "console", "emergency.silent call_home = no_answer · 响了12声"),
        ("wang-fang", "console", "emergency.silent community = not_done"),
    ]


async def test_the_english_switch_shows_the_protocol_in_english(
    app: App, web: httpx.AsyncClient
) -> None:
    call_id = await open_call(app, "dev-0001", kind="fall")
    await sign_in(web, "wang-fang")
    await web.get(f"/console/language?to=en&back=/console/calls/{call_id}")
    page = (await web.get(f"/console/calls/{call_id}", headers=HTML)).text
    assert "Protocol" in page and "0 of 8 steps done" in page
    assert "Tell her not to hurry to get up" in step_html(page, "do_not_lift")


async def test_a_forged_or_wrong_answer_changes_nothing(app: App, web: httpx.AsyncClient) -> None:
    call_id = await open_call(app, "dev-0001")
    csrf = await sign_in(web, "wang-fang")
    before = await snapshot(app)
    form = {"protocol": "emergency.voice", "step": "identity", "answer": "yes"}
    forged = await web.post(f"/console/calls/{call_id}/protocol/answer", data={**form, "csrf": "x"})
    assert forged.status_code == 403
    wrong = await web.post(
        f"/console/calls/{call_id}/protocol/answer", data={**form, "answer": "maybe", "csrf": csrf}
    )
    assert wrong.status_code == 422 and "maybe" in wrong.text
    assert await snapshot(app) == before


async def test_another_areas_call_and_a_resolved_one_are_refused(
    app: App, web: httpx.AsyncClient
) -> None:
    call_id = await open_call(app, "dev-0001")  # 柳湖
    csrf = await sign_in(web, "wu-hong")  # 青石's community staff
    form = {"protocol": "emergency.voice", "step": "identity", "answer": "yes", "csrf": csrf}
    hidden = await web.post(f"/console/calls/{call_id}/protocol/answer", data=form)
    assert hidden.status_code == 404

    await app.operations.resolve(call_id, "wang-fang", "api", Outcome.HELPED_BY_PHONE)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=http_app(app)), base_url="http://console.test"
    ) as operator:
        csrf = await sign_in(operator, "wang-fang")
        before = await snapshot(app)
        refused = await operator.post(
            f"/console/calls/{call_id}/protocol/answer", data={**form, "csrf": csrf}
        )
        assert refused.status_code == 409
        page = (await operator.get(f"/console/calls/{call_id}", headers=HTML)).text
    assert await snapshot(app) == before
    assert "呼叫已结束，规程不再记录。" in page
    assert "/protocol/answer" not in page
