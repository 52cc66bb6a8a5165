"""Analyzer benchmark: query times at 1M and 10M stored spans (median of 5 runs).

    python bench/analyzer.py [--sizes 1000000,10000000] [--hours 24] [--dir /tmp/flowscope-bench]
                             [--under-load 10000 --load-seconds 60 [--query-interval 5]]

For each size it writes a fresh DuckDB file of realistic trading-platform traces
(three flows, 5-12 spans each, rpc, virtual database/external and async kafka
edges, ~1 % errors) spread evenly over the ``--hours`` before now, in time order,
through SpanWriter (commit + derivation, as the server does); then times the
analyzer's questions, and the naive service-map self-join for reference. With
``--under-load RATE``, the largest file is then served by ``flowscope serve`` while
sender processes push RATE spans/s over OTLP (gRPC and HTTP), and the same questions
are timed through the HTTP API, with the ingest rate and ack latency they got.
Prints one JSON document (recorded in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from files import machine, remove_database  # noqa: E402
from load import running_senders  # noqa: E402

from flowscope.analyzer.analysis import Analysis
from flowscope.analyzer.model import Window
from flowscope.analyzer.window import ALL_TIME
from flowscope.store.columns import SPAN_SCHEMA
from flowscope.store.database import Database
from flowscope.store.writer import SpanWriter
from flowscope.testing.server import start_server_process

# (parent index, service, name, kind, offset ms, duration ms, attributes)
Template = list[tuple[int, str, str, str, float, float, dict[str, str]]]
_DB = {"db.system": "postgresql"}
ORDER: Template = [
    (-1, "client-gateway", "POST /orders", "Server", 0, 120, {"http.route": "/orders"}),
    (0, "client-gateway", "POST", "Client", 2, 115, {"server.address": "order-manager"}),
    (1, "order-manager", "POST /orders", "Server", 3, 110, {"http.route": "/orders"}),
    (2, "order-manager", "POST", "Client", 5, 30, {}),
    (3, "risk-manager", "POST /check", "Server", 6, 28, {"http.route": "/check"}),
    (4, "risk-manager", "SELECT limits", "Client", 8, 10, {**_DB, "db.namespace": "risk"}),
    (2, "order-manager", "POST", "Client", 40, 40, {}),
    (6, "wallet-service", "POST /reserve", "Server", 41, 38, {"http.route": "/reserve"}),
    (7, "wallet-service", "UPDATE wallets", "Client", 45, 20, {**_DB, "db.namespace": "wallet"}),
    (2, "order-manager", "INSERT orders", "Client", 85, 15, {**_DB, "db.namespace": "orders"}),
    (
        2,
        "order-manager",
        "orders publish",
        "Producer",
        102,
        3,
        {"messaging.system": "kafka", "messaging.destination.name": "orders"},
    ),
    (10, "matching-engine", "orders process", "Consumer", 108, 40, {"messaging.system": "kafka"}),
]
PORTFOLIO: Template = [
    (-1, "client-gateway", "GET /portfolio", "Server", 0, 60, {"http.route": "/portfolio"}),
    (0, "client-gateway", "GET", "Client", 1, 55, {}),
    (1, "portfolio-service", "GET /portfolio", "Server", 2, 52, {"http.route": "/portfolio"}),
    (2, "portfolio-service", "SELECT positions", "Client", 4, 20, {**_DB, "db.name": "pf"}),
    (2, "portfolio-service", "GET", "Client", 26, 25, {"server.address": "quotes.example"}),
]
FUNDING: Template = [
    (-1, "client-gateway", "POST /wallet/fund", "Server", 0, 300, {"http.route": "/wallet/fund"}),
    (0, "client-gateway", "POST", "Client", 1, 295, {}),
    (1, "wallet-service", "POST /fund", "Server", 2, 290, {"http.route": "/fund"}),
    (2, "wallet-service", "POST", "Client", 5, 250, {"peer.service": "stripe"}),
    (2, "wallet-service", "UPDATE wallets", "Client", 260, 20, {**_DB, "db.namespace": "wallet"}),
    (2, "wallet-service", "audit", "Internal", 282, 5, {}),
]
MIX = [(ORDER, 0.5), (PORTFOLIO, 0.3), (FUNDING, 0.2)]
SPANS_PER_TRACE = sum(len(t) * share for t, share in MIX)


def _strings(values: list[str]) -> pa.Array:
    return pa.array(values, pa.string())


def _empty(field: pa.Field, n: int) -> pa.Array:
    if pa.types.is_list(field.type):
        return pa.ListArray.from_arrays(
            pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], field.type.value_type)
        )
    if pa.types.is_map(field.type):
        return pa.MapArray.from_arrays(
            pa.array(np.zeros(n + 1, dtype=np.int32)),
            pa.array([], pa.string()),
            pa.array([], pa.string()),
        )
    if pa.types.is_string(field.type):
        return pa.array(np.full(n, "", dtype=object), pa.string())
    return pa.array(np.zeros(n, dtype=np.int64)).cast(field.type)


def _map(rows: list[dict[str, str]]) -> pa.Array:
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    keys = [k for r in rows for k in r]
    values = [v for r in rows for v in r.values()]
    return pa.MapArray.from_arrays(pa.array(offsets), _strings(keys), _strings(values))


def batch(rng: np.random.Generator, template: Template, starts: np.ndarray) -> pa.Table:
    """Spans of ``len(starts)`` traces of one template, trace by trace."""
    n_traces, width = len(starts), len(template)
    scale = rng.lognormal(0.0, 0.35, n_traces)
    trace_ids = [f"{x:032x}" for x in rng.integers(1, 2**63, n_traces, dtype=np.int64)]
    span_base = rng.integers(1, 2**62, n_traces, dtype=np.int64)
    failing = rng.random(n_traces) < 0.01
    rows: dict[str, list[Any]] = {k: [] for k in ("ts", "tid", "sid", "pid", "svc", "name", "kind")}
    durations: list[int] = []
    status: list[str] = []
    attrs: list[dict[str, str]] = []
    resources: list[dict[str, str]] = []
    for t in range(n_traces):
        for i, (parent, service, name, kind, offset, duration, attributes) in enumerate(template):
            rows["ts"].append(int(starts[t] + offset * scale[t] * 1e6))
            rows["tid"].append(trace_ids[t])
            rows["sid"].append(f"{int(span_base[t]) + i:016x}")
            rows["pid"].append("" if parent < 0 else f"{int(span_base[t]) + parent:016x}")
            rows["svc"].append(service)
            rows["name"].append(name)
            rows["kind"].append(kind)
            durations.append(int(duration * scale[t] * 1e6))
            status.append("Error" if failing[t] and i >= width - 2 else "Unset")
            attrs.append(attributes)
            resources.append({"service.name": service, "service.version": "1.4.2"})
    n = len(durations)
    given = {
        "Timestamp": pa.array(rows["ts"], pa.int64()).cast(pa.timestamp("ns")),
        "TraceId": _strings(rows["tid"]),
        "SpanId": _strings(rows["sid"]),
        "ParentSpanId": _strings(rows["pid"]),
        "SpanName": _strings(rows["name"]),
        "SpanKind": _strings(rows["kind"]),
        "ServiceName": _strings(rows["svc"]),
        "ResourceAttributes": _map(resources),
        "SpanAttributes": _map(attrs),
        "Duration": pa.array(durations, pa.int64()),
        "StatusCode": _strings(status),
    }
    columns = [given.get(f.name, _empty(f, n)) for f in SPAN_SCHEMA]
    return pa.Table.from_arrays(columns, schema=SPAN_SCHEMA)


def submit_traces(
    writer: SpanWriter,
    rng: np.random.Generator,
    starts: np.ndarray,
    kinds: np.ndarray,
    pending: list[Future[int]],
) -> int:
    """Submit traces starting at ``starts`` (of the templates ``MIX[kinds]``) in time
    order as one batch, with at most 8 batches in flight; returns the spans."""
    tables = [batch(rng, MIX[k][0], starts[kinds == k]) for k in range(len(MIX))]
    table = pa.concat_tables(tables).sort_by("Timestamp")
    keys = [
        (t + s).encode()
        for t, s in zip(
            table.column("TraceId").to_pylist(), table.column("SpanId").to_pylist(), strict=True
        )
    ]
    pending.append(writer.submit(table, keys, durable=False))
    if len(pending) > 8:
        pending.pop(0).result()
    return int(table.num_rows)


def fill(path: Path, spans: int, hours: float, seed: int = 7) -> dict[str, float]:
    """Write ~``spans`` spans, time-ordered over the last ``hours``; returns ingest facts."""
    rng = np.random.default_rng(seed)
    traces = int(spans / SPANS_PER_TRACE)
    now = time.time_ns()
    span_ns = int(hours * 3600e9)
    all_starts = np.sort(rng.integers(now - span_ns, now - 1_000_000_000, traces))
    kinds = rng.choice(len(MIX), traces, p=[share for _, share in MIX])
    database = Database(path)
    writer = SpanWriter(database, max_queued_spans=2_000_000, dedup_window=0)
    writer.start()
    written = 0
    started = time.perf_counter()
    chunk = 4096
    pending: list[Future[int]] = []
    for first in range(0, traces, chunk):
        written += submit_traces(
            writer, rng, all_starts[first : first + chunk], kinds[first : first + chunk], pending
        )
    for future in pending:
        future.result()
    writer.shutdown(timeout=3600)  # the last derivation pass runs here
    elapsed = time.perf_counter() - started
    database.close()
    return {
        "spans": written,
        "traces": traces,
        "seconds": elapsed,
        "spans_per_s": written / elapsed,
    }


def timed(fn: Callable[[], Any], runs: int = 5) -> float:
    fn()  # warm: first use plans queries and loads the file's pages
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1e3)
    return round(statistics.median(samples), 1)


def measure(path: Path) -> dict[str, float]:
    database = Database(path, read_only=True)
    analysis = Analysis(database)
    cursor = database.reader()
    # "Now" is when the data ends, so a file measured again later still has its last hour.
    row = cursor.execute("SELECT epoch_ns(max(Timestamp)) FROM otel_traces").fetchone()
    now = int(row[0]) + 1 if row and row[0] is not None else time.time_ns()
    hour = Window(now - 3_600_000_000_000, now)
    flows = analysis.flows(ALL_TIME)
    biggest = flows[0].id
    some_trace = analysis.traces(hour, limit=1)[0].trace_id
    naive = """
        SELECT p.ServiceName, c.ServiceName, count(*), quantile_cont(c.Duration, 0.95)
        FROM otel_traces c JOIN otel_traces p ON c.TraceId = p.TraceId AND c.ParentSpanId = p.SpanId
        WHERE c.ServiceName <> p.ServiceName GROUP BY ALL
    """
    result = {
        "map_last_hour_ms": timed(lambda: analysis.service_map(hour)),
        "map_all_time_ms": timed(lambda: analysis.service_map(ALL_TIME)),
        "naive_self_join_map_all_time_ms": timed(lambda: cursor.execute(naive).fetchall(), 3),
        "flows_last_hour_ms": timed(lambda: analysis.flows(hour)),
        "flows_all_time_ms": timed(lambda: analysis.flows(ALL_TIME)),
        "flow_steps_last_hour_ms": timed(lambda: analysis.flow(biggest, hour)),
        "flow_steps_all_time_ms": timed(lambda: analysis.flow(biggest, ALL_TIME), 3),
        "trace_by_id_ms": timed(lambda: analysis.trace(some_trace)),
        "trace_with_baseline_hour_ms": timed(lambda: analysis.trace(some_trace, hour)),
        "traces_slowest_last_hour_ms": timed(lambda: analysis.traces(hour)),
        "file_bytes": path.stat().st_size,
    }
    database.close()
    return result


def _rfc3339(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat().replace("+00:00", "Z")


def under_load(path: Path, rate: float, seconds: float, interval: float = 0.0) -> dict[str, Any]:
    """The API's answers timed while senders keep ``rate`` spans/s coming (OTLP, acked).

    ``interval``: one question every this many seconds at most (someone using the
    dashboard); 0 asks them back to back, so the queries themselves keep the cores busy.
    The server runs on a copy of ``path``: the sent spans would otherwise stay in the
    kept file, and each later run would read more (the last hour most of all).
    """
    copy = path.with_name(f"{path.stem}.under-load.duckdb")
    shutil.copyfile(path, copy)
    # The copy is a GB of dirty pages the kernel would write back during the run, and
    # every journal fsync of the acks measured would wait behind that writeback.
    os.sync()
    try:
        return _under_load(copy, rate, seconds, interval)
    finally:
        remove_database(copy)


def _under_load(path: Path, rate: float, seconds: float, interval: float) -> dict[str, Any]:
    server = start_server_process(path)
    ui = server.endpoints.ui
    try:
        client = httpx.Client(base_url=ui, timeout=120)
        # The sent spans carry live times that carry on from the file's last span, so
        # "the last hour" (which moves with them) holds the file's newest data and the
        # spans arriving, and each second's traces lie in their own second, as live.
        end = client.post(
            "/api/sql", json={"sql": "SELECT epoch_ns(max(Timestamp)) FROM otel_traces"}
        ).json()["rows"][0][0]
        origin = end + 1_000_000
        load_started = time.perf_counter()

        def last_hour() -> dict[str, Any]:
            now = origin + int((time.perf_counter() - load_started) * 1e9)
            return {"since": _rfc3339(now - 3_600_000_000_000), "until": _rfc3339(now + 1)}

        everything = {"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}
        biggest = client.get("/api/flows", params=everything).json()["flows"][0]["id"]
        trace = client.get("/api/traces", params={**last_hour(), "limit": 1}).json()["traces"][0]
        questions: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
            "map_last_hour_ms": ("/api/map", last_hour),
            "map_all_time_ms": ("/api/map", lambda: everything),
            "flows_last_hour_ms": ("/api/flows", last_hour),
            "flows_all_time_ms": ("/api/flows", lambda: everything),
            "flow_steps_last_hour_ms": (f"/api/flows/{biggest}", last_hour),
            "flow_steps_all_time_ms": (f"/api/flows/{biggest}", lambda: everything),
            "trace_by_id_ms": (f"/api/traces/{trace['trace_id']}", dict),
        }
        samples: dict[str, list[float]] = {name: [] for name in questions}
        senders = 2
        # Sender ids go into the trace ids: new ones each run, or a file measured again
        # would drop the spans as already stored (the dedup window) and see no load.
        run_id = int(time.time()) & 0x3FFFFF
        with running_senders(
            server.endpoints,
            senders,
            seconds,
            64,
            rate=rate,
            time_origin_ns=origin,
            first_id=run_id << 2,
        ) as jobs:
            # Time the questions under the load, not under the start of the sender
            # processes (a second of importing at full priority on both cores).
            while client.get("/healthz").json()["ingest"]["requests"] < 20 * senders and not any(
                job.done() for job in jobs
            ):
                time.sleep(0.05)
            next_ask = time.perf_counter()
            while not all(job.done() for job in jobs):
                for name, (route, params) in questions.items():
                    pause = next_ask - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)  # pacing the questions, not waiting for readiness
                    next_ask = max(next_ask + interval, time.perf_counter())
                    started = time.perf_counter()
                    answer = client.get(route, params=params())
                    answer.raise_for_status()
                    samples[name].append((time.perf_counter() - started) * 1e3)
            results = [job.result() for job in jobs]
        acks = sorted(x for r in results for x in r.latencies_ms)
    finally:
        server.stop(signal.SIGTERM)
    return {
        "question_every_s": interval,
        "ingest": {
            "asked_spans_per_s": rate,
            "achieved_spans_per_s": round(sum(r.acked_spans for r in results) / seconds),
            "ack_p50_ms": round(acks[len(acks) // 2], 1) if acks else None,
            "ack_p99_ms": round(acks[int(len(acks) * 0.99)], 1) if acks else None,
            "errors": sum(r.errors for r in results),
        },
        "queries_median_ms": {
            name: round(statistics.median(values), 1) for name, values in samples.items() if values
        },
        "queries_max_ms": {
            name: round(max(values), 1) for name, values in samples.items() if values
        },
        "rounds": min(len(values) for values in samples.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--dir", default="/tmp/flowscope-bench")
    parser.add_argument("--keep", action="store_true", help="keep the database files")
    parser.add_argument(
        "--reuse", action="store_true", help="measure kept files again instead of refilling"
    )
    parser.add_argument(
        "--under-load",
        type=float,
        default=0.0,
        help="then time the API on the largest file while this many spans/s arrive",
    )
    parser.add_argument("--load-seconds", type=float, default=60.0)
    parser.add_argument(
        "--query-interval",
        type=float,
        default=0.0,
        help="under load, ask one question every this many seconds (0: back to back)",
    )
    args = parser.parse_args()
    directory = Path(args.dir)
    directory.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "machine": machine(),
        "hours_of_data": args.hours,
        "sizes": {},
    }
    for size in (int(s) for s in args.sizes.split(",")):
        path = directory / f"analyzer-{size}.duckdb"
        ingest: dict[str, float] = {}
        reused = args.reuse and path.exists()
        if not reused:
            remove_database(path)
            print(f"filling {size} spans ...", file=sys.stderr)
            ingest = fill(path, size, args.hours)
        print(f"measuring {size} spans ...", file=sys.stderr)
        report["sizes"][str(size)] = {"ingest": ingest, "queries": measure(path)}
        if args.under_load and size == max(int(s) for s in args.sizes.split(",")):
            print(f"timing the API under {args.under_load:g} spans/s ...", file=sys.stderr)
            report["sizes"][str(size)]["under_load"] = under_load(
                path, args.under_load, args.load_seconds, args.query_interval
            )
        if not (args.keep or reused):  # a reused file was kept to be measured again
            path.unlink(missing_ok=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
