"""The platform's business logic on its own: order book, tokens, risk rules, P&L."""

from __future__ import annotations

import pytest

from flowscope.reference_app.matching import Fill, OrderBook
from flowscope.reference_app.reporting import profit_and_loss
from flowscope.reference_app.risk import OrderCheck, evaluate
from flowscope.reference_app.schema import RISK_LIMITS
from flowscope.reference_app.users import TokenClaims, TokenSigner


def test_order_book_matches_best_price_first_then_time() -> None:
    book = OrderBook()
    assert book.add(1, "sell", 5, 101.0) == []
    assert book.add(2, "sell", 5, 100.0) == []
    assert book.add(3, "sell", 5, 100.0) == []
    assert book.top() == {"bid": None, "ask": 100.0, "last": None}
    fills = book.add(4, "buy", 12, 101.0)
    assert fills == [Fill(2, 5, 100.0), Fill(3, 5, 100.0), Fill(1, 2, 101.0)]
    assert book.top() == {"bid": None, "ask": 101.0, "last": 101.0}


def test_order_book_rests_what_does_not_cross() -> None:
    book = OrderBook()
    book.add(1, "buy", 3, 99.0)
    assert book.add(2, "sell", 4, 100.0) == []
    assert book.top() == {"bid": 99.0, "ask": 100.0, "last": None}
    assert book.add(3, "sell", 5, 98.0) == [Fill(1, 3, 99.0)]
    assert book.top() == {"bid": None, "ask": 98.0, "last": 99.0}


def test_cancelled_orders_leave_the_book() -> None:
    book = OrderBook()
    book.add(1, "buy", 3, 99.0)
    book.add(2, "buy", 3, 98.0)
    assert book.remove(1) is True
    assert book.remove(1) is False
    assert book.top()["bid"] == 98.0
    assert book.add(3, "sell", 1, 90.0) == [Fill(2, 1, 98.0)]


def test_tokens_verify_only_untampered_and_unexpired() -> None:
    signer = TokenSigner(b"k" * 32)
    token = signer.issue(42, "pro", now=1_000.0)
    assert signer.verify(token, now=1_001.0) == TokenClaims(42, "pro")
    assert signer.verify(token, now=1_000.0 + 3_601) is None  # expired
    assert signer.verify(token.replace("42.pro", "43.pro"), now=1_001.0) is None
    assert TokenSigner(b"x" * 32).verify(token, now=1_001.0) is None
    assert signer.verify("garbage", now=1_001.0) is None


@pytest.mark.parametrize(
    ("tier", "symbol", "quantity", "price", "reason"),
    [
        ("retail", "AAPL", 10, 190.0, ""),
        ("retail", "AAPL", 51, 1.0, "quantity 51 over the retail limit 50"),
        ("retail", "ASML", 40, 650.0, "notional 26000.00 over the retail limit 20000.00"),
        ("pro", "NOPE", 1, 1.0, "unknown symbol NOPE"),
        ("vip", "AAPL", 1, 1.0, "no risk limits for tier vip"),
    ],
)
def test_risk_rules(tier: str, symbol: str, quantity: int, price: float, reason: str) -> None:
    check = OrderCheck(
        user_id=1, tier=tier, symbol=symbol, side="buy", quantity=quantity, price=price
    )
    assert evaluate(check, RISK_LIMITS.get(tier)) == reason


def test_profit_and_loss_per_symbol_and_currency() -> None:
    rows = [("AAPL", "USD", 190.0, 10, 180.0, 2), ("SAP", "EUR", 180.0, -5, 184.0, 1)]
    report = profit_and_loss(rows)
    assert [p["pnl"] for p in report["positions"]] == [100.0, 20.0]
    assert report["pnl_by_currency"] == {"USD": 100.0, "EUR": 20.0}
