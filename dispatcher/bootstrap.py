"""The one place where adapters are chosen and wired: settings in, a running daemon out."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import importlib.metadata
import resource
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dispatcher import logs
from dispatcher.adapters.db import migrate
from dispatcher.adapters.db.accounts_store import SqlAccountStore
from dispatcher.adapters.db.device_outbox_store import SqlDeviceOutboxStore
from dispatcher.adapters.db.escalator_store import SqlEscalationStore
from dispatcher.adapters.db.fleet_store import SqlFleetStore
from dispatcher.adapters.db.intake_store import SqlIntakeStore
from dispatcher.adapters.db.lock_store import SqlLockStore
from dispatcher.adapters.db.metrics_store import SqlMetricsStore, database_answers
from dispatcher.adapters.db.operations_store import SqlCallStore
from dispatcher.adapters.db.outbox_store import SqlOutboxStore
from dispatcher.adapters.db.phone_store import SqlPhoneStore
from dispatcher.adapters.db.registry_store import SqlRegistryStore, registry_filled
from dispatcher.adapters.db.rota_overrides_store import RotaOverridesStore
from dispatcher.adapters.db.schema import make_engine, make_sessionmaker
from dispatcher.adapters.db.supervision_store import SupervisionStore
from dispatcher.adapters.db.time_shift_store import SqlTimeShiftStore
from dispatcher.adapters.db.transactions import Transactions
from dispatcher.adapters.db.watchdog_store import SqlWatchdogStore
from dispatcher.adapters.db.write_gate import WriteGate
from dispatcher.adapters.files.device_models import load_device_models
from dispatcher.adapters.files.directory_files import (
    DataFileError,
    load_directory,
    load_rota_directory,
)
from dispatcher.adapters.files.passwords import load_password_hashes
from dispatcher.adapters.files.policies import POLICIES, load_policies
from dispatcher.adapters.files.protocols import PROTOCOLS, ProtocolFile
from dispatcher.adapters.files.rota_toml import ROTA_TOML, RotaFile, load_rota_file
from dispatcher.adapters.files.watch import FileWatch
from dispatcher.adapters.log_sender import log_channels
from dispatcher.adapters.metrics.data_files import DataFilesCollector
from dispatcher.adapters.metrics.one_at_a_time import OneAtATime
from dispatcher.adapters.metrics.prometheus import PrometheusMetrics
from dispatcher.adapters.metrics.scrape import ScrapeFigures
from dispatcher.adapters.mosquitto.accounts_file import AccountsFile
from dispatcher.adapters.mosquitto.files import MosquittoFiles, password_hash
from dispatcher.adapters.mqtt.gateway import MqttGateway
from dispatcher.adapters.passwords import Argon2Hasher
from dispatcher.adapters.twilio.delivery_reports import TWILIO_STATUS_ORDER
from dispatcher.config import ConfigError, Settings, SmsSettings, load_settings
from dispatcher.core.directory import Directory
from dispatcher.core.directory_holder import DirectoryHolder
from dispatcher.core.policy_book import PolicyBook
from dispatcher.core.power_cut import PowerCutRule
from dispatcher.core.registry.records import to_area, to_staff
from dispatcher.core.rota.check import RotaGapError, require_command_centre
from dispatcher.services.accounts import Accounts
from dispatcher.services.channels import Channels
from dispatcher.services.clock import Clock, SteadyClock, SystemClock
from dispatcher.services.clock_watch import ClockWatch
from dispatcher.services.data_reload import DataReloader, Refused
from dispatcher.services.device_tests import TestModes
from dispatcher.services.dispatches import OverdueDispatches
from dispatcher.services.engine_cycles import EngineCycles
from dispatcher.services.escalator import Escalator
from dispatcher.services.fleet import Fleet
from dispatcher.services.instance_lock import InstanceLock, LeaseLostError, LockHeldError, Owner
from dispatcher.services.intake import Intake, IntakeSettings
from dispatcher.services.operations import CallOperations
from dispatcher.services.outbox import SmsOutbox
from dispatcher.services.outbox_runner import Handoff, OutboxRunner
from dispatcher.services.phone_desk import PhoneDesk
from dispatcher.services.power_cuts import PowerCuts
from dispatcher.services.provisioning import Provisioning
from dispatcher.services.registry import Registry, RegistryStore
from dispatcher.services.rota_overrides import RotaOverrides
from dispatcher.services.supervision import LinkSupervisor
from dispatcher.services.wakeup import Wakeup
from dispatcher.services.watchdog import SupervisorWatchdog

if TYPE_CHECKING:  # imported where used, as the HTTP side is (it pulls in FastAPI)
    from dispatcher.entrypoints.http.health import Watch
    from dispatcher.services.boards import BoardService

log = structlog.get_logger(__name__)

# The pollers /health/engine watches, as _poll records their cycles.
ESCALATOR, OUTBOX = "escalator", "outbox"
# How long /health/ready waits for the database's answer to a trivial query.
READY_DB_TIMEOUT_S = 2.0


@dataclass
class App:
    settings: Settings
    # The directory in force: every service reads it through this holder, and the
    # registry swaps a new one in after each change (``app.directory`` is the current).
    directories: DirectoryHolder
    registry: Registry
    clock: Clock
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    channels: Channels
    intake: Intake
    escalator: Escalator
    watchdog: SupervisorWatchdog  # pages the shift supervisor, in the escalator's cycle
    outbox: SmsOutbox
    operations: CallOperations
    accounts: Accounts  # the console's logins and sessions
    mqtt: MqttGateway
    supervisor: LinkSupervisor
    escalate_now: Wakeup
    send_now: Wakeup
    handoff: Handoff
    phone: PhoneDesk  # SMS replies and voice keys (Twilio's webhooks)
    overrides: RotaOverrides
    lock: InstanceLock  # one dispatcher per database, taken by run()
    metrics: PrometheusMetrics  # this app's own registry (GET /metrics)
    figures: ScrapeFigures  # the database's figures, read at scrape time
    cycles: EngineCycles  # the pollers' last completed cycles (GET /health/engine)
    # SQLite: the one queue of the daemon's writing transactions (None on PostgreSQL).
    write_gate: WriteGate | None = None
    # Follows a step of the system clock (None when the clock given is not steady).
    clock_watch: ClockWatch | None = None
    # The fleet report and test mode (README "The fleet").
    fleet: Fleet | None = None

    @property
    def directory(self) -> Directory:
        return self.directories.current

    @directory.setter
    def directory(self, directory: Directory) -> None:
        self.directories.swap(directory)

    # Reloads rota.toml and policies.toml when they change (None: not wired).
    reloader: DataReloader | None = None

    @property
    def engine_max_age_s(self) -> float:
        """How old a poller's last cycle may be before /health/engine says stale:
        three poll intervals (one may be slow, the next may be late) and 5 s of slack."""
        return 3 * self.settings.escalation.poll_interval_s + 5.0

    async def escalation_cycle(self) -> int:
        """One poll of the escalator: the due steps, then the watchdog's due pages."""
        return await self.escalator.run_due() + await self.watchdog.run_due()

    async def aclose(self) -> None:
        await self.channels.aclose()
        await self.engine.dispose()


