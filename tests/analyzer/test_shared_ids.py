"""Zipkin/B3 shared span ids sent over OTLP: the client and server spans of one id are
both stored, and analysis puts the server half under its client (as Jaeger does)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from flowscope.analyzer.analysis import Analysis
from flowscope.analyzer.shared_ids import half_key, unshare
from flowscope.collector.flatten import flatten_request
from flowscope.collector.importer import import_into_database
from flowscope.collector.zipkin_json import zipkin_to_otlp
from flowscope.store.database import Database
from flowscope.store.writer import SpanWriter
from flowscope.testing.traces import TraceKit

from .conftest import HOUR, Analyze

ZIPKIN_FILE = Path(__file__).parents[1] / "collector" / "data" / "zipkin_v2_spans.json"


def _half_id(trace_id: str, span_id: str, service: str) -> str:
    """The documented id of a server half (docs/import.md), as the trace view shows it."""
    seed = b"flowscope/zipkin-shared-span" + bytes.fromhex(trace_id) + bytes.fromhex(span_id)
    return hashlib.sha256(seed + service.encode()).digest()[:8].hex()


def zipkin_style() -> tuple[TraceKit, str, str]:
    """A checkout whose call to payments was reported Zipkin's way: the payments SERVER
    span has the web CLIENT span's id and parent, and its own child names that id."""
    kit = TraceKit()
    trace = kit.trace()
    root = trace.span("web", "GET /checkout", kind="Server", start_ms=0, duration_ms=100)
    call = root.child("web", "GET", kind="Client", start_ms=10, duration_ms=60)
    trace.span(
        "payments",
        "POST /pay",
        kind="Server",
        start_ms=15,
        duration_ms=50,
        parent=root,
        span_id=call.span_id,
        status="Error",
    )
    trace.span(
        "payments",
        "INSERT",
        kind="Client",
        start_ms=20,
        duration_ms=30,
        parent=call.span_id,
        status="Error",
        attributes={"db.system": "postgresql"},
    )
    root.child("web", "render", start_ms=80, duration_ms=10)
    return kit, root.trace_id, call.span_id


def test_both_halves_are_stored_and_a_retry_of_them_is_not(database: Database) -> None:
    kit, _trace_id, shared = zipkin_style()
    assert kit.write(database) == 5
    assert kit.write(database) == 0  # an exporter's retry: the dedup window drops it
    kinds = database.reader().execute(
        "SELECT SpanKind FROM otel_traces WHERE SpanId = ? ORDER BY SpanKind", [shared]
    )
    assert [k for (k,) in kinds.fetchall()] == ["Client", "Server"]


def test_the_trace_view_puts_the_server_half_under_its_client(analyze: Analyze) -> None:
    kit, trace_id, shared = zipkin_style()
    view = analyze(kit).trace(trace_id)
    half = _half_id(trace_id, shared, "payments")
    rows = [(s.service, s.operation, s.depth, s.span_id, s.parent_span_id) for s in view.spans]
    root_id = rows[0][3]
    assert rows == [
        ("web", "GET /checkout", 0, root_id, ""),
        ("web", "GET", 1, shared, root_id),
        ("payments", "POST /pay", 2, half, shared),
        ("payments", "INSERT", 3, rows[3][3], half),
        ("web", "render", 1, rows[4][3], root_id),
    ]
    assert not any(s.orphan for s in view.spans)
    assert [(c.service, c.operation) for c in view.critical_path][:4] == [
        ("web", "GET /checkout"),
        ("web", "GET"),
        ("payments", "POST /pay"),
        ("payments", "INSERT"),
    ]


def test_map_and_steps_see_the_call_to_the_server_half(analyze: Analyze) -> None:
    kit, _trace_id, _shared = zipkin_style()
    analysis = analyze(kit)
    edges = {(e.source, e.target, e.rule): e for e in analysis.service_map(HOUR).edges}
    assert set(edges) == {("web", "payments", "rpc"), ("payments", "postgresql", "virtual")}
    call = edges[("web", "payments", "rpc")]
    assert (call.calls, call.errors, call.p50_ms) == (1, 1, 60.0)  # the client's view
    (flow,) = analysis.flows(HOUR)
    assert flow.traces == 1
    steps = analysis.flow(flow.id, HOUR).steps
    tree = {s.id: s for s in steps}
    shape = [
        (s.service, s.operation, s.kind, tree[s.parent_id].operation if s.parent_id else None)
        for s in steps
    ]
    assert shape == [
        ("web", "GET /checkout", "Server", None),
        ("web", "GET", "Client", "GET /checkout"),
        ("payments", "POST /pay", "Server", "GET"),
        ("payments", "INSERT", "Client", "POST /pay"),
        ("web", "render", "Internal", "GET /checkout"),
    ]
    origins = {s.operation: s.origin_errors for s in steps}
    assert origins["INSERT"] == 1 and origins["POST /pay"] == 0


