"""Record files exchanged with community offices: CSV and Excel ``.xlsx``.

A community office keeps its residents in a spreadsheet, with Chinese column names,
and saves CSV from Chinese Excel in GB18030/GBK. This module reads such a file into
rows under the canonical column names of the data folder (``id``, ``name``,
``birth_date``, ...), and writes them back out. It knows the shape of a file, not what
a record means: the rows are validated by the same row models as the data folder
(``directory_files``), and applied by the registry.

- CSV: one kind of record per file, named by the file (``residents.csv``,
  ``老人.csv``) or given. UTF-8 with or without a byte-order mark, or GB18030 (a
  superset of GBK and GB2312): detected, or given.
- ``.xlsx``: one sheet per kind, named ``residents``, ``devices``, ``contacts``,
  ``staff``, ``areas``, ``providers`` (or their Chinese names); other sheets are left
  alone, so a workbook may carry its own notes.
- Headers: the canonical names or the Chinese ones offices use (姓名, 出生日期, 社区,
  设备号, ...); values: 男/女, 是/否 and the key-resident reasons in Chinese are read as
  the canonical codes; dates as Excel dates, ``1938/3/12`` or ``1938年3月12日``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font

from dispatcher.adapters.files.directory_files import RESIDENT_OPTIONAL, DataFileError, Row
from dispatcher.core.directory import Directory, Resident

# The kinds of record, in the order an import applies them (an area before the staff
# and residents in it, a resident before her devices and contacts).
KINDS = ("areas", "providers", "staff", "residents", "devices", "contacts")

# The canonical columns of each kind: required first, then optional. These are the
# data folder's headers, and the headers an export writes.
REQUIRED: dict[str, tuple[str, ...]] = {
    "areas": ("id", "level", "name"),
    "providers": ("id", "name", "service", "phone"),
    "staff": ("id", "name", "phone", "area", "role"),
    "residents": ("id", "name", "birth_date", "address", "community", "device_id"),
    "devices": ("id", "resident"),
    "contacts": ("resident", "order", "name", "relation", "phone"),
}
OPTIONAL: dict[str, tuple[str, ...]] = {
    "areas": ("parent",),
    "providers": ("area", "notes"),
    "staff": ("language", "api_token"),
    "residents": ("phone", "notes", *RESIDENT_OPTIONAL),
    "devices": ("model", "firmware", "installed_on", "installed_by"),
    "contacts": ("language", "key_holder"),
}

# Sheet and file names community offices use.
KIND_ALIASES: dict[str, str] = {
    "老人": "residents",
    "居民": "residents",
    "服务对象": "residents",
    "设备": "devices",
    "联系人": "contacts",
    "紧急联系人": "contacts",
    "工作人员": "staff",
    "人员": "staff",
    "区域": "areas",
    "服务商": "providers",
    "服务机构": "providers",
}

# Chinese column names, per kind (a name may mean different things in two kinds: 姓名
# is the resident's name in one sheet and the contact's in another).
_COMMON = {"编号": "id", "姓名": "name", "名称": "name", "电话": "phone", "备注": "notes"}
COLUMN_ALIASES: dict[str, dict[str, str]] = {
    "residents": _COMMON
    | {
        "老人编号": "id",
        "出生日期": "birth_date",
        "地址": "address",
        "家庭住址": "address",
        "社区": "community",
        "所属社区": "community",
        "设备号": "device_id",
        "设备编号": "device_id",
        "家庭电话": "phone",
        "固定电话": "phone",
        "性别": "sex",
        "身份证号": "id_card",
        "身份证号码": "id_card",
        "楼号": "building",
        "楼栋": "building",
        "单元": "unit",
        "单元号": "unit",
        "房间号": "room",
        "室号": "room",
        "手机": "mobile",
        "手机号": "mobile",
        "语言": "language",
        "疾病": "conditions",
        "健康状况": "conditions",
        "用药": "medication",
        "用药情况": "medication",
        "行动能力": "mobility",
        "钥匙盒": "key_safe",
        "门禁密码": "key_safe",
        "入户说明": "access_notes",
        "重点对象": "key_resident",
    },
    "contacts": {
        "老人编号": "resident",
        "顺序": "order",
        "序号": "order",
        "姓名": "name",
        "关系": "relation",
        "电话": "phone",
        "语言": "language",
        "持有钥匙": "key_holder",
        "有钥匙": "key_holder",
    },
    "devices": {
        "设备号": "id",
        "设备编号": "id",
        "老人编号": "resident",
        "型号": "model",
        "固件版本": "firmware",
        "安装日期": "installed_on",
        "安装人": "installed_by",
    },
    "staff": _COMMON
    | {
        "区域": "area",
        "所属区域": "area",
        "角色": "role",
        "语言": "language",
        "令牌": "api_token",
    },
    "areas": _COMMON | {"级别": "level", "上级": "parent"},
    "providers": _COMMON | {"服务": "service", "服务类型": "service", "区域": "area"},
}

# Values written in Chinese, per canonical column.
VALUE_ALIASES: dict[str, dict[str, str]] = {
    "sex": {"男": "M", "女": "F", "m": "M", "f": "F"},
    "key_holder": {"是": "yes", "有": "yes", "否": "", "无": ""},
    "key_resident": {
        "独居": "living_alone",
        "失能": "disabled",
        "残疾": "disabled",
        "近期出院": "recently_discharged",
        "出院": "recently_discharged",
        "其他": "other",
        "否": "",
        "无": "",
    },
    "level": {"区": "district", "街道": "street", "社区": "community"},
}
_DATE_COLUMNS = frozenset({"birth_date", "installed_on"})
_LOOSE_DATE = re.compile(r"^(\d{4})\s*[/.年-]\s*(\d{1,2})\s*[/.月-]\s*(\d{1,2})\s*日?$")
ENCODINGS = ("utf-8", "gb18030")


@dataclass(frozen=True)
class SheetRow(Row):
    """A row of a workbook's sheet: errors name the sheet as well as the line.
    ``columns``: those the file has (the others read as blank in ``values``)."""

    sheet: str = ""
    columns: tuple[str, ...] = ()

    @property
    def given(self) -> dict[str, str]:
        """The values of the columns the file has: an import leaves the others alone."""
        return {c: self.values[c] for c in self.columns}

    @property
    def where(self) -> str:
        return f"{self.path}:{self.sheet}:{self.line}" if self.sheet else super().where


def kind_of(name: str) -> str | None:
    """The kind of record a sheet or file stem names, or None."""
    name = name.strip().lower()
    return name if name in KINDS else KIND_ALIASES.get(name)


def read_records(
    path: Path, *, kind: str | None = None, encoding: str | None = None
) -> dict[str, list[Row]]:
    """The rows of ``path`` by kind, under canonical column names.

    Raises :class:`DataFileError` listing every structural problem (the file, an
    unknown sheet or column, an undecodable line); the values are not validated here.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        return _read_workbook(path)
    if suffix != ".csv":
        raise DataFileError([f"{path}: not a .csv or .xlsx file"])
    kind = kind or kind_of(path.stem)
    if kind is None:
        raise DataFileError(
            [
                f"{path}: which records? name the file after them "
                f"({', '.join(KINDS)}) or give the kind"
            ]
        )
    text = _decode(path, encoding)
    lines = _csv_lines(path, enumerate(text.split("\n"), start=1))
    return {kind: _rows(path, "", kind, lines)}


