"""Diagrams: golden text, mermaid's own parser, a DOT parser, and the drawing rules.

Every Mermaid diagram built in this module is parsed by mermaid (under node and
jsdom, tests/analyzer/mermaid/parse.mjs) in ONE node run shared by the tests.
"""

from __future__ import annotations

import random
import re
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import pydot
import pytest

from flowscope.analyzer.diagrams import (
    HealthThresholds,
    flow_dot,
    flow_flowchart_mermaid,
    flow_sequence_mermaid,
    service_map_dot,
    service_map_mermaid,
)
from flowscope.analyzer.diagrams.labels import count, diagram_ids, dot_string, mermaid_text
from flowscope.analyzer.model import FlowDetail, ServiceMap
from tests.analyzer.diagram_records import (
    EMPTY_MAP,
    NASTY,
    NASTY_OP,
    big_flow,
    big_map,
    empty_flow,
    random_flow,
    random_map,
    sample_flow,
    sample_map,
)
from tests.analyzer.mermaid_check import run_mermaid_parser

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def mermaid_diagrams() -> dict[str, str]:
    """Every Mermaid diagram this module checks, by name."""
    diagrams = {
        "service_map": service_map_mermaid(sample_map()),
        "flow_sequence": flow_sequence_mermaid(sample_flow()),
        "flow_flowchart": flow_flowchart_mermaid(sample_flow()),
        "empty_map": service_map_mermaid(EMPTY_MAP),
        "empty_sequence": flow_sequence_mermaid(empty_flow()),
        "empty_flowchart": flow_flowchart_mermaid(empty_flow()),
    }
    diagrams["big_map"] = service_map_mermaid(big_map())
    diagrams["big_sequence"] = flow_sequence_mermaid(big_flow())
    diagrams["big_flowchart"] = flow_flowchart_mermaid(big_flow())
    for seed in range(6):
        diagrams[f"random_map_{seed}"] = service_map_mermaid(random_map(seed))
        diagrams[f"random_sequence_{seed}"] = flow_sequence_mermaid(random_flow(seed))
        diagrams[f"random_flowchart_{seed}"] = flow_flowchart_mermaid(random_flow(seed))
    return diagrams


# Known-bad text: proves the parser run can fail (a checker that accepts anything proves nothing).
BROKEN = {
    "broken_flowchart": 'flowchart LR\n    a["x"] -->|"unterminated| b\n',
    "broken_sequence": "sequenceDiagram\n    participant a as x\n    a->>b c\n",
}


@pytest.fixture(scope="module")
def parsed() -> dict[str, dict[str, Any]]:
    diagrams = {**mermaid_diagrams(), **BROKEN}
    results = run_mermaid_parser(list(diagrams.values()))
    return dict(zip(diagrams, results, strict=True))


@pytest.mark.parametrize("name", sorted(mermaid_diagrams()))
def test_mermaid_parses(name: str, parsed: dict[str, dict[str, Any]]) -> None:
    result = parsed[name]
    assert result["ok"], f"{name} does not parse: {result.get('error')}\n{mermaid_diagrams()[name]}"
    expected = "sequence" if "sequence" in name else "flowchart-v2"
    assert result["type"] == expected


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_mermaid_parser_rejects_broken_text(name: str, parsed: dict[str, dict[str, Any]]) -> None:
    assert not parsed[name]["ok"]
    assert "Parse error" in parsed[name]["error"] or "error" in parsed[name]["error"].lower()


def check_golden(name: str, text: str, update: bool) -> None:
    path = GOLDEN / name
    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.is_file(), f"missing golden file {path}; run pytest --update-golden"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


GOLDEN_DIAGRAMS = {
    "service_map.mmd": lambda: service_map_mermaid(sample_map()),
    "flow_sequence.mmd": lambda: flow_sequence_mermaid(sample_flow()),
    "flow_flowchart.mmd": lambda: flow_flowchart_mermaid(sample_flow()),
    "service_map.dot": lambda: service_map_dot(sample_map()),
    "flow.dot": lambda: flow_dot(sample_flow()),
}


