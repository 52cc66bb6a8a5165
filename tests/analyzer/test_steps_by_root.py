"""An automatic flow's steps by its root key: the same numbers as the general path (a
join with the flow's traces); schema-2 files get the key in place."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import duckdb
import pytest

from flowscope.analyzer import analysis as analysis_module
from flowscope.analyzer import steps as steps_module
from flowscope.analyzer.analysis import Analysis
from flowscope.analyzer.flows_config import FlowRule, FlowsConfig
from flowscope.store.database import SCHEMA_VERSION, Database, StoreError
from flowscope.testing.traces import TraceKit

from .conftest import HOUR, Analyze
from .old_schemas import make_schema_5
from .test_derivation import assert_edge_minutes_agree, mixed_kit


def varied_kit(traces: int = 400, seed: int = 7) -> TraceKit:
    """Durations spread over many histogram buckets, ties, zeros, retries and orphans."""
    rng = random.Random(seed)
    kit = TraceKit()
    for i in range(traces):
        total = rng.choice([5, 5, 5, 80, 1200]) + rng.random() * 30
        trace = kit.trace(start_ms=i * 50)
        root = trace.span("web", "GET /quote", kind="Server", start_ms=0, duration_ms=total)
        call = root.child("web", "GET", kind="Client", start_ms=1, duration_ms=total * 0.6)
        server = call.child(
            "pricing",
            "GET /price",
            kind="Server",
            start_ms=1.5,
            duration_ms=total * 0.5,
            status="Error" if i % 17 == 0 else "Unset",
        )
        for retry in range(1 + (i % 5 == 0)):
            server.child(
                "pricing",
                "SELECT",
                kind="Client",
                start_ms=2 + retry,
                duration_ms=rng.choice([0.0, 0.001, 0.5, total * 0.3]),
                attributes={"db.system": "postgresql"},
            )
        if i % 23 == 0:
            trace.span("pricing", "cache get", start_ms=3, duration_ms=1, parent="00000000deadbeef")
    other = kit.trace(start_ms=10)
    other.span("web", "GET /health", kind="Server", start_ms=0, duration_ms=1)
    return kit


def general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Analysis, "_sole_root", lambda self, *args: None)


def steps_both_ways(
    analysis: Analysis, flow_id: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, Any, Any, Any]:
    fast = analysis.flow(flow_id, HOUR).as_dict()
    with monkeypatch.context() as patch:
        general_path(patch)
        general = analysis.flow(flow_id, HOUR).as_dict()
    return fast["steps"], general["steps"], fast["flow"], general["flow"]


def test_same_steps_as_the_general_path(analyze: Analyze, monkeypatch: pytest.MonkeyPatch) -> None:
    analysis = analyze(varied_kit())
    used: list[tuple[str, str]] = []
    real = steps_module.root_flow_steps

    def spy(database: Database, window: Any, root: tuple[str, str], traces: int) -> Any:
        used.append(root)
        return real(database, window, root, traces)

    monkeypatch.setattr(analysis_module, "root_flow_steps", spy)
    for flow in analysis.flows(HOUR):
        fast, general, fast_flow, general_flow = steps_both_ways(analysis, flow.id, monkeypatch)
        assert fast == general
        assert fast_flow == general_flow == flow.as_dict()
        assert fast, flow.id
    assert ("web", "GET /quote") in used


def test_same_steps_for_the_mixed_kit(analyze: Analyze, monkeypatch: pytest.MonkeyPatch) -> None:
    analysis = analyze(mixed_kit())
    for flow in analysis.flows(HOUR):
        fast, general, fast_flow, general_flow = steps_both_ways(analysis, flow.id, monkeypatch)
        assert (fast, fast_flow) == (general, general_flow)


def test_rules_that_could_claim_the_roots_traces_use_the_general_path(
    analyze: Analyze, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = FlowsConfig(flows=(FlowRule(id="quotes", name="Quotes", service="web"),))
    analysis = analyze(varied_kit(40), config)
    called: list[Any] = []
    monkeypatch.setattr(analysis_module, "root_flow_steps", lambda *a: called.append(a))
    ids = [flow.id for flow in analysis.flows(HOUR)]
    assert "quotes" in ids
    for flow_id in ids:
        analysis.flow(flow_id, HOUR)
    assert called == []


def test_schema_2_files_are_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    database = Database(path)
    varied_kit(30).write(database)
    expected = {
        f.id: Analysis(database).flow(f.id, HOUR).as_dict() for f in Analysis(database).flows(HOUR)
    }
    expected_map = Analysis(database).service_map(HOUR).as_dict()
    database.close()
    # Make it a schema-2 file: the schema-5 tables, and no RootKey, CommitSeq or step
    # Peer column, no derive_state, no edge_minutes, version 2.
    make_schema_5(path)
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE span_steps DROP COLUMN RootKey")
    con.execute("ALTER TABLE step_keys DROP COLUMN Peer")
    con.execute("ALTER TABLE otel_traces DROP COLUMN CommitSeq")
    con.execute("DROP TABLE derive_state")
    con.execute("DROP TABLE edge_minutes")
    con.execute("UPDATE schema_meta SET version = 2")
    con.close()
    with pytest.raises(StoreError, match="open it once read-write"):
        Database(path, read_only=True)
    upgraded = Database(path)
    assert upgraded.fetch("schema_version")[0][0] == SCHEMA_VERSION
    assert upgraded.fetch_arrow("span_count").num_rows == 1
    zero = upgraded.reader().execute("SELECT count(*) FROM span_steps WHERE RootKey = 0").fetchone()
    assert zero is not None and zero[0] == 0
    analysis = Analysis(upgraded)
    # Schema 5 counted the calls already derived into edge_minutes.
    assert analysis.service_map(HOUR).as_dict() == expected_map
    assert_edge_minutes_agree(upgraded)
    # Steps stored before schema 4 have no peer until traces with them are derived again.
    assert {f.id: analysis.flow(f.id, HOUR).as_dict() for f in analysis.flows(HOUR)} == {
        flow: {**detail, "steps": [{**step, "peer": None} for step in detail["steps"]]}
        for flow, detail in expected.items()
    }
    kit = TraceKit()
    root = kit.trace(start_ms=60, trace_id="ab" * 16).span(
        "web", "GET /quote", kind="Server", start_ms=0, duration_ms=9
    )
    call = root.child("web", "GET", kind="Client", start_ms=1, duration_ms=5)
    server = call.child("pricing", "GET /price", kind="Server", start_ms=2, duration_ms=3)
    server.child(
        "pricing",
        "SELECT",
        kind="Client",
        start_ms=2,
        duration_ms=1,
        attributes={"db.system": "postgresql"},
    )
    kit.write(upgraded)
    (flow_id,) = [f for f in expected if "quote" in f]
    peers = {s.operation: s.peer for s in analysis.flow(flow_id, HOUR).steps}
    # Client steps name their peer by the map's rule, whether a traced service answers.
    assert {op: peer for op, peer in peers.items() if peer} == {
        "GET": "unknown",
        "SELECT": "postgresql",
    }
    upgraded.close()
