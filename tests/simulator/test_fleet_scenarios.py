"""Fleet scenarios from files: every shipped file reads, a bad one is refused with a
reason, and the power cut across a community plays against the real daemon on
Mosquitto (one grouped alert, cleared by the restorals)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from dispatcher.adapters.db import schema as db
from simulator.broker import MosquittoProcess
from simulator.fleet_scenarios import Runner, load_scenario, shipped
from simulator.phone_network.server import SmsSinkServer
from tests.e2e.test_end_to_end import running_dispatcher


def test_the_shipped_scenarios_read() -> None:
    names = set(shipped())
    assert {
        "power_cut_community",
        "drop_off_and_back",
        "battery_runs_down",
        "wrong_clock",
        "installer_test_press",
    } <= names
    for path in shipped().values():
        assert load_scenario(path).step


def test_a_bad_scenario_says_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[step]]\nat_s = 0\ndevices = ["d/1"]\nsend = "explode"\n')
    with pytest.raises(ValueError, match=r"bad\.toml") as caught:
        load_scenario(bad)
    assert "device id" in str(caught.value) and "explode" in str(caught.value)


@pytest.mark.integration
async def test_a_power_cut_scenario_is_one_grouped_alert_that_clears(
    tmp_path: Path, mosquitto: MosquittoProcess, sms_sink: SmsSinkServer, topic_root: str
) -> None:
    scenario = load_scenario(shipped()["power_cut_community"])
    async with running_dispatcher(tmp_path, mosquitto, sms_sink, topic_root) as d:
        sent = await Runner(mosquitto.url, topic_root, speed=200).run(scenario)
        assert len(sent) == 20
        c = db.calls.c
        async with asyncio.timeout(15):
            while True:
                async with d.app.sessions() as s:
                    rows = (
                        await s.execute(select(c.alert_key, c.state).where(c.kind == "technical"))
                    ).all()
                groups = [r for r in rows if r.alert_key == "power_cut"]
                # Every device's restoral is in: the cut and the single alerts closed.
                if groups and all(r.state == "resolved" for r in rows):
                    break
                await asyncio.sleep(0.05)
        assert len(groups) == 1
        # Nine single alerts before the tenth made it a community cut: all folded.
        assert sum(r.alert_key == "power_lost" for r in rows) == 9
