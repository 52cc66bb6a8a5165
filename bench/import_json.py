"""How fast `flowscope import` reads OTLP JSON lines (the Collector's file exporter).

    python bench/import_json.py [--spans 200000] [--traces-per-line 64] [--dir /tmp/flowscope-bench]

Writes realistic web-shop spans (flowscope.testing.otlp.realistic_request, 8 spans a
trace, 64 traces a line unless told, every trace new) as OTLP JSON lines, imports the file into a fresh database
the way `flowscope import FILE --db` does, and prints JSON: file size, spans, seconds,
spans/s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from files import fresh_database, machine  # noqa: E402

from flowscope.collector.importer import import_into_database  # noqa: E402
from flowscope.collector.otlp_json import request_to_json  # noqa: E402
from flowscope.store.database import Database  # noqa: E402
from flowscope.testing.otlp import realistic_request  # noqa: E402

SPANS_PER_TRACE = 8
TRACES_PER_LINE = 64


def write_lines(path: Path, spans: int, per_line: int) -> int:
    written = 0
    with path.open("wb") as out:
        line = 0
        while written < spans:
            request = realistic_request(per_line, seed=line, first_trace=line * per_line)
            out.write(request_to_json(request) + b"\n")
            written += per_line * SPANS_PER_TRACE
            line += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--traces-per-line", type=int, default=TRACES_PER_LINE)
    parser.add_argument("--dir", default="/tmp/flowscope-bench")
    args = parser.parse_args()
    directory = Path(args.dir)
    db = fresh_database(directory, "import-json.duckdb")
    source = directory / "import.jsonl"
    print(f"writing {args.spans} spans as OTLP JSON lines ...", file=sys.stderr)
    spans = write_lines(source, args.spans, args.traces_per_line)
    database = Database(db)
    started = time.perf_counter()
    try:
        (report,) = import_into_database([source], database)
    finally:
        database.close()
    seconds = time.perf_counter() - started
    assert not report.error and report.stored == spans, report
    print(
        json.dumps(
            {
                "machine": machine(),
                "file_bytes": source.stat().st_size,
                "spans": spans,
                "spans_per_line": args.traces_per_line * SPANS_PER_TRACE,
                "seconds": round(seconds, 2),
                "spans_per_s": round(spans / seconds),
            },
            indent=2,
        )
    )
    source.unlink()


if __name__ == "__main__":
    main()
