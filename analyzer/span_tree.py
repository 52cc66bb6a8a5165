"""Per-span tree facts for many traces at once, vectorized (numpy) and iteration-free.

Input: one row per span (any number of traces), with the row of its parent (-1 when
it has none in the data: a root, or an orphan whose parent never arrived). Output,
per span: depth, the sub-tree root it hangs from, its step key (a hash of the path
of (service, operation, kind) from that root), self time, start offset from its
trace root, time on the trace's critical path, and whether it is an origin error.

Tree walks use pointer jumping (each round doubles how far every span looks up), so
a 20 000-span-deep chain costs 15 rounds of array operations, not 20 000 Python
frames. The only per-span Python loop is the critical-path chain choice
(``critical_path.chain_members``), which is linear.

Rules (docs/analysis.md):
* Clock skew: a child is clipped to its parent's interval, recursively (Jaeger's
  rule), before self time and the critical path are computed; start offsets are
  clamped at 0. Nothing reported is ever negative.
* Async children (CONSUMER under PRODUCER, or follows-from) do not count toward the
  parent's critical path; their own sub-tree is off the path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from flowscope.analyzer.critical_path import chain_members

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
BOOL = npt.NDArray[np.bool_]

# Multiplier of the polynomial path hash (odd, so multiplication is invertible mod 2**64).
_PATH_BASE = np.uint64(0x9E3779B97F4A7C15)
# Mixed into the key of a sub-tree root that is not the trace root (an orphan, or a
# second span without parent), so its steps never merge with the real root's.
_DETACHED_SALT = np.uint64(0x5BD1E9955BD1E995)


@dataclass(frozen=True)
class SpanRows:
    """The input columns, one entry per span; rows of a trace need not be contiguous."""

    trace: I64  # trace index 0..T-1
    parent: I64  # parent row, -1 when the parent is not in the data
    op_key: U64  # stable hash of (service, operation, kind)
    start: I64  # ns since the epoch
    duration: I64  # ns
    is_error: BOOL
    is_async: BOOL  # CONSUMER under a PRODUCER, or linked follows-from to its parent
    is_trace_root: BOOL  # the trace's root span (ParentSpanId = '', earliest such)
    # fs_span_key from the store: the last tie-break between children, so the
    # critical path does not depend on the order spans were loaded in (None: row order)
    span_key: U64 | None = None
    # Spans that report their request's outcome (derived_rows: an ASGI send span marked
    # Error for the 5xx its request answered); None: none do.
    reports_outcome: BOOL | None = None
    # Spans that, when they did not fail themselves, pass a failure below them up to
    # their parent: SERVER spans, which OpenTelemetry's HTTP rules leave Unset on a 4xx.
    # None: none do.
    passes_failure_up: BOOL | None = None


@dataclass(frozen=True)
class SpanTree:
    parent: I64  # the input's parents with cycles (bad data) cut: use this one
    depth: I64
    top: I64  # row of the sub-tree root each span hangs from (itself for roots)
    detached: BOOL  # hangs from an orphan or second root, not the trace root
    step_key: U64
    parent_step_key: U64  # 0 for sub-tree roots
    self_ns: I64
    offset_ns: I64  # start - trace root start, clamped at 0
    clipped_start: I64
    clipped_end: I64
    cp_ns: I64  # time this span itself is on its trace's critical path
    on_critical_path: BOOL
    origin_error: BOOL


def _jump_rounds(n: int) -> int:
    return max(1, int(n).bit_length() + 1)


def _break_cycles(parent: I64) -> I64:
    """Parents that loop back (bad data) are cut: such spans become sub-tree roots."""
    jump = parent.copy()
    for _ in range(_jump_rounds(len(parent))):
        has = jump >= 0
        if not has.any():
            return parent
        jump[has] = jump[jump[has]]
    looped = jump >= 0
    if not looped.any():
        return parent
    fixed = parent.copy()
    fixed[looped] = -1
    return fixed


def build(rows: SpanRows, trace_root_start: I64) -> SpanTree:
    """Tree facts for every span; ``trace_root_start[t]`` is trace t's root start."""
    n = len(rows.parent)
    parent = _break_cycles(rows.parent.astype(np.int64))
    end = rows.start + rows.duration
    is_top = parent < 0
    rounds = _jump_rounds(n)

    # Depth, sub-tree root, path hash, and clipping to all ancestors, in one doubling loop.
    jump = parent.copy()
    depth = np.where(is_top, 0, 1).astype(np.int64)
    top = np.where(is_top, np.arange(n, dtype=np.int64), -1)
    detached_top = is_top & ~rows.is_trace_root
    local = np.where(detached_top, rows.op_key ^ _DETACHED_SALT, rows.op_key).astype(np.uint64)
    acc = local.copy()
    mult = np.full(n, _PATH_BASE, dtype=np.uint64)
    lo = rows.start.astype(np.int64).copy()
    hi = end.astype(np.int64).copy()
    with np.errstate(over="ignore"):
        for _ in range(rounds):
            live = np.flatnonzero(jump >= 0)
            if len(live) == 0:
                break
            up = jump[live]
            # All right-hand sides read the previous round's values (fancy indexing copies).
            acc[live] = acc[live] + mult[live] * acc[up]
            mult[live] = mult[live] * mult[up]
            depth[live] = depth[live] + depth[up]
            lo[live] = np.maximum(lo[live], lo[up])
            hi[live] = np.minimum(hi[live], hi[up])
            top[live] = top[up]
            jump[live] = jump[up]
    step_key = acc
    has_parent = ~is_top
    parent_step_key = np.zeros(n, dtype=np.uint64)
    parent_step_key[has_parent] = step_key[parent[has_parent]]
    detached = ~rows.is_trace_root[top]
    clipped_start, clipped_end = lo, np.maximum(hi, lo)

    self_ns = _self_times(parent, rows.start, end, rows.duration)
    root_start = trace_root_start[rows.trace]
    offset_ns = np.maximum(rows.start - root_start, 0)
    cp_ns, on_cp = _critical_path(parent, rows, clipped_start, clipped_end, detached)
    has_error_child = np.zeros(n, dtype=bool)
    # A report of its failed parent's outcome is neither where the failure started nor
    # an erroring child that takes the start away from its parent.
    echoes = np.zeros(n, dtype=bool)
    if rows.reports_outcome is not None:
        echoes = rows.reports_outcome & has_parent & rows.is_error[np.maximum(parent, 0)]
    erroring_children = has_parent & rows.is_error & ~echoes
    has_error_child[parent[erroring_children]] = True
    if rows.passes_failure_up is not None:
        _pass_failures_up(has_error_child, parent, rows, end)
    origin_error = rows.is_error & ~has_error_child & ~echoes
    return SpanTree(
        parent=parent,
        depth=depth,
        top=top,
        detached=detached,
        step_key=step_key,
        parent_step_key=parent_step_key,
        self_ns=self_ns,
        offset_ns=offset_ns,
        clipped_start=clipped_start,
        clipped_end=clipped_end,
        cp_ns=cp_ns,
        on_critical_path=on_cp,
        origin_error=origin_error,
    )


