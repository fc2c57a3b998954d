"""iCalendar (RFC 5545) export and import of duty shifts: pure, and exact across DST.

Pure functions of their arguments: no clock reads and no I/O, so the HTTP routes and
the import command choose ``now`` and the window. The RFC work is done by two libraries:
``icalendar`` parses and writes (content lines, escaping, folding at 75 octets, CRLF,
VTIMEZONE components) and ``recurring_ical_events`` expands RRULE, RDATE, EXDATE and
RECURRENCE-ID overrides. This module adds what a rota needs on top of them:

**Instants, not wall times.** Every time that leaves :func:`import_calendar` is an aware
UTC ``datetime``, found from a local wall time by RFC 5545 section 3.3.5:

* a local time that occurs twice (the hour repeated when the clocks go back) is the
  *first* occurrence: ``TZID=Europe/London:20261025T013000`` is 00:30 UTC (01:30 BST);
* a local time that does not exist (the hour skipped when the clocks go forward) is read
  with the UTC offset in force *before* the gap: ``TZID=Europe/London:20260329T013000``
  is 01:30 UTC, that is 02:30 BST.

``zoneinfo`` does exactly this (``fold=0``) for IANA zones; a zone defined only by the
file's own VTIMEZONE (Outlook's ``GMT Standard Time``, say) is read by ``dateutil``,
which puts a skipped time after the gap instead, so :func:`_instant` resolves every wall
time itself, the same way for both.

**Recurring shifts keep their hand-off time.** ``recurring_ical_events`` adds an
occurrence's length in wall-clock time, so a daily 08:00-08:00 series hands off at 08:00
local every day: the shift across the spring change is 23 h long and the one across the
autumn change 25 h, and consecutive shifts meet exactly (no hour lost or covered twice).
(RFC 5545 section 3.8.5.3 would keep a DTEND series at an exact 24 h, which on a
rota would leave an hour's gap or overlap at each change.)

**Floating times and all-day events** are read in the caller's ``default_timezone``
(the schedule's zone): an all-day event on the day London's clocks go forward is 23 h.
``X-WR-TIMEZONE`` is written on export for the apps that want it but ignored on import:
the ``x-wr-timezone`` conversion that ``recurring_ical_events.of`` applies rewrites UTC
times as local wall times and loses the fold, moving a UTC time in the repeated autumn
hour by an hour; a UTC time is an exact instant and is kept as one.

**Export** writes times as local wall times with a TZID and a VTIMEZONE built for the
years covered (so calendar apps show the rota's local hours), except a time that local
wall-clock notation cannot name unambiguously (the second 01:30 on the autumn change):
that one is written in UTC, which RFC 5545 allows beside TZID times, so it survives the
round trip.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import recurring_ical_events
from icalendar import Calendar, Component, Event, Timezone
from icalendar.prop import vDuration
from icalendar.timezone import tzp

from dispatcher.core.texts import LANGUAGES, text

PRIMARY: Final = "primary"
BACKUP: Final = "backup"
ROLES: Final = (PRIMARY, BACKUP)

# Our own properties: they carry the rota's identifiers through a round trip. Calendar
# apps keep X- properties they do not know and show nothing of them.
X_STAFF_ID: Final = "X-ELDERCALL-STAFF-ID"
X_STAFF_NAME: Final = "X-ELDERCALL-STAFF-NAME"
X_SCHEDULE_ID: Final = "X-ELDERCALL-SCHEDULE-ID"
X_ROLE: Final = "X-ELDERCALL-ROLE"

# How often subscribed calendar apps are asked to fetch the feed again (REFRESH-INTERVAL,
# RFC 7986, and X-PUBLISHED-TTL, which Outlook and Apple read). Apps may poll less often.
DEFAULT_REFRESH: Final = timedelta(hours=1)

UID_DOMAIN: Final = "eldercall"
_DATE_PROPERTIES: Final = ("DTSTART", "DTEND", "RDATE", "EXDATE", "RECURRENCE-ID")
# RFC 5545 3.6.1: at most once in a VEVENT.
_SINGLE_PROPERTIES: Final = (  # those we read, and those the expander fails on if repeated
    *("UID", "DTSTART", "DTEND", "DURATION", "RECURRENCE-ID", "SEQUENCE", "STATUS", "SUMMARY"),
    *(X_ROLE, X_STAFF_ID, X_STAFF_NAME),
)
# A shift that starts within this much of the window still needs expanding: floating and
# all-day times are compared by the expander before we place them in a zone (UTC-14..+14).
_EXPANSION_MARGIN: Final = timedelta(days=2)


T = TypeVar("T")


class IcsError(ValueError):
    """A calendar file that cannot be imported: what is wrong, and in which event."""


@dataclass(frozen=True)
class ShiftInterval:
    """One person's shift on one schedule, as exported: aware ``start`` < ``end``."""

    staff_id: str
    staff_name: str
    schedule_id: str
    schedule_name: str
    role: str  # "primary" or "backup"
    start: datetime
    end: datetime


