"""The attribute rules of the derivation: peer names and kinds, messaging, routes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from flowscope.analyzer.span_attributes import attribute_columns

MAPS = pa.map_(pa.string(), pa.string())


def columns(spans: list[tuple[str, str, dict[str, str]]]) -> list[dict[str, str | None]]:
    """attribute_columns for (kind, name, attributes) spans, one dict per span."""
    kinds = pa.array([kind for kind, _, _ in spans], pa.string())
    names = pa.array([name for _, name, _ in spans], pa.string())
    maps = pa.array([list(attrs.items()) for _, _, attrs in spans], MAPS)
    roots = np.array([kind == "Server" for kind, _, _ in spans])
    out = attribute_columns(maps, kinds, names, roots)
    return [{key: out[key][i].as_py() for key in out} for i in range(len(spans))]


@pytest.mark.parametrize(
    ("attributes", "peer", "kind"),
    [
        # An empty value counts as absent: the next key names the peer.
        ({"peer.service": "", "service.peer.name": "ledger"}, "ledger", "external"),
        ({"db.system.name": "postgresql", "db.system": "mysql"}, "postgresql", "database"),
        ({"db.system": "mysql", "db.namespace": "", "db.name": "shop"}, "mysql", "database"),
        # The newer key present but empty hides the older one, as in the exporter's data.
        ({"db.system.name": "", "db.system": "mysql", "server.address": "h"}, "h", "external"),
        ({"messaging.system": "kafka"}, "kafka", "messaging"),
        ({"messaging.system": "", "server.address": "broker"}, "broker", "external"),
        ({"server.address": "", "net.peer.name": ""}, "unknown", "external"),
    ],
)
def test_client_peer_names_and_kinds(attributes: dict[str, str], peer: str, kind: str) -> None:
    (row,) = columns([("Client", "call", attributes)])
    assert (row["Peer"], row["PeerKind"]) == (peer, kind)
    assert (row["MsgSystem"], row["Destination"]) == (None, None)


def test_messaging_columns_only_on_producers_and_consumers() -> None:
    attrs = {"messaging.system": "kafka", "messaging.destination": "old", "peer.service": "x"}
    producer, consumer, server, bare = columns(
        [
            ("Producer", "send", {**attrs, "messaging.destination.name": "orders"}),
            ("Consumer", "receive", attrs),
            ("Server", "op", attrs),
            ("Consumer", "receive", {}),
        ]
    )
    assert (producer["MsgSystem"], producer["Destination"]) == ("kafka", "orders")
    assert (consumer["MsgSystem"], consumer["Destination"]) == ("kafka", "old")
    assert (server["MsgSystem"], server["Destination"], server["Peer"]) == (None, None, None)
    assert (bare["MsgSystem"], bare["Destination"]) == ("", "")


def test_route_is_the_first_non_empty_of_route_path_target_then_the_name() -> None:
    rows = columns(
        [
            ("Server", "GET /a/1", {"http.route": "/a/{id}", "url.path": "/a/1"}),
            ("Server", "GET /a/1", {"http.route": "", "url.path": "/a/1"}),
            ("Server", "GET", {"http.target": "/t?x=1"}),
            ("Server", "work", {"http.route": ""}),
        ]
    )
    assert [row["Route"] for row in rows] == ["/a/{id}", "/a/1", "/t?x=1", "work"]


def test_sliced_and_null_maps_read_only_their_own_entries() -> None:
    maps = pa.array(
        [[("peer.service", "first")], None, [], [("server.address", "last")]],
        MAPS,
    )
    kinds = pa.array(["Client"] * 4, pa.string())
    names = pa.array(["call"] * 4, pa.string())
    roots = np.zeros(4, dtype=bool)
    whole = attribute_columns(maps, kinds, names, roots)["Peer"].to_pylist()
    assert whole == ["first", "unknown", "unknown", "last"]
    tail = attribute_columns(maps.slice(1), kinds.slice(1), names.slice(1), roots[1:])
    assert tail["Peer"].to_pylist() == ["unknown", "unknown", "last"]
