"""Big spans: senders of multi-megabyte attributes, the server's memory, its stop, loss.

    python bench/big_spans.py [--megabytes 8] [--spans 1] [--senders 8] [--seconds 30]
                              [--transport http|grpc] [--dir /tmp/flowscope-bench] [--keep]

Starts ``flowscope serve`` on a fresh file; ``--senders`` threads each send OTLP
protobuf requests (HTTP POSTs, or gRPC Export calls each sender on a connection of its
own) of ``--spans`` spans, each carrying one random attribute, ``--megabytes`` in all
per request (8 MB of one span by default; ``--megabytes 1 --spans 100`` is a flood of
10 KB attributes), as fast as they are
answered, for ``--seconds`` (a refused request is sent again 0.05 s later). Records
the peak resident memory of the server process, of its largest child (the OTLP
receivers' process) and of everything it started (sampled every 0.2 s, through the
stop), how requests were answered, how long SIGTERM
took and with what exit code, and, opened again, whether every acknowledged span is
stored. The writer queue's span limit alone let such spans fill the server's memory
(docs/benchmarks.md, "Big spans"). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import psutil
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from files import fresh_database, machine, remove_database  # noqa: E402

from flowscope.store.database import Database  # noqa: E402
from flowscope.testing.server import start_server_process  # noqa: E402

PROTOBUF = {"Content-Type": "application/x-protobuf"}
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def big_span_request(megabytes: float, spans: int = 1) -> tuple[bytes, list[str]]:
    """One request of ``spans`` root spans, each with one random attribute, ``megabytes``
    in all; their trace ids."""
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.add(key="service.name").value.string_value = "big-spans"
    scope = resource.scope_spans.add()
    traces = []
    for _ in range(spans):
        span = scope.spans.add()
        span.trace_id, span.span_id = os.urandom(16), os.urandom(8)
        span.name = "GET /big"
        span.start_time_unix_nano = time.time_ns()
        span.end_time_unix_nano = span.start_time_unix_nano + 1_000_000
        value = os.urandom(int(megabytes * 1e6) // 2 // spans).hex()
        span.attributes.add(key="payload").value.string_value = value
        traces.append(span.trace_id.hex())
    return request.SerializeToString(), traces


@dataclass(frozen=True)
class Load:
    megabytes: float
    spans: int
    until: float


def send_until(
    load: Load,
    answers: Counter[str],
    acked: list[str],
    post: Callable[[bytes], tuple[str, bool]],
) -> None:
    """Big-span requests through ``post`` (its answer, and whether it was taken) until
    ``load.until``; a refused one is sent again 0.05 s later."""
    while time.monotonic() < load.until:
        body, traces = big_span_request(load.megabytes, load.spans)
        status, taken = post(body)
        answers[status] += 1
        if taken:
            acked.extend(traces)
        else:
            time.sleep(0.05)


def send_grpc(address: str, load: Load, answers: Counter[str], acked: list[str]) -> None:
    options = [("grpc.max_send_message_length", 64 << 20), ("grpc.use_local_subchannel_pool", 1)]
    with grpc.insecure_channel(address, options=options) as channel:
        export = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)

        def post(body: bytes) -> tuple[str, bool]:
            try:
                export(body, timeout=120)
            except grpc.RpcError as exc:
                return exc.code().name, False
            return "OK", True

        send_until(load, answers, acked, post)


def send(url: str, load: Load, answers: Counter[str], acked: list[str]) -> None:
    with httpx.Client(timeout=120) as client:

        def post(body: bytes) -> tuple[str, bool]:
            try:
                status = client.post(url, content=body, headers=PROTOBUF).status_code
            except httpx.HTTPError as exc:
                return type(exc).__name__, False
            return str(status), status == 200

        send_until(load, answers, acked, post)


def tree_rss(pid: int) -> tuple[float, float, float]:
    """Resident MB of ``pid`` alone, of its largest child, and with every process it
    started."""
    try:
        process = psutil.Process(pid)
        own = process.memory_info().rss
        children = [child.memory_info().rss for child in process.children(recursive=True)]
    except psutil.Error:
        return 0.0, 0.0, 0.0
    return own / 2**20, max(children, default=0) / 2**20, (own + sum(children)) / 2**20


def run(
    path: Path, megabytes: float, spans: int, senders: int, seconds: float, transport: str
) -> dict[str, Any]:
    server = start_server_process(path, "--retention", "off")
    pid = server.process.pid
    idle = tree_rss(pid)
    peak = list(idle)
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            peak[:] = [max(a, b) for a, b in zip(peak, tree_rss(pid), strict=True)]

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    answers: Counter[str] = Counter()
    acked: list[str] = []
    load = Load(megabytes, spans, time.monotonic() + seconds)
    sender, target = (
        (send_grpc, server.endpoints.grpc)
        if transport == "grpc"
        else (send, f"{server.endpoints.http}/v1/traces")
    )
    threads = [
        threading.Thread(target=sender, args=(target, load, answers, acked)) for _ in range(senders)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop_started = time.perf_counter()
    code = server.stop(signal.SIGTERM, timeout=300)
    stop_s = time.perf_counter() - stop_started
    done.set()
    watcher.join()
    database = Database(path, read_only=True)
    try:
        stored = {
            row[0]
            for row in database.reader()
            .execute("SELECT DISTINCT TraceId FROM otel_traces")
            .fetchall()
        }
    finally:
        database.close()
    log = "".join(server.output)
    return {
        "megabytes_per_request": megabytes,
        "spans_per_request": spans,
        "senders": senders,
        "transport": transport,
        "seconds": seconds,
        "answers": dict(answers),
        "acked_spans": len(acked),
        "lost_spans": len(set(acked) - stored),
        "idle_rss_mb": {"server": round(idle[0]), "with_children": round(idle[2])},
        "peak_rss_mb": {
            "server": round(peak[0]),
            "largest_child": round(peak[1]),
            "with_children": round(peak[2]),
        },
        "stop_s": round(stop_s, 1),
        "exit_code": code,
        "traceback_in_log": "Traceback" in log,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--megabytes", type=float, default=8.0)
    parser.add_argument("--spans", type=int, default=1, help="spans a request")
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--transport", choices=("http", "grpc"), default="http")
    parser.add_argument("--dir", default="/tmp/flowscope-bench")
    parser.add_argument("--keep", action="store_true", help="keep the file (its path printed)")
    args = parser.parse_args()
    path = fresh_database(Path(args.dir), "big_spans.duckdb")
    report = {
        "machine": machine(),
        "command": " ".join(["python bench/big_spans.py", *sys.argv[1:]]),
        **run(path, args.megabytes, args.spans, args.senders, args.seconds, args.transport),
    }
    if args.keep:
        report["file"] = {"path": str(path), "bytes": path.stat().st_size}
    else:
        remove_database(path)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
