"""A flow's steps: its traces' spans merged into one call tree (DESIGN.md §4).

A step is (parent step, service, operation, kind): spans whose paths from their
trace's root have the same (service, operation, kind) at every level. Per step:
calls, traces that contain it, calls per trace (retries show as > 1), errors,
origin errors (error spans without an erroring child), P50/P95/P99 of duration,
P50 of self time and of start offset from the trace root, and the critical-path
share: the mean over the flow's traces of the fraction of the trace's critical
path spent in the step (0 for traces without it; shares sum to 1 over steps).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from flowscope.analyzer.model import Step
from flowscope.analyzer.span_tree import SpanRows, SpanTree, build
from flowscope.store.database import Database

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def op_key(service: str, operation: str, kind: str) -> int:
    """Stable 64-bit key of (service, operation, kind): step ids must survive restarts."""
    digest = hashlib.blake2b(f"{service}\x1f{operation}\x1f{kind}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


def step_id(key: int) -> str:
    return f"{key:016x}"


@dataclass(frozen=True)
class LoadedSpans:
    """The selected traces' spans (sel_traces) with their tree facts; row i is Row i."""

    rows: SpanRows
    tree: SpanTree
    op_idx: I64
    ops: list[tuple[str, str, str]]  # (service, operation, kind) by op index
    trace_ids: list[str]
    trace_groups: list[str]  # --by value of each trace ('' without --by)
    trace_root_start: I64


