"""The simulator: virtual homes against mosquitto and a fake centre; the virtual operator
against a small local HTTP API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from devices.client import DeviceClient
from simulator.broker import MosquittoProcess, free_port
from simulator.cli import add_simulate_arguments, homes_config, run_simulate
from simulator.homes import Home, HomesConfig, HomesStats, run_homes
from simulator.operator import OperatorStats, run_virtual_operator
from tests.support.broker import FakeCentre, fake_centre, mqtt_client, next_message, payload_json

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

FAST = HomesConfig(
    cancel_after_s=(0.05, 0.1),
    burst_presses=(3, 3),
    burst_gap_s=(0.01, 0.02),
    presence_probability=1.0,
    presence_after_s=(0.05, 0.1),
    resend_after_s=0.3,
    heartbeat_s=3600,
)


def fast(url: str, root: str, **changes: Any) -> HomesConfig:
    prefix = uuid.uuid4().hex[:6]
    changes.setdefault("device_ids", [f"sim-{prefix}-{i}" for i in range(1, 4)])
    return replace(FAST, broker_url=url, topic_root=root, **changes)


@contextlib.asynccontextmanager
async def one_home(config: HomesConfig, seed: int = 1) -> AsyncIterator[Home]:
    assert config.device_ids
    rng = random.Random(seed)
    device = DeviceClient(
        config.device_ids[0],
        url=config.broker_url,
        topic_root=config.topic_root,
        resend_after_s=config.resend_after_s,
    )
    home = Home(device, config, rng, HomesStats())
    device.on_update = home.on_update
    async with device:
        yield home


async def wait_until(predicate: Any, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - state owned by the code under test
            await asyncio.sleep(0.02)


def types_of(centre: FakeCentre) -> list[str]:
    return [e["type"] for _, e in centre.events if e["type"] != "heartbeat"]


# ---------------------------------------------------------------- scenarios


async def test_an_accidental_press_is_cancelled(
    mosquitto: MosquittoProcess, topic_root: str
) -> None:
    config = fast(mosquitto.url, topic_root)
    async with fake_centre(mosquitto.url, topic_root) as centre, one_home(config) as home:
        await home.play("accident")
    first, cancel = types_of(centre)
    assert first in ("emergency", "service")
    assert cancel == "cancel"
    assert home.stats.acks == {first: 1, "cancel": 1}


async def test_a_burst_is_several_presses_each_a_new_event(
    mosquitto: MosquittoProcess, topic_root: str
) -> None:
    config = fast(mosquitto.url, topic_root)
    async with fake_centre(mosquitto.url, topic_root) as centre, one_home(config) as home:
        await home.play("burst")
    presses = centre.of_type("emergency")
    assert len(presses) == 3
    assert len({e["ref"] for e in presses}) == 3
    assert home.open_call == "C-0001"


async def test_a_fall_and_a_press(mosquitto: MosquittoProcess, topic_root: str) -> None:
    config = fast(mosquitto.url, topic_root)
    async with fake_centre(mosquitto.url, topic_root) as centre, one_home(config) as home:
        await home.play("fall")
        await home.play("press")
    assert types_of(centre)[0] == "fall"
    assert types_of(centre)[1] in ("emergency", "service", "fall")


async def test_a_responder_presses_presence_after_the_call_is_acknowledged(
    mosquitto: MosquittoProcess, topic_root: str
) -> None:
    config = fast(mosquitto.url, topic_root)
    async with fake_centre(mosquitto.url, topic_root) as centre, one_home(config) as home:
        await home.play("fall")
        assert home.open_call == "C-0001"
        await centre.send_cmd(
            home.id, {"type": "call_update", "call_id": "C-0001", "state": "acknowledged"}
        )
        await centre.wait_for(lambda: bool(centre.of_type("presence")))
    assert home.stats.updates == {"acknowledged": 1}


async def test_no_presence_for_a_call_resolved_meanwhile(
    mosquitto: MosquittoProcess, topic_root: str
) -> None:
    config = fast(mosquitto.url, topic_root, presence_after_s=(0.3, 0.3))
    async with fake_centre(mosquitto.url, topic_root) as centre, one_home(config) as home:
        await home.play("fall")
        for state in ("acknowledged", "resolved"):
            await centre.send_cmd(
                home.id, {"type": "call_update", "call_id": "C-0001", "state": state}
            )
        await wait_until(lambda: home.stats.updates["resolved"] == 1)
        await asyncio.sleep(0.5)
    assert home.open_call is None
    assert centre.of_type("presence") == []


def test_a_seed_repeats_the_homes_choices() -> None:
    def choices(seed: int) -> list[tuple[float, str]]:
        config = replace(FAST, seed=seed)
        device = DeviceClient("sim-0001")
        home = Home(device, config, random.Random(f"{seed}:sim-0001"), HomesStats())
        return [home.next_scenario() or (0.0, "") for _ in range(20)]

    assert choices(7) == choices(7)
    assert choices(7) != choices(8)
    assert {name for _, name in choices(7)} <= {"press", "accident", "fall", "burst"}


def test_rates_decide_which_scenarios_happen() -> None:
    config = replace(FAST, press_per_h=0, accident_per_h=0, fall_per_h=0, burst_per_h=60)
    home = Home(DeviceClient("sim-0001"), config, random.Random(1), HomesStats())
    picks = [home.next_scenario() for _ in range(50)]
    assert {p[1] for p in picks if p} == {"burst"}
    mean_wait = sum(p[0] for p in picks if p) / 50
    assert 20 < mean_wait < 150  # one an hour... times 60: a minute on average
    silent = replace(config, burst_per_h=0)
    assert Home(DeviceClient("x"), silent, random.Random(1), HomesStats()).next_scenario() is None


async def test_run_homes_brings_every_home_online_and_plays(
    mosquitto: MosquittoProcess, topic_root: str
) -> None:
    # About one scenario per home every 0.2 s.
    config = fast(
        mosquitto.url,
        topic_root,
        press_per_h=8000,
        accident_per_h=4000,
        fall_per_h=3000,
        burst_per_h=3000,
        seed=3,
    )
    assert config.device_ids
    stats = HomesStats()
    stop = asyncio.Event()
    async with (
        fake_centre(mosquitto.url, topic_root) as centre,
        mqtt_client(mosquitto.url) as watcher,
    ):
        await watcher.subscribe(f"{topic_root}/dev/+/status", qos=1)
        homes = asyncio.create_task(run_homes(config, stop, stats=stats))
        online: set[str] = set()
        while len(online) < 3:
            message = await next_message(watcher)
            assert payload_json(message) == {"state": "online"}
            online.add(message.topic.value.split("/")[-2])
        assert online == set(config.device_ids)
        await centre.wait_for(lambda: {d for d, _ in centre.events} == online, within=10)
        # Acks are counted by the homes after the centre's answer arrives: the centre
        # is not told, so poll rather than re-check only when another event comes in.
        await wait_until(lambda: sum(stats.acks.values()) >= 6, within=10)
        stop.set()
        # Stopping cancels presses in flight, some waiting for a PUBACK: every one of
        # them must end, or run_homes never returns.
        async with asyncio.timeout(10):
            await homes
        offline: set[str] = set()
        while len(offline) < 3:
            message = await next_message(watcher)
            assert payload_json(message) == {"state": "offline"}
            offline.add(message.topic.value.split("/")[-2])
    assert sum(stats.scenarios.values()) >= 1
    assert sum(stats.events.values()) >= sum(stats.acks.values()) >= 6


# ---------------------------------------------------------------- the CLI


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_simulate_arguments(parser)
    return parser.parse_args(argv)


async def test_cli_runs_homes_for_a_while(
    mosquitto: MosquittoProcess, topic_root: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse(
        [
            *("--homes", "2", "--broker", mosquitto.url, "--topic-root", topic_root),
            *("--duration", "1", "--seed", "1", "--heartbeat", "0.1"),
        ]
    )
    async with mqtt_client(mosquitto.url) as watcher:
        await watcher.subscribe(f"{topic_root}/dev/+/event", qos=1)
        run = asyncio.create_task(asyncio.to_thread(run_simulate, args))
        beating: set[str] = set()
        while beating != {"sim-0001", "sim-0002"}:
            message = await next_message(watcher)
            if payload_json(message)["type"] == "heartbeat":
                beating.add(message.topic.value.split("/")[-2])
        async with asyncio.timeout(10):
            assert await run == 0
    assert "homes: scenarios:" in capsys.readouterr().out


def test_cli_takes_device_ids_from_the_data_folder() -> None:
    config = homes_config(parse(["--devices-from", str(REPO / "config" / "data")]))
    assert config.device_ids
    assert config.homes == len(config.device_ids) > 3
    two = homes_config(parse(["--devices-from", str(REPO / "config" / "data"), "--homes", "2"]))
    assert two.device_ids == config.device_ids[:2]
    assert homes_config(parse([])).ids() == [f"sim-000{i}" for i in range(1, 6)]


def test_cli_refuses_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_simulate(parse(["--operator"])) == 2
    assert "--token" in capsys.readouterr().err
    assert run_simulate(parse(["--devices-from", str(tmp_path / "nope")])) == 2
    assert "cannot read device ids" in capsys.readouterr().err


# ---------------------------------------------------------------- the virtual operator


class FakeApi:
    """The operator API's calls routes, as far as the virtual operator uses them."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: dict[str, dict[str, Any]] = {}
        self.posts: list[tuple[str, str, dict[str, Any], datetime]] = []

    def add(self, call_id: str, state: str, age_s: float) -> None:
        opened = datetime.now(UTC) - timedelta(seconds=age_s)
        self.calls[call_id] = {"call_id": call_id, "state": state, "opened_at": opened.isoformat()}

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    async def list_calls(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return JSONResponse({"error": "bad token"}, status_code=401)
        active = [c for c in self.calls.values() if c["state"] != "resolved"]
        return JSONResponse({"calls": active})

    async def act(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return JSONResponse({"error": "bad token"}, status_code=401)
        call_id, action = request.path_params["call_id"], request.path_params["action"]
        body = await request.json()
        call = self.calls[call_id]
        self.posts.append((call_id, action, body, datetime.now(UTC)))
        if call["state"] == "resolved":
            return JSONResponse({"error": "already resolved"}, status_code=409)
        if action == "ack":
            call["state"] = "acknowledged"
            call["acknowledged_at"] = datetime.now(UTC).isoformat()
        else:
            call["state"] = "resolved"
            call["outcome"] = body["outcome"]
        return JSONResponse(call)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/v1/calls", self.list_calls),
                Route("/api/v1/calls/{call_id}/{action:str}", self.act, methods=["POST"]),
            ]
        )


