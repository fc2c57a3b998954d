"""Configuration: one TOML file, every key overridable by ``ELDERCALL_<SECTION>__<KEY>``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from devices.protocol import DEFAULT_TOPIC_ROOT
from dispatcher.core.escalation import DEFAULT_POLICIES, KINDS, Policy
from dispatcher.core.policy_reader import PolicyReader


class MqttSettings(BaseModel):
    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: str | None = None
    topic_root: str = DEFAULT_TOPIC_ROOT
    client_id: str = "eldercall-dispatcher"
    # 5 (MQTT 5) or 4 (MQTT 3.1.1)
    protocol: Literal[4, 5] = 5
    # Seconds a persistent session survives the dispatcher being away (MQTT 5).
    session_expiry_s: int = 7 * 24 * 3600
    # MQTT 5: how many unacknowledged messages the broker may send us at once (the
    # broker's max_inflight_messages otherwise, 100 in the configs we ship). Messages
    # are acknowledged only once stored, so this is how far ahead the intake can see
    # to take an emergency before the flood in front of it.
    receive_maximum: int = Field(default=20_000, ge=1, le=65535)
    # mqtts://: the CA that signed the broker's certificate (a private CA); None: the
    # system's trusted CAs.
    ca_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("must look like mqtt://host:port or mqtts://host:port")
        return value

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"


class DatabaseSettings(BaseModel):
    url: str = "sqlite+aiosqlite:///var/eldercall.db"


class SmsSettings(BaseModel):
    provider: Literal["twilio", "log"] = "log"
    account_sid: str = "AC00000000000000000000000000000000"
    auth_token: str = "local-sink-token"
    # Twilio's secondary auth token, also accepted on webhooks while the token is rotated.
    auth_token_secondary: str = ""
    from_number: str = "+8610000000000"
    api_base: str = "https://api.twilio.com"
    # Delivery: at most one SMS per phone number per throttle_s for service requests
    # and technical alerts (emergencies and falls are never held back); how often an
    # unanswered voice call (busy, no answer, voicemail) is tried again before the
    # person's next contact method; how often a temporary failure reported by a status
    # callback (30003 unreachable handset...) is retried before moving on.
    throttle_s: float = Field(default=60.0, ge=0)
    voice_retries: int = Field(default=1, ge=0)
    callback_retries: int = Field(default=3, ge=0)
    # Sending: how many numbers' messages may be in flight at once (one request each),
    # and how long one provider request may take before it counts as a temporary
    # failure (retried); a request that hangs holds only its own slot, this long.
    # 64: with 16 the requests' round trips, not the CPU, held 10,000 calls' SMS back.
    max_in_flight: int = Field(default=64, ge=1, le=256)
    request_timeout_s: float = Field(default=10.0, gt=0, le=120)


class HttpSettings(BaseModel):
    listen: str = "127.0.0.1:8080"
    # At most this many open HTTP connections (uvicorn's limit_concurrency answers the
    # rest 503): well below a systemd unit's 1,024 open files, so that idle or slow
    # HTTP clients can never take the file descriptors MQTT intake needs.
    max_connections: int = Field(default=200, ge=1)
    # An idle keep-alive connection is closed after this many seconds.
    keep_alive_s: float = Field(default=5.0, gt=0)
    # The base URL Twilio reaches us at (https://centre.example.org) when a proxy stands in
    # front: Twilio signs that URL. None: the request's own URL.
    public_url: str | None = None

    @field_validator("public_url")
    @classmethod
    def _public_base(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ValueError("must look like https://host[:port][/path]")
        return value.rstrip("/")

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError("must be host:port")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"


class BrokerSettings(BaseModel):
    """Mosquitto's accounts, written by ``eldercall devices`` (dispatcher.services.provisioning)."""

    # Where the provisioned accounts (accounts.json), the password file (passwd) and
    # the ACL (acl) are written; mosquitto.conf's password_file and acl_file point here.
    state_dir: Path = Path("var/broker")
    # Mosquitto's pid_file: it is sent SIGHUP to reload the accounts and the ACL
    # without a restart. None: not signalled (reload it yourself).
    pid_file: Path | None = None
    # The dispatcher's MQTT account (its [mqtt] username): never a device's id.
    dispatcher_username: str = "eldercall-dispatcher"
    # The daemon revokes a device's account itself when the registry retires it (it
    # must then be able to write state_dir and signal the broker of pid_file).
    follow_registry: bool = False


