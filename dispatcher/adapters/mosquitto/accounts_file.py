"""The provisioned MQTT accounts, in ``accounts.json`` beside the password file: the
dispatcher's and each device's password hash, and when each was provisioned. The
password file and the ACL are written from it, so the three never disagree.

Behind :class:`~dispatcher.services.provisioning.AccountStore`: the device registry in
the database can take its place without the provisioning changing. One change at a
time: an exclusive ``flock`` on ``accounts.lock`` while it is read, changed and written.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from pathlib import Path

from dispatcher.adapters.mosquitto.files import write_atomically
from dispatcher.services.provisioning import Accounts, DeviceAccount

ACCOUNTS = "accounts.json"


class AccountsFile:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / ACCOUNTS
        self._lock = state_dir / "accounts.lock"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self._lock.parent.mkdir(parents=True, exist_ok=True)
        with self._lock.open("a") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def load(self) -> Accounts:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return Accounts(dispatcher_hash=None, devices={})
        devices = {
            device_id: DeviceAccount(device_id, d["hash"], d["provisioned_at"])
            for device_id, d in data.get("devices", {}).items()
        }
        return Accounts(dispatcher_hash=data.get("dispatcher_hash"), devices=devices)

    def save(self, accounts: Accounts) -> None:
        data = {
            "dispatcher_hash": accounts.dispatcher_hash,
            "devices": {
                d.device_id: {"hash": d.password_hash, "provisioned_at": d.provisioned_at}
                for d in sorted(accounts.devices.values(), key=lambda d: d.device_id)
            },
        }
        # Hashes only, but still nobody else's to read.
        write_atomically(self.path, json.dumps(data, indent=1) + "\n", mode=0o600)
