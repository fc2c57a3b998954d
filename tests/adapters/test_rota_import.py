"""`eldercall rota import`: an .ics file's shifts become [[shift]] tables of rota.toml,
matched to staff by id, name or phone, idempotent, refused whole on any problem."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dispatcher.adapters.files.directory_files import load_directory
from dispatcher.core.rota import on_duty as rota
from dispatcher.entrypoints.cli import common
from dispatcher.entrypoints.cli import main as cli
from dispatcher.testing import FakeClock

DATA = Path(__file__).resolve().parents[2] / "config" / "data"
GOOGLE = Path(__file__).resolve().parents[1] / "data" / "google_rota.ics"
T = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # Tuesday 10:00 in Shanghai

# Three people: one by name (马琳 = ma-lin), one by phone (tel:, no name: xu-yan),
# and a weekly recurring shift for Emma Liu with one week cancelled.
HAND_WRITTEN = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//test//EN\r
BEGIN:VEVENT\r
UID:one@test\r
DTSTAMP:20261120T000000Z\r
DTSTART;TZID=Asia/Shanghai:20261201T090000\r
DTEND;TZID=Asia/Shanghai:20261201T130000\r
SUMMARY:马琳\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:two@test\r
DTSTAMP:20261120T000000Z\r
DTSTART:20261202T010000Z\r
DTEND:20261202T050000Z\r
ATTENDEE:tel:+86-137-6140-0305\r
CATEGORIES:backup\r
SUMMARY:duty\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:weekly@test\r
DTSTAMP:20261120T000000Z\r
DTSTART;TZID=Asia/Shanghai:20261203T200000\r
DTEND;TZID=Asia/Shanghai:20261203T230000\r
RRULE:FREQ=WEEKLY;COUNT=3\r
EXDATE;TZID=Asia/Shanghai:20261210T200000\r
SUMMARY:Emma Liu\r
END:VEVENT\r
END:VCALENDAR\r
"""


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "clock", lambda: FakeClock(T))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    shutil.copytree(DATA, folder)
    return folder


@pytest.fixture
def cfg(tmp_path: Path, data: Path) -> Path:
    path = tmp_path / "eldercall.toml"
    path.write_text(f'[data]\ndir = "{data}"\n', encoding="utf-8")
    return path


@pytest.fixture
def ics(tmp_path: Path) -> Path:
    path = tmp_path / "duty.ics"
    path.write_bytes(HAND_WRITTEN.encode())
    return path


def run(capsys: pytest.CaptureFixture[str], cfg: Path, *args: str) -> tuple[int, str]:
    code = cli.main(["rota", "import", "--config", str(cfg), *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def on_duty(data: Path, at: datetime) -> dict[str, str]:
    directory = load_directory(data)
    return {d.staff.id: d.shift_role for d in rota.on_duty(directory, "c-lh", at)}


def test_an_import_adds_dated_shifts_that_put_people_on_duty(
    capsys: pytest.CaptureFixture[str], cfg: Path, data: Path, ics: Path
) -> None:
    before = (data / "rota.toml").read_text(encoding="utf-8")
    code, out = run(capsys, cfg, str(ics), "--area", "c-lh")
    assert code == 0, out
    assert "added 4 shift(s) from duty.ics to c-lh" in out
    assert "  emma-liu (Emma Liu): 2" in out
    assert "  ma-lin (马琳): 1" in out
    assert "  xu-yan (徐燕): 1" in out
    assert "after a restart" in out
    text = (data / "rota.toml").read_text(encoding="utf-8")
    assert text.startswith(before.rstrip("\n"))
    assert text.count("\n[[shift]]\n") == 4
    assert 'uid = "two@test"' in text and 'source = "duty.ics"' in text
    # 2026-12-02 09:00-13:00 in Shanghai: xu-yan, as backup, found by phone.
    assert on_duty(data, datetime(2026, 12, 2, 3, 0, tzinfo=UTC))["xu-yan"] == "backup"
    assert on_duty(data, datetime(2026, 12, 1, 2, 0, tzinfo=UTC))["ma-lin"] == "primary"
    emma = lambda day: "emma-liu" in on_duty(data, datetime(2026, 12, day, 13, 0, tzinfo=UTC))  # noqa: E731
    assert emma(3) and not emma(10) and emma(17)

    # Importing again adds nothing: the uids are in the file already.
    code, out = run(capsys, cfg, str(ics), "--area", "c-lh")
    assert code == 0, out
    assert "added 0 shift(s)" in out and "4 already in rota.toml skipped" in out
    assert (data / "rota.toml").read_text(encoding="utf-8") == text


def test_a_dry_run_prints_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], cfg: Path, data: Path, ics: Path
) -> None:
    before = (data / "rota.toml").read_text(encoding="utf-8")
    code, out = run(capsys, cfg, str(ics), "--area", "c-lh", "--dry-run")
    assert code == 0, out
    assert out.count("[[shift]]") == 4
    assert "would add 4 shift(s)" in out
    assert (data / "rota.toml").read_text(encoding="utf-8") == before


