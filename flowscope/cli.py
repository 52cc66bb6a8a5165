"""The ``flowscope`` command line (DESIGN.md §5)."""

from __future__ import annotations

import codecs
import errno
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flowscope import __version__
from flowscope.cli_analysis import analysis_source, register_analysis_commands
from flowscope.cli_common import (
    FiniteFloatRange,
    default_db,
    emit,
    fail,
    render_rows,
    running_server,
    say,
    server_options,
    server_url_option,
    serving,
    start_server,
)
from flowscope.cli_demo import register_demo_commands
from flowscope.console import unread_variables
from flowscope.interrupts import exit_interrupted
from flowscope.logs import LOG_FORMAT

if TYPE_CHECKING:
    from flowscope.collector.file_import import FileReport


class _Commands(click.Group):
    """flowscope's commands; output that cannot be written (`> out.csv` on a full disk)
    ends a command with one line, not a traceback."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except KeyboardInterrupt:
            # Ctrl-C while the arguments are read: click said "Aborted!" with status 1.
            exit_interrupted()

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # `| head -1`: the reader has what it wanted. click exits 1 then, but only
            # when the output outgrew the pipe before the reader left: 0 or 1 by
            # timing, and by command (a scripts' `set -o pipefail` saw both). Always 0,
            # with the rest of the output dropped (Python's documented way).
            _drop_stdout()
            sys.exit(0)
        except OSError as exc:
            if exc.errno not in _OUTPUT_ERRORS or not _raised_writing(exc):
                raise
            fail(f"cannot write the output: {exc.strerror or exc}")
        except KeyboardInterrupt:
            # Ctrl-C: one line and 130 (128 + SIGINT), as a shell reports it. click said
            # "Aborted!" with status 1, which docs/cli.md gives to failures.
            exit_interrupted()
        except RuntimeError as exc:
            # DuckDB took the Ctrl-C itself, inside a query of the main thread (opening
            # the file reads its catalog): a traceback and status 1.
            if str(exc) != "Query interrupted":
                raise
            exit_interrupted()


def _drop_stdout() -> None:
    """Send the rest of standard output nowhere: its reader has gone (Python's
    documented way, so that the exit's flush does not fail again)."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no file behind it (a test's runner)
        pass


def _echo_on(text: str, err: bool = False) -> None:
    """A line of a command that goes on when its output's reader leaves (`import |
    head -1`): the import stopped after the first file and, exiting 0 like a read
    command, hid that the others were never imported."""
    try:
        click.echo(text, err=err)
    except BrokenPipeError:
        _drop_stdout()


_OUTPUT_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


def _raised_writing(exc: OSError) -> bool:
    """Whether ``exc`` came from writing the command's output (``click.echo``), not
    from reading or writing a file on the way (a journal segment's EIO read as
    "cannot write the output")."""
    frame = exc.__traceback__
    while frame is not None:
        code = frame.tb_frame.f_code
        if code.co_name == "echo" and code.co_filename.endswith(os.path.join("click", "utils.py")):
            return True
        frame = frame.tb_next
    return False


