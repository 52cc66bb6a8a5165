"""The analyzer's JSON API: every route, exact field names, exact numbers, 400/404.

A real server (in this process, free ports, real HTTP) over a real DuckDB file
holding the hand-built scenario of tests/analysis_scenario.py.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowscope.analysis_sources import flow_detail_from_dict, service_map_from_dict
from flowscope.analyzer import model
from flowscope.analyzer.diagrams import (
    flow_dot,
    flow_flowchart_mermaid,
    flow_sequence_mermaid,
    service_map_dot,
    service_map_mermaid,
)
from flowscope.analyzer.flows import auto_flow_id
from flowscope.testing.server import server_in_process
from tests.analysis_scenario import (
    FASTEST_ORDER_TRACE,
    ORDER_P50,
    ORDER_P95,
    ORDER_P99,
    SINCE,
    SLOWEST_ORDER_TRACE,
    UNTIL,
    WINDOW,
    write_scenario,
)
from tests.analyzer.mermaid_check import assert_all_parse

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
ORDERS = auto_flow_id("gateway", "POST /orders")


def field_names(record: type[Any]) -> set[str]:
    return {f.name for f in dataclasses.fields(record)}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    path = tmp_path_factory.mktemp("api") / "spans.duckdb"
    # The scenario is written straight to the writer, so the receivers run in-process.
    with server_in_process(path, decode_workers=0, ingest_process=False) as (server, endpoints):
        assert server.database is not None and server.writer is not None
        write_scenario(server.database, writer=server.writer)
        with httpx.Client(base_url=endpoints.ui, timeout=60) as client:
            yield client


def get(api: httpx.Client, path: str, **params: Any) -> Any:
    response = api.get(path, params={**WINDOW, **params})
    assert response.status_code == 200, response.text
    return response.json()


def order_flow_id(api: httpx.Client) -> str:
    flows = get(api, "/api/flows")["flows"]
    return str(next(f["id"] for f in flows if f["root_operation"] == "POST /orders"))


def test_map_fields_and_edges(api: httpx.Client) -> None:
    body = get(api, "/api/map")
    assert set(body) == {"nodes", "edges", "window"}
    # Nine fraction digits, as the records' times: trimmed, they sorted wrongly as text.
    nine = {"since": "2026-01-01T00:00:00.000000000Z", "until": "2026-01-01T01:00:00.000000000Z"}
    assert (SINCE, UNTIL) == ("2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z")
    assert body["window"] == nine
    for node in body["nodes"]:
        assert set(node) == field_names(model.Node)
    for edge in body["edges"]:
        assert set(edge) == field_names(model.Edge)
    kinds = {n["id"]: n["kind"] for n in body["nodes"]}
    edges = {(e["source"], e["target"], e["rule"]): e for e in body["edges"]}
    rpc = edges[("gateway", "orders", "rpc")]
    assert rpc["calls"] == 4 and rpc["errors"] == 1 and rpc["error_rate"] == 0.25
    consumer = edges[("orders", "fulfillment", "async")]
    assert (consumer["messaging_system"], consumer["destination"]) == ("kafka", "orders")
    # async latency is the consumer span's duration (20 ms); lag = 40 - (30 + 2) ms.
    assert (consumer["p50_ms"], consumer["p95_ms"], consumer["p99_ms"]) == (20.0, 20.0, 20.0)
    assert consumer["lag_p50_ms"] == pytest.approx(8.0)
    databases = [e for (s, t, r), e in edges.items() if s == "orders" and kinds[t] == "database"]
    assert len(databases) == 1 and databases[0]["rule"] == "virtual"
    assert databases[0]["calls"] == 4 and databases[0]["p50_ms"] == 10.0
    assert kinds["market-data"] == "external"
    assert ("orders", "fulfillment", "rpc") not in edges  # producer->consumer is async only


def test_flows_fields_and_numbers(api: httpx.Client) -> None:
    body = get(api, "/api/flows")
    assert set(body) == {"flows", "window"}
    assert len(body["flows"]) == 2
    for flow in body["flows"]:
        assert set(flow) == field_names(model.Flow)
    orders = next(f for f in body["flows"] if f["root_operation"] == "POST /orders")
    assert orders["root_service"] == "gateway"
    assert orders["traces"] == 4
    assert orders["error_rate"] == 0.25
    assert orders["traces_with_span_errors"] == 1
    assert (orders["p50_ms"], orders["p95_ms"], orders["p99_ms"]) == pytest.approx(
        (ORDER_P50, ORDER_P95, ORDER_P99)
    )
    # Rates divide by the window clipped to the stored data: 0 .. 3 min 400 ms.
    assert orders["rate_per_min"] == pytest.approx(4 / (180.4 / 60))


def test_flows_grouped_by_an_attribute(api: httpx.Client) -> None:
    flows = get(api, "/api/flows", by="wallet.provider")["flows"]
    orders = sorted(
        (f["group"]["wallet.provider"], f["traces"])
        for f in flows
        if f["root_operation"] == "POST /orders"
    )
    assert orders == [("paypal", 2), ("visa", 2)]


def test_flow_detail_fields_and_steps(api: httpx.Client) -> None:
    flow_id = order_flow_id(api)
    body = get(api, f"/api/flows/{flow_id}")
    assert set(body) == {"flow", "steps", "claimed_by", "window"}
    assert body["claimed_by"] == []  # no flows.yaml
    assert set(body["flow"]) == field_names(model.Flow)
    for step in body["steps"]:
        assert set(step) == field_names(model.Step)
    steps = {(s["service"], s["operation"], s["kind"]): s for s in body["steps"]}
    root = steps[("gateway", "POST /orders", "Server")]
    assert root["parent_id"] is None
    assert (root["calls"], root["traces"], root["calls_per_trace"]) == (4, 4, 1.0)
    validate = steps[("orders", "validate", "Internal")]
    assert (validate["calls"], validate["errors"], validate["origin_errors"]) == (1, 1, 1)
    # orders' server span fails too, but only because validate failed: not an origin.
    assert steps[("orders", "POST /orders", "Server")]["origin_errors"] == 0
    db = steps[("orders", "SELECT orders", "Client")]
    assert db["p50_ms"] == 10.0 and db["start_offset_p50_ms"] == 10.0
    ids = {s["id"] for s in body["steps"]}
    assert all(s["parent_id"] in ids for s in body["steps"] if s["parent_id"] is not None)


def test_flow_steps_grouped(api: httpx.Client) -> None:
    steps = get(api, f"/api/flows/{order_flow_id(api)}", by="wallet.provider")["steps"]
    roots = sorted(
        (s["group"]["wallet.provider"], s["calls"]) for s in steps if s["parent_id"] is None
    )
    assert roots == [("paypal", 2), ("visa", 2)]


def test_empty_by_is_not_split(api: httpx.Client) -> None:
    """``by=`` (an empty form field) used to split by the key '' into one group {"": ""}."""
    flow_id = order_flow_id(api)
    assert get(api, "/api/flows", by="") == get(api, "/api/flows")
    assert get(api, f"/api/flows/{flow_id}", by="") == get(api, f"/api/flows/{flow_id}")


def test_unknown_flow_is_404(api: httpx.Client) -> None:
    for path in ("/api/flows/no-such-flow", "/api/flows/no-such-flow/diagram"):
        response = api.get(path, params=WINDOW)
        assert response.status_code == 404
        assert "no-such-flow" in response.json()["detail"]["message"]


def test_traces_filters_and_order(api: httpx.Client) -> None:
    body = get(api, "/api/traces", limit=100)
    assert set(body) == {"traces", "window"}
    for trace in body["traces"]:
        assert set(trace) == field_names(model.TraceSummary)
    durations = [t["duration_ms"] for t in body["traces"]]
    assert durations == sorted(durations, reverse=True) == [400, 300, 200, 100, 50, 50]
    assert body["traces"][0]["trace_id"] == SLOWEST_ORDER_TRACE
    assert body["traces"][0]["start"].startswith("2026-01-01T00:03:00")
    assert len(get(api, "/api/traces", limit=2)["traces"]) == 2
    failing = get(api, "/api/traces", error="true")["traces"]
    assert [t["trace_id"] for t in failing] == [SLOWEST_ORDER_TRACE]
    assert failing[0]["errors"] == 4 and failing[0]["status"] == "Error"
    assert len(get(api, "/api/traces", error="false")["traces"]) == 5
    assert len(get(api, "/api/traces", min_duration_ms=250)["traces"]) == 2
    assert len(get(api, "/api/traces", service="fulfillment")["traces"]) == 4
    assert len(get(api, "/api/traces", operation="GET quotes")["traces"]) == 2
    orders = order_flow_id(api)
    assert {t["flow"] for t in get(api, "/api/traces", flow=orders)["traces"]} == {orders}
    # Both given: one span has both (Jaeger's search), not each on a span of its own.
    assert get(api, "/api/traces", service="fulfillment", operation="GET quotes")["traces"] == []
    # KEY=VALUE attributes, repeatable, all on one span; a longest root duration.
    paypal = get(api, "/api/traces", attr="wallet.provider=paypal")["traces"]
    assert len(paypal) == 2
    both = {"attr": ["wallet.provider=paypal", "http.route=/orders"]}
    assert api.get("/api/traces", params={**WINDOW, **both}).json()["traces"] == paypal
    assert len(get(api, "/api/traces", max_duration_ms=100)["traces"]) == 3
    fastest = get(api, "/api/traces", sort="fastest", limit=100)["traces"]
    assert [t["duration_ms"] for t in fastest] == [50, 50, 100, 200, 300, 400]
    bad = api.get("/api/traces", params={**WINDOW, "attr": "wallet.provider"})
    assert bad.status_code == 400
    assert "attr: 'wallet.provider' is not KEY=VALUE" in bad.json()["detail"]["message"]


def test_empty_filters_are_not_given(api: httpx.Client) -> None:
    """`flow=` (an empty form field) was "no flow ''", a 404; `service=` matched none."""
    every = get(api, "/api/traces", limit=100)
    assert get(api, "/api/traces", limit=100, flow="", service="", operation="") == every
    assert get(api, "/api/map", flow="") == get(api, "/api/map")
    assert api.get("/api/map/diagram", params={**WINDOW, "flow": ""}).status_code == 200
    # Every field of a form left empty, as a browser sends the form (docs review: sort=,
    # error=, limit= and the durations were 422, attr= a 400, format= a 422).
    window = f"since={WINDOW['since']}&until={WINDOW['until']}"
    blanks = "sort=&error=&limit=&min_duration_ms=&max_duration_ms=&attr=&service=&flow"
    answer = api.get(f"/api/traces?{window}&{blanks}")
    assert answer.status_code == 200 and answer.json() == get(api, "/api/traces")
    # Still refused: a name the route does not take, or one given twice (diff review).
    typo = api.get(f"/api/traces?{window}&min_duration=")
    assert typo.status_code == 400 and "'min_duration'" in typo.json()["detail"]["message"]
    twice = api.get(f"/api/traces?{window}&limit=&limit=5")
    assert twice.status_code == 400 and "given more than once" in twice.text
    assert api.get(f"/api/map/diagram?{window}&format=&flow=").status_code == 200


def test_trace_view(api: httpx.Client) -> None:
    body = get(api, f"/api/traces/{SLOWEST_ORDER_TRACE}")
    assert set(body) == field_names(model.TraceView) | {"window"}
    # The baseline window of the step P50s is echoed (a relative one was not to be seen).
    assert body["window"] == get(api, "/api/flows")["window"]
    bare = api.get(f"/api/traces/{SLOWEST_ORDER_TRACE}").json()
    assert bare["window"] is None and {s["step_p50_ms"] for s in bare["spans"]} == {None}
    assert body["trace_id"] == SLOWEST_ORDER_TRACE
    assert body["duration_ms"] == 400.0
    for span in body["spans"]:
        assert set(span) == field_names(model.TraceSpan)
    for segment in body["critical_path"]:
        assert set(segment) == field_names(model.CriticalSegment)
    assert len(body["spans"]) == 7
    assert body["spans"][0]["parent_span_id"] == "" and body["spans"][0]["depth"] == 0
    assert sum(s["duration_ms"] for s in body["critical_path"]) == pytest.approx(400.0)


def test_unknown_trace_is_404(api: httpx.Client) -> None:
    response = api.get("/api/traces/" + "f" * 32)
    assert response.status_code == 404
    assert "f" * 32 in response.json()["detail"]["message"]


def test_an_id_with_a_slash_gets_the_404_that_names_it(api: httpx.Client) -> None:
    """`%2F` is decoded before routing: no route matched, and FastAPI's bare
    {"detail": "Not Found"} broke the 404's documented form."""
    for path, named in (
        ("/api/flows/a%2Fb", {"flow": "a/b"}),
        ("/api/flows/a%2Fb/diagram", {"flow": "a/b"}),
        ("/api/traces/a%2Fb", {"trace": "a/b"}),
    ):
        response = api.get(path, params=WINDOW)
        assert response.status_code == 404, path
        detail = response.json()["detail"]
        assert {k: detail[k] for k in named} == named and "'a/b'" in detail["message"]


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("/api/map", {"flow": "no-such-flow"}, {"flow": "no-such-flow"}),
        ("/api/map/diagram", {"flow": "no-such-flow"}, {"flow": "no-such-flow"}),
        ("/api/traces", {"flow": "no-such-flow"}, {"flow": "no-such-flow"}),
        ("/api/flows/no-such-flow", {}, {"flow": "no-such-flow"}),
        ("/api/traces/" + "F" * 32, {}, {"trace": "f" * 32}),
        ("/api/compare", {"trace": "f" * 32}, {"trace": "f" * 32}),
        ("/api/compare", {"left": FASTEST_ORDER_TRACE, "right": "e" * 32}, {"trace": "e" * 32}),
        (
            "/api/compare",
            {"flow": "no-such-flow", "left_version": "1.0", "right_version": "2.0"},
            {"flow": "no-such-flow"},
        ),
    ],
    ids=["map", "map-diagram", "traces", "flow", "trace", "baseline", "traces-mode", "versions"],
)
def test_404_names_what_is_missing(
    api: httpx.Client, path: str, params: dict[str, str], named: dict[str, str]
) -> None:
    """A client can tell an unknown flow from an unknown trace (and which trace)
    without parsing the message: flowscope.open raises UnknownFlow/UnknownTrace from it."""
    response = api.get(path, params={**WINDOW, **params})
    assert response.status_code == 404
    detail = response.json()["detail"]
    key, value = next(iter(named.items()))
    assert detail[key] == value and repr(value) in detail["message"]


