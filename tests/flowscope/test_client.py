"""``flowscope.open``: a file and a server URL give the same records and data frames."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict, get_args

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import flowscope
from flowscope.analysis_sources import LocalSource, RemoteSource
from flowscope.analyzer.diagrams import flow_sequence_mermaid
from flowscope.analyzer.errors import AnalysisError, UnknownFlow, UnknownTrace
from flowscope.analyzer.flows import auto_flow_id
from flowscope.analyzer.model import Edge, Flow, Node, Step, StepDelta, TraceSpan, TraceSummary
from flowscope.client import Flowscope
from flowscope.store.database import Database
from flowscope.testing.server import ServerProcess, start_server_process
from tests.analysis_scenario import (
    FASTEST_ORDER_TRACE,
    ORDER_P50,
    SINCE,
    SLOWEST_ORDER_TRACE,
    UNTIL,
    scenario_file,
)
from tests.ctrl_c import ctrl_c_at_the_read

TOKEN = "client-token"
ORDERS = auto_flow_id("gateway", "POST /orders")


class WindowArgs(TypedDict):
    since: str
    until: str


W: WindowArgs = {"since": SINCE, "until": UNTIL}


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flowscope]:
    with flowscope.open(scenario_file(tmp_path_factory.mktemp("local") / "spans.duckdb")) as fs:
        yield fs


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ServerProcess]]:
    path = scenario_file(tmp_path_factory.mktemp("served") / "spans.duckdb")
    process = start_server_process(
        path, "--token", TOKEN, "--decode-workers", "0", "--retention", "off"
    )
    try:
        yield path, process
    finally:
        assert process.stop() == 0, "".join(process.output)


@pytest.fixture(scope="module")
def remote(server: tuple[Path, ServerProcess]) -> Iterator[Flowscope]:
    with flowscope.open(server[1].endpoints.ui, token=TOKEN) as fs:
        yield fs


FRAMES: dict[str, Callable[[Flowscope], pd.DataFrame]] = {
    "map_edges": lambda fs: fs.map(**W).df(),
    "map_nodes": lambda fs: fs.map(**W).nodes.df(),
    "map_of_flow": lambda fs: fs.map(**W, flow=ORDERS).df(),
    "flows": lambda fs: fs.flows(**W).df(),
    "flows_by": lambda fs: fs.flows(**W, by="wallet.provider").df(),
    "flow_steps": lambda fs: fs.flow(ORDERS, **W).df(),
    "flow_steps_by": lambda fs: fs.flow(ORDERS, **W, by="wallet.provider").df(),
    "traces": lambda fs: fs.traces(**W, limit=100).df(),
    "traces_filtered": lambda fs: fs.traces(**W, service="orders", min_duration_ms=150).df(),
    "traces_recent": lambda fs: fs.traces(**W, sort="recent", limit=3).df(),
    "traces_by_attribute": lambda fs: fs.traces(
        **W, attributes={"wallet.provider": "paypal", "http.route": "/orders"}, max_duration_ms=1e4
    ).df(),
    "trace_spans": lambda fs: fs.trace(SLOWEST_ORDER_TRACE, **W).df(),
    "critical_path": lambda fs: fs.trace(SLOWEST_ORDER_TRACE).critical_path.df(),
    "compare_traces": lambda fs: fs.compare_traces(FASTEST_ORDER_TRACE, SLOWEST_ORDER_TRACE).df(),
    "compare_baseline": lambda fs: fs.compare_baseline(SLOWEST_ORDER_TRACE, **W).df(),
    "compare_windows": lambda fs: fs.compare_windows(
        ORDERS, (SINCE, "2026-01-01T00:02:00Z"), ("2026-01-01T00:02:00Z", UNTIL)
    ).df(),
    "compare_versions": lambda fs: fs.compare_versions(ORDERS, "1.0", "2.0", **W).df(),
    "sql": lambda fs: fs.sql(
        "SELECT ServiceName AS service, count(*) AS spans FROM otel_traces "
        "GROUP BY ServiceName ORDER BY service"
    ).df(),
    "sql_typed": lambda fs: fs.sql(TYPED_SQL).df(),
}
# Columns of the types a SQL frame reads (a NULL in each), and one it cannot.
TYPED_SQL = (
    "SELECT Timestamp, Duration, Timestamp::TIMESTAMPTZ AS zoned, Timestamp::DATE AS day, "
    "Duration / 1e6 AS ms, StatusCode = 'Error' AS failed, INTERVAL 90 MINUTE AS span, "
    "'infinity'::TIMESTAMP AS never FROM otel_traces "
    "UNION ALL SELECT NULL, NULL, NULL, NULL, 'nan'::DOUBLE, NULL, NULL, NULL "
    "ORDER BY Timestamp NULLS FIRST, Duration LIMIT 3"
)


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_file_and_url_give_the_same_frames(name: str, local: Flowscope, remote: Flowscope) -> None:
    assert isinstance(local.source, LocalSource) and isinstance(remote.source, RemoteSource)
    left, right = FRAMES[name](local), FRAMES[name](remote)
    assert len(left) > 0
    assert_frame_equal(left, right)


def columns_of(record: type[Any]) -> list[str]:
    return [f.name for f in dataclasses.fields(record) if f.name != "group"]


def test_frames_have_the_record_fields_and_types(local: Flowscope) -> None:
    assert list(local.map(**W).df().columns) == columns_of(Edge)
    assert list(local.map(**W).nodes.df().columns) == columns_of(Node)
    assert list(local.flow(ORDERS, **W).df().columns) == columns_of(Step)
    assert list(local.trace(SLOWEST_ORDER_TRACE).df().columns) == columns_of(TraceSpan)
    cmp = local.compare_traces(FASTEST_ORDER_TRACE, SLOWEST_ORDER_TRACE).df()
    assert list(cmp.columns) == columns_of(StepDelta)
    traces = local.traces(**W).df()
    assert list(traces.columns) == columns_of(TraceSummary)
    assert str(traces["start"].dtype) == "datetime64[ns, UTC]"
    # SQL columns by their DuckDB types: times were text, a NULL made BIGINT float.
    typed = local.sql(TYPED_SQL).df()
    assert {c: str(typed[c].dtype) for c in typed.columns} == {
        "Timestamp": "datetime64[ns]",
        "Duration": "Int64",
        "zoned": "datetime64[us, UTC]",
        "day": "datetime64[us]",
        "ms": "float64",
        "failed": "boolean",
        "span": "timedelta64[us]",
        "never": "str",  # no pandas time: kept as the answer has it
    }
    assert typed.drop(columns="never").iloc[0].isna().all()  # NULL, and the NaN
    assert typed["Timestamp"].iloc[1] == pd.Timestamp("2026-01-01T00:00:00")
    assert typed["span"].iloc[1] == pd.Timedelta(minutes=90)
    assert typed["never"].iloc[1] == "infinity"
    assert traces["start"].iloc[0] == pd.Timestamp("2026-01-01T00:03:00Z")
    # An empty result still has its columns.
    empty = local.flows(since="2030-01-01T00:00:00Z", until="2030-01-02T00:00:00Z").df()
    assert empty.empty and list(empty.columns) == columns_of(Flow)
    # ... and their types (they were all object), as is a column of only None.
    assert (str(empty["traces"].dtype), str(empty["p95_ms"].dtype)) == ("int64", "float64")
    spans = local.trace(SLOWEST_ORDER_TRACE).df()
    assert spans["step_p50_ms"].isna().all() and str(spans["step_p50_ms"].dtype) == "float64"
    # A count that may be None: int64, float64 or object by the rows (empty: object).
    none = local.compare_windows(
        ORDERS,
        ("2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z"),
        ("2030-01-02T00:00:00Z", "2030-01-03T00:00:00Z"),
    ).df()
    assert (str(none["left_calls"].dtype), str(none["right_calls"].dtype)) == ("float64",) * 2


def test_group_values_become_columns(local: Flowscope) -> None:
    flows = local.flows(**W, by="wallet.provider").df()
    assert list(flows.columns) == columns_of(Flow) + ["wallet.provider"]
    orders = flows[flows["id"] == ORDERS].set_index("wallet.provider")["traces"]
    assert orders.to_dict() == {"paypal": 2, "visa": 2}


def test_a_group_named_like_a_field_does_not_overwrite_it(local: Flowscope) -> None:
    """``by="service"`` on steps made a second ``service`` column, and both held the
    group's value: the steps' services were gone."""
    with pytest.warns(UserWarning, match="'service'"):  # no attribute of that name
        steps = local.flow(ORDERS, **W, by="service").df()
    assert list(steps.columns) == columns_of(Step) + ["group.service"]
    assert set(steps["service"]) >= {"gateway", "orders"}


def test_records_and_numbers(local: Flowscope) -> None:
    flows = local.flows(**W)
    assert len(flows) == 2 and isinstance(flows[0], Flow)
    # A slice keeps .df() (it was a plain list), and equal answers are equal.
    assert list(flows[:1].df()["id"]) == [flows[0].id]
    assert flows == local.flows(**W) and flows[:1] != flows
    orders = next(f for f in flows if f.id == ORDERS)
    assert (orders.traces, orders.p50_ms) == (4, ORDER_P50)
    result = local.flow(ORDERS, **W)
    assert result.flow == orders
    assert {s.operation for s in result.steps} >= {"POST /orders", "validate", "orders process"}
    assert result.diagram().startswith("sequenceDiagram")
    assert result.diagram("dot").startswith("digraph flow")
    by_provider = local.flow(ORDERS, **W, by="wallet.provider")
    assert by_provider.diagram() == flow_sequence_mermaid(by_provider.detail)
    assert "    alt wallet.provider = paypal\n" in by_provider.diagram()
    assert "subgraph cluster_1" in by_provider.diagram("dot")
    assert local.map(**W).diagram().startswith("flowchart LR")
    view = local.trace(SLOWEST_ORDER_TRACE).view
    assert view.duration_ms == 400.0 and len(view.spans) == 7


@pytest.mark.parametrize("odd", ["", ".", "..", "a/b", "%2e"])
def test_ids_no_route_carries_are_unknown_on_both(
    odd: str, local: Flowscope, remote: Flowscope
) -> None:
    """Through a server, "" and "." reached the list routes (a JSON or KeyError crash)
    and ".." or "a/b" blamed the server URL."""
    for fs in (local, remote):
        with pytest.raises(UnknownFlow):
            fs.flow(odd)
        with pytest.raises(UnknownTrace):
            fs.trace(odd)


def test_unknown_flow_and_trace_raise_the_same_on_both(local: Flowscope, remote: Flowscope) -> None:
    for fs in (local, remote):
        with pytest.raises(UnknownFlow, match="no-such-flow"):
            fs.flow("no-such-flow", **W)
        with pytest.raises(UnknownTrace):
            fs.trace("f" * 32)
        with pytest.raises(AnalysisError, match="since"):
            fs.flows(since="soonish")


REFUSALS: dict[str, Callable[[Flowscope], object]] = {
    "flow": lambda fs: fs.flow("no-such-flow", **W),
    "map_of_flow": lambda fs: fs.map(**W, flow="no-such-flow"),
    "traces_of_flow": lambda fs: fs.traces(**W, flow="no-such-flow"),
    "trace": lambda fs: fs.trace("F" * 32),
    "compare_traces": lambda fs: fs.compare_traces(FASTEST_ORDER_TRACE, "e" * 32),
    "compare_baseline": lambda fs: fs.compare_baseline("e" * 32, **W),
    "compare_windows": lambda fs: fs.compare_windows(
        "no-such-flow", (SINCE, "2026-01-01T00:02:00Z"), ("2026-01-01T00:02:00Z", UNTIL)
    ),
    "compare_versions": lambda fs: fs.compare_versions("no-such-flow", "1.0", "2.0", **W),
    "compare_versions_no_version": lambda fs: fs.compare_versions(ORDERS, "api=", "2.0", **W),
    "bad_since": lambda fs: fs.flows(since="banana"),
    "int_since": lambda fs: fs.flows(since=3600),  # type: ignore[arg-type]
    "int_left_until": lambda fs: fs.compare_windows(ORDERS, ("2h", 3600), ("1h", None)),  # type: ignore[arg-type]
    "backwards": lambda fs: fs.map(since=UNTIL, until=SINCE),
    "bad_left_since": lambda fs: fs.compare_windows(ORDERS, ("banana", None), ("1h", None)),
    "half_windows": lambda fs: fs.compare_windows(ORDERS, ("1h", None), (None, None)),
    "half_windows_source": lambda fs: fs.source.compare(flow=ORDERS, left_since="1h"),
    "traces_limit_0": lambda fs: fs.traces(**W, limit=0),
    "traces_limit_huge": lambda fs: fs.traces(**W, limit=10_001),
    "traces_negative_duration": lambda fs: fs.traces(**W, min_duration_ms=-1),
    "traces_nan_duration": lambda fs: fs.traces(**W, min_duration_ms=float("nan")),
    "traces_inf_duration": lambda fs: fs.traces(**W, min_duration_ms=float("inf")),
    "sql_refused": lambda fs: fs.sql("DELETE FROM otel_traces"),
    # a file answered no rows, "truncated"; a server a 422
    "sql_limit_0": lambda fs: fs.sql("SELECT 1", limit=0),
    "sql_timeout_0": lambda fs: fs.sql("SELECT 1", timeout_s=0),
    "sql_timeout_nan": lambda fs: fs.sql("SELECT 1", timeout_s=float("nan")),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_file_and_url_refuse_with_the_same_error(
    name: str, local: Flowscope, remote: Flowscope
) -> None:
    """The same exception class and message whether the store is a file or a URL
    (docs/python_api.md), never the server's "server refused: ..."."""
    with pytest.raises(AnalysisError) as on_file:
        REFUSALS[name](local)
    with pytest.raises(AnalysisError) as on_server:
        REFUSALS[name](remote)
    assert type(on_server.value) is type(on_file.value)
    assert str(on_server.value) == str(on_file.value)
    assert "server refused" not in str(on_server.value)


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("flow", UnknownFlow, "no flow 'no-such-flow'"),
        ("map_of_flow", UnknownFlow, "no flow 'no-such-flow'"),
        ("traces_of_flow", UnknownFlow, "no flow 'no-such-flow'"),
        ("trace", UnknownTrace, f"no trace '{'f' * 32}'"),
        ("compare_traces", UnknownTrace, f"no trace '{'e' * 32}'"),
        ("compare_baseline", UnknownTrace, f"no trace '{'e' * 32}'"),
        ("compare_windows", UnknownFlow, "no flow 'no-such-flow'"),
        ("compare_versions", UnknownFlow, "no flow 'no-such-flow'"),
        # Python's parameters, not the CLI's --since.
        ("bad_since", AnalysisError, "since: invalid time 'banana'"),
        ("backwards", AnalysisError, "since (2026-01-01T01:00:00Z) must be before until"),
        ("bad_left_since", AnalysisError, "left_since: invalid time 'banana'"),
        # Was a bare TypeError ("object of type 'int' has no len()").
        ("int_since", AnalysisError, "since: 3600 is int; give a duration back from now"),
        ("int_left_until", AnalysisError, "left_until: 3600 is int"),
        ("half_windows", AnalysisError, "compare_windows: right needs a since, an until or both"),
        ("half_windows_source", AnalysisError, "the right one (right_since, right_until or both)"),
    ],
)
def test_refusals_name_the_thing_and_the_parameter(
    name: str, error: type[AnalysisError], message: str, local: Flowscope
) -> None:
    with pytest.raises(error) as refused:
        REFUSALS[name](local)
    assert message in str(refused.value)
    assert "--" not in str(refused.value)


