"""An OTLP/JSON request may hold at most MAX_JSON_CONTAINERS objects and arrays."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flowscope.collector.json_budget import MAX_JSON_CONTAINERS, json_containers
from flowscope.server import FlowscopeServer
from flowscope.testing.server import Endpoints, server_in_process

JS = {"Content-Type": "application/json"}


def _request(attributes: str, name: str) -> bytes:
    return (
        '{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":'
        '{"stringValue":"budget"}}]},"scopeSpans":[{"spans":[{"traceId":'
        '"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"' + name + '",'
        '"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000001000000",'
        '"attributes":[' + attributes + "]}]}]}]}"
    ).encode()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FlowscopeServer, Endpoints]]:
    path: Path = tmp_path_factory.mktemp("budget") / "budget.duckdb"
    with server_in_process(path) as running:
        yield running


def test_braces_inside_strings_are_not_counted() -> None:
    crowded = json.dumps(
        {"s": '"' + "{" * MAX_JSON_CONTAINERS, "t": [{}, []], "u": 'x\\"[{', "v": "]"}
    ).encode()
    assert crowded.count(b"{") + crowded.count(b"[") > MAX_JSON_CONTAINERS
    assert json_containers(crowded) == 4


def test_a_request_of_too_many_containers_is_refused_before_it_is_parsed(
    live: tuple[FlowscopeServer, Endpoints],
) -> None:
    server, endpoints = live
    assert server.database is not None
    before = server.database.span_count()
    # Empty attributes: three bytes of text each, hundreds of bytes each once parsed.
    body = _request(",".join(["{}"] * MAX_JSON_CONTAINERS), "too-many")
    assert json_containers(body) > MAX_JSON_CONTAINERS
    response = httpx.post(f"{endpoints.http}/v1/traces", content=body, headers=JS, timeout=60)
    assert response.status_code == 413, response.text
    assert f"more than the {MAX_JSON_CONTAINERS:,} a request may" in response.json()["message"]
    assert server.database.span_count() == before
    health = httpx.get(f"{endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60).json()
    assert health["status"] == "ok"


def test_braces_in_attribute_values_do_not_count_against_it(
    live: tuple[FlowscopeServer, Endpoints],
) -> None:
    server, endpoints = live
    document = "{" * (MAX_JSON_CONTAINERS + 10)
    value = json.dumps({"key": "captured.document", "value": {"stringValue": document}})
    response = httpx.post(
        f"{endpoints.http}/v1/traces", content=_request(value, "braces"), headers=JS, timeout=60
    )
    assert response.status_code == 200, response.text
    assert server.database is not None
    server.database.await_writes()
    (stored,) = server.database.reader().execute(
        "SELECT SpanAttributes['captured.document'] FROM otel_traces WHERE SpanName = 'braces'"
    ).fetchone() or ("",)
    assert stored == document
