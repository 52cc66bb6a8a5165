"""Documented behaviour for awkward data (docs/analysis.md "Edge cases")."""

from __future__ import annotations

import pytest

from flowscope.analyzer.diagrams.step_tree import step_summary, step_tree
from flowscope.analyzer.model import Window
from flowscope.testing.traces import TraceKit, at_ms

from .conftest import HOUR, Analyze

MISSING_PARENT = "00000000deadbeef"


def test_spans_with_unspecified_kind(analyze: Analyze) -> None:
    kit = TraceKit()
    root = kit.trace().span("a", "handle", kind="Unspecified", start_ms=0, duration_ms=50)
    root.child(
        "b",
        "work",
        kind="Unspecified",
        start_ms=5,
        duration_ms=30,
        attributes={"server.address": "x"},
    )
    analysis = analyze(kit)
    result = analysis.service_map(HOUR)
    # Rule 1 still links a to b; the latency is the child's (the parent is no CLIENT);
    # an Unspecified span is never a CLIENT, so no virtual edge; no SERVER spans, no P95.
    assert [(e.source, e.target, e.rule, e.p50_ms) for e in result.edges] == [
        ("a", "b", "rpc", 30.0)
    ]
    assert [(n.id, n.kind, n.spans, n.p95_ms) for n in result.nodes] == [
        ("a", "service", 1, None),
        ("b", "service", 1, None),
    ]
    flow = analysis.flows(HOUR)[0]
    assert (flow.root_operation, flow.traces) == ("handle", 1)
    steps = analysis.flow(flow.id, HOUR).steps
    assert [(s.service, s.kind, s.critical_path_share) for s in steps] == [
        ("a", "Unspecified", pytest.approx(20 / 50)),
        ("b", "Unspecified", pytest.approx(30 / 50)),
    ]


def test_spans_with_a_kind_and_status_outside_the_enum(analyze: Analyze) -> None:
    """Stored as '' (as the exporter does): a kind that is neither SERVER nor CLIENT, and a
    status that is no error."""
    kit = TraceKit()
    root = kit.trace().span("a", "handle", kind="", status="", start_ms=0, duration_ms=50)
    root.child(
        "b", "work", kind="", status="", start_ms=5, duration_ms=30, attributes={"db.system": "x"}
    )
    analysis = analyze(kit)
    result = analysis.service_map(HOUR)
    assert [(e.source, e.target, e.rule, e.p50_ms, e.errors) for e in result.edges] == [
        ("a", "b", "rpc", 30.0, 0)
    ]
    assert [(n.id, n.kind, n.spans, n.error_rate, n.p95_ms) for n in result.nodes] == [
        ("a", "service", 1, 0.0, None),
        ("b", "service", 1, 0.0, None),
    ]
    flow = analysis.flows(HOUR)[0]
    assert (flow.root_operation, flow.traces, flow.error_rate) == ("handle", 1, 0.0)
    steps = analysis.flow(flow.id, HOUR).steps
    assert [(s.service, s.kind, s.errors) for s in steps] == [("a", "", 0), ("b", "", 0)]
    assert step_summary(steps[1], step_tree(steps))[2] == "1 call per trace"
    view = analysis.trace(kit.spans[0].trace_id)
    assert [(s.kind, s.status) for s in view.spans] == [("", ""), ("", "")]


def orphan_kit() -> TraceKit:
    kit = TraceKit()
    trace = kit.trace()
    root = trace.span("gateway", "GET /", kind="Server", start_ms=0, duration_ms=100)
    root.child(
        "gateway",
        "GET",
        kind="Client",
        start_ms=10,
        duration_ms=50,
        attributes={"peer.service": "orders"},
    )
    orphan = trace.span(
        "orders", "GET /", kind="Server", start_ms=20, duration_ms=30, parent=MISSING_PARENT
    )
    orphan.child(
        "orders",
        "SELECT",
        kind="Client",
        start_ms=22,
        duration_ms=3,
        attributes={"db.system": "sqlite"},
    )
    return kit


def test_orphans_start_their_own_subtree_off_the_critical_path(analyze: Analyze) -> None:
    kit = orphan_kit()
    analysis = analyze(kit)
    view = analysis.trace(kit.spans[0].trace_id)
    assert [(s.operation, s.depth, s.orphan, s.on_critical_path) for s in view.spans] == [
        ("GET /", 0, False, True),
        ("GET", 1, False, True),
        ("GET /", 0, True, False),
        ("SELECT", 1, False, False),
    ]
    assert view.spans[2].parent_span_id == MISSING_PARENT
    assert sum(c.duration_ms for c in view.critical_path) == 100.0
    assert {c.service for c in view.critical_path} == {"gateway"}
    steps = analysis.flow(analysis.flows(HOUR)[0].id, HOUR).steps
    assert [
        (s.service, s.operation, s.parent_id is None, s.critical_path_share) for s in steps
    ] == [
        ("gateway", "GET /", True, 0.5),
        ("gateway", "GET", False, 0.5),
        ("orders", "GET /", True, 0.0),
        ("orders", "SELECT", False, 0.0),
    ]
    # The orphan's own missing parent gives no edge; the client's peer and its query do.
    assert [(e.source, e.target, e.rule) for e in analysis.service_map(HOUR).edges] == [
        ("gateway", "orders", "virtual"),
        ("orders", "sqlite", "virtual"),
    ]


