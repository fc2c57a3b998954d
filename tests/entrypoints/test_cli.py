"""The ``eldercall`` command line against the API served for real by uvicorn on
127.0.0.1, over the in-memory Operations fake. The CLI (sync httpx) runs in a thread
while the server runs in the test's event loop."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import types
from collections.abc import AsyncIterator, Iterator, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from dispatcher.core.calls import Outcome
from dispatcher.entrypoints.cli import common
from dispatcher.entrypoints.cli import main as cli
from dispatcher.entrypoints.http.app import ApiServer, CallStateFilter, create_app
from dispatcher.testing import FakeClock
from tests.support.fake_ops import FakeOperations, sample_ops

OPEN = "C-20261128-0001"
STRAY = "C-20261128-0002"
RESOLVED = "C-20261127-0009"


class Run:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"Run(code={self.code}, out={self.out!r}, err={self.err!r})"


@pytest.fixture
def ops() -> FakeOperations:
    return sample_ops()


@pytest.fixture(autouse=True)
def server_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """The server's log lines, kept off stdout where the CLI's output is checked."""
    with capture_logs() as logs:
        yield logs


@pytest.fixture(autouse=True)
def quiet_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ops: FakeOperations) -> None:
    for name in ("ELDERCALL_API_URL", "ELDERCALL_API_TOKEN", "ELDERCALL_HTTP__LISTEN"):
        monkeypatch.delenv(name, raising=False)
    # No config/eldercall.toml here unless a test writes one.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(common, "clock", lambda: ops.clock)


@pytest.fixture
async def api(ops: FakeOperations) -> AsyncIterator[str]:
    server = ApiServer(create_app(ops, ops.clock), "127.0.0.1", 0)
    await server.start()
    try:
        yield server.base_url
    finally:
        await server.stop()


async def eldercall(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    code = await asyncio.to_thread(cli.main, list(argv))
    out, err = capsys.readouterr()
    return Run(code, out, err)


def with_token(api: str, *argv: str, token: str = "token-zhang") -> list[str]:
    return [*argv, "--api", api, "--token", token]


# ---------------------------------------------------------------- calls


async def test_calls_prints_a_table_of_active_calls(
    api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    r = await eldercall(capsys, *with_token(api, "calls"))
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert lines[0].split() == [
        "ID",
        "STATE",
        "KIND",
        "PRIORITY",
        "OPENED",
        "AGE",
        "RESIDENT",
        "COMMUNITY",
        "ACK",
        "BY",
    ]
    stray, wang = lines[1], lines[2]  # newest first
    assert stray.split() == [
        *(STRAY, "open", "service", "normal", "11-28", "08:17", "3m"),
        *("unknown", "device", "-", "-"),
    ]
    assert wang.split() == [
        *(OPEN, "open", "emergency", "critical", "11-28", "08:15", "5m"),
        *("王秀英", "(82)", "阳光社区", "-"),
    ]
    assert RESOLVED not in r.out
    assert "Asia/Shanghai" in lines[-1]
    # columns line up in a terminal, where a Chinese character takes two columns
    assert common.width(wang[: wang.index("阳光社区")]) == common.width(
        stray[: stray.index("-", stray.index("device"))]
    )


async def test_calls_all_as_json(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    r = await eldercall(capsys, *with_token(api, "calls", "--state", "all", "--json"))
    assert r.code == 0, r
    ids = [c["call_id"] for c in json.loads(r.out)]
    assert set(ids) == {OPEN, STRAY, RESOLVED}


async def test_calls_when_there_are_none(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    r = await eldercall(capsys, *with_token(api, "calls", "--state", "cancelled"))
    assert (r.code, r.out) == (0, "no cancelled calls\n")


async def test_calls_with_an_unknown_state_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    r = await eldercall(capsys, "calls", "--state", "closed", "--token", "t")
    assert r.code == 2
    assert "invalid choice" in r.err


def test_cli_states_are_the_api_states() -> None:
    assert tuple(s.value for s in CallStateFilter) == cli.CALL_STATES


# ---------------------------------------------------------------- show


async def test_show_prints_call_resident_timeline_and_sms(
    api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    r = await eldercall(capsys, *with_token(api, "show", OPEN))
    assert r.code == 0, r
    out = r.out
    assert out.startswith(f"Call {OPEN}: emergency, critical priority\n")
    assert "State:" in out and "open" in out
    assert "dev-0401 (pressed 2 times)" in out
    assert "2026-11-28 08:15:00 (5m ago)" in out
    assert "Resident: 王秀英, 82" in out
    assert "阳光社区 3号楼 2单元 401" in out
    assert "阳光社区 (c-yangguang)" in out
    assert "1. 王明 (son) +8613900000009" in out
    assert "高血压" in out
    timeline = out[out.index("Timeline:") : out.index("SMS notifications:")]
    assert timeline.splitlines()[1].split() == ["11-28", "08:15:00", "device", "opened", "mqtt"]
    assert "sms_queued" in timeline and "step 0 to s-zhang" in timeline
    sms = out[out.index("SMS notifications:") :].splitlines()[1].split()
    assert sms[:6] == ["#1", "step", "0", "s-zhang", "+8613800000001", "delivered"]
    assert "SM0001" in sms
    assert "Times are in Asia/Shanghai." in out


async def test_show_a_call_from_an_unknown_device(
    api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    r = await eldercall(capsys, *with_token(api, "show", STRAY))
    assert r.code == 0, r
    assert "Resident: unknown device" in r.out
    assert "SMS notifications:\n  (none)" in r.out


async def test_show_json(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    r = await eldercall(capsys, *with_token(api, "show", OPEN, "--json"))
    assert r.code == 0, r
    call = json.loads(r.out)
    assert call["resident"]["name"] == "王秀英"
    assert len(call["timeline"]) == 2


async def test_show_unknown_call_is_one_line_and_exit_1(
    api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    r = await eldercall(capsys, *with_token(api, "show", "C-19990101-0001"))
    assert (r.code, r.out, r.err) == (1, "", "eldercall: no call C-19990101-0001\n")


async def test_a_call_id_cannot_change_the_route(
    api: str, capsys: pytest.CaptureFixture[str], ops: FakeOperations
) -> None:
    r = await eldercall(capsys, *with_token(api, "ack", f"{OPEN}/../../calls"))
    assert r.code == 1
    assert r.err.startswith("eldercall: not found: POST /api/v1/calls/")
    assert ops.calls[OPEN].state == "open"


# ---------------------------------------------------------------- ack and resolve


async def test_ack_records_the_cli_channel(
    api: str, capsys: pytest.CaptureFixture[str], ops: FakeOperations
) -> None:
    r = await eldercall(capsys, *with_token(api, "ack", OPEN, "--note", "打电话给她"))
    assert r.code == 0, r
    assert r.out.startswith(
        f"{OPEN} is acknowledged: acknowledged by s-zhang at 2026-11-28 08:20:00"
    )
    done = ops.log[-1]
    assert (done.method, done.staff_id, done.channel, done.note) == (
        "acknowledge",
        "s-zhang",
        "cli",
        "打电话给她",
    )
    assert ops.calls[OPEN].timeline[-1].channel == "cli"

    again = await eldercall(capsys, *with_token(api, "ack", OPEN, token="token-li"))
    assert again.code == 0, again
    assert "acknowledged by s-zhang" in again.out


async def test_resolve_then_resolve_again(
    api: str, capsys: pytest.CaptureFixture[str], ops: FakeOperations
) -> None:
    r = await eldercall(
        capsys,
        *with_token(api, "resolve", OPEN, "--outcome", "false_alarm", "--note", "误按"),
    )
    assert r.code == 0, r
    assert r.out.startswith(f"{OPEN} is resolved: false_alarm by s-zhang at 2026-11-28 08:20:00")
    assert ops.calls[OPEN].state == "resolved"
    assert ops.log[-1].outcome is Outcome.FALSE_ALARM
    assert ops.log[-1].channel == "cli"

    again = await eldercall(capsys, *with_token(api, "resolve", OPEN, "--outcome", "visit"))
    assert (again.code, again.out) == (1, "")
    assert again.err == f"eldercall: call {OPEN} is already resolved\n"


async def test_resolve_needs_a_known_outcome(capsys: pytest.CaptureFixture[str]) -> None:
    r = await eldercall(capsys, "resolve", OPEN, "--outcome", "fixed", "--token", "t")
    assert r.code == 2
    assert "false_alarm" in r.err  # the choices are listed
    r = await eldercall(capsys, "resolve", OPEN, "--token", "t")
    assert r.code == 2
    assert "--outcome" in r.err


# ---------------------------------------------------------------- on duty


async def test_oncall_for_a_community_at_a_local_time(
    api: str, capsys: pytest.CaptureFixture[str], ops: FakeOperations
) -> None:
    r = await eldercall(
        capsys, *with_token(api, "oncall", "--community", "c-yangguang", "--at", "07:30")
    )
    assert r.code == 0, r
    # 07:30 today in Shanghai, where "now" is 2026-11-28 08:20
    assert ops.log[-1].at == datetime(2026, 11, 27, 23, 30, tzinfo=UTC)
    assert ops.log[-1].community_id == "c-yangguang"
    lines = r.out.splitlines()
    assert lines[0] == "On duty at 2026-11-28 07:30 (Asia/Shanghai)"
    assert "阳光社区 (c-yangguang): found at community level" in lines
    assert lines[-1].split() == ["张伟", "s-zhang", "staff", "primary", "+8613800000001"]


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("2026-11-29T09:00:00+08:00", datetime(2026, 11, 29, 1, 0, tzinfo=UTC)),
        ("2026-11-29T01:00Z", datetime(2026, 11, 29, 1, 0, tzinfo=UTC)),
        ("2026-11-29 09:00", datetime(2026, 11, 29, 1, 0, tzinfo=UTC)),
    ],
)
async def test_oncall_at_forms(
    api: str,
    capsys: pytest.CaptureFixture[str],
    ops: FakeOperations,
    at: str,
    expected: datetime,
) -> None:
    r = await eldercall(capsys, *with_token(api, "oncall", "--at", at))
    assert r.code == 0, r
    assert ops.log[-1].at == expected


async def test_oncall_everywhere_says_where_the_answer_came_from(
    api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    r = await eldercall(capsys, *with_token(api, "oncall"))
    assert r.code == 0, r
    assert r.out.splitlines()[0] == "On duty at 2026-11-28 08:20 (Asia/Shanghai)"
    assert "荷花社区 (c-hehua): nobody on duty there; answered at street level by st-east" in r.out
    assert "(no phone)" in r.out
    assert "指挥中心 (district)" in r.out


async def test_oncall_with_a_bad_time_is_a_usage_error(
    api: str, capsys: pytest.CaptureFixture[str], ops: FakeOperations
) -> None:
    r = await eldercall(capsys, *with_token(api, "oncall", "--at", "soon"))
    assert r.code == 2
    assert r.err.startswith("eldercall: --at: cannot read 'soon'")
    assert not any(x.method == "on_duty" for x in ops.log)


async def test_oncall_unknown_community(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    r = await eldercall(capsys, *with_token(api, "oncall", "--community", "c-atlantis"))
    assert (r.code, r.err) == (1, "eldercall: no community c-atlantis\n")


# ---------------------------------------------------------------- connection and errors


async def test_a_wrong_token_is_one_clear_line(
    api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    r = await eldercall(capsys, *with_token(api, "calls", token="stolen"))
    assert (r.code, r.out, r.err) == (1, "", "eldercall: the API token was refused\n")


async def test_an_unreachable_api_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    r = await eldercall(capsys, "calls", "--api", url, "--token", "t")
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        f"eldercall: cannot reach the Eldercall API at {url} (is the daemon running?)\n"
    )


async def test_a_missing_token_names_both_ways_to_give_it(
    api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    r = await eldercall(capsys, "calls", "--api", api)
    assert r.code == 2
    assert "--token" in r.err and "ELDERCALL_API_TOKEN" in r.err
    assert len(r.err.splitlines()) == 1


async def test_url_and_token_from_the_environment(
    api: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELDERCALL_API_URL", api)
    monkeypatch.setenv("ELDERCALL_API_TOKEN", "token-zhang")
    r = await eldercall(capsys, "calls")
    assert r.code == 0, r
    assert OPEN in r.out


def write_config(path: Path, api: str, timezone: str = "Asia/Shanghai") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    listen = api.removeprefix("http://")
    path.write_text(f'[http]\nlisten = "{listen}"\n\n[data]\ntimezone = "{timezone}"\n')


async def test_url_and_time_zone_from_the_config_file(
    api: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "elsewhere.toml"
    write_config(config, api, "Europe/London")
    r = await eldercall(capsys, "calls", "--config", str(config), "--token", "token-zhang")
    assert r.code == 0, r
    assert "11-28 00:15" in r.out  # opened at 08:15 in Shanghai is 00:15 in London
    assert "Europe/London" in r.out


async def test_the_default_config_file_is_used_when_present(
    api: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write_config(tmp_path / "config" / "eldercall.toml", api)
    r = await eldercall(capsys, "show", OPEN, "--token", "token-zhang")
    assert r.code == 0, r
    assert "王秀英" in r.out


async def test_a_missing_config_file_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    r = await eldercall(capsys, "calls", "--config", "nope.toml", "--token", "t")
    assert r.code == 2
    assert "nope.toml" in r.err


# ---------------------------------------------------------------- in-process commands


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("run", "demo", "simulate", "calls", "show", "ack", "resolve", "oncall"):
        assert command in out


def test_run_and_demo_call_their_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[object, ...]] = []

    def main_run(config_path: str | None, *, clock: object) -> int:
        seen.append(("run", config_path, clock))
        return 3

    def main_demo(config_path: str | None, homes: int) -> int:
        seen.append(("demo", config_path, homes))
        return 0

    bootstrap = types.ModuleType("dispatcher.bootstrap")
    bootstrap.main_run = main_run  # type: ignore[attr-defined]
    demo = types.ModuleType("simulator.demo")
    demo.main_demo = main_demo  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dispatcher.bootstrap", bootstrap)
    monkeypatch.setitem(sys.modules, "simulator.demo", demo)
    clock = FakeClock(datetime(2026, 11, 28, 0, 15, tzinfo=UTC))
    monkeypatch.setattr(common, "clock", lambda: clock)
    assert cli.main(["run", "--config", "x.toml"]) == 3
    assert cli.main(["run"]) == 3
    assert cli.main(["demo", "--homes", "4"]) == 0
    assert cli.main(["demo"]) == 0
    assert seen == [
        ("run", "x.toml", clock),  # the daemon runs on the CLI's clock
        ("run", None, clock),
        ("demo", None, 4),
        ("demo", None, cli.DEFAULT_DEMO_HOMES),
    ]
    assert cli.main(["demo", "--homes", "0"]) == 2


def test_run_without_its_module_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "dispatcher.bootstrap", None)  # import raises
    assert cli.main(["run"]) == 1
    assert "'run' is not available" in capsys.readouterr().err


def test_simulate_uses_the_simulator_options(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []
    fake = types.ModuleType("simulator.cli")

    def add_simulate_arguments(parser: object) -> None:
        parser.add_argument("--homes", type=int, default=1)  # type: ignore[attr-defined]

    def run_simulate(args: object) -> int:
        seen.append(args.homes)  # type: ignore[attr-defined]
        return 0

    fake.add_simulate_arguments = add_simulate_arguments  # type: ignore[attr-defined]
    fake.run_simulate = run_simulate  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "simulator.cli", fake)
    assert cli.main(["simulate", "--homes", "7"]) == 0
    assert seen == [7]


def test_without_the_simulator_the_rest_still_works(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "simulator.cli", None)
    assert cli.main(["simulate", "--homes", "7"]) == 1
    assert "'simulate' is not available" in capsys.readouterr().err
    assert cli.main(["calls", "--token", "t", "--api", "ftp://x"]) == 2
    assert "--api must be an http" in capsys.readouterr().err


def test_the_simulator_registers_demo_and_simulate_through_entry_points() -> None:
    from importlib.metadata import entry_points

    found = {ep.name: ep.value for ep in entry_points(group="eldercall.commands")}
    assert found == {"demo": "simulator.demo", "simulate": "simulator.cli"}


def test_without_the_simulators_registration_demo_says_it_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "entry_points", lambda **_: ())
    assert cli.main(["demo"]) == 1
    assert "'demo' is not available" in capsys.readouterr().err
