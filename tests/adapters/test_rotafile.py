"""rota.toml: the example loads as designed, and each mistake is named with file,
line (that of the table it is in) and problem."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dispatcher.adapters.files.directory_files import DataFileError, load_directory
from dispatcher.core.rota import on_duty as rota
from dispatcher.core.rota.model import OverrideKind, Unit

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "data"
LEGACY_ROTA = Path(__file__).resolve().parents[1] / "data" / "legacy_rota.csv"
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    shutil.copytree(EXAMPLE, folder)
    return folder


def line_of(folder: Path, find: str) -> int:
    lines = (folder / "rota.toml").read_text(encoding="utf-8").split("\n")
    hits = [i for i, line in enumerate(lines) if find in line and not line.startswith("#")]
    assert len(hits) == 1, f"{find!r} is on {len(hits)} lines"
    return hits[0] + 1


def edit(folder: Path, find: str, new: str) -> None:
    path = folder / "rota.toml"
    text = path.read_text(encoding="utf-8")
    assert text.count(find) == 1, find
    path.write_text(text.replace(find, new), encoding="utf-8")


def header_above(folder: Path, find: str) -> int:
    """The line of the [[...]] header of the table that holds ``find`` (found once)."""
    text = (folder / "rota.toml").read_text(encoding="utf-8")
    assert text.count(find) == 1, find
    lines = text.split("\n")
    at = text[: text.index(find)].count("\n")
    while not lines[at].lstrip().startswith("[["):
        at -= 1
    return at + 1


def problem(folder: Path) -> str:
    with pytest.raises(DataFileError) as caught:
        load_directory(folder)
    return str(caught.value)


def test_the_example_rota_loads_as_designed() -> None:
    d = load_directory(EXAMPLE)
    hotline = d.rotations["hotline"]
    assert (hotline.unit, hotline.every, hotline.people) == (
        Unit.HOUR,
        12,
        ("wang-fang", "li-qiang", "chen-jing"),
    )
    assert hotline.timezone == "Asia/Shanghai"
    assert d.schedules["d-jb"].rules[0].source.startswith("rota.toml:")
    kinds = {o.id: o.kind for o in d.overrides}
    assert kinds == {
        "ma-lin-leave": OverrideKind.REMOVE,
        "wang-fang-christmas": OverrideKind.REPLACE,
    }
    # The overrides do what they say: ma-lin on leave, chen-jing on wang-fang's day.
    leave = datetime(2026, 12, 15, 10, tzinfo=SHANGHAI)
    assert [p.staff.id for p in rota.on_duty(d, "c-lh", leave)] == ["huang-lei"]
    christmas = datetime(2026, 12, 24, 10, tzinfo=SHANGHAI)
    assert rota.rotation_on_call(d, "hotline", christmas)[0].id == "chen-jing"
    assert d.rotations["hotline"].on_call(christmas) == "wang-fang"


def test_both_rota_files_together_add_up(data: Path) -> None:
    shutil.copy(LEGACY_ROTA, data / "rota.csv")
    d = load_directory(data)
    assert len(d.shifts) == 14 and len(d.rotations) == 4
    tuesday = datetime(2026, 11, 24, 10, tzinfo=SHANGHAI)
    assert "huang-lei" in [p.staff.id for p in rota.on_duty(d, "c-lh", tuesday)]


@pytest.mark.parametrize(
    ("find", "new", "expected"),
    [
        (
            'people = ["ma-lin", "huang-lei"]',
            'people = ["ma-lin", "zhang-wei"]',
            "rotation 'c-lh-day': people: 'zhang-wei' is not in staff.csv",
        ),
        (
            'unit = "hour"\nevery = 12',
            'unit = "fortnight"\nevery = 12',
            "rotation: unit: Input should be 'hour', 'day' or 'week'",
        ),
        ("every = 12", "every = 0", "rotation: every: Input should be greater than or equal to 1"),
        (
            "handoff = 2026-11-24T08:00:00",
            "handoff = 2026-11-24T08:00:00+08:00",
            "handoff 2026-11-24T08:00:00+08:00 has a UTC offset",
        ),
        (
            'id = "ma-lin-leave"',
            'id = "Ma Lin"',
            "override: id 'Ma Lin' is not a valid id",
        ),
        ('area = "c-qs"', 'area = "c-xx"', "schedule 'c-xx': area 'c-xx' is not in areas.csv"),
        (
            'start = "08:30"\nend = "16:30"',
            'start = "8:30"\nend = "16:30"',
            "schedule 'c-qs': rule: start '8:30' is not a time \"HH:MM\"",
        ),
        (
            'days = "mon,wed,fri"',
            'days = "mon,wed,fry"',
            "rule: days 'mon,wed,fry' is not a list of days",
        ),
        (
            'staff = "xu-yan"',
            'staff = "xu-yan"\nrotation = "hotline"',
            "a rule names a rotation or a staff, not both",
        ),
        (
            'rotation = "c-lh-backup"',
            'rotation = "c-lh-spare"',
            "rotation 'c-lh-spare' is not defined",
        ),
        (
            'staff = "zhao-min"\nrole = "backup"',
            'staff = "zhao-min"\nrole = "standby"',
            "rule: role 'standby' is not one of primary, backup",
        ),
        ('staff = "sun-li"', 'staff = "sun-li"\nshift = "day"', "rule: shift is not a known key"),
        (
            'kind = "remove"',
            'kind = "delete"',
            "override: kind: Input should be 'replace', 'add' or 'remove'",
        ),
        (
            'replaces = "wang-fang"',
            'replaces = "nobody"',
            "override 'wang-fang-christmas': replaces 'nobody' is not in staff.csv",
        ),
        (
            "end = 2026-12-19T00:00:00",
            "end = 2026-12-13T00:00:00",
            "override 'ma-lin-leave': the end must be after the start",
        ),
    ],
)
def test_a_mistake_is_named_with_file_line_and_problem(
    data: Path, find: str, new: str, expected: str
) -> None:
    line = header_above(data, find)
    edit(data, find, new)
    message = problem(data)
    assert f"{data / 'rota.toml'}:{line}: " in message, message
    assert expected in message, message
    assert "\n" not in message, message


def test_a_toml_syntax_error_names_its_line(data: Path) -> None:
    line = line_of(data, 'id = "c-lh-day"')
    edit(data, 'id = "c-lh-day"', 'id = "c-lh-day')
    message = problem(data)
    assert f"{data / 'rota.toml'}: not valid TOML" in message
    assert f"line {line}" in message


def test_a_duplicate_rotation_and_schedule(data: Path) -> None:
    path = data / "rota.toml"
    path.write_text(
        path.read_text(encoding="utf-8")
        + '\n[[rotation]]\nid = "hotline"\nunit = "day"\nhandoff = 2026-01-01T08:00:00\n'
        'people = ["li-qiang"]\n\n[[schedule]]\narea = "c-ty"\n',
        encoding="utf-8",
    )
    lines = path.read_text(encoding="utf-8").split("\n")
    rotation_line = max(i for i, x in enumerate(lines) if x == "[[rotation]]") + 1
    schedule_line = max(i for i, x in enumerate(lines) if x == "[[schedule]]") + 1
    message = problem(data)
    assert f"rota.toml:{rotation_line}: rotation 'hotline' is defined twice" in message
    assert f"rota.toml:{schedule_line}: schedule 'c-ty': the area has a schedule already" in message


def test_an_override_in_local_time_is_read_in_the_rota_zone() -> None:
    d = load_directory(EXAMPLE)
    leave = d.overrides.get("ma-lin-leave")
    assert leave is not None
    assert leave.start == datetime(2026, 12, 13, 16, 0, tzinfo=UTC)


# --- dated shifts ([[shift]]) ------------------------------------------------------------


def add_shift(folder: Path, body: str) -> int:
    """Append a [[shift]] table; returns the line of its header."""
    path = folder / "rota.toml"
    text = path.read_text(encoding="utf-8").rstrip("\n") + "\n\n"
    header = text.count("\n") + 1
    path.write_text(text + "[[shift]]\n" + body, encoding="utf-8")
    return header


def test_a_dated_shift_puts_its_person_on_duty(data: Path) -> None:
    at = datetime(2027, 3, 2, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai
    before = load_directory(data)
    assert "xu-yan" not in {d.staff.id for d in rota.on_duty(before, "c-lh", at)}
    add_shift(
        data,
        'area = "c-lh"\nstaff = "xu-yan"\nstart = 2027-03-02T09:00:00\n'
        'end = 2027-03-02T13:00:00\nrole = "backup"\nuid = "abc@x"\nsource = "t.ics"\n',
    )
    directory = load_directory(data)
    found = {d.staff.id: d.shift_role for d in rota.on_duty(directory, "c-lh", at)}
    assert found["xu-yan"] == "backup"
    later = datetime(2027, 3, 2, 5, 0, tzinfo=UTC)  # 13:00: the shift is over
    assert "xu-yan" not in {d.staff.id for d in rota.on_duty(directory, "c-lh", later)}
    shown = [
        i
        for i in rota.intervals(directory, "c-lh", at.replace(hour=0), later)
        if i.staff_id == "xu-yan"
    ]
    assert [(i.start, i.end, i.role) for i in shown] == [
        (datetime(2027, 3, 2, 1, 0, tzinfo=UTC), datetime(2027, 3, 2, 5, 0, tzinfo=UTC), "backup")
    ]


def test_a_dated_shift_with_an_offset_keeps_it(data: Path) -> None:
    add_shift(
        data,
        'area = "d-jb"\nstaff = "emma-liu"\nstart = 2027-03-02T09:00:00+00:00\n'
        "end = 2027-03-02T10:00:00+00:00\n",
    )
    directory = load_directory(data)
    at = datetime(2027, 3, 2, 9, 30, tzinfo=UTC)
    assert "emma-liu" in {d.staff.id for d in rota.on_duty(directory, "d-jb", at)}


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (
            'area = "c-zz"\nstaff = "ma-lin"\n'
            "start = 2027-03-02T09:00:00\nend = 2027-03-02T10:00:00\n",
            "shift of 'ma-lin': area 'c-zz' is not in areas.csv",
        ),
        (
            'area = "c-lh"\nstaff = "nobody"\n'
            "start = 2027-03-02T09:00:00\nend = 2027-03-02T10:00:00\n",
            "shift of 'nobody': staff 'nobody' is not in staff.csv",
        ),
        (
            'area = "c-lh"\nstaff = "ma-lin"\n'
            "start = 2027-03-02T09:00:00\nend = 2027-03-02T09:00:00\n",
            "shift of 'ma-lin': end 2027-03-02T09:00:00 is not after start",
        ),
        (
            'area = "c-lh"\nstaff = "ma-lin"\nstart = 2027-03-02T09:00:00\n',
            "shift: end is missing",
        ),
        (
            'area = "c-lh"\nstaff = "ma-lin"\nstart = 2027-03-02T09:00:00\n'
            'end = 2027-03-02T10:00:00\nrole = "boss"\n',
            "shift: role 'boss' is not one of primary, backup",
        ),
    ],
)
def test_a_bad_dated_shift_is_named_with_its_line(data: Path, body: str, what: str) -> None:
    header = add_shift(data, body)
    assert f"rota.toml:{header}: {what}" in problem(data)


def test_a_dated_shift_makes_a_schedule_for_an_area_without_one(data: Path) -> None:
    (data / "rota.toml").write_text("", encoding="utf-8")
    (data / "rota.csv").unlink(missing_ok=True)
    assert "c-ty" not in load_directory(data).schedule_by_area
    add_shift(
        data,
        'area = "c-ty"\nstaff = "xu-yan"\nstart = 2027-03-02T09:00:00\nend = 2027-03-02T17:00:00\n',
    )
    directory = load_directory(data)
    assert directory.schedule_by_area["c-ty"].timezone == "Asia/Shanghai"
    at = datetime(2027, 3, 2, 2, 0, tzinfo=UTC)
    assert [d.staff.id for d in rota.on_duty(directory, "c-ty", at)] == ["xu-yan"]