def test_a_trace_whose_root_never_arrived(analyze: Analyze) -> None:
    kit = TraceKit()
    trace = kit.trace(start_ms=10)
    span = trace.span(
        "orders", "GET /", kind="Server", start_ms=0, duration_ms=30, parent=MISSING_PARENT
    )
    span.child("orders", "SELECT", kind="Client", start_ms=5, duration_ms=40)
    analysis = analyze(kit)
    assert analysis.flows(HOUR) == []
    # Listed by its first span, as Jaeger and Tempo list it; in no flow.
    (listed,) = analysis.traces(HOUR)
    assert (listed.has_root, listed.flow, listed.root_service, listed.root_operation) == (
        False,
        "",
        "orders",
        "GET /",
    )
    assert (listed.duration_ms, listed.spans, listed.status) == (45.0, 2, "")
    assert analysis.traces(HOUR, min_duration_ms=46) == []
    view = analysis.trace(kit.spans[0].trace_id)
    assert (view.flow, view.duration_ms, view.critical_path) == (None, 45.0, [])
    assert [s.step_id for s in view.spans] == [None, None]


def test_clock_skew_is_clamped(analyze: Analyze) -> None:
    kit = TraceKit()
    root = kit.trace(start_ms=10).span(
        "gateway", "GET /", kind="Server", start_ms=0, duration_ms=100
    )
    # Starts 5 ms before its parent and ends 10 ms after it; its child sticks out too.
    child = root.child("orders", "GET /", kind="Server", start_ms=-5, duration_ms=115)
    child.child("orders", "SELECT", kind="Client", start_ms=90, duration_ms=30)
    analysis = analyze(kit)
    steps = {
        s.service + " " + s.operation: s
        for s in analysis.flow(analysis.flows(HOUR)[0].id, HOUR).steps
    }
    # Offsets from the root never go negative.
    assert steps["orders GET /"].start_offset_p50_ms == 0.0
    # Self time uses the child clipped to the parent: the root is fully covered.
    assert steps["gateway GET /"].self_p50_ms == 0.0
    # Its query is clipped to the child itself (-5..110): 115 - (110 - 90).
    assert steps["orders GET /"].self_p50_ms == pytest.approx(95.0)
    # On the critical path the child is clipped to 0..100 and the query to 90..100.
    assert steps["orders SELECT"].critical_path_share == pytest.approx(0.10)
    assert steps["orders GET /"].critical_path_share == pytest.approx(0.90)
    assert steps["gateway GET /"].critical_path_share == 0.0
    view = analysis.trace(kit.spans[0].trace_id)
    assert [s.start_offset_ms for s in view.spans] == [5.0, 0.0, 95.0]
    assert [(c.service, c.start_offset_ms, c.duration_ms) for c in view.critical_path] == [
        ("orders", 5.0, 90.0),
        ("orders", 95.0, 10.0),
    ]


