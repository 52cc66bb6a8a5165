"""The analyzer's read commands: ``map``, ``flows``, ``flow``, ``traces``, ``trace``, ``compare``.

Each reads the database file read-only, or a running server's JSON API when
``--server`` is given or the file is held by a server (the same records
either way, see ``flowscope.analysis_sources``), and prints a table, the API's
JSON, or a diagram.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import click

from flowscope.cli_columns import columns_option, echo_table, pick, scalar_fields
from flowscope.cli_common import (
    FiniteFloatRange,
    default_db,
    emit,
    fail,
    fit_width,
    indent,
    op_label,
    render_table,
    server_url_option,
    shown,
)
from flowscope.interrupts import InterruptibleReads

if TYPE_CHECKING:  # the CLI imports the analyzer only when a command runs
    from flowscope.analyzer.model import TraceSpan, TraceView

F = TypeVar("F", bound=Callable[..., Any])


def register_analysis_commands(group: click.Group) -> None:
    """Add the commands to ``flowscope`` (called by flowscope/cli.py)."""
    for command in (map_, flows, flow, traces, trace, compare):
        group.add_command(command)


def store_options(function: F) -> F:
    """--db, --server, --token and --flows: where the spans are and how flows are named."""
    for option in reversed(
        [
            click.option(
                "--db",
                default=default_db,
                show_default="./flowscope.duckdb or $FLOWSCOPE_DB",
                help="DuckDB file to read (read-only; through its server if one holds it).",
            ),
            click.option(
                "--server",
                "server_url",
                default=None,
                callback=server_url_option,
                help="Ask a running server's API at this URL instead of reading --db.",
            ),
            click.option(
                "--token",
                envvar="FLOWSCOPE_TOKEN",
                default=None,
                help="Bearer token for the server [env FLOWSCOPE_TOKEN].",
            ),
            click.option(
                "--flows",
                "flows_file",
                default=None,
                type=click.Path(dir_okay=False),
                help="flows.yaml naming flows (for a file read here; a server uses its own).",
            ),
        ]
    ):
        function = option(function)
    return function


def window_options(function: F) -> F:
    function = click.option(
        "--until",
        default=None,
        help="Window end: a duration back from now or RFC 3339 [default: now].",
    )(function)
    return click.option(
        "--since",
        default=None,
        help="Window start: a duration back from now (15m, 1h, 7d) or RFC 3339 [default: 1h].",
    )(function)


def format_option(*choices: str) -> Callable[[F], F]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json", *choices]),
        default="table",
        show_default=True,
        help="Output: a table, JSON (the API's answer without its window)"
        + (", or a diagram." if choices else "."),
    )


@contextmanager
def analysis_source(
    db: str, server_url: str | None, token: str | None, flows_file: str | None
) -> Iterator[Any]:
    """The source to ask; any AnalysisError inside the block ends the command with its message."""
    from flowscope.analysis_sources import open_source
    from flowscope.analyzer.errors import AnalysisError

    try:
        source = open_source(db, token=token, flows=flows_file, server_url=server_url)
    except AnalysisError as exc:
        fail(str(exc))
    if flows_file and source.where != db:
        click.echo(
            f"flowscope: reading through {source.where}; the server's flows apply, not {flows_file}",
            err=True,
        )
    database = getattr(source, "database", None)
    reads = None if database is None else InterruptibleReads(source, database)
    import duckdb

    from flowscope.store.database import read_failure

    try:
        yield source if reads is None else reads
    except AnalysisError as exc:
        fail(str(exc))
    except duckdb.Error as exc:  # a damaged file opens, and fails at its first read
        fail(read_failure(db, exc))
    finally:
        if reads is not None and reads.stopped_cleanly:
            reads.finish()
        if reads is None or reads.stopped_cleanly:
            source.close()
        # else a read that would not stop still holds the file: the process exits
        # without closing it (read-only, nothing to lose), not with a traceback.


def echo_json(data: Any) -> None:
    emit(json.dumps(data, indent=2, ensure_ascii=False))


def table(records: list[Any], columns: list[str]) -> str:
    """Records as a table of the given fields; ``group`` values (``--by``) as extra columns."""
    from flowscope.analyzer.model import group_columns

    dicts = [r.as_dict() for r in records]
    group_keys = sorted({k for d in dicts for k in d.get("group") or {}})
    rows = [[d.get(c) for c in columns] + [d["group"].get(k) for k in group_keys] for d in dicts]
    # ``flows --by name`` headed two columns "name". Named against every field, not the
    # columns shown: the header of one --by value changed with --columns.
    fields = list(dicts[0]) if dicts else columns
    return render_table(columns + group_columns(group_keys, fields), rows)


EDGE_COLUMNS = ["source", "target", "rule", "peer_kind", "calls", "errors", "error_rate"]
EDGE_COLUMNS += ["p50_ms", "p95_ms", "p99_ms", "rate_per_min", "destination", "lag_p95_ms"]
NODE_COLUMNS = ["id", "kind", "spans", "error_rate", "p95_ms"]
FLOW_COLUMNS = ["id", "name", "root_service", "root_operation", "traces", "error_rate"]
FLOW_COLUMNS += ["traces_with_span_errors", "p50_ms", "p95_ms", "p99_ms", "rate_per_min"]
STEP_COLUMNS = ["kind", "calls", "calls_per_trace", "error_rate", "origin_errors", "p50_ms"]
STEP_COLUMNS += ["p95_ms", "p99_ms", "self_p50_ms", "start_offset_p50_ms", "critical_path_share"]
# The most `traces --limit` (and /api/traces) takes: analysis_sources.MAX_TRACES, not
# imported here, where a command's start would load httpx with it.
MAX_TRACES = 10_000
# What the traces shown are, by --sort (analyzer.model.TRACE_ORDERS, in its order).
FIRST_SHOWN = {
    "slowest": "slowest",
    "fastest": "fastest",
    "recent": "most recent",
    "spans": "with the most spans",
}
TRACE_COLUMNS = ["trace_id", "flow", "start", "duration_ms", "spans", "services", "errors"]
TRACE_COLUMNS += ["status"]
DELTA_COLUMNS = ["step", "kind", "left_ms", "right_ms", "delta_ms", "left_error_rate"]
DELTA_COLUMNS += ["right_error_rate", "error_rate_delta", "left_calls", "right_calls"]


@click.command("map")
@store_options
@window_options
@click.option("--flow", default=None, help="Only the traces of this flow id.")
@format_option("mermaid", "dot")
@columns_option
def map_(
    db: str,
    server_url: str | None,
    token: str | None,
    flows_file: str | None,
    since: str | None,
    until: str | None,
    flow: str | None,
    fmt: str,
    columns: list[str] | None,
) -> None:
    """The service map: services, databases, queues and who calls whom."""
    from flowscope.analyzer.diagrams.formats import MAP_DIAGRAMS
    from flowscope.analyzer.model import Edge, Node

    # One list for both tables: each shows the names it has, when they name its rows
    # (an edge by source or target, a node by id; `--columns id,p95_ms` printed the
    # edges' P95s with nothing to say whose).
    edge_fields, node_fields = scalar_fields(Edge), scalar_fields(Node)
    known = edge_fields + [name for name in node_fields if name not in edge_fields]
    chosen = pick(columns, EDGE_COLUMNS + NODE_COLUMNS, known, fmt)
    edge_columns = [c for c in chosen if c in edge_fields] if columns else EDGE_COLUMNS
    node_columns = [c for c in chosen if c in node_fields] if columns else NODE_COLUMNS
    dropped: list[str] = []
    if not {"source", "target"} & set(edge_columns):
        dropped += [c for c in edge_columns if c not in node_fields]
        edge_columns = []
    if "id" not in node_columns:
        dropped += [c for c in node_columns if c not in edge_columns]
        node_columns = []
    if dropped and (edge_columns or node_columns) and fmt == "table":
        # `--columns source,kind`: kind is a node's, whose table needs id; it went unsaid.
        click.echo(
            f"(not shown: {', '.join(dropped)}; the edges' table shows with source or "
            "target among --columns, the nodes' with id)",
            err=True,
        )
    if not edge_columns and not node_columns:
        raise click.UsageError(
            "--columns for map names the edges' rows by source or target, or the nodes' by id"
        )
    with analysis_source(db, server_url, token, flows_file) as source:
        result = source.service_map(since, until, flow)
    if fmt == "json":
        echo_json(result.as_dict())
    elif fmt in MAP_DIAGRAMS:
        emit(MAP_DIAGRAMS[fmt](result), nl=False)
    else:
        if edge_columns:
            echo_table(table(sorted(result.edges, key=_edge_key), edge_columns))
        if edge_columns and node_columns:
            click.echo()
        if node_columns:
            echo_table(table(sorted(result.nodes, key=lambda n: n.id), node_columns))
    if not result.nodes:  # on stderr, whatever the format: an empty diagram said nothing
        _hint_empty_window(since, until, db, server_url, token)


def by_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A ``--by`` value: an empty one grouped nothing and said nothing."""
    if value is not None and not value.strip():
        raise click.BadParameter("is empty; give an attribute key, or leave --by out")
    return value


