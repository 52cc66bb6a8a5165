"""The load generator: simulated traders driving all seven flows through the gateway.

Arrivals are open-loop (Poisson at ``rate`` flows per second) up to
``concurrency`` flows in flight; when every slot is busy the next arrival waits
for one, as a real client pool would. The seed fixes the sequence of flows and
their parameters (symbol, side, size, currency, amount). A warm-up first
registers, logs in and funds ``users`` traders, so every flow has someone to act
for. The frontend is not traced: each flow's trace starts at the gateway.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import httpx

from flowscope.reference_app.schema import CURRENCIES, INSTRUMENTS, TIERS, Instrument

# How often each flow runs in real traffic: mostly reading and trading, rarely signing up.
FLOW_WEIGHTS: dict[str, float] = {
    "place_order": 30.0,
    "query_orders": 18.0,
    "add_funds": 12.0,
    "portfolio": 12.0,
    "login": 10.0,
    "cancel_order": 12.0,
    "register": 6.0,
}
FLOWS: tuple[str, ...] = tuple(FLOW_WEIGHTS)
TIER_WEIGHTS = (70.0, 25.0, 5.0)  # retail, pro, institutional
OPENING_DEPOSIT = 1_000_000.0
WARM_UP = "warm-up"  # register, login, a deposit per currency, a first order: per trader
# Traders warmed up at once. The warm-up's flows are traced like any other; all 20 at
# once queued on the services' event loops, and those first seconds' traces (P50 222 ms
# against 8-24 ms after) made a short demo's P95s and slowest traces.
WARM_UP_IN_FLIGHT = 2


@dataclass(frozen=True)
class LoadConfig:
    rate: float = 10.0  # flows started per second
    concurrency: int = 16
    duration_s: float | None = 60.0  # None: until stopped
    seed: int = 1
    users: int = 20  # traders registered and funded by the warm-up
    weights: Mapping[str, float] = field(default_factory=lambda: dict(FLOW_WEIGHTS))
    run_id: str = ""  # makes e-mail addresses unique when a data dir is reused

    def validate(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate must be a positive number of flows per second, got {self.rate}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError(f"duration must be positive, got {self.duration_s}")
        if self.users < 1:
            raise ValueError(f"users must be at least 1, got {self.users}")
        unknown = set(self.weights) - set(FLOWS)
        if unknown:
            raise ValueError(f"unknown flows in weights: {', '.join(sorted(unknown))}")
        if sum(self.weights.values()) <= 0:
            raise ValueError("flow weights must add up to more than 0")


@dataclass
class Trader:
    email: str
    password: str
    tier: str
    token: str = ""
    funded: set[str] = field(default_factory=set)
    open_orders: list[int] = field(default_factory=list)
    first_order: dict[str, object] = field(default_factory=dict)  # placed by the warm-up

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class FlowStats:
    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        position = (len(ordered) - 1) * q
        low = math.floor(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class LoadReport:
    flows: dict[str, FlowStats] = field(
        default_factory=lambda: {f: FlowStats() for f in (WARM_UP, *FLOWS)}
    )
    elapsed_s: float = 0.0
    waited_for_slot: int = 0  # arrivals that found every concurrency slot busy
    planned: list[str] = field(default_factory=list)  # the flows in the order they started

    @property
    def requests(self) -> int:
        return sum(s.requests for s in self.flows.values())

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.flows.values())


Progress = Callable[[LoadReport], None]
Action = Callable[[], Awaitable[int]]


class LoadGenerator:
    def __init__(self, gateway_url: str, config: LoadConfig) -> None:
        config.validate()
        self.gateway_url = gateway_url.rstrip("/")
        self.config = config
        self._rng = random.Random(config.seed)
        self._traders: list[Trader] = []
        self._next_user = 0
        self.report = LoadReport()
        names = [f for f in FLOWS if config.weights.get(f, 0) > 0]
        self._flow_names = names
        self._flow_weights = [config.weights[f] for f in names]

    async def run(
        self, stop: asyncio.Event | None = None, progress: Progress | None = None
    ) -> LoadReport:
        stop = stop or asyncio.Event()
        # Each run reports on its own; the traders stay, so a second run (say with a
        # fault switched on) acts for people who already hold orders.
        self.report = LoadReport()
        started = time.monotonic()
        slots = asyncio.Semaphore(self.config.concurrency)
        in_flight: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(
            base_url=self.gateway_url, timeout=60.0, trust_env=False
        ) as client:

            async def start(flow: str, action: Action) -> None:
                if slots.locked():
                    self.report.waited_for_slot += 1
                await slots.acquire()
                task = asyncio.create_task(self._timed(client, flow, action, slots, progress))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)

            missing = max(0, self.config.users - len(self._traders))
            for trader in [self._new_trader() for _ in range(missing)]:
                while len(in_flight) >= WARM_UP_IN_FLIGHT and not stop.is_set():
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                if stop.is_set():
                    break
                await start(WARM_UP, functools.partial(self._warm_up, client, trader))
            if in_flight:  # traffic starts once the traders are in
                await asyncio.gather(*in_flight, return_exceptions=True)
            loop = asyncio.get_running_loop()
            begin = next_at = loop.time()
            while not stop.is_set():
                next_at += self._rng.expovariate(self.config.rate)
                if self.config.duration_s is not None and next_at - begin >= self.config.duration_s:
                    break
                flow, action = self._plan(client)
                delay = next_at - loop.time()
                if delay > 0:
                    try:
                        await asyncio.wait_for(stop.wait(), delay)
                        break
                    except TimeoutError:
                        pass
                self.report.planned.append(flow)
                await start(flow, action)
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
        self.report.elapsed_s = time.monotonic() - started
        return self.report

    async def _timed(
        self,
        client: httpx.AsyncClient,
        flow: str,
        action: Action,
        slots: asyncio.Semaphore,
        progress: Progress | None,
    ) -> None:
        stats = self.report.flows[flow]
        began = time.perf_counter()
        status: int | str
        try:
            status = await action()
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        finally:
            slots.release()
        stats.requests += 1
        stats.latencies_ms.append((time.perf_counter() - began) * 1000.0)
        key = str(status)
        stats.statuses[key] = stats.statuses.get(key, 0) + 1
        if not key.startswith("2"):
            stats.errors += 1
        if progress is not None:
            progress(self.report)

    # --- choosing what happens next (all randomness comes from the seeded RNG) ---

    def _new_trader(self) -> Trader:
        self._next_user += 1
        suffix = f"-{self.config.run_id}" if self.config.run_id else ""
        tier = self._rng.choices(TIERS, TIER_WEIGHTS)[0]
        return Trader(
            f"trader{self._next_user}{suffix}@example.test",
            f"pw-{self._rng.getrandbits(48):x}",
            tier,
            first_order=self._new_order(INSTRUMENTS),
        )

    def _new_order(self, instruments: Sequence[Instrument]) -> dict[str, object]:
        instrument = self._rng.choice(instruments)
        return {
            "symbol": instrument.symbol,
            "side": self._rng.choice(("buy", "sell")),
            "quantity": self._rng.randint(1, 20),
            "price": round(instrument.ref_price * self._rng.uniform(0.98, 1.02), 2),
        }

    def _plan(self, client: httpx.AsyncClient) -> tuple[str, Action]:
        flow = self._rng.choices(self._flow_names, self._flow_weights)[0]
        pick = self._rng.random()

        def one_of(traders: list[Trader]) -> Trader:
            return traders[int(pick * len(traders))]

        signed_in = [t for t in self._traders if t.token]
        trading = [t for t in signed_in if t.funded]
        if flow == "cancel_order":
            holders = [t for t in trading if t.open_orders]
            if holders:
                holder = one_of(holders)
                order_id = holder.open_orders.pop(self._rng.randrange(len(holder.open_orders)))
                return flow, lambda: self._cancel(client, holder, order_id)
            flow = "place_order"  # nothing to cancel yet
        if flow in ("place_order", "query_orders", "portfolio") and not trading:
            flow = "add_funds"
        if flow == "add_funds" and not signed_in:
            flow = "login"
        if flow == "login":
            # Someone who registered but never signed in comes first.
            newcomers = [t for t in self._traders if not t.token]
            if newcomers or self._traders:
                trader = one_of(newcomers or self._traders)
                return flow, lambda: self._login(client, trader)
            flow = "register"
        if flow == "register":
            newcomer = self._new_trader()
            return flow, lambda: self._register(client, newcomer)
        if flow == "add_funds":
            trader = one_of(signed_in)
            currency = self._rng.choice(CURRENCIES)
            amount = float(self._rng.randrange(1_000, 20_000, 100))
            if currency not in trader.funded:  # a newcomer's first deposit is their stake
                amount = OPENING_DEPOSIT
            return flow, lambda: self._fund(client, trader, currency, amount)
        trader = one_of(trading)
        if flow == "place_order":
            tradable = [i for i in INSTRUMENTS if i.currency in trader.funded]
            order = self._new_order(tradable)
            return flow, lambda: self._place(client, trader, order)
        if flow == "query_orders":
            return flow, lambda: self._get(client, trader, "/v1/orders")
        return flow, lambda: self._get(client, trader, "/reports/positions")

    # --- the flows, as the platform's web frontend performs them ---

    async def _warm_up(self, client: httpx.AsyncClient, trader: Trader) -> int:
        steps: list[Action] = [
            functools.partial(self._login, client, trader),
            *(
                functools.partial(self._fund, client, trader, c, OPENING_DEPOSIT)
                for c in CURRENCIES
            ),
            # Traders join to trade: each holds a position before the reports start.
            functools.partial(self._place, client, trader, trader.first_order),
        ]
        status = await self._register(client, trader, join=False)
        for step in steps:
            if status // 100 != 2:
                break
            status = await step()
        if status // 100 == 2:
            self._traders.append(trader)
        return status

    async def _register(self, client: httpx.AsyncClient, trader: Trader, join: bool = True) -> int:
        body = {"email": trader.email, "password": trader.password, "tier": trader.tier}
        response = await client.post("/auth/register", json=body)
        if response.status_code == 201 and join:
            self._traders.append(trader)
        return response.status_code

    async def _login(self, client: httpx.AsyncClient, trader: Trader) -> int:
        body = {"email": trader.email, "password": trader.password}
        response = await client.post("/auth/login", json=body)
        if response.status_code == 200:
            trader.token = str(response.json()["token"])
        return response.status_code

    async def _fund(
        self, client: httpx.AsyncClient, trader: Trader, currency: str, amount: float
    ) -> int:
        body = {"amount": amount, "currency": currency}
        response = await client.post("/wallet/add-funds", json=body, headers=trader.auth)
        if response.status_code == 200:
            trader.funded.add(currency)
        return response.status_code

    async def _place(
        self, client: httpx.AsyncClient, trader: Trader, order: dict[str, object]
    ) -> int:
        response = await client.post("/v1/order", json=order, headers=trader.auth)
        if response.status_code == 201:
            trader.open_orders.append(int(response.json()["order_id"]))
        return response.status_code

    async def _cancel(self, client: httpx.AsyncClient, trader: Trader, order_id: int) -> int:
        response = await client.delete(f"/v1/order/{order_id}", headers=trader.auth)
        return response.status_code

    async def _get(self, client: httpx.AsyncClient, trader: Trader, path: str) -> int:
        response = await client.get(path, headers=trader.auth)
        return response.status_code


def format_report(report: LoadReport) -> str:
    """The closing summary: one line per flow, then the totals."""
    header = f"{'flow':<14}{'requests':>9}{'errors':>8}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"
    lines = [header, "-" * len(header)]
    for name, stats in report.flows.items():
        if not stats.requests:
            continue
        p50, p95 = stats.percentile(0.5), stats.percentile(0.95)
        lines.append(
            f"{name:<14}{stats.requests:>9}{stats.errors:>8}{p50 or 0:>9.1f}{p95 or 0:>9.1f}"
            f"{max(stats.latencies_ms):>9.1f}"
        )
    rate = report.requests / report.elapsed_s if report.elapsed_s else 0.0
    lines.append(
        f"{report.requests} flows in {report.elapsed_s:.1f}s ({rate:.1f}/s), {report.errors} errors"
    )
    failing = {
        f"{name} {status}": count
        for name, stats in report.flows.items()
        for status, count in stats.statuses.items()
        if not status.startswith("2")
    }
    if failing:
        lines.append(
            "non-2xx answers: " + ", ".join(f"{k}: {v}" for k, v in sorted(failing.items()))
        )
    return "\n".join(lines)
