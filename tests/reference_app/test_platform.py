"""The trading platform's spans: the seed's call trees, one service.name per service, conventions."""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowscope.reference_app.app import AppConfig, TradingApp
from flowscope.reference_app.schema import INSTRUMENTS
from flowscope.reference_app.telemetry import SERVICE_VERSIONS, SERVICES, ExportConfig
from tests.reference_app.conftest import (
    Platform,
    Trader,
    root_of,
    service_of,
    trace_paths,
    traces,
)
from tests.reference_app.expected import FLOW_TREES, paths


def run_every_flow(platform: Platform, person: Trader) -> None:
    newcomer = Trader(platform.http, person.email.replace("@", "+new@"))
    assert newcomer.register().status_code == 201
    assert newcomer.login().status_code == 200
    assert newcomer.fund(5_000.0).json()["new_wallet"] is True  # balance check answered 404
    assert person.fund(1_000.0).json()["new_wallet"] is False
    assert person.order().status_code == 201
    assert person.list_orders().json()["orders"][0]["order_id"] == person.orders[0]
    assert person.positions().json()["positions"][0]["symbol"] == "AAPL"
    assert person.cancel(person.orders[0]).json()["status"] == "cancelled"


def test_every_flow_has_the_call_tree_of_the_seed(platform: Platform, trader: Trader) -> None:
    run_every_flow(platform, trader)
    seen: dict[str, int] = {}
    for spans in traces(platform.spans()).values():
        operation = root_of(spans).name
        seen[operation] = seen.get(operation, 0) + 1
        assert trace_paths(spans) == paths(FLOW_TREES[operation]), operation
    assert set(seen) == set(FLOW_TREES)


def test_each_service_exports_under_its_own_service_name(
    platform: Platform, trader: Trader
) -> None:
    run_every_flow(platform, trader)
    spans = platform.spans()
    assert {service_of(s) for s in spans} == set(SERVICES)
    for span in spans:
        resource = span.resource.attributes
        assert resource["service.version"] == SERVICE_VERSIONS[service_of(span)]
        assert resource["service.namespace"] == "trading"
    # Each instrumentation reports through the provider of the service it runs in.
    scopes = {
        (service_of(s), s.instrumentation_scope.name) for s in spans if s.instrumentation_scope
    }
    assert ("user-service", "opentelemetry.instrumentation.sqlite3") in scopes
    assert ("client-gateway", "opentelemetry.instrumentation.httpx") in scopes
    assert ("order-manager", "opentelemetry.instrumentation.httpx") in scopes
    for service in ("client-gateway", "wallet-service", "risk-manager", "reporting-service"):
        assert (service, "opentelemetry.instrumentation.fastapi") in scopes


def test_database_cache_and_messaging_spans_say_what_they_use(
    platform: Platform, trader: Trader
) -> None:
    assert trader.order().status_code == 201
    assert trader.cancel(trader.orders[0]).status_code == 200
    spans = platform.spans()
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    statements = [s for s in spans if s.attributes and s.attributes.get("db.system") == "sqlite"]
    assert {(service_of(s), s.attributes["db.name"]) for s in statements if s.attributes} == {
        ("wallet-service", "wallets"),
        ("order-manager", "orders"),
    }
    assert all(s.attributes and s.attributes["db.statement"] for s in statements)
    (cache,) = [s for s in spans if s.name == "GET risk_limits"]
    assert cache.kind.name == "CLIENT" and cache.attributes is not None
    assert cache.attributes["db.system.name"] == "in-process-cache"
    consumers = [s for s in spans if s.kind.name == "CONSUMER"]
    assert len(consumers) == 3  # new order, its market data, the cancellation
    for span in consumers:
        assert span.parent is not None and span.context is not None
        producer = by_id[span.parent.span_id]
        assert producer.kind.name == "PRODUCER"
        assert service_of(producer) != service_of(span)
        assert producer.context is not None
        assert producer.context.trace_id == span.context.trace_id
        assert span.attributes and producer.attributes
        for key in ("messaging.system", "messaging.destination.name", "messaging.message.id"):
            assert span.attributes[key] == producer.attributes[key]
        assert span.attributes["messaging.system"] == "in-process-queue"
        assert span.attributes["messaging.operation.type"] == "process"
        assert producer.attributes["messaging.operation.type"] == "send"


def test_business_attributes_for_slicing(platform: Platform, trader: Trader) -> None:
    assert trader.order(symbol="SAP", side="sell", price=181.0).status_code == 201
    assert trader.fund(50.0, currency="EUR").status_code == 200
    roots = {root_of(spans).name: root_of(spans) for spans in traces(platform.spans()).values()}
    order = roots["POST /v1/order"].attributes
    assert order is not None
    assert (order["user.tier"], order["order.symbol"], order["order.side"]) == (
        "pro",
        "SAP",
        "sell",
    )
    assert order["wallet.currency"] == "EUR"
    funding = roots["POST /wallet/add-funds"].attributes
    assert funding is not None and funding["wallet.currency"] == "EUR"
    assert funding["user.tier"] == "pro"


