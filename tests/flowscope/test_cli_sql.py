"""``flowscope sql``: on the file, through a running server (found or named), and refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from flowscope.cli import main
from flowscope.collector.decode import decode
from flowscope.store.database import Database
from flowscope.store.writer import SpanWriter
from flowscope.testing.otlp import key_values, request_for, span_id, trace_id
from flowscope.testing.ports import free_port
from flowscope.testing.server import ServerProcess, start_server_process
from tests.ctrl_c import ctrl_c_at_the_read, read_threads

GOLDEN = Path(__file__).parents[1] / "golden"
TOKEN = "sql-token"
T0 = 1_767_225_600_000_000_000
QUERY = (
    "SELECT ServiceName AS service, count(*) AS spans, sum(Duration) / 1e6 AS total_ms, "
    "max(SpanAttributes['http.route']) AS route "
    "FROM otel_traces GROUP BY ServiceName ORDER BY service"
)


def shop_requests() -> list[ExportTraceServiceRequest]:
    """Three spans with known names and durations (ms): checkout 10 + 4, ledger 2.5."""
    root = Span(
        trace_id=trace_id(1),
        span_id=span_id(1),
        name="POST /orders",
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=T0,
        end_time_unix_nano=T0 + 10_000_000,
    )
    root.attributes.extend(key_values({"http.route": "/orders"}))
    charge = Span(
        trace_id=trace_id(1),
        span_id=span_id(2),
        parent_span_id=span_id(1),
        name="charge",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=T0 + 1_000_000,
        end_time_unix_nano=T0 + 5_000_000,
        status=Status(code=Status.STATUS_CODE_ERROR, message="declined"),
    )
    entry = Span(
        trace_id=trace_id(1),
        span_id=span_id(3),
        parent_span_id=span_id(2),
        name="INSERT entry",
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=T0 + 2_000_000,
        end_time_unix_nano=T0 + 4_500_000,
    )
    return [request_for("checkout", [root, charge]), request_for("ledger", [entry])]


def _golden(name: str, text: str, update: bool) -> None:
    path = GOLDEN / name
    if update:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.fixture
def stored_db(db_path: Path) -> Path:
    database = Database(db_path)
    writer = SpanWriter(database)
    writer.start()
    try:
        for request in shop_requests():
            batch = decode(request.SerializeToString()).batch
            writer.write(batch.table, batch.keys, timeout=30)
    finally:
        writer.shutdown()
        database.close()
    return db_path


def _sql(*args: str) -> Result:
    return CliRunner().invoke(main, ["sql", *args], env={"FLOWSCOPE_TOKEN": ""})


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_formats_on_the_file(stored_db: Path, fmt: str, update_golden: bool) -> None:
    result = _sql(QUERY, "--db", str(stored_db), "--format", fmt)
    assert result.exit_code == 0, result.output
    _golden(f"cli_sql.{fmt}.txt", result.stdout, update_golden)


def test_table_is_the_default_format(stored_db: Path) -> None:
    assert _sql(QUERY, "--db", str(stored_db)).stdout == (GOLDEN / "cli_sql.table.txt").read_text()


def test_row_limit_says_it_stopped(stored_db: Path) -> None:
    result = _sql(
        "SELECT SpanName FROM otel_traces ORDER BY SpanName",
        "--db",
        str(stored_db),
        "--limit",
        "2",
        "--format",
        "csv",
    )
    assert result.exit_code == 0
    assert result.stdout == "SpanName\nINSERT entry\nPOST /orders\n"
    assert "(stopped at 2 rows; use --limit for more)" in result.stderr


@pytest.mark.parametrize(
    ("query", "rule"),
    [
        ("DELETE FROM otel_traces", "select-only"),
        ("DROP TABLE otel_traces", "select-only"),
        ("SELECT 1; SELECT 2", "one-statement"),
        ("ATTACH ':memory:' AS other", "no-attach"),
        ("SELECT * FROM read_csv('/etc/passwd')", "no-file-access"),
        ("SET threads = 1", "no-set"),
        # Before: a RecursionError traceback (3,000 levels), a segfault (20,000).
        ("SELECT (repeat('[', 20000) || repeat(']', 20000))::JSON::VARIANT AS v", "no-variant"),
    ],
)
def test_refusals_exit_non_zero_and_name_the_rule(stored_db: Path, query: str, rule: str) -> None:
    result = _sql(query, "--db", str(stored_db))
    assert result.exit_code == 1
    assert f"flowscope: refused by rule {rule}: " in result.stderr
    assert result.stdout == ""


def test_errors_and_missing_database(stored_db: Path, tmp_path: Path) -> None:
    result = _sql("SELECT no_such_column FROM otel_traces", "--db", str(stored_db))
    assert result.exit_code == 1 and "no_such_column" in result.stderr
    missing = tmp_path / "missing.duckdb"
    result = _sql("SELECT 1", "--db", str(missing))
    assert result.exit_code == 1
    assert f"flowscope: {missing}: no such database" in result.stderr
    assert not missing.exists()
    # Nothing the refused and failed queries did changed the spans.
    assert (
        _sql(
            "SELECT count(*) AS n FROM otel_traces", "--db", str(stored_db), "--format", "csv"
        ).stdout
        == "n\n3\n"
    )


# --- through a running server -----------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    db = tmp_path_factory.mktemp("served") / "served.duckdb"
    server = start_server_process(db, "--decode-workers", "0", env={"FLOWSCOPE_TOKEN": TOKEN})
    try:
        for request in shop_requests():
            answer = httpx.post(
                f"{server.endpoints.http}/v1/traces",
                content=request.SerializeToString(),
                headers={
                    "Content-Type": "application/x-protobuf",
                    "Authorization": f"Bearer {TOKEN}",
                },
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
        yield server, db
    finally:
        server.stop()


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_server_found_through_the_database_gives_the_same_output(
    served: tuple[ServerProcess, Path], fmt: str
) -> None:
    _, db = served
    result = _sql(QUERY, "--db", str(db), "--format", fmt, "--token", TOKEN)
    assert result.exit_code == 0, result.output
    assert result.stdout == (GOLDEN / f"cli_sql.{fmt}.txt").read_text(encoding="utf-8")


def test_server_named_with_server_url(served: tuple[ServerProcess, Path]) -> None:
    server, _ = served
    result = _sql(QUERY, "--server", server.endpoints.ui, "--token", TOKEN)
    assert result.exit_code == 0, result.output
    assert result.stdout == (GOLDEN / "cli_sql.table.txt").read_text(encoding="utf-8")
    limited = _sql(
        "SELECT SpanName FROM otel_traces ORDER BY SpanName",
        "--server",
        server.endpoints.ui + "/",
        "--token",
        TOKEN,
        "--limit",
        "1",
        "--format",
        "csv",
    )
    assert limited.stdout == "SpanName\nINSERT entry\n"
    assert "(stopped at 1 rows; use --limit for more)" in limited.stderr


def test_server_caps_the_row_limit_and_takes_the_time_limit(
    served: tuple[ServerProcess, Path],
) -> None:
    server, _ = served
    ask = ("--server", server.endpoints.ui, "--token", TOKEN, "--format", "csv")
    capped = _sql("SELECT * FROM range(10005)", *ask, "--limit", "20000")
    assert capped.exit_code == 0
    assert len(capped.stdout.splitlines()) == 1 + 10_000
    # Before: "(stopped at 20000 rows; use --limit for more)", which more --limit cannot fix.
    assert "(stopped at 10000 rows, the server's limit)" in capped.stderr
    # Before, --timeout was not sent: the server's 10 s applied.
    slow = "SELECT count(*) FROM range(100000) a, range(100000) b, range(100) c"
    stopped = _sql(slow, *ask, "--timeout", "0.2")
    assert stopped.exit_code == 1
    assert "refused by rule time-limit: the query ran longer than the 0.2 s limit" in (
        stopped.stderr
    )


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--limit", "0", "Invalid value for '--limit'"),
        ("--limit", "-1", "Invalid value for '--limit'"),
        ("--timeout", "0", "Invalid value for '--timeout'"),
        ("--timeout", "-1", "Invalid value for '--timeout'"),
        ("--timeout", "nan", "Invalid value for '--timeout': 'nan' is not a finite number"),
    ],
)
def test_bad_limits_are_errors_not_tracebacks(
    stored_db: Path, option: str, value: str, message: str
) -> None:
    result = _sql("SELECT 1", "--db", str(stored_db), option, value)
    assert result.exit_code in (1, 2) and message in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_server_refusals_name_the_rule(served: tuple[ServerProcess, Path]) -> None:
    server, db = served
    result = _sql("DELETE FROM otel_traces", "--db", str(db), "--token", TOKEN)
    assert result.exit_code == 1
    # The words a file gives, not wrapped in "server refused: ...".
    assert result.stderr.startswith("flowscope: refused by rule select-only: ")
    result = _sql("SELECT 1; SELECT 2", "--server", server.endpoints.ui, "--token", TOKEN)
    assert result.exit_code == 1
    assert "refused by rule one-statement" in result.stderr
    result = _sql("SELECT count(*) FROM otel_traces", "--db", str(db))  # no token
    assert result.exit_code == 1
    assert "refused: missing or wrong bearer token (give its token with --token" in result.stderr
    count = _sql(
        "SELECT count(*) AS n FROM otel_traces",
        "--db",
        str(db),
        "--token",
        TOKEN,
        "--format",
        "csv",
    )
    assert count.stdout == "n\n3\n"


def test_unreachable_server() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = _sql("SELECT 1", "--server", url)
    assert result.exit_code == 1
    assert f"flowscope: cannot reach {url}/api/sql" in result.stderr


def test_malformed_server_url_is_an_error_not_a_traceback() -> None:
    result = _sql("SELECT 1", "--server", "http://[::1")
    assert result.exit_code == 1
    assert "flowscope: 'http://[::1' is not a usable server URL" in result.stderr


def test_ctrl_c_stops_a_query_on_a_file_at_once(stored_db: Path) -> None:
    """A query on a file ran in the CLI's main thread, where DuckDB held off Python's
    SIGINT handler until it ended: Ctrl-C waited for --timeout (up to a day), then a
    traceback. The query now runs on a thread; Ctrl-C interrupts it."""
    from flowscope.cli_analysis import analysis_source

    endless = "SELECT count(*) FROM range(10000000000000) t(x) WHERE x % 7 = 3"
    before = set(read_threads())  # other tests' readers may still have theirs
    with (
        ctrl_c_at_the_read() as took,
        analysis_source(str(stored_db), None, None, None) as s,
    ):
        s.sql(endless, 10, 20)
    assert took() < 10  # not the 20 s of its time limit
    assert set(read_threads()) <= before  # the command's read thread has ended


def test_ctrl_c_again_while_a_read_is_stopped_does_not_cut_the_stop_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A second Ctrl-C fired inside the interrupt loop, before the query had been
    interrupted even once: the file was then closed under the running query (a
    traceback), or the exit waited for it (up to its --timeout)."""
    from concurrent.futures import Future

    from flowscope import interrupts as ctrl_c

    running: Future[None] = Future()
    interrupts: list[int] = []

    class Reads:
        def interrupt_reads(self, only: object) -> None:
            interrupts.append(1)
            if len(interrupts) == 3:  # the query stops at the third interrupt
                running.set_result(None)

    pressed = iter([True, False, False, False])

    def wait_pressing_ctrl_c(futures: object, timeout: float) -> None:
        if next(pressed):
            raise KeyboardInterrupt  # the second Ctrl-C, in the middle of the stop

    monkeypatch.setattr(ctrl_c, "wait", wait_pressing_ctrl_c)
    reads = ctrl_c.InterruptibleReads(object(), Reads())
    reads._stop(running, None)
    assert len(interrupts) == 3 and reads.stopped_cleanly