@dataclass(frozen=True)
class ImportedShift:
    """One shift read from a calendar file; ``start`` and ``end`` are aware UTC.

    ``person`` is, in order of preference: our own ``X-ELDERCALL-STAFF-NAME``; the first
    ATTENDEE's CN; that ATTENDEE's address without its ``mailto:``/``tel:`` scheme; the
    SUMMARY. ``staff_id`` is set only for files we exported (``X-ELDERCALL-STAFF-ID``).
    ``uid`` is the event's UID, and for one occurrence of a recurring event the UID, ``#``
    and the occurrence's RECURRENCE-ID in UTC, so that every shift has its own key.
    """

    person: str
    role: str
    start: datetime
    end: datetime
    uid: str
    staff_id: str | None = None


# --- time ------------------------------------------------------------------------------


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _require_aware(what: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {value!r}")


def _whole_seconds(value: datetime) -> datetime:
    """iCalendar DATE-TIME values have whole seconds."""
    return value.replace(microsecond=0)


def _instant(wall: datetime, zone: tzinfo) -> datetime:
    """The UTC instant that the naive local ``wall`` time names in ``zone`` (RFC 5545 3.3.5).

    A repeated wall time is its first occurrence unless ``wall.fold`` is 1 (only a
    conversion from an exact instant sets it; parsing never does); a skipped wall time
    is read with the offset in force before the gap. Candidates are checked with
    ``fromutc`` (UTC to local), which both zoneinfo and dateutil get right, rather than
    with ``utcoffset`` of a wall time, where dateutil puts a skipped time after the gap.
    """
    naive = wall.replace(tzinfo=None, fold=0)
    offsets: set[timedelta] = set()
    for hours in range(-24, 25, 6):
        for fold in (0, 1):
            probe = (naive + timedelta(hours=hours)).replace(tzinfo=zone, fold=fold)
            offset = probe.utcoffset()
            if offset is not None:
                offsets.add(offset)
    candidates = sorted((naive - offset).replace(tzinfo=UTC) for offset in offsets)
    if not candidates:
        raise ValueError(f"time zone {zone!r} gives no UTC offset for {naive}")
    exists = [u for u in candidates if u.astimezone(zone).replace(tzinfo=None) == naive]
    if exists:
        return exists[-1] if wall.fold and len(exists) > 1 else exists[0]
    # In a gap: the earliest candidate lies just before the change, in the old offset.
    before = candidates[0].astimezone(zone).utcoffset()
    assert before is not None
    return (naive - before).replace(tzinfo=UTC)


def _to_utc(value: date | datetime, default_zone: ZoneInfo) -> datetime:
    """An instant from a parsed DATE, floating DATE-TIME, UTC or TZID DATE-TIME value."""
    if not isinstance(value, datetime):  # all-day: local midnight that day
        return _instant(datetime(value.year, value.month, value.day), default_zone)
    if value.tzinfo is None:  # floating
        return _instant(value, default_zone)
    return _instant(value, value.tzinfo)


# --- export ----------------------------------------------------------------------------


def shift_uid(interval: ShiftInterval) -> str:
    """A UID that depends only on what the shift is, so re-exporting it keeps the UID.

    Names are left out (renaming someone updates the event rather than replacing it);
    times are taken in UTC to the second, as they are written.
    """
    key = "\x1f".join(
        (
            interval.schedule_id,
            interval.staff_id,
            interval.role,
            _whole_seconds(interval.start).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"),
            _whole_seconds(interval.end).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"),
        )
    )
    return f"{hashlib.sha256(key.encode()).hexdigest()[:32]}@{UID_DOMAIN}"


def _label(name: str) -> str:
    """A calendar label in every language (a feed's reader may speak any)."""
    return " ".join(text(lang, f"calendar.{name}") for lang in LANGUAGES)


def shift_summary(interval: ShiftInterval) -> str:
    on_duty = _label("on_duty")
    return f"{on_duty} {interval.staff_name} ({interval.role}) — {interval.schedule_name}"


def vtimezone(timezone: str, first: date, last: date) -> Timezone:
    """A VTIMEZONE for ``timezone`` covering ``first`` (inclusive) to ``last`` (exclusive).

    Built by ``icalendar.Timezone.from_tzid`` from zoneinfo, then each observance's onset
    is corrected: RFC 5545 (3.6.5) gives DTSTART as the local time in TZOFFSETFROM, that
    is 01:00 for London's spring change (tzurl.org, Outlook and Google write the same),
    but the library writes the first wall time of the new offset (02:00 BST). Clients
    that compute the change's instant from DTSTART would otherwise put it an hour late.
    """
    zone = _zone(timezone)
    component = Timezone.from_tzid(timezone, first_date=first, last_date=last)
    for observance in (*component.standard, *component.daylight):
        before: timedelta = observance.decoded("TZOFFSETFROM")
        after: timedelta = observance.decoded("TZOFFSETTO")
        if before == after:
            continue  # the zone's state at ``first``, not a change
        onset = _corrected_onset(observance.decoded("DTSTART"), before, after, zone)
        observance.pop("DTSTART")
        observance.add("DTSTART", onset)
        rdates = observance.pop("RDATE", None)
        if rdates is not None:
            for listed in rdates if isinstance(rdates, list) else [rdates]:
                corrected = [_corrected_onset(item.dt, before, after, zone) for item in listed.dts]
                observance.add("RDATE", corrected)
    return component


def _corrected_onset(
    written: datetime, before: timedelta, after: timedelta, zone: ZoneInfo
) -> datetime:
    """The change near ``written`` as a naive local time in the offset ``before`` it."""
    for guess in (written - before, written - after):
        change = guess.replace(tzinfo=UTC)
        just_before = (change - timedelta(seconds=1)).astimezone(zone).utcoffset()
        if just_before == before and change.astimezone(zone).utcoffset() == after:
            return (change + before).replace(tzinfo=None)
    return written  # not a change we can place: keep what the library wrote


def export_calendar(
    intervals: Iterable[ShiftInterval],
    *,
    name: str,
    timezone: str,
    now: datetime,
    product: str = "-//Eldercall//Rota//EN",
    refresh: timedelta = DEFAULT_REFRESH,
) -> bytes:
    """A VCALENDAR (bytes, UTF-8, CRLF, folded) with one VEVENT per shift.

    Shifts are sorted by start; a shift given twice is written once (same UID). Times
    are local wall times in ``timezone`` with a VTIMEZONE for the years covered, or UTC
    when ``timezone`` is ``"UTC"``. ``now`` is every event's DTSTAMP. Raises
    ``ValueError`` for a naive datetime, a shift that does not end after it starts, an
    unknown role or an unknown time zone.
    """
    _require_aware("now", now)
    zone = _zone(timezone)
    in_utc = timezone == "UTC"
    shifts: dict[str, ShiftInterval] = {}
    for interval in intervals:
        _check_interval(interval)
        shifts.setdefault(shift_uid(interval), interval)
    ordered = sorted(
        shifts.items(),
        key=lambda item: (item[1].start.astimezone(UTC), item[1].end.astimezone(UTC), item[0]),
    )

    calendar = Calendar()
    calendar.add("PRODID", product)
    calendar.add("VERSION", "2.0")
    calendar.add("CALSCALE", "GREGORIAN")
    calendar.add("NAME", name)  # RFC 7986
    calendar.add("X-WR-CALNAME", name)
    calendar.add("X-WR-TIMEZONE", timezone)
    calendar.add("REFRESH-INTERVAL", refresh, parameters={"VALUE": "DURATION"})
    calendar.add("X-PUBLISHED-TTL", vDuration(refresh))
    if not in_utc:
        years = [i.start.astimezone(zone).year for _, i in ordered] + [
            i.end.astimezone(zone).year for _, i in ordered
        ]
        first_year = min(years, default=now.astimezone(zone).year)
        last_year = max(years, default=now.astimezone(zone).year)
        calendar.add_component(
            vtimezone(timezone, date(first_year, 1, 1), date(last_year + 1, 1, 1))
        )
    stamp = _whole_seconds(now).astimezone(UTC)
    for uid, interval in ordered:
        calendar.add_component(_event(uid, interval, zone, in_utc, stamp))
    written: bytes = calendar.to_ical()
    return written


def _check_interval(interval: ShiftInterval) -> None:
    _require_aware("a shift's start", interval.start)
    _require_aware("a shift's end", interval.end)
    if _whole_seconds(interval.end) <= _whole_seconds(interval.start):
        raise ValueError(f"shift does not end after it starts: {interval!r}")
    if interval.role not in ROLES:
        raise ValueError(f"shift role must be one of {ROLES}, got {interval.role!r}")


def _event(
    uid: str, interval: ShiftInterval, zone: ZoneInfo, in_utc: bool, stamp: datetime
) -> Event:
    event = Event()
    event.add("UID", uid)
    event.add("DTSTAMP", stamp)
    event.add("DTSTART", _written_time(interval.start, zone, in_utc))
    event.add("DTEND", _written_time(interval.end, zone, in_utc))
    event.add("SUMMARY", shift_summary(interval))
    event.add(
        "DESCRIPTION",
        f"{interval.schedule_name} ({interval.schedule_id})\n"
        f"{_label('staff')} {interval.staff_name} ({interval.staff_id})\n"
        f"{_label('role')} {interval.role}",
    )
    event.add("CATEGORIES", [interval.role])
    event.add("STATUS", "CONFIRMED")
    event.add(X_STAFF_ID, interval.staff_id)
    event.add(X_STAFF_NAME, interval.staff_name)
    event.add(X_SCHEDULE_ID, interval.schedule_id)
    event.add(X_ROLE, interval.role)
    return event


def _written_time(value: datetime, zone: ZoneInfo, in_utc: bool) -> datetime:
    instant = _whole_seconds(value).astimezone(UTC)
    if in_utc:
        return instant
    local = instant.astimezone(zone)
    # A reader takes a repeated wall time as its first occurrence: write the second in UTC.
    return local if _instant(local.replace(fold=0), zone) == instant else instant


# --- import ----------------------------------------------------------------------------


def import_calendar(
    data: bytes,
    *,
    window_start: datetime,
    window_end: datetime,
    default_timezone: str,
) -> list[ImportedShift]:
    """The shifts of an iCalendar file that overlap [``window_start``, ``window_end``).

    Recurring events are expanded (RRULE, RDATE, EXDATE, RECURRENCE-ID overrides); an
    occurrence with STATUS:CANCELLED is left out; occurrences are returned whole (not
    clipped to the window), sorted by start. See the module docstring for how local,
    floating, all-day and ambiguous times become instants. ``role`` is
    ``X-ELDERCALL-ROLE`` or else the first of ``primary``/``backup`` among the
    CATEGORIES, by default primary.

    Raises :class:`IcsError` for a file that cannot be imported, naming the event.
    Raises ``ValueError`` for bad arguments (a naive or empty window, an unknown zone).
    """
    _require_aware("window_start", window_start)
    _require_aware("window_end", window_end)
    if window_end <= window_start:
        raise ValueError("window_end must be after window_start")
    default_zone = _zone(default_timezone)
    calendar = _parse(data)
    series = _check_events(calendar, default_zone)
    span = (
        window_start.astimezone(UTC) - _EXPANSION_MARGIN,
        window_end.astimezone(UTC) + _EXPANSION_MARGIN,
    )
    try:
        occurrences = _expand(calendar, *span)
    except Exception as exc:  # the expander's own errors (bad RRULE and the like)
        where = _expansion_culprit(calendar, *span) or "the calendar's events"
        raise IcsError(f"cannot expand {where}: {exc}") from exc
    shifts = [
        shift
        for occurrence in occurrences
        if str(occurrence.get("STATUS", "")).upper() != "CANCELLED"
        for shift in [_guarded(_shift, occurrence, series, default_zone)]
        if shift.start < window_end and shift.end > window_start
    ]
    return sorted(shifts, key=lambda s: (s.start, s.end, s.person, s.role, s.uid))


def _expand(calendar: Calendar, start: datetime, end: datetime) -> list[Component]:
    # CalendarQuery, not recurring_ical_events.of(): see the module docstring.
    occurrences: list[Component] = recurring_ical_events.CalendarQuery(calendar).between(start, end)
    return occurrences


def _expansion_culprit(calendar: Calendar, start: datetime, end: datetime) -> str | None:
    """Which event the expander fails on (its errors do not say), found by trying each."""
    zones = calendar.timezones
    for uid in dict.fromkeys(str(e["UID"]) for e in calendar.events):
        alone = Calendar()
        alone.subcomponents = [*zones, *(e for e in calendar.events if str(e["UID"]) == uid)]
        try:
            _expand(alone, start, end)
        except Exception:
            return _describe(alone.subcomponents[len(zones)])
    return None


def _parse(data: bytes) -> Calendar:
    if not data.strip():
        raise IcsError("the file is empty, not an iCalendar file")
    if b"BEGIN:VCALENDAR" not in data.upper():
        raise IcsError("not an iCalendar file: no BEGIN:VCALENDAR")
    try:
        text = data.decode("utf-8-sig")  # Outlook may start the file with a BOM
    except UnicodeDecodeError as exc:
        raise IcsError(f"the file is not UTF-8 text, as iCalendar requires: {exc}") from exc
    # icalendar remembers a VTIMEZONE whose TZID is not an IANA name for the life of the
    # process and prefers it to a later file's own definition; forget earlier files'.
    tzp.use_zoneinfo()
    try:
        components = Calendar.from_ical(text, multiple=True)
    except Exception as exc:  # the parser's errors: ValueError, KeyError, ...
        raise IcsError(f"not a readable iCalendar file: {exc}") from exc
    if len(components) != 1 or components[0].name != "VCALENDAR":
        found = ", ".join(str(c.name) for c in components) or "nothing"
        raise IcsError(f"expected one VCALENDAR, found {found}")
    calendar = components[0]
    assert isinstance(calendar, Calendar)
    calscale = str(calendar.get("CALSCALE", "GREGORIAN")).upper()
    if calscale != "GREGORIAN":
        raise IcsError(f"CALSCALE is {calscale}: only the Gregorian calendar is supported")
    for component in calendar.walk():
        if component.errors:
            problems = "; ".join(
                f"{name or 'a line'}: {message}" for name, message in component.errors
            )
            raise IcsError(f"{_describe(component)}: cannot read {problems}")
    return calendar


def _describe(component: Component, index: int | None = None) -> str:
    uid, summary = (_first(component.get(name)) for name in ("UID", "SUMMARY"))
    where = str(component.name or "component")
    if uid is not None:
        where = f"{where} UID {str(uid)!r}"
    elif index is not None:
        where = f"{where} #{index}"
    if summary is not None:
        where = f"{where} ({str(summary)!r})"
    return where


def _guarded(check: Callable[..., T], component: Component, *args: Any) -> T:
    """``check(component, *args)``, with any error but ours reported as one about ``component``.

    Our checks name what is wrong; this catches what they did not foresee in a malformed
    file (the libraries raise TypeError, KeyError, ... on some), so that a caller only
    ever sees :class:`IcsError`.
    """
    try:
        return check(component, *args)
    except IcsError:
        raise
    except Exception as exc:
        raise IcsError(f"{_describe(component)}: cannot be read: {exc!r}") from exc


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def _check_events(calendar: Calendar, default_zone: ZoneInfo) -> set[str]:
    """Refuse events that cannot be shifts; return the UIDs of recurring series."""
    series: set[str] = set()
    for index, event in enumerate(calendar.walk("VEVENT"), start=1):
        if _guarded(_check_event, event, index, default_zone):
            series.add(str(event["UID"]))
    return series


def _check_event(event: Component, index: int, default_zone: ZoneInfo) -> bool:
    """Refuse an event that cannot be a shift; whether it belongs to a recurring series."""
    where = _describe(event, index)
    for name in _SINGLE_PROPERTIES:
        repeated = event.get(name)
        if isinstance(repeated, list):
            raise IcsError(f"{where}: has {len(repeated)} {name} properties, at most one allowed")
    if event.get("UID") is None:
        raise IcsError(f"{where}: has no UID")
    if event.get("DTSTART") is None:
        raise IcsError(f"{where}: has no DTSTART")
    if not isinstance(event.decoded("DTSTART"), date):
        raise IcsError(f"{where}: DTSTART is neither a date nor a date-time")
    for name, value, tzid in _date_values(event):
        if tzid is not None and tzid.upper() != "UTC" and _is_naive_datetime(value):
            raise IcsError(
                f"{where}: {name} uses TZID {tzid!r}, which is neither a VTIMEZONE "
                "in the file nor a known time zone"
            )
    _check_length(event, where, default_zone)
    return any(event.get(p) is not None for p in ("RRULE", "RDATE", "RECURRENCE-ID"))


def _date_values(event: Component) -> Iterator[tuple[str, Any, str | None]]:
    """Each (property, parsed value, TZID parameter) of the event's date properties."""
    for name in _DATE_PROPERTIES:
        found = event.get(name)
        for prop in found if isinstance(found, list) else [found] if found is not None else []:
            tzid = prop.params.get("TZID") if hasattr(prop, "params") else None
            values = [d.dt for d in prop.dts] if hasattr(prop, "dts") else [prop.dt]
            for value in values:
                yield name, value, tzid


def _is_naive_datetime(value: Any) -> bool:
    moments = value if isinstance(value, tuple) else (value,)  # an RDATE PERIOD is a pair
    return any(isinstance(m, datetime) and m.tzinfo is None for m in moments)


def _check_length(event: Component, where: str, default_zone: ZoneInfo) -> None:
    start = event.decoded("DTSTART")
    has_end = event.get("DTEND") is not None
    has_duration = event.get("DURATION") is not None
    if has_end and has_duration:
        raise IcsError(f"{where}: has both DTEND and DURATION")
    if has_duration:
        duration = event.decoded("DURATION")
        if not isinstance(duration, timedelta) or duration <= timedelta(0):
            raise IcsError(f"{where}: DURATION {duration} is not positive")
        return
    if not has_end:
        if isinstance(start, datetime):
            raise IcsError(f"{where}: has no DTEND or DURATION, so the shift has no length")
        return  # an all-day event without an end lasts that day
    end = event.decoded("DTEND")
    if isinstance(start, datetime) != isinstance(end, datetime):
        raise IcsError(f"{where}: DTSTART and DTEND must both be dates or both date-times")
    start_utc, end_utc = _to_utc(start, default_zone), _to_utc(end, default_zone)
    if end_utc < start_utc:
        raise IcsError(f"{where}: DTEND {end.isoformat()} is before DTSTART {start.isoformat()}")
    if end_utc == start_utc:
        raise IcsError(f"{where}: DTEND equals DTSTART, so the shift has no length")


def _shift(occurrence: Component, series: set[str], default_zone: ZoneInfo) -> ImportedShift:
    where = _describe(occurrence)
    start = _to_utc(occurrence.decoded("DTSTART"), default_zone)
    end = _to_utc(occurrence.decoded("DTEND"), default_zone)
    if end <= start:
        raise IcsError(
            f"{where}: the occurrence at {occurrence.decoded('DTSTART')} starts in a "
            "local time skipped by a daylight-saving change and so does not end after it "
            "starts"
        )
    uid = str(occurrence["UID"])
    if uid in series:
        recurrence_id = _to_utc(occurrence.decoded("RECURRENCE-ID"), default_zone)
        uid = f"{uid}#{recurrence_id.strftime('%Y%m%dT%H%M%SZ')}"
    staff_id = occurrence.get(X_STAFF_ID)
    return ImportedShift(
        person=_person(occurrence, where),
        role=_role(occurrence, where),
        start=start,
        end=end,
        uid=uid,
        staff_id=str(staff_id) if staff_id is not None else None,
    )


def _person(event: Component, where: str) -> str:
    own = str(event.get(X_STAFF_NAME, "")).strip()
    if own:
        return own
    attendees = event.get("ATTENDEE")
    first = attendees[0] if isinstance(attendees, list) else attendees
    if first is not None:
        name = str(first.params.get("CN", "")).strip()
        if name:
            return name
        address = str(first).strip()
        for scheme in ("mailto:", "tel:"):
            if address.lower().startswith(scheme):
                address = address[len(scheme) :].strip()
        if address:
            return address
    summary = str(event.get("SUMMARY", "")).strip()
    if summary:
        return summary
    raise IcsError(f"{where}: names nobody (no ATTENDEE and no SUMMARY)")


def _role(event: Component, where: str) -> str:
    own = event.get(X_ROLE)
    if own is not None:
        role = str(own).strip().lower()
        if role not in ROLES:
            raise IcsError(f"{where}: {X_ROLE} must be one of {ROLES}, got {str(own)!r}")
        return role
    found = event.get("CATEGORIES")
    for categories in found if isinstance(found, list) else [found] if found else []:
        for category in categories.cats:
            if str(category).strip().lower() in ROLES:
                return str(category).strip().lower()
    return PRIMARY
