"""``flowscope import`` end to end: a real process, real files of every format, a real server."""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from flowscope.cli import main
from flowscope.collector.file_import import OTLP_JSON, SNIFF_BYTES, read_requests
from flowscope.collector.otlp_json import request_to_json
from flowscope.store.database import Database
from flowscope.testing.otlp import realistic_request
from flowscope.testing.server import ServerProcess, start_server_process
from tests.ctrl_c import cli_with_ctrl_c

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
        assert f"{path}: already imported ({spans} spans read from {path} at " in again.stderr
    # When, in UTC (DuckDB's zone in flowscope): said so, not left for the reader to guess.
    assert re.search(r"at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\); use --force", again.stderr)
    assert again.stderr.count("use --force to read it again") == 5
    assert again.stdout.startswith("imported 0 new spans from 0 of 5 files in ")
    assert again.stdout.rstrip().endswith(
        "; 5 already imported, skipped (--force reads them again)"
    )
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


def test_missing_files_and_folders_do_not_stop_the_others(
    tmp_path: Path, files: dict[str, tuple[Path, str, int]]
) -> None:
    db = tmp_path / "partly.duckdb"
    good, _, spans = files["otlp-protobuf"]
    missing = tmp_path / "nowhere.json"
    folder = tmp_path / "in"
    result = _flowscope(
        "import", str(missing), str(good), str(folder), "--db", str(db), "--no-progress"
    )
    assert result.returncode == 1
    errors = result.stderr.splitlines()
    assert f"{missing}: cannot import: no such file" in errors
    assert (
        f"{folder}: cannot import: is a directory; name the files in it (e.g. {folder / '*'})"
        in errors
    )
    assert f"{good}: otlp-protobuf, {spans} spans, {spans} new" in result.stdout
    summary = result.stdout.splitlines()[-1]
    assert summary.startswith(f"imported {spans} new spans from 1 of 3 files in ")
    assert summary.endswith("s; 2 failed")
    assert _stored(db) == spans


def test_only_missing_files_create_no_database(tmp_path: Path) -> None:
    db = tmp_path / "untouched.duckdb"
    missing = tmp_path / "nowhere.json"
    result = CliRunner().invoke(main, ["import", str(missing), "--db", str(db)])
    assert result.exit_code == 1
    assert f"{missing}: cannot import: no such file" in result.output
    assert not db.exists()
    # And as a real process, the same.
    process = _flowscope("import", str(missing), "--db", str(db))
    assert process.returncode == 1
    assert f"{missing}: cannot import: no such file" in process.stderr
    assert "imported 0 new spans from 0 of 1 files in " in process.stdout
    assert not db.exists()


def test_text_and_empty_files_are_named_for_what_they_are(tmp_path: Path) -> None:
    db = tmp_path / "nothing.duckdb"
    notes = tmp_path / "NOTES.md"
    notes.write_text("# Notes\n\nNothing here is a trace.\n", encoding="utf-8")
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    result = _flowscope("import", str(notes), str(empty), "--db", str(db), "--no-progress")
    assert result.returncode == 1
    assert (
        f"{notes}: cannot import: not a recognised trace format: text, neither JSON nor "
        "protobuf (it starts '# Notes'); flowscope imports OTLP protobuf "
        "(ExportTraceServiceRequest), OTLP JSON, OTLP JSON lines, Jaeger JSON (and "
        "Jaeger's API v3 answers), Grafana Tempo's trace JSON and Zipkin v2 JSON"
    ) in result.stderr.splitlines()
    assert "Wire format" not in result.stderr
    assert f"{empty}: empty file, nothing to import" in result.stdout.splitlines()
    assert "otlp-protobuf" not in result.stdout
    assert "imported 0 new spans from 0 of 2 files in " in result.stdout
    assert result.stdout.rstrip().endswith("s; 1 empty; 1 failed")


