"""The console's record pages over HTTP, in process, on the real database (both
backends) and the production wiring: the residents' list and search within the
viewer's area, a resident's record as the API's view shows it (ID card masked,
medical and access details withheld from community staff), editing through the
registry (a bad value is shown beside its field and changes nothing, a good one is
audited and in force at once), deleting refused while a call is open, devices moved
and retired, the staff list without tokens. The browser test is
tests/e2e/test_console_browser_records.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import pytest

from dispatcher.bootstrap import App, http_app
from dispatcher.services.registry import AuditQuery
from tests.entrypoints.test_console import open_call, sign_in

HTML = {"accept": "text/html"}
ZHAO_MIN_API = {"Authorization": "Bearer demo-zhao-min-91c6ab04"}  # district supervisor


@pytest.fixture
async def web(app: App) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=http_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as client:
        yield client


class _Form(HTMLParser):
    """The fields a browser would send for the form ``form_id``: inputs (checkboxes
    when ticked), the selected option of each select, textareas."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id, self.inside, self.fields = form_id, False, {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside or ("name" not in a and tag != "option"):
            return
        if tag == "input" and (a.get("type") != "checkbox" or "checked" in a):
            self.fields[a["name"]] = a.get("value", "yes" if a.get("type") == "checkbox" else "")
        elif tag == "select":
            self._select = a["name"]
            self.fields.setdefault(a["name"], "")
        elif tag == "option" and self._select and "selected" in a:
            self.fields[self._select] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = a["name"]
            self.fields[a["name"]] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.fields[self._textarea] += data


async def form_of(client: httpx.AsyncClient, url: str, form_id: str) -> dict[str, str]:
    page = await client.get(url, headers=HTML)
    assert page.status_code == 200, page.text
    parser = _Form(form_id)
    parser.feed(page.text)
    assert parser.fields, f"no form {form_id} on {url}"
    return parser.fields


def resident_ids(html: str) -> set[str]:
    return set(re.findall(r'data-resident-id="([^"]+)"', html))


async def test_the_list_searches_by_name_id_device_phone_and_community_and_pages(
    web: httpx.AsyncClient,
) -> None:
    await sign_in(web, "demo-operator")
    everyone = await web.get("/console/residents", headers=HTML)
    assert everyone.status_code == 200
    assert len(resident_ids(everyone.text)) == 25 and "共 40 条" in everyone.text
    assert 'href="/console/residents?q=&amp;community=&amp;offset=25"' in everyone.text
    second = await web.get("/console/residents", params={"offset": 25}, headers=HTML)
    assert len(resident_ids(second.text)) == 15
    assert resident_ids(second.text).isdisjoint(resident_ids(everyone.text))
    for q, expected in [
        ("张桂兰", {"r-0001"}),  # name
        ("r-0013", {"r-0013"}),  # id
        ("dev-0011", {"r-0011"}),  # device
        ("6411 0231", {"r-0001"}),  # home phone, as typed
    ]:
        found = await web.get("/console/residents", params={"q": q}, headers=HTML)
        assert resident_ids(found.text) == expected, q
    qingshi = await web.get("/console/residents", params={"q": "青石社区"}, headers=HTML)
    by_select = await web.get("/console/residents", params={"community": "c-qs"}, headers=HTML)
    assert resident_ids(qingshi.text) == resident_ids(by_select.text)
    assert resident_ids(by_select.text) == {f"r-00{n}" for n in range(11, 21)}
    assert (
        'href="tel:+862164110231"'
        in (await web.get("/console/residents", params={"q": "张桂兰"}, headers=HTML)).text
    )