def test_compare_modes(api: httpx.Client) -> None:
    flow_id = order_flow_id(api)
    traces = get(api, "/api/compare", left=FASTEST_ORDER_TRACE, right=SLOWEST_ORDER_TRACE)
    assert set(traces) == field_names(model.Comparison)
    assert traces["mode"] == "traces"
    for delta in traces["deltas"]:
        assert set(delta) == field_names(model.StepDelta)
    sizes = [abs(d["delta_ms"]) for d in traces["deltas"] if d["delta_ms"] is not None]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] == 300.0
    # validate only runs in the failing trace: absent on the left.
    validate = next(d for d in traces["deltas"] if d["operation"] == "validate")
    assert validate["left_ms"] is None and validate["right_ms"] == 5.0
    baseline = get(api, "/api/compare", trace=SLOWEST_ORDER_TRACE)
    assert baseline["mode"] == "baseline"
    # Ids as typed (upper case, spaces) come back as everywhere else: lower-case hex.
    typed = get(
        api, "/api/compare", left=f" {FASTEST_ORDER_TRACE.upper()}", right=SLOWEST_ORDER_TRACE
    )
    assert (typed["left"], typed["right"]) == (FASTEST_ORDER_TRACE, SLOWEST_ORDER_TRACE)
    assert typed["deltas"] == traces["deltas"]
    typed = get(api, "/api/compare", trace=f"{SLOWEST_ORDER_TRACE.upper()} ")
    assert typed["right"] == SLOWEST_ORDER_TRACE
    windows = get(
        api,
        "/api/compare",
        flow=flow_id,
        left_since=SINCE,
        left_until="2026-01-01T00:02:00Z",
        right_since="2026-01-01T00:02:00Z",
        right_until=UNTIL,
    )
    assert windows["mode"] == "windows"
    versions = get(api, "/api/compare", flow=flow_id, left_version="1.0", right_version="2.0")
    assert versions["mode"] == "versions" and versions["deltas"]


