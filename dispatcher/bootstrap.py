"""The one place where adapters are chosen and wired: settings in, a running daemon out."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dispatcher import logs
from dispatcher.adapters.db import migrate
from dispatcher.adapters.db.escalator_store import SqlEscalationStore
from dispatcher.adapters.db.intake_store import SqlIntakeStore
from dispatcher.adapters.db.operations_store import SqlCallStore
from dispatcher.adapters.db.phone_store import SqlPhoneStore
from dispatcher.adapters.db.rota_overrides_store import RotaOverridesStore
from dispatcher.adapters.db.schema import make_engine, make_sessionmaker
from dispatcher.adapters.db.supervision_store import SupervisionStore
from dispatcher.adapters.db.transactions import Transactions
from dispatcher.adapters.db.write_gate import WriteGate
from dispatcher.adapters.files.directory_files import DataFileError, load_directory
from dispatcher.adapters.files.policies import POLICIES, load_policies
from dispatcher.adapters.log_sender import LogSmsSender
from dispatcher.adapters.mqtt.gateway import MqttGateway
from dispatcher.config import ConfigError, Settings, SmsSettings, load_settings
from dispatcher.core.directory import Directory
from dispatcher.core.policy_book import PolicyBook
from dispatcher.core.rota.check import RotaGapError, require_command_centre
from dispatcher.services.channels import SmsSender
from dispatcher.services.clock import Clock, SystemClock
from dispatcher.services.escalator import Escalator
from dispatcher.services.intake import Intake, IntakeSettings
from dispatcher.services.operations import CallOperations
from dispatcher.services.outbox import SmsOutbox
from dispatcher.services.phone_desk import PhoneDesk
from dispatcher.services.rota_overrides import RotaOverrides
from dispatcher.services.supervision import LinkSupervisor
from dispatcher.services.wakeup import Wakeup

log = structlog.get_logger(__name__)


@dataclass
class App:
    settings: Settings
    directory: Directory
    clock: Clock
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    sms: SmsSender
    intake: Intake
    escalator: Escalator
    outbox: SmsOutbox
    operations: CallOperations
    mqtt: MqttGateway
    supervisor: LinkSupervisor
    escalate_now: Wakeup
    send_now: Wakeup
    phone: PhoneDesk  # SMS replies and voice keys (Twilio's webhooks)
    overrides: RotaOverrides

    async def aclose(self) -> None:
        await self.sms.aclose()
        await self.engine.dispose()


def policy_book(settings: Settings, directory: Directory) -> PolicyBook:
    """The data folder's policies.toml (or the built-in policies), then the
    configuration's ``[escalation.policies.<kind>]`` over them."""
    overrides = settings.escalation.resolved_policies()
    return load_policies(
        settings.data.dir / POLICIES, directory, rotation_ids=directory.rotations.keys()
    ).overridden({kind: overrides[kind] for kind in settings.escalation.policies})


def build_sms_sender(settings: SmsSettings) -> SmsSender:
    """The sender the configuration asks for (``[sms] provider``)."""
    if settings.provider == "log":
        return LogSmsSender(settings.from_number)
    # Imported here so the port and the log sender do not pull in twilio and aiohttp.
    from dispatcher.adapters.twilio.sender import TwilioSmsSender

    return TwilioSmsSender(settings)


async def build(
    settings: Settings,
    *,
    clock: Clock | None = None,
    directory: Directory | None = None,
    sms: SmsSender | None = None,
) -> App:
    """Wire the daemon. Loads the data folder (raising DataFileError on a bad file),
    brings the database schema up to date and adds the rota overrides stored in it;
    raises RotaGapError when the command centre has a gap in the next
    ``[rota] startup_check_days`` days."""
    clock = clock or SystemClock()
    directory = directory or load_directory(settings.data.dir, settings.data.timezone)
    check_days = settings.rota.startup_check_days
    # Once before touching the database (the files alone), once with its overrides.
    require_command_centre(directory, clock.now(), check_days)
    _ensure_sqlite_folder(settings.database.url)
    engine = make_engine(settings.database.url)
    await migrate.upgrade(engine)
    sessions = make_sessionmaker(engine)
    # SQLite: the daemon's writers take turns in asyncio, not in SQLite's busy handler.
    gate = WriteGate() if engine.dialect.name == "sqlite" else None

    def tx(store_for: Callable[[AsyncSession], Any]) -> Transactions[Any]:
        return Transactions(sessions, store_for, gate)

    overrides = RotaOverrides(tx(RotaOverridesStore), directory, clock)
    try:
        await overrides.load()
        require_command_centre(directory, clock.now(), check_days)
    except BaseException:
        await engine.dispose()
        raise
    sms = sms or build_sms_sender(settings.sms)
    escalate_now, send_now, publish_now = Wakeup(), Wakeup(), Wakeup()

    def escalate_and_publish() -> None:
        escalate_now()
        publish_now()

    intake = Intake(
        tx(SqlIntakeStore),
        directory,
        clock,
        policy_book(settings, directory),
        IntakeSettings(
            timezone=settings.data.timezone,
            rejected_alert_threshold=settings.devices.rejected_alert_threshold,
            heartbeat_s=settings.devices.heartbeat_s,
        ),
        on_change=escalate_and_publish,
    )
    operations = CallOperations(tx(SqlCallStore), directory, clock, on_change=publish_now)
    return App(
        settings=settings,
        directory=directory,
        clock=clock,
        engine=engine,
        sessions=sessions,
        sms=sms,
        intake=intake,
        escalator=Escalator(tx(SqlEscalationStore), directory, clock, on_change=send_now),
        outbox=SmsOutbox(
            sessions,
            sms,
            clock,
            directory=directory,
            public_url=settings.http.public_url or settings.http.base_url,
            throttle_s=settings.sms.throttle_s,
            voice_retries=settings.sms.voice_retries,
            callback_retries=settings.sms.callback_retries,
            on_change=send_now,
        ),
        operations=operations,
        mqtt=MqttGateway(settings.mqtt, intake, sessions, clock, publish_now, settings.intake),
        supervisor=LinkSupervisor(
            tx(SupervisionStore),
            intake,
            clock,
            settings.devices,
            on_change=escalate_now,
            # Supervision reads device_links: the contacts held in memory first.
            before_check=intake.heartbeats.flush,
        ),
        escalate_now=escalate_now,
        send_now=send_now,
        phone=PhoneDesk(
            tx(SqlPhoneStore),
            directory,
            clock,
            operations,
            on_escalate=escalate_now,
        ),
        overrides=overrides,
    )


