"""Hand-built analyzer records for the diagram tests: nasty names, random names,
and maps and flows larger than Mermaid draws. Fixed values, so diagrams are exact."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from flowscope.analyzer.model import Edge, Flow, FlowDetail, Node, ServiceMap, Step

NASTY = 'weird "svc" as [x] #1; <b>&amp;</b> {y} |z| %% end'
NASTY_OP = 'GET /a;b#c "q" <x>\n{y} --> end'


def node(
    name: str, kind: Any = "service", spans: int = 10, err: float = 0.0, p95: Any = 5.0
) -> Node:
    return Node(id=name, kind=kind, spans=spans, error_rate=err, p95_ms=p95)


def edge(
    source: str,
    target: str,
    rule: Any = "rpc",
    calls: int = 100,
    errors: int = 0,
    p95: float = 12.5,
    **extra: Any,
) -> Edge:
    return Edge(
        source=source,
        target=target,
        rule=rule,
        calls=calls,
        errors=errors,
        error_rate=errors / calls,
        p50_ms=p95 / 2,
        p95_ms=p95,
        p99_ms=p95 * 1.5,
        rate_per_min=calls / 60,
        **extra,
    )


def sample_map() -> ServiceMap:
    return ServiceMap(
        nodes=[
            node("frontend", spans=300, p95=240.0),
            node("checkout", spans=500, err=0.02, p95=180.0),
            node("payments", spans=200, err=0.08, p95=95.0),
            node("fulfillment", spans=100, p95=3000.0),
            node("postgres orders", "database", spans=0, p95=None),
            node("kafka orders.dlq", "messaging", spans=0, p95=None),
            node("api.stripe.com", "external", spans=0, p95=None),
            node("ledger", "database", spans=0, p95=None),
            node(NASTY, spans=7, p95=1.25),
            node("a.b", spans=1, p95=None),
            node("a-b", spans=1, p95=0.5),
        ],
        edges=[
            edge("frontend", "checkout", calls=100, p95=150.0),
            edge("checkout", "payments", calls=100, errors=8, p95=90.0),
            edge("checkout", "postgres orders", "virtual", calls=250, p95=3.25),
            edge("checkout", "kafka orders.dlq", "virtual", calls=3, p95=1.0),
            edge("payments", "api.stripe.com", "virtual", calls=100, errors=2, p95=80.0),
            # one peer named as two kinds: two arrows with the same numbers
            edge("payments", "ledger", "virtual", calls=5, p95=2.0, peer_kind="external"),
            edge("payments", "ledger", "virtual", calls=5, p95=2.0, peer_kind="database"),
            edge(
                "checkout",
                "fulfillment",
                "async",
                calls=100,
                p95=600.0,
                messaging_system="kafka",
                destination="orders",
                lag_p50_ms=20.0,
                lag_p95_ms=45.0,
                lag_p99_ms=70.0,
            ),
            edge(NASTY, "a.b", calls=7, p95=0.75),
            edge("a.b", "a-b", calls=1, p95=0.5),
            edge("frontend", "ghost service", calls=1, p95=1.0),  # endpoint missing from nodes
        ],
    )


def step(
    step_id: str,
    parent: str | None,
    service: str,
    operation: str,
    kind: str,
    offset: float,
    p95: float,
    *,
    calls_per_trace: float = 1.0,
    errors: int = 0,
    origin: int = 0,
    peer: str | None = None,
) -> Step:
    calls = int(100 * calls_per_trace)
    return Step(
        id=step_id,
        parent_id=parent,
        service=service,
        operation=operation,
        kind=kind,
        calls=calls,
        traces=100,
        calls_per_trace=calls_per_trace,
        errors=errors,
        error_rate=errors / calls,
        origin_errors=origin,
        p50_ms=p95 / 2,
        p95_ms=p95,
        p99_ms=p95 * 1.2,
        self_p50_ms=p95 / 4,
        start_offset_p50_ms=offset,
        critical_path_share=0.1,
        peer=peer,
    )


def sample_flow() -> FlowDetail:
    flow = Flow(
        id="frontend-post-orders",
        name='Order "Placement" #1',
        root_service="frontend",
        root_operation="POST /orders",
        traces=100,
        error_rate=0.08,
        traces_with_span_errors=10,
        p50_ms=120.0,
        p95_ms=240.0,
        p99_ms=300.0,
        rate_per_min=1.5,
    )
    steps = [
        step("root", None, "frontend", "POST /orders", "Server", 0.0, 240.0, errors=8),
        # Answered by checkout's step: drawn by that arrow, whatever peer it names.
        step(
            "fe-call",
            "root",
            "frontend",
            "POST /checkout",
            "Client",
            2.0,
            200.0,
            errors=8,
            peer="co",
        ),
        step("co", "fe-call", "checkout", "POST /checkout", "Server", 3.0, 180.0, errors=8),
        step("co-validate", "co", "checkout", "validate cart", "Internal", 4.0, 2.0),
        step(
            "co-db",
            "co",
            "checkout",
            "SELECT orders",
            "Client",
            10.0,
            3.25,
            calls_per_trace=2.5,
            peer="postgres/orders",
        ),
        step("co-pay", "co", "checkout", "POST /pay", "Client", 20.0, 95.0, errors=8),
        step("pay", "co-pay", "payments", "POST /pay", "Server", 21.0, 90.0, errors=8),
        step(
            "pay-ext",
            "pay",
            "payments",
            "POST api.stripe.com",
            "Client",
            22.0,
            80.0,
            errors=2,
            origin=2,
            peer="api.stripe.com",
        ),
        step("co-pub", "co", "checkout", "orders publish", "Producer", 120.0, 1.0),
        step("ful", "co-pub", "fulfillment", "orders process", "Consumer", 160.0, 600.0),
        step("nasty", "co", NASTY, NASTY_OP, "Server", 130.0, 1.25, errors=6, origin=6),
        step("nasty-2", "nasty", NASTY, "end", "Internal", 131.0, 0.5),
    ]
    # Given out of order: the diagrams must not depend on the input order.
    return FlowDetail(flow=flow, steps=list(reversed(steps)))


EMPTY_MAP = ServiceMap(nodes=[], edges=[])


def empty_flow() -> FlowDetail:
    return FlowDetail(flow=replace(sample_flow().flow, name="nothing yet"), steps=[])


# Single characters and words that mean something to Mermaid or DOT.
PIECES = list("abc XYZ09_-./:;#\"'<>[](){}|%&`*~=+@!?\\\nüñ字") + [
    "end",
    "style:x#1;",
    "classDef",
    "%%{init: {}}%%",
    "-->",
    " as ",
    "&#59;",
    "graph",
    "subgraph",
    "Note over",
]


def random_names(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 10))) for _ in range(count)]


def random_map(seed: int) -> ServiceMap:
    names = sorted(set(random_names(seed, 8)))
    kinds = ["service", "database", "messaging", "external"]
    nodes = [node(n, kinds[i % 4]) for i, n in enumerate(names)]
    edges = [
        edge(a, b, "async" if i % 3 == 0 else "rpc", messaging_system="k", destination=b)
        if i % 3 == 0
        else edge(a, b)
        for i, (a, b) in enumerate(zip(names, names[1:], strict=False))
    ]
    return ServiceMap(nodes=nodes, edges=edges)


def random_flow(seed: int) -> FlowDetail:
    names = random_names(seed + 1000, 10)
    kinds = ["Server", "Client", "Producer", "Consumer", "Internal", "Unspecified"]
    steps = [
        step(
            f"s{i}",
            f"s{(i - 1) // 2}" if i else None,
            names[i % 5],
            names[5 + i % 5],
            kinds[i % 6],
            float(i),
            1.0 + i,
            origin=i % 2,
            peer=names[(i + 3) % 10] if kinds[i % 6] == "Client" else None,
        )
        for i in range(10)
    ]
    return FlowDetail(flow=replace(sample_flow().flow, name=names[0]), steps=steps)


def big_map() -> ServiceMap:
    """More than Mermaid draws: 1000 services, 5000 edges with distinct call counts."""
    rng = random.Random(7)
    names = [f"service-{i:04d}" for i in range(1000)]
    edges = [
        edge(rng.choice(names), rng.choice(names), calls=10_000 - i, errors=i % 7)
        for i in range(5000)
    ]
    return ServiceMap(nodes=[node(n) for n in names], edges=edges)


def big_flow() -> FlowDetail:
    """3000 steps in a random tree, each with a distinct critical-path share."""
    rng = random.Random(8)
    steps = [
        replace(
            step(
                f"s{i}",
                f"s{rng.randrange(i)}" if i else None,
                f"service-{rng.randrange(300)}",
                f"operation number {i}",
                ("Server", "Client", "Internal")[i % 3],
                float(i),
                1.0 + i % 50,
            ),
            critical_path_share=1 / (i + 2),
        )
        for i in range(3000)
    ]
    return FlowDetail(flow=sample_flow().flow, steps=steps)


# Flows split by an attribute (--by), as the analyzer gives them: every step once per
# value, the same step ids in several groups.
BY = "wallet.provider"
NASTY_KEY = 'attr "k" #1; <x>'
# Values that mean something to Mermaid or DOT; "" is a trace without the attribute.
HOSTILE_VALUES = [
    NASTY,
    'say "hi"',
    "x;y #1; &amp;",
    "<b>end</b>",
    "line\nbreak\r\nthree",
    "ünïcode 字",
    "end",
    "style:x#1;",
    "%%{init: {}}%%",
    "",
]


def in_group(steps: list[Step], value: str, key: str = BY) -> list[Step]:
    return [replace(s, group={key: value}) for s in steps]


def grouped_flow() -> FlowDetail:
    """sample_flow by wallet.provider: ``visa`` with every step, ``paypal`` without the
    payment and NASTY steps and four times as slow, ``""`` (no attribute) the root and
    its call only (no answering step: drawn as a call to the peer it names)."""
    flow = sample_flow()
    visa = in_group([replace(s, traces=60) for s in flow.steps], "visa")
    paypal_ids = {"root", "fe-call", "co", "co-validate", "co-db", "co-pub", "ful"}
    paypal = in_group(
        [replace(s, traces=30, p95_ms=s.p95_ms * 4) for s in flow.steps if s.id in paypal_ids],
        "paypal",
    )
    unset = in_group([replace(s, traces=10) for s in flow.steps if s.id in ("root", "fe-call")], "")
    # Not in value order: the diagrams must sort the groups themselves.
    return FlowDetail(flow=flow.flow, steps=visa + unset + paypal)


def hostile_groups_flow() -> FlowDetail:
    """Three steps under each of HOSTILE_VALUES, split by a hostile attribute key."""
    flow = sample_flow()
    three = [s for s in flow.steps if s.id in ("root", "fe-call", "co")]
    steps = [s for value in HOSTILE_VALUES for s in in_group(three, value, NASTY_KEY)]
    return FlowDetail(flow=flow.flow, steps=steps)


MANY_VALUES = 20


def many_values_flow() -> FlowDetail:
    """MANY_VALUES values of two steps each; value i has 10 + (7i mod 20) traces, all
    distinct, so the busiest twelve are exactly those with 7i mod 20 >= 8."""
    flow = sample_flow()
    two = [s for s in flow.steps if s.id in ("root", "co")]
    two = [
        replace(s, parent_id=None) if s.id == "root" else replace(s, parent_id="root") for s in two
    ]
    steps = [
        s
        for i in range(MANY_VALUES)
        for s in in_group([replace(s, traces=10 + 7 * i % 20) for s in two], f"user-{i:02d}")
    ]
    return FlowDetail(flow=flow.flow, steps=steps)


def big_grouped_flow() -> FlowDetail:
    """big_flow's 3000 steps under ``a`` and its first 1500 (a sub-tree) under ``b``:
    more than Mermaid draws, the cut shared by two groups."""
    steps = big_flow().steps
    return FlowDetail(
        flow=big_flow().flow,
        steps=in_group(steps, "a", "tier") + in_group(steps[:1500], "b", "tier"),
    )


def fan_out_flow() -> FlowDetail:
    """One service calling 400 others, each call a CLIENT step answered by a SERVER
    step: too much text for Mermaid, and each client ranks above its answer."""
    steps = [step("root", None, "frontend", "GET /page", "Server", 0.0, 900.0)]
    for i in range(400):
        operation = f"GET /api/v1/resource-{i:03d}-with-a-long-enough-path"
        steps.append(step(f"c{i}", "root", "frontend", operation, "Client", 1.0 + i, 15.0 + i))
        steps.append(
            step(
                f"s{i}",
                f"c{i}",
                f"backend-service-number-{i:03d}",
                operation,
                "Server",
                1.5 + i,
                14.0 + i,
            )
        )
    return FlowDetail(flow=replace(sample_flow().flow, name="fan out"), steps=steps)


def client_service_flow() -> FlowDetail:
    """A service named like the diagram's client actor."""
    steps = [
        step("root", None, "client", "checkout", "Server", 0.0, 50.0),
        step("call", "root", "client", "POST /api", "Client", 1.0, 40.0),
        step("api", "call", "api", "POST /api", "Server", 2.0, 30.0),
    ]
    return FlowDetail(flow=replace(sample_flow().flow, name="client checkout"), steps=steps)


