"""Every kind of bad OTLP request gets its documented answer; the server stays up, nothing half-written."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cramjam
import grpc
import httpx
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from flowscope.server import FlowscopeServer
from flowscope.testing.otlp import key_values, realistic_request, request_for, span_id, trace_id
from flowscope.testing.posting import PB, export_grpc
from flowscope.testing.server import Endpoints, server_in_process

JS = {"Content-Type": "application/json"}
MAX = 256 * 1024


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FlowscopeServer, Endpoints]]:
    path = tmp_path_factory.mktemp("bad") / "bad.duckdb"
    with server_in_process(path, max_request_bytes=MAX) as running:
        yield running


def _count(server: FlowscopeServer) -> int:
    assert server.database is not None
    return server.database.span_count()


def _one_span_request(name: str = "ok", n: int = 1, **span: Any) -> ExportTraceServiceRequest:
    fields: dict[str, Any] = {
        "trace_id": trace_id(n),
        "span_id": span_id(n),
        "name": name,
        "start_time_unix_nano": 1_700_000_000_000_000_000,
        "end_time_unix_nano": 1_700_000_000_001_000_000,
    }
    fields.update(span)
    return request_for("svc", [Span(**fields)])


def _field(tag: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (the SDK refuses to build messages this deep)."""
    size, length = b"", len(payload)
    while True:
        byte, length = length & 0x7F, length >> 7
        size += bytes([byte | (0x80 if length else 0)])
        if not length:
            return bytes([tag]) + size + payload


def _deep_protobuf(depth: int) -> bytes:
    value = _field(0x0A, b"leaf")  # AnyValue.string_value
    for _ in range(depth):
        value = _field(0x2A, _field(0x0A, value))  # AnyValue.array_value.values[0]
    attribute = _field(0x4A, _field(0x0A, b"deep") + _field(0x12, value))  # Span.attributes
    span = (
        Span(trace_id=trace_id(9), span_id=span_id(9), name="deep").SerializeToString() + attribute
    )
    return _field(
        0x0A, _field(0x12, _field(0x12, span))
    )  # request.resource_spans.scope_spans.spans


def _deep_json(depth: int) -> bytes:
    value = '{"arrayValue": {"values": [' * depth + '{"stringValue": "leaf"}' + "]}}" * depth
    return (
        '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633813fc60c", '
        '"spanId": "eee19b7ec3c1b174", "name": "deep", "attributes": [{"key": "deep", "value": '
        + value
        + "}]}]}]}]}"
    ).encode()


def _invalid_utf8_protobuf(n: int = 1, good: int = 0) -> bytes:
    """``good`` spans, then one whose name and an attribute value are not UTF-8."""
    request = _one_span_request(name="ZZZZ", n=n, attributes=key_values({"k": "YYYY"}))
    spans = request.resource_spans[0].scope_spans[0].spans
    for i in range(good):
        spans.add().CopyFrom(
            _one_span_request(name="fine", n=n + 1 + i).resource_spans[0].scope_spans[0].spans[0]
        )
    body = request.SerializeToString()
    # An invalid two-byte sequence; a lone continuation byte and a truncated sequence.
    return body.replace(b"ZZZZ", b"\xc3\x28ZZ").replace(b"YYYY", b"\x80Y\xe2\x82")


def _bomb() -> bytes:
    return gzip.compress(b"\x00" * (MAX * 8))


def _int_value_body(value: str) -> bytes:
    """An OTLP/JSON request of one span whose one attribute is ``{"intValue": value}``."""
    return (
        '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633'
        '813fc60f", "spanId": "eee19b7ec3c1b17a", "name": "n", "attributes": [{"key": "k", '
        '"value": {"intValue": ' + value + "}}]}]}]}]}"
    ).encode()