def test_windows_may_be_datetimes(local: Flowscope, remote: Flowscope) -> None:
    """A datetime (what pandas hands out) raised a bare TypeError; a naive one is UTC."""
    since, until = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1)
    for fs in (local, remote):
        by_datetime = [f.id for f in fs.flows(since=since, until=until)]
        assert by_datetime and by_datetime == [f.id for f in fs.flows(**W)]
        window = (since, until)
        assert len(fs.compare_windows(ORDERS, window, window).deltas) > 0


def test_diagram_refuses_an_unknown_format(local: Flowscope) -> None:
    # These used to fall through to the default diagram, which looks like an answer.
    flow = local.flow(ORDERS, **W)
    for wrong in ("png", "flowchart", "mermaid-flow", "sequence"):
        with pytest.raises(
            ValueError, match="'mermaid-sequence', 'mermaid-flowchart', 'mermaid', 'dot'"
        ):
            flow.diagram(wrong)  # type: ignore[arg-type]
    service_map = local.map(**W)
    for wrong in ("mermaid-flowchart", "svg"):
        with pytest.raises(ValueError, match="use one of 'mermaid', 'dot'"):
            service_map.diagram(wrong)  # type: ignore[arg-type]
    assert flow.diagram("mermaid-flowchart").startswith("flowchart")
    assert service_map.diagram("dot").startswith("digraph")