def test_compare_fields_mean_what_the_docs_say(api: httpx.Client) -> None:
    """docs/api.md StepDelta: baseline left = the step's P50, right = the trace;
    ``step`` is the whole path from the root step."""
    baseline = get(api, "/api/compare", trace=SLOWEST_ORDER_TRACE)
    root = next(d for d in baseline["deltas"] if d["step"] == "gateway POST /orders")
    assert (root["left_ms"], root["right_ms"]) == (ORDER_P50, 400.0)
    assert (root["left_calls"], root["right_calls"]) == (4, 1)
    assert (
        baseline["left"].startswith(f"{ORDERS} P50 ") and baseline["right"] == SLOWEST_ORDER_TRACE
    )
    validate = next(d for d in baseline["deltas"] if d["operation"] == "validate")
    assert validate["step"] == (
        "gateway POST /orders > gateway POST > orders POST /orders > orders validate"
    )


def test_baseline_without_a_window_is_the_hour_around_the_trace(api: httpx.Client) -> None:
    """The scenario is from 2026-01-01: the last hour (the old default) holds none of
    its traces, so every step read as new (left null)."""
    response = api.get("/api/compare", params={"trace": SLOWEST_ORDER_TRACE})
    assert response.status_code == 200
    around = response.json()
    assert around["left"].startswith(f"{ORDERS} P50 2025-12-31T23:")
    root = next(d for d in around["deltas"] if d["step"] == "gateway POST /orders")
    assert (root["left_ms"], root["right_ms"], root["left_calls"]) == (ORDER_P50, 400.0, 4)
    assert around["deltas"] == get(api, "/api/compare", trace=SLOWEST_ORDER_TRACE)["deltas"]