def _decode(path: Path, encoding: str | None) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataFileError([f"{path}: no such file"]) from None
    except OSError as exc:
        raise DataFileError([f"{path}: cannot read it: {exc.strerror}"]) from None
    if encoding is not None:
        return _decode_as(path, raw, encoding)
    if raw.startswith(b"\xef\xbb\xbf"):
        return _decode_as(path, raw, "utf-8-sig")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass  # Chinese Excel saves CSV in the system's code page: GBK, read as GB18030
    return _decode_as(path, raw, "gb18030")


def _decode_as(path: Path, raw: bytes, encoding: str) -> str:
    try:
        return raw.decode(encoding)
    except LookupError:
        raise DataFileError([f"{path}: unknown encoding {encoding!r}"]) from None
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataFileError([f"{path}:{line}: not {encoding} text ({exc.reason})"]) from None


def _csv_lines(path: Path, lines: Iterable[tuple[int, str]]) -> list[tuple[int, list[str]]]:
    out: list[tuple[int, list[str]]] = []
    problems: list[str] = []
    for number, physical in lines:
        line = physical.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            out.append((number, next(csv.reader([line], strict=True))))
        except csv.Error as exc:
            problems.append(f"{path}:{number}: not valid CSV ({exc})")
    if problems:
        raise DataFileError(problems)
    return out


def _read_workbook(path: Path) -> dict[str, list[Row]]:
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except FileNotFoundError:
        raise DataFileError([f"{path}: no such file"]) from None
    except Exception as exc:  # openpyxl raises many kinds for a file that is not a workbook
        raise DataFileError([f"{path}: not an Excel .xlsx workbook ({exc})"]) from None
    out: dict[str, list[Row]] = {}
    problems: list[str] = []
    try:
        for sheet in book.worksheets:
            kind = kind_of(sheet.title)
            if kind is None:
                continue  # the office's own notes
            if kind in out:
                problems.append(f"{path}:{sheet.title}: a second sheet of {kind}")
                continue
            lines = [
                (n, [_cell_text(v) for v in values])
                for n, values in enumerate(sheet.iter_rows(values_only=True), start=1)
                if any(v not in (None, "") for v in values)
                and not str(values[0] or "").lstrip().startswith("#")
            ]
            try:
                out[kind] = _rows(path, sheet.title, kind, lines)
            except DataFileError as exc:
                problems.extend(exc.problems)
    finally:
        book.close()
    if problems:
        raise DataFileError(problems)
    if not out:
        raise DataFileError([f"{path}: no sheet named after a kind of record ({', '.join(KINDS)})"])
    return out


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return (
            value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
        )
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a phone number typed as a number
    return str(value)


