"""Calendar feeds: the rota as iCalendar files that calendar apps subscribe to.

Calendar apps fetch a URL on their own and cannot send a bearer header, so a feed URL
carries a *feed token* in its query string. A feed token is derived from the person's
API token (an HMAC of a fixed label, keyed with it): it reads calendars and nothing
else, it cannot be turned back into the API token, and changing the person's
``api_token`` revokes it. Any staff member's feed token reads an area's schedule; a
person's own shifts are read only with their own feed token or a supervisor's.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

from dispatcher.core.directory import Directory, Role, Staff
from dispatcher.core.directory_holder import DirectoryHolder, ReadsDirectory, hold
from dispatcher.core.rota import ical
from dispatcher.core.rota import on_duty as rota
from dispatcher.services.clock import Clock

FEED_LABEL = b"eldercall calendar feed v1"
# The window a feed covers, around the moment it is fetched.
FEED_PAST = timedelta(days=28)
FEED_FUTURE = timedelta(days=92)


class FeedNotFoundError(LookupError):
    """No such area or staff member."""


def feed_token(staff: Staff) -> str | None:
    """``staff``'s read-only calendar feed token; None for someone without an API token."""
    if not staff.api_token:
        return None
    return hmac.new(staff.api_token.encode(), FEED_LABEL, hashlib.sha256).hexdigest()[:32]


def shift_intervals(found: Iterable[rota.Interval]) -> list[ical.ShiftInterval]:
    """The rota's intervals as the iCalendar module's shifts (a schedule is an area's)."""
    return [
        ical.ShiftInterval(
            staff_id=i.staff_id,
            staff_name=i.staff_name,
            schedule_id=i.area_id,
            schedule_name=i.area_name,
            role=i.role,
            start=i.start,
            end=i.end,
        )
        for i in found
    ]


class CalendarFeeds(ReadsDirectory):
    """The feeds of ``directory``'s rota (overrides included, as they stand when asked)."""

    def __init__(
        self, directory: Directory | DirectoryHolder, clock: Clock, public_url: str | None = None
    ) -> None:
        self._directories = hold(directory)
        self._clock = clock
        self.public_url = public_url.rstrip("/") if public_url else None

    def reader(self, token: str | None) -> Staff | None:
        """The staff member whose feed token ``token`` is, or None."""
        if not token:
            return None
        found = None
        # As bytes: compare_digest refuses a str with non-ASCII characters (TypeError,
        # a 500), and a query string may carry anything; such a token matches nobody.
        given = token.encode("utf-8", errors="replace")
        for staff in self._directory.staff.values():
            mine = feed_token(staff)
            # Compare with everyone (constant time each) so timing says nothing.
            if mine is not None and hmac.compare_digest(mine.encode(), given):
                found = staff
        return found

    def may_read_person(self, reader: Staff, staff_id: str) -> bool:
        return reader.id == staff_id or reader.role is Role.SUPERVISOR

    def window(self) -> tuple[datetime, datetime]:
        """From local midnight 28 days ago to local midnight in 92 days: whole days, so
        a shift cut by the window is cut the same way all day long and keeps its UID
        between a calendar app's fetches (it changes once a day, at midnight)."""
        zone = ZoneInfo(self._directory.timezone)
        today = self._clock.now().astimezone(zone).date()

        def midnight(day: date) -> datetime:
            return datetime.combine(day, time(0), tzinfo=zone)

        return midnight(today - FEED_PAST), midnight(today + FEED_FUTURE)

    def area_feed(self, area_id: str) -> bytes:
        """The schedule of ``area_id`` as an .ics; FeedNotFoundError for an unknown area."""
        area = self._directory.areas.get(area_id)
        if area is None:
            raise FeedNotFoundError(f"no area {area_id!r}")
        start, end = self.window()
        schedule = self._directory.schedule_by_area.get(area_id)
        zone = schedule.timezone if schedule else self._directory.timezone
        found = rota.intervals(self._directory, area_id, start, end)
        return ical.export_calendar(
            shift_intervals(found), name=area.name, timezone=zone, now=self._clock.now()
        )

    def person_feed(self, staff_id: str) -> bytes:
        """``staff_id``'s shifts on every schedule; FeedNotFoundError for unknown staff."""
        staff = self._directory.staff.get(staff_id)
        if staff is None:
            raise FeedNotFoundError(f"no staff member {staff_id!r}")
        start, end = self.window()
        found = rota.person_intervals(self._directory, staff_id, start, end)
        return ical.export_calendar(
            shift_intervals(found),
            name=staff.name,
            timezone=self._directory.timezone,
            now=self._clock.now(),
        )

    def urls(self, staff: Staff, base_url: str) -> dict[str, object]:
        """The feed URLs ``staff`` may subscribe to: their own shifts and every area's."""
        token = feed_token(staff)
        if token is None:
            raise FeedNotFoundError(f"{staff.id} has no API token, so no feed token")
        base = (self.public_url or base_url.rstrip("/")) + "/api/v1"
        return {
            "shifts": f"{base}/staff/{quote(staff.id)}/shifts.ics?token={token}",
            "schedules": [
                {
                    "area_id": area.id,
                    "name": area.name,
                    "url": f"{base}/rota/{quote(area.id)}.ics?token={token}",
                }
                for area in self._directory.areas.values()
                if area.id in self._directory.schedule_by_area
            ],
        }
