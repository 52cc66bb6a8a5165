"""Runs an import: files -> chunks -> the writer (own DuckDB) or a running server (OTLP/HTTP)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from flowscope.collector.decode import PROTOBUF
from flowscope.collector.errors import BadRequest
from flowscope.collector.file_import import (
    FileReport,
    file_sha256,
    flattened_chunks,
    read_requests,
    sniff,
)
from flowscope.store import sql_files
from flowscope.store.database import Database
from flowscope.store.writer import SpanWriter

ProgressFactory = Callable[[str, int], Callable[[int], None]]


def _no_progress(_name: str, _total: int) -> Callable[[int], None]:
    return lambda _n: None


def import_into_database(
    paths: Sequence[Path],
    database: Database,
    *,
    force: bool = False,
    progress: ProgressFactory = _no_progress,
) -> list[FileReport]:
    # An import acknowledges nothing to anyone: it writes past the journal (``write``).
    writer = SpanWriter(database, dedup_window=1_000_000, journal=False)
    writer.start()
    reports: list[FileReport] = []
    try:
        for path in paths:
            reports.append(_import_one(path, database, writer, force, progress))
    finally:
        writer.shutdown()
    return reports


def _import_one(
    path: Path, database: Database, writer: SpanWriter, force: bool, progress: ProgressFactory
) -> FileReport:
    report = FileReport(str(path), "")
    try:
        report.format = sniff(path)
        sha = file_sha256(path)
        earlier = database.imported_file(sha)
        if earlier is not None and not force:
            report.skipped_reason = (
                f"already imported ({earlier[1]} spans from {earlier[0]} at {earlier[2]}); "
                "use --force to read it again"
            )
            return report
        tick = progress(str(path), path.stat().st_size)
        for chunk in flattened_chunks(read_requests(path, report.format, tick)):
            report.spans += chunk.batch.spans
            report.rejected += chunk.rejected
            if chunk.reasons and report.messages is None:
                report.messages = list(chunk.reasons)
            report.stored += writer.write(chunk.batch.table, chunk.batch.keys)
        writer.run_task(
            lambda cursor: cursor.execute(
                sql_files.query("record_imported_file"),
                {"sha256": sha, "path": str(path), "spans": report.spans},
            )
        ).result()
    except (BadRequest, OSError) as exc:
        report.skipped_reason = f"cannot import: {exc}"
    return report


def import_into_server(
    paths: Sequence[Path],
    otlp_http_url: str,
    *,
    token: str | None = None,
    progress: ProgressFactory = _no_progress,
) -> list[FileReport]:
    """Send each file's spans to a running server's OTLP/HTTP receiver."""
    reports: list[FileReport] = []
    for path in paths:
        report = FileReport(str(path), "")
        try:
            report.format = sniff(path)
            tick = progress(str(path), path.stat().st_size)
            for request in read_requests(path, report.format, tick):
                spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
                rejected = _post(otlp_http_url, request.SerializeToString(), token)
                report.spans += spans - rejected
                report.rejected += rejected
            report.stored = report.spans  # the server's dedup decides; it reports no count back
        except (BadRequest, OSError) as exc:
            report.skipped_reason = f"cannot import: {exc}"
        reports.append(report)
    return reports


def _post(base_url: str, body: bytes, token: str | None) -> int:
    headers = {"Content-Type": PROTOBUF}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{base_url}/v1/traces", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = ExportTraceServiceResponse()
            answer.ParseFromString(response.read())
            return int(answer.partial_success.rejected_spans)
    except urllib.error.HTTPError as exc:
        raise OSError(f"server answered {exc.code}: {exc.read()[:300]!r}") from exc
