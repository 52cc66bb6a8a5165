"""Ingest benchmark: sustained spans/s over real OTLP, ack latency, freshness, memory, loss.

    python bench/ingest.py [--seconds 30] [--senders 4] [--traces 512]

Runs ``flowscope serve`` as a child process on free ports with a fresh database,
drives it from sender processes (half gRPC, half HTTP/protobuf), and prints
one JSON document of results (recorded in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import SenderResult, running_senders, template, unique  # noqa: E402

from flowscope.collector.decode import decode  # noqa: E402
from flowscope.store.database import Database  # noqa: E402
from flowscope.store.writer import SpanWriter  # noqa: E402
from flowscope.testing.server import start_server_process  # noqa: E402


def _health_spans(ui: str) -> int:
    """Every acknowledged span, once committed (/healthz waits up to 60 s for that)."""
    health = httpx.get(f"{ui}/healthz", params={"wait_s": 60}, timeout=90).json()
    assert health["spans_exact"], health
    return int(health["spans"])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def in_process_limit(traces: int, seconds: float) -> float:
    """decode + flatten + Arrow + DuckDB insert in one process, no network: the ceiling."""
    body, spans = template(traces, seed=99)
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "limit.duckdb")
        writer = SpanWriter(db)
        writer.start()
        done = 0
        start = time.perf_counter()
        counter = 0
        while time.perf_counter() - start < seconds:
            counter += 1
            result = decode(unique(body, 1, counter))
            writer.write(result.batch.table, result.batch.keys)
            done += spans
        elapsed = time.perf_counter() - start
        writer.shutdown()
        db.close()
    return done / elapsed


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        # The server and every process it started (the ingest process, decode workers):
        # their sum, so memory moved out of the server still counts.
        while not self.stop_event.wait(0.2):
            try:
                tree = [self.process, *self.process.children(recursive=True)]
            except psutil.Error:
                return
            total = 0
            for process in tree:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    continue  # ended meanwhile
            self.peak = max(self.peak, total)


def run_phase(
    endpoints: object, senders: int, seconds: float, traces: int, rate: float = 0.0
) -> list[SenderResult]:
    with running_senders(
        endpoints, senders, seconds, traces, rate=rate, first_id=1 + int(rate)
    ) as jobs:
        return [job.result() for job in jobs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--traces", type=int, default=512, help="traces per request (8 spans each)")
    parser.add_argument(
        "--latency-rate", type=float, default=10_000, help="spans/s for the latency phase"
    )
    parser.add_argument(
        "--overload-queue", type=int, default=20_000, help="max-queued-spans for the overload phase"
    )
    args = parser.parse_args()

    report: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}",
        "command": " ".join(["python", *sys.argv]),
    }
    report["in_process_limit_spans_per_s"] = round(in_process_limit(args.traces, 10))

    with tempfile.TemporaryDirectory() as tmp:
        # Phase 1: sustained throughput.
        server = start_server_process(Path(tmp) / "ingest.duckdb")
        sampler = RssSampler(server.process.pid)
        sampler.start()
        try:
            before = _health_spans(server.endpoints.ui)
            results = run_phase(server.endpoints, args.senders, args.seconds, args.traces)
            # /healthz (wait_s=60) counts once every acknowledged span is in otel_traces, so the
            # rate below includes moving what the journal still held at the end. It
            # starts at the first send: starting the sender processes is not ingest.
            stored = _health_spans(server.endpoints.ui) - before
            elapsed = time.time() - min(r.started_at for r in results)
        finally:
            sampler.stop_event.set()
            server.stop(signal.SIGTERM)
        acked = sum(r.acked_spans for r in results)
        lat = [x for r in results for x in r.latencies_ms]
        throughput = acked / elapsed
        report["sustained"] = {
            "senders": args.senders,
            "spans_per_request": args.traces * 8,
            "seconds": round(elapsed, 1),
            "acked_spans": acked,
            "stored_spans": stored,
            "spans_per_s": round(throughput),
            "ratio_to_in_process_limit": round(
                throughput / report["in_process_limit_spans_per_s"], 2
            ),  # type: ignore[operator]
            "ack_p50_ms": round(percentile(lat, 0.5), 1),
            "ack_p99_ms": round(percentile(lat, 0.99), 1),
            "refused_requests": sum(r.refused for r in results),
            "errors": sum(r.errors for r in results),
            "peak_rss_mb": round(sampler.peak / 2**20),
        }

        # Phase 2: ack latency and freshness at a fixed rate.
        server = start_server_process(Path(tmp) / "latency.duckdb")
        try:
            results = run_phase(
                server.endpoints, 2, min(args.seconds, 20), 16, rate=args.latency_rate
            )
            fresh = freshness(server.endpoints)
        finally:
            server.stop(signal.SIGTERM)
        lat = [x for r in results for x in r.latencies_ms]
        report["latency"] = {
            "rate_spans_per_s": args.latency_rate,
            "spans_per_request": 128,
            "achieved_spans_per_s": round(
                sum(r.acked_spans for r in results) / min(args.seconds, 20)
            ),
            "ack_p50_ms": round(percentile(lat, 0.5), 2),
            "ack_p99_ms": round(percentile(lat, 0.99), 2),
            "ack_max_ms": round(max(lat), 2),
            "queryable_after_ack_ms": fresh,
        }

        # Phase 3: overload with a small queue: memory stays bounded, nothing acked is lost.
        server = start_server_process(
            Path(tmp) / "overload.duckdb", "--max-queued-spans", str(args.overload_queue)
        )
        sampler = RssSampler(server.process.pid)
        sampler.start()
        try:
            results = run_phase(
                server.endpoints, args.senders * 2, min(args.seconds, 20), args.traces
            )
            stored = _health_spans(server.endpoints.ui)
        finally:
            sampler.stop_event.set()
            server.stop(signal.SIGTERM)
        acked = sum(r.acked_spans for r in results)
        report["overload"] = {
            "senders": args.senders * 2,
            "max_queued_spans": args.overload_queue,
            "acked_spans": acked,
            "stored_spans": stored,
            "lost_spans": acked - stored,
            "refused_requests_retried": sum(r.refused for r in results),
            "peak_rss_mb": round(sampler.peak / 2**20),
        }
    print(json.dumps(report, indent=2))


def freshness(endpoints: object) -> float:
    """Milliseconds from an ack until /api/sql sees the span (median of 20)."""
    base_http, base_ui = endpoints.http, endpoints.ui  # type: ignore[attr-defined]
    samples = []
    for i in range(20):
        body = unique(template(1, seed=1000 + i)[0], 0xFF, i)
        ack = httpx.post(
            f"{base_http}/v1/traces",
            content=body,
            headers={"Content-Type": "application/x-protobuf"},
            timeout=30,
        )
        acked_at = time.perf_counter()
        assert ack.status_code == 200
        parsed = ExportTraceServiceRequest.FromString(body)
        trace = parsed.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
        query = {"sql": f"SELECT count(*) FROM otel_traces WHERE TraceId = '{trace}'"}
        while httpx.post(f"{base_ui}/api/sql", json=query, timeout=30).json()["rows"][0][0] == 0:
            pass
        samples.append((time.perf_counter() - acked_at) * 1e3)
    return round(statistics.median(samples), 2)


if __name__ == "__main__":
    main()