# (case id, headers, body, expected status, substring of the message)
HTTP_CASES: list[tuple[str, dict[str, str], bytes, int, str]] = [
    (
        "garbage bytes",
        PB,
        b"\xff\xfe\xfd not protobuf at all \x00\x01",
        400,
        "invalid OTLP protobuf",
    ),
    (
        "truncated protobuf",
        PB,
        realistic_request(3).SerializeToString()[:-17],
        400,
        "invalid OTLP protobuf",
    ),
    (
        "wrong content type",
        {"Content-Type": "text/plain"},
        b"hello",
        415,
        "unsupported Content-Type",
    ),
    ("missing content type", {}, b"hello", 415, "missing Content-Type; use application/x-protobuf"),
    ("invalid JSON", JS, b'{"resourceSpans": [', 400, "not valid JSON"),
    # Past any double (and past Python's 4,300 digits as a string): 500s before.
    ("intValue past any double", JS, _int_value_body(str(10**400)), 400, "invalid OTLP/JSON"),
    ("intValue of 5,000 digits", JS, _int_value_body(f'"{"9" * 5000}"'), 400, "invalid OTLP/JSON"),
    # A second value beside one past int64: not made a double that hides the clash.
    (
        "intValue past int64 beside a doubleValue",
        JS,
        _int_value_body('1e21, "doubleValue": 2.5'),
        400,
        "invalid OTLP/JSON",
    ),
    ("intValue past int64 as digits", JS, _int_value_body('"9223372036854775808"'), 400, "range"),
    ("JSON not an object", JS, b"[1, 2, 3]", 400, "JSON object"),
    # A span that was not an object was a 500; "x" and [] were taken for empty ones.
    *[
        (
            f"JSON span {value.decode()}",
            JS,
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [%s]}]}]}' % value,
            400,
            "a span is ",
        )
        for value in (b"null", b"1", b'"x"', b"[]")
    ],
    (
        "JSON scopeSpans item a string",
        JS,
        b'{"resourceSpans": [{"scopeSpans": ["x"]}]}',
        400,
        "a scopeSpans item is a string",
    ),  # One level down too: a link of no ids and an event at 1970 were stored.
    *[
        (
            f"JSON {what} not an object",
            JS,
            b'{"resourceSpans": [{"resource": %s, "scopeSpans": [{"scope": %s, "spans": [{'
            b'"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", '
            b'"name": "x", "links": %s, "events": %s, "status": %s}]}]}]}' % fields,
            400,
            f"{what} is a",
        )
        for what, fields in (
            ("a link", (b"{}", b"{}", b'["abc"]', b"[]", b"{}")),
            ("an event", (b"{}", b"{}", b"[]", b"[1]", b"{}")),
            ("status", (b"{}", b"{}", b"[]", b"[]", b'"abc"')),
            ("resource", (b'"x"', b"{}", b"[]", b"[]", b"{}")),
            ("scope", (b"{}", b"[]", b"[]", b"[]", b"{}")),
            ("an attribute", (b'{"attributes": [[]]}', b"{}", b"[]", b"[]", b"{}")),
            ("an attribute", (b"{}", b"{}", b'[{"attributes": ["x"]}]', b"[]", b"{}")),
        )
    ],
    (
        "JSON wrong field type",
        JS,
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5}]}]}]}',
        400,
        "invalid OTLP/JSON",
    ),
    ("empty JSON body", JS, b"", 400, "not valid JSON"),
    (
        "JSON span kind past int32",
        JS,
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0102030405060708090a0b0c0d0e0f10",'
        b' "spanId": "0102030405060708", "name": "x", "kind": 4294967298}]}]}]}',
        400,
        "kind 4294967298 is no int32",
    ),
    *[
        (
            f"JSON span kind {text}",
            JS,
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0102030405060708090a0b0c'
            b'0d0e0f10", "spanId": "0102030405060708", "name": "x", "kind": ' + text + b"}]}]}]}",
            400,
            "(an enum is an int32 or a name)",
        )
        for text in (b'"4294967298"', b"4294967298.0", b"2.5", b'"2"', b"true")
    ],
    (
        "JSON status code past int32",
        JS,
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0102030405060708090a0b0c0d0e0f10",'
        b' "spanId": "0102030405060708", "name": "x", "status": {"code": -4294967294}}]}]}]}',
        400,
        "code -4294967294 is no int32",
    ),
    (
        "invalid UTF-8 in a protobuf cut short",
        PB,
        _invalid_utf8_protobuf()[:-3],
        400,
        "invalid OTLP protobuf",
    ),
    (
        "invalid UTF-8 in JSON",
        JS,
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "\xc3\x28"}]}]}]}',
        400,
        "UTF-8",
    ),
    ("deep nesting protobuf", PB, _deep_protobuf(300), 400, "invalid OTLP protobuf"),
    ("deep nesting JSON", JS, _deep_json(5000), 400, ""),
    # Past protobuf's depth limit but within json's recursion limit: a 500 (spans lost).
    ("deep nesting JSON, 60 levels", JS, _deep_json(60), 400, "invalid OTLP/JSON"),
    ("over the size limit", PB, b"\x0a" * (MAX + 1), 413, "exceeds"),
    ("gzip bomb", {**PB, "Content-Encoding": "gzip"}, _bomb(), 413, "exceeds"),
    ("not really gzip", {**PB, "Content-Encoding": "gzip"}, b"plain bytes", 400, "gzip"),
    (
        "too many gzip members",
        {**PB, "Content-Encoding": "gzip"},
        gzip.compress(b"") * 1001,
        400,
        "more than 1000 gzip members",
    ),
    (
        "gzip then garbage",
        {**PB, "Content-Encoding": "gzip"},
        gzip.compress(b"") + b"plain bytes",
        400,
        "not valid gzip",
    ),
    ("unknown encoding", {**PB, "Content-Encoding": "br"}, b"x", 400, "Content-Encoding"),
    *[
        (
            f"{name} bomb",
            {**PB, "Content-Encoding": name},
            bytes(squeeze(bytes(MAX * 8))),
            413,
            "exceeds",
        )
        for name, squeeze in [
            ("zstd", cramjam.zstd.compress),
            ("lz4", cramjam.lz4.compress),
            ("snappy", cramjam.snappy.compress_raw),
            ("x-snappy-framed", cramjam.snappy.compress),
        ]
    ],
    ("not really zstd", {**PB, "Content-Encoding": "zstd"}, b"plain bytes", 400, "not valid zstd"),
    *[
        (f"empty {name} body", {**PB, "Content-Encoding": name}, b"", 400, "body is empty")
        for name in ("zstd", "lz4", "snappy", "x-snappy-framed")
    ],
    (
        "truncated lz4",
        {**PB, "Content-Encoding": "lz4"},
        bytes(cramjam.lz4.compress(bytes(1000)))[:-6],
        400,
        "not valid lz4",
    ),
    ("not really snappy", {**PB, "Content-Encoding": "snappy"}, b"\xff" * 9, 400, "snappy"),
    ("x-gzip is gzip", {**PB, "Content-Encoding": "x-gzip"}, gzip.compress(b""), 200, ""),
]


