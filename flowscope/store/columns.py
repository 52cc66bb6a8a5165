"""The Arrow shape of a span batch: what the collector produces and the writer inserts.

Field order is the column order of ``otel_traces`` (sql/001_otel_traces.sql); a test
checks the two agree.
"""

from __future__ import annotations

import pyarrow as pa

STRING_MAP = pa.map_(pa.string(), pa.string())
TIMESTAMP = pa.timestamp("ns")
# DuckDB's TIMESTAMP_NS holds signed 64-bit nanoseconds, and reads this value (and its
# negative) as +-infinity: a time at or past it cannot be stored or compared with one
# (past 2262-04-11, before 1677-09-21).
TIMESTAMP_NS_LIMIT = 2**63 - 1

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

# Columns with few distinct values per batch (the resource and scope a span came with,
# its kind and status) travel dictionary-encoded: DuckDB converts each distinct value
# once instead of once per span, which for the attribute maps is most of an insert's
# cost (each MAP entry is checked for duplicate keys as it is converted).
DICTIONARY_COLUMNS = frozenset(
    {
        "SpanKind",
        "ServiceName",
        "ResourceAttributes",
        "ScopeName",
        "ScopeVersion",
        "StatusCode",
        "ScopeAttributes",
        "ScopeDroppedAttributesCount",
        "ResourceDroppedAttributesCount",
        "ResourceSchemaUrl",
        "ScopeSchemaUrl",
        "ResourceEntityRefs",
    }
)

BATCH_SCHEMA = pa.schema(
    [
        pa.field(f.name, pa.dictionary(pa.int32(), f.type), nullable=False)
        if f.name in DICTIONARY_COLUMNS
        else f
        for f in SPAN_SCHEMA
    ]
)


def as_batch(table: pa.Table) -> pa.Table:
    """``table`` in BATCH_SCHEMA, the one shape the writer inserts (accepts SPAN_SCHEMA too)."""
    if table.schema.equals(BATCH_SCHEMA):
        return table
    if not table.schema.equals(SPAN_SCHEMA):
        raise ValueError("a span batch must have SPAN_SCHEMA or BATCH_SCHEMA columns")
    identity = pa.array(range(table.num_rows), pa.int32())
    columns = [
        pa.DictionaryArray.from_arrays(identity, table.column(f.name).combine_chunks())
        if f.name in DICTIONARY_COLUMNS
        else table.column(f.name)
        for f in SPAN_SCHEMA
    ]
    return pa.Table.from_arrays(columns, schema=BATCH_SCHEMA)