def policy_book(settings: Settings, directory: Directory) -> PolicyBook:
    """The data folder's policies.toml (or the built-in policies), then the
    configuration's ``[escalation.policies.<kind>]`` over them."""
    overrides = settings.escalation.resolved_policies()
    return load_policies(
        settings.data.dir / POLICIES, directory, rotation_ids=directory.rotations.keys()
    ).overridden({kind: overrides[kind] for kind in settings.escalation.policies})


def build_channels(settings: SmsSettings) -> Channels:
    """The SMS and voice senders the configuration asks for (``[sms] provider``)."""
    if settings.provider == "log":
        return Channels(log_channels(settings.from_number))
    # Imported here so the port and the log senders do not pull in twilio and aiohttp.
    from dispatcher.adapters.twilio.sender import twilio_channels

    return Channels(twilio_channels(settings, timeout=settings.request_timeout_s))


async def build(
    settings: Settings,
    *,
    clock: Clock | None = None,
    directory: Directory | None = None,
    channels: Channels | None = None,
) -> App:
    """Wire the daemon. Brings the database schema up to date, reads the registry
    from it (seeding an empty one from the data folder, raising DataFileError on a
    bad file), reads the rota files and adds the rota overrides stored in the
    database; raises RotaGapError when the command centre has a gap in the next
    ``[rota] startup_check_days`` days. ``directory``, when given, seeds an empty
    registry instead of the data folder."""
    clock = clock or SteadyClock()
    # The operator scripts: checked at start (a bad file stops it, as policies.toml
    # does), then followed while the daemon runs.
    protocols = ProtocolFile(settings.data.dir / PROTOCOLS)
    # The files as they are before they are read: a change from here on is reloaded.
    files = FileWatch(
        {ROTA_TOML: settings.data.dir / ROTA_TOML, POLICIES: settings.data.dir / POLICIES}
    )
    check_days = settings.rota.startup_check_days
    _ensure_sqlite_folder(settings.database.url)
    engine = make_engine(settings.database.url)
    try:
        if directory is None and not await registry_filled(engine):
            # The seed of a new registry: a bad data file stops the daemon here,
            # before the database is created or migrated.
            directory = load_directory(settings.data.dir, settings.data.timezone)
        if directory is not None:
            # The seed's rota alone, before the database is touched; again below
            # with the database's overrides.
            require_command_centre(directory, clock.now(), check_days)
        await migrate.upgrade(engine)
    except BaseException:
        await engine.dispose()
        raise
    sessions = make_sessionmaker(engine)
    # SQLite: the daemon's writers take turns in asyncio, not in SQLite's busy handler.
    gate = WriteGate() if engine.dialect.name == "sqlite" else None

    def tx(store_for: Callable[[AsyncSession], Any]) -> Transactions[Any]:
        return Transactions(sessions, store_for, gate)

    try:
        registry, seeded = await open_registry(settings, tx(SqlRegistryStore), clock, directory)
        holder = registry.directories
        # The demo passwords of the data folder's staff (passwords.csv, optional).
        password_hashes = load_password_hashes(
            settings.data.dir, holder.current, unknown_ok=not seeded
        )
        # Once with the rota files alone, once with the database's overrides.
        require_command_centre(holder.current, clock.now(), check_days)
    except BaseException:
        await engine.dispose()
        raise
    directory = holder.current
    overrides = RotaOverrides(tx(RotaOverridesStore), holder, clock)
    accounts = Accounts(tx(SqlAccountStore), holder, clock, Argon2Hasher())

    def heartbeat_of(device_id: str) -> int:
        return settings.devices.heartbeat_for(registry.model_of(device_id))

    test_modes = TestModes()
    fleet = Fleet(tx(SqlFleetStore), holder, clock, settings.devices, test_modes)
    try:
        await overrides.load()
        await fleet.load()
        await accounts.seed(password_hashes)
        require_command_centre(directory, clock.now(), check_days)
    except BaseException:
        await engine.dispose()
        raise
    channels = channels or build_channels(settings.sms)
    escalate_now, send_now, publish_now = Wakeup(), Wakeup(), Wakeup()
    metrics = PrometheusMetrics(_version())
    devices = settings.devices
    figures = ScrapeFigures(
        tx(SqlMetricsStore),
        clock,
        silent_after_s=devices.heartbeat_s * devices.missed_heartbeats,
    )
    metrics.add_collector(figures)

    def escalate_and_publish() -> None:
        escalate_now()
        publish_now()

    outbox = SmsOutbox(
        tx(SqlOutboxStore),
        channels,
        clock,
        status_order=TWILIO_STATUS_ORDER,
        directory=holder,
        public_url=settings.http.public_url or settings.http.base_url,
        throttle_s=settings.sms.throttle_s,
        voice_retries=settings.sms.voice_retries,
        callback_retries=settings.sms.callback_retries,
        on_change=send_now,
        metrics=metrics,
        # Minted at each start: at start-up the outbox hands back every claim that
        # is not this instance's (a crashed one's) at once.
        instance_id=uuid.uuid4().hex,
        request_timeout_s=settings.sms.request_timeout_s,
        max_in_flight=settings.sms.max_in_flight,
    )
    # The outbox loop's free slots, lent to the escalator: an emergency's first SMS
    # leaves at the commit of the step that wrote it.
    handoff = Handoff(outbox)
    escalator = Escalator(
        tx(SqlEscalationStore),
        holder,
        clock,
        on_change=send_now,
        metrics=metrics,
        budget_s=settings.escalation.step_budget_s or None,
        handoff=handoff,
    )
    # Responders not arrived by their expected time raise their call: the escalator's cycle.
    escalator.also_poll(OverdueDispatches(tx(SqlCallStore), holder, clock, send_now).run_due)
    intake = Intake(
        tx(SqlIntakeStore),
        holder,
        clock,
        policy_book(settings, directory),
        IntakeSettings(
            timezone=settings.data.timezone,
            rejected_alert_threshold=settings.devices.rejected_alert_threshold,
            heartbeat_s=settings.devices.heartbeat_s,
            heartbeat_of=heartbeat_of,
        ),
        on_change=escalate_and_publish,
        metrics=metrics,
        # An alarm's first step is fired in the intake's own transaction.
        escalator=escalator if settings.escalation.first_step_in_intake else None,
        power_cuts=PowerCuts(
            holder,
            PowerCutRule(
                building_devices=devices.power_cut_building_devices,
                community_devices=devices.power_cut_community_devices,
                window=timedelta(seconds=devices.power_cut_window_s),
            ),
        ),
        test_modes=test_modes,
    )
    # The call page's device state: the stored links, and the contact held in memory.
    operations = CallOperations(
        tx(SqlCallStore),
        holder,
        clock,
        on_change=publish_now,
        on_sms=send_now,
        contacts=intake.heartbeats,
        protocols=protocols,
    )
    # Calls linked to a resident when their device is registered: the queue redraws.
    registry.on_change = publish_now
    if settings.broker.follow_registry:
        accounts_of = broker_provisioning(settings, lambda: registry.in_service())
        registry.on_retired = lambda device_id: asyncio.to_thread(
            accounts_of.revoke, device_id, missing_ok=True
        )
    fleet.before_read = intake.heartbeats.flush  # the report reads the links
    reloader = DataReloader(
        files,
        holder,
        intake,
        clock,
        load_rota=lambda live: _rota_file(settings, live),
        load_policies=lambda live: _policies_file(settings, live),
        check_days=check_days,
    )
    metrics.add_collector(DataFilesCollector(reloader.status))
    return App(
        settings=settings,
        directories=holder,
        registry=registry,
        clock=clock,
        engine=engine,
        sessions=sessions,
        channels=channels,
        intake=intake,
        escalator=escalator,
        watchdog=SupervisorWatchdog(
            tx(SqlWatchdogStore), holder, clock, on_change=send_now, metrics=metrics
        ),
        outbox=outbox,
        handoff=handoff,
        operations=operations,
        accounts=accounts,
        mqtt=MqttGateway(
            settings.mqtt,
            intake,
            tx(SqlIntakeStore),
            tx(SqlDeviceOutboxStore),
            clock,
            publish_now,
            settings.intake,
            metrics,
        ),
        supervisor=LinkSupervisor(
            tx(SupervisionStore),
            intake,
            clock,
            settings.devices,
            on_change=escalate_now,
            # Supervision reads device_links: the contacts held in memory first.
            before_check=intake.heartbeats.flush,
            metrics=metrics,
            heartbeat_of=heartbeat_of,
        ),
        escalate_now=escalate_now,
        send_now=send_now,
        phone=PhoneDesk(
            tx(SqlPhoneStore),
            holder,
            clock,
            operations,
            on_escalate=escalate_now,
        ),
        overrides=overrides,
        clock_watch=(
            ClockWatch(
                tx(SqlTimeShiftStore),
                clock,
                on_change=escalate_now,
                on_followed=intake.heartbeats.shift,
            )
            if isinstance(clock, SteadyClock)
            else None
        ),
        lock=InstanceLock(
            tx(lambda session: SqlLockStore(session, intake)),
            clock,
            Owner.this_process(settings.mqtt.client_id),
            lease_s=settings.instance.lease_s,
            renew_every_s=settings.instance.renew_every_s,
            on_alert=escalate_now,
        ),
        metrics=metrics,
        figures=figures,
        cycles=EngineCycles(clock, [ESCALATOR, OUTBOX]),
        write_gate=gate,
        fleet=fleet,
        reloader=reloader,
    )