@pytest.mark.parametrize(
    ("case", "headers", "body", "status", "text"), HTTP_CASES, ids=[c[0] for c in HTTP_CASES]
)
def test_http_bad_request_answer(
    case: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
    text: str,
    live: tuple[FlowscopeServer, Endpoints],
) -> None:
    server, endpoints = live
    before = _count(server)
    response = httpx.post(f"{endpoints.http}/v1/traces", content=body, headers=headers, timeout=30)
    assert response.status_code == status, response.text
    if response.headers["content-type"].startswith("application/json"):
        message = response.json().get("message", "")
    else:
        parsed = Status()
        parsed.ParseFromString(response.content)
        message = parsed.message
    assert text in message
    assert _count(server) == before
    assert (
        httpx.get(f"{endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60).json()["status"]
        == "ok"
    )


def test_empty_protobuf_request_is_a_valid_empty_export(
    live: tuple[FlowscopeServer, Endpoints],
) -> None:
    server, endpoints = live
    before = _count(server)
    response = httpx.post(f"{endpoints.http}/v1/traces", content=b"", headers=PB)
    assert response.status_code == 200
    assert (
        ExportTraceServiceResponse.FromString(response.content).partial_success.rejected_spans == 0
    )
    assert _count(server) == before


def test_invalid_ids_rejected_individually_protobuf(
    live: tuple[FlowscopeServer, Endpoints],
) -> None:
    server, endpoints = live
    before = _count(server)
    request = _one_span_request("good", n=100)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans.add(trace_id=b"\x01\x02\x03", span_id=span_id(101), name="short trace id")
    spans.add(trace_id=trace_id(102), span_id=bytes(8), name="zero span id")
    spans.add(
        trace_id=trace_id(103), span_id=span_id(103), parent_span_id=b"\x01", name="bad parent"
    )
    response = httpx.post(
        f"{endpoints.http}/v1/traces", content=request.SerializeToString(), headers=PB
    )
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 3
    assert "trace_id has 3 bytes" in partial.error_message
    assert "span_id is all zeros" in partial.error_message
    assert "parent_span_id has 1 bytes" in partial.error_message
    assert _count(server) == before + 1


def test_times_past_2262_rejected_individually(live: tuple[FlowscopeServer, Endpoints]) -> None:
    """OTLP times are unsigned; from 2**63 - 1 on they cannot be stored (before: a 500
    that lost the request's valid spans too)."""
    server, endpoints = live
    before = _count(server)
    request = _one_span_request("good", n=110)
    spans = request.resource_spans[0].scope_spans[0].spans
    far = 2**64 - 1
    spans.add(
        trace_id=trace_id(111), span_id=span_id(111), name="far start",
        start_time_unix_nano=far, end_time_unix_nano=far,
    )  # fmt: skip
    spans.add(
        trace_id=trace_id(112), span_id=span_id(112), name="infinite end",
        start_time_unix_nano=1, end_time_unix_nano=2**63 - 1,
    )  # fmt: skip
    late = spans.add(trace_id=trace_id(113), span_id=span_id(113), name="late event")
    late.events.add(time_unix_nano=far, name="e")
    response = httpx.post(
        f"{endpoints.http}/v1/traces", content=request.SerializeToString(), headers=PB
    )
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 3
    assert f"span 'far start': start_time_unix_nano {far} is past 2262-04-11" in (
        partial.error_message
    )
    assert "span 'infinite end': end_time_unix_nano" in partial.error_message
    assert "span 'late event': an event's time_unix_nano" in partial.error_message
    assert _count(server) == before + 1


def test_invalid_ids_rejected_individually_json(live: tuple[FlowscopeServer, Endpoints]) -> None:
    server, endpoints = live
    before = _count(server)
    doc = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "j"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "good",
                                "kind": 2,
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": 1700000000000500000,
                            },
                            {"traceId": "5b8e", "spanId": "eee19b7ec3c1b175", "name": "short"},
                            {
                                "traceId": "zz8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b176",
                                "name": "not hex",
                            },
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "a" * 15,
                                "name": "odd",
                            },
                        ]
                    }
                ],
            }
        ]
    }
    response = httpx.post(f"{endpoints.http}/v1/traces", json=doc)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "3"
    assert "span 'short': trace_id has 2 bytes, expected 16" in partial["errorMessage"]
    assert "span 'not hex': trace_id is not a hex string" in partial["errorMessage"]
    # Not "not a hex string": each digit is one (docs review).
    assert "span 'odd': span_id has 15 hex digits, expected 16" in partial["errorMessage"]
    assert _count(server) == before + 1


