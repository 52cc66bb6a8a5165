"""Bytes per span on disk for realistic spans, and where they go, table by table.

    python bench/disk.py [--spans 1000000] [--batch-traces 64]

Writes realistic spans (flowscope.testing.otlp.realistic_request: web-shop traces
with HTTP and database attributes, 2 % errors) through the same decode and
SpanWriter path the server uses, in exporter-sized requests, closes the file
(DuckDB checkpoints on close), and prints JSON: file bytes, bytes per span, and
what each table, and each column of otel_traces, costs copied alone into a file.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from flowscope.collector.decode import decode
from flowscope.store.database import Database
from flowscope.store.writer import SpanWriter
from flowscope.testing.otlp import realistic_request

SPANS_PER_TRACE = 8


def fill(path: Path, spans: int, batch_traces: int) -> int:
    database = Database(path)
    writer = SpanWriter(database)
    writer.start()
    written = 0
    request_no = 0
    pending = []
    try:
        while written < spans:
            traces = min(batch_traces, (spans - written) // SPANS_PER_TRACE) or 1
            request = realistic_request(
                traces, seed=request_no, first_trace=written // SPANS_PER_TRACE
            )
            result = decode(request.SerializeToString(), "application/x-protobuf")
            pending.append(writer.submit(result.batch.table, result.batch.keys, durable=False))
            written += result.batch.table.num_rows
            request_no += 1
            if len(pending) >= 64:
                for future in pending:
                    future.result()
                pending.clear()
        for future in pending:
            future.result()
    finally:
        writer.shutdown()
        database.close()
    return written


def _copied_bytes(path: Path, scratch: Path, selects: dict[str, str]) -> dict[str, int]:
    """Bytes each SELECT over the file costs alone: copied in its row order into a
    file of its own, checkpointed, measured against an empty file."""
    sizes: dict[str, int] = {}
    con = duckdb.connect(":memory:")
    con.execute(f"ATTACH '{path}' AS src (READ_ONLY)")
    try:
        empty = scratch / "empty.duckdb"
        duckdb.connect(str(empty)).close()
        for name, select in selects.items():
            target = scratch / f"copy_{len(sizes)}.duckdb"
            con.execute(f"ATTACH '{target}' AS copy (READ_WRITE)")
            con.execute(f"CREATE TABLE copy.t AS {select}")
            con.execute("DETACH copy")
            sizes[name] = target.stat().st_size - empty.stat().st_size
            target.unlink()
        empty.unlink()
    finally:
        con.close()
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1]))


def _names(path: Path, query: str) -> list[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return [row[0] for row in con.execute(query).fetchall()]


def column_bytes(path: Path, scratch: Path) -> dict[str, int]:
    """Bytes each column of otel_traces costs alone."""
    names = _names(path, "SELECT column_name FROM (DESCRIBE otel_traces)")
    selects = {name: f'SELECT "{name}" FROM src.otel_traces' for name in names}
    return _copied_bytes(path, scratch, selects)


def table_bytes(path: Path, scratch: Path) -> dict[str, int]:
    """Bytes each table costs alone. The whole file also holds the free blocks its
    checkpoints left behind, which vary from run to run by tens of bytes a span; the
    copies do not, so they show a change."""
    names = _names(path, "SELECT table_name FROM duckdb_tables()")
    return _copied_bytes(path, scratch, {name: f'SELECT * FROM src."{name}"' for name in names})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--batch-traces", type=int, default=64, help="traces per request")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "disk.duckdb"
        start = time.perf_counter()
        spans = fill(path, args.spans, args.batch_traces)
        seconds = time.perf_counter() - start
        size = path.stat().st_size
        wal = Path(f"{path}.wal")
        result = {
            "spans": spans,
            "spans_per_request": args.batch_traces * SPANS_PER_TRACE,
            "file_bytes": size,
            "wal_bytes": wal.stat().st_size if wal.exists() else 0,
            "bytes_per_span": round(size / spans, 1),
            "write_seconds": round(seconds, 1),
            "table_bytes_per_span": {
                k: round(v / spans, 2) for k, v in table_bytes(path, Path(tmp)).items() if v > 0
            },
            "column_bytes_per_span": {
                k: round(v / spans, 2) for k, v in column_bytes(path, Path(tmp)).items() if v > 0
            },
            "duckdb": duckdb.__version__,
            "machine": f"{platform.machine()}, {platform.python_version()}",
        }
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
