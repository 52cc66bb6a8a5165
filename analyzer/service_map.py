"""The service map: services and the peers they call, with the rule behind each edge.

Edges come from ``edge_calls`` (one row per cross-service call, derived by
``flowscope/store/derivation.py`` with the three rules of DESIGN.md §4); nodes are
the services that sent spans plus virtual nodes for peers that sent none (kind
database, messaging or external, from the attributes that named them). A virtual
node's ``spans`` are the calls made to it and its ``p95_ms`` is None.
"""

from __future__ import annotations

from typing import Any, cast

from flowscope.analyzer.milliseconds import ms_of_ns
from flowscope.analyzer.model import (
    Edge,
    EdgeRule,
    Node,
    NodeKind,
    PeerKind,
    ServiceMap,
    Window,
)
from flowscope.analyzer.node_stats import edge_rows, node_rows
from flowscope.analyzer.rates import rate_minutes
from flowscope.store.database import Database


def _edge(row: tuple[Any, ...], minutes: float) -> Edge:
    source, target, rule, kind, system, destination, calls, errors, latency, lag = row
    p50, p95, p99 = latency
    is_async = rule == "async"
    lag_p = lag if (is_async and lag is not None) else (None, None, None)
    return Edge(
        source=source,
        target=target,
        rule=cast(EdgeRule, rule),
        calls=int(calls),
        errors=int(errors),
        error_rate=int(errors) / int(calls),
        p50_ms=ms_of_ns(p50),
        p95_ms=ms_of_ns(p95),
        p99_ms=ms_of_ns(p99),
        rate_per_min=int(calls) / minutes,
        messaging_system=system if is_async else None,
        destination=destination if is_async else None,
        lag_p50_ms=None if lag_p[0] is None else ms_of_ns(lag_p[0]),
        lag_p95_ms=None if lag_p[1] is None else ms_of_ns(lag_p[1]),
        lag_p99_ms=None if lag_p[2] is None else ms_of_ns(lag_p[2]),
        peer_kind=cast(PeerKind, kind) if rule == "virtual" else None,
    )


def build_map(
    edge_rows: list[tuple[Any, ...]], service_rows: list[tuple[Any, ...]], minutes: float
) -> ServiceMap:
    edges = [_edge(row, minutes) for row in edge_rows]
    nodes: dict[str, Node] = {}
    for service, spans, errors, p95 in service_rows:
        nodes[service] = Node(
            id=service,
            kind="service",
            spans=int(spans),
            error_rate=int(errors) / int(spans) if spans else 0.0,
            p95_ms=None if p95 is None else ms_of_ns(p95),
        )
    for edge in edges:
        # Both ends of an rpc or async call are services that sent spans; outside the
        # window (clock skew) or the flow's traces they have none here. Only a virtual
        # call's target is a peer that sends none, counted by its calls below.
        ends = (edge.source,) if edge.rule == "virtual" else (edge.source, edge.target)
        for end in ends:
            if end not in nodes:
                nodes[end] = Node(end, "service", 0, 0.0, None)
    virtual: dict[str, list[int]] = {}
    kinds: dict[str, str] = {}
    for row, edge in zip(edge_rows, edges, strict=True):
        if edge.target in nodes:
            continue
        totals = virtual.setdefault(edge.target, [0, 0])
        totals[0] += edge.calls
        totals[1] += edge.errors
        # Calls may name one peer as different kinds (peer.service alone, and with
        # db.system): the most specific wins, whatever order the rows come in.
        known = kinds.get(edge.target)
        if known is None or _PEER_KIND_RANK.get(row[3], 3) < _PEER_KIND_RANK.get(known, 3):
            kinds[edge.target] = row[3]
    for peer, (calls, errors) in virtual.items():
        nodes[peer] = Node(
            id=peer,
            kind=cast(NodeKind, kinds[peer]),
            spans=calls,
            error_rate=errors / calls if calls else 0.0,
            p95_ms=None,
        )
    return ServiceMap(nodes=[nodes[k] for k in sorted(nodes)], edges=edges)


_PEER_KIND_RANK = {"database": 0, "messaging": 1, "external": 2}


def service_map(database: Database, window: Window, *, selected: bool = False) -> ServiceMap:
    """The map of every call in the window, or of the selected traces (``sel_traces``)."""
    minutes = rate_minutes(database, window)
    if not selected:
        return build_map(edge_rows(database, window), node_rows(database, window), minutes)
    count, lo, hi = database.fetch("sel_range")[0]
    if not count:
        return ServiceMap(nodes=[], edges=[])
    return build_map(
        database.fetch("map_edges_selected"),
        database.fetch("map_services_selected", {"lo": lo, "hi": hi}),
        minutes,
    )
