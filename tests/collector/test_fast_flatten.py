"""The C fast path gives exactly the Python path's table, or declines and lets it answer."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from flowscope.collector import fast_flatten
from flowscope.collector.decode import decode, decode_python
from flowscope.collector.errors import BadRequest
from flowscope.collector.flatten import flatten_request
from flowscope.collector.otlp_json import request_from_json
from flowscope.testing.otlp import key_values, realistic_request, span_id, trace_id
from flowscope.testing.traces import TraceKit

SAMPLES = Path(__file__).resolve().parents[2] / "sample_traces"


def test_built_where_required() -> None:
    """CI sets FLOWSCOPE_REQUIRE_FAST_PATH: there a missing extension is a failure, not a skip."""
    if os.environ.get("FLOWSCOPE_REQUIRE_FAST_PATH"):
        assert fast_flatten.available(), "collector/_fastflatten.c was not built"


needs_fast_path = pytest.mark.skipif(
    not fast_flatten.available(),
    reason="the C fast path is not built (no compiler at install) or is turned off",
)


def every_kind_request() -> ExportTraceServiceRequest:
    """Every field set, every AnyValue kind, events, links, two scopes, an unset value."""
    attributes = key_values(
        {
            "s": "text",
            "empty": "",
            "unicode": "zürich ✓ 𝄞",
            "i": -42,
            "big": 2**63 - 1,
            "min": -(2**63),
            "zero": 0,
            "b": True,
            "f": False,
            "d": 0.1,
            "d_int": 3.0,
            "d_big": 1e21,
            "d_small": 1.5e-7,
            "bytes": b"\x00\xff",
            "arr": [1, "two", 3.5, [True]],
            "kv": {"z": 1, "a": {"n": None or "x"}, "lt": "<&>"},
        }
    ) + [KeyValue(key="unset"), KeyValue(key="", value=AnyValue(string_value="no key"))]
    strindex = AnyValue()
    strindex.string_value_strindex = 7
    attributes.append(KeyValue(key="strindex", value=strindex))
    span = Span(
        trace_id=trace_id(1),
        span_id=span_id(2),
        parent_span_id=span_id(3),
        trace_state="k=v",
        flags=257,
        name="GET /items/{id}",
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_000_250_000_000,
        attributes=attributes,
        dropped_attributes_count=3,
        dropped_events_count=4,
        dropped_links_count=5,
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom"),
        events=[
            Span.Event(
                time_unix_nano=1_700_000_000_100_000_000,
                name="exception",
                attributes=key_values({"exception.type": "ValueError", "n": 1}),
                dropped_attributes_count=1,
            ),
            Span.Event(name="bare"),
        ],
        links=[
            Span.Link(
                trace_id=trace_id(9),
                span_id=span_id(9),
                trace_state="a=b",
                attributes=key_values({"link.kind": "follows"}),
                dropped_attributes_count=2,
                flags=1,
            )
        ],
    )
    odd = Span(
        trace_id=trace_id(1), span_id=span_id(4), kind=99, status=Status(code=7)
    )  # out-of-range enums
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(
                    attributes=key_values({"service.name": "shop", "host.name": "h1", "n": 2}),
                    dropped_attributes_count=6,
                ),
                schema_url="https://opentelemetry.io/schemas/1.30.0",
                scope_spans=[
                    ScopeSpans(
                        scope=InstrumentationScope(
                            name="lib",
                            version="1.2",
                            attributes=key_values({"scope.attr": "x"}),
                            dropped_attributes_count=1,
                        ),
                        schema_url="https://scope/schema",
                        spans=[span, odd],
                    ),
                    ScopeSpans(spans=[Span(trace_id=trace_id(5), span_id=span_id(5))]),
                    ScopeSpans(),  # no spans: a group with nothing in it
                ],
            ),
            ResourceSpans(),  # no resource, no service name
            ResourceSpans(
                resource=Resource(attributes=key_values({"host.name": "no-service"})),
                scope_spans=[ScopeSpans(spans=[Span(trace_id=trace_id(6), span_id=span_id(6))])],
            ),
        ]
    )


def sample_requests() -> list[ExportTraceServiceRequest]:
    requests = []
    for path in sorted(SAMPLES.glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            if line.strip():
                requests.append(request_from_json(line))
    return requests


def kit_request() -> ExportTraceServiceRequest:
    kit = TraceKit()
    root = kit.trace(start_ms=0).span("web", "GET /", kind="Server", start_ms=0, duration_ms=9)
    root.child("db", "SELECT", kind="Client", start_ms=1, duration_ms=2, status="Error")
    return kit.request()


def assert_same(request: ExportTraceServiceRequest) -> None:
    body = request.SerializeToString()
    fast = fast_flatten.flatten_body(body)
    assert fast is not None, "an ordinary request takes the fast path"
    python = flatten_request(request)
    assert fast.batch.table.schema.equals(python.batch.table.schema)
    assert fast.batch.table.to_pylist() == python.batch.table.to_pylist()
    assert fast.batch.table.equals(python.batch.table)
    assert fast.batch.keys == python.batch.keys
    assert fast.rejected == 0


@needs_fast_path
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_realistic_requests(seed: int) -> None:
    assert_same(realistic_request(64, seed=seed))


@needs_fast_path
def test_every_field_and_value_kind() -> None:
    assert_same(every_kind_request())


@needs_fast_path
def test_recorded_sample_traces_and_the_trace_kit() -> None:
    requests = sample_requests()
    assert len(requests) >= 7
    for request in requests:
        assert_same(request)
    assert_same(kit_request())


@needs_fast_path
def test_empty_request() -> None:
    assert_same(ExportTraceServiceRequest())


@needs_fast_path
def test_fields_in_any_order_on_the_wire() -> None:
    """Scope and resource after their spans, status before the ids: protobuf allows it."""
    request = every_kind_request()
    resource_spans = request.resource_spans[0]
    scope_spans = resource_spans.scope_spans[0]
    span = scope_spans.spans[0]

    def field(number: int, payload: bytes) -> bytes:
        return _tag(number, 2) + _varint(len(payload)) + payload

    span_bytes = (
        field(15, span.status.SerializeToString())
        + Span(trace_id=span.trace_id, span_id=span.span_id, name="reordered").SerializeToString()
    )
    scope_bytes = field(2, span_bytes) + field(1, scope_spans.scope.SerializeToString())
    rs_bytes = field(2, scope_bytes) + field(1, resource_spans.resource.SerializeToString())
    body = field(1, rs_bytes)
    fast = fast_flatten.flatten_body(body)
    python = decode_python(body)
    assert fast is not None
    assert fast.batch.table.equals(python.batch.table)
    assert fast.batch.table.column("StatusCode").to_pylist() == ["Error"]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _tag(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def declined(request: ExportTraceServiceRequest) -> None:
    body = request.SerializeToString()
    assert fast_flatten.flatten_body(body) is None
    # ...and decode still answers, through the Python path.
    assert decode(body).batch.table.equals(decode_python(body).batch.table)


@needs_fast_path
def test_invalid_ids_go_to_the_python_path_for_partial_success() -> None:
    request = realistic_request(2, seed=1)
    request.resource_spans[0].scope_spans[0].spans[0].span_id = b"\x00" * 8
    declined(request)
    result = decode(request.SerializeToString())
    assert result.rejected == 1 and "span_id is all zeros" in result.error_message


@needs_fast_path
def test_empty_and_zero_link_ids_are_stored_empty_by_both_paths() -> None:
    request = realistic_request(2, seed=1)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    del span.links[:]
    span.links.add(trace_id=bytes(16), span_id=bytes(8))
    span.links.add()
    span.links.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
    assert_same(request)
    links = decode(request.SerializeToString()).batch.table.column("Links").to_pylist()[0]
    ids = [(link["TraceId"], link["SpanId"]) for link in links]
    assert ids == [("", ""), ("", ""), ("01" * 16, "02" * 8)]


@needs_fast_path
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda s: s.links.add(trace_id=b"\x01\x02", span_id=b"\x02" * 8),
            "link 1's trace_id has 2",
        ),
        (lambda s: s.links.add(trace_id=b"\x01" * 16, span_id=b"\x02"), "link 1's span_id has 1"),
        (lambda s: setattr(s, "start_time_unix_nano", 2**63 - 1), "start_time_unix_nano 9223"),
        (lambda s: setattr(s, "end_time_unix_nano", 2**64 - 1), "end_time_unix_nano 1844"),
        (lambda s: s.events.add(time_unix_nano=2**63), "an event's time_unix_nano 9223"),
    ],
)
def test_bad_link_ids_and_far_times_reject_the_span_alone(
    change: Callable[[Span], object], reason: str
) -> None:
    request = realistic_request(2, seed=1)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    del span.links[:]
    change(span)
    declined(request)
    result = decode(request.SerializeToString())
    assert result.rejected == 1 and reason in result.error_message
    assert result.batch.spans == 2 * 8 - 1


@needs_fast_path
def test_duplicate_keys_and_entity_refs_go_to_the_python_path() -> None:
    request = realistic_request(1, seed=1)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.extend(key_values({"k": "first"}) + key_values({"k": "last"}))
    declined(request)
    assert ("k", "first") in decode(request.SerializeToString()).batch.table.column(
        "SpanAttributes"
    ).to_pylist()[0]
    request = realistic_request(1, seed=1)
    ref = request.resource_spans[0].resource.entity_refs.add()
    ref.type = "host"
    ref.id_keys.append("host.name")
    declined(request)


@needs_fast_path
def test_invalid_utf8_and_bad_bodies_take_the_python_path() -> None:
    request = realistic_request(1, seed=1)
    request.resource_spans[0].scope_spans[0].spans[0].name = "MARKER"
    body = request.SerializeToString().replace(b"MARKER", b"MA\xffKER")
    assert fast_flatten.flatten_body(body) is None
    repaired = decode(body)  # utf8_repair: stored with U+FFFD, the sender told
    assert repaired.batch.table.column("SpanName").to_pylist()[0] == "MA\ufffdKER"
    assert repaired.warning.startswith("1 string(s) were not valid UTF-8")
    for bad in (b"\xff\xff\xff", request.SerializeToString()[:-3], body[:-3]):
        assert fast_flatten.flatten_body(bad) is None
        with pytest.raises(BadRequest):
            decode(bad)


@needs_fast_path
def test_pure_python_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    body = realistic_request(1, seed=1).SerializeToString()
    assert fast_flatten.flatten_body(body) is not None
    monkeypatch.setenv("FLOWSCOPE_PURE_PYTHON", "1")
    assert not fast_flatten.available()
    assert fast_flatten.flatten_body(body) is None


@needs_fast_path
def test_mutated_bodies_never_disagree_with_protobuf() -> None:
    """Random byte flips, cuts and splices: the fast path declines, or gives exactly the
    Python path's table; it never accepts a body protobuf rejects."""
    rng = random.Random(20261123)
    seeds = [
        every_kind_request().SerializeToString(),
        realistic_request(3, seed=5).SerializeToString(),
    ]
    accepted = declined_count = 0
    for _ in range(3000):
        body = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            action = rng.random()
            at = rng.randrange(len(body))
            if action < 0.6:
                body[at] = rng.randrange(256)
            elif action < 0.8:
                del body[at : at + rng.randint(1, 8)]
            else:
                body[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        data = bytes(body)
        fast = fast_flatten.flatten_body(data)
        if fast is None:
            declined_count += 1
            continue
        try:
            request = ExportTraceServiceRequest.FromString(data)
        except DecodeError:
            pytest.fail(f"fast path accepted a body protobuf rejects: {data.hex()}")
        python = flatten_request(request)
        assert python.rejected == 0
        assert fast.batch.table.to_pylist() == python.batch.table.to_pylist(), data.hex()
        assert fast.batch.keys == python.batch.keys
        accepted += 1
    assert accepted > 100 and declined_count > 100, (accepted, declined_count)


@needs_fast_path
def test_the_table_goes_into_duckdb_like_the_python_one(tmp_path: Path) -> None:
    from flowscope.store.database import Database
    from flowscope.store.writer import SpanWriter

    body = every_kind_request().SerializeToString()
    fast = fast_flatten.flatten_body(body)
    assert fast is not None
    database = Database(tmp_path / "fast.duckdb")
    writer = SpanWriter(database, derive_interval_s=None)
    writer.start()
    try:
        assert writer.write(fast.batch.table, fast.batch.keys, timeout=30) == fast.batch.spans
    finally:
        writer.shutdown()
    stored = (
        database.reader()
        .sql("SELECT * EXCLUDE (CommitSeq) FROM otel_traces ORDER BY SpanId")
        .to_arrow_table()
    )
    expected = sorted(decode_python(body).batch.table.to_pylist(), key=lambda row: row["SpanId"])
    assert stored.to_pylist() == expected
    database.close()


def test_a_link_id_that_is_not_hex_in_json_rejects_the_span() -> None:
    """Before, the decoder's internal marker for 'not hex' was stored as the link's id."""
    span = {"traceId": "01" * 16, "spanId": "02" * 8, "name": "linked"}
    link = {"traceId": "not-hex", "spanId": "03" * 8}
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "links": [link]}]}]}]}
    result = decode(json.dumps(doc).encode(), "application/json")
    assert result.rejected == 1 and result.batch.spans == 0
    assert "span 'linked': link 1's trace_id is not a hex string" in result.error_message


