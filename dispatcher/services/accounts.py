"""Staff log in to the console: passwords checked against their argon2 hashes, the
lockout kept in the database, sessions that expire and can be revoked.

Each step is one transaction. Hashing is slow on purpose (tens of milliseconds of
CPU), so the hasher runs in a worker thread and the event loop keeps answering
devices meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog

from dispatcher.core import accounts as rules
from dispatcher.core.accounts import Credential, Session
from dispatcher.core.directory import Directory, Staff
from dispatcher.core.directory_holder import DirectoryHolder, ReadsDirectory, hold
from dispatcher.services.clock import Clock
from dispatcher.services.ports import Transactions

log = structlog.get_logger(__name__)


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str, password: str) -> bool:
        """True when ``password`` matches; False (never an exception) when not."""
        ...

    def needs_rehash(self, password_hash: str) -> bool: ...


class AccountStore(Protocol):
    async def credential(self, staff_id: str) -> Credential | None: ...

    async def save_credential(self, credential: Credential) -> None:
        """Insert or replace the staff member's credential."""
        ...

    async def add_session(self, session: Session) -> None: ...

    async def session(self, token_hash: str) -> Session | None: ...

    async def revoke_session(self, token_hash: str, now: datetime) -> None: ...

    async def revoke_sessions_of(self, staff_id: str, now: datetime) -> int:
        """Revoke every live session of the staff member; how many there were."""
        ...


class LoginRefusedError(Exception):
    """Wrong id or password (which of the two is not said), or a locked account."""

    def __init__(self, message: str, locked_until: datetime | None = None) -> None:
        super().__init__(message)
        self.locked_until = locked_until


class PasswordRejectedError(ValueError):
    """A password that may not be set, or a staff member who does not exist."""


@dataclass(frozen=True)
class SignedIn:
    """A live session: who, the CSRF token its forms carry, when it ends."""

    staff: Staff
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class NewSession(SignedIn):
    token: str  # for the cookie: the database keeps only its hash


def token_hash(token: str) -> str:
    # The tokens are 256 random bits: a plain hash is enough (no salt, no stretching),
    # and a stolen database holds no usable session.
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts(ReadsDirectory):
    def __init__(
        self,
        tx: Transactions[AccountStore],
        directory: Directory | DirectoryHolder,
        clock: Clock,
        hasher: PasswordHasher,
    ) -> None:
        self._tx = tx
        self._directories = hold(directory)
        self._clock = clock
        self._hasher = hasher
        # Verified against when the id is unknown, so that an unknown id takes as
        # long to refuse as a wrong password (no hint of who has an account); made
        # at the first such login, not at start-up.
        self._dummy_hash: str | None = None

    async def seed(self, hashes: dict[str, str]) -> int:
        """Give the staff who have no password yet the hash from the data folder
        (the demo passwords); a password set since is kept. How many were given."""
        now = self._clock.now()
        given = 0
        async with self._tx.begin() as store:
            for staff_id, password_hash in hashes.items():
                if staff_id in self._directory.staff and await store.credential(staff_id) is None:
                    await store.save_credential(Credential(staff_id, password_hash, set_at=now))
                    given += 1
        return given

    async def login(self, staff_id: str, password: str) -> NewSession:
        staff = self._directory.staff.get(staff_id)
        async with self._tx.read() as store:
            credential = await store.credential(staff_id) if staff else None
        if staff is None or credential is None:
            if self._dummy_hash is None:
                self._dummy_hash = await asyncio.to_thread(self._hasher.hash, "not a password")
            await asyncio.to_thread(self._hasher.verify, self._dummy_hash, password)
            raise LoginRefusedError("wrong staff id or password")
        now = self._clock.now()
        if credential.locked_at(now):
            raise LoginRefusedError("account locked", credential.locked_until)
        matches = await asyncio.to_thread(self._hasher.verify, credential.password_hash, password)
        now = self._clock.now()
        refused: Credential | None = None
        opened: tuple[str, Session] | None = None
        async with self._tx.begin() as store:
            # Read again in the writing transaction: two tries at once both count.
            current = await store.credential(staff_id) or credential
            if not matches:
                refused = current.after_failure(now)
                await store.save_credential(refused)
            elif current.locked_at(now):  # locked by other tries while this one hashed
                refused = current
            else:
                opened = await self._open_session(store, current, password, now)
        # Refused outside the transaction, which must commit the failure it counted.
        if opened is None:
            locked = refused is not None and refused.locked_at(now)
            log.warning("login_failed", staff_id=staff_id, locked=locked)
            if refused is not None and locked:
                raise LoginRefusedError("account locked", refused.locked_until)
            raise LoginRefusedError("wrong staff id or password")
        token, record = opened
        log.info("login", staff_id=staff_id)
        return NewSession(staff, record.csrf_token, record.expires_at, token)

    async def _open_session(
        self, store: AccountStore, credential: Credential, password: str, now: datetime
    ) -> tuple[str, Session]:
        """After a right password: the count cleared (the hash renewed if its
        parameters are old) and a new session stored; the token and its record."""
        succeeded = credential.after_success()
        if self._hasher.needs_rehash(succeeded.password_hash):
            hashed = await asyncio.to_thread(self._hasher.hash, password)
            succeeded = Credential(credential.staff_id, hashed, set_at=now)
        if succeeded != credential:
            await store.save_credential(succeeded)
        token = secrets.token_urlsafe(32)
        session = Session(
            token_hash=token_hash(token),
            staff_id=credential.staff_id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=rules.session_ends(now),
        )
        await store.add_session(session)
        return token, session

    async def signed_in(self, token: str) -> SignedIn | None:
        """The live session of a cookie's token, or None (unknown, expired, revoked,
        or its staff member no longer in the directory)."""
        if not token:
            return None
        async with self._tx.read() as store:
            session = await store.session(token_hash(token))
        if session is None or not session.valid_at(self._clock.now()):
            return None
        staff = self._directory.staff.get(session.staff_id)
        if staff is None:
            return None
        return SignedIn(staff, session.csrf_token, session.expires_at)

    async def logout(self, token: str) -> None:
        async with self._tx.begin() as store:
            await store.revoke_session(token_hash(token), self._clock.now())

    async def set_password(self, staff_id: str, password: str) -> int:
        """Set a staff member's password; every session they had ends (how many).
        Raises :class:`PasswordRejectedError` for a weak password or unknown id."""
        if staff_id not in self._directory.staff:
            raise PasswordRejectedError(f"no staff member {staff_id!r} in the directory")
        problem = rules.password_problem(password, staff_id)
        if problem:
            raise PasswordRejectedError(problem)
        hashed = await asyncio.to_thread(self._hasher.hash, password)
        now = self._clock.now()
        async with self._tx.begin() as store:
            await store.save_credential(Credential(staff_id, hashed, set_at=now))
            ended = await store.revoke_sessions_of(staff_id, now)
        log.info("password_set", staff_id=staff_id, sessions_ended=ended)
        return ended
