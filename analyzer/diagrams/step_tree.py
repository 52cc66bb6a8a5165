"""A flow's steps as a tree, in the order the diagrams draw them."""

from __future__ import annotations

from dataclasses import dataclass, field

from flowscope.analyzer.diagrams.labels import count, format_ms, format_percent, shown_name
from flowscope.analyzer.model import Step
from flowscope.analyzer.span_attributes import shared_default_name
from flowscope.analyzer.steps import sibling_key, top_key

# Kinds whose step is the caller's side of a call; when a child step in another
# service answers it, diagrams draw the call once (see docs/diagrams.md).
CALLER_KINDS = frozenset({"Client", "Producer"})


@dataclass
class StepTree:
    steps: dict[str, Step]
    children: dict[str | None, list[str]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # pre-order, siblings by start offset
    _answered: dict[str, bool] = field(default_factory=dict)  # answered_elsewhere's

    def parent(self, step: Step) -> Step | None:
        return self.steps.get(step.parent_id) if step.parent_id is not None else None

    def child_steps(self, step: Step) -> list[Step]:
        return [self.steps[i] for i in self.children.get(step.id, [])]

    def is_async(self, step: Step) -> bool:
        """A consumer picks work off a queue: its link to its parent is asynchronous."""
        parent = self.parent(step)
        return step.kind == "Consumer" or (parent is not None and parent.kind == "Producer")

    def answered_elsewhere(self, step: Step) -> bool:
        """A CLIENT/PRODUCER step whose call another service's step answers: a child
        step of another service, a SERVER child step (a service calling its own API),
        or (a CLIENT step over CLIENT steps of its service, an SDK's call over its HTTP
        call) inner CLIENT steps all answered so. As the map counts calls
        (analyzer/derived_edges.py, ``_virtual_calls``)."""
        if step.kind not in CALLER_KINDS:
            return False
        answered = self._answered
        # Deepest first, without recursion (chains of CLIENT steps can be long), each
        # step once per tree.
        todo, order, met = [step], [], set()
        while todo:
            current = todo.pop()
            if current.id not in answered and current.id not in met:  # (hand-built
                met.add(current.id)  # steps may have parent cycles)
                order.append(current)
                todo.extend(self._inner_calls(current))
        for current in reversed(order):
            kids = self.child_steps(current)
            inner = self._inner_calls(current)
            answered[current.id] = any(c.service != current.service for c in kids) or (
                current.kind == "Client"
                and (
                    # A service calling its own API: its SERVER step answers the call
                    # (not under a name many processes share by default, as the map
                    # counts).
                    (
                        not shared_default_name(current.service)
                        and any(c.kind == "Server" for c in kids)
                    )
                    or (bool(inner) and all(answered.get(c.id, False) for c in inner))
                )
            )
        return answered[step.id]

    def _inner_calls(self, step: Step) -> list[Step]:
        if step.kind != "Client":
            return []
        return [
            c for c in self.child_steps(step) if c.kind == "Client" and c.service == step.service
        ]

    def outer_calls(self, step: Step) -> list[Step]:
        """The CLIENT steps of ``step``'s service that a CLIENT ``step`` is inside,
        nearest first (an SDK's call over its HTTP call); each once, on a cycle too."""
        outer: list[Step] = []
        seen = {step.id}
        current, parent = step, self.parent(step)
        while (
            parent is not None
            and parent.id not in seen
            and current.kind == parent.kind == "Client"
            and parent.service == current.service
        ):
            outer.append(parent)
            seen.add(parent.id)
            current, parent = parent, self.parent(parent)
        return outer

    def nested_call(self, step: Step) -> bool:
        """A CLIENT step under a CLIENT step of its service that calls for it: the
        outer one, answered by no other service, draws the call (one call, as the
        map counts it). Under an outer step answered elsewhere, it is a call of its
        own."""
        outer = self.outer_calls(step)
        return bool(outer) and not self.answered_elsewhere(outer[0])

    def calls_peer(self, step: Step) -> bool:
        """A CLIENT step drawn as a call to its peer: it names one, no other service's
        step answers it, and it is not the inner call of an outer one (which is drawn
        for both: the map counts one call). A PRODUCER step drawn as a message to its
        queue: no step of the trace takes it."""
        return (
            step.peer is not None
            and not self.answered_elsewhere(step)
            and not self.nested_call(step)
            # A message taken in the trace, even by its own service, goes to its taker.
            and not (step.kind == "Producer" and self.child_steps(step))
        )


def step_tree(steps: list[Step]) -> StepTree:
    """Steps whose parent is missing from ``steps`` are treated as roots."""
    by_id = {step.id: step for step in steps}
    tree = StepTree(by_id)
    for step in steps:
        parent = step.parent_id if step.parent_id in by_id else None
        tree.children.setdefault(parent, []).append(step.id)
    for parent_id, ids in tree.children.items():
        # As the steps are listed (steps.tree_order): roots first among the top ones.
        ids.sort(key=lambda i: (top_key if parent_id is None else sibling_key)(by_id[i]))
    seen: set[str] = set()
    stack = list(reversed(tree.children.get(None, [])))
    # Steps on a parent cycle are unreachable from a root; they still get drawn, last.
    stragglers = sorted(by_id, key=lambda i: sibling_key(by_id[i]))
    while stack or len(seen) < len(by_id):
        if not stack:
            stack.append(next(i for i in stragglers if i not in seen))
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        tree.order.append(current)
        stack.extend(reversed(tree.children.get(current, [])))
    return tree


def step_summary(step: Step, tree: StepTree) -> list[str]:
    """The lines a step's box shows, shared by the Mermaid and DOT flowcharts."""
    lines = [
        shown_name(step.service),
        shown_name(step.operation),
        # A kind outside the enum is stored as '': no leading ", " for it.
        ", ".join(filter(None, [step.kind, f"{count(step.calls_per_trace, 'call')} per trace"])),
        f"p95 {format_ms(step.p95_ms)}, {format_percent(step.error_rate)} err",
    ]
    if tree.calls_peer(step):
        lines.append(f"calls {step.peer}")
    if step.origin_errors:
        lines.append(count(step.origin_errors, "origin error"))
    return lines
