"""The supervisor watchdog: a call nobody has taken pages the shift supervisor.

The queue flags a call nobody has taken for 60 s on every screen
(``dispatcher.core.queue``); if still nobody takes it, the policy's
:class:`~dispatcher.core.escalation.Watchdog` pages the supervisor on shift, a step
beside the escalation policy that does not depend on anyone looking at a screen.
Its due time is a column of the call (``Call.watchdog_at``, armed by
``dispatcher.core.calls``), polled by ``dispatcher.services.watchdog``.

Pure: the call, the directory and ``now`` come in; what to page and whom goes out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from dispatcher.core.calls import Call, CallState
from dispatcher.core.directory import Area, Directory, Resident, Role
from dispatcher.core.messages import kind_name
from dispatcher.core.rota import on_duty as rota
from dispatcher.core.routing import Recipient, command_centre
from dispatcher.core.texts import text

ACTOR = "watchdog"  # the timeline's actor of a page
ACTION = "watchdog_paged"


@dataclass(frozen=True)
class Page:
    """Page number ``number`` (1 the first) of at most ``of``, for a call that has
    waited ``waited`` since it opened; ``late`` after the page fell due."""

    number: int
    of: int
    waited: timedelta
    late: timedelta

    @property
    def last(self) -> bool:
        return self.number >= self.of


def take_due_page(call: Call, now: datetime) -> Page | None:
    """If the call's page is due at ``now``, count it and set the next one's due
    time; else None. A call taken, cancelled or resolved meanwhile pages nobody (and
    its stale due time is dropped). A page late by more than the repeat interval (the
    daemon was stopped) is one page, the next counted from now: missed pages are not
    replayed."""
    due = call.watchdog_at
    if due is None or due > now:
        return None
    watchdog = call.policy.watchdog
    if (
        watchdog is None
        or call.state is not CallState.OPEN
        or call.acknowledged_at is not None
        or call.watchdog_pages >= watchdog.pages
    ):
        call.watchdog_at = None
        return None
    call.watchdog_pages += 1
    call.watchdog_paged_at = call.watchdog_paged_at or now
    more = call.watchdog_pages < watchdog.pages
    call.watchdog_at = now + timedelta(seconds=watchdog.repeat_every_s) if more else None
    call.updated_at = now
    return Page(call.watchdog_pages, watchdog.pages, now - call.opened_at, now - due)


@dataclass(frozen=True)
class Supervisors:
    """Whom a page reaches. ``found_at`` is the area of the call's chain whose rota
    has them on duty; None when no supervisor is on duty anywhere in the chain and
    the page falls back (``fallback``: ``district`` for every supervisor of the
    district, ``command_centre`` when the district has none with a phone)."""

    people: list[Recipient]
    found_at: Area | None
    fallback: str | None = None


def shift_supervisors(directory: Directory, community_id: str | None, at: datetime) -> Supervisors:
    """The supervisors on duty at ``at`` for the nearest area of the call's chain
    (community, street, district) that has one; else every supervisor of the
    district, on shift or not; else the command centre: someone is always paged."""
    for area in directory.chain(community_id):
        found = [
            _recipient(d.staff.id, d.staff.name, d.staff.phone, d.staff.language, area)
            for d in rota.on_duty(directory, area.id, at)
            if d.staff.role is Role.SUPERVISOR and d.staff.phone
        ]
        if found:
            return Supervisors(_once(found), area)
    district = directory.district
    every = [
        _recipient(s.id, s.name, s.phone, s.language, None)
        for s in directory.staff.values()
        if s.area_id == district.id and s.role is Role.SUPERVISOR and s.phone
    ]
    if every:
        return Supervisors(_once(every), None, "district")
    return Supervisors(command_centre(directory, at), None, "command_centre")


def _recipient(
    staff_id: str, name: str, phone: str | None, language: str, area: Area | None
) -> Recipient:
    assert phone is not None
    why = f"supervisor on duty at {area.level}:{area.id}" if area else "district supervisor"
    return Recipient(id=staff_id, name=name, phone=phone, language=language, why=why)


def _once(people: list[Recipient]) -> list[Recipient]:
    seen: set[str] = set()
    out = []
    for p in people:
        if p.phone not in seen:
            seen.add(p.phone)
            out.append(p)
    return out


def waited_text(language: str, waited: timedelta) -> str:
    seconds = max(0, int(waited.total_seconds()))
    minutes, secs = divmod(seconds, 60)
    if minutes:
        return text(language, "watchdog.waited_min", m=minutes, s=secs)
    return text(language, "watchdog.waited_s", s=secs)


def _who(call: Call, resident: Resident | None, directory: Directory, language: str) -> str:
    if resident is None:
        return text(language, "watchdog.who_unknown", device=call.device_id)
    community = directory.areas.get(resident.community_id)
    name = community.name if community else resident.community_id
    return text(language, "watchdog.who_resident", name=resident.name, community=name)


def page_sms(
    call: Call,
    resident: Resident | None,
    directory: Directory,
    language: str,
    page: Page,
    reply_code: int | None,
) -> str:
    """The SMS paging a supervisor: who (resident and community), the kind, how long
    it has waited untaken, the call id, and the supervisor's reply code for it (the
    SMS flow's: ``7A`` acknowledges). Never medical notes or the address."""
    reply = (
        text(language, "sms.reply", code=reply_code)
        if reply_code is not None
        else text(language, "sms.reply_none")
    )
    return text(
        language,
        "watchdog.sms",
        head=text(language, "sms.head"),
        kind=kind_name(language, call.kind),
        call_id=call.id,
        who=_who(call, resident, directory, language),
        waited=waited_text(language, page.waited),
        reply=reply,
    )


def page_summary(call: Call, resident: Resident | None, language: str, page: Page) -> str:
    """The page's line in a bundled SMS (a service request's may ride in one): still
    says that nobody has taken it."""
    name = resident.name if resident is not None else call.device_id
    return text(
        language,
        "watchdog.summary",
        call_id=call.id,
        kind=kind_name(language, call.kind),
        name=name,
        waited=waited_text(language, page.waited),
    )
