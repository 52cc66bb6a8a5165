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
    edge_summaries,
    mermaid_text,
    node_summary,
)
from flowscope.analyzer.diagrams.limits import busiest_edges, fit_text
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
    """The whole map, or (past Mermaid's limits, see limits.py) its busiest edges,
    the nodes they join, and a note saying how many were left out."""
    nodes = complete_nodes(service_map)
    ids = diagram_ids((n.id for n in nodes), "n_")
    edges = sorted_edges(service_map.edges)

    def draw(k: int) -> str:
        if k >= len(edges):
            return _render(nodes, edges, ids, thresholds)
        kept = sorted_edges(busiest_edges(edges, k))
        joined = {e.source for e in kept} | {e.target for e in kept}
        kept_nodes = [n for n in nodes if n.id in joined]
        note = (
            f"{len(edges) - len(kept)} quieter edges and {len(nodes) - len(kept_nodes)} "
            "nodes not drawn (Mermaid's size limits); the JSON and DOT output have them all"
        )
        return _render(kept_nodes, kept, ids, thresholds, note)

    return fit_text(draw, len(edges))


def _render(
    nodes: list[Node],
    edges: list[Edge],
    ids: dict[str, str],
    thresholds: HealthThresholds,
    note: str | None = None,
) -> str:
    lines = ["flowchart LR"]
    lines.extend(class_defs())
    for node in nodes:
        opening, closing = _SHAPES.get(node.kind, _SHAPES["service"])
        lines.append(
            f"    {ids[node.id]}{opening}{'<br/>'.join(mermaid_text(t) for t in node_summary(node))}{closing}"
        )
    if note is not None:
        # Slugs never start with "_", so this id cannot be a node's.
        lines.append(f'    n__omitted>"{mermaid_text(note)}"]')
    by_level: dict[Health, list[int]] = {"ok": [], "warn": [], "bad": []}
    for index, (edge, summary) in enumerate(zip(edges, edge_summaries(edges), strict=True)):
        arrow = "-.->" if edge.rule == "async" else "-->"
        label = mermaid_text(", ".join(summary))
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
    return sorted(
        edges, key=lambda e: (e.source, e.target, e.rule, e.destination or "", e.peer_kind or "")
    )


def _classes(
    nodes: list[Node], ids: dict[str, str], thresholds: HealthThresholds
) -> dict[Health, list[str]]:
    members: dict[Health, list[str]] = {"ok": [], "warn": [], "bad": []}
    for node in nodes:
        members[thresholds.level(node.error_rate, node.p95_ms)].append(ids[node.id])
    return members
