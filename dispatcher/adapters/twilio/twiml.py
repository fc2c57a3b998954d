"""The TwiML documents we answer Twilio with: an SMS reply, and a voice call's steps.

Built with the twilio library's ``MessagingResponse`` and ``VoiceResponse``, which
escape the texts into XML. The texts are the service's (``phone_desk``) and so the
catalogues'; only their reading (language, repeat, key to press) is decided here.
"""

from __future__ import annotations

from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from dispatcher.core.phone_texts import say_language
from dispatcher.services.phone_desk import VoiceAnswer, VoiceStep

GATHER_TIMEOUT_S = 6  # seconds Twilio waits for the key after the prompt is read


def sms_reply(text: str) -> str:
    """The TwiML that answers an inbound SMS with ``text``."""
    twiml = MessagingResponse()
    twiml.message(text)
    return str(twiml)


def voice(answer: VoiceAnswer, key_url: str) -> str:
    """TwiML for ``answer``. A prompt is read twice (a second chance to press 1);
    with no key after that the call says so and hangs up, unacknowledged."""
    twiml = VoiceResponse()
    language = say_language(answer.language)
    if answer.step is VoiceStep.PROMPT:
        for _ in range(2):
            gather = twiml.gather(
                num_digits=1, action=key_url, method="POST", timeout=GATHER_TIMEOUT_S
            )
            gather.say(answer.text, language=language)
        twiml.say(answer.no_key_text, language=language)
    elif answer.step is VoiceStep.SAY_AND_HANG_UP:
        twiml.say(answer.text, language=language)
    twiml.hangup()
    return str(twiml)


def hang_up() -> str:
    """TwiML that ends the call at once (a webhook for no call we know)."""
    return voice(VoiceAnswer(VoiceStep.HANG_UP), "")