async def open_registry(
    settings: Settings,
    tx: Transactions[RegistryStore],
    clock: Clock,
    seed: Directory | None = None,
) -> tuple[Registry, bool]:
    """The registry on the database, and whether it was seeded now: an empty one
    gets the data folder's records (or ``seed``'s); one already filled is read, and the
    rota files are read against its areas and staff. Raises DataFileError."""
    data = settings.data
    holder = DirectoryHolder(seed or _placeholder(data.timezone))
    registry = Registry(tx, holder, clock)
    if await registry.is_empty():
        files = seed or load_directory(data.dir, data.timezone)
        # devices.csv (optional): the seeded devices' models, for their heartbeat.
        await registry.seed(files, models=load_device_models(data.dir).as_dict())
        return registry, True
    records = await registry.records()
    base = load_rota_directory(
        data.dir,
        data.timezone,
        {a.id: to_area(a) for a in records.areas},
        {s.id: to_staff(s) for s in records.staff},
    )
    holder.swap(base)
    registry.use(records)
    return registry, False


def _placeholder(timezone: str) -> Directory:
    # What the holder holds until the registry is read: never seen by a reader.
    return Directory(areas={}, staff={}, residents={}, shifts=(), timezone=timezone)


def _rota_file(settings: Settings, directory: Directory) -> RotaFile:
    """``rota.toml`` read against the running directory's areas and staff."""
    problems: list[str] = []
    path = settings.data.dir / ROTA_TOML
    if not path.is_file():  # a save in progress, or removed: keep the running rota
        raise Refused([f"{path}: no such file (the running rota is kept)"])
    loaded = load_rota_file(path, directory.areas, directory.staff, directory.timezone, problems)
    if problems:
        raise Refused(problems)
    return loaded


