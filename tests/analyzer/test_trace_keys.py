"""Derived data names traces and spans by keys read from their ids' digits, and a
flow's root by an MD5 of its names (sql/004_keys.sql). DuckDB's string hash maps some
patterned strings alike: traces derived under one key were merged (in the flows, the
map, the trace list and views), and flows whose roots hashed alike shared steps."""

from __future__ import annotations

from flowscope.analyzer.analysis import Analysis
from flowscope.store.database import Database
from flowscope.testing.traces import TraceKit

from .conftest import HOUR

# Two trace ids DuckDB's hash() maps alike (found among ids whose halves count up).
ALIKE = ("5b8efff79803810bd269b633813fc614", "5b8efff79803810dd269b633813fc616")


def alike_kit() -> TraceKit:
    """A trace for each id of ALIKE, each of its own flow, a second apart."""
    kit = TraceKit()
    for n, (trace_id, service, operation) in enumerate(
        zip(ALIKE, ("checkout", "billing"), ("GET /cart", "POST /invoice"), strict=True)
    ):
        root = kit.trace(start_ms=1_000 + 1_000 * n, trace_id=trace_id).span(
            service, operation, kind="Server", start_ms=0, duration_ms=10 + 10 * n
        )
        root.child("ledger", "POST /entries", kind="Server", start_ms=2, duration_ms=3)
    return kit


def test_ids_duckdb_hashes_alike_stay_two_traces(database: Database) -> None:
    reader = database.reader()
    assert reader.execute("SELECT hash($1) = hash($2)", list(ALIKE)).fetchone() == (True,)
    alike_kit().write(database)
    analysis = Analysis(database)
    flows = {f.root_service: f for f in analysis.flows(HOUR)}
    assert {s: (f.traces, f.p50_ms) for s, f in flows.items()} == {
        "checkout": (1, 10.0),
        "billing": (1, 20.0),
    }
    assert sorted(t.trace_id for t in analysis.traces(HOUR, limit=10)) == sorted(ALIKE)
    for trace_id, service in zip(ALIKE, ("checkout", "billing"), strict=True):
        view = analysis.trace(trace_id)
        assert view.flow == flows[service].id
        assert [(s.service, s.depth) for s in view.spans] == [(service, 0), ("ledger", 1)]
    edges = analysis.service_map(HOUR).edges
    assert sorted((e.source, e.target, e.calls) for e in edges) == [
        ("billing", "ledger", 1),
        ("checkout", "ledger", 1),
    ]


def test_ids_counting_up_in_both_halves_are_each_a_trace(database: Database) -> None:
    kit = TraceKit()
    for n in range(2_000):
        kit.trace(start_ms=n, trace_id=f"{0x5B8E0000 + n:016x}{0xD2690000 + n:016x}").span(
            "web", "GET /", kind="Server", start_ms=0, duration_ms=1
        )
    kit.write(database)
    reader = database.reader()
    hashed = reader.execute("SELECT count(DISTINCT hash(TraceId)) FROM otel_traces").fetchone()
    assert hashed is not None and hashed[0] < 2_000  # DuckDB's hash maps some alike
    (flow,) = Analysis(database).flows(HOUR)
    assert flow.traces == 2_000
    stored = reader.execute("SELECT count(*), count(DISTINCT TraceKey) FROM trace_index")
    assert stored.fetchone() == (2_000, 2_000)


# Two root operations of one service DuckDB's hash() maps alike (span_steps.RootKey
# was hash(service, operation): each flow's steps held the other's).
ALIKE_ROOTS = {"GET /carts/0002000000020000": "carts", "GET /carts/0002700000027000": "prices"}


def test_flows_whose_roots_duckdb_hashes_alike_keep_their_own_steps(database: Database) -> None:
    reader = database.reader()
    same = reader.execute("SELECT hash('web', $1) = hash('web', $2)", list(ALIKE_ROOTS))
    assert same.fetchone() == (True,)
    kit = TraceKit()
    for n, (operation, callee) in enumerate(ALIKE_ROOTS.items()):
        root = kit.trace(start_ms=1_000 * n).span(
            "web", operation, kind="Server", start_ms=0, duration_ms=10
        )
        root.child(callee, "lookup", kind="Server", start_ms=1, duration_ms=2)
    kit.write(database)
    analysis = Analysis(database)
    flows = analysis.flows(HOUR)
    assert len(flows) == 2
    for flow in flows:
        steps = analysis.flow(flow.id, HOUR).steps
        callee = ALIKE_ROOTS[flow.root_operation]
        assert [(s.service, s.calls, s.traces) for s in steps] == [("web", 1, 1), (callee, 1, 1)]
