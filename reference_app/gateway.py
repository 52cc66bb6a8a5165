"""client-gateway: the platform's only public entry, one route per business flow.

It checks bearer tokens itself, tags each request's span with the business
dimensions (tier, symbol, side, currency), and retries order placement when
order-manager sheds load (503). ``/admin/faults`` switches faults at runtime;
it is not traced, being no business flow.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Header, HTTPException
from pydantic import BaseModel, Field

from flowscope.reference_app.faults import FAULTS
from flowscope.reference_app.kit import Service, ServiceKit, annotate, passthrough
from flowscope.reference_app.orders import CURRENCY_OF
from flowscope.reference_app.users import (
    Credentials,
    Registration,
    TokenClaims,
    TokenSigner,
    bearer,
)

ORDER_ATTEMPTS = 3
RETRY_BACKOFF_S = 0.01  # doubled after each attempt


class Funding(BaseModel):
    amount: float = Field(gt=0)
    currency: str = "USD"


class OrderRequest(BaseModel):
    symbol: str
    side: str = Field(pattern="^(buy|sell)$")
    quantity: int = Field(gt=0)
    price: float = Field(gt=0)


class FaultSwitch(BaseModel):
    fault: str
    magnitude: float | None = Field(
        default=None, description="the fault's unit (ms or a fraction); omitted: its default"
    )


def create_gateway(kit: ServiceKit, signer: TokenSigner) -> Service:
    app = kit.app()

    def caller(authorization: str | None) -> TokenClaims:
        claims = signer.verify(bearer(authorization))
        if claims is None:
            raise HTTPException(401, "invalid or expired token")
        annotate({"user.id": claims.user_id, "user.tier": claims.tier})
        return claims

    @app.post("/auth/register", status_code=201)
    async def register(body: Registration) -> dict[str, Any]:
        annotate({"user.tier": body.tier})
        return passthrough(
            await kit.call("user-service", "POST", "/register", body=body.model_dump()), 201
        )

    @app.post("/auth/login")
    async def login(body: Credentials) -> dict[str, Any]:
        answer = passthrough(
            await kit.call("user-service", "POST", "/login", body=body.model_dump()), 200
        )
        annotate({"user.id": answer["user_id"], "user.tier": answer["tier"]})
        return answer

    @app.post("/wallet/add-funds")
    async def add_funds(
        body: Funding, authorization: str | None = Header(default=None)
    ) -> dict[str, Any]:
        caller(authorization)
        annotate({"wallet.currency": body.currency})
        me = passthrough(
            await kit.call(
                "user-service", "GET", "/me", headers={"Authorization": authorization or ""}
            ),
            200,
        )
        if me["status"] != "active":
            raise HTTPException(403, "account is not active")
        user = {"user_id": me["user_id"]}
        current = await kit.call(
            "wallet-service",
            "GET",
            "/balance/{user_id}",
            path=user,
            query={"currency": body.currency},
        )
        if current.status_code not in (200, 404):  # 404: no wallet yet, funding opens it
            passthrough(current, 200)
        funded = passthrough(
            await kit.call(
                "wallet-service",
                "POST",
                "/update-balance/{user_id}",
                path=user,
                body=body.model_dump(),
            ),
            200,
        )
        return {**funded, "new_wallet": current.status_code == 404}

    @app.post("/v1/order", status_code=201)
    async def place_order(
        body: OrderRequest, authorization: str | None = Header(default=None)
    ) -> dict[str, Any]:
        claims = caller(authorization)
        annotate(
            {
                "order.symbol": body.symbol,
                "order.side": body.side,
                "wallet.currency": CURRENCY_OF.get(body.symbol, ""),
            }
        )
        order = {"user_id": claims.user_id, "tier": claims.tier, **body.model_dump()}
        for attempt in range(1, ORDER_ATTEMPTS + 1):
            response = await kit.call("order-manager", "POST", "/order", body=order)
            if response.status_code != 503 or attempt == ORDER_ATTEMPTS:
                break
            await asyncio.sleep(RETRY_BACKOFF_S * 2 ** (attempt - 1))
        annotate({"order.attempts": attempt})
        return passthrough(response, 201)

    @app.get("/v1/orders")
    async def list_orders(authorization: str | None = Header(default=None)) -> dict[str, Any]:
        claims = caller(authorization)
        return passthrough(
            await kit.call(
                "order-manager",
                "GET",
                "/orders/user/{user_id}",
                path={"user_id": claims.user_id},
            ),
            200,
        )

    @app.get("/reports/positions")
    async def positions(authorization: str | None = Header(default=None)) -> dict[str, Any]:
        claims = caller(authorization)
        return passthrough(
            await kit.call(
                "reporting-service",
                "GET",
                "/positions/{user_id}",
                path={"user_id": claims.user_id},
            ),
            200,
        )

    @app.delete("/v1/order/{order_id}")
    async def cancel_order(
        order_id: int, authorization: str | None = Header(default=None)
    ) -> dict[str, Any]:
        claims = caller(authorization)
        return passthrough(
            await kit.call(
                "order-manager",
                "DELETE",
                "/order/{order_id}",
                path={"order_id": order_id},
                query={"user_id": claims.user_id},
            ),
            200,
        )

    @app.get("/admin/faults")
    async def list_faults() -> dict[str, Any]:
        return {
            "active": kit.faults.active(),
            "known": {
                name: {"unit": s.unit, "default": s.default, "what": s.what, "shows": s.shows}
                for name, s in FAULTS.items()
            },
        }

    @app.post("/admin/faults")
    async def switch_fault(body: FaultSwitch) -> dict[str, Any]:
        try:
            kit.faults.set(body.fault, body.magnitude)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        return {"active": kit.faults.active()}

    @app.delete("/admin/faults")
    async def clear_faults(fault: str | None = None) -> dict[str, Any]:
        if fault is not None and fault not in FAULTS:
            raise HTTPException(404, f"unknown fault {fault!r}")
        kit.faults.clear(fault)
        return {"active": kit.faults.active()}

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "faults": kit.faults.active()}

    return Service("client-gateway", app)