def _policies_file(settings: Settings, directory: Directory) -> PolicyBook:
    """``policies.toml`` changed: read as at start. Gone (a save in progress, or
    removed) keeps the policies in force; the built-in ones return at a restart."""
    path = settings.data.dir / POLICIES
    if not path.is_file():
        raise Refused([f"{path}: no such file (the running policies are kept)"])
    return policy_book(settings, directory)


def _version() -> str:
    try:
        return importlib.metadata.version("eldercall")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"


async def run(app: App, stop: asyncio.Event, *, serve_http: bool = True) -> None:
    """Run every part of the daemon until ``stop`` is set; a part that fails is
    logged and restarted, so one fault never stops the others.

    First takes the database's dispatcher lock (raising :class:`LockHeldError` when
    another dispatcher holds it); raises :class:`LeaseLostError` once every part has
    stopped if another dispatcher took the lock while this one ran."""
    await app.lock.acquire()
    lost: list[LeaseLostError] = []

    async def hold_lock() -> None:
        try:
            await app.lock.hold(stop)
        except LeaseLostError as exc:
            # Intake stops, with everything else: two dispatchers must never fight.
            lost.append(exc)
            stop.set()

    interval = app.settings.escalation.poll_interval_s
    parts: dict[str, Callable[[], Awaitable[None]]] = {
        "lock": hold_lock,
        "mqtt": lambda: app.mqtt.run(stop),
        "escalator": lambda: _poll(
            app.escalation_cycle, app.escalate_now, interval, stop, app.cycles.recorder(ESCALATOR)
        ),
        "sms_outbox": lambda: OutboxRunner(app.outbox, handoff=app.handoff).run(
            app.send_now, interval, stop, app.cycles.recorder(OUTBOX)
        ),
        "supervision": lambda: _poll(
            app.supervisor.check, Wakeup(), app.settings.devices.check_interval_s, stop
        ),
        "contacts": lambda: app.intake.heartbeats.run(app.settings.intake.contacts_flush_s, stop),
    }
    watch = app.clock_watch
    if watch is not None:
        # A step of the system clock is noticed within a poll; until then the steady
        # clock simply does not follow it, so nothing falls due early or late.
        parts["clock_watch"] = lambda: _poll(watch.check, Wakeup(), interval, stop)
    reloader, every = app.reloader, app.settings.data.reload_interval_s
    if reloader is not None and every > 0:
        parts["data_reload"] = lambda: reloader.run(every, stop)
    if serve_http:
        from dispatcher.entrypoints.http.app import serve_api

        api = http_app(app)
        http = app.settings.http
        parts["http"] = lambda: serve_api(
            api,
            http.host,
            http.port,
            stop,
            max_connections=http.max_connections,
            keep_alive_s=http.keep_alive_s,
        )
    log.info("dispatcher_started", parts=sorted(parts), owner=str(app.lock.owner))
    try:
        await asyncio.gather(*(_keep_running(name, part, stop) for name, part in parts.items()))
        # The intake has finished its last batch: what it noted in memory goes to the links.
        with contextlib.suppress(Exception):
            await app.intake.heartbeats.flush()
    finally:
        if not lost:
            await app.lock.release()
    if lost:
        raise lost[0]
    log.info("dispatcher_stopped")


