"""``eldercall rota import``: add the shifts of an iCalendar file to ``rota.toml``, offline.

Each shift of the file within [from, from + days) becomes a ``[[shift]]`` table (a
dated one-off shift) of one area, appended to the data folder's ``rota.toml`` with
the event's ``uid`` and ``source = "<file name>"``. A shift whose uid is in the file
already is skipped, so importing the same file again adds nothing. A person is
matched to a staff member by staff id (files we exported), else by exact name, else
by phone number (an ATTENDEE's ``tel:`` address); the import is refused, naming them,
when anyone cannot be matched. The data folder is loaded again after writing; if it
no longer loads the file is put back. A running daemon reads the rota at start-up,
so it sees the new shifts after a restart.

Exit codes: 0 done (or nothing to add), 2 the configuration, the data folder, the
calendar file or a person cannot be used.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from dispatcher.adapters.files.directory_files import DataFileError, load_directory
from dispatcher.adapters.files.rota_toml import ROTA_TOML
from dispatcher.config import ConfigError, load_settings
from dispatcher.core.directory import Directory, Staff
from dispatcher.core.rota import ical

_PHONE_NOISE = re.compile(r"[\s\-().]")


def _phone(value: str) -> str | None:
    digits = _PHONE_NOISE.sub("", value)
    return digits if re.fullmatch(r"\+?[0-9]{5,}", digits) else None


def match_staff(directory: Directory, shift: ical.ImportedShift) -> Staff | None:
    """The staff member ``shift`` is for: by staff id, exact name, or phone number."""
    if shift.staff_id is not None and shift.staff_id in directory.staff:
        return directory.staff[shift.staff_id]
    named = [s for s in directory.staff.values() if s.name == shift.person.strip()]
    if len(named) == 1:
        return named[0]
    phone = _phone(shift.person)
    if phone is not None:
        dialled = [s for s in directory.staff.values() if s.phone and _phone(s.phone) == phone]
        if len(dialled) == 1:
            return dialled[0]
    return None


def _existing_uids(text: str) -> set[str]:
    raw = tomllib.loads(text)
    shifts = raw.get("shift", [])
    return {str(s["uid"]) for s in shifts if isinstance(s, dict) and s.get("uid")}


def shift_table(
    area_id: str, staff_id: str, shift: ical.ImportedShift, zone: ZoneInfo, source: str
) -> str:
    """One ``[[shift]]`` table (TOML; strings written as JSON strings, which TOML reads)."""

    def text(value: str) -> str:
        return json.dumps(value, ensure_ascii=False)

    return (
        "[[shift]]\n"
        f"area = {text(area_id)}\n"
        f"staff = {text(staff_id)}\n"
        f"start = {shift.start.astimezone(zone).isoformat()}\n"
        f"end = {shift.end.astimezone(zone).isoformat()}\n"
        f"role = {text(shift.role)}\n"
        f"uid = {text(shift.uid)}\n"
        f"source = {text(source)}\n"
    )


def main_import(
    config: str | None,
    calendar: Path,
    area_id: str,
    days: int,
    start: datetime | None,
    now: datetime,
    *,
    dry_run: bool = False,
) -> int:
    def fail(message: str) -> int:
        print(f"eldercall rota import: {message}", file=sys.stderr)
        return 2

    try:
        settings = load_settings(config)
        directory = load_directory(settings.data.dir, settings.data.timezone)
    except (ConfigError, DataFileError) as exc:
        return fail(str(exc))
    if area_id not in directory.areas:
        return fail(f"no area {area_id!r} in areas.csv")
    schedule = directory.schedule_by_area.get(area_id)
    zone_name = schedule.timezone if schedule else directory.timezone
    zone = ZoneInfo(zone_name)
    try:
        data = calendar.read_bytes()
    except OSError as exc:
        return fail(f"cannot read {calendar}: {exc.strerror or exc}")
    begins = start or now
    try:
        shifts = ical.import_calendar(
            data,
            window_start=begins,
            window_end=begins + timedelta(days=days),
            default_timezone=zone_name,
        )
    except ical.IcsError as exc:
        return fail(f"{calendar}: {exc}")

    matched: list[tuple[Staff, ical.ImportedShift]] = []
    unknown: set[str] = set()
    for shift in shifts:
        staff = match_staff(directory, shift)
        if staff is None:
            unknown.add(shift.person)
        else:
            matched.append((staff, shift))
    if unknown:
        return fail(
            f"{calendar}: nobody in staff.csv matches "
            + ", ".join(repr(p) for p in sorted(unknown))
            + " (by staff id, exact name or phone number): nothing imported"
        )

    rota_path = Path(settings.data.dir) / ROTA_TOML
    existed = rota_path.exists()
    try:
        before = rota_path.read_text(encoding="utf-8") if existed else ""
    except OSError as exc:
        return fail(f"cannot read {rota_path}: {exc.strerror or exc}")
    known = _existing_uids(before)
    fresh = []
    for staff, shift in matched:
        if shift.uid not in known:
            known.add(shift.uid)
            fresh.append((staff, shift))
    skipped = len(matched) - len(fresh)
    source = calendar.name
    tables = [shift_table(area_id, s.id, shift, zone, source) for s, shift in fresh]
    per_person = Counter(s.id for s, _ in fresh)
    verb = "would add" if dry_run else "added"
    summary = [
        f"{verb} {len(fresh)} shift(s) from {source} to {area_id} "
        f"({begins.astimezone(zone):%Y-%m-%d %H:%M} + {days} days, {zone_name})"
        + (f"; {skipped} already in {ROTA_TOML} skipped" if skipped else ""),
        *(
            f"  {staff_id} ({directory.staff[staff_id].name}): {n}"
            for staff_id, n in sorted(per_person.items())
        ),
    ]
    if dry_run:
        print("\n".join(["\n".join(tables), *summary]) if tables else "\n".join(summary))
        return 0
    if not fresh:
        print("\n".join(summary))
        return 0
    stamp = now.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    block = f"\n# Imported from {source} by `eldercall rota import` on {stamp}.\n\n"
    block += "\n".join(tables)
    after = (before.rstrip("\n") + "\n" if before else "") + block
    try:
        rota_path.write_text(after, encoding="utf-8")
        load_directory(settings.data.dir, settings.data.timezone)
    except (OSError, DataFileError) as exc:
        if existed:
            rota_path.write_text(before, encoding="utf-8")
        else:
            rota_path.unlink(missing_ok=True)
        return fail(f"{rota_path} would not load after the import, left as it was: {exc}")
    summary.append(f"written to {rota_path}; a running daemon sees them after a restart")
    print("\n".join(summary))
    return 0
