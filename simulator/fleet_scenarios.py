"""Fleet scenarios from files: devices that drop off and come back, batteries that run
down, a power cut across a building or community, a device with a wrong clock, an
installer's test press.

A scenario is a TOML file (``simulator/scenarios/*.toml``)::

    name = "..."
    [[step]]
    at_s = 0                      # seconds from the start (divided by --speed)
    devices = ["dev-0001"]        # who does it (each in turn, gap_s apart)
    send = "power_lost"           # an event type, or "online" / "offline" (status)
    battery = 18                  # optional fields of the event
    clock_offset_s = -86400       # optional: the device's clock is this far off
    gap_s = 0.5                   # optional, between the devices of the step

``send = "test_press"`` is an installer's test: the device is put in test mode
through the operator API (``--api``/``--token``), then it presses the red button.

The runner publishes on each device's topics as the device would (a bare MQTT
client, so the broker must let it: the test brokers do, the production ACL does
not), with the device's own ``ref`` per event.
"""

from __future__ import annotations

import asyncio
import json
import tomllib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

import aiomqtt
import httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator

from devices.protocol import DEFAULT_TOPIC_ROOT, DEVICE_ID_RE, EventType, Topics

log = structlog.get_logger(__name__)

SCENARIOS = Path(__file__).parent / "scenarios"
STATUS = ("online", "offline")
TEST_PRESS = "test_press"


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at_s: Annotated[float, Field(ge=0)]
    devices: list[str] = Field(min_length=1)
    send: str
    battery: Annotated[int, Field(ge=0, le=100)] | None = None
    clock_offset_s: float = 0
    gap_s: Annotated[float, Field(ge=0)] = 0

    @field_validator("devices")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        for d in value:
            if not DEVICE_ID_RE.fullmatch(d):
                raise ValueError(f"{d!r} is not a device id")
        return value

    @field_validator("send")
    @classmethod
    def _send(cls, value: str) -> str:
        if value in STATUS or value == TEST_PRESS:
            return value
        EventType(value)  # raises ValueError naming the value
        return value


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    step: list[Step] = Field(min_length=1)

    @property
    def length_s(self) -> float:
        return max(s.at_s + s.gap_s * (len(s.devices) - 1) for s in self.step)


def load_scenario(path: Path) -> Scenario:
    """Read a scenario file; raises ValueError naming the file and what is wrong."""
    try:
        return Scenario.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def shipped() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SCENARIOS.glob("*.toml"))}


@dataclass
class Runner:
    broker_url: str
    topic_root: str = DEFAULT_TOPIC_ROOT
    speed: float = 1.0  # 10: ten times faster than the file says
    api_url: str | None = None
    token: str | None = None
    protocol: int = 5

    async def run(self, scenario: Scenario) -> list[dict[str, Any]]:
        """Play the scenario; returns what was sent (device, topic, payload)."""
        topics = Topics(self.topic_root)
        url = urlparse(self.broker_url)
        sent: list[dict[str, Any]] = []
        version = aiomqtt.ProtocolVersion.V5 if self.protocol == 5 else aiomqtt.ProtocolVersion.V311
        async with aiomqtt.Client(
            url.hostname or "127.0.0.1",
            url.port or 1883,
            identifier=f"scenario-{uuid.uuid4().hex[:10]}",
            protocol=version,
        ) as client:
            loop = asyncio.get_running_loop()
            start = loop.time()
            for step in sorted(scenario.step, key=lambda s: s.at_s):
                for n, device in enumerate(step.devices):
                    due = start + (step.at_s + n * step.gap_s) / self.speed
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    sent.extend(await self._do(client, topics, step, device))
        log.info("scenario_played", scenario=scenario.name, messages=len(sent))
        return sent

    async def _do(
        self, client: aiomqtt.Client, topics: Topics, step: Step, device: str
    ) -> list[dict[str, Any]]:
        if step.send in STATUS:
            payload = json.dumps({"state": step.send})
            await client.publish(topics.status(device), payload, qos=1, retain=True)
            return [{"device": device, "topic": topics.status(device), "payload": payload}]
        kind = step.send
        if kind == TEST_PRESS:
            await self._test_mode(device)
            kind = EventType.EMERGENCY.value
        body: dict[str, Any] = {"ref": uuid.uuid4().hex[:16], "type": kind}
        ts = datetime.now(UTC) + timedelta(seconds=step.clock_offset_s)
        body["ts"] = ts.isoformat()
        if step.battery is not None:
            body["battery"] = step.battery
        payload = json.dumps(body)
        await client.publish(topics.event(device), payload, qos=1)
        return [{"device": device, "topic": topics.event(device), "payload": payload}]

    async def _test_mode(self, device: str) -> None:
        if not self.api_url or not self.token:
            raise ValueError("a test press needs the operator API: --api URL --token TOKEN")
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
            r = await http.post(
                f"{self.api_url.rstrip('/')}/api/v1/fleet/devices/{device}/test-mode",
                headers=headers,
                json={},
            )
            r.raise_for_status()


def main(argv: list[str] | None = None) -> int:
    """``python -m simulator.fleet_scenarios NAME|FILE [--broker URL] [--speed X]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m simulator.fleet_scenarios")
    parser.add_argument("scenario", help=f"a file, or one of: {', '.join(shipped())}")
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--topic-root", default=DEFAULT_TOPIC_ROOT)
    parser.add_argument("--speed", type=float, default=1.0, help="10: ten times faster")
    parser.add_argument("--api", help="the operator API (for test presses)")
    parser.add_argument("--token", help="an API token (for test presses)")
    args = parser.parse_args(argv)
    path = shipped().get(args.scenario) or Path(args.scenario)
    try:
        scenario = load_scenario(path)
    except (OSError, ValueError) as exc:
        print(exc)
        return 2
    runner = Runner(args.broker, args.topic_root, args.speed, args.api, args.token)
    sent = asyncio.run(runner.run(scenario))
    print(f"{scenario.name}: {len(sent)} messages sent")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