# Jaeger's tags the importers make a span's status of, not attributes.
_STATUS_TAGS = {"error", "otel.status_code", "otel.status_description"}


def _status_keys_held(source: Any, window: Any, keys: list[str]) -> bool:
    """Whether a span in the window holds one of ``keys`` as an attribute (asked only
    when the filters matched nothing: it scans the window's attribute keys again)."""
    from flowscope.store import sql_files

    query = sql_files.filled(
        "hint_status_keys",
        {
            "since": str(int(window.since_ns)),
            "until": str(int(window.until_ns)),
            "status_keys": sql_files.text_list(keys),
        },
    )
    return bool(source.sql(query, 1).rows[0][0])


def _span_filter_hint(
    source: Any, window: Any, spans: tuple[str | None, str | None, list[tuple[str, str]]]
) -> str | None:
    """Why traces filtered by a span matched none, when the spans say more than the
    list does: a service with no span in the window (a misspelling, with the names
    there are)."""
    import difflib

    from flowscope.store import sql_files

    service, operation, attributes = spans
    status_keys = sorted({k for k, _ in attributes} & _STATUS_TAGS)
    query = sql_files.filled(
        "hint_span_filter",
        {
            "since": str(int(window.since_ns)),
            "until": str(int(window.until_ns)),
            "service": sql_files.literal(service),
            "operation": sql_files.literal(operation),
            "keys": sql_files.text_list([k for k, _ in attributes]),
            "values": sql_files.text_list([v for _, v in attributes]),
        },
    )
    matched, services = source.sql(query, 1).rows[0]
    if not matched and status_keys and not _status_keys_held(source, window, status_keys):
        # Jaeger's tag search for errors: the import keeps no such attribute (migrator
        # review: "none of the traces ... matches", and nothing said why).
        return (
            f"no span holds {' or '.join(status_keys)} as an attribute: imports read "
            "Jaeger's error and otel.status_* tags into the span's status, which --error "
            "(or --no-error) filters by"
        )
    if not matched and service is not None and service not in (services or []):
        close = difflib.get_close_matches(service, services or [], n=3, cutoff=0.6)
        known = close or sorted(services or [])[:8]
        return (
            f"no span of service {service!r} in the window; "
            f"{'did you mean' if close else 'services there'}: {', '.join(known)}"
        )
    return None


