"""A flow's steps: its traces' spans merged into one call tree (DESIGN.md §4).

A step is (parent step, service, operation, kind): spans whose paths from their
trace's root have the same (service, operation, kind) at every level. Per step:
calls, traces that contain it, calls per trace (retries show as > 1), errors,
origin errors (error spans without an erroring child), P50/P95/P99 of duration,
P50 of self time and of start offset from the trace root, and the critical-path
share: the mean over the flow's traces of the fraction of the trace's critical
path spent in the step (0 for traces without it; shares sum to 1 over steps).

Each span's part in that (step key, self time, offset, critical-path time, origin
error) depends only on its own trace, so it is computed when the trace is derived
(``span_step_rows``, called by ``flowscope/store/derivation.py``) and stored in
``span_steps``; a flow's steps in any window are then one SQL aggregate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from flowscope.analyzer.milliseconds import ms_of_ns
from flowscope.analyzer.model import Step, Window
from flowscope.analyzer.span_tree import SpanRows, SpanTree
from flowscope.store.database import Database

I64 = npt.NDArray[np.int64]


def op_key(service: str, operation: str, kind: str) -> int:
    """Stable 64-bit key of (service, operation, kind): step ids must survive restarts."""
    digest = hashlib.blake2b(f"{service}\x1f{operation}\x1f{kind}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


def step_id(key: int) -> str:
    return f"{key:016x}"


def is_root_step(step: Step) -> bool:
    """A step of traces' root spans: its key is its name's own. An orphan's or a second
    root's sub-tree (span_tree's salted key) is not one, though it has no parent step
    either."""
    return step.parent_id is None and step.id == step_id(
        op_key(step.service, step.operation, step.kind)
    )


@dataclass(frozen=True)
class LoadedSpans:
    """Spans with their tree facts (one trace's, or a derivation pass's)."""

    rows: SpanRows
    tree: SpanTree
    op_idx: I64
    ops: list[tuple[str, str, str]]  # (service, operation, kind) by op index
    trace_ids: list[str]
    trace_keys: npt.NDArray[np.uint64]  # fs_trace_key(TraceId) by trace index
    trace_root_start: I64


def span_step_rows(loaded: LoadedSpans) -> tuple[pa.Table, pa.Table]:
    """The ``span_steps`` rows of the loaded spans, and the names of their steps."""
    rows, tree = loaded.rows, loaded.tree
    n = len(rows.trace)
    cp_total = np.bincount(rows.trace, weights=tree.cp_ns, minlength=len(loaded.trace_keys))
    total = cp_total[rows.trace]
    fraction = np.divide(tree.cp_ns, total, out=np.zeros(n, dtype=np.float64), where=total > 0)
    # A trace whose critical path takes no time (a 0 ms root, or one whose end came
    # before its start) is its root, whole: it added 0 to every step but counted among
    # the traces, and a flow's shares summed to less than 1.
    fraction[(total == 0) & rows.is_trace_root] = 1.0
    # The first span of each (trace, step): counts the traces that contain the step.
    order = np.lexsort((np.arange(n), tree.step_key, rows.trace))
    first_sorted = np.ones(n, dtype=bool)
    first_sorted[1:] = (rows.trace[order][1:] != rows.trace[order][:-1]) | (
        tree.step_key[order][1:] != tree.step_key[order][:-1]
    )
    first = np.empty(n, dtype=bool)
    first[order] = first_sorted
    facts = pa.table(
        {
            "RootStart": pa.array(loaded.trace_root_start[rows.trace]),
            "TraceKey": pa.array(loaded.trace_keys[rows.trace]),
            "StepKey": pa.array(tree.step_key),
            "Duration": pa.array(rows.duration),
            "SelfNs": pa.array(tree.self_ns),
            "OffsetNs": pa.array(tree.offset_ns),
            "CpFraction": pa.array(fraction),
            "IsError": pa.array(rows.is_error),
            "IsOrigin": pa.array(tree.origin_error),
            "FirstInTrace": pa.array(first),
        }
    )
    _keys, representative = np.unique(tree.step_key, return_index=True)
    names = [loaded.ops[int(loaded.op_idx[r])] for r in representative.tolist()]
    parents = [
        int(tree.parent_step_key[r]) if tree.parent[r] >= 0 else None
        for r in representative.tolist()
    ]
    steps = pa.table(
        {
            "StepKey": pa.array(tree.step_key[representative]),
            "ParentStepKey": pa.array(parents, pa.uint64()),
            "ServiceName": pa.array([name[0] for name in names], pa.string()),
            "SpanName": pa.array([name[1] for name in names], pa.string()),
            "SpanKind": pa.array([name[2] for name in names], pa.string()),
        }
    )
    return facts, steps


def flow_steps(database: Database, window: Window, by: str | None = None) -> list[Step]:
    """The steps of ``sel_traces`` (per ``sel_groups`` group), each group's depth first."""
    rows = database.fetch("steps_selected", {"since": window.since_ns, "until": window.until_ns})
    return _steps_of(database, rows, by)