class DataSettings(BaseModel):
    dir: Path = Path("config/data")
    timezone: str = "Asia/Shanghai"
    # How often the daemon looks whether rota.toml or policies.toml changed, in seconds
    # (a stat per file; read and checked only when changed). 0: read at start only.
    reload_interval_s: float = Field(default=5.0, ge=0)


class EscalationSettings(BaseModel):
    # How often the due-escalation and outbox pollers look, in seconds. They are
    # also woken at once by new work; the poll is what survives a restart.
    poll_interval_s: float = Field(default=1.0, gt=0)
    # How long one escalator transaction may go on taking due calls (seconds, 0: no
    # limit); the rest fire in the next transaction at once. It bounds how long the
    # escalator holds SQLite's write lock that device answers wait for.
    step_budget_s: float = Field(default=0.25, ge=0)
    # An alarm's first step (emergency, fall) fired in the intake's own transaction, so
    # that its SMS leaves at that commit, not after a poll and a transaction of its own.
    # Off: the escalator's poll fires every step, the first included.
    first_step_in_intake: bool = True
    # Policies replacing the built-in ones (dispatcher.core.escalation), by call kind,
    # written as in config/data/policies.toml but without ack_timeout and watchdog (the
    # file's or built-in ones stay), and checked by the same reader
    # (dispatcher.core.policy_reader) with the same messages.
    policies: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("policies")
    @classmethod
    def _policies(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        _read_policies(value)  # a ValueError lists every problem
        return value

    def resolved_policies(self) -> dict[str, Policy]:
        out = dict(DEFAULT_POLICIES)
        # The acknowledgement timeout is the built-in one (or policies.toml's).
        out.update(_read_policies(self.policies))
        return out


def _read_policies(raw: dict[str, Any]) -> dict[str, Policy]:
    """``[escalation.policies]`` by kind; a ValueError names each problem's key."""
    problems: list[str] = []

    def report(table: tuple[str, ...], problem: str) -> None:
        problems.append(f"[{'.'.join(('escalation', 'policies', *table))}] {problem}")

    reader = PolicyReader(report, ack_timeout=False, watchdog=False)
    out: dict[str, Policy] = {}
    for kind, value in raw.items():
        if kind not in KINDS:
            report((kind,), f"unknown call kind (one of {', '.join(KINDS)})")
            continue
        policy = reader.policy(value, (kind,), DEFAULT_POLICIES[kind], name=kind)
        if policy is not None:
            out[kind] = policy
    if problems:
        raise ValueError("; ".join(problems))
    return out


class DeviceModelSettings(BaseModel):
    heartbeat_s: int = Field(ge=10)  # the interval devices of this model are asked for


class DeviceSettings(BaseModel):
    heartbeat_s: int = 3600  # the interval devices are asked for
    missed_heartbeats: int = 3  # a device silent this many intervals raises an alert
    offline_grace_s: int = 300  # a Last Will offline not followed by a return within this
    rejected_alert_threshold: int = 5  # rejected messages from one device in an hour
    check_interval_s: float = Field(default=30.0, gt=0)  # how often links are checked
    # The fleet (README "The fleet"). The interval per device model (devices.csv names
    # each device's model): [devices.models.<model>] heartbeat_s = 600.
    models: dict[str, DeviceModelSettings] = Field(default_factory=dict)
    # This many power_lost within power_cut_window_s in one building (or community):
    # one grouped alert for the place.
    power_cut_building_devices: int = Field(default=3, ge=2)
    power_cut_community_devices: int = Field(default=10, ge=2)
    power_cut_window_s: int = Field(default=60, ge=1)
    test_mode_minutes: int = Field(default=30, ge=1, le=24 * 60)  # an installer's test mode
    untested_after_days: int = Field(default=30, ge=1)  # the report lists devices not tested
    silent_after_hours: int = Field(default=24, ge=1)  # ... and those silent this long
    # The report and the boards list batteries at or below this (in %).
    low_battery_pct: int = Field(default=20, ge=0, le=100)

    def heartbeat_for(self, model: str | None) -> int:
        """The interval a device of ``model`` is asked for and supervised against."""
        found = self.models.get(model) if model else None
        return found.heartbeat_s if found is not None else self.heartbeat_s

    @property
    def shortest_heartbeat_s(self) -> int:
        return min([self.heartbeat_s, *(m.heartbeat_s for m in self.models.values())])


class IntakeQueueSettings(BaseModel):
    """How device messages are taken in (dispatcher.adapters.mqtt.gateway)."""

    # One transaction for up to this many messages; a batch starts with whatever is
    # queued, after waiting at most batch_wait_s for more. Alarms come first in it,
    # and at most batch_max_others of the rest: an alarm arriving while a batch of
    # technical events or heartbeats is being stored waits for no more than that.
    batch_max: int = Field(default=500, ge=1)
    batch_max_others: int = Field(default=100, ge=1)
    batch_wait_s: float = Field(default=0.002, ge=0, le=1)
    # Every device's non-alarm messages: this many a second, in bursts of at most
    # flood_burst; beyond, they are acknowledged and dropped, counted in one
    # rejected_messages row per device per flood_summary_s. Alarms are never dropped.
    flood_rate: float = Field(default=2.0, gt=0)
    flood_burst: int = Field(default=60, ge=1)
    flood_summary_s: float = Field(default=60.0, gt=0)
    # How often the contacts held in memory (heartbeats) are written to device_links.
    contacts_flush_s: float = Field(default=5.0, gt=0)


class InstanceSettings(BaseModel):
    # The lease on the database that keeps a second dispatcher from running beside
    # this one (dispatcher.services.instance_lock): renewed every renew_every_s; a
    # lease not renewed for lease_s (a crashed daemon) may be taken over.
    lease_s: float = Field(default=30.0, gt=0)
    renew_every_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _renewed_in_time(self) -> InstanceSettings:
        if self.renew_every_s >= self.lease_s:
            raise ValueError("renew_every_s must be shorter than lease_s")
        return self


class RotaSettings(BaseModel):
    # The daemon refuses to start when the command centre has nobody on duty at some
    # time in this many days from now (0: no check).
    startup_check_days: int = Field(default=28, ge=0, le=366)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ELDERCALL_", env_nested_delimiter="__", extra="forbid"
    )

    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    sms: SmsSettings = Field(default_factory=SmsSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    escalation: EscalationSettings = Field(default_factory=EscalationSettings)
    devices: DeviceSettings = Field(default_factory=DeviceSettings)
    intake: IntakeQueueSettings = Field(default_factory=IntakeQueueSettings)
    rota: RotaSettings = Field(default_factory=RotaSettings)
    instance: InstanceSettings = Field(default_factory=InstanceSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments, then the environment, then the TOML file.
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names the file and the key."""


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Read ``path`` (TOML), then the environment over it, then ``overrides`` over both.

    Relative paths in ``[data] dir`` are taken from the current directory.
    """
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"{path}: no such configuration file")
    from_file = type(
        "Settings", (Settings,), {"model_config": {**Settings.model_config, "toml_file": path}}
    )
    try:
        settings: Settings = from_file(**overrides)
        return settings
    except Exception as exc:  # pydantic's ValidationError or a TOML syntax error
        raise ConfigError(f"{path or 'configuration'}: {exc}") from exc
