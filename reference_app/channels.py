"""The platform's cache and event channel: in-process stand-ins for the seed's Redis.

They run inside the app's process, and their spans say so (``db.system.name`` =
``in-process-cache``, ``messaging.system`` = ``in-process-queue``) rather than
pretending to be Redis. Messaging spans follow the OpenTelemetry messaging
conventions: a PRODUCER span per publish, whose context travels in the message
headers (W3C trace context), and a CONSUMER span per delivery that is the
producer's child.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

log = logging.getLogger(__name__)

CACHE_SYSTEM = "in-process-cache"
MESSAGING_SYSTEM = "in-process-queue"


class InProcessCache:
    """A dict behind the same GET/SET calls a Redis client makes, traced as a CLIENT."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer
        self._items: dict[str, Any] = {}

    def set(self, key: str, value: Any) -> None:
        self._items[key] = value

    def get(self, collection: str, key: str) -> Any:
        with self._tracer.start_as_current_span(
            f"GET {collection}",
            kind=SpanKind.CLIENT,
            attributes={
                # The stable database conventions throughout: db.system beside
                # db.query.text mixed two versions of them.
                "db.system.name": CACHE_SYSTEM,
                "db.operation.name": "GET",
                "db.collection.name": collection,
                "db.query.text": f"GET {key}",
            },
        ) as span:
            value = self._items.get(key)
            span.set_attribute("cache.hit", value is not None)
            return value


@dataclass
class Message:
    id: str
    destination: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Message], Awaitable[None]]


class EventChannel:
    """Named destinations, one consumer group each, delivered on the app's event loop."""

    def __init__(self) -> None:
        self._queues: dict[str, asyncio.Queue[Message]] = {}
        self._consumers: list[asyncio.Task[None]] = []
        self._ids = itertools.count(1)

    def _queue(self, destination: str) -> asyncio.Queue[Message]:
        if destination not in self._queues:
            self._queues[destination] = asyncio.Queue()
        return self._queues[destination]

    def publish(self, tracer: Tracer, destination: str, body: dict[str, Any]) -> Message:
        message = Message(f"{destination}-{next(self._ids)}", destination, body)
        with tracer.start_as_current_span(
            f"publish {destination}",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": MESSAGING_SYSTEM,
                "messaging.destination.name": destination,
                "messaging.operation.type": "send",
                "messaging.operation.name": "publish",
                "messaging.message.id": message.id,
            },
        ):
            propagate.inject(message.headers)
            self._queue(destination).put_nowait(message)
        return message

    def subscribe(
        self, tracer: Tracer, destination: str, group: str, handler: Handler
    ) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(
            self._consume(tracer, destination, group, handler), name=f"consume-{destination}"
        )
        self._consumers.append(task)
        return task

    async def _consume(
        self, tracer: Tracer, destination: str, group: str, handler: Handler
    ) -> None:
        queue = self._queue(destination)
        while True:
            message = await queue.get()
            try:
                await self._deliver(tracer, message, group, handler)
            finally:
                queue.task_done()

    async def _deliver(
        self, tracer: Tracer, message: Message, group: str, handler: Handler
    ) -> None:
        parent = propagate.extract(message.headers)
        with tracer.start_as_current_span(
            f"process {message.destination}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": MESSAGING_SYSTEM,
                "messaging.destination.name": message.destination,
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.message.id": message.id,
                "messaging.consumer.group.name": group,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                await handler(message)
            except Exception as exc:  # a failed message must not stop the consumer
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                span.set_attribute("error.type", type(exc).__qualname__)  # required on failure
                log.debug("message %s failed: %s", message.id, exc)

    async def join(self) -> None:
        """Wait until every message published so far has been delivered."""
        # Delivering one message can publish another (matching -> market data),
        # so go round until a pass finds every destination empty.
        while True:
            for queue in list(self._queues.values()):
                await queue.join()
            if all(q.empty() for q in self._queues.values()):
                return

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Deliver what was published, then stop the consumers."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self.join()
        for task in self._consumers:
            task.cancel()
        for task in self._consumers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._consumers.clear()
