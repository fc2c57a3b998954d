"""The operator API's iCalendar feeds of the rota, and ``/me/calendars``.

Calendar apps cannot send a bearer header: the feeds take a read-only feed token in
the query string (dispatcher.services.calendar_feeds). The request log writes the path only, and
uvicorn's access log (which would print the query) is off, so the token is not logged.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from dispatcher.core.directory import Staff
from dispatcher.entrypoints.http.deps import PREFIX, Refused, StaffDep
from dispatcher.services.calendar_feeds import CalendarFeeds, FeedNotFoundError

router = APIRouter(prefix=PREFIX)

_ICS = "text/calendar; charset=utf-8"


def _calendars(request: Request) -> CalendarFeeds:
    found: CalendarFeeds | None = request.state.calendars
    if found is None:
        raise Refused(503, "calendar feeds are not available in this server")
    return found


CalendarsDep = Annotated[CalendarFeeds, Depends(_calendars)]


def _feed_reader(feeds: CalendarFeeds, token: str | None) -> Staff:
    reader = feeds.reader(token)
    if reader is None:
        raise Refused(401, "missing or invalid feed token: use the URL from /api/v1/me/calendars")
    return reader


def _ics(data: bytes, filename: str) -> Response:
    return Response(
        data, media_type=_ICS, headers={"Content-Disposition": f'inline; filename="{filename}"'}
    )


@router.get("/rota/{area_id}.ics", response_class=Response, tags=["calendars"])
async def area_calendar(
    area_id: str, feeds: CalendarsDep, token: Annotated[str | None, Query()] = None
) -> Response:
    """An area's schedule as iCalendar (28 days back, 92 ahead), for any staff feed token."""
    _feed_reader(feeds, token)
    try:
        data = feeds.area_feed(area_id)
    except FeedNotFoundError as exc:
        raise Refused(404, str(exc)) from None
    return _ics(data, f"{area_id}.ics")


@router.get("/staff/{staff_id}/shifts.ics", response_class=Response, tags=["calendars"])
async def staff_calendar(
    staff_id: str, feeds: CalendarsDep, token: Annotated[str | None, Query()] = None
) -> Response:
    """One person's shifts on every schedule: their own feed token or a supervisor's."""
    reader = _feed_reader(feeds, token)
    if not feeds.may_read_person(reader, staff_id):
        raise Refused(403, "only the person or a supervisor may read someone's shifts")
    try:
        data = feeds.person_feed(staff_id)
    except FeedNotFoundError as exc:
        raise Refused(404, str(exc)) from None
    return _ics(data, f"{staff_id}-shifts.ics")


@router.get("/me/calendars", tags=["calendars"])
async def my_calendars(request: Request, staff: StaffDep, feeds: CalendarsDep) -> dict[str, Any]:
    """The caller's calendar subscription URLs (with their feed token)."""
    try:
        return feeds.urls(staff, str(request.base_url))
    except FeedNotFoundError as exc:
        raise Refused(404, str(exc)) from None