def test_known_flow_in_an_empty_window_is_200(api: httpx.Client) -> None:
    empty = {"since": "2030-01-01T00:00:00Z", "until": "2030-01-02T00:00:00Z"}
    response = api.get(f"/api/flows/{ORDERS}", params=empty)
    assert response.status_code == 200
    body = response.json()
    assert (body["flow"]["traces"], body["steps"]) == (0, [])


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"left": "a" * 32},
        {"flow": "x", "left_version": "1.0"},
        {"flow": ORDERS, "left_since": "1h"},
        {"flow": ORDERS, "right_since": SINCE, "right_until": UNTIL},
        {"flow": ORDERS, "left_until": UNTIL},
    ],
    ids=["nothing", "one-trace", "one-version", "left-only", "right-only", "left-until-only"],
)
def test_compare_without_a_complete_mode_is_400(api: httpx.Client, params: dict[str, str]) -> None:
    response = api.get("/api/compare", params=params)
    assert response.status_code == 400
    assert response.json()["detail"]["message"]


def test_compare_refuses_parameters_of_two_modes(api: httpx.Client) -> None:
    """Before, /api/compare answered one mode and ignored the other's parameters."""
    for params in (
        {"left": FASTEST_ORDER_TRACE, "right": SLOWEST_ORDER_TRACE, "flow": ORDERS},
        {"trace": SLOWEST_ORDER_TRACE, "left_since": SINCE},
    ):
        response = api.get("/api/compare", params=params)
        assert response.status_code == 400
        assert "give one comparison, not " in response.json()["detail"]["message"]


def test_compare_windows_says_which_window_is_missing(api: httpx.Client) -> None:
    # One window alone used to compare it with the default last hour: 200, all deltas 0.
    response = api.get("/api/compare", params={"flow": ORDERS, "left_since": "1h"})
    assert response.status_code == 400
    message = response.json()["detail"]["message"]
    assert "right_since" in message and "right_until" in message
    # One bound per side is enough: a missing since is an hour before its until.
    body = get(
        api, "/api/compare", flow=ORDERS, left_until="2026-01-01T00:02:00Z", right_until=UNTIL
    )
    assert body["mode"] == "windows"
    assert body["left"] == "2025-12-31T23:02:00Z .. 2026-01-01T00:02:00Z"


@pytest.mark.parametrize(
    "path", ["/api/map", "/api/flows", "/api/traces", "/api/map/diagram", "/api/compare"]
)
def test_bad_window_is_400_with_a_message(api: httpx.Client, path: str) -> None:
    trace = {"trace": "a" * 32} if path == "/api/compare" else {}
    response = api.get(path, params={"since": "yesterday-ish", **trace})
    assert response.status_code == 400
    message = response.json()["detail"]["message"]
    assert "since" in message and "yesterday-ish" in message
    backwards = api.get(path, params={"since": UNTIL, "until": SINCE, **trace})
    assert backwards.status_code == 400
    assert "must be before" in backwards.json()["detail"]["message"]
    # Before, a DuckDB binder error: 500.
    for params in ({"since": "1600-01-01T00:00:00Z"}, {"until": "2300-01-01T00:00:00Z"}):
        outside = api.get(path, params={**params, **trace})
        assert outside.status_code == 400
        assert "is outside the times spans can have" in outside.json()["detail"]["message"]


@pytest.mark.parametrize("value", ["inf", "1e400", "nan", "1e300"])
def test_min_duration_out_of_range(api: httpx.Client, value: str) -> None:
    response = api.get("/api/traces", params={"min_duration_ms": value, "since": SINCE})
    if value == "1e300":  # longer than any span can last: no trace, not an error
        assert response.status_code == 200 and response.json()["traces"] == []
        return
    # A 500 once; then inf a 400 and NaN a 422 that said "should be >= 0": one answer.
    assert response.status_code == 422
    assert "finite number" in response.text