@click.group(
    cls=_Commands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="flowscope")
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail to stderr.")
def main(verbose: bool) -> None:
    """flowscope: OTLP traces in, service maps and business flows out."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format=LOG_FORMAT,
    )
    running = main.commands.get(click.get_current_context().invoked_subcommand or "")
    options = _long_options(running) if running else set()
    elsewhere: dict[str, list[str]] = {}
    for name, command in sorted(main.commands.items()):
        if not command.hidden:
            for option in _long_options(command) - options:
                elsewhere.setdefault(option, []).append(name)
    for warning in unread_variables(options, elsewhere, _long_options(main)):
        click.echo(warning, err=True)


def _long_options(command: click.Command) -> set[str]:
    """Every ``--name`` option of ``command`` itself."""
    names = {o for p in command.params if isinstance(p, click.Option) for o in p.opts}
    return {name for name in names if name.startswith("--")}


@main.command()
@server_options
@click.option(
    "--max-request-bytes",
    default=20 * 1024 * 1024,
    show_default=True,
    type=int,
    help="Largest OTLP request accepted, compressed or not (larger: 413); 1024..2147483647.",
)
@click.option(
    "--max-queued-spans",
    default=200_000,
    show_default=True,
    type=int,
    help="Spans waiting for commit before receivers answer 'retry later'.",
)
@click.option(
    "--max-queued-bytes",
    default=256 * 1024 * 1024,
    show_default=True,
    type=int,
    help="Bytes of decoded spans waiting for commit before receivers answer 'retry "
    "later' (resources counted once per span, as stored); at least 1024.",
)
@click.option(
    "--dedup-window",
    default=1_000_000,
    show_default=True,
    type=int,
    help="Recently stored spans remembered to drop exporter retries (0: off).",
)
@click.option(
    "--memory-limit",
    default="",
    help=(
        "DuckDB memory limit, e.g. 2GB (default: DuckDB's); one SQL function call that"
        " builds a huge value is not held to it."
    ),
)
@click.option(
    "--decode-workers",
    default=-1,
    show_default="cores - 1, at least 1",
    type=int,
    help="Processes that decode OTLP requests (0: decode in the receiving threads; -1: automatic).",
)
@click.option(
    "--ingest-process/--no-ingest-process",
    default=True,
    show_default=True,
    help="Receive OTLP in a process of its own, ahead of analysis in priority "
    "(--no-ingest-process: in the server process).",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="A web page origin (https://shop.example.com, or * for any) whose browser OTLP "
    "exporter may send to OTLP/HTTP; repeat for more [env FLOWSCOPE_CORS_ORIGIN, "
    "space-separated].",
    envvar="FLOWSCOPE_CORS_ORIGIN",
)
def serve(
    db: str,
    host: str,
    grpc_port: int,
    http_port: int,
    ui_port: int,
    token: str | None,
    retention: timedelta | None,
    max_request_bytes: int,
    max_queued_spans: int,
    max_queued_bytes: int,
    dedup_window: int,
    memory_limit: str,
    decode_workers: int,
    ingest_process: bool,
    flows: str | None,
    cors_origins: tuple[str, ...],
) -> None:
    """Receive OTLP traces, store them in DuckDB, serve the API."""
    from flowscope.collector.ingest_process import IngestProcess, lower_priority, settle_heap
    from flowscope.server import ServeConfig

    config = ServeConfig(
        db=db,
        host=host,
        grpc_port=grpc_port,
        http_port=http_port,
        ui_port=ui_port,
        # Surrounding whitespace dropped, as clients drop it: a Secret or .env file's
        # final newline made a token no request could match.
        token=token.strip() if token is not None else None,
        retention=retention,
        max_request_bytes=max_request_bytes,
        max_queued_spans=max_queued_spans,
        max_queued_bytes=max_queued_bytes,
        dedup_window=dedup_window,
        memory_limit=memory_limit,
        decode_workers=decode_workers,
        ingest_process=ingest_process,
        flows=flows,
        cors_origins=cors_origins,
    )
    server, stop = start_server(config)
    with serving(server):
        assert server.database is not None
        if isinstance(server.ingest, IngestProcess):
            # Acknowledgements first: the receivers keep their priority, analysis yields.
            lower_priority()
        # Full GC passes stall every thread here too: analysis, and with
        # --no-ingest-process the acknowledgements.
        settle_heap()
        if stop.requested.is_set():
            # Asked while the file opened (DuckDB held the main thread, so the signal
            # was taken only now): no "ready" for a server that is about to stop.
            say("flowscope: asked to stop while starting")
            return
        click.echo(
            f"flowscope {__version__} storing spans in {db} ({server.database.span_count()} spans)"
        )
        click.echo(f"  OTLP/gRPC  {server.grpc_address}")
        click.echo(f"  OTLP/HTTP  {server.otlp_http_url}/v1/traces")
        click.echo(
            f"  API        {server.ui_url}   (health {server.ui_url}/healthz, API docs {server.ui_url}/docs)"
        )
        if host in ("0.0.0.0", "::", ""):
            # The lines above are where this machine reaches it; others use its address.
            click.echo(
                f"  (listening on every interface, {host or '*'}; from elsewhere use this host's address)"
            )
        click.echo("ready; Ctrl-C or SIGTERM stops and flushes", nl=True)
        sys.stdout.flush()
        stop.wait()


@main.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option(
    "--db",
    default=default_db,
    show_default="./flowscope.duckdb or $FLOWSCOPE_DB",
    help="DuckDB file to import into (created if missing).",
)
@click.option(
    "--server",
    "server_url",
    default=None,
    callback=server_url_option,
    help="Send to a running server's OTLP/HTTP base URL instead of opening --db.",
)
@click.option(
    "--token",
    envvar="FLOWSCOPE_TOKEN",
    default=None,
    help="Bearer token for --server [env FLOWSCOPE_TOKEN].",
)
@click.option("--force", is_flag=True, help="Read files again even if they were imported before.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar (default: when stderr is a terminal).",
)
def import_(
    files: tuple[Path, ...],
    db: str,
    server_url: str | None,
    token: str | None,
    force: bool,
    progress: bool | None,
) -> None:
    """Load trace files: OTLP JSON / JSON lines / protobuf, Jaeger JSON (UI, API v3), Grafana
    Tempo JSON, Zipkin v2 JSON; any of them gzip- or zstd-compressed."""
    from flowscope.collector.importer import incomplete, report_line, summary_line
    from flowscope.collector.utf8_repair import repaired_warning
    from flowscope.durations import DEFAULT_RETENTION, format_duration

    show = sys.stderr.isatty() if progress is None else progress
    started = time.perf_counter()
    bars = _ProgressBars(show)
    done: list[FileReport] = []

    def echo(report: FileReport, through_server: bool) -> None:
        """A file's lines as soon as it is done (an interrupted import says what it did)."""
        done.append(report)
        bars.close()
        # Failed and skipped files are remarks (stderr); stdout is what was read.
        _echo_on(report_line(report, through_server), err=bool(report.error or report.skipped))
        for message in report.messages or []:
            click.echo(f"  rejected: {message}", err=True)
        if report.server_warning:
            more = report.server_warnings - 1
            also = f" (and in {more} more of its answers for this file)" if more else ""
            click.echo(f"  server warns: {report.server_warning}{also}", err=True)
        if report.repaired_strings:
            click.echo(f"  repaired: {repaired_warning(report.repaired_strings)}", err=True)
        for note in report.bad_notes:
            click.echo(f"  skipped {note}", err=True)
        if report.old_spans:
            keep = format_duration(DEFAULT_RETENTION)
            click.echo(
                f"  note: {report.old_spans} of its spans started more than {keep} ago: "
                f"`flowscope serve` deletes them at its first sweep (--retention {keep} "
                "unless told otherwise); serve with --retention off to keep them",
                err=True,
            )

    route = _ImportRoute()
    try:
        reports, sent_to = _run_import(list(files), db, server_url, token, force, bars, echo, route)
    except KeyboardInterrupt:
        bars.close()
        if len(done) == len(files):  # while the file was being closed, after the last
            click.echo("flowscope: interrupted as it finished; every file above is done", err=True)
        else:
            click.echo(
                "flowscope: interrupted: the files above are done; the one being read was "
                f"stopped part-way ({_what_is_kept(route)})",
                err=True,
            )
        sys.exit(130)
    bars.close()
    _echo_on(summary_line(reports, sent_to, time.perf_counter() - started))
    if any(incomplete(report) for report in reports):
        sys.exit(1)  # after the other files were imported


