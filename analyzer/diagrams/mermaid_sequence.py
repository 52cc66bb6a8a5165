"""A flow as a Mermaid ``sequenceDiagram``.

Participants appear in first-call order, led by the ``client`` actor that
calls the root step. Each step is one arrow, in start-offset order (P50 of the
offset from the root's start), from its caller's service to its own, labelled
with the operation and P95; arrows into consumers are async (``-)``). A
CLIENT/PRODUCER step answered by a step in another service is drawn once, by
the answering step's arrow; a CLIENT step whose calls reach no traced service
is drawn from its service to the peer it calls (a database, a queue, an
external API: the map's virtual node). A note marks each step where errors
originate.
"""

from __future__ import annotations

from flowscope.analyzer.diagrams.labels import (
    count,
    diagram_ids,
    format_ms,
    format_percent,
    mermaid_text,
)
from flowscope.analyzer.diagrams.limits import fit_text, important_steps
from flowscope.analyzer.diagrams.step_tree import StepTree, step_tree
from flowscope.analyzer.model import FlowDetail, Step

_CLIENT_ID = "client"  # service ids all start with "p_", so this cannot collide


def flow_sequence_mermaid(detail: FlowDetail) -> str:
    """The whole flow or, past Mermaid's text limit (limits.py), the steps that
    matter most with their ancestors and a note saying how many were left out."""
    full = step_tree(detail.steps)
    names = [s.service for s in detail.steps] + [s.peer for s in detail.steps if s.peer]
    ids = diagram_ids(names, "p_")

    def draw(k: int) -> str:
        if k >= len(full.steps):
            return _render(detail.flow.name, full, ids)
        keep = important_steps(full, k)
        tree = step_tree([s for s in detail.steps if s.id in keep])
        note = f"{len(full.steps) - len(keep)} more steps not drawn (Mermaid's size limits)"
        return _render(detail.flow.name, tree, ids, note)

    return fit_text(draw, len(full.steps), len(full.steps))


def _render(name: str, tree: StepTree, ids: dict[str, str], note: str | None = None) -> str:
    pre_order = {step_id: index for index, step_id in enumerate(tree.order)}
    ordered = sorted(
        (tree.steps[i] for i in tree.order),
        key=lambda s: (s.start_offset_p50_ms, pre_order[s.id]),
    )
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
        if tree.calls_peer(step):
            caller, callee = participant(step.service), participant(step.peer)
        else:
            caller = participant(parent.service if parent is not None else None)
            callee = participant(step.service)
        arrow = "-)" if tree.is_async(step) else "->>"
        body.append(f"    {caller}{arrow}{callee}: {_message(step)}")
        if step.origin_errors > 0:
            # A failing call to a peer: the note spans the caller, where the span is.
            where = f"{caller},{callee}" if tree.calls_peer(step) else callee
            body.append(f"    Note over {where}: {_origin_note(step)}")
    if note is not None and participants:
        first = _CLIENT_ID if participants[0] == _CLIENT_ID else ids[participants[0]]
        body.append(f"    Note over {first}: {mermaid_text(note)}")
    title = mermaid_text(name)
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
        text += f", {count(step.calls_per_trace, 'call')} per trace"
    return mermaid_text(text + ")")


def _origin_note(step: Step) -> str:
    return mermaid_text(
        f"{count(step.origin_errors, 'error')} {'starts' if step.origin_errors == 1 else 'start'} "
        f"in {step.operation} "
        f"({format_percent(step.error_rate)} of calls fail)"
    )
