"""What the CLI commands share: option types, database resolution, output formats."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from flowscope.durations import (
    DEFAULT_RETENTION,
    MAX_RETENTION,
    TOO_LONG_RETENTION,
    format_duration,
    parse_duration,
)

if TYPE_CHECKING:  # the server's modules load when a command runs, not for --help
    from flowscope.server import FlowscopeServer, ServeConfig

DEFAULT_DB = "flowscope.duckdb"


def default_db() -> str:
    # An empty FLOWSCOPE_DB is unset, not "": DuckDB opens "" in memory, and serve
    # acknowledged spans it then lost.
    return os.environ.get("FLOWSCOPE_DB") or DEFAULT_DB


def _plain_host(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """``--host`` as the socket takes it: "[::1]" (as in a URL) and "127.0.0.1 " (a
    pasted space) were warned about as non-loopback and then failed to resolve."""
    host = value.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


class DurationType(click.ParamType):  # type: ignore[type-arg]
    name = "duration"

    def __init__(self, at_most: tuple[timedelta, str] | None = None, *, off: bool = True) -> None:
        self.at_most = at_most  # the longest taken, and the refusal of a longer one
        # Whether 'off' (or 0) keeps all; else a positive duration is wanted (demo's
        # --duration, which 0 made run until Ctrl-C, diff review).
        self.off = off

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, timedelta) or value is None:
            return value
        text = str(value).strip()
        # Zero however written ('00', '0.0', ' 0 ') is 'off' as '0' is: they were
        # refused as no duration while ' 5m' was taken (lifecycle review).
        if text.lower() in ("off", "none") or _ZERO.fullmatch(text):
            duration = timedelta(0)
        else:
            try:
                duration = parse_duration(text)
            except ValueError as exc:
                or_off = ", or 'off'" if self.off else ""
                self.fail(f"{exc}{or_off}", param, ctx)
            if not duration and float(re.sub(r"[^\d.]", "", text)) > 0:
                # Under a microsecond rounds to 0, which would keep every span (as 'off').
                self.fail(f"{text!r} is shorter than a microsecond", param, ctx)
        if not duration:  # '0s', '0d' too, which keep all like '0' (--help says so)
            if not self.off:
                self.fail(f"{text!r}: give a positive duration, e.g. 30s or 5m", param, ctx)
            return None
        if self.at_most is not None and duration > self.at_most[0]:
            # Refused as the other bad values are ("Invalid value for ..."), not later.
            self.fail(self.at_most[1], param, ctx)
        return duration


_ZERO = re.compile(r"0+(?:\.0*)?")


class FiniteFloatRange(click.FloatRange):
    """click's FloatRange of finite numbers: NaN passed every bound (no comparison with
    it is true), and `--min-duration nan` or `inf` reached the analyzer, whose message
    named its own parameter, with status 1."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if isinstance(number, float) and not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


@dataclass(frozen=True)
class ServerInfo:
    ui_url: str
    otlp_http_url: str
    token_required: bool


def running_server(db: str) -> ServerInfo | None:
    """The server that holds ``db``, from the file it writes beside it, once that server
    confirms it: a file left by a killed server names ports another process may have
    taken since (imports went to another server's database)."""
    import httpx

    from flowscope.server import server_info_path

    path = server_info_path(db)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        found = ServerInfo(info["ui_url"], info["otlp_http_url"], bool(info.get("token_required")))
        answer = httpx.get(f"{found.ui_url}/healthz", timeout=HEALTH_TIMEOUT_S).json()
    except (OSError, ValueError, KeyError, httpx.HTTPError):
        return None
    if not isinstance(answer, dict) or answer.get("pid") != info.get("pid"):
        return None
    return found


HEALTH_TIMEOUT_S = 5.0


def render_rows(columns: list[str], rows: list[list[Any]], fmt: str) -> str:
    if fmt == "json":
        # Unique keys: two columns of one name (a self-join's ServiceName) kept one.
        keys = unique_names(columns)
        # Text as written, as csv and the analysis commands print it: "ördér" came out
        # as "\u00f6rd\u00e9r" (a terminal that cannot write a character escapes it).
        return json.dumps(
            [dict(zip(keys, row, strict=True)) for row in rows],
            indent=2,
            default=str,
            ensure_ascii=False,
        )
    if fmt == "csv":
        lines = [_csv_line(columns)]
        lines.extend(_csv_line([_csv_value(v) for v in row]) for row in rows)
        return "\n".join(lines)
    # A query's columns are named by its author: a value is cut at its end, whatever
    # its column is called.
    return render_table(columns, rows, name_columns=frozenset())


