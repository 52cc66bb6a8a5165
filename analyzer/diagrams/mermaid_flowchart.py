"""A flow's step tree as a Mermaid ``flowchart TD``.

One node per step (service, operation, kind, calls per trace, P95, error
rate, origin errors), an edge from each step to its children (dashed into
consumers), a health class per step as in the service map. Steps split by
``--by`` get one ``subgraph`` per value, each holding that value's step tree.
"""

from __future__ import annotations

from flowscope.analyzer.diagrams.groups import MAX_GROUPS, drawn_groups
from flowscope.analyzer.diagrams.health import DEFAULT_THRESHOLDS, LEVELS, HealthThresholds
from flowscope.analyzer.diagrams.labels import diagram_ids, mermaid_text
from flowscope.analyzer.diagrams.limits import MERMAID_MAX_EDGES, cut_trees, fit_text
from flowscope.analyzer.diagrams.mermaid_map import class_defs
from flowscope.analyzer.diagrams.step_tree import CALLER_KINDS, StepTree, step_summary, step_tree
from flowscope.analyzer.model import FlowDetail

# Ids of the notes: step ids are a prefix and a slug, and no slug starts with "_".
_SIZE_NOTE = "_omitted"
_GROUPS_NOTE = "s__groups"


def flow_flowchart_mermaid(
    detail: FlowDetail,
    thresholds: HealthThresholds = DEFAULT_THRESHOLDS,
    *,
    max_groups: int = MAX_GROUPS,
) -> str:
    """The whole step tree or, past Mermaid's limits (limits.py), the steps that
    matter most with their ancestors and a note saying how many were left out.

    Steps split by ``--by`` are drawn one subgraph per value (at most
    ``max_groups`` values, groups.py); step ids are prefixed with the group's index
    (``s0_``, ``s1_``, ...) as the same step is drawn in several groups.
    """
    drawn = drawn_groups(detail.steps, max_groups)
    fulls = [step_tree(group.steps) for group in drawn.groups]
    prefixes = [f"s{i}_" if drawn.grouped else "s_" for i in range(len(fulls))]
    ids = [diagram_ids(tree.steps, prefix) for tree, prefix in zip(fulls, prefixes, strict=True)]
    total = sum(len(tree.steps) for tree in fulls)

    def draw(k: int) -> str:
        lines = ["flowchart TD", *class_defs()]
        members: dict[str, list[str]] = {level: [] for level in LEVELS}
        cut = cut_trees(fulls, k)
        for index, (group, (tree, note)) in enumerate(zip(drawn.groups, cut, strict=True)):
            indent = "    "
            if drawn.grouped:
                lines.append(f'    subgraph g{index}["{mermaid_text(group.label)}"]')
                indent = "        "
            lines.extend(_tree_lines(tree, ids[index], indent))
            if note is not None:
                lines.append(f'{indent}{prefixes[index]}{_SIZE_NOTE}>"{mermaid_text(note)}"]')
            if drawn.grouped:
                lines.append("    end")
            for step_id in tree.order:
                step = tree.steps[step_id]
                level = thresholds.level(step.error_rate, step.p95_ms)
                members[level].append(ids[index][step_id])
        groups_note = drawn.note()
        if groups_note is not None:
            lines.append(f'    {_GROUPS_NOTE}>"{mermaid_text(groups_note)}"]')
        for level in LEVELS:
            if members[level]:
                lines.append(f"    class {','.join(members[level])} {level}")
        return "\n".join(lines) + "\n"

    # A tree of n steps has at most n - 1 edges: n <= 500 steps fit maxEdges.
    return fit_text(draw, total, MERMAID_MAX_EDGES + 1)


def _tree_lines(tree: StepTree, ids: dict[str, str], indent: str) -> list[str]:
    """The tree's nodes, then its edges."""
    lines: list[str] = []
    for step_id in tree.order:
        step = tree.steps[step_id]
        text = "<br/>".join(mermaid_text(line) for line in step_summary(step, tree))
        # Callers' steps are rounded so the two sides of a call read apart.
        opening, closing = ('("', '")') if step.kind in CALLER_KINDS else ('["', '"]')
        lines.append(f"{indent}{ids[step_id]}{opening}{text}{closing}")
    for step_id in tree.order:
        step = tree.steps[step_id]
        parent = tree.parent(step)
        if parent is not None:
            arrow = "-.->" if tree.is_async(step) else "-->"
            lines.append(f"{indent}{ids[parent.id]} {arrow} {ids[step_id]}")
    return lines
