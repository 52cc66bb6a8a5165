"""Zipkin v2 JSON -> OTLP, checked value by value and through flatten."""

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
from flowscope.collector.zipkin_json import zipkin_to_otlp

DATA = Path(__file__).parent / "data"
TRACE64 = "463ac35c9f6413ad"
TRACE = "0000000000000000" + TRACE64
ROOT, CALL, SEND = "463ac35c9f6413ad", "72485a3953bb6124", "e457b5a2e4d86bd1"
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns


SERVED = f"{CALL}/server"  # the shared span's server half, by ``_spans``'s key


def _document() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads((DATA / "zipkin_v2_spans.json").read_text())
    return loaded


def _attrs(kvs: Iterable[KeyValue]) -> list[tuple[str, Any]]:
    return [(kv.key, any_value_raw(kv.value)) for kv in kvs]


def _spans(request: ExportTraceServiceRequest) -> dict[str, Span]:
    """By span id, a SERVER span that shares its id with another as ``<id>/server``."""
    spans = [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]
    ids = [span.span_id.hex() for span in spans]
    return {
        f"{ids[i]}/server"
        if ids.count(ids[i]) > 1 and span.kind == Span.SPAN_KIND_SERVER
        else ids[i]: span
        for i, span in enumerate(spans)
    }


def _zspan(span_id: str = "0000000000000001", **fields: Any) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": TRACE64,
        "id": span_id,
        "name": "op",
        "timestamp": 1_767_225_600_000_000,
        "duration": 10,
        "localEndpoint": {"serviceName": "svc"},
    }
    span.update(fields)
    return span


def _one(span: dict[str, Any]) -> Span:
    spans = list(_spans(zipkin_to_otlp([span])).values())
    assert len(spans) == 1
    return spans[0]


# --- the fixture ----------------------------------------------------------------------------


def test_resources_follow_local_service() -> None:
    request = zipkin_to_otlp(_document())
    assert [
        (
            _attrs(rs.resource.attributes),
            [[s.span_id.hex() for s in ss.spans] for ss in rs.scope_spans],
        )
        for rs in request.resource_spans
    ] == [
        ([("service.name", "frontend")], [[ROOT, CALL]]),
        ([("service.name", "backend")], [[CALL, SEND]]),
    ]


def test_server_root_span() -> None:
    root = _spans(zipkin_to_otlp(_document()))[ROOT]
    assert root.trace_id.hex() == TRACE  # 64-bit trace id, left-padded
    assert root.parent_span_id == b""
    assert root.name == "get /api"
    assert root.kind == Span.SPAN_KIND_SERVER
    assert (root.start_time_unix_nano, root.end_time_unix_nano) == (T0, T0 + 207_000_000)
    assert not root.HasField("status")
    assert _attrs(root.attributes) == [
        ("http.method", "GET"),
        ("http.path", "/api"),
        ("net.host.ip", "192.168.99.1"),
        ("net.host.port", 8080),
        ("net.peer.ip", "172.19.0.2"),
        ("net.peer.port", 58648),
    ]


def test_client_span_with_error_tag_and_annotations() -> None:
    call = _spans(zipkin_to_otlp(_document()))[CALL]
    assert call.parent_span_id.hex() == ROOT
    assert call.kind == Span.SPAN_KIND_CLIENT
    assert (call.start_time_unix_nano, call.end_time_unix_nano) == (
        T0 + 1_500_000,
        T0 + 199_500_000,
    )
    # Zipkin's error tag holds the message; it is consumed.
    assert call.status == Status(code=Status.STATUS_CODE_ERROR, message="502 Bad Gateway")
    assert _attrs(call.attributes) == [
        ("http.method", "GET"),
        ("http.path", "/api"),
        ("net.host.ip", "192.168.99.1"),
        ("peer.service", "backend"),
        ("net.peer.ip", "172.19.0.3"),
        ("net.peer.port", 9000),
    ]
    assert [(e.time_unix_nano, e.name, list(e.attributes)) for e in call.events] == [
        (T0 + 1_600_000, "ws", []),
        (T0 + 199_000_000, "wr", []),
    ]


