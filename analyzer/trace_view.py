"""One trace as a tree: every span with its self time, step, critical-path flag, and
the critical path itself (Jaeger's rules, see ``critical_path``).

Orphans (a span whose parent never arrived) start their own sub-tree, listed after
the root's, flagged ``orphan``; they are never on the critical path. With clock
skew (a child starting before its parent, or ending after it) offsets are clamped
at 0 and self time and the critical path use the child clipped to its parent.

The tree is the one derivation builds (``span_tree.build``, same step keys), from
one pruned scan of the trace's spans.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flowscope.analyzer.critical_path import sections
from flowscope.analyzer.derived_spans import rows_of
from flowscope.analyzer.model import (
    CriticalSegment,
    SpanEvent,
    SpanLink,
    StatusName,
    TraceSpan,
    TraceView,
    kind_name,
    status_name,
)
from flowscope.analyzer.shared_ids import half_span_id, unshare
from flowscope.analyzer.span_tree import SpanRows, build
from flowscope.analyzer.steps import LoadedSpans, op_key, step_id
from flowscope.analyzer.window import timestamp_ns
from flowscope.store.database import Database

# What a trace view holds at most of a trace; SQL over otel_traces has all of it.
# Events: a trace of 152k events (a batch job logging each item) made a 17-33 MB answer
# and took 1.9 s to show. Attributes: 3 spans of 900,000 attributes each made a
# 50.6 MB answer in 33.6 s and took the server +2.5 GB. Links: as many as events.
MAX_EVENTS = 10_000
MAX_ATTRIBUTES = 100_000
MAX_LINKS = 10_000
# Of each resource, event and link, the attributes a view shows at most (the
# OpenTelemetry SDKs' own limit is 128 an event or link).
MAX_NESTED_ATTRIBUTES = 1_000
# The details of spans in start order, only while those before cost less than this:
# text bytes, and 16 for each attribute, event and link, a span's resource counted for
# each span (the answer repeats it). 8,000 spans sharing a resource of 1,000 attributes
# (one 526 KB request) made a 100 MB answer in 48 s; 200 spans sharing a 2 MB value,
# 400 MB. A trace of 5,000 spans of 30 attributes and a resource of 30 costs ~14 MB.
MAX_DETAIL_COST = 16 * 1024 * 1024


@dataclass(frozen=True)
class SpanDetails:
    """What a trace view shows of a span beyond its place in the tree."""

    status: StatusName
    message: str
    attributes: dict[str, str]
    attributes_omitted: int
    resource: dict[str, str]
    resource_omitted: int
    events: list[SpanEvent]
    events_omitted: int
    links: list[SpanLink]
    links_omitted: int


@dataclass(frozen=True)
class Allowance:
    """How many of its attributes, events and links one span of a view keeps."""

    attributes: int
    events: int
    links: int


def allowances(counts: list[int], budget: int) -> list[int]:
    """How many of its events (or attributes, or links) each span keeps so that the
    trace keeps at most ``budget``: every span all of its own when they fit; else spans
    with few keep theirs and the chatty ones share the rest alike, the earlier ones (by
    their order in ``counts``) one more when it does not divide (12,000 spans of one
    event each kept none when the share was rounded down alone)."""
    if sum(counts) <= budget:
        return list(counts)
    left, spans = budget, len(counts)
    level = 0
    for count in sorted(counts):
        if count > left // spans:
            level = left // spans
            break
        left, spans = left - count, spans - 1
    extra = left - level * spans  # spans over the level, that many get one more
    allowances = []
    for count in counts:
        if count <= level:
            allowances.append(count)
        else:
            allowances.append(level + (1 if extra > 0 else 0))
            extra -= 1
    return allowances


def _details(
    row: tuple[Any, ...], extra: tuple[Any, ...] | None, allowed: Allowance
) -> SpanDetails:
    """A span's details from its ``trace_spans`` row and its ``trace_span_details`` row."""
    # Details NULL: the span came after the view's budget (MAX_DETAIL_COST). No row at
    # all: the span went between the two reads (retention), its resource's size unknown.
    resource, resource_count, raw_events, raw_links, attributes = (
        extra[4:9] if extra else ({}, 0, [], [], {})
    )
    start = int(row[5])
    events = sorted(
        (
            SpanEvent(
                name=str(e["name"]),
                start=timestamp_ns(int(e["start"])),
                offset_ms=(int(e["start"]) - start) / 1e6,
                attributes=_texts(e["attributes"]),
                attributes_omitted=int(e["attribute_count"]) - len(e["attributes"] or {}),
            )
            for e in (raw_events or [])[: allowed.events]  # the first as sent
        ),
        key=lambda e: e.offset_ms,
    )
    links = [
        SpanLink(
            trace_id=str(link["trace_id"]),
            span_id=str(link["span_id"]),
            trace_state=str(link["trace_state"] or ""),
            attributes=_texts(link["attributes"]),
            attributes_omitted=int(link["attribute_count"]) - len(link["attributes"] or {}),
        )
        for link in (raw_links or [])[: allowed.links]
    ]
    shown = _texts(attributes, allowed.attributes)
    resource_shown = _texts(resource)
    return SpanDetails(
        status_name(str(row[7])),
        str(row[8]),
        shown,
        int(row[9]) - len(shown),
        resource_shown,
        int(resource_count) - len(resource_shown),
        events,
        int(row[13]) - len(events),
        links,
        int(row[14]) - len(links),
    )