def _counted(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"  # not "1 spans in the window"


def _bound_shown(text: str | None) -> str | None:
    """A window bound as a hint says it back: a duration as typed, a time in UTC with
    its Z (one typed without a zone is read as UTC, and was said back without one)."""
    from flowscope.analyzer.window import format_ns, instant_ns
    from flowscope.durations import parse_duration

    if text is None:
        return None
    try:
        parse_duration(text)
        return text
    except ValueError:
        pass
    try:
        return format_ns(instant_ns(text, time.time_ns()))
    except ValueError:
        return text


def _hint_empty_window(
    since: str | None,
    until: str | None,
    db: str,
    server_url: str | None,
    token: str | None,
    spans: tuple[str | None, str | None, list[tuple[str, str]]] | None = None,
    *,
    traces: bool = False,
) -> None:
    """An empty table under the default window is most often old data (an import, a
    recording): say so on stderr, so the table itself stays what was asked, with a
    --since that reaches the newest stored span when the window starts after it.
    ``traces``: for the trace list, which lists traces without a root span too."""
    from flowscope.analysis_sources import open_source
    from flowscope.analyzer.errors import AnalysisError
    from flowscope.analyzer.window import parse_window
    from flowscope.store import sql_files

    shown_since, shown_until = _bound_shown(since), _bound_shown(until)
    if since and until:  # "nothing since X" was false with data after the --until
        where = f"nothing from {shown_since} until {shown_until}; widen the window"
    elif since:
        where = f"nothing since {shown_since}; widen the window with --since"
    elif until:
        where = f"nothing in the hour before {shown_until}; widen it with --since"
    else:
        where = "nothing in the last hour; widen the window with --since"
    spans_in_window = roots_in_window = 0
    listed = False  # traces: the list has traces in the window without the filters
    span_hint = None
    try:
        window = parse_window(since, until)
        start_ns, end_ns = window.since_ns, window.until_ns
        source = open_source(db, token=token, server_url=server_url)
        # The newest span, and the window's spans and roots: nothing may be old, yet
        # flows and traces go by a root span that is not there (yet), or a filter
        # left nothing. One scan.
        query = sql_files.filled(
            "hint_window_presence",
            {"since": str(int(window.since_ns)), "until": str(int(window.until_ns))},
        )
        try:
            newest, oldest, spans_in_window, roots_in_window = source.sql(query, 1).rows[0]
            if spans is not None and spans_in_window:
                span_hint = _span_filter_hint(source, window, spans)
            if traces and spans_in_window:  # it lists rootless traces too (diff review)
                listed = bool(source.traces(since, until, limit=1))
        finally:
            source.close()
    except (AnalysisError, ValueError):  # a hint is not worth a failure
        newest, oldest, start_ns, end_ns = -1, -1, 0, 0
    if newest is None:
        where = "no spans are stored (none arrived yet, or retention deleted them)"
    elif span_hint is not None:
        where = span_hint
    elif listed:
        where = "none of the traces that start in the window matches"
    elif traces and spans_in_window:
        where = (
            f"{_counted(spans_in_window, 'span')} in the window, but no trace whose root span (no "
            "parent span id), or first span without one, started in it: traces go by that start"
        )
    elif roots_in_window:  # there are traces: the command's filters matched none
        where = f"none of the {roots_in_window} traces that start in the window matches"
    elif spans_in_window:
        where = (
            f"{_counted(spans_in_window, 'span')} in the window, but no trace whose root span (no "
            "parent span id) started in it: flows go by their root"
        )
    elif until and end_ns and oldest is not None and oldest >= end_ns:
        # Every span started after the window: "widen it with --since" never reaches them.
        stamp = datetime.fromtimestamp(oldest / 1e9, UTC).isoformat(timespec="seconds")
        window_text = (
            f"from {shown_since} until {shown_until}"
            if since
            else f"in the hour before {shown_until}"
        )
        where = (
            f"nothing {window_text}; every stored span started after it, the oldest at "
            f"{stamp.removesuffix('+00:00')}Z: a later --until reaches them"
        )
    elif 0 <= newest < start_ns and not until:
        age_h = max(0.0, time.time() - newest / 1e9) / 3600
        reach = f"{math.ceil(age_h / 24) + 1}d" if age_h > 24 else f"{math.ceil(age_h) + 1}h"
        stamp = datetime.fromtimestamp(newest / 1e9, UTC).isoformat(timespec="seconds")
        where += f"; the newest span started at {stamp}: --since {reach} reaches it"
    elif end_ns and newest >= end_ns and not until:
        # Spans dated after now (a sender's clock ahead): no --since reaches them, and
        # the hint said to widen it.
        after = datetime.fromtimestamp(newest / 1e9 + 1, UTC).isoformat(timespec="seconds")
        stamp = after.removesuffix("+00:00") + "Z"
        where = (
            f"nothing {f'since {since}' if since else 'in the last hour'}, but spans are "
            f"stored dated after now, up to {stamp} (a sender's clock ahead?): "
            f"--until {stamp} reaches the newest"
        )
        if oldest is not None and oldest < start_ns:  # and older ones, which --since reaches
            where += "; older spans: widen the window with --since"
    click.echo(f"({where})", err=True)


def _edge_key(edge: Any) -> tuple[str, str, str]:
    return (edge.source, edge.target, edge.rule)


@click.command()
@store_options
@window_options
@click.option(
    "--by",
    default=None,
    callback=by_option,
    help="Split each flow by this resource or span attribute.",
)
@format_option()
@columns_option
def flows(
    db: str,
    server_url: str | None,
    token: str | None,
    flows_file: str | None,
    since: str | None,
    until: str | None,
    by: str | None,
    fmt: str,
    columns: list[str] | None,
) -> None:
    """Business flows: traces grouped by their root span, with latency and errors."""
    from flowscope.analyzer.model import Flow

    shown_columns = pick(columns, FLOW_COLUMNS, scalar_fields(Flow), fmt)
    with analysis_source(db, server_url, token, flows_file) as source:
        result = source.flows(since, until, by)
    if fmt == "json":
        echo_json({"flows": [f.as_dict() for f in result]})
    else:
        echo_table(table(result, shown_columns))
        if result and by is None and (hint := _hint_scattered_flows(result)):
            click.echo(hint, err=True)
    _hint_unset_by(by, [f.group for f in result])
    if not result:
        _hint_empty_window(since, until, db, server_url, token)


def _hint_unset_by(by: str | None, groups: list[dict[str, str]]) -> None:
    """`--by user_tier` (for user.tier) answered the same rows with a blank column and
    no word: a typo looked like a real answer."""
    from flowscope.analyzer.model import unset_by

    if unset_by(by, groups):
        click.echo(
            f"(no trace in the window has a value for {by!r} as a resource or span attribute: "
            "every group is empty; is the name right?)",
            err=True,
        )


# At least this many flows, half of them of one trace, before ids in names are suspected.
SCATTERED_FLOWS = 50


def _hint_scattered_flows(flows: list[Any]) -> str | None:
    """Root span names with ids in them (``GET /orders/123``, from instrumentation that
    names spans by path) make a flow per trace: thousands of one-trace flows, and no
    flow's numbers mean anything. Say how to gather them."""
    single = sorted(f.name for f in flows if f.traces == 1)
    if len(flows) < SCATTERED_FLOWS or 2 * len(single) < len(flows):
        return None
    return (
        f"({len(single):,} of the {len(flows):,} flows have one trace each: their root span "
        f"names carry ids or values ({single[0]}, {single[1]}), which OpenTelemetry's "
        "naming rules keep out of span names ('{method} {http.route}'). Until the "
        "instrumentation names spans so, a flows.yaml entry with a glob on the name "
        '(operation: "GET /orders/*") gathers them into one flow, though its steps stay '
        "one per name: docs/analysis.md)"
    )


@click.command()
@click.argument("flow_id")
@store_options
@window_options
@click.option(
    "--by",
    default=None,
    callback=by_option,
    # 12: MAX_GROUPS in analyzer/diagrams/groups.py, not imported here to keep start-up
    # light (tests/flowscope/test_cli_analysis.py checks the two agree).
    help="Split each step by this resource or span attribute; diagrams draw one block "
    "per value, at most 12 (those with the most traces).",
)
@format_option("mermaid", "dot")
@click.option(
    "--diagram",
    type=click.Choice(["sequence", "flowchart"]),
    default="sequence",
    show_default=True,
    help="Which Mermaid diagram --format mermaid draws.",
)
@columns_option
def flow(
    flow_id: str,
    db: str,
    server_url: str | None,
    token: str | None,
    flows_file: str | None,
    since: str | None,
    until: str | None,
    by: str | None,
    fmt: str,
    diagram: str,
    columns: list[str] | None,
) -> None:
    """One flow's steps: its traces merged into one call tree."""
    from flowscope.analyzer.diagrams.formats import FLOW_DIAGRAMS
    from flowscope.analyzer.model import Step

    # "step" is the tree's label: the step's service and operation, indented by depth.
    step_columns = pick(columns, ["step", *STEP_COLUMNS], ["step", *scalar_fields(Step)], fmt)

    given = click.get_current_context().get_parameter_source("diagram")
    if fmt != "mermaid" and given is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError(
            "--diagram chooses the Mermaid diagram: give it with --format mermaid"
        )
    with analysis_source(db, server_url, token, flows_file) as source:
        detail = source.flow(flow_id, since, until, by)
    # The API's and the Python API's names: mermaid-sequence, mermaid-flowchart, dot.
    drawn = f"mermaid-{diagram}" if fmt == "mermaid" else fmt
    if fmt == "json":
        echo_json(detail.as_dict())
    elif drawn in FLOW_DIAGRAMS:
        emit(FLOW_DIAGRAMS[drawn](detail), nl=False)
    else:
        click.echo(_flow_heading(detail.flow))
        click.echo()
        echo_table(_steps_table(detail.steps, step_columns))
    _hint_unset_by(by, [step.group for step in detail.steps])
    if detail.claimed_by:
        click.echo(_claims_hint(detail.claimed_by), err=True)
    elif not detail.flow.traces:
        _hint_empty_window(since, until, db, server_url, token)


def _claims_hint(claims: list[Any], window: str = "the window") -> str:
    """Where flows.yaml put traces that an automatic flow id would otherwise have had (an
    id from before the rule, or from a link, answered an empty flow and no reason)."""
    taken = "; ".join(f"{c.flow} ({c.name}): {c.traces} traces" for c in claims)
    return f"(flows.yaml puts other traces of {window} with this flow's root in flow {taken})"


def _flow_heading(flow: Any) -> str:
    return (
        shown(f"{flow.name} ({flow.id}): root {flow.root_service} {flow.root_operation}") + "\n"
        f"{flow.traces} traces, {flow.error_rate:.1%} failed, "
        f"{flow.traces_with_span_errors} with span errors, "
        f"p50 {flow.p50_ms:.3f} ms, p95 {flow.p95_ms:.3f} ms, p99 {flow.p99_ms:.3f} ms, "
        f"{flow.rate_per_min:.3g}/min"
    )


def _steps_table(steps: list[Any], columns: list[str]) -> str:
    """Steps in tree order, the step column indented by depth; with --by, each
    value's steps in turn (the same step ids recur, one tree per value)."""
    from flowscope.analyzer.diagrams.groups import split_steps
    from flowscope.analyzer.diagrams.step_tree import step_tree
    from flowscope.analyzer.model import group_columns

    rows: list[list[Any]] = []
    group_keys = sorted({k for s in steps for k in s.group})
    for group in split_steps(steps):
        tree = step_tree(group.steps)
        depth: dict[str, int] = {}
        for step_id in tree.order:
            step = tree.steps[step_id]
            parent = tree.parent(step)
            depth[step_id] = depth[parent.id] + 1 if parent is not None else 0
            # A database or external call: say what it reaches.
            peer = f" -> {step.peer}" if tree.calls_peer(step) else ""
            label = op_label(step.service, step.operation, lead=indent(depth[step_id]), tail=peer)
            values = {**step.as_dict(), "step": label}
            rows.append([values[c] for c in columns] + [step.group.get(k) for k in group_keys])
    fields = ["step", *(steps[0].as_dict() if steps else columns)]
    return render_table([*columns, *group_columns(group_keys, fields)], rows, max_width=70)


@click.command()
@store_options
@window_options
@click.option("--service", default=None, help="Traces with a span of this service.")
@click.option(
    "--operation",
    default=None,
    help="Traces with a span of this name (with --service: a span of that service).",
)
@click.option("--flow", default=None, help="Traces of this flow id.")
@click.option(
    "--attr",
    "attributes",
    multiple=True,
    metavar="KEY=VALUE",
    callback=lambda _ctx, _param, texts: _attribute_pairs(texts),
    help="Traces with a span that has this attribute, its own or its resource's "
    "(http.status_code=500; repeatable, up to 16: all on one span, with "
    "--service/--operation that span).",
)
@click.option(
    "--min-duration",
    "min_duration_ms",
    type=FiniteFloatRange(min=0),
    default=None,
    help="In ms: root spans at least this long (the listed duration_ms, not that of the "
    "span --service/--operation/--attr match).",
)
@click.option(
    "--max-duration",
    "max_duration_ms",
    type=FiniteFloatRange(min=0),
    default=None,
    help="In ms: root spans no longer than this.",
)
@click.option("--error/--no-error", default=None, help="Only traces with / without errors.")
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(1, MAX_TRACES),
    help="Most traces shown, the first in --sort order; when more matched, standard error says so.",
)
@click.option(
    "--sort",
    type=click.Choice(list(FIRST_SHOWN)),
    default="slowest",
    show_default=True,
    help="Order: slowest first, fastest first, most recent first, most spans first.",
)
@format_option()
@columns_option
def traces(
    db: str,
    server_url: str | None,
    token: str | None,
    flows_file: str | None,
    since: str | None,
    until: str | None,
    service: str | None,
    operation: str | None,
    flow: str | None,
    attributes: list[tuple[str, str]],
    min_duration_ms: float | None,
    max_duration_ms: float | None,
    error: bool | None,
    limit: int,
    sort: str,
    fmt: str,
    columns: list[str] | None,
) -> None:
    """Traces in the window, slowest first (--sort for another order); a trace whose
    root span has not arrived is named by its first span, flow "(no root span)"."""
    from flowscope.analyzer.model import TraceSummary

    shown_columns = pick(columns, TRACE_COLUMNS, scalar_fields(TraceSummary), fmt)
    with analysis_source(db, server_url, token, flows_file) as source:
        result = source.traces(
            since,
            until,
            service=service,
            operation=operation,
            flow=flow,
            attributes=attributes,
            min_duration_ms=min_duration_ms,
            max_duration_ms=max_duration_ms,
            error=error,
            sort=sort,
            # One more than shown: whether more traces matched (the API takes 10,000).
            limit=min(limit + 1, MAX_TRACES),
        )
        more = len(result) > limit or len(result) == MAX_TRACES
        result = result[:limit]
        # An automatic flow's traces a flows.yaml rule took: say where they went (when
        # no other filter could be why the list is empty).
        others = (service, operation, min_duration_ms, max_duration_ms, error, *attributes)
        only_flow = bool(flow) and all(f is None for f in others) and fmt != "json"
        claims = (
            source.flow(flow, since, until, None).claimed_by if not result and only_flow else []
        )
    if fmt == "json":
        echo_json({"traces": [t.as_dict() for t in result]})
    else:
        # A trace without a root span is in no flow: its blank cell said nothing.
        shown = [t if t.has_root else replace(t, flow="(no root span)") for t in result]
        echo_table(table(shown, shown_columns))
    if more:
        # The list looked whole: a --limit of 20 hid the rest without a word.
        click.echo(
            f"(the {len(result)} {FIRST_SHOWN[sort]} shown; more traces matched; use --limit "
            "for more)"
            if limit < MAX_TRACES
            # Asked for all it may ask for: a server takes no more, so exactly that many
            # and more look alike.
            else f"(the {MAX_TRACES} {FIRST_SHOWN[sort]} shown, the most --limit takes; more "
            "may match)",
            err=True,
        )
    if claims:
        click.echo(_claims_hint(claims), err=True)
    elif not result:
        spans = (service, operation, attributes) if service or operation or attributes else None
        _hint_empty_window(since, until, db, server_url, token, spans, traces=True)