def unique_names(columns: list[str]) -> list[str]:
    """``columns`` with a repeated name numbered from its second use: a, a_2, a_3."""
    taken = set(columns)
    seen: dict[str, int] = {}
    names = []
    for name in columns:
        seen[name] = seen.get(name, 0) + 1
        if seen[name] == 1:
            names.append(name)
            continue
        number = seen[name]
        while f"{name}_{number}" in taken:
            number += 1
        seen[name] = number
        taken.add(f"{name}_{number}")
        names.append(f"{name}_{number}")
    return names


def _csv_line(fields: Sequence[str | None]) -> str:
    """RFC 4180 quoting, and NULL (None) told from '' as DuckDB's COPY tells them: bare
    and quoted (Python's writer wrote both bare). A row of one NULL is quoted too: a
    blank line reads as no row. Quoted also: a field holding a lone CR (a row break to
    readers), which Python's writer with "\n" rows left bare."""
    if list(fields) == [None]:
        return '""'
    return ",".join(_csv_field(field) for field in fields)


def _csv_field(text: str | None) -> str:
    if text is None:
        return ""
    if text == "" or any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv_value(value: Any) -> str | None:
    """A value as exported: exact (a float's shortest round-trip digits, where the
    table's 6 digits turned an epoch in seconds into 1.79649e+09); None for NULL."""
    if value is None:
        return None
    if isinstance(value, bool):  # as JSON writes it, here and inside a list alike
        return "true" if value else "false"
    if isinstance(value, dict | list):
        # Text as it is: "Jürgen" in a map was "J\u00fcrgen".
        return json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _cell(value: Any) -> str:
    """A value as a table shows it: on one line, control characters as escapes."""
    if isinstance(value, float) and 0 < abs(value) < 1e-4:
        # Not 5e-06 beside 0.001 in one column (migrator review): milliseconds to the
        # nanosecond, the finest a span's times hold; under that (a median of 0 and
        # 1 ns), as it is, not rounded to 0 (diff review).
        text = f"{value:.6f}".rstrip("0").rstrip(".")
        return text if text.strip("-") != "0" else f"{value:.2g}"
    if isinstance(value, float) and abs(value) < 1e6:
        return f"{value:.6g}"
    return shown(_csv_value(value) or "")


