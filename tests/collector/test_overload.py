"""A full writer queue answers "retry later"; oversized requests get 413; acks stay exact."""

from __future__ import annotations

import base64
import gzip
import json
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from google.rpc.error_details_pb2 import RetryInfo  # type: ignore[import-untyped]
from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from flowscope.collector.ingest_process import IngestProcess
from flowscope.server import FlowscopeServer
from flowscope.testing.otlp import realistic_request
from flowscope.testing.posting import PB
from flowscope.testing.server import Endpoints, server_in_process
from flowscope.testing.waiting import wait_until

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
MAX_QUEUED = 10
MAX_BYTES = 64 * 1024
UNAVAILABLE, RESOURCE_EXHAUSTED = 14, 8  # google.rpc.Code


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[FlowscopeServer, Endpoints]]:
    with server_in_process(
        tmp_path / "busy.duckdb",
        decode_workers=0,
        max_queued_spans=MAX_QUEUED,
        max_request_bytes=MAX_BYTES,
    ) as running:
        yield running


@contextmanager
def _writer_held(server: FlowscopeServer) -> Iterator[threading.Event]:
    """Keep the writer thread busy in a task until the yielded event is set."""
    assert server.writer is not None
    started, release = threading.Event(), threading.Event()

    def hold(_cursor: Any) -> None:
        started.set()
        release.wait(60)

    done = server.writer.run_task(hold)
    assert started.wait(30), "the writer never ran the task"
    try:
        yield release
    finally:
        release.set()
        done.result(30)


def _post(endpoints: Endpoints, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{endpoints.http}/v1/traces", content=body, headers={**PB, **headers}, timeout=60
    )


def _grpc(endpoints: Endpoints, body: bytes) -> tuple[grpc.StatusCode, str, dict[str, Any]]:
    with grpc.insecure_channel(
        endpoints.grpc, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    ) as channel:
        export = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        try:
            export(body, timeout=60)
        except grpc.RpcError as exc:
            trailing = {item.key: item.value for item in exc.trailing_metadata() or ()}
            return exc.code(), exc.details() or "", trailing
    return grpc.StatusCode.OK, "", {}