def test_shared_server_half_is_kept_as_sent() -> None:
    """Stored under its client's id, as the Collector's zipkin receiver passes it on
    over OTLP (analysis puts it under the client: analyzer/shared_ids.py)."""
    spans = _spans(zipkin_to_otlp(_document()))
    served = spans[SERVED]
    assert served.name == "get /api"
    assert served.kind == Span.SPAN_KIND_SERVER
    assert (served.span_id.hex(), served.parent_span_id.hex()) == (CALL, ROOT)
    assert served.status == Status(code=Status.STATUS_CODE_ERROR, message="bad gateway")
    assert _attrs(served.attributes) == [
        ("http.method", "GET"),
        ("http.path", "/api"),
        ("http.status_code", "502"),
        ("net.host.ip", "2001:db8::c001"),  # IPv6 wins, as in the translator
        ("net.host.port", 9000),
        ("net.peer.ip", "192.168.99.1"),
    ]
    # The Collector's Zipkin exporter encoding: name|{attributes}|dropped count.
    assert [
        (e.time_unix_nano, e.name, _attrs(e.attributes), e.dropped_attributes_count)
        for e in served.events
    ] == [(T0 + 100_000_000, "cache.miss", [("cache.key", "user:42"), ("cache.ttl", 30)], 0)]
    # The backend's own child of the shared id names it as sent.
    send = spans[SEND]
    assert send.parent_span_id.hex() == CALL
    assert send.kind == Span.SPAN_KIND_PRODUCER
    assert _attrs(send.attributes) == [
        ("messaging.destination", "order-events"),
        ("net.host.ip", "172.19.0.3"),
        ("peer.service", "kafka"),
    ]


def test_a_shared_server_half_is_the_same_whichever_file_its_client_is_in() -> None:
    """Per-service files: the client half in one, the shared server half in another."""
    spans = _document()
    front = [s for s in spans if s["localEndpoint"]["serviceName"] == "frontend"]
    back = [s for s in spans if s["localEndpoint"]["serviceName"] == "backend"]
    whole = zipkin_to_otlp(spans)
    apart = [zipkin_to_otlp(back), zipkin_to_otlp(front)]
    key = lambda span: (span.span_id, span.kind)  # noqa: E731
    listed = sorted(
        (key(span), span.SerializeToString())
        for request in [whole]
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    )
    split = sorted(
        (key(span), span.SerializeToString())
        for request in apart
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    )
    assert listed == split and len(listed) == 4
    alone = _one(_zspan(CALL, kind="SERVER", shared=True, parentId=ROOT))
    assert (alone.span_id.hex(), alone.parent_span_id.hex()) == (CALL, ROOT)


def test_zipkin_v1_json_is_refused_not_read_as_v2() -> None:
    """Before, v1 imported with no service, kind or tags (all in v1's own fields)."""
    endpoint = {"serviceName": "frontend", "ipv4": "10.0.0.1"}
    v1 = [
        {
            "traceId": TRACE64,
            "id": CALL,
            "name": "get",
            "timestamp": 1_767_225_600_000_000,
            "duration": 10,
            "annotations": [
                {"timestamp": 1_767_225_600_000_000, "value": "cs", "endpoint": endpoint}
            ],
            "binaryAnnotations": [{"key": "http.path", "value": "/a", "endpoint": endpoint}],
        }
    ]
    with pytest.raises(BadRequest, match="Zipkin v1 JSON .*imports Zipkin v2"):
        zipkin_to_otlp(v1)
    del v1[0]["binaryAnnotations"]
    with pytest.raises(BadRequest, match="Zipkin v1 JSON"):
        zipkin_to_otlp(v1)


