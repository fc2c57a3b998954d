"""The data folder loader: the shipped example district, and one test per kind of mistake.

Each mistake is made in a temporary copy of ``config/data`` by rewriting one line,
and the error must name that file, that line and the problem.
"""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dispatcher.adapters.files.directory_files import DataFileError, load_directory, read_rows
from dispatcher.core.directory import KeyResident, Level, Role, mask_id_card
from dispatcher.core.rota import on_duty as rota
from dispatcher.core.rota.days import parse_days

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "data"
# The example's rota as weekly shifts, the simple form an older data folder has.
LEGACY_ROTA = Path(__file__).resolve().parents[1] / "data" / "legacy_rota.csv"
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A copy of the example with its rota in the old form, rota.csv (rota.toml has
    its own tests in test_rotafile.py)."""
    folder = tmp_path / "data"
    shutil.copytree(EXAMPLE, folder)
    (folder / "rota.toml").unlink()
    shutil.copy(LEGACY_ROTA, folder / "rota.csv")
    return folder


def edit(folder: Path, name: str, find: str, new: str) -> int:
    """Replace ``find`` in the one line of ``name`` that holds it; return that line's number."""
    path = folder / name
    lines = path.read_text(encoding="utf-8").split("\n")
    hits = [i for i, line in enumerate(lines) if find in line and not line.startswith("#")]
    assert len(hits) == 1, f"{find!r} is on {len(hits)} lines of {name}"
    lines[hits[0]] = lines[hits[0]].replace(find, new)
    path.write_text("\n".join(lines), encoding="utf-8")
    return hits[0] + 1


def append(folder: Path, name: str, line: str) -> int:
    """Add ``line`` at the end of ``name``; return its line number."""
    path = folder / name
    text = path.read_text(encoding="utf-8").rstrip("\n") + "\n" + line + "\n"
    path.write_text(text, encoding="utf-8")
    return text.count("\n")


def problem(folder: Path) -> str:
    with pytest.raises(DataFileError) as caught:
        load_directory(folder)
    return str(caught.value)


def assert_problem(folder: Path, name: str, line: int | None, *fragments: str) -> str:
    message = problem(folder)
    where = f"{folder / name}:{line}: " if line is not None else f"{folder / name}: "
    assert where in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- the shipped example ----------------------------------------------------------------


def test_example_loads_with_the_designed_counts() -> None:
    d = load_directory(EXAMPLE)

    levels = Counter(a.level for a in d.areas.values())
    assert levels == {Level.DISTRICT: 1, Level.STREET: 2, Level.COMMUNITY: 4}
    streets = [a for a in d.areas.values() if a.level is Level.STREET]
    assert all(a.parent_id == d.district.id for a in streets)
    per_street = Counter(a.parent_id for a in d.areas.values() if a.level is Level.COMMUNITY)
    assert sorted(per_street.values()) == [2, 2]
    assert per_street.keys() == {s.id for s in streets}

    assert len(d.staff) == 13
    roles = Counter(s.role for s in d.staff.values())
    assert roles == {Role.OPERATOR: 5, Role.SUPERVISOR: 3, Role.STAFF: 5}
    assert [s.id for s in d.staff.values() if s.language == "en"] == ["emma-liu"]
    assert all(s.api_token for s in d.staff.values())
    assert len(d.staff_by_token) == 13

    assert len(d.residents) == 40
    per_community = Counter(r.community_id for r in d.residents.values())
    assert sorted(per_community.values()) == [10, 10, 10, 10]
    assert all(1930 <= r.birth_date.year <= 1955 for r in d.residents.values())
    assert all(r.age_on(date(2026, 6, 1)) > 70 for r in d.residents.values())
    assert len(d.residents_by_device) == 40
    assert d.residents_by_device["dev-0001"].id == "r-0001"
    assert all(1 <= len(r.contacts) <= 3 for r in d.residents.values())
    assert sum(1 for r in d.residents.values() if r.notes) >= 5

    assert d.shifts == ()
    assert sorted(d.rotations) == ["c-lh-backup", "c-lh-day", "hotline", "streets-evening"]
    assert sorted(d.schedules) == sorted(d.areas)
    assert d.timezone == "Asia/Shanghai"


