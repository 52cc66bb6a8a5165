"""A flow's step tree as a Mermaid ``flowchart TD``.

One node per step (service, operation, kind, calls per trace, P95, error
rate, origin errors), an edge from each step to its children (dashed into
consumers), a health class per step as in the service map.
"""

from __future__ import annotations

from flowscope.analyzer.diagrams.health import DEFAULT_THRESHOLDS, LEVELS, HealthThresholds
from flowscope.analyzer.diagrams.labels import diagram_ids, mermaid_text
from flowscope.analyzer.diagrams.limits import MERMAID_MAX_EDGES, fit_text, important_steps
from flowscope.analyzer.diagrams.mermaid_map import class_defs
from flowscope.analyzer.diagrams.step_tree import CALLER_KINDS, StepTree, step_summary, step_tree
from flowscope.analyzer.model import FlowDetail


def flow_flowchart_mermaid(
    detail: FlowDetail, thresholds: HealthThresholds = DEFAULT_THRESHOLDS
) -> str:
    """The whole step tree or, past Mermaid's limits (limits.py), the steps that
    matter most with their ancestors and a note saying how many were left out."""
    full = step_tree(detail.steps)
    ids = diagram_ids(full.steps, "s_")

    def draw(k: int) -> str:
        if k >= len(full.steps):
            return _render(full, ids, thresholds)
        keep = important_steps(full, k)
        tree = step_tree([s for s in detail.steps if s.id in keep])
        note = f"{len(full.steps) - len(keep)} more steps not drawn (Mermaid's size limits)"
        return _render(tree, ids, thresholds, note)

    # A tree of n steps has at most n - 1 edges: n <= 500 steps fit maxEdges.
    return fit_text(draw, len(full.steps), MERMAID_MAX_EDGES + 1)


def _render(
    tree: StepTree, ids: dict[str, str], thresholds: HealthThresholds, note: str | None = None
) -> str:
    lines = ["flowchart TD", *class_defs()]
    for step_id in tree.order:
        step = tree.steps[step_id]
        text = "<br/>".join(mermaid_text(line) for line in step_summary(step, tree))
        # Callers' steps are rounded so the two sides of a call read apart.
        opening, closing = ('("', '")') if step.kind in CALLER_KINDS else ('["', '"]')
        lines.append(f"    {ids[step_id]}{opening}{text}{closing}")
    for step_id in tree.order:
        step = tree.steps[step_id]
        parent = tree.parent(step)
        if parent is not None:
            arrow = "-.->" if tree.is_async(step) else "-->"
            lines.append(f"    {ids[parent.id]} {arrow} {ids[step_id]}")
    if note is not None:
        lines.append(f'    s__omitted>"{mermaid_text(note)}"]')  # no slug starts with "_"
    members: dict[str, list[str]] = {level: [] for level in LEVELS}
    for step_id in tree.order:
        step = tree.steps[step_id]
        members[thresholds.level(step.error_rate, step.p95_ms)].append(ids[step_id])
    for level in LEVELS:
        if members[level]:
            lines.append(f"    class {','.join(members[level])} {level}")
    return "\n".join(lines) + "\n"