async def test_community_staff_see_only_their_community_and_not_anothers_record(
    web: httpx.AsyncClient,
) -> None:
    await sign_in(web, "wu-hong")  # 青石 (c-qs) community staff
    listed = await web.get("/console/residents", headers=HTML)
    assert resident_ids(listed.text) == {f"r-00{n}" for n in range(11, 21)}
    assert "张桂兰" not in listed.text
    searched = await web.get("/console/residents", params={"q": "张桂兰"}, headers=HTML)
    assert resident_ids(searched.text) == set()
    page = await web.get("/console/residents/r-0001", headers=HTML)
    assert page.status_code == 404 and "张桂兰" not in page.text
    assert (await web.get("/console/devices/dev-0001", headers=HTML)).status_code == 404
    devices = await web.get("/console/devices", headers=HTML)
    assert "dev-0011" in devices.text and "dev-0001<" not in devices.text
    staff = await web.get("/console/staff", headers=HTML)
    assert set(re.findall(r'data-staff-id="([^"]+)"', staff.text)) == {"wu-hong"}
    assert 'href="tel:+8613761400303"' in staff.text


async def test_a_residents_record_withholds_from_community_staff_what_the_api_does(
    app: App, web: httpx.AsyncClient
) -> None:
    await sign_in(web, "ma-lin")  # 柳湖 (c-lh) community staff
    page = await web.get("/console/residents/r-0001", headers=HTML)
    assert page.status_code == 200 and "张桂兰" in page.text
    assert "硝苯地平" not in page.text and "您的角色无权查看此项" in page.text
    assert "310105193803121228" not in page.text and "310105********1228" in page.text
    assert 'href="tel:+8613601110001"' in page.text  # the contacts, in order
    assert page.text.index("+8613601110001") < page.text.index("+8613601110002")
    assert "dev-0001" in page.text and 'id="device-history"' in page.text
    # Neither the forms nor the audit for a role that may not change the record.
    assert 'id="edit-resident"' not in page.text and 'id="delete-form"' not in page.text
    assert 'id="audit"' not in page.text
    edit = await web.get("/console/residents/r-0001/edit", headers=HTML)
    assert edit.status_code == 403

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=http_app(app)), base_url="http://console.test"
    ) as operator:
        await sign_in(operator, "demo-operator")
        full = await operator.get("/console/residents/r-0001", headers=HTML)
    assert "硝苯地平" in full.text and "310105********1228" in full.text
    assert 'id="edit-resident"' not in full.text  # operators look residents up


async def test_a_bad_value_is_shown_beside_its_field_and_changes_nothing(
    app: App, web: httpx.AsyncClient
) -> None:
    await sign_in(web, "zhao-min")
    before = app.registry.resident(app.directory.staff["zhao-min"], "r-0001")
    form = await form_of(web, "/console/residents/r-0001/edit", "resident-form")
    assert form["address"] == before.address and form["id_card"] == ""
    bad = await web.post(
        "/console/residents/r-0001", data={**form, "phone": "138", "address": "新地址"}
    )
    assert bad.status_code == 422
    assert 'id="phone-error"' in bad.text and "is not an E.164 number" in bad.text
    assert 'value="新地址"' in bad.text  # the form as it was sent, to correct
    bad_contact = await web.post(
        "/console/residents/r-0001", data={**form, "contact-2-phone": "12"}
    )
    assert bad_contact.status_code == 422 and 'id="contact-2-phone-error"' in bad_contact.text
    forged = await web.post("/console/residents/r-0001", data={**form, "csrf": "forged"})
    assert forged.status_code == 403
    assert app.registry.resident(app.directory.staff["zhao-min"], "r-0001") == before
    entries = await app.registry.audit(
        app.directory.staff["zhao-min"], AuditQuery(record_id="r-0001")
    )
    assert [e.action for e in entries.items] == ["seed"]


