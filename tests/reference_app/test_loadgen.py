"""The load generator: configuration checks, seeded determinism, the mix of flows, the summary."""

from __future__ import annotations

import asyncio

import pytest

from flowscope.reference_app.loadgen import (
    FLOWS,
    WARM_UP,
    WARM_UP_IN_FLIGHT,
    LoadConfig,
    LoadGenerator,
    LoadReport,
    format_report,
)
from tests.reference_app.conftest import Platform, root_of, traces


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (LoadConfig(rate=0), "rate must be a positive number"),
        (LoadConfig(concurrency=0), "concurrency must be at least 1"),
        (LoadConfig(duration_s=-1), "duration must be positive"),
        (LoadConfig(users=0), "users must be at least 1"),
        (LoadConfig(weights={"trade": 1.0}), "unknown flows in weights: trade"),
        (LoadConfig(weights={"login": 0.0}), "flow weights must add up to more than 0"),
    ],
)
def test_bad_load_configs_are_refused(config: LoadConfig, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config.validate()


def run_load(platform: Platform, config: LoadConfig) -> LoadReport:
    return asyncio.run(LoadGenerator(platform.app.gateway_url, config).run())


def test_the_same_seed_gives_the_same_traffic(platform: Platform) -> None:
    def one_run(seed: int, run_id: str) -> LoadReport:
        config = LoadConfig(
            rate=50, duration_s=0.5, concurrency=1, users=2, seed=seed, run_id=run_id
        )
        return run_load(platform, config)

    first, again, other = one_run(7, "a"), one_run(7, "b"), one_run(8, "c")
    assert first.planned == again.planned and len(first.planned) > 10
    assert other.planned != first.planned
    assert {f: s.requests for f, s in first.flows.items()} == {
        f: s.requests for f, s in again.flows.items()
    }
    assert first.errors == 0 and again.errors == 0


def test_load_drives_all_seven_flows_through_the_gateway(platform: Platform) -> None:
    platform.fresh()
    report = run_load(
        platform, LoadConfig(rate=60, duration_s=1.5, concurrency=8, users=3, run_id="mix")
    )
    assert report.errors == 0, format_report(report)
    assert all(report.flows[f].requests > 0 for f in FLOWS), format_report(report)
    assert report.flows[WARM_UP].requests == 3
    roots = {root_of(spans).name for spans in traces(platform.spans()).values()}
    assert roots == {
        "POST /auth/register",
        "POST /auth/login",
        "POST /wallet/add-funds",
        "POST /v1/order",
        "GET /v1/orders",
        "GET /reports/positions",
        "DELETE /v1/order/{order_id}",
    }


def test_the_warm_up_keeps_few_traders_in_flight(platform: Platform) -> None:
    """All traders warmed up at once; their traces, queued on the services' event
    loops, made a short demo's P95s (382 ms against 29 ms after the warm-up)."""
    platform.fresh()
    config = LoadConfig(rate=0.001, duration_s=0.01, concurrency=16, users=8, run_id="warm")
    report = run_load(platform, config)
    assert report.flows[WARM_UP].requests == 8 and report.planned == []
    events: list[tuple[int, int]] = []
    for spans in traces(platform.spans()).values():
        root = root_of(spans)
        assert root.start_time is not None and root.end_time is not None
        events += [(root.start_time, 1), (root.end_time, -1)]
    in_flight = peak = 0
    for _at, step in sorted(events, key=lambda e: (e[0], e[1])):  # ends before starts
        in_flight += step
        peak = max(peak, in_flight)
    assert peak == WARM_UP_IN_FLIGHT


def test_weights_shape_the_mix(platform: Platform) -> None:
    report = run_load(
        platform,
        LoadConfig(
            rate=100,
            duration_s=0.5,
            concurrency=4,
            users=1,
            weights={"query_orders": 1.0},
            run_id="weights",
        ),
    )
    assert set(report.planned) == {"query_orders"}
    assert report.flows["query_orders"].requests == len(report.planned)


def test_stop_ends_the_load_early(platform: Platform) -> None:
    async def stopped_run() -> LoadReport:
        stop = asyncio.Event()
        generator = LoadGenerator(
            platform.app.gateway_url,
            LoadConfig(rate=20, duration_s=None, users=1, run_id="stop"),
        )

        def stop_after_a_few(report: LoadReport) -> None:
            if report.requests >= 5:
                stop.set()

        return await asyncio.wait_for(generator.run(stop, stop_after_a_few), 30)

    report = asyncio.run(stopped_run())
    assert 5 <= report.requests < 5 + 16  # what was in flight still finishes


def test_summary_lists_each_flow_and_the_totals() -> None:
    report = LoadReport(elapsed_s=2.0)
    report.flows["login"].requests = 4
    report.flows["login"].latencies_ms = [10.0, 20.0, 30.0, 40.0]
    report.flows["login"].statuses = {"200": 3, "401": 1}
    report.flows["login"].errors = 1
    lines = format_report(report).splitlines()
    assert lines[0].split() == ["flow", "requests", "errors", "p50", "ms", "p95", "ms", "max", "ms"]
    assert lines[2].split() == ["login", "4", "1", "25.0", "38.5", "40.0"]
    assert lines[3] == "4 flows in 2.0s (2.0/s), 1 errors"
    assert lines[4] == "non-2xx answers: login 401: 1"
