"""Deterministic OTLP trace requests: fixed ids and times, so tests know every value.

``realistic_request`` builds traces shaped like a small web shop's (a server span,
client calls, database queries with the attributes real instrumentations set);
the benchmarks and the bytes-per-span measurement use it too.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

BASE_TIME_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, Mapping):
        out = AnyValue()
        out.kvlist_value.values.extend(key_values(value))
        return out
    if isinstance(value, Sequence):
        out = AnyValue()
        out.array_value.values.extend(any_value(v) for v in value)
        return out
    raise TypeError(f"cannot encode {type(value).__name__} as AnyValue")


def key_values(attributes: Mapping[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()]


def trace_id(n: int) -> bytes:
    return (n + 1).to_bytes(16, "big")


def span_id(n: int) -> bytes:
    return (n + 1).to_bytes(8, "big")


def request_for(
    service: str,
    spans: Sequence[Span],
    resource: Mapping[str, Any] | None = None,
    scope: str = "flowscope.testing",
) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend(key_values({"service.name": service, **(resource or {})}))
    ss = rs.scope_spans.add()
    ss.scope.name = scope
    ss.scope.version = "1.0"
    ss.spans.extend(spans)
    return request


_SERVICES = ("client-gateway", "order-manager", "wallet-service", "risk-manager", "market-data")
_ROUTES = ("/orders", "/orders/{id}", "/wallet/fund", "/portfolio", "/login")


def realistic_request(
    traces: int,
    *,
    seed: int = 0,
    first_trace: int = 0,
    start_ns: int = BASE_TIME_NS,
    spans_per_trace: int = 8,
    trace_id_prefix: bytes = b"",
) -> ExportTraceServiceRequest:
    """``traces`` traces of ``spans_per_trace`` spans each, grouped by service like an SDK sends.

    ``trace_id_prefix`` (up to 8 bytes) starts every trace id, so a load generator can
    make a serialized request unique again by replacing those bytes.
    """
    rng = random.Random(seed)
    by_service: dict[str, list[Span]] = {name: [] for name in _SERVICES}
    for t in range(traces):
        tid = rng.getrandbits(128).to_bytes(16, "big")
        if trace_id_prefix:
            tid = trace_id_prefix + tid[len(trace_id_prefix) :]
        root_start = start_ns + (first_trace + t) * 1_000_000
        route = _ROUTES[t % len(_ROUTES)]
        parent = b""
        for s in range(spans_per_trace):
            sid = rng.getrandbits(64).to_bytes(8, "big")
            service = _SERVICES[min(s // 2, len(_SERVICES) - 1)]
            begin = root_start + s * 150_000 + rng.randrange(50_000)
            duration = rng.randrange(200_000, 40_000_000)
            span = Span(
                trace_id=tid,
                span_id=sid,
                parent_span_id=parent,
                flags=0x301,
                start_time_unix_nano=begin,
                end_time_unix_nano=begin + duration,
            )
            if s % 2 == 0:
                span.name = f"POST {route}"
                span.kind = Span.SPAN_KIND_SERVER
                span.attributes.extend(
                    key_values(
                        {
                            "http.request.method": "POST",
                            "http.route": route,
                            "http.response.status_code": 200,
                            "url.scheme": "http",
                            "server.address": "127.0.0.1",
                            "server.port": 8000 + s,
                        }
                    )
                )
            else:
                span.name = "SELECT orders"
                span.kind = Span.SPAN_KIND_CLIENT
                span.attributes.extend(
                    key_values(
                        {
                            "db.system": "sqlite",
                            "db.name": "orders",
                            "db.statement": "SELECT id, status FROM orders WHERE user_id = ?",
                        }
                    )
                )
            if rng.random() < 0.02:
                span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message="boom"))
            by_service[service].append(span)
            parent = sid
    request = ExportTraceServiceRequest()
    for service, spans in by_service.items():
        if not spans:
            continue
        rs: ResourceSpans = request.resource_spans.add()
        rs.resource.attributes.extend(
            key_values(
                {
                    "service.name": service,
                    "service.version": "1.4.2",
                    "telemetry.sdk.language": "python",
                    "telemetry.sdk.name": "opentelemetry",
                    "telemetry.sdk.version": "1.45.2",
                    "host.name": "trading-1",
                }
            )
        )
        ss = rs.scope_spans.add()
        ss.scope.name = "opentelemetry.instrumentation.fastapi"
        ss.scope.version = "0.66b1"
        ss.spans.extend(spans)
    return request