def test_diagram_formats_are_the_apis(local: Flowscope) -> None:
    # The same names as GET /api/flows/{id}/diagram and /api/map/diagram, and the CLI's
    # plain `--format mermaid` for a flow: its sequence diagram.
    from flowscope.analyzer.diagrams.formats import (
        FLOW_DIAGRAMS,
        MAP_DIAGRAMS,
        FlowFormat,
        MapFormat,
    )

    assert list(get_args(FlowFormat)) == list(FLOW_DIAGRAMS)
    assert list(get_args(MapFormat)) == list(MAP_DIAGRAMS)
    flow = local.flow(ORDERS, **W)
    assert flow.diagram("mermaid") == flow.diagram("mermaid-sequence") == flow.diagram()


def test_held_file_is_read_through_its_server(server: tuple[Path, ServerProcess]) -> None:
    path, process = server
    with flowscope.open(path, token=TOKEN) as fs:
        assert isinstance(fs.source, RemoteSource)
        assert fs.where == process.endpoints.ui
        assert len(fs.flows(**W)) == 2


def test_a_held_file_whose_server_stopped_says_to_open_it_again(tmp_path: Path) -> None:
    """A notebook kept open across a demo run said only "cannot reach" the old URL,
    though the file was free to read."""
    import socket

    with socket.socket() as sock:  # a port nothing listens on once it is closed
        sock.bind(("127.0.0.1", 0))
        gone = f"http://127.0.0.1:{sock.getsockname()[1]}"
    held = RemoteSource(gone, None, names="python", held=str(tmp_path / "a.duckdb"))
    with pytest.raises(AnalysisError, match=r"the server that held .*a\.duckdb has stopped: open"):
        held.flows(None, None, None)
    with pytest.raises(AnalysisError) as caught:
        RemoteSource(gone, None, names="python").flows(None, None, None)
    assert "open the file again" not in str(caught.value)  # a URL given: no file to open


