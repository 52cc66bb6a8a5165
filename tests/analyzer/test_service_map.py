"""The three edge rules and the nodes, with exact numbers from hand-built traces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flowscope.analyzer import derived_edges
from flowscope.analyzer import service_map as service_map_module
from flowscope.analyzer.analysis import Analysis
from flowscope.analyzer.flows import auto_flow_id
from flowscope.analyzer.model import Edge, Node, ServiceMap, Window
from flowscope.analyzer.window import ALL_TIME
from flowscope.store.database import Database
from flowscope.store.writer import SpanWriter
from flowscope.testing.traces import TraceKit, at_ms, percentile
from tests.analysis_scenario import write_scenario

from .conftest import HOUR, Analyze


def edges(result: ServiceMap) -> dict[tuple[str, str, str], Edge]:
    return {(e.source, e.target, e.rule): e for e in result.edges}


def nodes(result: ServiceMap) -> dict[str, Node]:
    return {n.id: n for n in result.nodes}


def test_rpc_latency_is_the_client_span_when_the_parent_is_a_client(analyze: Analyze) -> None:
    kit = TraceKit()
    client_ms = [10.0, 20.0, 30.0, 40.0]
    for i, duration in enumerate(client_ms):
        root = kit.trace(start_ms=i * 60_000).span(
            "gateway", "POST /orders", kind="Server", start_ms=0, duration_ms=100
        )
        call = root.child("gateway", "POST", kind="Client", start_ms=5, duration_ms=duration)
        call.child("orders", "POST /orders", kind="Server", start_ms=6, duration_ms=duration - 2)
    result = analyze(kit).service_map(HOUR)
    edge = edges(result)[("gateway", "orders", "rpc")]
    assert (edge.calls, edge.errors, edge.error_rate) == (4, 0, 0.0)
    assert edge.p50_ms == percentile(client_ms, 0.5) == 25.0
    assert edge.p95_ms == pytest.approx(percentile(client_ms, 0.95)) == pytest.approx(38.5)
    assert edge.p99_ms == pytest.approx(39.7)
    # Rates count over the window clipped to the stored data: 180.1 s here.
    assert edge.rate_per_min == pytest.approx(4 / (180_100 / 60_000))
    assert edge.messaging_system is None and edge.lag_p50_ms is None and edge.peer_kind is None
    assert len(result.edges) == 1


def test_an_edges_percentiles_are_the_same_number_on_the_map_and_its_flows_map(
    analyze: Analyze,
) -> None:
    """The P95 of 18, 36 and 54 ms was 52.2 on the map and 52.199999999999996 on the
    flow's map (numbers reviewer): JSON readers comparing them saw two values."""
    kit = TraceKit()
    for i, duration in enumerate([18.0, 36.0, 54.0]):
        root = kit.trace(start_ms=i * 1_000).span(
            "api", "POST /order", kind="Server", start_ms=0, duration_ms=100
        )
        root.child("api", "GET", kind="Client", start_ms=1, duration_ms=duration).child(
            "pricing", "GET /price", kind="Server", start_ms=2, duration_ms=duration - 2
        )
    analysis = analyze(kit)
    whole = edges(analysis.service_map(HOUR))[("api", "pricing", "rpc")]
    flows = edges(analysis.service_map(HOUR, auto_flow_id("api", "POST /order")))
    in_flow = flows[("api", "pricing", "rpc")]
    assert (whole.p50_ms, whole.p95_ms, whole.p99_ms) == (36.0, 52.2, 53.64)
    assert (in_flow.p50_ms, in_flow.p95_ms, in_flow.p99_ms) == (36.0, 52.2, 53.64)


def test_rpc_latency_is_the_child_when_the_parent_is_not_a_client(analyze: Analyze) -> None:
    kit = TraceKit()
    root = kit.trace().span("gateway", "GET /", kind="Server", start_ms=0, duration_ms=100)
    root.child("orders", "GET /", kind="Server", start_ms=10, duration_ms=40, status="Error")
    root.child("gateway", "render", kind="Internal", start_ms=60, duration_ms=10)
    edge = edges(analyze(kit).service_map(HOUR))[("gateway", "orders", "rpc")]
    assert (edge.calls, edge.errors, edge.error_rate, edge.p50_ms) == (1, 1, 1.0, 40.0)


