"""The derived rows of a set of traces, computed from their spans with numpy.

Input: the spans of the traces being derived (``InScope``) and of the traces their
CONSUMER spans link to (context: only read), as loaded by ``dv_load_spans.sql``.
Output, as Arrow tables for ``dv_store_rows.sql``: one ``trace_index`` row per
trace, one ``edge_calls`` row per cross-service call (DESIGN.md §4 rules), the
cross-trace links, and each span's place in its flow's step tree (``span_steps``).

Vectorized on purpose: this runs for every committed span (``flowscope/store/
derivation.py``); per-span Python or a chain of SQL statements over temporary
tables costs several times more (docs/analysis.md "Speed").

Edge rules, as ``edge_calls`` rows:
1. rpc: a span whose parent is in another service; latency = the parent's duration
   when it is a CLIENT span, else the child's; time = the start of that span.
2. virtual: a CLIENT span with no child in another service -> its named peer; a
   chain of CLIENT spans in one service is one call (derived_edges._virtual_calls).
3. async: a PRODUCER and a CONSUMER in another service, by parent or by a link
   (once per producer span, consumer service and consumer trace); latency = the
   consumer's duration; lag = consumer start minus producer end, at least 0.
   Never also rpc.
A call is an error when either side is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.analyzer.derived_edges import edge_tables
from flowscope.analyzer.derived_spans import BOOL, I64, Spans, bools, load_spans
from flowscope.analyzer.span_tree import SpanRows, build
from flowscope.analyzer.steps import LoadedSpans, op_key, span_step_rows


@dataclass(frozen=True)
class DerivedRows:
    traces: pa.Table
    edge_calls: pa.Table
    edge_keys: pa.Table
    links: pa.Table
    span_steps: pa.Table
    step_keys: pa.Table


def derive_rows(table: pa.Table, trace_ids: dict[int, str]) -> DerivedRows:
    """All derived rows of the in-scope traces in ``table`` (see the module doc)."""
    s = load_spans(table, trace_ids)
    roots = _roots(s)
    traces = _trace_table(s, roots)
    calls, keys = edge_tables(s)
    rooted = roots >= 0
    step_rows = np.flatnonzero(s.in_scope & rooted[s.trace])
    is_root = np.zeros(len(s.trace), dtype=bool)
    is_root[roots[rooted]] = True
    span_steps, step_keys = _steps(s, step_rows, is_root)
    return DerivedRows(traces, calls, keys, _links_table(s), span_steps, step_keys)


def _roots(s: Spans) -> I64:
    """Row of each trace's root: its earliest span without a parent id."""
    # A server half without a parent id is under its client now (shared_ids).
    no_parent = ~pc.is_null(s.col["RootSpanId"]).to_numpy(zero_copy_only=False)
    candidates = np.flatnonzero(no_parent & ~s.is_half)
    root = np.full(len(s.keys), -1, dtype=np.int64)
    if len(candidates) == 0:
        return root
    # Ties between roots that start together: by span key (a hash of the span id).
    span_key = s.span_keys[candidates]
    order = np.lexsort((span_key, s.start[candidates], s.trace[candidates]))
    ordered = candidates[order]
    first = np.ones(len(ordered), dtype=bool)
    first[1:] = s.trace[ordered][1:] != s.trace[ordered][:-1]
    root[s.trace[ordered[first]]] = ordered[first]
    return root


