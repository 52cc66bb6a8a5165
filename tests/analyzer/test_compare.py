"""Compare: two traces, a trace against its flow's baseline, two windows, two versions."""

from __future__ import annotations

import pytest

from flowscope.analyzer.errors import AnalysisError, UnknownFlow, UnknownTrace
from flowscope.analyzer.model import Comparison, Window
from flowscope.analyzer.window import window_label
from flowscope.testing.traces import TraceKit, at_ms

from .conftest import HOUR, Analyze
from .test_steps import two_orders

ROOT = "gateway POST /orders"
CLIENT = f"{ROOT} > gateway POST"
RENDER = f"{ROOT} > gateway render"
SERVER = f"{CLIENT} > orders POST /orders"
SELECT = f"{SERVER} > orders SELECT"
PUBLISH = f"{SERVER} > orders publish"
CONSUME = f"{PUBLISH} > billing process"


def table(comparison: Comparison) -> list[tuple[str, float | None, float | None, float | None]]:
    return [(d.step, d.left_ms, d.right_ms, d.delta_ms) for d in comparison.deltas]


def trace_ids(kit: TraceKit) -> list[str]:
    return sorted({s.trace_id for s in kit.spans})


def test_two_traces_biggest_change_first(analyze: Analyze) -> None:
    kit = two_orders()
    first, second = trace_ids(kit)
    comparison = analyze(kit).compare_traces(first, second)
    assert (comparison.mode, comparison.left, comparison.right) == ("traces", first, second)
    # A step's value in a trace: the median of its calls (7.5 for the retried SELECT).
    assert table(comparison) == [
        (ROOT, 100.0, 200.0, 100.0),
        (CLIENT, 60.0, 100.0, 40.0),
        (RENDER, 20.0, 60.0, 40.0),
        (SERVER, 50.0, 80.0, 30.0),
        (CONSUME, 30.0, None, None),
        (SELECT, 7.5, 20.0, 12.5),
        (PUBLISH, 2.0, None, None),
    ]
    select = next(d for d in comparison.deltas if d.step == SELECT)
    assert (select.left_calls, select.right_calls) == (2, 1)
    assert (select.left_error_rate, select.right_error_rate, select.error_rate_delta) == (
        0.5,
        0.0,
        -0.5,
    )


def test_a_trace_against_its_flow_baseline(analyze: Analyze) -> None:
    kit = two_orders()
    analysis = analyze(kit)
    first = trace_ids(kit)[0]
    comparison = analysis.compare_baseline(first, HOUR)
    flow_id = analysis.flows(HOUR)[0].id
    assert comparison.left == f"{flow_id} P50 {window_label(HOUR)}"
    assert (comparison.mode, comparison.right) == ("baseline", first)
    assert table(comparison) == [
        (ROOT, 150.0, 100.0, -50.0),
        (CLIENT, 80.0, 60.0, -20.0),
        (RENDER, 40.0, 20.0, -20.0),
        (SERVER, 65.0, 50.0, -15.0),
        (SELECT, 10.0, 7.5, -2.5),
        (PUBLISH, 2.0, 2.0, 0.0),
        (CONSUME, 30.0, 30.0, 0.0),
    ]


def test_a_flow_in_two_windows(analyze: Analyze) -> None:
    analysis = analyze(two_orders())
    flow_id = analysis.flows(HOUR)[0].id
    first_minute = Window(at_ms(0), at_ms(60_000))
    second_minute = Window(at_ms(60_000), at_ms(120_000))
    comparison = analysis.compare_windows(flow_id, first_minute, second_minute)
    assert (comparison.left, comparison.right) == (
        window_label(first_minute),
        window_label(second_minute),
    )
    rows = {d.step: d for d in comparison.deltas}
    # P95 per step; the retried SELECT: 5 + (10 - 5) * 0.95.
    assert rows[SELECT].left_ms == pytest.approx(9.75)
    assert rows[SELECT].delta_ms == pytest.approx(20 - 9.75)
    assert (rows[SERVER].left_error_rate, rows[SERVER].right_error_rate) == (1.0, 0.0)
    assert rows[SERVER].error_rate_delta == -1.0
    assert comparison.deltas[0].step == ROOT