def test_open_refuses_what_it_cannot_read(
    tmp_path: Path, server: tuple[Path, ServerProcess]
) -> None:
    with pytest.raises(AnalysisError, match="no such database"):
        flowscope.open(tmp_path / "missing.duckdb")
    with flowscope.open(server[1].endpoints.ui) as fs, pytest.raises(AnalysisError, match="token"):
        fs.flows(**W)
    bad = tmp_path / "flows.yaml"
    bad.write_text("flows:\n  - name: X\n    match: {colour: red}\n", encoding="utf-8")
    with pytest.raises(AnalysisError, match=r"flows\[0\]\.match\.colour: unknown key"):
        flowscope.open(server[0], flows=bad)


def test_import_flowscope_stays_light() -> None:
    code = (
        "import sys, flowscope; "
        "print(sorted(m for m in ('pandas', 'httpx', 'duckdb') if m in sys.modules)); "
        "flowscope.open; print('pandas' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split("\n")[:2] == ["[]", "False"]


def test_docs_cover_every_method() -> None:
    """docs/python_api.md names every public method and property of the results."""
    from flowscope import client

    text = (Path(__file__).parents[2] / "docs" / "python_api.md").read_text(encoding="utf-8")
    classes = [
        client.Flowscope,
        client.MapResult,
        client.FlowResult,
        client.TraceResult,
        client.ComparisonResult,
        client.SqlResult,
        client.Records,
    ]
    for cls in classes:
        for name in vars(cls):
            if name.startswith("_") or name in ("source", "records", "record_type"):
                continue
            assert f".{name}" in text or f"{name}(" in text, f"{cls.__name__}.{name}"


def test_an_answer_of_another_shape_is_an_analysis_error() -> None:
    """Read as records, a JSON answer of another shape (a Jaeger query service's
    {"data": []}, a 400 whose body is a list) raised KeyError or AttributeError."""
    import http.server
    import threading

    from flowscope.analysis_sources import RemoteSource
    from flowscope.analyzer.errors import AnalysisError

    bodies = {"/api/flows": (200, b'{"data": []}'), "/api/traces": (400, b"[]")}

    class Other(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            status, body = bodies.get(self.path.split("?")[0], (200, b'{"flows": [{"id": 1}]}'))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Other)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    source = RemoteSource(f"http://127.0.0.1:{server.server_address[1]}", None)
    try:
        with pytest.raises(AnalysisError, match="answered JSON that is not flowscope's"):
            source.flows(None, None, None)
        with pytest.raises(AnalysisError, match="HTTP 400"):
            source.traces(None, None)
        with pytest.raises(AnalysisError, match="not flowscope's"):
            source.service_map(None, None, None)
    finally:
        source.close()
        server.shutdown()
        server.server_close()


def test_a_plain_text_404_gets_the_wrong_url_hint() -> None:
    """Showing plain-text refusals (the Host guard's 403) hid the hint for any other
    plain-text 404: Go's net/http answers "404 page not found", and --server pointed at
    such a server said only 'server refused: HTTP 404: 404 page not found'."""
    import http.server
    import threading

    from flowscope.analysis_sources import RemoteSource
    from flowscope.analyzer.errors import AnalysisError

    class GoLike(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = b"404 page not found\n"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), GoLike)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    source = RemoteSource(url, None)
    try:
        with pytest.raises(AnalysisError, match=f"{url} has no /api/flows: --server wants"):
            source.flows(None, None, None)
    finally:
        source.close()
        server.shutdown()
        server.server_close()


