"""Import of the exchange files' rows into the running registry (SQLite and PostgreSQL):
all or nothing with every bad row named, a dry run, twice is once, under 70 a
warning, GBK CSV and six-sheet workbooks, export and import again with no change,
in force at once, audited, and each supervisor within their area."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook

from dispatcher.adapters.files.exchange import SheetRow, read_records, write_records
from dispatcher.bootstrap import App
from dispatcher.core.directory import Staff
from dispatcher.core.registry.importing import SourceRow
from dispatcher.core.registry.rules import Refused, Why
from dispatcher.services.registry import AuditQuery
from dispatcher.services.registry_import import Imported, export_records, import_records
from tests.support.app import event

RESIDENT = {
    "id": "r-9001",
    "name": "钱淑珍",
    "birth_date": "1938-03-02",
    "address": "柳湖路 9 号 401",
    "community": "c-lh",
    "device_id": "dev-9001",
}


def rows(kind_rows: dict[str, list[dict[str, str]]]) -> dict[str, list[SourceRow]]:
    """Rows as a file gives them: a header on line 1, the records from line 2."""
    return {
        kind: [SourceRow(n, values) for n, values in enumerate(items, start=2)]
        for kind, items in kind_rows.items()
    }


def file_rows(path: Path, **kwargs: Any) -> dict[str, list[SourceRow]]:
    """What the CLI sends for a file: the columns it has, with their lines."""
    out: dict[str, list[SourceRow]] = {}
    for kind, found in read_records(path, **kwargs).items():
        assert all(isinstance(r, SheetRow) for r in found)
        out[kind] = [SourceRow(r.line, r.given, r.sheet) for r in found if isinstance(r, SheetRow)]
    return out


def zhao_min(app: App) -> Staff:  # the district's supervisor
    return app.directory.staff["zhao-min"]


async def run(app: App, sheets: dict[str, list[SourceRow]], **kw: Any) -> Imported:
    return await import_records(app.registry, zhao_min(app), sheets, **kw)


async def audit_count(app: App) -> int:
    page = await app.registry.audit(zhao_min(app), AuditQuery(limit=1))
    return page.total


async def test_a_new_resident_with_device_and_contacts_is_in_force_at_once(app: App) -> None:
    done = await run(
        app,
        rows(
            {
                "residents": [RESIDENT],
                "contacts": [
                    {"resident": "r-9001", "order": "1", "name": "钱伟", "relation": "儿子",
                     "phone": "+8613600009001"},
                    {"resident": "r-9001", "order": "2", "name": "李红", "relation": "邻居",
                     "phone": "+8613600009002", "key_holder": "yes"},
                ],
            }
        ),
    )  # fmt: skip
    assert not done.plan.errors, done.plan.errors
    assert done.applied
    assert done.plan.counts["residents"]["created"] == 1
    assert done.plan.counts["devices"]["created"] == 1
    assert done.plan.counts["contacts"]["created"] == 2
    resident = app.directory.residents["r-9001"]
    assert resident.device_id == "dev-9001" and [c.name for c in resident.contacts] == [
        "钱伟",
        "李红",
    ]
    # A press from her device opens a call with her address: no restart.
    ack = await app.intake.on_event(
        "dev-9001", "eldercall/v1/dev/dev-9001/event", event("i1", "emergency")
    )
    assert ack is not None and ack.call_id is not None
    view = await app.operations.get_call(ack.call_id)
    assert view.resident is not None and view.resident.address == RESIDENT["address"]
    # Audited: who and what, with the record after.
    page = await app.registry.audit(zhao_min(app), AuditQuery(record_id="r-9001"))
    (entry,) = page.items
    assert (entry.actor, entry.action, entry.before) == ("zhao-min", "import", None)
    assert entry.after is not None and len(entry.after["contacts"]) == 2
    devices = await app.registry.audit(
        zhao_min(app), AuditQuery(kind="device", record_id="dev-9001")
    )
    assert devices.total == 1
    history = await app.registry.device_history(zhao_min(app), "dev-9001")
    assert [h.resident_id for h in history] == ["r-9001"]


async def test_one_bad_row_among_good_ones_changes_nothing_and_every_bad_row_is_named(
    app: App,
) -> None:
    before = await audit_count(app)
    done = await run(
        app,
        rows(
            {
                "residents": [
                    RESIDENT,
                    RESIDENT | {"id": "r-9002", "device_id": "dev-9002", "community": "c-nowhere"},
                    RESIDENT | {"id": "r-9003", "device_id": "dev-9003", "birth_date": "1938-13-1"},
                    RESIDENT | {"id": "r-9004", "device_id": "dev-9001"},  # her device is 9001's
                ],
                "contacts": [
                    {"resident": "r-9999", "order": "1", "name": "无名", "relation": "儿子",
                     "phone": "+8613600009001"},
                    {"resident": "r-9001", "order": "1", "name": "钱伟", "relation": "儿子",
                     "phone": "138"},
                ],
            }
        ),
    )  # fmt: skip
    assert not done.applied
    found = {(e.kind, e.line, e.column) for e in done.plan.errors}
    assert found == {
        ("residents", 3, "community"),
        ("residents", 4, "birth_date"),
        ("residents", 5, "device_id"),
        ("contacts", 2, "resident"),
        ("contacts", 3, "phone"),
    }
    assert any("c-nowhere" in e.message for e in done.plan.errors)
    assert "r-9001" not in app.directory.residents  # the good row is not imported either
    assert await audit_count(app) == before
    assert "r-9001" not in {r.id for r in (await app.registry.records()).residents}


async def test_a_dry_run_says_what_would_change_and_changes_nothing(app: App) -> None:
    before = await audit_count(app)
    done = await run(
        app,
        rows({"residents": [RESIDENT, {"id": "r-0001", "room": "1201"}]}),
        dry_run=True,
    )
    assert not done.applied and not done.plan.errors
    assert done.plan.counts["residents"] == {"created": 1, "changed": 1, "unchanged": 0}
    update = next(c for c in done.plan.changes if c.record_id == "r-0001")
    assert update.action == "update" and update.fields["room"][1] == "1201"
    assert set(update.fields) == {"room"}  # the columns the file lacks are left alone
    assert "r-9001" not in app.directory.residents
    assert app.directory.residents["r-0001"].room != "1201"
    assert await audit_count(app) == before


async def test_twice_is_once_and_under_70_is_a_warning(app: App) -> None:
    young = RESIDENT | {"birth_date": "1960-05-01"}
    first = await run(app, rows({"residents": [young]}))
    assert first.applied and [w.column for w in first.plan.warnings] == ["birth_date"]
    assert "under 70" in first.plan.warnings[0].message
    assert "r-9001" in app.directory.residents
    after_first = await audit_count(app)
    second = await run(app, rows({"residents": [young]}))
    assert not second.applied and second.plan.changes == []
    assert second.plan.counts["residents"] == {"created": 0, "changed": 0, "unchanged": 1}
    assert second.plan.counts["devices"]["unchanged"] == 1
    assert await audit_count(app) == after_first


async def test_export_then_import_changes_nothing(app: App, tmp_path: Path) -> None:
    supervisor = zhao_min(app)
    await app.registry.create_provider(
        supervisor,
        {"id": "p-meals", "name": "江滨送餐", "service": "送餐", "area_id": "c-lh",
         "phone": "+8657188880009"},
    )  # fmt: skip
    exported = export_records(app.registry, supervisor)
    assert {len(exported[k]) > 0 for k in exported} == {True}
    book = tmp_path / "district.xlsx"
    write_records(book, exported)
    done = await run(app, file_rows(book))
    assert not done.plan.errors and done.plan.changes == [], done.plan.changes[:3]
    assert not done.applied
    assert sum(c["unchanged"] for c in done.plan.counts.values()) == sum(
        len(v) for v in exported.values()
    )


async def test_a_gbk_csv_with_chinese_headers_imports(app: App, tmp_path: Path) -> None:
    path = tmp_path / "老人.csv"
    path.write_bytes(
        (
            "老人编号,姓名,性别,出生日期,家庭住址,社区,设备号,重点对象\r\n"
            "r-0100,钱桂英,女,1939/4/5,江滨区柳湖路9号101室,c-lh,dev-0100,独居\r\n"
        ).encode("gbk")
    )
    done = await run(app, file_rows(path))
    assert done.applied, done.plan.errors
    r = app.directory.residents["r-0100"]
    assert (r.name, r.sex, r.key_resident.value, r.device_id) == (
        "钱桂英",
        "F",
        "living_alone",
        "dev-0100",
    )


async def test_a_workbook_with_all_six_sheets_imports(app: App, tmp_path: Path) -> None:
    book = Workbook()
    book.remove(book.active)
    sheets = {
        "areas": [["id", "level", "name", "parent"], ["c-new", "community", "新村社区", "s-hx"]],
        "providers": [
            ["id", "name", "service", "phone", "area"],
            ["p-fix", "江滨维修", "维修", "+8657188880010", "c-new"],
        ],
        "staff": [
            ["id", "name", "phone", "area", "role"],
            ["xin-yi", "辛怡", "+8613761409999", "c-new", "staff"],
        ],
        "residents": [
            ["老人编号", "姓名", "出生日期", "地址", "社区", "设备号"],
            ["r-0200", "周桂兰", "1940-01-02", "新村1号", "c-new", "dev-0200"],
        ],
        "devices": [["id", "resident", "model"], ["dev-0200", "r-0200", "YK-3"]],
        "contacts": [
            ["resident", "order", "name", "relation", "phone"],
            ["r-0200", "1", "周强", "儿子", "+8613600002001"],
        ],
    }
    for name, lines in sheets.items():
        sheet = book.create_sheet(name)
        for line in lines:
            sheet.append(line)
    path = tmp_path / "新村.xlsx"
    book.save(path)
    done = await run(app, file_rows(path))
    assert done.applied, done.plan.errors
    d = app.directory
    assert d.areas["c-new"].parent_id == "s-hx" and d.staff["xin-yi"].area_id == "c-new"
    assert d.residents["r-0200"].community_id == "c-new"
    assert app.registry.device(zhao_min(app), "dev-0200").fields.model == "YK-3"
    assert app.registry.provider(zhao_min(app), "p-fix").area_id == "c-new"
    assert d.residents["r-0200"].contacts[0].phone == "+8613600002001"
    assert all(v["created"] == 1 for v in done.plan.counts.values()), done.plan.counts


async def test_a_street_supervisor_cannot_import_into_another_street(app: App) -> None:
    sun_li = app.directory.staff["sun-li"]  # supervisor of street s-hx (c-lh, c-qs)
    sheets = rows(
        {"residents": [RESIDENT, RESIDENT | {"id": "r-9002", "device_id": "dev-9002",
                                             "community": "c-ml"}]}
    )  # fmt: skip
    done = await import_records(app.registry, sun_li, sheets)
    assert not done.applied
    assert [(e.line, "outside your area" in e.message) for e in done.plan.errors] == [(3, True)]
    assert "r-9001" not in app.directory.residents
    community_staff = app.directory.staff["huang-lei"]
    with pytest.raises(Refused) as refused:
        await import_records(app.registry, community_staff, rows({"residents": [RESIDENT]}))
    assert refused.value.why is Why.FORBIDDEN


async def test_a_new_device_for_a_resident_sends_her_old_one_to_stock(app: App) -> None:
    old_device = app.directory.residents["r-0001"].device_id
    done = await run(app, rows({"residents": [{"id": "r-0001", "device_id": "dev-new-1"}]}))
    assert done.applied, done.plan.errors
    assert app.directory.residents["r-0001"].device_id == "dev-new-1"
    stocked = app.registry.device(zhao_min(app), old_device)
    assert stocked.resident_id is None and stocked.active
    again = await run(app, rows({"residents": [{"id": "r-0001", "device_id": "dev-new-1"}]}))
    assert again.plan.changes == []


async def test_a_device_with_a_call_not_yet_resolved_is_not_moved(app: App) -> None:
    device = app.directory.residents["r-0001"].device_id
    other = app.directory.residents["r-0002"].device_id
    ack = await app.intake.on_event(
        device, f"eldercall/v1/dev/{device}/event", event("m1", "emergency")
    )
    assert ack is not None and ack.call_id is not None
    sheets = rows(
        {"devices": [{"id": other, "resident": ""}, {"id": device, "resident": "r-0002"}]}
    )
    done = await run(app, sheets)
    assert not done.applied
    (error,) = done.plan.errors
    assert (error.kind, error.line) == ("devices", 3)
    assert ack.call_id in error.message and "not yet resolved" in error.message
    assert app.directory.residents["r-0001"].device_id == device  # nothing moved
    assert app.directory.residents["r-0002"].device_id == other
