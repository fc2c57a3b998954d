"""``GET /metrics``: every family by name, and values that follow what the daemon does
(events answered, SMS sent and reported on, steps fired, the outbox waiting), read from
the HTTP app as bootstrap wires it, on a real database and the fake clock."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from dispatcher.adapters.db import schema as db
from dispatcher.adapters.metrics.scrape import CACHE_S
from dispatcher.adapters.twilio.delivery_reports import read_delivery_report
from dispatcher.bootstrap import App
from dispatcher.testing import FakeChannelSender, FakeClock
from tests.support.app import built_app, event, settings_for
from tests.support.scrape import Scrape, http_client, scrape

TOPIC = "eldercall/v1/dev/{}/event"
FAMILIES = (
    "eldercall_build_info",
    "eldercall_answer_latency_seconds",
    "eldercall_intake_queue_depth",
    "eldercall_commit_batch_size",
    "eldercall_escalation_lateness_seconds",
    "eldercall_notifications",
    "eldercall_supervision_checks",
    "eldercall_metrics_database_up",
    "eldercall_calls_open",
    "eldercall_technical_alerts_open",
    "eldercall_outbox_oldest_pending_age_seconds",
    "eldercall_devices_silent",
    "eldercall_devices_offline",
)


async def press(app: App, device: str, kind: str, ref: str) -> str:
    ack = await app.intake.on_event(device, TOPIC.format(device), event(ref, kind))
    assert ack is not None and ack.call_id
    return ack.call_id


async def test_every_family_is_exposed_without_a_token(app: App) -> None:
    async with http_client(app) as client:
        seen = await scrape(client)
    missing = [name for name in FAMILIES if name not in seen.families]
    assert missing == []
    assert seen.value("eldercall_metrics_database_up") == 1.0
    info = seen.families["eldercall_build_info"].samples[0]
    assert info.labels["version"]


async def test_an_answered_event_is_one_latency_one_batch_and_an_open_call(
    app: App, clock: FakeClock
) -> None:
    latency = "eldercall_answer_latency_seconds_count"
    async with http_client(app) as client:
        before = await scrape(client)
        await press(app, "dev-0001", "emergency", "m1")
        clock.advance(CACHE_S)  # the database's figures are read again
        after = await scrape(client)
    labels = {"priority": "critical", "kind": "emergency"}
    assert before.count(latency, **labels) == 0
    assert after.count(latency, **labels) == 1
    assert after.count("eldercall_commit_batch_size_count") == 1
    # FakeClock stood still while the event was handled: no time passed on it.
    assert after.value("eldercall_answer_latency_seconds_sum", **labels) == 0.0
    assert before.value("eldercall_calls_open", priority="critical", state="open") is None
    assert after.value("eldercall_calls_open", priority="critical", state="open") == 1


async def test_an_invalid_event_is_answered_and_counted_as_invalid(app: App) -> None:
    async with http_client(app) as client:
        ack = await app.intake.on_event("dev-0001", TOPIC.format("dev-0001"), b'{"ref": "x1"}')
        seen = await scrape(client)
    assert ack is not None and ack.result.value == "invalid"
    labels = {"priority": "none", "kind": "invalid"}
    assert seen.count("eldercall_answer_latency_seconds_count", **labels) == 1


async def test_sent_failed_and_delivered_sms_are_counted_by_channel_and_result(
    app: App, fake_sms: FakeChannelSender
) -> None:
    notifications = "eldercall_notifications_total"
    await press(app, "dev-0001", "emergency", "s1")
    fired = await app.escalator.run_due()
    fake_sms.fail_next(1)  # the first of the step's SMS: a temporary failure
    await app.outbox.send_due()
    assert fake_sms.sent and fake_sms.failures  # the step had more than one person
    async with http_client(app) as client:
        sent = await scrape(client)
        first = fake_sms.sent[0]
        async with app.sessions() as s:
            row_id = await s.scalar(
                select(db.sms_outbox.c.id).where(db.sms_outbox.c.provider_sid == first.sid)
            )
        assert row_id is not None
        form = {"MessageSid": first.sid, "MessageStatus": "delivered"}
        assert await app.outbox.record_status(row_id, read_delivery_report(form))
        delivered = await scrape(client)
    assert sent.count(notifications, channel="sms", result="sent") == len(fake_sms.sent)
    assert sent.count(notifications, channel="sms", result="failed_temporary") == len(
        fake_sms.failures
    )
    assert sent.count(notifications, channel="sms", result="delivered") == 0
    assert delivered.count(notifications, channel="sms", result="delivered") == 1
    lateness = "eldercall_escalation_lateness_seconds_count"
    assert sent.count(lateness, timer="escalation") == fired


async def test_a_refused_sms_counts_as_failed_permanent(
    app: App, fake_sms: FakeChannelSender
) -> None:
    await press(app, "dev-0001", "emergency", "r1")
    await app.escalator.run_due()
    fake_sms.fail_next(1, permanent=True)
    await app.outbox.send_due()
    async with http_client(app) as client:
        seen = await scrape(client)
    refused = seen.count("eldercall_notifications_total", channel="sms", result="failed_permanent")
    assert refused == len(fake_sms.failures) == 1


async def test_the_oldest_pending_age_follows_the_clock_until_sent(
    app: App, clock: FakeClock
) -> None:
    age = "eldercall_outbox_oldest_pending_age_seconds"
    await press(app, "dev-0001", "emergency", "p1")
    assert await app.escalator.run_due()  # the first step queues its SMS, due now
    clock.advance(42)
    async with app.sessions() as s:
        due = await s.scalar(
            select(func.min(db.sms_outbox.c.next_attempt_at)).where(
                db.sms_outbox.c.status == "pending"
            )
        )
    assert due is not None
    async with http_client(app) as client:
        waiting = await scrape(client)
        expected = (clock.now() - due).total_seconds()
        await app.outbox.send_due()
        clock.advance(CACHE_S)  # past the scrape's cache
        sent = await scrape(client)
    assert expected > 0
    assert waiting.value(age) == expected
    assert sent.value(age) == 0


async def test_a_scrape_storm_reads_the_database_once_per_cache_period(
    app: App, clock: FakeClock
) -> None:
    def open_calls(seen: Scrape) -> float | None:
        return seen.value("eldercall_calls_open", priority="critical", state="open")

    await press(app, "dev-0001", "emergency", "c1")
    async with http_client(app) as client:
        first = await scrape(client)
        await press(app, "dev-0002", "emergency", "c2")
        same_instant = await scrape(client)
        clock.advance(CACHE_S)
        later = await scrape(client)
    assert open_calls(first) == 1
    assert open_calls(same_instant) == 1  # cached: the second call is not read yet
    assert open_calls(later) == 2


async def test_supervision_checks_and_silent_devices(app: App, clock: FakeClock) -> None:
    await app.intake.on_event("dev-0001", TOPIC.format("dev-0001"), event("h1", "heartbeat"))
    devices = app.settings.devices
    async with http_client(app) as client:
        heard = await scrape(client)
        clock.advance(devices.heartbeat_s * devices.missed_heartbeats + 1)
        await app.supervisor.check()
        silent = await scrape(client)
    assert heard.value("eldercall_devices_silent") == 0
    assert heard.count("eldercall_supervision_checks_total") == 0
    assert silent.value("eldercall_devices_silent") == 1
    assert silent.count("eldercall_supervision_checks_total") == 1
    assert silent.value("eldercall_technical_alerts_open", alert="heartbeat_missed") == 1


async def test_two_apps_in_one_process_count_apart(
    app: App, tmp_path: Path, clock: FakeClock
) -> None:
    other = await built_app(settings_for(tmp_path / "other"), clock)
    try:
        await press(app, "dev-0001", "emergency", "t1")
        async with http_client(other) as client:
            seen = await scrape(client)
    finally:
        await other.aclose()
    latency = "eldercall_answer_latency_seconds_count"
    assert seen.count(latency, priority="critical", kind="emergency") == 0


async def test_a_late_step_is_as_late_as_the_clock_says(app: App, clock: FakeClock) -> None:
    lateness = "eldercall_escalation_lateness_seconds"
    call_id = await press(app, "dev-0001", "emergency", "l1")
    assert await app.escalator.run_due()  # the first step, on time
    async with app.sessions() as s:
        due = await s.scalar(select(db.calls.c.next_escalation_at).where(db.calls.c.id == call_id))
    assert due is not None
    clock.set(due)
    late_by = clock.advance(7) - due  # a poll that came 7 s after the next step fell due
    async with http_client(app) as client:
        on_time = await scrape(client)
        assert await app.escalator.run_due()
        late = await scrape(client)
    before = on_time.count(f"{lateness}_sum", timer="escalation")
    assert late.count(f"{lateness}_count", timer="escalation") == 2
    assert late.count(f"{lateness}_sum", timer="escalation") - before == late_by.total_seconds()