@needs_fast_path
def test_a_kind_or_status_outside_the_enum_is_stored_empty_by_both_paths() -> None:
    """pdata's SpanKind.String() and StatusCode.String() give '' for them, and the exporter
    stores that; before, they were stored as Unspecified and Unset."""
    request = realistic_request(1, seed=1)
    spans = [span for rs in request.resource_spans for span in rs.scope_spans[0].spans]
    for span, kind, code in zip(spans, (99, -1, 6, 2), (7, -3, 2, 3), strict=False):
        span.kind = Span.SpanKind.ValueType(kind)
        span.status.code = Status.StatusCode.ValueType(code)
    assert_same(request)
    table = decode(request.SerializeToString()).batch.table
    assert table.column("SpanKind").to_pylist()[:4] == ["", "", "", "Server"]
    assert table.column("StatusCode").to_pylist()[:4] == ["", "", "Error", ""]


def stored_attributes(attributes: dict[str, object]) -> dict[str, str]:
    """A span with these attributes through both paths (which must agree): its map."""
    request = realistic_request(1, seed=1)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    del span.attributes[:]
    span.attributes.extend(key_values(attributes))
    assert_same(request)
    stored = decode(request.SerializeToString()).batch.table.column("SpanAttributes")
    return dict(stored.to_pylist()[0])


