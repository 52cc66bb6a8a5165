"""Runs an import: files -> chunks -> the writer (own DuckDB) or a running server (OTLP/HTTP)."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf.message import DecodeError
from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from flowscope.collector.auth import client_token
from flowscope.collector.decode import PROTOBUF, media_type
from flowscope.collector.errors import BadRequest
from flowscope.collector.file_import import (
    FileReport,
    decompressed,
    file_sha256,
    flattened_chunks,
    read_requests,
    sniff,
    unreadable,
)
from flowscope.collector.import_formats import (
    OTLP_JSONL,
    OTLP_PROTOBUF_FRAMED,
    OTLP_ZSTD_FRAMED,
    shorten,
)
from flowscope.collector.ingest import started_before
from flowscope.durations import DEFAULT_RETENTION
from flowscope.interrupts import interrupts_deferred
from flowscope.store import sql_files
from flowscope.store.database import Database
from flowscope.store.dedup import StoredSpan
from flowscope.store.writer import SpanWriter

ProgressFactory = Callable[[str, int], Callable[[int], None]]

_URL_HINT = (
    "--server wants the OTLP/HTTP base URL of flowscope serve, e.g. http://localhost:4318, "
    "not its API or gRPC port"
)


class SendFailed(Exception):
    """The server did not take a request; the message says why and what to do about it.

    ``wrong_url``: the answer (none, or not OTLP) suggests the URL is not an OTLP/HTTP
    receiver's, which is worth saying only if nothing was sent there yet.
    ``retry_after``: the server said "retry later" (429 or 503), in this many seconds.
    """

    def __init__(
        self, message: str, *, wrong_url: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.wrong_url = wrong_url
        self.retry_after = retry_after


# Spans an import remembers to drop copies of (a file's spans repeated in it, a file
# read again); a path imported before is also checked against the table.
IMPORT_DEDUP_WINDOW = 1_000_000
# A request the server answers "retry later" (its writer queue full: spans of megabyte
# attributes reach it faster than they commit) is sent again after its Retry-After (at
# most RETRY_AFTER_MAX_S), as OTLP exporters do, until RETRY_FOR_S have passed for it.
# The import failed at the first such answer (review: 92 of 150 spans of 4 MB each).
RETRY_FOR_S = 300.0
RETRY_AFTER_MAX_S = 5.0


def _no_progress(_name: str, _total: int) -> Callable[[int], None]:
    return lambda _n: None


ReportSink = Callable[[FileReport], None]


def _no_sink(_report: FileReport) -> None:
    pass


def import_into_database(
    paths: Sequence[Path],
    database: Database,
    *,
    force: bool = False,
    progress: ProgressFactory = _no_progress,
    on_report: ReportSink = _no_sink,
) -> list[FileReport]:
    """``on_report`` gets each file's report as the file is done (an interrupted
    import has said what it did)."""
    # An import acknowledges nothing to anyone: it writes past the journal (``write``).
    writer = SpanWriter(database, dedup_window=IMPORT_DEDUP_WINDOW, journal=False)
    writer.start()
    reports: list[FileReport] = []
    try:
        for path in paths:
            reports.append(_import_one(path, database, writer, force, progress))
            on_report(reports[-1])
    finally:
        with interrupts_deferred():
            writer.shutdown()
    return reports


def _import_one(
    path: Path, database: Database, writer: SpanWriter, force: bool, progress: ProgressFactory
) -> FileReport:
    report = FileReport(str(path), error=unreadable(path))
    if report.error:
        return report
    try:
        with decompressed(path) as source:
            return _import_file(path, source, report, database, writer, force, progress)
    except (BadRequest, OSError) as exc:  # reading or decompressing it
        report.error = _error_text(exc, path)
    return report


def _import_file(
    path: Path,
    source: Path,
    report: FileReport,
    database: Database,
    writer: SpanWriter,
    force: bool,
    progress: ProgressFactory,
) -> FileReport:
    """``path``'s spans, read from ``source`` (the file itself, or its content once
    decompressed)."""
    try:
        report.format = sniff(source)
        if report.empty:
            return report  # not recorded as imported: every empty file has the same hash
        sha = file_sha256(path)
        earlier = database.imported_file(sha)
        if earlier is not None and not force:
            report.skipped = (
                f"already imported ({earlier[1]} spans read from {earlier[0]} at "
                f"{_when(earlier[2])}); "
                "use --force to read it again (also when a server's retention has "
                "deleted them since)"
            )
            return report
        # A path is noted before any of its spans is stored: read again (a file cut,
        # interrupted, or grown since, as the Collector's file exporter's does) after
        # more than the dedup window's million spans, its first part was stored twice
        # and called new. Its batches are then checked against the table.
        seen = _path_mark(path)
        resuming = database.imported_file(seen) is not None
        if not resuming:
            _record(writer, seen, path, 0)
        tick = progress(str(path), source.stat().st_size)
        for chunk in flattened_chunks(read_requests(source, report.format, tick, report)):
            report.old_spans += started_before(chunk.batch.table, DEFAULT_RETENTION)
            report.spans += chunk.batch.spans
            report.rejected += chunk.rejected
            if chunk.reasons and report.messages is None:
                report.messages = list(chunk.reasons)
            if resuming:
                writer.remember_stored(_stored_among(database, chunk.batch.table))
            report.stored += writer.write(chunk.batch.table, chunk.batch.keys)
        if report.bad_parts or _all_rejected(report):
            # Not imported whole: not remembered as imported, so the next run reads it
            # again (and says again what it could not read, and exits 1 again) rather
            # than skipping it.
            return report
        _record(writer, sha, path, report.spans + report.rejected)
    except (BadRequest, OSError) as exc:
        report.error = _error_text(exc, path)
        if report.spans:
            # "0 new spans read before it were stored" said nothing of the 68 read,
            # all stored before (import review).
            report.error += (
                f" (the {report.spans} spans read before it are stored: "
                f"{report.stored} new, {report.spans - report.stored} stored before)"
            )
    except duckdb.Error as exc:  # the database refused the spans: a full disk, say
        report.error = f"storing its spans failed: {exc}"
        if report.stored:
            report.error += f" ({report.stored} new spans were stored before)"
    return report


def _path_mark(path: Path) -> str:
    """The ``imported_files`` key that notes a path an import has read (no content
    hash has a space)."""
    return f"path {path.resolve()}"


def _record(writer: SpanWriter, key: str, path: Path, spans: int) -> None:
    query = sql_files.query("record_imported_file")
    params = {"sha256": key, "path": str(path), "spans": spans}
    writer.run_task(lambda cursor: cursor.execute(query, params)).result()


def _stored_among(database: Database, table: pa.Table) -> list[StoredSpan]:
    """The stored spans among ``table``'s (by trace id, within its start times)."""
    if table.num_rows == 0:
        return []
    low, high = pc.min_max(table.column("Timestamp").cast(pa.int64())).values()
    trace_ids = pc.unique(table.column("TraceId")).to_pylist()
    return database.stored_span_keys_among(trace_ids, low.as_py(), high.as_py())


