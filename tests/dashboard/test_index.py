"""The address `serve` and `demo` print answers with where to go, not 404."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from flowscope.testing.server import server_in_process


def test_root_lists_the_api_and_every_link_answers(tmp_path: Path) -> None:
    with server_in_process(tmp_path / "spans.duckdb", decode_workers=0) as (_server, endpoints):
        index = httpx.get(f"{endpoints.ui}/")
        assert index.status_code == 200
        body = index.json()
        assert "not built yet" in body["pages"]
        links = [v for k, v in body.items() if k not in ("flowscope", "pages", "sql")]
        for link in links:
            assert link.startswith(endpoints.ui)
            assert httpx.get(link).status_code == 200, link


def test_api_docs_page_needs_nothing_from_the_internet(tmp_path: Path) -> None:
    """FastAPI's own /docs loads Swagger UI from a CDN: blank on a machine offline."""
    with server_in_process(
        tmp_path / "spans.duckdb", decode_workers=0, token="s3cret", ingest_process=False
    ) as (_server, endpoints):
        page = httpx.get(f"{endpoints.ui}/docs")  # no token needed: not /api
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        html = page.text
        links = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        assert links and all(link.startswith("/static/") for link in links), links
        assert "'/openapi.json'" in html or '"/openapi.json"' in html
        assert "https://" not in html and "validatorUrl" in html
        for link in links:
            asset = httpx.get(endpoints.ui + link)
            assert asset.status_code == 200 and len(asset.content) > 500, link
        bundle = httpx.get(f"{endpoints.ui}/static/swagger-ui/swagger-ui-bundle.js")
        assert "javascript" in bundle.headers["content-type"]
        assert httpx.get(f"{endpoints.ui}/redoc").status_code == 404


def test_otlp_sent_to_the_api_port_is_told_the_otlp_port(tmp_path: Path) -> None:
    """The API port answered a bare "Not Found" to spans posted there."""
    with server_in_process(tmp_path / "spans.duckdb", decode_workers=0) as (_server, endpoints):
        for method in ("POST", "GET"):
            answer = httpx.request(
                method,
                f"{endpoints.ui}/v1/traces",
                content=b"",
                headers={"Content-Type": "application/x-protobuf"},
            )
            assert answer.status_code == 404
            assert answer.json()["detail"] == (
                f"this is flowscope's API port: send OTLP/HTTP to {endpoints.http}/v1/traces"
            )
        assert "/v1/traces" not in httpx.get(f"{endpoints.ui}/openapi.json").text