def _rows(path: Path, sheet: str, kind: str, lines: Sequence[tuple[int, list[str]]]) -> list[Row]:
    where = f"{path}:{sheet}" if sheet else str(path)
    if not lines:
        raise DataFileError([f"{where}: no header line"])
    number, names = lines[0]
    header = [_canonical(kind, name.strip()) for name in names]
    while header and header[-1] == "":
        header.pop()  # a spreadsheet's empty trailing columns
    known = (*REQUIRED[kind], *OPTIONAL[kind])
    unknown = [names[i].strip() for i, h in enumerate(header) if h not in known]
    missing = [c for c in REQUIRED[kind] if c not in header]
    doubled = sorted({h for h in header if header.count(h) > 1})
    if unknown or missing or doubled:
        parts = [
            *([f"unknown columns {', '.join(unknown)}"] if unknown else []),
            *([f"missing columns {', '.join(missing)}"] if missing else []),
            *([f"columns named twice: {', '.join(doubled)}"] if doubled else []),
        ]
        raise DataFileError(
            [
                f"{where}:{number}: {'; '.join(parts)} (the {kind} columns are "
                f"{', '.join(known)}, or their Chinese names)"
            ]
        )
    rows: list[Row] = []
    problems: list[str] = []
    for number, fields in lines[1:]:
        extra = fields[len(header) :]
        if any(f.strip() for f in extra):
            problems.append(
                f"{where}:{number}: {len(fields)} fields where the header has {len(header)}"
            )
            continue
        fields = [*fields[: len(header)], *[""] * (len(header) - len(fields))]
        values = dict.fromkeys(OPTIONAL[kind], "") | {
            column: _value(column, field.strip())
            for column, field in zip(header, fields, strict=True)
        }
        rows.append(SheetRow(path, number, values, sheet, tuple(header)))
    if problems:
        raise DataFileError(problems)
    return rows


def _canonical(kind: str, name: str) -> str:
    if name in REQUIRED[kind] or name in OPTIONAL[kind]:
        return name
    return COLUMN_ALIASES[kind].get(name, name)


def _value(column: str, value: str) -> str:
    value = VALUE_ALIASES.get(column, {}).get(value, value)
    if column in _DATE_COLUMNS and (m := _LOOSE_DATE.match(value)):
        year, month, day = m.groups()
        value = f"{year}-{int(month):02d}-{int(day):02d}"
    return value


# --- writing ---------------------------------------------------------------------------


