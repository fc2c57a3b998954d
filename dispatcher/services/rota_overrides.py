"""Rota overrides made through the API: kept in the database, applied at once.

The directory's :class:`~dispatcher.core.rota.model.OverrideBook` is shared by everyone
who reads the rota (routing, the escalator, the API). At start-up the overrides
stored in the database are added to it; an override created or deleted through the
API is written to the database and then to the book in the same process, so the
next routing decision sees it. Overrides written in ``rota.toml`` are read-only
here: they are changed by editing the file.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from dispatcher.core.directory import Directory, Staff
from dispatcher.core.directory_holder import DirectoryHolder, ReadsDirectory, hold
from dispatcher.core.rota import on_duty as rota
from dispatcher.core.rota.model import Override, OverrideKind
from dispatcher.services.clock import Clock
from dispatcher.services.ports import Transactions

log = structlog.get_logger(__name__)

MAX_LENGTH = timedelta(days=366)
API_PREFIX = "ov-"


class OverrideRefused(ValueError):
    """The override asked for cannot be made; the message says why (HTTP 422)."""


class OverrideNotFound(LookupError):
    pass


class OverrideInFile(Exception):
    """The override is written in the rota file: edit the file to change it (HTTP 409)."""


@dataclass(frozen=True)
class OverrideRequest:
    area_id: str
    kind: OverrideKind
    staff_id: str
    start: datetime
    end: datetime
    replaces: str | None = None
    role: str | None = None
    reason: str = ""


def usable(directory: Directory, override: Override) -> str | None:
    """Why a stored override no longer fits the directory (its people or area are
    gone from the data files), or None."""
    if override.area_id not in directory.areas:
        return f"area {override.area_id} is not in the data folder"
    for person in (override.staff_id, override.replaces):
        if person is not None and person not in directory.staff:
            return f"staff {person} is not in the data folder"
    return None


def is_from_api(override: Override) -> bool:
    return override.id.startswith(API_PREFIX)


class OverrideStore(Protocol):
    """The overrides made through the API, in one transaction."""

    async def stored(self) -> list[Override]:
        """Every override stored, by start."""
        ...

    async def add(self, override: Override, created_at: datetime) -> None: ...

    async def remove(self, override_id: str) -> None: ...


class RotaOverrides(ReadsDirectory):
    def __init__(
        self, tx: Transactions[OverrideStore], directory: Directory | DirectoryHolder, clock: Clock
    ) -> None:
        self._tx = tx
        self._directories = hold(directory)
        self._clock = clock

    @property
    def book(self) -> list[Override]:
        return list(self._directory.overrides)

    async def load(self) -> int:
        """Add the stored overrides to the directory's book; how many were added."""
        async with self._tx.read() as store:
            stored = await store.stored()
        added = 0
        for o in stored:
            why = usable(self._directory, o)
            if why is not None:
                log.warning("rota_override_ignored", override_id=o.id, reason=why)
                continue
            if self._directory.overrides.get(o.id) is None:
                self._directory.overrides.add(o)
                added += 1
        return added

    def list(self, *, include_past: bool = False) -> list[Override]:
        now = self._clock.now()
        return [o for o in self._directory.overrides if include_past or o.end > now]

    async def create(self, by: Staff, request: OverrideRequest) -> Override:
        """Check, store and apply an override. Raises :class:`OverrideRefused`."""
        now = self._clock.now()
        override = self._checked(by, request, now)
        async with self._tx.begin() as store:
            await store.add(override, now)
        self._directory.overrides.add(override)
        log.info(
            "rota_override_created",
            override_id=override.id,
            area_id=override.area_id,
            kind=override.kind.value,
            staff_id=override.staff_id,
            by=by.id,
        )
        return override

    async def delete(self, by: Staff, override_id: str) -> Override:
        found = self._directory.overrides.get(override_id)
        if found is None:
            raise OverrideNotFound(override_id)
        if not is_from_api(found):
            raise OverrideInFile(
                f"override {override_id} is written in {found.created_by or 'the rota file'}: "
                "edit the file to change it"
            )
        async with self._tx.begin() as store:
            await store.remove(override_id)
        self._directory.overrides.remove(override_id)
        log.info("rota_override_deleted", override_id=override_id, by=by.id)
        return found

    def _checked(self, by: Staff, r: OverrideRequest, now: datetime) -> Override:
        d = self._directory
        if r.area_id not in d.areas:
            raise OverrideRefused(f"area {r.area_id!r} is not in the data folder")
        for key, person in (("staff", r.staff_id), ("replaces", r.replaces)):
            if person is not None and person not in d.staff:
                raise OverrideRefused(f"{key} {person!r} is not in the data folder")
        if r.end <= now:
            raise OverrideRefused("the override ends in the past: it would change nothing")
        if r.end - r.start > MAX_LENGTH:
            raise OverrideRefused("an override lasts at most 366 days: change the rota file")
        try:
            override = Override(
                id=API_PREFIX + secrets.token_hex(5),
                area_id=r.area_id,
                kind=r.kind,
                start=r.start,
                end=r.end,
                staff_id=r.staff_id,
                replaces=r.replaces,
                role=r.role,
                reason=r.reason,
                created_by=by.id,
            )
        except ValueError as exc:
            raise OverrideRefused(str(exc)) from None
        if r.area_id == d.district.id:
            # The command centre must never be left with nobody: refuse rather than
            # find out when an emergency comes in.
            book = d.overrides.copy()
            book.add(override)
            trial = dc_replace(d, overrides=book)
            holes = rota.district_gaps(trial, max(r.start, now), r.end)
            if holes:
                begins, ends = holes[0]
                raise OverrideRefused(
                    "this override would leave the command centre with nobody on duty "
                    f"from {begins.isoformat()} to {ends.isoformat()}"
                )
        return override
