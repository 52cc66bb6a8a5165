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
    DEFAULT_THRESHOLDS,
    HealthThresholds,
    flow_dot,
    flow_flowchart_mermaid,
    flow_sequence_mermaid,
    service_map_dot,
    service_map_mermaid,
)
from flowscope.analyzer.diagrams.groups import MAX_GROUPS
from flowscope.analyzer.diagrams.labels import (
    NO_NAME,
    count,
    diagram_ids,
    dot_string,
    format_ms,
    mermaid_text,
)
from flowscope.analyzer.diagrams.limits import fair_shares
from flowscope.analyzer.model import FlowDetail, ServiceMap
from tests.analyzer.diagram_records import (
    BY,
    EMPTY_MAP,
    HOSTILE_VALUES,
    MANY_VALUES,
    NASTY,
    NASTY_OP,
    big_flow,
    big_grouped_flow,
    big_map,
    call_origin_flow,
    client_service_flow,
    edge,
    empty_flow,
    fan_out_flow,
    grouped_flow,
    hostile_groups_flow,
    many_answers_flow,
    many_values_flow,
    mermaid_words_flow,
    node,
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
    for name, detail in GROUPED_FLOWS.items():
        diagrams[f"{name}_sequence"] = flow_sequence_mermaid(detail())
        diagrams[f"{name}_flowchart"] = flow_flowchart_mermaid(detail())
        # Each group drawn on its own, without --by: what its block must hold.
        for index, alone in enumerate(groups_alone(detail())):
            diagrams[f"{name}_alone_{index}_sequence"] = flow_sequence_mermaid(alone)
            diagrams[f"{name}_alone_{index}_flowchart"] = flow_flowchart_mermaid(alone)
    for name, made in (
        ("fan_out", fan_out_flow),
        ("many_answers", many_answers_flow),
        ("client_service", client_service_flow),
        ("mermaid_words", mermaid_words_flow),
    ):
        diagrams[f"{name}_sequence"] = flow_sequence_mermaid(made())
        diagrams[f"{name}_flowchart"] = flow_flowchart_mermaid(made())
    diagrams["call_origin_sequence"] = flow_sequence_mermaid(call_origin_flow())
    diagrams["big_grouped_sequence"] = flow_sequence_mermaid(big_grouped_flow())
    diagrams["big_grouped_flowchart"] = flow_flowchart_mermaid(big_grouped_flow())
    return diagrams


GROUPED_FLOWS = {
    "grouped": grouped_flow,
    "hostile_groups": hostile_groups_flow,
    "many_values": many_values_flow,
}


def group_values(detail: FlowDetail) -> list[str]:
    """The flow's values in the order the diagrams draw them (sorted), written out
    here rather than taken from groups.py."""
    return sorted({value for s in detail.steps for value in s.group.values()})


def groups_alone(detail: FlowDetail) -> list[FlowDetail]:
    """Each value's steps as a flow without --by, in value order."""
    return [
        FlowDetail(
            flow=detail.flow,
            steps=[replace(s, group={}) for s in detail.steps if value in s.group.values()],
        )
        for value in group_values(detail)
    ]


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
    **{
        f"flow_{kind}_{name}.{ext}": (lambda draw=draw, detail=detail: draw(detail()))
        for name, detail in GROUPED_FLOWS.items()
        for kind, ext, draw in [
            ("sequence", "mmd", flow_sequence_mermaid),
            ("flowchart", "mmd", flow_flowchart_mermaid),
            ("dot", "dot", flow_dot),
        ]
    },
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
    from flowscope.analyzer.diagrams.labels import edge_summaries
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
        (e.source, e.target, ", ".join(summary), "dotted" if e.rule == "async" else "normal")
        for e, summary in zip(service_map.edges, edge_summaries(service_map.edges), strict=True)
    )
    # Calls naming one peer as two kinds drew two arrows with the same label.
    ledger = sorted(e["text"] for e in result["edges"] if by_id[e["to"]] == "ledger")
    assert ledger == [
        "as database, 5 calls, p95 2.00 ms, 0.0% err",
        "as external, 5 calls, p95 2.00 ms, 0.0% err",
    ]
    dot_labels = sorted(
        dot_unquote(e.get("label")).split("\n")[0]
        for e in parse_dot(service_map_dot(service_map)).get_edges()
        if dot_unquote(e.get_destination()) == "ledger"
    )
    assert dot_labels == ["as database", "as external"]
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


