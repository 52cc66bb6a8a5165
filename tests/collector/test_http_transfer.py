"""OTLP/HTTP bodies as clients really send them: chunked, gzip, both, JSON."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from flowscope.collector.otlp_json import request_from_json, request_to_json
from flowscope.server import FlowscopeServer
from flowscope.testing.otlp import realistic_request
from flowscope.testing.server import Endpoints, server_in_process


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FlowscopeServer, Endpoints]]:
    db = Path(tmp_path_factory.mktemp("transfer")) / "spans.duckdb"
    with server_in_process(db) as pair:
        yield pair


def _pieces(body: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _count(server: FlowscopeServer, trace_hex_prefix: str) -> int:
    server.database.await_writes()  # acknowledged: in the journal, moving to the table
    rows = server.database.reader().execute(
        "SELECT count(*) FROM otel_traces WHERE TraceId LIKE $p", {"p": trace_hex_prefix + "%"}
    )
    row = rows.fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize(
    ("label", "prefix", "chunked", "gzipped", "as_json"),
    [
        ("chunked protobuf", b"\x01\x01", True, False, False),
        ("gzip protobuf", b"\x01\x02", False, True, False),
        ("chunked gzip protobuf", b"\x01\x03", True, True, False),
        ("chunked gzip JSON", b"\x01\x04", True, True, True),
    ],
)
def test_body_encodings_store_every_span(
    live: tuple[FlowscopeServer, Endpoints],
    label: str,
    prefix: bytes,
    chunked: bool,
    gzipped: bool,
    as_json: bool,
) -> None:
    server, endpoints = live
    request = realistic_request(20, seed=len(label), trace_id_prefix=prefix)
    sent = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    if as_json:
        body = request_to_json(request)
        headers = {"Content-Type": "application/json"}
    else:
        body = request.SerializeToString()
        headers = {"Content-Type": "application/x-protobuf"}
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    content: bytes | Iterator[bytes] = _pieces(body) if chunked else body
    answer = httpx.post(f"{endpoints.http}/v1/traces", content=content, headers=headers)
    assert answer.status_code == 200, answer.text
    if chunked:
        assert "content-length" not in answer.request.headers
        assert answer.request.headers["transfer-encoding"] == "chunked"
    if not as_json:
        parsed = ExportTraceServiceResponse.FromString(answer.content)
        assert parsed.partial_success.rejected_spans == 0
    assert _count(server, prefix.hex()) == sent


def test_gzip_body_of_several_members(live: tuple[FlowscopeServer, Endpoints]) -> None:
    """RFC 1952 lets a gzip body hold members one after another (``cat a.gz b.gz``);
    before, only the first was read and the request's other spans were lost."""
    server, endpoints = live
    prefix = b"\x01\x05"
    request = realistic_request(20, seed=9, trace_id_prefix=prefix)
    sent = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    body = request.SerializeToString()
    middle = len(body) // 2
    members = gzip.compress(body[:middle]) + gzip.compress(body[middle:])
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    answer = httpx.post(f"{endpoints.http}/v1/traces", content=members, headers=headers)
    assert answer.status_code == 200, answer.text
    assert _count(server, prefix.hex()) == sent


def test_otlp_json_round_trip_keeps_every_field() -> None:
    request = realistic_request(5, seed=3)
    text = request_to_json(request)
    assert b'"traceId":"' in text and b'"kind":2' in text  # hex ids, integer enums
    assert request_from_json(text) == request
