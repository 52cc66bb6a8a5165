"""OTLP/HTTP ``POST /v1/traces`` (protobuf and JSON): only speaks HTTP, decodes through ``Ingest``.

Answers follow the OTLP/HTTP specification: the response body uses the
request's encoding; failures carry a ``google.rpc.Status``; 400 for bodies
that cannot be decoded, 413 past the size limit, 503 + Retry-After when the
writer queue is full, 415 for an unknown content type.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf import json_format
from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from flowscope.collector.auth import BEARER_CHALLENGE, token_matches
from flowscope.collector.decode import DEFAULT_MAX_BYTES, JSON, PROTOBUF, decompress, media_type
from flowscope.collector.errors import BadRequest, Overloaded, RequestTooLarge, Unavailable
from flowscope.collector.ingest import Ingest
from flowscope.http_server import SERVER_STOPPING

log = logging.getLogger(__name__)

# google.rpc.Code values used in Status bodies.
_INVALID_ARGUMENT, _RESOURCE_EXHAUSTED, _UNAUTHENTICATED, _UNAVAILABLE, _INTERNAL = 3, 8, 16, 14, 13
_NOT_FOUND, _UNIMPLEMENTED = 5, 12
_DEADLINE_EXCEEDED = 4
_PERMISSION_DENIED = 7


def _encode(message: Status | ExportTraceServiceResponse, kind: str) -> Response:
    if kind == JSON:
        text = json_format.MessageToJson(message, indent=None)
        return Response(text, media_type=JSON)
    return Response(message.SerializeToString(), media_type=PROTOBUF)


def _failure(
    status: int, code: int, message: str, kind: str, headers: dict[str, str] | None = None
) -> Response:
    response = _encode(Status(code=code, message=message), kind if kind == JSON else PROTOBUF)
    response.status_code = status
    if headers:
        response.headers.update(headers)
    return response


def otlp_refusal(status: int, text: str, content_type: str) -> Response:
    """A request the HTTP server turns away before the app sees it (a Host the
    DNS-rebinding guard refuses, a body of two lengths), answered as OTLP/HTTP answers
    every failure: a google.rpc.Status in the request's encoding. It was plain text."""
    code = _PERMISSION_DENIED if status == 403 else _INVALID_ARGUMENT
    return _failure(status, code, text, media_type(content_type or None))


# A body must keep coming: a client that stops sending for this long is cut off. And
# all bodies being received at once hold at most this many bytes: 600 connections that
# each sent half of a 16 MB body and stalled held 5 GB, for good.
BODY_IDLE_S = 30.0
BODY_TOTAL_S = 120.0  # and all of it within this: a byte every 29 s is no exporter
BODIES_BUDGET_BYTES = 256 * 1024 * 1024
# Compressed bodies inflated at once (each may take twice the request limit while it
# inflates); the others wait their turn. Their inflated bytes count in the budget above.
INFLATING_AT_ONCE = 4
# How long a browser may keep a preflight's answer (the Collector's default max_age is
# unset: the browser's own, 5 s in Chromium; spans are sent every few seconds).
CORS_MAX_AGE_S = 600


class BodyTimeout(Exception):
    """The client stopped sending its request body."""


class BodyBudget:
    """Bytes of request bodies being received, against ``BODIES_BUDGET_BYTES`` (all on
    the receiver's one event loop: no lock)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.held = 0

    def take(self, size: int, own: int) -> None:
        """Hold ``size`` more bytes of a body that holds ``own`` already. A body alone
        may pass the budget (else one over it, with --max-request-bytes above it,
        would be refused for ever); beside others it may not."""
        others = self.held - own
        if others and self.held + size > self.budget:
            raise Overloaded(
                f"receiving {others} bytes of other request bodies at once already; retry later"
            )
        self.held += size

    def give_back(self, size: int) -> None:
        self.held -= size


async def body_chunks(scope: Any, receive: Any) -> AsyncIterator[bytes]:
    """A request's body as ASGI ``receive`` gives it (Starlette's ``request.stream()``),
    ended by the server's stop: Unavailable once the server marks the request
    (http_server.SERVER_STOPPING) while its body still comes."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        if (scope.get("extensions") or {}).get(SERVER_STOPPING):
            raise Unavailable("the server is stopping; retry the request")
        if body := message.get("body", b""):
            yield body
        if not message.get("more_body", False):
            return