def test_a_call_is_an_error_when_either_side_is(analyze: Analyze) -> None:
    kit = TraceKit()
    for i, (client_status, server_status) in enumerate(
        [("Error", "Unset"), ("Unset", "Error"), ("Ok", "Unset"), ("Unset", "Unset")]
    ):
        root = kit.trace(start_ms=i).span("a", "op", kind="Server", start_ms=0, duration_ms=50)
        call = root.child(
            "a", "call", kind="Client", start_ms=1, duration_ms=40, status=client_status
        )
        call.child("b", "op", kind="Server", start_ms=2, duration_ms=30, status=server_status)
    edge = edges(analyze(kit).service_map(HOUR))[("a", "b", "rpc")]
    assert (edge.calls, edge.errors, edge.error_rate) == (4, 2, 0.5)


VIRTUAL_CASES: list[tuple[dict[str, Any], str, str]] = [
    (
        {
            "peer.service": "billing-api",
            "service.peer.name": "ledger",
            "db.system": "postgresql",
            "server.address": "10.0.0.1",
        },
        "billing-api",
        "database",
    ),
    ({"service.peer.name": "ledger", "server.address": "10.0.0.1"}, "ledger", "external"),
    (
        {
            "db.system": "postgresql",
            "db.namespace": "shop",
            "db.name": "old",
            "messaging.system": "kafka",
            "server.address": "db.local",
        },
        "postgresql/shop",
        "database",
    ),
    ({"db.system": "mysql", "db.name": "legacy"}, "mysql/legacy", "database"),
    ({"db.system": "redis"}, "redis", "database"),
    (
        {
            "messaging.system": "kafka",
            "messaging.destination.name": "orders",
            "server.address": "broker",
        },
        "kafka/orders",
        "messaging",
    ),
    (
        {"messaging.system": "rabbitmq", "messaging.destination": "jobs"},
        "rabbitmq/jobs",
        "messaging",
    ),
    ({"server.address": "api.stripe.com", "net.peer.name": "x"}, "api.stripe.com", "external"),
    ({"net.peer.name": "legacy.local"}, "legacy.local", "external"),
    # Python's requests and httpx instrumentations name the peer by the URL alone.
    ({"http.url": "http://127.0.0.1:8001/v1/charges"}, "127.0.0.1", "external"),
    (
        {"url.full": "https://u:p@api.stripe.com/v1?x=1", "http.url": "http://x"},
        "api.stripe.com",
        "external",
    ),
    ({"url.full": "http://[::1]:80/a"}, "[::1]", "external"),
    ({"http.url": "https://API.Stripe.com/v1"}, "api.stripe.com", "external"),
    ({"net.peer.name": "legacy.local", "http.url": "http://x/"}, "legacy.local", "external"),
    ({"http.url": "/relative/path"}, "unknown", "external"),
    ({}, "unknown", "external"),
    # OpenTracing's names, as Jaeger clients set them (migrator review), after the others.
    ({"db.type": "sql", "db.instance": "customers"}, "sql/customers", "database"),
    ({"db.type": "redis", "peer.hostname": "cache-1"}, "redis", "database"),
    ({"db.system": "postgresql", "db.type": "sql", "db.instance": "x"}, "postgresql/x", "database"),
    (
        {"peer.hostname": "legacy-billing", "http.url": "http://10.0.0.7/x"},
        "legacy-billing",
        "external",
    ),
    ({"net.peer.name": "a.local", "peer.hostname": "b"}, "a.local", "external"),
]