def _attribute_pairs(texts: tuple[str, ...]) -> list[tuple[str, str]]:
    from flowscope.analysis_sources import attribute_pair
    from flowscope.analyzer.errors import AnalysisError

    try:
        return [attribute_pair(text, "--attr") for text in texts]
    except AnalysisError as exc:
        raise click.BadParameter(str(exc).removeprefix("--attr: ")) from exc


def _baseline_hint(spans: list[Any]) -> str:
    """How to get each span's step P50: a window of the hour around the trace (``--since
    1h`` gave a trace older than an hour a column of blanks)."""
    first = min(datetime.fromisoformat(s.start.replace("Z", "+00:00")) for s in spans)
    half = timedelta(minutes=30)
    since, until = (f"{(first + d).strftime('%Y-%m-%dT%H:%M:%SZ')}" for d in (-half, half))
    return (
        f"add --since {since} --until {until}, the hour around this trace, to put each "
        "span next to its step's P50 in the flow"
    )


@click.command()
@click.argument("trace_id")
@store_options
@click.option(
    "--since", default=None, help="Baseline window start for the step P50s [default: none]."
)
@click.option("--until", default=None, help="Baseline window end [default: now].")
@click.option(
    "--attributes",
    "every_attribute",
    is_flag=True,
    help="List every span's attributes and each service's resource, not only the "
    "failing spans' attributes.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "otlp"]),
    default="table",
    show_default=True,
    help="Output: a table, JSON (the API's answer without its window), or otlp: the "
    "trace's spans as an OTLP/JSON file, which flowscope import and other OTLP tools "
    "read back (attribute values as stored, text).",
)
def trace(
    trace_id: str,
    db: str,
    server_url: str | None,
    token: str | None,
    flows_file: str | None,
    since: str | None,
    until: str | None,
    every_attribute: bool,
    fmt: str,
) -> None:
    """One trace: its span tree, each span next to its step's P50, and the critical path."""
    if fmt == "otlp":
        _export_trace(trace_id, db, server_url, token)
        return
    with analysis_source(db, server_url, token, flows_file) as source:
        view = source.trace(trace_id, since, until)
    if fmt == "json":
        echo_json(view.as_dict())
        return
    # When and how wide, as Jaeger's trace header says (migrator review).
    services = len({s.service for s in view.spans})
    started = min((s.start for s in view.spans), default="")  # nine digits: sorts as time
    click.echo(shown(f"trace {view.trace_id}  flow {view.flow or '-'}  {view.duration_ms:.3f} ms"))
    click.echo(
        f"{_counted(len(view.spans), 'span')} in {_counted(services, 'service')}, started {started}"
    )
    click.echo()
    # Without a window no baseline is computed: an empty step_p50_ms column would
    # read as "no data", so it is left out and the hint says how to get it.
    baseline = since is not None or until is not None
    rows = [
        [
            op_label(
                s.service,
                s.operation,
                lead=indent(s.depth),
                tail=" (orphan)" if s.orphan else "",
            ),
            s.kind,
            s.start_offset_ms,
            s.duration_ms,
            s.self_ms,
            *([s.step_p50_ms] if baseline else []),
            "*" if s.on_critical_path else "",
            _status_text(s.status, s.status_message),
        ]
        for s in view.spans
    ]
    p50 = ["step_p50_ms"] if baseline else []
    columns = ["span", "kind", "start_ms", "duration_ms", "self_ms", *p50, "critical"]
    click.echo(render_table([*columns, "status"], rows, max_width=70))
    if view.spans and not view.flow:
        if baseline:  # its column is blank: say why
            click.echo(
                "(the trace has no root span (yet), so it is in no flow: no step P50s)", err=True
            )
    elif not baseline and view.spans:
        click.echo(f"({_baseline_hint(view.spans)})", err=True)
    elif view.spans and all(s.step_p50_ms is None for s in view.spans):
        click.echo(
            f"(the window holds none of flow {view.flow}'s traces, so no step P50s; "
            f"{_baseline_hint(view.spans)})",
            err=True,
        )
    click.echo()
    _echo_attributes(view, every_attribute)
    _echo_events(view)
    _echo_links(view)
    if not view.critical_path:  # it starts at the root span
        why = (
            "the root span lasts 0 ms"
            if view.flow
            else "the trace has no root span: not arrived yet, or deleted by retention"
        )
        click.echo(f"critical path: none ({why})")
        return
    click.echo("critical path:")
    segments = view.critical_path
    if len(segments) > MAX_PATH_SHOWN:
        # A 10,000-span trace's path had 19,998 segments, most of them a few µs of a
        # parent between two children: the longest, still in time order.
        longest = sorted(range(len(segments)), key=lambda i: -segments[i].duration_ms)
        segments = [segments[i] for i in sorted(longest[:MAX_PATH_SHOWN])]
    path = [[c.service, c.operation, c.start_offset_ms, c.duration_ms] for c in segments]
    click.echo(render_table(["service", "operation", "start_ms", "duration_ms"], path))
    left_out = len(view.critical_path) - len(segments)
    if left_out:
        shown_ms = sum(c.duration_ms for c in segments)
        total_ms = sum(c.duration_ms for c in view.critical_path)
        click.echo(
            f"... and {left_out:,} shorter segments, {total_ms - shown_ms:.3f} ms of the "
            f"path's {total_ms:.3f} ms (--format json lists every one)"
        )