def test_client_spans_are_named_by_url_template(platform: Platform, trader: Trader) -> None:
    assert trader.fund(10.0).status_code == 200
    names = {s.name for s in platform.spans() if s.kind.name == "CLIENT"}
    assert {"GET /me", "GET /balance/{user_id}", "POST /update-balance/{user_id}"} <= names
    assert "GET" not in names and "POST" not in names


def test_positions_report_aggregates_the_orders(platform: Platform, trader: Trader) -> None:
    trader.order(symbol="AAPL", side="buy", quantity=10, price=180.0)
    trader.order(symbol="AAPL", side="sell", quantity=4, price=200.0)
    report = trader.positions().json()
    (aapl,) = report["positions"]
    ref = {i.symbol: i.ref_price for i in INSTRUMENTS}["AAPL"]
    avg = (10 * 180.0 + 4 * 200.0) / 14
    assert aapl["net_quantity"] == 6
    assert aapl["avg_price"] == pytest.approx(avg, abs=1e-4)
    assert aapl["pnl"] == pytest.approx(round(6 * (ref - avg), 2))
    assert report["pnl_by_currency"] == {"USD": aapl["pnl"]}


def test_business_errors_come_back_to_the_caller(platform: Platform, trader: Trader) -> None:
    assert trader.register().status_code == 409  # e-mail taken
    too_big = trader.order(symbol="ASML", quantity=400, price=650.0)  # over the pro notional limit
    assert too_big.status_code == 422 and "rejected by risk" in too_big.json()["detail"]
    broke = Trader(platform.http, trader.email.replace("@", "+broke@"), tier="institutional")
    broke.register(), broke.login(), broke.fund(100.0)
    assert broke.order(quantity=5, price=190.0).status_code == 409  # insufficient funds
    assert trader.cancel(999_999).status_code == 404
    assert platform.http.get("/v1/orders").status_code == 401
    bad = {"Authorization": "Bearer 1.pro.9999999999.forged"}
    assert platform.http.get("/v1/orders", headers=bad).status_code == 401


def test_shutdown_exports_everything_and_is_safe_twice_and_without_start(
    tmp_path: Path,
) -> None:
    TradingApp(AppConfig(export=ExportConfig(exporter_factory=lambda _: SpanCounter()))).shutdown()
    exporter = InMemorySpanExporter()
    app = TradingApp(
        AppConfig(
            # Nothing is exported on schedule: only shutdown's flush can deliver the spans.
            export=ExportConfig(exporter_factory=lambda _: exporter, schedule_delay_ms=600_000),
            data_dir=tmp_path / "data",
        )
    )
    before = set(threading.enumerate())
    app.start()
    with httpx.Client(base_url=app.gateway_url, trust_env=False) as http:
        person = Trader(http, "last@example.test")
        person.register(), person.login(), person.fund(), person.order()
    assert exporter.get_finished_spans() == ()
    started = set(threading.enumerate()) - before
    assert {t.name for t in started} >= {"trading-app", "sqlite-users_0"}
    app.shutdown()
    app.shutdown()
    operations = {root_of(t).name for t in traces(list(exporter.get_finished_spans())).values()}
    assert operations == {
        "POST /auth/register",
        "POST /auth/login",
        "POST /wallet/add-funds",
        "POST /v1/order",
    }
    # The asynchronous end of the order was delivered before the providers closed.
    assert any(s.name == "process market-data" for s in exporter.get_finished_spans())
    assert (tmp_path / "data" / "orders.sqlite").is_file()  # a given data dir is kept
    # What start() took is released: every port refuses, every thread has ended.
    for url in app.urls.values():
        port = int(url.rsplit(":", 1)[1])
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert not [t.name for t in started if t.is_alive()]


def test_temporary_data_goes_away_and_a_failed_start_cleans_up() -> None:
    app = TradingApp(AppConfig(export=ExportConfig(exporter_factory=lambda _: SpanCounter())))
    app.start()
    assert (app.data_dir / "users.sqlite").is_file()
    app.shutdown()
    assert not app.data_dir.exists()
    unreachable = TradingApp(
        AppConfig(export=ExportConfig(exporter_factory=lambda _: SpanCounter()), host="192.0.2.1")
    )
    with pytest.raises(OSError, match="cannot listen on 192.0.2.1:0"):
        unreachable.start()
    assert not unreachable.data_dir.exists()


class SpanCounter(SpanExporter):
    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def test_a_service_that_fails_to_start_is_named_and_cleaned_up(tmp_path: Path) -> None:
    """A data dir holding a file that is not SQLite: the failure came out as "Event loop
    is closed" (telling the ended loop to stop), and telemetry was never shut down."""
    (tmp_path / "orders.sqlite").write_bytes(b"garbage, not a database" * 100)
    counter = SpanCounter()
    app = TradingApp(
        AppConfig(export=ExportConfig(exporter_factory=lambda _: counter), data_dir=tmp_path)
    )
    with pytest.raises(RuntimeError, match="the trading app failed to start: file is not a"):
        app.start()
    assert app.telemetry is not None and app.telemetry._closed
    assert (tmp_path / "orders.sqlite").exists()  # the user's own data dir stays