# With the bidirectional controls (a right-to-left override in a span name reversed
# the rest of its table line on the terminal), the invisible ones (a zero-width space
# made two names look alike and a column drift) and the Unicode line separators.
_INVISIBLE = "\u00ad\u061c\u200b\u200e\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff"
_CONTROL = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_INVISIBLE}]")
_CONTROL_BUT_LINES = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{_INVISIBLE}]")
_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    return _ESCAPES.get(match[0], f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def shown(text: str) -> str:
    """``text`` for one line of a terminal: control characters as escapes. Span and
    service names are anyone's: a newline split a table row, and an ESC sequence from
    any OTLP sender reached the user's terminal."""
    return _CONTROL.sub(_escape, text)


def emit(text: str, nl: bool = True) -> None:
    """JSON, CSV or a diagram on stdout, exactly as made: ``click.echo`` strips ANSI
    sequences when stdout is not a terminal, which changed values in a CSV file and
    merged two services in a DOT file. On a terminal, control characters other than
    line breaks and tabs show as escapes."""
    if sys.stdout.isatty():  # \u00XX: still valid JSON when copied from the screen
        text = _CONTROL_BUT_LINES.sub(lambda m: f"\\u{ord(m[0]):04x}", text)
    click.echo(text, nl=nl, color=True)


def indent(depth: int) -> str:
    """A tree row's indent: two spaces a level, and past ``MAX_INDENT`` levels the
    depth as a number, so the name still fits (from depth ~33 on, rows of a deep
    trace showed only spaces and "…", and the table took O(depth²) to make)."""
    if depth <= MAX_INDENT:
        return "  " * depth
    return "  " * MAX_INDENT + f"[{depth}] "


MAX_INDENT = 12


def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: East Asian wide characters (CJK, most
    emoji) take two, combining marks none."""
    if text.isascii():
        return len(text)
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


def _prefix(text: str, max_width: int) -> str:
    """The longest start of ``text`` within ``max_width`` display columns."""
    if text.isascii():
        return text[: max(max_width, 0)]
    kept, width = [], 0
    for c in text:
        width += display_width(c)
        if width > max_width:
            break
        kept.append(c)
    return "".join(kept)


def fit_width(text: str, max_width: int, *, middle: bool = False) -> str:
    """``text`` cut to ``max_width`` display columns, with "…" where it was cut: at the
    end, or (``middle``) between its start and its end, which is where names that
    differ only in their last characters differ (two 170-character service names
    ending ``shard-0042`` and ``shard-0043`` read the same cut at the end)."""
    if display_width(text) <= max_width:
        return text
    room = max_width - 1
    if not middle:
        return _prefix(text, room) + "…"
    head = _prefix(text, (room + 1) // 2)
    tail = _prefix(text[::-1], room - display_width(head))[::-1]
    # Taken from the end, a combining mark can lead the tail without its letter: it
    # would sit on the "…".
    while tail and unicodedata.combining(tail[0]):
        tail = tail[1:]
    return f"{head}…{tail}"


def op_label(
    service: str, operation: str, *, lead: str = "", tail: str = "", width: int = 70
) -> str:
    """``lead + "service: operation" + tail`` within ``width`` columns, the service cut
    first: cut from the right, a long service name hid the operation, and two steps of
    one service read the same."""
    whole = f"{lead}{service}: {operation}{tail}"
    # Measured as the table shows it: a control character takes its escape's width.
    over = display_width(shown(whole)) - width
    if over <= 0:
        return whole
    visible = shown(service)
    keep = max(display_width(visible) - over, MIN_SERVICE_WIDTH)
    if keep < display_width(visible):
        service = fit_width(visible, keep, middle=True)
    return f"{lead}{service}: {operation}{tail}"


MIN_SERVICE_WIDTH = 12


# Never cut: ids a reader copies into the next command (a flow id of 2,011 characters
# was cut to 60, and the shown one named no flow).
WHOLE_COLUMNS = frozenset({"id", "trace_id", "span_id", "flow"})
# Names, cut in the middle when too long (fit_width): their ends tell them apart. Other
# text (attributes, messages, SQL values) is cut at its end, its start being the most
# telling part.
NAME_COLUMNS = frozenset(
    {"source", "target", "destination", "name", "root_service", "root_operation", "service"}
    | {"operation", "step", "under", "span"}
)


def render_table(
    columns: list[str],
    rows: list[list[Any]],
    max_width: int = 60,
    name_columns: frozenset[str] = NAME_COLUMNS,
) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    cells = [
        [
            c
            if columns[i] in WHOLE_COLUMNS
            else fit_width(c, max_width, middle=columns[i] in name_columns)
            for i, c in enumerate(row)
        ]
        for row in cells
    ]
    heads = [shown(c) for c in columns]
    widths = [display_width(c) for c in heads]
    for row in cells:
        widths = [max(w, display_width(c)) for w, c in zip(widths, row, strict=True)]
    numeric = [
        all(isinstance(row[i], int | float) or row[i] is None for row in rows) and bool(rows)
        for i in range(len(columns))
    ]

    def line(values: list[str]) -> str:
        parts = []
        for i, (v, w) in enumerate(zip(values, widths, strict=True)):
            pad = " " * (w - display_width(v))
            parts.append(pad + v if numeric[i] else v + pad)
        return "  ".join(parts).rstrip()

    out = [line(heads), "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def fail(message: str) -> NoReturn:
    click.echo(f"flowscope: {message}", err=True)
    sys.exit(1)


def say(message: str) -> None:
    """A line on stderr that cannot fail: a closed stderr must not skip a shutdown."""
    try:
        click.echo(message, err=True)
    except OSError:
        pass


# How often a main thread waiting for a stop runs Python code (StopRequest.wait).
STOP_POLL_S = 0.2


class StopRequest:
    """SIGINT, SIGTERM and SIGHUP, for a whole foreground command, as one request to stop.

    Installed before anything starts and kept to the end: the first signal asks the
    command to stop (``callbacks``); later ones only say it is stopping. A second
    Ctrl-C that raised KeyboardInterrupt inside a shutdown left the ingest process
    unstopped and the exit waiting for it for good; a SIGTERM before the load began
    killed the process with nothing committed or closed.
    """

    def __init__(self, stopping: str = "committing accepted spans") -> None:
        """``stopping``: what a later signal is told the command is doing."""
        self.requested = threading.Event()
        self.stopping = stopping
        self._callbacks: list[Callable[[], None]] = []

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        # A closed terminal or ssh session: stop as cleanly as for SIGTERM (it killed
        # the server with its journal, WAL and server.json left behind).
        signal.signal(signal.SIGHUP, self._on_signal)

    def _on_signal(self, _signum: int, _frame: Any) -> None:
        if self.requested.is_set():
            say(f"flowscope: already stopping; {self.stopping}")
            return
        self.request()

    def wait(self) -> None:
        """Until a stop is requested. In steps: the kernel may hand a signal to any thread
        that does not block it (DuckDB's, gRPC's), and then Python runs the handler only
        when the main thread next runs Python code. A wait without a timeout never did:
        a serve given SIGTERM in CI stayed up for good, its main thread still waiting.

        Not ``requested.wait``: the handler runs on this thread, and one that came while
        that wait held the event's lock blocked on the same lock in ``set``, for good (a
        serve ignored SIGTERM for 30 minutes in a test run). A sleep holds no lock."""
        while not self.requested.is_set():
            time.sleep(STOP_POLL_S)

    def request(self) -> None:
        self.requested.set()
        for callback in list(self._callbacks):
            callback()

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the request (at once if it came already)."""
        self._callbacks.append(callback)
        if self.requested.is_set():
            callback()


