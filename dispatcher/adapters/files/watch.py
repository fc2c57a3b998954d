"""Which data files changed since last looked at: size and modification time (to the
nanosecond) first, then a SHA-256 of the content, so that a file touched but not
changed (an editor's save of the same text, a ``git checkout``) is not a change. A
file given new bytes of the same size AND its old modification time back (``cp -p``
of another version of that exact size) is not seen until it is touched again.

Polled by the daemon every few seconds (``[data] reload_interval_s``): no inotify and
no dependency; a poll costs one ``stat`` per file while nothing changes.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Seen:
    """What a file was when last looked at; ``digest`` is None when it was absent."""

    mtime_ns: int | None
    size: int | None
    digest: str | None


ABSENT = Seen(None, None, None)


def look(path: Path) -> Seen:
    """The file's stat and digest now (ABSENT when it is not there or cannot be read)."""
    try:
        stat = path.stat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ABSENT
    return Seen(stat.st_mtime_ns, stat.st_size, digest)


class FileWatch:
    """Files watched by name; :meth:`changed` says which differ from when last seen."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self._paths = dict(paths)
        # The baseline: the files as the daemon is about to read them at start.
        self._seen = {name: look(path) for name, path in self._paths.items()}

    def path(self, name: str) -> Path:
        return self._paths[name]

    def digest(self, name: str) -> str | None:
        return self._seen[name].digest

    def changed(self) -> list[str]:
        """The names whose content changed (or that appeared or went) since last asked."""
        out = []
        for name, path in self._paths.items():
            before = self._seen[name]
            try:
                stat = os.stat(path)
            except OSError:
                now = ABSENT
            else:
                if (stat.st_mtime_ns, stat.st_size) == (before.mtime_ns, before.size):
                    continue  # the usual poll: nothing touched it
                now = look(path)
            if now != before:
                self._seen[name] = now
            if now.digest != before.digest:
                out.append(name)
        return out
