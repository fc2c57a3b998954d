"""Device provisioning: each device's MQTT account, kept in step with the broker.

``eldercall devices provision DEVICE`` gives a device an account whose username is
its device id and whose password is a fresh random secret (shown once); ``revoke``
takes it away; the dispatcher has an account of its own. After every change the
broker's password file and ACL are written again from the accounts, whole, and the
broker is told to reload them (SIGHUP, no restart): a revoked device is disconnected
and cannot connect again.

Why the username is the device id: the ACL is then one set of ``pattern`` lines with
``%u`` for every device (each publishes only its own ``event`` and ``status`` and
reads only its own ``ack`` and ``cmd``), which stays the same size for 100,000
devices, and the id in a topic is the identity the broker authenticated, as the
protocol says. So a device id that could be a pattern's wildcard is impossible (the
protocol's ids have no ``+``, ``#`` or ``/``), and the dispatcher's username is never
a device's.

In step with the registry: only a device registered and in service gets an account;
``sync`` takes away the account of a device the registry has retired or no longer
has; and the daemon, with ``[broker] follow_registry``, revokes a device's account
itself when the registry retires it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from devices.protocol import DEVICE_ID_RE
from dispatcher.services.clock import Clock

log = structlog.get_logger(__name__)


class ProvisioningRefused(ValueError):
    """What was asked cannot be done; the message says why."""


@dataclass(frozen=True)
class DeviceAccount:
    device_id: str
    password_hash: str
    provisioned_at: str  # ISO 8601


@dataclass
class Accounts:
    dispatcher_hash: str | None
    devices: dict[str, DeviceAccount] = field(default_factory=dict)


class AccountStore(Protocol):
    """Where the accounts are kept (a file beside the password file; later the device
    registry in the database)."""

    def locked(self) -> AbstractContextManager[None]: ...
    def load(self) -> Accounts: ...
    def save(self, accounts: Accounts) -> None: ...


class Broker(Protocol):
    """The broker's side: its files written from the accounts, and a reload."""

    def write(self, accounts: Accounts) -> None: ...
    def reload(self) -> str:
        """Tell the broker to read its files again; says what was done."""
        ...


# The registry's devices: device id -> in service (False: retired); absent: unknown.
Registered = Callable[[], Mapping[str, bool]]


@dataclass(frozen=True)
class Synced:
    reload: str
    revoked: list[str]  # accounts taken away: their device is retired or unknown

    def __str__(self) -> str:
        gone = f"; revoked (retired or not in the registry): {', '.join(self.revoked)}"
        return self.reload + (gone if self.revoked else "")


@dataclass(frozen=True)
class Provisioned:
    device_id: str
    secret: str  # shown once: only its hash is kept
    reload: str


class Provisioning:
    def __init__(
        self,
        store: AccountStore,
        broker: Broker,
        clock: Clock,
        hasher: Callable[[str], str],
        *,
        dispatcher_username: str,
        registered: Registered | None = None,
    ) -> None:
        self._registered = registered  # None: no registry to keep in step with
        self._store = store
        self._broker = broker
        self._clock = clock
        self._hash = hasher
        self._dispatcher = dispatcher_username

    def devices(self) -> list[DeviceAccount]:
        return sorted(self._store.load().devices.values(), key=lambda d: d.device_id)

    def provision(
        self, device_id: str, secret: str | None = None, *, rotate: bool = False
    ) -> Provisioned:
        """A device's account (a new secret with ``rotate`` for one already there)."""
        if not DEVICE_ID_RE.fullmatch(device_id):
            raise ProvisioningRefused(
                f"{device_id!r} is not a device id (1-64 of A-Z, a-z, 0-9, '_' and '-')"
            )
        if device_id == self._dispatcher:
            raise ProvisioningRefused(f"{device_id!r} is the dispatcher's username")
        if self._registered is not None:
            in_service = self._registered().get(device_id)
            if in_service is None:
                raise ProvisioningRefused(
                    f"{device_id} is not in the registry: register it first "
                    f"(eldercall devices add id={device_id} ...)"
                )
            if not in_service:
                raise ProvisioningRefused(f"{device_id} is retired in the registry")
        secret = secret if secret is not None else new_secret()
        _usable(secret)
        with self._store.locked():
            accounts = self._store.load()
            if device_id in accounts.devices and not rotate:
                raise ProvisioningRefused(
                    f"{device_id} is provisioned already (--rotate gives it a new secret)"
                )
            now = self._clock.now().isoformat()
            accounts.devices[device_id] = DeviceAccount(device_id, self._hash(secret), now)
            said = self._apply(accounts)
        log.info("device_provisioned", device_id=device_id, rotated=rotate)
        return Provisioned(device_id, secret, said)

    def revoke(self, device_id: str, *, missing_ok: bool = False) -> str:
        with self._store.locked():
            accounts = self._store.load()
            if accounts.devices.pop(device_id, None) is None:
                if missing_ok:
                    return f"{device_id} had no account"
                raise ProvisioningRefused(f"{device_id} is not provisioned")
            said = self._apply(accounts)
        log.info("device_revoked", device_id=device_id)
        return said

    def set_dispatcher(self, secret: str | None = None) -> Provisioned:
        """The dispatcher's own account (its ``[mqtt] username`` and ``password``)."""
        secret = secret if secret is not None else new_secret()
        _usable(secret)
        with self._store.locked():
            accounts = self._store.load()
            accounts.dispatcher_hash = self._hash(secret)
            said = self._apply(accounts)
        log.info("dispatcher_account_set", username=self._dispatcher)
        return Provisioned(self._dispatcher, secret, said)

    def sync(self) -> Synced:
        """Write the broker's files again from the accounts, without those of devices
        the registry has retired or does not have, and reload it."""
        with self._store.locked():
            accounts = self._store.load()
            revoked: list[str] = []
            if self._registered is not None:
                registered = self._registered()
                revoked = sorted(d for d in accounts.devices if not registered.get(d, False))
                for device_id in revoked:
                    del accounts.devices[device_id]
            said = self._apply(accounts)
        if revoked:
            log.warning("device_accounts_revoked_by_sync", device_ids=revoked)
        return Synced(said, revoked)

    def _apply(self, accounts: Accounts) -> str:
        # The accounts first: should writing the broker's files fail, sync() redoes them.
        self._store.save(accounts)
        self._broker.write(accounts)
        return self._broker.reload()


def hashes(accounts: Accounts, dispatcher_username: str) -> dict[str, str]:
    """Every account's password hash by username (the password file's lines)."""
    out = {d.device_id: d.password_hash for d in accounts.devices.values()}
    if accounts.dispatcher_hash is not None:
        out[dispatcher_username] = accounts.dispatcher_hash
    return out


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def _usable(secret: str) -> None:
    if len(secret) < 16:
        raise ProvisioningRefused("a secret has at least 16 characters")
    if any(c in secret for c in "\r\n:") or not secret.isprintable():
        raise ProvisioningRefused("a secret has no control characters and no ':'")