def _error_text(exc: Exception, path: Path) -> str:
    # Format detection names the file in its messages; the report line does already.
    return str(exc).removeprefix(f"{path.name}: ")


def otlp_base_url(url: str) -> str:
    """The OTLP/HTTP base URL, also when given with ``/v1/traces`` (as exporters take it)."""
    return url.rstrip("/").removesuffix("/v1/traces")


def import_into_server(
    paths: Sequence[Path],
    otlp_http_url: str,
    *,
    token: str | None = None,
    progress: ProgressFactory = _no_progress,
    on_report: ReportSink = _no_sink,
) -> list[FileReport]:
    """Send each file's spans to a running server's OTLP/HTTP receiver.

    The server drops spans it already has but does not say how many, so a report
    counts spans sent and accepted, not new ones; files are not remembered as
    imported (the server's database is not open here).
    """
    base = otlp_base_url(otlp_http_url)
    token, token_problem = client_token(token)
    reports = []
    for path in paths:
        reports.append(_send_one(path, base, token, progress, token_problem))
        on_report(reports[-1])
    return reports


def _send_one(
    path: Path,
    base: str,
    token: str | None,
    progress: ProgressFactory,
    token_problem: str | None = None,
) -> FileReport:
    report = FileReport(str(path), error=unreadable(path))
    if report.error:
        return report
    try:
        with decompressed(path) as source:
            _send_file(source, report, base, token, progress, token_problem)
    except (BadRequest, OSError, SendFailed) as exc:
        report.error = _error_text(exc, path)
        sent = report.spans + report.rejected
        if sent:  # the URL was right: the server stopped answering
            report.error += f" (after {sent} spans were sent)"
        elif isinstance(exc, SendFailed) and exc.wrong_url:
            report.error += f"; {_URL_HINT}"
    return report


def _send_file(
    source: Path,
    report: FileReport,
    base: str,
    token: str | None,
    progress: ProgressFactory,
    token_problem: str | None,
) -> None:
    report.format = sniff(source)
    if not report.empty:
        tick = progress(report.path, source.stat().st_size)
        for request in read_requests(source, report.format, tick, report):
            spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
            rejected, message = _post_until_taken(
                base, request.SerializeToString(), token, token_problem
            )
            report.spans += spans - rejected
            report.rejected += rejected
            if message and not rejected:
                # OTLP's partial_success carries warnings too (nothing rejected).
                report.server_warning = report.server_warning or message
                report.server_warnings += 1
            elif message and report.messages is None:
                report.messages = [message]


