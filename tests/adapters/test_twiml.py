"""The TwiML documents: a prompt read twice then a goodbye, texts escaped into XML."""

from __future__ import annotations

from xml.etree import ElementTree

from dispatcher.adapters.twilio import twiml
from dispatcher.services.phone_desk import VoiceAnswer, VoiceStep


def test_a_prompt_is_gathered_twice_then_said_goodbye_to() -> None:
    answer = VoiceAnswer(VoiceStep.PROMPT, "en", "Press 1 <now> & then", "Goodbye.")
    root = ElementTree.fromstring(twiml.voice(answer, "https://c.example/twilio/voice/7/key"))
    gathers = root.findall("Gather")
    assert len(gathers) == 2
    assert {g.get("action") for g in gathers} == {"https://c.example/twilio/voice/7/key"}
    assert [g.findtext("Say") for g in gathers] == ["Press 1 <now> & then"] * 2
    assert gathers[0].find("Say").get("language") == "en-US"  # type: ignore[union-attr]
    assert root.findtext("Say") == "Goodbye."
    assert root[-1].tag == "Hangup"


def test_an_sms_reply_escapes_its_text() -> None:
    document = twiml.sms_reply("7A <ok> & 已确认")
    assert "&lt;ok&gt; &amp;" in document
    assert ElementTree.fromstring(document).findtext("Message") == "7A <ok> & 已确认"


def test_an_unknown_call_is_hung_up_on() -> None:
    root = ElementTree.fromstring(twiml.hang_up())
    assert [child.tag for child in root] == ["Hangup"]