@pytest.mark.parametrize("name", sorted(GOLDEN_DIAGRAMS))
def test_golden(name: str, update_golden: bool) -> None:
    check_golden(name, GOLDEN_DIAGRAMS[name](), update_golden)


def test_output_does_not_depend_on_input_order() -> None:
    shuffled_map = ServiceMap(
        nodes=list(reversed(sample_map().nodes)), edges=list(reversed(sample_map().edges))
    )
    assert service_map_mermaid(shuffled_map) == service_map_mermaid(sample_map())
    assert service_map_dot(shuffled_map) == service_map_dot(sample_map())
    flow = sample_flow()
    shuffled = FlowDetail(
        flow=flow.flow, steps=random.Random(3).sample(flow.steps, len(flow.steps))
    )
    assert flow_sequence_mermaid(shuffled) == flow_sequence_mermaid(flow)
    assert flow_flowchart_mermaid(shuffled) == flow_flowchart_mermaid(flow)
    assert flow_dot(shuffled) == flow_dot(flow)


def lines_of(text: str) -> list[str]:
    return re.split(r"<br\s*/?>", text)  # mermaid stores <br/> as <br>


def collapsed(name: str) -> str:
    return " ".join(name.split())  # labels are one line: newlines become spaces


def test_map_draws_every_name_shape_and_label(parsed: dict[str, dict[str, Any]]) -> None:
    from flowscope.analyzer.diagrams.labels import edge_summary
    from flowscope.analyzer.diagrams.mermaid_map import complete_nodes

    service_map = sample_map()
    result = parsed["service_map"]
    drawn = {lines_of(n["text"])[0]: n["shape"] for n in result["nodes"]}
    expected_shape = {
        "service": "square",
        "database": "cylinder",
        "messaging": "lean_right",
        "external": "hexagon",
    }
    assert drawn == {n.id: expected_shape[n.kind] for n in complete_nodes(service_map)}
    assert "ghost service" in drawn  # an edge end missing from the nodes is still drawn
    by_id = {n["id"]: lines_of(n["text"])[0] for n in result["nodes"]}
    edges = sorted(
        (by_id[e["from"]], by_id[e["to"]], e["text"], e["stroke"]) for e in result["edges"]
    )
    assert edges == sorted(
        (
            e.source,
            e.target,
            ", ".join(edge_summary(e)),
            "dotted" if e.rule == "async" else "normal",
        )
        for e in service_map.edges
    )
    checkout = next(n["text"] for n in result["nodes"] if n["text"].startswith("checkout"))
    assert lines_of(checkout) == ["checkout", "p95 180 ms, 2.0% err"]
    fulfillment = next(e for e in result["edges"] if by_id[e["to"]] == "fulfillment")
    assert fulfillment["text"] == "kafka orders, 100 calls, p95 600 ms, 0.0% err, lag p95 45.0 ms"


def test_map_health_classes_follow_thresholds() -> None:
    text = service_map_mermaid(sample_map())
    classes = dict(
        (level, set(members.split(",")))
        for members, level in re.findall(r"^    class (\S+) (\w+)$", text, re.M)
    )
    # payments: 8% errors (>= 5%); fulfillment: p95 3 s (>= 2 s); checkout: 2% errors (>= 1%).
    assert classes["bad"] == {"n_payments", "n_fulfillment"}
    assert classes["warn"] == {"n_checkout"}
    assert "n_frontend" in classes["ok"]
    strict = HealthThresholds(
        warn_error_rate=0.0, bad_error_rate=0.0, warn_p95_ms=0.0, bad_p95_ms=0.0
    )
    assert re.findall(
        r"^    class \S+ (\w+)$", service_map_mermaid(sample_map(), strict), re.M
    ) == ["bad"]
    links = dict(
        (colour, {int(i) for i in indexes.split(",")})
        for indexes, colour in re.findall(r"^    linkStyle (\S+) stroke:(#\w+)", text, re.M)
    )
    # Edges are drawn sorted by (source, target): index 3 is checkout -> payments (8% errors).
    assert links["#c62828"] == {3}
    with pytest.raises(ValueError, match="warn_error_rate and bad_error_rate"):
        HealthThresholds(warn_error_rate=0.5, bad_error_rate=0.1).validate()


