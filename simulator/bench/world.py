"""The world a benchmark scenario runs in: a generated district, the daemon, the sink.

- :func:`write_district` writes a data folder of ``n`` registered devices (one resident
  each, in the CSV formats of ``dispatcher/adapters/files/directory_files.py``) with one
  hotline operator on duty around the clock, so every step notifies one person.
- :class:`Daemon` runs ``eldercall run`` as a child process with a generated config
  (free HTTP port, a unique MQTT client id, its own topic root) and knows its RSS.
- :class:`SinkProcess` runs the local Twilio-compatible sink in a process of its own,
  so that its work never competes with the publishers for this process's GIL.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulator.broker import free_port, port_accepts
from simulator.phone_network.state import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

OPERATOR_PHONE = "+8613800138000"
COMMUNITIES = ("c-1", "c-2", "c-3", "c-4")
# The start-up probe is sent again this often until answered: one sent before the daemon
# subscribed is lost, and a scenario should not wait a second for the next.
PROBE_EVERY_S = 0.2


def device_id(n: int) -> str:
    return f"bench-{n:06d}"


def write_district(folder: Path, devices: int) -> Path:
    """A data folder with ``devices`` registered residents and a 24/7 hotline."""
    folder.mkdir(parents=True, exist_ok=True)
    areas = ["id,level,name,parent", "d-b,district,Bench district,", "s-1,street,Bench street,d-b"]
    areas += [f"{c},community,Community {c},s-1" for c in COMMUNITIES]
    (folder / "areas.csv").write_text("\n".join(areas) + "\n", encoding="utf-8")
    (folder / "staff.csv").write_text(
        "id,name,phone,area,role,language,api_token\n"
        f"bench-operator,Bench operator,{OPERATOR_PHONE},d-b,operator,en,bench-operator-token\n",
        encoding="utf-8",
    )
    with (folder / "residents.csv").open("w", encoding="utf-8") as out:
        out.write("id,name,birth_date,address,community,device_id,phone,notes\n")
        for n in range(devices):
            community = COMMUNITIES[n % len(COMMUNITIES)]
            out.write(
                f"r-{n:06d},Resident {n},1940-01-01,Street {n},{community},{device_id(n)},,\n"
            )
    (folder / "contacts.csv").write_text(
        "resident,order,name,relation,phone,language\n", encoding="utf-8"
    )
    (folder / "rota.toml").write_text(
        '[[schedule]]\narea = "d-b"\n\n[[schedule.rule]]\n'
        'days = "mon-sun"\nstart = "00:00"\nend = "24:00"\nstaff = "bench-operator"\n',
        encoding="utf-8",
    )
    return folder


@dataclass(frozen=True)
class Policy:
    """The generated emergency policy: every step notifies the hotline by SMS."""

    delays_s: tuple[int, ...] = (0, 600)
    repeat_every_s: int = 3600

    def toml(self) -> str:
        steps = ",\n".join(
            f'  {{ delay_s = {d}, targets = ["hotline"], channels = ["sms"] }}'
            for d in self.delays_s
        )
        return (
            "[escalation.policies.emergency]\n"
            f"repeat_every_s = {self.repeat_every_s}\nsteps = [\n{steps},\n]\n"
        )


class Daemon:
    """``eldercall run`` in a child process, with its own config, log and topic root."""

    def __init__(
        self,
        folder: Path,
        *,
        broker_url: str,
        db_url: str,
        data_dir: Path,
        sink_url: str,
        policy: Policy,
    ) -> None:
        self.folder = folder
        self.root = f"bench-{uuid.uuid4().hex[:8]}/v1"
        self.client_id = f"bench-dispatcher-{uuid.uuid4().hex[:10]}"
        self.broker_url = broker_url
        self.db_url = db_url
        self.config = folder / "eldercall.toml"
        self.log = folder / "daemon.log"
        self.config.write_text(
            f"""[mqtt]
