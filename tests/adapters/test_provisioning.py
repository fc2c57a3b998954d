"""``eldercall devices`` and what it writes: Mosquitto's PBKDF2-SHA512 password lines,
the ACL (the shipped config/mosquitto.acl is what it writes for the default root), the
accounts kept beside them, and the refusals. The broker itself:
tests/e2e/test_broker_security.py."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from dispatcher.adapters.mosquitto.files import acl_text, password_hash, write_atomically
from dispatcher.bootstrap import broker_provisioning
from dispatcher.entrypoints.cli import common
from dispatcher.entrypoints.cli import main as cli
from dispatcher.entrypoints.cli.devices import provisioning
from dispatcher.services.provisioning import ProvisioningRefused
from dispatcher.testing import FakeClock
from tests.support.app import DATA, TUESDAY_10AM, built_app, settings_for, sqlite_url

REPO = Path(__file__).resolve().parents[2]


def verifies(line_hash: str, password: str) -> bool:
    """Mosquitto's check of a ``$7$`` hash."""
    _, kind, iterations, salt, digest = line_hash.split("$")
    assert kind == "7"
    raw_salt = base64.b64decode(salt)
    ours = hashlib.pbkdf2_hmac("sha512", password.encode(), raw_salt, int(iterations))
    return base64.b64encode(ours).decode() == digest


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "clock", lambda: FakeClock(TUESDAY_10AM))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The broker's files in the test's folder, and its own database (none yet: the
    registry is then the data folder's, the seed it will get)."""
    path = tmp_path / "eldercall.toml"
    path.write_text(
        f'[broker]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[database]\nurl = "{sqlite_url(tmp_path)}"\n'
        f'[data]\ndir = "{DATA}"\n',
        encoding="utf-8",
    )
    return path


def test_a_hash_is_mosquitto_passwd_s_format(tmp_path: Path) -> None:
    ours = password_hash("a device secret")
    assert verifies(ours, "a device secret") and not verifies(ours, "another")
    passwd = tmp_path / "passwd"
    passwd.touch()
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "d", "a device secret"], check=True)
    theirs = passwd.read_text().strip().split(":", 1)[1]
    assert verifies(theirs, "a device secret")
    # The same shape: iterations, a 12-byte salt, a 64-byte digest.
    for h in (ours, theirs):
        _, _, iterations, salt, digest = h.split("$")
        assert iterations == "101" and len(base64.b64decode(salt)) == 12
        assert len(base64.b64decode(digest)) == 64


def test_the_shipped_acl_is_what_provisioning_writes() -> None:
    shipped = (REPO / "config" / "mosquitto.acl").read_text(encoding="utf-8")
    assert shipped == acl_text("eldercall/v1", "eldercall-dispatcher")
    other = acl_text("district-7/v1/", "centre")
    assert "user centre\n" in other and "pattern write district-7/v1/dev/%u/event\n" in other
    assert "%c" not in other.replace("never %c", "")