def test_an_old_folder_with_rota_csv_still_loads(data: Path) -> None:
    d = load_directory(data)
    assert len(d.shifts) == 14
    assert d.rotations == {} and d.schedules == {}
    tuesday = datetime(2026, 11, 24, 10, tzinfo=SHANGHAI)
    assert [o.staff.id for o in rota.hotline(d, tuesday)] == [
        "demo-operator",
        "wang-fang",
        "emma-liu",
    ]


def test_example_residents_have_the_optional_details() -> None:
    d = load_directory(EXAMPLE)
    r = d.residents["r-0001"]
    assert (r.building, r.unit, r.room, r.sex) == ("3号", "1单元", "502", "F")
    assert "硝苯地平" in r.medication and "2580" in r.key_safe
    assert r.key_resident is KeyResident.LIVING_ALONE
    assert [c.name for c in r.key_holders] == ["钱阿姨"]
    assert mask_id_card(r.id_card) == "310105********1228"


def test_a_residents_file_without_the_optional_columns_still_loads(data: Path) -> None:
    path = data / "residents.csv"
    rows = [line for line in path.read_text(encoding="utf-8").split("\n") if line]
    old = [",".join(line.split(",")[:8]) if not line.startswith("#") else line for line in rows]
    path.write_text("\n".join(old) + "\n", encoding="utf-8")
    contacts = data / "contacts.csv"
    lines = contacts.read_text(encoding="utf-8").split("\n")
    contacts.write_text(
        "\n".join(line.rsplit(",", 1)[0] if "," in line else line for line in lines),
        encoding="utf-8",
    )
    r = load_directory(data).residents["r-0001"]
    assert (r.room, r.key_safe, r.key_resident, r.key_holders) == ("", "", KeyResident.NONE, ())
    assert "硝苯地平" in r.notes


def test_an_unknown_column_is_named_with_the_optional_ones(data: Path) -> None:
    edit(data, "residents.csv", "key_resident", "key_resident,shoe_size")
    message = problem(data)
    assert "may name sex,id_card" in message and "shoe_size" in message


def test_example_contacts_keep_their_order_and_language() -> None:
    d = load_directory(EXAMPLE)
    lyu = d.residents["r-0040"]
    assert [(c.name, c.language) for c in lyu.contacts] == [("Lucy Lyu", "en"), ("曹阿姨", "zh")]
    assert [c.relation for c in d.residents["r-0002"].contacts] == ["女儿", "女婿", "邻居"]


def test_contacts_are_sorted_by_their_order_column_not_file_order(data: Path) -> None:
    edit(data, "contacts.csv", "r-0002,1,李娜", "r-0002,3,李娜")
    edit(data, "contacts.csv", "r-0002,3,孙大妈", "r-0002,1,孙大妈")
    d = load_directory(data)
    assert [c.name for c in d.residents["r-0002"].contacts] == ["孙大妈", "王磊", "李娜"]


def test_demo_operator_has_its_token_and_is_on_the_hotline_all_week() -> None:
    d = load_directory(EXAMPLE)
    demo = d.staff_by_token["demo-operator-token"]
    assert demo.id == "demo-operator"
    assert demo.role is Role.OPERATOR
    assert demo.area_id == d.district.id
    assert demo.phone and demo.phone.startswith("+86")

    monday = datetime(2026, 11, 23, tzinfo=SHANGHAI)
    assert monday.isoweekday() == 1
    for quarter in range(7 * 24 * 4):
        at = monday + timedelta(minutes=15 * quarter)
        on_line = [o.staff.id for o in rota.hotline(d, at)]
        assert "demo-operator" in on_line, at