def test_errors_that_start_in_a_call_drawn_by_its_answer_get_their_note(
    parsed: dict[str, dict[str, Any]],
) -> None:
    """The note was dropped with the call's own arrow: the default diagram of a flow
    whose failures all start in one refused call showed no failure at all."""
    result = parsed["call_origin_sequence"]
    name = {a["id"]: a["text"] for a in result["actors"]}
    drawn = [(name[m["from"]], name[m["to"]], m["text"]) for m in result["messages"]]
    answer = drawn.index(("frontend", "checkout", "POST /checkout (p95 180 ms)"))
    note = ("frontend", "checkout", "3 errors start in POST /checkout (8.0% of calls fail)")
    assert drawn[answer + 1] == note
    assert drawn.count(note) == 1


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


def test_a_giant_name_neither_overflows_nor_empties_the_map() -> None:
    """One name of 20,000 quotes: before, 80,000 characters escaped, so the map kept
    dropping edges (that one sorted first) until none was drawn."""
    giant = '"' * 20_000
    label = mermaid_text(giant)
    assert label.endswith("#8230;") and len(label) <= 5 * 200
    names = ["a", "b", "c", giant]
    edges = [edge("a", "b"), edge("b", "c"), edge(giant, "a")]
    text = service_map_mermaid(ServiceMap(nodes=[node(n) for n in names], edges=edges))
    assert len(text) < 5_000 and "not drawn" not in text
    assert text.count("-->") + text.count("-.->") + text.count("==>") >= 3


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


# Flows split by an attribute (--by): one block per value.

ALT, ELSE, END = 12, 13, 14  # mermaid's LINETYPE values of a sequence diagram's alt block
# many_values_flow: value i has 10 + 7i mod 20 traces; the twelve busiest are drawn.
BUSIEST = [f"user-{i:02d}" for i in range(MANY_VALUES) if 7 * i % 20 >= 8]
MANY_NOTE = "8 more values of wallet.provider not drawn (drawn: the 12 with the most traces)"


def group_key(detail: FlowDetail) -> str:
    (key,) = {k for s in detail.steps for k in s.group}
    return key


def drawn_values(name: str) -> list[str]:
    return BUSIEST if name == "many_values" else group_values(GROUPED_FLOWS[name]())


def title(key: str, value: str) -> str:
    return f"{key} = {value}" if value else f'{key} = ""'


def sequence_blocks(
    messages: list[dict[str, Any]],
) -> tuple[list[str], list[list[dict[str, Any]]], list[dict[str, Any]]]:
    """The alt/else titles, the messages of each block, and the messages after ``end``."""
    assert messages and messages[0]["type"] == ALT, "a grouped diagram starts with its block"
    titles: list[str] = []
    inside: list[list[dict[str, Any]]] = []
    after: list[dict[str, Any]] = []
    ended = False
    for message in messages:
        if message["type"] in (ALT, ELSE):
            assert not ended and (message["type"] == ALT) == (not titles)
            titles.append(message["text"])
            inside.append([])
        elif message["type"] == END:
            assert not ended
            ended = True
        else:
            (after if ended else inside[-1]).append(message)
    assert ended
    return titles, inside, after