@needs_fast_path
def test_empty_bytes_in_an_array_or_map_are_null_on_both_paths() -> None:
    """As pdata's AsRaw + Go's encoder write them; before, "" (a top-level one stays '')."""
    stored = stored_attributes({"a": [b"", b"\x01"], "m": {"b": b""}, "top": b""})
    assert stored == {"a": '[null,"AQ=="]', "m": '{"b":null}', "top": ""}


@needs_fast_path
def test_html_characters_in_an_array_or_map_are_not_escaped_on_both_paths() -> None:
    """As the Collector writes them since PR #15108; before, \\u003c, \\u003e, \\u0026."""
    stored = stored_attributes({"a": ["<b>&\u2028"], "m": {"<": ">"}})
    assert stored == {"a": '["<b>&\\u2028"]', "m": '{"<":">"}'}


@needs_fast_path
def test_a_service_name_sent_twice_is_the_first_one() -> None:
    """pdata's Map.Get (the exporter's ServiceName) finds the first, and ClickHouse's
    m['service.name'] reads the first of the entries the exporter stores; before, the
    last one was kept for both."""
    request = realistic_request(1, seed=1)
    resource = request.resource_spans[0].resource
    del resource.attributes[:]
    resource.attributes.extend(
        key_values({"service.name": "first", "host.name": "h"}) + key_values({"service.name": 2})
    )
    declined(request)  # duplicate keys take the Python path
    table = decode(request.SerializeToString()).batch.table
    assert set(table.column("ServiceName").to_pylist()[:2]) == {"first"}
    resources = table.column("ResourceAttributes").to_pylist()
    assert sorted(resources[0]) == [("host.name", "h"), ("service.name", "first")]