def test_end_24_00_loads_as_midnight(data: Path) -> None:
    d = load_directory(data)
    demo = next(s for s in d.shifts if s.staff_id == "demo-operator")
    assert (demo.start, demo.end) == (time(0, 0), time(0, 0))
    assert demo.weekdays == frozenset(range(1, 8))


def test_day_specs() -> None:
    assert parse_days("mon-fri") == {1, 2, 3, 4, 5}
    assert parse_days("sat,sun") == {6, 7}
    assert parse_days("Mon, wed-fri") == {1, 3, 4, 5}
    assert parse_days("fri-mon") == {5, 6, 7, 1}
    assert parse_days("mon-sun") == set(range(1, 8))
    with pytest.raises(ValueError):
        parse_days("weekdays")


def test_a_byte_order_mark_and_crlf_line_ends_are_accepted(data: Path) -> None:
    path = data / "areas.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    assert len(load_directory(data).areas) == 7


def test_read_rows_gives_line_numbers_past_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text('# note, with "a quote\n\na,b\n1,2\n\n# more\n"3,x",4\n', encoding="utf-8")
    rows = read_rows(path, ("b", "a"))
    assert [(r.line, r.values) for r in rows] == [
        (4, {"a": "1", "b": "2"}),
        (7, {"a": "3,x", "b": "4"}),
    ]


# --- whole-folder problems --------------------------------------------------------------


def test_a_missing_file_is_named(data: Path) -> None:
    (data / "staff.csv").unlink()
    assert_problem(data, "staff.csv", None, "no such file")


def test_a_folder_without_any_rota_is_refused(data: Path) -> None:
    (data / "rota.csv").unlink()
    assert f"{data}: no rota: neither rota.toml nor rota.csv is there" in problem(data)


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="no such data folder"):
        load_directory(tmp_path / "nowhere")


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(DataFileError, match="unknown time zone 'Mars/Olympus'"):
        load_directory(EXAMPLE, timezone="Mars/Olympus")


def test_a_wrong_header_is_named(data: Path) -> None:
    line = edit(data, "staff.csv", "id,name,phone,area,role,language,api_token", "id,name,phone")
    assert_problem(data, "staff.csv", line, "header must name the columns")


def test_a_line_with_too_few_fields(data: Path) -> None:
    line = edit(data, "areas.csv", "c-ty,community,桃源社区,s-dq", "c-ty,community,桃源社区")
    assert_problem(data, "areas.csv", line, "3 fields where the header has 4")


def test_an_unclosed_quote(data: Path) -> None:
    line = edit(data, "residents.csv", "江滨区青石苑8号1101室", '"江滨区青石苑8号1101室')
    assert_problem(data, "residents.csv", line, "not valid CSV")


def test_text_that_is_not_utf8(data: Path) -> None:
    path = data / "residents.csv"
    text = path.read_text(encoding="utf-8")
    line = text[: text.index("r-0013")].count("\n") + 1
    path.write_bytes(text.replace("胡文彬", "HU").encode().replace(b"HU", "胡文彬".encode("gbk")))
    assert_problem(data, "residents.csv", line, "not UTF-8")


def test_several_problems_are_reported_one_per_line(data: Path) -> None:
    first = edit(data, "staff.csv", "+8613916200101", "13916200101")
    second = edit(data, "staff.csv", "+8613916200102", "13916200102")
    message = problem(data)
    lines = message.split("\n")
    assert lines[0].startswith(f"{data / 'staff.csv'}:{first}: phone '13916200101'")
    assert lines[1].startswith(f"{data / 'staff.csv'}:{second}: phone '13916200102'")