def root_flow_steps(
    database: Database, window: Window, root: tuple[str, str], traces: int
) -> list[Step]:
    """The steps of every trace rooted at ``root`` in the window: an automatic flow
    without grouping, the common question, answered without joining the flow's
    ``traces`` (``span_steps.RootKey``); the same numbers as ``flow_steps``.
    """
    params = {
        "service": root[0],
        "operation": root[1],
        "since": window.since_ns,
        "until": window.until_ns,
        "traces": traces,
    }
    return _steps_of(database, database.fetch("steps_root_stats", params), None)


def _steps_of(database: Database, rows: Sequence[Sequence[Any]], by: str | None) -> list[Step]:
    keys = sorted({int(row[1]) for row in rows})
    names = {
        int(key): (parent, service, operation, kind, peer)
        for key, parent, service, operation, kind, peer in database.fetch(
            "step_names", {"keys": keys}
        )
    }
    groups: dict[str, list[Step]] = {}
    for group, key, calls, traces, errors, origins, duration, self_p50, offset_p50, share in rows:
        parent, service, operation, kind, peer = names[int(key)]
        p50, p95, p99 = duration
        groups.setdefault(str(group), []).append(
            Step(
                id=step_id(int(key)),
                parent_id=None if parent is None else step_id(int(parent)),
                service=service,
                operation=operation,
                kind=kind,
                calls=int(calls),
                traces=int(traces),
                calls_per_trace=int(calls) / int(traces),
                errors=int(errors),
                error_rate=int(errors) / int(calls),
                origin_errors=int(origins),
                p50_ms=ms_of_ns(p50),
                p95_ms=ms_of_ns(p95),
                p99_ms=ms_of_ns(p99),
                self_p50_ms=ms_of_ns(self_p50),
                start_offset_p50_ms=ms_of_ns(offset_p50),
                critical_path_share=float(share),
                peer=peer,
                group={by: str(group)} if by is not None else {},
            )
        )
    out: list[Step] = []
    for group in sorted(groups):
        out.extend(tree_order(groups[group]))
    return out


def sibling_key(step: Step) -> tuple[float, str, str, str, str]:
    """How steps under one parent are ordered: by median start offset, then names."""
    return (step.start_offset_p50_ms, step.service, step.operation, step.kind, step.id)


def top_key(step: Step) -> tuple[bool, float, str, str, str, str]:
    """How steps under no parent are ordered: the traces' root steps first, then as
    siblings (an orphan starting at or before the root, by clock skew, came first)."""
    return (not is_root_step(step), *sibling_key(step))


def tree_order(steps: list[Step]) -> list[Step]:
    """Depth-first, children by median start offset (then names): how a flow reads.

    Steps whose parent step is not in the list (a sub-tree under an orphan) start
    their own tree after the main one (``top_key``).
    """
    by_id = {step.id: step for step in steps}
    children: dict[str | None, list[Step]] = {}
    for step in steps:
        parent = step.parent_id if step.parent_id in by_id else None
        children.setdefault(parent, []).append(step)

    out: list[Step] = []
    stack = sorted(children.get(None, []), key=top_key, reverse=True)
    while stack:
        step = stack.pop()
        out.append(step)
        stack.extend(sorted(children.get(step.id, []), key=sibling_key, reverse=True))
    return out
