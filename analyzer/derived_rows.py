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
2. virtual: a CLIENT span with no child in another service -> its named peer.
3. async: a PRODUCER and a CONSUMER in another service, by parent or by a link
   (once, if both); latency = the consumer's duration; lag = consumer start minus
   producer end, at least 0. Never also rpc.
A call is an error when either side is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.analyzer.span_tree import SpanRows, build
from flowscope.analyzer.steps import LoadedSpans, op_key, span_step_rows

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
BOOL = npt.NDArray[np.bool_]
EDGE_NAMES = ("Source", "Target", "Rule", "TargetKind", "MessagingSystem", "Destination")


@dataclass(frozen=True)
class DerivedRows:
    traces: pa.Table
    edge_calls: pa.Table
    edge_keys: pa.Table
    links: pa.Table
    span_steps: pa.Table
    step_keys: pa.Table
    root_range: tuple[int, int]  # where the roots lie in time (to fetch their attributes)


def edge_key(names: tuple[str, ...]) -> int:
    """Stable 64-bit id of an edge's (source, target, rule, kind, system, destination)."""
    digest = hashlib.blake2b("\x1f".join(names).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class Strings:
    """A string column as dictionary codes (-1 for null) and its dictionary."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        encoded = pc.dictionary_encode(column.combine_chunks())
        indices = encoded.indices
        self.codes: I64 = pc.fill_null(indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        self.values: list[str] = [str(v) for v in encoded.dictionary.to_pylist()]

    def name(self, code: int) -> str:
        return self.values[code] if code >= 0 else ""


def _rows_of(keys: U64, wanted: U64) -> I64:
    """Row of each wanted key among ``keys`` (-1 when absent, or 0: no parent)."""
    if len(keys) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    at = np.minimum(np.searchsorted(ordered, wanted), len(ordered) - 1)
    found = (ordered[at] == wanted) & (wanted != 0)
    rows: I64 = np.where(found, order[at], -1).astype(np.int64)
    return rows


def _bools(column: pa.ChunkedArray) -> BOOL:
    values: BOOL = pc.fill_null(column, False).to_numpy(zero_copy_only=False).astype(bool)
    return values


@dataclass(frozen=True)
class _Spans:
    col: dict[str, pa.ChunkedArray]
    trace: I64  # trace index (into keys)
    keys: U64  # DuckDB hash(TraceId) per trace index
    names: pa.Array  # trace id per trace index
    parent: I64
    start: I64
    duration: I64
    is_error: BOOL
    in_scope: BOOL
    service: Strings
    operation: Strings
    kind: Strings
    is_client: BOOL
    is_producer: BOOL
    is_consumer: BOOL


def _spans(table: pa.Table, trace_ids: dict[int, str]) -> _Spans:
    col = {name: table.column(name) for name in table.column_names}
    trace_key = col["TraceKey"].to_numpy().astype(np.uint64)
    keys, trace = np.unique(trace_key, return_inverse=True)
    kind = Strings(col["SpanKind"])

    def is_kind(name: str) -> BOOL:
        code = kind.values.index(name) if name in kind.values else -2
        flags: BOOL = kind.codes == code
        return flags

    return _Spans(
        col=col,
        trace=trace.astype(np.int64),
        keys=keys.astype(np.uint64),
        names=pa.array([trace_ids[int(k)] for k in keys.tolist()], pa.string()),
        parent=_rows_of(
            col["SpanKey"].to_numpy().astype(np.uint64),
            col["ParentKey"].to_numpy().astype(np.uint64),
        ),
        start=col["Start"].to_numpy().astype(np.int64),
        duration=col["Duration"].to_numpy().astype(np.int64),
        is_error=_bools(col["IsError"]),
        in_scope=_bools(col["InScope"]),
        service=Strings(col["ServiceName"]),
        operation=Strings(col["SpanName"]),
        kind=kind,
        is_client=is_kind("Client"),
        is_producer=is_kind("Producer"),
        is_consumer=is_kind("Consumer"),
    )


def derive_rows(table: pa.Table, trace_ids: dict[int, str]) -> DerivedRows:
    """All derived rows of the in-scope traces in ``table`` (see the module doc)."""
    s = _spans(table, trace_ids)
    roots = _roots(s)
    traces, root_range = _trace_table(s, roots)
    calls, keys = _edges(s)
    rooted = roots >= 0
    step_rows = np.flatnonzero(s.in_scope & rooted[s.trace])
    is_root = np.zeros(len(s.trace), dtype=bool)
    is_root[roots[rooted]] = True
    span_steps, step_keys = _steps(s, step_rows, is_root)
    return DerivedRows(traces, calls, keys, _links_table(s), span_steps, step_keys, root_range)


def _roots(s: _Spans) -> I64:
    """Row of each trace's root: its earliest span without a parent id."""
    candidates = np.flatnonzero(~pc.is_null(s.col["RootSpanId"]).to_numpy(zero_copy_only=False))
    root = np.full(len(s.keys), -1, dtype=np.int64)
    if len(candidates) == 0:
        return root
    # Ties between roots that start together: by span key (a hash of the span id).
    span_key = s.col["SpanKey"].to_numpy().astype(np.uint64)[candidates]
    order = np.lexsort((span_key, s.start[candidates], s.trace[candidates]))
    ordered = candidates[order]
    first = np.ones(len(ordered), dtype=bool)
    first[1:] = s.trace[ordered][1:] != s.trace[ordered][:-1]
    root[s.trace[ordered[first]]] = ordered[first]
    return root


def _trace_table(s: _Spans, root: I64) -> tuple[pa.Table, tuple[int, int]]:
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
        }
    )
    starts = s.start[at[has]]
    span = (int(starts.min()), int(starts.max())) if len(starts) else (0, 0)
    return table, span