async def _poll(
    work: Callable[[], Awaitable[int]],
    wake: Wakeup,
    interval: float,
    stop: asyncio.Event,
    cycled: Callable[[], None] = lambda: None,
) -> None:
    while not stop.is_set():
        wake.event.clear()
        done = await work()
        cycled()  # for /health/engine: this poller is alive
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
                async with asyncio.timeout(delay):
                    await stop.wait()
            delay = min(delay * 2, 30.0)


def http_app(app: App) -> Any:
    """The daemon's HTTP app as it serves it: the operator API, the console, Twilio's
    signed webhooks (replies, voice keys, delivery reports), the calendar feeds,
    ``/metrics`` and the health checks; one place, so that a test can take the
    production wiring instead of assembling its own."""
    from dispatcher.adapters.twilio.phone_webhooks import TwilioWebhooks
    from dispatcher.entrypoints.http.app import create_app
    from dispatcher.entrypoints.http.console import add_console
    from dispatcher.entrypoints.http.fleet import add_fleet
    from dispatcher.entrypoints.http.health import add_health
    from dispatcher.entrypoints.http.registry import add_registry
    from dispatcher.services.calendar_feeds import CalendarFeeds
    from dispatcher.services.live_queue import LiveQueue

    queue = LiveQueue(app.operations, app.directories, app.clock)
    api = create_app(
        app.operations,
        app.clock,
        twilio=TwilioWebhooks.from_settings(app.phone, app.settings, app.outbox),
        overrides=app.overrides,
        calendars=CalendarFeeds(app.directories, app.clock, app.settings.http.public_url),
        boards=board_service(app),
        parts=(add_health, add_registry, add_fleet, add_console),
        watch=watch(app),
        registry=app.registry,
        fleet=app.fleet,
        accounts=app.accounts,
        live_queue=queue,
        directory=app.directory,
    )
    # The console's streams end as the server stops, not at its graceful timeout.
    api.at_close(queue.close)
    # The console's pages read the directory from the request's state: keep it the current.
    app.directories.on_swap(lambda d: api.provide(directory=d))
    return api