def test_fixture_through_flatten() -> None:
    result = flatten_request(zipkin_to_otlp(_document()))
    assert result.rejected == 0, result.reasons
    rows = {
        row["SpanId"]
        + ("/server" if row["SpanId"] == CALL and row["SpanKind"] == "Server" else ""): row
        for row in result.batch.table.to_pylist()
    }
    assert len(rows) == 4  # the shared id does not collide: nothing is lost to dedup
    expected = {
        ROOT: ("frontend", "Server", "Unset", "", "", 207_000_000),
        CALL: ("frontend", "Client", "Error", "502 Bad Gateway", ROOT, 198_000_000),
        SERVED: ("backend", "Server", "Error", "bad gateway", ROOT, 190_000_000),
        SEND: ("backend", "Producer", "Unset", "", CALL, 1_200_000),
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
    assert dict(rows[ROOT]["SpanAttributes"]) == {
        "http.method": "GET",
        "http.path": "/api",
        "net.host.ip": "192.168.99.1",
        "net.host.port": "8080",
        "net.peer.ip": "172.19.0.2",
        "net.peer.port": "58648",
    }
    assert [(e["Name"], dict(e["Attributes"])) for e in rows[SERVED]["Events"]] == [
        ("cache.miss", {"cache.key": "user:42", "cache.ttl": "30"})
    ]


def test_list_of_traces_is_the_same_as_a_flat_list() -> None:
    spans = _document()
    assert zipkin_to_otlp([spans[:2], spans[2:]]) == zipkin_to_otlp(spans)
    assert zipkin_to_otlp([]) == ExportTraceServiceRequest()
    assert zipkin_to_otlp([[]]) == ExportTraceServiceRequest()


# --- mapping details --------------------------------------------------------------------------


def test_two_server_halves_of_one_id_are_both_passed_on() -> None:
    """The converter keeps every span; the writer's dedup key (trace, span, SERVER)
    then takes the second SERVER span of one id for a retry of the first
    (docs/analysis.md, edge cases), as for the same spans received over OTLP."""
    client = _zspan("0a", kind="CLIENT", localEndpoint={"serviceName": "a"})
    servers = [
        _zspan("0a", kind="SERVER", shared=True, localEndpoint={"serviceName": name})
        for name in ("b", "c")
    ]
    request = zipkin_to_otlp([client, *servers])
    spans = [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]
    assert [(s.span_id.hex(), s.kind) for s in spans] == [
        ("000000000000000a", Span.SPAN_KIND_CLIENT),
        ("000000000000000a", Span.SPAN_KIND_SERVER),
        ("000000000000000a", Span.SPAN_KIND_SERVER),
    ]


def test_a_span_reported_in_parts_is_joined_as_zipkin_joins_it() -> None:
    """A client reported its start and an annotation, then its duration and error: the
    second part was stored as a duplicate of the first and dropped (duration 0, no
    error). Zipkin joins such parts when it reads a trace."""
    first = _zspan(
        "0a",
        kind="CLIENT",
        duration=None,
        annotations=[{"timestamp": 1_767_225_600_000_001, "value": "ws"}],
        tags={"http.method": "GET", "attempt": "1"},
    )
    second = {
        "traceId": TRACE64,
        "id": "0a",
        "duration": 12_345,
        "localEndpoint": {"serviceName": "svc", "ipv4": "10.0.0.1"},
        "remoteEndpoint": {"serviceName": "db"},
        "annotations": [
            {"timestamp": 1_767_225_600_000_001, "value": "ws"},
            {"timestamp": 1_767_225_600_000_900, "value": "wr"},
        ],
        "tags": {"error": "late failure", "attempt": "2"},
    }
    other = _zspan("0b", parentId="0a")
    spans = _spans(zipkin_to_otlp([first, other, second]))
    assert list(spans) == ["000000000000000a", "000000000000000b"]
    joined = spans["000000000000000a"]
    assert joined.kind == Span.SPAN_KIND_CLIENT
    assert (joined.start_time_unix_nano, joined.end_time_unix_nano) == (T0, T0 + 12_345_000)
    assert joined.status.code == Status.STATUS_CODE_ERROR
    assert joined.status.message == "late failure"
    assert [e.name for e in joined.events] == ["ws", "wr"]
    attributes = dict(_attrs(joined.attributes))
    assert attributes["attempt"] == "2" and attributes["http.method"] == "GET"
    assert attributes["peer.service"] == "db"
    assert attributes["net.host.ip"] == "10.0.0.1"


def test_records_of_one_id_whose_kind_service_or_shared_flag_differ_stay_apart() -> None:
    """Another kind, another local service, or the shared flag: spans of their own."""
    client = _zspan("0a", kind="CLIENT", localEndpoint={"serviceName": "a"})
    producer = _zspan("0a", kind="PRODUCER", localEndpoint={"serviceName": "a"})
    elsewhere = _zspan("0a", kind="CLIENT", localEndpoint={"serviceName": "b"})
    server = _zspan("0a", kind="SERVER", shared=True, localEndpoint={"serviceName": "a"})
    request = zipkin_to_otlp([client, producer, elsewhere, server])
    assert sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans) == 4