def _stored_row(
    live: tuple[FlowscopeServer, Endpoints], body: str, query: str
) -> tuple[object, ...] | None:
    """POST an OTLP/JSON ``body`` (it must be a 200), then the row ``query`` reads."""
    server, endpoints = live
    response = httpx.post(
        f"{endpoints.http}/v1/traces", content=body.encode(), headers=JS, timeout=30
    )
    assert response.status_code == 200, response.text
    assert server.database is not None
    server.database.await_writes()
    return server.database.reader().execute(query).fetchone()


@pytest.mark.parametrize("generic", [False, True], ids=["usual-shape", "generic-parser"])
def test_half_a_surrogate_pair_in_json_is_stored_as_a_replacement_character(
    generic: bool, live: tuple[FlowscopeServer, Endpoints]
) -> None:
    """The JS SDK cuts strings to a length limit in UTF-16 units ("ab\\ud83c"); such
    a request was a 500 and every span in it lost (the JS exporter does not retry a
    500). The Collector's decoder puts U+FFFD in place of the half pair."""
    name = f"surrogate-{'generic' if generic else 'usual'}"
    attributes = ['{"key": "v\\udc00", "value": {"stringValue": "ab\\ud83c"}}']
    if generic:  # a bytesValue sends the request through protobuf's own parser
        attributes.append('{"key": "b", "value": {"bytesValue": "AAE="}}')
    body = (
        '{"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", '
        '"value": {"stringValue": "surrogates"}}]}, "scopeSpans": [{"spans": [{'
        '"traceId": "5b8efff798038103d269b633813fc60d", "spanId": "eee19b7ec3c1b17'
        + ("8" if generic else "7")
        + f'", "name": "{name}\\ud83c", "startTimeUnixNano": "1700000000000000000", '
        '"endTimeUnixNano": "1700000000000500000", "status": {"code": 2, "message": '
        '"x\\udfff"}, "attributes": [' + ", ".join(attributes) + "]}]}]}]}"
    )
    row = _stored_row(
        live,
        body,
        "SELECT SpanName, StatusMessage, SpanAttributes['v\ufffd'] FROM otel_traces "
        "WHERE SpanName LIKE 'surrogate-%' AND SpanId LIKE '%" + ("8" if generic else "7") + "'",
    )
    assert row == (f"{name}\ufffd", "x\ufffd", "ab\ufffd")


