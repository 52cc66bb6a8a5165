"""Jaeger JSON (UI download / query API) -> OTLP, checked value by value and through flatten."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from flowscope.collector.attributes import any_value_raw
from flowscope.collector.errors import BadRequest
from flowscope.collector.flatten import flatten_request
from flowscope.collector.jaeger_json import jaeger_to_otlp

DATA = Path(__file__).parent / "data"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
ROOT, CALL, QUERY = "00f067aa0ba902b7", "b7ad6b7169203331", "5fb397be34d26b51"
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns


def _document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / "jaeger_ui_trace.json").read_text())
    return loaded


def _attrs(kvs: Iterable[KeyValue]) -> list[tuple[str, Any]]:
    return [(kv.key, any_value_raw(kv.value)) for kv in kvs]


def _spans(request: ExportTraceServiceRequest) -> dict[str, Span]:
    return {
        span.span_id.hex(): span
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    }


def _rows(request: ExportTraceServiceRequest) -> dict[str, dict[str, Any]]:
    result = flatten_request(request)
    assert result.rejected == 0, result.reasons
    return {row["SpanId"]: row for row in result.batch.table.to_pylist()}


def _tag(key: str, kind: str, value: Any) -> dict[str, Any]:
    return {"key": key, "type": kind, "value": value}


def _span(span_id: str = "0000000000000001", **fields: Any) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceID": TRACE,
        "spanID": span_id,
        "operationName": "op",
        "references": [],
        "startTime": 1_767_225_600_000_000,
        "duration": 10,
        "tags": [],
        "logs": [],
        "processID": "p1",
    }
    span.update(fields)
    return span


def _trace(*spans: dict[str, Any], service: str = "svc") -> dict[str, Any]:
    return {
        "traceID": TRACE,
        "spans": list(spans),
        "processes": {"p1": {"serviceName": service, "tags": []}},
    }


def _one(span: dict[str, Any]) -> Span:
    spans = list(_spans(jaeger_to_otlp({"data": [_trace(span)]})).values())
    assert len(spans) == 1
    return spans[0]


# --- the UI download fixture ----------------------------------------------------------------


def test_ui_download_resources_and_scopes() -> None:
    request = jaeger_to_otlp(_document())

    assert len(request.resource_spans) == 2
    frontend, customer = request.resource_spans
    assert _attrs(frontend.resource.attributes) == [
        ("service.name", "frontend"),
        ("client-uuid", "7d2a5e3c1f9b4e08"),
        ("ip", "10.0.0.5"),
        ("host.name", "web-1"),  # hostname, renamed as the Collector's translator does
        ("opencensus.exporterversion", "Jaeger-Go-2.30.0"),
    ]
    assert _attrs(customer.resource.attributes) == [
        ("service.name", "customer"),
        ("telemetry.sdk.language", "go"),
        ("host.name", "db-1"),
    ]
    assert [
        (ss.scope.name, ss.scope.version, [s.span_id.hex() for s in ss.spans])
        for ss in frontend.scope_spans
    ] == [
        ("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", "0.49.0", [ROOT]),
        ("", "", [CALL]),
    ]
    assert [(ss.scope.name, ss.scope.version) for ss in customer.scope_spans] == [
        ("github.com/go-sql-driver/mysql", "1.8.1")
    ]


def test_ui_download_server_span() -> None:
    root = _spans(jaeger_to_otlp(_document()))[ROOT]

    assert root.trace_id == bytes.fromhex(TRACE)
    assert root.parent_span_id == b""
    assert root.name == "HTTP GET /dispatch"
    assert root.kind == Span.SPAN_KIND_SERVER
    assert root.start_time_unix_nano == T0
    assert root.end_time_unix_nano == T0 + 4_500_000
    assert root.trace_state == "rojo=00f067aa0ba902b7"
    assert root.flags == 0x01  # Jaeger's sampled flag -> W3C sampled
    # span.kind, otel.scope.*, w3c.tracestate are consumed; 200 leaves the status unset.
    assert _attrs(root.attributes) == [
        ("http.method", "GET"),
        ("http.status_code", 200),
        ("http.url", "/dispatch?customer=123"),
        ("sampler.param", True),
        ("internal.span.format", "proto"),
    ]
    assert not root.HasField("status")
    assert list(root.events) == [] and list(root.links) == []


def test_ui_download_client_span_with_error_and_log() -> None:
    call = _spans(jaeger_to_otlp(_document()))[CALL]

    assert call.parent_span_id == bytes.fromhex(ROOT)
    assert call.kind == Span.SPAN_KIND_CLIENT
    assert call.start_time_unix_nano == T0 + 250_000
    assert call.end_time_unix_nano == T0 + 4_150_000
    assert call.status == Status(code=Status.STATUS_CODE_ERROR, message="upstream timed out")
    assert _attrs(call.attributes) == [
        ("http.method", "GET"),
        ("peer.service", "customer"),
        ("retry.backoff_ratio", 1.5),
        ("request.digest", b"\xde\xad\xbe\xef"),
        ("http.status_code", 504),
    ]
    assert len(call.events) == 1
    event = call.events[0]
    assert (event.time_unix_nano, event.name) == (T0 + 1_450_000, "retry")
    assert _attrs(event.attributes) == [("attempt", 2), ("level", "warn")]
    assert list(call.links) == []  # the CHILD_OF parent is not repeated as a link


def test_ui_download_follows_from_span() -> None:
    query = _spans(jaeger_to_otlp(_document()))[QUERY]

    # No CHILD_OF reference: Jaeger takes the FOLLOWS_FROM one as parent; the
    # translator still keeps it as a link (only CHILD_OF parents are skipped).
    assert query.parent_span_id == bytes.fromhex(CALL)
    assert [
        (link.trace_id.hex(), link.span_id.hex(), _attrs(link.attributes)) for link in query.links
    ] == [(TRACE, CALL, [("opentracing.ref_type", "follows_from")])]
    assert query.kind == Span.SPAN_KIND_CLIENT
    assert query.status == Status(code=Status.STATUS_CODE_OK)
    assert _attrs(query.attributes) == [
        ("db.system", "mysql"),
        ("db.statement", "SELECT * FROM customer WHERE customer_id=?"),
        ("db.rows", 1),
    ]


def test_ui_download_through_flatten() -> None:
    rows = _rows(jaeger_to_otlp(_document()))

    assert set(rows) == {ROOT, CALL, QUERY}
    expected = {
        ROOT: ("frontend", "Server", "Unset", "", "", 4_500_000),
        CALL: ("frontend", "Client", "Error", "upstream timed out", ROOT, 3_900_000),
        QUERY: ("customer", "Client", "Ok", "", CALL, 2_100_000),
    }
    for span_id, (service, kind, status, message, parent, duration) in expected.items():
        row = rows[span_id]
        assert row["TraceId"] == TRACE
        assert (
            row["ServiceName"],
            row["SpanKind"],
            row["StatusCode"],
            row["StatusMessage"],
            row["ParentSpanId"],
            row["Duration"],
        ) == (service, kind, status, message, parent, duration)
    assert dict(rows[CALL]["SpanAttributes"]) == {
        "http.method": "GET",
        "peer.service": "customer",
        "retry.backoff_ratio": "1.5",
        "request.digest": "3q2+7w==",
        "http.status_code": "504",
    }
    assert dict(rows[ROOT]["SpanAttributes"])["sampler.param"] == "true"
    assert rows[ROOT]["TraceState"] == "rojo=00f067aa0ba902b7"
    assert (
        rows[ROOT]["ScopeName"] == "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
    )
    assert rows[QUERY]["ScopeVersion"] == "1.8.1"
    assert dict(rows[QUERY]["ResourceAttributes"])["host.name"] == "db-1"
    events = rows[CALL]["Events"]
    assert [(e["Name"], dict(e["Attributes"])) for e in events] == [
        ("retry", {"attempt": "2", "level": "warn"})
    ]
    assert [(link["SpanId"], dict(link["Attributes"])) for link in rows[QUERY]["Links"]] == [
        (CALL, {"opentracing.ref_type": "follows_from"})
    ]


def test_bare_trace_and_list_of_traces_give_the_same_request() -> None:
    wrapped = jaeger_to_otlp(_document())
    trace = _document()["data"][0]
    assert jaeger_to_otlp(trace) == wrapped
    assert jaeger_to_otlp([trace]) == wrapped


# --- mapping details --------------------------------------------------------------------------


def test_short_ids_are_left_padded() -> None:
    span = _one(_span("1f", traceID="463ac35c9f6413ad"))
    assert span.trace_id.hex() == "0000000000000000463ac35c9f6413ad"
    assert span.span_id.hex() == "000000000000001f"


def test_warnings_are_kept_as_jaeger_v2_keeps_them() -> None:
    """They were dropped: the Jaeger UI shows them on the span (clock skew, bad parent)."""
    notes = ["clock skew adjustment disabled", "invalid parent span IDs=ff"]
    rows = _rows(jaeger_to_otlp({"data": [_trace(_span(warnings=notes))]}))
    (row,) = rows.values()
    assert dict(row["SpanAttributes"]) == {
        "@jaeger@warnings": json.dumps(notes, separators=(",", ":"))
    }
    for none in (None, []):
        assert _one(_span(warnings=none)).attributes == []
    odd = _rows(jaeger_to_otlp({"data": [_trace(_span(warnings=["a", 3, None]))]}))
    assert dict(next(iter(odd.values()))["SpanAttributes"]) == {
        "@jaeger@warnings": '["a","3","null"]'
    }
    with pytest.raises(BadRequest, match="warnings is a string, expected a list"):
        _one(_span(warnings="a"))


def test_child_of_is_parent_and_other_references_become_links() -> None:
    other_trace = "0af7651916cd43dd8448eb211c80319c"
    span = _one(
        _span(
            references=[
                {"refType": "FOLLOWS_FROM", "traceID": TRACE, "spanID": "00000000000000aa"},
                {"refType": "CHILD_OF", "traceID": other_trace, "spanID": "00000000000000bb"},
                {"refType": "CHILD_OF", "traceID": TRACE, "spanID": "00000000000000cc"},
            ]
        )
    )
    # CHILD_OF in another trace cannot be the parent: first same-trace CHILD_OF wins.
    assert span.parent_span_id.hex() == "00000000000000cc"
    assert [
        (link.trace_id.hex(), link.span_id.hex(), _attrs(link.attributes)[0][1])
        for link in span.links
    ] == [
        (TRACE, "00000000000000aa", "follows_from"),
        (other_trace, "00000000000000bb", "child_of"),
    ]


def test_deprecated_parent_span_id_field_is_read() -> None:
    span = _one(_span(references=None, parentSpanID="00000000000000dd"))
    assert span.parent_span_id.hex() == "00000000000000dd"


@pytest.mark.parametrize(
    ("tags", "code", "message", "left"),
    [
        # error=true wins over otel.status_code, which is dropped either way.
        (
            [_tag("error", "bool", True), _tag("otel.status_code", "string", "OK")],
            Status.STATUS_CODE_ERROR,
            "",
            [],
        ),
        ([_tag("error", "string", "true")], Status.STATUS_CODE_ERROR, "", []),
        ([_tag("error", "bool", False)], None, "", [("error", False)]),
        (
            [_tag("error", "bool", True), _tag("http.status_message", "string", "Bad Gateway")],
            Status.STATUS_CODE_ERROR,
            "Bad Gateway",
            [("http.status_message", "Bad Gateway")],
        ),
        (
            [
                _tag("otel.status_code", "string", "error"),
                _tag("otel.status_description", "string", "boom"),
            ],
            Status.STATUS_CODE_ERROR,
            "boom",
            [],
        ),
        ([_tag("otel.status_code", "string", "UNSET")], Status.STATUS_CODE_UNSET, "", []),
        (
            [_tag("span.kind", "string", "client"), _tag("http.status_code", "int64", 404)],
            Status.STATUS_CODE_ERROR,
            "",
            [("http.status_code", 404)],
        ),
        (
            [_tag("span.kind", "string", "server"), _tag("http.status_code", "int64", 404)],
            None,
            "",
            [("http.status_code", 404)],
        ),
        (
            [
                _tag("span.kind", "string", "server"),
                _tag("http.status_code", "string", "503"),
                _tag("http.status_message", "string", "Unavailable"),
            ],
            Status.STATUS_CODE_ERROR,
            "Unavailable",
            [("http.status_code", "503"), ("http.status_message", "Unavailable")],
        ),
    ],
)
def test_status(
    tags: list[dict[str, Any]], code: int | None, message: str, left: list[tuple[str, Any]]
) -> None:
    span = _one(_span(tags=tags))
    if code is None:
        assert not span.HasField("status")
    else:
        assert span.status == Status(code=code, message=message)  # type: ignore[arg-type]
    assert _attrs(span.attributes) == left


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("server", Span.SPAN_KIND_SERVER),
        ("producer", Span.SPAN_KIND_PRODUCER),
        ("consumer", Span.SPAN_KIND_CONSUMER),
        ("internal", Span.SPAN_KIND_INTERNAL),
        ("CLIENT", Span.SPAN_KIND_CLIENT),
        ("rpc", Span.SPAN_KIND_UNSPECIFIED),
    ],
)
def test_span_kind_tag(value: str, kind: int) -> None:
    span = _one(_span(tags=[_tag("span.kind", "string", value)]))
    assert span.kind == kind
    assert list(span.attributes) == []


def test_tag_values_in_other_json_spellings() -> None:
    span = _one(
        _span(
            tags=[
                _tag("big", "int64", "9223372036854775807"),  # int64 as a string, as ES stores it
                _tag("ratio", "float64", 2),
                _tag("flag", "bool", "false"),
                {"key": "untyped", "value": 7},
            ]
        )
    )
    assert _attrs(span.attributes) == [
        ("big", 9223372036854775807),
        ("ratio", 2.0),
        ("flag", False),
        ("untyped", 7),
    ]


def test_log_without_event_field_has_no_name() -> None:
    span = _one(
        _span(
            logs=[{"timestamp": 1_767_225_600_000_005, "fields": [_tag("message", "string", "hi")]}]
        )
    )
    assert [(e.name, _attrs(e.attributes)) for e in span.events] == [("", [("message", "hi")])]


def test_processes_group_by_content_across_traces() -> None:
    first = _trace(_span("01"), service="api")
    second = _trace(_span("02"), service="api")
    second["traceID"] = second["spans"][0]["traceID"] = "0af7651916cd43dd8448eb211c80319c"
    third = _trace(_span("03"), service="worker")
    request = jaeger_to_otlp({"data": [first, second, third]})
    assert [
        (_attrs(rs.resource.attributes), len(rs.scope_spans[0].spans))
        for rs in request.resource_spans
    ] == [
        ([("service.name", "api")], 2),
        ([("service.name", "worker")], 1),
    ]


def test_embedded_process_and_no_process() -> None:
    embedded = _span("01", processID=None, process={"serviceName": "inline", "tags": []})
    orphan = _span("02", processID=None)
    unnamed = _span("03", processID="p9")
    trace = _trace(embedded, orphan, unnamed)
    trace["processes"]["p9"] = {
        "serviceName": "OTLPResourceNoServiceName",
        "tags": [_tag("host.name", "string", "h")],
    }
    request = jaeger_to_otlp(trace)
    assert [_attrs(rs.resource.attributes) for rs in request.resource_spans] == [
        [("service.name", "inline")],
        [],  # no process and the translator's "no service name" marker: empty resource
    ]
    assert len(request.resource_spans[1].scope_spans[0].spans) == 2


def test_empty_data_is_an_empty_request() -> None:
    assert jaeger_to_otlp({"data": [], "total": 0}) == ExportTraceServiceRequest()


# --- bad input ----------------------------------------------------------------------------------


def _with(change: Any) -> dict[str, Any]:
    document = _document()
    change(document["data"][0])
    return document


def _set_span(field: str, value: Any, index: int = 0) -> Any:
    return lambda trace: trace["spans"][index].__setitem__(field, value)


def test_ui_download_values_that_javascript_rounded_are_kept_as_written() -> None:
    """ "Download Results" passes numbers through JavaScript: 2^63 - 1 comes out as
    9223372036854776000, just past int64, and the whole file was refused."""
    span = _one(
        _span(
            tags=[
                _tag("deadline", "int64", 9223372036854776000),
                _tag("floor", "int64", -9223372036854776000),
                _tag("max", "int64", 2**63 - 1),
            ]
        )
    )
    assert dict(_attrs(span.attributes)) == {
        "deadline": "9223372036854776000",
        "floor": "-9223372036854776000",
        "max": 2**63 - 1,
    }
    # Written as a string, as a float, or no integer at all: text too.
    span = _one(
        _span(
            tags=[
                _tag("text", "int64", "9223372036854776000"),
                _tag("float", "int64", 9.3e18),
                _tag("half", "int64", 1.5),
                _tag("inexact", "int64", 1e23),
            ]
        )
    )
    assert dict(_attrs(span.attributes)) == {
        "text": "9223372036854776000",
        "float": "9300000000000000000",
        "half": "1.5",
        # Its double is 99999999999999991611392: digits that were never written.
        "inexact": "1e+23",
    }


def test_values_of_other_types_and_unknown_processes_are_kept_not_refused() -> None:
    """Each refused the whole file: a tag type Jaeger's JSON does not have (int32), a
    string tag of null, a processID the trace's processes lack."""
    span = _one(
        _span(
            tags=[
                _tag("a", "int32", 7),
                _tag("b", "map", {"x": 1}),
                _tag("c", "string", None),
                _tag("d", "uuid", "f00"),
            ],
            processID="p7",
        )
    )
    assert dict(_attrs(span.attributes)) == {"a": "7", "b": '{"x": 1}', "c": "", "d": "f00"}
    request = jaeger_to_otlp({"data": [_trace(_span(processID="p7"))]})
    assert _attrs(request.resource_spans[0].resource.attributes) == []