def _open_handles(path: Path) -> int:
    handles = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            handles += str(path) in str(fd.readlink())
        except OSError:
            pass  # closed while listed
    return handles


def test_a_dropped_file_reader_releases_the_file(tmp_path: Path) -> None:
    """A cache of each thread's read cursor, keyed by the Database's id(), kept the
    cursor and DuckDB's lock on the file after the reader was dropped: a notebook cell
    `fs = flowscope.open(...); fs.flows()` run twice left the file unwritable until
    the kernel restarted."""
    import gc

    path = scenario_file(tmp_path / "spans.duckdb")
    for _ in range(2):
        fs = flowscope.open(path)
        fs.flows(**W)
    del fs
    gc.collect()
    assert _open_handles(path) == 0
    Database(path).close()  # a writer opens it


def test_a_damaged_file_fails_as_an_analysis_error(tmp_path: Path) -> None:
    """A file cut short opens, and its first read raised DuckDB's IOException from the
    Python API, where the CLI says the file is not usable."""
    path = scenario_file(tmp_path / "spans.duckdb")
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 2)
    try:
        fs = flowscope.open(path)
    except AnalysisError as exc:  # found at open: as good
        assert str(path) in str(exc)
        return
    with fs, pytest.raises(AnalysisError) as caught:
        fs.flows(**W)
    assert f"{path}: not a usable DuckDB database" in str(caught.value)


def test_nat_is_refused_as_a_window_bound(local: Flowscope) -> None:
    """pandas' NaT (the min of an empty column) is a datetime: a bare ValueError."""
    with pytest.raises(AnalysisError, match="since: NaT is no time"):
        local.flows(since=pd.NaT)


def test_flows_a_server_does_not_apply_are_warned_of(
    tmp_path: Path, server: tuple[Path, ServerProcess]
) -> None:
    """The CLI warns that a server's flows apply; the Python API dropped the yaml
    silently, and the docs' "Named flows" example then said "no flow"."""
    named = tmp_path / "flows.yaml"
    named.write_text(
        "flows:\n  - name: Order placement\n    match: {service: gateway}\n",
        encoding="utf-8",
    )
    for target in (server[0], server[1].endpoints.ui):
        with pytest.warns(UserWarning, match="its flows apply, not the flows given") as said:
            flowscope.open(target, token=TOKEN, flows=named).close()
        assert said[0].filename == __file__  # the caller's line, not flowscope's
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flowscope.open(server[0], token=TOKEN).close()


def test_a_closed_reader_says_it_is_closed(
    tmp_path: Path, server: tuple[Path, ServerProcess]
) -> None:
    """After close(): DuckDB's "Connection already closed!", a StoreError on another
    thread, or httpx's RuntimeError, by source and thread."""
    import threading

    for target in (scenario_file(tmp_path / "spans.duckdb"), server[1].endpoints.ui):
        fs = flowscope.open(target, token=TOKEN)
        fs.flows(**W)
        fs.close()
        caught: list[BaseException] = []
        ask = flows_into(fs, caught)
        ask()
        other = threading.Thread(target=ask)
        other.start()
        other.join()
        assert [type(e) for e in caught] == [AnalysisError, AnalysisError], caught
        assert all(str(e).endswith("is closed: open it again") for e in caught)
        fs.close()  # again: nothing happens