def test_provision_revoke_and_the_files_in_step(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    assert cli.main(["devices", "dispatcher", "--config", str(config)]) == 0
    assert cli.main(["devices", "provision", "dev-0001", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    secret = out.split("password: ")[1].split()[0]
    assert "broker not signalled" in out  # no pid_file in this configuration
    lines = dict(line.split(":", 1) for line in (state / "passwd").read_text().splitlines())
    assert set(lines) == {"eldercall-dispatcher", "dev-0001"}
    assert verifies(lines["dev-0001"], secret)
    assert stat.S_IMODE((state / "passwd").stat().st_mode) == 0o640
    assert (state / "acl").read_text() == acl_text("eldercall/v1", "eldercall-dispatcher")
    accounts = json.loads((state / "accounts.json").read_text())
    assert accounts["devices"]["dev-0001"]["provisioned_at"] == TUESDAY_10AM.isoformat()
    assert secret not in (state / "accounts.json").read_text()

    # Twice: refused unless rotated, and rotating changes the secret.
    assert cli.main(["devices", "provision", "dev-0001", "--config", str(config)]) == 1
    assert "provisioned already" in capsys.readouterr().err
    assert cli.main(["devices", "provision", "dev-0001", "--rotate", "--config", str(config)]) == 0
    rotated = capsys.readouterr().out.split("password: ")[1].split()[0]
    line = (state / "passwd").read_text().splitlines()[0]
    assert verifies(line.split(":", 1)[1], rotated) and not verifies(line.split(":", 1)[1], secret)

    assert cli.main(["devices", "accounts", "--json", "--config", str(config)]) == 0
    assert [d["device_id"] for d in json.loads(capsys.readouterr().out)] == ["dev-0001"]
    assert cli.main(["devices", "revoke", "dev-0001", "--config", str(config)]) == 0
    assert "dev-0001" not in (state / "passwd").read_text()
    assert cli.main(["devices", "revoke", "dev-0001", "--config", str(config)]) == 1


@pytest.mark.parametrize(
    ("device_id", "why"),
    [
        ("dev+", "not a device id"),
        ("#", "not a device id"),
        ("a/b", "not a device id"),
        ("x" * 65, "not a device id"),
        ("eldercall-dispatcher", "dispatcher's username"),
    ],
)
def test_what_could_widen_the_acl_is_refused(config: Path, device_id: str, why: str) -> None:
    with pytest.raises(ProvisioningRefused, match=why):
        provisioning(str(config)).provision(device_id)


def test_a_short_or_unwritable_secret_is_refused(config: Path) -> None:
    p = provisioning(str(config))
    for secret in ("short", "a" * 20 + ":" + "b", "a" * 20 + "\n"):
        with pytest.raises(ProvisioningRefused):
            p.provision("dev-0009", secret)
    assert p.devices() == []


def test_a_rewrite_keeps_the_file_s_mode(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_text("old\n")
    os.chmod(path, 0o604)
    write_atomically(path, "new\n")
    assert path.read_text() == "new\n" and stat.S_IMODE(path.stat().st_mode) == 0o604
    assert [p.name for p in tmp_path.iterdir()] == ["passwd"]  # no temporary left


def test_a_device_not_in_the_registry_gets_no_account(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["devices", "provision", "dev-9999", "--config", str(config)]) == 1
    assert "not in the registry" in capsys.readouterr().err
    assert not (tmp_path / "state" / "accounts.json").exists()


async def test_the_accounts_follow_the_registry_s_retirements(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A device retired in the registry (the database the daemon keeps) cannot be
    provisioned, and ``sync`` takes away the account it had."""
    for device in ("dev-0002", "dev-0003"):
        assert (
            await asyncio.to_thread(
                cli.main, ["devices", "provision", device, "--config", str(config)]
            )
            == 0
        )
    app = await built_app(settings_for(tmp_path), FakeClock(TUESDAY_10AM))
    try:
        admin = app.directory.staff["zhao-min"]
        await app.registry.retire_device(admin, "dev-0003")
    finally:
        await app.aclose()
    capsys.readouterr()
    argv = ["devices", "provision", "dev-0003", "--rotate", "--config", str(config)]
    assert await asyncio.to_thread(cli.main, argv) == 1
    assert "retired in the registry" in capsys.readouterr().err
    assert await asyncio.to_thread(cli.main, ["devices", "sync", "--config", str(config)]) == 0
    assert "revoked (retired or not in the registry): dev-0003" in capsys.readouterr().out
    passwd = (tmp_path / "state" / "passwd").read_text()
    assert "dev-0002:" in passwd and "dev-0003" not in passwd


async def test_the_daemon_revokes_a_retired_device_s_account_itself(tmp_path: Path) -> None:
    broker = {"state_dir": str(tmp_path / "state"), "follow_registry": True}
    settings = settings_for(tmp_path, broker=broker)
    app = await built_app(settings, FakeClock(TUESDAY_10AM))
    try:
        accounts = broker_provisioning(settings, app.registry.in_service)
        accounts.provision("dev-0002")
        accounts.provision("dev-0003")
        with pytest.raises(ProvisioningRefused, match="not in the registry"):
            accounts.provision("dev-9999")
        await app.registry.retire_device(app.directory.staff["zhao-min"], "dev-0003")
    finally:
        await app.aclose()
    assert [d.device_id for d in accounts.devices()] == ["dev-0002"]
    assert "dev-0003" not in (tmp_path / "state" / "passwd").read_text()