def test_a_20000_span_deep_trace(analyze: Analyze) -> None:
    kit = TraceKit()
    trace = kit.trace()
    depth = 20_000
    span = trace.span("svc-0", "op", kind="Server", start_ms=0, duration_ms=100)
    for i in range(1, depth):
        # Each level starts 1 us after its parent and ends 1 us before it.
        span = span.child(
            f"svc-{i % 2}", "op", kind="Server", start_ms=i * 0.001, duration_ms=100 - 2 * i * 0.001
        )
    analysis = analyze(kit)
    view = analysis.trace(kit.spans[0].trace_id)
    assert len(view.spans) == depth and view.spans[-1].depth == depth - 1
    assert view.spans[-1].self_ms == pytest.approx(100 - 2 * (depth - 1) * 0.001)
    assert view.spans[0].self_ms == pytest.approx(0.002)
    assert all(s.on_critical_path for s in view.spans)
    assert sum(c.duration_ms for c in view.critical_path) == pytest.approx(100.0)
    steps = analysis.flow(analysis.flows(HOUR)[0].id, HOUR).steps
    assert len(steps) == depth
    assert sum(s.critical_path_share for s in steps) == pytest.approx(1.0)
    edges = analysis.service_map(HOUR).edges
    assert sorted((e.source, e.target, e.calls) for e in edges) == [
        ("svc-0", "svc-1", depth // 2),
        ("svc-1", "svc-0", depth // 2 - 1),
    ]


def test_a_20000_span_wide_trace(analyze: Analyze) -> None:
    kit = TraceKit()
    root = kit.trace().span("gateway", "batch", kind="Server", start_ms=0, duration_ms=1000)
    for i in range(20_000):
        # Retries of one call, 0.05 ms apart, each 1 ms long.
        root.child("worker", "item", kind="Server", start_ms=i * 0.05, duration_ms=1.0)
    analysis = analyze(kit)
    steps = analysis.flow(analysis.flows(HOUR)[0].id, HOUR).steps
    item = steps[1]
    assert (item.calls, item.traces, item.calls_per_trace) == (20_000, 1, 20_000.0)
    # Jaeger's walk by hand: clip to the root, take the last-finishing child (the
    # earliest-starting of equals), then the last one ending before it starts, ...
    children = sorted(
        (
            (min(round(i * 0.05e6) + 1_000_000, 1_000_000_000), round(i * 0.05e6))
            for i in range(20_000)
        ),
        key=lambda c: (-c[0], c[1]),
    )
    taken, cursor = [], None
    for end, start in children:
        if cursor is None or end < cursor:
            taken.append(start)
            cursor = start
    view = analysis.trace(kit.spans[0].trace_id)
    on_path = [s for s in view.spans[1:] if s.on_critical_path]
    assert len(on_path) == len(taken) == 952
    assert sum(c.duration_ms for c in view.critical_path) == pytest.approx(1000.0)
    assert analysis.service_map(HOUR).edges[0].calls == 20_000


def test_parent_cycles_do_not_hang(analyze: Analyze) -> None:
    kit = TraceKit()
    trace = kit.trace()
    trace.span("a", "root", kind="Server", start_ms=0, duration_ms=10)
    trace.span(
        "b",
        "x",
        kind="Server",
        start_ms=1,
        duration_ms=2,
        span_id="00000000000000aa",
        parent="00000000000000bb",
    )
    trace.span(
        "b",
        "y",
        kind="Server",
        start_ms=2,
        duration_ms=2,
        span_id="00000000000000bb",
        parent="00000000000000aa",
    )
    view = analyze(kit).trace(kit.spans[0].trace_id)
    assert len(view.spans) == 3
    assert [s.on_critical_path for s in view.spans] == [True, False, False]


def test_empty_database_answers_empty(analyze: Analyze) -> None:
    analysis = analyze(TraceKit())
    window = Window(at_ms(0), at_ms(1))
    assert analysis.flows(window) == [] and analysis.service_map(window).edges == []
    assert analysis.traces(window) == []


def test_spans_from_1970_do_not_spoil_other_traces_self_times(analyze: Analyze) -> None:
    """Spans whose start was left at 0 last 56 years; a few of them in a derivation pass
    overflowed the self-time arithmetic of every trace after them (self time 0)."""
    kit = TraceKit()
    epoch_ms = -at_ms(0) / 1e6  # start_ms of 1970-01-01 in the kit's terms
    for _ in range(6):
        old = kit.trace(start_ms=epoch_ms).span(
            "batch", "nightly", kind="Server", start_ms=0, duration_ms=-epoch_ms
        )
        old.child("batch", "step", kind="Internal", start_ms=1, duration_ms=-epoch_ms - 2)
    for n in range(20):
        root = kit.trace(start_ms=n).span(
            "web", "GET /", kind="Server", start_ms=0, duration_ms=100
        )
        root.child("web", "a", kind="Internal", start_ms=10, duration_ms=50)
        root.child("web", "b", kind="Internal", start_ms=20, duration_ms=70)
    analysis = analyze(kit)
    web = next(f for f in analysis.flows(HOUR) if f.root_service == "web")
    steps = {s.operation: s for s in analysis.flow(web.id, HOUR).steps}
    assert steps["GET /"].self_p50_ms == pytest.approx(20.0)  # 100 - union(10..60, 20..90)


def test_negative_durations_count_as_zero(analyze: Analyze) -> None:
    """A sender whose end precedes its start: docs/analysis.md says nothing reported is
    negative (before: flow, step, edge and node percentiles of -100 ms)."""
    kit = TraceKit()
    root = kit.trace(start_ms=0).span("web", "GET /", kind="Server", start_ms=0, duration_ms=-100)
    call = root.child("web", "GET", kind="Client", start_ms=1, duration_ms=-40)
    call.child("api", "GET /", kind="Server", start_ms=2, duration_ms=-15)
    analysis = analyze(kit)
    (flow,) = analysis.flows(HOUR)
    assert (flow.p50_ms, flow.p99_ms) == (0.0, 0.0)
    for step in analysis.flow(flow.id, HOUR).steps:
        assert (step.p50_ms, step.self_p50_ms) == (0.0, 0.0)
    service_map = analysis.service_map(HOUR)
    assert [edge.p50_ms for edge in service_map.edges] == [0.0]
    assert {node.id: node.p95_ms for node in service_map.nodes}["api"] == 0.0
    view = analysis.trace(kit.spans[0].trace_id)
    assert view.duration_ms == 0.0 and all(s.duration_ms == 0.0 for s in view.spans)