def test_sequence_participants_arrows_and_notes(parsed: dict[str, dict[str, Any]]) -> None:
    result = parsed["flow_sequence"]
    assert result["title"] == 'Order "Placement" #1'
    assert [a["text"] for a in result["actors"]] == [
        "client",
        "frontend",
        "checkout",
        "postgres/orders",
        "payments",
        "api.stripe.com",
        NASTY,
        "fulfillment",
    ]
    name = {a["id"]: a["text"] for a in result["actors"]}
    drawn = [(name[m["from"]], name[m["to"]], m["text"], m["type"]) for m in result["messages"]]
    solid, async_, note = 0, 24, 2  # mermaid's LINETYPE values
    assert drawn == [
        ("client", "frontend", "POST /orders (p95 240 ms)", solid),
        # frontend's CLIENT step "POST /checkout" is drawn by checkout's answering step.
        ("frontend", "checkout", "POST /checkout (p95 180 ms)", solid),
        ("checkout", "checkout", "validate cart (p95 2.00 ms)", solid),
        # CLIENT steps no traced service answers: calls to the peer they name.
        ("checkout", "postgres/orders", "SELECT orders (p95 3.25 ms, 2.5 calls per trace)", solid),
        ("checkout", "payments", "POST /pay (p95 90.0 ms)", solid),
        ("payments", "api.stripe.com", "POST api.stripe.com (p95 80.0 ms)", solid),
        (
            "payments",
            "api.stripe.com",
            "2 errors start in POST api.stripe.com (2.0% of calls fail)",
            note,
        ),
        ("checkout", NASTY, f"{collapsed(NASTY_OP)} (p95 1.25 ms)", solid),
        (NASTY, NASTY, f"6 errors start in {collapsed(NASTY_OP)} (6.0% of calls fail)", note),
        (NASTY, NASTY, "end (p95 0.50 ms)", solid),
        ("checkout", "fulfillment", "orders process (p95 600 ms)", async_),
    ]


def test_flowchart_draws_each_step_once(parsed: dict[str, dict[str, Any]]) -> None:
    detail = sample_flow()
    result = parsed["flow_flowchart"]
    drawn = sorted(tuple(lines_of(n["text"])[:2]) for n in result["nodes"])
    assert drawn == sorted((s.service, collapsed(s.operation)) for s in detail.steps)
    ids = diagram_ids((s.id for s in detail.steps), "s_")
    by_node = {n["id"]: n for n in result["nodes"]}
    assert lines_of(by_node[ids["pay-ext"]]["text"])[-2:] == [
        "calls api.stripe.com",
        "2 origin errors",
    ]
    # Answered by checkout's step: the peer it names is not a call of its own.
    assert "calls co" not in lines_of(by_node[ids["fe-call"]]["text"])
    assert by_node[ids["co-pay"]]["shape"] == "round"  # a CLIENT step
    assert by_node[ids["pay"]]["shape"] == "square"
    edges = {(e["from"], e["to"]): e["stroke"] for e in result["edges"]}
    assert edges == {
        (ids[s.parent_id], ids[s.id]): "dotted" if s.kind == "Consumer" else "normal"
        for s in detail.steps
        if s.parent_id is not None
    }


