"""``eldercall devices``' account commands: the devices' MQTT accounts on the broker
(offline: the files of ``[broker] state_dir``, and a SIGHUP to the broker of
``[broker] pid_file``). The group's other commands are the registry's (``list``,
``show``, ``add``, ``set``, ``move``, ``retire``: cli/registry.py).

    eldercall devices provision DEVICE [--rotate] [--password-stdin]
    eldercall devices revoke DEVICE
    eldercall devices accounts [--json]
    eldercall devices dispatcher [--password-stdin]   # the dispatcher's own account
    eldercall devices sync                            # the broker's files again

A new secret is printed once (only its hash is kept). Exit codes: 0 done, 1 refused
or the broker could not be told, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from dispatcher.adapters.mosquitto.files import ReloadFailed
from dispatcher.config import ConfigError, load_settings
from dispatcher.entrypoints.cli import common
from dispatcher.services.provisioning import Provisioning, ProvisioningRefused

PROG = f"{common.PROG} devices"


def add_account_commands(inner: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Into ``eldercall devices``: provision, revoke, accounts, dispatcher, sync."""

    provision = inner.add_parser("provision", help="give a device its MQTT account")
    provision.add_argument("device_id", metavar="DEVICE")
    provision.add_argument("--rotate", action="store_true", help="a new secret for one there")
    provision.add_argument(
        "--password-stdin", action="store_true", help="read the secret from stdin"
    )
    common.config_option(provision)
    provision.set_defaults(handler=_provision)

    revoke = inner.add_parser("revoke", help="take a device's account away")
    revoke.add_argument("device_id", metavar="DEVICE")
    common.config_option(revoke)
    revoke.set_defaults(handler=_revoke)

    listing = inner.add_parser("accounts", help="the provisioned devices")
    listing.add_argument("--json", action="store_true", help="print JSON")
    common.config_option(listing)
    listing.set_defaults(handler=_list)

    dispatcher = inner.add_parser("dispatcher", help="the dispatcher's own account")
    dispatcher.add_argument(
        "--password-stdin", action="store_true", help="read the secret from stdin"
    )
    common.config_option(dispatcher)
    dispatcher.set_defaults(handler=_dispatcher)

    sync = inner.add_parser("sync", help="write the broker's files again and reload it")
    common.config_option(sync)
    sync.set_defaults(handler=_sync)


def provisioning(config: str | None) -> Provisioning:
    """The accounts as bootstrap wires them, the registry read from the database."""
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        raise common.UsageError(str(exc)) from None
    bootstrap = common.import_command("dispatcher.bootstrap", "devices")
    provisioning: Provisioning = bootstrap.broker_provisioning(settings, clock=common.clock())
    return provisioning


def _stdin_secret(args: argparse.Namespace) -> str | None:
    return sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None


def _run(work: Callable[[], int]) -> int:
    try:
        return work()
    except ProvisioningRefused as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except ReloadFailed as exc:
        print(f"{PROG}: the accounts are written, but {exc}", file=sys.stderr)
        return 1


def _provision(args: argparse.Namespace) -> int:
    def work() -> int:
        done = provisioning(args.config).provision(
            args.device_id, _stdin_secret(args), rotate=args.rotate
        )
        print(f"device {done.device_id} provisioned; {done.reload}")
        if not args.password_stdin:
            print(f"username: {done.device_id}\npassword: {done.secret}")
        return 0

    return _run(work)


def _revoke(args: argparse.Namespace) -> int:
    def work() -> int:
        said = provisioning(args.config).revoke(args.device_id)
        print(f"device {args.device_id} revoked; {said}")
        return 0

    return _run(work)


def _list(args: argparse.Namespace) -> int:
    found = provisioning(args.config).devices()
    if args.json:
        print(
            json.dumps(
                [{"device_id": d.device_id, "provisioned_at": d.provisioned_at} for d in found]
            )
        )
    else:
        for d in found:
            print(f"{d.device_id}  {d.provisioned_at}")
    return 0


def _dispatcher(args: argparse.Namespace) -> int:
    def work() -> int:
        done = provisioning(args.config).set_dispatcher(_stdin_secret(args))
        print(f"dispatcher account {done.device_id} set; {done.reload}")
        if not args.password_stdin:
            print(f"[mqtt] username = {done.device_id!r}, password = {done.secret!r}")
        return 0

    return _run(work)


def _sync(args: argparse.Namespace) -> int:
    def work() -> int:
        print(provisioning(args.config).sync())
        return 0

    return _run(work)
