"""A cap on the size of a request's body, before anything reads it.

uvicorn sets no limit of its own, so one request of a few gigabytes (a mistake, or a
client gone wrong) would be read whole into the daemon's memory, which also takes the
devices' events: enough to stop the daemon, for everyone. Every request is held to
``DEFAULT_BYTES``; the registry's import, which carries a district's records (10,000
residents make some 10 MB of JSON), to ``IMPORT_BYTES``. A body over its cap is
answered 413 and read no further, whether its ``Content-Length`` says so at once or a
chunked body runs over on the way. Pure ASGI, so it also covers the console's forms
and Twilio's webhooks.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_BYTES = 1024 * 1024  # a form, a note, a rota override, a webhook: far less
IMPORT_BYTES = 64 * 1024 * 1024
LARGER = {"/api/v1/registry/import": IMPORT_BYTES}


def limit_for(path: str) -> int:
    return LARGER.get(path.rstrip("/"), DEFAULT_BYTES)


class BodyLimit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit)
            return
        seen = 0
        started = refused = False

        async def counted() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Answered here; the application is told the client has gone, so it
                    # reads no more, and whatever it answers is dropped.
                    refused = True
                    if not started:
                        await _refuse(send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted, watched)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps(
        {"detail": f"the request's body is over {limit:,} bytes, the most this path takes"}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