def test_resource_tags_scope_tags_and_service_name_source() -> None:
    tags = {
        "host.name": "web-1",
        "service.version": "2.1.0",
        "telemetry.sdk.language": "java",
        "otel.scope.name": "io.opentelemetry.okhttp-3.0",
        "otel.scope.version": "2.10.0",
        "http.route": "/users/{id}",
    }
    one = _zspan("01", tags=tags)
    other_host = _zspan("02", tags={**tags, "host.name": "web-2"})
    renamed = _zspan("03", tags={"otlp.service.name.source": "peer.service"})
    request = zipkin_to_otlp([one, other_host, renamed])
    assert [_attrs(rs.resource.attributes) for rs in request.resource_spans] == [
        [
            ("service.name", "svc"),
            ("host.name", "web-1"),
            ("service.version", "2.1.0"),
            ("telemetry.sdk.language", "java"),
        ],
        [
            ("service.name", "svc"),
            ("host.name", "web-2"),
            ("service.version", "2.1.0"),
            ("telemetry.sdk.language", "java"),
        ],
        [("peer.service", "svc")],
    ]
    scope = request.resource_spans[0].scope_spans[0]
    assert (scope.scope.name, scope.scope.version) == ("io.opentelemetry.okhttp-3.0", "2.10.0")
    assert _attrs(scope.spans[0].attributes) == [("http.route", "/users/{id}")]
    assert list(request.resource_spans[2].scope_spans[0].spans[0].attributes) == []


def test_service_names_are_kept_as_given() -> None:
    request = zipkin_to_otlp([_zspan(localEndpoint={"serviceName": "Order-Service"})])
    assert _attrs(request.resource_spans[0].resource.attributes) == [
        ("service.name", "Order-Service")
    ]


def test_span_without_local_service_has_an_empty_resource() -> None:
    request = zipkin_to_otlp([_zspan(localEndpoint=None)])
    assert list(request.resource_spans[0].resource.attributes) == []
    result = flatten_request(request)
    assert result.batch.table.column("ServiceName").to_pylist() == [""]


def test_the_collectors_name_for_no_service_is_no_service() -> None:
    """The Collector's Zipkin exporter writes OTLPResourceNoServiceName for a resource
    without service.name, and its receiver reads it back as none: it was a service."""
    request = zipkin_to_otlp([_zspan(localEndpoint={"serviceName": "OTLPResourceNoServiceName"})])
    assert list(request.resource_spans[0].resource.attributes) == []