def test_problems_of_one_file_come_in_line_order(data: Path) -> None:
    reference = edit(data, "rota.csv", "d-jb,wang-fang,", "d-jb,zhang-wei,")
    syntax = edit(data, "rota.csv", "mon-fri,08:30,16:30", "mon-fri,8:30,16:30")
    assert reference < syntax
    assert problem(data).split("\n") == [
        f"{data / 'rota.csv'}:{reference}: staff 'zhang-wei' is not in staff.csv",
        f"{data / 'rota.csv'}:{syntax}: start '8:30' is not a time HH:MM between 00:00 and 23:59",
    ]


def test_a_long_list_of_problems_is_cut_short(data: Path) -> None:
    for n in range(1, 31):
        edit(data, "residents.csv", f",dev-{n:04d},", f",dev {n:04d},")
    message = problem(data)
    assert len(message.split("\n")) == 21
    assert message.endswith("... and 10 more problems")


# --- one broken line per kind of mistake ------------------------------------------------

CASES = [
    # areas.csv
    ("areas.csv", "c-lh,community", "C LH,community", "id 'C LH' is not a valid id"),
    ("areas.csv", "s-hx,street", "s-hx,city", "level 'city' is not one of district, street"),
    ("areas.csv", "c-qs,community,青石社区,s-hx", "c-qs,community,青石社区,c-lh",
     "parent 'c-lh' is a community; the parent of a community must be a street"),
    ("areas.csv", "s-dq,street,东桥街道,d-jb", "s-dq,street,东桥街道,c-ml",
     "parent 'c-ml' is a community; the parent of a street must be a district"),
    ("areas.csv", "c-ml,community,梅林社区,s-dq", "c-ml,community,梅林社区,s-xx",
     "parent 's-xx' is not in areas.csv"),
    ("areas.csv", "c-ml,community,梅林社区,s-dq", "c-ml,community,梅林社区,",
     "parent is empty; a community needs a street as parent"),
    ("areas.csv", "服务指挥中心,", "服务指挥中心,s-hx", "parent must be empty for the district"),
    ("areas.csv", "c-ty,community", "c-qs,community", "duplicate id 'c-qs'"),
    ("areas.csv", "柳湖社区", "", "name is empty"),
    # staff.csv
    ("staff.csv", "+8613916200103", "+86 139 1620 0103",
     "phone '+86 139 1620 0103' is not an E.164 number"),
    ("staff.csv", "zhou-jun,周军,+8613817300202,s-dq", "zhou-jun,周军,+8613817300202,s-zz",
     "area 's-zz' is not in areas.csv"),
    ("staff.csv", "d-jb,supervisor", "d-jb,boss", "role 'boss' is not one of operator, staff"),
    ("staff.csv", "ma-lin,马琳", "huang-lei,马琳", "duplicate id 'huang-lei'"),
    ("staff.csv", "demo-li-qiang-8b2d4e61", "demo-operator-token",
     "api_token is the same as 'demo-operator''s (line"),
    ("staff.csv", "demo-xu-yan-0f6c9d72", "short", "api_token must be 16-128 printable"),
    ("staff.csv", "en,demo-emma-liu", "fr,demo-emma-liu", "language 'fr' is not one of zh, en"),
    ("staff.csv", "Liu,+8613916200104", "Liu,+8613916200104 ", None),  # spaces are trimmed
    # residents.csv
    ("residents.csv", "1938-03-12", "1938-02-30", "birth_date '1938-02-30' is not a real date"),
    ("residents.csv", "1942-07-05", "05/07/1942", "birth_date '05/07/1942' is not a date like"),
    ("residents.csv", ",dev-0007,", ",dev-0006,", "device_id 'dev-0006' is already used on line"),
    ("residents.csv", ",dev-0008,", ",dev/0008,", "device_id 'dev/0008' is not a valid device id"),
    ("residents.csv", ",c-qs,dev-0012,", ",c-zz,dev-0012,",
     "community 'c-zz' is not in areas.csv"),
    ("residents.csv", ",c-qs,dev-0014,", ",s-hx,dev-0014,",
     "community 's-hx' is a street, not a community"),
    ("residents.csv", "r-0031,", "r-0030,", "duplicate id 'r-0030'"),
    ("residents.csv", "+862165440533", "021-65440533", "phone '021-65440533' is not an E.164"),
    ("residents.csv", "江滨区梅林一村7号103室", "", "address is empty"),
    ("residents.csv", ",F,310105193803121228,", ",W,310105193803121228,",
     "sex 'W' is not one of , F, M"),
    ("residents.csv", "310105193803121228", "31010519380312", "id_card is not an 18-character"),
    ("residents.csv", "在客厅,living_alone", "在客厅,lonely", "key_resident 'lonely' is not one"),
    # contacts.csv
    ("contacts.csv", "r-0003,1,", "r-9999,1,", "resident 'r-9999' is not in residents.csv"),
    ("contacts.csv", "r-0004,2,", "r-0004,1,", "order 1 of resident 'r-0004' is already used"),
    ("contacts.csv", "r-0005,1,", "r-0005,0,", "order '0' is not a number from 1 to 99"),
    ("contacts.csv", "+8613602220007", "+0613602220007", "phone '+0613602220007' is not an"),
    ("contacts.csv", "+8613603330013", "", "phone is empty"),
    ("contacts.csv", "+8613601110002,zh,yes", "+8613601110002,zh,maybe",
     "key_holder 'maybe' is not yes or no"),
    # rota.csv
    ("rota.csv", "d-jb,wang-fang,", "d-jb,zhang-wei,", "staff 'zhang-wei' is not in staff.csv"),
    ("rota.csv", "c-qs,wu-hong", "c-xx,wu-hong", "area 'c-xx' is not in areas.csv"),
    ("rota.csv", "mon-fri,08:30,16:30", "mon-fri,8:30,16:30", "start '8:30' is not a time HH:MM"),
    ("rota.csv", "mon-fri,08:00,17:00", "mon-fri,08:00,17:60", "end '17:60' is not a time"),
    ("rota.csv", "mon-sun,00:00,24:00", "mon-sun,24:00,24:00", "start '24:00' is not a time"),
    ("rota.csv", "primary,mon-sat", "primary,mon-sa", "days 'mon-sa' is not a list of days"),
    ("rota.csv", "d-jb,emma-liu,backup", "d-jb,emma-liu,standby",
     "role 'standby' is not one of primary, backup"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "find", "new", "expected"), CASES)