def write_records(path: Path, records: Mapping[str, Sequence[Mapping[str, str]]]) -> None:
    """Write ``records`` (rows by kind, canonical columns) to ``path``: an ``.xlsx``
    with one sheet per kind, or a ``.csv`` of the one kind the file is named after,
    UTF-8 with a byte-order mark so that Excel opens it as such."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        _write_workbook(path, records)
        return
    if suffix != ".csv":
        raise DataFileError([f"{path}: not a .csv or .xlsx file"])
    kind = kind_of(path.stem)
    if kind is None or set(records) - {kind}:
        raise DataFileError(
            [
                f"{path}: a CSV file holds one kind of record and is named after it "
                f"({', '.join(KINDS)})"
            ]
        )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = _columns(kind)
    writer.writerow(columns)
    for row in records.get(kind, ()):
        writer.writerow([row.get(c, "") for c in columns])
    path.write_text(out.getvalue(), encoding="utf-8-sig")


def _write_workbook(path: Path, records: Mapping[str, Sequence[Mapping[str, str]]]) -> None:
    book = Workbook()
    book.remove(book.active)
    for kind in KINDS:
        sheet = book.create_sheet(kind)
        columns = _columns(kind)
        sheet.append(columns)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in records.get(kind, ()):
            sheet.append([row.get(c, "") for c in columns])
        # Text, not numbers: an ID-card number or a phone number read as a number
        # loses its last digits (Excel keeps 15) or its leading plus.
        for column in sheet.iter_cols(min_row=2):
            for cell in column:
                cell.number_format = "@"
        sheet.freeze_panes = "A2"
    book.save(path)


def _columns(kind: str) -> list[str]:
    return [*REQUIRED[kind], *OPTIONAL[kind]]


# --- from the directory ----------------------------------------------------------------


def records_of(directory: Directory) -> dict[str, list[dict[str, str]]]:
    """The directory's records as rows by kind, under the canonical columns: what an
    export writes, and what an import of that file reads back unchanged."""
    residents = sorted(directory.residents.values(), key=lambda r: r.id)
    return {
        "areas": [
            {"id": a.id, "level": a.level.value, "name": a.name, "parent": a.parent_id or ""}
            for a in directory.areas.values()
        ],
        "providers": [],
        "staff": [
            {
                "id": s.id,
                "name": s.name,
                "phone": s.phone or "",
                "area": s.area_id,
                "role": s.role.value,
                "language": s.language,
                "api_token": "",  # a secret: never exported
            }
            for s in sorted(directory.staff.values(), key=lambda s: s.id)
        ],
        "residents": [_resident_row(r) for r in residents],
        "devices": [{"id": r.device_id, "resident": r.id} for r in residents],
        "contacts": [
            {
                "resident": r.id,
                "order": str(n),
                "name": c.name,
                "relation": c.relation,
                "phone": c.phone,
                "language": c.language,
                "key_holder": "yes" if c.key_holder else "",
            }
            for r in residents
            for n, c in enumerate(r.contacts, start=1)
        ],
    }


def _resident_row(r: Resident) -> dict[str, str]:
    return {
        "id": r.id,
        "name": r.name,
        "birth_date": r.birth_date.isoformat(),
        "address": r.address,
        "community": r.community_id,
        "device_id": r.device_id,
        "phone": r.phone or "",
        "notes": r.notes,
        "sex": r.sex,
        "id_card": r.id_card,
        "building": r.building,
        "unit": r.unit,
        "room": r.room,
        "mobile": r.mobile or "",
        "language": r.language,
        "conditions": r.conditions,
        "medication": r.medication,
        "mobility": r.mobility,
        "key_safe": r.key_safe,
        "access_notes": r.access_notes,
        "key_resident": r.key_resident.value,
    }


# --- the template ----------------------------------------------------------------------

# What each column holds, for the template's 说明 (notes) sheet and the README.
DESCRIPTIONS: dict[str, str] = {
    "id": "编号 id: lower-case letters, digits, - and _ (r-0001, c-lh, dev-0001)",
    "level": "district, street or community (区, 街道, 社区)",
    "name": "姓名/名称",
    "parent": "the area above (a street's district, a community's street)",
    "service": "what the provider does (送餐, 保洁, 维修, ...)",
    "phone": "E.164, like +8613800138000",
    "area": "the area id the person or provider works for",
    "role": "operator, staff, supervisor or admin",
    "language": "zh or en (blank: zh)",
    "api_token": "never exported; set it with the API or leave blank",
    "birth_date": "1938-03-12, 1938/3/12, 1938年3月12日 or an Excel date",
    "address": "the full address",
    "community": "the community (社区) id",
    "device_id": "the id in the device's MQTT topics",
    "notes": "for the operator's screen only, never by SMS",
    "sex": "F or M (女, 男)",
    "id_card": "18 characters; stored whole, shown masked; keep the column as text",
    "building": "楼/号",
    "unit": "单元",
    "room": "室",
    "mobile": "the resident's own mobile, E.164",
    "conditions": "medical conditions (operators and supervisors only)",
    "medication": "medication (operators and supervisors only)",
    "mobility": "how she moves (operators and supervisors only)",
    "key_safe": "key safe and door code (operators and supervisors only)",
    "access_notes": "how to get in (operators and supervisors only)",
    "key_resident": "living_alone, disabled, recently_discharged, other (独居, 失能, 近期出院)",
    "resident": "the resident's id",
    "model": "the device's model",
    "firmware": "its firmware version",
    "installed_on": "a date, as birth_date",
    "installed_by": "who installed it",
    "order": "1, 2, 3: the order to call them in",
    "relation": "儿子, 女儿, 邻居, ...",
    "key_holder": "yes if they have a key to the home (是)",
}


def template_rows() -> list[list[str]]:
    """The template's notes sheet: one line per column of each kind."""
    rows = [["kind", "column", "required", "Chinese names accepted", "what it holds"]]
    for kind in KINDS:
        for column in _columns(kind):
            aliases = [a for a, c in COLUMN_ALIASES[kind].items() if c == column]
            required = "yes" if column in REQUIRED[kind] else ""
            rows.append([kind, column, required, " ".join(aliases), DESCRIPTIONS[column]])
    return rows


def write_template(path: Path) -> None:
    """An empty workbook to fill in: a sheet per kind with its headers, and 说明."""
    write_records(path, {})
    book = load_workbook(path)
    notes = book.create_sheet("说明", 0)
    for row in template_rows():
        notes.append(row)
    for cell in notes[1]:
        cell.font = Font(bold=True)
    book.save(path)