def test_the_window_limits_what_is_imported(
    capsys: pytest.CaptureFixture[str], cfg: Path, ics: Path
) -> None:
    code, out = run(capsys, cfg, str(ics), "--area", "c-lh", "--from", "2026-12-02", "--days", "1")
    assert code == 0, out
    assert "added 1 shift(s)" in out and "xu-yan" in out and "ma-lin" not in out


def test_unknown_people_are_all_named_and_nothing_is_written(
    capsys: pytest.CaptureFixture[str], cfg: Path, data: Path
) -> None:
    before = (data / "rota.toml").read_text(encoding="utf-8")
    code, out = run(capsys, cfg, str(GOOGLE), "--area", "c-lh", "--from", "2026-03-20")
    assert code == 2, out
    assert "nobody in staff.csv matches" in out
    assert "'Zhang Wei'" in out
    assert (data / "rota.toml").read_text(encoding="utf-8") == before


def test_a_bad_calendar_file_or_area_is_refused(
    capsys: pytest.CaptureFixture[str], cfg: Path, tmp_path: Path, ics: Path
) -> None:
    bad = tmp_path / "bad.ics"
    bad.write_text("BEGIN:VCALENDAR\r\nnot a calendar\r\n", encoding="utf-8")
    code, out = run(capsys, cfg, str(bad), "--area", "c-lh")
    assert code == 2 and "eldercall rota import: " in out and "bad.ics" in out
    code, out = run(capsys, cfg, str(tmp_path / "missing.ics"), "--area", "c-lh")
    assert code == 2 and "cannot read" in out
    code, out = run(capsys, cfg, str(ics), "--area", "c-zz")
    assert code == 2 and "no area 'c-zz'" in out


def test_a_floating_overnight_shift_across_the_spring_change_keeps_its_real_length(
    capsys: pytest.CaptureFixture[str], cfg: Path, data: Path, tmp_path: Path
) -> None:
    rota_toml = data / "rota.toml"
    rota_toml.write_text(
        'timezone = "Europe/London"\n' + rota_toml.read_text(encoding="utf-8"), encoding="utf-8"
    )
    night = tmp_path / "night.ics"
    night.write_bytes(
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        b"UID:night@test\r\nDTSTAMP:20270301T000000Z\r\nDTSTART:20270327T200000\r\n"
        b"DTEND:20270328T080000\r\nSUMMARY:Emma Liu\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    code, out = run(capsys, cfg, str(night), "--area", "c-lh", "--from", "2027-03-20")
    assert code == 0, out
    assert "Europe/London" in out
    text = rota_toml.read_text(encoding="utf-8")
    # 20:00 GMT to 08:00 BST: 11 real hours, the skipped hour neither lost nor doubled.
    assert "start = 2027-03-27T20:00:00+00:00\nend = 2027-03-28T08:00:00+01:00\n" in text
    directory = load_directory(data)
    on = lambda at: "emma-liu" in {d.staff.id for d in rota.on_duty(directory, "c-lh", at)}  # noqa: E731
    assert on(datetime(2027, 3, 27, 20, 0, tzinfo=UTC))
    assert on(datetime(2027, 3, 28, 6, 59, tzinfo=UTC))
    assert not on(datetime(2027, 3, 28, 7, 0, tzinfo=UTC))
