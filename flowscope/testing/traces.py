"""A deterministic trace builder: fixed ids, fixed times, known answers.

Tests (and anyone checking the analyzer by hand) build exact scenarios::

    kit = TraceKit()
    t = kit.trace(start_ms=0)
    root = t.span("gateway", "POST /orders", kind="Server", start_ms=0, duration_ms=100)
    call = root.child("gateway", "POST", kind="Client", start_ms=10, duration_ms=60)
    call.child("orders", "POST /orders", kind="Server", start_ms=15, duration_ms=50)
    kit.write(database)            # through the collector's flatten + SpanWriter, like OTLP
    kit.request()                  # or the same spans as an ExportTraceServiceRequest

Trace ids are ``kit.trace()`` numbers (``00..01``, ``00..02``, ...) unless given;
span ids count up per kit. Times are milliseconds from ``BASE_TIME_NS``
(2026-01-01T00:00:00Z) plus the trace's ``start_ms``, so every duration, self
time, offset and percentile is known in advance.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from flowscope.collector.flatten import flatten_request
from flowscope.store.database import Database
from flowscope.store.writer import SpanWriter
from flowscope.testing.otlp import BASE_TIME_NS, key_values

KINDS = {
    "Unspecified": Span.SPAN_KIND_UNSPECIFIED,
    "Internal": Span.SPAN_KIND_INTERNAL,
    "Server": Span.SPAN_KIND_SERVER,
    "Client": Span.SPAN_KIND_CLIENT,
    "Producer": Span.SPAN_KIND_PRODUCER,
    "Consumer": Span.SPAN_KIND_CONSUMER,
    "": Span.SpanKind.ValueType(7),  # outside the enum: stored as '' (as the exporter does)
}
STATUSES = {
    "Unset": Status.STATUS_CODE_UNSET,
    "Ok": Status.STATUS_CODE_OK,
    "Error": Status.STATUS_CODE_ERROR,
    "": Status.StatusCode.ValueType(5),  # likewise
}


def ms(value: float) -> int:
    """Milliseconds -> integer nanoseconds (rounded, so 0.1 ms is exactly 100000 ns)."""
    return round(value * 1_000_000)


def at_ms(offset_ms: float) -> int:
    """The absolute time (ns since the epoch) ``offset_ms`` after BASE_TIME_NS."""
    return BASE_TIME_NS + ms(offset_ms)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (what quantile_cont computes), for expected values."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    rank = (len(ordered) - 1) * q
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


@dataclass(frozen=True)
class LinkSpec:
    trace_id: str
    span_id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EventSpec:
    offset_ms: float  # from its span's start
    name: str
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class SpanSpec:
    trace_id: str
    span_id: str
    parent_span_id: str  # '' for a root
    service: str
    name: str
    kind: str
    start_ns: int
    duration_ns: int
    status: str = "Unset"
    status_message: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)
    links: list[LinkSpec] = field(default_factory=list)
    events: list[EventSpec] = field(default_factory=list)

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_ns

    def to_otlp(self) -> Span:
        span = Span(
            trace_id=bytes.fromhex(self.trace_id),
            span_id=bytes.fromhex(self.span_id),
            parent_span_id=bytes.fromhex(self.parent_span_id),
            name=self.name,
            kind=KINDS[self.kind],
            start_time_unix_nano=self.start_ns,
            end_time_unix_nano=self.end_ns,
        )
        span.attributes.extend(key_values(self.attributes))
        if self.status != "Unset" or self.status_message:
            span.status.CopyFrom(Status(code=STATUSES[self.status], message=self.status_message))
        for link in self.links:
            out = span.links.add()
            out.trace_id = bytes.fromhex(link.trace_id)
            out.span_id = bytes.fromhex(link.span_id)
            out.attributes.extend(key_values(link.attributes))
        for event in self.events:
            logged = span.events.add()
            logged.time_unix_nano = self.start_ns + ms(event.offset_ms)
            logged.name = event.name
            logged.attributes.extend(key_values(event.attributes))
        return span


class SpanRef:
    """A span being built; ``child`` adds a span under it in the same trace."""

    def __init__(self, trace: TraceBuilder, spec: SpanSpec) -> None:
        self.trace = trace
        self.spec = spec

    @property
    def span_id(self) -> str:
        return self.spec.span_id

    @property
    def trace_id(self) -> str:
        return self.spec.trace_id

    def child(self, service: str, name: str, **options: Any) -> SpanRef:
        return self.trace.span(service, name, parent=self, **options)

    def link(self, **attributes: Any) -> LinkSpec:
        """A link to this span (for a CONSUMER span in another trace, say)."""
        return LinkSpec(self.trace_id, self.span_id, attributes)


class TraceBuilder:
    def __init__(self, kit: TraceKit, trace_id: str, start_ms: float) -> None:
        self.kit = kit
        self.trace_id = trace_id
        self.start_ms = start_ms

    def span(
        self,
        service: str,
        name: str,
        *,
        start_ms: float,
        duration_ms: float,
        kind: str = "Internal",
        parent: SpanRef | str | None = None,
        status: str = "Unset",
        status_message: str = "",
        attributes: Mapping[str, Any] | None = None,
        resource: Mapping[str, Any] | None = None,
        links: Iterable[LinkSpec] = (),
        events: Iterable[EventSpec] = (),
        span_id: str | None = None,
    ) -> SpanRef:
        """A span ``start_ms`` after the trace's start; ``parent`` a SpanRef or a raw id.

        A raw parent id that no span has makes an orphan (its parent never arrived).
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
        if status not in STATUSES:
            raise ValueError(f"status must be one of {sorted(STATUSES)}, got {status!r}")
        parent_id = parent.span_id if isinstance(parent, SpanRef) else (parent or "")
        spec = SpanSpec(
            trace_id=self.trace_id,
            span_id=span_id or self.kit.next_span_id(),
            parent_span_id=parent_id,
            service=service,
            name=name,
            kind=kind,
            start_ns=at_ms(self.start_ms + start_ms),
            duration_ns=ms(duration_ms),
            status=status,
            status_message=status_message,
            attributes=dict(attributes or {}),
            resource={**self.kit.resources.get(service, {}), **(resource or {})},
            links=list(links),
            events=list(events),
        )
        self.kit.spans.append(spec)
        return SpanRef(self, spec)


