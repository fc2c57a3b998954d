"""Run an MQTT broker for ``make run`` and for the tests.

Mosquitto is the broker we ship and test against: :class:`MosquittoProcess` runs one
as a child process on a loopback port with a generated config. On a machine without
Mosquitto, ``make run`` falls back to :class:`EmbeddedBroker`, an amqtt broker inside
our own asyncio process, which is good enough for a demo but not a stand-in for
Mosquitto (see its docstring). :func:`start_broker` picks one.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import structlog
from amqtt.plugins.base import BaseAuthPlugin

log = structlog.get_logger(__name__)

# Mosquitto's default of 1000 silently drops QoS 1 messages queued for an offline or
# slow persistent session (measured: 35k of 50k lost). An emergency must never be
# dropped by the broker, so every config we write sets it high.
MAX_QUEUED_MESSAGES = 1_000_000
MAX_INFLIGHT_MESSAGES = 100
READY_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 5.0


class BrokerError(RuntimeError):
    """The broker could not be started (the message carries the tail of its log)."""


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary, or None. Debian puts it in /usr/sbin, often not on PATH."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (the usual small race is acceptable for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_accepts(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port`` right now."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


_accepts = port_accepts  # the name simulator.demo imports


class MosquittoProcess:
    """A Mosquitto broker in a child process, listening on 127.0.0.1 only.

    ``data_dir`` holds the generated ``mosquitto.conf``, the persistence file
    (``mosquitto.db``) and the log (``mosquitto.log``). The port stays the same across
    :meth:`restart`, so clients reconnect to the same url. ``extra_config`` lines are
    appended to the config (e.g. ``password_file``/``acl_file`` for ACL tests).
    """

    host = "127.0.0.1"

    def __init__(
        self,
        data_dir: Path | str,
        port: int | None = None,
        *,
        binary: str | None = None,
        extra_config: str = "",
    ) -> None:
        self.data_dir = Path(data_dir)
        self._port = port or free_port(self.host)
        self._binary = binary or find_mosquitto()
        self._extra_config = extra_config
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self._port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "mosquitto.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def config_text(self) -> str:
        lines = [
            f"listener {self._port} {self.host}",
            "allow_anonymous true",
            "persistence true",
            # The trailing slash matters: mosquitto concatenates location and file name.
            f"persistence_location {self.data_dir}/",
            "persistence_file mosquitto.db",
            f"max_queued_messages {MAX_QUEUED_MESSAGES}",
            "max_queued_bytes 0",
            f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            # Without it every forwarded answer waits about 40 ms for Nagle (neither
            # mosquitto nor paho sets TCP_NODELAY). (use_username_as_clientid, which
            # config/mosquitto.conf sets, is not here: this broker's clients are
            # anonymous, and mosquitto refuses clients without a username under it.)
            "set_tcp_nodelay true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        ]
        if os.geteuid() == 0:
            # As root, mosquitto drops to the `mosquitto` user, which cannot even reach
            # pytest's 0700 tmp folders; chown-ing those is not enough. This broker only
            # listens on loopback, so staying root is the lesser evil here.
            lines.append("user root")
        text = "\n".join(lines) + "\n"
        if self._extra_config:
            text += self._extra_config.rstrip("\n") + "\n"
        return text

    def start(self) -> None:
        """Start the broker; return once its port accepts connections."""
        if self.running:
            return
        if self._binary is None:
            raise BrokerError(
                "mosquitto is not installed: apt-get install mosquitto mosquitto-clients"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text())
        out = (self.data_dir / "mosquitto.out").open("ab")
        try:
            self._proc = subprocess.Popen(
                [self._binary, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own process group: a Ctrl-C in the terminal reaches us, and we
                # stop it with SIGTERM so it saves its persistence file.
                start_new_session=True,
            )
        finally:
            out.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(
                    f"mosquitto exited with code {self._proc.returncode} at start\n"
                    + self.log_tail()
                )
            if port_accepts(self.host, self._port):
                log.info("mosquitto_started", port=self._port, pid=self._proc.pid)
                return
            time.sleep(0.01)
        self.kill()
        raise BrokerError(
            f"mosquitto did not accept connections on port {self._port} "
            f"within {READY_TIMEOUT_S} s\n" + self.log_tail()
        )

    def stop(self) -> None:
        """Stop with SIGTERM, so that mosquitto writes its persistence file."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Stop with SIGKILL, like a crash: what was not yet saved is lost."""
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _end(self, sig: signal.Signals) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.info("mosquitto_stopped", port=self._port, signal=sig.name)

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for path in (self.log_path, self.data_dir / "mosquitto.out"):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                if tail:
                    parts.append(f"--- {path.name} ---\n" + "\n".join(tail))
        return "\n".join(parts) or "(mosquitto wrote no log)"

    def __enter__(self) -> MosquittoProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AcceptAnyAuth(BaseAuthPlugin):  # type: ignore[misc]
    """amqtt auth plugin: let every client in, and never mark a session anonymous.

    amqtt drops the session of an anonymous client at disconnect, losing the QoS 1
    messages queued for it, which breaks a device's persistent session. Its own
    ``AnonymousAuthPlugin`` avoids that only for clients that send a username; this
    plugin keeps sessions for everyone, which is what a loopback demo broker wants.
    """

    async def authenticate(self, *, session: object) -> bool:
        return True