def test_unknown_and_repeated_query_parameters_are_refused(api: httpx.Client) -> None:
    """A misspelt parameter was ignored (every trace for ``min_duration=500``) and a
    repeated one took its last value, with nothing to say so."""
    typo = api.get("/api/traces", params={"min_duration": "500", "since": SINCE})
    assert typo.status_code == 400
    message = typo.json()["detail"]["message"]
    assert message.startswith("unknown query parameter 'min_duration'; this route takes: ")
    assert "min_duration_ms" in message
    twice = api.get("/api/flows", params=[("since", SINCE), ("since", "2d")])
    assert twice.status_code == 400
    assert twice.json()["detail"]["message"] == "query parameter 'since' given more than once"
    sql = api.post("/api/sql", params={"format": "csv"}, json={"sql": "SELECT 1"})
    assert sql.status_code == 400
    assert sql.json()["detail"]["message"] == (
        "unknown query parameter 'format'; this route takes: none"
    )
    # What each route takes is still taken, and /healthz (probes add their own) is lenient.
    assert api.get("/api/map/diagram", params={"format": "dot", "since": SINCE}).status_code == 200
    assert api.get("/healthz", params={"probe": "1"}).status_code == 200


def test_diagram_routes_draw_the_api_records(api: httpx.Client) -> None:
    service_map = service_map_from_dict(get(api, "/api/map"))
    flow_id = order_flow_id(api)
    detail = flow_detail_from_dict(get(api, f"/api/flows/{flow_id}"))
    expected = {
        ("/api/map/diagram", "mermaid"): service_map_mermaid(service_map),
        ("/api/map/diagram", "dot"): service_map_dot(service_map),
        (f"/api/flows/{flow_id}/diagram", "mermaid-sequence"): flow_sequence_mermaid(detail),
        (f"/api/flows/{flow_id}/diagram", "mermaid"): flow_sequence_mermaid(detail),
        (f"/api/flows/{flow_id}/diagram", "mermaid-flowchart"): flow_flowchart_mermaid(detail),
        (f"/api/flows/{flow_id}/diagram", "dot"): flow_dot(detail),
    }
    mermaid: dict[str, str] = {}
    for (path, fmt), text in expected.items():
        response = api.get(path, params={**WINDOW, "format": fmt})
        assert response.status_code == 200
        assert response.text == text
        kind = "graphviz" if fmt == "dot" else "mermaid"
        assert response.headers["content-type"].startswith(f"text/vnd.{kind}")
        if fmt != "dot":
            mermaid[f"{path} {fmt}"] = response.text
    assert "fulfillment" in mermaid[f"/api/flows/{flow_id}/diagram mermaid-sequence"]
    assert_all_parse(mermaid)
    assert api.get("/api/map/diagram", params={"format": "png"}).status_code == 422


def test_flow_diagram_split_by_an_attribute(api: httpx.Client) -> None:
    flow_id = order_flow_id(api)
    by = {"by": "wallet.provider"}
    detail = flow_detail_from_dict(get(api, f"/api/flows/{flow_id}", **by))
    drawn = {
        fmt: api.get(f"/api/flows/{flow_id}/diagram", params={**WINDOW, **by, "format": fmt})
        for fmt in ("mermaid-sequence", "mermaid-flowchart", "dot")
    }
    assert all(response.status_code == 200 for response in drawn.values())
    assert drawn["mermaid-sequence"].text == flow_sequence_mermaid(detail)
    assert drawn["mermaid-flowchart"].text == flow_flowchart_mermaid(detail)
    assert drawn["dot"].text == flow_dot(detail)
    sequence, flowchart = assert_all_parse(
        {fmt: drawn[fmt].text for fmt in ("mermaid-sequence", "mermaid-flowchart")}
    )
    blocks = [m["text"] for m in sequence["messages"] if m["type"] in (12, 13)]  # alt, else
    assert blocks == ["wallet.provider = paypal", "wallet.provider = visa"]
    assert [s["title"] for s in flowchart["subgraphs"]] == blocks
    assert drawn["dot"].text.count("subgraph cluster_") == 2
    # Without by: the same route still draws one tree, unsplit.
    plain = api.get(f"/api/flows/{flow_id}/diagram", params={**WINDOW, "format": "dot"}).text
    assert "subgraph" not in plain


def test_routes_need_the_token_when_set(tmp_path: Path) -> None:
    with server_in_process(
        tmp_path / "spans.duckdb", decode_workers=0, token="s3cret", ingest_process=False
    ) as (
        server,
        endpoints,
    ):
        assert server.database is not None and server.writer is not None
        write_scenario(server.database, writer=server.writer)
        for path in ("/api/flows", "/api/map", "/api/traces", "/api/map/diagram"):
            assert httpx.get(endpoints.ui + path, params=WINDOW).status_code == 401
        ok = httpx.get(
            endpoints.ui + "/api/flows",
            params=WINDOW,
            headers={"Authorization": "Bearer s3cret"},
        )
        assert ok.status_code == 200 and len(ok.json()["flows"]) == 2
        # The OpenAPI description says so (before: no security scheme at all).
        schema = httpx.get(endpoints.ui + "/openapi.json").json()
        assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        assert schema["paths"]["/api/flows"]["get"]["security"] == [{"bearer": []}]
        assert "security" not in schema["paths"]["/healthz"]["get"]


def test_openapi_says_the_token_is_optional_without_one(api: httpx.Client) -> None:
    schema = api.get("/openapi.json").json()
    assert schema["paths"]["/api/sql"]["post"]["security"] == [{}, {"bearer": []}]


