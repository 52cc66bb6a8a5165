"""The fast path of OTLP/JSON: a parsed document -> ExportTraceServiceRequest, directly.

protobuf's ``json_format.ParseDict`` is pure Python and generic: it took ~280 µs a
span, 74 % of importing a JSON lines file (docs/benchmarks.md, "Import"). This builds
the messages straight from the document for the shape OTLP exporters write
(lowerCamelCase names, hex ids, integer enums, 64-bit integers as strings or
numbers). Anything else (snake_case names, enum names, unknown fields, bytes values,
NaN as a string, a wrong type) raises ``Decline`` and ``otlp_json`` takes
``ParseDict``, which also words every error. A test checks that both give the same
request wherever this path answers.
"""

from __future__ import annotations

import re
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from flowscope.collector.flatten import NOT_HEX_ID, odd_hex_id


class Decline(Exception):
    """Not the usual shape: the generic parser decides."""


_HEX = re.compile(r"[0-9a-fA-F]*")
_DECIMAL = re.compile(r"-?[0-9]+")
_U64 = 2**64
I64 = 2**63  # an int64 is in [-I64, I64)
_U32 = 2**32
I32 = 2**31  # an int32 is in [-I32, I32)

_DOCUMENT = frozenset({"resourceSpans"})
_RESOURCE_SPANS = frozenset({"resource", "scopeSpans", "schemaUrl"})
_RESOURCE = frozenset({"attributes", "droppedAttributesCount"})
_SCOPE_SPANS = frozenset({"scope", "spans", "schemaUrl"})
_SCOPE = frozenset({"name", "version", "attributes", "droppedAttributesCount"})
_SPAN = frozenset(
    {
        "traceId",
        "spanId",
        "traceState",
        "parentSpanId",
        "flags",
        "name",
        "kind",
        "startTimeUnixNano",
        "endTimeUnixNano",
        "attributes",
        "droppedAttributesCount",
        "events",
        "droppedEventsCount",
        "links",
        "droppedLinksCount",
        "status",
    }
)
_EVENT = frozenset({"timeUnixNano", "name", "attributes", "droppedAttributesCount"})
_LINK = frozenset(
    {"traceId", "spanId", "traceState", "attributes", "droppedAttributesCount", "flags"}
)
_STATUS = frozenset({"message", "code"})


def request_from_document(document: Any) -> ExportTraceServiceRequest:
    """The request, or ``Decline`` when the document is not of the usual shape."""
    top = _object(document, _DOCUMENT)
    return ExportTraceServiceRequest(
        resource_spans=[_resource_spans(item) for item in _list(top, "resourceSpans")]
    )


def _resource_spans(value: Any) -> ResourceSpans:
    item = _object(value, _RESOURCE_SPANS)
    out = ResourceSpans(
        scope_spans=[_scope_spans(s) for s in _list(item, "scopeSpans")],
        schema_url=_string(item, "schemaUrl"),
    )
    if "resource" in item:
        resource = _object(item["resource"], _RESOURCE)
        out.resource.CopyFrom(
            Resource(
                attributes=_attributes(resource),
                dropped_attributes_count=_uint(resource, "droppedAttributesCount", _U32),
            )
        )
    return out


def _scope_spans(value: Any) -> ScopeSpans:
    item = _object(value, _SCOPE_SPANS)
    out = ScopeSpans(
        spans=[_span(s) for s in _list(item, "spans")], schema_url=_string(item, "schemaUrl")
    )
    if "scope" in item:
        scope = _object(item["scope"], _SCOPE)
        out.scope.CopyFrom(
            InstrumentationScope(
                name=_string(scope, "name"),
                version=_string(scope, "version"),
                attributes=_attributes(scope),
                dropped_attributes_count=_uint(scope, "droppedAttributesCount", _U32),
            )
        )
    return out