url = "{broker_url}"
topic_root = "{self.root}"
client_id = "{self.client_id}"
[database]
url = "{db_url}"
[sms]
provider = "twilio"
account_sid = "{DEFAULT_ACCOUNT_SID}"
auth_token = "{DEFAULT_AUTH_TOKEN}"
from_number = "+8610000000000"
api_base = "{sink_url}"
[http]
listen = "127.0.0.1:{free_port()}"
[data]
dir = "{data_dir}"
timezone = "Asia/Shanghai"
[escalation]
poll_interval_s = 0.25
{policy.toml()}
[rota]
startup_check_days = 0
""",
            encoding="utf-8",
        )
        self._proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.ready_s: float | None = None  # start to first answer, once wait_ready saw it

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("daemon not started")
        return self._proc.pid

    def start(self) -> None:
        self.started_at = time.time()
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from dispatcher.entrypoints.cli.main import main; raise SystemExit(main())",
                    *("run", "--config", str(self.config)),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )

    def wait_ready(self, timeout: float) -> float | None:
        """Press a probe (a ``cancel``, which opens nothing) until the daemon answers it;
        the seconds from start to that answer, or None by ``timeout``."""
        probe = f"bench-probe-{uuid.uuid4().hex[:6]}"
        answered: list[float] = []
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{probe}-c")
        client.on_message = lambda _c, _u, _m: answered.append(time.time())
        host, port = _host_port(self.broker_url)
        client.connect(host, port)
        client.loop_start()
        try:
            client.subscribe(f"{self.root}/dev/{probe}/ack", qos=1)
            deadline = time.time() + timeout
            n = 0
            while time.time() < deadline and not answered:
                if self._proc is not None and self._proc.poll() is not None:
                    return None  # it died: the log says why
                body = json.dumps({"ref": f"probe-{n}", "type": "cancel"})
                client.publish(f"{self.root}/dev/{probe}/event", body, qos=1)
                n += 1
                waited = time.time() + PROBE_EVERY_S
                while time.time() < min(waited, deadline) and not answered:
                    time.sleep(0.01)
            self.ready_s = answered[0] - self.started_at if answered else None
            return self.ready_s
        finally:
            client.loop_stop()
            client.disconnect()

    def rss_kib(self) -> int | None:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    def cpu_s(self) -> float | None:
        """CPU time the daemon has used (user and system, Linux): a cost per message
        that a busy shared machine does not change as much as it changes a rate."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{self.pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return None

    def log_tail(self, lines: int = 15) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s (a daemon deep in a backlog may not stop
        promptly); then wipe its persistent session, so the broker stops queueing for it."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _terminate(proc)
        with contextlib.suppress(OSError, ValueError):
            host, port = _host_port(self.broker_url)
            wipe = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=self.client_id,
                protocol=mqtt.MQTTv5,
            )
            wipe.connect(host, port, clean_start=True)
            wipe.loop_start()
            time.sleep(0.2)
            wipe.disconnect()
            wipe.loop_stop()


class SinkProcess:
    """``python -m simulator.phone_network.server`` on a free port, in its own process."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.log = folder / "sink.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "simulator.phone_network.server", "--port", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.time() + 20
        while not port_accepts("127.0.0.1", self.port):
            if self._proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the SMS sink did not start; see {self.log}")
            time.sleep(0.02)

    def messages(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/sink/messages", timeout=60) as answer:
            found: list[dict[str, Any]] = json.load(answer)
            return found

    def clear(self) -> None:
        request = urllib.request.Request(f"{self.url}/sink/messages", method="DELETE")
        with urllib.request.urlopen(request, timeout=30):
            pass

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _terminate(proc)


def _terminate(proc: subprocess.Popen[bytes], within: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited ``within`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(within)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _host_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[-1]
    host, _, port = rest.partition(":")
    return host, int(port or 1883)
