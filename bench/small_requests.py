"""Small OTLP/HTTP requests: how many a second the server takes, whatever they hold.

    python bench/small_requests.py [--connections 50] [--spans 5] [--seconds 20]

Runs ``flowscope serve --retention off`` on free ports with a fresh database, then
keeps ``--connections`` keep-alive connections busy, each sending pre-encoded
protobuf requests of ``--spans`` new spans back to back and waiting for each answer
(as an exporter does). Prints one JSON document: requests/s, spans/s, answer
latency percentiles, non-200 answers, and the spans stored (every acknowledged one,
once committed). The client is light (asyncio, no SDK), so what is measured is the
server; it shares the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from files import machine  # noqa: E402

from flowscope.testing.server import start_server_process  # noqa: E402


def request_bytes(host: str, number: int, spans: int) -> bytes:
    """One whole HTTP request: a trace of ``spans`` spans from one of 100 services."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    attribute = resource_spans.resource.attributes.add()
    attribute.key, attribute.value.string_value = "service.name", f"small-{number % 100}"
    scope_spans = resource_spans.scope_spans.add()
    trace, now = os.urandom(16), time.time_ns()
    for index in range(spans):
        span = scope_spans.spans.add()
        span.trace_id, span.span_id = trace, os.urandom(8)
        span.name, span.kind = f"step {index}", 2 if index == 0 else 1
        if index:
            span.parent_span_id = scope_spans.spans[0].span_id
        span.start_time_unix_nano, span.end_time_unix_nano = now, now + 1_000_000
    body = request.SerializeToString()
    head = (
        f"POST /v1/traces HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/x-protobuf\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def drive(url: str, connections: int, spans: int, seconds: float) -> dict[str, object]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    host = f"{parts.hostname}:{parts.port}"
    latencies: list[float] = []
    refused: dict[int, int] = {}
    made = 0

    async def connection(stop: float) -> None:
        nonlocal made
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        while time.monotonic() < stop:
            made += 1
            request = request_bytes(host, made, spans)
            started = time.monotonic()
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            length = next(
                int(line.split(b":", 1)[1])
                for line in lines
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            latencies.append(time.monotonic() - started)
            if status != 200:
                refused[status] = refused.get(status, 0) + 1
        writer.close()
        await writer.wait_closed()

    began = time.monotonic()
    await asyncio.gather(*(connection(began + seconds) for _ in range(connections)))
    elapsed = time.monotonic() - began
    ordered = sorted(latencies)
    answered = len(ordered) - sum(refused.values())
    return {
        "connections": connections,
        "spans_per_request": spans,
        "seconds": round(elapsed, 1),
        "requests_per_s": round(len(ordered) / elapsed, 1),
        "acked_spans_per_s": round(answered * spans / elapsed),
        "acked_spans": answered * spans,
        "answer_p50_ms": round(statistics.median(ordered) * 1e3, 1),
        "answer_p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1e3, 1),
        "refused": refused,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--spans", type=int, default=5, help="spans per request")
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server_process(Path(tmp) / "small.duckdb", "--retention", "off")
        try:
            report = asyncio.run(
                drive(server.endpoints.http, args.connections, args.spans, args.seconds)
            )
            health = httpx.get(f"{server.endpoints.ui}/healthz", params={"wait_s": 60}, timeout=90)
            report["stored_spans"] = health.json()["spans"]
        finally:
            server.stop()
    print(
        json.dumps(
            {"machine": machine(), "command": " ".join(["python", *sys.argv]), **report}, indent=2
        )
    )


if __name__ == "__main__":
    main()