def test_openapi_declares_the_host_guards_403(api: httpx.Client) -> None:
    """A real answer the description did not declare (review)."""
    schema = api.get("/openapi.json").json()
    declared = schema["paths"]["/api/flows"]["get"]["responses"]["403"]
    refused = api.get("/api/flows", headers={"Host": "rebound.example"})
    assert refused.status_code == 403
    assert refused.headers["content-type"].split(";")[0] in declared["content"]


def test_openapi_lists_every_route(api: httpx.Client) -> None:
    paths = set(api.get("/openapi.json").json()["paths"])
    assert {
        "/api/map",
        "/api/map/diagram",
        "/api/flows",
        "/api/flows/{flow_id}",
        "/api/flows/{flow_id}/diagram",
        "/api/traces",
        "/api/traces/{trace_id}",
        "/api/compare",
    } <= paths


def records() -> list[type[model.Record]]:
    return [
        value
        for value in vars(model).values()
        if isinstance(value, type) and issubclass(value, model.Record) and value is not model.Record
    ]


@pytest.mark.parametrize("record", records(), ids=lambda r: r.__name__)
def test_docs_describe_every_field(record: type[model.Record]) -> None:
    """docs/api.md has a section per record with a row for each of its fields."""
    text = DOCS.read_text(encoding="utf-8")
    match = re.search(rf"^### {record.__name__}\n(.*?)(?=^#|\Z)", text, re.M | re.S)
    assert match, f"docs/api.md has no '### {record.__name__}' section"
    documented = set(re.findall(r"^\| `(\w+)` \|", match.group(1), re.M))
    assert documented == field_names(record)


def test_docs_describe_every_route(api: httpx.Client) -> None:
    text = DOCS.read_text(encoding="utf-8")
    for path in api.get("/openapi.json").json()["paths"]:
        if path.startswith("/api/") or path == "/healthz":
            shown = path.replace("{flow_id}", "{id}")
            assert f"`{shown}`" in text, f"docs/api.md does not describe {path}"


def test_compare_windows_given_as_durations_meet_exactly(api: httpx.Client) -> None:
    # Both windows are resolved against one "now": left ends where right begins.
    windows = get(
        api,
        "/api/compare",
        flow=order_flow_id(api),
        left_since="2h",
        left_until="1h",
        right_since="1h",
    )
    left_end = windows["left"].split(" .. ")[1]
    right_start = windows["right"].split(" .. ")[0]
    assert left_end == right_start


def _closed(node: Any) -> Any:
    """A copy of an OpenAPI schema in which objects take no undeclared properties, so a
    field the answer has and the description lacks fails too (but ``Health``, which
    says it may have more)."""
    if isinstance(node, dict):
        closed = {key: _closed(value) for key, value in node.items()}
        if "properties" in closed and "additionalProperties" not in closed:
            closed["additionalProperties"] = False
        return closed
    if isinstance(node, list):
        return [_closed(value) for value in node]
    return node


def test_answers_match_the_openapi_description(api: httpx.Client) -> None:
    """Every 200 answer was described as an object with any properties: generated
    clients and /docs knew no field. Each answer now validates against its route's
    schema, refusals included."""
    import jsonschema

    description = api.get("/openapi.json").json()
    # Fields with a default were optional, though every answer carries them: generated
    # clients took an edge's lag or a step's group for fields that may be missing.
    for name in ("Edge", "Flow", "Step", "StepDelta", "TraceAnswer", "TraceSpan"):
        record = description["components"]["schemas"][name]
        assert set(record["required"]) == set(record["properties"]), name
    # Kinds and statuses were plain strings: generated clients could not name the values.
    schemas = description["components"]["schemas"]
    kinds = ["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer", ""]
    for name, field in (("Step", "kind"), ("TraceSpan", "kind"), ("StepDelta", "kind")):
        assert schemas[name]["properties"][field]["enum"] == kinds, name
    for name in ("TraceSpan", "TraceSummary"):
        assert schemas[name]["properties"]["status"]["enum"] == ["Unset", "Ok", "Error", ""]
    health = schemas["Health"]["properties"]["status"]["enum"]
    assert health == ["ok", "degraded", "stopping", "failed"]
    components = _closed(description["components"])
    orders = order_flow_id(api)
    calls: list[tuple[str, str, dict[str, Any], int]] = [
        ("get", "/api/map", WINDOW, 200),
        ("get", "/api/map", {**WINDOW, "flow": orders}, 200),
        ("get", "/api/flows", WINDOW, 200),
        ("get", "/api/flows", {**WINDOW, "by": "wallet.provider"}, 200),
        ("get", "/api/flows/{flow_id}", WINDOW, 200),
        ("get", "/api/flows/{flow_id}", {**WINDOW, "by": "wallet.provider"}, 200),
        ("get", "/api/traces", WINDOW, 200),
        ("get", "/api/traces/{trace_id}", WINDOW, 200),
        ("get", "/api/compare", {"left": FASTEST_ORDER_TRACE, "right": SLOWEST_ORDER_TRACE}, 200),
        ("get", "/api/compare", {**WINDOW, "trace": SLOWEST_ORDER_TRACE}, 200),
        ("get", "/api/compare", {"flow": orders, "left_since": SINCE, "right_since": SINCE}, 200),
        ("post", "/api/sql", {"sql": "SELECT SpanName, Duration FROM otel_traces"}, 200),
        ("get", "/healthz", {}, 200),
        ("get", "/api/flows", {"since": "banana"}, 400),
        ("get", "/api/flows/{flow_id}", {"flow_id": "no-such-flow"}, 404),
        ("get", "/api/traces/{trace_id}", {"trace_id": "e" * 32}, 404),
        ("post", "/api/sql", {"sql": "DELETE FROM otel_traces"}, 400),
    ]
    for method, route, params, status in calls:
        path = route.format(
            flow_id=params.pop("flow_id", orders) if "{flow_id}" in route else "",
            trace_id=params.pop("trace_id", SLOWEST_ORDER_TRACE) if "{trace_id}" in route else "",
        )
        if method == "post":
            response = api.post(path, json=params)
        else:
            response = api.get(path, params=params)
        assert response.status_code == status, (path, params, response.text)
        declared = description["paths"][route][method]["responses"][str(status)]
        schema = _closed(declared["content"]["application/json"]["schema"])
        jsonschema.validate(response.json(), {**schema, "components": components})
    for route in ("/api/map/diagram", "/api/flows/{flow_id}/diagram"):
        content = description["paths"][route]["get"]["responses"]["200"]["content"]
        assert set(content) == {"text/vnd.mermaid", "text/vnd.graphviz"}
    missing = api.get("/api/flows/no-such-flow/diagram", params=WINDOW)
    assert missing.status_code == 404
    declared = description["paths"]["/api/flows/{flow_id}/diagram"]["get"]["responses"]["404"]
    schema = _closed(declared["content"]["application/json"]["schema"])
    jsonschema.validate(missing.json(), {**schema, "components": components})


