"""``eldercall simulate``: virtual homes on the broker, optionally a virtual operator.

The dispatcher's CLI adds these options to its ``simulate`` sub-command with
:func:`add_simulate_arguments` and calls :func:`run_simulate`; ``python -m simulator``
runs the same thing on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import structlog

from devices.protocol import DEFAULT_TOPIC_ROOT
from simulator.homes import HomesConfig, HomesStats, run_homes
from simulator.operator import OperatorStats, run_virtual_operator

log = structlog.get_logger(__name__)

DEFAULT_HOMES = 5


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    homes = parser.add_argument_group("virtual homes")
    homes.add_argument(
        "--homes",
        type=int,
        default=None,
        metavar="N",
        help=f"number of homes (default {DEFAULT_HOMES}, or every device of --devices-from)",
    )
    homes.add_argument(
        "--broker",
        default="mqtt://127.0.0.1:1883",
        metavar="URL",
        help="the MQTT broker (default %(default)s)",
    )
    homes.add_argument("--topic-root", default=DEFAULT_TOPIC_ROOT, help="(default %(default)s)")
    homes.add_argument(
        "--devices-from",
        type=Path,
        metavar="DIR",
        help="a data folder: use its residents' device ids instead of sim-0001...",
    )
    homes.add_argument("--timezone", default="Asia/Shanghai", help="of the data folder's rota")
    homes.add_argument("--seed", type=int, help="repeat the same homes' choices on every run")
    homes.add_argument("--protocol", type=int, choices=(4, 5), default=5, help="MQTT version")
    homes.add_argument("--username")
    homes.add_argument("--password")
    homes.add_argument(
        "--press-rate", type=float, default=2.0, metavar="PER_H", help="per home per hour"
    )
    homes.add_argument("--accident-rate", type=float, default=1.0, metavar="PER_H")
    homes.add_argument("--fall-rate", type=float, default=0.3, metavar="PER_H")
    homes.add_argument("--burst-rate", type=float, default=0.3, metavar="PER_H")
    homes.add_argument(
        "--heartbeat",
        type=float,
        default=300.0,
        metavar="S",
        help="devices' heartbeat interval until the centre sets one (default %(default)s)",
    )
    homes.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")

    op = parser.add_argument_group("virtual operator")
    op.add_argument("--operator", action="store_true", help="also run a virtual operator")
    op.add_argument(
        "--api",
        default="http://127.0.0.1:8080",
        metavar="URL",
        help="the dispatcher's API (default %(default)s)",
    )
    op.add_argument("--token", help="the operator's API token (staff.csv api_token)")
    op.add_argument(
        "--ack-after",
        type=float,
        default=15.0,
        metavar="S",
        help="acknowledge open calls this old (default %(default)s)",
    )
    op.add_argument(
        "--resolve-after",
        type=float,
        default=60.0,
        metavar="S",
        help="resolve calls this long after acknowledging (default %(default)s)",
    )


class SimulateError(Exception):
    """Bad options or data: reported in one line, without a traceback."""


def device_ids_from(folder: Path, timezone: str) -> list[str]:
    """The device ids of the residents registered in a data folder, sorted."""
    # Imported here so the simulator does not need the dispatcher's data layer otherwise.
    from dispatcher.adapters.files.directory_files import DataFileError, load_directory

    try:
        return sorted(load_directory(folder, timezone).residents_by_device)
    except (DataFileError, OSError) as exc:
        raise SimulateError(f"cannot read device ids from {folder}: {exc}") from exc


def homes_config(args: argparse.Namespace) -> HomesConfig:
    device_ids: list[str] | None = None
    homes = args.homes if args.homes is not None else DEFAULT_HOMES
    if args.devices_from is not None:
        device_ids = device_ids_from(args.devices_from, args.timezone)
        if args.homes is not None:
            device_ids = device_ids[: args.homes]
        homes = len(device_ids)
    return HomesConfig(
        broker_url=args.broker,
        topic_root=args.topic_root,
        homes=homes,
        device_ids=device_ids,
        seed=args.seed,
        protocol=args.protocol,
        username=args.username,
        password=args.password,
        press_per_h=args.press_rate,
        accident_per_h=args.accident_rate,
        fall_per_h=args.fall_rate,
        burst_per_h=args.burst_rate,
        heartbeat_s=args.heartbeat,
    )


async def simulate(args: argparse.Namespace, config: HomesConfig, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if args.duration is not None:
        loop.call_later(args.duration, stop.set)
    home_stats, operator_stats = HomesStats(), OperatorStats()
    tasks = []
    if config.ids():
        tasks.append(asyncio.create_task(run_homes(config, stop, stats=home_stats)))
    if args.operator:
        tasks.append(
            asyncio.create_task(
                run_virtual_operator(
                    args.api,
                    args.token,
                    args.ack_after,
                    args.resolve_after,
                    stop,
                    stats=operator_stats,
                )
            )
        )
    try:
        await asyncio.gather(*tasks)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    print(f"homes: {home_stats.summary()}", flush=True)
    if args.operator:
        print(
            f"operator: acknowledged {len(operator_stats.acked)}, "
            f"resolved {len(operator_stats.resolved)}",
            flush=True,
        )


def run_simulate(args: argparse.Namespace) -> int:
    if args.operator and not args.token:
        print("simulate: --operator needs --token (an api_token from staff.csv)", file=sys.stderr)
        return 2
    try:
        config = homes_config(args)
    except SimulateError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    if not config.ids() and not args.operator:
        print("simulate: no homes and no operator: nothing to do", file=sys.stderr)
        return 2
    asyncio.run(simulate(args, config, asyncio.Event()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulator", description="Virtual homes and a virtual operator."
    )
    add_simulate_arguments(parser)
    return run_simulate(parser.parse_args(argv))
