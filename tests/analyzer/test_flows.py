"""Flows: grouping by root, stable ids, flows.yaml naming and matching, --by groups."""

from __future__ import annotations

import pytest

from flowscope.analyzer.errors import UnknownFlow
from flowscope.analyzer.flows import auto_flow_id
from flowscope.analyzer.flows_config import FlowsConfig
from flowscope.analyzer.model import Window
from flowscope.testing.traces import TraceKit, at_ms

from .conftest import HOUR, Analyze


def order_kit() -> TraceKit:
    """Four order traces (100..400 ms, the last failing at its root, the third with a
    failing child) and two portfolio traces, one a minute."""
    kit = TraceKit(resources={"gateway": {"deployment.environment": "prod"}})
    for i, duration in enumerate([100.0, 200.0, 300.0, 400.0]):
        root = kit.trace(start_ms=i * 60_000).span(
            "gateway",
            "POST /orders",
            kind="Server",
            start_ms=0,
            duration_ms=duration,
            status="Error" if i == 3 else "Unset",
            attributes={"http.route": "/orders", "order.type": ("market", "limit")[i % 2]},
        )
        root.child(
            "orders",
            "POST /orders",
            kind="Server",
            start_ms=5,
            duration_ms=20,
            status="Error" if i == 2 else "Unset",
            attributes={"wallet.provider": ("visa", "paypal")[i % 2]} if i < 3 else {},
        )
    for i in range(2):
        kit.trace(start_ms=i * 60_000 + 1).span(
            "gateway",
            "GET /portfolio/{id}",
            kind="Server",
            start_ms=0,
            duration_ms=50,
            attributes={"http.route": "/portfolio/{id}"},
        )
    return kit


def test_flows_group_traces_by_root_service_and_operation(analyze: Analyze) -> None:
    flows = analyze(order_kit()).flows(HOUR)
    assert [(f.id, f.traces) for f in flows] == [
        ("gateway-post-orders-a164bc", 4),
        ("gateway-get-portfolio-id-408161", 2),
    ]
    orders = flows[0]
    assert orders.name == "gateway POST /orders"
    assert (orders.root_service, orders.root_operation) == ("gateway", "POST /orders")
    assert (orders.error_rate, orders.traces_with_span_errors) == (0.25, 2)
    assert (orders.p50_ms, orders.p95_ms) == (250.0, pytest.approx(385.0))
    assert orders.p99_ms == pytest.approx(397.0)
    # Data from 0 to 180.4 s: 4 traces in 3.00667 minutes.
    assert orders.rate_per_min == pytest.approx(4 / (180_400 / 60_000))
    assert orders.group == {}


def test_flow_ids_are_stable_slugs_with_a_hash() -> None:
    # Fixed values: an id must not change between runs, versions or machines.
    assert auto_flow_id("gateway", "POST /orders") == "gateway-post-orders-a164bc"
    # Two roots whose slugs collide still get different ids.
    assert auto_flow_id("gateway", "POST orders").startswith("gateway-post-orders-")
    assert auto_flow_id("gateway", "POST orders") != auto_flow_id("gateway", "POST /orders")


def test_a_root_named_by_a_long_text_gets_a_cut_id() -> None:
    """Before, a root span named by a whole SQL statement gave an id as long as it."""
    statement = "SELECT " + ", ".join(f"column_{n}" for n in range(300)) + " FROM t"
    flow_id = auto_flow_id("db-job", statement)
    assert len(flow_id) <= 64 + 13
    # The hash alone tells cut ids apart: 12 hex digits, where 6 let two of 6,118
    # statements of one shape share an id.
    ids = {auto_flow_id("db-job", f"{statement} WHERE region = 'r{n}'") for n in range(7000)}
    assert len(ids) == 7000
    assert flow_id.startswith("db-job-select-column-0-column-1-")
    assert flow_id != auto_flow_id("db-job", statement + " WHERE x")  # the hash sees it all
    # Ids under the limit are what they always were.
    assert auto_flow_id("gateway", "POST /orders") == "gateway-post-orders-a164bc"


def test_a_trace_belongs_to_the_window_by_its_root(analyze: Analyze) -> None:
    analysis = analyze(order_kit())
    second_minute = Window(at_ms(60_000), at_ms(120_000))
    assert [(f.root_operation, f.traces) for f in analysis.flows(second_minute)] == [
        ("GET /portfolio/{id}", 1),
        ("POST /orders", 1),
    ]