def _span(value: Any) -> Span:
    item = _object(value, _SPAN)
    span = Span(
        trace_id=_id(item, "traceId"),
        span_id=_id(item, "spanId"),
        trace_state=_string(item, "traceState"),
        parent_span_id=_id(item, "parentSpanId"),
        flags=_uint(item, "flags", _U32),
        name=_string(item, "name"),
        kind=_enum(item, "kind"),  # type: ignore[arg-type]  # an open enum: any int32
        start_time_unix_nano=_uint(item, "startTimeUnixNano", _U64),
        end_time_unix_nano=_uint(item, "endTimeUnixNano", _U64),
        attributes=_attributes(item),
        dropped_attributes_count=_uint(item, "droppedAttributesCount", _U32),
        events=[_event(e) for e in _list(item, "events")],
        dropped_events_count=_uint(item, "droppedEventsCount", _U32),
        links=[_link(link) for link in _list(item, "links")],
        dropped_links_count=_uint(item, "droppedLinksCount", _U32),
    )
    if "status" in item:
        status = _object(item["status"], _STATUS)
        code = _enum(status, "code")
        span.status.CopyFrom(Status(message=_string(status, "message"), code=code))  # type: ignore[arg-type]
    return span


def _event(value: Any) -> Span.Event:
    item = _object(value, _EVENT)
    return Span.Event(
        time_unix_nano=_uint(item, "timeUnixNano", _U64),
        name=_string(item, "name"),
        attributes=_attributes(item),
        dropped_attributes_count=_uint(item, "droppedAttributesCount", _U32),
    )


def _link(value: Any) -> Span.Link:
    item = _object(value, _LINK)
    return Span.Link(
        trace_id=_id(item, "traceId"),
        span_id=_id(item, "spanId"),
        trace_state=_string(item, "traceState"),
        attributes=_attributes(item),
        dropped_attributes_count=_uint(item, "droppedAttributesCount", _U32),
        flags=_uint(item, "flags", _U32),
    )


def _attributes(item: dict[str, Any]) -> list[KeyValue]:
    return [_key_value(kv) for kv in _list(item, "attributes")]


def _key_value(value: Any) -> KeyValue:
    item = _object(value, frozenset({"key", "value"}))
    out = KeyValue(key=_string(item, "key"))
    if "value" in item:
        out.value.CopyFrom(_any_value(item["value"]))
    return out


def _any_value(value: Any) -> AnyValue:
    if not isinstance(value, dict) or len(value) > 1:
        raise Decline
    if not value:
        return AnyValue()
    ((kind, inner),) = value.items()
    if kind == "stringValue" and isinstance(inner, str):
        return AnyValue(string_value=inner)
    if kind == "intValue":
        return AnyValue(int_value=_integer(inner, -I64, I64))
    if kind == "boolValue" and isinstance(inner, bool):
        return AnyValue(bool_value=inner)
    if kind == "doubleValue" and isinstance(inner, int | float) and not isinstance(inner, bool):
        return AnyValue(double_value=float(inner))
    if kind == "arrayValue":
        values = _list(_object(inner, frozenset({"values"})), "values")
        return AnyValue(array_value=ArrayValue(values=[_any_value(v) for v in values]))
    if kind == "kvlistValue":
        values = _list(_object(inner, frozenset({"values"})), "values")
        return AnyValue(kvlist_value=KeyValueList(values=[_key_value(kv) for kv in values]))
    raise Decline  # bytesValue, a string double ("NaN"), a wrong type, another name


def _object(value: Any, keys: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict) or not keys.issuperset(value):
        raise Decline
    return value


def _list(item: dict[str, Any], key: str) -> list[Any]:
    value = item.get(key, [])
    if not isinstance(value, list):
        raise Decline
    return value


def _string(item: dict[str, Any], key: str) -> str:
    value = item.get(key, "")
    if not isinstance(value, str):
        raise Decline
    return value


def _id(item: dict[str, Any], key: str) -> bytes:
    return hex_id(_string(item, key))


def hex_id(text: str) -> bytes:
    """An OTLP/JSON id's bytes; not hex (``bytes.fromhex`` alone would also take
    "01 02"): the marker the span-level check rejects that span by, saying why."""
    if not _HEX.fullmatch(text):
        return NOT_HEX_ID
    return bytes.fromhex(text) if len(text) % 2 == 0 else odd_hex_id(len(text))


def _integer(value: Any, low: int, high: int) -> int:
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        try:
            number = int(value)
        except ValueError:  # over Python's 4,300 digits: a 500 before
            raise Decline from None
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise Decline  # floats, exponents, spaces: ParseDict's rules
    if not low <= number < high:
        raise Decline
    return number


def _uint(item: dict[str, Any], key: str, high: int) -> int:
    return _integer(item[key], 0, high) if key in item else 0


def _enum(item: dict[str, Any], key: str) -> int:
    if key not in item:
        return 0
    value = item[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise Decline  # an enum name, or "2"
    return _integer(value, -I32, I32)