class RunningBroker(Protocol):
    """What :func:`start_broker` returns."""

    @property
    def url(self) -> str: ...

    @property
    def kind(self) -> Literal["mosquitto", "amqtt"]: ...

    @property
    def protocol(self) -> Literal[4, 5]:
        """The newest MQTT protocol level it speaks: 5 (MQTT 5) or 4 (MQTT 3.1.1)."""
        ...

    async def stop(self) -> None: ...


class EmbeddedBroker:
    """An amqtt broker running inside this asyncio process: the zero-install demo broker.

    Limits, as measured (see the field notes): MQTT 3.1.1 only, so clients must use
    protocol 4; no shared subscriptions; about 3x slower than Mosquitto; nothing is
    persisted, so sessions, queued messages and retained messages live only as long as
    the process. Sessions of every client are kept across disconnects (see
    :class:`AcceptAnyAuth`), so a device's queued acks and commands survive its outage.
    """

    host = "127.0.0.1"
    kind: Literal["amqtt"] = "amqtt"
    protocol: Literal[4] = 4

    def __init__(self, port: int | None = None) -> None:
        self._port = port or free_port(self.host)
        self._broker: object | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self._port}"

    def config(self) -> dict[str, object]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self._port}"}},
            "plugins": {f"{__name__}.AcceptAnyAuth": {}},
        }

    async def start(self) -> None:
        from amqtt.broker import Broker

        broker = Broker(self.config())
        await broker.start()
        self._broker = broker
        log.info("amqtt_started", port=self._port)

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()  # type: ignore[attr-defined]
            log.info("amqtt_stopped", port=self._port)


@dataclass
class _RunningMosquitto:
    process: MosquittoProcess
    kind: Literal["mosquitto"] = "mosquitto"
    protocol: Literal[5] = 5

    @property
    def url(self) -> str:
        return self.process.url

    async def stop(self) -> None:
        await asyncio.to_thread(self.process.stop)


async def start_broker(
    data_dir: Path | str,
    port: int | None = None,
    prefer: Literal["auto", "mosquitto", "amqtt"] = "auto",
) -> RunningBroker:
    """Start Mosquitto when it is installed (or asked for), else the embedded amqtt broker."""
    if prefer == "mosquitto" or (prefer == "auto" and find_mosquitto() is not None):
        process = MosquittoProcess(data_dir, port)
        await asyncio.to_thread(process.start)
        return _RunningMosquitto(process)
    if prefer == "auto":
        log.warning(
            "mosquitto_not_found",
            fallback="amqtt",
            hint="apt-get install mosquitto for MQTT 5 and persistence",
        )
    embedded = EmbeddedBroker(port)
    await embedded.start()
    return embedded