def _otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON as exporters send it: protobuf's JSON mapping with hex ids."""
    document: dict[str, Any] = json_format.MessageToDict(request)
    for rs in document["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for name in ("traceId", "spanId", "parentSpanId"):
                    if name in span:
                        span[name] = base64.b64decode(span[name]).hex()
    return json.dumps(document).encode()


def _span_count(server: FlowscopeServer) -> int:
    assert server.database is not None
    return server.database.span_count()


def _in_table(server: FlowscopeServer) -> int:
    """Spans committed to otel_traces so far, without waiting for the writer."""
    assert server.database is not None
    row = server.database.reader().execute("SELECT count(*) FROM otel_traces").fetchone()
    return int(row[0]) if row else 0


def _stored_traces(server: FlowscopeServer) -> set[str]:
    assert server.database is not None
    rows = server.database.reader().execute("SELECT DISTINCT TraceId FROM otel_traces").fetchall()
    return {str(row[0]) for row in rows}


def _trace_ids(request: ExportTraceServiceRequest) -> set[str]:
    return {
        span.trace_id.hex()
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    }


@pytest.mark.parametrize("first", ["http", "grpc"])
def test_full_queue_refuses_with_retry_later_and_stores_exactly_the_acked(
    first: str, live: tuple[FlowscopeServer, Endpoints]
) -> None:
    server, endpoints = live
    assert server.writer is not None and server.ingest is not None
    accepted = realistic_request(2, seed=1)  # 16 spans: more than the queue holds
    refused = [realistic_request(1, seed=s) for s in (2, 3, 4)]
    with ThreadPoolExecutor(1) as pool, _writer_held(server):
        # An empty queue takes even a request larger than its limit (else it could never
        # be stored). It is acknowledged once in the journal, while the held writer has
        # not committed it yet.
        if first == "http":
            pending: Future[Any] = pool.submit(_post, endpoints, accepted.SerializeToString())
        else:
            pending = pool.submit(_grpc, endpoints, accepted.SerializeToString())
        if first == "http":
            assert pending.result(30).status_code == 200
        else:
            assert pending.result(30)[0] == grpc.StatusCode.OK
        # Acknowledged in the ingest process; once synced, every acked record is queued
        # in the (held) writer.
        assert isinstance(server.ingest, IngestProcess)
        assert server.ingest.sync().queued_spans == 16
        assert server.writer.queued_spans == 16
        assert _in_table(server) == 0
        # Health answers without waiting out the held writer (a liveness probe took
        # 5-13 s under overload), saying its count leaves out what is queued.
        health = httpx.get(f"{endpoints.ui}/healthz", timeout=30).json()
        assert (health["spans"], health["spans_exact"], health["writer_queue_spans"]) == (
            0,
            False,
            16,
        )

        answer = _post(endpoints, refused[0].SerializeToString())
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == "1"
        status = Status.FromString(answer.content)
        assert status.code == UNAVAILABLE and "overloaded" in status.message

        answer = _post(endpoints, _otlp_json(refused[1]), **{"Content-Type": "application/json"})
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
        assert answer.json()["code"] == UNAVAILABLE

        code, details, trailing = _grpc(endpoints, refused[2].SerializeToString())
        assert code == grpc.StatusCode.UNAVAILABLE and "overloaded" in details
        assert trailing.get("retry-after") == "1"
        # The delay as OTLP exporters read it (Go's and the Collector's: RetryInfo only).
        details = Status.FromString(trailing["grpc-status-details-bin"])
        assert details.code == UNAVAILABLE and "overloaded" in details.message
        info = RetryInfo()
        assert details.details[0].Unpack(info) and info.retry_delay.seconds == 1
        assert server.ingest.counters.refused_requests == 3
        assert _in_table(server) == 0

    assert _span_count(server) == 16  # waits for the released writer to move them
    assert _stored_traces(server) == _trace_ids(accepted)
    assert server.writer.queued_spans == 0
    # The queue is free again once the ingest process hears the spans moved (a message
    # down the pipe after the commit): a refused request sent once more is stored.
    assert isinstance(server.ingest, IngestProcess)
    ingest = server.ingest
    wait_until(lambda: ingest.sync().queued_spans == 0, "the ingest queue to empty")
    assert _post(endpoints, refused[0].SerializeToString()).status_code == 200
    assert _span_count(server) == 24


def test_sdk_exporter_retries_after_retry_after_and_its_spans_arrive(
    live: tuple[FlowscopeServer, Endpoints],
) -> None:
    server, endpoints = live
    assert server.ingest is not None
    provider = TracerProvider(resource=Resource.create({"service.name": "retrying"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoints.http}/v1/traces", timeout=30))
    )
    tracer = provider.get_tracer("overload-test")
    blocker = realistic_request(2, seed=9).SerializeToString()  # fills the queue
    with ThreadPoolExecutor(2) as pool:
        with _writer_held(server):
            pending = pool.submit(_post, endpoints, blocker)
            wait_until(
                lambda: server.writer is not None and server.writer.queued_spans == 16, "queue"
            )
            # SimpleSpanProcessor exports when the span ends; that blocks, so end it in a thread.
            exported = pool.submit(lambda: tracer.start_span("retried").end())
            wait_until(
                lambda: server.ingest is not None and server.ingest.counters.refused_requests == 1,
                "a refusal",
            )
        exported.result(60)
        assert pending.result(30).status_code == 200
    provider.shutdown()
    assert server.database is not None
    server.database.await_writes()  # acknowledged: in the journal, moving to the table
    rows = (
        server.database.reader()
        .execute("SELECT ServiceName, SpanName FROM otel_traces WHERE ServiceName = 'retrying'")
        .fetchall()
    )
    assert rows == [("retrying", "retried")]
    assert _span_count(server) == 17


def test_request_over_max_request_bytes_gets_413(live: tuple[FlowscopeServer, Endpoints]) -> None:
    server, endpoints = live
    big = realistic_request(60, seed=5).SerializeToString()
    assert len(big) > MAX_BYTES

    answer = _post(endpoints, big)
    assert answer.status_code == 413
    assert Status.FromString(answer.content).code == RESOURCE_EXHAUSTED

    # Without Content-Length (chunked), the limit holds while the body streams in.
    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    answer = httpx.post(f"{endpoints.http}/v1/traces", content=chunks(), headers=PB, timeout=60)
    assert answer.status_code == 413

    # Small on the wire, too large once inflated.
    squeezed = gzip.compress(big)
    assert len(squeezed) < MAX_BYTES
    answer = _post(endpoints, squeezed, **{"Content-Encoding": "gzip"})
    assert answer.status_code == 413

    code, _, _ = _grpc(endpoints, big)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED

    assert _span_count(server) == 0
    # Just under the limit is fine.
    fits = realistic_request(20, seed=6).SerializeToString()
    assert len(fits) <= MAX_BYTES
    assert _post(endpoints, fits).status_code == 200
    assert _span_count(server) == 20 * 8
    # The ingest process hears of the move by a message after the commit; until then
    # this tiny queue still counts those spans and refuses the next request.
    ingest = server.ingest
    assert isinstance(ingest, IngestProcess)
    wait_until(lambda: ingest.sync().queued_spans == 0, "the ingest queue to empty")
    assert (
        _grpc(endpoints, realistic_request(20, seed=7).SerializeToString())[0] == grpc.StatusCode.OK
    )
    assert _span_count(server) == 2 * 20 * 8


def test_many_concurrent_grpc_calls_wait_their_turn(tmp_path: Path) -> None:
    """150 calls at once on 3 connections, over twice the old limit of 64 in flight.
    Before, grpcio refused the calls past it with RESOURCE_EXHAUSTED and no RetryInfo,
    which OTLP exporters other than Python's treat as permanent: the spans were lost."""
    with server_in_process(tmp_path / "many.duckdb", decode_workers=0) as (server, endpoints):
        channels = [grpc.insecure_channel(endpoints.grpc) for _ in range(3)]
        try:
            calls = [
                channels[i % 3]
                .unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
                .future(realistic_request(4, seed=100 + i).SerializeToString(), timeout=60)
                for i in range(150)
            ]
            codes = [call.code() for call in calls]
        finally:
            for channel in channels:
                channel.close()
        assert codes == [grpc.StatusCode.OK] * 150
        assert _span_count(server) == 150 * 4 * 8
