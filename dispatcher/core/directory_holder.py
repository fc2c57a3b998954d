"""The directory in force: one holder that every reader goes through.

The :class:`~dispatcher.core.directory.Directory` itself stays frozen; a change to the
registry builds a new one and :meth:`DirectoryHolder.swap` puts it in place in one
assignment, so a reader sees either the old directory or the new one, never half of
each. A reader that needs one consistent view for a whole step (a batch of device
events, an escalation step) reads ``current`` once and keeps that. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable

from dispatcher.core.directory import Directory


class DirectoryHolder:
    def __init__(self, directory: Directory) -> None:
        self._current = directory
        self._listeners: list[Callable[[Directory], None]] = []
        self.version = 0  # how many swaps: 0 for the directory it was made with

    @property
    def current(self) -> Directory:
        return self._current

    def swap(self, directory: Directory) -> None:
        """Put ``directory`` in force, then tell those who keep something derived from
        it (a cache, a framework's state object)."""
        self._current = directory
        self.version += 1
        for listener in list(self._listeners):
            listener(directory)

    def on_swap(self, listener: Callable[[Directory], None]) -> None:
        self._listeners.append(listener)


def hold(directory: Directory | DirectoryHolder) -> DirectoryHolder:
    """A holder for ``directory``: the one given, or a new one around a plain directory
    (a test's, or a one-off command's, that never changes)."""
    return directory if isinstance(directory, DirectoryHolder) else DirectoryHolder(directory)


class ReadsDirectory:
    """A service that keeps a holder in ``_directories``: ``_directory`` is the
    directory in force (the registry swaps it), read afresh each time."""

    _directories: DirectoryHolder

    @property
    def _directory(self) -> Directory:
        return self._directories.current
