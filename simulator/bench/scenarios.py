"""The benchmark's scenarios, and the baselines measured on the same broker in the same
run. Each scenario builds its own district, database and daemon, is bounded in time
(at its timeout it reports what it saw), and returns its figures."""

from __future__ import annotations

import contextlib
import math
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from dispatcher.config import MqttSettings
from simulator.bench import load, records
from simulator.bench.figures import Figure, fmt, latencies_ms, percentile
from simulator.bench.load import Press
from simulator.bench.world import Daemon, Policy, SinkProcess, device_id, write_district
from simulator.broker import MosquittoProcess
from simulator.postgres import PostgresServer, find_pg_bin

CALL_ID_RE = re.compile(r"C-\d{8}-\d+")
READY_TIMEOUT_S = 180  # 100,000 residents take a while to load on a shared machine


@dataclass(frozen=True)
class Size:
    """The numbers of one mode: full (the issue's) or quick (tiny, for the smoke test)."""

    ingest_heartbeats: int
    burst_devices: int
    flood_rate: int
    flood_seconds: int
    flood_emergencies: int
    steady_presses: int
    open_calls: int
    step_delays_s: tuple[int, ...]
    escalation_window_s: int
    rest_devices: int
    rest_idle_s: float  # how long the daemon idles before its memory is read
    baseline_round_trips: int
    timeout_s: int  # how long a scenario waits for answers after its load was sent


FULL = Size(
    ingest_heartbeats=10_000,
    burst_devices=10_000,
    flood_rate=5_000,
    flood_seconds=10,
    flood_emergencies=200,
    steady_presses=200,
    open_calls=10_000,
    step_delays_s=(0, 30, 60),
    escalation_window_s=150,
    rest_devices=100_000,
    rest_idle_s=5,
    baseline_round_trips=200,
    timeout_s=30,
)
QUICK = Size(
    ingest_heartbeats=200,
    burst_devices=50,
    flood_rate=100,
    flood_seconds=2,
    flood_emergencies=5,
    steady_presses=10,
    open_calls=10,
    step_delays_s=(0, 3),
    escalation_window_s=10,
    rest_devices=500,
    rest_idle_s=1,
    baseline_round_trips=20,
    timeout_s=10,
)


@dataclass
class Baselines:
    ingest_per_s: float | None = None
    round_trip_p50_ms: float | None = None
    round_trip_p99_ms: float | None = None
    # The floors (load.floor_responder_worker): the same load on a responder that stores
    # nothing, measured once a run, the first time a scenario needs it.
    burst_floor: list[Figure] | None = None
    flood_floor: list[Figure] | None = None

    @property
    def answer_target_ms(self) -> float | None:
        """4× the broker's own QoS 1 round trip (p99): the press→answer target."""
        return None if self.round_trip_p99_ms is None else 4 * self.round_trip_p99_ms


@dataclass
class Bench:
    broker: MosquittoProcess
    sink: SinkProcess
    work: Path
    size: Size
    say: Callable[[str], None]
    baselines: Baselines = field(default_factory=Baselines)
    _postgres: PostgresServer | None = None
    versions: dict[str, str] = field(default_factory=dict)

    def database(self, kind: str, folder: Path) -> str:
        if kind == "sqlite":
            return f"sqlite+aiosqlite:///{folder / 'eldercall.db'}"
        if self._postgres is None:
            bin_dir = find_pg_bin()
            if bin_dir is None:
                raise RuntimeError(
                    "PostgreSQL server binaries not found (apt-get install postgresql)"
                )
            self._postgres = PostgresServer(bin_dir, max_connections=200)
            self._postgres.start()
            self.versions["PostgreSQL"] = self._postgres.version()
        return self._postgres.url(self._postgres.create_database("bench"))

    def close(self) -> None:
        if self._postgres is not None:
            self._postgres.stop()

    def daemon(self, name: str, db: str, devices: int, policy: Policy | None = None) -> Daemon:
        """A fresh district, database and daemon for one scenario, started and answering."""
        folder = self.work / f"{name}-{db}"
        shutil.rmtree(folder, ignore_errors=True)
        data = write_district(folder / "data", devices)
        daemon = Daemon(
            folder,
            broker_url=self.broker.url,
            db_url=self.database(db, folder),
            data_dir=data,
            sink_url=self.sink.url,
            policy=policy or Policy(),
        )
        daemon.start()
        ready = daemon.wait_ready(READY_TIMEOUT_S)
        if ready is None:
            daemon.stop()
            raise RuntimeError(
                f"the daemon did not answer within {READY_TIMEOUT_S} s:\n{daemon.log_tail()}"
            )
        self.say(f"  daemon up in {ready:.1f} s ({devices:,} devices, {db}; log {daemon.log})")
        return daemon