def test_a_flow_in_two_versions(analyze: Analyze) -> None:
    kit = TraceKit()
    for i, (version, server_ms) in enumerate(
        [("1.0", 20.0), ("1.0", 30.0), ("2.0", 60.0), ("2.0", 80.0)]
    ):
        root = kit.trace(start_ms=i * 1000).span(
            "gateway", "GET", kind="Server", start_ms=0, duration_ms=100
        )
        root.child(
            "orders",
            "GET",
            kind="Server",
            start_ms=5,
            duration_ms=server_ms,
            resource={"service.version": version},
            status="Error" if i == 3 else "Unset",
        )
    analysis = analyze(kit)
    comparison = analysis.compare_versions(analysis.flows(HOUR)[0].id, HOUR, "1.0", "2.0")
    assert (comparison.mode, comparison.left, comparison.right) == (
        "versions",
        "service.version=1.0",
        "service.version=2.0",
    )
    orders = next(d for d in comparison.deltas if d.service == "orders")
    assert orders.left_ms == pytest.approx(29.5) and orders.right_ms == pytest.approx(79.0)
    assert (orders.left_calls, orders.right_calls, orders.error_rate_delta) == (2, 2, 0.5)
    assert comparison.deltas[0] is orders
    flow_id = analysis.flows(HOUR)[0].id
    with pytest.raises(AnalysisError, match=r"ran through service\.version=9\.9 in "):
        analysis.compare_versions(flow_id, HOUR, "1.0", "9.9")
    with pytest.raises(AnalysisError, match=r"service\.version=0\.1 in "):
        analysis.compare_versions(flow_id, HOUR, "0.1", "2.0")


def test_one_services_versions_when_every_service_has_its_own(analyze: Analyze) -> None:
    """Services deployed on their own keep their versions: with only inventory moved to
    2.0, "1.0" matched every trace (the gateway's too) and a step new in 2.0 showed on
    both sides, unchanged. SERVICE=VERSION is that service's version alone."""
    kit = TraceKit(resources={"gateway": {"service.version": "1.0"}})
    for i, version in enumerate(["1.0", "1.0", "2.0", "2.0"]):
        root = kit.trace(start_ms=i * 1000).span(
            "gateway", "GET", kind="Server", start_ms=0, duration_ms=100
        )
        served = root.child(
            "inventory",
            "GET",
            kind="Server",
            start_ms=5,
            duration_ms=10 * (i + 1),
            resource={"service.version": version},
        )
        if version == "2.0":
            served.child(
                "inventory",
                "SELECT",
                kind="Client",
                start_ms=6,
                duration_ms=1,
                resource={"service.version": version},
            )
    analysis = analyze(kit)
    flow_id = analysis.flows(HOUR)[0].id
    loose = analysis.compare_versions(flow_id, HOUR, "1.0", "2.0")
    select = next(d for d in loose.deltas if d.operation == "SELECT")
    assert (select.left_calls, select.right_calls) == (2, 2)  # every trace had a 1.0
    exact = analysis.compare_versions(flow_id, HOUR, "inventory=1.0", "inventory=2.0")
    assert (exact.left, exact.right) == (
        "inventory's service.version=1.0",
        "inventory's service.version=2.0",
    )
    select = next(d for d in exact.deltas if d.operation == "SELECT")
    assert (select.left_calls, select.right_calls) == (None, 2)  # new in 2.0
    served = next(d for d in exact.deltas if d.service == "inventory" and d.operation == "GET")
    assert (served.left_ms, served.right_ms) == (pytest.approx(19.5), pytest.approx(39.5))
    with pytest.raises(AnalysisError, match=r"ran through gateway's service\.version=2\.0 in "):
        analysis.compare_versions(flow_id, HOUR, "inventory=1.0", "gateway=2.0")


def test_compare_errors(analyze: Analyze) -> None:
    kit = two_orders()
    kit.trace(start_ms=5).span(
        "x", "op", kind="Server", start_ms=0, duration_ms=1, parent="00000000deadbeef"
    )
    analysis = analyze(kit)
    with pytest.raises(UnknownTrace):
        analysis.compare_traces(trace_ids(kit)[0], "0" * 31 + "9")
    with pytest.raises(UnknownFlow):
        analysis.compare_windows("nope", HOUR, HOUR)
    with pytest.raises(AnalysisError, match="has no root span"):
        analysis.compare_baseline(trace_ids(kit)[2], HOUR)