class TraceKit:
    """A set of hand-built traces, written to a Database or sent as OTLP."""

    def __init__(self, resources: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.spans: list[SpanSpec] = []
        # Extra resource attributes per service (service.version, say).
        self.resources: dict[str, dict[str, Any]] = {
            k: dict(v) for k, v in (resources or {}).items()
        }
        self._traces = 0
        self._span_ids = 0

    def trace(self, start_ms: float = 0.0, trace_id: str | None = None) -> TraceBuilder:
        self._traces += 1
        return TraceBuilder(self, trace_id or f"{self._traces:032x}", start_ms)

    def next_span_id(self) -> str:
        self._span_ids += 1
        return f"{self._span_ids:016x}"

    def request(self, spans: Iterable[SpanSpec] | None = None) -> ExportTraceServiceRequest:
        """The spans as one OTLP request: one ResourceSpans per (service, resource)."""
        request = ExportTraceServiceRequest()
        groups: dict[tuple[str, tuple[tuple[str, str], ...]], list[SpanSpec]] = {}
        for spec in self.spans if spans is None else spans:
            key = (spec.service, tuple(sorted((k, repr(v)) for k, v in spec.resource.items())))
            groups.setdefault(key, []).append(spec)
        for (service, _), specs in groups.items():
            resource_spans = request.resource_spans.add()
            resource_spans.resource.attributes.extend(
                key_values({"service.name": service, **specs[0].resource})
            )
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = "flowscope.testing.traces"
            scope_spans.scope.version = "1.0"
            scope_spans.spans.extend(spec.to_otlp() for spec in specs)
        return request

    def write(
        self,
        database: Database,
        spans: Iterable[SpanSpec] | None = None,
        *,
        writer: SpanWriter | None = None,
    ) -> int:
        """Store the spans (all, or ``spans``) as one commit; returns how many were new.

        Without ``writer`` a SpanWriter is started and shut down around the write, so
        derived tables are up to date when this returns.
        """
        batch = flatten_request(self.request(spans)).batch
        if writer is not None:
            return writer.write(batch.table, batch.keys)
        own = SpanWriter(database, journal=False)  # write() acknowledges nobody
        own.start()
        try:
            return own.write(batch.table, batch.keys)
        finally:
            own.shutdown()

    def write_file(self, path: str | Path, spans: Iterable[SpanSpec] | None = None) -> int:
        """``write`` into the database file at ``path`` (made if missing), closed after."""
        database = Database(path)
        try:
            return self.write(database, spans)
        finally:
            database.close()

    def spans_of(self, *services: str) -> list[SpanSpec]:
        return [spec for spec in self.spans if spec.service in services]
