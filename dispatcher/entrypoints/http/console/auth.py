"""Who is signed in to the console, and the checks every form post passes.

The session cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's
page sends it), Secure when the console is served over HTTPS, and limited to the
console's path. Every post also carries the session's CSRF token (a hidden field or
the ``X-CSRF-Token`` header of the page's script), compared in constant time; the
login form, which has no session yet, carries a double-submit token instead.
"""

from __future__ import annotations

import hmac
from datetime import datetime

from fastapi import Request, Response

from dispatcher.services.accounts import Accounts, SignedIn

SESSION_COOKIE = "eldercall_session"
LOGIN_CSRF_COOKIE = "eldercall_login_csrf"
LANGUAGE_COOKIE = "eldercall_lang"
CONSOLE = "/console"


class NotSignedInError(Exception):
    """No live session: a page sends the browser to the login form."""


class BadCsrfError(Exception):
    """A post without the right CSRF token: refused, nothing changed."""


def accounts_of(request: Request) -> Accounts:
    accounts: Accounts = request.state.accounts
    return accounts


def is_https(request: Request) -> bool:
    # Behind a TLS-terminating proxy the scheme is what the proxy forwarded
    # (uvicorn's proxy headers), so the cookie is Secure there too.
    return request.url.scheme == "https"


async def current(request: Request) -> SignedIn:
    signed_in = await accounts_of(request).signed_in(request.cookies.get(SESSION_COOKIE, ""))
    if signed_in is None:
        raise NotSignedInError
    request.state.staff_id = signed_in.staff.id
    return signed_in


def check_csrf(request: Request, signed_in: SignedIn, form_token: str | None) -> None:
    sent = form_token or request.headers.get("x-csrf-token") or ""
    if not hmac.compare_digest(sent.encode(), signed_in.csrf_token.encode()):
        raise BadCsrfError


def set_session_cookie(
    response: Response, request: Request, token: str, expires_at: datetime, now: datetime
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max(0, int((expires_at - now).total_seconds())),
        path=CONSOLE,
        httponly=True,
        secure=is_https(request),
        samesite="strict",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=CONSOLE, httponly=True, samesite="strict")


def set_login_csrf(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path=CONSOLE,
        httponly=True,
        secure=is_https(request),
        samesite="strict",
    )


def check_login_csrf(request: Request, form_token: str) -> None:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), form_token.encode()):
        raise BadCsrfError