def test_now_is_utc_like_the_spans_whatever_the_machine_zone(tmp_path: Path) -> None:
    """docs/schema.md's "last hour" query matched nothing east of UTC and hours too
    many west of it: DuckDB's now() was the machine's wall clock, the spans UTC."""
    import os
    import subprocess
    import sys
    import time

    from flowscope.testing.otlp import realistic_request

    db = tmp_path / "recent.duckdb"
    database = Database(db)
    writer = SpanWriter(database, journal=False)
    writer.start()
    try:
        ten_minutes_ago = time.time_ns() - 600 * 10**9
        batch = decode(
            realistic_request(2, start_ns=ten_minutes_ago).SerializeToString(),
            "application/x-protobuf",
        ).batch
        writer.write(batch.table, batch.keys)
    finally:
        writer.shutdown()
        database.close()
    last_hour = (
        "SELECT count(*) FROM otel_traces WHERE Timestamp > now()::TIMESTAMP_NS - INTERVAL 1 HOUR"
    )
    command = [sys.executable, "-m", "flowscope.cli", "sql", "--db", str(db), "--format", "csv"]
    counts = set()
    for zone in ("UTC", "Asia/Tokyo", "America/Los_Angeles"):
        answer = subprocess.run(
            [*command, last_hour],
            capture_output=True,
            text=True,
            env={**os.environ, "TZ": zone},
            timeout=120,
            check=False,
        )
        assert answer.returncode == 0, answer.stderr
        counts.add(answer.stdout.splitlines()[1])
    assert counts == {str(batch.table.num_rows)}


