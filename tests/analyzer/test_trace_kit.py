"""The shipped trace kit: fixed ids and times, OTLP requests, writes through the writer."""

from __future__ import annotations

import pytest

from flowscope.store.database import Database
from flowscope.store.writer import SpanWriter
from flowscope.testing.otlp import BASE_TIME_NS
from flowscope.testing.traces import TraceKit, at_ms, ms, percentile


def test_ids_and_times_are_fixed() -> None:
    kit = TraceKit(resources={"orders": {"service.version": "2.0"}})
    trace = kit.trace(start_ms=1500)
    root = trace.span("gateway", "GET", kind="Server", start_ms=0, duration_ms=12.5)
    child = root.child(
        "orders", "GET", kind="Server", start_ms=0.25, duration_ms=10, status="Error"
    )
    assert (root.trace_id, root.span_id, child.span_id) == (
        "0" * 31 + "1",
        "0" * 15 + "1",
        "0" * 15 + "2",
    )
    assert root.spec.start_ns == BASE_TIME_NS + 1_500_000_000 == at_ms(1500)
    assert (root.spec.duration_ns, child.spec.start_ns - root.spec.start_ns) == (
        12_500_000,
        250_000,
    )
    assert child.spec.parent_span_id == root.span_id and child.spec.resource == {
        "service.version": "2.0"
    }
    assert kit.trace().trace_id == "0" * 31 + "2"
    assert ms(0.1) == 100_000


def test_request_groups_spans_by_service_and_resource() -> None:
    kit = TraceKit()
    root = kit.trace().span(
        "gateway", "GET", kind="Server", start_ms=0, duration_ms=5, attributes={"n": 3}
    )
    root.child(
        "orders", "GET", kind="Consumer", start_ms=1, duration_ms=2, links=[root.link(kind="x")]
    )
    root.child(
        "orders", "GET", kind="Client", start_ms=1, duration_ms=2, resource={"service.version": "9"}
    )
    request = kit.request()
    services = [
        (
            {kv.key: kv.value.string_value for kv in rs.resource.attributes},
            len(rs.scope_spans[0].spans),
        )
        for rs in request.resource_spans
    ]
    assert services == [
        ({"service.name": "gateway"}, 1),
        ({"service.name": "orders"}, 1),
        ({"service.name": "orders", "service.version": "9"}, 1),
    ]
    consumer = request.resource_spans[1].scope_spans[0].spans[0]
    assert consumer.kind == 5 and consumer.links[0].span_id == bytes.fromhex(root.span_id)
    assert request.resource_spans[0].scope_spans[0].spans[0].attributes[0].value.int_value == 3


def test_write_through_the_writer_and_count_new_spans(database: Database) -> None:
    kit = TraceKit()
    root = kit.trace().span("gateway", "GET", kind="Server", start_ms=0, duration_ms=5)
    root.child("orders", "GET", kind="Server", start_ms=1, duration_ms=2)
    assert kit.write(database, kit.spans_of("orders")) == 1
    assert kit.write(database) == 1  # the orders span again: already stored
    writer = SpanWriter(database)
    writer.start()
    try:
        assert kit.write(database, writer=writer) == 0
    finally:
        writer.shutdown()
    assert database.span_count() == 2


def test_bad_kind_or_status_is_refused() -> None:
    trace = TraceKit().trace()
    with pytest.raises(ValueError, match="kind must be one of"):
        trace.span("a", "op", kind="server", start_ms=0, duration_ms=1)
    with pytest.raises(ValueError, match="status must be one of"):
        trace.span("a", "op", status="Failed", start_ms=0, duration_ms=1)


def test_percentile_is_linear_interpolation() -> None:
    assert percentile([10, 20, 30, 40], 0.5) == 25
    assert percentile([10, 20, 30, 40], 0.95) == pytest.approx(38.5)
    assert percentile([7], 0.99) == 7
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_writer_derives_what_an_earlier_stop_left_queued(database: Database) -> None:
    kit = TraceKit()
    kit.trace().span("gateway", "GET", kind="Server", start_ms=0, duration_ms=5)
    skipping = SpanWriter(database, derive_interval_s=None)
    skipping.start()
    kit.write(database, writer=skipping)
    skipping.shutdown()
    assert database.fetch("derive_queue_size")[0][0] == 1
    deriving = SpanWriter(database)
    deriving.start()
    deriving.shutdown()
    assert database.fetch("derive_queue_size")[0][0] == 0