@needs_fast_path
def test_every_attribute_map_is_sorted_by_key_on_both_paths() -> None:
    """As the exporter stores them (clickhouse-go's orderedmap sorts by key); before, in
    the order sent. Keys compare byte-wise, as Go's strings do."""
    shuffled = {"z": 1, "a.b": "x", "é": True, "a": 2.5, "\U0001d11e": "y", "ab": [1], "": "e"}
    many = {f"k{n:03d}": n for n in range(99, -1, -1)}  # past the C path's insertion sort
    request = realistic_request(1, seed=1)
    resource_spans = request.resource_spans[0]
    resource_spans.resource.attributes.extend(key_values(shuffled))
    resource_spans.scope_spans[0].scope.attributes.extend(key_values(shuffled))
    span = resource_spans.scope_spans[0].spans[0]
    span.attributes.extend(key_values(many))
    span.events.add(name="e", attributes=key_values(shuffled))
    span.links.add(trace_id=trace_id(7), span_id=span_id(7), attributes=key_values(shuffled))
    assert_same(request)
    row = decode(request.SerializeToString()).batch.table.slice(0, 1).to_pylist()[0]
    maps = [
        row["ResourceAttributes"],
        row["ScopeAttributes"],
        row["SpanAttributes"],
        row["Events"][0]["Attributes"],
        row["Links"][0]["Attributes"],
    ]
    for stored in maps:
        keys = [key for key, _ in stored]
        assert keys == sorted(keys, key=lambda key: key.encode())
    assert [key for key, _ in maps[3]] == ["", "a", "a.b", "ab", "z", "é", "\U0001d11e"]
    assert set(many) <= {key for key, _ in maps[2]}


