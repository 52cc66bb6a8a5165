"""The trace list: slowest first, with its filters."""

from __future__ import annotations

from datetime import datetime

from flowscope.analyzer.model import TraceSummary
from flowscope.testing.traces import TraceKit

from .conftest import HOUR, Analyze
from .test_flows import order_kit


def durations(traces: list[TraceSummary]) -> list[float]:
    return [t.duration_ms for t in traces]


def test_slowest_first_with_summary_fields(analyze: Analyze) -> None:
    traces = analyze(order_kit()).traces(HOUR)
    assert durations(traces) == [400.0, 300.0, 200.0, 100.0, 50.0, 50.0]
    slowest = traces[0]
    assert slowest == TraceSummary(
        trace_id="00000000000000000000000000000004",
        flow="gateway-post-orders-a164bc",
        root_service="gateway",
        root_operation="POST /orders",
        start="2026-01-01T00:03:00.000000000Z",
        duration_ms=400.0,
        spans=2,
        services=2,
        errors=1,
        status="Error",
    )
    # Equal durations: by trace id.
    assert [t.trace_id[-1] for t in traces[4:]] == ["5", "6"]


def test_filters(analyze: Analyze) -> None:
    analysis = analyze(order_kit())
    assert durations(analysis.traces(HOUR, service="orders")) == [400.0, 300.0, 200.0, 100.0]
    assert durations(analysis.traces(HOUR, operation="GET /portfolio/{id}")) == [50.0, 50.0]
    assert analysis.traces(HOUR, service="orders", operation="GET /portfolio/{id}") == []
    assert durations(analysis.traces(HOUR, min_duration_ms=250)) == [400.0, 300.0]
    # finite, with nanoseconds that are not: an OverflowError and a 500 before
    assert analysis.traces(HOUR, min_duration_ms=1e308) == []
    assert durations(analysis.traces(HOUR, error=True)) == [400.0, 300.0]
    assert durations(analysis.traces(HOUR, error=False)) == [200.0, 100.0, 50.0, 50.0]
    portfolio = analysis.traces(HOUR, operation="GET /portfolio/{id}")[0].flow
    assert durations(analysis.traces(HOUR, flow=portfolio)) == [50.0, 50.0]
    assert durations(analysis.traces(HOUR, limit=2)) == [400.0, 300.0]
    assert durations(analysis.traces(HOUR, service="orders", error=False, limit=1)) == [200.0]


def test_attributes_all_on_one_span_and_a_longest_duration(analyze: Analyze) -> None:
    """As Jaeger's tag search and Tempo's { span.a = x && span.b = y }: a span has every
    attribute, its own or its resource's."""
    kit = TraceKit()
    for n, (code, customer) in enumerate([("500", "42"), ("200", "42"), ("500", "7")]):
        root = kit.trace(start_ms=n * 1_000).span(
            "web",
            "GET /",
            kind="Server",
            start_ms=0,
            duration_ms=10 + n,
            attributes={"http.status_code": code},
            resource={"deployment.environment": "prod" if n else "staging"},
        )
        root.child(
            "db",
            "SELECT",
            kind="Client",
            start_ms=1,
            duration_ms=2,
            attributes={"customer.id": customer},
        )
    analysis = analyze(kit)
    assert durations(analysis.traces(HOUR, attributes=[("http.status_code", "500")])) == [12, 10]
    assert durations(analysis.traces(HOUR, attributes=[("customer.id", "42")])) == [11, 10]
    # Two attributes of two spans of one trace: no one span has both.
    both = [("http.status_code", "500"), ("customer.id", "42")]
    assert analysis.traces(HOUR, attributes=both) == []
    prod_errors = [("http.status_code", "500"), ("deployment.environment", "prod")]
    assert durations(analysis.traces(HOUR, attributes=prod_errors)) == [12]  # resource's
    # With a service, that service's span has them.
    assert analysis.traces(HOUR, service="db", attributes=[("http.status_code", "500")]) == []
    assert durations(analysis.traces(HOUR, max_duration_ms=11)) == [11, 10]
    assert durations(analysis.traces(HOUR, min_duration_ms=11, max_duration_ms=11)) == [11]


def test_orders_as_jaegers_search_offers_them(analyze: Analyze) -> None:
    analysis = analyze(order_kit())
    slowest = analysis.traces(HOUR)
    assert analysis.traces(HOUR, sort="slowest") == slowest
    assert durations(analysis.traces(HOUR, sort="fastest")) == [50, 50, 100, 200, 300, 400]
    recent = analysis.traces(HOUR, sort="recent")
    starts = [datetime.fromisoformat(t.start) for t in recent]
    assert len(recent) == 6 and starts == sorted(starts, reverse=True)
    spans = analysis.traces(HOUR, sort="spans")
    assert [t.spans for t in spans] == sorted((t.spans for t in slowest), reverse=True)
    assert durations(analysis.traces(HOUR, sort="recent", limit=1)) == durations(recent[:1])


def test_a_search_takes_a_bounded_number_of_attributes(analyze: Analyze) -> None:
    """Each pair is looked up in every span of the window: 1,500 in one request took
    86 s (network review). Repeats count once."""
    import pytest

    from flowscope.analyzer.analysis import MAX_ATTRIBUTES
    from flowscope.analyzer.errors import AnalysisError

    analysis = analyze(order_kit())
    same = [("http.route", "/order")] * 100
    assert analysis.traces(HOUR, attributes=same) == analysis.traces(HOUR, attributes=same[:1])
    many = [(f"k{i}", "v") for i in range(MAX_ATTRIBUTES + 1)]
    with pytest.raises(AnalysisError, match=f"at most {MAX_ATTRIBUTES} attributes"):
        analysis.traces(HOUR, attributes=many)
