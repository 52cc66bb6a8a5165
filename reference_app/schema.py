"""The platform's databases and reference data.

Three SQLite files, one per owning service; reporting-service reads the order
database (a reporting replica in a real shop). This is the trading platform's
own SQL, not flowscope's, so it lives with the app.
"""

from __future__ import annotations

from dataclasses import dataclass

USERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    salt          TEXT NOT NULL,
    tier          TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'active',
    created_at    TEXT NOT NULL
);
"""

WALLETS_SCHEMA = """
CREATE TABLE IF NOT EXISTS wallets (
    user_id  INTEGER NOT NULL,
    currency TEXT NOT NULL,
    balance  REAL NOT NULL DEFAULT 0,
    blocked  REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, currency)
);
CREATE TABLE IF NOT EXISTS transactions (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL,
    currency   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    amount     REAL NOT NULL,
    reference  TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
"""

ORDERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS instruments (
    symbol    TEXT PRIMARY KEY,
    currency  TEXT NOT NULL,
    ref_price REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL,
    symbol     TEXT NOT NULL REFERENCES instruments(symbol),
    side       TEXT NOT NULL,
    quantity   INTEGER NOT NULL,
    price      REAL NOT NULL,
    status     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id, status);
"""


@dataclass(frozen=True)
class Instrument:
    symbol: str
    currency: str
    ref_price: float


INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument("AAPL", "USD", 190.0),
    Instrument("MSFT", "USD", 410.0),
    Instrument("NVDA", "USD", 120.0),
    Instrument("TSLA", "USD", 250.0),
    Instrument("SAP", "EUR", 180.0),
    Instrument("ASML", "EUR", 650.0),
)
CURRENCIES: tuple[str, ...] = ("USD", "EUR")
TIERS: tuple[str, ...] = ("retail", "pro", "institutional")


@dataclass(frozen=True)
class RiskLimits:
    max_quantity: int
    max_notional: float


RISK_LIMITS: dict[str, RiskLimits] = {
    "retail": RiskLimits(max_quantity=50, max_notional=20_000.0),
    "pro": RiskLimits(max_quantity=500, max_notional=250_000.0),
    "institutional": RiskLimits(max_quantity=10_000, max_notional=5_000_000.0),
}