def test_steps_whose_parent_is_missing_become_roots(parsed: dict[str, dict[str, Any]]) -> None:
    detail = sample_flow()
    orphaned = [replace(s, parent_id="gone") if s.id == "ful" else s for s in detail.steps]
    text = flow_flowchart_mermaid(FlowDetail(flow=detail.flow, steps=orphaned))
    assert "s_co_pub -.-> s_ful" not in text
    assert re.search(r"^    s_ful\[", text, re.M)
    sequence = flow_sequence_mermaid(FlowDetail(flow=detail.flow, steps=orphaned))
    assert "client-)p_fulfillment: orders process" in sequence


@pytest.mark.parametrize("seed", range(6))
def test_random_names_survive_escaping(seed: int, parsed: dict[str, dict[str, Any]]) -> None:
    service_map = random_map(seed)
    nodes = parsed[f"random_map_{seed}"]["nodes"]
    assert sorted(lines_of(n["text"])[0] for n in nodes) == sorted(
        collapsed(n.id) for n in service_map.nodes
    )
    flow = random_flow(seed)
    actors = [a["text"] for a in parsed[f"random_sequence_{seed}"]["actors"]]
    assert sorted(actors) == sorted({collapsed(s.service) for s in flow.steps} | {"client"})
    steps = parsed[f"random_flowchart_{seed}"]["nodes"]
    assert sorted(lines_of(n["text"])[1] for n in steps) == sorted(
        collapsed(s.operation) for s in flow.steps
    )


def test_big_map_keeps_the_busiest_edges_within_mermaid_limits(
    parsed: dict[str, dict[str, Any]],
) -> None:
    text = mermaid_diagrams()["big_map"]
    result = parsed["big_map"]
    assert len(text) <= 50_000  # mermaid's maxTextSize
    assert 0 < len(result["edges"]) < 500  # mermaid's maxEdges
    busiest = max(big_map().edges, key=lambda e: e.calls)
    ids = diagram_ids((n.id for n in big_map().nodes), "n_")
    assert (ids[busiest.source], ids[busiest.target]) in {
        (e["from"], e["to"]) for e in result["edges"]
    }
    drawn_calls = [int(e["text"].split(" ")[0]) for e in result["edges"]]
    # Every drawn edge is busier than every edge left out.
    assert min(drawn_calls) == 10_000 - len(drawn_calls) + 1
    note = next(n["text"] for n in result["nodes"] if n["id"] == "n__omitted")
    drawn_nodes = len(result["nodes"]) - 1
    assert note.startswith(
        f"{5000 - len(drawn_calls)} quieter edges and {1000 - drawn_nodes} nodes not drawn"
    )


def test_big_flow_keeps_important_steps_with_their_ancestors(
    parsed: dict[str, dict[str, Any]],
) -> None:
    flow = big_flow()
    by_operation = {s.operation: s for s in flow.steps}
    by_id = {s.id: s for s in flow.steps}
    result = parsed["big_flowchart"]
    assert len(mermaid_diagrams()["big_flowchart"]) <= 50_000
    assert len(result["edges"]) < 500
    drawn = {lines_of(n["text"])[1] for n in result["nodes"] if n["id"] != "s__omitted"}
    note = next(n["text"] for n in result["nodes"] if n["id"] == "s__omitted")
    assert note == f"{3000 - len(drawn)} more steps not drawn (Mermaid's size limits)"
    # The root and the steps with the largest critical-path share are drawn ...
    assert {"operation number 0", "operation number 1", "operation number 2"} <= drawn
    # ... each with every ancestor, so the tree stays connected.
    for operation in drawn:
        parent = by_operation[operation].parent_id
        assert parent is None or by_id[parent].operation in drawn
    assert len(result["edges"]) == len(drawn) - 1


def test_big_sequence_stays_within_mermaid_limits(parsed: dict[str, dict[str, Any]]) -> None:
    assert len(mermaid_diagrams()["big_sequence"]) <= 50_000
    messages = parsed["big_sequence"]["messages"]
    note = next(m["text"] for m in messages if "not drawn" in m["text"])
    left_out = int(note.split(" ")[0])
    arrows = [m["text"].split(" (p95")[0] for m in messages if m["type"] != 2]
    # Folded CLIENT steps have no arrow of their own, so arrows <= steps kept.
    assert 0 < len(arrows) <= 3000 - left_out < 3000
    assert arrows[0] == "operation number 0"  # the root step comes first


