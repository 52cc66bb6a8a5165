"""A flow as a Mermaid ``sequenceDiagram``.

Participants appear in first-call order, led by the ``client`` actor that
calls the root step. Each step is one arrow, in start-offset order (P50 of the
offset from the root's start), from its caller's service to its own, labelled
with the operation and P95; arrows into consumers are async (``-)``). A
CLIENT/PRODUCER step answered by a step in another service is drawn once, by
the answering step's arrow; a CLIENT step whose calls reach no traced service
is drawn from its service to the peer it calls (a database, a queue, an
external API: the map's virtual node), and a PRODUCER step no consumer of the
trace takes, as an async arrow to its queue (its consumer may be in another
trace, joined by a link). A note marks each step where errors
originate. Steps split by ``--by`` get one ``alt``/``else`` block per value.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from flowscope.analyzer.diagrams.groups import MAX_GROUPS, drawn_groups
from flowscope.analyzer.diagrams.labels import (
    count,
    diagram_ids,
    format_ms,
    format_percent,
    mermaid_around,
    mermaid_text,
    shown_name,
)
from flowscope.analyzer.diagrams.limits import cut_trees, fit_text
from flowscope.analyzer.diagrams.step_tree import StepTree, step_tree
from flowscope.analyzer.model import FlowDetail, Step

_CLIENT_ID = "client"  # service ids all start with "p_", so this cannot collide
# A run of arrows: its block's title (None: not in a block), its steps, its size note.
_Section = tuple[str | None, StepTree, str | None]


def flow_sequence_mermaid(detail: FlowDetail, *, max_groups: int = MAX_GROUPS) -> str:
    """The whole flow or, past Mermaid's text limit (limits.py), the steps that
    matter most with their ancestors and a note saying how many were left out.

    Steps split by ``--by`` are drawn one ``alt``/``else`` block per value (at most
    ``max_groups`` values, groups.py), sharing one row of participants.
    """
    drawn = drawn_groups(detail.steps, max_groups)
    fulls = [step_tree(group.steps) for group in drawn.groups]
    labels = [group.label if drawn.grouped else None for group in drawn.groups]
    names = [s.service for s in detail.steps] + [s.peer for s in detail.steps if s.peer]
    ids = diagram_ids(names, "p_")
    total = sum(len(tree.steps) for tree in fulls)

    def draw(k: int) -> str:
        sections = [
            (label, tree, note)
            for label, (tree, note) in zip(labels, cut_trees(fulls, k), strict=True)
        ]
        return _render(detail.flow.name, sections, ids, drawn.note())

    return fit_text(draw, total, total)


def _render(
    name: str, sections: list[_Section], ids: dict[str, str], groups_note: str | None
) -> str:
    # None is the client actor: a service may be named "client" too (it was taken for
    # the actor, and its arrows went to an undeclared participant).
    participants: list[str | None] = []
    body: list[str] = []

    def participant(name: str | None) -> str:
        if name not in participants:
            participants.append(name)
        return _CLIENT_ID if name is None else ids[name]

    def note_over_first(note: str, indent: str) -> None:
        if participants:
            first = participants[0]
            body.append(
                f"{indent}Note over {_CLIENT_ID if first is None else ids[first]}: "
                f"{mermaid_text(note)}"
            )

    in_block = False
    for label, tree, note in sections:
        indent = "    "
        if label is not None:
            body.append(f"    {'else' if in_block else 'alt'} {mermaid_text(label)}")
            in_block, indent = True, "        "
        body.extend(_arrows(tree, participant, indent))
        if note is not None:
            note_over_first(note, indent)
    if in_block:
        body.append("    end")
    if groups_note is not None:
        note_over_first(groups_note, "    ")
    title = mermaid_text(name)
    # An empty title is a parse error; a flow of blank names has none.
    lines = ["sequenceDiagram"] + ([f"    title {title}"] if title.strip() else [])
    for key in participants:
        if key is None:
            lines.append(f"    actor {_CLIENT_ID} as client")
        else:
            lines.append(f"    participant {ids[key]} as {mermaid_text(shown_name(key))}")
    return "\n".join(lines + body) + "\n"


def _arrows(tree: StepTree, participant: Callable[[str | None], str], indent: str) -> list[str]:
    """One arrow per step in start order, never before its parent's, and a note where
    errors originate."""
    pre_order = {step_id: index for index, step_id in enumerate(tree.order)}
    # A step's P50 offset comes from the traces that have it, its parent's from all of
    # theirs: a child present in some traces only could come out earlier than its
    # parent (an order's handler drawn before the message that started it). So a step
    # starts no earlier than its parent; ties go in tree order, parents first.
    starts: dict[str, float] = {}
    for step_id in tree.order:  # pre-order: every parent before its children
        step = tree.steps[step_id]
        parent = tree.parent(step)
        # (A parent not met yet is in a cycle of hand-built steps, drawn last: no floor.)
        floor = starts.get(parent.id, -math.inf) if parent is not None else -math.inf
        starts[step_id] = max(step.start_offset_p50_ms, floor)
    ordered = sorted(
        (tree.steps[i] for i in tree.order),
        key=lambda s: (starts[s.id], pre_order[s.id]),
    )
    lines: list[str] = []
    # Calls drawn by the step that answers them, with errors that start in the call
    # itself (refused, timed out before any answer): their note follows that arrow.
    pending: dict[str, Step] = {}
    for step in ordered:
        if tree.answered_elsewhere(step):
            if step.origin_errors > 0:
                pending[step.id] = step
            continue
        if tree.nested_call(step) and step.peer is not None:
            # The outer call's arrow is this call's (one call, as in the map): errors
            # that start here get their note over it.
            if step.origin_errors > 0:
                top = step
                for up in tree.outer_calls(step):
                    if not tree.nested_call(top):
                        break
                    top = up
                callee = participant(top.peer if tree.calls_peer(top) else top.service)
                where = f"{participant(step.service)},{callee}"
                lines.append(f"{indent}Note over {where}: {_origin_note(step)}")
            continue
        parent = tree.parent(step)
        if tree.calls_peer(step):
            caller, callee = participant(step.service), participant(step.peer)
        else:
            caller = participant(parent.service if parent is not None else None)
            callee = participant(step.service)
        # A message to a queue no consumer in the trace takes is sent, not answered.
        sent = step.kind == "Producer" and tree.calls_peer(step)
        arrow = "-)" if tree.is_async(step) or sent else "->>"
        lines.append(f"{indent}{caller}{arrow}{callee}: {_message(step, _attempts(tree, step))}")
        # The calls this arrow answers: its parent's, and those of the CLIENT steps of
        # that service the parent is inside (an SDK's call over its HTTP call), whose
        # note otherwise came at the very end.
        for up in [parent, *tree.outer_calls(parent)] if parent is not None else []:
            call = pending.pop(up.id, None)
            if call is not None:
                lines.append(f"{indent}Note over {caller},{callee}: {_origin_note(call)}")
        if step.origin_errors > 0:
            # A failing call to a peer: the note spans the caller, where the span is.
            where = f"{caller},{callee}" if tree.calls_peer(step) else callee
            lines.append(f"{indent}Note over {where}: {_origin_note(step)}")
    for call in pending.values():  # no answering step drawn: over the caller
        lines.append(f"{indent}Note over {participant(call.service)}: {_origin_note(call)}")
    return lines


def _attempts(tree: StepTree, step: Step) -> float:
    """Calls per trace an arrow shows: the answering step's, or its caller's when this
    arrow alone draws that call and the caller made more (retries refused before any
    answer: 3 attempts, 1 answered, read as one call)."""
    parent = tree.parent(step)
    if (
        parent is not None
        and tree.answered_elsewhere(parent)
        and tree.child_steps(parent) == [step]
    ):
        return max(step.calls_per_trace, parent.calls_per_trace)
    return step.calls_per_trace


def _message(step: Step, calls_per_trace: float) -> str:
    numbers = f" (p95 {format_ms(step.p95_ms)}"
    if calls_per_trace > 1:
        numbers += f", {count(calls_per_trace, 'call')} per trace"
    return mermaid_around("", step.operation, numbers + ")")


def _origin_note(step: Step) -> str:
    return mermaid_around(
        f"{count(step.origin_errors, 'error')} {'starts' if step.origin_errors == 1 else 'start'} in ",
        step.operation,
        f" ({format_percent(step.error_rate)} of calls fail)",
    )
