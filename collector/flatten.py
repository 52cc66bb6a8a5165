"""ExportTraceServiceRequest -> columns of ``otel_traces`` (an Arrow table).

This is the ingest hot path: one pass over the spans, appending to plain lists,
then one Arrow array per column. Spans with invalid ids are left out and
counted, as OTLP's ``partial_success`` asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from flowscope.collector.attributes import attribute_lists
from flowscope.store.columns import (
    BATCH_SCHEMA,
    COLUMN_NAMES,
    ENTITY_REF,
    LINK,
    STRING_MAP,
    TIMESTAMP,
    TIMESTAMP_NS_LIMIT,
)
from flowscope.store.columns import EVENT as EVENT_TYPE
from flowscope.store.dedup import NOT_SERVER, server_tail

# pdata's SpanKind.String() and StatusCode.String() return "" for a number outside the
# enum, and the exporter stores that: the last entry of each dictionary.
SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer", "")
SERVER_KIND = Span.SpanKind.SPAN_KIND_SERVER
STATUS_CODES = ("Unset", "Ok", "Error", "")
UNKNOWN_KIND = len(SPAN_KINDS) - 1
UNKNOWN_STATUS = len(STATUS_CODES) - 1
KIND_VALUES = pa.array(SPAN_KINDS, pa.string())
STATUS_VALUES = pa.array(STATUS_CODES, pa.string())
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
MAX_REJECT_REASONS = 5


@dataclass
class SpanBatch:
    """Spans ready for the writer: the Arrow table and one dedup key per row."""

    table: pa.Table
    keys: list[bytes]
    # What the spans weigh once stored (store/table_size.table_bytes), when the decoder
    # measured it; None: whoever needs it measures (~0.2 ms a request, done once).
    weight: int | None = None

    @property
    def spans(self) -> int:
        return int(self.table.num_rows)


@dataclass
class FlattenResult:
    batch: SpanBatch
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)
    warning: str = ""  # for partial_success with what was stored (utf8_repair)

    @property
    def error_message(self) -> str:
        if not self.rejected:
            return ""
        more = (
            ""
            if self.rejected <= len(self.reasons)
            else f" (and {self.rejected - len(self.reasons)} more)"
        )
        return f"{self.rejected} span(s) rejected: " + "; ".join(self.reasons) + more


class _MapColumn:
    """Accumulates a MAP(VARCHAR, VARCHAR) column as flat keys/values plus offsets."""

    __slots__ = ("keys", "values", "offsets")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.values: list[str] = []
        self.offsets: list[int] = [0]

    def append(self, keys: Sequence[str], values: Sequence[str]) -> None:
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


# What OTLP/JSON's decoder puts in an id field that is not a hex string, so the span
# alone is rejected, by this check, with a message that says why. No valid id has
# this length (16 or 8 bytes), so it can never pass as one.
NOT_HEX_ID = b"\xffnot a hex id"
# Likewise for hex digits of an odd count, the count after it: "not a hex string"
# called 15 good digits something else (docs review). With the count, 26 bytes and
# more: no id's length, so a valid id can never read as one (the bare prefix once had
# 16 bytes, a trace id's, diff review).
ODD_HEX_ID = b"\xffodd count of hex digits "


def odd_hex_id(digits: int) -> bytes:
    return ODD_HEX_ID + str(digits).encode()


def _hex_problem(value: bytes, size: int) -> str | None:
    """What a decoder's marker says is wrong with an id's text, or None for bytes."""
    if value == NOT_HEX_ID:
        return f"is not a hex string (OTLP/JSON ids are {2 * size} hex digits)"
    count = value[len(ODD_HEX_ID) :]
    if value.startswith(ODD_HEX_ID) and count.isdigit():  # bytes.isdigit: ASCII digits
        # (a protobuf id of other bytes after the prefix failed to decode: a 500 for
        # the whole request, diff review)
        return f"has {count.decode()} hex digits, expected {2 * size}"
    return None


def _id_problem(trace_id: bytes, span_id: bytes, parent_id: bytes) -> str:
    for name, value, size, optional in (
        ("trace_id", trace_id, 16, False),
        ("span_id", span_id, 8, False),
        ("parent_span_id", parent_id, 8, True),
    ):
        if optional and not value:
            continue
        if (problem := _hex_problem(value, size)) is not None:
            return f"{name} {problem}"
        if len(value) != size:
            return f"{name} has {len(value)} bytes, expected {size}"
        if not any(value):
            return f"{name} is all zeros"
    return ""


# OTLP's times are unsigned: from TIMESTAMP_NS_LIMIT on (past 2262-04-11) they cannot
# be stored, and such a span is rejected alone instead of failing its request.
_TIME_LIMIT = TIMESTAMP_NS_LIMIT


def _content_problem(span: Span) -> str:
    """Why a span whose own ids are valid cannot be stored: a time past the limit, or a
    link id that is neither empty (all zeros) nor of an id's length."""
    for name, value in (
        ("start_time_unix_nano", span.start_time_unix_nano),
        ("end_time_unix_nano", span.end_time_unix_nano),
        *(("an event's time_unix_nano", event.time_unix_nano) for event in span.events),
    ):
        if value >= _TIME_LIMIT:
            return f"{name} {value} is past 2262-04-11, the latest time that can be stored"
    for number, link in enumerate(span.links, 1):
        for name, link_id, size in (("trace_id", link.trace_id, 16), ("span_id", link.span_id, 8)):
            if (problem := _hex_problem(link_id, size)) is not None:
                return f"link {number}'s {name} {problem}"
            if link_id and len(link_id) != size:
                return f"link {number}'s {name} has {len(link_id)} bytes, expected {size}"
    return ""


