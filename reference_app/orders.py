"""order-manager: places, lists and cancels orders.

Placing an order: risk check (risk-manager), funds blocked (wallet-service), the
order stored, and an ``order-events`` message for matching-engine. Cancelling:
verify, release the funds, mark cancelled, tell matching-engine.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import HTTPException
from pydantic import BaseModel, Field

from flowscope.reference_app.kit import Service, ServiceKit, annotate, passthrough
from flowscope.reference_app.schema import INSTRUMENTS, ORDERS_SCHEMA
from flowscope.reference_app.sqlite_db import Session, SqliteDatabase

ORDER_EVENTS = "order-events"
CURRENCY_OF = {i.symbol: i.currency for i in INSTRUMENTS}


class NewOrder(BaseModel):
    user_id: int
    tier: str
    symbol: str
    side: str = Field(pattern="^(buy|sell)$")
    quantity: int = Field(gt=0)
    price: float = Field(gt=0)


def open_orders_database(kit: ServiceKit) -> SqliteDatabase:
    """The order database; reporting-service opens the same file with its own pool."""
    db = SqliteDatabase("orders", kit.data_dir / "orders.sqlite", kit.provider, ORDERS_SCHEMA)
    db.run_untraced(
        lambda s: [
            s.write(
                "INSERT OR REPLACE INTO instruments (symbol, currency, ref_price) VALUES (?, ?, ?)",
                (i.symbol, i.currency, i.ref_price),
            )
            for i in INSTRUMENTS
        ]
    )
    return db


def create_order_manager(kit: ServiceKit) -> Service:
    db = open_orders_database(kit)
    app = kit.app()

    @app.post("/order", status_code=201)
    async def place_order(order: NewOrder) -> dict[str, object]:
        currency = CURRENCY_OF.get(order.symbol)
        if currency is None:
            raise HTTPException(422, f"unknown symbol {order.symbol}")
        annotate(
            {
                "user.id": order.user_id,
                "user.tier": order.tier,
                "order.symbol": order.symbol,
                "order.side": order.side,
                "wallet.currency": currency,
            }
        )
        if kit.faults.hits("order-manager-503"):
            # Load shedding: refused before any work, so a retry is safe.
            raise HTTPException(503, "order-manager overloaded, retry later")
        verdict = passthrough(
            await kit.call("risk-manager", "POST", "/validate", body=order.model_dump()), 200
        )
        if not verdict["approved"]:
            raise HTTPException(422, f"rejected by risk: {verdict['reason']}")
        notional = round(order.quantity * order.price, 2)
        reference = f"order:{order.user_id}:{order.symbol}:{datetime.now(UTC).timestamp()}"
        passthrough(
            await kit.call(
                "wallet-service",
                "POST",
                "/block-funds",
                body={
                    "user_id": order.user_id,
                    "amount": notional,
                    "currency": currency,
                    "reference": reference,
                },
            ),
            200,
        )
        order_id = await db.run(
            lambda s: s.write(
                "INSERT INTO orders (user_id, symbol, side, quantity, price, status, created_at) "
                "VALUES (?, ?, ?, ?, ?, 'open', ?)",
                (
                    order.user_id,
                    order.symbol,
                    order.side,
                    order.quantity,
                    order.price,
                    datetime.now(UTC).isoformat(),
                ),
            )
        )
        annotate({"order.id": order_id})
        kit.channel.publish(
            kit.tracer,
            ORDER_EVENTS,
            {"type": "new", "order_id": order_id, **order.model_dump()},
        )
        return {"order_id": order_id, "status": "open", "notional": notional}

    @app.get("/orders/user/{user_id}")
    async def user_orders(user_id: int, limit: int = 50) -> dict[str, object]:
        annotate({"user.id": user_id})
        rows = await db.run(
            lambda s: s.rows(
                "SELECT id, symbol, side, quantity, price, status, created_at FROM orders "
                "WHERE user_id = ? ORDER BY id DESC LIMIT ?",
                (user_id, limit),
            )
        )
        keys = ("order_id", "symbol", "side", "quantity", "price", "status", "created_at")
        return {"orders": [dict(zip(keys, row, strict=True)) for row in rows]}

    @app.delete("/order/{order_id}")
    async def cancel_order(order_id: int, user_id: int) -> dict[str, object]:
        annotate({"user.id": user_id, "order.id": order_id})
        row = await db.run(
            lambda s: s.one(
                "SELECT user_id, symbol, side, quantity, price, status FROM orders WHERE id = ?",
                (order_id,),
            )
        )
        if row is None or row[0] != user_id:
            raise HTTPException(404, "no such order")
        _, symbol, side, quantity, price, status = row
        if status != "open":
            raise HTTPException(409, f"order is {status}")
        annotate({"order.symbol": symbol, "order.side": side})
        passthrough(
            await kit.call(
                "wallet-service",
                "POST",
                "/unblock-funds",
                body={
                    "user_id": user_id,
                    "amount": round(quantity * price, 2),
                    "currency": CURRENCY_OF[symbol],
                    "reference": f"cancel:{order_id}",
                },
            ),
            200,
        )

        def mark_cancelled(session: Session) -> int:
            return session.write(
                "UPDATE orders SET status = 'cancelled' WHERE id = ? AND status = 'open'",
                (order_id,),
            )

        await db.run(mark_cancelled)
        kit.channel.publish(
            kit.tracer,
            ORDER_EVENTS,
            {"type": "cancel", "order_id": order_id, "symbol": symbol, "side": side},
        )
        return {"order_id": order_id, "status": "cancelled"}

    async def close() -> None:
        db.close()

    return Service("order-manager", app, on_stop=[close])