@needs_fast_path
def test_an_all_zero_parent_id_is_a_root_in_both_paths() -> None:
    """The Collector's pdata reads an all-zero parent_span_id as none; before, the span
    was rejected and its trace lost its root."""
    request = realistic_request(2, seed=1)
    spans = request.resource_spans[0].scope_spans[0].spans
    roots = [span for span in spans if not span.parent_span_id]
    for span in roots:
        span.parent_span_id = bytes(8)
    assert_same(request)
    result = decode(request.SerializeToString())
    assert result.rejected == 0
    parents = result.batch.table.column("ParentSpanId").to_pylist()
    assert parents.count("") == len(roots) == 2


def test_the_records_name_every_kind_and_status_the_writer_stores() -> None:
    """The API's records declare SpanKind and StatusCode as enums (OpenAPI); a value the
    writer stores and they leave out would fail generated clients."""
    from typing import get_args

    from flowscope.analyzer.model import SpanKindName, StatusName
    from flowscope.collector.flatten import SPAN_KINDS, STATUS_CODES

    assert get_args(SpanKindName) == SPAN_KINDS
    assert get_args(StatusName) == STATUS_CODES


def test_no_valid_id_reads_as_a_decoders_marker() -> None:
    """The odd-hex-digits marker's prefix had 16 bytes, a trace id's: a valid link trace
    id of those bytes was rejected as "has  hex digits" on the Python path (diff
    review). The markers now have no id's length, with or without their count."""
    from flowscope.collector.flatten import NOT_HEX_ID, ODD_HEX_ID, _hex_problem, odd_hex_id

    for marker in (NOT_HEX_ID, ODD_HEX_ID, odd_hex_id(15), odd_hex_id(33)):
        assert len(marker) not in (8, 16)
    assert _hex_problem(ODD_HEX_ID[:16], 16) is None
    assert _hex_problem(b"\xffodd hex digits ", 16) is None  # the old prefix, a valid id
    assert _hex_problem(odd_hex_id(15), 8) == "has 15 hex digits, expected 16"
    # A protobuf id of the prefix and other bytes is an id of the wrong length, not a
    # marker: its count failed to decode, a 500 for the whole request (diff review).
    assert _hex_problem(ODD_HEX_ID + b"\xff\xfe", 16) is None