class _Unfollowed(urllib.request.HTTPRedirectHandler):
    """Redirects are answers, not followed: urllib followed 301/302/303 to any host
    with the Authorization header, as a GET, and took the empty 200 there for success."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_NO_REDIRECTS = urllib.request.build_opener(_Unfollowed)


def _post_until_taken(
    base_url: str, body: bytes, token: str | None, token_problem: str | None = None
) -> tuple[int, str]:
    """``_post``, sent again while the server says "retry later" (``RETRY_FOR_S``)."""
    waited = 0.0
    while True:
        try:
            return _post(base_url, body, token, token_problem)
        except SendFailed as exc:
            if exc.retry_after is None or waited >= RETRY_FOR_S:
                raise
            delay = min(exc.retry_after, RETRY_AFTER_MAX_S, RETRY_FOR_S - waited)
            time.sleep(delay)  # what the server asked for, not a guess at readiness
            waited += delay


def _post(
    base_url: str, body: bytes, token: str | None, token_problem: str | None = None
) -> tuple[int, str]:
    """Send one request; the spans the server rejected and its message about them."""
    headers = {"Content-Type": PROTOBUF}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{base_url}/v1/traces", data=body, headers=headers, method="POST"
    )
    try:
        with _NO_REDIRECTS.open(request, timeout=60) as response:
            content = response.read()
            kind = media_type(response.headers.get("Content-Type"))
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            where = exc.headers.get("Location", "elsewhere")
            raise SendFailed(
                f"{base_url} answered {exc.code}, a redirect to {where}: give the server's "
                "own address (a redirect is not followed: it would take the token along, "
                "and the spans would arrive as a GET)",
                wrong_url=True,
            ) from exc
        raise SendFailed(
            _refusal(exc, token, token_problem), retry_after=_retry_after(exc)
        ) from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (BrokenPipeError, ConnectionResetError)):
            # Connected, then cut off while sending: a server refusing a body it finds
            # too large closes the connection before reading it (413, unseen here).
            raise SendFailed(
                f"{base_url} closed the connection while a request of {len(body)} bytes "
                "was sent (larger than its --max-request-bytes?)"
            ) from exc
        raise SendFailed(f"cannot reach {base_url}: {exc.reason}", wrong_url=True) from exc
    except http.client.HTTPException as exc:
        # A gRPC port answers HTTP/1.1 with an HTTP/2 frame: a bad status line.
        detail = type(exc).__name__
        raise SendFailed(f"no HTTP answer from {base_url} ({detail})", wrong_url=True) from exc
    except OSError as exc:  # timeouts, connections reset
        raise SendFailed(f"no answer from {base_url}: {exc}") from exc
    if kind != PROTOBUF:  # an empty 200 from anything parses as a valid answer
        raise SendFailed(f"{base_url} answered, but not with OTLP", wrong_url=True)
    answer = ExportTraceServiceResponse()
    try:
        answer.ParseFromString(content)
    except DecodeError as exc:
        raise SendFailed(f"{base_url} answered, but not with OTLP", wrong_url=True) from exc
    success = answer.partial_success
    return int(success.rejected_spans), str(success.error_message)


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    """Seconds to wait before sending again, for a "retry later" answer (429, 503)."""
    if exc.code not in (429, 503):
        return None
    given = (exc.headers.get("Retry-After") or "").strip()
    return float(given) if given.isdigit() else 1.0


def _refusal(
    exc: urllib.error.HTTPError, token: str | None, token_problem: str | None = None
) -> str:
    message = _error_message(exc.read(), exc.headers.get("Content-Type", ""), str(exc.reason))
    text = f"server refused: {exc.code} {message}"
    if exc.code == 401:
        if token_problem is not None:
            hint = token_problem
        elif token:
            hint = "the --token / FLOWSCOPE_TOKEN given is not the server's"
        else:
            hint = "give --token or FLOWSCOPE_TOKEN"
        return f"{text} ({hint})"
    if exc.code in (404, 405):
        return f"{text} ({_URL_HINT})"
    return text


def _error_message(body: bytes, content_type: str, reason: str) -> str:
    """What an error answer says: OTLP/HTTP sends a ``google.rpc.Status`` in the request's
    encoding (protobuf here); other servers send JSON (``{"detail": ...}``) or a page."""
    if "protobuf" in content_type:
        status = Status()
        try:
            status.ParseFromString(body)
        except DecodeError:
            return reason
        return str(status.message) or reason
    if "json" in content_type:
        try:
            document = json.loads(body)
        except ValueError:
            return reason
        if isinstance(document, dict):
            for key in ("message", "detail", "error"):
                if isinstance(document.get(key), str) and document[key]:
                    return str(document[key])
        return reason
    if content_type.startswith("text/plain"):
        text = " ".join(body.decode("utf-8", "replace").split())
        return shorten(text, 200) or reason
    return reason


# --- what the command prints -------------------------------------------------------------------


def report_line(report: FileReport, through_server: bool) -> str:
    if report.error:
        # (logs / metrics lines are not counted here: a failure over them says so itself)
        return f"{report.path}: cannot import: {report.error}" + _bad_lines(report)
    if report.skipped:
        return f"{report.path}: {report.skipped}"
    if report.empty:
        return f"{report.path}: empty file, nothing to import"
    if through_server:
        return (
            f"{report.path}: {report.format}, {report.spans + report.rejected} spans sent, "
            f"{report.spans} accepted, {report.rejected} rejected" + _passed_over(report)
        )
    return (
        # spans = new + duplicates + rejected, as "spans sent" is through a server
        f"{report.path}: {report.format}, {report.spans + report.rejected} spans, "
        f"{report.stored} new, "
        f"{report.duplicates} duplicates, {report.rejected} rejected" + _passed_over(report)
    )


def _passed_over(report: FileReport) -> str:
    text = ""
    if report.other_signal_lines:
        text += f"; {_plural(report.other_signal_lines, 'line')} of logs/metrics skipped"
    return text + _bad_lines(report)


def _bad_lines(report: FileReport) -> str:
    if not report.bad_parts:
        return ""
    framed = report.format in (OTLP_PROTOBUF_FRAMED, OTLP_ZSTD_FRAMED)
    # A whole-document format's part is a document (a cut one: "1 bad line" named a
    # unit the format does not have; a user review).
    lined = report.format == OTLP_JSONL
    noun = "bad message" if framed else "bad line" if lined else "bad document"
    return f"; {_plural(report.bad_parts, noun)} skipped"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def incomplete(report: FileReport) -> bool:
    """The file failed, was read only in part, or every span it held was rejected: the
    run's exit status says so (a file of ids no reader takes, 0 spans stored, ended
    with 0, which a script read as success)."""
    return bool(report.error or report.bad_parts or _all_rejected(report))


def _nothing_readable(report: FileReport) -> bool:
    """Every part of it was passed over (a single cut-off document, say): not "read in
    part", though its parts are counted so."""
    return bool(report.bad_parts and not (report.error or report.spans or report.rejected))


