"""The OpenTelemetry JavaScript SDK's three trace exporters (OTLP/HTTP JSON, OTLP/HTTP
protobuf, OTLP/gRPC) send to a live server: every span is stored, and the same spans
are stored the same whichever exporter sent them, including the JSON exporter's
quirks (whole numbers past int64 as intValue, strings cut inside a surrogate pair).

Missing node or the SDK FAILS the test (`npm ci --prefix tests/collector/js_sdk`;
make test does it)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowscope.server import FlowscopeServer
from flowscope.testing.server import Endpoints, server_in_process

SDK_DIR = Path(__file__).resolve().parent / "js_sdk"
KINDS = ("json", "proto", "grpc")
# What differs between the runs by design: ids, times, the service named per run, and
# the commit that stored them.
PER_RUN = {"TraceId", "SpanId", "ParentSpanId", "Timestamp", "Duration", "ServiceName", "CommitSeq"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FlowscopeServer, Endpoints]]:
    path = tmp_path_factory.mktemp("js") / "js.duckdb"
    with server_in_process(path, decode_workers=0) as running:
        yield running


def _send(kind: str, endpoints: Endpoints) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: these checks need it (apt-get install nodejs npm)")
    if not (SDK_DIR / "node_modules" / "@opentelemetry" / "sdk-trace-base").is_dir():
        pytest.fail(
            f"the JS SDK is not installed: run `npm ci --prefix {SDK_DIR}` (make test does)"
        )
    url = endpoints.grpc if kind == "grpc" else endpoints.http.removesuffix("/v1/traces")
    done = subprocess.run(
        [node, str(SDK_DIR / "send.js"), kind, url, f"js-{kind}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _rows(server: FlowscopeServer, kind: str) -> dict[str, dict[str, Any]]:
    assert server.database is not None
    server.database.await_writes()
    cursor = server.database.reader().execute(
        "SELECT * FROM otel_traces WHERE ServiceName = ? ORDER BY SpanName", [f"js-{kind}"]
    )
    names = [d[0] for d in cursor.description]
    return {
        row[names.index("SpanName")]: dict(zip(names, row, strict=True))
        for row in cursor.fetchall()
    }


@pytest.fixture(scope="module")
def stored(live: tuple[FlowscopeServer, Endpoints]) -> dict[str, dict[str, dict[str, Any]]]:
    server, endpoints = live
    for kind in KINDS:
        _send(kind, endpoints)
    return {kind: _rows(server, kind) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_every_field_the_sdk_sends_is_stored(
    stored: dict[str, dict[str, dict[str, Any]]], kind: str
) -> None:
    rows = stored[kind]
    assert sorted(rows) == ["GET /js", "charge"]
    root, call = rows["GET /js"], rows["charge"]
    assert (root["SpanKind"], root["StatusCode"], root["StatusMessage"]) == (
        "Server",
        "Error",
        "boom",
    )
    assert root["ParentSpanId"] == "" and call["ParentSpanId"] == root["SpanId"]
    assert call["TraceId"] == root["TraceId"] and call["SpanKind"] == "Client"
    assert (root["ScopeName"], root["ScopeVersion"]) == ("flowscope-js-test", "1.2.3")
    assert root["ResourceAttributes"]["deployment.environment.name"] == "test"
    attributes = root["SpanAttributes"]
    assert {k: attributes[k] for k in ("text", "flag", "count", "ratio", "huge", "cut")} == {
        "text": "héllo 🙂 漢字",
        "flag": "true",
        "count": "42",
        "ratio": "1.5",
        "huge": "1e+21",  # the double it is; the JSON exporter's intValue was a 400
        "cut": "ab\ufffd",  # half a surrogate pair: the replacement character
    }
    assert attributes["names"] == '["a","b"]' and attributes["sizes"] == "[1,2,3]"
    assert [(e["Name"], e["Attributes"]) for e in root["Events"]] == [("retry", {"attempt": "2"})]
    assert [(lk["TraceId"], lk["SpanId"], lk["Attributes"]) for lk in call["Links"]] == [
        (root["TraceId"], root["SpanId"], {"why": "retry"})
    ]
    assert call["SpanAttributes"]["peer.service"] == "payments"
    assert root["Duration"] >= call["Duration"] >= 0


def test_the_three_exporters_store_the_same_spans(
    stored: dict[str, dict[str, dict[str, Any]]],
) -> None:
    def comparable(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        kept = {}
        for name, row in rows.items():
            same = {k: v for k, v in row.items() if k not in PER_RUN}
            same["ResourceAttributes"] = {
                k: v for k, v in row["ResourceAttributes"].items() if k != "service.name"
            }
            same["Events"] = [{**e, "Timestamp": None} for e in row["Events"]]
            same["Links"] = [{**lk, "TraceId": None, "SpanId": None} for lk in row["Links"]]
            kept[name] = same
        return kept

    json_rows = comparable(stored["json"])
    assert comparable(stored["proto"]) == json_rows
    assert comparable(stored["grpc"]) == json_rows