# A status message longer than this is cut in the table; --format json has it whole.
MAX_STATUS_MESSAGE = 60


def _status_text(status: str, message: str) -> str:
    """The status and what the span said of it ("Error: email bounced"): the table
    showed "Error" alone, the reason only in --format json."""
    message = " ".join(message.split())
    return f"{status}: {fit_width(message, MAX_STATUS_MESSAGE)}" if message else status


def _echo_links(view: TraceView) -> None:
    """The spans' links (a consumer's to the producer in another trace): the table gave
    no way from a trace to the one that sent its message."""
    rows = [
        [op_label(s.service, s.operation), link.trace_id, link.span_id]
        for s in view.spans
        for link in s.links
    ]
    if not rows:
        return
    click.echo("links:")
    click.echo(render_table(["span", "trace_id", "span_id"], rows[:MAX_EVENTS_SHOWN], max_width=70))
    if len(rows) > MAX_EVENTS_SHOWN:
        click.echo(f"... and {len(rows) - MAX_EVENTS_SHOWN} more (--format json has them)")
    click.echo()


def _event_text(attributes: dict[str, str]) -> str:
    """An event's attributes in one cell: an exception's type and message first (sorted
    by key, `exception.escaped` came first and the message was cut), its stack trace
    left to --format json."""
    first = [k for k in _EVENT_KEYS_FIRST if k in attributes]
    rest = sorted(k for k in attributes if k not in _EVENT_KEYS_FIRST and k not in _EVENT_KEYS_LEFT)
    return " ".join(f"{k}={attributes[k]}" for k in first + rest)