def named_messages(result: dict[str, Any], messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    name = {a["id"]: a["text"] for a in result["actors"]}
    return [(name[m["from"]], name[m["to"]], m["text"], m["type"]) for m in messages]


@pytest.mark.parametrize("name", sorted(GROUPED_FLOWS))
def test_grouped_sequence_has_one_block_per_value(
    name: str, parsed: dict[str, dict[str, Any]]
) -> None:
    detail = GROUPED_FLOWS[name]()
    key, values = group_key(detail), drawn_values(name)
    result = parsed[f"{name}_sequence"]
    titles, inside, after = sequence_blocks(result["messages"])
    assert titles == [collapsed(title(key, v)) for v in values]
    alones = [parsed[f"{name}_alone_{group_values(detail).index(v)}_sequence"] for v in values]
    # Each block holds exactly what its value's steps drawn without --by would show.
    for block, alone in zip(inside, alones, strict=True):
        assert named_messages(result, block) == named_messages(alone, alone["messages"])
    # One row of participants for all blocks, in first-call order over the blocks.
    first_calls: list[str] = []
    for alone in alones:
        first_calls += [a["text"] for a in alone["actors"] if a["text"] not in first_calls]
    assert [a["text"] for a in result["actors"]] == first_calls
    assert [m["text"] for m in after] == ([MANY_NOTE] if name == "many_values" else [])


@pytest.mark.parametrize("name", sorted(GROUPED_FLOWS))
def test_grouped_flowchart_has_one_subgraph_per_value(
    name: str, parsed: dict[str, dict[str, Any]]
) -> None:
    detail = GROUPED_FLOWS[name]()
    key, values = group_key(detail), drawn_values(name)
    result = parsed[f"{name}_flowchart"]
    subgraphs = result["subgraphs"]
    assert [s["title"] for s in subgraphs] == [collapsed(title(key, v)) for v in values]
    nodes = {n["id"]: n for n in result["nodes"]}
    drawn_steps = [s for s in detail.steps if s.group[key] in values]
    notes = ["s__groups"] if name == "many_values" else []
    # Every step of every drawn group is a node of its own: the same step id in two
    # groups must not merge into one node.
    assert len(nodes) == len(drawn_steps) + len(notes)
    in_subgraphs = [n for s in subgraphs for n in s["nodes"]]
    assert sorted(in_subgraphs + notes) == sorted(nodes)
    for index, (subgraph, value) in enumerate(zip(subgraphs, values, strict=True)):
        alone = parsed[f"{name}_alone_{group_values(detail).index(value)}_flowchart"]
        prefix = f"s{index}_"
        assert all(n.startswith(prefix) for n in subgraph["nodes"])
        drawn = {n[len(prefix) :]: (nodes[n]["text"], nodes[n]["shape"]) for n in subgraph["nodes"]}
        assert drawn == {n["id"][2:]: (n["text"], n["shape"]) for n in alone["nodes"]}
        edges = {
            (e["from"][len(prefix) :], e["to"][len(prefix) :], e["stroke"])
            for e in result["edges"]
            if e["from"].startswith(prefix)
        }
        assert edges == {(e["from"][2:], e["to"][2:], e["stroke"]) for e in alone["edges"]}
    # No edge joins two groups.
    assert all(e["from"].split("_")[0] == e["to"].split("_")[0] for e in result["edges"])
    if notes:
        assert nodes["s__groups"]["text"] == MANY_NOTE


def test_grouped_flowchart_health_classes_per_group() -> None:
    detail = grouped_flow()
    text = flow_flowchart_mermaid(detail)
    drawn = {
        member: level
        for members, level in re.findall(r"^    class (\S+) (\w+)$", text, re.M)
        for member in members.split(",")
    }
    expected: dict[str, str] = {}
    for index, value in enumerate(group_values(detail)):
        steps = [s for s in detail.steps if s.group[BY] == value]
        ids = diagram_ids((s.id for s in steps), f"s{index}_")
        expected |= {ids[s.id]: DEFAULT_THRESHOLDS.level(s.error_rate, s.p95_ms) for s in steps}
    assert drawn == expected
    # The same step, its own group's health: paypal's consumer (p95 2.4 s) is red,
    # visa's (600 ms) amber.
    assert (drawn["s1_ful"], drawn["s2_ful"]) == ("bad", "warn")


@pytest.mark.parametrize("name", sorted(GROUPED_FLOWS))
def test_grouped_dot_has_one_cluster_per_value(name: str) -> None:
    detail = GROUPED_FLOWS[name]()
    key, values = group_key(detail), drawn_values(name)
    graph = parse_dot(flow_dot(detail))
    clusters = graph.get_subgraphs()
    assert [c.get_name() for c in clusters] == [f"cluster_{i}" for i in range(len(values))]
    # DOT keeps line breaks (as \n), so labels are compared unflattened.
    labels = [dot_unquote(c.get("label")) for c in clusters]
    assert labels == [title(key, v).replace("\r\n", "\n") for v in values]
    for index, (cluster, value) in enumerate(zip(clusters, values, strict=True)):
        steps = [s for s in detail.steps if s.group[key] == value]
        nodes = {
            dot_unquote(n.get_name()): dot_unquote(n.get("label"))
            for n in cluster.get_nodes()
            if n.get_name() not in ("node", "edge", "graph")
        }
        assert set(nodes) == {f"{index}/{s.id}" for s in steps}
        for s in steps:  # each node shows its own group's numbers
            assert (
                nodes[f"{index}/{s.id}"].startswith(f"{s.service}\n{s.operation}\n{s.kind}, ")
                and f"p95 {format_ms(s.p95_ms)}," in nodes[f"{index}/{s.id}"]
            )
        edges = {
            (dot_unquote(e.get_source()), dot_unquote(e.get_destination()))
            for e in cluster.get_edges()
        }
        ids = {s.id for s in steps}
        assert edges == {
            (f"{index}/{s.parent_id}", f"{index}/{s.id}") for s in steps if s.parent_id in ids
        }
    assert graph.get_edges() == []  # every edge is inside its group's cluster
    outside = {dot_unquote(n.get_name()): n for n in graph.get_nodes() if n.get_name() != "node"}
    if name == "many_values":
        assert dot_unquote(outside["values not drawn"].get("label")) == MANY_NOTE
        assert outside["values not drawn"].get("shape") == "note"
    else:
        assert outside == {}


def test_many_values_are_capped_and_the_cap_can_be_raised() -> None:
    detail = many_values_flow()
    assert len(BUSIEST) == 12 == MAX_GROUPS
    assert len(group_values(detail)) == MANY_VALUES
    everything = flow_flowchart_mermaid(detail, max_groups=MANY_VALUES)
    assert len(re.findall(r"^    subgraph ", everything, re.M)) == MANY_VALUES
    assert "not drawn" not in everything
    assert "not drawn" not in flow_sequence_mermaid(detail, max_groups=MANY_VALUES)
    assert "values not drawn" not in flow_dot(detail, max_groups=MANY_VALUES)
    one = flow_sequence_mermaid(detail, max_groups=1)
    # The busiest value alone: 7i mod 20 == 19 for i = 17.
    assert re.findall(r"^    (?:alt|else) (.*)$", one, re.M) == [f"{BY} = user-17"]
    assert "19 more values of wallet.provider not drawn (drawn: the 1 with the most" in one
    with pytest.raises(ValueError, match="max_groups must be at least 1"):
        flow_dot(detail, max_groups=0)


def test_hostile_values_are_escaped() -> None:
    detail = hostile_groups_flow()
    assert len(group_values(detail)) == len(HOSTILE_VALUES)
    sequence, flowchart = flow_sequence_mermaid(detail), flow_flowchart_mermaid(detail)
    headers = re.findall(r"^    (?:alt|else) (.*)$", sequence, re.M)
    headers += re.findall(r'^    subgraph g\d+\["(.*)"\]$', flowchart, re.M)
    assert len(headers) == 2 * len(HOSTILE_VALUES)
    for header in headers:
        # Letters, digits, the punctuation Mermaid shows verbatim, and entity codes.
        assert re.fullmatch(r"(?:[\w .,:/()\-+=@*!?'%]|#\d+;)+", header), header
    assert "\r" not in sequence + flowchart


def test_grouped_output_does_not_depend_on_input_order() -> None:
    detail = grouped_flow()
    shuffled = FlowDetail(
        flow=detail.flow, steps=random.Random(5).sample(detail.steps, len(detail.steps))
    )
    for draw in (flow_sequence_mermaid, flow_flowchart_mermaid, flow_dot):
        assert draw(shuffled) == draw(detail)


def test_big_grouped_flow_shares_mermaid_limits_between_groups(
    parsed: dict[str, dict[str, Any]],
) -> None:
    detail = big_grouped_flow()
    sizes = [3000, 1500]  # tier = a, tier = b
    assert len(mermaid_diagrams()["big_grouped_flowchart"]) <= 50_000
    assert len(mermaid_diagrams()["big_grouped_sequence"]) <= 50_000
    result = parsed["big_grouped_flowchart"]
    assert len(result["edges"]) < 500
    nodes = {n["id"]: n for n in result["nodes"]}
    subgraphs = result["subgraphs"]
    assert [s["title"] for s in subgraphs] == ["tier = a", "tier = b"]
    by_id = {s.id: s for s in detail.steps}
    for index, (subgraph, size) in enumerate(zip(subgraphs, sizes, strict=True)):
        note = f"s{index}__omitted"
        steps = [lines_of(nodes[n]["text"])[1] for n in subgraph["nodes"] if n != note]
        assert 0 < len(steps) < size  # both groups get a share, neither fits whole
        assert nodes[note]["text"] == (
            f"{size - len(steps)} more steps not drawn (Mermaid's size limits)"
        )
        drawn = {f"s{op.split()[-1]}" for op in steps}
        assert all(by_id[s].parent_id is None or by_id[s].parent_id in drawn for s in drawn)
    sequence = parsed["big_grouped_sequence"]
    titles, inside, _after = sequence_blocks(sequence["messages"])
    assert titles == ["tier = a", "tier = b"]
    for block, size in zip(inside, sizes, strict=True):
        note = block[-1]["text"]
        assert note.endswith("more steps not drawn (Mermaid's size limits)")
        assert 0 < int(note.split(" ")[0]) < size


def test_fair_shares() -> None:
    assert fair_shares([10, 10, 10], 10) == [3, 3, 4]
    assert fair_shares([2, 50, 50], 30) == [2, 14, 14]
    assert fair_shares([2, 5], 7) == [2, 5]
    assert fair_shares([2, 5], 100) == [2, 5]
    assert fair_shares([4, 4], 0) == [0, 0]
    assert fair_shares([], 5) == []


def test_a_cut_flow_keeps_each_call_with_the_step_that_answers_it(
    parsed: dict[str, dict[str, Any]],
) -> None:
    """Past Mermaid's size limit a CLIENT step was kept without its SERVER answer and
    drawn as a call to a peer named "unknown"."""
    text = mermaid_diagrams()["fan_out_sequence"]
    assert "not drawn" in text and "unknown" not in text
    result = parsed["fan_out_sequence"]
    name = {a["id"]: a["text"] for a in result["actors"]}
    calls = [(name[m["from"]], name[m["to"]]) for m in result["messages"] if m["type"] == 0]
    assert len(calls) > 10
    assert all(to.startswith("backend-service") for caller, to in calls if caller == "frontend")
    assert "unknown" not in mermaid_diagrams()["fan_out_flowchart"]


def test_a_service_named_client_is_not_the_client_actor(
    parsed: dict[str, dict[str, Any]],
) -> None:
    """The service "client" was taken for the actor: its arrows went to an undeclared
    participant Mermaid invented (p_client)."""
    text = mermaid_diagrams()["client_service_sequence"]
    assert "    actor client as client\n    participant p_client as client\n" in text
    result = parsed["client_service_sequence"]
    name = {a["id"]: a["text"] for a in result["actors"]}
    assert set(name) == {"client", "p_client", "p_api"}
    drawn = [(m["from"], m["to"]) for m in result["messages"]]
    assert drawn == [("client", "p_client"), ("p_client", "p_api")]


def test_words_mermaid_rewrites_before_parsing_draw_as_written(
    parsed: dict[str, dict[str, Any]],
) -> None:
    """ "classDef:...#" lost the rest of its line, a leading "wrap:" vanished, and a
    blank flow name wrote a title Mermaid cannot parse."""
    result = parsed["mermaid_words_sequence"]
    texts = [m["text"].split(" (p95")[0] for m in result["messages"]]
    assert "load classDef:main#v2" in texts
    assert "wrap:retry payment" in texts and ":nowrap:x" in texts
    assert "title" not in mermaid_diagrams()["mermaid_words_sequence"]


def test_calls_per_trace_keep_their_size() -> None:
    """.3g wrote 1000.33 calls as 1e+03, and 1.0004 as "1 call"."""
    assert count(1000.33, "call") == "1000 calls"
    assert count(1.0004, "call") == "1.00 calls"
    assert count(3.29, "call") == "3.29 calls"


def test_names_past_the_basic_plane_count_twice_against_mermaids_limit() -> None:
    """Mermaid measures text in UTF-16 units; counted in code points, names of CJK
    Extension B letters (two units each) made diagrams of ~75,000 units that Mermaid
    replaced with "Maximum text size in diagram exceeded"."""
    astral = "".join(chr(0x20000 + i) for i in range(60))
    flow = big_flow()
    wide = replace(
        flow, steps=[replace(s, operation=f"{astral} {s.operation}") for s in flow.steps]
    )
    for text in (flow_sequence_mermaid(wide), flow_flowchart_mermaid(wide)):
        assert "not drawn" in text
        assert 40_000 < len(text.encode("utf-16-le")) // 2 <= 50_000


def test_a_call_answered_by_hundreds_of_services_leaves_room_for_the_rest(
    parsed: dict[str, dict[str, Any]],
) -> None:
    """Keeping a call with all its answers at once: when they were more than fit, the
    call was never kept, nor anything under it (a diagram of the root and a note)."""
    result = parsed["many_answers_sequence"]
    arrows = [m for m in result["messages"] if m["type"] == 0]
    assert len(arrows) > 200
    note = next(m["text"] for m in result["messages"] if "not drawn" in m["text"])
    assert int(note.split(" ")[0]) < 1000
    assert "unknown" not in mermaid_diagrams()["many_answers_sequence"]


def test_a_kept_answer_that_is_itself_a_call_keeps_its_own_answer() -> None:
    """The answer kept with a call could itself be a call answered elsewhere (a proxy's
    client span): it was kept without its own answer, and drawn to "unknown"."""
    from flowscope.analyzer.diagrams.limits import important_steps
    from flowscope.analyzer.diagrams.step_tree import step_tree
    from tests.analyzer.diagram_records import step

    steps = [
        replace(step("root", None, "a", "GET /", "Server", 0.0, 100.0), critical_path_share=0.5),
        replace(step("call", "root", "a", "GET", "Client", 1.0, 90.0), critical_path_share=0.9),
        replace(step("proxy", "call", "b", "GET", "Client", 2.0, 80.0), critical_path_share=0.1),
        replace(step("end", "proxy", "c", "GET /x", "Server", 3.0, 70.0), critical_path_share=0.0),
    ]
    steps += [
        replace(
            step(f"f{i}", "root", "a", f"work {i}", "Internal", 4.0, 1.0), critical_path_share=0.05
        )
        for i in range(10)
    ]
    tree = step_tree(steps)
    keep = important_steps(tree, 5)
    assert {"root", "call", "proxy", "end"} <= keep
    for step_id in keep:
        kept = tree.steps[step_id]
        if tree.answered_elsewhere(kept):
            assert any(c.id in keep for c in tree.child_steps(kept) if c.service != kept.service)


def test_a_step_is_never_drawn_before_its_parent() -> None:
    """A child in only some traces has its P50 offset from those, its parent from all:
    a consumer's handler (0.3 ms earlier at P50) was drawn before the message that
    started it, as the demo's failing-matching fault showed."""
    detail = sample_flow()
    # fulfillment's consumer step at 0 ms: before its producer (120 ms) and checkout (3).
    steps = [replace(s, start_offset_p50_ms=0.0) if s.id == "ful" else s for s in detail.steps]
    lines = flow_sequence_mermaid(FlowDetail(flow=detail.flow, steps=steps)).splitlines()

    def index(text: str) -> int:
        (found,) = [i for i, line in enumerate(lines) if text in line]
        return found

    # Drawn where its producer starts (120 ms): after the 22 ms call, before the 130 ms one.
    assert index("POST /checkout (p95 180 ms)") < index("orders process")
    assert index("POST api.stripe.com (p95") < index("orders process")
    assert index("orders process") + 1 == index("end (p95 1.25 ms)")


def test_steps_in_a_parent_cycle_are_drawn_not_a_crash() -> None:
    """Hand-built steps that are each other's parent: the start-order floor raised
    KeyError (the step tree keeps them, drawn last)."""
    detail = sample_flow()
    cycle = [
        replace(detail.steps[-1], id="cy-a", parent_id="cy-b", operation="ping"),
        replace(detail.steps[-1], id="cy-b", parent_id="cy-a", operation="pong"),
    ]
    text = flow_sequence_mermaid(FlowDetail(flow=detail.flow, steps=[*detail.steps, *cycle]))
    assert ": ping (p95" in text and ": pong (p95" in text
    # CLIENT steps of one service in a cycle: telling whether the chain is answered
    # elsewhere walked it for good.
    clients = [replace(step, kind="Client", peer="db", service="svc") for step in cycle]
    for draw in (flow_sequence_mermaid, flow_flowchart_mermaid, flow_dot):
        assert draw(FlowDetail(flow=detail.flow, steps=[*detail.steps, *clients]))


@pytest.mark.parametrize("room", [300, 301])
def test_cutting_a_deep_flow_walks_each_ancestry_at_most_as_far_as_the_room_left(
    room: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 2,000-deep chain of calls answered in another service (chains of 2) left one
    step of room when the budget was odd: every later step then walked its whole
    ancestry, through a list: 15 s for one diagram, 150 s at 4,000 deep, while the
    API's event loop waited."""
    from flowscope.analyzer.diagrams.limits import important_steps
    from flowscope.analyzer.diagrams.step_tree import StepTree, step_tree
    from tests.analyzer.diagram_records import step

    depth = 2000
    steps = [step("s0", None, "gw", "GET /deep", "Server", 0.0, 100.0)]
    for i in range(1, depth):
        kind = "Server" if i % 2 else "Client"
        steps.append(step(f"s{i}", f"s{i - 1}", f"svc{i % 2}", "hop", kind, i / 10, 50.0))
    tree = step_tree(steps)
    walked = [0]
    parent = StepTree.parent

    def counted(self: StepTree, of: Any) -> Any:
        walked[0] += 1
        return parent(self, of)

    monkeypatch.setattr(StepTree, "parent", counted)
    keep = important_steps(tree, room)
    assert len(keep) <= room and "s0" in keep
    assert walked[0] <= depth * (room + 2)  # bounded by the room, not by the depth


def test_a_chain_of_client_calls_is_one_arrow_as_in_the_map() -> None:
    """A gRPC client span over its HTTP client span drew two arrows into cart, and an
    SDK span over its HTTP span two peers, where the map counts one call each."""
    from dataclasses import replace as with_fields

    from tests.analyzer.diagram_records import step

    base = sample_flow()
    steps = [
        step("r", None, "frontend", "GET /cart", "Server", 0, 80),
        step("g", "r", "frontend", "GetCart", "Client", 1, 60, peer="cart"),
        step("h", "g", "frontend", "POST", "Client", 2, 55, peer="cart"),
        step("c", "h", "cart", "GetCart", "Server", 3, 50),
        step("q", "r", "frontend", "Query", "Client", 62, 10, peer="dynamodb"),
        step("p", "q", "frontend", "POST", "Client", 63, 8, peer="dynamodb.amazonaws.com"),
    ]
    text = flow_sequence_mermaid(with_fields(base, steps=steps))
    arrows = [line.strip() for line in text.splitlines() if "->>" in line]
    assert [a.split(":")[0] for a in arrows] == [
        "client->>p_frontend",
        "p_frontend->>p_cart",
        "p_frontend->>p_dynamodb",
    ]
    assert "amazonaws" not in text
    # Errors that start in the inner call get their note over the outer call's arrow.
    failing = [with_fields(st, origin_errors=2) if st.id == "p" else st for st in steps]
    text = flow_sequence_mermaid(with_fields(base, steps=failing))
    assert "Note over p_frontend,p_dynamodb: 2 errors start in POST" in text
    # Errors that start in an outer call answered through its inner one: their note
    # follows the answering arrow (it came at the very end).
    outer_fails = [with_fields(st, origin_errors=3) if st.id == "g" else st for st in steps]
    lines = flow_sequence_mermaid(with_fields(base, steps=outer_fails)).splitlines()
    arrow = next(i for i, line in enumerate(lines) if "p_frontend->>p_cart" in line)
    assert "Note over p_frontend,p_cart: 3 errors start in GetCart" in lines[arrow + 1]
    # An inner call under an outer one answered elsewhere is a call of its own.
    own = [*steps, step("x", "q", "dynamo-proxy", "Query", "Server", 62.5, 5)]
    text = flow_sequence_mermaid(with_fields(base, steps=own))
    assert "p_frontend->>p_dynamodb_amazonaws_com: POST" in text


def test_a_long_operation_is_cut_not_the_numbers_of_its_arrow_and_note() -> None:
    """Cut as a whole at 200 characters, a 230-character operation took the P95 off its
    arrow and the error share off its note: what they are drawn for."""
    from flowscope.analyzer.model import Flow
    from tests.analyzer.diagram_records import step

    long_name = "L" * 230
    steps = [
        step("root", None, "gw", "GET /", "Server", 0.0, 9.0),
        step("slow", "root", "gw", long_name, "Internal", 1.0, 5.0, errors=4, origin=4),
    ]
    flow = Flow("gw-get", "gw GET /", "gw", "GET /", 100, 0.0, 0, 9.0, 9.0, 9.0, 1.0)
    lines = flow_sequence_mermaid(FlowDetail(flow=flow, steps=steps)).splitlines()
    arrow = next(line for line in lines if "LLL" in line and "->>" in line)
    note = next(line for line in lines if "LLL" in line and "Note" in line)
    # 200 characters in all, the name cut with an ellipsis (#8230; as Mermaid text).
    assert arrow.endswith(": " + "L" * 185 + "#8230; (p95 5.00 ms)")
    assert note.endswith(" in " + "L" * 160 + "#8230; (4.0% of calls fail)")


def test_numbers_are_never_rounded_up_onto_a_health_threshold() -> None:
    """2 errors in 201 calls (0.995 %) read "1.0% err" in a green box, where 1 % is
    amber; a P95 of 499.6 ms read "500 ms" in green."""
    from flowscope.analyzer.diagrams.labels import format_ms, format_percent

    assert [format_percent(r) for r in (2 / 201, 0.0499999, 0.05, 0.0296, 0.01)] == [
        "0.9%",
        "4.9%",
        "5.0%",
        "3.0%",
        "1.0%",
    ]
    assert [format_ms(v) for v in (499.6, 500.0, 1999.7, 123.5)] == [
        "499 ms",
        "500 ms",
        "1999 ms",
        "124 ms",
    ]


def test_retries_refused_before_any_answer_show_on_the_arrow_of_the_answer() -> None:
    """3 attempts a trace, 2 refused and 1 answered: the arrow is the answering step's,
    which runs once a trace, so the retries did not show."""
    from flowscope.analyzer.model import Flow
    from tests.analyzer.diagram_records import step

    steps = [
        step("root", None, "gw", "POST /pay", "Server", 0.0, 50.0),
        step("call", "root", "gw", "POST /charge", "Client", 1.0, 40.0, calls_per_trace=3.0),
        step("charge", "call", "backend", "POST /charge", "Server", 2.0, 38.0),
    ]
    flow = Flow("gw-pay", "gw POST /pay", "gw", "POST /pay", 100, 0.0, 0, 50.0, 50.0, 50.0, 1.0)
    text = flow_sequence_mermaid(FlowDetail(flow=flow, steps=steps))
    assert "p_gw->>p_backend: POST /charge (p95 38.0 ms, 3 calls per trace)" in text
    # A caller whose calls two steps answer keeps each answer's own count.
    steps.append(step("other", "call", "audit", "POST /charge", "Server", 3.0, 5.0))
    text = flow_sequence_mermaid(FlowDetail(flow=flow, steps=steps))
    assert "p_gw->>p_backend: POST /charge (p95 38.0 ms)" in text


def test_a_message_its_own_service_consumes_is_not_also_sent_to_the_queue() -> None:
    """A PRODUCER step with a consumer child in the same service drew an arrow to the
    queue as well as the one into the consumer."""
    from flowscope.analyzer.model import Flow
    from tests.analyzer.diagram_records import step

    steps = [
        step("root", None, "worker", "GET /job", "Server", 0.0, 9.0),
        step("pub", "root", "worker", "publish jobs", "Producer", 1.0, 1.0, peer="rabbitmq/jobs"),
        step("take", "pub", "worker", "process jobs", "Consumer", 2.0, 5.0),
    ]
    flow = Flow("w-job", "worker GET /job", "worker", "GET /job", 100, 0.0, 0, 9.0, 9.0, 9.0, 1.0)
    text = flow_sequence_mermaid(FlowDetail(flow=flow, steps=steps))
    assert "rabbitmq" not in text and "p_worker-)p_worker: process jobs" in text


def test_names_of_only_whitespace_are_drawn_as_no_name() -> None:
    """A service without service.name is stored as '': its box, participant and
    arrows were drawn with no text at all."""
    from flowscope.analyzer.model import Flow
    from tests.analyzer.diagram_records import step

    steps = [
        step("root", None, "", "GET /a", "Server", 0.0, 9.0),
        step("mid", "root", " ", "\t", "Server", 1.0, 5.0),
        step("leaf", "mid", "b", "", "Server", 2.0, 1.0),
    ]
    flow = Flow("get-a", " GET /a", "", "GET /a", 100, 0.0, 0, 9.0, 9.0, 9.0, 1.0)
    detail = FlowDetail(flow=flow, steps=steps)
    sequence = flow_sequence_mermaid(detail)
    assert sequence.count(f" as {NO_NAME}") == 2
    assert re.search(rf"->>p_b: {re.escape(NO_NAME)} \(p95", sequence)
    flowchart = flow_flowchart_mermaid(detail)
    assert f'["{NO_NAME}<br/>{NO_NAME}<br/>Server' in flowchart
    assert f'["b<br/>{NO_NAME}<br/>Server' in flowchart
    blank_map = ServiceMap(nodes=[node(""), node("b")], edges=[edge("", "b")])
    assert f'["{NO_NAME}<br/>p95' in service_map_mermaid(blank_map)
    assert f'label="{NO_NAME}\\np95' in service_map_dot(blank_map)
    for result in run_mermaid_parser([sequence, flowchart, service_map_mermaid(blank_map)]):
        assert result["ok"], result


def test_a_service_calling_its_own_api_is_one_arrow_to_itself() -> None:
    """The CLIENT step was drawn as a call to an `unknown` participant, then its SERVER
    step as a second arrow from the service to itself."""
    from flowscope.analyzer.model import Flow
    from tests.analyzer.diagram_records import step

    steps = [
        step("root", None, "api", "GET /a", "Server", 0.0, 9.0),
        step("call", "root", "api", "GET /b", "Client", 1.0, 5.0, peer="unknown"),
        step("answer", "call", "api", "GET /b", "Server", 2.0, 4.0),
    ]
    flow = Flow("api-a", "api GET /a", "api", "GET /a", 100, 0.0, 0, 9.0, 9.0, 9.0, 1.0)
    detail = FlowDetail(flow=flow, steps=steps)
    sequence = flow_sequence_mermaid(detail)
    assert "unknown" not in sequence, sequence
    assert sequence.count("p_api->>p_api: GET /b") == 1, sequence
    assert "calls unknown" not in flow_flowchart_mermaid(detail)
    # Under a name many processes share by default it is a call to the peer, as mapped.
    shared = [replace(s, service="unknown_service:python") for s in steps]
    assert "->>p_unknown: GET /b" in flow_sequence_mermaid(FlowDetail(flow=flow, steps=shared))