def test_a_child_of_reference_to_the_span_itself_is_no_parent() -> None:
    """Kept as the parent, the trace had no root: no flow, every span an orphan. The
    Zipkin mapping drops a parentId equal to the id."""
    root = _span("0a", references=[{"refType": "CHILD_OF", "traceID": TRACE, "spanID": "0a"}])
    child = _span("0b", references=[{"refType": "CHILD_OF", "traceID": TRACE, "spanID": "0a"}])
    spans = _spans(jaeger_to_otlp({"data": [_trace(root, child)]}))
    assert spans["000000000000000a"].parent_span_id == b""
    assert spans["000000000000000b"].parent_span_id.hex() == "000000000000000a"
    assert not spans["000000000000000a"].links
    # Nor does it hide a real parent after it, or the old parentSpanID field.
    self_ref = {"refType": "CHILD_OF", "traceID": TRACE, "spanID": "0c"}
    later = _span(
        "0c", references=[self_ref, {"refType": "CHILD_OF", "traceID": TRACE, "spanID": "0a"}]
    )
    old = _span("0d", references=[{**self_ref, "spanID": "0d"}], parentSpanID="0a")
    spans = _spans(jaeger_to_otlp({"data": [_trace(root, later, old)]}))
    assert spans["000000000000000c"].parent_span_id.hex() == "000000000000000a"
    assert spans["000000000000000d"].parent_span_id.hex() == "000000000000000a"
    assert not spans["000000000000000c"].links and not spans["000000000000000d"].links


