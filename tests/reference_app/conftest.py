"""A running trading platform whose spans land in memory, and a scripted frontend for it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowscope.reference_app.app import AppConfig, TradingApp
from flowscope.reference_app.telemetry import ExportConfig
from tests.reference_app.expected import Step


@dataclass
class Platform:
    app: TradingApp
    exporter: InMemorySpanExporter
    http: httpx.Client

    def spans(self) -> list[ReadableSpan]:
        """Everything exported so far, after queued events were delivered and spans flushed."""
        self.app.settle()
        return list(self.exporter.get_finished_spans())

    def fresh(self) -> None:
        self.app.settle()
        self.exporter.clear()

    def fault(self, name: str, magnitude: float | None = None) -> None:
        body: dict[str, Any] = {"fault": name}
        if magnitude is not None:
            body["magnitude"] = magnitude
        self.http.post("/admin/faults", json=body).raise_for_status()

    def clear_faults(self) -> None:
        self.http.delete("/admin/faults").raise_for_status()


@dataclass
class Trader:
    """One user driven by hand through the gateway, as the web frontend would."""

    http: httpx.Client
    email: str
    tier: str = "pro"
    password: str = "correct horse battery"
    token: str = ""
    orders: list[int] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def register(self) -> httpx.Response:
        body = {"email": self.email, "password": self.password, "tier": self.tier}
        return self.http.post("/auth/register", json=body)

    def login(self) -> httpx.Response:
        response = self.http.post(
            "/auth/login", json={"email": self.email, "password": self.password}
        )
        if response.status_code == 200:
            self.token = response.json()["token"]
        return response

    def fund(self, amount: float = 100_000.0, currency: str = "USD") -> httpx.Response:
        body = {"amount": amount, "currency": currency}
        return self.http.post("/wallet/add-funds", json=body, headers=self.auth)

    def order(
        self, symbol: str = "AAPL", side: str = "buy", quantity: int = 3, price: float = 190.0
    ) -> httpx.Response:
        body = {"symbol": symbol, "side": side, "quantity": quantity, "price": price}
        response = self.http.post("/v1/order", json=body, headers=self.auth)
        if response.status_code == 201:
            self.orders.append(response.json()["order_id"])
        return response

    def list_orders(self) -> httpx.Response:
        return self.http.get("/v1/orders", headers=self.auth)

    def positions(self) -> httpx.Response:
        return self.http.get("/reports/positions", headers=self.auth)

    def cancel(self, order_id: int) -> httpx.Response:
        return self.http.delete(f"/v1/order/{order_id}", headers=self.auth)


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    exporter = InMemorySpanExporter()
    app = TradingApp(
        AppConfig(export=ExportConfig(exporter_factory=lambda _service: exporter), seed=3)
    )
    app.start()
    try:
        with httpx.Client(base_url=app.gateway_url, trust_env=False, timeout=30) as http:
            yield Platform(app, exporter, http)
    finally:
        app.shutdown()


_signups = iter(range(1, 1_000_000))


@pytest.fixture
def trader(platform: Platform) -> Trader:
    """A registered, signed-in trader with money in both currencies."""
    person = Trader(platform.http, f"trader{next(_signups)}@example.test")
    assert person.register().status_code == 201
    assert person.login().status_code == 200
    assert person.fund(currency="USD").status_code == 200
    assert person.fund(currency="EUR").status_code == 200
    platform.fresh()
    return person


def service_of(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"])


def step_of(span: ReadableSpan) -> Step:
    return (service_of(span), span.name, span.kind.name.title())


def traces(spans: list[ReadableSpan]) -> dict[int, list[ReadableSpan]]:
    grouped: dict[int, list[ReadableSpan]] = {}
    for span in spans:
        assert span.context is not None
        grouped.setdefault(span.context.trace_id, []).append(span)
    return grouped


def root_of(spans: list[ReadableSpan]) -> ReadableSpan:
    (root,) = [s for s in spans if s.parent is None]
    return root


def trace_paths(spans: list[ReadableSpan]) -> set[tuple[Step, ...]]:
    """A trace as the set of its root-to-span paths of steps."""
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    found = set()
    for span in spans:
        path: list[Step] = []
        node: ReadableSpan | None = span
        while node is not None:
            path.append(step_of(node))
            node = by_id.get(node.parent.span_id) if node.parent is not None else None
        found.add(tuple(reversed(path)))
    return found
