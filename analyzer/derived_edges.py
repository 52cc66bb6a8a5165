"""The edge rules of DESIGN.md §4 as ``edge_calls`` rows (see ``derived_rows``)."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.analyzer.derived_spans import I64, Spans, Strings, rows_of
from flowscope.analyzer.span_attributes import shared_default_name

EDGE_NAMES = ("Source", "Target", "Rule", "TargetKind", "MessagingSystem", "Destination")


def edge_key(names: tuple[str, ...]) -> int:
    """Stable 64-bit id of an edge's (source, target, rule, kind, system, destination)."""
    digest = hashlib.blake2b("\x1f".join(names).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


# Histogram buckets of call latencies and lags: 64 per doubling (~1 % wide), so the
# exact-percentile pass sorts ~1 % of an edge's calls (analyzer/histogram_quantiles.py).
BUCKETS_PER_DOUBLING = 64


def histogram_bucket(values: I64) -> npt.NDArray[np.int16]:
    """floor(64 * log2(value)) (values below 1 count as 1)."""
    buckets: npt.NDArray[np.int16] = np.floor(
        np.log2(np.maximum(values, 1).astype(np.float64)) * BUCKETS_PER_DOUBLING
    ).astype(np.int16)
    return buckets


def _linked_pairs(s: Spans) -> tuple[I64, I64]:
    """(consumer row, producer row) for in-scope CONSUMER spans linked to a PRODUCER."""
    links = s.col["LinkKeys"].combine_chunks()
    if pc.sum(pc.fill_null(pc.list_value_length(links), 0)).as_py() in (0, None):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    owner = pc.list_parent_indices(links).to_numpy(zero_copy_only=False).astype(np.int64)
    targets = pc.list_flatten(links).to_numpy(zero_copy_only=False).astype(np.uint64)
    producer = rows_of(s.span_keys, targets)
    safe = np.maximum(producer, 0)
    ok = (producer >= 0) & s.in_scope[owner] & s.is_consumer[owner] & s.is_producer[safe]
    ok &= s.service.codes[owner] != s.service.codes[safe]
    return owner[ok], producer[ok]


# CLIENT spans nested in CLIENT spans of their service, followed this many levels up.
MAX_CLIENT_CHAIN = 16


def _virtual_calls(s: Spans, answered: npt.NDArray[np.bool_]) -> I64:
    """The CLIENT spans that call a peer sending no spans (rule 2); ``answered``: those
    with a child in another service.

    A chain of CLIENT spans in one service (an SDK's span over its HTTP span, .NET's
    gRPC client span over its HttpClient span) makes one call. When every inner CLIENT
    span of the chain is answered by a traced service, their rpc calls stand for it;
    else the outermost span calls the peer, by its own name (its peer.service or
    db.system names it best), and the inner ones make no edge of their own (those
    answered keep their rpc calls). An inner span under an outer one answered by a
    child in another service is a call of its own. Counting each CLIENT span counted
    such a call twice, once rpc and once virtual."""
    parent, service = s.parent, s.service.codes
    nested = (parent >= 0) & s.is_client
    rows = np.flatnonzero(nested)
    nested[rows] = s.is_client[parent[rows]] & (service[parent[rows]] == service[rows])
    inner = np.flatnonzero(nested)
    outer = parent[inner]
    answered = answered.copy()
    for _ in range(MAX_CLIENT_CHAIN):  # a level of the chains a round, deepest first
        waiting = np.zeros(len(parent), dtype=bool)
        waiting[outer[~answered[inner]]] = True
        newly = np.unique(outer[~waiting[outer] & ~answered[outer]])
        if not len(newly):
            break
        answered[newly] = True
    # An inner span under an outer one that calls the peer is that call; under an outer
    # answered elsewhere (a child in another service beside it), a call of its own.
    stands_in = nested.copy()
    stands_in[inner] = ~answered[outer]
    return np.flatnonzero(s.in_scope & s.is_client & ~answered & ~stands_in)


# Name codes whose radices multiply past this cannot share one int64 (tests lower it).
PACKABLE = 2**63


def edge_tables(s: Spans) -> tuple[pa.Table, pa.Table]:
    parent, service = s.parent, s.service.codes
    child = np.flatnonzero((parent >= 0) & s.in_scope)
    child = child[service[child] != service[parent[child]]]
    up = parent[child]
    by_parent = s.is_producer[up] & s.is_consumer[child]
    rpc_child, rpc_parent = child[~by_parent], up[~by_parent]
    called_elsewhere = np.zeros(len(parent), dtype=bool)
    called_elsewhere[up] = True
    # A CLIENT span a SERVER span of its own service answers (a service calling its own
    # API) calls no peer that sends no spans: naming one drew an 'unknown' external node
    # for a call the service answered itself. The map has no self-edges (rule 1).
    own = np.flatnonzero((parent >= 0) & s.is_server)
    own = own[service[own] == service[parent[own]]]
    # Not for a name many processes share by default (an SDK's unknown_service:python,
    # or none): two such services calling each other are no self-call.
    if len(own):  # most loads hold no self-call
        named = np.array([not shared_default_name(v) for v in s.service.values], dtype=bool)
        own = own[named[service[own]]]
    called_elsewhere[parent[own]] = True
    virtual = _virtual_calls(s, called_elsewhere)
    link_child, link_producer = _linked_pairs(s)
    a_child = np.concatenate([child[by_parent], link_child])
    a_prod = np.concatenate([up[by_parent], link_producer])
    if len(a_child):
        # One call per producer span, consumer service and consumer trace: a consumer
        # both child of and linked to its producer, or a pull consumer's receive span
        # and its process span both linked to it (messaging conventions before 1.26),
        # counted a message twice. The earliest consumer span stands for it.
        keys = (a_prod, service[a_child], s.trace[a_child])
        # Ties by span key, not row: rows come in no set order, and the answer must
        # not depend on the order spans arrived in.
        order = np.lexsort((s.span_keys[a_child], s.start[a_child], *reversed(keys)))
        ordered = [key[order] for key in keys]
        first = np.ones(len(order), dtype=bool)
        first[1:] = np.any([key[1:] != key[:-1] for key in ordered], axis=0)
        keep = np.sort(order[first])
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
            _named_first(msg, a_prod, a_child),
        ]
    )
    destination = np.concatenate(
        [
            np.full(len(rpc_child) + len(virtual), -1),
            _named_first(dest, a_prod, a_child),
        ]
    )
    # One int64 per call: mixed-radix digits of its name codes.
    radix = [3, n_svc + 1, n_svc + len(peer.values) + 1, len(peer_kind.values) + 1]
    radix += [len(msg.values) + 1, len(dest.values) + 1]
    columns = [rule, source, target, kind + 1, system + 1, destination + 1]
    unique_rows: list[list[int]] = []
    if math.prod(radix) < PACKABLE:
        packed = np.zeros(len(rule), dtype=np.int64)
        for digit, base in zip(columns, radix, strict=True):
            packed = packed * base + digit
        unique_packed, inverse = np.unique(packed, return_inverse=True)
        for value in unique_packed.tolist():
            digits = []
            for base in reversed(radix):
                value, digit = divmod(value, base)
                digits.append(digit)
            unique_rows.append(list(reversed(digits)))
    else:  # tens of thousands of services, peers and queues in one pass: would overflow
        unique_codes, inverse = np.unique(np.stack(columns, axis=1), axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        unique_rows = unique_codes.tolist()
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
    target_rows = np.concatenate([rpc_child, virtual, a_child])
    called = s.trace[target_rows]
    calling = s.trace[np.concatenate([rpc_parent, virtual, a_prod])]
    latency = np.concatenate([s.duration[measured], s.duration[virtual], s.duration[a_child]])
    calls = pa.table(
        {
            "Ts": pa.array(np.concatenate([s.start[measured], s.start[virtual], s.start[a_child]])),
            # 0 when the calling side is in the same trace (every call but a linked
            # async one): a second copy of every trace's key would cost bytes on disk.
            "SourceTraceKey": pa.array(
                np.where(calling == called, np.uint64(0), s.keys[calling]), pa.uint64()
            ),
            "EdgeKey": pa.array(
                key_of[inverse.reshape(-1)] if len(key_of) else np.zeros(0, np.uint64)
            ),
            "LatencyNs": pa.array(latency),
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
            "Bucket": pa.array(histogram_bucket(latency)),
            "TraceKey": pa.array(s.keys[called]),
            "LagBucket": pa.array(
                np.concatenate([np.zeros(n_plain, np.int16), histogram_bucket(lag)]),
                mask=np.arange(n_plain + len(lag)) < n_plain,
            ),
        }
    )
    keys = pa.table(
        {"EdgeKey": pa.array(key_of, pa.uint64())}
        | {name: pa.array([d[i] for d in dims], pa.string()) for i, name in enumerate(EDGE_NAMES)}
    )
    return calls, keys


def _named_first(strings: Strings, first: I64, second: I64) -> I64:
    """Codes of the ``first`` rows' names, or of the ``second`` rows' where a first
    row has none: null, or empty (producers and consumers without the attribute have
    '', which had hidden the consumer's system and destination)."""
    codes = strings.codes[first]
    empty = strings.values.index("") if "" in strings.values else -1
    named: I64 = np.where((codes >= 0) & (codes != empty), codes, strings.codes[second])
    return named