def _presses(first: int, count: int, kind: str, tag: str) -> list[Press]:
    return [Press(device_id(first + n), f"{tag}-{n}", kind) for n in range(count)]


def _workers(rate: float) -> int:
    """Publisher processes for ``rate`` a second: one paho client keeps up with ~4,000."""
    return max(1, min(4, math.ceil(rate / 4000)))


def _ms(value: float) -> str:
    return f"{fmt(value)} ms" if math.isfinite(value) else fmt(value)


def _answer_times(got: dict[str, tuple[float, str, str | None]]) -> dict[str, float]:
    return {key: at for key, (at, _result, _call) in got.items()}


# ------------------------------------------------------------------------------ baselines


def bare_ingest(bench: Bench, protocol: int) -> tuple[float, str]:
    """A bare aiomqtt subscriber's QoS 1 ingest rate, from the same publishers as the
    daemon's scenario; and a note: how many it received, its CPU time per message."""
    url, n = bench.broker.url, bench.size.ingest_heartbeats
    root = f"bench-bare-{protocol}/v1"
    out = load.CTX.Queue()
    ready = load.CTX.Event()
    deadline = time.time() + 60
    proc = load.spawn(load.bare_subscriber_worker, url, root, n, deadline, ready, out, protocol)
    ready.wait(30)
    beats = _presses(0, n, "heartbeat", "bare")
    load.publish_all(url, root, beats, rate=0, workers=2, timeout=60)
    count, first, last, cpu = out.get(timeout=90)
    proc.join(5)
    rate = (count - 1) / (last - first) if count > 1 and last > first else math.nan
    return rate, f"{count:,} of {n:,} received; CPU {_us_each(cpu, count - 1)} per message"


def _us_each(cpu_s: float | None, count: int) -> str:
    return "?" if cpu_s is None or count <= 0 else f"{cpu_s / count * 1e6:,.0f} µs"


def _cpu_since(daemon: Daemon, before: float | None) -> float | None:
    after = daemon.cpu_s()
    return None if before is None or after is None else after - before


def measure_baselines(bench: Bench) -> list[Figure]:
    """(a) a bare aiomqtt subscriber's QoS 1 ingest rate, in MQTT 5 as the daemon (the
    target's base) and in 3.1.1 (for comparison); (b) the broker's QoS 1 round trip to
    a bare responder, at 10 presses a second."""
    size, url = bench.size, bench.broker.url
    rate, note = bare_ingest(bench, 5)
    rate_311, note_311 = bare_ingest(bench, 4)
    bench.baselines.ingest_per_s = rate

    root = "bench-echo/v1"
    stop = load.CTX.Event()
    ready = load.CTX.Event()
    responder = load.spawn(load.bare_responder_worker, url, root, ready, stop)
    ready.wait(30)
    presses = _presses(0, size.baseline_round_trips, "emergency", "rtt")
    topics = [f"{root}/dev/{p.device_id}/ack" for p in presses]
    listener = load.Listener(url, topics, len(presses), timeout=60)
    sent = load.publish_all(url, root, presses, rate=10, workers=1, timeout=60)
    got = listener.result()
    stop.set()
    responder.join(5)
    if responder.is_alive():
        responder.kill()
    trips = latencies_ms(sent.at, _answer_times(got))
    bench.baselines.round_trip_p50_ms = percentile(trips, 50)
    bench.baselines.round_trip_p99_ms = percentile(trips, 99)
    note_311 += "; for comparison, not a target's base"
    return [
        Figure(
            "baseline", "bare aiomqtt subscriber, QoS 1 ingest (MQTT 5)", rate, "msg/s", note=note
        ),
        Figure(
            "baseline",
            "bare aiomqtt subscriber, QoS 1 ingest (MQTT 3.1.1)",
            rate_311,
            "msg/s",
            note=note_311,
        ),
        Figure("baseline", "broker QoS 1 round trip p50", bench.baselines.round_trip_p50_ms, "ms"),
        Figure("baseline", "broker QoS 1 round trip p99", bench.baselines.round_trip_p99_ms, "ms"),
    ]


