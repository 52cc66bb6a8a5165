"""A cap on the API port's request bodies, and on the time they take to arrive.

The OTLP/HTTP port had both; the API port read any body whole, at any pace: an
800 MB body to /api/sql was taken (the server grew by 1.8 GB), and 2,047 bodies
that stalled held every connection, /healthz answering 503, for as long as their
clients liked (security review). The longest query the SQL sandbox takes
(``MAX_SQL_CHARS``), JSON-escaped, fits well within the cap.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import ClientDisconnect

from flowscope.collector.errors import RequestTooLarge
from flowscope.collector.http_receiver import BodyTimeout, read_body

MAX_API_BODY_BYTES = 1024 * 1024


class BodyLimit:
    """Reads a request's body before the app does (``http_receiver.read_body``, as the
    OTLP/HTTP port does): 413 past ``limit`` bytes, 408 when it stops coming. The app
    is handed the body read; after it, the client's own messages (its disconnect)."""

    def __init__(self, app: Any, limit: int = MAX_API_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is None and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body
            return

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect()
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        text = None if declared is None else declared.decode("latin-1").strip()
        try:
            body = await read_body(chunks(), text, self.limit)
        except RequestTooLarge as exc:
            await _refuse(send, 413, str(exc))
            return
        except BodyTimeout as exc:
            await _refuse(send, 408, str(exc))
            return
        except ClientDisconnect:
            return  # gone before its body ended: nobody to answer
        handed = False

        async def replay() -> Any:
            nonlocal handed
            if not handed:
                handed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _refuse(send: Any, status: int, message: str) -> None:
    """The API's error shape; the connection is closed, as the rest of the body is unread."""
    content = json.dumps({"detail": {"message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": content, "more_body": False})
