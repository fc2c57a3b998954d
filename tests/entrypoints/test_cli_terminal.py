"""What reaches the operator's terminal carries no control character: a call's note
with an escape sequence (the API refuses them today, but an older row or another
writer may hold one) is shown as text by ``eldercall show``, never run by the terminal.
The CLI runs against the API served by uvicorn on 127.0.0.1 over the Operations fake."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from dispatcher.entrypoints.cli import common
from dispatcher.entrypoints.cli import main as cli
from dispatcher.entrypoints.http.app import ApiServer, create_app
from tests.support.fake_ops import FakeOperations, sample_ops

OPEN = "C-20261128-0001"
# Clear the screen, set the window title, ring the bell; a newline to fake a row.
HOSTILE = "call back\x1b[2J\x1b]0;owned\x07\nC-FAKE open"


@pytest.fixture
def ops() -> FakeOperations:
    return sample_ops()


@pytest.fixture
async def api(
    ops: FakeOperations, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[str]:
    for name in ("ELDERCALL_API_URL", "ELDERCALL_API_TOKEN", "ELDERCALL_HTTP__LISTEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no config/eldercall.toml here
    monkeypatch.setattr(common, "clock", lambda: ops.clock)
    server = ApiServer(create_app(ops, ops.clock), "127.0.0.1", 0)
    await server.start()
    try:
        yield server.base_url
    finally:
        await server.stop()


@pytest.fixture(autouse=True)
def server_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    with capture_logs() as logs:  # the server's log lines, off the CLI's stdout
        yield logs


async def eldercall(capsys: pytest.CaptureFixture[str], api: str, *argv: str) -> str:
    code = await asyncio.to_thread(cli.main, [*argv, "--api", api, "--token", "token-zhang"])
    out, err = capsys.readouterr()
    assert code == 0, (out, err)
    return out


async def test_a_note_with_escape_sequences_is_shown_as_plain_text(
    api: str, capsys: pytest.CaptureFixture[str], ops: FakeOperations
) -> None:
    ops.calls[OPEN].note = HOSTILE  # what the API would no longer let in

    out = await eldercall(capsys, api, "show", OPEN)
    assert "call back[2J]0;owned C-FAKE open" in out
    assert not any(ch in out for ch in "\x1b\x07\r")
    assert not any(line.startswith("C-FAKE") for line in out.splitlines())


def test_table_and_fields_drop_control_characters() -> None:
    rows = [["ID", "NAME"], ["C-1", "王\x1b[31m秀英\x00\t"]]
    assert common.table(rows).splitlines()[1] == "C-1  王[31m秀英"
    assert common.fields([("Name", "a\x9b2Jb\nc")]) == ["  Name: a2Jb c"]