def _texts(values: dict[Any, Any] | None, most: int | None = None) -> dict[str, str]:
    """The first ``most`` entries by key (all without it), as text."""
    return {str(k): str(v) for k, v in sorted((values or {}).items())[:most]}


@dataclass(frozen=True)
class LoadedTrace:
    spans: LoadedSpans
    span_ids: list[str]
    parent_ids: list[str]
    # The rows as loaded; a span's details are read only when a view shows them:
    # comparisons never do, and for a trace of 152k events they took 5 s.
    kept: list[tuple[Any, ...]]
    database: Database
    params: dict[str, Any]
    _extra: dict[tuple[Any, ...], tuple[Any, ...]] = field(default_factory=dict)
    # Each kept row's share of the view's attributes, events and links, once read.
    _allowed: list[Allowance] = field(default_factory=list)

    def details(self, row: int) -> SpanDetails:
        if not self._allowed:  # ``kept`` is never empty
            shares = [
                allowances([int(kept[column]) for kept in self.kept], budget)
                for column, budget in ((9, MAX_ATTRIBUTES), (13, MAX_EVENTS), (14, MAX_LINKS))
            ]
            self._allowed.extend(Allowance(*share) for share in zip(*shares, strict=True))
            params = {
                **self.params,
                "attributes_each": max(shares[0]),
                "events_each": max(shares[1]),
                "links_each": max(shares[2]),
                "nested_each": MAX_NESTED_ATTRIBUTES,
                "budget": MAX_DETAIL_COST,
            }
            for extra in self.database.fetch("trace_span_details", params):
                self._extra.setdefault(extra[:4], extra)  # a duplicate: the first
        kept = self.kept[row]
        found = self._extra.get((kept[0], kept[2], kept[4], kept[5]))
        return _details(kept, found, self._allowed[row])


