"""The service map as a Mermaid flowchart (``flowchart LR``).

Node shape by kind: service a rectangle, database a cylinder, messaging a
parallelogram (a queue), external a hexagon. Edge label: calls, P95 and error
percentage (async edges add the destination and the queue lag P95); async edges
are dashed. Nodes get a class ``ok``/``warn``/``bad`` by health, edges a
``linkStyle`` of the same colour.
"""

from __future__ import annotations

from flowscope.analyzer.diagrams.health import (
    COLOURS,
    DEFAULT_THRESHOLDS,
    LEVELS,
    Health,
    HealthThresholds,
)
from flowscope.analyzer.diagrams.labels import (
    diagram_ids,
    edge_summary,
    mermaid_text,
    node_summary,
)
from flowscope.analyzer.model import Edge, Node, NodeKind, ServiceMap

_SHAPES: dict[NodeKind, tuple[str, str]] = {
    "service": ('["', '"]'),
    "database": ('[("', '")]'),
    "messaging": ('[/"', '"/]'),
    "external": ('{{"', '"}}'),
}


def service_map_mermaid(
    service_map: ServiceMap, thresholds: HealthThresholds = DEFAULT_THRESHOLDS
) -> str:
    nodes = complete_nodes(service_map)
    ids = diagram_ids((n.id for n in nodes), "n_")
    lines = ["flowchart LR"]
    lines.extend(class_defs())
    for node in nodes:
        opening, closing = _SHAPES.get(node.kind, _SHAPES["service"])
        lines.append(
            f"    {ids[node.id]}{opening}{'<br/>'.join(mermaid_text(t) for t in node_summary(node))}{closing}"
        )
    edges = sorted_edges(service_map.edges)
    by_level: dict[Health, list[int]] = {"ok": [], "warn": [], "bad": []}
    for index, edge in enumerate(edges):
        arrow = "-.->" if edge.rule == "async" else "-->"
        label = mermaid_text(", ".join(edge_summary(edge)))
        lines.append(f'    {ids[edge.source]} {arrow}|"{label}"| {ids[edge.target]}')
        by_level[thresholds.level(edge.error_rate, edge.p95_ms)].append(index)
    for level, members in _classes(nodes, ids, thresholds).items():
        if members:
            lines.append(f"    class {','.join(members)} {level}")
    for level, indexes in by_level.items():
        if indexes:
            _fill, stroke = COLOURS[level]
            width = "2px" if level == "ok" else "3px"
            joined = ",".join(str(i) for i in indexes)
            lines.append(f"    linkStyle {joined} stroke:{stroke},stroke-width:{width}")
    return "\n".join(lines) + "\n"


def class_defs() -> list[str]:
    """One ``classDef`` per health level (the flowchart of a flow's steps uses them too)."""
    lines = []
    for level in LEVELS:
        fill, stroke = COLOURS[level]
        lines.append(f"    classDef {level} fill:{fill},stroke:{stroke},color:#212121")
    return lines


def complete_nodes(service_map: ServiceMap) -> list[Node]:
    """The map's nodes sorted by id, plus a bare service node for any edge end
    missing from them (a map filtered by flow may list edges to nodes it cut)."""
    nodes = {node.id: node for node in service_map.nodes}
    for edge in service_map.edges:
        for name in (edge.source, edge.target):
            if name not in nodes:
                nodes[name] = Node(id=name, kind="service", spans=0, error_rate=0.0, p95_ms=None)
    return [nodes[name] for name in sorted(nodes)]


def sorted_edges(edges: list[Edge]) -> list[Edge]:
    return sorted(edges, key=lambda e: (e.source, e.target, e.rule, e.destination or ""))


def _classes(
    nodes: list[Node], ids: dict[str, str], thresholds: HealthThresholds
) -> dict[Health, list[str]]:
    members: dict[Health, list[str]] = {"ok": [], "warn": [], "bad": []}
    for node in nodes:
        members[thresholds.level(node.error_rate, node.p95_ms)].append(ids[node.id])
    return members
