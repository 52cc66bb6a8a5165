"""What the derivation reads from span attributes: peer names, messaging, root routes.

Vectorized over the loaded spans' ``SpanAttributes`` maps (one pass over their
entries, with Arrow and numpy). The same rules once ran as SQL expressions in ``dv_load_spans.sql``; DuckDB spent
about 8 ms planning them for every load, more than the loads themselves took on a
quiet server (docs/benchmarks.md).

Virtual peer name of a CLIENT span (DESIGN.md §4 rule 2): ``peer.service``,
``service.peer.name``, ``db.system.name``/``db.system`` (+ ``/`` and
``db.namespace``/``db.name``), ``messaging.system`` (+ ``/`` and the destination),
``server.address``, then the older ``net.peer.name``, OpenTracing's ``peer.hostname``
(and its ``db.type``/``db.instance`` after the database keys), then the host of
``url.full`` or the older ``http.url``; ``unknown`` when none names a peer. A key whose value is empty
counts as absent. Its kind: database when a database system is named, messaging when a
messaging system is, else external.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

_EMPTY = pa.scalar("", pa.string())
_NULL = pa.scalar(None, pa.string())

_KEYS = (
    "peer.service",
    "service.peer.name",
    "db.system.name",
    "db.system",
    "db.namespace",
    "db.name",
    "db.type",
    "db.instance",
    "messaging.system",
    "messaging.destination.name",
    "messaging.destination",
    "server.address",
    "net.peer.name",
    "peer.hostname",
    "url.full",
    "http.url",
    "http.route",
    "url.path",
    "http.target",
    "asgi.event.type",
)


def _lookups(attributes: pa.Array) -> dict[str, pa.Array]:
    """The value under each key the rules read, per span (null when absent).

    One pass over the maps' entries, every key compared there, instead of a
    ``map_lookup`` per key: each of those walks all the maps again (~1 ms a key at
    5,000 spans).
    """
    length = len(attributes)
    # A MapArray's keys and items are its whole children; its offsets (which respect a
    # slice) say which entries are whose.
    offsets = attributes.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
    first, last = int(offsets[0]), int(offsets[-1])
    names = attributes.keys.slice(first, last - first)
    values = attributes.items.slice(first, last - first)
    owner = np.repeat(np.arange(length, dtype=np.int64), np.diff(offsets))
    if attributes.null_count:  # a null map owns no entries, whatever lies behind it
        valid = attributes.is_valid().to_numpy(zero_copy_only=False)
        names = names.filter(pa.array(valid[owner]))
        values = values.filter(pa.array(valid[owner]))
        owner = owner[valid[owner]]
    found: dict[str, pa.Array] = {}
    for key in _KEYS:
        hit = pc.equal(names, pa.scalar(key, pa.string())).to_numpy(zero_copy_only=False)
        at = np.full(length, -1, dtype=np.int64)
        at[owner[hit]] = np.flatnonzero(hit)  # a DuckDB MAP holds each key once
        found[key] = values.take(pa.array(at, mask=at < 0))
    return found


def _named(value: pa.Array) -> pa.Array:
    """``value``, with the empty string as null."""
    return pc.if_else(pc.equal(value, _EMPTY), _NULL, value)


def _joined(first: pa.Array, second: pa.Array) -> pa.Array:
    """``first/second``, or ``first`` alone without a second; null without a first."""
    suffix = pc.fill_null(pc.binary_join_element_wise("/", second, ""), _EMPTY)
    return pc.binary_join_element_wise(first, suffix, "")


# The host of an absolute URL (after any user info; an IPv6 address keeps its brackets).
_URL_HOST = r"^[A-Za-z][A-Za-z0-9+.\-]*://(?:[^@/?#]*@)?(?P<host>\[[^\]/?#]*\]|[^:/?#\[\]]+)"


def _url_host(url: pa.Array) -> pa.Array:
    """The host each URL names, in lower case (as hosts compare); null for no URL or
    one without a host."""
    host = pc.struct_field(pc.extract_regex(url, pattern=_URL_HOST), [0])
    return _named(pc.utf8_lower(host))


def shared_default_name(service: str) -> bool:
    """A service name many processes share by default: none (stored as ''), or the
    SDKs' ``unknown_service`` (``unknown_service:python``), not a service of its own."""
    return not service.strip() or service.startswith("unknown_service")


