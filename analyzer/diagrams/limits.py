"""Keeping Mermaid diagrams within what Mermaid agrees to draw.

Mermaid refuses a flowchart with 500 or more edges (``maxEdges``) and any
diagram longer than 50,000 characters (``maxTextSize``); both settings are on
its "secure" list, so a diagram cannot raise them for itself. A large map or
flow is therefore drawn in part: the busiest edges, or the steps that matter
most with their ancestors, and a note saying how much was left out. DOT output
has no such limits and is always complete.
"""

from __future__ import annotations

from collections.abc import Callable

from flowscope.analyzer.diagrams.step_tree import StepTree, step_tree
from flowscope.analyzer.model import Edge, Step

MERMAID_MAX_EDGES = 499  # mermaid: "500 edges found, but the limit is 500"
MERMAID_MAX_TEXT = 49_000  # mermaid's maxTextSize is 50,000


def js_length(text: str) -> int:
    """``text.length`` in JavaScript, what Mermaid compares with maxTextSize: UTF-16
    code units, two for a character past U+FFFF (counted as one, names in CJK
    Extension B made 75,000-unit diagrams Mermaid refused to draw)."""
    return len(text.encode("utf-16-le")) // 2


def fit_text(draw: Callable[[int], str], total: int, max_items: int = MERMAID_MAX_EDGES) -> str:
    """``draw(k)`` for the largest ``k <= min(total, max_items)`` found whose text fits."""
    k = min(total, max_items)
    text = draw(k)
    while (length := js_length(text)) > MERMAID_MAX_TEXT and k > 0:
        # Shrink in proportion to the overshoot, at least by one: a few tries at most.
        k = min(k - 1, int(k * MERMAID_MAX_TEXT / length * 0.95))
        text = draw(max(k, 0))
    return text


def busiest_edges(edges: list[Edge], k: int) -> list[Edge]:
    """The ``k`` edges with the most calls (errors, then names, break ties)."""
    ranked = sorted(edges, key=lambda e: (-e.calls, -e.errors, e.source, e.target, e.rule))
    return ranked[:k]


def important_steps(tree: StepTree, k: int) -> set[str]:
    """At most ``k`` step ids, closed under parents: the steps with the largest
    critical-path share, then the most time (calls x P50), each with its ancestors."""
    ranked = sorted(tree.steps.values(), key=_importance)
    keep: set[str] = set()
    for step in ranked:
        # A chain longer than the room left is skipped unwalked: walking every step's
        # whole ancestry in a 2,000-deep flow, with room for none of them, took minutes.
        chain = _ancestry(tree, step, keep, k - len(keep))
        if chain is None:
            continue
        in_chain = set(chain)
        # A call is kept with a step in another service that answers it (the most
        # important one, unless one is kept already): alone, the cut tree took it for a
        # call to an untraced peer ("unknown"). Its other answers wait their turn in
        # the ranking; all of them at once left no room for anything else when one
        # call was answered by hundreds of services.
        index = 0
        while index < len(chain):  # an answer appended may be a call answered elsewhere
            caller = tree.steps[chain[index]]
            index += 1
            if not tree.answered_elsewhere(caller):
                continue
            answers = sorted(
                (c for c in tree.child_steps(caller) if c.service != caller.service),
                key=_importance,
            )
            if not any(a.id in keep or a.id in in_chain for a in answers):
                chain.append(answers[0].id)
                in_chain.add(answers[0].id)
        if len(keep) + len(chain) <= k:
            keep.update(chain)
        if len(keep) >= k:
            break
    return keep


def fair_shares(sizes: list[int], k: int) -> list[int]:
    """``k`` items split among groups of ``sizes`` items: equal shares, and what a
    small group does not need goes to the others (every group whole when k allows)."""
    shares = [0] * len(sizes)
    left = k
    for position, i in enumerate(sorted(range(len(sizes)), key=lambda i: (sizes[i], i))):
        shares[i] = min(sizes[i], left // (len(sizes) - position))
        left -= shares[i]
    return shares


def cut_trees(trees: list[StepTree], k: int) -> list[tuple[StepTree, str | None]]:
    """Each tree whole or, past its fair share of ``k`` steps, the steps that matter
    most with their ancestors and a note saying how many were left out."""
    shares = fair_shares([len(tree.steps) for tree in trees], k)
    out: list[tuple[StepTree, str | None]] = []
    for tree, share in zip(trees, shares, strict=True):
        if share >= len(tree.steps):
            out.append((tree, None))
            continue
        keep = important_steps(tree, share)
        kept = step_tree([s for s in tree.steps.values() if s.id in keep])
        left_out = len(tree.steps) - len(keep)
        out.append((kept, f"{left_out} more steps not drawn (Mermaid's size limits)"))
    return out


def _importance(step: Step) -> tuple[float, float, str]:
    return (-step.critical_path_share, -step.calls * step.p50_ms, step.id)


def _ancestry(tree: StepTree, step: Step, keep: set[str], room: int) -> list[str] | None:
    """``step`` and those of its ancestors not yet kept (cycle-safe); None when they
    are more than ``room``."""
    chain: list[str] = []
    seen: set[str] = set()
    current: Step | None = step
    while current is not None and current.id not in keep and current.id not in seen:
        if len(chain) == room:
            return None
        chain.append(current.id)
        seen.add(current.id)
        current = tree.parent(current)
    return chain
