"""Graphviz DOT for the service map and for a flow's step tree.

The same shapes, labels and health colours as the Mermaid diagrams; node ids
are the quoted names themselves (DOT quotes anything), in sorted order. A flow
split by ``--by`` gets one cluster per value, as the Mermaid flowchart gets
one subgraph.
"""

from __future__ import annotations

from flowscope.analyzer.diagrams.groups import MAX_GROUPS, drawn_groups
from flowscope.analyzer.diagrams.health import COLOURS, DEFAULT_THRESHOLDS, HealthThresholds
from flowscope.analyzer.diagrams.labels import dot_string, edge_summaries, node_summary
from flowscope.analyzer.diagrams.mermaid_map import complete_nodes, sorted_edges
from flowscope.analyzer.diagrams.step_tree import (
    CALLER_KINDS,
    StepTree,
    step_summary,
    step_tree,
)
from flowscope.analyzer.model import FlowDetail, ServiceMap

_SHAPES = {"service": "box", "database": "cylinder", "messaging": "cds", "external": "hexagon"}
_FONT = 'fontname="Helvetica"'
_NOTE = 'shape=note, style=solid, color="#616161"'


def service_map_dot(
    service_map: ServiceMap, thresholds: HealthThresholds = DEFAULT_THRESHOLDS
) -> str:
    lines = [
        "digraph service_map {",
        "    rankdir=LR;",
        f"    node [{_FONT}, style=filled];",
        f"    edge [{_FONT}, fontsize=10];",
    ]
    for node in complete_nodes(service_map):
        fill, stroke = COLOURS[thresholds.level(node.error_rate, node.p95_ms)]
        attributes = [
            f"label={dot_string(chr(10).join(node_summary(node)))}",
            f"shape={_SHAPES.get(node.kind, 'box')}",
            f'fillcolor="{fill}"',
            f'color="{stroke}"',
        ]
        lines.append(f"    {dot_string(node.id)} [{', '.join(attributes)}];")
    edges = sorted_edges(service_map.edges)
    for edge, summary in zip(edges, edge_summaries(edges), strict=True):
        _fill, stroke = COLOURS[thresholds.level(edge.error_rate, edge.p95_ms)]
        attributes = [f"label={dot_string(chr(10).join(summary))}", f'color="{stroke}"']
        if edge.rule == "async":
            attributes.append("style=dashed")
        lines.append(
            f"    {dot_string(edge.source)} -> {dot_string(edge.target)} [{', '.join(attributes)}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def flow_dot(
    detail: FlowDetail,
    thresholds: HealthThresholds = DEFAULT_THRESHOLDS,
    *,
    max_groups: int = MAX_GROUPS,
) -> str:
    """The step tree; steps split by ``--by`` one ``cluster_N`` subgraph per value (at
    most ``max_groups`` values, groups.py), node ids ``"N/STEP_ID"`` as the same step
    is drawn in several clusters."""
    drawn = drawn_groups(detail.steps, max_groups)
    lines = [
        "digraph flow {",
        f"    label={dot_string(detail.flow.name)};",
        "    labelloc=t;",
        "    rankdir=TB;",
        f"    node [{_FONT}, shape=box, style=filled];",
    ]
    for index, group in enumerate(drawn.groups):  # without --by, one group of every step
        indent, prefix = ("        ", f"{index}/") if drawn.grouped else ("    ", "")
        if drawn.grouped:
            lines.append(f"    subgraph cluster_{index} {{")
            lines.append(f"        label={dot_string(group.label)};")
        lines.extend(_step_lines(step_tree(group.steps), thresholds, prefix, indent))
        if drawn.grouped:
            lines.append("    }")
    note = drawn.note()
    if note is not None:
        # Grouped node ids all start with a digit and "/": this one cannot collide.
        lines.append(f"    {dot_string('values not drawn')} [label={dot_string(note)}, {_NOTE}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _step_lines(
    tree: StepTree, thresholds: HealthThresholds, prefix: str, indent: str
) -> list[str]:
    """The tree's nodes, then its edges; node ids are ``prefix`` + step id."""
    lines: list[str] = []
    for step_id in tree.order:
        step = tree.steps[step_id]
        fill, stroke = COLOURS[thresholds.level(step.error_rate, step.p95_ms)]
        style = "rounded,filled" if step.kind in CALLER_KINDS else "filled"
        attributes = [
            f"label={dot_string(chr(10).join(step_summary(step, tree)))}",
            f'style="{style}"',
            f'fillcolor="{fill}"',
            f'color="{stroke}"',
        ]
        lines.append(f"{indent}{dot_string(prefix + step_id)} [{', '.join(attributes)}];")
    for step_id in tree.order:
        step = tree.steps[step_id]
        parent = tree.parent(step)
        if parent is not None:
            style = " [style=dashed]" if tree.is_async(step) else ""
            edge = f"{dot_string(prefix + parent.id)} -> {dot_string(prefix + step_id)}"
            lines.append(f"{indent}{edge}{style};")
    return lines