async def test_an_edit_is_audited_and_in_force_at_once(app: App, web: httpx.AsyncClient) -> None:
    call_id = await open_call(app, "dev-0001")
    await sign_in(web, "sun-li")  # 河西 street supervisor: 柳湖 is hers
    staff = app.directory.staff["sun-li"]
    # Her first contact is also rung (a voice call): the form does not show that, and
    # sending the form back must keep it.
    first, *others = app.registry.resident(staff, "r-0001").contacts
    methods = [{"kind": "voice", "number": first.phone}, {"kind": "sms", "number": first.phone}]
    contacts = [
        {**first.model_dump(), "contact_methods": methods},
        *(o.model_dump() for o in others),
    ]
    await app.registry.update_resident(staff, "r-0001", {"contacts": contacts})
    before = app.registry.resident(staff, "r-0001")
    assert [m.kind for m in before.contacts[0].contact_methods] == ["voice", "sms"]
    form = await form_of(web, "/console/residents/r-0001/edit", "resident-form")
    saved = await web.post(
        "/console/residents/r-0001", data={**form, "address": "江滨区柳湖路90弄1号101室"}
    )
    assert saved.status_code == 303 and saved.headers["location"] == "/console/residents/r-0001"
    after = app.registry.resident(staff, "r-0001")
    # Only the address: the rest of the form went back as it came (the ID card, the
    # contacts with their ways to be reached).
    assert after == before.model_copy(update={"address": "江滨区柳湖路90弄1号101室"})
    call = await web.get(f"/console/calls/{call_id}", headers=HTML)
    assert "江滨区柳湖路90弄1号101室" in call.text
    api = await web.get("/api/v1/residents/r-0001", headers=ZHAO_MIN_API)
    assert api.json()["address"] == "江滨区柳湖路90弄1号101室"
    record = await web.get("/console/residents/r-0001", headers=HTML)
    audit = record.text[record.text.index('id="audit"') :]
    assert "孙丽" in audit and "江滨区柳湖路88弄3号502室" in audit
    assert "江滨区柳湖路90弄1号101室" in audit and "修改" in audit
    assert f'href="/console/calls/{call_id}"' in record.text  # her recent calls


async def test_contacts_are_edited_in_order(app: App, web: httpx.AsyncClient) -> None:
    await sign_in(web, "zhao-min")
    form = await form_of(web, "/console/residents/r-0002/edit", "resident-form")
    kept = {k: v for k, v in form.items() if not k.startswith("contact-")}
    saved = await web.post(
        "/console/residents/r-0002",
        data={
            **kept,
            "contact-1-name": "李明",
            "contact-1-relation": "儿子",
            "contact-1-phone": "+8613601119999",
            "contact-1-key_holder": "yes",
            "contact-2-name": "王丽",
            "contact-2-relation": "邻居",
            "contact-2-phone": "+8613601118888",
        },
    )
    assert saved.status_code == 303, saved.text
    r = app.directory.residents["r-0002"]
    assert [(c.name, c.phone, c.key_holder) for c in r.contacts] == [
        ("李明", "+8613601119999", True),
        ("王丽", "+8613601118888", False),
    ]


async def test_a_resident_with_an_open_call_is_not_deleted(
    app: App, web: httpx.AsyncClient
) -> None:
    await open_call(app, "dev-0001")
    csrf = await sign_in(web, "zhao-min")
    refused = await web.post("/console/residents/r-0001/delete", data={"csrf": csrf})
    assert refused.status_code == 409
    assert 'id="delete-error"' in refused.text and "has a call not yet resolved" in refused.text
    assert "r-0001" in app.directory.residents
    gone = await web.post("/console/residents/r-0002/delete", data={"csrf": csrf})
    assert gone.status_code == 303 and "r-0002" not in app.directory.residents
    listed = await web.get(gone.headers["location"], headers=HTML)
    assert "已删除老人档案 r-0002" in listed.text
    assert (await web.get("/console/residents/r-0002", headers=HTML)).status_code == 404


async def test_a_supervisor_creates_a_resident_and_a_bad_one_names_its_field(
    app: App, web: httpx.AsyncClient
) -> None:
    await sign_in(web, "sun-li")
    form = await form_of(web, "/console/residents/new", "resident-form")
    values = {
        **form,
        "id": "r-9001",
        "name": "钱淑珍",
        "birth_date": "1938-03-02",
        "address": "柳湖路 9 号",
        "community_id": "c-lh",
        "contact-1-name": "钱明",
        "contact-1-relation": "儿子",
        "contact-1-phone": "+8613601117777",
    }
    bad = await web.post("/console/residents", data={**values, "birth_date": "1938-02-30"})
    assert bad.status_code == 422 and 'id="birth_date-error"' in bad.text
    assert "r-9001" not in app.directory.residents
    made = await web.post("/console/residents", data=values)
    assert made.status_code == 303 and made.headers["location"] == "/console/residents/r-9001"
    assert app.directory.residents["r-9001"].contacts[0].phone == "+8613601117777"
    again = await web.post("/console/residents", data=values)
    assert again.status_code == 409 and 'id="id-error"' in again.text