def test_a_call_cut_short_by_close_in_another_thread_says_the_handle_was_closed(
    tmp_path: Path, server: tuple[Path, ServerProcess]
) -> None:
    """Cut short by close(), a file's read raised DuckDB's InterruptException or blamed
    derivation, and a server's said "cannot reach" it (Bad file descriptor)."""
    import threading

    import duckdb
    import httpx

    failures: dict[str, BaseException] = {
        "file": duckdb.InterruptException("INTERRUPT Error: Interrupted!"),
        "server": httpx.ConnectError("[Errno 9] Bad file descriptor"),
    }
    for (kind, failure), target in zip(
        failures.items(),
        (scenario_file(tmp_path / "spans.duckdb"), server[1].endpoints.ui),
        strict=True,
    ):
        fs = flowscope.open(target, token=TOKEN)
        started, closed = threading.Event(), threading.Event()

        def flows_cut_short(
            *args: Any,
            failure: BaseException = failure,
            started: threading.Event = started,
            closed: threading.Event = closed,
        ) -> Any:
            started.set()
            closed.wait(30)
            raise failure

        fs.source.flows = flows_cut_short  # type: ignore[method-assign]
        caught: list[BaseException] = []
        other = threading.Thread(target=flows_into(fs, caught))
        other.start()
        assert started.wait(30)
        fs.close()
        closed.set()
        other.join(30)
        assert [type(e) for e in caught] == [AnalysisError], (kind, caught)
        assert str(caught[0]).endswith("was closed while this call ran: open it again")


def test_opening_messages_name_python_arguments(
    server: tuple[Path, ServerProcess],
) -> None:
    """They named the CLI's --db and --server."""
    with pytest.raises(AnalysisError, match="^path_or_url: an empty path names no file"):
        flowscope.open("")
    with pytest.raises(AnalysisError, match="flowscope.open wants the API URL") as otlp_port:
        with flowscope.open(server[1].endpoints.http, token=TOKEN) as fs:
            fs.flows(**W)
    assert "--server" not in str(otlp_port.value)


def test_a_bound_past_the_last_storable_time_says_which_that_is(local: Flowscope) -> None:
    with pytest.raises(AnalysisError) as past:
        local.flows(until=pd.Timestamp.max)
    assert str(past.value).endswith(
        "(1677-09-21T00:12:43.145224194Z to 2262-04-11T23:47:16.854775806Z)"
    )


def flows_into(fs: Flowscope, caught: list[BaseException]) -> Callable[[], None]:
    """A call of ``fs.flows()`` that keeps what it raises in ``caught``."""

    def ask() -> None:
        try:
            fs.flows(**W)
        except BaseException as exc:
            caught.append(exc)

    return ask


WRONG_TYPES: dict[str, tuple[Callable[[Flowscope], Any], str]] = {
    "float limit": (lambda fs: fs.traces(**W, limit=5.5), "limit: 5.5 is float"),  # type: ignore[arg-type]
    "bool limit": (lambda fs: fs.traces(**W, limit=True), "limit: True is bool"),
    "sql limit": (lambda fs: fs.sql("SELECT 1", limit=5.5), "limit: 5.5 is float"),  # type: ignore[arg-type]
    "sql None": (lambda fs: fs.sql(None), "query: None is NoneType"),  # type: ignore[arg-type]
    "trace None": (lambda fs: fs.trace(None), "trace_id: None is NoneType"),  # type: ignore[arg-type]
    "error text": (lambda fs: fs.traces(**W, error="yes"), "error: 'yes' is str"),  # type: ignore[arg-type]
    "window text": (
        lambda fs: fs.compare_windows(ORDERS, "2h", "1h"),  # type: ignore[arg-type]
        "compare_windows: left must be a (since, until) pair",
    ),
    "version None": (
        lambda fs: fs.compare_versions(ORDERS, None, "x"),  # type: ignore[arg-type]
        "left_version: None is NoneType",
    ),
}


@pytest.mark.parametrize("name", sorted(WRONG_TYPES))
def test_wrong_types_are_refused_alike_on_a_file_and_a_server(
    name: str, local: Flowscope, remote: Flowscope
) -> None:
    """A float limit gave 6 rows from a file and a 400 from a server; a None id a
    TypeError or an AttributeError from a file."""
    call, message = WRONG_TYPES[name]
    for fs in (local, remote):
        with pytest.raises(AnalysisError) as caught:
            call(fs)
        assert message in str(caught.value)


def test_numpy_numbers_are_numbers(local: Flowscope, remote: Flowscope) -> None:
    """What a DataFrame cell holds: numpy's int64, float64 and bool_."""
    import numpy as np

    for fs in (local, remote):
        found = fs.traces(
            **W, limit=np.int64(2), min_duration_ms=np.float64(0), error=np.bool_(False)
        )
        assert len(found) == 2
        assert len(fs.sql("SELECT 1 AS x FROM range(5)", limit=np.int32(3)).rows) == 3


def test_flows_of_another_type_are_an_analysis_error(tmp_path: Path) -> None:
    with pytest.raises(AnalysisError, match="flows: 123 is int"):
        flowscope.open(scenario_file(tmp_path / "spans.duckdb"), flows=123)  # type: ignore[arg-type]


def test_flows_may_be_any_path_like(tmp_path: Path) -> None:
    from pathlib import PurePosixPath

    named = tmp_path / "flows.yaml"
    named.write_text("flows: [{name: Orders, match: {service: gateway}}]\n", encoding="utf-8")
    path = scenario_file(tmp_path / "spans.duckdb")
    with flowscope.open(path, flows=PurePosixPath(named)) as fs:  # type: ignore[arg-type]
        assert "orders" in [f.id for f in fs.flows(**W)]


