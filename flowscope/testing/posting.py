"""Sending realistic OTLP/HTTP protobuf requests to a live server (tests, benchmarks)."""

from __future__ import annotations

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