async def read_body(
    chunks: AsyncIterator[bytes], declared: str | None, limit: int, bodies: BodyBudget
) -> bytes:
    """A request body from its ``chunks``: RequestTooLarge past ``limit`` bytes (at once
    when its Content-Length, ``declared``, says so), BodyTimeout when it stops coming
    for BODY_IDLE_S or is not whole within BODY_TOTAL_S. Its bytes are held in
    ``bodies`` while it comes; the caller gives them back."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"request body of {declared} bytes exceeds the limit of {limit}")
    received: list[bytes] = []
    size = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BODY_TOTAL_S
    try:
        # One timer, moved on by each chunk: the next must come within BODY_IDLE_S,
        # and none after the deadline (a task per chunk, as wait_for makes, costs more).
        async with asyncio.timeout_at(min(loop.time() + BODY_IDLE_S, deadline)) as timer:
            async for chunk in chunks:
                if size + len(chunk) > limit:
                    raise RequestTooLarge(f"request body exceeds the limit of {limit} bytes")
                bodies.take(len(chunk), size)
                size += len(chunk)
                received.append(chunk)
                timer.reschedule(min(loop.time() + BODY_IDLE_S, deadline))
        return b"".join(received)  # its bytes stay held: the caller gives them back
    except TimeoutError as exc:
        bodies.give_back(size)
        why = (
            f"the request body took over {BODY_TOTAL_S:g} s"
            if loop.time() >= deadline
            else f"no part of the request body came for {BODY_IDLE_S:g} s"
        )
        raise BodyTimeout(f"{why}; {size} bytes of it arrived") from exc
    except BaseException:
        bodies.give_back(size)
        raise


def _refusal(exc: Exception, kind: str) -> Response:
    """The answer to a request that failed with ``exc``."""
    if isinstance(exc, BadRequest):
        return _failure(400, _INVALID_ARGUMENT, str(exc), kind)
    if isinstance(exc, RequestTooLarge):
        # Closed (gently: flowscope/http_server.py's LINGER_S), as its client may still
        # be sending the body; kept open, it took that body for 30 s more.
        return _failure(413, _RESOURCE_EXHAUSTED, str(exc), kind, {"Connection": "close"})
    if isinstance(exc, BodyTimeout):
        return _failure(408, _DEADLINE_EXCEEDED, str(exc), kind, {"Connection": "close"})
    if isinstance(exc, ClientDisconnect):  # gone before its body ended: nobody to answer
        return Response(status_code=400)
    if isinstance(exc, Overloaded):
        return _failure(503, _UNAVAILABLE, str(exc), kind, {"Retry-After": str(exc.retry_after_s)})
    if isinstance(exc, Unavailable):
        return _failure(503, _UNAVAILABLE, str(exc), kind, {"Retry-After": "1"})
    # A bug: answer 500, keep serving.
    log.error("OTLP/HTTP export failed", exc_info=exc)
    return _failure(500, _INTERNAL, "internal error; see the flowscope log", kind)


def create_otlp_http_app(
    ingest: Ingest,
    *,
    token: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    cors_origins: tuple[str, ...] = (),
) -> Any:
    bodies = BodyBudget(BODIES_BUDGET_BYTES)
    inflating = asyncio.Semaphore(INFLATING_AT_ONCE)

    async def export(request: Request) -> Response:
        kind = media_type(request.headers.get("content-type"))
        if not token_matches(token, request.headers.getlist("authorization")):
            return _failure(
                401,
                _UNAUTHENTICATED,
                "missing or wrong bearer token",
                kind,
                {"WWW-Authenticate": BEARER_CHALLENGE},
            )
        if kind not in (PROTOBUF, JSON):
            given = request.headers.get("content-type")
            what = (
                "missing Content-Type" if given is None else f"unsupported Content-Type {given!r}"
            )
            return _failure(415, _INVALID_ARGUMENT, f"{what}; use {PROTOBUF} or {JSON}", PROTOBUF)
        held = 0
        try:
            raw = await read_body(
                body_chunks(request.scope, request.receive),
                request.headers.get("content-length"),
                max_bytes,
                bodies,
            )
            held = len(raw)
            encoding = request.headers.get("content-encoding")
            body = raw
            if encoding:
                # Inflating up to the size limit takes a while: not on the event loop;
                # and a few at a time, their output counted with the bodies: 40 small
                # bombs at once (100 KB of gzip, 256 MB each) took the ingest process
                # to 4.7 GB.
                async with inflating:
                    body = await run_in_threadpool(decompress, raw, encoding, max_bytes)
                bodies.take(len(body), held)
                held += len(body)
            outcome = await run_in_threadpool(ingest.export_body, body, kind)
        except Exception as exc:
            answer = _refusal(exc, kind)
            # The exception sits in a cycle (the worker thread's future holds it, its
            # traceback the frames that hold the inflated body) that only a full
            # collection frees: 40 refused bombs at once kept 1 GB (10.8 GB under a
            # 256 MB limit). Without the traceback the frames and bodies go now.
            exc.__traceback__ = None
            return answer
        finally:
            bodies.give_back(held)
        return _encode(outcome.response(), kind)

    # No slash redirects: a 307 from /v1/traces/ counts as success to exporters that do
    # not follow redirects (OTel Python's), which then drop their spans; a 404 is a
    # failure they report, as the Collector answers.
    # A browser's OTLP exporter (a web page's spans) must pass a CORS preflight: as the
    # Collector's `cors.allowed_origins`, for the origins the server is given.
    middleware = [
        Middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["POST"],
            allow_headers=["*"],
            max_age=CORS_MAX_AGE_S,
        )
    ]
    app = Starlette(
        routes=[Route("/v1/traces", export, methods=["POST"])],
        exception_handlers={404: _not_routed, 405: _not_routed},
        middleware=middleware if cors_origins else None,
    )
    app.router.redirect_slashes = False
    if cors_origins:
        return app

    async def exports_first(scope: Any, receive: Any, send: Any) -> None:
        # An export straight to its handler; anything else through Starlette's routing
        # (404, 405). Its routing and error layers were a third of the ingest process's
        # time for small requests: the server took ~200 requests a second however few
        # spans they held (load review).
        if scope["type"] == "http" and scope["path"] == "/v1/traces" and scope["method"] == "POST":
            response = await export(Request(scope, receive))
            await response(scope, receive, send)
            return
        await app(scope, receive, send)

    return exports_first


async def _not_routed(request: Request, exc: Exception) -> Response:
    """404 and 405 as OTLP answers every failure: a google.rpc.Status body (OTLP/HTTP
    "Failures": for all 4xx and 5xx), not Starlette's plain text."""
    assert isinstance(exc, HTTPException)
    kind = media_type(request.headers.get("content-type"))
    if exc.status_code == 405:
        code, message = _UNIMPLEMENTED, f"{request.method} is not allowed; use POST /v1/traces"
    else:
        code = _NOT_FOUND
        message = f"no such path {request.url.path!r}; flowscope receives traces at /v1/traces"
    return _failure(exc.status_code, code, message, kind, dict(exc.headers or {}))
