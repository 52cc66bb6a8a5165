"""Faults: the registry and its parsing, runtime switching, and what each does to the spans."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from flowscope.reference_app.faults import FAULTS, Faults, parse_fault
from tests.reference_app.conftest import Platform, Trader, root_of, service_of, traces


def test_parse_fault_with_and_without_magnitude() -> None:
    assert parse_fault("slow-risk") == ("slow-risk", FAULTS["slow-risk"].default)
    assert parse_fault("slow-risk=350") == ("slow-risk", 350.0)
    assert parse_fault(" n-plus-one=0.25") == ("n-plus-one", 0.25)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("slow-everything", "unknown fault 'slow-everything'; known: failing-matching"),
        ("slow-risk=fast", "fault slow-risk: magnitude 'fast' is not a number"),
        ("n-plus-one=2", "fault n-plus-one: magnitude is a fraction 0..1, got 2.0"),
        ("wallet-lock=-5", "fault wallet-lock: magnitude is 0..60000 ms, got -5.0"),
        ("slow-user-db=nan", "fault slow-user-db: magnitude must be a number, got nan"),
    ],
)
def test_bad_fault_specs_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_fault(text)
    assert str(info.value).startswith(message)


def test_every_fault_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "reference_app.md").read_text("utf-8")
    for name, spec in FAULTS.items():
        assert f"`{name}`" in doc, name
        assert spec.what and spec.shows


def test_fraction_faults_hit_exactly_that_share() -> None:
    faults = Faults({"failing-matching": 0.3})
    hits = [faults.hits("failing-matching") for _ in range(100)]
    assert sum(hits) == 30
    assert hits[:10].count(True) == 3
    assert not Faults().hits("failing-matching")


def test_faults_switch_and_clear() -> None:
    faults = Faults()
    assert faults.magnitude("slow-risk") == 0.0
    assert faults.set("slow-risk") == 200.0
    assert faults.delay_s("slow-risk") == pytest.approx(0.2)
    faults.set("wallet-lock", 10)
    faults.clear("slow-risk")
    assert faults.active() == {"wallet-lock": 10.0}
    faults.clear()
    assert faults.active() == {}
    with pytest.raises(ValueError, match="unknown fault"):
        faults.set("nope")


def test_admin_endpoint_switches_faults_at_runtime(platform: Platform, trader: Trader) -> None:
    known = platform.http.get("/admin/faults").json()
    assert set(known["known"]) == set(FAULTS) and known["active"] == {}
    answer = platform.http.post("/admin/faults", json={"fault": "slow-risk", "magnitude": 5})
    assert answer.json() == {"active": {"slow-risk": 5.0}}
    refused = platform.http.post("/admin/faults", json={"fault": "n-plus-one", "magnitude": 3})
    assert refused.status_code == 422 and "fraction" in refused.json()["detail"]
    assert platform.http.delete("/admin/faults", params={"fault": "nope"}).status_code == 404
    assert platform.http.delete("/admin/faults").json() == {"active": {}}
    # Operating the platform is not one of its business flows.
    assert not [s for s in platform.spans() if "admin" in s.name or "healthz" in s.name]


def durations_ms(platform: Platform, service: str, name: str) -> list[float]:
    return [
        ((s.end_time or 0) - (s.start_time or 0)) / 1e6
        for s in platform.spans()
        if service_of(s) == service and s.name == name
    ]


def test_slow_risk_delays_the_risk_check(platform: Platform, trader: Trader) -> None:
    platform.fault("slow-risk", 80)
    try:
        for _ in range(3):
            assert trader.order().status_code == 201
    finally:
        platform.clear_faults()
    slow = durations_ms(platform, "risk-manager", "validate_order")
    assert len(slow) == 3 and min(slow) >= 80
    platform.fresh()
    for _ in range(3):
        assert trader.order().status_code == 201
    # The fault slows every call, so one quick call shows it is off; the least of three,
    # because a stall of the test process can catch any single sub-millisecond span.
    assert min(durations_ms(platform, "risk-manager", "validate_order")) < 80


def test_slow_user_db_delays_each_user_statement(platform: Platform, trader: Trader) -> None:
    platform.fault("slow-user-db", 60)
    try:
        assert trader.login().status_code == 200
        assert trader.fund(10.0).status_code == 200
    finally:
        platform.clear_faults()
    user_selects = durations_ms(platform, "user-service", "SELECT")
    assert len(user_selects) == 2 and min(user_selects) >= 60
    # Every statement would be slow had the fault reached this database; the least is
    # read, as a stall of the test process can catch any one of them.
    assert min(durations_ms(platform, "wallet-service", "SELECT")) < 60


def test_n_plus_one_runs_a_query_per_symbol(platform: Platform, trader: Trader) -> None:
    for symbol, price in (("AAPL", 190.0), ("MSFT", 410.0), ("SAP", 180.0)):
        assert trader.order(symbol=symbol, price=price).status_code == 201
    platform.fresh()
    assert len(trader.positions().json()["positions"]) == 3
    assert len(durations_ms(platform, "reporting-service", "SELECT")) == 1
    platform.fresh()
    platform.fault("n-plus-one", 1.0)
    try:
        assert len(trader.positions().json()["positions"]) == 3
    finally:
        platform.clear_faults()
    assert len(durations_ms(platform, "reporting-service", "SELECT")) == 1 + 3


def test_failing_matching_fails_the_consumer_not_the_request(
    platform: Platform, trader: Trader
) -> None:
    platform.fault("failing-matching", 0.5)
    try:
        for _ in range(4):
            assert trader.order().status_code == 201
    finally:
        platform.clear_faults()
    spans = platform.spans()
    consumers = [s for s in spans if s.name == "process order-events"]
    failed = [s for s in consumers if s.status.status_code.name == "ERROR"]
    assert len(consumers) == 4 and len(failed) == 2
    assert all(s.events and s.events[0].name == "exception" for s in failed)
    # Required on a failed span by the conventions; it was missing.
    assert all(s.attributes and s.attributes["error.type"] == "MatchingFailure" for s in failed)
    roots = [root_of(t) for t in traces(spans).values()]
    assert all(r.status.status_code.name == "UNSET" for r in roots)


def test_order_manager_503_is_retried_by_the_gateway(platform: Platform, trader: Trader) -> None:
    platform.fault("order-manager-503", 0.5)
    try:
        for _ in range(4):
            assert trader.order().status_code == 201
    finally:
        platform.clear_faults()
    spans = platform.spans()
    attempts = [s for s in spans if service_of(s) == "client-gateway" and s.name == "POST /order"]
    refused = [
        s
        for s in spans
        if service_of(s) == "order-manager"
        and s.name == "POST /order"
        and s.status.status_code.name == "ERROR"
    ]
    # Every other call is refused: 4 orders take 7 attempts, 3 of them answered 503.
    assert len(attempts) == 7 and len(refused) == 3
    roots = [root_of(t) for t in traces(spans).values()]
    attempts_per_order = sorted(
        int(str(r.attributes["order.attempts"])) for r in roots if r.attributes
    )
    assert attempts_per_order == [1, 2, 2, 2]


def test_order_manager_503_fails_the_flow_when_retries_run_out(
    platform: Platform, trader: Trader
) -> None:
    platform.fault("order-manager-503", 1.0)
    try:
        assert trader.order().status_code == 503
    finally:
        platform.clear_faults()
    (spans,) = traces(platform.spans()).values()
    assert root_of(spans).status.status_code.name == "ERROR"
    assert len([s for s in spans if s.name == "POST /order" and s.kind.name == "CLIENT"]) == 3


def test_wallet_lock_serializes_balance_changes(platform: Platform, trader: Trader) -> None:
    hold_ms = 60
    platform.fault("wallet-lock", hold_ms)

    async def four_deposits() -> float:
        async with httpx.AsyncClient(
            base_url=str(platform.http.base_url), trust_env=False, timeout=30
        ) as http:
            began = time.perf_counter()
            answers = await asyncio.gather(
                *(
                    http.post(
                        "/wallet/add-funds",
                        json={"amount": 1.0, "currency": "USD"},
                        headers=trader.auth,
                    )
                    for _ in range(4)
                )
            )
            assert all(a.status_code == 200 for a in answers)
            return (time.perf_counter() - began) * 1000

    try:
        elapsed_ms = asyncio.run(four_deposits())
    finally:
        platform.clear_faults()
    assert elapsed_ms >= 4 * hold_ms  # one after the other, each holding the lock
    locks = [s for s in platform.spans() if s.name == "acquire wallet lock"]
    assert {s.attributes["wallet.lock.scope"] for s in locks if s.attributes} == {"global"}
    waits = sorted(((s.end_time or 0) - (s.start_time or 0)) / 1e6 for s in locks)
    assert waits[-1] >= 2 * hold_ms  # the last in line waited for the others
