"""The data folder's optional ``passwords.csv``: an argon2 hash per staff member,
given to those who have no password in the database yet (the example data's demo
passwords). A password set since (``eldercall staff set-password``) is kept."""

from __future__ import annotations

from pathlib import Path

from dispatcher.adapters.files.directory_files import DataFileError, read_rows
from dispatcher.core.directory import Directory

PASSWORDS = "passwords.csv"


def load_password_hashes(
    folder: Path, directory: Directory, *, unknown_ok: bool = False
) -> dict[str, str]:
    """Staff id to hash; an empty mapping without the file. Raises DataFileError
    naming every bad line (an unknown staff id, a value that is no argon2 hash).
    ``unknown_ok``: a staff id the directory does not know is passed over (the
    registry in the database has deleted someone the seed file still names)."""
    path = folder / PASSWORDS
    if not path.is_file():
        return {}
    hashes: dict[str, str] = {}
    problems: list[str] = []
    for row in read_rows(path, ("staff_id", "password_hash")):
        staff_id, hashed = row.values["staff_id"], row.values["password_hash"]
        if staff_id not in directory.staff:
            if unknown_ok:
                continue
            problems.append(f"{row.where}: staff_id {staff_id!r} is not in staff.csv")
        elif staff_id in hashes:
            problems.append(f"{row.where}: a second line for {staff_id!r}")
        elif not hashed.startswith("$argon2id$") or len(hashed) > 255:
            # Plain text here would be a password readable by anyone with the folder.
            problems.append(
                f"{row.where}: password_hash is not an argon2id hash "
                "(make one with `eldercall staff hash-password`)"
            )
        else:
            hashes[staff_id] = hashed
    if problems:
        raise DataFileError(problems)
    return hashes