def load_selected(database: Database) -> LoadedSpans | None:
    """Load the spans of ``sel_traces`` (with ``sel_groups``) and build their trees.

    Must run inside ``read_snapshot``; None when the selection has no traces.
    """
    count, lo, hi = database.fetch("sel_range")[0]
    if not count:
        return None
    database.fetch("sel_spans", {"lo": lo, "hi": hi})
    columns = database.fetch_arrow("sel_span_columns")
    n = columns.num_rows
    if n == 0:
        return None
    place = columns.column("Row").to_numpy()
    if int(place.max()) != n - 1:  # rowids of a fresh temp table are contiguous
        raise AssertionError(f"sel_spans rows are not numbered 0..{n - 1}")

    def col(name: str, dtype: Any) -> Any:
        out = np.empty(n, dtype=dtype)
        out[place] = columns.column(name).to_numpy()
        return out

    ops = [(str(s), str(o), str(k)) for _i, s, o, k in database.fetch("sel_span_ops")]
    traces = database.fetch("sel_span_traces")
    trace_ids = [str(row[1]) for row in traces]
    trace_groups = [str(row[3]) for row in traces]
    op_idx = col("OpIdx", np.int64)
    op_keys = np.array([op_key(*op) for op in ops], dtype=np.uint64)
    trace = col("TraceIdx", np.int64)
    start = col("Start", np.int64)
    is_trace_root = col("IsTraceRoot", bool)
    # The root's start per trace (a selected trace always has its root; the earliest
    # span stands in should it be missing).
    root_start = np.full(len(trace_ids), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(root_start, trace, start)
    root_start[trace[is_trace_root]] = start[is_trace_root]
    rows = SpanRows(
        trace=trace,
        parent=col("ParentRow", np.int64),
        op_key=op_keys[op_idx],
        start=start,
        duration=col("Duration", np.int64),
        is_error=col("IsError", bool),
        is_async=col("IsAsync", bool),
        is_trace_root=is_trace_root,
    )
    tree = build(rows, root_start)
    return LoadedSpans(rows, tree, op_idx, ops, trace_ids, trace_groups, root_start)


def segment_quantile(sorted_values: F64, starts: I64, lengths: I64, q: float) -> F64:
    """Linear-interpolation quantile (quantile_cont) of each sorted segment."""
    rank = (lengths - 1) * q
    below = np.floor(rank).astype(np.int64)
    above = np.ceil(rank).astype(np.int64)
    lo = sorted_values[starts + below]
    hi = sorted_values[starts + above]
    result: F64 = lo + (hi - lo) * (rank - below)
    return result


def flow_steps(loaded: LoadedSpans, by: str | None = None) -> list[Step]:
    """The steps of every --by group, each group's in tree order (depth first)."""
    rows, tree = loaded.rows, loaded.tree
    groups = sorted(set(loaded.trace_groups))
    index_of = {g: i for i, g in enumerate(groups)}
    group_of_trace = np.array([index_of[g] for g in loaded.trace_groups], dtype=np.int64)
    span_group = group_of_trace[rows.trace]
    traces_in_group = np.bincount(group_of_trace, minlength=len(groups))
    key = tree.step_key

    # One segment per (group, step): spans sorted by group, then step key.
    order = np.lexsort((key, span_group))
    g_sorted, k_sorted = span_group[order], key[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (g_sorted[1:] != g_sorted[:-1]) | (k_sorted[1:] != k_sorted[:-1])
    starts = np.flatnonzero(first)
    lengths = np.diff(np.append(starts, len(order)))
    segment = np.cumsum(first) - 1
    segment_of_span = np.empty(len(order), dtype=np.int64)
    segment_of_span[order] = segment
    head = order[starts]  # one representative span per segment

    def quantiles_of(values: I64, qs: tuple[float, ...]) -> list[F64]:
        # Sort by value, then stably by segment: sorted values within each segment.
        by_value = np.argsort(values, kind="stable")
        within = by_value[np.argsort(segment_of_span[by_value], kind="stable")]
        ordered = values[within].astype(np.float64)
        return [segment_quantile(ordered, starts, lengths, q) for q in qs]

    p50, p95, p99 = quantiles_of(rows.duration, (0.5, 0.95, 0.99))
    (self_p50,) = quantiles_of(tree.self_ns, (0.5,))
    (offset_p50,) = quantiles_of(tree.offset_ns, (0.5,))
    errors = np.bincount(segment_of_span, weights=rows.is_error, minlength=len(starts))
    origin = np.bincount(segment_of_span, weights=tree.origin_error, minlength=len(starts))

    # Traces per step, and the critical-path share averaged over the group's traces.
    pair_order = np.lexsort((rows.trace, segment_of_span))
    seg_p, trace_p = segment_of_span[pair_order], rows.trace[pair_order]
    new_pair = np.ones(len(pair_order), dtype=bool)
    new_pair[1:] = (seg_p[1:] != seg_p[:-1]) | (trace_p[1:] != trace_p[:-1])
    traces_per_step = np.bincount(seg_p[new_pair], minlength=len(starts))
    cp_total = np.bincount(rows.trace, weights=tree.cp_ns, minlength=len(loaded.trace_ids))
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(cp_total[rows.trace] > 0, tree.cp_ns / cp_total[rows.trace], 0.0)
    share_sum = np.bincount(segment_of_span, weights=fraction, minlength=len(starts))
    seg_group = span_group[head]
    share = share_sum / np.maximum(traces_in_group[seg_group], 1)

    steps: list[Step] = []
    for g, value in enumerate(groups):
        members = np.flatnonzero(seg_group == g)
        records = []
        for s in members.tolist():
            span = int(head[s])
            service, operation, kind = loaded.ops[int(loaded.op_idx[span])]
            parent_key = int(tree.parent_step_key[span])
            calls, traces = int(lengths[s]), int(traces_per_step[s])
            records.append(
                Step(
                    id=step_id(int(key[span])),
                    parent_id=step_id(parent_key) if rows.parent[span] >= 0 else None,
                    service=service,
                    operation=operation,
                    kind=kind,
                    calls=calls,
                    traces=traces,
                    calls_per_trace=calls / traces,
                    errors=int(errors[s]),
                    error_rate=float(errors[s]) / calls,
                    origin_errors=int(origin[s]),
                    p50_ms=float(p50[s]) / 1e6,
                    p95_ms=float(p95[s]) / 1e6,
                    p99_ms=float(p99[s]) / 1e6,
                    self_p50_ms=float(self_p50[s]) / 1e6,
                    start_offset_p50_ms=float(offset_p50[s]) / 1e6,
                    critical_path_share=float(share[s]),
                    group={by: value} if by else {},
                )
            )
        steps.extend(tree_order(records))
    return steps


def tree_order(steps: list[Step]) -> list[Step]:
    """Depth-first, children by median start offset (then names): how a flow reads.

    Steps whose parent step is not in the list (a sub-tree under an orphan) start
    their own tree after the main one.
    """
    by_id = {step.id: step for step in steps}
    children: dict[str | None, list[Step]] = {}
    for step in steps:
        parent = step.parent_id if step.parent_id in by_id else None
        children.setdefault(parent, []).append(step)

    def sort_key(step: Step) -> tuple[float, str, str, str, str]:
        return (step.start_offset_p50_ms, step.service, step.operation, step.kind, step.id)

    out: list[Step] = []
    stack = sorted(children.get(None, []), key=sort_key, reverse=True)
    while stack:
        step = stack.pop()
        out.append(step)
        stack.extend(sorted(children.get(step.id, []), key=sort_key, reverse=True))
    return out
