"""One stored trace as an OTLP/JSON export request (``flowscope trace ID --format
otlp``): a file ``flowscope import`` and other OTLP tools read back, to hand a trace
to a colleague as Jaeger UI's "Download JSON" does.

The spans come from ``sql/trace_export.sql`` through the SQL sandbox, so a file and
a server answer alike. Attribute values come back as the store keeps them: text (an
int sent as 500 is "500"), as the ClickHouse exporter's schema stores them.
"""

from __future__ import annotations

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


def export_query(trace_id: str) -> str:
    """The export SQL for ``trace_id`` (as stored: 32 lower-case hex digits)."""
    literal = "'" + trace_id.replace("'", "''") + "'"
    return sql_files.query("trace_export").replace("$trace_id", literal)


def _attributes(values: Mapping[str, str] | None) -> list[dict[str, Any]]:
    return [{"key": k, "value": {"stringValue": v}} for k, v in (values or {}).items()]


def _span(row: Mapping[str, Any]) -> dict[str, Any]:
    start = int(row["StartNs"])
    span: dict[str, Any] = {
        "traceId": row["TraceId"],
        "spanId": row["SpanId"],
        "parentSpanId": row["ParentSpanId"],
        "traceState": row["TraceState"],
        "name": row["SpanName"],
        "kind": SPAN_KINDS.get(row["SpanKind"], 0),
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + int(row["Duration"])),
        "attributes": _attributes(row["SpanAttributes"]),
        "events": [
            {
                "timeUnixNano": str(int(event["time"])),
                "name": event["name"],
                "attributes": _attributes(event["attributes"]),
            }
            for event in row["Events"] or []
        ],
        "links": [
            {
                "traceId": link["TraceId"],
                "spanId": link["SpanId"],
                "traceState": link["TraceState"],
                "attributes": _attributes(link["Attributes"]),
            }
            for link in row["Links"] or []
        ],
        "status": {"code": STATUS_CODES.get(row["StatusCode"], 0), "message": row["StatusMessage"]},
    }
    return span


def otlp_request(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """The rows of ``sql/trace_export.sql`` as one ExportTraceServiceRequest in
    OTLP/JSON: a ResourceSpans per resource, a ScopeSpans per scope within it, the
    spans in the order the rows come (by start)."""
    resources: dict[tuple[tuple[str, str], ...], dict[tuple[str, str], list[dict[str, Any]]]] = {}
    for values in rows:
        row = dict(zip(columns, values, strict=True))
        resource = tuple((row["ResourceAttributes"] or {}).items())
        scope = (row["ScopeName"], row["ScopeVersion"])
        resources.setdefault(resource, {}).setdefault(scope, []).append(_span(row))
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _attributes(dict(resource))},
                "scopeSpans": [
                    {"scope": {"name": name, "version": version}, "spans": spans}
                    for (name, version), spans in scopes.items()
                ],
            }
            for resource, scopes in resources.items()
        ]
    }