# ------------------------------------------------------------------------------ scenarios


def heartbeat_ingest(bench: Bench, db: str) -> list[Figure]:
    """1. Heartbeats from every device, flat out: the daemon's ingest rate (from the
    times it stored in device_links) against the bare subscriber's (target ≥ 90 %)."""
    n = bench.size.ingest_heartbeats
    daemon = bench.daemon("heartbeat", db, n)
    try:
        since = datetime.now(UTC)
        cpu_before = daemon.cpu_s()
        load.publish_all(
            daemon.broker_url,
            daemon.root,
            _presses(0, n, "heartbeat", "hb"),
            rate=0,
            workers=2,
            timeout=60,
        )
        deadline = time.time() + bench.size.timeout_s
        seen, first, last = records.links_seen(daemon.db_url, since)
        while seen < n and time.time() < deadline:
            time.sleep(1)
            seen, first, last = records.links_seen(daemon.db_url, since)
        cpu_after = daemon.cpu_s()
    finally:
        daemon.stop()
    # From before the first heartbeat to when all were seen (polled every second, with
    # the reading of the database's times in between): an upper bound.
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    rate = math.nan
    if seen > 1 and first is not None and last is not None and last > first:
        rate = (seen - 1) / (last - first).total_seconds()
    baseline = bench.baselines.ingest_per_s
    return [
        Figure(
            "1 heartbeat ingest",
            f"daemon heartbeat ingest ({db})",
            rate,
            "msg/s",
            None if baseline is None else 0.9 * baseline,
            "90 % of the bare subscriber",
            higher_is_better=True,
            note=f"{seen:,} of {n:,} stored by the timeout; CPU {_us_each(cpu, seen)} per "
            "heartbeat at most",
        ),
    ]


# The daemon's default ([mqtt] receive_maximum): the bench's daemons run with it.
FLOOR_RECEIVE_MAXIMUM = MqttSettings.model_fields["receive_maximum"].default


@contextlib.contextmanager
def _floor(bench: Bench) -> Iterator[str]:
    """A floor responder on a topic root of its own; yields the root."""
    root = f"bench-floor-{uuid.uuid4().hex[:8]}/v1"
    stop, ready = load.CTX.Event(), load.CTX.Event()
    proc = load.spawn(
        load.floor_responder_worker, bench.broker.url, root, FLOOR_RECEIVE_MAXIMUM, ready, stop
    )
    if not ready.wait(30):
        proc.kill()
        raise RuntimeError("the floor responder did not subscribe within 30 s")
    try:
        yield root
    finally:
        stop.set()
        proc.join(5)
        if proc.is_alive():
            proc.kill()


def _burst_load(
    bench: Bench, url: str, root: str
) -> tuple[load.Sent, dict[str, tuple[float, str, str | None]]]:
    n = bench.size.burst_devices
    listener = load.Listener(url, [f"{root}/dev/+/ack"], n, timeout=bench.size.timeout_s + 10)
    presses = _presses(0, n, "emergency", "sos")
    sent = load.publish_all(url, root, presses, rate=n, workers=_workers(n), timeout=30)
    return sent, listener.result()


def _within_5s(sent: load.Sent, got: dict[str, tuple[float, str, str | None]]) -> int:
    return sum(1 for k, t in sent.at.items() if k in got and got[k][0] - t <= 5)


def _sent_note(sent: load.Sent) -> str:
    first = min(sent.at.values(), default=time.time())
    span = max(sent.at.values(), default=first) - first
    return f"{len(sent.at):,} presses sent in {span:.2f} s"


def burst_floor(bench: Bench) -> list[Figure]:
    """The burst against the floor responder: how many a centre that stores nothing,
    on the daemon's MQTT stack, answers within 5 s."""
    if bench.baselines.burst_floor is None:
        with _floor(bench) as root:
            sent, got = _burst_load(bench, bench.broker.url, root)
        bench.baselines.burst_floor = [
            Figure(
                "2 burst",
                "floor: a responder that stores nothing, answered within 5 s",
                _within_5s(sent, got),
                "events",
                note=f"{_sent_note(sent)}; aiomqtt, MQTT 5, answers from paho's callback",
            )
        ]
    return bench.baselines.burst_floor


