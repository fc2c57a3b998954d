"""A building-wide power cut: many ``power_lost`` at once in one place is ONE alert.

A cut across a building sends hundreds of ``power_lost`` within seconds; hundreds of
technical alerts would bury the one that matters. The rule: when at least N devices
of one building (or M of one community) have lost power within a window (a minute
by default), their losses are one grouped alert; later losses in that place join
it, and it clears when every device of the place has its power back.

Pure: the places come from the directory, the times from the caller (``now``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from dispatcher.core.directory import Directory, Resident

POWER_CUT = "power_cut"  # the grouped alert's key


class PlaceKind(StrEnum):
    BUILDING = "building"
    COMMUNITY = "community"


@dataclass(frozen=True)
class Place:
    """A building (its address without the flat) or a whole community."""

    kind: PlaceKind
    key: str  # unique: "community|building address" or the community id
    community_id: str
    label: str  # for people: the building's address, or the community's name

    @property
    def group_id(self) -> str:
        """The grouped alert's device id: stands for the place, fits 64 characters,
        and matches no real device (device ids have no dot)."""
        digest = hashlib.sha256(f"{self.kind}|{self.key}".encode()).hexdigest()[:16]
        return f"power-cut.{self.kind.value[0]}.{digest}"


def building_address(resident: Resident) -> str | None:
    """The address of the resident's building: her address without the flat. None
    when the record does not say which building (no building, or no room to strip)."""
    address = resident.address.strip()
    room = resident.room.strip()
    if room:
        for suffix in (f"{room}室", room):
            if address.endswith(suffix) and len(address) > len(suffix):
                return address[: -len(suffix)].rstrip(" ,，")
    building = resident.building.strip()
    if building and building in address:
        return address[: address.index(building) + len(building)]
    return None


def places_of(resident: Resident, directory: Directory) -> list[Place]:
    """Where the resident's device is: her building (when known), then her community."""
    out: list[Place] = []
    building = building_address(resident)
    if building:
        out.append(
            Place(
                PlaceKind.BUILDING,
                f"{resident.community_id}|{building}",
                resident.community_id,
                building,
            )
        )
    area = directory.areas.get(resident.community_id)
    out.append(
        Place(
            PlaceKind.COMMUNITY,
            resident.community_id,
            resident.community_id,
            area.name if area else resident.community_id,
        )
    )
    return out


@dataclass(frozen=True)
class PlaceIndex:
    """Every place of the directory's residents, and the devices in each."""

    by_device: dict[str, list[Place]] = field(default_factory=dict)
    devices: dict[str, tuple[str, ...]] = field(default_factory=dict)  # by place key

    @classmethod
    def of(cls, directory: Directory) -> PlaceIndex:
        by_device: dict[str, list[Place]] = {}
        devices: dict[str, list[str]] = {}
        # One object per place and per combination of places, shared by the devices in
        # them: 100,000 residents in a few hundred buildings are a few hundred lists.
        shared: dict[tuple[str, ...], list[Place]] = {}
        for resident in directory.residents.values():
            if not resident.device_id:  # no device in service: nothing to lose power
                continue
            found = places_of(resident, directory)
            places = shared.setdefault(tuple(p.key for p in found), found)
            by_device[resident.device_id] = places
            for place in places:
                devices.setdefault(place.key, []).append(resident.device_id)
        return cls(by_device, {key: tuple(sorted(ds)) for key, ds in devices.items()})

    def places(self, device_id: str) -> list[Place]:
        return self.by_device.get(device_id, [])

    def members(self, place: Place) -> tuple[str, ...]:
        return self.devices.get(place.key, ())


@dataclass(frozen=True)
class PowerCutRule:
    building_devices: int = 3  # in one building within the window: a power cut
    community_devices: int = 10  # in one community within the window: a power cut
    window: timedelta = timedelta(seconds=60)

    def threshold(self, place: Place) -> int:
        if place.kind is PlaceKind.BUILDING:
            return self.building_devices
        return self.community_devices

    def recent(self, lost_since: Mapping[str, datetime], now: datetime) -> list[str]:
        """The devices that lost power within the window before ``now``, in order."""
        start = now - self.window
        return sorted(
            (d for d, at in lost_since.items() if start <= at <= now),
            key=lambda d: (lost_since[d], d),
        )

    def is_cut(self, place: Place, lost_since: Mapping[str, datetime], now: datetime) -> bool:
        """Whether the losses of the place's devices (device -> power lost since) make
        a power cut at ``now``."""
        return len(self.recent(lost_since, now)) >= self.threshold(place)


def describe(place: Place, devices: Iterable[str], shown: int = 40) -> str:
    """The grouped alert's detail: the place and the devices without power."""
    listed = sorted(devices)
    names = ", ".join(listed[:shown]) + (
        f" … (+{len(listed) - shown})" if len(listed) > shown else ""
    )
    where = "building" if place.kind is PlaceKind.BUILDING else "community"
    return f"停电 power cut: {place.label} ({where}), {len(listed)} devices: {names}"
