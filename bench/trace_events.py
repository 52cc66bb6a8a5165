"""A trace view of a trace with many events: time, peak memory and answer size.

    python bench/trace_events.py [--spans 3000] [--events-per-span 51] [--runs 3]

Writes one trace (a root and ``--spans`` children, each with ``--events-per-span``
log events, like a batch job logging each item) with the TraceKit into a fresh
file, then runs ``flowscope trace ID --format json`` on it ``--runs`` times as a
user would, and prints JSON: seconds and peak RSS of each run, the answer's bytes,
and the events the view kept and left out (analyzer/trace_view.py's MAX_EVENTS).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flowscope.store.database import Database
from flowscope.testing.traces import EventSpec, TraceKit

TRACE_ID = "f" * 32


def write_trace(path: Path, spans: int, events_per_span: int) -> None:
    kit = TraceKit()
    root = kit.trace(trace_id=TRACE_ID).span(
        "batch", "run", kind="Server", start_ms=0, duration_ms=spans + 10
    )
    for i in range(spans):
        events = [
            EventSpec(j / 100, "log", {"line": j, "msg": "processing item record"})
            for j in range(events_per_span)
        ]
        root.child("batch", "item", start_ms=1 + i, duration_ms=1, events=events)
    database = Database(path)
    try:
        kit.write(database)
    finally:
        database.close()


def view_once(path: Path) -> dict[str, object]:
    command = [sys.executable, "-m", "flowscope.cli", "trace", TRACE_ID]
    command += ["--db", str(path), "--format", "json"]
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out)
        _, status, usage = os.wait4(child.pid, 0)  # this run's own peak memory
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            raise SystemExit(f"{command} failed with {child.returncode}")
        out.seek(0)
        answer = out.read()
    view = json.loads(answer)
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "answer_bytes": len(answer),
        "events_kept": sum(len(s["events"]) for s in view["spans"]),
        "events_omitted": sum(s.get("events_omitted", 0) for s in view["spans"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=3000)
    parser.add_argument("--events-per-span", type=int, default=51)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "events.duckdb"
        write_trace(path, args.spans, args.events_per_span)
        runs = [view_once(path) for _ in range(args.runs)]
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {platform.python_version()}",
                "spans": args.spans + 1,
                "events": args.spans * args.events_per_span,
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
