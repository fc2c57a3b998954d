"""``make run``: the whole system on embedded defaults, in one process.

A broker (Mosquitto when installed, else the embedded amqtt broker), SQLite under
``var/demo``, the local SMS sink that prints every SMS, the dispatcher with its API,
simulated homes that press buttons now and then, and a slow virtual operator, so
that the first escalation steps can be seen before calls are acknowledged.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from dispatcher import logs
from dispatcher.bootstrap import build, run, run_main, stop_on_signals
from dispatcher.config import Settings
from simulator.broker import port_accepts, start_broker
from simulator.phone_network.server import SinkMessage, SmsSinkServer, format_sms_line

log = structlog.get_logger(__name__)

DEMO_DIR = Path("var/demo")
DEMO_TOKEN = "demo-operator-token"  # a demo credential from config/data/staff.csv
# The virtual operator answers after the second step (60 s) has gone out.
ACK_AFTER_S = 75.0
RESOLVE_AFTER_S = 30.0


def main_demo(config_path: str | None, homes: int) -> int:
    logs.configure(json=False)
    return run_main(config_path, lambda settings: _demo(settings, homes))


async def _demo(base: Settings, homes: int) -> None:
    from simulator.homes import HomesConfig, run_homes
    from simulator.operator import run_virtual_operator

    stop = asyncio.Event()
    stop_on_signals(stop)

    await asyncio.to_thread(DEMO_DIR.mkdir, parents=True, exist_ok=True)
    port = None if port_accepts("127.0.0.1", 1883) else 1883  # 1883 when it is free
    broker = await start_broker(DEMO_DIR / "broker", port=port)
    sink = SmsSinkServer(
        account_sid=base.sms.account_sid, auth_token=base.sms.auth_token, on_message=_print_sms
    )
    await asyncio.to_thread(sink.start)
    settings = base.model_copy(
        update={
            "mqtt": base.mqtt.model_copy(
                update={
                    "url": broker.url,
                    "protocol": broker.protocol,
                    # amqtt keeps the sessions of clients that log in with a name.
                    "username": base.mqtt.username or "eldercall-dispatcher",
                }
            ),
            "sms": base.sms.model_copy(update={"provider": "twilio", "api_base": sink.url}),
            "database": base.database.model_copy(
                update={"url": f"sqlite+aiosqlite:///{DEMO_DIR / 'eldercall.db'}"}
            ),
        }
    )
    app = await build(settings)
    device_ids = [r.device_id for r in app.directory.residents.values()][:homes]
    homes_config = HomesConfig(
        broker_url=broker.url,
        topic_root=settings.mqtt.topic_root,
        homes=len(device_ids),
        device_ids=device_ids,
        protocol=broker.protocol,
        # Livelier than real life, so that something happens every minute or so.
        press_per_h=6.0,
        accident_per_h=2.0,
        fall_per_h=1.0,
        burst_per_h=1.0,
        heartbeat_s=60.0,
    )
    _banner(settings, broker.url, broker.kind, sink.url, len(device_ids))
    try:
        await asyncio.gather(
            run(app, stop),
            run_homes(homes_config, stop),
            run_virtual_operator(
                settings.http.base_url, DEMO_TOKEN, ACK_AFTER_S, RESOLVE_AFTER_S, stop
            ),
        )
    finally:
        await app.aclose()
        await asyncio.to_thread(sink.stop)
        await broker.stop()
        print("Eldercall demo stopped.", flush=True)


def _print_sms(message: SinkMessage) -> None:
    print(f"  📱 {format_sms_line(message)}", flush=True)


def _banner(settings: Settings, broker_url: str, kind: str, sink_url: str, homes: int) -> None:
    api = settings.http.base_url
    print(
        f"""
Eldercall demo is running (Ctrl-C stops everything).

  Console         {api}/console/         (demo-operator / demo-operator-password, demo credentials)
  Operator API    {api}/api/v1/docs      (token: {DEMO_TOKEN}, a demo credential)
  MQTT broker     {broker_url} ({kind}), topics under {settings.mqtt.topic_root}/
  SMS sink        {sink_url}/sink/messages   (every SMS is also printed below)
  Database        {settings.database.url}
  Simulated homes {homes}, and a virtual operator who answers after {ACK_AFTER_S:.0f} s

Try, in another terminal:
  export ELDERCALL_API_URL={api} ELDERCALL_API_TOKEN={DEMO_TOKEN}
  .venv/bin/eldercall calls
  .venv/bin/eldercall show CALL_ID
  .venv/bin/eldercall ack CALL_ID
  .venv/bin/eldercall oncall
  mosquitto_sub -p {broker_url.rsplit(":", 1)[1]} -t '{settings.mqtt.topic_root}/#' -v
""",
        flush=True,
    )
