"""A flow's steps: the merged call tree with exact calls, percentiles, self time, offsets,
origin errors and critical-path shares (worked out by hand in the comments)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowscope.analyzer.analysis import Analysis
from flowscope.analyzer.model import Step
from flowscope.store.database import Database
from flowscope.testing.traces import TraceKit

from .conftest import HOUR, Analyze

KAFKA = {"messaging.system": "kafka", "messaging.destination.name": "orders"}


def two_orders() -> TraceKit:
    kit = TraceKit()
    # Trace 1, 100 ms. The orders server fails because its first query does; the query
    # is retried (two SELECT calls, overlapping: together they cover 20..32 ms).
    t1 = kit.trace(start_ms=0)
    root = t1.span(
        "gateway",
        "POST /orders",
        kind="Server",
        start_ms=0,
        duration_ms=100,
        attributes={"customer.tier": "gold"},
    )
    call = root.child("gateway", "POST", kind="Client", start_ms=10, duration_ms=60)
    server = call.child(
        "orders", "POST /orders", kind="Server", start_ms=15, duration_ms=50, status="Error"
    )
    server.child(
        "orders",
        "SELECT",
        kind="Client",
        start_ms=20,
        duration_ms=5,
        status="Error",
        attributes={"db.system": "postgresql"},
    )
    server.child(
        "orders",
        "SELECT",
        kind="Client",
        start_ms=22,
        duration_ms=10,
        attributes={"db.system": "postgresql"},
    )
    publish = server.child(
        "orders", "publish", kind="Producer", start_ms=40, duration_ms=2, attributes=KAFKA
    )
    publish.child("billing", "process", kind="Consumer", start_ms=50, duration_ms=30)
    root.child("gateway", "render", kind="Internal", start_ms=75, duration_ms=20)
    # Trace 2, 200 ms, no errors, one query.
    t2 = kit.trace(start_ms=60_000)
    root = t2.span(
        "gateway",
        "POST /orders",
        kind="Server",
        start_ms=0,
        duration_ms=200,
        attributes={"customer.tier": "silver"},
    )
    call = root.child("gateway", "POST", kind="Client", start_ms=10, duration_ms=100)
    server = call.child("orders", "POST /orders", kind="Server", start_ms=20, duration_ms=80)
    server.child(
        "orders",
        "SELECT",
        kind="Client",
        start_ms=30,
        duration_ms=20,
        attributes={"db.system": "postgresql"},
    )
    root.child("gateway", "render", kind="Internal", start_ms=120, duration_ms=60)
    return kit


def steps_by_name(steps: list[Step]) -> dict[str, Step]:
    return {f"{s.service} {s.operation}": s for s in steps}


def test_steps_merge_the_traces_into_one_tree(analyze: Analyze) -> None:
    analysis = analyze(two_orders())
    flow_id = analysis.flows(HOUR)[0].id
    steps = analysis.flow(flow_id, HOUR).steps
    # Depth first, children by their median start offset.
    assert [(s.service, s.operation, s.kind) for s in steps] == [
        ("gateway", "POST /orders", "Server"),
        ("gateway", "POST", "Client"),
        ("orders", "POST /orders", "Server"),
        ("orders", "SELECT", "Client"),
        ("orders", "publish", "Producer"),
        ("billing", "process", "Consumer"),
        ("gateway", "render", "Internal"),
    ]
    by_name = steps_by_name(steps)
    root = by_name["gateway POST /orders"]
    assert root.parent_id is None
    assert by_name["gateway POST"].parent_id == root.id
    assert by_name["gateway render"].parent_id == root.id
    assert by_name["orders SELECT"].parent_id == by_name["orders POST /orders"].id
    assert by_name["billing process"].parent_id == by_name["orders publish"].id
    assert len({s.id for s in steps}) == 7


def test_step_statistics(analyze: Analyze) -> None:
    analysis = analyze(two_orders())
    steps = steps_by_name(analysis.flow(analysis.flows(HOUR)[0].id, HOUR).steps)
    root = steps["gateway POST /orders"]
    assert (root.calls, root.traces, root.calls_per_trace, root.errors) == (2, 2, 1.0, 0)
    assert (root.p50_ms, root.p95_ms, root.p99_ms) == (
        150.0,
        pytest.approx(195.0),
        pytest.approx(199.0),
    )
    # Self time: 100 - (60 + 20) = 20 and 200 - (100 + 60) = 40.
    assert (root.self_p50_ms, root.start_offset_p50_ms) == (30.0, 0.0)

    server = steps["orders POST /orders"]
    assert (server.errors, server.error_rate, server.origin_errors) == (1, 0.5, 0)
    # Self: 50 - (union of 20..25, 22..32 = 12, and 40..42 = 2) = 36; 80 - 20 = 60.
    assert (server.p50_ms, server.self_p50_ms, server.start_offset_p50_ms) == (65.0, 48.0, 17.5)

    select = steps["orders SELECT"]
    # A retry: three calls in two traces.
    assert (select.calls, select.traces, select.calls_per_trace) == (3, 2, 1.5)
    assert (select.errors, select.origin_errors) == (1, 1)
    assert (select.p50_ms, select.p95_ms, select.p99_ms) == (
        10.0,
        pytest.approx(19.0),
        pytest.approx(19.8),
    )
    assert (select.self_p50_ms, select.start_offset_p50_ms) == (10.0, 22.0)

    publish = steps["orders publish"]
    # The consumer runs after the producer ends: clipped away from its self time.
    assert (publish.calls, publish.traces, publish.self_p50_ms) == (1, 1, 2.0)
    consumer = steps["billing process"]
    assert (consumer.p50_ms, consumer.start_offset_p50_ms, consumer.critical_path_share) == (
        30.0,
        50.0,
        0.0,
    )
    render = steps["gateway render"]
    assert (render.p50_ms, render.start_offset_p50_ms) == (40.0, 97.5)


def test_a_trace_whose_critical_path_takes_no_time_gives_its_share_to_the_root(
    analyze: Analyze,
) -> None:
    """A 0 ms root added 0 to every step but counted among the traces: the shares
    of a flow with one such trace summed to 0.5 here, not 1 as docs/analysis.md says."""
    kit = TraceKit()
    for i, root_ms in enumerate((100.0, 0.0)):
        root = kit.trace(start_ms=i * 1000).span(
            "gw", "checkout", kind="Server", start_ms=0, duration_ms=root_ms
        )
        root.child("gw", "db query", kind="Client", start_ms=0, duration_ms=40)
    analysis = analyze(kit)
    steps = steps_by_name(analysis.flow(analysis.flows(HOUR)[0].id, HOUR).steps)
    shares = {name: step.critical_path_share for name, step in steps.items()}
    assert shares == pytest.approx({"gw checkout": (0.6 + 1.0) / 2, "gw db query": 0.4 / 2})
    assert sum(shares.values()) == pytest.approx(1.0)


def test_critical_path_shares(analyze: Analyze) -> None:
    # Trace 1 (100 ms): root 5+5+10, render 20, client 5+5, server 23+8+7, publish 2,
    # second SELECT 10 (the first ends after the second starts: off the path).
    # Trace 2 (200 ms): root 20+10+10, render 60, client 10+10, server 50+10, SELECT 20.
    analysis = analyze(two_orders())
    steps = steps_by_name(analysis.flow(analysis.flows(HOUR)[0].id, HOUR).steps)
    shares = {name: step.critical_path_share for name, step in steps.items()}
    assert shares == pytest.approx(
        {
            "gateway POST /orders": (0.20 + 0.20) / 2,
            "gateway render": (0.20 + 0.30) / 2,
            "gateway POST": (0.10 + 0.10) / 2,
            "orders POST /orders": (0.38 + 0.30) / 2,
            "orders publish": (0.02 + 0.0) / 2,
            "orders SELECT": (0.10 + 0.10) / 2,
            "billing process": 0.0,
        }
    )
    assert sum(shares.values()) == pytest.approx(1.0)


def test_steps_by_group(analyze: Analyze) -> None:
    analysis = analyze(two_orders())
    detail = analysis.flow(analysis.flows(HOUR)[0].id, HOUR, by="customer.tier")
    assert detail.flow.traces == 2 and detail.flow.group == {}
    gold = [s for s in detail.steps if s.group == {"customer.tier": "gold"}]
    silver = [s for s in detail.steps if s.group == {"customer.tier": "silver"}]
    assert len(gold) == 7 and len(silver) == 5
    assert len(gold) + len(silver) == len(detail.steps)
    assert steps_by_name(gold)["gateway POST /orders"].p50_ms == 100.0
    assert steps_by_name(silver)["gateway POST /orders"].p50_ms == 200.0
    assert steps_by_name(gold)["orders SELECT"].calls_per_trace == 2.0
    # Shares are over each group's own traces.
    assert sum(s.critical_path_share for s in gold) == pytest.approx(1.0)
    assert steps_by_name(silver)["gateway render"].critical_path_share == pytest.approx(0.3)


def test_critical_path_ties_do_not_depend_on_arrival_order(tmp_path: Path) -> None:
    """Two siblings over the same interval: the path takes the same one, in the flow's
    shares and in the trace view, whatever order the spans were stored in. Before, the
    derivation broke the tie by load order (0.8 / 0.0 one way, 0.0 / 0.8 the other) and
    could disagree with the trace view."""

    def kit(reverse: bool) -> TraceKit:
        built = TraceKit()
        for i in range(3):
            root = built.trace(start_ms=i * 1000, trace_id=f"{i + 1:032x}").span(
                "gw", "GET /t", kind="Server", start_ms=0, duration_ms=100
            )
            for name in ("opX", "opY", "opZ"):
                root.child("gw", name, start_ms=10, duration_ms=80)
        if reverse:
            built.spans.reverse()
        return built

    answers = []
    for reverse in (False, True):
        database = Database(tmp_path / f"{reverse}.duckdb")
        try:
            kit(reverse).write(database)
            analysis = Analysis(database)
            flow = analysis.flows(HOUR)[0]
            shares = {
                s.operation: s.critical_path_share for s in analysis.flow(flow.id, HOUR).steps
            }
            views = [analysis.trace(f"{i + 1:032x}") for i in range(3)]
            on_path = [{s.operation for s in view.spans if s.on_critical_path} for view in views]
            segments = [[seg.operation for seg in view.critical_path] for view in views]
        finally:
            database.close()
        answers.append((shares, on_path, segments))
    assert answers[0] == answers[1]
    shares, on_path, segments = answers[0]
    assert sum(shares[name] for name in ("opX", "opY", "opZ")) == pytest.approx(0.8)
    for spans, names in zip(on_path, segments, strict=True):
        assert len(spans) == 2 and "GET /t" in spans  # one of the three siblings
        assert set(names) == spans  # the view's segments take the same one
    # Each trace's pick is what the shares count: 0.8 of a trace each.
    picks = [next(iter(spans - {"GET /t"})) for spans in on_path]
    for name in ("opX", "opY", "opZ"):
        assert shares[name] == pytest.approx(0.8 * picks.count(name) / 3)


def test_a_message_no_consumer_of_the_trace_takes_is_sent_to_its_queue(
    analyze: Analyze,
) -> None:
    """A PRODUCER step whose consumer is in another trace (joined by a link, as the
    messaging conventions have it) was drawn as a synchronous call to its own service;
    it now names its queue, and the sequence diagram sends the message there."""
    from flowscope.analyzer.diagrams import flow_sequence_mermaid

    kit = TraceKit()
    root = kit.trace(start_ms=0).span("orders", "POST", kind="Server", start_ms=0, duration_ms=50)
    producer = root.child(
        "orders",
        "publish audit",
        kind="Producer",
        start_ms=10,
        duration_ms=2,
        attributes={"messaging.system": "rabbitmq", "messaging.destination.name": "audit"},
    )
    kit.trace(start_ms=100, trace_id="cd" * 16).span(
        "audit", "process", kind="Consumer", start_ms=0, duration_ms=5, links=[producer.link()]
    )
    analysis = analyze(kit)
    flow_id = next(f.id for f in analysis.flows(HOUR) if f.root_service == "orders")
    detail = analysis.flow(flow_id, HOUR)
    publish = steps_by_name(detail.steps)["orders publish audit"]
    assert publish.peer == "rabbitmq/audit"
    diagram = flow_sequence_mermaid(detail)
    assert "p_orders-)p_rabbitmq_audit: publish audit (p95 2.00 ms)" in diagram
    assert "p_orders->>p_orders: publish audit" not in diagram
    # The map keeps its rule: no virtual queue node beside the async edge.
    assert {e.target for e in analysis.service_map(HOUR).edges} == {"audit"}


def test_an_asgi_send_span_reporting_a_5xx_is_not_where_the_failure_starts(
    analyze: Analyze,
) -> None:
    """Python's ASGI instrumentation (FastAPI, Starlette; 0.66b1) marks the span sending
    a 5xx response start as an error: every failure of a FastAPI service started in its
    0.03 ms `http send` span, not in the handler's SERVER span that holds the exception
    event. Attributes as that instrumentation sets them."""
    kit = TraceKit()
    for i, (status, code) in enumerate([("Error", 500), ("Error", 500), ("Unset", 404)]):
        root = kit.trace(start_ms=i * 1000).span(
            "shop", "GET /boom", kind="Server", start_ms=0, duration_ms=5, status=status
        )
        root.child(
            "shop",
            "GET /boom http send",
            start_ms=4,
            duration_ms=0.03,
            status=status,
            attributes={"asgi.event.type": "http.response.start", "http.status_code": code},
        )
        root.child(
            "shop",
            "GET /boom http send",
            start_ms=4.1,
            duration_ms=0.02,
            attributes={"asgi.event.type": "http.response.body"},
        )
    # A failing call under a handler that failed because of it: the start is the call.
    root = kit.trace(start_ms=5000).span(
        "shop", "GET /boom", kind="Server", start_ms=0, duration_ms=5, status="Error"
    )
    root.child("shop", "SELECT", kind="Client", start_ms=1, duration_ms=2, status="Error")
    root.child(
        "shop",
        "GET /boom http send",
        start_ms=4,
        duration_ms=0.03,
        status="Error",
        attributes={"asgi.event.type": "http.response.start", "http.status_code": 500},
    )
    analysis = analyze(kit)
    steps = steps_by_name(analysis.flow(analysis.flows(HOUR)[0].id, HOUR).steps)
    assert (steps["shop GET /boom"].errors, steps["shop GET /boom"].origin_errors) == (3, 2)
    send = steps["shop GET /boom http send"]
    assert (send.calls, send.errors, send.origin_errors) == (7, 3, 0)
    assert (steps["shop SELECT"].errors, steps["shop SELECT"].origin_errors) == (1, 1)


def test_the_root_step_comes_before_an_orphan_that_started_earlier(analyze: Analyze) -> None:
    """Offsets are clamped at 0, so an orphan from a host whose clock runs behind tied
    with the root and was listed (and drawn) first, by its name."""
    from flowscope.analyzer.diagrams import flow_sequence_mermaid

    kit = TraceKit()
    trace = kit.trace()
    root = trace.span("web", "GET /checkout", kind="Server", start_ms=0, duration_ms=100)
    root.child(
        "web",
        "call auth",
        kind="Client",
        start_ms=1,
        duration_ms=39,
        attributes={"peer.service": "auth"},
    )
    trace.span("auth", "check token", kind="Server", start_ms=-3, duration_ms=33, parent="ab" * 8)
    analysis = analyze(kit)
    detail = analysis.flow(analysis.flows(HOUR)[0].id, HOUR)
    names = [(s.service, s.operation, s.parent_id is None) for s in detail.steps]
    assert names == [
        ("web", "GET /checkout", True),
        ("web", "call auth", False),
        ("auth", "check token", True),
    ]
    messages = [
        line.strip() for line in flow_sequence_mermaid(detail).splitlines() if "->>" in line
    ]
    assert messages[0].startswith("client->>p_web: GET /checkout"), messages


def test_a_failure_passed_up_through_servers_starts_where_it_started(analyze: Analyze) -> None:
    """A 409 from the wallet passed up by two services: OpenTelemetry's HTTP rules mark
    each client span Error and leave each server span Unset, and the gateway's client
    span, whose child (the order service's server span) had no error of its own, was a
    second start beside the real one (fault reviewer)."""
    kit = TraceKit()
    root = kit.trace(start_ms=0).span(
        "gateway", "POST /order", kind="Server", start_ms=0, duration_ms=20
    )
    call = root.child("gateway", "POST", kind="Client", start_ms=1, duration_ms=18, status="Error")
    orders = call.child("orders", "POST /order", kind="Server", start_ms=2, duration_ms=16)
    block = orders.child(
        "orders", "POST /block-funds", kind="Client", start_ms=3, duration_ms=10, status="Error"
    )
    block.child("wallet", "POST /block-funds", kind="Server", start_ms=4, duration_ms=8)
    # A server span that failed itself is a start of its own, as before.
    other = kit.trace(start_ms=1000).span(
        "gateway", "POST /order", kind="Server", start_ms=0, duration_ms=20
    )
    failing = other.child(
        "gateway", "POST", kind="Client", start_ms=1, duration_ms=18, status="Error"
    )
    failing.child(
        "orders", "POST /order", kind="Server", start_ms=2, duration_ms=16, status="Error"
    )
    analysis = analyze(kit)
    steps = steps_by_name(analysis.flow(analysis.flows(HOUR)[0].id, HOUR).steps)
    assert (steps["gateway POST"].errors, steps["gateway POST"].origin_errors) == (2, 0)
    assert steps["orders POST /order"].origin_errors == 1
    assert steps["orders POST /block-funds"].origin_errors == 1


def test_a_failure_passes_up_through_handlers_and_sidecars_not_past_a_timeout(
    analyze: Analyze,
) -> None:
    """The first rule went one level: a sidecar's server span above the app's still made
    the caller a second start. An INTERNAL span left Unset above a failing call handled
    that failure (the SDKs mark one Error when an exception passes through it): a
    failure below it is not passed up, so a span failing on its own above it stays a
    start. A caller that stopped waiting (its span ended before the server's) failed on
    its own: it stays a start (diff reviewers)."""
    kit = TraceKit()
    shapes = {"handler": ("Internal",), "sidecar": ("Server",), "timeout": ()}
    for n, (name, between) in enumerate(shapes.items()):
        root = kit.trace(start_ms=1000 * n).span(
            name, "GET /", kind="Server", start_ms=0, duration_ms=50
        )
        timed_out = name == "timeout"
        call = root.child(
            name,
            "GET",
            kind="Client",
            start_ms=1,
            duration_ms=5 if timed_out else 40,
            status="Error",
        )
        span = call.child("app", "GET /x", kind="Server", start_ms=2, duration_ms=30)
        for kind in between:
            span = span.child("app", f"{kind} step", kind=kind, start_ms=3, duration_ms=25)
        span.child("app", "SELECT", kind="Client", start_ms=4, duration_ms=5, status="Error")
    analysis = analyze(kit)
    origins = {}
    for flow in analysis.flows(HOUR):
        for step in analysis.flow(flow.id, HOUR).steps:
            origins[(flow.root_service, step.service, step.operation)] = step.origin_errors
    assert origins[("handler", "handler", "GET")] == 1  # handled below: its own
    assert origins[("sidecar", "sidecar", "GET")] == 0
    assert origins[("timeout", "timeout", "GET")] == 1  # it stopped waiting
    assert all(origins[(name, "app", "SELECT")] == 1 for name in shapes)
