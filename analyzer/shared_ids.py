"""Span ids shared by a client and its server (Zipkin/B3 "single-host" spans), told
apart for analysis.

Zipkin instrumentation may report an RPC's server span under its client's span id;
the OpenTelemetry Collector's zipkin receiver passes both on over OTLP with that one
id, and ``flowscope import`` of Zipkin and Jaeger files keeps it too, so the store
holds two spans (CLIENT and SERVER) of one id: the dedup key tells them apart. They
are stored as sent; analysis un-shares them the way Jaeger's query service does (its
span-id deduper):

- a SERVER span whose id is also a CLIENT span's id in the same trace is the server
  half: it gets a key of its own and goes under the client span;
- spans of the half's service whose parent is the shared id go under the half (the
  server's children; the client's own children, in the client's service, stay).

It works on the 64-bit span keys analysis uses (``fs_span_key``, sql/004_keys.sql),
for derivation and the trace view alike, so both build the same tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
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
    is_half: BOOL  # the server halves (their parent key is the shared id's)

    @property
    def halves(self) -> I64:
        """Rows of the server halves."""
        rows: I64 = np.flatnonzero(self.is_half)
        return rows


def half_span_id(trace_id: str, span_id: str, service: str) -> str:
    """The span id a trace view shows a server half under (its stored id is the shared
    one): from trace id, span id and service, as ``flowscope import`` stored halves
    before it kept shared ids as sent, so a trace looks the same whichever way it came."""
    seed = b"flowscope/zipkin-shared-span" + bytes.fromhex(trace_id) + bytes.fromhex(span_id)
    return hashlib.sha256(seed + service.encode()).digest()[:8].hex()


def _salt(service: str) -> int:
    """A service name as 64 bits, the same in every process (Python's ``hash`` of a
    str is not)."""
    digest = hashlib.blake2b(service.encode(), digest_size=8, person=b"fs-half").digest()
    return int.from_bytes(digest, "little")


def _mix(keys: U64, salts: U64) -> U64:
    """The keys of server halves: splitmix64's finalizer of (shared key ^ service salt),
    never 0 (0 means "no parent"). Arrays only: numpy wraps array products silently."""
    x = keys ^ salts
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    mixed: U64 = np.where(x == 0, np.uint64(1), x)
    return mixed


def half_key(shared_key: int, service: str) -> int:
    """The key of the server half, in ``service``, of a span id shared with its client."""
    keys = np.array([shared_key], dtype=np.uint64)
    return int(_mix(keys, np.array([_salt(service)], dtype=np.uint64))[0])


def unshare(
    span_keys: U64,
    parent_keys: U64,
    is_server: BOOL,
    is_client: BOOL,
    service_codes: I64,
    services: Sequence[str],
) -> Unshared:
    """Span and parent keys with every server half given its own key (see the module
    doc); a span's service is ``services[service_codes[row]]`` (-1: none). The arrays
    come back unchanged, not copied, when no two spans share a key (the usual case:
    one sort). Vectorized: in Zipkin-instrumented systems every call has a half."""
    none = np.zeros(len(span_keys), dtype=bool)
    ordered = np.sort(span_keys)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if len(repeated) == 0:
        return Unshared(span_keys, parent_keys, none)
    client_keys = np.unique(span_keys[is_client & _within(np.unique(repeated), span_keys)])
    is_half = is_server & _within(client_keys, span_keys)
    halves = np.flatnonzero(is_half)
    if len(halves) == 0:
        return Unshared(span_keys, parent_keys, none)
    # One salt per service, and the last for code -1 (no service).
    salts = np.array([_salt(name) for name in [*services, ""]], dtype=np.uint64)
    row_salt = salts[service_codes]
    shared = span_keys[halves]
    new_keys = _mix(shared, row_salt[halves])
    keys = span_keys.copy()
    keys[halves] = new_keys
    parents = parent_keys.copy()
    parents[halves] = shared
    # Under the shared id, a span of a half's service: its key with that service's salt
    # is the half's key.
    under = np.flatnonzero(_within(np.unique(shared), parent_keys) & ~is_half)
    wanted = _mix(parent_keys[under], row_salt[under])
    moves = _within(np.sort(new_keys), wanted)
    parents[under[moves]] = wanted[moves]
    return Unshared(keys, parents, is_half)


def _within(ordered: U64, values: U64) -> BOOL:
    """Which values are in ``ordered`` (sorted): ``np.isin`` sorted both every time."""
    if len(ordered) == 0:
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(ordered, values), len(ordered) - 1)
    found: BOOL = ordered[at] == values
    return found