@pytest.mark.parametrize(
    ("tags", "code", "message", "left"),
    [
        ({"otel.status_code": "STATUS_CODE_OK"}, Status.STATUS_CODE_OK, "", []),
        ({"otel.status_code": "OK"}, Status.STATUS_CODE_OK, "", []),
        (
            {"otel.status_code": "ERROR", "otel.status_description": "boom", "error": "boom"},
            Status.STATUS_CODE_ERROR,
            "boom",
            [],
        ),
        ({"error": "true"}, Status.STATUS_CODE_ERROR, "", []),
        ({"error": ""}, Status.STATUS_CODE_ERROR, "", []),
        ({"error": "false"}, None, "", [("error", "false")]),
        ({"otel.status_code": "OK", "error": "true"}, Status.STATUS_CODE_ERROR, "", []),
        ({"otel.status_code": "weird"}, Status.STATUS_CODE_UNSET, "", []),
        ({"otel.status_description": "alone"}, None, "", [("otel.status_description", "alone")]),
    ],
)
def test_status(
    tags: dict[str, str], code: int | None, message: str, left: list[tuple[str, Any]]
) -> None:
    span = _one(_zspan(tags=tags, localEndpoint=None))
    if code is None:
        assert not span.HasField("status")
    else:
        assert span.status == Status(code=code, message=message)  # type: ignore[arg-type]
    assert _attrs(span.attributes) == left


@pytest.mark.parametrize(
    ("kind", "tags", "expected", "left"),
    [
        (None, {"span.kind": "internal"}, Span.SPAN_KIND_INTERNAL, []),
        (None, {"span.kind": "client"}, Span.SPAN_KIND_UNSPECIFIED, []),
        (
            "CONSUMER",
            {"span.kind": "internal"},
            Span.SPAN_KIND_CONSUMER,
            [("span.kind", "internal")],
        ),
        ("producer", {}, Span.SPAN_KIND_PRODUCER, []),
        ("BATCH", {}, Span.SPAN_KIND_UNSPECIFIED, []),
    ],
)
def test_kind(
    kind: str | None, tags: dict[str, str], expected: int, left: list[tuple[str, Any]]
) -> None:
    span = _one(_zspan(kind=kind, tags=tags, localEndpoint=None))
    assert span.kind == expected
    assert _attrs(span.attributes) == left


def test_missing_timestamp_starts_at_zero_and_is_marked() -> None:
    span = _one(_zspan(timestamp=None, duration=1500, localEndpoint=None))
    assert (span.start_time_unix_nano, span.end_time_unix_nano) == (0, 1_500_000)
    assert _attrs(span.attributes) == [("otel.zipkin.absentField.startTime", True)]