@contextlib.asynccontextmanager
async def serve(api: FakeApi, port: int) -> AsyncIterator[None]:
    server = uvicorn.Server(
        uvicorn.Config(api.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(5):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for it
                await asyncio.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def api() -> Iterator[FakeApi]:
    yield FakeApi("token-op")


async def test_operator_acks_and_resolves(api: FakeApi) -> None:
    port = free_port()
    api.add("C-1", "open", age_s=60)
    api.add("C-2", "open", age_s=0)
    api.add("C-3", "cancelled", age_s=30)
    api.add("C-4", "responder_on_site", age_s=30)
    stats = OperatorStats()
    stop = asyncio.Event()
    async with serve(api, port):
        operator = asyncio.create_task(
            run_virtual_operator(
                f"http://127.0.0.1:{port}", "token-op", 0.4, 0.2, stop, poll_s=0.05, stats=stats
            )
        )
        await wait_until(lambda: all(c["state"] == "resolved" for c in api.calls.values()))
        stop.set()
        await operator
    outcomes = {cid: c["outcome"] for cid, c in api.calls.items()}
    assert outcomes == {
        "C-1": "helped_by_phone",
        "C-2": "helped_by_phone",
        "C-3": "cancelled_by_resident",
        "C-4": "visit",
    }
    acks = {cid: (body, at) for cid, action, body, at in api.posts if action == "ack"}
    assert set(acks) == {"C-1", "C-2"}
    assert acks["C-1"][0]["note"]
    # C-2 was new: acknowledged only once it was ack_after_s old.
    opened = datetime.fromisoformat(api.calls["C-2"]["opened_at"])
    assert (acks["C-2"][1] - opened).total_seconds() >= 0.4
    resolve_c2 = next(at for cid, a, _, at in api.posts if cid == "C-2" and a == "resolve")
    assert (resolve_c2 - acks["C-2"][1]).total_seconds() >= 0.2
    assert stats.acked == ["C-1", "C-2"]
    assert set(stats.resolved) == {"C-1", "C-2", "C-3", "C-4"}


async def test_operator_survives_the_api_being_down(api: FakeApi) -> None:
    port = free_port()
    api.add("C-1", "open", age_s=60)
    stats = OperatorStats()
    stop = asyncio.Event()
    operator = asyncio.create_task(
        run_virtual_operator(
            f"http://127.0.0.1:{port}", "token-op", 0.0, 0.0, stop, poll_s=0.05, stats=stats
        )
    )
    await wait_until(lambda: stats.errors["ConnectError"] >= 2)
    assert not operator.done()
    async with serve(api, port):
        await wait_until(lambda: api.calls["C-1"]["state"] == "resolved")
        stop.set()
        await operator
    assert stats.acked == ["C-1"]


async def test_operator_with_a_bad_token_keeps_trying_without_acting(api: FakeApi) -> None:
    port = free_port()
    api.add("C-1", "open", age_s=60)
    stats = OperatorStats()
    stop = asyncio.Event()
    async with serve(api, port):
        operator = asyncio.create_task(
            run_virtual_operator(
                f"http://127.0.0.1:{port}", "wrong", 0.0, 0.0, stop, poll_s=0.05, stats=stats
            )
        )
        await wait_until(lambda: stats.errors["HTTPStatusError"] >= 2)
        stop.set()
        await operator
    assert api.posts == []
    assert api.calls["C-1"]["state"] == "open"
