"""``eldercall rota check``: the rota report, offline.

Reads the configuration and the data folder, and the overrides made through the
API when the database can be reached (it is only read: no migration, no write).
Exit codes: 0 the command centre is always staffed, 1 it has a gap, 2 the
configuration or the data folder cannot be used.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import make_url

from dispatcher.adapters.db.rota_overrides_store import read_stored
from dispatcher.adapters.files.directory_files import DataFileError, load_directory
from dispatcher.config import ConfigError, load_settings
from dispatcher.core.directory import Directory
from dispatcher.core.rota.check import check, format_report
from dispatcher.core.rota.model import Override
from dispatcher.services.rota_overrides import usable


def _missing_sqlite_file(url: str) -> str | None:
    parsed = make_url(url)
    if (
        parsed.get_backend_name() == "sqlite"
        and parsed.database not in (None, "", ":memory:")
        and not Path(parsed.database).is_file()
    ):
        return parsed.database
    return None


async def _stored_overrides(url: str) -> tuple[list[Override], str]:
    """The overrides in the database, and a line saying whether they could be read."""
    from dispatcher.adapters.db.schema import make_engine, make_sessionmaker

    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            found = await read_stored(session)
    except Exception as exc:  # unreachable, or not migrated yet: report without them
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return [], f"database not readable ({reason}): overrides from the API are NOT included"
    finally:
        await engine.dispose()
    return found, f"{len(found)} override(s) from the API included"


def _add_stored(directory: Directory, stored: list[Override]) -> list[str]:
    notes = []
    for o in stored:
        why = usable(directory, o)
        if why is not None:
            notes.append(f"override {o.id} from the API ignored: {why}")
        elif directory.overrides.get(o.id) is None:
            directory.overrides.add(o)
    return notes


def main_check(config: str | None, days: int, start: datetime | None, now: datetime) -> int:
    try:
        settings = load_settings(config)
        directory = load_directory(settings.data.dir, settings.data.timezone)
    except (ConfigError, DataFileError) as exc:
        print(f"eldercall rota check: {exc}", file=sys.stderr)
        return 2
    missing = _missing_sqlite_file(settings.database.url)
    stored: list[Override]
    if missing:
        stored, note = [], f"no database at {missing} yet: no overrides from the API"
    else:
        stored, note = asyncio.run(_stored_overrides(settings.database.url))
    notes = [note, *_add_stored(directory, stored)]
    begins = start or now
    report = check(directory, begins, begins + timedelta(days=days))
    lines = format_report(report, directory)
    print("\n".join([*lines[:1], *(f"({n})" for n in notes), *lines[1:]]))
    return 1 if report.command_centre_gaps else 0