def test_a_broken_line_is_named(
    data: Path, name: str, find: str, new: str, expected: str | None
) -> None:
    line = edit(data, name, find, new)
    if expected is None:
        load_directory(data)  # a harmless edit: still loads
        return
    message = assert_problem(data, name, line, expected)
    assert "\n" not in message  # exactly this one problem, no knock-on reports


def test_a_second_district(data: Path) -> None:
    line = append(data, "areas.csv", "d-two,district,第二区指挥中心,")
    assert_problem(data, "areas.csv", line, "a second district 'd-two'", "exactly one")


def test_no_district(data: Path) -> None:
    edit(data, "areas.csv", "d-jb,district", "d-jb,street")
    message = problem(data)
    assert f"{data / 'areas.csv'}: no area has level district" in message


def test_a_token_is_never_echoed(data: Path) -> None:
    line = edit(data, "staff.csv", "demo-zhou-jun-d03b6c1f", "secret token")
    message = assert_problem(data, "staff.csv", line, "api_token must be")
    assert "secret" not in message


def test_a_broken_file_loads_nothing(data: Path) -> None:
    edit(data, "rota.csv", "d-jb,li-qiang,", "d-jb,nobody,")
    with pytest.raises(DataFileError):
        load_directory(data)
    # and the untouched example still loads: nothing is cached between loads
    assert len(load_directory(EXAMPLE).rotations) == 4