def _hex_or_empty(value: bytes) -> str:
    # An all-zero id is "no id": '' as the ClickHouse exporter writes it for links.
    return value.hex() if any(value) else ""


class _Groups:
    """Per (resource, scope) values, stored once and repeated for each span at the end."""

    def __init__(self) -> None:
        self.services: list[str] = []
        self.resource_attrs = _MapColumn()
        self.scope_names: list[str] = []
        self.scope_versions: list[str] = []
        self.scope_attrs = _MapColumn()
        self.scope_dropped: list[int] = []
        self.resource_dropped: list[int] = []
        self.resource_schema: list[str] = []
        self.scope_schema: list[str] = []
        self.entity_refs: list[list[dict[str, object]]] = []
        self.span_group: list[int] = []

    def arrays(self) -> dict[str, pa.Array]:
        """Each column dictionary-encoded: one value per group, an index per span."""
        indices = pa.array(self.span_group, pa.int32())
        string, u32 = pa.string(), pa.uint32()
        columns = {
            "ServiceName": pa.array(self.services, string),
            "ResourceAttributes": self.resource_attrs.array(),
            "ScopeName": pa.array(self.scope_names, string),
            "ScopeVersion": pa.array(self.scope_versions, string),
            "ScopeAttributes": self.scope_attrs.array(),
            "ScopeDroppedAttributesCount": pa.array(self.scope_dropped, u32),
            "ResourceDroppedAttributesCount": pa.array(self.resource_dropped, u32),
            "ResourceSchemaUrl": pa.array(self.resource_schema, string),
            "ScopeSchemaUrl": pa.array(self.scope_schema, string),
            "ResourceEntityRefs": pa.array(self.entity_refs, pa.list_(ENTITY_REF)),
        }
        return {
            name: pa.DictionaryArray.from_arrays(indices, array) for name, array in columns.items()
        }