async def run(app: App, stop: asyncio.Event, *, serve_http: bool = True) -> None:
    """Run every part of the daemon until ``stop`` is set; a part that fails is
    logged and restarted, so one fault never stops the others."""
    interval = app.settings.escalation.poll_interval_s
    parts: dict[str, Callable[[], Awaitable[None]]] = {
        "mqtt": lambda: app.mqtt.run(stop),
        "escalator": lambda: _poll(app.escalator.run_due, app.escalate_now, interval, stop),
        "sms_outbox": lambda: _poll(app.outbox.send_due, app.send_now, interval, stop),
        "supervision": lambda: _poll(
            app.supervisor.check, Wakeup(), app.settings.devices.check_interval_s, stop
        ),
        "contacts": lambda: app.intake.heartbeats.run(app.settings.intake.contacts_flush_s, stop),
    }
    if serve_http:
        from dispatcher.entrypoints.http.app import serve_api

        api = http_app(app)
        http = app.settings.http
        parts["http"] = lambda: serve_api(api, http.host, http.port, stop)
    log.info("dispatcher_started", parts=sorted(parts))
    await asyncio.gather(*(_keep_running(name, part, stop) for name, part in parts.items()))
    # The intake has finished its last batch: what it noted in memory goes to the links.
    with contextlib.suppress(Exception):
        await app.intake.heartbeats.flush()
    log.info("dispatcher_stopped")


async def _poll(
    work: Callable[[], Awaitable[int]], wake: Wakeup, interval: float, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        wake.event.clear()
        done = await work()
        if done:
            continue  # there may be more right behind
        waits = {asyncio.ensure_future(wake.event.wait()), asyncio.ensure_future(stop.wait())}
        await asyncio.wait(waits, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()


async def _keep_running(
    name: str, part: Callable[[], Awaitable[None]], stop: asyncio.Event
) -> None:
    delay = 0.5
    while not stop.is_set():
        try:
            await part()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("part_failed", part=name, restart_in_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 30.0)


def http_app(app: App) -> Any:
    """The daemon's HTTP app as it serves it: the operator API, Twilio's signed webhooks
    (replies, voice keys, delivery reports) and the calendar feeds; one place, so that a
    test can take the production wiring instead of assembling its own."""
    from dispatcher.adapters.twilio.phone_webhooks import TwilioWebhooks
    from dispatcher.entrypoints.http.app import create_app
    from dispatcher.services.calendar_feeds import CalendarFeeds

    api = create_app(
        app.operations,
        app.clock,
        twilio=TwilioWebhooks.from_settings(app.phone, app.settings),
        overrides=app.overrides,
        calendars=CalendarFeeds(app.directory, app.clock, app.settings.http.public_url),
    )
    api.include_router(delivery_router(app))
    return api


def delivery_router(app: App) -> Any:
    """Twilio's delivery status callbacks, signed for ``[http] public_url``."""
    from dispatcher.adapters.twilio.status_webhooks import status_router

    sms = app.settings.sms
    return status_router(
        app.outbox, app.settings.http.public_url, [sms.auth_token, sms.auth_token_secondary]
    )


def _ensure_sqlite_folder(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def main_run(config_path: str | None, *, clock: Clock | None = None) -> int:
    """``eldercall run``: the daemon in the foreground until SIGINT or SIGTERM."""
    logs.configure()
    return run_main(config_path, lambda settings: _run_until_signalled(settings, clock))


def run_main(config_path: str | None, body: Callable[[Settings], Coroutine[Any, Any, None]]) -> int:
    """Load the configuration and run ``body`` in a new event loop; 2 on a bad
    configuration or data file (said in one log line naming file and line), else 0."""
    try:
        settings = load_settings(config_path)
        asyncio.run(body(settings))
    except ConfigError as exc:
        log.error("config_invalid", error=str(exc))
        return 2
    except DataFileError as exc:
        log.error("data_invalid", error=str(exc))
        return 2
    except RotaGapError as exc:
        log.error("rota_gap", error=str(exc))
        return 2
    return 0


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGINT and SIGTERM end the run cleanly: ``stop`` is set, every part winds down."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def _run_until_signalled(settings: Settings, clock: Clock | None = None) -> None:
    stop = asyncio.Event()
    stop_on_signals(stop)
    app = await build(settings, clock=clock)
    try:
        await run(app, stop)
    finally:
        await app.aclose()
