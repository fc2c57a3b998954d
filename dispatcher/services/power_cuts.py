"""Power cuts in the intake: ``power_lost`` from many devices of one place becomes ONE
grouped technical alert (``dispatcher.core.power_cut`` decides when), in the batch's
own transaction.

Each device's power state is a column of its link (``power_lost_at``), written at
once (not held back with the batch's other rows), so that the next message of the
same batch counts it. When the rule finds a cut, the grouped alert opens (its device
id stands for the place), the place's individual ``power_lost`` alerts of the window
are folded into it (resolved, their unsent SMS cancelled: the maintenance team is
told once), and later losses in the place join it; it clears when no device of the
place is without power any more. Every join, restoral and fold is on its timeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from dispatcher.core import calls as lifecycle
from dispatcher.core.calls import Call, CallState, Transition
from dispatcher.core.directory import Directory
from dispatcher.core.directory_holder import DirectoryHolder, hold
from dispatcher.core.power_cut import POWER_CUT, Place, PlaceIndex, PowerCutRule, describe

if TYPE_CHECKING:
    from dispatcher.services.intake import Intake, IntakeStore, _Batch

POWER_LOST = "power_lost"


class PowerStore(Protocol):
    """The devices' power state, in the intake's transaction (written at once)."""

    async def set_power_lost(self, device_id: str, since: datetime | None, now: datetime) -> None:
        """``since``: the device lost power then (kept if it already had); None: it
        has power again."""

    async def power_lost_of(self, device_ids: Sequence[str]) -> dict[str, datetime]:
        """Those of these devices without power, and since when."""
        ...


class PowerCuts:
    def __init__(self, directory: Directory | DirectoryHolder, rule: PowerCutRule) -> None:
        holder = hold(directory)
        self._index = PlaceIndex.of(holder.current)
        self.rule = rule
        # The places follow the registry: a resident added or moved is in them at once.
        holder.on_swap(self._reindex)

    def _reindex(self, directory: Directory) -> None:
        self._index = PlaceIndex.of(directory)

    async def lost(
        self, intake: Intake, store: IntakeStore, device_id: str, now: datetime, done: _Batch
    ) -> Call | None:
        """A ``power_lost``: the grouped alert it joins or opens, or None (an alert of
        its own, as before)."""
        places = self._index.places(device_id)
        if not places:  # an unregistered device: no building known
            return None
        await store.set_power_lost(device_id, now, now)
        for place in places:
            group = await _fresh_alert(store, place.group_id, POWER_CUT, done)
            if group is not None:
                await self._join(store, group, place, device_id, now)
                return group
        for place in places:
            lost = await store.power_lost_of(self._index.members(place))
            if self.rule.is_cut(place, lost, now):
                return await self._open(intake, store, place, lost, device_id, now, done)
        return None

    async def restored(
        self, store: IntakeStore, device_id: str, now: datetime, done: _Batch
    ) -> Call | None:
        """A ``power_restored``: noted on the place's grouped alert, which clears when
        the whole place has power again; returns that alert (None: no group)."""
        places = self._index.places(device_id)
        if not places:
            return None
        await store.set_power_lost(device_id, None, now)
        for place in places:
            group = await _fresh_alert(store, place.group_id, POWER_CUT, done)
            if group is None:
                continue
            still = await store.power_lost_of(self._index.members(place))
            t = Transition()
            t.note(now, "device", "power_restored", "mqtt", f"{device_id}: power restored")
            await store.record(group, t, now)
            if not still:
                why = f"power restored in {place.label}"
                await store.record(group, lifecycle.clear_technical(group, now, why), now)
                await store.cancel_pending_sms(group.id, "fault cleared")
                done.calls[(place.group_id, POWER_CUT)] = None
                done.logs.append(("power_cut_cleared", {"call_id": group.id, "place": place.key}))
            else:
                group.detail = describe(place, still)
            return group
        return None

    async def _join(
        self, store: IntakeStore, group: Call, place: Place, device_id: str, now: datetime
    ) -> None:
        lost = await store.power_lost_of(self._index.members(place))
        group.detail = describe(place, lost)
        group.updated_at = now
        t = Transition()
        t.note(now, "device", "device_joined", "mqtt", f"{device_id}: power lost")
        await store.record(group, t, now)

    async def _open(
        self,
        intake: Intake,
        store: IntakeStore,
        place: Place,
        lost: dict[str, datetime],
        device_id: str,
        now: datetime,
        done: _Batch,
    ) -> Call:
        group = await intake.open_group_alert(
            store,
            place.group_id,
            POWER_CUT,
            now,
            community_id=place.community_id,
            detail=describe(place, lost),
            done=done,
        )
        t = Transition()
        t.note(now, "system", "power_cut", "mqtt", describe(place, lost))
        await store.record(group, t, now)
        # The place's own alerts of the window are this cut: one alert, told once.
        for member in self.rule.recent(lost, now):
            if member == device_id:
                continue
            alert = await _fresh_alert(store, member, POWER_LOST, done)
            if alert is None or alert.state is CallState.RESOLVED:
                continue
            await store.record(alert, _folded(alert, group, now), now)
            await store.cancel_pending_sms(alert.id, f"grouped into {group.id}")
            done.calls[(member, POWER_LOST)] = None
        done.logs.append(
            ("power_cut_opened", {"call_id": group.id, "place": place.key, "devices": len(lost)})
        )
        return group


def _folded(alert: Call, group: Call, now: datetime) -> Transition:
    """An individual power alert that is part of a grouped one: resolved into it."""
    return lifecycle.clear_technical(alert, now, f"grouped into power cut {group.id}")


async def _fresh_alert(store: IntakeStore, device_id: str, key: str, done: _Batch) -> Call | None:
    """The active alert, as the batch knows it (opened or closed by it), else as stored
    (prefetched for the batch's own devices only, so asked here)."""
    if (device_id, key) in done.calls:
        return done.calls[(device_id, key)]
    found = await store.active_alert(device_id, key)
    done.calls[(device_id, key)] = found
    return found