def test_json_int_values_past_int64_are_stored_as_doubles(
    live: tuple[FlowscopeServer, Endpoints],
) -> None:
    """The JavaScript SDK's JSON exporter sends any whole JavaScript number as an
    intValue (its protobuf exporter sends a double): one ``1e+21`` made the whole batch
    a 400, which exporters do not retry, and -2^63, written 9223372036854776000 with a
    minus, is just past int64 as text."""
    values = "1e+21, 9223372036854776000, -9223372036854776000, 4611686018427387904"
    attributes = ", ".join(
        f'{{"key": "n{i}", "value": {{"intValue": {v}}}}}' for i, v in enumerate(values.split(", "))
    )
    body = (
        '{"resourceSpans": [{"scopeSpans": [{"spans": [{'
        '"traceId": "5b8efff798038103d269b633813fc60e", "spanId": "eee19b7ec3c1b179", '
        '"name": "js-numbers", "startTimeUnixNano": "1700000000000000000", '
        f'"endTimeUnixNano": "1700000000000500000", "attributes": [{attributes}]}}]}}]}}]}}'
    )
    row = _stored_row(
        live,
        body,
        "SELECT SpanAttributes['n0'], SpanAttributes['n1'], SpanAttributes['n2'], "
        "SpanAttributes['n3'] FROM otel_traces WHERE SpanName = 'js-numbers'",
    )
    # Doubles as the protobuf exporter's doubles are stored; ints as ints.
    assert row == ("1e+21", "9223372036854776000", "-9223372036854775808", "4611686018427387904")


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_invalid_utf8_in_protobuf_is_stored_as_replacement_characters(
    transport: str, live: tuple[FlowscopeServer, Endpoints]
) -> None:
    """One bad byte in one attribute refused the whole request (400 / INVALID_ARGUMENT,
    which exporters do not retry): a Collector in front, which does not check UTF-8,
    lost every span of the batch. The sender is told in partial_success."""
    server, endpoints = live
    before = _count(server)
    n = 500 if transport == "http" else 700
    body = _invalid_utf8_protobuf(n=n, good=100)
    if transport == "http":
        response = httpx.post(f"{endpoints.http}/v1/traces", content=body, headers=PB)
        assert response.status_code == 200, response.text
        answer = ExportTraceServiceResponse.FromString(response.content)
    else:
        code, _, raw = _grpc_call(endpoints, body)
        assert code == grpc.StatusCode.OK
        answer = ExportTraceServiceResponse.FromString(raw)
    assert answer.partial_success.rejected_spans == 0
    assert answer.partial_success.error_message == (
        "2 string(s) were not valid UTF-8: stored with U+FFFD in place of each bad byte sequence"
    )
    assert _count(server) == before + 101
    assert server.database is not None
    row = (
        server.database.reader()
        .execute(
            "SELECT SpanName, SpanAttributes['k'] FROM otel_traces WHERE SpanId = $id",
            {"id": span_id(n).hex()},
        )
        .fetchone()
    )
    assert row == ("\ufffd(ZZ", "\ufffdY\ufffd")


