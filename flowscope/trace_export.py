"""One stored trace as an OTLP/JSON export request (``flowscope trace ID --format
otlp``): a file ``flowscope import`` and other OTLP tools read back, to hand a trace
to a colleague as Jaeger UI's "Download JSON" does.

The spans come from ``sql/trace_export.sql`` through the SQL sandbox, so a file and
a server answer alike. Attribute values come back as the store keeps them: text (an
int sent as 500 is "500"), as the ClickHouse exporter's schema stores them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from flowscope.store import sql_files

# OTLP's enum numbers for the names the span table stores.
SPAN_KINDS = {
    "Unspecified": 0,
    "Internal": 1,
    "Server": 2,
    "Client": 3,
    "Producer": 4,
    "Consumer": 5,
}
STATUS_CODES = {"Unset": 0, "Ok": 1, "Error": 2}


def export_query(trace_id: str, limit: int, offset: int) -> str:
    """The export SQL for ``trace_id`` (as stored: 32 lower-case hex digits), the
    ``limit`` spans after the first ``offset``."""
    return _filled("trace_export", trace_id, limit, offset)


def count_query(trace_id: str) -> str:
    """The SQL counting ``trace_id``'s spans."""
    return _filled("trace_export_count", trace_id, 0, 0)


def _filled(name: str, trace_id: str, limit: int, offset: int) -> str:
    values = {"trace_id": sql_files.literal(trace_id), "limit": str(int(limit))}
    return sql_files.filled(name, values | {"offset": str(int(offset))})


def read_once(columns: Sequence[str], rows: Sequence[Sequence[Any]], count: int) -> bool:
    """Whether ``rows`` are ``count`` spans, each once: a span that arrived between two
    pages with an earlier start moved the later pages along, which then repeated
    spans (and a deletion skipped some)."""
    index = [columns.index(c) for c in _IDENTITY]
    seen = {tuple(json.dumps(row[i], sort_keys=True) for i in index) for row in rows}
    return len(rows) == count == len(seen)


# What tells two stored spans apart (a Zipkin server half shares its client's id).
_IDENTITY = (
    "SpanId",
    "SpanKind",
    "ResourceAttributes",
    "ParentSpanId",
    "StartNs",
    "Duration",
    "SpanName",
)


def _attributes(values: Mapping[str, str] | None) -> list[dict[str, Any]]:
    return [{"key": k, "value": {"stringValue": v}} for k, v in (values or {}).items()]


def _span(row: Mapping[str, Any]) -> dict[str, Any]:
    start = int(row["StartNs"])
    events, links = row["Events"] or [], row["Links"] or []
    event_drops = row["EventsDroppedAttributesCount"] or [0] * len(events)
    link_drops = row["LinksDroppedAttributesCount"] or [0] * len(links)
    link_flags = row["LinksFlags"] or [0] * len(links)
    return {
        "traceId": row["TraceId"],
        "spanId": row["SpanId"],
        "parentSpanId": row["ParentSpanId"],
        "traceState": row["TraceState"],
        "flags": row["Flags"],
        "name": row["SpanName"],
        "kind": SPAN_KINDS.get(row["SpanKind"], 0),
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + int(row["Duration"])),
        "attributes": _attributes(row["SpanAttributes"]),
        "droppedAttributesCount": row["DroppedAttributesCount"],
        "events": [
            {
                "timeUnixNano": str(int(event["time"])),
                "name": event["name"],
                "attributes": _attributes(event["attributes"]),
                "droppedAttributesCount": dropped,
            }
            for event, dropped in zip(events, event_drops, strict=True)
        ],
        "droppedEventsCount": row["DroppedEventsCount"],
        "links": [
            {
                "traceId": link["TraceId"],
                "spanId": link["SpanId"],
                "traceState": link["TraceState"],
                "attributes": _attributes(link["Attributes"]),
                "droppedAttributesCount": dropped,
                "flags": flags,
            }
            for link, dropped, flags in zip(links, link_drops, link_flags, strict=True)
        ],
        "droppedLinksCount": row["DroppedLinksCount"],
        "status": {"code": STATUS_CODES.get(row["StatusCode"], 0), "message": row["StatusMessage"]},
    }


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def otlp_request(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """The rows of ``sql/trace_export.sql`` as one ExportTraceServiceRequest in
    OTLP/JSON: a ResourceSpans per resource, a ScopeSpans per scope within it, the
    spans in the order the rows come (by start)."""
    # Resource and scope by every field they have, in the order first met.
    resources: dict[str, tuple[dict[str, Any], dict[str, tuple[dict[str, Any], list[Any]]]]] = {}
    for values in rows:
        row = dict(zip(columns, values, strict=True))
        resource = {
            "resource": {
                "attributes": _attributes(row["ResourceAttributes"]),
                "droppedAttributesCount": row["ResourceDroppedAttributesCount"],
                "entityRefs": [
                    {
                        "schemaUrl": ref["SchemaUrl"],
                        "type": ref["Type"],
                        "idKeys": ref["IdKeys"],
                        "descriptionKeys": ref["DescriptionKeys"],
                    }
                    for ref in row["ResourceEntityRefs"] or []
                ],
            },
            "schemaUrl": row["ResourceSchemaUrl"],
        }
        scope = {
            "scope": {
                "name": row["ScopeName"],
                "version": row["ScopeVersion"],
                "attributes": _attributes(row["ScopeAttributes"]),
                "droppedAttributesCount": row["ScopeDroppedAttributesCount"],
            },
            "schemaUrl": row["ScopeSchemaUrl"],
        }
        _, scopes = resources.setdefault(_key(resource), (resource, {}))
        scopes.setdefault(_key(scope), (scope, []))[1].append(_span(row))
    return {
        "resourceSpans": [
            {
                **resource,
                "scopeSpans": [{**scope, "spans": spans} for scope, spans in scopes.values()],
            }
            for resource, scopes in resources.values()
        ]
    }
