"""ExportTraceServiceRequest -> columns of ``otel_traces`` (an Arrow table).

This is the ingest hot path: one pass over the spans, appending to plain lists,
then one Arrow array per column. Spans with invalid ids are left out and
counted, as OTLP's ``partial_success`` asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from flowscope.collector.attributes import attribute_lists
from flowscope.store.columns import LINK, SPAN_SCHEMA, STRING_MAP, TIMESTAMP
from flowscope.store.columns import EVENT as EVENT_TYPE

SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES = ("Unset", "Ok", "Error")
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_MAX_REJECT_REASONS = 5


@dataclass
class SpanBatch:
    """Spans ready for the writer: the Arrow table and one dedup key per row."""

    table: pa.Table
    keys: list[bytes]

    @property
    def spans(self) -> int:
        return self.table.num_rows


@dataclass
class FlattenResult:
    batch: SpanBatch
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    @property
    def error_message(self) -> str:
        if not self.rejected:
            return ""
        more = "" if self.rejected <= len(self.reasons) else f" (and {self.rejected - len(self.reasons)} more)"
        return f"{self.rejected} span(s) rejected: " + "; ".join(self.reasons) + more


class _MapColumn:
    """Accumulates a MAP(VARCHAR, VARCHAR) column as flat keys/values plus offsets."""

    __slots__ = ("keys", "values", "offsets")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.values: list[str] = []
        self.offsets: list[int] = [0]

    def append(self, keys: list[str], values: list[str]) -> None:
        self.keys.extend(keys)
        self.values.extend(values)
        self.offsets.append(len(self.keys))

    def array(self) -> pa.Array:
        return pa.MapArray.from_arrays(
            pa.array(self.offsets, pa.int32()),
            pa.array(self.keys, pa.string()),
            pa.array(self.values, pa.string()),
            type=STRING_MAP,
        )


def _id_problem(name: str, value: bytes, size: int, zero: bytes, optional: bool) -> str | None:
    if optional and not value:
        return None
    if len(value) != size:
        return f"{name} has {len(value)} bytes, expected {size}"
    if value == zero:
        return f"{name} is all zeros"
    return None


def flatten_request(request: ExportTraceServiceRequest) -> FlattenResult:
    ts: list[int] = []
    trace_ids: list[str] = []
    span_ids: list[str] = []
    parent_ids: list[str] = []
    trace_states: list[str] = []
    names: list[str] = []
    kinds: list[str] = []
    services: list[str] = []
    resource_attrs = _MapColumn()
    scope_names: list[str] = []
    scope_versions: list[str] = []
    span_attrs = _MapColumn()
    durations: list[int] = []
    status_codes: list[str] = []
    status_messages: list[str] = []
    flags: list[int] = []
    dropped_attrs: list[int] = []
    dropped_events: list[int] = []
    dropped_links: list[int] = []
    scope_attrs = _MapColumn()
    scope_dropped: list[int] = []
    resource_dropped: list[int] = []
    resource_schema: list[str] = []
    scope_schema: list[str] = []
    keys: list[bytes] = []
    events = _EventColumns()
    links = _LinkColumns()
    rejected = 0
    reasons: list[str] = []

    for resource_spans in request.resource_spans:
        resource = resource_spans.resource
        r_keys, r_values = attribute_lists(resource.attributes)
        service = ""
        for key, value in zip(r_keys, r_values, strict=True):
            if key == "service.name":
                service = value
                break
        r_dropped = resource.dropped_attributes_count
        r_schema = resource_spans.schema_url
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            s_keys, s_values = attribute_lists(scope.attributes)
            s_name, s_version, s_dropped = scope.name, scope.version, scope.dropped_attributes_count
            s_schema = scope_spans.schema_url
            for span in scope_spans.spans:
                trace_id, span_id, parent_id = span.trace_id, span.span_id, span.parent_span_id
                problem = (
                    _id_problem("trace_id", trace_id, 16, _ZERO_TRACE, False)
                    or _id_problem("span_id", span_id, 8, _ZERO_SPAN, False)
                    or _id_problem("parent_span_id", parent_id, 8, _ZERO_SPAN, True)
                )
                if problem is not None:
                    rejected += 1
                    if len(reasons) < _MAX_REJECT_REASONS:
                        reasons.append(f"span {span.name[:80]!r}: {problem}")
                    continue
                start = span.start_time_unix_nano
                ts.append(start)
                trace_ids.append(trace_id.hex())
                span_ids.append(span_id.hex())
                parent_ids.append(parent_id.hex())
                trace_states.append(span.trace_state)
                names.append(span.name)
                kind = span.kind
                kinds.append(SPAN_KINDS[kind] if 0 <= kind < 6 else "Unspecified")
                services.append(service)
                resource_attrs.append(r_keys, r_values)
                scope_names.append(s_name)
                scope_versions.append(s_version)
                a_keys, a_values = attribute_lists(span.attributes)
                span_attrs.append(a_keys, a_values)
                durations.append(span.end_time_unix_nano - start)
                status = span.status
                code = status.code
                status_codes.append(STATUS_CODES[code] if 0 <= code < 3 else "Unset")
                status_messages.append(status.message)
                events.append(span)
                links.append(span)
                flags.append(span.flags)
                dropped_attrs.append(span.dropped_attributes_count)
                dropped_events.append(span.dropped_events_count)
                dropped_links.append(span.dropped_links_count)
                scope_attrs.append(s_keys, s_values)
                scope_dropped.append(s_dropped)
                resource_dropped.append(r_dropped)
                resource_schema.append(r_schema)
                scope_schema.append(s_schema)
                keys.append(trace_id + span_id)

    string = pa.string()
    u32 = pa.uint32()
    arrays = [
        pa.array(ts, TIMESTAMP),
        pa.array(trace_ids, string),
        pa.array(span_ids, string),
        pa.array(parent_ids, string),
        pa.array(trace_states, string),
        pa.array(names, string),
        pa.array(kinds, string),
        pa.array(services, string),
        resource_attrs.array(),
        pa.array(scope_names, string),
        pa.array(scope_versions, string),
        span_attrs.array(),
        pa.array(durations, pa.int64()),
        pa.array(status_codes, string),
        pa.array(status_messages, string),
        events.array(),
        links.array(),
        pa.array(flags, u32),
        pa.array(dropped_attrs, u32),
        pa.array(dropped_events, u32),
        pa.array(dropped_links, u32),
        events.dropped_array(),
        links.dropped_array(),
        links.flags_array(),
        scope_attrs.array(),
        pa.array(scope_dropped, u32),
        pa.array(resource_dropped, u32),
        pa.array(resource_schema, string),
        pa.array(scope_schema, string),
    ]
    table = pa.Table.from_arrays(arrays, schema=SPAN_SCHEMA)
    return FlattenResult(SpanBatch(table, keys), rejected, reasons)


class _EventColumns:
    __slots__ = ("offsets", "times", "names", "attrs", "dropped")

    def __init__(self) -> None:
        self.offsets: list[int] = [0]
        self.times: list[int] = []
        self.names: list[str] = []
        self.attrs = _MapColumn()
        self.dropped: list[int] = []

    def append(self, span: object) -> None:
        for event in span.events:  # type: ignore[attr-defined]
            self.times.append(event.time_unix_nano)
            self.names.append(event.name)
            self.attrs.append(*attribute_lists(event.attributes))
            self.dropped.append(event.dropped_attributes_count)
        self.offsets.append(len(self.names))

    def array(self) -> pa.Array:
        values = pa.StructArray.from_arrays(
            [pa.array(self.times, TIMESTAMP), pa.array(self.names, pa.string()), self.attrs.array()],
            fields=list(EVENT_TYPE),
        )
        return pa.ListArray.from_arrays(pa.array(self.offsets, pa.int32()), values)

    def dropped_array(self) -> pa.Array:
        return pa.ListArray.from_arrays(
            pa.array(self.offsets, pa.int32()), pa.array(self.dropped, pa.uint32())
        )


class _LinkColumns:
    __slots__ = ("offsets", "trace_ids", "span_ids", "states", "attrs", "dropped", "flags")

    def __init__(self) -> None:
        self.offsets: list[int] = [0]
        self.trace_ids: list[str] = []
        self.span_ids: list[str] = []
        self.states: list[str] = []
        self.attrs = _MapColumn()
        self.dropped: list[int] = []
        self.flags: list[int] = []

    def append(self, span: object) -> None:
        for link in span.links:  # type: ignore[attr-defined]
            self.trace_ids.append(link.trace_id.hex())
            self.span_ids.append(link.span_id.hex())
            self.states.append(link.trace_state)
            self.attrs.append(*attribute_lists(link.attributes))
            self.dropped.append(link.dropped_attributes_count)
            self.flags.append(link.flags)
        self.offsets.append(len(self.trace_ids))

    def array(self) -> pa.Array:
        string = pa.string()
        values = pa.StructArray.from_arrays(
            [
                pa.array(self.trace_ids, string),
                pa.array(self.span_ids, string),
                pa.array(self.states, string),
                self.attrs.array(),
            ],
            fields=list(LINK),
        )
        return pa.ListArray.from_arrays(pa.array(self.offsets, pa.int32()), values)

    def dropped_array(self) -> pa.Array:
        return pa.ListArray.from_arrays(
            pa.array(self.offsets, pa.int32()), pa.array(self.dropped, pa.uint32())
        )

    def flags_array(self) -> pa.Array:
        return pa.ListArray.from_arrays(
            pa.array(self.offsets, pa.int32()), pa.array(self.flags, pa.uint32())
        )