_EVENT_KEYS_FIRST = ("exception.type", "exception.message")
_EVENT_KEYS_LEFT = frozenset({"exception.stacktrace"})


# A trace view lists at most this many events; --format json has them all.
MAX_EVENTS_SHOWN = 20


# An event's time when it was sent with none (OTLP's 0, "unset"): stored as sent.
_NO_TIME = "1970-01-01T00:00:00.000000000Z"


# Spans an export reads a query: a server answers no more rows (its SQL row limit).
EXPORT_PAGE = 10_000


def _export_trace(trace_id: str, db: str, server_url: str | None, token: str | None) -> None:
    """The trace as OTLP/JSON on stdout: what a colleague can import (Jaeger UI's
    "Download JSON"; the --format json view is no trace data any tool reads back)."""
    from flowscope.analyzer.analysis import trace_key
    from flowscope.analyzer.errors import AnalysisError, UnknownTrace
    from flowscope.trace_export import count_query, otlp_request, read_once

    stored = trace_key(trace_id)
    with analysis_source(db, server_url, token, None) as source:
        for _attempt in range(EXPORT_ATTEMPTS):
            columns, rows = _export_pages(source, stored)
            if not rows:
                raise UnknownTrace(stored, trace_id)
            count = int(source.sql(count_query(stored), 1, 120.0).rows[0][0])
            if read_once(columns, rows, count):
                break
        else:
            raise AnalysisError(
                f"spans of trace {stored} kept arriving (or being deleted) while it was "
                f"read, {EXPORT_ATTEMPTS} times; export it again once it is whole"
            )
    echo_json(otlp_request(columns, rows))


# Reads of a trace whose spans change meanwhile (arriving, deleted) before giving up.
EXPORT_ATTEMPTS = 3


def _export_pages(source: Any, stored: str) -> tuple[list[str], list[list[Any]]]:
    """Every span of the trace, page after page: one answer is capped in rows (a
    server's) and in size (the sandbox's ~32 million characters), and a part of a trace
    would import as a whole one."""
    from flowscope.analyzer.errors import AnalysisError
    from flowscope.trace_export import export_query

    rows: list[list[Any]] = []
    while True:
        # One span more than the page: the answer says whether there are more.
        out = source.sql(export_query(stored, EXPORT_PAGE + 1, len(rows)), EXPORT_PAGE, 120.0)
        rows.extend(out.rows)
        if not out.truncated:
            return out.columns, rows
        if not out.rows:
            raise AnalysisError(f"a span of trace {stored} is too big for an answer")


# The longest this many critical-path segments are listed; --format json has every one.
MAX_PATH_SHOWN = 50
# A value longer than this is cut in the attributes section; --format json has it whole.
MAX_ATTRIBUTE_VALUE = 200