def test_deep_paths_are_labelled_by_root_and_last_steps(analyze: Analyze) -> None:
    """Whole paths of a deep trace took O(depth^2) memory (453 MB of JSON at 10,000)."""
    kit = TraceKit()
    span = kit.trace(start_ms=0).span("svc", "level 0", kind="Server", start_ms=0, duration_ms=500)
    for level in range(1, 200):
        span = span.child("svc", f"level {level}", kind="Internal", start_ms=1, duration_ms=1)
    analysis = analyze(kit)
    trace_id = kit.spans[0].trace_id
    for comparison in (
        analysis.compare_traces(trace_id, trace_id),
        analysis.compare_baseline(trace_id, HOUR),
    ):
        labels = {d.operation: d.step for d in comparison.deltas}
        assert labels["level 0"] == "svc level 0"
        assert labels["level 11"] == " > ".join(f"svc level {n}" for n in range(12))
        deep = [f"svc level {n}" for n in range(190, 200)]
        assert labels["level 199"] == " > ".join(["svc level 0", "…", *deep])


def test_steps_that_share_a_label_keep_their_ids_and_parents(analyze: Analyze) -> None:
    """A second parentless span named like the root, and a name holding " > ", made
    rows that could not be told apart: no step id, and the step a step hangs under was
    cut from its path label at the wrong " > "."""
    kit = TraceKit()
    left = kit.trace(start_ms=0)
    left.span("y", "GET /y", kind="Server", start_ms=0, duration_ms=30)
    right = kit.trace(start_ms=1000)
    right.span("y", "GET /y", kind="Server", start_ms=0, duration_ms=100)
    right.span("y", "GET /y", kind="Server", start_ms=5, duration_ms=100, parent="")
    chain = kit.trace(start_ms=2000)
    job = chain.span("wf", "job", kind="Server", start_ms=0, duration_ms=50)
    job.child("wf", "state A > B", kind="Internal", start_ms=1, duration_ms=20).child(
        "wf", "persist", kind="Internal", start_ms=2, duration_ms=5
    )
    analysis = analyze(kit)
    first, second, third = (kit.spans[0].trace_id, kit.spans[1].trace_id, kit.spans[3].trace_id)
    comparison = analysis.compare_traces(first, second)
    assert [d.step for d in comparison.deltas] == ["y GET /y", "y GET /y"]
    assert len({d.step_id for d in comparison.deltas}) == 2
    view = analysis.trace(second)
    assert {d.step_id for d in comparison.deltas} == {s.step_id for s in view.spans}
    chained = analysis.compare_traces(third, third)
    under = {d.operation: d.under for d in chained.deltas}
    assert under == {"job": "", "state A > B": "wf job", "persist": "wf state A > B"}


def test_deltas_are_whole_nanoseconds(analyze: Analyze) -> None:
    """176.05 − 92.35 printed as 83.70000000000002 in JSON."""
    kit = TraceKit()
    for i, duration in enumerate((92.35, 176.05)):
        kit.trace(start_ms=i * 1000).span(
            "a", "op", kind="Server", start_ms=0, duration_ms=duration
        )
    first, second = trace_ids(kit)
    (delta,) = analyze(kit).compare_traces(first, second).deltas
    assert 176.05 - 92.35 != 83.7 and delta.delta_ms == 83.7


def test_a_version_holding_an_equals_sign_is_given_after_a_leading_one(
    analyze: Analyze,
) -> None:
    kit = TraceKit()
    for i, version in enumerate(["rev=a1", "rev=a1", "rev=b2"]):
        kit.trace(start_ms=i * 1000).span(
            "api",
            "GET",
            kind="Server",
            start_ms=0,
            duration_ms=10 * (i + 1),
            resource={"service.version": version},
        )
    analysis = analyze(kit)
    flow_id = analysis.flows(HOUR)[0].id
    compared = analysis.compare_versions(flow_id, HOUR, "=rev=a1", "api=rev=b2")
    assert (compared.left, compared.right) == (
        "service.version=rev=a1",
        "api's service.version=rev=b2",
    )
    root = compared.deltas[0]
    assert (root.left_calls, root.right_calls) == (2, 1)
