"""What the centre says back by phone: SMS answers to replies and the voice call's
answers to keys, in Chinese (``zh``) or English (``en``). Pure. (The script a voice
call reads about the call is ``messages.voice_script``, from the catalogues.)

Like the SMS that go out, nothing here carries medical notes or key-safe codes:
who, where, what kind and the call id are what a responder needs to act.
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.core.calls import CallKind

MAX_LISTED = 5  # open calls listed in one answer; an SMS should stay short

_KIND = {
    "zh": {
        CallKind.EMERGENCY: "紧急呼叫",
        CallKind.FALL: "跌倒报警",
        CallKind.SERVICE: "服务请求",
        CallKind.TECHNICAL: "设备故障",
    },
    "en": {
        CallKind.EMERGENCY: "emergency call",
        CallKind.FALL: "fall alarm",
        CallKind.SERVICE: "service request",
        CallKind.TECHNICAL: "device fault",
    },
}

# Twilio <Say> languages.
VOICE_LANGUAGE = {"zh": "zh-CN", "en": "en-US"}


def lang_of(language: str | None) -> str:
    return language if language in _KIND else "zh"


def kind_name(kind: CallKind, language: str) -> str:
    return _KIND[lang_of(language)][kind]


@dataclass(frozen=True)
class OpenCode:
    """One of a phone's active reply numbers, for "your open calls" lists."""

    number: int
    call_id: str
    kind: CallKind


# ---------------------------------------------------------------- SMS answers


def acknowledged(language: str, call_id: str) -> str:
    if lang_of(language) == "zh":
        return f"已确认 {call_id}，谢谢。请尽快处理。"
    return f"Acknowledged {call_id}. Thank you, please act now."


def already_acknowledged(language: str, call_id: str, by: str) -> str:
    if lang_of(language) == "zh":
        return f"{call_id} 已由 {by} 确认，无需再确认。"
    return f"{call_id} was already acknowledged by {by}."


def responder_on_site(language: str, call_id: str) -> str:
    if lang_of(language) == "zh":
        return f"{call_id} 已有服务人员到达现场，无需操作。"
    return f"A responder is already on site for {call_id}; nothing to do."


def escalated(language: str, call_id: str) -> str:
    if lang_of(language) == "zh":
        return f"已将 {call_id} 转交下一级值班人员。"
    return f"{call_id} has been passed to the next level."


def closed(language: str, call_id: str) -> str:
    if lang_of(language) == "zh":
        return f"服务请求 {call_id} 已关闭，谢谢。"
    return f"Service request {call_id} closed. Thank you."


def close_refused(language: str, call_id: str, kind: CallKind) -> str:
    name = kind_name(kind, language)
    if lang_of(language) == "zh":
        return f"{call_id} 是{name}，只能由值班员在系统中关闭。回复 A 可确认。"
    return f"{call_id} is a {name}: only an operator can close it. Reply A to acknowledge."


def stale(language: str, number: int, codes: list[OpenCode]) -> str:
    if lang_of(language) == "zh":
        return f"{number} 不存在或已结束。{open_calls(language, codes)}"
    return f"{number} is unknown or already closed. {open_calls(language, codes)}"


def usage(language: str, codes: list[OpenCode]) -> str:
    if lang_of(language) == "zh":
        return "请回复编号加字母，例如 7A 确认、7E 转交下一级、7C 关闭服务请求。" + open_calls(
            language, codes
        )
    return (
        "Reply with the number and a letter: 7A acknowledge, 7E pass on,"
        " 7C close a service request. " + open_calls(language, codes)
    )


def open_calls(language: str, codes: list[OpenCode]) -> str:
    zh = lang_of(language) == "zh"
    if not codes:
        return "您目前没有待处理的呼叫。" if zh else "You have no open calls."
    items = [f"{c.number}A {c.call_id} {kind_name(c.kind, language)}" for c in codes[:MAX_LISTED]]
    more = len(codes) > MAX_LISTED
    if zh:
        return "您的待处理呼叫：" + "；".join(items) + ("；…" if more else "。")
    return "Your open calls: " + "; ".join(items) + ("; ..." if more else ".")


def unknown_sender() -> str:
    # We do not know the sender's language: both, Chinese first.
    return (
        "您好，本号码未在 Eldercall 登记，无法处理此回复。紧急情况请拨打 120。"
        " / This number is not registered with Eldercall, so this reply cannot be handled."
        " In an emergency call 120."
    )


# ---------------------------------------------------------------- voice


def voice_no_key(language: str) -> str:
    if lang_of(language) == "zh":
        return "未收到按键，本次通话不算确认。再见。"
    return "No key was pressed, so the call is not acknowledged. Goodbye."


def voice_acknowledged(language: str, call_id: str) -> str:
    if lang_of(language) == "zh":
        return f"已确认呼叫 {call_id}，谢谢。请尽快处理。再见。"
    return f"Call {call_id} is acknowledged. Thank you, please act now. Goodbye."


def voice_already_acknowledged(language: str) -> str:
    if lang_of(language) == "zh":
        return "该呼叫已有人确认，无需处理。再见。"
    return "This call has already been acknowledged. Nothing more is needed. Goodbye."


def voice_already_closed(language: str) -> str:
    if lang_of(language) == "zh":
        return "该呼叫已处理完毕，无需处理。再见。"
    return "This call has already been closed. Nothing more is needed. Goodbye."
