"""The fast path of ``flatten``: OTLP protobuf bytes -> the same Arrow table, via C.

``collector/_fastflatten.c`` reads the wire format straight into column buffers
(no protobuf objects, which are most of the Python path's cost); this module wraps
those buffers into Arrow arrays without touching individual values. The result is
the table ``flatten.flatten_request`` builds for the same request -- a test checks
that on every request shape the test suite has.

The extension is optional: it is built by ``pip install`` when a C compiler is
present. Without it, or when it declines a request (invalid ids, duplicate
attribute keys, entity refs, anything unusual), ``flatten_body`` returns None and
``decode`` takes the Python path, which also produces every error message.
``FLOWSCOPE_PURE_PYTHON=1`` turns the fast path off.
"""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from flowscope.collector.attributes import any_value_str
from flowscope.collector.decode_budget import MAX_EXPANDED_BYTES, MAX_PROTOBUF_MESSAGES
from flowscope.collector.flatten import (
    KIND_VALUES,
    STATUS_VALUES,
    FlattenResult,
    SpanBatch,
)
from flowscope.store.columns import (
    BATCH_SCHEMA,
    COLUMN_NAMES,
    ENTITY_REF,
    EVENT,
    LINK,
    STRING_MAP,
    TIMESTAMP,
)
from flowscope.store.dedup import split_keys

try:
    from flowscope.collector import _fastflatten  # type: ignore[attr-defined]
except ImportError:  # built without a C compiler
    _fastflatten = None


def available() -> bool:
    """Whether the C fast path is built and not turned off."""
    return _fastflatten is not None and os.environ.get("FLOWSCOPE_PURE_PYTHON", "") in ("", "0")


def _stringify(raw: bytes) -> str:
    """AnyValue kinds the C code leaves to Python (double, bytes, array, kvlist)."""
    return any_value_str(AnyValue.FromString(raw))


def flatten_body(body: bytes) -> FlattenResult | None:
    """The flattened request, or None when the Python path must handle it."""
    if not available():
        return None
    try:
        columns = _fastflatten.flatten(body, _stringify, MAX_PROTOBUF_MESSAGES, MAX_EXPANDED_BYTES)
    except Exception:  # noqa: BLE001 - the Python path reports what is wrong with the body
        return None
    if columns is None:
        return None
    return FlattenResult(SpanBatch(_table(columns), split_keys(columns["keys"])))


def count_messages(body: bytes) -> int | None:
    """The OTLP messages in ``body`` (counting stops once past ``MAX_PROTOBUF_MESSAGES``),
    or None when the C extension is not there to count them."""
    if _fastflatten is None:
        return None
    return int(_fastflatten.count_messages(body, MAX_PROTOBUF_MESSAGES))


def _fixed(kind: pa.DataType, data: bytes) -> pa.Array:
    return pa.Array.from_buffers(kind, len(data) * 8 // kind.bit_width, [None, pa.py_buffer(data)])


def _strings(pair: tuple[bytes, bytes]) -> pa.Array:
    offsets, data = pair
    count = len(offsets) // 4 - 1
    return pa.Array.from_buffers(
        pa.string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def _map(triple: tuple[bytes, tuple[bytes, bytes], tuple[bytes, bytes]]) -> pa.Array:
    offsets, keys, values = triple
    return pa.MapArray.from_arrays(
        _fixed(pa.int32(), offsets), _strings(keys), _strings(values), type=STRING_MAP
    )


def _lists(offsets: bytes, values: pa.Array) -> pa.Array:
    return pa.ListArray.from_arrays(_fixed(pa.int32(), offsets), values)


def _table(c: dict[str, Any]) -> pa.Table:
    u32 = pa.uint32()
    groups = _fixed(pa.int32(), c["groups"])
    group_count = c["group_count"]
    per_group: dict[str, pa.Array] = {
        "ServiceName": _strings(c["g_services"]),
        "ResourceAttributes": _map(c["g_resource_attrs"]),
        "ScopeName": _strings(c["g_scope_names"]),
        "ScopeVersion": _strings(c["g_scope_versions"]),
        "ScopeAttributes": _map(c["g_scope_attrs"]),
        "ScopeDroppedAttributesCount": _fixed(u32, c["g_scope_dropped"]),
        "ResourceDroppedAttributesCount": _fixed(u32, c["g_resource_dropped"]),
        "ResourceSchemaUrl": _strings(c["g_resource_schema"]),
        "ScopeSchemaUrl": _strings(c["g_scope_schema"]),
        # Requests with entity refs take the Python path, so here every list is empty.
        "ResourceEntityRefs": pa.array([[]] * group_count, pa.list_(ENTITY_REF)),
    }
    event_offsets, link_offsets = c["event_offsets"], c["link_offsets"]
    events = pa.StructArray.from_arrays(
        [
            _fixed(pa.int64(), c["ev_times"]).cast(TIMESTAMP),
            _strings(c["ev_names"]),
            _map(c["ev_attrs"]),
        ],
        fields=list(EVENT),
    )
    links = pa.StructArray.from_arrays(
        [
            _strings(c["ln_trace_ids"]),
            _strings(c["ln_span_ids"]),
            _strings(c["ln_states"]),
            _map(c["ln_attrs"]),
        ],
        fields=list(LINK),
    )
    starts = _fixed(pa.int64(), c["starts"])
    columns: dict[str, pa.Array] = {
        "Timestamp": starts.cast(TIMESTAMP),
        "TraceId": _strings(c["trace_ids"]),
        "SpanId": _strings(c["span_ids"]),
        "ParentSpanId": _strings(c["parent_ids"]),
        "TraceState": _strings(c["trace_states"]),
        "SpanName": _strings(c["names"]),
        "SpanKind": pa.DictionaryArray.from_arrays(_fixed(pa.int32(), c["kinds"]), KIND_VALUES),
        "SpanAttributes": _map(c["attrs"]),
        "Duration": pc.subtract_checked(_fixed(pa.int64(), c["ends"]), starts),
        "StatusCode": pa.DictionaryArray.from_arrays(_fixed(pa.int32(), c["codes"]), STATUS_VALUES),
        "StatusMessage": _strings(c["status_messages"]),
        "Events": _lists(event_offsets, events),
        "Links": _lists(link_offsets, links),
        "Flags": _fixed(u32, c["flags"]),
        "DroppedAttributesCount": _fixed(u32, c["dropped_attrs"]),
        "DroppedEventsCount": _fixed(u32, c["dropped_events"]),
        "DroppedLinksCount": _fixed(u32, c["dropped_links"]),
        "EventsDroppedAttributesCount": _lists(event_offsets, _fixed(u32, c["ev_dropped"])),
        "LinksDroppedAttributesCount": _lists(link_offsets, _fixed(u32, c["ln_dropped"])),
        "LinksFlags": _lists(link_offsets, _fixed(u32, c["ln_flags"])),
        **{
            name: pa.DictionaryArray.from_arrays(groups, values)
            for name, values in per_group.items()
        },
    }
    return pa.Table.from_arrays([columns[name] for name in COLUMN_NAMES], schema=BATCH_SCHEMA)


__all__ = ["available", "flatten_body"]
