"""A local stand-in for Twilio's Messages and Calls APIs: records and prints every SMS.

Serves enough of ``/2010-04-01/Accounts/{AccountSid}/Messages.json`` and ``Calls.json``
(shapes taken from
Twilio's OpenAPI description) that the real ``twilio`` library, pointed here through
``[sms] api_base``, creates and fetches messages as it would at Twilio: HTTP Basic auth
with the account sid and auth token, Twilio's error codes for bad numbers, a Message
resource on success, and optionally the delivery status callbacks Twilio would post,
signed with ``X-Twilio-Signature``. Per-number scripts make a number behave as a test
needs: an SMS undelivered with 30006 (a landline), a call nobody answers, a call
answered by a voicemail. Faults make it a bad day at the provider: the next requests
answering 429/500/503 (:meth:`SmsSinkServer.fail_next`), every n-th one
(:meth:`SmsSinkServer.fail_every`), requests to some numbers held open without an
answer (:meth:`SmsSinkServer.hold`).

:class:`SmsSinkServer` runs it with uvicorn in its own thread and event loop, so sync
fixtures, async tests and the demo can all use it. ``python -m simulator.phone_network.server`` runs
one in the foreground.

This module is the sink's public face and re-exports what it is built from: the records
and their state (:mod:`simulator.phone_network.state`), the HTTP routes
(:mod:`simulator.phone_network.routes`) and the status callbacks
(:mod:`simulator.phone_network.callbacks`).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

import structlog
import uvicorn

from simulator.phone_network.routes import (
    AUTH_FAILED,
    BODY_REQUIRED,
    BODY_TOO_LONG,
    DEFAULT_CODE_FOR_STATUS,
    FROM_REQUIRED,
    INTERNAL_ERROR,
    INVALID_STATUS_CALLBACK,
    INVALID_TO,
    INVALID_URL,
    NOT_FOUND,
    NOT_MOBILE,
    SERVICE_UNAVAILABLE,
    TO_REQUIRED,
    TOO_MANY_REQUESTS,
    URL_REQUIRED,
    create_sink_app,
)
from simulator.phone_network.state import (
    API_VERSION,
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    VOICE_OUTCOMES,
    SinkAttempt,
    SinkCall,
    SinkCallback,
    SinkMessage,
    SinkState,
    SmsScript,
    num_segments,
)

__all__ = [
    "API_VERSION",
    "AUTH_FAILED",
    "BODY_REQUIRED",
    "BODY_TOO_LONG",
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "FROM_REQUIRED",
    "INTERNAL_ERROR",
    "INVALID_STATUS_CALLBACK",
    "INVALID_TO",
    "INVALID_URL",
    "NOT_FOUND",
    "NOT_MOBILE",
    "SERVICE_UNAVAILABLE",
    "TOO_MANY_REQUESTS",
    "TO_REQUIRED",
    "URL_REQUIRED",
    "VOICE_OUTCOMES",
    "SinkAttempt",
    "SinkCall",
    "SinkCallback",
    "SinkMessage",
    "SinkState",
    "SmsScript",
    "SmsSinkServer",
    "create_sink_app",
    "format_sms_line",
    "main",
    "num_segments",
]

log = structlog.get_logger(__name__)


def format_sms_line(message: SinkMessage) -> str:
    """The console line the demo prints per SMS."""
    body = " ⏎ ".join(message.body.splitlines())
    return f"SMS → {message.to} : {body}"


class SmsSinkServer:
    """The sink on a real port, served by uvicorn in a thread of its own.

    ``on_message`` is called in the sink's thread for every accepted SMS (print it, count
    it); without one each SMS is logged. ``landlines`` are numbers Twilio would refuse with
    21614. With ``status_callbacks`` the sink posts ``sent`` then ``delivered`` to each
    message's ``StatusCallback``, ``callback_delay_s`` apart.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        on_message: Callable[[SinkMessage], None] | None = None,
        landlines: Iterable[str] = (),
        status_callbacks: bool = False,
        callback_delay_s: float = 0.05,
        backlog: int = 2048,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._backlog = backlog
        self._state = SinkState(
            account_sid=account_sid,
            auth_token=auth_token,
            on_message=on_message,
            landlines=landlines,
            status_callbacks=status_callbacks,
            callback_delay_s=callback_delay_s,
        )
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._crash: BaseException | None = None

    # -- life cycle ---------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Start serving; returns once the port accepts requests."""
        if self._thread is not None:
            raise RuntimeError("SmsSinkServer already started")
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._requested_port))
            # A deep backlog: a short one stalls concurrent clients (see field notes).
            sock.listen(self._backlog)
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_sink_app(self._state),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
            backlog=self._backlog,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server = server

        def run() -> None:
            try:
                asyncio.run(server.serve(sockets=[sock]))
            except BaseException as exc:  # reported by start(); a thread cannot raise
                self._crash = exc
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name=f"sms-sink-{self._port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"SMS sink failed to start: {self._crash!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"SMS sink not serving after {timeout}s")
            time.sleep(0.005)
        log.info("sms_sink.started", url=self.url)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread to end. Safe to call twice."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"SMS sink on {self.url} did not stop within {timeout}s")
        self._thread = None
        self._server = None

    def __enter__(self) -> SmsSinkServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- where ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("SmsSinkServer not started")
        return self._port

    @property
    def url(self) -> str:
        """The base to use as ``[sms] api_base``, e.g. ``http://127.0.0.1:40123``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def account_sid(self) -> str:
        return self._state.account_sid

    @property
    def auth_token(self) -> str:
        return self._state.auth_token

    def messages_url(self, account_sid: str | None = None) -> str:
        return f"{self.url}/{API_VERSION}/Accounts/{account_sid or self.account_sid}/Messages.json"

    # -- what it saw ------------------------------------------------------------------------

    @property
    def messages(self) -> list[SinkMessage]:
        """A snapshot of the accepted SMS, oldest first."""
        with self._state.changed:
            return list(self._state.messages)

    @property
    def attempts(self) -> list[SinkAttempt]:
        """A snapshot of every POST to Messages.json, accepted or not."""
        with self._state.changed:
            return list(self._state.attempts)

    @property
    def callbacks(self) -> list[SinkCallback]:
        """A snapshot of the status callbacks posted."""
        with self._state.changed:
            return list(self._state.callbacks)

    def message(self, sid: str) -> SinkMessage | None:
        return self._state.find(sid)

    @property
    def calls(self) -> list[SinkCall]:
        """A snapshot of the accepted voice calls, oldest first."""
        with self._state.changed:
            return list(self._state.calls)

    def script_sms(
        self, number: str, status: str, error_code: int | None = None, *, times: int | None = None
    ) -> None:
        """Make SMS to ``number`` end ``status`` (``undelivered`` with 30006 for a landline).

        The outcome is reported to the message's ``StatusCallback`` (sent, then ``status``),
        whether or not the sink posts callbacks for other numbers. With ``times`` it holds
        for that many messages, then the number behaves normally; scripts queue in order.
        """
        script = SmsScript(status, error_code)
        with self._state.changed:
            queue = self._state.sms_scripts.setdefault(number, deque())
            queue.extend([(script, True)] * times if times is not None else [(script, False)])

    def script_voice(self, number: str, outcome: str, *, times: int | None = None) -> None:
        """Make voice calls to ``number`` end as ``outcome``: ``human`` (the default),
        ``machine`` (a voicemail answers), ``no-answer``, ``busy`` or ``failed``."""
        if outcome not in VOICE_OUTCOMES:
            raise ValueError(f"outcome must be one of {VOICE_OUTCOMES}")
        with self._state.changed:
            queue = self._state.voice_scripts.setdefault(number, deque())
            queue.extend([(outcome, True)] * times if times is not None else [(outcome, False)])

    def wait_for_calls(self, count: int = 1, timeout: float = 5.0) -> list[SinkCall]:
        """Block until at least ``count`` voice calls were accepted; return them."""
        deadline = time.monotonic() + timeout
        with self._state.changed:
            while len(self._state.calls) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(self._state.calls)} of {count} calls after {timeout}s"
                    )
                self._state.changed.wait(left)
            return list(self._state.calls)

    async def wait_for_callbacks(
        self,
        predicate: Callable[[SinkCallback], bool],
        timeout: float = 5.0,  # noqa: ASYNC109  # a polling test helper
    ) -> list[SinkCallback]:
        """Wait (without blocking the loop) until a posted callback matches ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            found = [c for c in self.callbacks if predicate(c)]
            if found:
                return found
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no matching callback after {timeout}s: {self.callbacks}")
            await asyncio.sleep(0.01)

    # -- what it does -----------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 500, code: int | None = None) -> None:
        """Answer the next ``count`` POSTs to Messages.json with ``status`` (429/500/503...).

        ``code`` defaults to Twilio's code for that status (20429, 20500, 20503).
        """
        if code is None:
            code = DEFAULT_CODE_FOR_STATUS.get(status, INTERNAL_ERROR)
        with self._state.changed:
            self._state.faults.extend([(status, code)] * count)

    def fail_every(self, every: int, status: int = 503, code: int | None = None) -> None:
        """Answer every ``every``-th POST (to Messages.json or Calls.json, counted from
        now) with ``status``; 2 fails every other request, 0 stops. Faults queued with
        :meth:`fail_next` come first."""
        if every < 0:
            raise ValueError("every must be 0 (off) or more")
        if code is None:
            code = DEFAULT_CODE_FOR_STATUS.get(status, INTERNAL_ERROR)
        with self._state.changed:
            self._state.posts = 0
            self._state.periodic_fault = (every, status, code) if every else None

    def hold(self, *numbers: str, times: int | None = None, seconds: float | None = None) -> None:
        """Hold POSTs to ``numbers`` open without an answer: until :meth:`release_held`,
        or for ``seconds`` (then they are handled as usual; one ``seconds`` for every
        held number, the last one given). A client that gives up
        meanwhile gets nothing recorded but an attempt with HTTP status 499: as a
        request that never got through. With ``times``, only that many per number."""
        with self._state.changed:
            for number in numbers:
                self._state.holds[number] = times
            self._state.hold_s = seconds

    def release_held(self) -> None:
        """Let every held request go on, and hold no more."""
        with self._state.changed:
            self._state.holds.clear()
            self._state.hold_round += 1
            self._state.changed.notify_all()

    @property
    def held(self) -> int:
        """How many requests are being held open now."""
        with self._state.changed:
            return self._state.holding

    async def wait_for_held(
        self,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109  # a polling test helper
    ) -> None:
        """Wait (without blocking the loop) until ``count`` requests are held open."""
        deadline = time.monotonic() + timeout
        while self.held < count:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.held} of {count} requests held after {timeout}s")
            await asyncio.sleep(0.01)

    def add_landline(self, *numbers: str) -> None:
        """Numbers to refuse with 21614, as Twilio refuses a landline."""
        with self._state.changed:
            self._state.landlines.update(numbers)

    def set_status_callbacks(self, enabled: bool, delay_s: float | None = None) -> None:
        self._state.status_callbacks = enabled
        if delay_s is not None:
            self._state.callback_delay_s = delay_s

    def clear(self) -> None:
        """Forget recorded messages, attempts and callbacks, and pending faults."""
        with self._state.changed:
            self._state.messages.clear()
            self._state.attempts.clear()
            self._state.callbacks.clear()
            self._state.faults.clear()
            self._state.periodic_fault = None
            self._state.holds.clear()
            self._state.hold_round += 1
            self._state.calls.clear()
            self._state.sms_scripts.clear()
            self._state.voice_scripts.clear()
            self._state.changed.notify_all()

    def wait_for(
        self,
        predicate: Callable[[SinkMessage], bool] | None = None,
        timeout: float = 5.0,
        *,
        count: int = 1,
    ) -> list[SinkMessage]:
        """Block until ``count`` accepted SMS match ``predicate`` (any SMS if None); return them.

        Raises ``TimeoutError`` naming what did arrive.
        """
        deadline = time.monotonic() + timeout
        with self._state.changed:
            while True:
                matching = self._matching(predicate)
                if len(matching) >= count:
                    return matching
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._timeout_error(len(matching), count, timeout)
                self._state.changed.wait(left)

    async def wait_for_async(
        self,
        predicate: Callable[[SinkMessage], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109  # a polling test helper
        *,
        count: int = 1,
    ) -> list[SinkMessage]:
        """:meth:`wait_for` for coroutines: polls with short sleeps, never blocks the loop."""
        deadline = time.monotonic() + timeout
        while True:
            with self._state.changed:
                matching = self._matching(predicate)
            if len(matching) >= count:
                return matching
            if time.monotonic() >= deadline:
                raise self._timeout_error(len(matching), count, timeout)
            await asyncio.sleep(0.01)

    def _matching(self, predicate: Callable[[SinkMessage], bool] | None) -> list[SinkMessage]:
        return [m for m in self._state.messages if predicate is None or predicate(m)]

    def _timeout_error(self, got: int, wanted: int, timeout: float) -> TimeoutError:
        seen = [(m.to, m.body) for m in self._state.messages]
        return TimeoutError(f"{got} of {wanted} expected SMS after {timeout}s; sink has {seen}")


def main(argv: list[str] | None = None) -> int:
    """``python -m simulator.phone_network.server``: run a sink in the foreground,
    printing every SMS."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    parser.add_argument("--landline", action="append", default=[], help="refuse with 21614")
    parser.add_argument(
        "--status-callbacks", action="store_true", help="post sent/delivered callbacks"
    )
    parser.add_argument(
        "--script-sms",
        action="append",
        default=[],
        metavar="NUMBER=STATUS[:CODE]",
        help="e.g. +862155550101=undelivered:30006 (a landline)",
    )
    parser.add_argument(
        "--script-voice",
        action="append",
        default=[],
        metavar="NUMBER=OUTCOME",
        help=f"calls to NUMBER end as one of {', '.join(VOICE_OUTCOMES)}",
    )
    parser.add_argument(
        "--fail-every", type=int, default=0, metavar="N", help="answer every N-th POST with 503"
    )
    parser.add_argument(
        "--hang", action="append", default=[], metavar="NUMBER", help="hold requests to NUMBER"
    )
    parser.add_argument(
        "--hang-s", type=float, default=10.0, help="how long a held request waits (10 s)"
    )
    args = parser.parse_args(argv)
    sms_scripts: list[tuple[str, str, int | None]] = []
    voice_scripts: list[tuple[str, str]] = []
    try:
        for spec in args.script_sms:
            number, _, outcome = spec.partition("=")
            status, _, code = outcome.partition(":")
            sms_scripts.append((number, status, int(code) if code else None))
        for spec in args.script_voice:
            number, _, outcome = spec.partition("=")
            if outcome not in VOICE_OUTCOMES:
                raise ValueError(f"{outcome!r} is not one of {VOICE_OUTCOMES}")
            voice_scripts.append((number, outcome))
    except ValueError as exc:
        parser.error(f"bad script: {exc}")

    def show(message: SinkMessage) -> None:
        print(format_sms_line(message), flush=True)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    sink = SmsSinkServer(
        args.host,
        args.port,
        account_sid=args.account_sid,
        auth_token=args.auth_token,
        on_message=show,
        landlines=args.landline,
        status_callbacks=args.status_callbacks,
    )
    for number, status, code in sms_scripts:
        sink.script_sms(number, status, code)
    for number, outcome in voice_scripts:
        sink.script_voice(number, outcome)
    if args.fail_every:
        sink.fail_every(args.fail_every)
    if args.hang:
        sink.hold(*args.hang, seconds=args.hang_s)
    sink.start()
    print(f"SMS sink on {sink.url} (account {sink.account_sid})", file=sys.stderr, flush=True)
    try:
        stop.wait()
    finally:
        sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