def _read_in_part(report: FileReport) -> bool:
    """Some parts passed over, some spans taken from the rest."""
    return bool(report.bad_parts and not report.error and report.spans)


def _all_rejected(report: FileReport) -> bool:
    return bool(report.rejected and not (report.spans or report.error))


def summary_line(reports: Sequence[FileReport], server_url: str | None, seconds: float) -> str:
    read = sum(not (r.error or r.skipped or r.empty or _nothing_readable(r)) for r in reports)
    counts = f"from {read} of {len(reports)} files"
    if server_url is None:
        text = f"imported {sum(r.stored for r in reports)} new spans {counts} in {seconds:.1f}s"
    else:
        accepted = sum(r.spans for r in reports)
        rejected = sum(r.rejected for r in reports)
        text = (
            f"sent {accepted + rejected} spans {counts} to {otlp_base_url(server_url)} in "
            f"{seconds:.1f}s: {accepted} accepted, {rejected} rejected"
        )
        if accepted:
            # The answer has no count of duplicates: claim nothing about "new".
            text += "; the server stores only those it does not already have"
    return text + "".join(_not_read(reports))


def _not_read(reports: Sequence[FileReport]) -> list[str]:
    skipped = sum(bool(r.skipped) for r in reports)
    empty = sum(r.empty for r in reports)
    failed = sum(bool(r.error) for r in reports)
    unreadable = sum(_nothing_readable(r) for r in reports)
    rejected = sum(_all_rejected(r) for r in reports)
    partly = sum(_read_in_part(r) for r in reports)
    parts = []
    if skipped:
        parts.append(f"; {skipped} already imported, skipped (--force reads them again)")
    if empty:
        parts.append(f"; {empty} empty")
    if partly:
        parts.append(f"; {partly} imported in part")
    if unreadable:
        parts.append(f"; {unreadable} with nothing readable")
    if rejected:
        # The exit status is 1 for them (``incomplete``): the line says why.
        parts.append(f"; {rejected} with every span rejected")
    if failed:
        parts.append(f"; {failed} failed")
    return parts


def _when(imported_at: object) -> str:
    """When a file was imported, as stored: UTC since flowscope's DuckDB time zone is
    UTC; local time in files an older release recorded (not told apart)."""
    if isinstance(imported_at, datetime):
        return imported_at.isoformat(sep=" ", timespec="seconds") + " UTC"
    return str(imported_at)