def attribute_columns(
    attributes: pa.Array, span_kind: pa.Array, span_name: pa.Array, is_root: npt.NDArray[np.bool_]
) -> dict[str, pa.Array]:
    """Peer, PeerKind (CLIENT spans), StepPeer (CLIENT and PRODUCER spans), MsgSystem,
    Destination (PRODUCER and CONSUMER spans) and Route (root spans) per span; null where
    a span has none. ReportsOutcome: the span reports its request's outcome (below)."""
    value = _lookups(attributes)
    # OpenTracing's names last (db.type, db.instance, peer.hostname): Jaeger clients'
    # spans, imported from Jaeger, all called one 'unknown' node (migrator review).
    # A newer key present but empty hides the older ones, as the exporter's data has it.
    db_system = _named(pc.coalesce(value["db.system.name"], value["db.system"], value["db.type"]))
    msg_system = value["messaging.system"]
    destination = pc.coalesce(value["messaging.destination.name"], value["messaging.destination"])
    client = pc.equal(span_kind, pa.scalar("Client", pa.string()))
    named_peer = pc.coalesce(
        _named(value["peer.service"]),
        _named(value["service.peer.name"]),
        _joined(
            db_system,
            _named(pc.coalesce(value["db.namespace"], value["db.name"], value["db.instance"])),
        ),
        _joined(_named(msg_system), _named(destination)),
        _named(value["server.address"]),
        _named(value["net.peer.name"]),
        _named(value["peer.hostname"]),
    )
    # Python's requests/httpx/urllib instrumentations name the peer by the URL alone:
    # every call out of such services went to one 'unknown' node. The host is read (a
    # regular expression) only where it is used: a CLIENT span nothing above named.
    url = pc.coalesce(_named(value["url.full"]), _named(value["http.url"]))
    unnamed_call = pc.and_(client, pc.is_null(named_peer))
    peer = pc.coalesce(
        named_peer,
        _url_host(pc.if_else(unnamed_call, url, _NULL)),
        pa.scalar("unknown", pa.string()),
    )
    peer_kind = pc.if_else(
        pc.is_valid(db_system),
        pa.scalar("database", pa.string()),
        pc.if_else(
            pc.is_valid(_named(msg_system)),
            pa.scalar("messaging", pa.string()),
            pa.scalar("external", pa.string()),
        ),
    )
    route = pc.coalesce(
        _named(value["http.route"]),
        _named(value["url.path"]),
        _named(value["http.target"]),
        span_name,
    )
    producer = pc.equal(span_kind, pa.scalar("Producer", pa.string()))
    messaging = pc.is_in(span_kind, pa.array(["Producer", "Consumer"], pa.string()))
    queue = _joined(_named(msg_system), _named(destination))
    return {
        "Peer": pc.if_else(client, peer, _NULL),
        # A step's peer: a CLIENT span's, or the queue a PRODUCER span sends to, which a
        # sequence diagram draws the message to when no consumer in the trace takes it
        # (its consumer in another trace, joined by a link): it was a call to itself.
        # Not the map's: a virtual edge there would count link-joined calls twice.
        "StepPeer": pc.if_else(client, peer, pc.if_else(producer, queue, _NULL)),
        "PeerKind": pc.if_else(client, peer_kind, _NULL),
        "MsgSystem": pc.if_else(messaging, pc.fill_null(msg_system, _EMPTY), _NULL),
        "Destination": pc.if_else(messaging, pc.fill_null(destination, _EMPTY), _NULL),
        "Route": pc.if_else(pa.array(is_root), route, _NULL),
        # Python's ASGI instrumentation (FastAPI, Starlette) wraps each message of a
        # request in a span of its own, and marks the one sending a 5xx response as an
        # error: that span reports its request's failure, it does not start it.
        "ReportsOutcome": pc.is_valid(value["asgi.event.type"]),
    }


__all__ = ["attribute_columns", "shared_default_name"]