def burst(bench: Bench, db: str) -> list[Figure]:
    """2. Every registered device presses within one second: how many were stored and
    answered within 5 s, and how many were never answered (by the timeout). Beside
    them, the floor: the same burst answered by a responder that stores nothing."""
    n = bench.size.burst_devices
    floor = burst_floor(bench)
    daemon = bench.daemon("burst", db, n)
    try:
        cpu_before = daemon.cpu_s()
        sent, got = _burst_load(bench, daemon.broker_url, daemon.root)
        cpu = _cpu_since(daemon, cpu_before)
        received = records.events_received(daemon.db_url, "emergency")
    finally:
        daemon.stop()
    first = min(sent.at.values(), default=time.time())
    answered_5s = _within_5s(sent, got)
    stored_5s = sum(1 for r in received if r.timestamp() - first <= 5)
    lost = sum(1 for k in sent.at if k not in got)
    note = (
        f"{_sent_note(sent)}; {len(received):,} stored by the end; daemon CPU "
        f"{_us_each(cpu, len(got))} per answered press at most (from the first press to "
        "the last answer, the calls opened, their first steps and SMS included)"
    )
    return [
        *floor,
        Figure(
            "2 burst",
            f"stored within 5 s ({db})",
            stored_5s,
            "events",
            n,
            "all presses",
            higher_is_better=True,
            note=note,
        ),
        Figure(
            "2 burst",
            f"answered within 5 s ({db})",
            answered_5s,
            "events",
            n,
            "all presses",
            higher_is_better=True,
        ),
        Figure(
            "2 burst",
            f"never answered by the {bench.size.timeout_s} s timeout ({db})",
            lost,
            "events",
            0,
            "none lost",
        ),
    ]


@dataclass
class _Flooded:
    sent: load.Sent
    got: dict[str, tuple[float, str, str | None]]
    flooded: int
    rate: float

    def waits(self) -> list[float]:
        return latencies_ms(self.sent.at, _answer_times(self.got))

    def note(self) -> str:
        unanswered = sum(1 for w in self.waits() if math.isinf(w))
        return (
            f"{unanswered} of {len(self.sent.at)} unanswered by the timeout; flood sent "
            f"{self.flooded:,} power_lost at {self.rate:,.0f}/s"
        )


def _flood_load(bench: Bench, url: str, root: str) -> _Flooded:
    size = bench.size
    emergencies = size.flood_emergencies
    sos = _presses(0, emergencies, "emergency", "sos")
    topics = [f"{root}/dev/{p.device_id}/ack" for p in sos]
    listener = load.Listener(
        url, topics, emergencies, timeout=size.flood_seconds + size.timeout_s + 10
    )
    flood_events = [
        Press(device_id(emergencies + d), f"pl-{s}", "power_lost")
        for s in range(size.flood_seconds)
        for d in range(size.flood_rate)
    ]
    background = load.CTX.Queue()
    start_at = time.time() + 1.0
    deadline = start_at + size.flood_seconds + 30
    workers = _workers(size.flood_rate) + 1
    procs = [
        load.spawn(
            load.publish_worker,
            url,
            root,
            flood_events[i::workers],
            size.flood_rate / workers,
            start_at,
            deadline,
            background,
        )
        for i in range(workers)
    ]
    # The emergencies start a second into the flood and end before it does.
    rate = emergencies / max(1, size.flood_seconds - 2)
    sent = load.publish_all(
        url,
        root,
        sos,
        rate=rate,
        workers=1,
        start_in=max(0.0, start_at + 1.0 - time.time()),
        timeout=size.flood_seconds + 30,
    )
    flooded = 0
    flood_first, flood_last = math.inf, 0.0
    for _ in procs:
        part, _acked = background.get(timeout=size.flood_seconds + 60)
        flooded += len(part)
        if part:
            flood_first = min(flood_first, min(part.values()))
            flood_last = max(flood_last, max(part.values()))
    for proc in procs:
        proc.join(5)
    got = listener.result()
    achieved = flooded / (flood_last - flood_first) if flood_last > flood_first else math.nan
    return _Flooded(sent, got, flooded, achieved)


