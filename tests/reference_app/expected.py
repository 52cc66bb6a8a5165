"""The trading platform as the seed describes it: its flows' call trees and its service map.

Shared by the platform's own tests (which check the spans the app emits) and the
end-to-end test (which checks what the analyzer makes of them). A step is
(service, operation, kind) with kind as flowscope stores it.
"""

from __future__ import annotations

Step = tuple[str, str, str]
Tree = tuple[Step, list["Tree"]]

GW, US, WS, OM = "client-gateway", "user-service", "wallet-service", "order-manager"
RM, ME, MD, RS = "risk-manager", "matching-engine", "market-data", "reporting-service"


def server(service: str, operation: str, *children: Tree) -> Tree:
    return ((service, operation, "Server"), list(children))


def client(service: str, operation: str, *children: Tree) -> Tree:
    return ((service, operation, "Client"), list(children))


def internal(service: str, operation: str, *children: Tree) -> Tree:
    return ((service, operation, "Internal"), list(children))


def producer(service: str, operation: str, *children: Tree) -> Tree:
    return ((service, operation, "Producer"), list(children))


def consumer(service: str, operation: str, *children: Tree) -> Tree:
    return ((service, operation, "Consumer"), list(children))


def call(caller: str, callee: str, operation: str, *children: Tree) -> Tree:
    """An HTTP call: the caller's CLIENT span and the callee's SERVER span under it."""
    return client(caller, operation, server(callee, operation, *children))


def wallet_change(operation: str, *statements: Tree) -> Tree:
    return call(OM, WS, operation, internal(WS, "acquire wallet lock"), *statements)


MATCH_NEW_ORDER = producer(
    OM,
    "publish order-events",
    consumer(
        ME,
        "process order-events",
        internal(ME, "orderbook add_order"),
        producer(ME, "publish market-data", consumer(MD, "process market-data")),
    ),
)

FLOW_TREES: dict[str, Tree] = {
    "POST /auth/register": server(
        GW,
        "POST /auth/register",
        call(GW, US, "POST /register", internal(US, "register_user", client(US, "INSERT"))),
    ),
    "POST /auth/login": server(
        GW,
        "POST /auth/login",
        call(
            GW,
            US,
            "POST /login",
            internal(US, "authenticate_user", client(US, "SELECT")),
            internal(US, "generate_token"),
        ),
    ),
    "POST /wallet/add-funds": server(
        GW,
        "POST /wallet/add-funds",
        call(GW, US, "GET /me", client(US, "SELECT")),
        call(GW, WS, "GET /balance/{user_id}", client(WS, "SELECT")),
        call(
            GW,
            WS,
            "POST /update-balance/{user_id}",
            internal(WS, "acquire wallet lock"),
            client(WS, "UPDATE"),
            client(WS, "INSERT"),
        ),
    ),
    "POST /v1/order": server(
        GW,
        "POST /v1/order",
        call(
            GW,
            OM,
            "POST /order",
            call(
                OM,
                RM,
                "POST /validate",
                internal(RM, "validate_order", client(RM, "GET risk_limits")),
            ),
            wallet_change("POST /block-funds", client(WS, "UPDATE"), client(WS, "INSERT")),
            client(OM, "INSERT"),
            MATCH_NEW_ORDER,
        ),
    ),
    "GET /v1/orders": server(
        GW, "GET /v1/orders", call(GW, OM, "GET /orders/user/{user_id}", client(OM, "SELECT"))
    ),
    "GET /reports/positions": server(
        GW,
        "GET /reports/positions",
        call(
            GW,
            RS,
            "GET /positions/{user_id}",
            client(RS, "SELECT"),
            internal(RS, "calculate_pnl"),
        ),
    ),
    "DELETE /v1/order/{order_id}": server(
        GW,
        "DELETE /v1/order/{order_id}",
        call(
            GW,
            OM,
            "DELETE /order/{order_id}",
            client(OM, "SELECT"),
            wallet_change("POST /unblock-funds", client(WS, "UPDATE"), client(WS, "INSERT")),
            client(OM, "UPDATE"),
            producer(
                OM,
                "publish order-events",
                consumer(ME, "process order-events", internal(ME, "orderbook remove_order")),
            ),
        ),
    ),
}


def paths(tree: Tree, above: tuple[Step, ...] = ()) -> set[tuple[Step, ...]]:
    """Every root-to-step path of a tree: the tree as a set, order of siblings ignored."""
    step, children = tree
    here = (*above, step)
    found = {here}
    for child in children:
        found |= paths(child, here)
    return found


# The service map the seed draws, with the rule each edge comes from (DESIGN.md §4).
# Virtual peers are named db.system[/db.name]: three SQLite files and the in-process cache.
MAP_EDGES: set[tuple[str, str, str]] = {
    (GW, US, "rpc"),
    (GW, WS, "rpc"),
    (GW, OM, "rpc"),
    (GW, RS, "rpc"),
    (OM, RM, "rpc"),
    (OM, WS, "rpc"),
    (OM, ME, "async"),
    (ME, MD, "async"),
    (US, "sqlite/users", "virtual"),
    (WS, "sqlite/wallets", "virtual"),
    (OM, "sqlite/orders", "virtual"),
    (RS, "sqlite/orders", "virtual"),
    (RM, "in-process-cache", "virtual"),
}
