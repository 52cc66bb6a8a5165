"""Service map statistics over any window without an exact-percentile pass over
every span or call (``histogram_quantiles``).

Nodes: ``service_minutes`` (written with the spans) holds span and error counts and
a duration histogram of SERVER/CONSUMER spans per service and minute; the whole
minutes of a window come from it, the partial minutes at its ends from the spans,
and the P95's order statistics from ``server_spans``; should those two ever disagree
(they cannot, short of editing the file), the direct exact query answers instead.
Edges: likewise, ``edge_minutes`` (kept by derivation) counts calls per edge, minute
and latency bucket for the whole minutes, ``edge_calls`` (each call, with its latency
and lag buckets) the partial minutes and the order statistics.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, cast

from flowscope.analyzer.histogram_quantiles import (
    HistogramMismatch,
    Key,
    bucket_bounds,
    exact_quantiles,
)
from flowscope.analyzer.model import Window
from flowscope.store.database import Database

MINUTE_NS = 60_000_000_000
QUANTILES = (0.5, 0.95, 0.99)


def _window(window: Window) -> dict[str, int]:
    full_lo = -(-window.since_ns // MINUTE_NS) * MINUTE_NS
    full_hi = window.until_ns // MINUTE_NS * MINUTE_NS
    if full_lo >= full_hi:  # no whole minute inside: everything from the spans
        full_lo = full_hi = window.until_ns
    return {
        "since": window.since_ns,
        "until": window.until_ns,
        "full_lo": full_lo,
        "full_hi": full_hi,
    }


def node_rows(database: Database, window: Window) -> list[tuple[Any, ...]]:
    """(service, spans, errors, P95 ns or None) per service, as map_services.sql gives."""
    params = _window(window)
    spans: dict[str, int] = defaultdict(int)
    errors: dict[str, int] = defaultdict(int)
    hists: dict[Key, list[tuple[int, int]]] = defaultdict(list)
    for service, bucket, count, failed in database.fetch("map_services_hist", params):
        spans[service] += int(count)
        errors[service] += int(failed)
        if bucket >= 0:
            hists[service].append((int(bucket), int(count)))

    def fetch(wanted: list[tuple[Key, int, int]]) -> Iterable[tuple[Key, int, int, int, int]]:
        low, high = bucket_bounds(b for _, b, _ in wanted)
        return database.fetch(
            "map_services_refine",
            {
                "since": window.since_ns,
                "until": window.until_ns,
                "services": [str(s) for s, _, _ in wanted],
                "buckets": [b for _, b, _ in wanted],
                "indexes": [i for _, _, i in wanted],
                "min_duration": low,
                "max_duration": high,
            },
        )

    try:
        p95 = exact_quantiles(hists, (0.95,), fetch)
    except HistogramMismatch:
        return database.fetch("map_services", {"since": window.since_ns, "until": window.until_ns})
    return [
        (service, spans[service], errors[service], p95[service][0] if service in p95 else None)
        for service in sorted(spans)
    ]


def edge_rows(database: Database, window: Window) -> list[tuple[Any, ...]]:
    """Per edge: names, calls, errors, [p50, p95, p99], lag ones (or None)."""
    params = _window(window)
    try:
        return _edge_rows(database, params)
    except HistogramMismatch:
        # edge_minutes disagrees with the calls (it cannot, short of editing the file):
        # count every minute from the calls themselves.
        return _edge_rows(
            database, {**params, "full_lo": params["until"], "full_hi": params["until"]}
        )


def _edge_rows(database: Database, params: dict[str, int]) -> list[tuple[Any, ...]]:
    hists: dict[Key, list[tuple[int, int]]] = defaultdict(list)
    lag_hists: dict[Key, list[tuple[int, int]]] = defaultdict(list)
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for key, bucket, calls, errors in database.fetch("map_edges_hist", params):
        edge = int(key)
        totals[edge][0] += int(calls)
        totals[edge][1] += int(errors)
        hists[edge].append((int(bucket), int(calls)))
    lag_params = {"since": params["since"], "until": params["until"]}
    for key, bucket, calls in database.fetch("map_edges_lag_hist", lag_params):
        lag_hists[int(key)].append((int(bucket), int(calls)))

    def fetch(name: str) -> Any:
        def run(wanted: list[tuple[Key, int, int]]) -> Iterable[tuple[Key, int, int, int, int]]:
            rows = database.fetch(
                name,
                {
                    "since": params["since"],
                    "until": params["until"],
                    "keys": [cast(int, k) for k, _, _ in wanted],
                    "buckets": [b for _, b, _ in wanted],
                    "indexes": [i for _, _, i in wanted],
                },
            )
            return [(int(k), b, i, v, n) for k, b, i, v, n in rows]

        return run

    # Histogram and values come from the same rows in one snapshot: they always agree.
    latency = exact_quantiles(hists, QUANTILES, fetch("map_edges_refine"))
    lag = exact_quantiles(lag_hists, QUANTILES, fetch("map_edges_lag_refine"))
    names = {
        int(row[0]): row[1:] for row in database.fetch("map_edge_names", {"keys": list(totals)})
    }
    rows = [
        (*names[edge], calls, errors, latency[edge], lag.get(edge))
        for edge, (calls, errors) in totals.items()
    ]
    return sorted(rows, key=lambda row: (row[0], row[1], row[2], row[4], row[5]))
