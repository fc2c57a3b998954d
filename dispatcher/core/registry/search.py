"""What a search of the registry's lists matches: the words an operator types to find
a resident (a name, an id, a device, a phone number, a community) or a device.

Case does not matter, and a phone number is matched on its digits, so "6411 0231"
finds +862164110231. Pure: no I/O.
"""

from __future__ import annotations

from dispatcher.core.directory import Directory, Resident
from dispatcher.core.registry.records import Device


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _found(text: str, values: list[str | None], phones: list[str | None]) -> bool:
    wanted = text.strip().casefold()
    if not wanted:
        return True
    if any(v and wanted in v.casefold() for v in values):
        return True
    # A number typed with spaces or dashes, of at least four digits ("3" alone would
    # match nearly every phone).
    digits = _digits(wanted)
    looks_like_number = all(ch.isdigit() or ch in "+- " for ch in wanted)
    return (
        looks_like_number and len(digits) >= 4 and any(p and digits in _digits(p) for p in phones)
    )


def resident_matches(d: Directory, r: Resident, text: str) -> bool:
    """Whether ``text`` is in her name, id, address, device id, phone or mobile, or her
    community's id or name."""
    community = d.areas.get(r.community_id)
    values = [
        r.name,
        r.id,
        r.address,
        r.device_id,
        r.community_id,
        community.name if community else None,
    ]
    return _found(text, values, [r.phone, r.mobile])


def device_matches(d: Directory, device: Device, text: str) -> bool:
    """Whether ``text`` is in the device's id, model, firmware, installer, or the id or
    name of the resident it serves."""
    f = device.fields
    resident = d.residents.get(f.resident_id or "")
    values = [
        f.id,
        f.model,
        f.firmware,
        f.installed_by,
        f.resident_id,
        resident.name if resident else None,
    ]
    return _found(text, values, [])
