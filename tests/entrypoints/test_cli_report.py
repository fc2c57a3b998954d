"""``eldercall report`` against the API served for real by uvicorn, over the in-memory
Operations fake (whose figures come from dispatcher.core.reports on its sample records:
see ``tests/support/fake_ops.py``). The fixtures are those of tests/test_cli.py."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from dispatcher.entrypoints.cli import common
from tests.entrypoints import test_cli
from tests.entrypoints.test_cli import eldercall, with_token
from tests.support.fake_ops import FakeOperations

ops = test_cli.ops
api = test_cli.api
server_logs = test_cli.server_logs
quiet_env = test_cli.quiet_env


def section(out: str, title: str) -> list[str]:
    """The lines of one titled block of the report, up to the next blank line."""
    lines = out.splitlines()
    start = lines.index(title) + 1
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return lines[start:end]


async def test_report_prints_the_figures_against_the_targets(
    api: str, capsys: pytest.CaptureFixture[str], ops: FakeOperations
) -> None:
    r = await eldercall(capsys, *with_token(api, "report", "--since", "2026-11-28"))
    assert r.code == 0, r
    out = r.out
    assert out.startswith(
        "Answer times of the calls opened 2026-11-28 00:00 to 2026-11-28 08:20 "
        "(Asia/Shanghai), as of 2026-11-28 08:20\n"
        "Targets: 97.5% within 60 s, 99% within 180 s."
    )
    # The date went as given: the daemon places it in its own time zone.
    assert ops.log[-1].method == "answer_times"
    assert (ops.log[-1].at, ops.log[-1].until) == (datetime(2026, 11, 28), None)

    overall = section(out, "Residents' calls")
    assert overall[0].split() == [
        *("CALLS", "ANSWERED", "UNANSWERED", "<=60s", "60s", "TARGET"),
        *("<=180s", "180s", "TARGET", "MEDIAN", "P90"),
    ]
    # 20 s, 50 s, 90 s and one unanswered for 3 min: 2 of 4 within 60 s; the
    # unanswered one is not yet judged for 180 s.
    assert overall[1].split() == [
        *("all", "4", "3", "1", "2/4", "50.0%", "MISSED"),
        *("3/3", "100.0%", "(+1", "pending)", "met", "50s", "90s"),
    ]
    levels = [line.split()[:3] for line in section(out, "By level")[1:]]
    assert levels == [["community", "1", "1"], ["district", "2", "2"]]
    operators = [line.split()[:4] for line in section(out, "By operator")[1:]]
    assert operators == [
        ["张伟", "s-zhang", "community", "1"],
        ["李娜", "s-li", "district", "2"],
    ]
    kinds = [line.split()[:2] for line in section(out, "By kind")[1:]]
    assert kinds == [["emergency", "2"], ["fall", "1"], ["service", "1"]]
    channels = [line.split()[:2] for line in section(out, "By channel")[1:]]
    assert channels == [["api", "1"], ["cli", "1"], ["sms", "1"]]
    technical = section(out, "Technical alerts (apart: not residents' calls)")
    assert technical[1].split() == [
        *("all", "1", "1", "0", "0/1", "0.0%", "MISSED"),
        *("0/1", "0.0%", "MISSED", "240s", "240s"),
    ]


async def test_report_json_is_the_api_answer(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    r = await eldercall(
        capsys,
        *with_token(api, "report", "--since", "2026-11-28T08:15+08:00", "--until", "08:16"),
    )
    assert r.code == 2  # --until must be a date or a date and time
    assert "--until: cannot read '08:16'" in r.err

    r = await eldercall(
        capsys,
        *with_token(
            api,
            "report",
            "--since",
            "2026-11-28T08:15+08:00",
            "--until",
            "2026-11-28 08:16:30",
            "--json",
        ),
    )
    assert r.code == 0, r
    body = json.loads(r.out)
    # only C-1 (08:15:00) and C-2 (08:16:00) of the residents' calls opened in that minute
    # and a half, and the technical alert
    assert body["overall"]["calls"] == 2
    assert body["technical"]["calls"] == 1
    assert body["until"] == "2026-11-28T08:16:30+08:00"
    assert [g["key"] for g in body["by_operator"]] == ["s-li"]


async def test_report_of_an_empty_period(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    r = await eldercall(
        capsys, *with_token(api, "report", "--since", "2026-11-01", "--until", "2026-11-02")
    )
    assert r.code == 0, r
    overall = section(r.out, "Residents' calls")
    assert overall[1].split() == ["all", "0", "0", "0", "0/0", "-", "0/0", "-", "-", "-"]
    assert section(r.out, "By operator") == ["  (no calls)"]
    assert section(r.out, "Technical alerts (apart: not residents' calls)") == ["  (no calls)"]


async def test_report_errors(
    api: str, capsys: pytest.CaptureFixture[str], ops: FakeOperations
) -> None:
    r = await eldercall(capsys, *with_token(api, "report"))
    assert r.code == 2 and "--since" in r.err

    r = await eldercall(capsys, *with_token(api, "report", "--since", "last week"))
    assert (r.code, r.out) == (2, "")
    assert "--since: cannot read 'last week'" in r.err
    assert not [x for x in ops.log if x.method == "answer_times"]

    r = await eldercall(
        capsys, *with_token(api, "report", "--since", "2026-11-28", "--until", "2026-11-27")
    )
    assert r.code == 1
    assert r.err == (
        "eldercall: query parameters since, until: the period is empty: "
        "since must be before until\n"
    )


def test_answer_times_read_in_seconds_and_long_waits_in_minutes() -> None:
    assert [common.seconds(v) for v in (None, 0, 37.5, 599, 600, 3900)] == [
        "-",
        "0s",
        "37.5s",
        "599s",
        "10m",
        "1h05m",
    ]
