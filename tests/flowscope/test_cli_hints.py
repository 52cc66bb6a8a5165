"""What the analysis commands say besides their tables: hints for empty windows,
refusals of options that would be ignored."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from flowscope.analyzer.flows import auto_flow_id
from flowscope.cli import main
from flowscope.store.database import Database
from tests.analysis_scenario import SINCE, UNTIL, scenario_file

ORDERS = auto_flow_id("gateway", "POST /orders")


@pytest.fixture(scope="module")
def scenario_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Dated 2026-01-01: nothing in the last hour.
    path = scenario_file(tmp_path_factory.mktemp("hints") / "spans.duckdb")
    return path


def write_kit(kit: Any, path: Path, spans: Any = None) -> None:
    """A test kit's spans (or ``spans`` of them) in a new database file at ``path``."""
    kit.write_file(path, spans)


def run(*args: str) -> Result:
    return CliRunner(env={"FLOWSCOPE_TOKEN": ""}).invoke(main, list(args))


@pytest.mark.parametrize("command", ["map", "flows", "traces"])
def test_an_empty_default_window_says_how_to_widen_it(command: str, scenario_db: Path) -> None:
    empty = run(command, "--db", str(scenario_db))
    assert empty.exit_code == 0
    assert "nothing in the last hour" in empty.stderr
    # A --since that reaches the newest span (a fixed "--since 7d" did not, for data
    # older than a week: the samples' README commands showed an empty table twice).
    days = math.ceil((time.time() - 1_767_225_600) / 86400) + 1
    newest = re.search(r"the newest span started at (\S+): --since (\d+)d reaches it", empty.stderr)
    assert newest is not None and newest.group(1).startswith("2026-01-01T00:")
    assert int(newest.group(2)) in (days, days + 1)  # a day may turn during the test
    assert "nothing" not in empty.stdout  # the table stays only the table
    widened = run(command, "--db", str(scenario_db), "--since", f"{newest.group(2)}d")
    assert widened.exit_code == 0 and widened.stderr == "" and widened.stdout.count("\n") > 2
    full = run(command, "--db", str(scenario_db), "--since", SINCE, "--until", UNTIL)
    assert full.exit_code == 0 and full.stderr == ""


def test_spans_dated_after_now_are_named_with_an_until_that_reaches_them(
    tmp_path: Path,
) -> None:
    """Spans dated after now (a sender's clock ahead) got "widen the window with
    --since", which cannot reach them."""
    from flowscope.testing.traces import TraceKit

    kit = TraceKit()
    ahead_ms = (time.time() + 3 * 3600 - 1_767_225_600) * 1000  # 3 h from now
    kit.trace(start_ms=ahead_ms).span("gw", "GET /", kind="Server", start_ms=0, duration_ms=5)
    path = tmp_path / "ahead.duckdb"
    write_kit(kit, path)
    for window in ([], ["--since", "2h"]):
        result = run("flows", "--db", str(path), *window)
        assert result.exit_code == 0
        assert "widen" not in result.stderr
        found = re.search(
            r"but spans are stored dated after now, up to (\S+) \(a sender's clock ahead\?\): "
            r"--until (\S+) reaches the newest\)",
            result.stderr,
        )
        assert found is not None and found.group(1) == found.group(2), result.stderr
        reached = run("flows", "--db", str(path), "--until", found.group(2))
        assert reached.exit_code == 0 and reached.stderr == "" and "GET /" in reached.stdout
    # With older spans too, --since still reaches those.
    older = TraceKit()
    older.trace(start_ms=0, trace_id="ab" * 16).span(
        "gw", "GET /old", kind="Server", start_ms=0, duration_ms=5
    )
    both = tmp_path / "both.duckdb"
    write_kit(kit, both)
    database = Database(both)
    try:
        older.write(database)
    finally:
        database.close()
    result = run("flows", "--db", str(both))
    assert "(a sender's clock ahead?)" in result.stderr
    assert result.stderr.rstrip().endswith("; older spans: widen the window with --since)")


def test_an_empty_given_window_names_it(scenario_db: Path) -> None:
    result = run("flows", "--db", str(scenario_db), "--since", "2h")
    assert "nothing since 2h" in result.stderr


