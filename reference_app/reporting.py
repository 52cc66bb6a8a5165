"""reporting-service: a user's positions and P&L, read from the order database.

The report is one aggregate JOIN. Under the ``n-plus-one`` fault (a share of
reports, like a half-rolled-out feature flag) it lists the symbols first and
then runs one query per symbol, each its own round trip, as an ORM's lazy
loading does.
"""

from __future__ import annotations

import functools
from typing import Any

from flowscope.reference_app.kit import Service, ServiceKit, annotate
from flowscope.reference_app.orders import open_orders_database
from flowscope.reference_app.sqlite_db import Row, Session

POSITIONS_SQL = """
SELECT o.symbol, i.currency, i.ref_price,
       SUM(CASE WHEN o.side = 'buy' THEN o.quantity ELSE -o.quantity END) AS net_quantity,
       SUM(o.quantity * o.price) / SUM(o.quantity) AS avg_price,
       COUNT(*) AS orders
FROM orders AS o JOIN instruments AS i ON i.symbol = o.symbol
WHERE o.user_id = ? AND o.status = 'open'
GROUP BY o.symbol, i.currency, i.ref_price
ORDER BY o.symbol
"""

SYMBOLS_SQL = (
    "SELECT DISTINCT symbol FROM orders WHERE user_id = ? AND status = 'open' ORDER BY symbol"
)

ONE_POSITION_SQL = """
SELECT o.symbol, i.currency, i.ref_price,
       SUM(CASE WHEN o.side = 'buy' THEN o.quantity ELSE -o.quantity END) AS net_quantity,
       SUM(o.quantity * o.price) / SUM(o.quantity) AS avg_price,
       COUNT(*) AS orders
FROM orders AS o JOIN instruments AS i ON i.symbol = o.symbol
WHERE o.user_id = ? AND o.symbol = ? AND o.status = 'open'
GROUP BY o.symbol, i.currency, i.ref_price
"""


def _one_position(user_id: int, symbol: str, session: Session) -> Row | None:
    return session.one(ONE_POSITION_SQL, (user_id, symbol))


def profit_and_loss(rows: list[Row]) -> dict[str, Any]:
    """Per-symbol unrealized P&L against the reference price, and totals per currency."""
    positions = []
    totals: dict[str, float] = {}
    for symbol, currency, ref_price, net_quantity, avg_price, orders in rows:
        pnl = round(net_quantity * (ref_price - avg_price), 2)
        totals[currency] = round(totals.get(currency, 0.0) + pnl, 2)
        positions.append(
            {
                "symbol": symbol,
                "currency": currency,
                "net_quantity": net_quantity,
                "avg_price": round(avg_price, 4),
                "ref_price": ref_price,
                "orders": orders,
                "pnl": pnl,
            }
        )
    return {"positions": positions, "pnl_by_currency": totals}


def create_reporting_service(kit: ServiceKit) -> Service:
    db = open_orders_database(kit)
    app = kit.app()
    tracer = kit.tracer

    @app.get("/positions/{user_id}")
    async def positions(user_id: int) -> dict[str, Any]:
        annotate({"user.id": user_id})
        n_plus_one = kit.faults.hits("n-plus-one")
        annotate({"report.query_plan": "per-symbol" if n_plus_one else "aggregate"})
        if n_plus_one:
            symbols = await db.run(lambda s: s.rows(SYMBOLS_SQL, (user_id,)))
            rows: list[Row] = []
            for (symbol,) in symbols:
                found = await db.run(functools.partial(_one_position, user_id, symbol))
                if found is not None:
                    rows.append(found)
        else:
            rows = await db.run(lambda s: s.rows(POSITIONS_SQL, (user_id,)))
        with tracer.start_as_current_span("calculate_pnl") as span:
            report = profit_and_loss(rows)
            span.set_attribute("report.positions", len(report["positions"]))
        return {"user_id": user_id, **report}

    async def close() -> None:
        db.close()

    return Service("reporting-service", app, on_stop=[close])
