"""What the centre says back by phone: SMS answers to replies and the voice call's
answers to keys, in Chinese (``zh``) or English (``en``). Pure. The texts are the
catalogues' (sections ``[reply]``, ``[reply_kind]`` and ``[voice]``, see
``dispatcher.core.texts``); this module only picks and joins them. (The script a voice
call reads about the call is ``messages.voice_script``.)

Like the SMS that go out, nothing here carries medical notes or key-safe codes:
who, where, what kind and the call id are what a responder needs to act.
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.core.calls import CallKind
from dispatcher.core.texts import LANGUAGES, language_of, text

MAX_LISTED = 5  # open calls listed in one answer; an SMS should stay short


def lang_of(language: str | None) -> str:
    return language_of(language)


def kind_name(kind: CallKind, language: str) -> str:
    return text(language, f"reply_kind.{kind.value}")


def say_language(language: str) -> str:
    """The language Twilio's ``<Say>`` reads ``language``'s voice texts in."""
    return text(language, "voice.say_language")


@dataclass(frozen=True)
class OpenCode:
    """One of a phone's active reply numbers, for "your open calls" lists."""

    number: int
    call_id: str
    kind: CallKind


# ---------------------------------------------------------------- SMS answers


def acknowledged(language: str, call_id: str) -> str:
    return text(language, "reply.acknowledged", call_id=call_id)


def already_acknowledged(language: str, call_id: str, by: str) -> str:
    return text(language, "reply.already_acknowledged", call_id=call_id, by=by)


def responder_on_site(language: str, call_id: str) -> str:
    return text(language, "reply.responder_on_site", call_id=call_id)


def escalated(language: str, call_id: str) -> str:
    return text(language, "reply.escalated", call_id=call_id)


def closed(language: str, call_id: str) -> str:
    return text(language, "reply.closed", call_id=call_id)


def close_refused(language: str, call_id: str, kind: CallKind) -> str:
    return text(language, "reply.close_refused", call_id=call_id, kind=kind_name(kind, language))


def stale(language: str, number: int, codes: list[OpenCode]) -> str:
    return text(language, "reply.stale", number=number, open_calls=open_calls(language, codes))


def usage(language: str, codes: list[OpenCode]) -> str:
    return text(language, "reply.usage", open_calls=open_calls(language, codes))


def open_calls(language: str, codes: list[OpenCode]) -> str:
    if not codes:
        return text(language, "reply.open_none")
    items = [
        text(
            language,
            "reply.open_item",
            number=c.number,
            call_id=c.call_id,
            kind=kind_name(c.kind, language),
        )
        for c in codes[:MAX_LISTED]
    ]
    end = "reply.open_more" if len(codes) > MAX_LISTED else "reply.open_end"
    return text(
        language,
        "reply.open_calls",
        items=text(language, "reply.open_separator").join(items),
        end=text(language, end),
    )


def unknown_sender() -> str:
    # We do not know the sender's language: every catalogue's text, Chinese first.
    separator = text(LANGUAGES[0], "reply.unknown_sender_separator")
    return separator.join(text(lang, "reply.unknown_sender") for lang in LANGUAGES)


# ---------------------------------------------------------------- voice


def voice_no_key(language: str) -> str:
    return text(language, "voice.no_key")


def voice_acknowledged(language: str, call_id: str) -> str:
    return text(language, "voice.call_acknowledged", call_id=call_id)


def voice_already_acknowledged(language: str) -> str:
    return text(language, "voice.already_acknowledged")


def voice_already_closed(language: str) -> str:
    return text(language, "voice.already_closed")
