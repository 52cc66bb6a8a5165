"""The trace view: spans as a tree, self times, Jaeger's critical path, step baselines."""

from __future__ import annotations

import pytest

from flowscope.analyzer import trace_view
from flowscope.analyzer.errors import UnknownTrace
from flowscope.analyzer.model import TraceView
from flowscope.analyzer.trace_view import MAX_ATTRIBUTES, MAX_EVENTS, allowances
from flowscope.testing.traces import EventSpec, LinkSpec, TraceKit

from .conftest import HOUR, Analyze
from .test_steps import two_orders


def segments(view: TraceView) -> list[tuple[str, float, float]]:
    return [
        (f"{c.service} {c.operation}", c.start_offset_ms, c.duration_ms) for c in view.critical_path
    ]


def test_first_trace_as_a_tree(analyze: Analyze) -> None:
    kit = two_orders()
    trace_id = kit.spans[0].trace_id
    view = analyze(kit).trace(trace_id)
    assert (view.trace_id, view.duration_ms) == (trace_id, 100.0)
    assert view.flow == "gateway-post-orders-a164bc"
    rows = [
        (s.service, s.operation, s.depth, s.start_offset_ms, s.duration_ms, s.self_ms)
        for s in view.spans
    ]
    assert rows == [
        ("gateway", "POST /orders", 0, 0.0, 100.0, 20.0),
        ("gateway", "POST", 1, 10.0, 60.0, 10.0),
        ("orders", "POST /orders", 2, 15.0, 50.0, 36.0),
        ("orders", "SELECT", 3, 20.0, 5.0, 5.0),
        ("orders", "SELECT", 3, 22.0, 10.0, 10.0),
        ("orders", "publish", 3, 40.0, 2.0, 2.0),
        ("billing", "process", 4, 50.0, 30.0, 30.0),
        ("gateway", "render", 1, 75.0, 20.0, 20.0),
    ]
    by_id = {s.span_id: s for s in view.spans}
    root = view.spans[0]
    assert root.parent_span_id == "" and root.children == [
        view.spans[1].span_id,
        view.spans[7].span_id,
    ]
    assert by_id[root.children[0]].children == [view.spans[2].span_id]
    assert view.spans[2].status == "Error" and view.spans[3].status == "Error"
    assert view.spans[3].attributes == {"db.system": "postgresql"}
    assert view.spans[0].start == "2026-01-01T00:00:00.000000000Z"
    assert [s.on_critical_path for s in view.spans] == [
        True,
        True,
        True,
        False,
        True,
        True,
        False,
        True,
    ]
    assert not any(s.orphan for s in view.spans)


def test_critical_path_follows_jaegers_rules(analyze: Analyze) -> None:
    kit = two_orders()
    view = analyze(kit).trace(kit.spans[0].trace_id)
    assert segments(view) == [
        ("gateway POST /orders", 0.0, 10.0),
        ("gateway POST", 10.0, 5.0),
        ("orders POST /orders", 15.0, 7.0),
        ("orders SELECT", 22.0, 10.0),
        ("orders POST /orders", 32.0, 8.0),
        ("orders publish", 40.0, 2.0),
        ("orders POST /orders", 42.0, 23.0),
        ("gateway POST", 65.0, 5.0),
        ("gateway POST /orders", 70.0, 5.0),
        ("gateway render", 75.0, 20.0),
        ("gateway POST /orders", 95.0, 5.0),
    ]
    assert sum(c.duration_ms for c in view.critical_path) == pytest.approx(view.duration_ms)


def test_step_p50_next_to_each_span_with_a_baseline(analyze: Analyze) -> None:
    kit = two_orders()
    analysis = analyze(kit)
    steps = {s.id: s for s in analysis.flow(analysis.flows(HOUR)[0].id, HOUR).steps}
    view = analysis.trace(kit.spans[0].trace_id, HOUR)
    for span in view.spans:
        assert span.step_id in steps
        assert span.step_p50_ms == steps[span.step_id].p50_ms
    assert [s.step_p50_ms for s in view.spans][:3] == [150.0, 80.0, 65.0]
    fast = analysis.trace(kit.spans[0].trace_id)
    assert all(s.step_p50_ms is None for s in fast.spans)
    assert [s.step_id for s in fast.spans] == [s.step_id for s in view.spans]