@dataclass
class _ImportRoute:
    """Where an import's spans go, once it is known (an interrupt words what is kept
    by it)."""

    through_server: bool = False


def _what_is_kept(route: _ImportRoute) -> str:
    if route.through_server:
        # The server remembers no file: a second run sends it all again, and only the
        # dedup window stands between its first part and a second copy.
        return (
            "the spans the server acknowledged are kept; sent again, the server stores "
            "only those it does not already hold among the spans it stored last "
            "(its --dedup-window)"
        )
    return "the spans it stored are kept; importing it again stores the rest"


def _run_import(
    files: list[Path],
    db: str,
    server_url: str | None,
    token: str | None,
    force: bool,
    bars: _ProgressBars,
    echo: Callable[[FileReport, bool], None],
    route: _ImportRoute,
) -> tuple[list[FileReport], str | None]:
    """The reports (each given to ``echo`` when its file is done, with whether it went
    through a server), and the server URL the spans went to (None: into ``db``)."""
    from flowscope.collector.file_import import FileReport, is_a_file, unreadable
    from flowscope.collector.importer import import_into_database, import_into_server
    from flowscope.interrupts import interrupts_deferred
    from flowscope.store.database import (
        Database,
        DatabaseLocked,
        StoreError,
        file_failure,
        remove_new_database,
    )

    if server_url is None and not any(is_a_file(path) for path in files):
        # Nothing to read: do not create a database for a mistyped name.
        reports = [FileReport(str(path), error=unreadable(path)) for path in files]
        for report in reports:
            echo(report, False)
        return reports, None
    if server_url is None:
        created = not os.path.lexists(db)
        try:
            database = Database(db)
        except DatabaseLocked as exc:
            info = running_server(db)
            if info is None:
                fail(str(exc))
            server_url = info.otlp_http_url
            click.echo(f"{db} is held by a running server; sending to {server_url}", err=True)
        except StoreError as exc:
            fail(str(exc))
        else:
            import duckdb

            try:
                reports = import_into_database(
                    files,
                    database,
                    force=force,
                    progress=bars.factory,
                    on_report=lambda report: echo(report, False),
                )
            except duckdb.Error as exc:  # a damaged file fails at its first read
                fail(str(file_failure(db, exc)))
            except StoreError as exc:  # ... said so already (Database.recent_span_keys)
                fail(str(exc))
            finally:
                with interrupts_deferred():
                    database.close()
            if created and not any(report.stored for report in reports):
                # Nothing was stored: the database made for the files holds nothing (a
                # file of another kind, or only empty ones, left an empty one behind; a
                # missing one did not).
                remove_new_database(db)
            return reports, None
    assert server_url is not None
    route.through_server = True
    reports = import_into_server(
        files,
        server_url,
        token=token,
        progress=bars.factory,
        on_report=lambda report: echo(report, True),
    )
    return reports, server_url


