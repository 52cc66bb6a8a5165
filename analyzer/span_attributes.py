"""What the derivation reads from span attributes: peer names, messaging, root routes.

Vectorized over the loaded spans' ``SpanAttributes`` maps with Arrow's ``map_lookup``.
The same rules once ran as SQL expressions in ``dv_load_spans.sql``; DuckDB spent
about 8 ms planning them for every load, more than the loads themselves took on a
quiet server (docs/benchmarks.md).

Virtual peer name of a CLIENT span (DESIGN.md §4 rule 2): ``peer.service``,
``service.peer.name``, ``db.system.name``/``db.system`` (+ ``/`` and
``db.namespace``/``db.name``), ``messaging.system`` (+ ``/`` and the destination),
``server.address``, then the older ``net.peer.name``; ``unknown`` when none names a
peer. A key whose value is empty counts as absent. Its kind: database when a database
system is named, messaging when a messaging system is, else external.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

_EMPTY = pa.scalar("", pa.string())
_NULL = pa.scalar(None, pa.string())


def _lookup(attributes: pa.Array, key: str) -> pa.Array:
    """The value under ``key`` (null when the map lacks it)."""
    return pc.map_lookup(attributes, pa.scalar(key, pa.string()), "first")


def _named(value: pa.Array) -> pa.Array:
    """``value``, with the empty string as null."""
    return pc.if_else(pc.equal(value, _EMPTY), _NULL, value)


def _joined(first: pa.Array, second: pa.Array) -> pa.Array:
    """``first/second``, or ``first`` alone without a second; null without a first."""
    suffix = pc.fill_null(pc.binary_join_element_wise("/", second, ""), _EMPTY)
    return pc.binary_join_element_wise(first, suffix, "")


def attribute_columns(
    attributes: pa.Array, span_kind: pa.Array, span_name: pa.Array
) -> dict[str, pa.Array]:
    """Peer, PeerKind (CLIENT spans), MsgSystem, Destination (PRODUCER and CONSUMER
    spans) and Route (the root's route, or its name: meant for root spans) per span;
    null where the span's kind has none."""

    def first_present(*keys: str) -> pa.Array:
        return pc.coalesce(*(_lookup(attributes, key) for key in keys))

    db_system = _named(first_present("db.system.name", "db.system"))
    msg_system = first_present("messaging.system")
    destination = first_present("messaging.destination.name", "messaging.destination")
    peer = pc.coalesce(
        _named(first_present("peer.service")),
        _named(first_present("service.peer.name")),
        _joined(db_system, _named(first_present("db.namespace", "db.name"))),
        _joined(_named(msg_system), _named(destination)),
        _named(first_present("server.address")),
        _named(first_present("net.peer.name")),
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
    client = pc.equal(span_kind, pa.scalar("Client", pa.string()))
    messaging = pc.is_in(span_kind, pa.array(["Producer", "Consumer"], pa.string()))
    route = pc.coalesce(
        _named(first_present("http.route")),
        _named(first_present("url.path")),
        _named(first_present("http.target")),
        span_name,
    )
    return {
        "Peer": pc.if_else(client, peer, _NULL),
        "PeerKind": pc.if_else(client, peer_kind, _NULL),
        "MsgSystem": pc.if_else(messaging, pc.fill_null(msg_system, _EMPTY), _NULL),
        "Destination": pc.if_else(messaging, pc.fill_null(destination, _EMPTY), _NULL),
        "Route": route,
    }


__all__ = ["attribute_columns"]
