"""Staff accounts for the console: the lockout after repeated failures, the life of
a session, what a password must be. Pure rules that take ``now``; hashing and
storage are the service's ports (``dispatcher.services.accounts``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

# Five wrong passwords within a quarter of an hour lock the account for a quarter of
# an hour: enough for a tired operator's typos, far too few to guess a password.
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)
# A session lasts one long shift (12 h) at most: the next shift logs in afresh.
SESSION_LIFETIME = timedelta(hours=12)
MIN_PASSWORD = 12
MAX_PASSWORD = 256  # argon2 takes anything; a megabyte "password" is an attack


@dataclass(frozen=True)
class Credential:
    """A staff member's password hash and the count of recent failures."""

    staff_id: str
    password_hash: str
    set_at: datetime
    failures: int = 0
    first_failure_at: datetime | None = None
    locked_until: datetime | None = None

    def locked_at(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def after_failure(self, now: datetime) -> Credential:
        """The credential after one more wrong password at ``now``: failures counted
        within the window, locked once there are ``MAX_FAILURES`` of them."""
        window_open = self.first_failure_at is not None and now - self.first_failure_at < (
            FAILURE_WINDOW
        )
        failures = self.failures + 1 if window_open else 1
        first = self.first_failure_at if window_open else now
        if failures >= MAX_FAILURES:
            # Locked: the count starts again when the lock ends.
            return replace(self, failures=0, first_failure_at=None, locked_until=now + LOCKOUT)
        return replace(self, failures=failures, first_failure_at=first)

    def after_success(self) -> Credential:
        return replace(self, failures=0, first_failure_at=None, locked_until=None)


@dataclass(frozen=True)
class Session:
    """A signed-in browser: the token's hash (the token itself is only in the
    cookie), the CSRF token its forms carry, and when it ends."""

    token_hash: str
    staff_id: str
    csrf_token: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None

    def valid_at(self, now: datetime) -> bool:
        return self.revoked_at is None and self.created_at <= now < self.expires_at


def session_ends(created_at: datetime) -> datetime:
    return created_at + SESSION_LIFETIME


def password_problem(password: str, staff_id: str) -> str | None:
    """Why ``password`` may not be set, or None if it may."""
    if len(password) < MIN_PASSWORD:
        return f"a password needs at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"a password has at most {MAX_PASSWORD} characters"
    if password.strip() != password:
        return "a password may not start or end with a space"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in password):
        return "a password may not contain control characters"
    if password.casefold() == staff_id.casefold():
        return "a password may not be the staff id"
    return None
