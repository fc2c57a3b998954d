"""Message texts, per language. SMS never carries medical notes or key-safe codes:
only what a responder needs to act (who, where, what kind, the call id)."""

from __future__ import annotations

from dispatcher.calls import Call, CallKind
from dispatcher.directory import Directory, Resident

_KIND = {
    "zh": {
        CallKind.EMERGENCY: "紧急呼叫",
        CallKind.FALL: "跌倒报警",
        CallKind.SERVICE: "服务请求",
        CallKind.TECHNICAL: "设备故障",
    },
    "en": {
        CallKind.EMERGENCY: "EMERGENCY call",
        CallKind.FALL: "FALL detected",
        CallKind.SERVICE: "Service request",
        CallKind.TECHNICAL: "Device fault",
    },
}


def call_sms(
    call: Call,
    resident: Resident | None,
    directory: Directory,
    language: str,
    step: int,
    reply_code: int | None = None,
) -> str:
    lang = language if language in _KIND else "zh"
    kind = _KIND[lang][call.kind]
    reminder = step > 0
    if resident is None:
        who = (
            f"未登记设备 {call.device_id}"
            if lang == "zh"
            else f"unregistered device {call.device_id}"
        )
    else:
        community = directory.areas.get(resident.community_id)
        place = f"{community.name} {resident.address}" if community else resident.address
        age = resident.age_on(call.opened_at.date())
        who = (
            f"{resident.name} {age}岁 {place}"
            if lang == "zh"
            else f"{resident.name}, {age}, {place}"
        )
    extra = f" {call.detail}" if call.kind is CallKind.TECHNICAL and call.detail else ""
    if lang == "zh":
        head = "【Eldercall】" + ("仍无人确认！" if reminder else "")
        reply = f"回复 {reply_code}A 确认" if reply_code is not None else "请在系统中确认"
        return f"{head}{kind} {call.id}：{who}{extra}。请尽快处理，{reply}。"
    head = "[Eldercall] " + ("STILL UNANSWERED: " if reminder else "")
    reply = f"reply {reply_code}A to acknowledge" if reply_code is not None else "acknowledge"
    return f"{head}{kind} {call.id}: {who}{extra}. Please act and {reply}."
