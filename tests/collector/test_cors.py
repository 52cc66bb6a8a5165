"""A web page's OTLP exporter: the browser asks first (a CORS preflight), then sends
with its Origin. Without --cors-origin neither gets through, as in the Collector."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from flowscope.collector.otlp_json import request_to_json
from flowscope.server import ServeConfig
from flowscope.testing.otlp import realistic_request
from flowscope.testing.server import server_in_process, start_server_process

PAGE = "http://shop.test:3000"
PREFLIGHT = {
    "Origin": PAGE,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type,authorization",
}


def test_an_allowed_page_passes_the_preflight_and_its_spans_are_stored(tmp_path: Path) -> None:
    request = realistic_request(3, seed=7)
    spans = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
    body = request_to_json(request)
    # Written with capitals: the browser sends it in lower case.
    given = PAGE.replace("shop", "Shop")
    with server_in_process(tmp_path / "a.duckdb", cors_origins=(given,)) as (server, ep):
        asked = httpx.options(f"{ep.http}/v1/traces", headers=PREFLIGHT)
        assert asked.status_code == 200, asked.text
        assert asked.headers["access-control-allow-origin"] == PAGE
        assert "POST" in asked.headers["access-control-allow-methods"]
        allowed = asked.headers["access-control-allow-headers"].lower()
        assert "content-type" in allowed and "authorization" in allowed
        sent = httpx.post(
            f"{ep.http}/v1/traces",
            content=body,
            headers={"Content-Type": "application/json", "Origin": PAGE},
        )
        assert sent.status_code == 200 and sent.headers["access-control-allow-origin"] == PAGE
        server.database.await_writes()
        stored = server.database.reader().execute("SELECT count(*) FROM otel_traces").fetchone()
        assert stored == (spans,)
        other = dict(PREFLIGHT, Origin="http://evil.test")
        refused = httpx.options(f"{ep.http}/v1/traces", headers=other)
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers


def test_without_cors_origins_a_page_gets_no_cors_answer(tmp_path: Path) -> None:
    with server_in_process(tmp_path / "a.duckdb") as (_server, ep):
        asked = httpx.options(f"{ep.http}/v1/traces", headers=PREFLIGHT)
        assert asked.status_code == 405
        assert "access-control-allow-origin" not in asked.headers


def test_any_origin_through_the_ingest_process(tmp_path: Path) -> None:
    server = start_server_process(tmp_path / "a.duckdb", "--cors-origin", "*")
    try:
        asked = httpx.options(f"{server.endpoints.http}/v1/traces", headers=PREFLIGHT)
        assert asked.status_code == 200
        assert asked.headers["access-control-allow-origin"] in ("*", PAGE)
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize(
    "origin",
    [
        "https://shop.example.com/",
        "shop.example.com",
        "https://a.com/path",
        "",
        "https://a.com,b.com",
    ],
)
def test_an_origin_a_browser_never_sends_is_refused(origin: str) -> None:
    with pytest.raises(ValueError, match="is not an origin: give scheme://host"):
        ServeConfig(cors_origins=(origin,)).validate()
    for fine in ("https://shop.example.com", "http://localhost:3000", "http://[::1]:8080", "*"):
        ServeConfig(cors_origins=(fine,)).validate()
