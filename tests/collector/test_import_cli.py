"""``flowscope import`` end to end: a real process, real files of every format, a real server."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from flowscope.cli import main
from flowscope.store.database import Database
from flowscope.testing.otlp import realistic_request
from flowscope.testing.server import start_server_process

DATA = Path(__file__).parent / "data"
TOKEN = "import-token"


def _otlp_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """OTLP JSON as exporters and the Collector write it: hex ids, lowerCamelCase."""
    document: dict[str, Any] = json_format.MessageToDict(request)
    for rs in document["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for name in ("traceId", "spanId", "parentSpanId"):
                    if name in span:
                        span[name] = base64.b64decode(span[name]).hex()
    return document


@pytest.fixture
def files(tmp_path: Path) -> dict[str, tuple[Path, str, int]]:
    """One file per format: (path, format flowscope reports, spans in it)."""
    folder = tmp_path / "in"
    folder.mkdir()
    single = folder / "request.json"
    single.write_text(json.dumps(_otlp_json(realistic_request(3, seed=11))), encoding="utf-8")
    lines = folder / "collector-file-exporter.json"
    with lines.open("w", encoding="utf-8") as out:
        for seed in (12, 13, 14):  # the Collector's file exporter: one request per line
            out.write(
                json.dumps(_otlp_json(realistic_request(2, seed=seed)), separators=(",", ":"))
            )
            out.write("\n")
    binary = folder / "export.pb"
    binary.write_bytes(realistic_request(4, seed=15).SerializeToString())
    jaeger = folder / "jaeger.json"
    shutil.copy(DATA / "jaeger_ui_trace.json", jaeger)
    zipkin = folder / "zipkin.json"
    shutil.copy(DATA / "zipkin_v2_spans.json", zipkin)
    return {
        "otlp-json": (single, "otlp-json", 24),
        "otlp-jsonl": (lines, "otlp-jsonl", 48),
        "otlp-protobuf": (binary, "otlp-protobuf", 32),
        "jaeger-json": (jaeger, "jaeger-json", 3),
        "zipkin-json": (zipkin, "zipkin-json", 4),
    }


def _flowscope(*args: str, token: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FLOWSCOPE_DB", "FLOWSCOPE_TOKEN")}
    if token:
        env["FLOWSCOPE_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "flowscope.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _stored(db: Path) -> int:
    database = Database(db, read_only=True)
    try:
        return database.span_count()
    finally:
        database.close()


def test_every_format_then_again_then_forced(
    tmp_path: Path, files: dict[str, tuple[Path, str, int]]
) -> None:
    db = tmp_path / "imported.duckdb"
    paths = [str(path) for path, _, _ in files.values()]
    total = sum(spans for _, _, spans in files.values())

    first = _flowscope("import", *paths, "--db", str(db), "--no-progress")
    assert first.returncode == 0, first.stderr
    for path, fmt, spans in files.values():
        line = f"{path}: {fmt}, {spans} spans, {spans} new, 0 duplicates, 0 rejected"
        assert line in first.stdout.splitlines()
    assert f"imported {total} new spans from 5 of 5 files in " in first.stdout
    assert _stored(db) == total == 111
    database = Database(db, read_only=True)
    try:
        services = dict(
            database.reader()
            .execute("SELECT ServiceName, count(*) FROM otel_traces GROUP BY ALL")
            .fetchall()
        )
    finally:
        database.close()
    # Jaeger's frontend (2 spans) and customer, Zipkin's frontend and backend (2 each).
    assert {name: services.pop(name) for name in ("frontend", "customer", "backend")} == {
        "frontend": 4,
        "customer": 1,
        "backend": 2,
    }
    assert sum(services.values()) == 24 + 48 + 32  # the OTLP files' services

    again = _flowscope("import", *paths, "--db", str(db), "--no-progress")
    assert again.returncode == 0, again.stderr
    for path, _, spans in files.values():
        assert f"{path}: already imported ({spans} spans from {path} at " in again.stderr
    assert again.stderr.count("use --force to read it again") == 5
    assert "imported 0 new spans from 5 of 5 files" in again.stdout
    assert _stored(db) == total

    forced = _flowscope("import", *paths, "--db", str(db), "--force", "--no-progress")
    assert forced.returncode == 0, forced.stderr
    for path, fmt, spans in files.values():
        line = f"{path}: {fmt}, {spans} spans, 0 new, {spans} duplicates, 0 rejected"
        assert line in forced.stdout.splitlines()
    assert "imported 0 new spans from 5 of 5 files" in forced.stdout
    assert _stored(db) == total


def test_unreadable_files_fail_the_run_but_not_the_other_files(
    tmp_path: Path, files: dict[str, tuple[Path, str, int]]
) -> None:
    db = tmp_path / "partly.duckdb"
    unknown = tmp_path / "in" / "metrics.json"
    unknown.write_text('{"resourceMetrics": [{"scopeMetrics": []}]}', encoding="utf-8")
    corrupt = tmp_path / "in" / "cut.pb"
    corrupt.write_bytes(realistic_request(2).SerializeToString()[:-7])
    good, _, spans = files["otlp-protobuf"]

    result = _flowscope(
        "import", str(unknown), str(good), str(corrupt), "--db", str(db), "--no-progress"
    )
    assert result.returncode == 1
    assert f"{unknown}: cannot import: " in result.stderr
    assert f"{corrupt}: cannot import: invalid OTLP protobuf" in result.stderr
    assert f"{good}: otlp-protobuf, {spans} spans, {spans} new" in result.stdout
    assert f"imported {spans} new spans from 1 of 3 files" in result.stdout
    assert _stored(db) == spans


def test_missing_file_exits_non_zero_naming_it(tmp_path: Path) -> None:
    db = tmp_path / "untouched.duckdb"
    missing = tmp_path / "nowhere.json"
    result = CliRunner().invoke(main, ["import", str(missing), "--db", str(db)])
    assert result.exit_code == 1
    assert f"flowscope: no such file: {missing}" in result.output
    assert not db.exists()
    # And as a real process, the same.
    process = _flowscope("import", str(missing), "--db", str(db))
    assert process.returncode == 1
    assert f"flowscope: no such file: {missing}" in process.stderr


def test_import_into_a_database_held_by_a_server_goes_through_it(
    tmp_path: Path, files: dict[str, tuple[Path, str, int]]
) -> None:
    db = tmp_path / "served.duckdb"
    server = start_server_process(db, "--decode-workers", "0", env={"FLOWSCOPE_TOKEN": TOKEN})
    try:
        single, _, single_spans = files["otlp-json"]
        jaeger, _, jaeger_spans = files["jaeger-json"]
        result = _flowscope("import", str(single), str(jaeger), "--db", str(db), token=TOKEN)
        assert result.returncode == 0, result.stderr
        assert f"{db} is held by a running server; sending to {server.endpoints.http}" in (
            result.stderr
        )
        assert f"{single}: otlp-json, {single_spans} spans" in result.stdout
        health = httpx.get(f"{server.endpoints.ui}/healthz", timeout=30).json()
        assert health["spans"] == single_spans + jaeger_spans

        # Again through the server: its dedup window keeps the count.
        result = _flowscope("import", str(single), "--db", str(db), token=TOKEN)
        assert result.returncode == 0, result.stderr
        health = httpx.get(f"{server.endpoints.ui}/healthz", timeout=30).json()
        assert health["spans"] == single_spans + jaeger_spans
        assert health["writer"]["duplicate_spans"] == single_spans

        # Without the server's token the server refuses, and the run says so.
        refused = _flowscope("import", str(single), "--db", str(db))
        assert refused.returncode == 1
        assert f"{single}: cannot import: server answered 401" in refused.stderr
    finally:
        assert server.stop() == 0
    assert _stored(db) == single_spans + jaeger_spans
