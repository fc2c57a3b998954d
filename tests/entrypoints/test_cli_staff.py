"""``eldercall staff set-password`` and ``hash-password`` on a real SQLite database; the
password set is the one the accounts service then accepts."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from dispatcher.bootstrap import accounts_only, password_hasher
from dispatcher.entrypoints.cli import main as cli
from dispatcher.services.accounts import LoginRefusedError
from tests.support.daemon import write_config
from tests.support.ports import free_port, unique_client_id


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "eldercall.toml",
        broker_url=f"mqtt://127.0.0.1:{free_port()}",
        root="eldercall/v1",
        client_id=unique_client_id(),
        db=tmp_path / "eldercall.db",
    )


def run(argv: list[str], stdin: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return cli.main(argv)


def login(config: Path, staff_id: str, password: str) -> str:
    from dispatcher.entrypoints.cli.common import settings_from

    async def go() -> str:
        async with accounts_only(settings_from(str(config))) as accounts:
            return (await accounts.login(staff_id, password)).staff.id

    return asyncio.run(go())


def test_set_password_from_stdin_is_the_one_that_logs_in(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["staff", "set-password", "ma-lin", "--password-stdin", "--config", str(config)]
    assert run(argv, "night shift passphrase\n", monkeypatch) == 0
    assert "password set for ma-lin" in capsys.readouterr().out
    assert login(config, "ma-lin", "night shift passphrase") == "ma-lin"
    with pytest.raises(LoginRefusedError):
        login(config, "ma-lin", "night shift passphrase\n")


def test_a_weak_password_or_an_unknown_staff_id_says_why_and_fails(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    weak = ["staff", "set-password", "ma-lin", "--password-stdin", "--config", str(config)]
    assert run(weak, "short\n", monkeypatch) == 1
    assert "at least 12 characters; nothing was changed" in capsys.readouterr().err
    unknown = ["staff", "set-password", "no-one", "--password-stdin", "--config", str(config)]
    assert run(unknown, "long enough password\n", monkeypatch) == 1
    assert "no staff member 'no-one'" in capsys.readouterr().err


def test_hash_password_prints_an_argon2id_hash_of_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        run(["staff", "hash-password", "--password-stdin"], "a demo password\n", monkeypatch) == 0
    )
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("$argon2id$")
    assert password_hasher().verify(printed, "a demo password")
    assert not password_hasher().verify(printed, "another password")