def test_a_value_duckdb_refuses_is_not_blamed_on_the_file(local: Flowscope) -> None:
    """Every DuckDB error of a read was "not a usable DuckDB database", also a string
    that is not UTF-8 (a surrogate escape, from a Latin-1 argv)."""
    with pytest.raises(AnalysisError) as caught:
        local.traces(**W, service="caf\udce9")
    assert "not a usable DuckDB database" not in str(caught.value)
    assert "UTF-8" in str(caught.value)


def test_a_token_is_sent_trimmed_or_refused_without_being_shown(
    server: tuple[Path, ServerProcess],
) -> None:
    """A token read from a CRLF file ended in a CR: "cannot reach ...: Illegal header
    value b'Bearer s3cret\\r'", the token printed; a non-ASCII one a traceback."""
    with flowscope.open(server[1].endpoints.ui, token=f" {TOKEN}\r\n") as fs:
        assert fs.flows(**W)
    for bad in ("pässwort", "two words"):
        with (
            flowscope.open(server[1].endpoints.ui, token=bad) as fs,
            pytest.raises(AnalysisError) as caught,
        ):
            fs.flows(**W)  # the server asks for a token: what is wrong with this one
        assert "asks for a token" in str(caught.value)
        assert "must be printable ASCII without spaces" in str(caught.value)
        assert bad not in str(caught.value)


def test_a_stray_token_does_not_stop_reads_of_a_server_that_needs_none(tmp_path: Path) -> None:
    """Checked before asking, a FLOWSCOPE_TOKEN left in the environment refused reads
    of a server that takes none (the CLI goes through a server holding --db by itself)."""
    path = scenario_file(tmp_path / "open.duckdb")
    server = start_server_process(path, "--decode-workers", "0", "--retention", "off")
    try:
        with flowscope.open(path, token="my token") as fs:
            assert fs.where.startswith("http://") and len(fs.flows(**W)) == 2
    finally:
        assert server.stop() == 0


def test_ctrl_c_stops_a_query_on_a_file_at_once(local: Flowscope) -> None:
    """A notebook's "interrupt kernel" (SIGINT) did nothing while a query on a file ran
    in the main thread: DuckDB held Python's handler off until the query's 10 s limit,
    and then raised a bare RuntimeError("Query interrupted")."""
    endless = "SELECT count(*) FROM range(10000000000000) t(x) WHERE x % 7 = 3"
    with flowscope.open(local.where) as fs:  # a reader of its own: its read thread is new
        with ctrl_c_at_the_read() as took:
            fs.sql(endless)
        assert took() < 5  # not the 10 s of its time limit
        assert fs.sql("SELECT 1 AS one").rows == [[1]]  # the handle still answers


def test_open_checks_the_types_of_its_arguments() -> None:
    """token=123 raised a raw AttributeError from the token check; open(5) said
    "5: no such database"."""
    with pytest.raises(AnalysisError, match="path_or_url: 5 is int; give a file path"):
        flowscope.open(5)  # type: ignore[arg-type]
    with pytest.raises(AnalysisError, match="token: 123 is int; give a bearer token"):
        flowscope.open("http://127.0.0.1:9", token=123)  # type: ignore[arg-type]
    # Any path object is a path (PurePosixPath was refused by the first check).
    from pathlib import PurePosixPath

    with pytest.raises(AnalysisError, match="no such database"):
        flowscope.open(PurePosixPath("/nonexistent/x.duckdb"))


def test_open_is_shown_by_dir_and_help() -> None:
    """Loaded by a module __getattr__ on first use, it was in neither dir(flowscope)
    (no tab completion) nor help(flowscope)."""
    import pydoc

    assert "open" in dir(flowscope)
    shown = pydoc.render_doc(flowscope, renderer=pydoc.plaintext)
    assert "open(path_or_url: 'str | Path', token:" in shown