def test_unknown_trace(analyze: Analyze) -> None:
    analysis = analyze(two_orders())
    # A short id is padded as import pads Zipkin's and Jaeger's: the message says so.
    with pytest.raises(UnknownTrace, match=f"no trace '{'f00d':0>32}'"):
        analysis.trace("f00d")


def test_trace_ids_are_case_insensitive(analyze: Analyze) -> None:
    kit = TraceKit()
    kit.trace(trace_id="ABCDEF0123456789abcdef0123456789".lower()).span(
        "a", "op", kind="Server", start_ms=0, duration_ms=5
    )
    view = analyze(kit).trace("ABCDEF0123456789ABCDEF0123456789")
    assert view.trace_id == "abcdef0123456789abcdef0123456789"


def test_spans_show_their_events_links_and_resource(analyze: Analyze) -> None:
    """A Jaeger user opens a trace for its logs, exceptions and references; the view
    had none of them."""
    kit = TraceKit(resources={"orders": {"host.name": "box-1", "service.version": "2.0"}})
    producer = kit.trace(trace_id="a" * 32).span(
        "gateway", "publish", kind="Producer", start_ms=0, duration_ms=1
    )
    trace = kit.trace(start_ms=5, trace_id="b" * 32)
    root = trace.span(
        "orders",
        "process",
        kind="Consumer",
        start_ms=0,
        duration_ms=10,
        links=[producer.link(**{"messaging.batch": True})],
    )
    root.child(
        "orders",
        "charge",
        start_ms=2,
        duration_ms=5,
        status="Error",
        events=[
            EventSpec(4.000001, "exception", {"exception.type": "Declined", "n": 2}),
            EventSpec(1, "retry"),
        ],
    )
    view = analyze(kit).trace("b" * 32)
    consumer, charge = view.spans
    assert consumer.resource == {
        "host.name": "box-1",
        "service.name": "orders",
        "service.version": "2.0",
    }
    assert [(link.trace_id, link.span_id, link.attributes) for link in consumer.links] == [
        ("a" * 32, producer.span_id, {"messaging.batch": "true"})
    ]
    assert consumer.events == [] and charge.links == []
    assert [(e.name, e.offset_ms, e.attributes) for e in charge.events] == [
        ("retry", 1.0, {}),
        ("exception", 4.000001, {"exception.type": "Declined", "n": "2"}),
    ]
    assert charge.events[1].start == "2026-01-01T00:00:00.011000001Z"