def test_two_services_answering_under_one_id_each_get_their_own_half(analyze: Analyze) -> None:
    """A proxy (mesh) and the service behind it both report the call's server side under
    the client's id: each is a half under the client, with its own service's children."""
    kit, trace_id, shared = zipkin_style()
    (root,) = [s.span_id for s in kit.spans_of("web") if not s.parent_span_id]
    trace = kit.trace(trace_id=trace_id)
    trace.span(
        "mesh", "ingress", kind="Server", start_ms=12, duration_ms=55, parent=root, span_id=shared
    )
    analysis = analyze(kit)
    edges = {(e.source, e.target, e.rule) for e in analysis.service_map(HOUR).edges}
    assert {("web", "payments", "rpc"), ("web", "mesh", "rpc")} <= edges
    view = analysis.trace(trace_id)
    parents = {s.operation: s.parent_span_id for s in view.spans}
    halves = {s.operation: s.span_id for s in view.spans}
    assert parents["ingress"] == parents["POST /pay"] == shared
    assert halves["ingress"] == _half_id(trace_id, shared, "mesh")
    assert parents["INSERT"] == halves["POST /pay"] == _half_id(trace_id, shared, "payments")


def test_unshare_leaves_unique_keys_alone_and_moves_only_the_halfs_children() -> None:
    keys = np.array([10, 20, 30], dtype=np.uint64)
    parents = np.array([0, 10, 10], dtype=np.uint64)
    same = unshare(keys, parents, np.ones(3, bool), np.ones(3, bool), np.zeros(3, np.int64), ["s"])
    assert same.span_keys is keys and same.parent_keys is parents and len(same.halves) == 0
    # Rows: client 20 (svc a), server 20 (svc b), child of 20 in b, child of 20 in a.
    keys = np.array([20, 20, 40, 50], dtype=np.uint64)
    parents = np.array([10, 10, 20, 20], dtype=np.uint64)
    out = unshare(
        keys,
        parents,
        np.array([False, True, False, False]),
        np.array([True, False, False, False]),
        np.array([0, 1, 1, 0]),
        ["a", "b"],
    )
    new = half_key(20, "b")
    assert out.halves.tolist() == [1]
    assert out.span_keys.tolist() == [20, new, 40, 50]
    assert out.parent_keys.tolist() == [10, 20, new, 20]


def test_a_trace_received_over_otlp_then_imported_from_zipkin_is_stored_once(
    database: Database, tmp_path: Path
) -> None:
    """The file import renamed server halves while OTLP kept the shared id: the same
    trace through both stored the half twice, and the trace view showed a span that
    was its own parent."""
    document = json.loads((ZIPKIN_FILE).read_text(encoding="utf-8"))
    batch = flatten_request(zipkin_to_otlp(document)).batch  # as the Collector passes it on
    writer = SpanWriter(database, journal=False)
    writer.start()
    try:
        assert writer.write(batch.table, batch.keys) == 4
    finally:
        writer.shutdown()
    path = tmp_path / "zipkin.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    (report,) = import_into_database([path], database)
    assert (report.spans, report.stored) == (4, 0)
    trace_id = "0000000000000000463ac35c9f6413ad"
    view = Analysis(database).trace(trace_id)
    call, send = "72485a3953bb6124", "e457b5a2e4d86bd1"
    half = _half_id(trace_id, call, "backend")
    assert [(s.span_id, s.parent_span_id, s.depth) for s in view.spans] == [
        ("463ac35c9f6413ad", "", 0),
        (call, "463ac35c9f6413ad", 1),
        (half, call, 2),
        (send, half, 3),
    ]


def test_a_64_bit_trace_id_finds_the_imported_trace(database: Database, tmp_path: Path) -> None:
    """Import pads Zipkin's and Jaeger's 64-bit trace ids to 32 digits; asked for by the
    id in the file (or in the logs), the trace was "not in the database"."""
    path = tmp_path / "zipkin.json"
    path.write_text(ZIPKIN_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    import_into_database([path], database)
    analysis = Analysis(database)
    stored = "0000000000000000463ac35c9f6413ad"
    for asked in ("463ac35c9f6413ad", " 463AC35C9F6413AD ", stored, "0463ac35c9f6413ad"):
        view = analysis.trace(asked)
        assert (view.trace_id, len(view.spans)) == (stored, 4), asked
    assert analysis.compare_traces("463ac35c9f6413ad", stored).left == stored
    assert analysis.compare_baseline("463ac35c9f6413ad").right == stored