def flatten_request(request: ExportTraceServiceRequest) -> FlattenResult:
    ts: list[int] = []
    ends: list[int] = []
    trace_ids: list[str] = []
    span_ids: list[str] = []
    parent_ids: list[str] = []
    trace_states: list[str] = []
    names: list[str] = []
    kinds: list[int] = []
    span_attrs = _MapColumn()
    status_codes: list[int] = []
    status_messages: list[str] = []
    flags: list[int] = []
    dropped_attrs: list[int] = []
    dropped_events: list[int] = []
    dropped_links: list[int] = []
    keys: list[bytes] = []
    events = _EventColumns()
    links = _LinkColumns()
    groups = _Groups()
    span_group = groups.span_group
    rejected = 0
    reasons: list[str] = []

    for resource_spans in request.resource_spans:
        resource = resource_spans.resource
        r_keys, r_values = attribute_lists(resource.attributes)
        service = ""  # the first service.name, as pdata's Map.Get finds it
        for key, value in zip(r_keys, r_values, strict=True):
            if key == "service.name":
                service = value
                break
        served = server_tail(service)  # a SERVER span's dedup key ends so
        entity_refs: list[dict[str, object]] = [
            {
                "SchemaUrl": ref.schema_url,
                "Type": ref.type,
                "IdKeys": list(ref.id_keys),
                "DescriptionKeys": list(ref.description_keys),
            }
            # OTLP 1.6 added entity_refs; older opentelemetry-proto modules have no such field.
            for ref in getattr(resource, "entity_refs", ())
        ]
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            group = len(groups.services)
            groups.services.append(service)
            groups.resource_attrs.append(r_keys, r_values)
            groups.resource_dropped.append(resource.dropped_attributes_count)
            groups.resource_schema.append(resource_spans.schema_url)
            groups.scope_names.append(scope.name)
            groups.scope_versions.append(scope.version)
            groups.scope_attrs.append(*attribute_lists(scope.attributes))
            groups.scope_dropped.append(scope.dropped_attributes_count)
            groups.scope_schema.append(scope_spans.schema_url)
            groups.entity_refs.append(entity_refs)
            for span in scope_spans.spans:
                trace_id, span_id, parent_id = span.trace_id, span.span_id, span.parent_span_id
                if parent_id == _ZERO_SPAN:
                    parent_id = b""  # "no parent": a root, as the Collector's pdata reads it
                if not (
                    len(trace_id) == 16
                    and len(span_id) == 8
                    and (not parent_id or len(parent_id) == 8)
                    and trace_id != _ZERO_TRACE
                    and span_id != _ZERO_SPAN
                ):
                    rejected += 1
                    if len(reasons) < MAX_REJECT_REASONS:
                        problem = _id_problem(trace_id, span_id, parent_id)
                        reasons.append(f"span {span.name[:80]!r}: {problem}")
                    continue
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                # The full check only where it can find something (hot path).
                if start < _TIME_LIMIT and end < _TIME_LIMIT and not span.events and not span.links:
                    problem = ""
                else:
                    problem = _content_problem(span)
                if problem:
                    rejected += 1
                    if len(reasons) < MAX_REJECT_REASONS:
                        reasons.append(f"span {span.name[:80]!r}: {problem}")
                    continue
                span_group.append(group)
                ts.append(start)
                ends.append(end)
                trace_ids.append(trace_id.hex())
                span_ids.append(span_id.hex())
                parent_ids.append(parent_id.hex())
                trace_states.append(span.trace_state)
                names.append(span.name)
                kind = span.kind
                kinds.append(kind if 0 <= kind < UNKNOWN_KIND else UNKNOWN_KIND)
                span_attrs.append(*attribute_lists(span.attributes))
                status = span.status
                code = status.code
                status_codes.append(code if 0 <= code < UNKNOWN_STATUS else UNKNOWN_STATUS)
                status_messages.append(status.message)
                events.append(span.events)
                links.append(span.links)
                flags.append(span.flags)
                dropped_attrs.append(span.dropped_attributes_count)
                dropped_events.append(span.dropped_events_count)
                dropped_links.append(span.dropped_links_count)
                keys.append(trace_id + span_id + (served if kind == SERVER_KIND else NOT_SERVER))

    string = pa.string()
    u32 = pa.uint32()
    starts = pa.array(ts, pa.int64())
    repeated = groups.arrays()
    columns: dict[str, pa.Array] = {
        "Timestamp": starts.cast(TIMESTAMP),
        "TraceId": pa.array(trace_ids, string),
        "SpanId": pa.array(span_ids, string),
        "ParentSpanId": pa.array(parent_ids, string),
        "TraceState": pa.array(trace_states, string),
        "SpanName": pa.array(names, string),
        "SpanKind": pa.DictionaryArray.from_arrays(pa.array(kinds, pa.int32()), KIND_VALUES),
        "SpanAttributes": span_attrs.array(),
        "Duration": pc.subtract_checked(pa.array(ends, pa.int64()), starts),
        "StatusCode": pa.DictionaryArray.from_arrays(
            pa.array(status_codes, pa.int32()), STATUS_VALUES
        ),
        "StatusMessage": pa.array(status_messages, string),
        "Events": events.array(),
        "Links": links.array(),
        "Flags": pa.array(flags, u32),
        "DroppedAttributesCount": pa.array(dropped_attrs, u32),
        "DroppedEventsCount": pa.array(dropped_events, u32),
        "DroppedLinksCount": pa.array(dropped_links, u32),
        "EventsDroppedAttributesCount": events.dropped_array(),
        "LinksDroppedAttributesCount": links.dropped_array(),
        "LinksFlags": links.flags_array(),
        **repeated,
    }
    table = pa.Table.from_arrays([columns[name] for name in COLUMN_NAMES], schema=BATCH_SCHEMA)
    return FlattenResult(SpanBatch(table, keys), rejected, reasons)


class _EventColumns:
    __slots__ = ("offsets", "times", "names", "attrs", "dropped")

    def __init__(self) -> None:
        self.offsets: list[int] = [0]
        self.times: list[int] = []
        self.names: list[str] = []
        self.attrs = _MapColumn()
        self.dropped: list[int] = []

    def append(self, span_events: Sequence[Span.Event]) -> None:
        for event in span_events:
            self.times.append(event.time_unix_nano)
            self.names.append(event.name)
            self.attrs.append(*attribute_lists(event.attributes))
            self.dropped.append(event.dropped_attributes_count)
        self.offsets.append(len(self.names))

    def array(self) -> pa.Array:
        values = pa.StructArray.from_arrays(
            [
                pa.array(self.times, TIMESTAMP),
                pa.array(self.names, pa.string()),
                self.attrs.array(),
            ],
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

    def append(self, span_links: Sequence[Span.Link]) -> None:
        for link in span_links:
            self.trace_ids.append(_hex_or_empty(link.trace_id))
            self.span_ids.append(_hex_or_empty(link.span_id))
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
