"""A received request may hold at most MAX_JSON_CONTAINERS JSON objects and arrays, or,
where it takes the general decoder, MAX_PROTOBUF_MESSAGES protobuf messages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pyarrow as pa
import pytest
from google.protobuf.message import Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from flowscope.collector import fast_flatten
from flowscope.collector.decode import decode_python
from flowscope.collector.decode_budget import (
    MAX_EXPANDED_BYTES,
    MAX_JSON_CONTAINERS,
    MAX_PROTOBUF_MESSAGES,
    SMALL_EXPANSION,
    check_expansion,
    json_containers,
)
from flowscope.server import FlowscopeServer
from flowscope.store.table_size import expanded_bound, expanded_bytes, value_bytes
from flowscope.testing.otlp import key_values, realistic_request, request_for, span_id, trace_id
from flowscope.testing.posting import PB, export_grpc
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
        elif field.is_repeated:  # an entity ref's keys: each string an object too
            count += len(value)
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


def _varint(value: int) -> bytes:
    out = b""
    while True:
        byte, value = value & 0x7F, value >> 7
        out += bytes([byte | (0x80 if value else 0)])
        if not value:
            return out


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


# An unknown group (field 100: a varint and a group inside), which protobuf skips
# before it parses on; it stopped the count once.
GROUP = _varint(100 << 3 | 3) + b"\x08\x01" + _varint(7 << 3 | 3) + _varint(7 << 3 | 4)
GROUP += _varint(100 << 3 | 4)


def _span_with_value(name: str, n: int, value: bytes) -> bytes:
    """A request of one span with one attribute ``k`` whose AnyValue is ``value``."""
    span = _span(name, n).SerializeToString() + _len_field(
        9, _len_field(1, b"k") + _len_field(2, value)
    )
    resource = request_for("budget", []).resource_spans[0].resource.SerializeToString()
    return _len_field(1, _len_field(1, resource) + _len_field(2, _len_field(2, span)))


def test_messages_are_counted_as_protobuf_builds_them() -> None:
    request = realistic_request(300)
    nested = _span(
        "nested",
        1,
        attributes=key_values({"list": [1, [2, {"k": [3.5, "x"]}], {}], "map": {"a": {"b": []}}}),
        events=[Span.Event(name="e", attributes=key_values({"k": "v"}))],
        links=[
            Span.Link(trace_id=trace_id(2), span_id=span_id(2), attributes=key_values({})),
            Span.Link(trace_id=trace_id(3), span_id=span_id(3), attributes=key_values({"a": [1]})),
        ],
        status={"code": 2, "message": "failed"},
    )
    request.resource_spans.extend(request_for("nested", [nested]).resource_spans)
    request.resource_spans[-1].resource.entity_refs.add(
        type="k8s.pod", id_keys=["k8s.pod.uid", ""], description_keys=["k8s.pod.name"]
    )
    body = request.SerializeToString()
    assert fast_flatten.count_messages(body) == _messages(request) > 10_000
    assert fast_flatten.count_messages(body[:-7]) < _messages(request)  # cut: counted so far
    # Groups, skipped by protobuf, before the request's fields, a span's, and an array's;
    # and an array sent twice, which protobuf merges.
    array = _len_field(5, GROUP + _len_field(1, b"") * 5) + _len_field(5, _len_field(1, b""))
    grouped = GROUP + _span_with_value("grouped", 4, array)
    parsed = ExportTraceServiceRequest.FromString(grouped)
    assert (
        len(parsed.resource_spans[0].scope_spans[0].spans[0].attributes[0].value.array_value.values)
        == 6
    )
    # Each part of a merged message counts: an upper bound, as every part is parsed.
    assert fast_flatten.count_messages(grouped) == _messages(parsed) + 1


def _post_protobuf(endpoints: Endpoints, body: bytes) -> tuple[int, str]:
    response = httpx.post(f"{endpoints.http}/v1/traces", content=body, headers=PB, timeout=60)
    status = Status()
    status.ParseFromString(response.content)
    return response.status_code, status.message


def _refusal(endpoints: Endpoints, transport: str, body: bytes) -> str:
    """The message of the refusal of ``body``: HTTP 413, or gRPC RESOURCE_EXHAUSTED."""
    if transport == "http":
        status, message = _post_protobuf(endpoints, body)
        assert status == 413, message
    else:
        code, message, _ = export_grpc(endpoints.grpc, body)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, message
    return message


@pytest.mark.parametrize("transport", ["http", "grpc"])
@pytest.mark.parametrize(
    "shape",
    [
        "repeated-keys",
        "array-value",
        "link-attributes",
        "group-first",
        "merged-arrays",
        "group-in-array",
        "entity-ref-keys",
    ],
)
def test_a_protobuf_request_of_too_many_messages_for_the_general_decoder_is_refused(
    shape: str, transport: str, live: tuple[FlowscopeServer, Endpoints]
) -> None:
    server, endpoints = live
    assert server.database is not None
    before = server.database.span_count()
    many = [KeyValue()] * MAX_PROTOBUF_MESSAGES  # repeated keys: the general decoder
    empties = _len_field(1, b"") * MAX_PROTOBUF_MESSAGES  # an array's empty values
    if shape == "repeated-keys":
        body = _protobuf_body(_span("too-many", 10, attributes=many))
    elif shape == "array-value":  # ordinary but for an array the fast path has Python format
        body = _span_with_value("too-many", 11, _len_field(5, empties))
    elif shape == "link-attributes":
        link = Span.Link(trace_id=trace_id(5), span_id=span_id(5), attributes=many)
        body = _protobuf_body(_span("too-many", 12, links=[link]))
    elif shape == "group-first":
        body = GROUP + _protobuf_body(_span("too-many", 13, attributes=many))
    elif shape == "merged-arrays":  # the text is the last array's; Python parses both
        body = _span_with_value("too-many", 14, _len_field(5, empties) + _len_field(5, b""))
    elif shape == "group-in-array":
        body = _span_with_value("too-many", 15, _len_field(5, GROUP + empties))
    else:  # uncounted before: 2M empty id_keys (4 MB) took the decode worker 600 MB more
        keys = _len_field(3, b"") * MAX_PROTOBUF_MESSAGES
        resource = request_for("budget", []).resource_spans[0].resource.SerializeToString()
        resource += _len_field(3, keys)
        span = _span("too-many", 16).SerializeToString()
        body = _len_field(1, _len_field(1, resource) + _len_field(2, _len_field(2, span)))
    assert len(body) < 5 * 2**20
    assert f"more than {MAX_PROTOBUF_MESSAGES:,} messages" in _refusal(endpoints, transport, body)
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


def test_json_that_is_not_utf8_is_refused(live: tuple[FlowscopeServer, Endpoints]) -> None:
    """In UTF-16 an escaped quote's NUL byte threw the exact count out of step: 3.5M
    containers counted as 13, and the decode worker reached 2.6 GB."""
    _, endpoints = live
    body = _request('{"key": "q\\"", "value": {"stringValue": "v"}}', "utf16").decode()
    for encoding in ("utf-16", "utf-16-le", "utf-32"):
        response = httpx.post(
            f"{endpoints.http}/v1/traces", content=body.encode(encoding), headers=JS, timeout=60
        )
        assert response.status_code == 400, response.text
        assert "not UTF-8" in response.json()["message"]


def test_an_unterminated_string_runs_to_the_end() -> None:
    """Failing to close it from every quote rescanned the body each time (quadratic)."""
    body = b"[" * (MAX_JSON_CONTAINERS + 1) + b'"' + b'\\"{' * 2_000
    assert json_containers(body) == MAX_JSON_CONTAINERS + 1


def test_a_request_whose_resource_repeated_on_its_spans_comes_to_too_much_is_refused(
    live: tuple[FlowscopeServer, Endpoints],
) -> None:
    """A 2 MB request of 1,000 spans sharing a 2 MB resource value stored 2 GB (each span
    keeps a copy of its resource) and took the server to 7 GB."""
    server, endpoints = live
    assert server.database is not None
    before = server.database.span_count()
    each = MAX_EXPANDED_BYTES // 200 + 1
    spans = [_span("repeated", 1_000 + n) for n in range(200)]
    big = request_for("budget", spans, resource={"big": "y" * each}).SerializeToString()
    assert len(big) < 2 * each
    for transport in ("http", "grpc"):
        message = _refusal(endpoints, transport, big)
        assert f"more than the {MAX_EXPANDED_BYTES:,} a request may" in message
    assert server.database.span_count() == before
    # The same request's worth of resource on fewer spans is stored.
    fine = request_for("budget", spans[:10], resource={"big": "y" * each})
    status, message = _post_protobuf(endpoints, fine.SerializeToString())
    assert status == 200, message


@pytest.mark.parametrize("traces", [1, 3, 64])
def test_the_quick_bound_is_never_below_the_exact_expansion(traces: int) -> None:
    """A small request is weighed by a bound read off buffer sizes (0.4 ms for the exact
    count was a third of the work of a 5-span request); it must not weigh less."""
    requests = [
        realistic_request(traces, seed=traces),
        request_for(
            "bound",
            [_span("s", n) for n in range(traces)],
            resource={"k": "v" * 300, "n": 7, "b": True, "l": ["a", "bb"]},
        ),
    ]
    for request in requests:
        for result in (
            fast_flatten.flatten_body(request.SerializeToString()),
            decode_python(request.SerializeToString()),
        ):
            assert result is not None
            table = result.batch.table
            exact, bound = expanded_bytes(table), expanded_bound(table)
            assert 0 < exact <= bound
            assert check_expansion(table) == (bound if bound <= SMALL_EXPANSION else exact)


def test_both_decoders_count_the_same_expansion() -> None:
    body = realistic_request(200).SerializeToString()
    fast = fast_flatten.flatten_body(body)
    assert fast is not None
    general = decode_python(body)
    assert expanded_bytes(fast.batch.table) == expanded_bytes(general.batch.table) > 0


def test_a_resource_copied_into_too_many_scope_groups_is_refused_before_the_copies(
    live: tuple[FlowscopeServer, Endpoints],
) -> None:
    """Each scope group got its resource's attributes: 200,000 of them in 300 groups, a
    2.9 MB request, took the ingest process to 2 GB before anything said no."""
    _, endpoints = live
    request = request_for("budget", [], resource={f"k{i}": "" for i in range(200_000)})
    resource_spans = request.resource_spans[0]
    del resource_spans.scope_spans[:]
    for n in range(300):
        resource_spans.scope_spans.add().spans.append(_span("copied", 2_000 + n))
    body = request.SerializeToString()
    assert fast_flatten.flatten_body(body) is None  # the fast path leaves it, uncopied
    status, message = _post_protobuf(endpoints, body)
    assert status == 413, message
    assert "copied for each of its scopes" in message


@pytest.mark.parametrize("shape", ["schema-url-per-group", "empty-events"])
def test_what_the_fast_path_would_copy_or_store_is_counted_too(
    shape: str, live: tuple[FlowscopeServer, Endpoints]
) -> None:
    """A 4 MB schema URL in 400 empty scope groups took the server to 5.2 GB (each group
    got a copy), and one span of 9.5M empty events, 19 MB, to 2.6 GB."""
    _, endpoints = live
    if shape == "schema-url-per-group":
        request = request_for("budget", [_span("schema", 3_000)])
        resource_spans = request.resource_spans[0]
        resource_spans.schema_url = "s" * 2**20
        for _ in range(100):
            resource_spans.scope_spans.add()
    else:
        span = _span("events", 3_001, events=[Span.Event()] * MAX_PROTOBUF_MESSAGES)
        request = request_for("budget", [span])
    body = request.SerializeToString()
    assert fast_flatten.flatten_body(body) is None  # left to the counted path
    status, message = _post_protobuf(endpoints, body)
    assert status == 413, message


def test_many_small_resources_are_not_counted_as_large() -> None:
    """A gateway's batch of 3,000 pods' spans was counted at 339 MiB for 30 MiB of text:
    columns other than text and maps were charged the whole dictionary a span."""
    pod = {f"k8s.label.{i}": f"value-{i}" for i in range(60)}
    request = ExportTraceServiceRequest()
    for n in range(3_000):
        spans = [_span("pod", 10 * n + i) for i in range(3)]
        request.resource_spans.extend(request_for(f"svc-{n}", spans, resource=pod).resource_spans)
    fast = fast_flatten.flatten_body(request.SerializeToString())
    assert fast is not None
    text = sum(len(k) + len(v) + 16 for k, v in pod.items()) * 9_000
    assert text < expanded_bytes(fast.batch.table) < 2 * text


def test_a_sliced_map_dictionary_is_sized_by_its_own_entries() -> None:
    maps = pa.array([[("a", "bb")], [("c", "d")], [("ee", "")]], pa.map_(pa.string(), pa.string()))
    assert value_bytes(maps.slice(1)).tolist() == [2 + 16, 2 + 16]
