"""The database: tables, the mapping of the domain's Call onto them, and the engine.

SQLite by default, PostgreSQL in production; the schema is created by Alembic
(``dispatcher/adapters/db/migrations``). Times are stored as naive UTC and come back aware.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
)
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import registry

from dispatcher.core.calls import Call, CallKind, CallState, Priority, TimelineEntry
from dispatcher.core.escalation import Policy


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class PolicyJSON(TypeDecorator[Policy]):
    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Policy | None, dialect: Dialect) -> str | None:
        return None if value is None else _policy_text(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Policy | None:
        return None if value is None else _policy_of(value)


# Every call row carries its policy, and a district has a handful of policies: each
# read parsed and checked the same JSON again (3.5 % of the daemon's CPU in a burst
# of 10,000 presses). A Policy is immutable, so one object serves every row of it.
@functools.lru_cache(maxsize=256)
def _policy_of(text: str) -> Policy:
    return Policy.from_json(json.loads(text))


@functools.lru_cache(maxsize=256)
def _policy_text(policy: Policy) -> str:
    return json.dumps(policy.to_json())


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

calls = Table(
    "calls",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("device_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("state", String(24), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("policy", PolicyJSON, nullable=False),
    Column("escalation_started_at", UTCDateTime, nullable=False),
    Column("next_escalation_at", UTCDateTime, nullable=True),
    Column("escalation_step", Integer, nullable=False, default=0),
    Column("resident_id", String(64), nullable=True),
    Column("community_id", String(64), nullable=True),
    Column("unknown_device", Boolean, nullable=False, default=False),
    Column("press_count", Integer, nullable=False, default=1),
    Column("detail", Text, nullable=False, default=""),
    Column("alert_key", String(32), nullable=True),
    Column("acknowledged_at", UTCDateTime, nullable=True),
    Column("acknowledged_by", String(64), nullable=True),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("resolved_by", String(64), nullable=True),
    Column("outcome", String(32), nullable=True),
    Column("note", Text, nullable=True),
    Column("updated_at", UTCDateTime, nullable=True),
    # The first answer (service levels, dispatcher.core.reports); NULL until answered.
    Column("answered_at", UTCDateTime, nullable=True),
    Column("answered_by", String(100), nullable=True),
    Column("answered_channel", String(16), nullable=True),
    Column("answered_level", String(16), nullable=True),
    # The acknowledgement timeout (dispatcher.core.calls, migration 0003_policy).
    Column("held_by", String(64), nullable=True),
    Column("ack_timeout_at", UTCDateTime, nullable=True),
    Column("ack_step", Integer, nullable=False, default=0, server_default="0"),
    Column("next_ack_escalation_at", UTCDateTime, nullable=True),
    # The step a repeated press already brought forward (migration 0009_escalation_clock).
    Column("brought_forward_step", Integer, nullable=True),
    # The supervisor watchdog (dispatcher.core.watchdog, migration 0017_watchdog).
    Column("watchdog_at", UTCDateTime, nullable=True),
    Column("watchdog_pages", Integer, nullable=False, default=0, server_default="0"),
    Column("watchdog_paged_at", UTCDateTime, nullable=True),
    Index("ix_calls_device_state", "device_id", "state"),
    Index("ix_calls_next_escalation_at", "next_escalation_at"),
    Index("ix_calls_opened_at", "opened_at"),  # service-level reports by period
    Index("ix_calls_next_ack_escalation_at", "next_ack_escalation_at"),
    Index("ix_calls_watchdog_at", "watchdog_at"),
)

timeline = Table(
    "timeline",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(32), ForeignKey("calls.id"), nullable=False, index=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("detail", Text, nullable=False, default=""),
)

# Every accepted device event, stored before it is answered. (device_id, ref) is
# what makes a resent event a duplicate rather than a second call.
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=False),
    Column("ref", String(64), nullable=False),
    Column("type", String(24), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("device_ts", String(40), nullable=True),
    Column("battery", Integer, nullable=True),
    Column("rssi", Integer, nullable=True),
    Column("fw", String(64), nullable=True),
    Column("payload", Text, nullable=False),
    Column("call_id", String(32), nullable=True),
    UniqueConstraint("device_id", "ref", name="uq_events_device_ref"),
)

# What could not be accepted: not JSON, no usable ref, or invalid (answered "invalid").
# ``raw`` keeps the first 4 KiB (dispatcher.adapters.db.intake_store); ``raw_length``
# and ``raw_sha256`` say what the whole was (migration 0007_fit_columns; NULL before).
rejected_messages = Table(
    "rejected_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("topic", String(300), nullable=False),
    Column("device_id", String(64), nullable=True, index=True),
    Column("ref", String(64), nullable=True),
    Column("raw", LargeBinary, nullable=False),
    Column("reason", Text, nullable=False),
    Column("answered", Boolean, nullable=False),
    Column("raw_length", Integer, nullable=True),
    Column("raw_sha256", String(64), nullable=True),
)

# The SMS outbox: one row per message to one person, with the provider's status.
sms_outbox = Table(
    "sms_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(32), ForeignKey("calls.id"), nullable=False, index=True),
    Column("step", Integer, nullable=False),
    Column("recipient", String(100), nullable=False),
    Column("to_number", String(32), nullable=False),
    Column("body", Text, nullable=False),
    # pending → sending → sent (→ provider statuses) | failed | cancelled
    Column("status", String(16), nullable=False),
    Column("provider_sid", String(64), nullable=True),
    # The provider's own word on the message: Twilio's "queued", later "delivered"...
    Column("provider_status", String(16), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("claimed_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("error", Text, nullable=True),
    # Delivery (0003): which channel ("sms" or "voice"), which of the person's contact
    # methods this is (1 first), their language, the reply code the message carries,
    # the short line naming the call in a bundled SMS, the row whose message carried
    # this one when several were bundled, Twilio's error code and AnsweredBy.
    Column("channel", String(8), nullable=False, default="sms", server_default="sms"),
    Column("method_order", Integer, nullable=False, default=1, server_default="1"),
    Column("language", String(8), nullable=False, default="zh", server_default="zh"),
    Column("reply_code", Integer, nullable=True),
    Column("summary", Text, nullable=True),
    Column("bundle_id", Integer, nullable=True),
    Column("error_code", Integer, nullable=True),
    Column("answered_by", String(32), nullable=True),
    # Which of the call's step numberings ``step`` counts (0009_escalation_clock):
    # "escalation" or "ack_timeout"; NULL on a fallback's row and on older rows.
    Column("timer", String(16), nullable=True),
    # Claims (0010): the dispatcher instance that claimed the entry (a restart hands
    # back every claim of another instance at once), and when the provider request of
    # the current attempt began (None: not handed to the provider yet; set, the
    # message may have left, so sending it again after a crash may duplicate it).
    Column("claimed_by", String(64), nullable=True),
    Column("requested_at", UTCDateTime, nullable=True),
    Index("ix_sms_outbox_status_next", "status", "next_attempt_at"),
    # A number's message in flight on a channel: one seek (see migration 0019).
    Index("ix_sms_outbox_number_channel_status", "to_number", "channel", "status"),
)

# Messages for devices (call updates, config), published when the broker is reachable.
device_outbox = Table(
    "device_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("published_at", UTCDateTime, nullable=True, index=True),
)

# Per-day sequence for call ids (C-20261128-0007), in the directory's time zone.
call_sequences = Table(
    "call_sequences",
    metadata,
    Column("day", String(8), primary_key=True),
    Column("last", Integer, nullable=False),
)

# The link supervision state of each device that has been heard from.
device_links = Table(
    "device_links",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("heartbeat_s", Integer, nullable=True),
    Column("status", String(8), nullable=False, default="online"),
    Column("status_at", UTCDateTime, nullable=False),
    Column("battery", Integer, nullable=True),
    # The fleet (0018_fleet): power lost since, the last end-to-end test, test mode.
    Column("power_lost_at", UTCDateTime, nullable=True),
    Column("last_test_at", UTCDateTime, nullable=True),
    Column("test_mode_until", UTCDateTime, nullable=True),
)

# Per-phone short numbers for calls, for SMS replies such as "7A"
# (dispatcher.adapters.db.reply_codes).
reply_codes = Table(
    "reply_codes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("phone", String(32), nullable=False),
    Column("number", Integer, nullable=False),
    Column("call_id", String(32), ForeignKey("calls.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("active", Boolean, nullable=False),
    # The number a phone already has for a call, and a call's numbers to retire; three
    # columns, so that SQLite (no statistics) prefers it to the next for that look-up.
    Index("ix_reply_codes_call_id_phone_active", "call_id", "phone", "active"),
    # A phone's active numbers in order: the highest (the next new number is one
    # more) and find() without reading the phone's other rows (migration 0010).
    Index("ix_reply_codes_phone_active_number", "phone", "active", "number"),
)

# Each phone's free reply numbers below its highest active one: numbers retired since
# (dispatcher.adapters.db.reply_codes), so that the smallest free number is one index
# look-up, not a read of every number the phone holds (migration 0010).
reply_code_free = Table(
    "reply_code_free",
    metadata,
    Column("phone", String(32), primary_key=True),
    Column("number", Integer, primary_key=True),
)

# Rota overrides made through the API (dispatcher.services.rota_overrides); the
# file's are in rota.toml.
rota_overrides = Table(
    "rota_overrides",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("area_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # replace, add, remove
    Column("staff_id", String(64), nullable=False),
    Column("replaces", String(64), nullable=True),
    Column("role", String(16), nullable=True),
    Column("start_at", UTCDateTime, nullable=False),
    Column("end_at", UTCDateTime, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

mapper_registry = registry(metadata=metadata)
_mapped = False


def map_domain() -> None:
    """Map the domain's dataclasses onto the tables (once per process)."""
    global _mapped
    if _mapped:
        return
    mapper_registry.map_imperatively(Call, calls)
    mapper_registry.map_imperatively(TimelineEntry, timeline)
    _mapped = True

    @event.listens_for(Call, "load")
    def _enums(target: Call, _ctx: Any) -> None:
        target.kind = CallKind(target.kind)
        target.priority = Priority(target.priority)
        target.state = CallState(target.state)