def _trace_table(s: Spans, root: I64) -> pa.Table:
    t_count = len(s.keys)
    big = np.iinfo(np.int64).max
    first = np.full(t_count, big, dtype=np.int64)
    last = np.full(t_count, -big, dtype=np.int64)
    end = np.full(t_count, -big, dtype=np.int64)
    np.minimum.at(first, s.trace, s.start)
    np.maximum.at(last, s.trace, s.start)
    np.maximum.at(end, s.trace, s.start + s.duration)
    width = len(s.service.values) + 1
    pairs = np.unique(s.trace * width + s.service.codes)
    rows = np.flatnonzero(np.bincount(s.trace[s.in_scope], minlength=t_count) > 0)
    at = root[rows]
    has = at >= 0
    pick = pa.array(np.where(has, at, 0))
    mask = pa.array(~has)

    def rooted(values: pa.Array) -> pa.Array:
        return pc.if_else(mask, pa.scalar(None, values.type), values)

    def column(name: str) -> pa.Array:
        return rooted(s.col[name].take(pick).combine_chunks())

    table = pa.table(
        {
            "TraceId": s.names.take(pa.array(rows)),
            "FirstStart": pa.array(first[rows]),
            "LastStart": pa.array(last[rows]),
            "EndNs": pa.array(end[rows]),
            "Spans": pa.array(np.bincount(s.trace, minlength=t_count)[rows].astype(np.int64)),
            "ErrorSpans": pa.array(
                np.bincount(s.trace, weights=s.is_error, minlength=t_count)[rows].astype(np.int64)
            ),
            "Services": pa.array(
                np.bincount(pairs // width, minlength=t_count)[rows].astype(np.int64)
            ),
            "RootSpanId": pc.fill_null(column("RootSpanId"), ""),
            "RootStart": rooted(pa.array(s.start[np.where(has, at, 0)])),
            "RootService": column("ServiceName"),
            "RootOperation": column("SpanName"),
            "RootKind": column("SpanKind"),
            "RootDuration": rooted(pa.array(s.duration[np.where(has, at, 0)])),
            "RootStatus": column("RootStatus"),
            "RootRoute": column("Route"),
            "RootAttributes": column("Attributes"),
            "RootResource": column("Resource"),
            "TraceKey": pa.array(s.keys[rows]),
        }
    )
    return table


def _links_table(s: Spans) -> pa.Table:
    """(TraceId, LinkedTraceId) of in-scope CONSUMER spans' links to other traces."""
    links = s.col["LinkTraceIds"].combine_chunks()
    owner = pc.list_parent_indices(links).to_numpy(zero_copy_only=False).astype(np.int64)
    targets = pc.list_flatten(links)
    keep = s.in_scope[owner]
    table = pa.table(
        {
            "TraceId": s.names.take(pa.array(s.trace[owner[keep]])),
            "LinkedTraceId": targets.filter(pa.array(keep)),
        }
    )
    return table.group_by(["TraceId", "LinkedTraceId"]).aggregate([]).sort_by("TraceId")


def _steps(s: Spans, rows: I64, is_root: BOOL) -> tuple[pa.Table, pa.Table]:
    """span_steps rows of ``rows`` (all spans of their traces), via the step tree."""
    local = np.full(len(s.parent), -1, dtype=np.int64)
    local[rows] = np.arange(len(rows))
    up = s.parent[rows]
    sub_parent = np.where(up >= 0, local[np.maximum(up, 0)], -1)
    trace_index, sub_trace = np.unique(s.trace[rows], return_inverse=True)
    width_o, width_k = len(s.operation.values) + 1, len(s.kind.values) + 1
    packed = (s.service.codes[rows] * width_o + s.operation.codes[rows]) * width_k + s.kind.codes[
        rows
    ]
    unique_ops, op_idx = np.unique(packed, return_inverse=True)
    ops = [
        (
            s.service.values[int(p) // (width_o * width_k)],
            s.operation.values[(int(p) // width_k) % width_o],
            s.kind.values[int(p) % width_k],
        )
        for p in unique_ops.tolist()
    ]
    op_keys = np.array([op_key(*op) for op in ops], dtype=np.uint64)
    follows = bools(s.col["FollowsFrom"])
    safe_up = np.maximum(up, 0)
    is_async = follows[rows] | ((up >= 0) & s.is_consumer[rows] & s.is_producer[safe_up])
    sub_rows = SpanRows(
        trace=sub_trace.astype(np.int64),
        parent=sub_parent.astype(np.int64),
        op_key=op_keys[op_idx] if len(op_keys) else np.zeros(0, dtype=np.uint64),
        start=s.start[rows],
        duration=s.duration[rows],
        is_error=s.is_error[rows],
        is_async=is_async,
        is_trace_root=is_root[rows],
        span_key=s.span_keys[rows],
        reports_outcome=bools(s.col["ReportsOutcome"])[rows],
        passes_failure_up=s.is_server[rows],
    )
    root_start = np.full(len(trace_index), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(root_start, sub_rows.trace, sub_rows.start)
    roots = np.flatnonzero(sub_rows.is_trace_root)
    root_start[sub_rows.trace[roots]] = sub_rows.start[roots]
    loaded = LoadedSpans(
        rows=sub_rows,
        tree=build(sub_rows, root_start),
        op_idx=op_idx.astype(np.int64),
        ops=ops,
        trace_ids=[],  # not needed for the rows
        trace_keys=s.keys[trace_index].astype(np.uint64),
        trace_root_start=root_start,
    )
    facts, steps = span_step_rows(loaded)
    peers = s.col["StepPeer"].take(pa.array(rows))
    return facts, _with_peers(steps, facts.column("StepKey"), peers)


def _with_peers(steps: pa.Table, step_key: pa.ChunkedArray, peer: pa.ChunkedArray) -> pa.Table:
    """``steps`` with the peer their CLIENT spans name (the map's virtual-node name; the
    least if they name several), or the queue their PRODUCER spans send to. A function
    of the spans' attributes alone, so the stored name does not depend on the order a
    trace's spans arrive in."""
    calls = pa.table({"StepKey": step_key, "Peer": peer})
    calls = calls.filter(pc.is_valid(calls.column("Peer")))
    least = calls.group_by("StepKey").aggregate([("Peer", "min")])
    keys, names = least.column("StepKey").to_pylist(), least.column("Peer_min").to_pylist()
    named = dict(zip(keys, names, strict=True))
    peers = [named.get(key) for key in steps.column("StepKey").to_pylist()]
    return steps.append_column("Peer", pa.array(peers, pa.string()))


__all__ = ["DerivedRows", "derive_rows"]