def flood_floor(bench: Bench) -> list[Figure]:
    """The flood against the floor responder: the emergencies' p99 press→answer when
    the centre stores nothing and only reads and answers, on the daemon's MQTT stack."""
    if bench.baselines.flood_floor is None:
        with _floor(bench) as root:
            done = _flood_load(bench, bench.broker.url, root)
        bench.baselines.flood_floor = [
            Figure(
                "3 flood",
                "floor: a responder that stores nothing, emergency press→answer p99",
                percentile(done.waits(), 99),
                "ms",
                note=f"p50 {_ms(percentile(done.waits(), 50))}; {done.note()}",
            )
        ]
    return bench.baselines.flood_floor


def flood(bench: Bench, db: str) -> list[Figure]:
    """3. 200 emergencies while 5,000 power_lost events a second come from other devices:
    p99 press→answer of the emergencies against 4× the broker's round trip. Beside it,
    the floor: the same flood and emergencies answered by a responder that stores
    nothing."""
    size = bench.size
    floor = flood_floor(bench)
    daemon = bench.daemon("flood", db, size.flood_emergencies + size.flood_rate)
    try:
        done = _flood_load(bench, daemon.broker_url, daemon.root)
        # Told apart from answers: an emergency stored but not answered is the daemon's,
        # one answered but not seen would be the listener's.
        stored = len(records.events_received(daemon.db_url, "emergency"))
    finally:
        daemon.stop()
    waits = done.waits()
    return [
        *floor,
        Figure(
            "3 flood",
            f"emergency press→answer p99 under flood ({db})",
            percentile(waits, 99),
            "ms",
            bench.baselines.answer_target_ms,
            "4× broker round trip p99",
            note=f"p50 {_ms(percentile(waits, 50))}; {done.note()}; {stored:,} emergencies "
            "stored by the end",
        ),
    ]


def steady(bench: Bench, db: str) -> list[Figure]:
    """4. 10 presses a second: p99 press→answer against 4× the broker's round trip, and
    p99 press→first SMS arriving at the Twilio endpoint (target ≤ 20 ms)."""
    n = bench.size.steady_presses
    daemon = bench.daemon("steady", db, n, Policy((0, 3600)))
    try:
        bench.sink.clear()
        presses = _presses(0, n, "emergency", "sos")
        topics = [f"{daemon.root}/dev/{p.device_id}/ack" for p in presses]
        listener = load.Listener(
            daemon.broker_url, topics, n, timeout=n / 10 + bench.size.timeout_s + 10
        )
        sent = load.publish_all(
            daemon.broker_url, daemon.root, presses, rate=10, workers=1, timeout=n / 10 + 30
        )
        got = listener.result()
        # Let the last SMS through (bounded), then read what the endpoint saw.
        deadline = time.time() + bench.size.timeout_s
        calls = {call for (_t, _r, call) in got.values() if call}
        first_sms: dict[str, float] = {}
        while time.time() < deadline:
            first_sms = {}
            for message in bench.sink.messages():
                for call in CALL_ID_RE.findall(message["body"]):
                    first_sms[call] = min(first_sms.get(call, math.inf), message["arrived_at"])
            if calls <= set(first_sms):
                break
            time.sleep(0.2)
    finally:
        daemon.stop()
    answers = latencies_ms(sent.at, _answer_times(got))
    sms_at = {key: first_sms[call] for key, (_t, _r, call) in got.items() if call in first_sms}
    to_sms = latencies_ms(sent.at, sms_at)
    return [
        Figure(
            "4 steady",
            f"press→answer p99 at 10/s ({db})",
            percentile(answers, 99),
            "ms",
            bench.baselines.answer_target_ms,
            "4× broker round trip p99",
            note=f"p50 {_ms(percentile(answers, 50))}; {sum(map(math.isinf, answers))} unanswered",
        ),
        Figure(
            "4 steady",
            f"press→first SMS at the endpoint p99 ({db})",
            percentile(to_sms, 99),
            "ms",
            20,
            "target",
            note=f"p50 {_ms(percentile(to_sms, 50))}; {sum(map(math.isinf, to_sms))} without SMS",
        ),
    ]