# Marks a session that only reads: ``sessions(execution_options=READ_ONLY_SESSION)``.
READ_ONLY = "eldercall_read_only"
READ_ONLY_SESSION = {READ_ONLY: True}


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **_sqlite_driver(url))
        _sqlite_pragmas(engine)
        return engine
    return create_async_engine(url, pool_pre_ping=True)


def _sqlite_driver(url: str) -> dict[str, Any]:
    """aiosqlite with one trip to its thread per statement (see .sqlite_driver)."""
    if make_url(url).get_driver_name() != "aiosqlite":
        return {}
    from dispatcher.adapters.db.sqlite_driver import OneTripDBAPI

    return {"module": OneTripDBAPI()}


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, begin transactions (see _begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before we answer the device.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: two transactions that read then
        # write can never deadlock on the upgrade; the second simply waits. A session
        # that only reads (READ_ONLY) begins deferred instead: in WAL mode it takes no
        # lock, so it neither waits for the writers nor makes them wait (the intake's
        # batches, the escalator and both outboxes all write). It must never write.
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    map_domain()
    return async_sessionmaker(engine, expire_on_commit=False)


__all__ = [
    "READ_ONLY",
    "READ_ONLY_SESSION",
    "call_sequences",
    "calls",
    "device_links",
    "device_outbox",
    "events",
    "make_engine",
    "make_sessionmaker",
    "map_domain",
    "metadata",
    "rejected_messages",
    "reply_code_free",
    "reply_codes",
    "rota_overrides",
    "sms_outbox",
    "staff_credentials",
    "staff_sessions",
    "timeline",
]

# The one dispatcher allowed to run on this database (dispatcher.services.instance_lock):
# one row (name "dispatcher"), its owner and a lease the running daemon renews. Two
# dispatchers on one database answer each other's devices; the second refuses to start.
dispatcher_lock = Table(
    "dispatcher_lock",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("instance_id", String(64), nullable=False),
    Column("client_id", String(255), nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime, nullable=False),
)

# Twilio webhooks already acted on, by their sid (an inbound SMS's MessageSid), with
# the answer given: a replay, even after a restart, gets the same answer and acts no more.
handled_webhooks = Table(
    "handled_webhooks",
    metadata,
    Column("sid", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("answer", Text, nullable=False),
    Column("handled_at", UTCDateTime, nullable=False),
)

# Console accounts (dispatcher.services.accounts): a staff member's argon2 password
# hash with the count of recent failures behind the lockout, and the signed-in
# sessions by the SHA-256 of their cookie's token (the token itself is never stored).
staff_credentials = Table(
    "staff_credentials",
    metadata,
    Column("staff_id", String(64), primary_key=True),
    Column("password_hash", String(255), nullable=False),
    Column("set_at", UTCDateTime, nullable=False),
    Column("failures", Integer, nullable=False, default=0),
    Column("first_failure_at", UTCDateTime, nullable=True),
    Column("locked_until", UTCDateTime, nullable=True),
)

staff_sessions = Table(
    "staff_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("staff_id", String(64), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
)

# Responders sent to a call (dispatcher.core.dispatches): who, by whom, when expected;
# ``overdue_due_at`` is polled by the escalator's cycle (NULL once it fired or ended).
dispatches = Table(
    "dispatches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(32), ForeignKey("calls.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("responder_kind", String(16), nullable=False),
    Column("responder_ref", String(100), nullable=False, default=""),
    Column("responder_name", String(100), nullable=False),
    Column("responder_phone", String(32), nullable=True),
    Column("dispatched_by", String(100), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("dispatched_at", UTCDateTime, nullable=False),
    Column("expected_at", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False),
    Column("overdue_due_at", UTCDateTime, nullable=True),
    Column("overdue_at", UTCDateTime, nullable=True),
    Column("arrived_at", UTCDateTime, nullable=True),
    Column("arrived_by", String(100), nullable=True),
    Column("ended_at", UTCDateTime, nullable=True),
    Column("ended_by", String(100), nullable=True),
    Column("note", Text, nullable=False, default=""),
    Column("notice_id", Integer, nullable=True),
    Column("alert_id", Integer, nullable=True),
    UniqueConstraint("call_id", "number", name="uq_dispatches_call_id_number"),
    Index("ix_dispatches_overdue_due_at", "overdue_due_at"),
)

# The registry (dispatcher.services.registry, migration 0016_registry): the district's
# areas, staff, residents with their contacts, devices with the history of whom each
# served, and service providers; seeded once from the data folder, then changed
# through the API, each change a row of registry_audit (who, when, before, after).
# Contact methods are JSON lists of {"kind", "number"} in order.
areas = Table(
    "areas",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("level", String(16), nullable=False),
    Column("name", Text, nullable=False),
    Column("parent_id", String(64), nullable=True),
)

staff = Table(
    "staff",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("phone", String(32), nullable=True),
    Column("area_id", String(64), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("language", String(8), nullable=False),
    Column("api_token", String(128), nullable=True, unique=True),
    Column("contact_methods", Text, nullable=False),
)

residents = Table(
    "residents",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("birth_date", Date, nullable=False),
    Column("address", Text, nullable=False),
    Column("community_id", String(64), nullable=False, index=True),
    Column("phone", String(32), nullable=True),
    Column("mobile", String(32), nullable=True),
    Column("notes", Text, nullable=False),
    Column("sex", String(1), nullable=False),
    Column("id_card", String(18), nullable=False),
    Column("building", Text, nullable=False),
    Column("unit", Text, nullable=False),
    Column("room", Text, nullable=False),
    Column("language", String(8), nullable=False),
    Column("conditions", Text, nullable=False),
    Column("medication", Text, nullable=False),
    Column("mobility", Text, nullable=False),
    Column("key_safe", Text, nullable=False),
    Column("access_notes", Text, nullable=False),
    Column("key_resident", String(32), nullable=False),
)

resident_contacts = Table(
    "resident_contacts",
    metadata,
    Column("resident_id", String(64), primary_key=True),
    Column("position", Integer, primary_key=True),  # 1 is called first
    Column("name", Text, nullable=False),
    Column("relation", Text, nullable=False),
    Column("phone", String(32), nullable=False),
    Column("language", String(8), nullable=False),
    Column("key_holder", Boolean, nullable=False),
    Column("contact_methods", Text, nullable=False),
)

devices = Table(
    "devices",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("model", Text, nullable=False),
    Column("firmware", Text, nullable=False),
    Column("installed_on", Date, nullable=True),
    Column("installed_by", Text, nullable=False),
    Column("resident_id", String(64), nullable=True, index=True),
    Column("notes", Text, nullable=False),
    Column("retired_at", UTCDateTime, nullable=True),
)

device_assignments = Table(
    "device_assignments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=False, index=True),
    Column("resident_id", String(64), nullable=False),
    Column("start_at", UTCDateTime, nullable=False),
    Column("end_at", UTCDateTime, nullable=True),
    Column("by", String(64), nullable=False),
)

providers = Table(
    "providers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("service", Text, nullable=False),
    Column("phone", String(32), nullable=True),
    Column("area_id", String(64), nullable=False, index=True),
    Column("contact", Text, nullable=False),
    Column("notes", Text, nullable=False),
)

registry_audit = Table(
    "registry_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False, index=True),
    Column("actor", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("record_id", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    Column("area_id", String(64), nullable=True),
    Column("before", Text, nullable=True),
    Column("after", Text, nullable=True),
    Index("ix_registry_audit_kind_record", "kind", "record_id"),
)