def _linked_pairs(s: _Spans) -> tuple[I64, I64]:
    """(consumer row, producer row) for in-scope CONSUMER spans linked to a PRODUCER."""
    links = s.col["LinkKeys"].combine_chunks()
    if pc.sum(pc.fill_null(pc.list_value_length(links), 0)).as_py() in (0, None):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    owner = pc.list_parent_indices(links).to_numpy(zero_copy_only=False).astype(np.int64)
    targets = pc.list_flatten(links).to_numpy(zero_copy_only=False).astype(np.uint64)
    producer = _rows_of(s.col["SpanKey"].to_numpy().astype(np.uint64), targets)
    safe = np.maximum(producer, 0)
    ok = (producer >= 0) & s.in_scope[owner] & s.is_consumer[owner] & s.is_producer[safe]
    ok &= s.service.codes[owner] != s.service.codes[safe]
    return owner[ok], producer[ok]


def _edges(s: _Spans) -> tuple[pa.Table, pa.Table]:
    parent, service = s.parent, s.service.codes
    child = np.flatnonzero((parent >= 0) & s.in_scope)
    child = child[service[child] != service[parent[child]]]
    up = parent[child]
    by_parent = s.is_producer[up] & s.is_consumer[child]
    rpc_child, rpc_parent = child[~by_parent], up[~by_parent]
    called_elsewhere = np.zeros(len(parent), dtype=bool)
    called_elsewhere[up] = True
    virtual = np.flatnonzero(s.in_scope & s.is_client & ~called_elsewhere)
    link_child, link_producer = _linked_pairs(s)
    a_child = np.concatenate([child[by_parent], link_child])
    a_prod = np.concatenate([up[by_parent], link_producer])
    if len(a_child):  # a consumer both child of and linked to its producer: one call
        _, once = np.unique(a_child * (len(parent) + 1) + a_prod, return_index=True)
        keep = np.sort(once)
        a_child, a_prod = a_child[keep], a_prod[keep]

    # Each call's names as small integer codes, packed; names are built per distinct edge.
    peer, peer_kind = Strings(s.col["Peer"]), Strings(s.col["PeerKind"])
    msg, dest = Strings(s.col["MsgSystem"]), Strings(s.col["Destination"])
    n_svc = len(s.service.values)
    rule = np.concatenate(
        [np.zeros(len(rpc_child)), np.ones(len(virtual)), np.full(len(a_child), 2)]
    ).astype(np.int64)
    source = np.concatenate([service[rpc_parent], service[virtual], service[a_prod]])
    target = np.concatenate([service[rpc_child], n_svc + peer.codes[virtual], service[a_child]])
    kind = np.concatenate(
        [np.full(len(rpc_child), -1), peer_kind.codes[virtual], np.full(len(a_child), -1)]
    )
    system = np.concatenate(
        [
            np.full(len(rpc_child) + len(virtual), -1),
            np.where(msg.codes[a_prod] >= 0, msg.codes[a_prod], msg.codes[a_child]),
        ]
    )
    destination = np.concatenate(
        [
            np.full(len(rpc_child) + len(virtual), -1),
            np.where(dest.codes[a_prod] >= 0, dest.codes[a_prod], dest.codes[a_child]),
        ]
    )
    # One int64 per call: mixed-radix digits of its name codes.
    radix = [3, n_svc + 1, n_svc + len(peer.values) + 1, len(peer_kind.values) + 1]
    radix += [len(msg.values) + 1, len(dest.values) + 1]
    packed = np.zeros(len(rule), dtype=np.int64)
    for digit, base in zip(
        [rule, source, target, kind + 1, system + 1, destination + 1], radix, strict=True
    ):
        packed = packed * base + digit
    unique_packed, inverse = np.unique(packed, return_inverse=True)
    unique_rows = []
    for value in unique_packed.tolist():
        digits = []
        for base in reversed(radix):
            value, digit = divmod(value, base)
            digits.append(digit)
        unique_rows.append(list(reversed(digits)))
    rule_names = ("rpc", "virtual", "async")
    dims: list[tuple[str, ...]] = []
    for r, src, tgt, k, sy, de in unique_rows:
        target_name = (
            s.service.values[tgt] if tgt < n_svc else (peer.name(tgt - n_svc) or "unknown")
        )
        dims.append(
            (
                s.service.values[src],
                target_name,
                rule_names[r],
                (peer_kind.name(k - 1) or "external") if r == 1 else "service",
                msg.name(sy - 1) if r == 2 else "",
                dest.name(de - 1) if r == 2 else "",
            )
        )
    key_of = np.array([edge_key(d) for d in dims], dtype=np.uint64)
    measured = np.where(s.is_client[rpc_parent], rpc_parent, rpc_child)
    lag = np.maximum(s.start[a_child] - (s.start[a_prod] + s.duration[a_prod]), 0)
    n_plain = len(rpc_child) + len(virtual)
    calls = pa.table(
        {
            "Ts": pa.array(np.concatenate([s.start[measured], s.start[virtual], s.start[a_child]])),
            "TraceId": s.names.take(
                pa.array(s.trace[np.concatenate([rpc_child, virtual, a_child])])
            ),
            "SourceTraceId": s.names.take(
                pa.array(s.trace[np.concatenate([rpc_parent, virtual, a_prod])])
            ),
            "EdgeKey": pa.array(
                key_of[inverse.reshape(-1)] if len(key_of) else np.zeros(0, np.uint64)
            ),
            "LatencyNs": pa.array(
                np.concatenate([s.duration[measured], s.duration[virtual], s.duration[a_child]])
            ),
            "LagNs": pa.array(
                np.concatenate([np.zeros(n_plain, np.int64), lag]),
                mask=np.arange(n_plain + len(lag)) < n_plain,
            ),
            "IsError": pa.array(
                np.concatenate(
                    [
                        s.is_error[rpc_child] | s.is_error[rpc_parent],
                        s.is_error[virtual],
                        s.is_error[a_child] | s.is_error[a_prod],
                    ]
                )
            ),
        }
    )
    keys = pa.table(
        {"EdgeKey": pa.array(key_of, pa.uint64())}
        | {name: pa.array([d[i] for d in dims], pa.string()) for i, name in enumerate(EDGE_NAMES)}
    )
    return calls, keys


def _links_table(s: _Spans) -> pa.Table:
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


def _steps(s: _Spans, rows: I64, is_root: BOOL) -> tuple[pa.Table, pa.Table]:
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
    follows = _bools(s.col["FollowsFrom"])
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
    return span_step_rows(loaded)


__all__ = ["DerivedRows", "derive_rows", "edge_key"]