def escalation(bench: Bench, db: str) -> list[Figure]:
    """5. Many open calls escalating on short step delays: each step's lateness (fired −
    due, from the timeline) p99 ≤ 1 s, and its SMS at the endpoint ≤ 2 s after (p99).
    The calls are opened by presses, so intake and escalation overlap as they would."""
    size = bench.size
    n = size.open_calls
    daemon = bench.daemon("escalation", db, n, Policy(size.step_delays_s, repeat_every_s=3600))
    try:
        bench.sink.clear()
        cpu_before = daemon.cpu_s()
        window_ends = time.time() + size.escalation_window_s
        listener = load.Listener(
            daemon.broker_url, [f"{daemon.root}/dev/+/ack"], n, timeout=size.escalation_window_s
        )
        load.publish_all(
            daemon.broker_url,
            daemon.root,
            _presses(0, n, "emergency", "sos"),
            rate=0,
            workers=_workers(n),
            timeout=60,
        )
        got = listener.result()  # every answer, or those by the window's end
        time.sleep(max(0.0, window_ends - time.time()))  # the steps fire meanwhile
        until = datetime.now(UTC)
        cpu = _cpu_since(daemon, cpu_before)
        found = records.escalations(daemon.db_url, until)
        sms = {m["sid"]: m["arrived_at"] for m in bench.sink.messages()}
    finally:
        daemon.stop()
    # Steps due in the last seconds may fairly still be firing: judged up to 2 s before.
    cutoff = until.timestamp() - 2
    lateness = [(s.fired - s.due).total_seconds() * 1000 for s in found.fired]
    lateness += [math.inf for (_c, _i, due) in found.due_unfired if due.timestamp() < cutoff]
    sms_after: list[float] = []
    for step in found.fired:
        if step.fired.timestamp() >= cutoff:
            continue
        for sid in found.sms_sids.get((step.call_id, step.index), []):
            sms_after.append((sms[sid] - step.fired.timestamp()) * 1000 if sid in sms else math.inf)
        sms_after += [math.inf] * found.sms_unsent.get((step.call_id, step.index), 0)
    note = (
        f"{found.open_calls:,} calls opened of {n:,} pressed ({len(got):,} answered) in the "
        f"{size.escalation_window_s} s window; {len(found.fired):,} steps fired, "
        f"{len(found.due_unfired):,} due and not fired; p50 {_ms(percentile(lateness, 50))}; "
        f"daemon CPU {'?' if cpu is None else f'{cpu:,.0f} s'} in the "
        f"{size.escalation_window_s} s window"
    )
    missing_sms = sum(map(math.isinf, sms_after))
    sms_note = (
        f"{len(sms_after):,} SMS of steps fired ≥ 2 s before the end, {missing_sms:,} not at "
        f"the endpoint by the end ({len(sms):,} reached it in all); "
        f"p50 {_ms(percentile(sms_after, 50))}"
    )
    return [
        Figure(
            "5 escalation",
            f"step lateness p99 ({db})",
            percentile(lateness, 99),
            "ms",
            1000,
            "target",
            note=note,
        ),
        Figure(
            "5 escalation",
            f"step fired→SMS at the endpoint p99 ({db})",
            percentile(sms_after, 99),
            "ms",
            2000,
            "target",
            note=sms_note,
        ),
    ]


def rest(bench: Bench, db: str) -> list[Figure]:
    """6. 100,000 registered devices: the daemon's RSS at rest (after start-up, idle)."""
    n = bench.size.rest_devices
    daemon = bench.daemon("rest", db, n)
    try:
        time.sleep(bench.size.rest_idle_s)  # idle: start-up's garbage settles
        rss = daemon.rss_kib()
        ready = daemon.ready_s
    finally:
        daemon.stop()
    return [
        Figure(
            "6 at rest",
            f"daemon VmRSS with {n:,} devices ({db})",
            None if rss is None else rss / 1024,
            "MB",
            250,
            "target",
            note=f"idle {bench.size.rest_idle_s:g} s after answering its first event, "
            f"{ready:.1f} s after start"
            if ready is not None
            else "",
        ),
    ]


SCENARIOS: dict[str, Callable[[Bench, str], list[Figure]]] = {
    "heartbeat": heartbeat_ingest,
    "burst": burst,
    "flood": flood,
    "steady": steady,
    "escalation": escalation,
    "rest": rest,
}
# Scenario 2 is asked of both databases; the others run on the first one selected.
EVERY_DATABASE = {"burst"}
