"""Exporter retries store nothing twice: the dedup window, across transports and restarts."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import grpc
import httpx
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from flowscope.server import FlowscopeServer
from flowscope.testing.otlp import realistic_request
from flowscope.testing.posting import PB
from flowscope.testing.server import Endpoints, server_in_process
from flowscope.testing.traces import TraceKit
from tests.analyzer.test_shared_ids import zipkin_style

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
SPANS_PER_TRACE = 8


def _post(endpoints: Endpoints, request: ExportTraceServiceRequest) -> None:
    response = httpx.post(
        f"{endpoints.http}/v1/traces", content=request.SerializeToString(), headers=PB, timeout=30
    )
    assert response.status_code == 200, response.text


def _post_json(endpoints: Endpoints, request: ExportTraceServiceRequest) -> None:
    """The same spans as OTLP/JSON, with the hex ids OTLP/JSON uses."""
    document: dict[str, Any] = json_format.MessageToDict(request)
    for rs in document["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for name in ("traceId", "spanId", "parentSpanId"):
                    if name in span:
                        span[name] = base64.b64decode(span[name]).hex()
    response = httpx.post(
        f"{endpoints.http}/v1/traces",
        content=json.dumps(document),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def _grpc(endpoints: Endpoints, request: ExportTraceServiceRequest) -> None:
    with grpc.insecure_channel(endpoints.grpc) as channel:
        export = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        export(request.SerializeToString(), timeout=30)  # raises RpcError unless OK


def _health(endpoints: Endpoints) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(
        f"{endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60
    ).json()
    return body


def _distinct_spans(server: FlowscopeServer) -> tuple[int, int]:
    assert server.database is not None
    server.database.await_writes()  # acknowledged: in the journal, moving to the table
    row = (
        server.database.reader()
        .execute("SELECT count(*), count(DISTINCT (TraceId, SpanId)) FROM otel_traces")
        .fetchone()
    )
    assert row is not None
    return int(row[0]), int(row[1])


def test_same_request_twice_is_stored_once_over_http_and_grpc(tmp_path: Path) -> None:
    with server_in_process(tmp_path / "dedup.duckdb", decode_workers=0) as (server, endpoints):
        over_http = realistic_request(5, seed=1)
        _post(endpoints, over_http)
        _post(endpoints, over_http)
        health = _health(endpoints)
        assert health["spans"] == 40
        assert health["writer"]["committed_spans"] == 40
        assert health["writer"]["duplicate_spans"] == 40

        over_grpc = realistic_request(5, seed=2)
        _grpc(endpoints, over_grpc)
        _grpc(endpoints, over_grpc)
        health = _health(endpoints)
        assert health["spans"] == 80
        assert health["writer"]["duplicate_spans"] == 80

        # A retry need not use the transport or encoding of the first attempt.
        _grpc(endpoints, over_http)
        _post_json(endpoints, over_grpc)
        health = _health(endpoints)
        assert health["spans"] == 80
        assert health["writer"]["duplicate_spans"] == 160
        assert health["ingest"]["accepted_spans"] == 240
        assert _distinct_spans(server) == (80, 80)


def test_request_overlapping_an_earlier_one_stores_only_the_new_spans(tmp_path: Path) -> None:
    with server_in_process(tmp_path / "overlap.duckdb", decode_workers=0) as (server, endpoints):
        # Same seed: the first five traces of the larger request are the smaller request's.
        _post(endpoints, realistic_request(5, seed=7))
        _post(endpoints, realistic_request(10, seed=7))
        health = _health(endpoints)
        assert health["spans"] == 10 * SPANS_PER_TRACE
        assert health["writer"]["duplicate_spans"] == 5 * SPANS_PER_TRACE
        assert _distinct_spans(server) == (80, 80)


def test_resend_after_restart_is_stored_once(tmp_path: Path) -> None:
    db = tmp_path / "restart.duckdb"
    request = realistic_request(5, seed=3)
    with server_in_process(db, decode_workers=0) as (_, endpoints):
        _post(endpoints, request)
        assert _health(endpoints)["spans"] == 40
    with server_in_process(db, decode_workers=0) as (server, endpoints):
        health = _health(endpoints)
        assert health["writer"]["dedup_window_spans"] == 40  # warmed from the file
        assert health["writer"]["duplicate_spans"] == 0
        _post(endpoints, request)
        _grpc(endpoints, request)
        health = _health(endpoints)
        assert health["spans"] == 40
        assert health["writer"]["committed_spans"] == 0
        assert health["writer"]["duplicate_spans"] == 80
        assert _distinct_spans(server) == (40, 40)


def test_window_remembers_only_the_newest_spans_after_restart(tmp_path: Path) -> None:
    db = tmp_path / "window.duckdb"
    older, newer = realistic_request(5, seed=4), realistic_request(5, seed=5, first_trace=100)
    with server_in_process(db, decode_workers=0) as (_, endpoints):
        _post(endpoints, older)
        _post(endpoints, newer)
    # A window of 40 spans, warmed with the 40 newest by start time: ``newer``'s.
    with server_in_process(db, decode_workers=0, dedup_window=40) as (server, endpoints):
        assert _health(endpoints)["writer"]["dedup_window_spans"] == 40
        _post(endpoints, newer)
        assert _health(endpoints)["spans"] == 80
        _post(endpoints, older)  # forgotten: stored again, as --dedup-window documents
        assert _health(endpoints)["spans"] == 120
        assert _distinct_spans(server) == (120, 80)


def test_window_zero_turns_dedup_off(tmp_path: Path) -> None:
    with server_in_process(tmp_path / "off.duckdb", decode_workers=0, dedup_window=0) as (
        _,
        endpoints,
    ):
        request = realistic_request(2, seed=6)
        _post(endpoints, request)
        _post(endpoints, request)
        health = _health(endpoints)
        assert health["spans"] == 32
        assert health["writer"]["duplicate_spans"] == 0
        assert health["writer"]["dedup_window_spans"] == 0


def test_a_server_span_under_its_clients_id_is_no_retry_of_it(tmp_path: Path) -> None:
    """Zipkin instrumentation reports an RPC's server span under its client's id, and
    the Collector's zipkin receiver passes both on: the server half was dropped as a
    retry of the client span. Retries of either are still dropped, after a restart too."""
    kit, trace_id, shared = zipkin_style()
    parents, distinct = _sent_every_way(tmp_path / "shared.duckdb", kit.request(), trace_id, 5)
    assert distinct == (5, 4)
    assert parents["POST /pay"] == shared  # the server half, under its client


def _sent_every_way(
    db: Path, request: ExportTraceServiceRequest, trace_id: str, spans: int
) -> tuple[dict[str, str], tuple[int, int]]:
    """``request`` over OTLP/HTTP and gRPC, then after a restart over OTLP/JSON: its
    ``spans`` stored once. The trace view's parent id by operation, and
    ``_distinct_spans``."""
    with server_in_process(db, decode_workers=1) as (_, endpoints):
        _post(endpoints, request)
        _grpc(endpoints, request)
        health = _health(endpoints)
        assert (health["spans"], health["writer"]["duplicate_spans"]) == (spans, spans)
    with server_in_process(db, decode_workers=0) as (server, endpoints):
        _post_json(endpoints, request)
        health = _health(endpoints)
        assert (health["spans"], health["writer"]["duplicate_spans"]) == (spans, spans)
        view = httpx.get(f"{endpoints.ui}/api/traces/{trace_id}", timeout=30).json()
        parents = {s["operation"]: s["parent_span_id"] for s in view["spans"]}
        return parents, _distinct_spans(server)


def test_two_services_answering_one_call_under_its_id_are_both_kept(tmp_path: Path) -> None:
    """A proxy and the service behind it may both report the call's server side under
    the client's span id (Zipkin's shared spans): the second SERVER span was dropped as
    a retry of the first. Retries of each are still dropped, after a restart too."""
    kit = TraceKit()
    trace = kit.trace()
    root = trace.span("web", "GET /checkout", kind="Server", start_ms=0, duration_ms=100)
    call = root.child("web", "GET", kind="Client", start_ms=10, duration_ms=60)
    for service, operation in (("mesh", "ingress"), ("payments", "POST /pay")):
        trace.span(
            service,
            operation,
            kind="Server",
            start_ms=12,
            duration_ms=55,
            parent=root,
            span_id=call.span_id,
        )
    parents, _ = _sent_every_way(tmp_path / "two.duckdb", kit.request(), root.trace_id, 4)
    assert parents["ingress"] == parents["POST /pay"] == call.span_id
