"""Record files from community offices: GBK and UTF-8 CSV, Excel workbooks, Chinese
column names and values, and the errors a broken file gets."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from dispatcher.adapters.files.directory_files import DataFileError, load_directory
from dispatcher.adapters.files.exchange import (
    KINDS,
    OPTIONAL,
    REQUIRED,
    SheetRow,
    kind_of,
    read_records,
    records_of,
    write_records,
    write_template,
)
from dispatcher.core.registry import rows

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "data"
OFFICE_CSV = (
    "老人编号,姓名,性别,出生日期,家庭住址,社区,设备号,家庭电话,重点对象\n"
    "r-0100,钱桂英,女,1939/4/5,江滨区柳湖路9号101室,c-lh,dev-0100,+862164110999,独居\n"
    "r-0101,孙德才,男,1941年11月2日,江滨区柳湖路9号102室,c-lh,dev-0101,,\n"
)


def test_a_gbk_csv_from_chinese_excel_reads_under_canonical_names(tmp_path: Path) -> None:
    path = tmp_path / "老人.csv"
    path.write_bytes(OFFICE_CSV.replace("\n", "\r\n").encode("gbk"))
    rows = read_records(path)["residents"]
    first, second = (r.values for r in rows)
    assert first["name"] == "钱桂英" and first["sex"] == "F" and first["birth_date"] == "1939-04-05"
    assert first["key_resident"] == "living_alone" and first["community"] == "c-lh"
    assert second["sex"] == "M" and second["birth_date"] == "1941-11-02"
    assert second["key_resident"] == "" and second["building"] == ""  # optional, blank
    assert [r.line for r in rows] == [2, 3]


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_utf8_with_or_without_a_byte_order_mark(tmp_path: Path, bom: bytes) -> None:
    path = tmp_path / "residents.csv"
    path.write_bytes(bom + OFFICE_CSV.encode("utf-8"))
    assert read_records(path)["residents"][0].values["name"] == "钱桂英"


def test_a_given_encoding_is_used_and_a_wrong_one_named(tmp_path: Path) -> None:
    path = tmp_path / "residents.csv"
    path.write_bytes(OFFICE_CSV.encode("gbk"))
    assert read_records(path, encoding="gb18030")["residents"][1].values["name"] == "孙德才"
    with pytest.raises(DataFileError, match=r"residents.csv:1: not utf-8 text"):
        read_records(path, encoding="utf-8")
    with pytest.raises(DataFileError, match="unknown encoding 'klingon'"):
        read_records(path, encoding="klingon")


def test_an_unknown_or_missing_column_is_named_with_the_ones_accepted(tmp_path: Path) -> None:
    path = tmp_path / "residents.csv"
    path.write_text("姓名,鞋码,出生日期\n钱桂英,38,1939-04-05\n", encoding="utf-8")
    with pytest.raises(DataFileError) as caught:
        read_records(path)
    message = str(caught.value)
    assert "residents.csv:1: unknown columns 鞋码" in message
    assert "missing columns id, address, community, device_id" in message
    assert "the residents columns are id, name, birth_date" in message


def test_a_csv_must_say_which_records_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "export-2026.csv"
    path.write_text(OFFICE_CSV, encoding="utf-8")
    with pytest.raises(DataFileError, match="which records"):
        read_records(path)
    assert len(read_records(path, kind="residents")["residents"]) == 2


def test_a_line_with_too_many_fields_is_named(tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text(
        "resident,order,name,relation,phone\nr-0001,1,张伟,儿子,+8613601110001,多余\n",
        encoding="utf-8",
    )
    with pytest.raises(DataFileError, match=r"contacts.csv:2: 6 fields where the header has 5"):
        read_records(path)


def test_a_workbook_with_chinese_sheets_numbers_and_dates(tmp_path: Path) -> None:
    book = Workbook()
    notes = book.active
    notes.title = "说明"  # the office's own sheet: left alone
    notes.append(["这是柳湖社区的名单"])
    residents = book.create_sheet("老人")
    residents.append(["老人编号", "姓名", "出生日期", "地址", "社区", "设备号", "手机"])
    residents.append(
        ["r-0100", "钱桂英", datetime(1939, 4, 5), "柳湖路9号", "c-lh", "dev-0100", None]
    )
    contacts = book.create_sheet("紧急联系人")
    contacts.append(["老人编号", "序号", "姓名", "关系", "电话", "持有钥匙"])
    contacts.append(["r-0100", 1.0, "钱伟", "儿子", "+8613601119999", "是"])
    path = tmp_path / "柳湖.xlsx"
    book.save(path)

    sheets = read_records(path)
    assert set(sheets) == {"residents", "contacts"}
    resident = sheets["residents"][0]
    assert resident.values["birth_date"] == "1939-04-05" and resident.values["mobile"] == ""
    assert resident.where.endswith("柳湖.xlsx:老人:2")
    contact = sheets["contacts"][0].values
    assert contact["order"] == "1" and contact["key_holder"] == "yes"


def test_a_workbook_without_a_sheet_of_records_is_refused(tmp_path: Path) -> None:
    book = Workbook()
    book.active.title = "Sheet1"
    path = tmp_path / "empty.xlsx"
    book.save(path)
    with pytest.raises(DataFileError, match="no sheet named after a kind of record"):
        read_records(path)


def test_a_file_that_is_not_a_workbook_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "residents.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataFileError, match=r"not an Excel \.xlsx workbook"):
        read_records(path)


def test_written_files_read_back_the_same(tmp_path: Path) -> None:
    records = {
        "residents": [
            {
                "id": "r-0100",
                "name": "钱桂英",
                "birth_date": "1939-04-05",
                "address": "柳湖路9号",
                "community": "c-lh",
                "device_id": "dev-0100",
                "phone": "+862164110999",
                "id_card": "310105193904051234",
            }
        ],
        "contacts": [
            {"resident": "r-0100", "order": "1", "name": "钱伟", "relation": "儿子",
             "phone": "+8613601119999", "key_holder": "yes"}
        ],
    }  # fmt: skip
    book = tmp_path / "out.xlsx"
    write_records(book, records)
    assert load_workbook(book).sheetnames == list(KINDS)
    back = read_records(book)
    assert back["residents"][0].values["id_card"] == "310105193904051234"  # text, not 3.1e17
    assert back["contacts"][0].values["key_holder"] == "yes"
    assert back["areas"] == []

    csv_path = tmp_path / "residents.csv"
    write_records(csv_path, {"residents": records["residents"]})
    assert csv_path.read_bytes().startswith(b"\xef\xbb\xbf")  # Excel opens it as UTF-8
    assert read_records(csv_path)["residents"][0].values == back["residents"][0].values


def test_a_csv_of_two_kinds_cannot_be_written(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="one kind of record"):
        write_records(tmp_path / "residents.csv", {"residents": [], "contacts": []})


def test_kind_names() -> None:
    assert kind_of("Residents") == "residents" and kind_of("服务商") == "providers"
    assert kind_of("Sheet1") is None


def test_the_example_district_exports_and_reads_back_unchanged(tmp_path: Path) -> None:
    records = records_of(load_directory(EXAMPLE))
    assert {r["id"] for r in records["residents"]} >= {"r-0001", "r-0040"}
    assert all(s["api_token"] == "" for s in records["staff"])  # secrets stay home
    book = tmp_path / "district.xlsx"
    write_records(book, records)
    back = read_records(book)
    for kind in KINDS:
        assert [r.values for r in back[kind]] == [
            dict.fromkeys(OPTIONAL[kind], "") | row for row in records[kind]
        ], kind


def test_every_column_is_described_in_the_template(tmp_path: Path) -> None:
    path = tmp_path / "template.xlsx"
    write_template(path)
    book = load_workbook(path)
    assert book.sheetnames == ["说明", *KINDS]
    described = {(row[0], row[1]) for row in book["说明"].iter_rows(min_row=2, values_only=True)}
    assert described == {(k, c) for k in KINDS for c in (*REQUIRED[k], *OPTIONAL[k])}
    assert read_records(path) == {kind: [] for kind in KINDS}  # the notes sheet is skipped


def test_the_shipped_template_is_the_current_one(tmp_path: Path) -> None:
    # config/templates/records.xlsx is made by exchange.write_template; a column
    # added without remaking it fails here.
    shipped = load_workbook(EXAMPLE.parent / "templates" / "records.xlsx")
    fresh = tmp_path / "fresh.xlsx"
    write_template(fresh)
    made = load_workbook(fresh)
    assert shipped.sheetnames == made.sheetnames
    for name in made.sheetnames:
        assert list(shipped[name].values) == list(made[name].values), name


def test_the_registry_rows_have_the_files_columns() -> None:
    # An export writes rows of dispatcher.core.registry.rows; the files' columns must be
    # the same, or a column would be lost on the way out or refused on the way in.
    assert rows.KINDS == KINDS
    assert {k: (*REQUIRED[k], *OPTIONAL[k]) for k in KINDS} == rows.COLUMNS


def test_a_row_says_which_columns_its_file_has(tmp_path: Path) -> None:
    path = tmp_path / "residents.csv"
    path.write_text(OFFICE_CSV, encoding="utf-8")
    first = read_records(path)["residents"][0]
    assert isinstance(first, SheetRow)
    assert first.values["medication"] == "" and "medication" not in first.given
    assert first.given["key_resident"] == "living_alone" and "sex" in first.given
