"""A cap on the API port's request bodies, and on the time they take to arrive.

The OTLP/HTTP port had both; the API port read any body whole, at any pace: an
800 MB body to /api/sql was taken (the server grew by 1.8 GB), and 2,047 bodies
that stalled held every connection, /healthz answering 503, for as long as their
clients liked (security review). The longest query the SQL sandbox takes
(``MAX_SQL_CHARS``), JSON-escaped, fits well within the cap.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from flowscope.collector.http_receiver import BODY_IDLE_S, BODY_TOTAL_S

MAX_API_BODY_BYTES = 1024 * 1024


class BodyLimit:
    """Reads a request's body before the app does: 413 past ``limit`` bytes, 408 when
    it stops coming for BODY_IDLE_S or is not whole within BODY_TOTAL_S. The app is
    handed the body read; after it, the client's own messages (its disconnect)."""

    def __init__(self, app: Any, limit: int = MAX_API_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"").strip()
        if not declared and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body
            return
        if declared.isdigit() and int(declared) > self.limit:
            await _refuse(send, 413, f"request body of {int(declared)} bytes; {self._limit_text}")
            return
        chunks: list[bytes] = []
        size = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BODY_TOTAL_S
        try:
            async with asyncio.timeout_at(min(loop.time() + BODY_IDLE_S, deadline)) as timer:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return  # gone before its body ended: nobody to answer
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.limit:
                        await _refuse(send, 413, f"request body over {self._limit_text}")
                        return
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
                    timer.reschedule(min(loop.time() + BODY_IDLE_S, deadline))
        except TimeoutError:
            why = (
                f"the request body took over {BODY_TOTAL_S:g} s"
                if loop.time() >= deadline
                else f"no part of the request body came for {BODY_IDLE_S:g} s"
            )
            await _refuse(send, 408, f"{why}; {size} bytes of it arrived")
            return
        body = b"".join(chunks)
        handed = False

        async def replay() -> Any:
            nonlocal handed
            if not handed:
                handed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @property
    def _limit_text(self) -> str:
        return f"the API's limit is {self.limit} bytes"


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
