"""The rota file and the policies file, reloaded while the daemon runs.

A small poller (``[data] reload_interval_s``, 5 s) asks a watcher which of
``rota.toml`` and ``policies.toml`` changed. A changed file is loaded and checked as
at start-up before anything moves:

- ``rota.toml``: read against the running directory's areas and staff; the policies
  in force must still find every rotation they name; the command centre must have
  someone on duty for ``[rota] startup_check_days`` (with the overrides made through
  the API). Then a directory with the new rota is put in force by the holder's swap,
  in one step (``core.rota.reload``); the registry's next rebuild starts from it.
- ``policies.toml``: read against the running directory (its rotations included),
  with the configuration's ``[escalation.policies]`` over it, then handed to the
  intake, which copies the policy onto each call it opens (a call in progress keeps
  its own).

A file that does not pass leaves the running version in force: one ``error`` log line
names the file and every problem (``file:line: problem``), and :meth:`DataReloader.status`
(``/health/data``, ``/metrics``) says why until a later version loads. Nothing here
raises past :meth:`DataReloader.poll`. Only these two files: areas, staff and
residents are the registry's, changed through it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog

from dispatcher.core.directory import Directory
from dispatcher.core.directory_holder import DirectoryHolder, ReadsDirectory, hold
from dispatcher.core.policy_book import PolicyBook
from dispatcher.core.rota.check import require_command_centre
from dispatcher.core.rota.model import Override, Rotation, Schedule
from dispatcher.core.rota.reload import rotations_named, with_rota
from dispatcher.services.clock import Clock
from dispatcher.services.rota_overrides import is_from_api

log = structlog.get_logger(__name__)

ROTA = "rota.toml"
POLICIES = "policies.toml"


class Watcher(Protocol):
    def changed(self) -> list[str]:
        """The names of the watched files whose content changed since last asked."""
        ...


class LoadedRota(Protocol):
    """What the rota file's loader gives (``adapters.files.rota_toml.RotaFile``)."""

    @property
    def rotations(self) -> dict[str, Rotation]: ...
    @property
    def schedules(self) -> dict[str, Schedule]: ...
    @property
    def overrides(self) -> list[Override]: ...


class Refused(Exception):
    """A file that cannot be used: ``problems`` has one ``file:line: problem`` each."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems) or ["the file cannot be used"]
        super().__init__("\n".join(self.problems))


# Loaders given by bootstrap: each raises (any exception: its message is the problem).
RotaLoader = Callable[[Directory], LoadedRota]
PoliciesLoader = Callable[[Directory], PolicyBook]


@dataclass
class FileStatus:
    """One watched file: when its version in force was loaded, and why the version on
    disk is not in force (None: it is)."""

    loaded_at: datetime
    reloads: int = 0
    error: str | None = None
    error_at: datetime | None = None
    failures: int = 0


class Policies(Protocol):
    """Who holds the policy book in force (the intake)."""

    @property
    def policies(self) -> PolicyBook: ...

    def use_policies(self, policies: PolicyBook) -> None: ...


class DataReloader(ReadsDirectory):
    def __init__(
        self,
        watcher: Watcher,
        directory: Directory | DirectoryHolder,
        holder: Policies,
        clock: Clock,
        *,
        load_rota: RotaLoader,
        load_policies: PoliciesLoader,
        check_days: int,
    ) -> None:
        self._watcher = watcher
        self._directories = hold(directory)
        self._holder = holder
        self._clock = clock
        self._load_rota = load_rota
        self._load_policies = load_policies
        self._check_days = check_days
        now = clock.now()
        self._status = {ROTA: FileStatus(now), POLICIES: FileStatus(now)}

    def status(self) -> dict[str, FileStatus]:
        return dict(self._status)

    def poll(self) -> list[str]:
        """Reload what changed; returns the names of the files now in force anew.
        Never raises: a file that fails is reported and the running version kept."""
        try:
            changed = self._watcher.changed()
        except Exception as exc:  # a watcher fault must not stop the poller
            log.exception("data_reload_watch_failed", error=repr(exc))
            return []
        loaded = []
        # The rota first: policies.toml's rotation: targets are checked against it.
        for name, reload in ((ROTA, self._reload_rota), (POLICIES, self._reload_policies)):
            if name not in changed:
                continue
            try:
                reload()
            except Exception as exc:
                self._failed(name, exc)
            else:
                self._loaded(name)
                loaded.append(name)
        return loaded

    async def run(self, interval_s: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.poll()
            try:
                async with asyncio.timeout(interval_s):
                    await stop.wait()
            except TimeoutError:
                pass

    def _reload_rota(self) -> None:
        live = self._directory
        new = self._load_rota(live)
        kept = [o for o in live.overrides if is_from_api(o)]
        trial = with_rota(live, new.rotations, new.schedules, new.overrides, kept)
        missing = sorted(rotations_named(self._holder.policies) - trial.rotations.keys())
        if missing:
            raise Refused(
                f"{ROTA}: the policies in force name rotation {r!r}, which it no longer has"
                for r in missing
            )
        require_command_centre(trial, self._clock.now(), self._check_days)
        # No await since ``live`` was read: nothing changed it meanwhile (an override
        # made through the API, a registry change), and every reader sees the old rota
        # or the new one.
        self._directories.swap(trial)
        log.info(
            "rota_reloaded",
            rotations=len(trial.rotations),
            schedules=len(trial.schedules),
            overrides=len(trial.overrides),
        )

    def _reload_policies(self) -> None:
        book = self._load_policies(self._directory)
        self._holder.use_policies(book)
        kinds = sorted(book.defaults)
        log.info("policies_reloaded", kinds=kinds, communities=sorted(book.by_community))

    def _loaded(self, name: str) -> None:
        status = self._status[name]
        status.loaded_at, status.reloads = self._clock.now(), status.reloads + 1
        status.error = status.error_at = None

    def _failed(self, name: str, exc: Exception) -> None:
        problems = exc.problems if isinstance(exc, Refused) else _problems(exc)
        status = self._status[name]
        status.error = "\n".join(problems)
        status.error_at, status.failures = self._clock.now(), status.failures + 1
        log.error("data_reload_refused", file=name, problems=problems, kept="the running version")


def _problems(exc: Exception) -> list[str]:
    listed = getattr(exc, "problems", None)  # DataFileError lists them
    if isinstance(listed, list) and listed:
        return [str(p) for p in listed]
    return [str(exc) or repr(exc)]
