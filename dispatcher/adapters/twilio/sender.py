"""The real SMS and voice channel senders: Twilio's REST API through the ``twilio`` library.

The library has no setting for another host, so a small subclass of its aiohttp client
rewrites each request URL onto ``[sms] api_base`` (the local sink in tests and in
``make run``). The same subclass also fixes two things the stock async client does not do
for us: it never applies a timeout (aiohttp is told ``timeout=None``, i.e. wait forever),
and it passes credentials through aiohttp's deprecated ``auth=`` argument.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import SplitResult, urlencode, urlsplit, urlunsplit

import aiohttp
import structlog

# Loaded now, not at the first send: the library imports its REST resources lazily,
# and that import (about half a second here) delayed the first emergency SMS after
# every start.
import twilio.rest.api.v2010.account.call
import twilio.rest.api.v2010.account.message  # noqa: F401
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from dispatcher.config import SmsSettings
from dispatcher.core.contact_methods import Channel
from dispatcher.services.channels import ChannelSender, Outgoing, Receipt, SendError

log = structlog.get_logger(__name__)

TWILIO_API_BASE = "https://api.twilio.com"
DEFAULT_TIMEOUT_S = 10.0

# The call progress events Twilio is asked to report (StatusCallbackEvent).
CALL_STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")

# HTTP statuses where trying again later may succeed; any other error answer is permanent.
_TEMPORARY_STATUSES = frozenset({408, 429})


def is_temporary_status(status: int) -> bool:
    return status in _TEMPORARY_STATUSES or status >= 500


def _check_api_base(api_base: str) -> SplitResult:
    base = urlsplit(api_base.rstrip("/"))
    if base.scheme not in ("http", "https") or not base.hostname or base.query:
        raise ValueError(f"[sms] api_base must look like https://host[:port], got {api_base!r}")
    return base


class RebasingAsyncHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]  # twilio is untyped
    """Twilio's aiohttp client, sending to ``api_base`` instead of ``https://api.twilio.com``.

    Only the scheme and host (and port) change; the path and query are kept, after any path
    prefix that ``api_base`` carries. Never retries (``max_retries`` stays off): a POST
    retried on a 5xx may have been sent already, so retrying is the outbox's job.

    Must be created inside a running event loop (the aiohttp session binds to it).
    """

    def __init__(self, api_base: str = TWILIO_API_BASE, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        super().__init__(pool_connections=True, timeout=timeout, max_retries=None)
        self._base = _check_api_base(api_base)
        self._rebase = api_base.rstrip("/") != TWILIO_API_BASE

    def rewrite(self, url: str) -> str:
        """``url`` with its scheme and host replaced by ``api_base``'s; path and query kept."""
        if not self._rebase:
            return url
        parts = urlsplit(url)
        path = self._base.path + parts.path
        return urlunsplit((self._base.scheme, self._base.netloc, path, parts.query, parts.fragment))

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  # the library's signature
        allow_redirects: bool = False,
    ) -> Any:
        headers = dict(headers or {})
        if auth is not None:
            headers["Authorization"] = aiohttp.encode_basic_auth(auth[0], auth[1])
        body: bytes | dict[str, object] | None = data
        if data is not None:
            # The form encoded here, as aiohttp's FormData would (the same bytes and
            # type): FormData also builds a multipart writer and a random boundary it
            # never uses, a third of each request's CPU with 10,000 open calls.
            body = urlencode(data, doseq=True).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        return await super().request(
            method,
            self.rewrite(url),
            params=params,
            data=body,
            headers=headers,
            auth=None,
            # aiohttp takes a float as the total time for the request, connect included.
            timeout=timeout if timeout is not None else self.timeout,
            allow_redirects=allow_redirects,
        )