def mermaid_words_flow() -> FlowDetail:
    """Names Mermaid rewrites before parsing, and a flow named by blanks only."""
    steps = [
        step("root", None, " ", "", "Server", 0.0, 50.0),
        step("a", "root", "svc", "load classDef:main#v2", "Internal", 1.0, 40.0),
        step("b", "root", "svc", "wrap:retry payment", "Internal", 2.0, 30.0),
        step("c", "root", "svc", ":nowrap:x", "Internal", 3.0, 20.0),
    ]
    return FlowDetail(flow=replace(sample_flow().flow, name=" "), steps=steps)


def many_answers_flow() -> FlowDetail:
    """One CLIENT step ("GET", as HTTP client spans are named) answered by 600
    services, each doing some work of its own."""
    steps = [
        step("root", None, "gateway", "GET /", "Server", 0.0, 1000.0),
        step("get", "root", "gateway", "GET", "Client", 1.0, 900.0),
    ]
    for i in range(600):
        steps.append(
            step(f"s{i}", "get", f"backend-{i:03d}", f"GET /item/{i}", "Server", 2.0 + i, 50.0 + i)
        )
        steps.append(
            step(
                f"q{i}",
                f"s{i}",
                f"backend-{i:03d}",
                "SELECT item",
                "Client",
                3.0 + i,
                10.0,
                peer="postgresql",
            )
        )
    return FlowDetail(flow=replace(sample_flow().flow, name="many answers"), steps=steps)


def call_origin_flow() -> FlowDetail:
    """The sample flow with errors that start in frontend's call to checkout itself
    (refused or timed out before checkout answered), a step drawn by checkout's arrow."""
    detail = sample_flow()
    steps = [replace(s, origin_errors=3) if s.id == "fe-call" else s for s in detail.steps]
    return FlowDetail(flow=detail.flow, steps=steps)