def test_json_lines_longer_than_the_sniffed_head(tmp_path: Path) -> None:
    # As ``reference-app --otlp-file`` and the Collector's file exporter write them: a
    # whole batch per line, here about 88 KB each.
    path = tmp_path / "spans.jsonl"
    lines = [
        json.dumps(_otlp_json(realistic_request(20, seed=seed)), separators=(",", ":"))
        for seed in (21, 22, 23)
    ]
    assert all(len(line) > SNIFF_BYTES for line in lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    db = tmp_path / "long-lines.duckdb"
    result = _flowscope("import", str(path), "--db", str(db), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert f"{path}: otlp-jsonl, 480 spans, 480 new, 0 duplicates, 0 rejected" in result.stdout
    assert _stored(db) == 480


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
        health = httpx.get(
            f"{server.endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60
        ).json()
        assert health["spans"] == single_spans + jaeger_spans

        # Again through the server: its dedup window keeps the count.
        result = _flowscope("import", str(single), "--db", str(db), token=TOKEN)
        assert result.returncode == 0, result.stderr
        health = httpx.get(
            f"{server.endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60
        ).json()
        assert health["spans"] == single_spans + jaeger_spans
        assert health["writer"]["duplicate_spans"] == single_spans

        # Without the server's token the server refuses, and the run says so.
        refused = _flowscope("import", str(single), "--db", str(db))
        assert refused.returncode == 1
        assert f"{single}: cannot import: server refused: 401 " in refused.stderr
    finally:
        assert server.stop() == 0
    assert _stored(db) == single_spans + jaeger_spans


# --- through a server given by --server ------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("served") / "served.duckdb"
    server = start_server_process(db, "--decode-workers", "0", env={"FLOWSCOPE_TOKEN": TOKEN})
    yield server
    assert server.stop() == 0


def _health(server: ServerProcess) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(
        f"{server.endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60
    ).json()
    return answer


def test_through_a_server_spans_are_sent_and_accepted_not_claimed_new(
    tmp_path: Path, served: ServerProcess
) -> None:
    path = tmp_path / "twice.pb"
    path.write_bytes(realistic_request(4, seed=41).SerializeToString())
    url = served.endpoints.http
    before = _health(served)
    for _ in range(2):
        result = _flowscope("import", "--server", url, str(path), "--no-progress", token=TOKEN)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0] == (
            f"{path}: otlp-protobuf, 32 spans sent, 32 accepted, 0 rejected"
        )
        assert result.stdout.splitlines()[1].startswith(f"sent 32 spans from 1 of 1 files to {url}")
        assert result.stdout.rstrip().endswith(
            ": 32 accepted, 0 rejected; the server stores only those it does not already have"
        )
        assert " new" not in result.stdout
        # The spans started in January, before the server's --retention 7d: it says
        # so in its answers, and the import passes that on (it said nothing before).
        assert result.stderr.splitlines()[-1] == (
            "  server warns: 32 of 32 spans started more than 7d ago, before this server's "
            "retention (--retention 7d): they are stored, then deleted at its next sweep "
            "(serve with --retention off to keep them)"
        )
    after = _health(served)
    # The second time the server dropped every span: stored once, counted as duplicates once.
    assert after["spans"] - before["spans"] == 32
    assert after["writer"]["duplicate_spans"] - before["writer"]["duplicate_spans"] == 32

    # Spans the server rejects (its partial_success) are reported with its reason.
    request = realistic_request(1, seed=42)
    request.resource_spans[0].scope_spans[0].spans[0].trace_id = b""
    invalid = tmp_path / "invalid.pb"
    invalid.write_bytes(request.SerializeToString())
    result = _flowscope("import", "--server", url, str(invalid), "--no-progress", token=TOKEN)
    assert result.returncode == 0, result.stderr
    assert f"{invalid}: otlp-protobuf, 8 spans sent, 7 accepted, 1 rejected" in result.stdout
    assert ": 7 accepted, 1 rejected;" in result.stdout
    assert "  rejected: 1 span(s) rejected: span " in result.stderr
    assert "trace_id has 0 bytes, expected 16" in result.stderr
    # The URL as exporters take it, with /v1/traces, works too.
    result = _flowscope(
        "import", "--server", f"{url}/v1/traces/", str(path), "--no-progress", token=TOKEN
    )
    assert result.returncode == 0, result.stderr
    assert f"sent 32 spans from 1 of 1 files to {url} in " in result.stdout


def test_server_refusals_are_decoded_with_a_hint(tmp_path: Path, served: ServerProcess) -> None:
    path = tmp_path / "refused.pb"
    path.write_bytes(realistic_request(1, seed=43).SerializeToString())
    url_hint = (
        "--server wants the OTLP/HTTP base URL of flowscope serve, e.g. http://localhost:4318, "
        "not its API or gRPC port"
    )
    cases = [
        (
            (served.endpoints.http, ""),
            "server refused: 401 missing or wrong bearer token (give --token or FLOWSCOPE_TOKEN)",
        ),
        (
            (served.endpoints.http, "not-the-token"),
            "server refused: 401 missing or wrong bearer token "
            "(the --token / FLOWSCOPE_TOKEN given is not the server's)",
        ),
        (
            (served.endpoints.ui, TOKEN),
            "server refused: 404 this is flowscope's API port: send OTLP/HTTP to "
            f"{served.endpoints.http}/v1/traces ({url_hint})",
        ),
        (
            (f"http://{served.endpoints.grpc}", TOKEN),
            f"no HTTP answer from http://{served.endpoints.grpc} (BadStatusLine); {url_hint}",
        ),
    ]
    for (url, token), said in cases:
        result = _flowscope("import", "--server", url, str(path), "--no-progress", token=token)
        assert result.returncode == 1
        assert f"{path}: cannot import: {said}" in result.stderr.splitlines(), result.stderr
        assert "b'" not in result.stderr
        assert "Traceback" not in result.stderr


def test_error_bodies_in_both_otlp_encodings() -> None:
    from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]

    from flowscope.collector.importer import _error_message

    binary = Status(code=16, message="missing or wrong bearer token").SerializeToString()
    assert _error_message(binary, "application/x-protobuf", "Unauthorized") == (
        "missing or wrong bearer token"
    )
    text = b'{"code": 3, "message": "request body exceeds the limit"}'
    assert _error_message(text, "application/json", "Bad Request") == (
        "request body exceeds the limit"
    )
    assert _error_message(b"<html>502</html>", "text/html", "Bad Gateway") == "Bad Gateway"
    assert _error_message(b"\xff", "application/x-protobuf", "Teapot") == "Teapot"


