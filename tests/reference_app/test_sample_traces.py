"""sample_traces/: small recordings of the platform that import whole and show what they claim."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from flowscope.cli import main
from flowscope.reference_app.faults import FAULTS
from flowscope.reference_app.telemetry import SERVICES

SAMPLES = Path(__file__).resolve().parents[2] / "sample_traces"
FILES = ["normal", *FAULTS]
ERROR = 2  # OTLP status code


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    service: str
    name: str
    duration_ms: float
    error: bool
    attributes: dict[str, Any]


def read_spans(name: str) -> list[Span]:
    spans = []
    for line in (SAMPLES / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
        for resource in json.loads(line)["resourceSpans"]:
            service = next(
                a["value"]["stringValue"]
                for a in resource["resource"]["attributes"]
                if a["key"] == "service.name"
            )
            for scope in resource["scopeSpans"]:
                for raw in scope["spans"]:
                    values = {
                        a["key"]: next(iter(a["value"].values())) for a in raw.get("attributes", [])
                    }
                    spans.append(
                        Span(
                            raw["traceId"],
                            raw["spanId"],
                            service,
                            raw["name"],
                            (int(raw["endTimeUnixNano"]) - int(raw["startTimeUnixNano"])) / 1e6,
                            raw.get("status", {}).get("code") == ERROR,
                            values,
                        )
                    )
    return spans


def named(spans: list[Span], service: str, name: str) -> list[Span]:
    return [s for s in spans if s.service == service and s.name == name]


def per_trace(spans: list[Span], service: str, name: str) -> list[int]:
    counts: dict[str, int] = {}
    for span in named(spans, service, name):
        counts[span.trace_id] = counts.get(span.trace_id, 0) + 1
    return sorted(counts.values())


@pytest.mark.parametrize("name", FILES)
def test_sample_imports_whole_with_flowscope_import(name: str, tmp_path: Path) -> None:
    path = SAMPLES / f"{name}.jsonl"
    assert path.stat().st_size < 1_000_000
    spans = len(read_spans(name))
    result = CliRunner().invoke(
        main, ["import", "--db", str(tmp_path / "s.duckdb"), "--no-progress", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert f"otlp-jsonl, {spans} spans, {spans} new, 0 duplicates, 0 rejected" in result.output
    assert {s.service for s in read_spans(name)} == set(SERVICES)


def test_normal_traffic_is_healthy() -> None:
    spans = read_spans("normal")
    assert not [s for s in spans if s.error and s.name != "GET /balance/{user_id}"]
    assert set(per_trace(spans, "client-gateway", "POST /order")) == {1}
    assert set(per_trace(spans, "reporting-service", "SELECT")) == {1}
    locks = named(spans, "wallet-service", "acquire wallet lock")
    assert {s.attributes["wallet.lock.scope"] for s in locks} == {"wallet"}


def test_wallet_lock_sample_holds_one_global_lock() -> None:
    spans = read_spans("wallet-lock")
    locks = named(spans, "wallet-service", "acquire wallet lock")
    assert locks and {s.attributes["wallet.lock.scope"] for s in locks} == {"global"}
    assert min(s.duration_ms for s in named(spans, "wallet-service", "POST /block-funds")) >= 80


def test_slow_risk_sample_is_slow_in_the_risk_check() -> None:
    checks = named(read_spans("slow-risk"), "risk-manager", "validate_order")
    assert checks and min(s.duration_ms for s in checks) >= 150


def test_failing_matching_sample_fails_half_the_new_orders() -> None:
    spans = read_spans("failing-matching")
    new_orders = len(named(spans, "client-gateway", "POST /v1/order"))
    failed = [s for s in named(spans, "matching-engine", "process order-events") if s.error]
    assert failed and len(failed) == new_orders // 2


def test_n_plus_one_sample_queries_per_symbol() -> None:
    spans = read_spans("n-plus-one")
    reports = named(spans, "reporting-service", "GET /positions/{user_id}")
    assert reports and {s.attributes["report.query_plan"] for s in reports} == {"per-symbol"}
    assert max(per_trace(spans, "reporting-service", "SELECT")) >= 2


def test_slow_user_db_sample_is_slow_in_user_statements() -> None:
    spans = read_spans("slow-user-db")
    statements = named(spans, "user-service", "SELECT") + named(spans, "user-service", "INSERT")
    assert statements and min(s.duration_ms for s in statements) >= 120
    assert max(s.duration_ms for s in named(spans, "wallet-service", "SELECT")) < 120


def test_order_manager_503_sample_shows_retries() -> None:
    spans = read_spans("order-manager-503")
    assert max(per_trace(spans, "client-gateway", "POST /order")) >= 2
    assert [s for s in named(spans, "order-manager", "POST /order") if s.error]
