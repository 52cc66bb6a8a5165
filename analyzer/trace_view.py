"""One trace as a tree: every span with its self time, step, critical-path flag, and
the critical path itself (Jaeger's rules, see ``critical_path``).

Orphans (a span whose parent never arrived) start their own sub-tree, listed after
the root's, flagged ``orphan``; they are never on the critical path. With clock
skew (a child starting before its parent, or ending after it) offsets are clamped
at 0 and self time and the critical path use the child clipped to its parent.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flowscope.analyzer.critical_path import sections
from flowscope.analyzer.model import CriticalSegment, TraceSpan, TraceView
from flowscope.analyzer.steps import LoadedSpans, step_id
from flowscope.analyzer.window import format_ns
from flowscope.store.database import Database


def tree_rows(loaded: LoadedSpans) -> tuple[list[int], list[list[int]]]:
    """Rows depth first (children by start, then span row), and each row's children."""
    rows = loaded.rows
    n = len(rows.parent)
    children: list[list[int]] = [[] for _ in range(n)]
    order = np.lexsort((np.arange(n), rows.start))
    parents = loaded.tree.parent.tolist()
    for row in order.tolist():
        if parents[row] >= 0:
            children[parents[row]].append(row)
    tops = [r for r in order.tolist() if parents[r] < 0]
    # The trace root first, then detached sub-trees by start.
    tops.sort(key=lambda r: (not bool(rows.is_trace_root[r]), int(rows.start[r]), r))
    out: list[int] = []
    stack = list(reversed(tops))
    while stack:
        row = stack.pop()
        out.append(row)
        stack.extend(reversed(children[row]))
    return out, children


def critical_segments(
    loaded: LoadedSpans, children: list[list[int]], span_ids: list[str], origin_ns: int
) -> list[CriticalSegment]:
    rows, tree = loaded.rows, loaded.tree
    roots = np.flatnonzero(rows.is_trace_root)
    if len(roots) == 0:
        return []
    lo = tree.clipped_start.tolist()
    hi = tree.clipped_end.tolist()
    is_async = rows.is_async.tolist()
    eligible = [[c for c in kids if not is_async[c] and hi[c] > lo[c]] for kids in children]
    out = []
    for section in sections(int(roots[0]), eligible, lo, hi):
        service, operation, _kind = loaded.ops[int(loaded.op_idx[section.row])]
        out.append(
            CriticalSegment(
                span_id=span_ids[section.row],
                service=service,
                operation=operation,
                start_offset_ms=(section.start - origin_ns) / 1e6,
                duration_ms=(section.end - section.start) / 1e6,
            )
        )
    return out


def trace_view(
    database: Database,
    loaded: LoadedSpans,
    trace_id: str,
    flow_id: str | None,
    step_p50: dict[str, float],
    bounds: tuple[int, int],
) -> TraceView:
    """The view of the one trace in ``loaded``; ``step_p50``: step id -> baseline P50 ms."""
    rows, tree = loaded.rows, loaded.tree
    ids = database.fetch("tree_span_ids")
    span_ids = [str(row[1]) for row in ids]
    parent_ids = [str(row[2]) for row in ids]
    details: dict[str, tuple[Any, ...]] = {}
    for span, status, message, attributes, _start in database.fetch(
        "trace_span_details", {"lo": bounds[0], "hi": bounds[1], "trace_id": trace_id}
    ):
        details.setdefault(str(span), (status, message, dict(attributes or {})))
    order, children = tree_rows(loaded)
    origin = int(rows.start.min())
    spans: list[TraceSpan] = []
    for row in order:
        service, operation, kind = loaded.ops[int(loaded.op_idx[row])]
        status, message, attributes = details.get(span_ids[row], ("Unset", "", {}))
        key = step_id(int(tree.step_key[row]))
        start = int(rows.start[row])
        spans.append(
            TraceSpan(
                span_id=span_ids[row],
                parent_span_id=parent_ids[row],
                service=service,
                operation=operation,
                kind=kind,
                start=format_ns(start),
                start_offset_ms=(start - origin) / 1e6,
                duration_ms=int(rows.duration[row]) / 1e6,
                self_ms=int(tree.self_ns[row]) / 1e6,
                status=str(status),
                status_message=str(message),
                attributes={str(k): str(v) for k, v in sorted(attributes.items())},
                depth=int(tree.depth[row]),
                step_id=key if flow_id is not None else None,
                step_p50_ms=step_p50.get(key),
                on_critical_path=bool(tree.on_critical_path[row]),
                orphan=parent_ids[row] != "" and int(tree.parent[row]) < 0,
                children=[span_ids[c] for c in children[row]],
            )
        )
    roots = np.flatnonzero(rows.is_trace_root)
    if len(roots):
        duration_ms = int(rows.duration[int(roots[0])]) / 1e6
    else:
        duration_ms = (int((rows.start + rows.duration).max()) - origin) / 1e6
    return TraceView(
        trace_id=trace_id,
        flow=flow_id,
        duration_ms=duration_ms,
        spans=spans,
        critical_path=critical_segments(loaded, children, span_ids, origin),
    )
