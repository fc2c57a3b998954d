"""One set of HTTP routes per process, served for each daemon built in it.

FastAPI analyses each route (its parameters, models and dependencies) the first time
an app matches a request against it: about 0.2 s of CPU for this API, again in every
app built, which the daemon pays once but the test suite paid for each of its
hundreds of apps. So the routes read the services they work with from
``request.state``, and an app of routes is built once per set of routes
(``dispatcher.entrypoints.http.app.create_app``). A :class:`Served` app puts one
daemon's services in each request's state: Starlette's own place for what an app
hands to its requests (uvicorn fills it from the lifespan state the same way, a
shallow copy per request).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send


class Served:
    """An ASGI app: ``routes`` with ``services`` in every request's ``request.state``."""

    def __init__(self, routes: ASGIApp, **services: Any) -> None:
        self.routes = routes
        self.services: dict[str, Any] = services
        self._at_close: list[Callable[[], Awaitable[None]]] = []

    def at_close(self, close: Callable[[], Awaitable[None]]) -> None:
        """``close`` runs when the server begins to stop (see :meth:`close`)."""
        self._at_close.append(close)

    async def close(self) -> None:
        """The server is stopping: end what would hold a connection open (the
        console's event streams), so that it need not wait out its graceful timeout."""
        for close in self._at_close:
            await close()

    def provide(self, **services: Any) -> None:
        """Serve these from the next request on (a directory swapped in, say)."""
        self.services = {**self.services, **services}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            # A copy per request: what a route sets on request.state stays its own.
            scope["state"] = {**scope.get("state", {}), **self.services}
        await self.routes(scope, receive, send)
