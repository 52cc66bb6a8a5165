"""A cap on the API port's request bodies, and on the time they take to arrive.

The OTLP/HTTP port had both; the API port read any body whole, at any pace: an
800 MB body to /api/sql was taken (the server grew by 1.8 GB), and 2,047 bodies
that stalled held every connection, /healthz answering 503, for as long as their
clients liked (security review). The longest query the SQL sandbox takes
(``MAX_SQL_CHARS``), JSON-escaped, fits well within the cap.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse

from flowscope.collector.errors import Overloaded, RequestTooLarge, Unavailable
from flowscope.collector.http_receiver import BodyBudget, BodyTimeout, body_chunks, read_body

MAX_API_BODY_BYTES = 1024 * 1024
# The bodies held at once, from their first byte until their answer, are at most this
# (beyond: 503, retry shortly); 2,047 connections of 1 MiB each would hold 2 GB.
API_BODIES_BUDGET_BYTES = 64 * 1024 * 1024


class BodyLimit:
    """Reads a request's body before the app does (``http_receiver.read_body``, as the
    OTLP/HTTP port does): 413 past ``limit`` bytes, 408 when it stops coming. The app
    is handed the body read; after it, the client's own messages (its disconnect)."""

    def __init__(self, app: Any, limit: int = MAX_API_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit
        self.bodies = BodyBudget(API_BODIES_BUDGET_BYTES)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            # Only /api/ routes take a body, and only after the token check; elsewhere
            # (POST /healthz: 405) it was read for nothing, 1 MiB a connection.
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is None and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body
            return

        text = None if declared is None else declared.decode("latin-1").strip()
        try:
            body = await read_body(body_chunks(scope, receive), text, self.limit, self.bodies)
        except RequestTooLarge as exc:
            await _refuse(send, 413, str(exc))
            return
        except BodyTimeout as exc:
            await _refuse(send, 408, str(exc))
            return
        except Overloaded as exc:
            await _refuse(send, 503, str(exc), {"Retry-After": str(exc.retry_after_s)})
            return
        except Unavailable as exc:  # the server stops while the body comes
            await _refuse(send, 503, str(exc), {"Retry-After": "1"})
            return
        except ClientDisconnect:
            # Gone before its body ended: the answer goes nowhere, but without one the
            # token middleware logged "No response returned" with a traceback.
            await _refuse(send, 400, "the client closed the connection during its body")
            return
        handed = False

        async def replay() -> Any:
            nonlocal handed
            if not handed:
                handed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        try:
            await self.app(scope, replay, send)
        finally:
            self.bodies.give_back(len(body))


async def _refuse(
    send: Any, status: int, message: str, extra: dict[str, str] | None = None
) -> None:
    """The API's error shape; the connection is closed, as the rest of the body is unread."""
    answer = JSONResponse(
        {"detail": {"message": message}}, status, {"Connection": "close", **(extra or {})}
    )
    await answer({"type": "http"}, _nothing, send)


async def _nothing() -> Any:
    return {"type": "http.disconnect"}
