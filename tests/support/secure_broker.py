"""A real Mosquitto running the shipped ``config/mosquitto.conf`` (its listeners moved
to free loopback ports, its paths into the test's folder) with the accounts and ACL
that ``eldercall devices`` writes, and a throwaway CA and server certificate made with
the ``openssl`` command line (Debian's), for the TLS listener."""

from __future__ import annotations

import os
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dispatcher.config import load_settings
from dispatcher.entrypoints.cli.devices import provisioning
from dispatcher.services.provisioning import Provisioning
from simulator.broker import MosquittoProcess, free_port
from tests.support.ports import isolated_endpoints_toml

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config" / "mosquitto.conf"


def make_certificates(folder: Path) -> Path:
    """ca.crt, server.crt and server.key for 127.0.0.1 and localhost in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    ca = ["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=eldercall test CA"]
    openssl("req", "-x509", *ec, *ca)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    sign = ["-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-extfile", "san.ext"]
    openssl("x509", "-req", "-in", "server.csr", "-out", "server.crt", "-days", "2", *sign)
    return folder


class ShippedMosquitto(MosquittoProcess):
    """config/mosquitto.conf as shipped, but for its ports and paths."""

    def __init__(self, data_dir: Path, state_dir: Path, certs: Path) -> None:
        super().__init__(data_dir)
        self.tls_port = free_port(self.host)
        self.state_dir = state_dir
        self.certs = certs

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "mosquitto.pid"

    @property
    def tls_url(self) -> str:
        return f"mqtts://{self.host}:{self.tls_port}"

    def config_text(self) -> str:
        text = SHIPPED.read_text(encoding="utf-8")
        moves = {
            "listener 8883\n": f"listener {self.tls_port} {self.host}\n",
            "listener 1883 127.0.0.1\n": f"listener {self.port} {self.host}\n",
            "/etc/mosquitto/certs/": f"{self.certs}/",
            "/var/lib/eldercall/broker/": f"{self.state_dir}/",
            "persistence_location /var/lib/mosquitto/": f"persistence_location {self.data_dir}/",
        }
        for shipped, here in moves.items():
            assert shipped in text, f"config/mosquitto.conf no longer has {shipped!r}"
            text = text.replace(shipped, here)
        text += f"pid_file {self.pid_file}\nlog_dest file {self.log_path}\nlog_type all\n"
        if os.geteuid() == 0:
            text += "user root\n"  # as MosquittoProcess, for pytest's 0700 folders
        return text


@dataclass
class Secured:
    broker: ShippedMosquitto
    config: Path  # an eldercall.toml whose [broker] is this broker's
    provisioning: Provisioning

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.broker.certs / "ca.crt"))


def secured_broker(tmp_path: Path, extra_toml: str = "") -> Secured:
    """The accounts' files first (Mosquitto refuses to start without them), then the
    broker; the caller starts and kills it."""
    state = tmp_path / "broker-state"
    broker = ShippedMosquitto(tmp_path / "mosquitto", state, make_certificates(tmp_path / "certs"))
    config = tmp_path / "eldercall.toml"
    config.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "x.db"}"\n'
        f"{isolated_endpoints_toml()}{extra_toml}"
        f'[broker]\nstate_dir = "{state}"\npid_file = "{broker.pid_file}"\n',
        encoding="utf-8",
    )
    load_settings(str(config))  # fails here, clearly, on a bad test configuration
    return Secured(broker, config, provisioning(str(config)))
