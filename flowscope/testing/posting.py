"""Sending OTLP requests to a live server (tests, benchmarks): realistic ones over
OTLP/HTTP protobuf, and raw bodies over OTLP/gRPC."""

from __future__ import annotations

import grpc
import httpx

from flowscope.testing.otlp import realistic_request

PB = {"Content-Type": "application/x-protobuf"}


def post_realistic(base: str, seed: int, traces: int) -> int:
    """POST ``traces`` realistic traces (ids from ``seed``); the spans sent, once acked."""
    request = realistic_request(traces, seed=seed, first_trace=seed * traces)
    response = httpx.post(
        f"{base}/v1/traces", content=request.SerializeToString(), headers=PB, timeout=60
    )
    assert response.status_code == 200, response.text
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


def export_grpc(
    address: str, body: bytes, timeout: float = 60
) -> tuple[grpc.StatusCode, str, bytes]:
    """One TraceService/Export call of ``body`` as it is (no serializer): its status
    code, details and, on success, the answer's bytes."""
    with grpc.insecure_channel(address) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=None,
        )
        try:
            answer = export(body, timeout=timeout)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or "", b""
    return grpc.StatusCode.OK, "", answer