async def test_a_device_is_moved_and_retired_with_its_history(
    app: App, web: httpx.AsyncClient
) -> None:
    operator = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=http_app(app)), base_url="http://console.test"
    )
    async with operator:
        op_csrf = await sign_in(operator, "demo-operator")
        refused = await operator.post(
            "/console/devices/dev-0002/move", data={"resident_id": "", "csrf": op_csrf}
        )
        assert refused.status_code == 403
    assert app.registry.device_for("r-0002") is not None

    csrf = await sign_in(web, "zhao-min")
    found = await web.get("/console/devices", params={"q": "李秀英"}, headers=HTML)
    assert re.findall(r'data-device-id="([^"]+)"', found.text) == ["dev-0002"]
    taken = await web.post(
        "/console/devices/dev-0002/move", data={"resident_id": "r-0001", "csrf": csrf}
    )
    assert taken.status_code == 409 and 'id="resident_id-error"' in taken.text
    assert "already has device dev-0001" in taken.text
    stock = await web.post("/console/devices/dev-0002/move", data={"resident_id": "", "csrf": csrf})
    assert stock.status_code == 303
    back = await web.post(
        "/console/devices/dev-0002/move", data={"resident_id": "r-0002", "csrf": csrf}
    )
    assert back.status_code == 303
    page = await web.get("/console/devices/dev-0002", headers=HTML)
    start = page.text.index('id="device-history"')
    history = page.text[start : page.text.index("</table>", start)]
    # Two stretches for her: until it went to stock, and again from now.
    assert history.count("<tr><td>") == 2 and history.count("李秀英") == 2
    assert history.count("至今") == 1
    assert "调拨" in page.text[page.text.index('id="audit"') :]
    retired = await web.post("/console/devices/dev-0002/retire", data={"csrf": csrf})
    assert retired.status_code == 303
    assert app.registry.device_for("r-0002") is None
    page = await web.get("/console/devices/dev-0002", headers=HTML)
    assert "已报废" in page.text and 'id="move-form"' not in page.text
    listed = await web.get("/console/devices", headers=HTML)
    assert "dev-0002" not in listed.text
    with_retired = await web.get("/console/devices", params={"retired": "true"}, headers=HTML)
    assert 'data-device-id="dev-0002"' in with_retired.text


async def test_the_staff_list_shows_phones_and_roles_never_a_token(
    web: httpx.AsyncClient,
) -> None:
    await sign_in(web, "sun-li")
    page = await web.get("/console/staff", headers=HTML)
    ids = set(re.findall(r'data-staff-id="([^"]+)"', page.text))
    assert ids == {"sun-li", "huang-lei", "ma-lin", "wu-hong"}  # 河西 and its communities
    assert "demo-" not in page.text and "password" not in page.text
    assert 'href="tel:+8613761400301"' in page.text and "社区工作人员" in page.text
    only = await web.get("/console/staff", params={"area": "c-qs"}, headers=HTML)
    assert set(re.findall(r'data-staff-id="([^"]+)"', only.text)) == {"wu-hong"}


async def test_the_nav_links_the_record_pages_in_both_languages(web: httpx.AsyncClient) -> None:
    await sign_in(web, "zhao-min")
    queue = await web.get("/console/", headers=HTML)
    assert 'href="/console/residents">老人档案<' in queue.text
    await web.get("/console/language?to=en&back=/console/residents")
    english = await web.get("/console/residents", headers=HTML)
    assert 'href="/console/residents">Residents<' in english.text and "of 40" in english.text
    for path, words in [
        ("/console/residents/r-0001", "Emergency contacts"),
        ("/console/devices", "In service"),
        ("/console/devices/dev-0001", "Whom it served"),
        ("/console/residents/r-0001/edit", "Emergency contacts (called in this order)"),
        ("/console/residents/new", "New resident"),
        ("/console/staff", "Role"),
    ]:
        page = await web.get(path, headers=HTML)
        assert page.status_code == 200 and words in page.text, path