def test_a_child_of_reference_to_span_zero_is_neither_parent_nor_link() -> None:
    """The Collector takes span 0 for no parent and leaves its CHILD_OF reference out
    of the links; it was a link to span ''."""
    root = _span("0e", references=[{"refType": "CHILD_OF", "traceID": TRACE, "spanID": "0"}])
    spans = _spans(jaeger_to_otlp({"data": [_trace(root)]}))
    assert spans["000000000000000e"].parent_span_id == b""
    assert not spans["000000000000000e"].links


@pytest.mark.parametrize(
    ("document", "pattern"),
    [
        ("not json-shaped", r"Jaeger JSON is a string"),
        (42, r"Jaeger JSON is a number"),
        ({"result": []}, r'must be \{"data"'),
        (
            {"data": None, "errors": [{"code": 404, "msg": "trace not found"}]},
            r'"data" is null.*errors: \[\{"code": 404, "msg": "trace not found"\}\]',
        ),
        ({"data": ["x"]}, r"Jaeger trace 1 is a string"),
        ({"data": [{"traceID": TRACE}]}, r'trace 1: "spans" is null'),
        ({"data": [{"spans": {}}]}, r'"spans" is an object'),
        (_with(lambda t: t["spans"].append(7)), r"trace 1, span 4 is a number"),
        (_with(lambda t: t["spans"][0].pop("traceID")), r"span 1: traceID is null, expected a hex"),
        (_with(lambda t: t["spans"][1].pop("spanID")), r"span 2: spanID is null"),
        (_with(_set_span("spanID", "00f067aa0ba902zz")), r"spanID '00f067aa0ba902zz' is not hex"),
        (_with(_set_span("spanID", "0x1234")), r"spanID '0x1234' is not hex"),
        (_with(_set_span("spanID", "00 f0 67 aa")), r"is not hex"),
        (_with(_set_span("traceID", "4bf92f3577b34da6a3ce929d0e0e47360")), r"1 to 32 hex digits"),
        (_with(_set_span("spanID", "")), r"spanID '' must be 1 to 16 hex digits"),
        (_with(_set_span("traceID", 12345)), r"traceID is a number, expected a hex string"),
        (_with(_set_span("startTime", "1767225600000000")), r"startTime is a string"),
        (_with(_set_span("startTime", 1.5)), r"startTime 1.5 is not a whole number"),
        (_with(_set_span("duration", -5)), r"duration -5 is out of range"),
        (_with(_set_span("operationName", ["GET"])), r"operationName is a list"),
        (_with(_set_span("tags", {"k": "v"})), r"span 1: tags is an object, expected a list"),
        (_with(_set_span("tags", [["k", "v"]])), r"tags\[1\] is a list"),
        (_with(_set_span("tags", [{"type": "string", "value": "v"}])), r"tags\[1\]: key is null"),
        (
            _with(_set_span("tags", [_tag("k", "bool", 1)])),
            r"'k': value is a number, expected true",
        ),
        (
            _with(_set_span("tags", [_tag("k", "string", 5)])),
            r"'k': value is a number, expected a str",
        ),
        (
            _with(_set_span("tags", [_tag("k", "float64", "fast")])),
            r"'k': value 'fast' is not a num",
        ),
        (
            _with(_set_span("tags", [_tag("k", "binary", "not base64!")])),
            r"'k': value .* not base64",
        ),
        (
            _with(
                _set_span("references", [{"refType": "PARENT", "traceID": TRACE, "spanID": "1"}])
            ),
            r"reference 1: refType 'PARENT' is not CHILD_OF or FOLLOWS_FROM",
        ),
        (
            _with(_set_span("references", [{"refType": "CHILD_OF", "spanID": "1"}])),
            r"reference 1: traceID is null",
        ),
        (_with(_set_span("logs", [{"fields": []}])), r"log 1: timestamp is null"),
        (_with(_set_span("logs", "event")), r"logs is a string, expected a list"),
        (_with(_set_span("processID", 1)), r"processID is a number"),
        (_with(lambda t: t.__setitem__("processes", [])), r'"processes" is a list'),
        (
            _with(lambda t: t["processes"]["p1"].__setitem__("serviceName", 5)),
            r"process 'p1': serviceName is a number",
        ),
        (
            _with(lambda t: t["processes"].__setitem__("p2", "customer")),
            r"process 'p2' is a string",
        ),
        (_with(_set_span("startTime", 2**63)), r"too far in the future"),
    ],
)
def test_bad_input_is_bad_request(document: Any, pattern: str) -> None:
    with pytest.raises(BadRequest, match=pattern):
        jaeger_to_otlp(document)


