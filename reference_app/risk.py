"""risk-manager: checks an order against its tier's limits, read from the cache."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field

from flowscope.reference_app.channels import InProcessCache
from flowscope.reference_app.kit import Service, ServiceKit, annotate
from flowscope.reference_app.schema import INSTRUMENTS, RISK_LIMITS, RiskLimits


class OrderCheck(BaseModel):
    user_id: int
    tier: str
    symbol: str
    side: str
    quantity: int = Field(gt=0)
    price: float = Field(gt=0)


def evaluate(check: OrderCheck, limits: RiskLimits | None) -> str:
    """The reason an order is refused, or '' when it passes."""
    if limits is None:
        return f"no risk limits for tier {check.tier}"
    if check.symbol not in {i.symbol for i in INSTRUMENTS}:
        return f"unknown symbol {check.symbol}"
    if check.quantity > limits.max_quantity:
        return f"quantity {check.quantity} over the {check.tier} limit {limits.max_quantity}"
    notional = check.quantity * check.price
    if notional > limits.max_notional:
        return f"notional {notional:.2f} over the {check.tier} limit {limits.max_notional:.2f}"
    return ""


def create_risk_manager(kit: ServiceKit) -> Service:
    cache = InProcessCache(kit.tracer)
    # Loaded at start, as a real risk service warms its cache from the limits store.
    for tier, limits in RISK_LIMITS.items():
        cache.set(f"risk_limits:{tier}", limits)
    app = kit.app()
    tracer = kit.tracer

    @app.post("/validate")
    async def validate(check: OrderCheck) -> dict[str, object]:
        annotate({"user.tier": check.tier, "order.symbol": check.symbol, "order.side": check.side})
        with tracer.start_as_current_span("validate_order") as span:
            limits = cache.get("risk_limits", f"risk_limits:{check.tier}")
            slowdown = kit.faults.delay_s("slow-risk")
            if slowdown > 0:
                # The slow rule set: evaluation that waits on something it should not.
                await asyncio.sleep(slowdown)
            reason = evaluate(check, limits)
            span.set_attribute("risk.approved", not reason)
            if reason:
                span.set_attribute("risk.reason", reason)
        return {"approved": not reason, "reason": reason}

    return Service("risk-manager", app)