FLOWS_YAML = """
flows:
  - name: Order Placement
    match: {service: gateway, route: "/orders*", attributes: {order.type: market}}
  - name: Everything Gateway
    id: gateway-rest
    match: {service: gateway, attributes: {deployment.environment: prod}}
"""


def test_flows_yaml_names_and_matches_first_rule_wins(analyze: Analyze) -> None:
    analysis = analyze(order_kit(), FlowsConfig.parse(FLOWS_YAML))
    flows = {f.id: f for f in analysis.flows(HOUR)}
    assert set(flows) == {"order-placement", "gateway-rest"}
    placement = flows["order-placement"]
    assert (placement.name, placement.traces, placement.p50_ms) == ("Order Placement", 2, 200.0)
    # Limit orders and the portfolio traces match the second rule through a resource attribute.
    rest = flows["gateway-rest"]
    assert (rest.name, rest.traces, rest.error_rate) == ("Everything Gateway", 4, 0.25)
    assert (rest.root_service, rest.root_operation) == ("gateway", "GET /portfolio/{id}")
    detail = analysis.flow("order-placement", HOUR)
    assert detail.flow == placement
    assert [(s.service, s.calls) for s in detail.steps] == [("gateway", 2), ("orders", 2)]


def test_an_automatic_flow_id_says_which_named_flows_took_its_traces(analyze: Analyze) -> None:
    analysis = analyze(order_kit(), FlowsConfig.parse(FLOWS_YAML))
    orders = auto_flow_id("gateway", "POST /orders")
    detail = analysis.flow(orders, HOUR)
    assert (detail.flow.traces, detail.steps) == (0, [])
    assert [c.as_dict() for c in detail.claimed_by] == [
        {"flow": "gateway-rest", "name": "Everything Gateway", "traces": 2},
        {"flow": "order-placement", "name": "Order Placement", "traces": 2},
    ]
    # A rule's own flow, and an automatic flow no rule touches, claim nothing.
    assert analysis.flow("order-placement", HOUR).claimed_by == []
    untouched = analyze(
        order_kit(), FlowsConfig.parse("flows:\n  - {name: X, match: {service: y}}")
    )
    assert untouched.flow(orders, HOUR).claimed_by == []
    assert untouched.flow(orders, HOUR).flow.traces == 4


def test_unmatched_roots_keep_their_automatic_flow(analyze: Analyze) -> None:
    config = FlowsConfig.parse("flows:\n  - name: Orders\n    match: {route: '/orders'}\n")
    flows = analyze(order_kit(), config).flows(HOUR)
    assert [(f.id, f.name, f.traces) for f in flows] == [
        ("orders", "Orders", 4),
        (auto_flow_id("gateway", "GET /portfolio/{id}"), "gateway GET /portfolio/{id}", 2),
    ]


def test_flows_by_root_span_attribute(analyze: Analyze) -> None:
    flows = analyze(order_kit()).flows(HOUR, by="order.type")
    orders = [f for f in flows if f.root_operation == "POST /orders"]
    assert [(f.group, f.traces, f.p50_ms) for f in orders] == [
        ({"order.type": "limit"}, 2, 300.0),
        ({"order.type": "market"}, 2, 200.0),
    ]
    portfolio = [f for f in flows if f.root_operation != "POST /orders"]
    assert [(f.group, f.traces) for f in portfolio] == [({"order.type": ""}, 2)]


def test_flows_by_resource_attribute_and_a_deeper_span(analyze: Analyze) -> None:
    analysis = analyze(order_kit())
    by_env = analysis.flows(HOUR, by="deployment.environment")
    assert {(f.root_operation, f.group["deployment.environment"], f.traces) for f in by_env} == {
        ("POST /orders", "prod", 4),
        ("GET /portfolio/{id}", "prod", 2),
    }
    # wallet.provider is only on the orders service's span: the earliest span that has it.
    by_provider = [
        f
        for f in analysis.flows(HOUR, by="wallet.provider")
        if f.traces and f.root_operation == "POST /orders"
    ]
    assert [(f.group["wallet.provider"], f.traces) for f in by_provider] == [
        ("visa", 2),
        ("", 1),
        ("paypal", 1),
    ]