def _echo_attributes(view: TraceView, every: bool) -> None:
    """The failing spans' attributes (``every``: each span's, and each service's
    resource), with their span ids: the table named two spans "client-gateway: POST
    /order", one Error, and nothing told which was the retry or what it was sent."""
    spans = [s for s in view.spans if every or s.status == "Error"]
    if not any(s.attributes for s in spans) and not every:
        return
    click.echo(
        "attributes:" if every else "attributes of the failing spans (--attributes: every span's):"
    )
    for s in spans:
        click.echo(shown(f"  {s.service}: {s.operation}  span {s.span_id}"))
        for key, value in sorted(s.attributes.items()):
            click.echo(shown(f"    {key} = {fit_width(value, MAX_ATTRIBUTE_VALUE)}"))
        if s.attributes_omitted:
            _echo_left_out(s.attributes_omitted, "SpanAttributes", view.trace_id, s)
    if every:
        # Each service's resources, in order first met, with the spans that ran on each
        # when a service has several (two instances: which one ran the failing span).
        spans_of: dict[tuple[str, tuple[tuple[str, str], ...]], list[TraceSpan]] = {}
        for s in view.spans:
            spans_of.setdefault((s.service, tuple(sorted(s.resource.items()))), []).append(s)
        per_service = Counter(service for service, _ in spans_of)
        for (service, resource), ran in spans_of.items():
            which = ""
            if per_service[service] > 1:
                more = f", {len(ran) - 5} more" if len(ran) > 5 else ""
                which = f" (span {', '.join(r.span_id for r in ran[:5])}{more})"
            click.echo(shown(f"  resource of {service}{which}:"))
            for key, value in resource:
                click.echo(shown(f"    {key} = {fit_width(value, MAX_ATTRIBUTE_VALUE)}"))
            left_out = max(r.resource_omitted for r in ran)
            if left_out:
                first = max(ran, key=lambda r: r.resource_omitted)
                _echo_left_out(left_out, "ResourceAttributes", view.trace_id, first)
    click.echo()


def _echo_left_out(count: int, column: str, trace_id: str, span: TraceSpan) -> None:
    """The view's own caps (analyzer/trace_view.py's MAX_*): JSON does not have these
    either. A Zipkin server half is shown under an id of its own: the SQL names the
    shared id it is stored under, and its service."""
    from flowscope.analyzer.shared_ids import half_span_id

    stored = span.span_id
    if len(span.parent_span_id) == 16 and len(trace_id) == 32:
        try:
            if half_span_id(trace_id, span.parent_span_id, span.service) == span.span_id:
                stored = span.parent_span_id
        except ValueError:  # ids that are not hex: not a half
            pass
    service = span.service.replace("'", "''")
    click.echo(
        f"    ... and {count} more that the view leaves out; SQL has them: SELECT {column} "
        f"FROM otel_traces WHERE TraceId = '{trace_id}' AND SpanId = '{stored}' "
        f"AND ServiceName = '{service}'"
    )


def _echo_events(view: TraceView) -> None:
    """The spans' events (logs, exceptions) in time order: what a Jaeger user opens a
    trace for. One sent without a time is listed at its span's start, its time "?"
    (it came first, at minus the span's age since 1970)."""
    timed = sorted(
        (
            (
                s.start_offset_ms + (0.0 if e.start == _NO_TIME else e.offset_ms),
                "?" if e.start == _NO_TIME else s.start_offset_ms + e.offset_ms,
                op_label(s.service, s.operation),
                e.name,
                e.attributes,
            )
            for s in view.spans
            for e in s.events
        ),
        key=lambda event: event[0],
    )
    events = [event[1:] for event in timed]
    omitted = sum(s.events_omitted for s in view.spans)
    if not events and not omitted:
        return
    rows = [
        [at, span, name, _event_text(attributes)]
        for at, span, name, attributes in events[:MAX_EVENTS_SHOWN]
    ]
    click.echo("events:")
    if rows:
        click.echo(render_table(["at_ms", "span", "event", "attributes"], rows, max_width=70))
    if len(events) > MAX_EVENTS_SHOWN:
        more = len(events) - MAX_EVENTS_SHOWN
        click.echo(f"... and {more} more (--format json has them)")
    if omitted:
        # The view's own cap (trace_view.MAX_EVENTS): JSON does not have these either.
        click.echo(
            f"... and {omitted} more that the view leaves out; SQL has them: "
            f"SELECT Events FROM otel_traces WHERE TraceId = '{view.trace_id}'"
        )
    click.echo()