@pytest.mark.parametrize(("attributes", "peer", "kind"), VIRTUAL_CASES)
def test_virtual_peer_naming_precedence(
    analyze: Analyze, attributes: dict[str, Any], peer: str, kind: str
) -> None:
    kit = TraceKit()
    root = kit.trace().span("orders", "POST /orders", kind="Server", start_ms=0, duration_ms=50)
    root.child("orders", "call", kind="Client", start_ms=10, duration_ms=12, attributes=attributes)
    result = analyze(kit).service_map(HOUR)
    edge = edges(result)[("orders", peer, "virtual")]
    assert (edge.calls, edge.p50_ms, edge.peer_kind) == (1, 12.0, kind)
    assert nodes(result)[peer] == Node(peer, kind, 1, 0.0, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("database_first", [True, False])
def test_a_peer_named_as_two_kinds_takes_the_most_specific(database_first: bool) -> None:
    """One call names billing with db.system too (a database), another by peer.service
    alone (external): the node's kind came from whichever row the map's query gave
    first, in no set order."""
    latency = (2_000_000, 2_000_000, 2_000_000)
    rows = [
        ("orders", "billing", "virtual", "database", "postgresql", "x", 1, 0, latency, None),
        ("orders", "billing", "virtual", "external", None, None, 1, 1, latency, None),
    ]
    built = service_map_module.build_map(rows if database_first else rows[::-1], [], 60.0)
    assert nodes(built)["billing"] == Node("billing", "database", 2, 0.5, None)
    # Its edges stay apart, one per kind named: they looked the same.
    assert sorted(str(e.peer_kind) for e in built.edges) == ["database", "external"]


def test_client_with_a_child_elsewhere_is_rpc_not_virtual(analyze: Analyze) -> None:
    kit = TraceKit()
    root = kit.trace().span("a", "op", kind="Server", start_ms=0, duration_ms=50)
    call = root.child(
        "a", "GET", kind="Client", start_ms=1, duration_ms=40, attributes={"server.address": "b"}
    )
    call.child("a", "retry-wrapper", kind="Internal", start_ms=2, duration_ms=1)
    call.child("b", "GET", kind="Server", start_ms=3, duration_ms=30)
    lone = root.child(
        "a", "GET", kind="Client", start_ms=45, duration_ms=2, attributes={"server.address": "c"}
    )
    lone.child(
        "a", "decode", kind="Internal", start_ms=46, duration_ms=1
    )  # same service: still virtual
    assert set(edges(analyze(kit).service_map(HOUR))) == {("a", "b", "rpc"), ("a", "c", "virtual")}


def test_a_service_calling_its_own_api_names_no_peer(analyze: Analyze) -> None:
    """A CLIENT span answered by a SERVER span of its own service drew a virtual edge to
    an external node (`unknown`, or its server.address) for a call the service answered
    itself. The map has no self-edges; its other calls are unchanged."""
    kit = TraceKit()
    root = kit.trace().span("api", "GET /a", kind="Server", start_ms=0, duration_ms=50)
    own = root.child("api", "GET /b", kind="Client", start_ms=1, duration_ms=30)
    inner = own.child("api", "GET /b", kind="Server", start_ms=2, duration_ms=25)
    inner.child(
        "api", "SELECT", kind="Client", start_ms=3, duration_ms=5, attributes={"db.system": "pg"}
    )
    root.child(
        "api", "GET", kind="Client", start_ms=40, duration_ms=5, attributes={"server.address": "x"}
    )
    result = analyze(kit).service_map(HOUR)
    assert set(edges(result)) == {("api", "pg", "virtual"), ("api", "x", "virtual")}
    assert set(nodes(result)) == {"api", "pg", "x"}


def test_services_sharing_a_default_name_are_no_self_call(analyze: Analyze) -> None:
    """Two processes without OTEL_SERVICE_NAME both report unknown_service:python: a
    call between them is no call of a service to its own API, and kept its edge."""
    kit = TraceKit()
    for name in ("unknown_service:python", ""):
        root = kit.trace().span(name, "GET /a", kind="Server", start_ms=0, duration_ms=50)
        call = root.child(
            name,
            "GET",
            kind="Client",
            start_ms=1,
            duration_ms=30,
            attributes={"server.address": "inventory"},
        )
        call.child(name, "GET /items", kind="Server", start_ms=2, duration_ms=25)
    result = analyze(kit).service_map(HOUR)
    assert set(edges(result)) == {
        ("unknown_service:python", "inventory", "virtual"),
        ("", "inventory", "virtual"),
    }


def test_a_client_over_a_client_of_its_service_is_one_call(analyze: Analyze) -> None:
    """.NET's gRPC client span over its HttpClient span: the outer one's virtual edge
    counted each call to cart a second time. A chain of CLIENT spans makes one call:
    the inner spans' rpc calls when a traced service answers them all, else the
    outermost span's, by its name."""
    kit = TraceKit()
    for i in range(4):
        root = kit.trace(start_ms=i * 1000).span(
            "frontend", "GET /cart", kind="Server", start_ms=0, duration_ms=80
        )
        grpc = root.child(
            "frontend",
            "oteldemo.CartService/GetCart",
            kind="Client",
            start_ms=1,
            duration_ms=60,
            attributes={"rpc.system": "grpc", "server.address": "cart"},
        )
        http = grpc.child(
            "frontend", "POST", kind="Client", start_ms=2, duration_ms=55,
            attributes={"server.address": "cart"},
        )  # fmt: skip
        http.child(
            "cart", "oteldemo.CartService/GetCart", kind="Server", start_ms=3, duration_ms=50
        )
        search = root.child(
            "frontend", "search", kind="Client", start_ms=62, duration_ms=10,
            attributes={"db.system": "elasticsearch"},
        )  # fmt: skip
        search.child(
            "frontend", "POST", kind="Client", start_ms=63, duration_ms=8,
            attributes={"server.address": "es.internal"},
        )  # fmt: skip
        # An SDK span naming its peer over an HTTP span: the SDK span's name wins.
        pay = root.child(
            "frontend", "Charge", kind="Client", start_ms=73, duration_ms=4,
            attributes={"peer.service": "payments-api"},
        )  # fmt: skip
        pay.child(
            "frontend", "POST", kind="Client", start_ms=74, duration_ms=2,
            attributes={"server.address": "10.0.0.7"},
        )  # fmt: skip
        # A token fetched from a traced service inside an SDK call to an untraced one:
        # both calls are made.
        upload = root.child(
            "frontend", "PutObject", kind="Client", start_ms=78, duration_ms=2,
            attributes={"server.address": "s3.amazonaws.com"},
        )  # fmt: skip
        token = upload.child("frontend", "GET", kind="Client", start_ms=78.1, duration_ms=0.5)
        token.child("auth", "GET /token", kind="Server", start_ms=78.2, duration_ms=0.3)
        upload.child(
            "frontend", "PUT", kind="Client", start_ms=78.7, duration_ms=1,
            attributes={"server.address": "bucket.s3.amazonaws.com"},
        )  # fmt: skip
    service_map = analyze(kit).service_map(HOUR)
    assert {(e.source, e.target, e.rule, e.calls) for e in service_map.edges} == {
        ("frontend", "cart", "rpc", 4),
        ("frontend", "elasticsearch", "virtual", 4),
        ("frontend", "payments-api", "virtual", 4),
        ("frontend", "auth", "rpc", 4),
        ("frontend", "s3.amazonaws.com", "virtual", 4),
    }
    kinds = {n.id: n.kind for n in service_map.nodes}
    assert kinds["elasticsearch"] == "database" and kinds["payments-api"] == "external"


def test_an_inner_client_under_an_outer_answered_elsewhere_is_its_own_call(
    analyze: Analyze,
) -> None:
    """The outer span answered by payments directly, a redis call inside it: the
    redis call was counted by neither rule."""
    kit = TraceKit()
    root = kit.trace().span("frontend", "POST /pay", kind="Server", start_ms=0, duration_ms=50)
    outer = root.child("frontend", "Charge", kind="Client", start_ms=1, duration_ms=40)
    outer.child("payments", "Charge", kind="Server", start_ms=2, duration_ms=20)
    outer.child(
        "frontend", "GET", kind="Client", start_ms=25, duration_ms=2,
        attributes={"db.system": "redis"},
    )  # fmt: skip
    service_map = analyze(kit).service_map(HOUR)
    assert {(e.source, e.target, e.rule, e.calls) for e in service_map.edges} == {
        ("frontend", "payments", "rpc", 1),
        ("frontend", "redis", "virtual", 1),
    }


KAFKA = {"messaging.system": "kafka", "messaging.destination.name": "orders"}


def test_async_by_parent_is_never_also_rpc(analyze: Analyze) -> None:
    kit = TraceKit()
    root = kit.trace().span("orders", "POST", kind="Server", start_ms=0, duration_ms=50)
    producer = root.child(
        "orders", "publish", kind="Producer", start_ms=30, duration_ms=2, attributes=KAFKA
    )
    producer.child("billing", "process", kind="Consumer", start_ms=40, duration_ms=20)
    producer.child(
        "orders", "process", kind="Consumer", start_ms=41, duration_ms=5
    )  # same service: no edge
    result = analyze(kit).service_map(HOUR)
    assert list(edges(result)) == [("orders", "billing", "async")]
    edge = result.edges[0]
    assert (edge.calls, edge.p50_ms, edge.messaging_system, edge.destination) == (
        1,
        20.0,
        "kafka",
        "orders",
    )
    assert (edge.lag_p50_ms, edge.lag_p95_ms, edge.lag_p99_ms) == (8.0, 8.0, 8.0)  # 40 - (30 + 2)


def test_async_edge_names_come_from_the_consumer_when_the_producer_has_none(
    analyze: Analyze,
) -> None:
    """Before, a producer without messaging attributes named the edge '' and '', and
    consumers of two destinations merged into one edge."""
    kit = TraceKit()
    for start, destination in ((0, "orders"), (100, "fills")):
        root = kit.trace(start_ms=start).span(
            "shop", "POST", kind="Server", start_ms=0, duration_ms=50
        )
        producer = root.child("shop", "publish", kind="Producer", start_ms=1, duration_ms=2)
        producer.child(
            "worker",
            "process",
            kind="Consumer",
            start_ms=10,
            duration_ms=5,
            attributes={"messaging.system": "kafka", "messaging.destination.name": destination},
        )
    result = analyze(kit).service_map(HOUR)
    assert sorted(
        (e.source, e.target, e.messaging_system, e.destination) for e in result.edges
    ) == [
        ("shop", "worker", "kafka", "fills"),
        ("shop", "worker", "kafka", "orders"),
    ]


def test_async_by_link_even_when_the_consumer_arrives_first(
    analyze: Analyze, database: Any
) -> None:
    kit = TraceKit()
    producers = []
    for i in range(3):
        root = kit.trace(start_ms=i * 1000).span(
            "orders", "POST", kind="Server", start_ms=0, duration_ms=50
        )
        producers.append(
            root.child(
                "orders", "publish", kind="Producer", start_ms=10, duration_ms=5, attributes=KAFKA
            )
        )
    lags = [5.0, 15.0, 35.0]
    for producer, lag in zip(producers, lags, strict=True):
        start = producer.trace.start_ms + 15 + lag
        consumer_trace = kit.trace(start_ms=start)
        consumer_trace.span(
            "billing",
            "process",
            kind="Consumer",
            start_ms=0,
            duration_ms=lag,
            links=[producer.link()],
        )
    consumers = [s for s in kit.spans if s.service == "billing"]
    kit.write(database, consumers)  # consumers first: their producers are not stored yet
    result = analyze(kit).service_map(HOUR)  # now the rest (the consumers again: deduplicated)
    edge = edges(result)[("orders", "billing", "async")]
    assert (edge.calls, edge.p50_ms, edge.lag_p50_ms) == (3, 15.0, 15.0)
    assert edge.lag_p95_ms == pytest.approx(percentile(lags, 0.95))
    assert ("orders", "billing", "rpc") not in edges(result)


def test_a_flows_map_has_the_async_calls_its_producers_start_in_other_traces(
    analyze: Analyze,
) -> None:
    kit = TraceKit()
    root = kit.trace(start_ms=0).span("orders", "POST", kind="Server", start_ms=0, duration_ms=50)
    producer = root.child(
        "orders", "publish", kind="Producer", start_ms=10, duration_ms=5, attributes=KAFKA
    )
    consumer = kit.trace(start_ms=40).span(
        "billing", "process", kind="Consumer", start_ms=0, duration_ms=20, links=[producer.link()]
    )
    consumer.child("billing", "charge", kind="Client", start_ms=5, duration_ms=10)
    analysis = analyze(kit)
    producing = auto_flow_id("orders", "POST")
    consuming = auto_flow_id("billing", "process")
    # The call is made in the consumer's trace, started from the producer's.
    assert ("orders", "billing", "async") in edges(analysis.service_map(HOUR, producing))
    in_consumer = edges(analysis.service_map(HOUR, consuming))
    assert set(in_consumer) == {("orders", "billing", "async"), ("billing", "unknown", "virtual")}


def test_consumer_that_is_child_and_linked_counts_once(analyze: Analyze) -> None:
    kit = TraceKit()
    root = kit.trace().span("orders", "POST", kind="Server", start_ms=0, duration_ms=50)
    producer = root.child(
        "orders", "publish", kind="Producer", start_ms=30, duration_ms=2, attributes=KAFKA
    )
    producer.child(
        "billing", "process", kind="Consumer", start_ms=40, duration_ms=20, links=[producer.link()]
    )
    assert edges(analyze(kit).service_map(HOUR))[("orders", "billing", "async")].calls == 1


def test_a_pull_consumers_receive_and_process_spans_are_one_call(analyze: Analyze) -> None:
    """Messaging conventions before 1.26: a CONSUMER receive span and its CONSUMER
    process span, both linked to the producer, counted one message twice (with the
    mean of their durations as the P50); a batch receive still counts each producer."""
    kit = TraceKit()
    root = kit.trace().span("shop", "POST", kind="Server", start_ms=0, duration_ms=50)
    first = root.child(
        "shop", "publish", kind="Producer", start_ms=10, duration_ms=2, attributes=KAFKA
    )
    second = root.child(
        "shop", "publish", kind="Producer", start_ms=20, duration_ms=2, attributes=KAFKA
    )
    receive = kit.trace(start_ms=100).span(
        "worker", "orders receive", kind="Consumer", start_ms=0, duration_ms=5,
        links=[first.link()],
    )  # fmt: skip
    receive.child(
        "worker", "orders process", kind="Consumer", start_ms=6, duration_ms=30,
        links=[first.link()],
    )  # fmt: skip
    batch = kit.trace(start_ms=200).span(
        "worker", "orders receive", kind="Consumer", start_ms=0, duration_ms=7,
        links=[first.link(), second.link()],
    )  # fmt: skip
    del batch
    edge = edges(analyze(kit).service_map(HOUR))[("shop", "worker", "async")]
    # first: once by the receive+process trace (the receive span, 5 ms), once by the
    # batch (7 ms); second: once by the batch (7 ms).
    assert (edge.calls, edge.p50_ms) == (3, 7.0)


def test_producer_with_a_server_child_is_rpc(analyze: Analyze) -> None:
    kit = TraceKit()
    root = kit.trace().span("a", "op", kind="Server", start_ms=0, duration_ms=50)
    producer = root.child("a", "send", kind="Producer", start_ms=1, duration_ms=3)
    producer.child("b", "handle", kind="Server", start_ms=2, duration_ms=7)
    edge = edges(analyze(kit).service_map(HOUR))[("a", "b", "rpc")]
    assert edge.p50_ms == 7.0


def test_a_called_service_without_spans_in_the_window_is_a_service_of_0_spans(
    analyze: Analyze,
) -> None:
    """Before, the callee was counted like a virtual peer: spans 1 and error rate 1.0
    from the caller's failed call, though its own span is fine (and, skewed, started
    before the window)."""
    kit = TraceKit()
    root = kit.trace(start_ms=1).span("shop", "GET", kind="Server", start_ms=0, duration_ms=9)
    call = root.child("shop", "call us", kind="Client", start_ms=1, duration_ms=5, status="Error")
    call.child("us", "handle", kind="Server", start_ms=-3, duration_ms=2)
    result = analyze(kit).service_map(Window(at_ms(0), at_ms(60_000)))
    assert ("shop", "us", "rpc") in edges(result)
    us = next(node for node in result.nodes if node.id == "us")
    assert (us.kind, us.spans, us.error_rate, us.p95_ms) == ("service", 0, 0.0, None)


def test_nodes_count_spans_errors_and_server_consumer_p95(analyze: Analyze) -> None:
    kit = TraceKit()
    server_ms = [10.0, 20.0, 30.0, 40.0, 50.0]
    for i, duration in enumerate(server_ms):
        root = kit.trace(start_ms=i * 100).span(
            "web",
            "GET",
            kind="Server",
            start_ms=0,
            duration_ms=duration,
            status="Error" if i == 0 else "Unset",
        )
        root.child("web", "render", kind="Internal", start_ms=1, duration_ms=500)  # not in the P95
        root.child(
            "web",
            "SELECT",
            kind="Client",
            start_ms=2,
            duration_ms=3,
            attributes={"db.system": "sqlite"},
        )
    result = analyze(kit).service_map(HOUR)
    web = nodes(result)["web"]
    assert (web.kind, web.spans, web.error_rate) == ("service", 15, pytest.approx(1 / 15))
    assert web.p95_ms == pytest.approx(percentile(server_ms, 0.95)) == pytest.approx(48.0)
    assert nodes(result)["sqlite"] == Node("sqlite", "database", 5, 0.0, None)


def test_calls_belong_to_the_window_by_the_measured_span_start(analyze: Analyze) -> None:
    kit = TraceKit()
    for start in (0, 30_000, 90_000):
        root = kit.trace(start_ms=start).span("a", "op", kind="Server", start_ms=0, duration_ms=50)
        root.child("b", "op", kind="Server", start_ms=10, duration_ms=20)
    analysis = analyze(kit)
    first_minute = Window(at_ms(0), at_ms(60_000))
    assert edges(analysis.service_map(first_minute))[("a", "b", "rpc")].calls == 2
    assert analysis.service_map(Window(at_ms(60_010), at_ms(120_000))).edges[0].calls == 1
    assert analysis.service_map(Window(at_ms(200_000), at_ms(300_000))) == ServiceMap([], [])


def test_map_of_one_flow(analyze: Analyze) -> None:
    kit = TraceKit()
    orders = kit.trace().span("gateway", "POST /orders", kind="Server", start_ms=0, duration_ms=50)
    orders.child("orders", "POST", kind="Server", start_ms=1, duration_ms=20)
    portfolio = kit.trace(start_ms=100).span(
        "gateway", "GET /portfolio", kind="Server", start_ms=0, duration_ms=50
    )
    portfolio.child("portfolio", "GET", kind="Server", start_ms=1, duration_ms=20)
    analysis = analyze(kit)
    everything = analysis.service_map(HOUR)
    assert {n.id for n in everything.nodes} == {"gateway", "orders", "portfolio"}
    flow_id = next(f.id for f in analysis.flows(HOUR) if f.root_operation == "POST /orders")
    only = analysis.service_map(HOUR, flow=flow_id)
    assert list(edges(only)) == [("gateway", "orders", "rpc")]
    assert [(n.id, n.spans) for n in only.nodes] == [("gateway", 1), ("orders", 1)]


def test_node_p95_from_minute_histograms_is_exact(
    analyze: Analyze, database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit = TraceKit()
    durations = []
    for i in range(240):  # four per second for a minute, spread over three minutes
        duration = 1 + (i * 7919) % 997 * 0.37  # many buckets, ties and all
        durations.append(duration)
        kit.trace(start_ms=i * 750).span(
            "web", "GET", kind="Server", start_ms=0, duration_ms=duration
        )
    analysis = analyze(kit)
    # Partial minutes at both ends: 00:00:30.5 .. 00:02:10.25.
    window = Window(at_ms(30_500), at_ms(130_250))
    inside = [d for i, d in enumerate(durations) if 30_500 <= i * 750 < 130_250]
    fetch = database.fetch

    def histograms_only(name: str, *args: Any) -> Any:
        assert name != "map_services", "fell back to the direct query"
        return fetch(name, *args)

    with monkeypatch.context() as patch:
        patch.setattr(database, "fetch", histograms_only)
        web = nodes(analysis.service_map(window))["web"]
    assert web.spans == len(inside) == 133
    assert web.p95_ms == pytest.approx(percentile(inside, 0.95), rel=1e-12)
    direct = database.fetch("map_services", {"since": window.since_ns, "until": window.until_ns})
    assert web.p95_ms == pytest.approx(direct[0][3] / 1e6, rel=1e-12)


def test_node_stats_fall_back_when_histograms_disagree(analyze: Analyze, database: Any) -> None:
    kit = TraceKit()
    for i, duration in enumerate([10.0, 20.0, 30.0]):
        kit.trace(start_ms=i).span("web", "GET", kind="Server", start_ms=0, duration_ms=duration)
    analysis = analyze(kit)
    writer = SpanWriter(database)
    writer.start()
    writer.run_task(
        lambda cursor: cursor.execute(
            "UPDATE service_minutes SET Spans = Spans + 1 WHERE Bucket >= 0"
        )
    ).result()
    writer.shutdown()
    web = nodes(analysis.service_map(HOUR))["web"]
    assert web.p95_ms == pytest.approx(29.0) and web.spans == 3


def test_edge_percentiles_from_histograms_are_exact(analyze: Analyze, database: Any) -> None:
    kit = TraceKit()
    latencies, lags = [], []
    for i in range(300):
        latency = 0.5 + (i * 7919) % 1009 * 0.113  # spread over many buckets, with ties
        lag = (i * 104729) % 97 * 0.05
        latencies.append(latency)
        lags.append(lag)
        root = kit.trace(start_ms=i * 100).span(
            "a", "op", kind="Server", start_ms=0, duration_ms=200
        )
        root.child("a", "call", kind="Client", start_ms=1, duration_ms=latency).child(
            "b", "op", kind="Server", start_ms=1.1, duration_ms=latency / 2
        )
        producer = root.child(
            "a", "send", kind="Producer", start_ms=2, duration_ms=1, attributes=KAFKA
        )
        producer.child("c", "take", kind="Consumer", start_ms=3 + lag, duration_ms=latency)
    analysis = analyze(kit)
    result = edges(analysis.service_map(HOUR))
    rpc, queue = result[("a", "b", "rpc")], result[("a", "c", "async")]
    for q, got in zip((0.5, 0.95, 0.99), (rpc.p50_ms, rpc.p95_ms, rpc.p99_ms), strict=True):
        assert got == pytest.approx(percentile(latencies, q), rel=1e-12)
    for q, got in zip(
        (0.5, 0.95, 0.99), (queue.lag_p50_ms, queue.lag_p95_ms, queue.lag_p99_ms), strict=True
    ):
        assert got == pytest.approx(percentile(lags, q), rel=1e-9, abs=1e-9)
    # The same numbers as DuckDB's own exact aggregate over every call.
    direct = (
        database.reader()
        .execute(
            "SELECT quantile_cont(LatencyNs, [0.5, 0.95, 0.99]) FROM edge_calls"
            " JOIN edge_keys USING (EdgeKey) WHERE Rule = 'rpc'"
        )
        .fetchall()[0][0]
    )
    assert [v / 1e6 for v in direct] == pytest.approx(
        [rpc.p50_ms, rpc.p95_ms, rpc.p99_ms], rel=1e-12
    )


def test_edge_calls_in_whole_and_partial_minutes_count_once(
    analyze: Analyze, database: Any
) -> None:
    kit = TraceKit()
    latencies = []
    for i in range(240):  # four calls a second over three minutes
        latency = 0.5 + (i * 7919) % 1009 * 0.113
        latencies.append(latency)
        root = kit.trace(start_ms=i * 750).span(
            "a", "op", kind="Server", start_ms=0, duration_ms=200
        )
        status = "Error" if i % 7 == 0 else "Ok"
        root.child(
            "a", "call", kind="Client", start_ms=1, duration_ms=latency, status=status
        ).child("b", "op", kind="Server", start_ms=1.1, duration_ms=latency / 2)
    analysis = analyze(kit)
    assert database.fetch("derive_queue_size")[0][0] == 0
    minutes = database.reader().execute("SELECT count(DISTINCT Minute) FROM edge_minutes")
    assert minutes.fetchone() == (3,)  # the whole minutes below come from edge_minutes
    # Partial minutes at both ends: 00:00:30.5 .. 00:02:10.25 holds calls 41..173.
    window = Window(at_ms(30_500), at_ms(130_250))
    inside = [i for i in range(240) if 30_500 <= i * 750 + 1 < 130_250]
    rpc = edges(analysis.service_map(window))[("a", "b", "rpc")]
    assert rpc.calls == len(inside) == 133
    assert rpc.errors == sum(1 for i in inside if i % 7 == 0)
    chosen = [latencies[i] for i in inside]
    for q, got in zip((0.5, 0.95, 0.99), (rpc.p50_ms, rpc.p95_ms, rpc.p99_ms), strict=True):
        assert got == pytest.approx(percentile(chosen, q), rel=1e-12)


def test_edge_stats_fall_back_when_minute_counts_disagree(analyze: Analyze, database: Any) -> None:
    kit = TraceKit()
    for i, latency in enumerate([10.0, 20.0, 30.0]):
        kit.trace(start_ms=i).span("a", "op", kind="Server", start_ms=0, duration_ms=50).child(
            "a", "call", kind="Client", start_ms=1, duration_ms=latency
        ).child("b", "op", kind="Server", start_ms=2, duration_ms=1)
    analysis = analyze(kit)
    writer = SpanWriter(database)
    writer.start()
    writer.run_task(
        lambda cursor: cursor.execute("UPDATE edge_minutes SET Calls = Calls + 1")
    ).result()
    writer.shutdown()
    rpc = edges(analysis.service_map(HOUR))[("a", "b", "rpc")]
    assert (rpc.calls, rpc.p50_ms, rpc.p99_ms) == (3, 20.0, pytest.approx(29.8))


def test_edge_names_when_their_codes_cannot_share_an_int64(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tens of thousands of services, peers and queues in one derivation pass multiply
    past int64: the edges must come out the same (before: names of other edges)."""

    def service_map(path: Path) -> dict[str, Any]:
        database = Database(path)
        try:
            write_scenario(database)
            return Analysis(database).service_map(ALL_TIME).as_dict()
        finally:
            database.close()

    packed = service_map(tmp_path / "packed.duckdb")
    monkeypatch.setattr(derived_edges, "PACKABLE", 1)
    assert service_map(tmp_path / "unpacked.duckdb") == packed
    assert {edge["rule"] for edge in packed["edges"]} == {"rpc", "virtual", "async"}


def test_spans_in_the_last_half_microsecond_of_a_minute_count_in_that_minute(
    analyze: Analyze,
) -> None:
    """date_trunc on a nanosecond time rounds to microseconds first: these spans went
    to the next minute's counts, so a window over their whole minute lost them and one
    ending a minute later counted them twice."""
    kit = TraceKit()
    root = kit.trace(start_ms=59_999.9997).span(
        "gw", "job", kind="Internal", start_ms=0, duration_ms=1
    )
    root.child(
        "gw",
        "SELECT",
        kind="Client",
        start_ms=0.0001,
        duration_ms=0.5,
        attributes={"db.system": "postgresql"},
    )
    analysis = analyze(kit)
    for since_ms, until_ms in ((-60_000, 60_000), (30_000, 90_000), (0, 120_000)):
        result = analysis.service_map(Window(at_ms(since_ms), at_ms(until_ms)))
        assert nodes(result)["gw"].spans == 2, (since_ms, until_ms)
        assert edges(result)[("gw", "postgresql", "virtual")].calls == 1, (since_ms, until_ms)
    assert analysis.service_map(Window(at_ms(60_000), at_ms(180_000))).nodes == []