def test_unknown_flow_and_a_known_flow_without_traces(analyze: Analyze) -> None:
    analysis = analyze(order_kit())
    with pytest.raises(UnknownFlow, match="no flow 'nope'"):
        analysis.flow("nope", HOUR)
    empty_window = Window(at_ms(3_000_000), at_ms(3_600_000))
    flow_id = auto_flow_id("gateway", "POST /orders")
    detail = analysis.flow(flow_id, empty_window)
    assert (detail.flow.traces, detail.flow.name, detail.steps) == (0, "gateway POST /orders", [])
    assert (detail.flow.root_service, detail.flow.root_operation) == ("gateway", "POST /orders")


def test_a_named_flow_without_traces_shows_plain_names_not_globs(analyze: Analyze) -> None:
    config = FlowsConfig.parse(
        "flows:\n"
        "  - {name: Placement, match: {service: gateway, operation: 'POST *'}}\n"
        "  - {name: Portfolio, match: {service: gateway, operation: 'GET /portfolio/{id}'}}\n"
    )
    analysis = analyze(order_kit(), config)
    empty_window = Window(at_ms(3_000_000), at_ms(3_600_000))
    # A glob is a rule, not an operation any span has: no root operation to show.
    placement = analysis.flow("placement", empty_window).flow
    assert (placement.traces, placement.root_service, placement.root_operation) == (
        0,
        "gateway",
        "",
    )
    portfolio = analysis.flow("portfolio", empty_window).flow
    assert (portfolio.root_service, portfolio.root_operation) == ("gateway", "GET /portfolio/{id}")


def test_a_rule_reusing_an_automatic_id_does_not_absorb_roots_it_does_not_match(
    analyze: Analyze,
) -> None:
    """Before, the market orders' rule took the automatic id of every order root, and the
    limit orders it did not match were merged into it under the rule's name."""
    orders = auto_flow_id("gateway", "POST /orders")
    config = FlowsConfig.parse(
        "flows:\n"
        f"  - {{name: Market orders, id: {orders}, match: {{attributes: {{order.type: market}}}}}}\n"
    )
    analysis = analyze(order_kit(), config)
    flows = {f.id: f for f in analysis.flows(HOUR)}
    assert (flows[orders].name, flows[orders].traces) == ("Market orders", 2)
    rest = flows[f"{orders}-unmatched"]
    assert (rest.name, rest.traces, rest.p50_ms) == ("gateway POST /orders", 2, 300.0)
    assert analysis.flow(f"{orders}-unmatched", HOUR).flow == rest
    empty_window = Window(at_ms(3_000_000), at_ms(3_600_000))
    assert analysis.flow(f"{orders}-unmatched", empty_window).flow.traces == 0


def test_a_rule_taking_the_unmatched_id_does_not_absorb_the_leftovers(
    analyze: Analyze,
) -> None:
    """A second rule with id "<automatic id>-unmatched" took in the first rule's
    leftover roots, under its own name; they now go one number further on."""
    orders = auto_flow_id("gateway", "POST /orders")
    config = FlowsConfig.parse(
        "flows:\n"
        f"  - {{name: Market orders, id: {orders}, match: {{attributes: {{order.type: market}}}}}}\n"
        f"  - {{name: Nothing, id: {orders}-unmatched, match: {{operation: PATCH}}}}\n"
    )
    analysis = analyze(order_kit(), config)
    flows = {f.id: f for f in analysis.flows(HOUR)}
    assert f"{orders}-unmatched" not in flows  # the PATCH rule matches no root here
    rest = flows[f"{orders}-unmatched-2"]
    assert (rest.name, rest.traces) == ("gateway POST /orders", 2)
    assert analysis.flow(f"{orders}-unmatched-2", HOUR).flow == rest


def test_an_empty_window_names_the_flows_own_root(analyze: Analyze) -> None:
    """Roots ("a b", "c") and ("a", "b c") share the name "a b c": with a flows.yaml
    rule, a window without traces showed the other one's root."""
    kit = TraceKit()
    kit.trace().span("a b", "c", kind="Server", start_ms=0, duration_ms=1)
    kit.trace().span("a", "b c", kind="Server", start_ms=0, duration_ms=1)
    config = FlowsConfig.parse('flows: [{name: X, match: {attributes: {nope: "1"}}}]\n')
    analysis = analyze(kit, config)
    empty = Window(at_ms(7_200_000), at_ms(7_300_000))
    for service, operation in (("a b", "c"), ("a", "b c")):
        flow = analysis.flow(auto_flow_id(service, operation), empty).flow
        assert (flow.root_service, flow.root_operation, flow.traces) == (service, operation, 0)
