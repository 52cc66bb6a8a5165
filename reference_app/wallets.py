"""wallet-service: balances per (user, currency), funding, and funds blocked for open orders.

Every balance change takes a lock on its wallet so two changes never interleave.
The ``wallet-lock`` fault makes that one global lock held for longer, which
serializes every change on the platform: the queueing shows as time in
"acquire wallet lock" and in the /update-balance and /block-funds steps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import HTTPException
from pydantic import BaseModel, Field

from flowscope.reference_app.kit import Service, ServiceKit, annotate
from flowscope.reference_app.schema import CURRENCIES, WALLETS_SCHEMA
from flowscope.reference_app.sqlite_db import Session, SqliteDatabase


class Funding(BaseModel):
    amount: float = Field(gt=0)
    currency: str = "USD"


class FundsHold(BaseModel):
    user_id: int
    amount: float = Field(gt=0)
    currency: str = "USD"
    reference: str = ""


class WalletLocks:
    """Per-wallet locks; under the wallet-lock fault, one global lock held longer."""

    def __init__(self, kit: ServiceKit) -> None:
        self._kit = kit
        self._wallets: dict[tuple[int, str], asyncio.Lock] = {}
        self._global = asyncio.Lock()

    @asynccontextmanager
    async def hold(self, user_id: int, currency: str) -> AsyncIterator[None]:
        extra_hold_s = self._kit.faults.delay_s("wallet-lock")
        lock = (
            self._global
            if extra_hold_s > 0
            else self._wallets.setdefault((user_id, currency), asyncio.Lock())
        )
        with self._kit.tracer.start_as_current_span("acquire wallet lock") as span:
            span.set_attribute("wallet.lock.scope", "global" if extra_hold_s > 0 else "wallet")
            await lock.acquire()
        try:
            yield
            if extra_hold_s > 0:
                # The faulty release syncs a ledger while still holding the lock.
                await asyncio.sleep(extra_hold_s)
        finally:
            lock.release()


def _check_currency(currency: str) -> None:
    if currency not in CURRENCIES:
        raise HTTPException(422, f"currency must be one of {', '.join(CURRENCIES)}")


def _record(
    session: Session, user_id: int, currency: str, kind: str, amount: float, ref: str
) -> None:
    session.write(
        "INSERT INTO transactions (user_id, currency, kind, amount, reference, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (user_id, currency, kind, amount, ref, datetime.now(UTC).isoformat()),
    )


def create_wallet_service(kit: ServiceKit) -> Service:
    db = SqliteDatabase("wallets", kit.data_dir / "wallets.sqlite", kit.provider, WALLETS_SCHEMA)
    locks = WalletLocks(kit)
    app = kit.app()

    @app.get("/balance/{user_id}")
    async def balance(user_id: int, currency: str = "USD") -> dict[str, object]:
        _check_currency(currency)
        annotate({"user.id": user_id, "wallet.currency": currency})
        row = await db.run(
            lambda s: s.one(
                "SELECT balance, blocked FROM wallets WHERE user_id = ? AND currency = ?",
                (user_id, currency),
            )
        )
        if row is None:
            raise HTTPException(404, "no wallet in this currency yet")
        return {"user_id": user_id, "currency": currency, "balance": row[0], "blocked": row[1]}

    @app.post("/update-balance/{user_id}")
    async def update_balance(user_id: int, body: Funding) -> dict[str, object]:
        _check_currency(body.currency)
        annotate({"user.id": user_id, "wallet.currency": body.currency})

        def fund(session: Session) -> float:
            updated = session.rows(
                "UPDATE wallets SET balance = balance + ? WHERE user_id = ? AND currency = ? "
                "RETURNING balance",
                (body.amount, user_id, body.currency),
            )
            if not updated:  # the first funding in this currency opens the wallet
                session.write(
                    "INSERT INTO wallets (user_id, currency, balance, blocked) VALUES (?, ?, ?, 0)",
                    (user_id, body.currency, body.amount),
                )
            _record(session, user_id, body.currency, "deposit", body.amount, "")
            return float(updated[0][0]) if updated else body.amount

        async with locks.hold(user_id, body.currency):
            new_balance = await db.run(fund)
        return {"user_id": user_id, "currency": body.currency, "balance": new_balance}

    @app.post("/block-funds")
    async def block_funds(body: FundsHold) -> dict[str, object]:
        _check_currency(body.currency)
        annotate({"user.id": body.user_id, "wallet.currency": body.currency})

        def block(session: Session) -> bool:
            changed = session.write(
                "UPDATE wallets SET blocked = blocked + ? "
                "WHERE user_id = ? AND currency = ? AND balance - blocked >= ?",
                (body.amount, body.user_id, body.currency, body.amount),
            )
            if changed:
                _record(session, body.user_id, body.currency, "block", body.amount, body.reference)
            return bool(changed)

        async with locks.hold(body.user_id, body.currency):
            blocked = await db.run(block)
        if not blocked:
            raise HTTPException(409, "insufficient funds")
        return {"user_id": body.user_id, "blocked": body.amount, "currency": body.currency}

    @app.post("/unblock-funds")
    async def unblock_funds(body: FundsHold) -> dict[str, object]:
        _check_currency(body.currency)
        annotate({"user.id": body.user_id, "wallet.currency": body.currency})

        def release(session: Session) -> None:
            session.write(
                "UPDATE wallets SET blocked = max(blocked - ?, 0) "
                "WHERE user_id = ? AND currency = ?",
                (body.amount, body.user_id, body.currency),
            )
            _record(session, body.user_id, body.currency, "unblock", body.amount, body.reference)

        async with locks.hold(body.user_id, body.currency):
            await db.run(release)
        return {"user_id": body.user_id, "released": body.amount, "currency": body.currency}

    async def close() -> None:
        db.close()

    return Service("wallet-service", app, on_stop=[close])
