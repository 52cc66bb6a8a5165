"""One hand-built scenario shared by the API, CLI and Python API tests.

Built with the shipped trace kit (fixed ids and times), so its numbers are
known: the order flow has four traces of 100, 200, 300 and 400 ms, one a
minute from 2026-01-01T00:00Z; the last one fails in ``orders validate``. Two
portfolio traces call an external peer. All of it lies in WINDOW.
"""

from __future__ import annotations

from pathlib import Path

from flowscope.store.database import Database
from flowscope.store.writer import SpanWriter
from flowscope.testing.traces import EventSpec, TraceKit, percentile

SINCE = "2026-01-01T00:00:00Z"
UNTIL = "2026-01-01T01:00:00Z"
WINDOW = {"since": SINCE, "until": UNTIL}
ORDER_DURATIONS = [100.0, 200.0, 300.0, 400.0]
ORDER_P50 = percentile(ORDER_DURATIONS, 0.5)  # 250
ORDER_P95 = percentile(ORDER_DURATIONS, 0.95)  # 385
ORDER_P99 = percentile(ORDER_DURATIONS, 0.99)  # 397
PORTFOLIO_DURATION = 50.0
KAFKA = {"messaging.system": "kafka", "messaging.destination.name": "orders"}


def scenario() -> TraceKit:
    kit = TraceKit()
    for i, duration in enumerate(ORDER_DURATIONS):
        failed = i == 3
        error = "Error" if failed else "Unset"
        version = {"service.version": "1.0" if i < 2 else "2.0"}
        trace = kit.trace(start_ms=i * 60_000)
        root = trace.span(
            "gateway",
            "POST /orders",
            kind="Server",
            start_ms=0,
            duration_ms=duration,
            status=error,
            attributes={"http.route": "/orders", "wallet.provider": ("visa", "paypal")[i % 2]},
        )
        call = root.child(
            "gateway", "POST", kind="Client", start_ms=5, duration_ms=duration - 10, status=error
        )
        server = call.child(
            "orders",
            "POST /orders",
            kind="Server",
            start_ms=6,
            duration_ms=duration - 20,
            status=error,
            resource=version,
        )
        server.child(
            "orders",
            "SELECT orders",
            kind="Client",
            start_ms=10,
            duration_ms=10,
            attributes={"db.system": "postgresql", "db.name": "shop"},
            resource=version,
        )
        if failed:
            server.child(
                "orders",
                "validate",
                kind="Internal",
                start_ms=25,
                duration_ms=5,
                status="Error",
                status_message="card declined",
                resource=version,
                events=[EventSpec(2, "exception", {"exception.type": "CardDeclined"})],
            )
        publish = server.child(
            "orders",
            "orders publish",
            kind="Producer",
            start_ms=30,
            duration_ms=2,
            attributes=KAFKA,
            resource=version,
        )
        publish.child(
            "fulfillment",
            "orders process",
            kind="Consumer",
            start_ms=40,
            duration_ms=20,
            attributes=KAFKA,
        )
    for i in range(2):
        trace = kit.trace(start_ms=30_000 + i * 60_000)
        root = trace.span(
            "gateway", "GET /portfolio", kind="Server", start_ms=0, duration_ms=PORTFOLIO_DURATION
        )
        root.child(
            "gateway",
            "GET quotes",
            kind="Client",
            start_ms=1,
            duration_ms=40,
            attributes={"peer.service": "market-data"},
        )
    return kit


def write_scenario(database: Database, writer: SpanWriter | None = None) -> TraceKit:
    """Store the scenario: through ``writer`` (a running server's) or a writer of its own."""
    kit = scenario()
    kit.write(database, writer=writer)
    return kit


TRACE_IDS = [f"{n:032x}" for n in range(1, 7)]  # kit.trace() numbers its traces 1, 2, ...
SLOWEST_ORDER_TRACE = TRACE_IDS[3]
FASTEST_ORDER_TRACE = TRACE_IDS[0]


def scenario_file(path: Path) -> Path:
    """A closed file at ``path`` holding the scenario (dated 2026-01-01)."""
    database = Database(path)
    try:
        write_scenario(database)
    finally:
        database.close()
    return path
