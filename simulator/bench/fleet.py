"""``python -m simulator.bench.fleet [--devices 100000] [--seconds 120]``: the fleet's
steady load, in the daemon's process.

N registered devices (a district of N residents, seeded into the registry as at a
daemon's first start) each send a heartbeat a minute (spread evenly over the minute):
the daemon's intake takes them (parsed as from MQTT, in batches of the gateway's
size), holds them in memory and writes them to the device links every 5 s, and link
supervision checks every 30 s, as in production. Measured: the process's CPU share
(user + system over wall time), the database's writing transactions and rows a
second, and the memory (RSS) at rest after the run. The MQTT client's own share is
not in it: the main bench's heartbeat-ingest scenario measures that over Mosquitto.
A benchmark script, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from dispatcher.bootstrap import build, release_start_up_memory
from dispatcher.config import load_settings
from dispatcher.services.intake import DeviceMessage
from simulator.bench.world import device_id, write_district


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class SystemClockUTC:
    def now(self) -> datetime:
        return datetime.now(UTC)


async def bench(
    devices: int, seconds: float, batch: int, db_url: str, folder: Path
) -> dict[str, float]:
    # A district of ``devices`` registered residents, each with her device, seeded into
    # the registry at the first start as the daemon does.
    data = write_district(folder / "data", devices)
    settings = load_settings(
        None,
        database={"url": db_url},
        data={"dir": str(data), "timezone": "Asia/Shanghai"},
        mqtt={"url": "mqtt://127.0.0.1:1", "client_id": "bench-fleet"},
    )
    # The SMS senders are the configuration's (log senders by default): none is sent.
    started = time.monotonic()
    app = await build(settings, clock=SystemClockUTC())
    release_start_up_memory()  # as `eldercall run` does after its start
    start_s = time.monotonic() - started
    assert len(app.directory.residents) == devices
    flushes = {"transactions": 0, "rows": 0}
    tracker = app.intake.heartbeats
    flush = tracker.flush

    async def counted_flush() -> int:
        n = await flush()
        if n:
            flushes["transactions"] += 1
            flushes["rows"] += n
        return n

    tracker.flush = counted_flush  # type: ignore[method-assign]
    ids = [device_id(i) for i in range(devices)]
    topic = "eldercall/v1/dev/{}/event"
    stop = asyncio.Event()
    flusher = asyncio.create_task(tracker.run(settings.intake.contacts_flush_s, stop))

    async def supervise() -> None:
        while not stop.is_set():
            await app.supervisor.check()
            try:
                async with asyncio.timeout(settings.devices.check_interval_s):
                    await stop.wait()
            except TimeoutError:
                pass

    supervision = asyncio.create_task(supervise())
    # Warm-up: every device heard once (the first write of each link row).
    for start in range(0, devices, batch):
        await app.intake.on_batch(
            [
                DeviceMessage.read(
                    d, topic.format(d), json.dumps({"ref": "h0", "type": "heartbeat"}).encode()
                )
                for d in ids[start : start + batch]
            ]
        )
    await tracker.flush()
    flushes.update(transactions=0, rows=0)
    rate = devices / 60.0
    cpu0, wall0 = cpu_s(), time.monotonic()
    sent, n = 0, 0
    while (elapsed := time.monotonic() - wall0) < seconds:
        due = min(int(elapsed * rate), int(seconds * rate))
        if due > sent:
            chunk: list[DeviceMessage] = []
            while sent < due and len(chunk) < batch:
                d = ids[sent % devices]
                n += 1
                chunk.append(
                    DeviceMessage.read(
                        d,
                        topic.format(d),
                        json.dumps({"ref": f"h{n}", "type": "heartbeat", "battery": 80}).encode(),
                    )
                )
                sent += 1
            await app.intake.on_batch(chunk)
        else:
            await asyncio.sleep(0.01)
    wall = time.monotonic() - wall0
    cpu = cpu_s() - cpu0
    stop.set()
    await flusher
    supervision.cancel()
    await asyncio.sleep(1.0)
    at_rest = rss_mb()
    await app.aclose()
    return {
        "devices": devices,
        "start_s": round(start_s, 1),
        "seconds": round(wall, 1),
        "heartbeats_per_s": round(sent / wall, 1),
        "cpu_share_pct": round(100 * cpu / wall, 1),
        "db_transactions_per_s": round(flushes["transactions"] / wall, 2),
        "db_rows_per_s": round(flushes["rows"] / wall, 1),
        "rss_at_rest_mb": round(at_rest, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.bench.fleet", description=__doc__)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--batch", type=int, default=100, help="messages per intake batch")
    parser.add_argument("--db", help="a database URL (default: SQLite in a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite+aiosqlite:///{tmp}/fleet.db"
        figures = asyncio.run(bench(args.devices, args.seconds, args.batch, url, Path(tmp)))
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
