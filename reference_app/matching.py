"""matching-engine and market-data: the asynchronous end of order placement.

matching-engine consumes ``order-events``, keeps an in-memory price-time order
book per symbol, and publishes the symbol's new top of book and last trade to
``market-data``, which market-data consumes into its quote board.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

from fastapi import HTTPException

from flowscope.reference_app.channels import Message
from flowscope.reference_app.kit import Service, ServiceKit, annotate
from flowscope.reference_app.orders import ORDER_EVENTS

MARKET_DATA = "market-data"


class MatchingFailure(RuntimeError):
    pass


@dataclass(order=True)
class _Resting:
    priority: tuple[float, int]  # (price key, arrival): best price first, then time
    order_id: int = field(compare=False)
    quantity: int = field(compare=False)
    price: float = field(compare=False)


@dataclass
class Fill:
    resting_order_id: int
    quantity: int
    price: float


class OrderBook:
    """Bids and asks of one symbol; cancelled orders are dropped lazily on access."""

    def __init__(self) -> None:
        self._bids: list[_Resting] = []
        self._asks: list[_Resting] = []
        self._arrivals = itertools.count()
        self._live: dict[int, _Resting] = {}
        self.last_price: float | None = None

    def add(self, order_id: int, side: str, quantity: int, price: float) -> list[Fill]:
        fills: list[Fill] = []
        opposite = self._asks if side == "buy" else self._bids
        while quantity > 0 and (best := self._best(opposite)) is not None:
            crosses = price >= best.price if side == "buy" else price <= best.price
            if not crosses:
                break
            traded = min(quantity, best.quantity)
            fills.append(Fill(best.order_id, traded, best.price))
            quantity -= traded
            best.quantity -= traded
            self.last_price = best.price
            if best.quantity == 0:
                heapq.heappop(opposite)
                self._live.pop(best.order_id, None)
        if quantity > 0:
            key = -price if side == "buy" else price
            resting = _Resting((key, next(self._arrivals)), order_id, quantity, price)
            heapq.heappush(self._bids if side == "buy" else self._asks, resting)
            self._live[order_id] = resting
        return fills

    def remove(self, order_id: int) -> bool:
        resting = self._live.pop(order_id, None)
        if resting is None:
            return False
        resting.quantity = 0  # dropped from its heap when it reaches the top
        return True

    def _best(self, side: list[_Resting]) -> _Resting | None:
        while side and side[0].quantity == 0:
            heapq.heappop(side)
        return side[0] if side else None

    def top(self) -> dict[str, float | None]:
        bid, ask = self._best(self._bids), self._best(self._asks)
        return {
            "bid": bid.price if bid else None,
            "ask": ask.price if ask else None,
            "last": self.last_price,
        }


def create_matching_engine(kit: ServiceKit) -> Service:
    books: dict[str, OrderBook] = {}
    app = kit.app()
    tracer = kit.tracer

    async def on_order_event(message: Message) -> None:
        event = message.body
        symbol = str(event["symbol"])
        annotate({"order.symbol": symbol, "order.side": str(event["side"])})
        book = books.setdefault(symbol, OrderBook())
        if event["type"] == "cancel":
            with tracer.start_as_current_span("orderbook remove_order") as span:
                span.set_attribute("orderbook.removed", book.remove(int(event["order_id"])))
            return
        if kit.faults.hits("failing-matching"):
            raise MatchingFailure(f"order {event['order_id']}: matching rejected the order")
        with tracer.start_as_current_span("orderbook add_order") as span:
            fills = book.add(
                int(event["order_id"]),
                str(event["side"]),
                int(event["quantity"]),
                float(event["price"]),
            )
            span.set_attribute("orderbook.fills", len(fills))
        kit.channel.publish(tracer, MARKET_DATA, {"symbol": symbol, **book.top()})

    async def subscribe() -> None:
        kit.channel.subscribe(tracer, ORDER_EVENTS, "matching-engine", on_order_event)

    @app.get("/book/{symbol}")
    async def top_of_book(symbol: str) -> dict[str, object]:
        if symbol not in books:
            raise HTTPException(404, "no orders for this symbol yet")
        return {"symbol": symbol, **books[symbol].top()}

    return Service("matching-engine", app, on_start=[subscribe])


def create_market_data(kit: ServiceKit) -> Service:
    quotes: dict[str, dict[str, float | None]] = {}
    app = kit.app()

    async def on_market_data(message: Message) -> None:
        symbol = str(message.body["symbol"])
        annotate({"order.symbol": symbol})
        quotes[symbol] = {k: message.body.get(k) for k in ("bid", "ask", "last")}

    async def subscribe() -> None:
        kit.channel.subscribe(kit.tracer, MARKET_DATA, "market-data", on_market_data)

    @app.get("/quotes/{symbol}")
    async def quote(symbol: str) -> dict[str, object]:
        if symbol not in quotes:
            raise HTTPException(404, "no quote for this symbol yet")
        return {"symbol": symbol, **quotes[symbol]}

    return Service("market-data", app, on_start=[subscribe])