class _TwilioSender:
    """What both of Twilio's channel senders share: the client, made at the first send,
    and turning Twilio's answers into a :class:`Receipt` or a :class:`SendError`."""

    channel: str

    def __init__(self, settings: SmsSettings, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if not settings.account_sid or not settings.auth_token:
            # The library would silently fall back to TWILIO_* environment variables.
            raise ValueError("[sms] account_sid and auth_token are required for Twilio")
        if not settings.from_number:
            raise ValueError("[sms] from_number is required for Twilio")
        _check_api_base(settings.api_base)  # fail at start-up, not at the first emergency
        self._settings = settings
        self._timeout = timeout
        # Created at the first send: the aiohttp session must be made inside the event loop,
        # and this constructor may run before there is one.
        self._http: RebasingAsyncHttpClient | None = None
        self._client: Any = None
        self._closed = False

    def _twilio(self) -> Any:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} used after aclose()")
        if self._client is None:
            self._http = RebasingAsyncHttpClient(self._settings.api_base, self._timeout)
            self._client = Client(
                self._settings.account_sid, self._settings.auth_token, http_client=self._http
            )
        return self._client

    async def _create(
        self, what: str, to: str, create: Callable[..., Awaitable[Any]], kwargs: dict[str, Any]
    ) -> Receipt:
        try:
            resource = await create(**kwargs)
        except (TwilioRestException, TwilioServiceException) as exc:
            error = _from_twilio_error(exc)
            log.warning(
                f"{what}.rejected",
                to=to,
                status=error.status,
                code=error.code,
                permanent=error.permanent,
                reason=error.message,
            )
            raise error from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # No answer: the message may or may not have been accepted. Temporary; the outbox
            # retries, accepting a rare duplicate over a lost emergency SMS.
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.warning(
                f"{what}.send_failed", to=to, reason=reason, api_base=self._settings.api_base
            )
            raise SendError(f"no answer from SMS provider: {reason}", permanent=False) from exc
        except (TwilioException, ValueError) as exc:
            # An answer we cannot read (e.g. a 2xx that is not JSON): as unknown as no answer.
            log.warning(f"{what}.bad_answer", to=to, reason=str(exc))
            raise SendError(f"unreadable answer from SMS provider: {exc}", permanent=False) from exc
        return self._receipt(what, to, resource)

    def _receipt(self, what: str, to: str, resource: Any) -> Receipt:
        sid = getattr(resource, "sid", None)
        if not sid:
            raise SendError(f"provider answered the {what} without a sid", permanent=False)
        status = str(getattr(resource, "status", None) or "queued")
        # The outbox logs each send with its call (sms_sent, call_placed): this is detail.
        log.debug(f"{what}.accepted", to=to, sid=sid, status=status)
        return Receipt(sid=str(sid), status=status)

    async def aclose(self) -> None:
        self._closed = True
        if self._http is not None:
            http, self._http = self._http, None
            await http.close()


class TwilioSmsSender(_TwilioSender):
    """The SMS channel (:class:`dispatcher.services.channels.ChannelSender`) on Twilio's
    Messages resource."""

    channel = Channel.SMS.value

    async def send(self, message: Outgoing) -> Receipt:
        client = self._twilio()
        kwargs: dict[str, Any] = {
            "to": message.to,
            "from_": self._settings.from_number,
            "body": message.body,
        }
        if message.status_callback is not None:
            kwargs["status_callback"] = message.status_callback
        return await self._create("sms", message.to, client.messages.create_async, kwargs)


class TwilioVoiceSender(_TwilioSender):
    """The voice channel on Twilio's Calls resource: Twilio fetches the call's TwiML at
    the message's ``script_url``.

    Machine detection is on, so a voicemail is reported (``AnsweredBy``) and never taken
    for a person.
    """

    channel = Channel.VOICE.value

    async def send(self, message: Outgoing) -> Receipt:
        if not message.script_url:
            raise SendError("a voice call needs the URL of its script", permanent=True)
        client = self._twilio()
        kwargs: dict[str, Any] = {
            "to": message.to,
            "from_": self._settings.from_number,
            "url": message.script_url,
            "machine_detection": "Enable",
        }
        if message.status_callback is not None:
            kwargs["status_callback"] = message.status_callback
            kwargs["status_callback_event"] = list(CALL_STATUS_EVENTS)
        return await self._create("call", message.to, client.calls.create_async, kwargs)


def twilio_channels(
    settings: SmsSettings, *, timeout: float = DEFAULT_TIMEOUT_S
) -> list[ChannelSender]:
    """Twilio's SMS and voice channel senders for ``settings``."""
    return [
        TwilioSmsSender(settings, timeout=timeout),
        TwilioVoiceSender(settings, timeout=timeout),
    ]


def _from_twilio_error(exc: TwilioRestException | TwilioServiceException) -> SendError:
    status = int(exc.status)
    code = _int_or_none(exc.code)
    if isinstance(exc, TwilioServiceException):
        message = exc.detail or exc.title
    else:
        message = str(exc.msg)
        # The library prefixes "Unable to create record: "; keep only Twilio's own words.
        _, sep, rest = message.partition(": ")
        if sep and message.startswith("Unable to"):
            message = rest
    if status == 401:
        message = f"authentication failed, check [sms] account_sid and auth_token ({message})"
    if code == status:
        # The library puts the HTTP status in ``code`` when the body had no Twilio code
        # (Twilio's own codes have five digits).
        code = None
    return SendError(
        message or f"HTTP {status}",
        permanent=not is_temporary_status(status),
        status=status,
        code=code,
    )


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


__all__ = [
    "CALL_STATUS_EVENTS",
    "DEFAULT_TIMEOUT_S",
    "TWILIO_API_BASE",
    "RebasingAsyncHttpClient",
    "TwilioSmsSender",
    "TwilioVoiceSender",
    "is_temporary_status",
    "twilio_channels",
]