def server_url_option(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> str | None:
    """A ``--server`` value: an empty one was taken for a URL ("cannot reach /api/flows")."""
    if value is not None and not value.strip():
        raise click.BadParameter("is empty; give a server's URL, or leave --server out")
    if value is not None and "://" not in value:
        # httpx: "Request URL has an unsupported protocol 'localhost://'".
        raise click.BadParameter(f"{value!r} has no scheme; give it as http://{value.strip()}")
    return value


# A write-ahead log or span journal this large makes the open slow enough to say so.
SLOW_OPEN_BYTES = 64 * 2**20


def left_to_replay(db: str) -> str:
    """What a server that did not stop cleanly left beside ``db`` to be stored at the
    open, when it is large enough to take a while ("" otherwise)."""
    from flowscope.store.journal import in_use, journal_bytes, journal_path
    from flowscope.store.wal_keeper import wal_bytes

    directory = journal_path(db)
    if in_use(directory):
        return ""  # a running server's own: the open is refused, and says by whom
    wal_size = wal_bytes(db)
    journal = journal_bytes(directory) if directory is not None and directory.exists() else 0
    if wal_size + journal < SLOW_OPEN_BYTES:
        return ""
    parts = [f"DuckDB's write-ahead log holds {wal_size / 2**20:,.0f} MB"] if wal_size else []
    if journal:
        parts.append(f"the span journal {journal / 2**20:,.0f} MB")
    return " and ".join(parts)


def start_server(config: ServeConfig) -> tuple[FlowscopeServer, StopRequest]:
    """What serve and demo do before serving: validate the config (an error says why),
    warn about a non-loopback address without a token, take SIGINT/SIGTERM as a stop
    request (a failing ingest process requests it too), and start the server."""
    from flowscope.server import FlowscopeServer
    from flowscope.store.database import StoreError

    try:
        server = FlowscopeServer(config)  # validates the config
    except ValueError as exc:
        # An option's value: exit 2 like the values click checks (docs/cli.md).
        raise click.UsageError(str(exc)) from exc
    stop = StopRequest()
    stop.install()

    def failed(message: str) -> None:
        # Without its receivers the server has nothing to take: stop as Ctrl-C does.
        say(f"flowscope: {message}; stopping")
        stop.request()

    server.on_failure = failed
    left = left_to_replay(config.db)
    if left:
        # DuckDB replays and checkpoints before anything listens, and says nothing: a
        # restart after a crash of a 5 GB file was silent for 60-100 s (review).
        say(
            f"flowscope: {config.db}: {left}, left by a server that did not stop cleanly; "
            "storing it comes before listening (350 MB over a 4 GB file took 6 s in our tests)"
        )
    try:
        server.start()
    except (OSError, StoreError) as exc:
        fail(str(exc))
    if not config.is_loopback and not config.token:
        # Once it listens: before, a start that could not bind the address warned of
        # listening on it first.
        say(
            f"flowscope: warning: listening on {config.host} without --token; anyone who "
            "can reach this address can send spans and query them"
        )
    return server, stop


@contextmanager
def serving(server: Any) -> Iterator[None]:
    """Run the block with ``server`` started; then stop it and leave the process.

    Everything after the start belongs in here: a main thread that left any other
    way left the ingest process unstopped, and the exit waited for it for good.
    """
    closed_output = False
    try:
        yield
    except BrokenPipeError:
        # Whoever read the output closed it (`flowscope serve | head -1` may): stop
        # cleanly instead of serving with nobody told where.
        closed_output = True
        say("flowscope: standard output was closed")
    finally:
        say("flowscope: stopping; committing accepted spans")
        server.shutdown()
        say("flowscope: stopped")
    exit_after_clean_stop(1 if server.failure or closed_output else 0)


def exit_after_clean_stop(code: int = 0) -> None:
    """Leave a process whose server has committed and closed everything, without
    interpreter finalization: that kills daemon threads (gRPC, uvicorn, the exporters
    of the reference app) wherever they are, and one caught inside DuckDB's or gRPC's
    C++ aborts the process ("FATAL: exception not rethrown") after a clean stop."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            pass  # closed by whoever read it; nothing left to say there
    os._exit(code)


F = TypeVar("F", bound=Callable[..., Any])


def server_options(function: F) -> F:
    """The flags every command that runs a flowscope server takes (serve, demo)."""
    options = [
        click.option(
            "--db",
            default=default_db,
            show_default="./flowscope.duckdb or $FLOWSCOPE_DB",
            help="DuckDB file to store spans in (created if missing).",
        ),
        click.option(
            "--host",
            default="127.0.0.1",
            show_default=True,
            callback=_plain_host,
            help="Address every port binds to. On a loopback one without --token, the "
            "HTTP ports answer only requests for localhost, a loopback or unspecified "
            "address (0.0.0.0) or a name /etc/hosts gives a loopback one.",
        ),
        click.option(
            "--grpc-port",
            default=4317,
            show_default=True,
            type=int,
            help="OTLP/gRPC port (0: any free).",
        ),
        click.option(
            "--http-port",
            default=4318,
            show_default=True,
            type=int,
            help="OTLP/HTTP port (0: any free).",
        ),
        click.option(
            "--ui-port",
            default=8686,
            show_default=True,
            type=int,
            help="API port: JSON API, /docs, /healthz (0: any free).",
        ),
        click.option(
            "--token",
            envvar="FLOWSCOPE_TOKEN",
            default=None,
            help="Require 'Authorization: Bearer TOKEN' on OTLP and the API [env "
            "FLOWSCOPE_TOKEN: prefer it on a shared machine, where every user sees command lines].",
        ),
        click.option(
            "--flows",
            default=None,
            type=click.Path(exists=True, dir_okay=False),
            help="flows.yaml naming business flows and matching them (docs/analysis.md); read once, at start.",
        ),
        # demo too: it runs the same server on the same file, and that server deletes
        # what is older (a demo on a kept file had no way to keep it).
        click.option(
            "--retention",
            default=format_duration(DEFAULT_RETENTION),
            show_default=True,
            type=DurationType(at_most=(MAX_RETENTION, TOO_LONG_RETENTION)),
            help="Delete spans that started longer ago than this ('off' or 0 keeps all).",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function
