"""Console logins on a real database (both backends), the real argon2 hasher and the
example data's demo passwords (config/data/passwords.csv); time from the fake clock."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from dispatcher.adapters.db import schema as db
from dispatcher.bootstrap import App
from dispatcher.core.accounts import LOCKOUT, MAX_FAILURES, SESSION_LIFETIME
from dispatcher.services.accounts import LoginRefusedError, PasswordRejectedError
from dispatcher.testing import FakeClock
from tests.support.app import built_app


async def test_the_demo_operator_logs_in_with_the_demo_password(app: App) -> None:
    new = await app.accounts.login("demo-operator", "demo-operator-password")
    assert new.staff.id == "demo-operator"
    signed_in = await app.accounts.signed_in(new.token)
    assert signed_in is not None and signed_in.staff.id == "demo-operator"
    assert signed_in.csrf_token == new.csrf_token
    # Only the token's hash is stored, never the token.
    async with app.sessions() as s:
        stored = list(await s.execute(select(db.staff_sessions.c.token_hash)))
    assert [r.token_hash for r in stored] != [new.token] and len(stored) == 1


async def test_every_example_staff_member_has_a_demo_password(app: App) -> None:
    for staff_id in ("ma-lin", "sun-li", "zhao-min"):
        new = await app.accounts.login(staff_id, f"{staff_id}-password")
        assert new.staff.id == staff_id


async def test_a_wrong_password_and_an_unknown_id_get_the_same_refusal(app: App) -> None:
    with pytest.raises(LoginRefusedError) as wrong:
        await app.accounts.login("demo-operator", "not-the-password")
    with pytest.raises(LoginRefusedError) as unknown:
        await app.accounts.login("nobody-here", "not-the-password")
    assert str(wrong.value) == str(unknown.value) == "wrong staff id or password"


async def test_repeated_failures_lock_even_the_right_password_out_until_the_lock_ends(
    app: App, clock: FakeClock
) -> None:
    for _ in range(MAX_FAILURES):
        with pytest.raises(LoginRefusedError):
            await app.accounts.login("wang-fang", "wrong password!")
    with pytest.raises(LoginRefusedError) as refused:
        await app.accounts.login("wang-fang", "wang-fang-password")
    assert str(refused.value) == "account locked"
    assert refused.value.locked_until is not None
    clock.advance(LOCKOUT.total_seconds())
    assert (await app.accounts.login("wang-fang", "wang-fang-password")).staff.id == "wang-fang"


async def test_a_session_expires_and_a_logout_ends_it(app: App, clock: FakeClock) -> None:
    first = await app.accounts.login("demo-operator", "demo-operator-password")
    second = await app.accounts.login("demo-operator", "demo-operator-password")
    await app.accounts.logout(first.token)
    assert await app.accounts.signed_in(first.token) is None
    assert await app.accounts.signed_in(second.token) is not None  # the other browser
    clock.advance(SESSION_LIFETIME.total_seconds())
    assert await app.accounts.signed_in(second.token) is None
    assert await app.accounts.signed_in("made-up-token") is None


async def test_setting_a_password_ends_every_session_and_survives_a_restart(
    app: App, clock: FakeClock
) -> None:
    old = await app.accounts.login("li-qiang", "li-qiang-password")
    assert await app.accounts.set_password("li-qiang", "a much better passphrase") == 1
    assert await app.accounts.signed_in(old.token) is None
    with pytest.raises(LoginRefusedError):
        await app.accounts.login("li-qiang", "li-qiang-password")
    # The demo hash in the data folder does not overwrite it at the next start.
    restarted = await built_app(app.settings, clock)
    try:
        new = await restarted.accounts.login("li-qiang", "a much better passphrase")
        assert new.staff.id == "li-qiang"
    finally:
        await restarted.aclose()


async def test_a_weak_password_or_an_unknown_id_is_refused_and_changes_nothing(app: App) -> None:
    with pytest.raises(PasswordRejectedError, match="at least 12"):
        await app.accounts.set_password("li-qiang", "short")
    with pytest.raises(PasswordRejectedError, match="no staff member"):
        await app.accounts.set_password("nobody-here", "a long enough password")
    assert (await app.accounts.login("li-qiang", "li-qiang-password")).staff.id == "li-qiang"
