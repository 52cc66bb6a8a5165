"""What an export answers besides success: OTLP's partial_success also carries a
warning with nothing rejected, here that spans are older than the server's retention."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import grpc
import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from flowscope.testing.otlp import realistic_request
from flowscope.testing.posting import PB
from flowscope.testing.server import server_in_process

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
WARNING = (
    "{old} of {spans} spans started more than 7d ago, before this server's retention "
    "(--retention 7d): they are stored, then deleted at its next sweep "
    "(serve with --retention off to keep them)"
)


def _over_http(url: str, request: ExportTraceServiceRequest) -> ExportTraceServiceResponse:
    response = httpx.post(
        f"{url}/v1/traces", content=request.SerializeToString(), headers=PB, timeout=30
    )
    assert response.status_code == 200, response.text
    return ExportTraceServiceResponse.FromString(response.content)


def _over_grpc(address: str, request: ExportTraceServiceRequest) -> ExportTraceServiceResponse:
    with grpc.insecure_channel(address) as channel:
        export = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        return ExportTraceServiceResponse.FromString(
            export(request.SerializeToString(), timeout=30)
        )


def test_spans_older_than_the_retention_are_stored_with_a_warning(tmp_path: Path) -> None:
    """An old file sent to a running server was accepted without a word, and deleted by
    its next retention sweep (docs/import.md, "Into a running server")."""
    old = realistic_request(2, seed=1)  # January 2026
    recent = realistic_request(2, seed=2, start_ns=time.time_ns() - 60_000_000_000)
    mixed = realistic_request(1, seed=3)
    mixed.MergeFrom(realistic_request(3, seed=4, start_ns=time.time_ns()))
    with server_in_process(tmp_path / "kept.duckdb", retention=timedelta(days=7)) as (
        server,
        endpoints,
    ):
        for send, where in ((_over_http, endpoints.http), (_over_grpc, endpoints.grpc)):
            answer = send(where, old)
            assert answer.partial_success.rejected_spans == 0
            assert answer.partial_success.error_message == WARNING.format(old=16, spans=16)
            assert not send(where, recent).HasField("partial_success")
            answer = send(where, mixed)
            assert answer.partial_success.error_message == WARNING.format(old=8, spans=32)
        assert server.database is not None
        assert server.database.span_count() == 16 + 16 + 32  # stored all the same
    with server_in_process(tmp_path / "off.duckdb") as (_, endpoints):  # --retention off
        assert not _over_http(endpoints.http, old).HasField("partial_success")