def board_service(app: App) -> BoardService:
    """The board of the console and of ``GET /api/v1/board``, on the app's database."""
    from dispatcher.adapters.db.boards_store import SqlBoardStore
    from dispatcher.services.boards import BoardService

    return BoardService(
        Transactions(app.sessions, SqlBoardStore, app.write_gate),
        app.operations,
        app.directories,
        app.clock,
        app.settings.devices,
    )


def watch(app: App) -> Watch:
    """What ``/metrics`` and ``/health/*`` look at."""
    from dispatcher.entrypoints.http.health import Watch

    return Watch(
        database=OneAtATime(lambda: database_answers(app.engine), READY_DB_TIMEOUT_S),
        mqtt_connected=app.mqtt.connected.is_set,
        cycles=app.cycles,
        engine_max_age_s=app.engine_max_age_s,
        metrics=app.metrics,
        figures=app.figures,
        data_files=app.reloader.status if app.reloader is not None else dict,
    )


@contextlib.asynccontextmanager
async def accounts_only(settings: Settings) -> AsyncIterator[Accounts]:
    """The accounts service alone on the configured database (schema brought up to
    date), for ``eldercall staff``: one short transaction beside a running daemon."""
    _ensure_sqlite_folder(settings.database.url)
    engine = make_engine(settings.database.url)
    try:
        await migrate.upgrade(engine)
        sessions = make_sessionmaker(engine)
        registry, _ = await open_registry(
            settings, Transactions(sessions, SqlRegistryStore), SystemClock()
        )
        tx = Transactions(sessions, SqlAccountStore)
        yield Accounts(tx, registry.directories, SystemClock(), Argon2Hasher())
    finally:
        await engine.dispose()


