"""Compare: per-step deltas between two traces, a trace and its flow's baseline, or a
flow in two windows / two ``service.version``s (DESIGN.md §4).

Steps are matched by step id (the path of (service, operation, kind) from the root),
so the same call in two traces or windows lines up. A trace's value for a step is
the median duration of its calls to it (its duration when called once); a flow's
is the step's P50 (baseline) or P95 (windows, versions). A step on one side only
has ``None`` on the other. Deltas are right − left; the biggest change comes first
(a one-sided step counts with its one value).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowscope.analyzer.milliseconds import ms_of_ns
from flowscope.analyzer.model import Step, StepDelta, kind_name
from flowscope.analyzer.steps import LoadedSpans, step_id


@dataclass(frozen=True)
class StepValue:
    label: str  # the step's path: "svc op > svc op"
    under: str  # the step it hangs under: "svc op" ('' for a root)
    service: str
    operation: str
    kind: str
    ms: float
    error_rate: float
    calls: int


def trace_step_values(loaded: LoadedSpans) -> dict[str, StepValue]:
    """Per step of the (one) loaded trace: median call duration, error rate, calls."""
    rows, tree = loaded.rows, loaded.tree
    names = [
        f"{service} {operation}"
        for service, operation, _kind in (loaded.ops[i] for i in loaded.op_idx.tolist())
    ]
    parents = tree.parent.tolist()
    labels = path_labels(parents, names)
    keys = tree.step_key.tolist()
    by_key: dict[int, list[int]] = {}
    for row, key in enumerate(keys):
        by_key.setdefault(key, []).append(row)
    out: dict[str, StepValue] = {}
    for key, members in by_key.items():
        first = members[0]
        service, operation, kind = loaded.ops[int(loaded.op_idx[first])]
        durations = rows.duration[members]
        errors = int(rows.is_error[members].sum())
        out[step_id(key)] = StepValue(
            label=labels[first],
            under=names[parents[first]] if parents[first] >= 0 else "",
            service=service,
            operation=operation,
            kind=kind,
            ms=ms_of_ns(np.median(durations)),
            error_rate=errors / len(members),
            calls=len(members),
        )
    return out


def flow_step_values(steps: list[Step], statistic: str) -> dict[str, StepValue]:
    """Per step of a flow: its ``p50_ms`` or ``p95_ms``, error rate, calls."""
    index = {step.id: row for row, step in enumerate(steps)}
    parents = [index.get(s.parent_id, -1) if s.parent_id is not None else -1 for s in steps]
    names = [f"{s.service} {s.operation}" for s in steps]
    labels = path_labels(parents, names)
    out: dict[str, StepValue] = {}
    for step, label, parent in zip(steps, labels, parents, strict=True):
        out[step.id] = StepValue(
            label=label,
            under=names[parent] if parent >= 0 else "",
            service=step.service,
            operation=step.operation,
            kind=step.kind,
            ms=float(getattr(step, statistic)),
            error_rate=step.error_rate,
            calls=step.calls,
        )
    return out


# A path deeper than this many steps is labelled by its root, "…" and its last steps:
# whole paths of a 10,000-deep trace took O(depth^2) memory (a compare printed 453 MB).
LABEL_STEPS = 12


def path_labels(parents: list[int], names: list[str]) -> list[str]:
    """Each node's ``names`` from its root down, joined by `` > `` (LABEL_STEPS at most)."""
    depth = [-1] * len(parents)
    root = [-1] * len(parents)
    for row in range(len(parents)):  # depth and root of each node, each found once
        chain: list[int] = []
        at = row
        while at >= 0 and depth[at] < 0:
            chain.append(at)
            at = parents[at]
        level, top = (depth[at], root[at]) if at >= 0 else (-1, -1)
        for node in reversed(chain):
            level += 1
            top = node if top < 0 else top
            depth[node], root[node] = level, top
    labels = []
    for row in range(len(parents)):
        whole = depth[row] < LABEL_STEPS
        tail: list[str] = []
        at = row
        while at >= 0 and (whole or len(tail) < LABEL_STEPS - 2):
            tail.append(names[at])
            at = parents[at]
        if not whole:
            tail += ["…", names[root[row]]]
        labels.append(" > ".join(reversed(tail)))
    return labels


def deltas(left: dict[str, StepValue], right: dict[str, StepValue]) -> list[StepDelta]:
    out: list[StepDelta] = []
    for key in sorted(set(left) | set(right)):
        a, b = left.get(key), right.get(key)
        some = a or b
        assert some is not None
        out.append(
            StepDelta(
                step=some.label,
                step_id=key,
                under=some.under,
                service=some.service,
                operation=some.operation,
                kind=kind_name(some.kind),
                left_ms=a.ms if a else None,
                right_ms=b.ms if b else None,
                # To the nanosecond the times are in: 83.7, not 83.70000000000002.
                delta_ms=round(b.ms - a.ms, 6) if a and b else None,
                left_error_rate=a.error_rate if a else None,
                right_error_rate=b.error_rate if b else None,
                error_rate_delta=(b.error_rate - a.error_rate) if a and b else None,
                left_calls=a.calls if a else None,
                right_calls=b.calls if b else None,
            )
        )

    def size(delta: StepDelta) -> float:
        if delta.delta_ms is not None:
            return abs(delta.delta_ms)
        return abs(delta.left_ms if delta.left_ms is not None else delta.right_ms or 0.0)

    return sorted(out, key=lambda d: (-size(d), d.step, d.kind, d.step_id))