def test_a_window_that_ends_before_every_span_says_to_move_its_until(
    scenario_db: Path,
) -> None:
    """ "widen it with --since" can never reach spans after the --until."""
    for window in (
        ["--until", "2025-12-31T00:00:00Z"],
        ["--since", "2025-12-30", "--until", "2025-12-31"],
    ):
        result = run("traces", "--db", str(scenario_db), *window)
        assert result.exit_code == 0 and "widen" not in result.stderr
        found = re.search(
            r"every stored span started after it, the oldest at (\S+)Z: a later --until reaches",
            result.stderr,
        )
        assert found is not None and found.group(1).startswith("2026-01-01T00:"), result.stderr


def test_diagram_without_mermaid_is_refused(scenario_db: Path) -> None:
    result = run("flow", ORDERS, "--db", str(scenario_db), "--diagram", "flowchart")
    assert result.exit_code == 2  # a usage error, as click's own
    assert "--format mermaid" in result.stderr
    window = ["--since", SINCE, "--until", UNTIL]
    drawn = run(
        "flow",
        ORDERS,
        "--db",
        str(scenario_db),
        *window,
        "--format",
        "mermaid",
        "--diagram",
        "flowchart",
    )
    assert drawn.exit_code == 0 and drawn.stdout.startswith("flowchart TD")


def test_a_trace_without_its_root_says_it_has_no_critical_path(tmp_path: Path) -> None:
    from flowscope.testing.traces import TraceKit

    kit = TraceKit()
    trace = kit.trace(start_ms=0)
    root = trace.span("gateway", "GET /", kind="Server", start_ms=0, duration_ms=10)
    root.child("db-client", "SELECT", kind="Client", start_ms=1, duration_ms=5)
    path = tmp_path / "rootless.duckdb"
    write_kit(kit, path, kit.spans[1:])  # the root never arrived
    trace_id = kit.spans[1].trace_id
    result = run("trace", trace_id, "--db", str(path))
    assert result.exit_code == 0, result.stderr
    assert "(orphan)" in result.stdout
    assert (
        "critical path: none (the trace has no root span: not arrived yet, or deleted by retention)"
        in result.stdout
    )


def test_a_root_of_0_ms_is_not_called_missing(tmp_path: Path) -> None:
    """Before, a root whose start equals its end was said not to have arrived."""
    from flowscope.testing.traces import TraceKit

    kit = TraceKit()
    kit.trace(start_ms=0).span("gateway", "GET /", kind="Server", start_ms=0, duration_ms=0)
    path = tmp_path / "instant.duckdb"
    write_kit(kit, path)
    result = run("trace", kit.spans[0].trace_id, "--db", str(path))
    assert result.exit_code == 0, result.stderr
    assert "critical path: none (the root span lasts 0 ms)" in result.stdout


def test_a_flow_name_given_as_an_id_is_told_apart(scenario_db: Path) -> None:
    result = run("flow", "gateway POST /orders", "--db", str(scenario_db))
    assert result.exit_code == 1
    assert "flow ids are lower-case letters, digits and '-', not names" in result.stderr
    assert (
        "(the flows list gives the ids: `flowscope flows`, GET /api/flows, fs.flows())"
        in run("flow", "nope", "--db", str(scenario_db)).stderr
    )


def test_a_server_url_that_is_not_the_api_says_which_url_to_give(tmp_path: Path) -> None:
    """Before: 'server refused: HTTP 404' or 'Not Found', with no hint."""
    from flowscope.testing.server import server_in_process

    with server_in_process(tmp_path / "s.duckdb", decode_workers=0) as (_, endpoints):
        for wrong in (endpoints.http, f"{endpoints.ui}/api"):
            result = run("flows", "--server", wrong)
            assert result.exit_code == 1
            assert f"{wrong} has no /api/flows: --server wants the API URL" in result.stderr
            result = run("map", "--server", wrong, "--flow", "x")  # not "no flow 'x'"
            assert "--server wants the API URL" in result.stderr
        grpc_port = run("flows", "--server", f"http://{endpoints.grpc}")  # speaks HTTP/2 only
        assert grpc_port.exit_code == 1
        assert "does not answer HTTP/1.1" in grpc_port.stderr
        assert "--server wants the API URL" in grpc_port.stderr
        assert run("flows", "--server", endpoints.ui).exit_code == 0