BAR_REDRAW_S = 1.0


class _ProgressBars:
    """One bar at a time: files are read one after another, and a finished file's bar
    is closed (cleared, ``leave=False``) when the next one starts; closed only at the
    end, they stacked up, each at 100 %."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._closed = threading.Event()
        self._clock: threading.Thread | None = None

    def factory(self, name: str, total: int) -> Callable[[int], None]:
        if not self.enabled:
            return lambda _n: None
        from tqdm import tqdm

        self.close()
        bar = tqdm(total=total, unit="B", unit_scale=True, desc=Path(name).name, leave=False)
        self._bar = bar
        self._closed = closed = threading.Event()
        # tqdm redraws only on an update: while one large JSON document was parsed (32
        # s of a 298 MB Jaeger file's 58) the bar stood still at 0 %, as if hung. Its
        # clock now moves.
        self._clock = threading.Thread(
            target=_keep_drawing, args=(bar, closed), name="progress-clock", daemon=True
        )
        self._clock.start()
        return lambda n: bar.update(n)

    def close(self) -> None:
        self._closed.set()
        if self._clock is not None:
            self._clock.join()
            self._clock = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _keep_drawing(bar: Any, closed: threading.Event) -> None:
    while not closed.wait(BAR_REDRAW_S):
        bar.refresh()


@main.command()
@click.argument("query")
@click.option(
    "--db",
    default=default_db,
    show_default="./flowscope.duckdb or $FLOWSCOPE_DB",
    help="DuckDB file to query (read-only).",
)
@click.option(
    "--server",
    "server_url",
    default=None,
    callback=server_url_option,
    help="Query a running server's API at this URL.",
)
@click.option(
    "--token",
    envvar="FLOWSCOPE_TOKEN",
    default=None,
    help="Bearer token for --server [env FLOWSCOPE_TOKEN].",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="table: for reading (6 significant digits below 1e6; control characters as "
    "escapes, like \\n); "
    "json: an object per row (a repeated column name gets _2, _3); csv: the JSON "
    "answer's values in full (a float's every digit; DECIMAL is a float there, NaN and "
    "infinities empty, as JSON has them null; true/false; lists, maps and structs as "
    'JSON text; RFC 4180 quoting; NULL empty and empty text "", as DuckDB\'s COPY writes '
    "them).",
)
@click.option(
    "--limit",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Most rows returned (a server caps it at its own limit).",
)
@click.option(
    "--timeout",
    default=10.0,
    show_default=True,
    type=FiniteFloatRange(min=0, min_open=True, max=86_400),
    help="Seconds before the query is stopped (a server caps it at its own limit).",
)
def sql(
    query: str,
    db: str,
    server_url: str | None,
    token: str | None,
    fmt: str,
    limit: int,
    timeout: float,
) -> None:
    """Run one read-only SELECT over the spans (table otel_traces); QUERY "-" reads it
    from standard input (a query kept in a file: < q.sql)."""
    if query == "-":
        given = sys.stdin.buffer.read()
        # A BOM is dropped before decoding, so the bad byte is counted from the input's
        # start as an editor shows it, not from after the BOM.
        bom = len(codecs.BOM_UTF8) if given.startswith(codecs.BOM_UTF8) else 0
        try:  # bytes: a Latin-1 file met a traceback deep in DuckDB, or in httpx
            query = given[bom:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise click.BadParameter(
                f"standard input is not valid UTF-8 (byte {bom + exc.start}); "
                "save the query as UTF-8",
                param_hint="QUERY",
            ) from exc
    with analysis_source(db, server_url, token, None) as source:
        out = source.sql(query, limit, timeout)
        emit(render_rows(out.columns, out.rows, fmt))
        if out.truncated and len(out.rows) < min(limit, out.row_limit):
            click.echo(
                f"(stopped at {len(out.rows)} rows: the answer reached its size limit, "
                "about 32 million characters of values)",
                err=True,
            )
        elif out.truncated and out.row_limit < limit:
            click.echo(f"(stopped at {out.row_limit} rows, the server's limit)", err=True)
        elif out.truncated:
            click.echo(f"(stopped at {limit} rows; use --limit for more)", err=True)
        elif not out.rows and fmt == "table":  # a bare header read as a failure
            click.echo("(no rows)", err=True)


register_analysis_commands(main)  # map, flows, flow, traces, trace, compare
register_demo_commands(main)  # demo, reference-app

if __name__ == "__main__":
    from flowscope.console import run

    run(main)