def test_missing_timestamp_starts_at_the_earliest_annotation() -> None:
    """At 0, one such span of a trace of today moved the whole trace view to 1970, and
    retention deleted it at its first sweep."""
    annotations = [
        {"timestamp": T0 // 1000 + 700, "value": "wr"},
        {"timestamp": T0 // 1000 + 500, "value": "ws"},
    ]
    span = _one(_zspan(timestamp=None, duration=1500, localEndpoint=None, annotations=annotations))
    assert (span.start_time_unix_nano, span.end_time_unix_nano) == (T0 + 500_000, T0 + 2_000_000)
    assert _attrs(span.attributes) == [("otel.zipkin.absentField.startTime", True)]
    assert [event.name for event in span.events] == ["wr", "ws"]


def test_values_zipkin_reads_leniently_are_read() -> None:
    """Zipkin's server reads numbers in quotes, numbers as tag values (their text) and
    clamps negative times and ports to 0; each refused the whole file."""
    span = _one(
        _zspan(
            timestamp="1767225600000000",
            duration=" 250",
            tags={"http.status_code": 200, "ratio": 0.5},
            localEndpoint=None,
            remoteEndpoint={"port": "8080"},
        )
    )
    assert (span.start_time_unix_nano, span.end_time_unix_nano) == (T0, T0 + 250_000)
    assert _attrs(span.attributes) == [
        ("http.status_code", "200"),
        ("ratio", "0.5"),
        ("net.peer.port", 8080),
    ]
    whole = _one(_zspan(duration="250.0", tags={"n": 1e3, "big": 2.5e20}, localEndpoint=None))
    assert whole.end_time_unix_nano - whole.start_time_unix_nano == 250_000
    # One rule with the Jaeger import's: digits when the double is the number exactly.
    assert _attrs(whole.attributes) == [("n", "1000"), ("big", "250000000000000000000")]
    # Other numbers as a double attribute is stored (a Jaeger float64 tag): Python's
    # 1e-07 and 1e-05 were not (import review).
    small = _one(_zspan(tags={"a": 1e-7, "b": 0.00001, "c": 2.5}))
    assert _attrs(small.attributes) == [("a", "1e-7"), ("b", "0.00001"), ("c", "2.5")]
    for odd in ("1_000", "\u0661\u0660\u0660"):  # int() took them; Gson does not
        with pytest.raises(BadRequest, match="is not an integer"):
            zipkin_to_otlp([_zspan(duration=odd)])
    with pytest.raises(BadRequest, match="is out of range"):  # past int(): a traceback
        zipkin_to_otlp([_zspan(duration="9" * 5000)])
    negative = _one(_zspan(duration=-5, localEndpoint={"serviceName": "svc", "port": -1}))
    assert negative.end_time_unix_nano == negative.start_time_unix_nano
    assert _attrs(negative.attributes) == []


def test_one_span_on_its_own_is_read_as_a_list_of_one() -> None:
    alone = _zspan(kind="SERVER")
    assert zipkin_to_otlp(alone) == zipkin_to_otlp([alone])


def test_scope_tags_not_taken_for_the_scope_stay_attributes() -> None:
    both = _one(
        _zspan(
            localEndpoint=None,
            tags={
                "otel.scope.name": "s",
                "otel.scope.version": "1",
                "otel.library.name": "l",
                "otel.library.version": "2",
            },
        )
    )
    assert _attrs(both.attributes) == [("otel.library.name", "l"), ("otel.library.version", "2")]
    version_only = _one(_zspan(localEndpoint=None, tags={"otel.scope.version": "1.0"}))
    assert _attrs(version_only.attributes) == [("otel.scope.version", "1.0")]


def test_parent_equal_to_id_or_zero_is_no_parent() -> None:
    assert _one(_zspan("0a", parentId="000000000000000a")).parent_span_id == b""
    assert _one(_zspan("0a", parentId="0000000000000000")).parent_span_id == b""
    assert _one(_zspan("0a", parentId="b")).parent_span_id.hex() == "000000000000000b"


def test_trace_state_and_links_from_tags() -> None:
    other = "0af7651916cd43dd8448eb211c80319c"
    span = _one(
        _zspan(
            localEndpoint=None,
            tags={
                "w3c.tracestate": "congo=t61rcWkgMzE",
                "otlp.link.0": f'{other}|00f067aa0ba902b7|rojo=1|{{"kind":"batch","n":3}}|2',
                "otlp.link.1": "too|few|parts",
                "otlp.link.3": "not read: link numbers stop at the first gap",
            },
        )
    )
    assert span.trace_state == "congo=t61rcWkgMzE"
    assert [
        (
            lk.trace_id.hex(),
            lk.span_id.hex(),
            lk.trace_state,
            _attrs(lk.attributes),
            lk.dropped_attributes_count,
        )
        for lk in span.links
    ] == [(other, "00f067aa0ba902b7", "rojo=1", [("kind", "batch"), ("n", 3)], 2)]
    assert _attrs(span.attributes) == [
        ("otlp.link.3", "not read: link numbers stop at the first gap")
    ]


def test_a_link_with_empty_ids_is_kept_with_zero_ids() -> None:
    """The Collector's Zipkin exporter writes a link without ids so, and its receiver
    reads them as zero ids; the whole file was refused."""
    span = _one(_zspan(localEndpoint=None, tags={"otlp.link.0": "|||{}|0"}))
    assert [(lk.trace_id, lk.span_id) for lk in span.links] == [(b"", b"")]


def test_annotation_values_with_pipes_that_are_not_the_encoding() -> None:
    span = _one(
        _zspan(
            localEndpoint=None,
            annotations=[
                {"timestamp": 1_767_225_600_000_001, "value": "cache|miss|again"},
                {"timestamp": 1_767_225_600_000_002, "value": 'retry|{"n": 2.0, "x": [1]}|1'},
            ],
        )
    )
    assert [(e.name, _attrs(e.attributes), e.dropped_attributes_count) for e in span.events] == [
        ("cache|miss|again", [], 0),
        ("retry", [("n", 2)], 1),
    ]


# --- bad input ----------------------------------------------------------------------------------


def _with(index: int, field: str, value: Any) -> list[dict[str, Any]]:
    document = _document()
    document[index][field] = value
    return document


@pytest.mark.parametrize(
    ("document", "pattern"),
    [
        ("not json-shaped", r"Zipkin v2 JSON is a string, expected a list of spans"),
        ([5], r"Zipkin span 1 is a number, expected a span object"),
        ([[_zspan(), "x"]], r"Zipkin trace 1, span 2 is a string"),
        (_with(0, "traceId", None), r"span 1 \('get /api'\): traceId is null, expected a hex"),
        (_with(1, "id", None), r"span 2 \('get'\): id is null"),
        (_with(1, "id", "72485a3953bb612g"), r"id '72485a3953bb612g' is not hex"),
        (_with(1, "id", "72485a3953bb61240"), r"id '72485a3953bb61240' must be 1 to 16 hex"),
        (_with(0, "traceId", "463ac35c9f6413ad463ac35c9f6413ad0"), r"traceId .* 1 to 32 hex"),
        (_with(1, "parentId", 42), r"parentId is a number, expected a hex string"),
        (_with(0, "name", 7), r"span 1: name is a number, expected a string"),
        (_with(0, "kind", ["SERVER"]), r"kind is a list"),
        (_with(0, "duration", 0.5), r"duration 0.5 is not a whole number"),
        (_with(0, "timestamp", "soon"), r"timestamp 'soon' is not an integer"),
        (_with(0, "tags", {"ok": True}), r"tag 'ok' is a boolean"),
        ({"traceId": TRACE64}, r"Zipkin span 1: id is null"),
        (_with(0, "tags", ["http.method"]), r"tags is a list, expected an object of strings"),
        (_with(0, "localEndpoint", "frontend"), r"localEndpoint is a string, expected an object"),
        (_with(0, "localEndpoint", {"serviceName": 1}), r"localEndpoint: serviceName is a number"),
        (
            _with(0, "remoteEndpoint", {"port": 70000}),
            r"remoteEndpoint: port 70000 is out of range",
        ),
        (_with(0, "remoteEndpoint", {"ipv4": 17}), r"remoteEndpoint: ipv4 is a number"),
        (_with(1, "annotations", {"ws": 1}), r"annotations is an object, expected a list"),
        (_with(1, "annotations", [{"value": "ws"}]), r"annotation 1: timestamp is null"),
        (
            _with(1, "annotations", [{"timestamp": 1, "value": 2}]),
            r"annotation 1: value is a number",
        ),
        (_with(2, "shared", "yes"), r"shared is a string, expected true or false"),
        (
            _with(0, "tags", {"otlp.link.0": "zz|00f067aa0ba902b7|||0"}),
            r"otlp.link.0 trace id 'zz'",
        ),
        (
            _with(0, "tags", {"otlp.link.0": f"{TRACE}|00f067aa0ba902b7||[1]|0"}),
            r"otlp.link.0: attributes are not a JSON object",
        ),
        (
            _with(0, "tags", {"otlp.link.0": f"{TRACE}|00f067aa0ba902b7||{{}}|x"}),
            r"otlp.link.0: dropped attributes count 'x'",
        ),
        (_with(0, "timestamp", 2**62), r"too far in the future"),
    ],
)
def test_bad_input_is_bad_request(document: Any, pattern: str) -> None:
    with pytest.raises(BadRequest, match=pattern):
        zipkin_to_otlp(document)


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
            target: Any = document
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = odd
            try:
                request = zipkin_to_otlp(document)
            except BadRequest:
                pass
            else:
                request.SerializeToString()
                flatten_request(request)
            checked += 1
    assert checked > 500