def test_a_server_that_stops_answering_midway_gets_no_url_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The URL was right (spans went there): saying it is the wrong port misleads."""
    from flowscope.collector import importer

    path = tmp_path / "two.jsonl"
    path.write_bytes(
        b"".join(request_to_json(realistic_request(1, seed=seed)) + b"\n" for seed in (1, 2))
    )
    answers = iter([(0, "")])

    def post(
        base: str, body: bytes, token: str | None, token_problem: str | None = None
    ) -> tuple[int, str]:
        try:
            return next(answers)
        except StopIteration:
            raise importer.SendFailed(f"cannot reach {base}: refused", wrong_url=True) from None

    monkeypatch.setattr(importer, "_post", post)
    (report,) = importer.import_into_server([path], "http://127.0.0.1:9")
    assert report.error == "cannot reach http://127.0.0.1:9: refused (after 8 spans were sent)"
    answers = iter([])
    (first,) = importer.import_into_server([path], "http://127.0.0.1:9")
    assert first.error.startswith("cannot reach http://127.0.0.1:9: refused; --server wants")


def _big_jaeger(path: Path, traces: int, spans_per_trace: int, pad: int) -> int:
    """A Jaeger UI file of ``traces`` x ``spans_per_trace`` spans, each with a ``pad``-
    byte tag; the spans in it."""
    data = []
    for t in range(traces):
        trace_id = f"{t + 1:032x}"
        spans = [
            {
                "traceID": trace_id,
                "spanID": f"{t * spans_per_trace + s + 1:016x}",
                "operationName": "GET /big",
                "references": (
                    [
                        {
                            "refType": "CHILD_OF",
                            "traceID": trace_id,
                            "spanID": f"{t * spans_per_trace + 1:016x}",
                        }
                    ]
                    if s
                    else []
                ),
                "startTime": 1_767_225_600_000_000 + t * 1000 + s,
                "duration": 100,
                "tags": [{"key": "pad", "type": "string", "value": "x" * pad}],
                "logs": [],
                "processID": "p1",
            }
            for s in range(spans_per_trace)
        ]
        data.append(
            {"traceID": trace_id, "spans": spans, "processes": {"p1": {"serviceName": "big"}}}
        )
    path.write_text(json.dumps({"data": data}), encoding="utf-8")
    return traces * spans_per_trace


def test_a_file_larger_than_the_servers_request_limit_goes_in_pieces(tmp_path: Path) -> None:
    """Before, a Jaeger or Zipkin file was one request: over the server's limit it was
    cut off (a broken pipe) and the message blamed the URL."""
    path = tmp_path / "big-jaeger.json"
    spans = _big_jaeger(path, traces=300, spans_per_trace=10, pad=3000)  # ~9.5 MB as OTLP
    server = start_server_process(tmp_path / "limited.duckdb", "--max-request-bytes", "6000000")
    try:
        url = server.endpoints.http
        result = _flowscope("import", "--server", url, str(path), "--no-progress")
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{path}: jaeger-json, {spans} spans sent, {spans} accepted, 0 rejected" in (
            result.stdout
        )
        assert _health(server)["spans"] == spans
    finally:
        assert server.stop() == 0


def test_an_import_waits_out_a_full_writer_queue(tmp_path: Path) -> None:
    """The import failed at the server's first "retry later" (503): 92 of 150 spans of
    4 MB attributes were sent. Here the queue holds one request at most, so the next
    one sent before it is committed is refused for a moment."""
    path = tmp_path / "big-jaeger.json"
    spans = _big_jaeger(path, traces=300, spans_per_trace=10, pad=3000)  # ~9.5 MB as OTLP
    server = start_server_process(
        tmp_path / "queued.duckdb", "--max-request-bytes", "6000000", "--max-queued-bytes", "1024"
    )
    try:
        result = _flowscope("import", "--server", server.endpoints.http, str(path), "--no-progress")
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{path}: jaeger-json, {spans} spans sent, {spans} accepted, 0 rejected" in (
            result.stdout
        )
        health = _health(server)
        assert health["spans"] == spans
        assert health["ingest"]["refused_requests"] > 0  # it was told to retry, and did
    finally:
        assert server.stop() == 0


def test_rejected_spans_count_in_a_files_spans_as_through_a_server(tmp_path: Path) -> None:
    """Into a file the report said "7 spans, 7 new, ..., 1 rejected" where a server
    import of the same file said "8 spans sent": the totals now agree. A rejected
    span does not fail the file (the others are imported)."""
    request = realistic_request(1, seed=42)
    request.resource_spans[0].scope_spans[0].spans[0].trace_id = b""
    invalid = tmp_path / "invalid.pb"
    invalid.write_bytes(request.SerializeToString())
    db = tmp_path / "rejected.duckdb"
    result = _flowscope("import", "--db", str(db), str(invalid), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert f"{invalid}: otlp-protobuf, 8 spans, 7 new, 0 duplicates, 1 rejected" in result.stdout
    assert "trace_id has 0 bytes, expected 16" in result.stderr
    assert _stored(db) == 7
    again = _flowscope("import", "--db", str(db), str(invalid), "--no-progress")
    assert f"already imported (8 spans read from {invalid} at " in again.stderr  # was 7


def test_a_file_whose_every_span_is_rejected_fails_the_import(tmp_path: Path) -> None:
    """ "imported 0 new spans" with status 0: a script took a file of ids no reader
    takes (Tempo's base64 ones, before they were read) for a success (migrator review)."""
    request = realistic_request(1, seed=42)
    for resource in request.resource_spans:
        for scope in resource.scope_spans:
            for span in scope.spans:
                span.trace_id = b""
    bad = tmp_path / "bad.pb"
    bad.write_bytes(request.SerializeToString())
    good = tmp_path / "good.pb"
    good.write_bytes(realistic_request(1, seed=43).SerializeToString())
    db = tmp_path / "all-rejected.duckdb"
    result = _flowscope("import", "--db", str(db), str(bad), str(good), "--no-progress")
    assert result.returncode == 1, result.stderr
    assert f"{bad}: otlp-protobuf, 8 spans, 0 new, 0 duplicates, 8 rejected" in result.stdout
    assert _stored(db) == 8  # the other file's, imported all the same
    # The summary says why the status is 1 (it read "from 2 of 2 files" and no more).
    assert result.stdout.rstrip().endswith("; 1 with every span rejected"), result.stdout
    # Not remembered as imported: a second run said "already imported" and exited 0.
    again = _flowscope("import", "--db", str(db), str(bad), "--no-progress")
    assert again.returncode == 1, again.stderr
    assert f"{bad}: otlp-protobuf, 8 spans, 0 new, 0 duplicates, 8 rejected" in again.stdout


def test_half_a_surrogate_pair_in_jaeger_and_zipkin_files_is_replaced(tmp_path: Path) -> None:
    """An escaped half pair ("op\\ud83c") ended the import in a traceback."""
    jaeger = tmp_path / "jaeger.json"
    jaeger.write_text(
        '{"data":[{"traceID":"5b8efff798038103d269b633813fc60d","spans":[{"traceID":'
        '"5b8efff798038103d269b633813fc60d","spanID":"eee19b7ec3c1b174","operationName":'
        '"op\\ud83c","references":[],"startTime":1700000000000000,"duration":5,"tags":'
        '[{"key":"k","type":"string","value":"v\\udc00"}],"logs":[],"processID":"p1"}],'
        '"processes":{"p1":{"serviceName":"svc","tags":[]}}}]}',
        encoding="utf-8",
    )
    zipkin = tmp_path / "zipkin.json"
    zipkin.write_text(
        '[{"traceId":"5b8efff798038103d269b633813fc60e","id":"eee19b7ec3c1b174","name":'
        '"op\\ud83c","timestamp":1700000000000000,"duration":5,"localEndpoint":'
        '{"serviceName":"svc"},"tags":{"k":"v\\udc00"}}]',
        encoding="utf-8",
    )
    db = tmp_path / "surrogates.duckdb"
    result = _flowscope("import", "--db", str(db), str(jaeger), str(zipkin), "--no-progress")
    assert result.returncode == 0, result.stderr
    database = Database(db, read_only=True)
    try:
        rows = (
            database.reader()
            .execute("SELECT SpanName, SpanAttributes['k'] FROM otel_traces")
            .fetchall()
        )
    finally:
        database.close()
    assert rows == [("op\ufffd", "v\ufffd")] * 2


def _bad_lines_file(path: Path) -> int:
    """Four requests of 16 spans as JSON lines, the second line broken and the last cut
    off (as the Collector's file exporter leaves it while writing): 48 spans readable."""
    lines = [
        json.dumps(_otlp_json(realistic_request(2, seed=seed)), separators=(",", ":")).encode()
        for seed in (61, 62, 63, 64)
    ]
    broken = b'{"resourceSpans": [}'
    path.write_bytes(b"\n".join([lines[0], broken, lines[1], lines[2], lines[3][:300]]))
    return 48


def test_bad_json_lines_are_passed_over_and_the_rest_stored(tmp_path: Path) -> None:
    """Before, the first bad line stopped the file and the spans read before it, still
    waiting to be written, were dropped: "imported 0 new spans"."""
    path = tmp_path / "collector-file-exporter.jsonl"
    spans = _bad_lines_file(path)
    db = tmp_path / "bad-lines.duckdb"
    result = _flowscope("import", str(path), "--db", str(db), "--no-progress")
    assert result.returncode == 1  # imported only in part
    assert result.stdout.splitlines()[0] == (
        f"{path}: otlp-jsonl, {spans} spans, {spans} new, 0 duplicates, 0 rejected; "
        "2 bad lines skipped"
    )
    assert result.stdout.rstrip().endswith("s; 1 imported in part")
    errors = result.stderr.splitlines()
    assert errors[0].startswith("  skipped line 2: OTLP/JSON body is not valid JSON: ")
    assert errors[1] == (
        "  skipped line 5: cut off, the file ends inside it (still being written, "
        "or its writer was stopped)"
    )
    assert _stored(db) == spans
    # Not remembered as imported: read again (the line may be whole by then).
    again = _flowscope("import", str(path), "--db", str(db), "--no-progress")
    assert again.returncode == 1
    assert f"{spans} spans, 0 new, {spans} duplicates, 0 rejected; 2 bad lines skipped" in (
        again.stdout
    )


def test_bad_json_lines_are_passed_over_through_a_server_too(
    tmp_path: Path, served: ServerProcess
) -> None:
    path = tmp_path / "collector-file-exporter.jsonl"
    spans = _bad_lines_file(path)
    before = _health(served)
    url = served.endpoints.http
    result = _flowscope("import", "--server", url, str(path), "--no-progress", token=TOKEN)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == (
        f"{path}: otlp-jsonl, {spans} spans sent, {spans} accepted, 0 rejected; 2 bad lines skipped"
    )
    assert "  skipped line 5: cut off, the file ends inside it" in result.stderr
    assert _health(served)["spans"] - before["spans"] == spans


def test_logs_and_metrics_in_json_lines_are_counted_and_named(tmp_path: Path) -> None:
    logs = b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"x"}}]}]}]}'
    metrics = b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"up"}]}]}]}'
    traces = json.dumps(_otlp_json(realistic_request(2, seed=71)), separators=(",", ":"))
    mixed = tmp_path / "otel.jsonl"
    mixed.write_bytes(b"\n".join([logs, traces.encode(), metrics, logs]) + b"\n")
    only_logs = tmp_path / "logs.jsonl"
    only_logs.write_bytes(logs + b"\n" + logs + b"\n")
    one_metrics = tmp_path / "metrics.json"
    one_metrics.write_bytes(metrics)
    db = tmp_path / "signals.duckdb"
    result = _flowscope(
        "import", str(mixed), str(only_logs), str(one_metrics), "--db", str(db), "--no-progress"
    )
    assert result.returncode == 1  # the files of no traces
    assert result.stdout.splitlines()[0] == (
        f"{mixed}: otlp-jsonl, 16 spans, 16 new, 0 duplicates, 0 rejected; "
        "3 lines of logs/metrics skipped"
    )
    errors = [e for e in result.stderr.splitlines() if not e.startswith("  note:")]
    assert errors == [
        f"{only_logs}: cannot import: holds OTLP logs (2 lines), no traces; "
        "flowscope stores traces only",
        f"{one_metrics}: cannot import: OTLP metrics (an object with resourceMetrics), "
        "not traces; flowscope stores traces only",
    ]
    assert _stored(db) == 16