def test_a_query_from_standard_input(tmp_path: Path) -> None:
    """`sql -` sent "-" as the query: a parse error."""
    database = Database(tmp_path / "q.duckdb")
    database.close()
    result = CliRunner().invoke(
        main,
        ["sql", "-", "--db", str(tmp_path / "q.duckdb"), "--format", "json"],
        input="SELECT 41 + 1 AS answer\n",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"answer": 42}]


def test_a_query_from_standard_input_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    """Latin-1 met a traceback deep in DuckDB (a file) or httpx (a server)."""
    Database(tmp_path / "q.duckdb").close()
    result = CliRunner().invoke(
        main,
        ["sql", "-", "--db", str(tmp_path / "q.duckdb")],
        input="SELECT 'caf\xe9'".encode("latin-1"),
    )
    assert result.exit_code == 2
    assert "standard input is not valid UTF-8 (byte 11)" in result.stderr
    # After a BOM the byte is still counted from the start of the input (it said 11).
    with_bom = CliRunner().invoke(
        main,
        ["sql", "-", "--db", str(tmp_path / "q.duckdb")],
        input=b"\xef\xbb\xbf" + "SELECT 'caf\xe9'".encode("latin-1"),
    )
    assert "standard input is not valid UTF-8 (byte 14)" in with_bom.stderr


def test_json_keeps_text_as_written(stored_db: Path) -> None:
    """ "ördér" came out as "\\u00f6rd\\u00e9r", where csv and the analysis commands'
    JSON print it as written (a user review)."""
    result = _sql("SELECT 'ördér 漢' AS r", "--db", str(stored_db), "--format", "json")
    assert result.exit_code == 0, result.output
    assert '"r": "ördér 漢"' in result.stdout
    assert json.loads(result.stdout) == [{"r": "ördér 漢"}]
