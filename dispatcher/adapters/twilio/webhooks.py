"""All of Twilio's webhooks as one router: SMS replies and voice keys
(``phone_webhooks``) and delivery reports (``status_webhooks``), each form read and
its signature checked by ``signed_forms``. The routes find what they need in
``request.state.twilio`` (a :class:`~dispatcher.adapters.twilio.phone_webhooks.TwilioWebhooks`).
"""

from __future__ import annotations

from fastapi import APIRouter

from dispatcher.adapters.twilio import phone_webhooks, status_webhooks

router = APIRouter()
router.include_router(phone_webhooks.router)
router.include_router(status_webhooks.router)