def test_head_is_answered_as_get_without_a_body(api: httpx.Client) -> None:
    """Every GET route answered HEAD with 405: `curl -I /healthz` and uptime monitors
    that probe with HEAD saw a running server as a broken one."""
    for path in ("/healthz", "/", "/api/flows", "/api/map/diagram", "/docs", "/openapi.json"):
        head = api.head(path, params=WINDOW if path.startswith("/api/") else None)
        got = api.get(path, params=WINDOW if path.startswith("/api/") else None)
        assert (head.status_code, head.content) == (200, b""), path
        assert head.headers["content-type"] == got.headers["content-type"], path
    missing = api.head("/api/flows/nope", params=WINDOW)
    assert (missing.status_code, missing.content) == (404, b"")
    assert api.head("/api/sql").status_code == 405  # POST only


def test_a_slow_diagram_does_not_hold_other_requests(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Diagrams were drawn in the async handler: a 2,000-deep flow's took minutes, and
    /healthz waited that long (the OTLP ports went on)."""
    import threading

    from flowscope.analyzer.diagrams import formats

    drawing, release = threading.Event(), threading.Event()
    real = formats.FLOW_DIAGRAMS["mermaid-sequence"]

    def slow(detail: Any) -> str:
        drawing.set()
        assert release.wait(120)
        return real(detail)

    monkeypatch.setitem(formats.FLOW_DIAGRAMS, "mermaid-sequence", slow)
    answers: list[httpx.Response] = []
    path = f"/api/flows/{order_flow_id(api)}/diagram"
    thread = threading.Thread(target=lambda: answers.append(api.get(path, params=WINDOW)))
    thread.start()
    try:
        assert drawing.wait(60)
        assert api.get("/healthz", timeout=30).status_code == 200  # while it draws
    finally:
        release.set()
        thread.join(60)
    assert answers[0].status_code == 200 and answers[0].text.startswith("sequenceDiagram")


def test_a_read_the_servers_shutdown_stops_is_a_503(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads in flight when the server stopped were a 500 with a traceback in the log
    (DuckDB's InterruptException), where a stopped SQL query is a 503."""

    import duckdb

    from flowscope.analyzer.analysis import Analysis
    from flowscope.dashboard.app import AppContext, create_app
    from flowscope.store.database import Database

    def interrupted(*_args: Any) -> Any:
        raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")

    monkeypatch.setattr(Analysis, "flows", interrupted)
    database = Database(tmp_path / "stop.duckdb")
    try:
        database.reads_stopped.set()  # as the server's shutdown does
        answer = _get_in_process(create_app(AppContext(database=database)), "/api/flows")
    finally:
        database.close()
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert answer.json() == {"detail": {"message": "the read was stopped: the server is stopping"}}


def test_a_read_out_of_memory_is_a_503_that_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Reads that met DuckDB's memory limit (a derive pass over spans of 8 MB attributes
    beside them, under --memory-limit 1GB) were a 500 with a traceback in the log."""
    import duckdb

    from flowscope.analyzer.analysis import Analysis
    from flowscope.dashboard.app import AppContext, create_app
    from flowscope.store.database import Database

    def out_of_memory(*_args: Any) -> Any:
        raise duckdb.OutOfMemoryException(
            "Out of Memory Error: failed to pin block of size 256.0 KiB (1.0 GiB/953.6 MiB "
            "used)\n\nPossible solutions:\n* Reducing the number of threads"
        )

    monkeypatch.setattr(Analysis, "flows", out_of_memory)
    database = Database(tmp_path / "oom.duckdb")
    try:
        with caplog.at_level(logging.WARNING):
            answer = _get_in_process(create_app(AppContext(database=database)), "/api/flows")
    finally:
        database.close()
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert answer.json() == {
        "detail": {
            "message": "the database ran out of memory for this read (Out of Memory Error: "
            "failed to pin block of size 256.0 KiB (1.0 GiB/953.6 MiB used)); try again "
            "shortly, or start the server with a larger --memory-limit"
        }
    }
    assert "Traceback" not in caplog.text


def test_a_read_of_a_damaged_file_is_named_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A file cut short where the server's start did not read opened, and every read
    that reached a lost block was a bare 500 with a traceback in the log (diff
    review); the CLI said "not a usable DuckDB database"."""

    import duckdb

    from flowscope.analyzer.analysis import Analysis
    from flowscope.dashboard.app import AppContext, create_app
    from flowscope.store.database import Database

    def cut_short(*_args: Any) -> Any:
        raise duckdb.IOException('IO Error: Could not read enough bytes from file "x"')

    monkeypatch.setattr(Analysis, "flows", cut_short)
    path = tmp_path / "cut.duckdb"
    database = Database(path)
    try:
        answer = _get_in_process(create_app(AppContext(database=database)), "/api/flows")
    finally:
        database.close()
    assert answer.status_code == 500
    assert answer.json()["detail"]["message"].startswith(f"{path}: not a usable DuckDB database")
    assert "Traceback" not in caplog.text and "not a usable DuckDB database" in caplog.text