def broker_provisioning(
    settings: Settings,
    registered: Callable[[], Mapping[str, bool]] | None = None,
    clock: Clock | None = None,
) -> Provisioning:
    """The devices' MQTT accounts: the files of ``[broker] state_dir`` and a SIGHUP to
    the broker of ``pid_file``; ``registered`` (the registry's devices) by default read
    from the database when asked."""
    b = settings.broker
    return Provisioning(
        AccountsFile(b.state_dir),
        MosquittoFiles(b.state_dir, settings.mqtt.topic_root, b.dispatcher_username, b.pid_file),
        clock or SystemClock(),
        password_hash,
        dispatcher_username=b.dispatcher_username,
        registered=registered or (lambda: registered_devices(settings)),
    )


def registered_devices(settings: Settings) -> dict[str, bool]:
    """The registry's devices (id: in service, False once retired), read from the
    database; before a daemon has filled it, the data folder's, the seed it will get.
    For ``eldercall devices provision`` and ``sync``, beside a running daemon."""
    return asyncio.run(_registered_devices(settings))


async def _registered_devices(settings: Settings) -> dict[str, bool]:
    engine = make_engine(settings.database.url)
    try:
        if await registry_filled(engine):
            tx = Transactions(make_sessionmaker(engine), SqlRegistryStore)
            async with tx.read() as store:
                records = await store.records()
            return {d.id: d.active for d in records.devices}
    finally:
        await engine.dispose()
    seed = load_directory(settings.data.dir, settings.data.timezone)
    return {r.device_id: True for r in seed.residents.values() if r.device_id}


def password_hasher() -> Argon2Hasher:
    return Argon2Hasher()


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
    except LockHeldError as exc:
        log.error("dispatcher_already_running", error=str(exc))
        return 3
    except LeaseLostError as exc:
        log.error("dispatcher_stopped_lock_lost", error=str(exc))
        return 3
    return 0


def raise_open_files_limit() -> None:
    """Lift the soft limit of open files to the hard one: a systemd unit's default soft
    limit (1,024) is a few hundred devices' worth of sockets, and running out stops
    MQTT intake. (The HTTP server's own connection limit keeps it from taking them.)"""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft >= hard:
        return
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("open_files_limit_kept", soft=soft, hard=hard, error=str(exc))
        return
    log.info("open_files_limit_raised", soft_was=soft, soft=target)


def release_start_up_memory() -> None:
    """Hand back to the system what start-up used and freed: reading 100,000 residents
    (their rows, validation, the seed's audit) peaks far above what the daemon keeps,
    and glibc keeps freed heap pages mapped unless asked (malloc_trim; elsewhere than
    glibc, not asked).

    What start-up kept (the directory, the registry, the ORM's mappers, the modules)
    lives as long as the daemon, so it is frozen out of the cycle collector: otherwise
    each full collection walks all of it, 190 ms a time with 10,000 devices, five of
    them within a burst of 10,000 presses (0.9 s of the 5 s an answer may take).
    Frozen objects are still freed by reference counting when dropped: a directory
    replaced by a reload holds no reference cycles
    (tests/test_bootstrap_memory.py)."""
    gc.collect()
    gc.freeze()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGINT and SIGTERM end the run cleanly: ``stop`` is set, every part winds down."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def _run_until_signalled(settings: Settings, clock: Clock | None = None) -> None:
    raise_open_files_limit()
    stop = asyncio.Event()
    stop_on_signals(stop)
    app = await build(settings, clock=clock)
    release_start_up_memory()
    try:
        await run(app, stop)
    finally:
        await app.aclose()
