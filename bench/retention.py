"""Disk under retention: does the file stop growing once retention deletes as fast as
spans arrive?

    python bench/retention.py [--days 12] [--keep-days 3] [--spans-per-day 500000]
                              [--sweeps-per-day 24] [--dir /tmp/flowscope-bench]

Writes ``--days`` simulated days of the analyzer benchmark's trading traces (the same
three flows, bench/analyzer.py) in time order through SpanWriter, with derivation on,
as the server does. After each simulated ``24 / sweeps-per-day`` hours it runs the
retention sweep the server runs (flowscope.store.retention.delete_older_than: the
spans on the writer thread, their derived rows on the derive thread), with the cutoff
``--keep-days`` before the newest span written. At the end of each simulated day it
records the spans kept and the file's bytes: the blocks holding data, the free blocks
(freed by checkpoints, reused as the file grows) and the WAL (up to the 256 MB
checkpoint threshold), with bytes per kept span of the used blocks and of all of it.
Prints one JSON document (recorded in docs/benchmarks.md, "Disk under retention").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from files import fresh_database, machine, remove_database  # noqa: E402

from analyzer import MIX, SPANS_PER_TRACE, submit_traces  # noqa: E402
from flowscope.store.database import Database  # noqa: E402
from flowscope.store.retention import delete_older_than  # noqa: E402
from flowscope.store.writer import SpanWriter  # noqa: E402

DAY_NS = 86_400 * 10**9


def file_bytes(path: Path) -> int:
    wal = Path(f"{path}.wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def run(path: Path, days: int, keep_days: float, spans_per_day: int, sweeps: int) -> dict[str, Any]:
    rng = np.random.default_rng(11)
    traces_per_day = int(spans_per_day / SPANS_PER_TRACE)
    # The simulated days end a minute before now, so every span is in the past.
    first_day = time.time_ns() - days * DAY_NS - 60 * 10**9
    database = Database(path)
    writer = SpanWriter(database, max_queued_spans=2_000_000, dedup_window=0)
    writer.start()
    written = deleted = 0
    per_day: list[dict[str, Any]] = []
    started = time.perf_counter()
    pending: list[Any] = []
    slice_ns = DAY_NS // sweeps
    try:
        for day in range(days):
            day_start = first_day + day * DAY_NS
            day_starts = np.sort(rng.integers(day_start, day_start + DAY_NS, traces_per_day))
            for sweep in range(sweeps):
                lo, hi = day_start + sweep * slice_ns, day_start + (sweep + 1) * slice_ns
                part = day_starts[(day_starts >= lo) & (day_starts < hi)]
                for first in range(0, len(part), 4096):
                    starts = part[first : first + 4096]
                    kinds = rng.choice(len(MIX), len(starts), p=[share for _, share in MIX])
                    written += submit_traces(writer, rng, starts, kinds, pending)
                for future in pending:
                    future.result()
                pending.clear()
                cutoff = datetime.fromtimestamp((hi - int(keep_days * DAY_NS)) / 1e9, UTC)
                deleted += delete_older_than(writer, cutoff)
            writer.await_moved()
            kept = writer.run_task(
                lambda cursor: cursor.execute("SELECT count(*) FROM otel_traces").fetchall()[0][0]
            ).result()
            usage = database.disk_usage(blocks_wait_s=600)
            assert usage is not None and usage.used_bytes is not None
            on_disk = usage.file_bytes + usage.wal_bytes
            per_day.append(
                {
                    "day": day + 1,
                    "spans_written": written,
                    "spans_kept": int(kept),
                    "file_bytes": usage.file_bytes,
                    "used_bytes": usage.used_bytes,
                    "free_bytes": usage.free_bytes,
                    "wal_bytes": usage.wal_bytes,
                    "used_bytes_per_kept_span": round(usage.used_bytes / max(int(kept), 1), 1),
                    "bytes_per_kept_span": round(on_disk / max(int(kept), 1), 1),
                }
            )
            print(json.dumps(per_day[-1]), file=sys.stderr)
    finally:
        writer.shutdown(timeout=3600)
        database.close()
    closed = file_bytes(path)
    return {
        "days": per_day,
        "spans_deleted": deleted,
        "file_bytes_closed": closed,
        "bytes_per_kept_span_closed": round(closed / max(per_day[-1]["spans_kept"], 1), 1)
        if per_day
        else None,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--days", type=int, default=12)
    parser.add_argument("--keep-days", type=float, default=3.0)
    parser.add_argument("--spans-per-day", type=int, default=500_000)
    parser.add_argument("--sweeps-per-day", type=int, default=24)
    parser.add_argument("--dir", default="/tmp/flowscope-bench")
    parser.add_argument("--keep", action="store_true", help="keep the database file")
    args = parser.parse_args()
    path = fresh_database(Path(args.dir), "retention.duckdb")
    report = {
        "machine": machine(),
        "keep_days": args.keep_days,
        "spans_per_day": args.spans_per_day,
        **run(path, args.days, args.keep_days, args.spans_per_day, args.sweeps_per_day),
    }
    if not args.keep:
        remove_database(path)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