def test_the_collector_file_exporters_protobuf(tmp_path: Path) -> None:
    """``format: proto``: each request after its length (4 bytes, big-endian). Before,
    refused as corrupt protobuf."""
    path = tmp_path / "otel-traces"
    messages = [realistic_request(2, seed=seed).SerializeToString() for seed in (81, 82, 83)]
    path.write_bytes(b"".join(len(m).to_bytes(4, "big") + m for m in messages))
    db = tmp_path / "framed.duckdb"
    result = _flowscope("import", str(path), "--db", str(db), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert f"{path}: otlp-protobuf-framed, 48 spans, 48 new, 0 duplicates, 0 rejected" in (
        result.stdout.splitlines()
    )
    assert _stored(db) == 48


def _rows(db: Path) -> list[tuple[str, ...]]:
    database = Database(db, read_only=True)
    try:
        return [
            tuple(row)
            for row in database.reader()
            .execute(
                "SELECT SpanId, ParentSpanId, ServiceName, SpanKind, StatusCode "
                "FROM otel_traces ORDER BY SpanId, SpanKind"
            )
            .fetchall()
        ]
    finally:
        database.close()


def test_zipkin_halves_of_a_shared_span_in_two_files_in_either_order(tmp_path: Path) -> None:
    """Before, the shared server half without its client kept the client's id and was
    dropped as a duplicate of it (with its error), or stored first and the client dropped."""
    spans = json.loads((DATA / "zipkin_v2_spans.json").read_text(encoding="utf-8"))
    front, back = tmp_path / "frontend.json", tmp_path / "backend.json"
    for path, service in ((front, "frontend"), (back, "backend")):
        mine = [s for s in spans if s["localEndpoint"]["serviceName"] == service]
        path.write_text(json.dumps(mine), encoding="utf-8")
    stored = []
    for order in ((front, back), (back, front)):
        db = tmp_path / f"{order[0].stem}-first.duckdb"
        result = _flowscope("import", *map(str, order), "--db", str(db), "--no-progress")
        assert result.returncode == 0, result.stderr
        assert "imported 4 new spans from 2 of 2 files" in result.stdout
        stored.append(_rows(db))
    assert stored[0] == stored[1]
    by_id = {row[0]: row for row in stored[0]}
    served = next(row for row in stored[0] if row[2] == "backend" and row[3] == "Server")
    # As sent: under its client's id, its parent the client's (analysis un-shares them).
    assert served[:2] == ("72485a3953bb6124", "463ac35c9f6413ad")
    assert served[4] == "Error"
    assert by_id["e457b5a2e4d86bd1"][1] == served[0]  # the backend's own child
    # The same trace from Jaeger (both halves under the one id) is the same spans.
    trace = "463ac35c9f6413ad"
    under_root = [{"refType": "CHILD_OF", "traceID": trace, "spanID": trace}]
    under_call = [{"refType": "CHILD_OF", "traceID": trace, "spanID": "72485a3953bb6124"}]

    def span(span_id: str, kind: str, process: str, refs: list[Any]) -> dict[str, Any]:
        return {
            "traceID": trace,
            "spanID": span_id,
            "operationName": "op",
            "references": refs,
            "startTime": 1_767_225_600_000_000,
            "duration": 10,
            "tags": [{"key": "span.kind", "type": "string", "value": kind}],
            "processID": process,
        }

    jaeger = tmp_path / "jaeger.json"
    document = {
        "data": [
            {
                "traceID": trace,
                "spans": [
                    span(trace, "server", "p1", []),
                    span("72485a3953bb6124", "client", "p1", under_root),
                    span("72485a3953bb6124", "server", "p2", under_root),
                    span("e457b5a2e4d86bd1", "producer", "p2", under_call),
                ],
                "processes": {
                    "p1": {"serviceName": "frontend", "tags": []},
                    "p2": {"serviceName": "backend", "tags": []},
                },
            }
        ]
    }
    jaeger.write_text(json.dumps(document), encoding="utf-8")
    result = _flowscope("import", str(jaeger), "--db", str(db), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert f"{jaeger}: jaeger-json, 4 spans, 0 new, 4 duplicates, 0 rejected" in result.stdout


def test_a_files_progress_bar_goes_when_the_next_file_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before, every file's bar stayed, at 100 %, until the whole import ended."""
    import tqdm

    from flowscope.cli import _ProgressBars

    made: list[Any] = []

    class Bar:
        def __init__(self, **options: Any) -> None:
            self.name, self.done, self.closed = options["desc"], 0, False
            made.append(self)

        def update(self, n: int) -> None:
            self.done += n

        def refresh(self) -> None:
            pass

        def close(self) -> None:
            self.closed = True

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    bars = _ProgressBars(True)
    bars.factory("in/one.json", 10)(10)
    assert [(bar.name, bar.done, bar.closed) for bar in made] == [("one.json", 10, False)]
    bars.factory("in/two.json", 10)(4)
    assert [(bar.name, bar.closed) for bar in made] == [("one.json", True), ("two.json", False)]
    bars.close()
    assert made[1].closed
    assert _ProgressBars(False).factory("in/three.json", 10)(10) is None  # no terminal
    assert len(made) == 2


def test_a_cut_single_document_is_not_counted_as_read(tmp_path: Path) -> None:
    """It was "imported in part" and counted among the files read, with nothing
    imported from it (importer review)."""
    cut = tmp_path / "cut.json"
    cut.write_bytes(request_to_json(realistic_request(1, seed=8))[:1000])
    result = _flowscope("import", "--db", str(tmp_path / "c.duckdb"), str(cut), "--no-progress")
    assert result.returncode == 1, result.stderr
    assert "imported 0 new spans from 0 of 1 files in " in result.stdout
    assert result.stdout.rstrip().endswith("; 1 with nothing readable"), result.stdout
    assert "imported in part" not in result.stdout
    # A document, not a line: the format has no lines (a user review).
    assert (
        f"{cut}: otlp-json, 0 spans, 0 new, 0 duplicates, 0 rejected; 1 bad document skipped"
        in (result.stdout)
    )
    assert "skipped the document: cut off, the file ends inside it" in result.stderr


def test_a_files_bar_is_redrawn_while_nothing_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """tqdm redraws only on an update: while a large JSON document was parsed (32 s of a
    298 MB Jaeger file's 58) the bar stood at 0 %, its clock too, as if hung."""
    import tqdm

    from flowscope import cli
    from flowscope.cli import _ProgressBars

    drawn = threading.Semaphore(0)

    class Bar:
        def __init__(self, **options: Any) -> None:
            pass

        def update(self, n: int) -> None:
            pass

        def refresh(self) -> None:
            drawn.release()

        def close(self) -> None:
            pass

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    monkeypatch.setattr(cli, "BAR_REDRAW_S", 0.01)
    bars = _ProgressBars(True)
    bars.factory("in/big.json", 10)
    assert drawn.acquire(timeout=30) and drawn.acquire(timeout=30)  # again and again
    bars.close()
    assert not [t for t in threading.enumerate() if t.name == "progress-clock"]


def test_a_single_documents_parse_is_the_first_half_of_its_progress(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_bytes(request_to_json(realistic_request(4, seed=3)))
    ticks: list[int] = []
    pieces = read_requests(path, OTLP_JSON, lambda n: ticks.append(n))
    first = next(pieces)
    assert ticks[0] == path.stat().st_size // 2  # counted once parsed, before any piece
    assert first.resource_spans
    list(pieces)
    assert sum(ticks) == path.stat().st_size


def test_a_redirect_is_not_followed_with_the_token(tmp_path: Path) -> None:
    """urllib followed a 302 to another host with the Authorization header, as a GET,
    and took that host's empty 200 for the spans being accepted (none were stored)."""
    import http.server
    import threading

    from flowscope.collector import importer

    seen: list[tuple[str, str | None]] = []

    class Elsewhere(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            seen.append((self.path, self.headers.get("Authorization")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    elsewhere = f"http://127.0.0.1:{other.server_address[1]}"

    class Redirecting(Elsewhere):
        def do_POST(self) -> None:  # noqa: N802
            self.send_response(302)
            self.send_header("Location", f"{elsewhere}/v1/traces")
            self.send_header("Content-Length", "0")
            self.end_headers()

    front = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    for server in (other, front):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    path = tmp_path / "one.jsonl"
    path.write_bytes(request_to_json(realistic_request(1)) + b"\n")
    try:
        url = f"http://127.0.0.1:{front.server_address[1]}"
        (redirected,) = importer.import_into_server([path], url, token="SECRET")
        (empty,) = importer.import_into_server([path], elsewhere, token="SECRET")
    finally:
        for server in (other, front):
            server.shutdown()
            server.server_close()
    assert f"answered 302, a redirect to {elsewhere}/v1/traces" in redirected.error
    assert redirected.spans == 0
    assert seen == [("/v1/traces", "Bearer SECRET")]  # only the direct send below
    assert "answered, but not with OTLP" in empty.error and empty.spans == 0


def test_a_token_that_cannot_be_sent_is_named_not_shown(served: ServerProcess) -> None:
    """A non-ASCII token, or one with a CR inside, was a traceback with the token in
    it; now the server's 401 is answered with what is wrong with it."""
    sample = Path(__file__).parents[2] / "sample_traces" / "normal.jsonl"
    for bad in ("tök", "s3c\rret"):
        result = CliRunner().invoke(
            main,
            ["import", "--server", served.endpoints.http, str(sample)],
            env={"FLOWSCOPE_TOKEN": bad},
        )
        assert result.exit_code == 1, result.output
        assert "must be printable ASCII without spaces" in result.output
        assert (
            bad not in result.output
            and result.exception is None
            or isinstance(result.exception, SystemExit)
        )


def test_a_stray_token_does_not_stop_an_import_into_a_server_that_needs_none(
    tmp_path: Path,
) -> None:
    """Checked before sending, a FLOWSCOPE_TOKEN left in the environment refused an
    import the server would have taken without one."""
    sample = Path(__file__).parents[2] / "sample_traces" / "normal.jsonl"
    server = start_server_process(tmp_path / "open.duckdb", "--decode-workers", "0")
    try:
        result = _flowscope(
            "import", "--server", server.endpoints.http, str(sample), token="my token"
        )
        assert result.returncode == 0, result.stderr
    finally:
        assert server.stop() == 0


def test_invalid_utf8_in_protobuf_files_is_replaced_and_said(tmp_path: Path) -> None:
    """As the receivers do (collector/utf8_repair.py): a file from an SDK or Collector
    that does not check UTF-8 failed whole."""
    request = realistic_request(1, seed=77)
    request.resource_spans[0].scope_spans[0].spans[0].name = "MARKER"
    bad = request.SerializeToString().replace(b"MARKER", b"MA\xffKER")  # the same length
    whole = tmp_path / "whole.pb"
    whole.write_bytes(bad)
    framed = tmp_path / "otel-traces"
    other = realistic_request(1, seed=78).SerializeToString()
    framed.write_bytes(b"".join(len(m).to_bytes(4, "big") + m for m in (other, bad)))
    db = tmp_path / "repaired.duckdb"
    result = _flowscope("import", "--db", str(db), str(whole), str(framed), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert f"{whole}: otlp-protobuf, 8 spans, 8 new, 0 duplicates, 0 rejected" in result.stdout
    assert f"{framed}: otlp-protobuf-framed, 16 spans, 8 new, 8 duplicates" in result.stdout
    repaired = "  repaired: 1 string(s) were not valid UTF-8: stored with U+FFFD in place of each"
    assert result.stderr.count(repaired) == 2, result.stderr
    database = Database(db, read_only=True)
    try:
        names = (
            database.reader()
            .execute("SELECT count(*) FROM otel_traces WHERE SpanName = 'MA\ufffdKER'")
            .fetchone()
        )
    finally:
        database.close()
    assert names == (1,)


def test_spans_older_than_a_servers_retention_are_pointed_out(tmp_path: Path) -> None:
    """A user migrating imports last month's Jaeger download, starts `flowscope serve`,
    and its first sweep deletes every span; the re-import was then skipped as
    "already imported" with no word of why the spans were gone."""
    import time

    now = time.time_ns()
    old = tmp_path / "old.pb"
    old.write_bytes(
        realistic_request(2, seed=90, start_ns=now - 30 * 86_400 * 10**9).SerializeToString()
    )
    new = tmp_path / "new.pb"
    new.write_bytes(realistic_request(2, seed=91, start_ns=now - 3_600 * 10**9).SerializeToString())
    db = tmp_path / "old.duckdb"
    result = _flowscope("import", "--db", str(db), str(old), str(new), "--no-progress")
    assert result.returncode == 0, result.stderr
    note = (
        "  note: 16 of its spans started more than 7d ago: `flowscope serve` deletes them at "
        "its first sweep (--retention 7d unless told otherwise); serve with --retention off"
    )
    assert result.stderr.count(note) == 1, result.stderr
    result = _flowscope("import", "--db", str(db), str(old), "--no-progress")
    assert "use --force to read it again (also when a server's retention has deleted" in (
        result.stdout + result.stderr
    )


def test_a_file_in_a_folder_it_may_not_enter_does_not_stop_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.11's is_dir and is_file raise PermissionError there: a traceback, and
    no summary (diff review). (As root, who enters anything, they are made to.)"""
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(_otlp_json(realistic_request(1, seed=5))) + "\n")
    locked = tmp_path / "locked" / "in.json"
    real_stat = Path.stat

    def stat(self: Path, **kwargs: Any) -> Any:
        if self.parent.name == "locked":
            raise PermissionError(13, "Permission denied", str(self))
        return real_stat(self, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    db = tmp_path / "l.duckdb"
    for files in ([locked], [good, locked]):
        result = CliRunner().invoke(main, ["import", *map(str, files), "--db", str(db)])
        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert f"{locked}: cannot import: permission denied: the user flowscope runs as " in (
            result.output
        )
    assert f"{good}: otlp-json, 8 spans, 8 new" in result.output


def _interrupted_after_the_first_file(*args: str) -> tuple[int, str, str, str]:
    """`flowscope import ARGS` given Ctrl-C once its first file is done: the exit
    status, that file's line, and the rest of stdout and stderr."""
    import signal

    env = {k: v for k, v in os.environ.items() if k not in ("FLOWSCOPE_DB", "FLOWSCOPE_TOKEN")}
    process = subprocess.Popen(
        [*cli_with_ctrl_c(), "import", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    first_line = process.stdout.readline()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    return process.returncode, first_line, out, err


def test_an_interrupted_import_says_what_it_did(tmp_path: Path) -> None:
    """Ctrl-C printed only "Aborted!": the files already imported, and the spans stored
    from the one being read, went unmentioned. Each file's line now comes when it is
    done, and the interrupt says what became of the one being read."""

    small = tmp_path / "small.pb"
    small.write_bytes(realistic_request(1, seed=93).SerializeToString())
    big = tmp_path / "big.jsonl"
    # 1.6M spans (the same 4,000 again and again): longer to read than the test waits.
    big.write_bytes((request_to_json(realistic_request(500, seed=94)) + b"\n") * 400)
    db = tmp_path / "interrupted.duckdb"
    returncode, first_line, out, err = _interrupted_after_the_first_file(
        "--db", str(db), str(small), str(big)
    )
    assert first_line.startswith(f"{small}: otlp-protobuf, 8 spans, 8 new"), first_line
    assert returncode == 130, err
    assert "flowscope: interrupted: the files above are done; the one being read was" in err
    assert "Traceback" not in err and str(big) not in out
    assert _stored(db) >= 8


def test_an_import_interrupted_through_a_server_says_what_decides_the_rest(
    tmp_path: Path,
) -> None:
    """It said "importing it again stores the rest", which only the server's dedup
    window makes true there (importer review)."""

    small = tmp_path / "small.pb"
    small.write_bytes(realistic_request(1, seed=95).SerializeToString())
    big = tmp_path / "big.jsonl"
    big.write_bytes((request_to_json(realistic_request(500, seed=96)) + b"\n") * 400)
    server = start_server_process(tmp_path / "served.duckdb")
    try:
        returncode, first_line, _, err = _interrupted_after_the_first_file(
            "--server", server.endpoints.http, str(small), str(big)
        )
    finally:
        assert server.stop() == 0
    assert first_line.startswith(f"{small}: otlp-protobuf"), first_line
    assert returncode == 130, err
    assert "the spans the server acknowledged are kept" in err and "--dedup-window" in err
    assert "importing it again stores the rest" not in err


def _rows_and_distinct(db: Path) -> tuple[int, int]:
    """Rows of otel_traces, and distinct (trace id, span id) pairs among them."""
    database = Database(db, read_only=True)
    try:
        query = "SELECT count(*), count(DISTINCT (TraceId, SpanId)) FROM otel_traces"
        rows, distinct = database.reader().execute(query).fetchall()[0]
        return int(rows), int(distinct)
    finally:
        database.close()


def test_a_file_read_again_long_after_stores_only_what_is_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read again after more spans than the dedup window holds were stored, a file
    imported in part (cut while written, or interrupted), or whole and grown since,
    stored its first part a second time, and the report called those spans new."""
    from flowscope.collector import importer

    monkeypatch.setattr(importer, "IMPORT_DEDUP_WINDOW", 100)

    def lines(first: int, count: int) -> list[str]:
        return [
            json.dumps(
                _otlp_json(realistic_request(2, seed=first + i, first_trace=(first + i) * 2)),
                separators=(",", ":"),
            )
            for i in range(count)
        ]

    live, other = tmp_path / "live.jsonl", tmp_path / "other.jsonl"
    written = lines(0, 4)  # 16 spans a line
    live.write_text("\n".join(written[:2]) + "\n" + written[2][:40])  # cut in line 3
    other.write_text("\n".join(lines(100, 7)) + "\n")  # 112 spans: past the window
    db = tmp_path / "resume.duckdb"

    def run(path: Path) -> str:
        result = CliRunner().invoke(main, ["import", str(path), "--db", str(db), "--no-progress"])
        return result.output.splitlines()[0]

    assert "32 spans, 32 new" in run(live)
    assert "112 spans, 112 new" in run(other)
    live.write_text("\n".join(written) + "\n")  # the writer finished the file
    assert "64 spans, 32 new, 32 duplicates" in run(live)
    assert _rows_and_distinct(db) == (176, 176)
    # Imported whole now: skipped as such.
    assert "already imported" in run(live)
    # A file imported whole that grows (the Collector's file exporter appends to it),
    # read again after the window has moved on: only what it gained is new.
    more = tmp_path / "more.jsonl"
    more.write_text("\n".join(lines(200, 7)) + "\n")
    assert "112 spans, 112 new" in run(more)
    live.write_text("\n".join([*written, *lines(300, 1)]) + "\n")
    assert "80 spans, 16 new, 64 duplicates" in run(live)
    assert _rows_and_distinct(db) == (304, 304)


def test_a_file_it_may_not_read_does_not_stop_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Click refused the whole command ("Path ... is not readable", status 2) before any
    file was read; the import reports each file it cannot read and goes on. (As root,
    who reads anything, os.access is made to say what it says to other users.)"""
    good, secret = tmp_path / "good.jsonl", tmp_path / "secret.jsonl"
    good.write_text(json.dumps(_otlp_json(realistic_request(1, seed=5))) + "\n")
    secret.write_text(json.dumps(_otlp_json(realistic_request(1, seed=6))) + "\n")
    real_access = os.access

    def access(path: Any, mode: int, **kwargs: Any) -> bool:
        return False if Path(path) == secret else real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    db = tmp_path / "s.duckdb"
    result = CliRunner().invoke(main, ["import", str(secret), str(good), "--db", str(db)])
    assert result.exit_code == 1, result.output
    assert f"{good}: otlp-json, 8 spans, 8 new" in result.output
    # Not "[Errno 13] Permission denied: '...'" (importer review).
    assert (
        f"{secret}: cannot import: permission denied: the user flowscope runs as cannot read it"
        in result.output
    )


def test_standard_input_pipes_and_broken_links_say_what_to_do(tmp_path: Path) -> None:
    """`-` was "no such file", a pipe "not a regular file", a broken link "no such file"."""
    link = tmp_path / "gone.jsonl"
    link.symlink_to(tmp_path / "moved-away.jsonl")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    db = tmp_path / "s.duckdb"
    result = CliRunner().invoke(main, ["import", "-", str(fifo), str(link), "--db", str(db)])
    assert result.exit_code == 1
    assert "-: cannot import: standard input is not read; save it to a file" in result.output
    assert f"{fifo}: cannot import: not a regular file (a pipe or a device); save it" in (
        result.output
    )
    assert f"{link}: cannot import: no such file (a broken symbolic link)" in result.output


def test_a_quoted_pattern_says_the_shell_expands_it(tmp_path: Path) -> None:
    """`flowscope import 'dir/*'` said only "no such file" (a user review)."""
    pattern = tmp_path / "*" / "a.jsonl"  # a pattern in a folder name too (diff review)
    result = CliRunner().invoke(main, ["import", str(pattern), "--db", str(tmp_path / "p.duckdb")])
    assert result.exit_code == 1
    assert (
        f"{pattern}: cannot import: no such file; a pattern is expanded by the shell: leave it "
        "unquoted"
    ) in result.output


def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


@pytest.mark.parametrize(
    ("kind", "suffix", "compress"),
    [("gzip", ".gz", gzip.compress), ("zstd", ".zst", _zstd)],
)
def test_compressed_files_are_read_as_their_content(
    tmp_path: Path,
    served: ServerProcess,
    kind: str,
    suffix: str,
    compress: Callable[[bytes], bytes],
) -> None:
    """`traces.jsonl.gz` and `traces.jsonl.zst` (the Collector file exporter's files
    with its nativeCompression gate: one zstd stream) were refused with a hint to
    decompress them first."""
    lines = [json.dumps(_otlp_json(realistic_request(1, seed=s))) + "\n" for s in (91, 92)]
    packed = tmp_path / f"traces.jsonl{suffix}"
    # Two members (frames) one after another, as a file appended to holds.
    packed.write_bytes(b"".join(compress(line.encode()) for line in lines))
    framed = tmp_path / f"traces.pb{suffix}"
    message = realistic_request(1, seed=93).SerializeToString()
    framed.write_bytes(compress(len(message).to_bytes(4, "big") + message))
    cut = tmp_path / f"cut.jsonl{suffix}"
    cut.write_bytes(packed.read_bytes()[:-20])
    junk = tmp_path / f"junk{suffix}"
    junk.write_bytes(packed.read_bytes()[:4] + b"\x00" * 64)
    db = tmp_path / f"{kind}.duckdb"
    result = _flowscope("import", str(packed), str(framed), str(cut), str(junk), "--db", str(db))
    assert result.returncode == 1
    assert f"{packed}: otlp-jsonl, 16 spans, 16 new" in result.stdout
    assert f"{framed}: otlp-protobuf-framed, 8 spans, 8 new" in result.stdout
    assert f"{cut}: cannot import: not valid {kind} (" in result.stderr
    assert f"{junk}: cannot import: not valid {kind} (" in result.stderr
    assert _stored(db) == 24
    again = _flowscope("import", str(packed), "--db", str(db))
    assert "already imported" in again.stdout + again.stderr
    # Through a server too.
    url = served.endpoints.http
    sent = _flowscope("import", "--server", url, str(packed), "--no-progress", token=TOKEN)
    assert sent.returncode == 0 and "16 spans sent, 16 accepted" in sent.stdout


def test_a_database_made_for_files_none_of_which_could_be_read_is_not_left(
    tmp_path: Path,
) -> None:
    """A file of another kind left an empty 270 KB database behind; a missing one made
    none."""
    notes = tmp_path / "notes.txt"
    notes.write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    db = tmp_path / "new.duckdb"
    result = _flowscope("import", str(notes), "--db", str(db))
    assert result.returncode == 1 and "not a recognised trace format" in result.stderr
    assert sorted(tmp_path.iterdir()) == [notes]
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n")
    assert _flowscope("import", str(blank), "--db", str(db)).returncode == 0
    assert sorted(tmp_path.iterdir()) == [blank, notes]
    # A database that was there stays, and one that got spans too.
    Database(db).close()
    assert _flowscope("import", str(notes), "--db", str(db)).returncode == 1
    assert db.exists()
    lines = tmp_path / "spans.jsonl"
    lines.write_text(json.dumps(_otlp_json(realistic_request(1, seed=97))) + "\n")
    fresh = tmp_path / "fresh.duckdb"
    assert _flowscope("import", str(notes), str(lines), "--db", str(fresh)).returncode == 1
    assert _stored(fresh) == 8


def test_an_import_whose_output_reader_leaves_imports_every_file(tmp_path: Path) -> None:
    """`flowscope import *.json | head -1` stopped after the first files once the
    pipe closed, and exited 0 like a read command: the rest were never imported."""
    files = []
    for n in range(300):
        path = tmp_path / f"f{n:03d}.json"
        request = realistic_request(1, seed=1000 + n, first_trace=1000 + n)
        path.write_text(json.dumps(_otlp_json(request)))
        files.append(str(path))
    db = tmp_path / "all.duckdb"
    command = [sys.executable, "-m", "flowscope.cli", "import", *files, "--db", str(db)]
    with subprocess.Popen(
        [*command, "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as process:
        assert process.stdout is not None
        assert process.stdout.readline()
        process.stdout.close()
        assert process.wait(300) == 0
    assert _stored(db) == 300 * 8


def test_a_file_failing_part_way_says_what_was_read_before_and_stored(tmp_path: Path) -> None:
    """Read again, it said "0 new spans read before it were stored" of 16 spans read,
    all stored the first time."""
    path = tmp_path / "found.json"
    answer = {"result": _otlp_json(realistic_request(2, seed=71))}
    error = {"error": {"httpCode": 404, "message": "trace not found"}}
    path.write_text(json.dumps(answer) + "\n" + json.dumps(error) + "\n")
    db = tmp_path / "part.duckdb"
    for new, before in ((16, 0), (0, 16)):
        result = _flowscope("import", str(path), "--db", str(db), "--no-progress")
        assert result.returncode == 1
        assert (
            "cannot import: answer 2: Jaeger answered an error, not traces: trace not found "
            f"(HTTP 404) (the 16 spans read before it are stored: {new} new, {before} stored "
            "before)"
        ) in result.stderr + result.stdout
    assert _stored(db) == 16