def test_mermaid_text_and_ids() -> None:
    assert mermaid_text('a "b" #c; <d>') == "a #34;b#34; #35;c#59; #60;d#62;"
    assert mermaid_text("line\none") == "line one"
    assert mermaid_text("lifestyle") == "lifestyl#101;"
    ids = diagram_ids(["a.b", "a-b", "end", "", "---", "lifestyle"], "n_")
    assert ids["end"] == "n_end"
    assert ids["lifestyle"] == "n_lifestyl_e"
    assert len(set(ids.values())) == 6
    assert all(re.fullmatch(r"n_\w+", i) for i in ids.values())
    assert diagram_ids(["a-b", "a.b"], "n_") == diagram_ids(["a.b", "a-b"], "n_")
    assert [count(1, "call"), count(4, "call"), count(2.5, "call"), count(10**6, "call")] == [
        "1 call",
        "4 calls",
        "2.5 calls",
        "1000000 calls",
    ]
    assert dot_string('say "hi"\\n\n') == '"say \\"hi\\"\\\\n\\n"'


def dot_unquote(text: str) -> str:
    assert text.startswith('"') and text.endswith('"')
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text[1:-1])


def dot_graphs(text: str) -> Any:
    # pydot's grammar still calls pyparsing's pre-3.0 names, which pyparsing 3.3
    # warns about; those warnings are about pydot, not about the DOT we check.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydot.graph_from_dot_data(text)


def parse_dot(text: str) -> Any:
    graphs = dot_graphs(text)
    assert graphs is not None and len(graphs) == 1, f"pydot cannot parse:\n{text}"
    return graphs[0]


def test_map_dot_parses_with_names_and_shapes() -> None:
    from flowscope.analyzer.diagrams.mermaid_map import complete_nodes

    graph = parse_dot(service_map_dot(sample_map()))
    nodes = {
        dot_unquote(n.get_name()): n
        for n in graph.get_nodes()
        if n.get_name() not in ("node", "edge")
    }
    expected = {n.id: n for n in complete_nodes(sample_map())}
    assert set(nodes) == set(expected)
    shapes = {"service": "box", "database": "cylinder", "messaging": "cds", "external": "hexagon"}
    for name, drawn in nodes.items():
        assert drawn.get("shape") == shapes[expected[name].kind]
        assert dot_unquote(drawn.get("label")).split("\n")[0] == name
    edges = sorted(
        (dot_unquote(e.get_source()), dot_unquote(e.get_destination()), e.get("style"))
        for e in graph.get_edges()
    )
    assert edges == sorted(
        (e.source, e.target, "dashed" if e.rule == "async" else None) for e in sample_map().edges
    )


def test_flow_dot_parses_with_every_step() -> None:
    detail = sample_flow()
    graph = parse_dot(flow_dot(detail))
    nodes = {
        dot_unquote(n.get_name()): dot_unquote(n.get("label"))
        for n in graph.get_nodes()
        if n.get_name() != "node"
    }
    assert nodes.keys() == {s.id for s in detail.steps}
    nasty = next(s for s in detail.steps if s.id == "nasty")
    assert nodes["nasty"].startswith(f"{NASTY}\n{NASTY_OP}\n")
    assert dot_unquote(graph.get("label")) == detail.flow.name
    edges = {
        (dot_unquote(e.get_source()), dot_unquote(e.get_destination())) for e in graph.get_edges()
    }
    assert edges == {(s.parent_id, s.id) for s in detail.steps if s.parent_id is not None}
    assert nasty.origin_errors == 6


def test_dot_parser_rejects_broken_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert dot_graphs('digraph { "a" -> ; }') is None
    capsys.readouterr()  # pydot prints the parse error