def _pass_failures_up(has_error_child: BOOL, parent: I64, rows: SpanRows, end: I64) -> None:
    """Mark in ``has_error_child`` the spans a failure below reaches through spans that
    did not fail themselves and pass it on (``rows.passes_failure_up``).

    A 4xx passed up a chain of services: OpenTelemetry's HTTP rules mark each client
    span Error and leave the server span answering it Unset, so a 409 from the wallet
    passed up by two services counted as starting in each client span. The failure goes
    up through server spans (a sidecar's above the app's) to the span that failed with
    it. Not through an INTERNAL span that did not fail: the SDKs mark one Error when an
    exception passes through it, so one left Unset above a failing call handled that
    failure (a cache fallback), and a root failing on its own lost its start to it. Not
    past a span that ended after its parent: that parent (a client that timed out)
    stopped waiting, and failed on its own. Each span is passed through once: linear in
    the spans, one round a level.
    """
    assert rows.passes_failure_up is not None
    passes = rows.passes_failure_up & ~rows.is_error & (parent >= 0)
    safe_parent = np.maximum(parent, 0)
    passes &= end <= end[safe_parent]
    passed = np.zeros(len(parent), dtype=bool)
    current = np.flatnonzero(has_error_child & passes)
    while len(current):
        passed[current] = True
        up = parent[current]
        has_error_child[up] = True
        current = np.unique(up[passes[up] & ~passed[up]])