@click.command()
@click.argument("trace_ids", nargs=-1)
@store_options
@click.option("--trace", "trace_id", default=None, help="With --baseline: the trace to compare.")
@click.option("--baseline", is_flag=True, help="Compare --trace with its flow's step P50s.")
@click.option("--flow", default=None, help="The flow to compare across windows or versions.")
@click.option(
    "--since",
    default=None,
    help="Window for --baseline [the hour around the trace] and --versions [the last hour].",
)
@click.option("--until", default=None, help="Window end for --baseline and --versions.")
@click.option("--left-since", default=None, help="With --flow: the left window's start.")
@click.option("--left-until", default=None, help="With --flow: the left window's end.")
@click.option("--right-since", default=None, help="With --flow: the right window's start.")
@click.option("--right-until", default=None, help="With --flow: the right window's end.")
@click.option(
    "--versions",
    nargs=2,
    default=None,
    help="With --flow: two service.versions to compare (SERVICE=VERSION: that service's).",
)
@click.option(
    "--sort",
    "sort_by",
    type=click.Choice(["latency", "errors"]),
    default="latency",
    show_default=True,
    help="Order rows by the biggest latency change, or by the biggest error-rate change "
    "(windows and versions compare error rates).",
)
@format_option()
@columns_option
def compare(
    trace_ids: tuple[str, ...],
    db: str,
    server_url: str | None,
    token: str | None,
    flows_file: str | None,
    trace_id: str | None,
    baseline: bool,
    flow: str | None,
    since: str | None,
    until: str | None,
    left_since: str | None,
    left_until: str | None,
    right_since: str | None,
    right_until: str | None,
    versions: tuple[str, str] | None,
    sort_by: str,
    fmt: str,
    columns: list[str] | None,
) -> None:
    """Per-step deltas, biggest first: TRACE_A TRACE_B | --trace T --baseline |
    --flow F --left-since .. --right-since .. | --flow F --versions V1 V2."""
    from flowscope.analyzer.model import StepDelta

    # "step" is the step's service and operation, "under" the step it is under (the
    # path the record's own "step" holds would be cut).
    known = ["step", "under", *(f for f in scalar_fields(StepDelta) if f not in ("step", "under"))]
    delta_columns = pick(columns, [DELTA_COLUMNS[0], "under", *DELTA_COLUMNS[1:]], known, fmt)
    if versions and any(v.startswith("-") for v in versions):
        # nargs=2 takes the next word whatever it is: `--versions 4.0.2 --db x` took
        # "--db" for a version and the file for a trace id.
        raise click.BadParameter(
            f"takes two service.versions, got {versions[0]!r} and then {versions[1]!r}",
            param_hint="'--versions'",
        )
    # Refused as usage errors (status 2), as click's own are: they exited 1, the status
    # of a failed read (docs review).
    if len(trace_ids) not in (0, 2):
        raise click.UsageError("compare takes two trace ids (or none, with --trace/--flow)")
    if baseline and not trace_id:
        # With two trace ids it was ignored: a two-trace comparison came back.
        raise click.UsageError("--baseline compares the trace given with --trace; give --trace T")
    if trace_id and not baseline and not trace_ids and not flow:
        raise click.UsageError(
            "--trace compares a trace with its flow's step P50s: add --baseline "
            "(or give two trace ids to compare them)"
        )
    if not (trace_ids or (trace_id and baseline) or flow):
        raise click.UsageError(
            "say what to compare: TRACE_A TRACE_B, --trace T --baseline, "
            "--flow F --left-since/--right-since ..., or --flow F --versions V1 V2"
        )
    # Every option given goes along: compare_mode refuses those of two comparisons at
    # once, which choosing one here would silently drop.
    left, right = trace_ids or (None, None)
    left_version, right_version = versions or (None, None)
    params: dict[str, str | None] = {
        "left": left,
        "right": right,
        "trace": trace_id,
        "flow": flow,
        "left_version": left_version,
        "right_version": right_version,
        "since": since,
        "until": until,
        "left_since": left_since,
        "left_until": left_until,
        "right_since": right_since,
        "right_until": right_until,
    }
    from flowscope.analysis_sources import compare_mode
    from flowscope.analyzer.errors import AnalysisError

    try:
        compare_mode(params, "cli")
    except AnalysisError as exc:  # options of two comparisons, or of none complete
        raise click.UsageError(str(exc)) from exc
    with analysis_source(db, server_url, token, flows_file) as source:
        try:
            result = source.compare(**params)
        except AnalysisError as exc:
            # No trace of an automatic flow's in a version: flows.yaml may have taken
            # them (an id from before the rule answered as if there were none). Only
            # then: a usage error got the hint too (the message is all that crosses
            # from a server).
            missing = "ran through service.version=" in str(exc)
            claims = _claims(source, flow, since, until) if versions and missing else []
            if claims:
                raise AnalysisError(f"{exc}\n{_claims_hint(claims)}") from exc
            raise
        hints = []
        if result.mode == "windows":
            bounds = {"left": (left_since, left_until), "right": (right_since, right_until)}
            for side in _empty_sides(result):
                claims = _claims(source, flow, *bounds[side])
                if claims:
                    hints.append(_claims_hint(claims, f"the {side} window"))
    if sort_by == "errors":
        result = by_error_change(result)
    _hint_empty_sides(result, flow)
    if result.left == result.right:  # all zeros would read as "no change"
        click.echo(f"(both sides are the same: {result.left})", err=True)
    for hint in hints:
        click.echo(hint, err=True)
    if fmt == "json":
        echo_json(result.as_dict())
        return
    click.echo(shown(f"{result.mode}: {result.left}  vs  {result.right}"))
    click.echo()
    # The step's path label ("a op > b op > ...") would be cut: show the step and the
    # step it is under (rows go biggest delta first, so indenting by depth put steps
    # visually under whatever row came before them).
    # Rows that print alike in the columns shown (a detached sub-tree's top named like
    # the root, say; or steps told apart only by a column left out) show their step ids.
    shown_as = [
        (
            op_label(d.service, d.operation),
            d.under if "under" in delta_columns else "",
            d.kind if "kind" in delta_columns else "",
        )
        for d in result.deltas
    ]
    alike = Counter(shown_as)
    rows = [
        [
            {**d.as_dict(), "step": seen[0] + (f" [{d.step_id}]" if alike[seen] > 1 else "")}[c]
            for c in delta_columns
        ]
        for d, seen in zip(result.deltas, shown_as, strict=True)
    ]
    echo_table(render_table(delta_columns, rows, max_width=70))


def by_error_change(result: Any) -> Any:
    """The comparison with its rows by the biggest error-rate change (then the biggest
    latency change, as the analyzer orders them)."""
    from dataclasses import replace

    def size(delta: Any) -> float:
        # A step on one side only counts with its one error rate, as the latency order
        # counts its one value: a new step failing every call came last.
        if delta.error_rate_delta is not None:
            return float(abs(delta.error_rate_delta))
        one = (
            delta.right_error_rate if delta.right_error_rate is not None else delta.left_error_rate
        )
        return float(one or 0.0)

    ranked = sorted(enumerate(result.deltas), key=lambda pair: (-size(pair[1]), pair[0]))
    return replace(result, deltas=[delta for _, delta in ranked])


def _claims(source: Any, flow: str | None, since: str | None, until: str | None) -> list[Any]:
    """The flows.yaml flows that took traces with ``flow``'s root in the window."""
    return source.flow(flow, since, until, None).claimed_by if flow else []


def _empty_sides(result: Any) -> list[str]:
    """The sides of a comparison with no value for any step (both when it has none)."""
    return [
        side
        for side in ("left", "right")
        if all(getattr(d, f"{side}_ms") is None for d in result.deltas)
    ]


def _hint_empty_sides(result: Any, flow: str | None) -> None:
    """Say on stderr when a window of a comparison holds none of the flow's traces:
    both empty printed a bare header, one empty listed every step as new."""
    deltas, empty = result.deltas, _empty_sides(result)
    if result.mode == "baseline" and deltas and "left" in empty:
        click.echo(
            "(the baseline window holds none of the trace's flow's traces, so no step P50s; "
            "give --since/--until around the trace, or leave them out for the hour around it)",
            err=True,
        )
    if result.mode != "windows":
        return
    if not deltas:
        click.echo(f"(neither window holds a trace of flow {flow})", err=True)
    elif "left" in empty:
        click.echo(f"(the left window holds no trace of flow {flow}: every step is new)", err=True)
    elif "right" in empty:
        click.echo(
            f"(the right window holds no trace of flow {flow}: every step is gone)", err=True
        )