def load_trace(
    database: Database, trace_id: str, root_span_id: str, bounds: tuple[int, int]
) -> LoadedTrace | None:
    """The trace's spans (duplicated span ids: the earliest) and their tree, with shared
    span ids told apart (``shared_ids``)."""
    params = {"trace_id": trace_id, "lo": bounds[0], "hi": bounds[1]}
    rows = database.fetch("trace_spans", params)
    # A span id stored twice (--dedup-window 0) is shown once, but a SERVER span under
    # its client's id (Zipkin's shared spans) is a span of its own, one per service: as
    # the dedup window keys them (store/dedup.py).
    seen: set[tuple[str, str | None]] = set()
    kept: list[tuple[Any, ...]] = []
    for row in rows:
        key = (row[0], str(row[2]) if row[4] == "Server" else None)
        if key not in seen:
            seen.add(key)
            kept.append(row)
    if not kept:
        return None
    kinds = [row[4] for row in kept]
    services: dict[str, int] = {}
    service_codes = np.array(
        [services.setdefault(str(row[2]), len(services)) for row in kept], dtype=np.int64
    )
    unshared = unshare(
        np.array([row[11] for row in kept], dtype=np.uint64),
        np.array([row[12] for row in kept], dtype=np.uint64),
        np.array([k == "Server" for k in kinds], dtype=bool),
        np.array([k == "Client" for k in kinds], dtype=bool),
        service_codes,
        list(services),
    )
    parent = rows_of(unshared.span_keys, unshared.parent_keys)
    span_ids = [str(row[0]) for row in kept]
    parent_ids = [str(row[1]) for row in kept]
    for half in unshared.halves.tolist():
        # Shown under an id of its own, below its client (the loop below says so).
        span_ids[half] = half_span_id(trace_id, span_ids[half], str(kept[half][2]))
    for child, up in enumerate(parent.tolist()):
        if up >= 0:
            parent_ids[child] = span_ids[up]
    index: dict[tuple[str, str, str], int] = {}
    op_idx = np.array(
        [index.setdefault((r[2], r[3], r[4]), len(index)) for r in kept], dtype=np.int64
    )
    ops = list(index)
    is_async = np.array(
        [
            bool(row[10]) or (kinds[i] == "Consumer" and p >= 0 and kinds[p] == "Producer")
            for i, (row, p) in enumerate(zip(kept, parent.tolist(), strict=True))
        ],
        dtype=bool,
    )
    start = np.array([row[5] for row in kept], dtype=np.int64)
    is_root = np.array([row[0] == root_span_id for row in kept], dtype=bool)
    is_root &= ~unshared.is_half
    root_start = np.array([start[is_root][0] if is_root.any() else start.min()], dtype=np.int64)
    span_rows = SpanRows(
        trace=np.zeros(len(kept), dtype=np.int64),
        parent=parent,
        op_key=np.array([op_key(*op) for op in ops], dtype=np.uint64)[op_idx],
        start=start,
        duration=np.array([row[6] for row in kept], dtype=np.int64),
        is_error=np.array([row[7] == "Error" for row in kept], dtype=bool),
        is_async=is_async,
        is_trace_root=is_root,
        span_key=unshared.span_keys,
    )
    loaded = LoadedSpans(
        rows=span_rows,
        tree=build(span_rows, root_start),
        op_idx=op_idx,
        ops=ops,
        trace_ids=[trace_id],
        trace_keys=np.zeros(1, dtype=np.uint64),
        trace_root_start=root_start,
    )
    return LoadedTrace(
        spans=loaded,
        span_ids=span_ids,
        parent_ids=parent_ids,
        kept=kept,
        database=database,
        params=params,
    )


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
    keys = range(len(lo)) if rows.span_key is None else rows.span_key.tolist()
    tie = list(zip(rows.start.tolist(), keys, strict=True))  # as span_tree breaks ties
    for section in sections(int(roots[0]), eligible, lo, hi, tie):
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
    trace: LoadedTrace, trace_id: str, flow_id: str | None, step_p50: dict[str, float]
) -> TraceView:
    """The view of a loaded trace; ``step_p50``: step id -> the step's baseline P50 ms."""
    loaded = trace.spans
    rows, tree = loaded.rows, loaded.tree
    order, children = tree_rows(loaded)
    origin = int(rows.start.min())
    spans: list[TraceSpan] = []
    for row in order:
        service, operation, kind = loaded.ops[int(loaded.op_idx[row])]
        details = trace.details(row)
        key = step_id(int(tree.step_key[row]))
        start = int(rows.start[row])
        spans.append(
            TraceSpan(
                span_id=trace.span_ids[row],
                parent_span_id=trace.parent_ids[row],
                service=service,
                operation=operation,
                kind=kind_name(kind),
                start=timestamp_ns(start),
                start_offset_ms=(start - origin) / 1e6,
                duration_ms=int(rows.duration[row]) / 1e6,
                self_ms=int(tree.self_ns[row]) / 1e6,
                status=details.status,
                status_message=details.message,
                attributes=details.attributes,
                resource=details.resource,
                events=details.events,
                events_omitted=details.events_omitted,
                links=details.links,
                attributes_omitted=details.attributes_omitted,
                resource_omitted=details.resource_omitted,
                links_omitted=details.links_omitted,
                depth=int(tree.depth[row]),
                step_id=key if flow_id is not None else None,
                step_p50_ms=step_p50.get(key),
                on_critical_path=bool(tree.on_critical_path[row]),
                orphan=trace.parent_ids[row] != "" and int(tree.parent[row]) < 0,
                children=[trace.span_ids[c] for c in children[row]],
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
        critical_path=critical_segments(loaded, children, trace.span_ids, origin),
    )