def test_comparisons_do_not_read_the_spans_details(
    analyze: Analyze, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Comparing a trace of 152k events took 5 s (0.7 s before views had events):
    its events were read and built though nothing showed them."""
    kit = two_orders()
    trace_id = kit.spans[0].trace_id
    analysis = analyze(kit)
    fetched: list[str] = []
    fetch = analysis.database.fetch

    def recorded(name: str, *args: object, **kwargs: object) -> object:
        fetched.append(name)
        return fetch(name, *args, **kwargs)

    monkeypatch.setattr(analysis.database, "fetch", recorded)
    analysis.compare_traces(trace_id, trace_id)
    analysis.compare_baseline(trace_id, HOUR)
    assert "trace_spans" in fetched and "trace_span_details" not in fetched
    analysis.trace(trace_id)
    assert fetched.count("trace_span_details") == 1


def test_a_view_holds_at_most_max_events_of_a_trace(analyze: Analyze) -> None:
    """A batch job logging each item: 152k events made a 33 MB answer. Spans with few
    events keep them all; the chatty one keeps its first as sent and says how many
    it left out."""
    kit = TraceKit()
    root = kit.trace(trace_id="e" * 32).span(
        "jobs",
        "nightly",
        kind="Server",
        start_ms=0,
        duration_ms=100,
        events=[EventSpec(i, "phase") for i in range(3)],
    )
    chatty = MAX_EVENTS + 2_000
    root.child(
        "jobs",
        "import",
        start_ms=1,
        duration_ms=90,
        events=[EventSpec(i / 1000, "item", {"n": i}) for i in range(chatty)],
    )
    root.child("jobs", "report", start_ms=95, duration_ms=1, events=[EventSpec(0, "sent")] * 2)
    view = analyze(kit).trace("e" * 32)
    kept = {s.operation: (len(s.events), s.events_omitted) for s in view.spans}
    assert kept == {
        "nightly": (3, 0),
        "import": (MAX_EVENTS - 5, chatty - (MAX_EVENTS - 5)),
        "report": (2, 0),
    }
    item = next(s for s in view.spans if s.operation == "import")
    assert [e.attributes["n"] for e in item.events[:2]] == ["0", "1"]
    assert item.events[-1].attributes["n"] == str(MAX_EVENTS - 6)


def test_a_view_holds_at_most_max_attributes_of_a_trace(analyze: Analyze) -> None:
    """3 spans of 900,000 attributes each made a 50.6 MB answer in 33.6 s. Spans with
    few keep them all; the big ones share the rest, their first by key."""
    kit = TraceKit()
    root = kit.trace(trace_id="a" * 32).span(
        "jobs", "load", kind="Server", start_ms=0, duration_ms=10, attributes={"mode": "full"}
    )
    big = {f"k{i:06d}": i for i in range(MAX_ATTRIBUTES // 2 + 10)}
    root.child("jobs", "first", start_ms=1, duration_ms=2, attributes=big)
    root.child("jobs", "second", start_ms=4, duration_ms=2, attributes=big)
    view = analyze(kit).trace("a" * 32)
    kept = {s.operation: (len(s.attributes), s.attributes_omitted) for s in view.spans}
    share = (MAX_ATTRIBUTES - 1) // 2
    assert kept == {
        "load": (1, 0),
        "first": (share + 1, len(big) - share - 1),  # the earlier one more
        "second": (share, len(big) - share),
    }
    second = next(s for s in view.spans if s.operation == "second")
    assert list(second.attributes)[:2] == ["k000000", "k000001"]
    assert list(second.attributes)[-1] == f"k{share - 1:06d}"


def test_links_and_nested_attributes_are_capped_too(
    analyze: Analyze, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trace_view, "MAX_LINKS", 3)
    monkeypatch.setattr(trace_view, "MAX_NESTED_ATTRIBUTES", 2)
    kit = TraceKit(resources={"batch": {"host.name": "h1", "zone": "z1"}})
    root = kit.trace(trace_id="b" * 32).span(
        "batch",
        "consume",
        kind="Consumer",
        start_ms=0,
        duration_ms=10,
        links=[LinkSpec("c" * 32, f"{i + 1:016x}", {"a": 1, "b": 2, "c": 3}) for i in range(5)],
        events=[EventSpec(1, "done", {"x": 1, "y": 2, "z": 3, "w": 4})],
    )
    root.child("batch", "commit", start_ms=2, duration_ms=1, links=[LinkSpec("d" * 32, "e" * 16)])
    analysis = analyze(kit)
    view = analysis.trace("b" * 32)
    consume, commit = view.spans
    assert ([lk.span_id for lk in consume.links], consume.links_omitted) == (
        [f"{i + 1:016x}" for i in range(2)],
        3,
    )
    assert (len(commit.links), commit.links_omitted) == (1, 0)
    assert [(lk.attributes, lk.attributes_omitted) for lk in consume.links] == [
        ({"a": "1", "b": "2"}, 1)
    ] * 2
    (event,) = consume.events
    assert (event.attributes, event.attributes_omitted) == ({"w": "4", "x": "1"}, 2)
    # service.name, host.name, zone: the first two by key
    assert (consume.resource, consume.resource_omitted) == (
        {"host.name": "h1", "service.name": "batch"},
        1,
    )


def test_spans_past_the_views_cost_keep_their_tree_and_say_what_they_leave_out(
    analyze: Analyze, monkeypatch: pytest.MonkeyPatch
) -> None:
    """8,000 spans sharing a resource of 1,000 attributes (one 526 KB request) made a
    100 MB answer in 48 s: details now stop, in start order, at MAX_DETAIL_COST."""
    kit = TraceKit(resources={"svc": {"zone": "z1"}})
    root = kit.trace(trace_id="c" * 32).span(
        "svc", "root", kind="Server", start_ms=0, duration_ms=10, attributes={"a": "xx"}
    )
    for n in (1, 2):
        root.child(
            "svc",
            f"child-{n}",
            start_ms=n,
            duration_ms=1,
            attributes={"a": "xx"},
            events=[EventSpec(0, "e")],
            links=[LinkSpec("d" * 32, "e" * 16)],
        )
    analysis = analyze(kit)
    # Each span: "a" = "xx" (1 + 2 + 16), a resource of service.name = svc and zone = z1
    # (12 + 3 + 16 and 4 + 2 + 16); the children an event (1 + 16) and a link (32 + 16 + 16).
    per_root = 19 + 31 + 22
    monkeypatch.setattr(trace_view, "MAX_DETAIL_COST", per_root + 19 + 31 + 22 + 17 + 64)
    view = analysis.trace("c" * 32)
    shown = {
        s.operation: (
            len(s.attributes),
            s.attributes_omitted,
            len(s.resource),
            s.resource_omitted,
            len(s.events),
            s.events_omitted,
            len(s.links),
            s.links_omitted,
        )
        for s in view.spans
    }
    assert shown == {
        "root": (1, 0, 2, 0, 0, 0, 0, 0),
        "child-1": (1, 0, 2, 0, 1, 0, 1, 0),
        "child-2": (0, 1, 0, 2, 0, 1, 0, 1),  # started after the budget was spent
    }
    assert [s.operation for s in view.spans] == ["root", "child-1", "child-2"]  # the tree


@pytest.mark.parametrize(
    ("counts", "budget", "allowed"),
    [
        ([], 10, []),
        ([3, 4], 10, [3, 4]),  # all fit: every span keeps all of its own
        ([1, 100], 10, [1, 9]),
        ([5, 5, 5], 10, [4, 3, 3]),  # what does not divide: the earlier ones one more
        ([0, 50, 50], 10, [0, 5, 5]),
        ([2, 3, 40, 40], 20, [2, 3, 8, 7]),
        ([1] * 12, 10, [1] * 10 + [0, 0]),  # more spans than the budget: not none at all
    ],
)
def test_allowances_fill_the_budget(counts: list[int], budget: int, allowed: list[int]) -> None:
    assert allowances(counts, budget) == allowed
    assert sum(allowed) == min(budget, sum(counts))


def test_more_spans_with_an_event_than_the_view_holds(analyze: Analyze) -> None:
    """12,000 spans of one exception each: the view held none of them (its share was
    10,000 // 12,000 = 0), and the text view said nothing of the ones left out."""
    kit = TraceKit()
    root = kit.trace(trace_id="d" * 32).span(
        "jobs", "batch", kind="Server", start_ms=0, duration_ms=50
    )
    spans = MAX_EVENTS + 2_000
    for i in range(spans - 1):
        root.child(
            "jobs", "item", start_ms=i / 1000, duration_ms=0.001, events=[EventSpec(0, "exception")]
        )
    view = analyze(kit).trace("d" * 32)
    assert sum(len(s.events) for s in view.spans) == MAX_EVENTS
    assert sum(s.events_omitted for s in view.spans) == spans - 1 - MAX_EVENTS
