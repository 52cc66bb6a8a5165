"""A received request may hold at most MAX_JSON_CONTAINERS JSON objects and arrays, or,
where it takes the general decoder, MAX_PROTOBUF_MESSAGES protobuf messages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf.message import Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from flowscope.collector import fast_flatten
from flowscope.collector.decode_budget import (
    MAX_JSON_CONTAINERS,
    MAX_PROTOBUF_MESSAGES,
    json_containers,
)
from flowscope.server import FlowscopeServer
from flowscope.testing.otlp import key_values, realistic_request, request_for, span_id, trace_id
from flowscope.testing.posting import PB
from flowscope.testing.server import Endpoints, server_in_process

JS = {"Content-Type": "application/json"}


def _request(attributes: str, name: str) -> bytes:
    return (
        '{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":'
        '{"stringValue":"budget"}}]},"scopeSpans":[{"spans":[{"traceId":'
        '"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"' + name + '",'
        '"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000001000000",'
        '"attributes":[' + attributes + "]}]}]}]}"
    ).encode()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FlowscopeServer, Endpoints]]:
    path: Path = tmp_path_factory.mktemp("budget") / "budget.duckdb"
    with server_in_process(path) as running:
        yield running


def test_braces_inside_strings_are_not_counted() -> None:
    crowded = json.dumps(
        {"s": '"' + "{" * MAX_JSON_CONTAINERS, "t": [{}, []], "u": 'x\\"[{', "v": "]"}
    ).encode()
    assert crowded.count(b"{") + crowded.count(b"[") > MAX_JSON_CONTAINERS
    assert json_containers(crowded) == 4


def test_a_request_of_too_many_containers_is_refused_before_it_is_parsed(
    live: tuple[FlowscopeServer, Endpoints],
) -> None:
    server, endpoints = live
    assert server.database is not None
    before = server.database.span_count()
    # Empty attributes: three bytes of text each, hundreds of bytes each once parsed.
    body = _request(",".join(["{}"] * MAX_JSON_CONTAINERS), "too-many")
    assert json_containers(body) > MAX_JSON_CONTAINERS
    response = httpx.post(f"{endpoints.http}/v1/traces", content=body, headers=JS, timeout=60)
    assert response.status_code == 413, response.text
    assert f"more than the {MAX_JSON_CONTAINERS:,} a request may" in response.json()["message"]
    assert server.database.span_count() == before
    health = httpx.get(f"{endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60).json()
    assert health["status"] == "ok"


def test_braces_in_attribute_values_do_not_count_against_it(
    live: tuple[FlowscopeServer, Endpoints],
) -> None:
    server, endpoints = live
    document = "{" * (MAX_JSON_CONTAINERS + 10)
    value = json.dumps({"key": "captured.document", "value": {"stringValue": document}})
    response = httpx.post(
        f"{endpoints.http}/v1/traces", content=_request(value, "braces"), headers=JS, timeout=60
    )
    assert response.status_code == 200, response.text
    assert server.database is not None
    server.database.await_writes()
    (stored,) = server.database.reader().execute(
        "SELECT SpanAttributes['captured.document'] FROM otel_traces WHERE SpanName = 'braces'"
    ).fetchone() or ("",)
    assert stored == document


def _messages(message: Message) -> int:
    """The messages in ``message``, itself included, from the parsed objects."""
    count = 1
    for field, value in message.ListFields():
        if field.message_type is not None:
            count += sum(_messages(item) for item in (value if field.is_repeated else [value]))
    return count


def _protobuf_body(span: Span) -> bytes:
    return request_for("budget", [span]).SerializeToString()


def _span(name: str, n: int, **fields: object) -> Span:
    return Span(
        trace_id=trace_id(n),
        span_id=span_id(n),
        name=name,
        start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_000_001_000_000,
        **fields,  # type: ignore[arg-type]
    )


def test_messages_are_counted_as_protobuf_builds_them() -> None:
    request = realistic_request(300)
    nested = _span(
        "nested",
        1,
        attributes=key_values({"list": [1, [2, {"k": [3.5, "x"]}], {}], "map": {"a": {"b": []}}}),
        events=[Span.Event(name="e", attributes=key_values({"k": "v"}))],
        links=[Span.Link(trace_id=trace_id(2), span_id=span_id(2), attributes=key_values({}))],
        status={"code": 2, "message": "failed"},
    )
    request.resource_spans.extend(request_for("nested", [nested]).resource_spans)
    body = request.SerializeToString()
    assert fast_flatten.count_messages(body) == _messages(request) > 10_000
    assert fast_flatten.count_messages(body[:-7]) < _messages(request)  # cut: counted so far


def _post_protobuf(endpoints: Endpoints, body: bytes) -> tuple[int, str]:
    response = httpx.post(f"{endpoints.http}/v1/traces", content=body, headers=PB, timeout=60)
    status = Status()
    status.ParseFromString(response.content)
    return response.status_code, status.message


def _export_grpc(endpoints: Endpoints, body: bytes) -> tuple[grpc.StatusCode, str]:
    with grpc.insecure_channel(endpoints.grpc) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=None,
        )
        try:
            export(body, timeout=60)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


@pytest.mark.parametrize("transport", ["http", "grpc"])
@pytest.mark.parametrize("shape", ["repeated-keys", "array-value"])
def test_a_protobuf_request_of_too_many_messages_for_the_general_decoder_is_refused(
    shape: str, transport: str, live: tuple[FlowscopeServer, Endpoints]
) -> None:
    server, endpoints = live
    assert server.database is not None
    before = server.database.span_count()
    if shape == "repeated-keys":  # the fast path hands repeated keys to the general one
        span = _span("too-many", 10, attributes=[KeyValue()] * MAX_PROTOBUF_MESSAGES)
    else:  # an ordinary request but for an array the fast path would have Python format
        values = AnyValue()
        values.array_value.values.extend([AnyValue()] * MAX_PROTOBUF_MESSAGES)
        span = _span("too-many", 11, attributes=[KeyValue(key="k", value=values)])
    body = _protobuf_body(span)
    assert len(body) < 5 * 2**20
    expected = f"more than {MAX_PROTOBUF_MESSAGES:,} messages"
    if transport == "http":
        status, message = _post_protobuf(endpoints, body)
        assert status == 413, message
    else:
        code, message = _export_grpc(endpoints, body)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, message
    assert expected in message
    assert server.database.span_count() == before


def test_requests_under_it_are_stored_either_way(live: tuple[FlowscopeServer, Endpoints]) -> None:
    """Repeated keys (the general decoder) and a long array (the fast path)."""
    server, endpoints = live
    values = AnyValue()
    values.array_value.values.extend([AnyValue(int_value=7)] * 10_000)
    spans = [
        _span("repeats", 20, attributes=[KeyValue(key="k", value=AnyValue(int_value=1))] * 20_000),
        _span("long-array", 21, attributes=[KeyValue(key="k", value=values)]),
    ]
    for span in spans:
        status, message = _post_protobuf(endpoints, _protobuf_body(span))
        assert status == 200, message
    assert server.database is not None
    server.database.await_writes()
    rows = dict(
        server.database.reader()
        .execute(
            "SELECT SpanName, length(SpanAttributes['k']) FROM otel_traces "
            "WHERE SpanName IN ('repeats', 'long-array')"
        )
        .fetchall()
    )
    assert rows == {"repeats": 1, "long-array": len("[" + ",".join(["7"] * 10_000) + "]")}