_ODD_VALUES: list[Any] = [None, True, -1, 1.5, "", "zz", [], {}, [None], {"a": None}, 2**70]


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterable[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key)
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*path, index)
            yield from _paths(item, (*path, index))


def test_any_odd_value_anywhere_gives_a_request_or_bad_request() -> None:
    original = _document()
    checked = 0
    for path in _paths(original):
        for odd in _ODD_VALUES:
            document = copy.deepcopy(original)
            target = document
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = odd
            try:
                request = jaeger_to_otlp(document)
            except BadRequest:
                pass
            else:
                request.SerializeToString()
                flatten_request(request)
            checked += 1
    assert checked > 1000


def test_a_server_span_sharing_its_clients_id_is_kept_as_sent() -> None:
    """Zipkin-style instrumentation in Jaeger: client and server halves share a span id.
    Before, the server half was dropped as a duplicate, with its error."""
    shared = "0000000000000002"
    child_of = [{"refType": "CHILD_OF", "traceID": TRACE, "spanID": "0000000000000001"}]
    under_shared = [{"refType": "CHILD_OF", "traceID": TRACE, "spanID": shared}]
    trace = {
        "traceID": TRACE,
        "spans": [
            _span("0000000000000001", tags=[_tag("span.kind", "string", "server")]),
            _span(shared, references=child_of, tags=[_tag("span.kind", "string", "client")]),
            _span(
                shared,
                references=child_of,
                processID="p2",
                tags=[_tag("span.kind", "string", "server"), _tag("error", "bool", True)],
            ),
            _span("0000000000000003", references=under_shared, processID="p2"),
        ],
        "processes": {
            "p1": {"serviceName": "frontend", "tags": []},
            "p2": {"serviceName": "backend", "tags": []},
        },
    }
    request = jaeger_to_otlp({"data": [trace]})
    halves = [
        (span.kind, span.parent_span_id.hex(), span.status.code)
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
        if span.span_id.hex() == shared
    ]
    # Both halves are kept as sent (analyzer/shared_ids.py tells them apart), as the
    # same spans received over OTLP are: one trace is stored once whichever way it came.
    assert sorted(halves) == [
        (Span.SPAN_KIND_SERVER, "0000000000000001", Status.STATUS_CODE_ERROR),
        (Span.SPAN_KIND_CLIENT, "0000000000000001", Status.STATUS_CODE_UNSET),
    ]
    assert _spans(request)["0000000000000003"].parent_span_id.hex() == shared