def test_huge_attribute_value_is_stored_whole(live: tuple[FlowscopeServer, Endpoints]) -> None:
    server, endpoints = live
    big = "x" * 200_000
    request = _one_span_request("huge", n=200, attributes=key_values({"payload": big}))
    response = httpx.post(
        f"{endpoints.http}/v1/traces", content=request.SerializeToString(), headers=PB
    )
    assert response.status_code == 200
    assert server.database is not None
    server.database.await_writes()  # acknowledged: in the journal, moving to the table
    (length,) = server.database.reader().execute(
        "SELECT length(SpanAttributes['payload']) FROM otel_traces WHERE SpanName = 'huge'"
    ).fetchone() or (0,)
    assert length == 200_000


def test_unknown_path_and_method(live: tuple[FlowscopeServer, Endpoints]) -> None:
    """Answered with a google.rpc.Status like every OTLP failure (plain text before)."""
    _, endpoints = live
    missing = httpx.post(f"{endpoints.http}/v1/metrics", content=b"", headers=PB)
    assert missing.status_code == 404
    assert "/v1/metrics" in Status.FromString(missing.content).message
    wrong = httpx.get(f"{endpoints.http}/v1/traces")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert "GET is not allowed" in Status.FromString(wrong.content).message
    as_json = httpx.put(
        f"{endpoints.http}/v1/traces", content=b"{}", headers={"Content-Type": "application/json"}
    )
    assert as_json.status_code == 405 and as_json.json()["code"] == 12
    # Not a 307 to /v1/traces: exporters that do not follow redirects took it for
    # success and dropped their spans.
    body = realistic_request(1, seed=9).SerializeToString()
    assert httpx.post(f"{endpoints.http}/v1/traces/", content=body, headers=PB).status_code == 404


def _grpc_call(endpoints: Endpoints, body: bytes) -> tuple[grpc.StatusCode, str, bytes]:
    return export_grpc(endpoints.grpc, body, timeout=30)


def test_grpc_bad_inputs(live: tuple[FlowscopeServer, Endpoints]) -> None:
    server, endpoints = live
    before = _count(server)
    code, details, _ = _grpc_call(endpoints, b"\xff\xfe\xfd garbage")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "invalid OTLP protobuf" in details
    code, details, _ = _grpc_call(endpoints, realistic_request(2).SerializeToString()[:-9])
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, details, _ = _grpc_call(endpoints, _invalid_utf8_protobuf()[:-3])
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, details, _ = _grpc_call(endpoints, b"\x0a" * (MAX + 10))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _count(server) == before
    request = _one_span_request("grpc good", n=300)
    request.resource_spans[0].scope_spans[0].spans.add(
        trace_id=b"\x01", span_id=span_id(301), name="bad"
    )
    code, _, answer = _grpc_call(endpoints, request.SerializeToString())
    assert code == grpc.StatusCode.OK
    assert ExportTraceServiceResponse.FromString(answer).partial_success.rejected_spans == 1
    assert _count(server) == before + 1


def test_server_survives_everything(
    live: tuple[FlowscopeServer, Endpoints], tmp_path: Path
) -> None:
    _, endpoints = live
    health = httpx.get(f"{endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60).json()
    assert health["status"] == "ok"
    assert health["ingest"]["rejected_spans"] >= 0
