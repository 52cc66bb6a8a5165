"""A flow as a Mermaid ``sequenceDiagram``.

Participants appear in first-call order, led by the ``client`` actor that
calls the root step. Each step is one arrow, in start-offset order (P50 of the
offset from the root's start), from its caller's service to its own, labelled
with the operation and P95; arrows into consumers are async (``-)``). A
CLIENT/PRODUCER step answered by a step in another service is drawn once, by
the answering step's arrow. A note marks each step where errors originate.
"""

from __future__ import annotations

from flowscope.analyzer.diagrams.labels import (
    diagram_ids,
    format_ms,
    format_percent,
    mermaid_text,
)
from flowscope.analyzer.diagrams.step_tree import step_tree
from flowscope.analyzer.model import FlowDetail, Step

_CLIENT_ID = "client"  # service ids all start with "p_", so this cannot collide


def flow_sequence_mermaid(detail: FlowDetail) -> str:
    tree = step_tree(detail.steps)
    pre_order = {step_id: index for index, step_id in enumerate(tree.order)}
    ordered = sorted(
        (tree.steps[i] for i in tree.order),
        key=lambda s: (s.start_offset_p50_ms, pre_order[s.id]),
    )
    ids = diagram_ids((s.service for s in detail.steps), "p_")
    participants: list[str] = []
    body: list[str] = []

    def participant(name: str | None) -> str:
        if name is None:
            if _CLIENT_ID not in participants:
                participants.append(_CLIENT_ID)
            return _CLIENT_ID
        if name not in participants:
            participants.append(name)
        return ids[name]

    for step in ordered:
        if tree.answered_elsewhere(step):
            continue
        parent = tree.parent(step)
        caller = participant(parent.service if parent is not None else None)
        callee = participant(step.service)
        arrow = "-)" if tree.is_async(step) else "->>"
        body.append(f"    {caller}{arrow}{callee}: {_message(step)}")
        if step.origin_errors > 0:
            body.append(f"    Note over {callee}: {_origin_note(step)}")
    title = mermaid_text(detail.flow.name)
    lines = ["sequenceDiagram", f"    title {title}"]
    for name in participants:
        if name == _CLIENT_ID:
            lines.append(f"    actor {_CLIENT_ID} as client")
        else:
            lines.append(f"    participant {ids[name]} as {mermaid_text(name)}")
    return "\n".join(lines + body) + "\n"


def _message(step: Step) -> str:
    text = f"{step.operation} (p95 {format_ms(step.p95_ms)}"
    if step.calls_per_trace > 1:
        text += f", {step.calls_per_trace:.3g} calls per trace"
    return mermaid_text(text + ")")


def _origin_note(step: Step) -> str:
    return mermaid_text(
        f"{step.origin_errors} errors start in {step.operation} "
        f"({format_percent(step.error_rate)} of calls fail)"
    )
