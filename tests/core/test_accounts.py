"""The lockout, the session's life and the password rules: pure, on given instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dispatcher.core.accounts import (
    LOCKOUT,
    MAX_FAILURES,
    SESSION_LIFETIME,
    Credential,
    Session,
    password_problem,
    session_ends,
)

T0 = datetime(2030, 3, 4, 8, 0, tzinfo=UTC)


def fail(credential: Credential, times: int, start: datetime, every: timedelta) -> Credential:
    for n in range(times):
        credential = credential.after_failure(start + n * every)
    return credential


def test_five_failures_within_the_window_lock_the_account_for_the_lockout() -> None:
    locked = fail(Credential("ann", "h", T0), MAX_FAILURES, T0, timedelta(minutes=1))
    last = T0 + (MAX_FAILURES - 1) * timedelta(minutes=1)
    assert locked.locked_until == last + LOCKOUT
    assert locked.locked_at(last + LOCKOUT - timedelta(seconds=1))
    assert not locked.locked_at(last + LOCKOUT)


def test_one_failure_short_does_not_lock() -> None:
    c = fail(Credential("ann", "h", T0), MAX_FAILURES - 1, T0, timedelta(minutes=1))
    assert c.failures == MAX_FAILURES - 1
    assert not c.locked_at(T0 + timedelta(minutes=5))


def test_failures_spread_beyond_the_window_never_lock() -> None:
    c = fail(Credential("ann", "h", T0), 20, T0, timedelta(minutes=16))
    assert c.locked_until is None
    assert c.failures == 1


def test_a_success_clears_the_count() -> None:
    c = fail(Credential("ann", "h", T0), MAX_FAILURES - 1, T0, timedelta(seconds=10))
    c = c.after_success().after_failure(T0 + timedelta(minutes=1))
    assert c.failures == 1 and c.locked_until is None


def test_a_session_lasts_its_lifetime_unless_revoked() -> None:
    s = Session("t", "ann", "csrf", created_at=T0, expires_at=session_ends(T0))
    assert s.valid_at(T0) and s.valid_at(T0 + SESSION_LIFETIME - timedelta(seconds=1))
    assert not s.valid_at(T0 + SESSION_LIFETIME)
    assert not s.valid_at(T0 - timedelta(seconds=1))  # a clock stepped back
    revoked = Session("t", "ann", "csrf", T0, session_ends(T0), revoked_at=T0)
    assert not revoked.valid_at(T0 + timedelta(minutes=1))


def test_password_rules() -> None:
    assert password_problem("correct horse battery", "ann") is None
    assert password_problem("short", "ann") == "a password needs at least 12 characters"
    assert "space" in (password_problem(" leading space pw", "ann") or "")
    assert "control" in (password_problem("has\x00a nul in it", "ann") or "")
    assert "staff id" in (password_problem("demo-operator", "demo-operator") or "")
    assert password_problem("x" * 257, "ann") is not None
