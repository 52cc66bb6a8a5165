"""The Arrow shape of a span batch: what the collector produces and the writer inserts.

Field order is the column order of ``otel_traces`` (sql/001_otel_traces.sql); a test
checks the two agree.
"""

from __future__ import annotations

import pyarrow as pa

STRING_MAP = pa.map_(pa.string(), pa.string())
TIMESTAMP = pa.timestamp("ns")

EVENT = pa.struct(
    [
        pa.field("Timestamp", TIMESTAMP),
        pa.field("Name", pa.string()),
        pa.field("Attributes", STRING_MAP),
    ]
)
LINK = pa.struct(
    [
        pa.field("TraceId", pa.string()),
        pa.field("SpanId", pa.string()),
        pa.field("TraceState", pa.string()),
        pa.field("Attributes", STRING_MAP),
    ]
)
# OTLP Resource.entity_refs: which resource attributes identify and describe an entity.
ENTITY_REF = pa.struct(
    [
        pa.field("SchemaUrl", pa.string()),
        pa.field("Type", pa.string()),
        pa.field("IdKeys", pa.list_(pa.string())),
        pa.field("DescriptionKeys", pa.list_(pa.string())),
    ]
)

SPAN_SCHEMA = pa.schema(
    [
        pa.field("Timestamp", TIMESTAMP, nullable=False),
        pa.field("TraceId", pa.string(), nullable=False),
        pa.field("SpanId", pa.string(), nullable=False),
        pa.field("ParentSpanId", pa.string(), nullable=False),
        pa.field("TraceState", pa.string(), nullable=False),
        pa.field("SpanName", pa.string(), nullable=False),
        pa.field("SpanKind", pa.string(), nullable=False),
        pa.field("ServiceName", pa.string(), nullable=False),
        pa.field("ResourceAttributes", STRING_MAP, nullable=False),
        pa.field("ScopeName", pa.string(), nullable=False),
        pa.field("ScopeVersion", pa.string(), nullable=False),
        pa.field("SpanAttributes", STRING_MAP, nullable=False),
        pa.field("Duration", pa.int64(), nullable=False),
        pa.field("StatusCode", pa.string(), nullable=False),
        pa.field("StatusMessage", pa.string(), nullable=False),
        pa.field("Events", pa.list_(EVENT), nullable=False),
        pa.field("Links", pa.list_(LINK), nullable=False),
        pa.field("Flags", pa.uint32(), nullable=False),
        pa.field("DroppedAttributesCount", pa.uint32(), nullable=False),
        pa.field("DroppedEventsCount", pa.uint32(), nullable=False),
        pa.field("DroppedLinksCount", pa.uint32(), nullable=False),
        pa.field("EventsDroppedAttributesCount", pa.list_(pa.uint32()), nullable=False),
        pa.field("LinksDroppedAttributesCount", pa.list_(pa.uint32()), nullable=False),
        pa.field("LinksFlags", pa.list_(pa.uint32()), nullable=False),
        pa.field("ScopeAttributes", STRING_MAP, nullable=False),
        pa.field("ScopeDroppedAttributesCount", pa.uint32(), nullable=False),
        pa.field("ResourceDroppedAttributesCount", pa.uint32(), nullable=False),
        pa.field("ResourceSchemaUrl", pa.string(), nullable=False),
        pa.field("ScopeSchemaUrl", pa.string(), nullable=False),
        pa.field("ResourceEntityRefs", pa.list_(ENTITY_REF), nullable=False),
    ]
)

COLUMN_NAMES: tuple[str, ...] = tuple(SPAN_SCHEMA.names)
