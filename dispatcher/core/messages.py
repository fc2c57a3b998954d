"""The SMS and voice call about a call, per language, from the catalogues' texts.

The texts are ``dispatcher.core.texts``'s (one TOML file per language); a person's
``language`` picks them, and anything unknown falls back to Chinese. SMS and voice never
carry medical notes or key-safe codes: only what a responder needs to act (who, where,
what kind, the call id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dispatcher.core.calls import Call, CallKind, CallState
from dispatcher.core.directory import Directory, Resident
from dispatcher.core.power_cut import POWER_CUT
from dispatcher.core.texts import text


def kind_name(language: str, kind: CallKind) -> str:
    return text(language, f"kind.{kind.value}")


def _place(resident: Resident, directory: Directory) -> str:
    community = directory.areas.get(resident.community_id)
    return f"{community.name} {resident.address}" if community else resident.address


def call_sms(
    call: Call,
    resident: Resident | None,
    directory: Directory,
    language: str,
    step: int,
    reply_code: int | None = None,
) -> str:
    """The SMS about ``call`` for one person at escalation step ``step`` (0 is the first)."""
    lang = language
    if resident is None and call.alert_key == POWER_CUT:  # a place, not a device
        who = text(lang, "fleet.power_cut_who")
    elif resident is None:
        who = text(lang, "sms.who_unknown", device=call.device_id)
    else:
        who = text(
            lang,
            "sms.who_resident",
            name=resident.name,
            age=resident.age_on(call.opened_at.date()),
            place=_place(resident, directory),
        )
    head = text(lang, "sms.head") + _reminder(lang, "sms", call, step)
    extra = f" {call.detail}" if call.kind is CallKind.TECHNICAL and call.detail else ""
    return text(
        lang,
        "sms.call",
        head=head,
        kind=kind_name(lang, call.kind),
        call_id=call.id,
        who=who,
        extra=extra,
        reply=_reply(lang, reply_code),
    )


def _reminder(language: str, section: str, call: Call, step: int) -> str:
    """What a repeated notification says first: still unanswered, or (the
    acknowledgement timeout) taken by someone but still not resolved."""
    if call.state is CallState.ACKNOWLEDGED:
        return text(language, f"{section}.unresolved")
    return text(language, f"{section}.reminder") if step > 0 else ""


def _reply(language: str, reply_code: int | None) -> str:
    if reply_code is None:
        return text(language, "sms.reply_none")
    return text(language, "sms.reply", code=reply_code)


def call_summary(call: Call, resident: Resident | None, language: str) -> str:
    """The short line naming ``call`` inside a bundled SMS: id, kind, resident's name."""
    name = resident.name if resident is not None else call.device_id
    return text(
        language, "sms.summary", call_id=call.id, kind=kind_name(language, call.kind), name=name
    )


@dataclass(frozen=True)
class BundleItem:
    """One call in a bundled SMS: its summary line and the person's reply code for it."""

    summary: str
    reply_code: int | None


def bundle_sms(language: str, items: Sequence[BundleItem]) -> str:
    """One SMS listing several open calls, each with its reply code."""
    lines = [
        text(language, "sms.bundle_item", reply=_reply(language, i.reply_code), summary=i.summary)
        for i in items
    ]
    separator = text(language, "sms.bundle_separator")
    return text(language, "sms.bundle", count=len(items), items=separator.join(lines))


def also_sms(language: str, body: str, items: Sequence[BundleItem]) -> str:
    """An urgent call's own SMS with the other calls pending for the person appended."""
    lines = [
        text(language, "sms.bundle_item", reply=_reply(language, i.reply_code), summary=i.summary)
        for i in items
    ]
    separator = text(language, "sms.bundle_separator")
    also = text(language, "sms.also", count=len(items), items=separator.join(lines))
    return body + also


def voice_script(
    call: Call,
    resident: Resident | None,
    directory: Directory,
    language: str,
    step: int = 0,
) -> str:
    """What a voice call reads about ``call``, ending with the request to press 1."""
    lang = language
    if resident is None:
        who = text(lang, "voice.who_unknown")
    else:
        who = text(
            lang,
            "voice.who_resident",
            name=resident.name,
            age=resident.age_on(call.opened_at.date()),
            place=_place(resident, directory),
        )
    # The day's sequence number, digit by digit, so a speech engine reads "0 0 0 4".
    number = " ".join(call.id.rsplit("-", 1)[-1])
    return text(
        lang,
        "voice.script",
        reminder=_reminder(lang, "voice", call, step),
        kind=kind_name(lang, call.kind),
        who=who,
        call_number=number,
    )
