"""gRPC flood: many concurrent large OTLP/gRPC calls at once, and the server's memory.

    python bench/grpc_flood.py [--calls 2000] [--megabytes 4] [--channels 20]
                               [--dir /tmp/flowscope-bench]

Starts ``flowscope serve`` on a fresh file and opens ``--calls`` Export calls at once
over ``--channels`` connections, each carrying one ``--megabytes`` request. Records the
peak resident memory of the server and the processes it started (sampled every 0.2 s)
and how the calls were answered: OK, or UNAVAILABLE (told to retry) past the calls the
receiver takes in at once. "Bounded memory under overload" is that peak staying flat
as ``--calls`` grows. Prints one JSON document (docs/benchmarks.md, "gRPC flood").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from files import fresh_database, machine, remove_database  # noqa: E402
from soak import tree_rss_mb  # noqa: E402

from flowscope.testing.server import start_server_process  # noqa: E402

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def large_request(size: int) -> tuple[bytes, int]:
    """One request of about ``size`` bytes (single-span traces), and its span count."""
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.add(key="service.name").value.string_value = "flood"
    spans = resource.scope_spans.add().spans
    now = time.time_ns()
    while request.ByteSize() < size:
        for _ in range(256):
            span = spans.add()
            span.trace_id, span.span_id = os.urandom(16), os.urandom(8)
            span.name = "GET /flood/" + "x" * 300
            span.start_time_unix_nano, span.end_time_unix_nano = now, now + 1_000_000
    return request.SerializeToString(), len(spans)


async def flood(target: str, body: bytes, calls: int, channels: int) -> Counter[str]:
    options = [("grpc.max_send_message_length", 64 << 20)]
    opened = [grpc.aio.insecure_channel(target, options=options) for _ in range(channels)]
    answers: Counter[str] = Counter()

    async def one(number: int) -> None:
        export = opened[number % channels].unary_unary(
            EXPORT, request_serializer=None, response_deserializer=None
        )
        try:
            await export(body, timeout=300)
            answers["OK"] += 1
        except grpc.aio.AioRpcError as exc:
            answers[exc.code().name] += 1

    await asyncio.gather(*(one(n) for n in range(calls)))
    for channel in opened:
        await channel.close(None)
    return answers


def run(path: Path, calls: int, megabytes: float, channels: int) -> dict[str, Any]:
    body, spans = large_request(int(megabytes * 1e6))
    server = start_server_process(path)
    peak = [tree_rss_mb(server.process.pid)]
    idle_mb = peak[0]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], tree_rss_mb(server.process.pid))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        started = time.perf_counter()
        answers = asyncio.run(flood(server.endpoints.grpc, body, calls, channels))
        seconds = time.perf_counter() - started
    finally:
        done.set()
        watcher.join()
        server.stop(signal.SIGTERM)
    return {
        "calls": calls,
        "request_bytes": len(body),
        "spans_per_request": spans,
        "answers": dict(answers),
        "seconds": round(seconds, 1),
        "idle_rss_mb": idle_mb,
        "peak_rss_mb": peak[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--megabytes", type=float, default=4.0)
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--dir", default="/tmp/flowscope-bench")
    args = parser.parse_args()
    path = fresh_database(Path(args.dir), "grpc_flood.duckdb")
    report = {"machine": machine(), **run(path, args.calls, args.megabytes, args.channels)}
    remove_database(path)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
