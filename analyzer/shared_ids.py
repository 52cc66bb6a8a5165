"""Span ids shared by a client and its server (Zipkin/B3 "single-host" spans), told
apart for analysis.

Zipkin instrumentation may report an RPC's server span under its client's span id;
the OpenTelemetry Collector's zipkin receiver passes both on over OTLP with that one
id, so the store holds two spans (CLIENT and SERVER) of one id. They are stored as
sent; analysis un-shares them the way Jaeger's query service does (its span-id
deduper), and the way ``flowscope import`` renames them in Zipkin and Jaeger files
(``collector.import_formats.unshare_ids``):

- a SERVER span whose id is also a CLIENT span's id in the same trace is the server
  half: it gets a key of its own and goes under the client span;
- spans of the half's service whose parent is the shared id go under the half (the
  server's children; the client's own children, in the client's service, stay).

It works on the 64-bit span keys analysis uses (DuckDB ``hash(TraceId, SpanId)``),
for derivation and the trace view alike, so both build the same tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
BOOL = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Unshared:
    span_keys: U64
    parent_keys: U64
    halves: I64  # rows of the server halves (their parent key is the shared id's)


def half_key(shared_key: int, service: str) -> int:
    """The key of the server half, in ``service``, of a span id shared with its client:
    the same in every pass and process (Python's ``hash`` of a str is not)."""
    digest = hashlib.blake2b(
        shared_key.to_bytes(8, "little") + service.encode(), digest_size=8, person=b"fs-half"
    ).digest()
    return int.from_bytes(digest, "little") or 1  # 0 means "no parent"


def unshare(
    span_keys: U64,
    parent_keys: U64,
    is_server: BOOL,
    is_client: BOOL,
    service_of: Callable[[int], str],
) -> Unshared:
    """Span and parent keys with every server half given its own key (see the module
    doc); ``service_of(row)`` names a span's service. The arrays come back unchanged,
    not copied, when no two spans share a key (the usual case: one sort)."""
    none = np.zeros(0, dtype=np.int64)
    ordered = np.sort(span_keys)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if len(repeated) == 0:
        return Unshared(span_keys, parent_keys, none)
    client_keys = span_keys[is_client & np.isin(span_keys, repeated)]
    halves = np.flatnonzero(is_server & np.isin(span_keys, client_keys)).astype(np.int64)
    if len(halves) == 0:
        return Unshared(span_keys, parent_keys, none)
    keys = span_keys.copy()
    parents = parent_keys.copy()
    moved: dict[tuple[int, str], int] = {}
    for row in halves.tolist():
        shared = int(span_keys[row])
        new = half_key(shared, service_of(row))
        moved[(shared, service_of(row))] = new
        keys[row] = new
        parents[row] = shared
    is_half = np.zeros(len(span_keys), dtype=bool)
    is_half[halves] = True
    under = np.flatnonzero(np.isin(parent_keys, span_keys[halves]) & ~is_half)
    for row in under.tolist():
        new_parent = moved.get((int(parent_keys[row]), service_of(row)))
        if new_parent is not None:
            parents[row] = new_parent
    return Unshared(keys, parents, halves)
