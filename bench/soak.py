"""Soak: a server under steady live traffic with retention, watched for growth.

    python bench/soak.py [--minutes 10] [--rate 5000] [--retention 2m]
                         [--every 30] [--dir /tmp/flowscope-bench]

Starts ``flowscope serve --retention R`` on a fresh file and sends ``--rate`` spans/s of
realistic web-shop traces with live times over OTLP (one gRPC and one HTTP sender
process, acknowledged) for ``--minutes``. A retention much shorter than the run makes
the server delete as fast as it stores, so what it keeps is flat; every ``--every``
seconds the bench records what ``/healthz`` says (spans kept, the file's used and
free blocks, the WAL, the journal, derivation failures) and the resident memory of the server and
the processes it started. Growth in either, with the spans kept flat, is a leak.
Prints one JSON document (recorded in docs/benchmarks.md, "Soak").
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from files import fresh_database, machine, remove_database  # noqa: E402
from load import running_senders  # noqa: E402

from flowscope.testing.server import start_server_process  # noqa: E402


def tree_rss_mb(pid: int) -> float:
    """Resident memory of the process and every process it started, in MB."""
    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue  # ended meanwhile
    return round(total / 2**20, 1)


def sample(client: httpx.Client, pid: int, started: float) -> dict[str, Any]:
    health = client.get("/healthz").json()
    disk = health.get("disk") or {}
    derivation = health.get("derivation") or {}
    return {
        "s": round(time.perf_counter() - started),
        "at": round(time.time(), 3),
        "spans_kept": health["spans"],
        "committed_spans": health["writer"]["committed_spans"],
        "used_mb": round(disk.get("used_bytes", 0) / 1e6, 1),
        "free_mb": round(disk.get("free_bytes", 0) / 1e6, 1),
        "wal_mb": round(disk.get("wal_bytes", 0) / 1e6, 1),
        "journal_mb": round(disk.get("journal_bytes", 0) / 1e6, 1),
        "derive_failures": derivation.get("failures"),
        "rss_mb": tree_rss_mb(pid),
    }


def run(path: Path, minutes: float, rate: float, retention: str, every: float) -> dict[str, Any]:
    server = start_server_process(path, "--retention", retention)
    seconds = minutes * 60
    timeline: list[dict[str, Any]] = []
    try:
        client = httpx.Client(base_url=server.endpoints.ui, timeout=60)
        started = time.perf_counter()
        senders = 2
        with running_senders(
            server.endpoints, senders, seconds, 64, rate=rate, time_origin_ns=time.time_ns()
        ) as jobs:
            next_sample = started
            while not all(job.done() for job in jobs):
                pause = next_sample - time.perf_counter()
                if pause > 0:
                    time.sleep(min(pause, 1.0))  # pacing the samples, not waiting for readiness
                    continue
                timeline.append(sample(client, server.process.pid, started))
                print(json.dumps(timeline[-1]), file=sys.stderr)
                next_sample += every
            results = [job.result() for job in jobs]
        timeline.append(sample(client, server.process.pid, started))
    finally:
        server.stop(signal.SIGTERM)
    acks = sorted(x for r in results for x in r.latencies_ms)
    # Each sample's ack P99 over the interval before it: do slow acks bunch up?
    by_time = sorted(
        (t, ms) for r in results for t, ms in zip(r.acked_at, r.latencies_ms, strict=True)
    )
    for before, sampled in zip(timeline, timeline[1:], strict=False):
        window = sorted(ms for t, ms in by_time if before["at"] <= t < sampled["at"])
        sampled["ack_p99_ms"] = round(window[int(len(window) * 0.99)], 1) if window else None
        sampled["ack_max_ms"] = round(window[-1], 1) if window else None
    return {
        "acked_spans_per_s": round(sum(r.acked_spans for r in results) / seconds),
        "ack_p50_ms": round(acks[len(acks) // 2], 1) if acks else None,
        "ack_p99_ms": round(acks[int(len(acks) * 0.99)], 1) if acks else None,
        "send_errors": sum(r.errors for r in results),
        "timeline": timeline,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--retention", default="2m")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--dir", default="/tmp/flowscope-bench")
    args = parser.parse_args()
    path = fresh_database(Path(args.dir), "soak.duckdb")
    report = {
        "machine": machine(),
        "rate": args.rate,
        "retention": args.retention,
        **run(path, args.minutes, args.rate, args.retention, args.every),
    }
    remove_database(path)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