def test_open_expands_a_home_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ "~/spans.duckdb" was "no such database" (pandas reads "~/x.csv")."""
    scenario_file(tmp_path / "spans.duckdb")
    monkeypatch.setenv("HOME", str(tmp_path))
    with flowscope.open("~/spans.duckdb") as fs:
        assert fs.where == str(tmp_path / "spans.duckdb")


def test_an_empty_version_is_named_the_same_way_in_every_interface() -> None:
    """Only the CLI said so; the Python API said "say what to compare" and the HTTP API
    "give both left_version and right_version"."""
    from flowscope.analysis_sources import one_comparison
    from flowscope.analyzer.errors import AnalysisError

    for names, named in (("python", "left_version"), ("cli", "--versions")):
        with pytest.raises(AnalysisError, match=f"^{named}: a version must not be empty"):
            one_comparison({"flow": "f", "left_version": "", "right_version": "2"}, names)


def test_a_host_that_never_answers_the_connect_is_given_up_on_with_a_reason() -> None:
    """A typo'd address or a firewall that drops packets never refuses: the command sat
    silent for the whole 120 s answer timeout."""
    import socket

    with socket.socket() as listener:
        # A listener whose queue is full: Linux then drops further SYNs, as such a host does.
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
            source = RemoteSource(f"http://127.0.0.1:{port}", None, connect_timeout_s=0.5)
            with pytest.raises(
                AnalysisError, match=r"no connection within 0\.5 s \(is the address"
            ):
                source.flows(None, None, None)
        finally:
            for filler in fillers:
                filler.close()


def test_sql_takes_its_time_limit_on_a_file_and_through_a_server(
    local: Flowscope, remote: Flowscope
) -> None:
    """A file read in Python had a fixed 10 s limit that no parameter changed: a long
    analysis ran from `flowscope sql --timeout` only."""
    slow = "SELECT sum(range) FROM range(1000000000000)"
    for fs in (local, remote):
        with pytest.raises(AnalysisError, match=r"rule time-limit: .*0\.3 s limit"):
            fs.sql(slow, timeout_s=0.3)
        assert fs.sql("SELECT 42 AS x", timeout_s=30).rows == [[42]]


def test_a_by_attribute_no_trace_has_is_warned_of(local: Flowscope) -> None:
    """As the CLI says it: a column of '' and no word looked like an answer."""
    with pytest.warns(
        UserWarning, match="no trace in the window has a value for 'wallet_provider'"
    ):
        local.flows(**W, by="wallet_provider")
    with pytest.warns(UserWarning, match="'wallet_provider'"):
        local.flow(ORDERS, **W, by="wallet_provider")


def test_rows_a_server_capped_are_warned_of(remote: Flowscope, local: Flowscope) -> None:
    """Only .truncated said so: a per-minute count over the rows undercounted."""
    query = "SELECT range AS n FROM range(12000)"
    with pytest.warns(UserWarning, match="the server returned 10,000 rows, its limit"):
        capped = remote.sql(query, limit=12_000)
    assert capped.truncated and len(capped.rows) == 10_000
    assert len(local.sql(query, limit=12_000).rows) == 12_000  # a file has no such limit


def test_attribute_values_are_given_as_the_store_keeps_them(local: Flowscope) -> None:
    """Stringified as the exporter does: 500 as "500", True as "true"."""
    assert len(local.traces(**W, attributes={"wallet.provider": "paypal"})) == 2
    assert len(local.traces(**W, attributes={"wallet.provider": True})) == 0
    with pytest.raises(AnalysisError, match=r"attributes\['a'\]: 1.5 is float"):
        local.traces(**W, attributes={"a": 1.5})
    with pytest.raises(AnalysisError, match="attributes: an attribute needs a name"):
        local.traces(**W, attributes={"": "x"})


def test_python_argument_slips_and_caps_a_notebook_meets(local: Flowscope) -> None:
    """Diff reviewer: an answer cut by size said nothing; a key holding '=' read one
    way from a file and another through a server; numpy ints were refused as values;
    by="" warned of an attribute named ''."""
    import numpy as np

    with pytest.warns(UserWarning, match="its values reached the size limit"):
        big = local.sql("SELECT repeat('x', 100000) AS v FROM range(400)", limit=400)
    assert big.truncated and len(big.rows) < 400
    with pytest.raises(AnalysisError, match="'a=b' holds '=', which no attribute name may"):
        local.traces(**W, attributes={"a=b": "c"})
    assert local.traces(**W, attributes={"n": np.int64(7)}) == local.traces(
        **W, attributes={"n": "7"}
    )
    assert local.traces(**W, attributes={"b": np.bool_(True)}) == local.traces(
        **W, attributes={"b": "true"}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        local.flows(**W, by="")


def test_an_answer_cut_at_the_default_row_limit_warns(local: Flowscope, remote: Flowscope) -> None:
    """It was cut at 10,000 rows without a word: a count of traces in pandas gave 920 of
    2,743 (notebook review). A limit given is what was asked for: no warning."""
    import warnings

    for fs in (local, remote):
        with pytest.warns(UserWarning, match="stopped at 10,000 rows, the default limit"):
            cut = fs.sql("SELECT i FROM range(10001) t(i)")
        assert len(cut.rows) == 10_000 and cut.truncated
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert len(fs.sql("SELECT i FROM range(10) t(i)", limit=3).rows) == 3
            assert len(fs.sql("SELECT i FROM range(10000) t(i)").rows) == 10_000


def test_an_empty_frames_text_columns_are_of_a_full_ones_dtype(local: Flowscope) -> None:
    """Text columns were pandas 3's str with rows and object without, so an empty
    window's frame turned a full one's text into object when they were concatenated
    (notebook review)."""
    import pandas as pd

    empty = {"since": "2030-01-01T00:00:00Z", "until": "2030-01-01T01:00:00Z"}
    for ask in (lambda fs, w: fs.traces(**w), lambda fs, w: fs.flows(**w)):
        full, none = ask(local, W).df(), ask(local, empty).df()
        assert len(full) and not len(none)
        assert none.dtypes.to_dict() == full.dtypes.to_dict()
        assert pd.concat([none, full]).dtypes.to_dict() == full.dtypes.to_dict()
    text = pd.Series(["x"]).dtype
    rows = local.sql("SELECT ServiceName, StatusMessage FROM otel_traces LIMIT 3").df()
    nothing = local.sql("SELECT ServiceName, NULL::VARCHAR AS m FROM otel_traces LIMIT 0").df()
    assert rows["ServiceName"].dtype == nothing["ServiceName"].dtype == text
    assert nothing["m"].dtype == text
    # Other types answers carry as text, too (diff review).
    for type_name in ("UUID", "JSON", "TIME", "TIME_NS", "BLOB", "BIT", "VARINT", "ENUM('a', 'b')"):
        assert local.sql(f"SELECT NULL::{type_name} AS x").df()["x"].dtype == text, type_name
