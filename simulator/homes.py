"""Virtual homes: N reference devices whose residents press buttons at random.

Each home runs one :class:`devices.client.DeviceClient` and, at random moments
(a Poisson process per scenario, rates per home per hour), plays one scenario:

- ``press``: the red button (emergency) or the green one (service), rarely a fall;
- ``accident``: a press by mistake, cancelled a few seconds later;
- ``fall``: the device detects a fall by itself;
- ``burst``: an anxious resident presses the red button again and again.

When the centre says a call was acknowledged, a responder may arrive some time later
and press the presence key. A home plays one scenario at a time. With a seed, every
home makes the same choices on every run (each home has its own generator, so the
order in which homes get the CPU does not matter).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import structlog

from devices.client import DeviceClient, DeviceStopped
from devices.protocol import DEFAULT_TOPIC_ROOT, Ack, CallUpdate, CallUpdateState, EventType

log = structlog.get_logger(__name__)

Scenario = Literal["press", "accident", "fall", "burst"]
SCENARIOS: tuple[Scenario, ...] = ("press", "accident", "fall", "burst")

_SAY = {
    EventType.EMERGENCY: "pressed the red button (emergency)",
    EventType.SERVICE: "pressed the green button (service request)",
    EventType.FALL: "the device detected a fall",
    EventType.CANCEL: "pressed cancel",
    EventType.PRESENCE: "responder pressed the presence key",
}


@dataclass
class HomesConfig:
    broker_url: str = "mqtt://127.0.0.1:1883"
    topic_root: str = DEFAULT_TOPIC_ROOT
    homes: int = 5
    # Explicit device ids (e.g. the registered residents'); else sim-0001, sim-0002...
    device_ids: list[str] | None = None
    seed: int | None = None
    protocol: Literal[4, 5] = 5
    username: str | None = None
    password: str | None = None
    # How often each scenario starts, per home per hour.
    press_per_h: float = 2.0
    accident_per_h: float = 1.0
    fall_per_h: float = 0.3
    burst_per_h: float = 0.3
    # Among plain presses: the share of service requests and of falls (rest: emergency).
    service_share: float = 0.35
    fall_share: float = 0.05
    cancel_after_s: tuple[float, float] = (2.0, 6.0)
    burst_presses: tuple[int, int] = (3, 5)
    burst_gap_s: tuple[float, float] = (1.0, 3.0)
    presence_probability: float = 0.7
    presence_after_s: tuple[float, float] = (20.0, 60.0)
    # Device behaviour.
    heartbeat_s: float = 300.0
    resend_after_s: float = 10.0
    announce_offline_on_stop: bool = True

    def ids(self) -> list[str]:
        if self.device_ids is not None:
            return list(self.device_ids)
        return [f"sim-{i:04d}" for i in range(1, self.homes + 1)]

    def rates(self) -> dict[Scenario, float]:
        return {
            "press": self.press_per_h,
            "accident": self.accident_per_h,
            "fall": self.fall_per_h,
            "burst": self.burst_per_h,
        }


@dataclass
class HomesStats:
    """What the homes did, for a summary at the end and for tests."""

    scenarios: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    acks: Counter[str] = field(default_factory=Counter)
    updates: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        def fmt(c: Counter[str]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none"

        return (
            f"scenarios: {fmt(self.scenarios)}; events acked: {fmt(self.acks)}; "
            f"call updates: {fmt(self.updates)}"
        )


class Home:
    """One resident's home: a device and the resident's habits."""

    def __init__(
        self, device: DeviceClient, config: HomesConfig, rng: random.Random, stats: HomesStats
    ) -> None:
        self.device = device
        self.config = config
        self.rng = rng
        # Call updates arrive when the centre sends them; drawing responder times from
        # the same generator would make the homes' own choices depend on that timing.
        self.responder_rng = random.Random(rng.random())
        self.stats = stats
        self.id = device.device_id
        self.open_call: str | None = None
        self._presence_for: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._log = log.bind(home=self.id)

    def next_scenario(self) -> tuple[float, Scenario] | None:
        """Seconds until the next scenario and which one (a merged Poisson process)."""
        rates = self.config.rates()
        total = sum(rates.values())
        if total <= 0:
            return None
        wait_s = self.rng.expovariate(total / 3600.0)
        pick = self.rng.uniform(0, total)
        for name in SCENARIOS:
            pick -= rates[name]
            if pick <= 0:
                return wait_s, name
        return wait_s, SCENARIOS[-1]

    async def live(self) -> None:
        try:
            while True:
                nxt = self.next_scenario()
                if nxt is None:
                    await asyncio.Event().wait()  # nothing ever happens here
                    return
                wait_s, scenario = nxt
                await asyncio.sleep(wait_s)
                try:
                    await self.play(scenario)
                except DeviceStopped:
                    return
        finally:
            for task in self._tasks:
                task.cancel()

    async def play(self, scenario: Scenario) -> None:
        cfg = self.config
        self.stats.scenarios[scenario] += 1
        if scenario == "press":
            roll = self.rng.random()
            if roll < cfg.fall_share:
                kind = EventType.FALL
            elif roll < cfg.fall_share + cfg.service_share:
                kind = EventType.SERVICE
            else:
                kind = EventType.EMERGENCY
            await self.send(kind)
        elif scenario == "accident":
            kind = EventType.EMERGENCY if self.rng.random() < 0.7 else EventType.SERVICE
            self._log.info("pressed by mistake", type=kind.value)
            await self.send(kind)
            await asyncio.sleep(self.rng.uniform(*cfg.cancel_after_s))
            await self.send(EventType.CANCEL)
        elif scenario == "fall":
            await self.send(EventType.FALL)
        elif scenario == "burst":
            presses = self.rng.randint(*cfg.burst_presses)
            self._log.info("anxious resident keeps pressing", presses=presses)
            for i in range(presses):
                if i:
                    await asyncio.sleep(self.rng.uniform(*cfg.burst_gap_s))
                await self.send(EventType.EMERGENCY)

    async def send(self, kind: EventType) -> Ack:
        self._log.info(_SAY.get(kind, kind.value), type=kind.value)
        self.stats.events[kind.value] += 1
        ack = await self.device.press(kind)
        self.stats.acks[kind.value] += 1
        if ack.call_id and kind in (EventType.EMERGENCY, EventType.FALL, EventType.SERVICE):
            self.open_call = ack.call_id
        self._log.info(
            "centre answered", type=kind.value, result=ack.result.value, call_id=ack.call_id
        )
        return ack

    def on_update(self, update: CallUpdate) -> None:
        self.stats.updates[update.state.value] += 1
        self._log.info(
            "device shows call progress",
            call_id=update.call_id,
            state=update.state.value,
            text=update.text,
        )
        if update.state in (CallUpdateState.RESOLVED, CallUpdateState.CANCELLED):
            if self.open_call == update.call_id:
                self.open_call = None
            return
        if (
            update.state is CallUpdateState.ACKNOWLEDGED
            and update.call_id not in self._presence_for
            and self.responder_rng.random() < self.config.presence_probability
        ):
            self._presence_for.add(update.call_id)
            delay = self.responder_rng.uniform(*self.config.presence_after_s)
            task = asyncio.create_task(self._responder_arrives(update.call_id, delay))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _responder_arrives(self, call_id: str, delay: float) -> None:
        self._log.info("a responder is on the way", call_id=call_id, in_s=round(delay, 1))
        await asyncio.sleep(delay)
        if self.open_call != call_id:
            return  # resolved or cancelled meanwhile: nobody needs to press presence
        with contextlib.suppress(DeviceStopped):
            await self.send(EventType.PRESENCE)


def home_rng(seed: int | None, device_id: str) -> random.Random:
    # A string seed is hashed deterministically (unlike hash()), so runs repeat.
    return random.Random(f"{seed}:{device_id}") if seed is not None else random.Random()


async def run_homes(
    config: HomesConfig, stop: asyncio.Event, *, stats: HomesStats | None = None
) -> None:
    """Run the homes until ``stop`` is set, then stop their devices cleanly."""
    stats = stats if stats is not None else HomesStats()
    homes: list[Home] = []
    for device_id in config.ids():
        rng = home_rng(config.seed, device_id)
        device = DeviceClient(
            device_id,
            url=config.broker_url,
            topic_root=config.topic_root,
            username=config.username,
            password=config.password,
            protocol=config.protocol,
            heartbeat_s=config.heartbeat_s,
            resend_after_s=config.resend_after_s,
            announce_offline_on_stop=config.announce_offline_on_stop,
            battery=rng.randint(40, 100),
            fw="sim-1.0",
            rng=random.Random(rng.random()),
        )
        home = Home(device, config, rng, stats)
        device.on_update = home.on_update
        homes.append(home)
    log.info("homes starting", homes=len(homes), broker=config.broker_url, seed=config.seed)
    for home in homes:
        await home.device.start()
    lives = [asyncio.create_task(home.live(), name=f"home-{home.id}") for home in homes]
    try:
        await stop.wait()
    finally:
        for task in lives:
            task.cancel()
        await asyncio.gather(*lives, return_exceptions=True)
        await asyncio.gather(*(home.device.stop() for home in homes), return_exceptions=True)
        log.info("homes stopped", summary=stats.summary())