def test_a_window_of_spans_without_roots_says_so(tmp_path: Path) -> None:
    """Its spans all in the window, the hint still said "nothing in the window;
    widen it": the spans were there, their traces' roots were not. (`traces` lists
    such a trace by its first span.)"""
    from flowscope.testing.traces import BASE_TIME_NS, TraceKit

    kit = TraceKit()
    root = kit.trace(start_ms=0).span("gateway", "GET /", kind="Server", start_ms=0, duration_ms=9)
    root.child("db-client", "SELECT", kind="Client", start_ms=1, duration_ms=5)
    path = tmp_path / "rootless.duckdb"
    write_kit(kit, path, kit.spans[1:])  # the root never arrived
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(BASE_TIME_NS // 10**9 - 60))
    result = run("flows", "--db", str(path), "--since", since)
    assert result.exit_code == 0, result.stderr
    assert "1 span in the window, but no trace whose root span" in result.stderr
    assert "widen" not in result.stderr
    listed = run("traces", "--db", str(path), "--since", since, "--columns", "flow,spans")
    assert listed.stdout.splitlines()[2:] == ["(no root span)      1"], listed.stdout
    assert listed.stderr == ""
    # A filter that leaves none: it said the list goes by roots (diff review).
    none = run("traces", "--db", str(path), "--since", since, "--min-duration", "1000")
    assert none.stderr == "(none of the traces that start in the window matches)\n"


def test_a_window_after_a_rootless_traces_first_span_says_so(tmp_path: Path) -> None:
    """A window holding a later span of a trace whose first span is before it lists
    nothing, and the hint blamed filters none gave (diff review)."""
    from flowscope.testing.traces import BASE_TIME_NS, TraceKit

    kit = TraceKit()
    root = kit.trace(start_ms=0).span("gateway", "GET /", kind="Server", start_ms=0, duration_ms=9)
    root.child("db-client", "SELECT", kind="Client", start_ms=1, duration_ms=5)
    root.child("db-client", "UPDATE", kind="Client", start_ms=500, duration_ms=5)
    path = tmp_path / "later.duckdb"
    write_kit(kit, path, kit.spans[1:])  # the root never arrived
    seconds = BASE_TIME_NS // 10**9
    assert BASE_TIME_NS % 10**9 == 0  # the spans at +1 ms and +500 ms
    since = time.strftime("%Y-%m-%dT%H:%M:%S.100Z", time.gmtime(seconds))
    after = run("traces", "--db", str(path), "--since", since, "--until", "2100-01-01")
    assert after.exit_code == 0 and after.stdout.count("\n") <= 2  # no row
    assert after.stderr == (
        "(1 span in the window, but no trace whose root span (no parent span id), or "
        "first span without one, started in it: traces go by that start)\n"
    )


def test_a_deep_trace_names_every_span_in_its_table(tmp_path: Path) -> None:
    """Each row was indented two spaces a level, then cut to 70 characters: from depth
    ~33 on, rows showed only spaces and "…" (and 20,000 levels took 40 s)."""
    from flowscope.testing.traces import TraceKit

    kit = TraceKit()
    span = kit.trace(start_ms=0).span("svc", "level0", kind="Server", start_ms=0, duration_ms=500)
    for level in range(1, 200):
        span = span.child(
            "svc", f"level{level}", kind="Internal", start_ms=level / 1000, duration_ms=500 - level
        )
    path = tmp_path / "deep.duckdb"
    write_kit(kit, path)
    result = run("trace", kit.spans[0].trace_id, "--db", str(path))
    assert result.exit_code == 0, result.stderr
    for level in range(200):
        assert f"svc: level{level} " in result.stdout, level
    assert "[199] svc: level199" in result.stdout


def test_a_filter_that_matches_nothing_is_not_called_rootless(scenario_db: Path) -> None:
    """With traces in the window and a filter matching none of them, the hint said
    the window's spans had no root."""
    result = run(
        "traces",
        "--db",
        str(scenario_db),
        "--since",
        SINCE,
        "--until",
        UNTIL,
        "--min-duration",
        "100000000",
    )
    assert result.exit_code == 0, result.stderr
    assert "none of the traces that start in the window matches" in result.stderr
    assert "no trace whose root span" not in result.stderr


@pytest.mark.parametrize("command", [["flows"], ["sql", "SELECT 1"], ["import", "x.json"]])
def test_an_empty_server_url_is_refused(command: list[str]) -> None:
    """It was taken for a URL: "cannot reach /api/flows: ..."."""
    result = run(*command, "--server", "")
    assert result.exit_code == 2
    assert "'--server': is empty" in result.output


@pytest.mark.parametrize("command", [["flow", ORDERS], ["traces", "--flow", ORDERS]])
def test_an_automatic_flow_a_rule_took_names_the_rule_flow(
    command: list[str], scenario_db: Path, tmp_path: Path
) -> None:
    """An automatic id (from before flows.yaml named its traces) answered an empty flow
    and said nothing, or "none of the traces matches"."""
    flows = tmp_path / "flows.yaml"
    flows.write_text("flows:\n  - name: Orders\n    match: {operation: 'POST /orders'}\n")
    window = ["--since", SINCE, "--until", UNTIL]
    result = run(*command, "--db", str(scenario_db), "--flows", str(flows), *window)
    assert result.exit_code == 0, result.stderr
    traces = run("flow", "orders", "--db", str(scenario_db), "--flows", str(flows), *window)
    count = re.search(r"^(\d+) traces", traces.stdout, re.M)
    assert count is not None and int(count.group(1)) > 0
    assert result.stderr == (
        "(flows.yaml puts other traces of the window with this flow's root in flow "
        f"orders (Orders): {count.group(1)} traces)\n"
    )
    if command[0] == "traces":
        # Another filter may be why none is listed: no claim is named then.
        filtered = [*command, "--min-duration", "100000", "--db", str(scenario_db)]
        result = run(*filtered, "--flows", str(flows), *window)
        assert result.exit_code == 0 and result.stderr.startswith("(none of the ")
        empty = ["traces", "--flow", "", "--db", str(scenario_db), "--since", "2h"]
        nothing = run(*empty)  # an empty --flow is not given, even in an empty window
        assert nothing.exit_code == 0 and "no flow" not in nothing.stderr, nothing.stderr


def test_comparing_an_automatic_flow_a_rule_took_names_the_rule_flow(
    scenario_db: Path, tmp_path: Path
) -> None:
    """compare said "neither window holds a trace of flow ..." or "no trace of flow ...
    ran through service.version=1.0", and not where flows.yaml had put them."""
    flows = tmp_path / "flows.yaml"
    flows.write_text("flows:\n  - name: Orders\n    match: {operation: 'POST /orders'}\n")
    where = ["--db", str(scenario_db), "--flows", str(flows)]
    windows = ["--left-since", SINCE, "--left-until", "2026-01-01T00:02:30Z"]
    windows += ["--right-since", "2026-01-01T00:02:30Z", "--right-until", UNTIL]
    result = run("compare", "--flow", ORDERS, *windows, *where)
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"(neither window holds a trace of flow {ORDERS})"
    assert lines[1].startswith("(flows.yaml puts other traces of the left window with ")
    assert lines[1].endswith(" in flow orders (Orders): 3 traces)")
    assert lines[2].startswith("(flows.yaml puts other traces of the right window with ")
    versions = ["--versions", "1.0", "2.0", "--since", SINCE, "--until", UNTIL]
    result = run("compare", "--flow", ORDERS, *versions, *where)
    assert result.exit_code == 1
    assert "(flows.yaml puts other traces of the window with this flow's root in flow " in (
        result.stderr
    )
    # A usage error is only that (it got the hint too).
    usage = run("compare", "--flow", ORDERS, *versions, "--left-since", SINCE, *where)
    assert usage.exit_code == 2 and "flows.yaml puts" not in usage.stderr
    assert "versions are compared over one window" in usage.stderr
    # Without the rule, the same comparisons have traces on both sides and no hint.
    plain = run("compare", "--flow", ORDERS, *versions, "--db", str(scenario_db))
    assert plain.exit_code == 0 and plain.stderr == ""


def test_compare_names_an_empty_version_and_sides_that_are_the_same(scenario_db: Path) -> None:
    """An empty version got "say what to compare", and the same side twice printed
    zeros that read as "no change" with nothing said."""
    window = ["--since", SINCE, "--until", UNTIL, "--db", str(scenario_db)]
    empty = run("compare", "--flow", ORDERS, "--versions", "", "2.0", *window)
    assert empty.exit_code == 2
    assert "--versions: a version must not be empty" in empty.stderr
    same = run("compare", "--flow", ORDERS, "--versions", "1.0", "1.0", *window)
    assert same.exit_code == 0
    assert same.stderr == "(both sides are the same: service.version=1.0)\n"
    differ = run("compare", "--flow", ORDERS, "--versions", "1.0", "2.0", *window)
    assert differ.exit_code == 0 and differ.stderr == ""


def test_flows_of_one_trace_each_say_the_span_names_carry_ids(tmp_path: Path) -> None:
    """Span names with ids (GET /orders/17) made a flow per trace, thousands of them,
    and nothing said why."""
    from flowscope.testing.traces import TraceKit

    def flows_stderr(names: list[str]) -> str:
        kit = TraceKit()
        for i, name in enumerate(names):
            kit.trace(start_ms=i).span("gateway", name, kind="Server", start_ms=0, duration_ms=5)
        path = tmp_path / f"{len(names)}-{len(set(names))}.duckdb"
        write_kit(kit, path)
        result = run("flows", "--db", str(path), "--since", SINCE, "--until", UNTIL)
        assert result.exit_code == 0, result.stderr
        return result.stderr

    scattered = flows_stderr([f"GET /orders/{i}" for i in range(50)])
    assert scattered.startswith(
        "(50 of the 50 flows have one trace each: their root span names carry ids or values "
        "(gateway GET /orders/0, gateway GET /orders/1)"
    )
    assert 'flows.yaml entry with a glob on the name (operation: "GET /orders/*")' in scattered
    assert flows_stderr([f"GET /orders/{i}" for i in range(49)]) == ""  # too few to tell
    assert flows_stderr([f"GET /orders/{i // 2}" for i in range(100)]) == ""  # 2 traces each


def test_nan_is_refused_as_a_bad_option_value(scenario_db: Path) -> None:
    """click's FloatRange let NaN through every bound: the analyzer refused it with
    status 1, naming its own parameter (--min-duration-ms, no such option)."""
    for args in (
        ["traces", "--min-duration", "nan"],
        ["traces", "--min-duration", "inf"],
        ["traces", "--min-duration", "1e400"],
        ["sql", "SELECT 1", "--timeout", "NaN"],
    ):
        result = run(*args, "--db", str(scenario_db))
        assert result.exit_code == 2, result.output
        assert (
            f"Invalid value for '{args[-2]}': '{args[-1]}' is not a finite number" in result.stderr
        )


@pytest.mark.parametrize("command", [["flows"], ["flow", ORDERS]])
def test_a_by_attribute_no_trace_has_is_named(command: list[str], scenario_db: Path) -> None:
    """`--by wallet_provider` (for wallet.provider) answered the same rows with a blank
    column and no word: a typo looked like a real answer."""
    window = ["--db", str(scenario_db), "--since", SINCE, "--until", UNTIL]
    typo = run(*command, *window, "--by", "wallet_provider")
    assert typo.exit_code == 0
    assert "(no trace in the window has a value for 'wallet_provider'" in typo.stderr
    right = run(*command, *window, "--by", "wallet.provider")
    assert right.exit_code == 0 and right.stderr == "" and "paypal" in right.stdout


def test_searching_jaegers_error_tag_points_to_error(tmp_path: Path) -> None:
    """`traces --attr error=true`, Jaeger's usual tag search, found nothing without a
    word: the import makes the span's status of that tag (migrator review)."""
    jaeger = tmp_path / "jaeger.json"
    jaeger.write_text(
        '{"data":[{"traceID":"5b8efff798038103d269b633813fc60d","spans":[{"traceID":'
        '"5b8efff798038103d269b633813fc60d","spanID":"eee19b7ec3c1b174","operationName":'
        '"GET /x","references":[],"startTime":1767225600000000,"duration":5000,"tags":'
        '[{"key":"error","type":"bool","value":true},{"key":"span.kind","type":"string",'
        '"value":"server"}],"logs":[],"processID":"p1"}],'
        '"processes":{"p1":{"serviceName":"svc","tags":[]}}}]}',
        encoding="utf-8",
    )
    db = tmp_path / "jaeger.duckdb"
    assert run("import", "--db", str(db), str(jaeger), "--no-progress").exit_code == 0
    window = ["--db", str(db), "--since", SINCE, "--until", UNTIL]
    tagged = run("traces", *window, "--attr", "error=true")
    assert tagged.exit_code == 0 and "5b8efff7" not in tagged.stdout
    assert tagged.stderr == (
        "(no span holds error as an attribute: imports read Jaeger's error and otel.status_* "
        "tags into the span's status, which --error (or --no-error) filters by)\n"
    )
    assert "5b8efff798038103d269b633813fc60d" in run("traces", *window, "--error").stdout
    # Where a span holds the key with another value, the hint would be false (diff
    # review): the window's plain words stand.
    from flowscope.testing.traces import TraceKit

    kit = TraceKit()
    kit.trace().span(
        "svc", "GET /y", kind="Server", start_ms=0, duration_ms=5, attributes={"error": "timeout"}
    )
    held = tmp_path / "held.duckdb"
    write_kit(kit, held)
    other = run(
        "traces", "--db", str(held), "--since", SINCE, "--until", UNTIL, "--attr", "error=true"
    )
    assert "no span holds error" not in other.stderr
    assert "none of the traces that start in the window matches" in other.stderr