def test_slow_analyses_take_turns_and_leave_healthz_answering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """41 slow trace searches took every worker thread, and /healthz went unanswered for
    minutes (network review): analyses now run MAX_ANALYSES at a time."""
    import asyncio
    import threading

    from flowscope.analyzer.analysis import Analysis
    from flowscope.dashboard import app as app_module
    from flowscope.dashboard.app import AppContext, create_app
    from flowscope.store.database import Database

    release = threading.Event()
    running: list[int] = []

    def slow(*_args: Any, **_kwargs: Any) -> Any:
        running.append(1)
        release.wait(30)
        return []

    monkeypatch.setattr(Analysis, "flows", slow)
    monkeypatch.setattr(app_module, "ANALYSIS_WAIT_S", 1.0)
    database = Database(tmp_path / "busy.duckdb")
    try:
        transport = httpx.ASGITransport(app=create_app(AppContext(database=database)))

        async def crowd() -> tuple[list[httpx.Response], httpx.Response]:
            async with httpx.AsyncClient(
                transport=transport, base_url="http://localhost", timeout=60
            ) as c:
                flows = [asyncio.ensure_future(c.get("/api/flows")) for _ in range(50)]
                await asyncio.sleep(1.5)  # past the wait: the ones without a turn gave up
                health = await c.get("/healthz")
                release.set()
                return list(await asyncio.gather(*flows)), health

        answers, health = asyncio.run(crowd())
    finally:
        release.set()
        database.close()
    assert health.status_code == 200
    assert len(running) == app_module.MAX_ANALYSES
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * app_module.MAX_ANALYSES + [503] * (50 - app_module.MAX_ANALYSES)
    refused = next(a for a in answers if a.status_code == 503)
    assert "8 analyses are running, the server's limit" in refused.json()["detail"]["message"]


def test_a_request_whose_client_left_while_waiting_does_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Abandoned requests kept their place and ran when their turn came, and live ones
    got 503 behind them (diff review)."""

    from flowscope.analyzer.analysis import Analysis
    from flowscope.dashboard.app import AppContext, create_app
    from flowscope.http_server import CLIENT_GONE
    from flowscope.store.database import Database

    ran: list[int] = []
    monkeypatch.setattr(Analysis, "flows", lambda *_a, **_k: ran.append(1) or [])
    database = Database(tmp_path / "gone.duckdb")
    try:
        app = create_app(AppContext(database=database))

        async def gone_client(scope: Any, receive: Any, send: Any) -> None:
            scope = {
                **scope,
                "extensions": {**scope.get("extensions", {}), CLIENT_GONE: lambda: True},
            }
            await app(scope, receive, send)

        answer = _get_in_process(gone_client, "/api/flows")
    finally:
        database.close()
    assert answer.status_code == 499 and ran == []


def _get_in_process(app: Any, path: str) -> httpx.Response:
    """GET ``path`` from an ASGI app run in this process."""
    import asyncio

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            return await c.get(path)

    return asyncio.run(get())


def test_an_analysis_whose_client_leaves_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that gave up (Ctrl-C, its timeout) left its analysis running to the end,
    holding one of the server's turns. It is interrupted now, also when the client
    leaves between two of its queries (an interrupt while none runs does nothing)."""
    import time

    from flowscope.analyzer.analysis import Analysis
    from flowscope.dashboard.app import AppContext, create_app
    from flowscope.http_server import CLIENT_GONE
    from flowscope.store.database import Database

    started: list[float] = []

    def long_analysis(self: Analysis, *_a: Any, **_k: Any) -> list[Any]:
        started.append(time.monotonic())
        time.sleep(0.6)  # the client leaves now, while no query runs
        # ~45 s of work on this machine unless stopped
        sql = "SELECT count(*) FROM range(10000000000) t(i) WHERE hash(i) % 7 = 0"
        self.database.reader().execute(sql).fetchall()
        return []

    monkeypatch.setattr(Analysis, "flows", long_analysis)
    database = Database(tmp_path / "left.duckdb")
    try:
        app = create_app(AppContext(database=database))

        def gone() -> bool:
            return bool(started) and time.monotonic() - started[0] > 0.3

        async def leaving_client(scope: Any, receive: Any, send: Any) -> None:
            scope = {**scope, "extensions": {**scope.get("extensions", {}), CLIENT_GONE: gone}}
            await app(scope, receive, send)

        answer = _get_in_process(leaving_client, "/api/flows")
        took = time.monotonic() - started[0]
        # The thread's cursor reads again afterwards.
        assert database.reader().execute("SELECT 42").fetchall() == [(42,)]
    finally:
        database.close()
    assert answer.status_code == 499, answer.text
    assert "its analysis was stopped" in answer.json()["detail"]["message"]
    assert took < 10