def _self_times(parent: I64, start: I64, end: I64, duration: I64) -> I64:
    """Duration minus the union of the children's intervals clipped to the span."""
    child = np.flatnonzero(parent >= 0)
    covered = np.zeros(len(parent), dtype=np.int64)
    if len(child) == 0:
        return np.maximum(duration, 0)
    p = parent[child]
    p_start, p_end = start[p], end[p]
    c_start = np.clip(start[child], p_start, p_end)
    c_end = np.clip(end[child], p_start, p_end)
    keep = c_end > c_start
    p, c_start, c_end, p_start, p_end = (
        p[keep],
        c_start[keep],
        c_end[keep],
        p_start[keep],
        p_end[keep],
    )
    if len(p) == 0:
        return np.maximum(duration, 0)
    order = np.lexsort((c_start, p))
    p, c_start, c_end, p_start = p[order], c_start[order], c_end[order], p_start[order]
    # Make a running maximum restart at each parent: shift every group above the last.
    rel_start, rel_end = c_start - p_start, c_end - p_start
    first = np.ones(len(p), dtype=bool)
    first[1:] = p[1:] != p[:-1]
    group = np.cumsum(first) - 1
    span_of_group = np.zeros(group[-1] + 1, dtype=np.int64)
    np.maximum.at(span_of_group, group, rel_end)
    if span_of_group.sum(dtype=np.float64) + len(span_of_group) < 2.0**62:
        base = np.concatenate(([0], np.cumsum(span_of_group + 1)[:-1]))[group]
        running = np.maximum.accumulate(rel_end + base) - base
    else:
        # Spans that start at 0 (1970) are decades long: shifted by their ends, a pass's
        # groups would pass int64. Shift the ends' ranks instead (slower: a sort).
        ends, rank = np.unique(rel_end, return_inverse=True)
        base = group * len(ends)
        running = ends[np.maximum.accumulate(rank + base) - base]
    previous_end = np.empty_like(running)
    previous_end[0] = 0
    previous_end[1:] = running[:-1]
    previous_end[first] = 0
    contribution = np.maximum(rel_end - np.maximum(rel_start, previous_end), 0)
    np.add.at(covered, p, contribution)
    result: I64 = np.maximum(duration - covered, 0)
    return result


def _critical_path(
    parent: I64, rows: SpanRows, lo: I64, hi: I64, detached: BOOL
) -> tuple[I64, BOOL]:
    """Per-span time on the critical path of its trace (Jaeger's algorithm, by totals).

    Within a span, the path takes the child that finishes last, then repeatedly the
    last-finishing child that ends before the previously taken child starts. The span
    itself is on the path for its duration minus its taken children's; a child is on
    the path when it is taken and its parent is. Durations here are clipped ones.
    """
    n = len(parent)
    clipped = hi - lo
    eligible = (parent >= 0) & ~rows.is_async & (clipped > 0)
    child = np.flatnonzero(eligible)
    taken = np.zeros(n, dtype=bool)
    if len(child):
        p = parent[child]
        # Last-finishing first; ties: earlier (clipped, then raw) start first, as spans
        # arrive in Jaeger; then the span key, the same however the rows were loaded.
        tie = child if rows.span_key is None else rows.span_key[child]
        order = np.lexsort((tie, rows.start[child], lo[child], -hi[child], p))
        ordered = child[order]
        chosen = chain_members(p[order], lo[ordered], hi[ordered])
        taken[ordered[chosen]] = True
    # On the path: the trace root, and taken children of spans on the path.
    on_path = rows.is_trace_root.copy()
    ok = np.where(parent >= 0, taken, rows.is_trace_root)
    jump = parent.copy()
    for _ in range(_jump_rounds(n)):
        live = np.flatnonzero(jump >= 0)
        if len(live) == 0:
            break
        up = jump[live]
        ok[live] = ok[live] & ok[up]
        jump[live] = jump[up]
    on_path = ok & ~detached
    taken_time = np.zeros(n, dtype=np.int64)
    taken_children = np.flatnonzero(taken)
    np.add.at(taken_time, parent[taken_children], clipped[taken_children])
    cp_ns = np.where(on_path, np.maximum(clipped - taken_time, 0), 0)
    return cp_ns.astype(np.int64), on_path
