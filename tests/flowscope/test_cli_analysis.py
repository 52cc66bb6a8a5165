"""``flowscope map|flows|flow|traces|trace|compare``: tables, JSON and diagrams, on the
file and through a running server (a real child process), with the same numbers."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from flowscope.analysis_sources import flow_detail_from_dict, service_map_from_dict
from flowscope.analyzer.diagrams import (
    flow_dot,
    flow_flowchart_mermaid,
    flow_sequence_mermaid,
    service_map_dot,
    service_map_mermaid,
)
from flowscope.analyzer.diagrams.groups import MAX_GROUPS
from flowscope.analyzer.flows import auto_flow_id
from flowscope.cli import main
from flowscope.store.database import Database
from flowscope.testing.server import ServerProcess, start_server_process
from tests.analysis_scenario import (
    FASTEST_ORDER_TRACE,
    ORDER_P50,
    ORDER_P95,
    SINCE,
    SLOWEST_ORDER_TRACE,
    UNTIL,
    scenario_file,
)
from tests.analyzer.mermaid_check import assert_all_parse

GOLDEN = Path(__file__).parents[1] / "golden"
TOKEN = "cli-token"
WINDOW = ["--since", SINCE, "--until", UNTIL]
ORDERS = auto_flow_id("gateway", "POST /orders")  # the flow's automatic, stable id


def kit_file(kit: Any, path: Path) -> Path:
    """A file holding a TraceKit's spans, closed."""
    database = Database(path)
    try:
        kit.write(database)
    finally:
        database.close()
    return path


@pytest.fixture(scope="module")
def local_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scenario in a file no server holds: the CLI opens it read-only itself."""
    return scenario_file(tmp_path_factory.mktemp("local") / "spans.duckdb")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ServerProcess]]:
    """The same scenario in a file held by a running `flowscope serve --token`."""
    path = scenario_file(tmp_path_factory.mktemp("served") / "spans.duckdb")
    # --retention off: the scenario is dated 2026-01-01, older than the default 7 days.
    server = start_server_process(
        path, "--token", TOKEN, "--decode-workers", "0", "--retention", "off"
    )
    try:
        yield path, server
    finally:
        assert server.stop() == 0, "".join(server.output)


def cli(*args: str, ok: bool = True, env: dict[str, str] | None = None) -> Result:
    result = CliRunner(env={"FLOWSCOPE_TOKEN": "", **(env or {})}).invoke(main, list(args))
    if ok:
        assert result.exit_code == 0, result.output + result.stderr
    return result


def cli_json(*args: str) -> Any:
    return json.loads(cli(*args, "--format", "json").stdout)


COMMANDS = {
    "map": ["map", *WINDOW],
    "flows": ["flows", *WINDOW],
    "flows_by": ["flows", *WINDOW, "--by", "wallet.provider"],
    "flow": ["flow", ORDERS, *WINDOW],
    "flow_by": ["flow", ORDERS, *WINDOW, "--by", "wallet.provider"],
    "traces": ["traces", *WINDOW, "--limit", "10"],
    "traces_failing": ["traces", *WINDOW, "--error"],
    "trace": ["trace", SLOWEST_ORDER_TRACE, *WINDOW],
    "compare_traces": ["compare", FASTEST_ORDER_TRACE, SLOWEST_ORDER_TRACE],
    "compare_baseline": ["compare", "--trace", SLOWEST_ORDER_TRACE, "--baseline", *WINDOW],
    "compare_windows": [
        "compare",
        "--flow",
        ORDERS,
        "--left-since",
        SINCE,
        "--left-until",
        "2026-01-01T00:02:00Z",
        "--right-since",
        "2026-01-01T00:02:00Z",
        "--right-until",
        UNTIL,
    ],
    "compare_versions": ["compare", "--flow", ORDERS, "--versions", "1.0", "2.0", *WINDOW],
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_same_json_on_the_file_and_through_the_server(
    name: str, local_db: Path, served: tuple[Path, ServerProcess]
) -> None:
    served_db, server = served
    local = cli_json(*COMMANDS[name], "--db", str(local_db))
    # The file is held by the server: the CLI finds it from <db>.server.json ...
    found = cli_json(*COMMANDS[name], "--db", str(served_db), "--token", TOKEN)
    # ... or is told where it is.
    named = cli_json(*COMMANDS[name], "--server", server.endpoints.ui, "--token", TOKEN)
    assert local == found == named
    assert local  # something was compared


def test_json_numbers(local_db: Path) -> None:
    flows = cli_json("flows", *WINDOW, "--db", str(local_db))["flows"]
    orders = next(f for f in flows if f["id"] == ORDERS)
    assert (orders["traces"], orders["p50_ms"], orders["p95_ms"]) == (4, ORDER_P50, ORDER_P95)
    detail = cli_json("flow", ORDERS, *WINDOW, "--db", str(local_db))
    assert detail["flow"] == orders
    edges = cli_json("map", *WINDOW, "--db", str(local_db))["edges"]
    assert {(e["source"], e["target"], e["rule"]) for e in edges} >= {
        ("gateway", "orders", "rpc"),
        ("orders", "fulfillment", "async"),
    }
    traces = cli_json("traces", *WINDOW, "--db", str(local_db))["traces"]
    assert [t["duration_ms"] for t in traces] == [400, 300, 200, 100, 50, 50]


def test_traces_by_attribute(local_db: Path) -> None:
    db = ["--db", str(local_db)]
    paypal = cli_json("traces", *WINDOW, *db, "--attr", "wallet.provider=paypal")["traces"]
    assert len(paypal) == 2
    both = ["--attr", "wallet.provider=paypal", "--attr", "http.route=/orders"]
    assert cli_json("traces", *WINDOW, *db, *both)["traces"] == paypal
    assert cli_json("traces", *WINDOW, *db, *both, "--service", "orders")["traces"] == []
    bad = cli("traces", *WINDOW, *db, "--attr", "wallet.provider", ok=False)
    assert bad.exit_code == 2 and "'wallet.provider' is not KEY=VALUE" in bad.stderr


def test_traces_say_when_more_matched_than_the_limit_shows(local_db: Path) -> None:
    db = ["--db", str(local_db)]
    cut = cli("traces", *WINDOW, *db, "--limit", "4")
    assert len(cut.stdout.splitlines()) == 2 + 4
    assert cut.stderr == "(the 4 slowest shown; more traces matched; use --limit for more)\n"
    recent = cli("traces", *WINDOW, *db, "--limit", "2", "--sort", "recent")
    assert recent.stderr == (
        "(the 2 most recent shown; more traces matched; use --limit for more)\n"
    )
    bad = cli("traces", *WINDOW, *db, "--sort", "newest", ok=False)
    assert bad.exit_code == 2 and "'newest' is not one of" in bad.stderr
    whole = cli("traces", *WINDOW, *db, "--limit", "6", "--format", "json")
    assert len(json.loads(whole.stdout)["traces"]) == 6 and whole.stderr == ""


def test_traces_at_the_most_the_limit_takes_say_more_may_match(
    local_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server takes no more than the most: exactly that many and more look alike."""
    from flowscope import cli_analysis

    monkeypatch.setattr(cli_analysis, "MAX_TRACES", 6)
    out = cli("traces", *WINDOW, "--db", str(local_db), "--limit", "6")
    assert out.stderr == "(the 6 slowest shown, the most --limit takes; more may match)\n"


def check_golden(name: str, text: str, update: bool) -> None:
    path = GOLDEN / name
    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.is_file(), f"missing golden file {path}; run pytest --update-golden"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


@pytest.mark.parametrize(
    "name", ["map", "flows", "flows_by", "flow", "flow_by", "traces", "trace", "compare_traces"]
)
def test_tables(name: str, local_db: Path, update_golden: bool) -> None:
    output = cli(*COMMANDS[name], "--db", str(local_db)).stdout
    check_golden(f"cli_{name}.txt", output, update_golden)


def test_diagram_formats_draw_the_json_records(local_db: Path) -> None:
    db = ["--db", str(local_db)]
    service_map = service_map_from_dict(cli_json("map", *WINDOW, *db))
    detail = flow_detail_from_dict(cli_json("flow", ORDERS, *WINDOW, *db))
    drawn = {
        "map": cli("map", *WINDOW, *db, "--format", "mermaid").stdout,
        "sequence": cli("flow", ORDERS, *WINDOW, *db, "--format", "mermaid").stdout,
        "flowchart": cli(
            "flow", ORDERS, *WINDOW, *db, "--format", "mermaid", "--diagram", "flowchart"
        ).stdout,
    }
    assert drawn == {
        "map": service_map_mermaid(service_map),
        "sequence": flow_sequence_mermaid(detail),
        "flowchart": flow_flowchart_mermaid(detail),
    }
    assert cli("map", *WINDOW, *db, "--format", "dot").stdout == service_map_dot(service_map)
    assert cli("flow", ORDERS, *WINDOW, *db, "--format", "dot").stdout == flow_dot(detail)
    results = assert_all_parse(drawn)
    actors = [a["text"] for a in results[1]["actors"]]
    assert actors == ["client", "gateway", "orders", "postgresql/shop", "fulfillment"]


def test_a_group_named_like_a_field_gets_its_own_header(local_db: Path) -> None:
    """``--by name`` headed two columns "name"; the Python API calls it group.name."""
    out = cli("flows", *WINDOW, "--by", "name", "--db", str(local_db)).stdout
    header = out.splitlines()[0].split()
    assert "group.name" in header and header.count("name") == 1, out


def test_flow_diagrams_split_by_an_attribute(
    local_db: Path, served: tuple[Path, ServerProcess]
) -> None:
    flow = ["flow", ORDERS, *WINDOW, "--by", "wallet.provider"]
    db = ["--db", str(local_db)]
    detail = flow_detail_from_dict(cli_json(*flow, *db))
    drawn = {
        "sequence": cli(*flow, *db, "--format", "mermaid").stdout,
        "flowchart": cli(*flow, *db, "--format", "mermaid", "--diagram", "flowchart").stdout,
    }
    assert drawn == {
        "sequence": flow_sequence_mermaid(detail),
        "flowchart": flow_flowchart_mermaid(detail),
    }
    dot = cli(*flow, *db, "--format", "dot").stdout
    assert dot == flow_dot(detail)
    server = ["--server", served[1].endpoints.ui, "--token", TOKEN]
    assert cli(*flow, *server, "--format", "mermaid").stdout == drawn["sequence"]
    sequence, flowchart = assert_all_parse(drawn)
    # Trace 1 and 3 paid with paypal, 0 and 2 with visa; the last paypal one failed in
    # orders validate, a step only the paypal block has.
    alt, else_, end = 12, 13, 14  # mermaid's LINETYPE values
    messages = sequence["messages"]
    kinds = [
        (i, m["type"], m["text"]) for i, m in enumerate(messages) if m["type"] in (alt, else_, end)
    ]
    assert [k[1:] for k in kinds] == [
        (alt, "wallet.provider = paypal"),
        (else_, "wallet.provider = visa"),
        (end, ""),
    ]
    paypal = [m["text"] for m in messages[kinds[0][0] + 1 : kinds[1][0]]]
    visa = [m["text"] for m in messages[kinds[1][0] + 1 : kinds[2][0]]]
    assert paypal[0] == "POST /orders (p95 390 ms)" and visa[0] == "POST /orders (p95 290 ms)"
    assert "validate (p95 5.00 ms)" in paypal
    assert "1 error starts in validate (100.0% of calls fail)" in paypal
    assert not any("validate" in text for text in visa)
    subgraphs = {s["title"]: len(s["nodes"]) for s in flowchart["subgraphs"]}
    assert subgraphs == {"wallet.provider = paypal": 7, "wallet.provider = visa": 6}
    assert 'subgraph cluster_1 {\n        label="wallet.provider = visa";' in dot
    help_text = " ".join(cli("flow", "--help").stdout.split())
    assert f"at most {MAX_GROUPS} (those with the most traces)" in help_text


def test_flows_file_names_flows(local_db: Path, tmp_path: Path) -> None:
    flows_file = tmp_path / "flows.yaml"
    flows_file.write_text(
        "flows:\n  - name: Order Placement\n    match:\n      service: gateway\n"
        '      route: "/orders*"\n',
        encoding="utf-8",
    )
    flows = cli_json("flows", *WINDOW, "--db", str(local_db), "--flows", str(flows_file))
    named = next(f for f in flows["flows"] if f["name"] == "Order Placement")
    assert (named["id"], named["traces"]) == ("order-placement", 4)
    steps = cli_json(
        "flow", "order-placement", *WINDOW, "--db", str(local_db), "--flows", str(flows_file)
    )["steps"]
    assert len(steps) == 7
    bad = tmp_path / "bad.yaml"
    bad.write_text("flows:\n  - name: X\n    match: {colour: red}\n", encoding="utf-8")
    result = cli("flows", "--db", str(local_db), "--flows", str(bad), ok=False)
    assert result.exit_code == 1 and "flows[0].match.colour" in result.stderr


def test_flows_file_through_a_server_warns(
    served: tuple[Path, ServerProcess], tmp_path: Path
) -> None:
    flows_file = tmp_path / "flows.yaml"
    flows_file.write_text("flows: []\n", encoding="utf-8")
    served_db, _server = served
    result = cli(
        "flows", *WINDOW, "--db", str(served_db), "--flows", str(flows_file), "--token", TOKEN
    )
    assert "the server's flows apply" in result.stderr


def test_trace_without_a_window_says_how_to_get_step_p50s(local_db: Path) -> None:
    """The hint said --since 1h, which gave a trace older than an hour a column of
    blanks: it names the hour around the trace."""
    bare = cli("trace", SLOWEST_ORDER_TRACE, "--db", str(local_db))
    assert "step_p50_ms" not in bare.stdout
    hint = re.search(r"add --since (\S+) --until (\S+),", bare.stderr)
    assert hint is not None, bare.stderr
    window = ["--since", hint[1], "--until", hint[2]]
    followed = cli_json("trace", SLOWEST_ORDER_TRACE, *window, "--db", str(local_db))
    assert all(s["step_p50_ms"] is not None for s in followed["spans"] if s["step_id"])
    with_window = cli("trace", SLOWEST_ORDER_TRACE, *WINDOW, "--db", str(local_db))
    assert "step_p50_ms" in with_window.stdout and "add --since" not in with_window.stderr


def test_compare_windows_given_as_durations_meet_exactly(local_db: Path) -> None:
    # Both windows are resolved against one "now": left ends where right begins.
    out = cli_json(
        "compare",
        "--flow",
        ORDERS,
        "--left-since",
        "2h",
        "--left-until",
        "1h",
        "--right-since",
        "1h",
        "--db",
        str(local_db),
    )
    assert out["left"].split(" .. ")[1] == out["right"].split(" .. ")[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["flow", "no-such-flow", *WINDOW], "no flow 'no-such-flow'"),
        (["trace", "f" * 32], f"no trace '{'f' * 32}'"),
        (["flows", "--since", "last tuesday"], "--since"),
        (["map", "--since", UNTIL, "--until", SINCE], "must be before"),
        (["map", "--flow", "no-such-flow", *WINDOW], "no flow 'no-such-flow'"),
        (["traces", "--flow", "no-such-flow", *WINDOW], "no flow 'no-such-flow'"),
        (
            ["compare", "--flow", ORDERS, "--left-since", "banana", "--right-since", "1h"],
            "--left-since: invalid time 'banana'",
        ),
    ],
    ids=[
        "unknown-flow",
        "unknown-trace",
        "bad-since",
        "backwards",
        "map-unknown-flow",
        "traces-unknown-flow",
        "bad-left-since",
    ],
)
def test_errors_are_messages(args: list[str], message: str, local_db: Path) -> None:
    result = cli(*args, "--db", str(local_db), ok=False)
    assert result.exit_code == 1
    assert message in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare"], "say what to compare"),
        (["compare", FASTEST_ORDER_TRACE], "two trace ids"),
        (
            ["compare", "--flow", ORDERS, "--left-since", "1h"],
            "the right one (--right-since, --right-until or both)",
        ),
        (
            ["compare", "--flow", ORDERS, "--right-since", SINCE, "--right-until", UNTIL],
            "the left one (--left-since, --left-until or both)",
        ),
    ],
    ids=["no-mode", "one-trace", "left-window-only", "right-window-only"],
)
def test_compare_options_that_make_no_comparison_are_usage_errors(
    args: list[str], message: str, local_db: Path, served: tuple[Path, ServerProcess]
) -> None:
    """Status 2, as click's own refusals of options: they exited 1, the status of a read
    that failed (docs review). The same with --server: the options are checked first."""
    local = cli(*args, "--db", str(local_db), ok=False)
    remote = cli(*args, "--server", served[1].endpoints.ui, "--token", TOKEN, ok=False)
    assert local.exit_code == remote.exit_code == 2
    assert message in local.stderr and remote.stderr == local.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["flow", "no-such-flow", *WINDOW],
        ["trace", "f" * 32],
        ["flows", "--since", "last tuesday"],
        ["map", "--flow", "no-such-flow", *WINDOW],
        ["traces", "--flow", "no-such-flow", *WINDOW],
        ["compare", FASTEST_ORDER_TRACE, "e" * 32],
        ["compare", "--trace", "e" * 32, "--baseline", *WINDOW],
        ["compare", "--flow", "no-such-flow", "--versions", "1.0", "2.0", *WINDOW],
        ["compare", "--flow", "no-such-flow", "--left-since", "2h", "--right-since", "1h"],
        ["trace", SLOWEST_ORDER_TRACE[:-1]],
    ],
    ids=[
        "unknown-flow",
        "unknown-trace",
        "bad-since",
        "map-unknown-flow",
        "traces-unknown-flow",
        "compare-unknown-trace",
        "baseline-unknown-trace",
        "versions-unknown-flow",
        "windows-unknown-flow",
        "short-trace-id",
    ],
)
def test_server_errors_are_the_same_messages(
    args: list[str], local_db: Path, served: tuple[Path, ServerProcess]
) -> None:
    local = cli(*args, "--db", str(local_db), ok=False)
    remote = cli(*args, "--server", served[1].endpoints.ui, "--token", TOKEN, ok=False)
    assert remote.exit_code == local.exit_code == 1
    assert remote.stderr == local.stderr  # not "server refused: ..."


def test_missing_database_and_wrong_token(
    tmp_path: Path, served: tuple[Path, ServerProcess]
) -> None:
    missing = cli("flows", "--db", str(tmp_path / "nothing.duckdb"), ok=False)
    assert missing.exit_code == 1 and "no such database" in missing.stderr
    refused = cli("flows", *WINDOW, "--server", served[1].endpoints.ui, ok=False)
    assert refused.exit_code == 1 and "bearer token" in refused.stderr
    env_token = cli(
        "flows", *WINDOW, "--server", served[1].endpoints.ui, env={"FLOWSCOPE_TOKEN": TOKEN}
    )
    assert "gateway" in env_token.stdout


def test_empty_windows_say_which_window_was_empty(local_db: Path) -> None:
    """With only --until the window is the hour before it, not the last hour; and a
    flow's steps in an empty window say so too (before: no hint at all)."""
    db = ["--db", str(local_db)]
    # Every span is after these windows: a later --until reaches them, not --since.
    before = cli("flows", "--until", "2020-01-01T00:00:00Z", *db)
    assert "(nothing in the hour before 2020-01-01T00:00:00Z; every stored span started " in (
        before.stderr
    )
    # Both bounds: "nothing since X" was false when the spans are after --until.
    steps = cli("flow", ORDERS, "--since", "2020-01-01T00:00:00Z", "--until", "2020-01-02", *db)
    # A bound without a zone is said back as read, in UTC (it was repeated as typed).
    assert "(nothing from 2020-01-01T00:00:00Z until 2020-01-02T00:00:00Z; every stored span " in (
        steps.stderr
    )
    after = cli("flows", "--since", "2027-01-01T00:00:00Z", "--until", "2027-01-02", *db)
    assert "(nothing from 2027-01-01T00:00:00Z until 2027-01-02T00:00:00Z; widen the window)" in (
        after.stderr
    )
    since = cli("flows", "--since", "1s", *db)
    assert "(nothing since 1s; widen the window with --since" in since.stderr
    assert "(nothing in the last hour" in cli("flows", *db).stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [FASTEST_ORDER_TRACE, SLOWEST_ORDER_TRACE, "--flow", ORDERS],
            "give one comparison, not two trace ids and a flow's windows or versions (--flow)",
        ),
        (
            ["--trace", FASTEST_ORDER_TRACE, "--baseline", "--left-since", "1h"],
            "not a trace for its baseline (--trace) and a flow's windows or versions "
            "(--left-since)",
        ),
        (
            ["--trace", FASTEST_ORDER_TRACE, "--flow", ORDERS, "--versions", "1.0", "2.0"],
            "not a trace for its baseline (--trace) and a flow's windows or versions "
            "(--flow, --versions)",
        ),
        (
            ["--flow", ORDERS, "--versions", "1.0", "2.0", "--left-since", "1h"],
            "versions are compared over one window (--since/--until), not --left-since",
        ),
        (
            [FASTEST_ORDER_TRACE, SLOWEST_ORDER_TRACE, "--since", "1h"],
            "--since chooses the window of a baseline or of versions",
        ),
        (
            [FASTEST_ORDER_TRACE, SLOWEST_ORDER_TRACE, "--baseline"],
            "--baseline compares the trace given with --trace; give --trace T",
        ),
    ],
    ids=[
        "traces-and-flow",
        "baseline-and-window",
        "trace-without-baseline-and-versions",
        "versions-and-windows",
        "traces-and-since",
        "traces-and-baseline",
    ],
)
def test_compare_refuses_options_it_would_ignore(
    args: list[str], message: str, local_db: Path
) -> None:
    """Before, the other comparison's options were silently ignored."""
    result = cli("compare", *args, "--db", str(local_db), ok=False)
    assert result.exit_code == 2 and message in result.stderr


def test_compare_can_rank_rows_by_error_rate_change(tmp_path: Path) -> None:
    """Rows go by latency change: a step whose error rate alone moved sat low (10th
    of 18 in the demo's failing-matching fault). --sort errors puts it first."""
    from flowscope.testing.traces import TraceKit, at_ms

    kit = TraceKit()
    for i in range(4):
        for side in (0, 1):  # the left window's traces, then the right one's
            root = kit.trace(start_ms=side * 600_000 + i * 1000).span(
                "gw", "checkout", kind="Server", start_ms=0, duration_ms=200
            )
            root.child("gw", "slow step", kind="Internal", start_ms=1, duration_ms=10 + side * 100)
            root.child(
                "gw",
                "failing step",
                kind="Internal",
                start_ms=150,
                duration_ms=5,
                status="Error" if side and i % 2 else "Unset",
            )
            if side and i == 0:  # a step of the right window only, failing every call
                root.child(
                    "gw", "fallback", kind="Internal", start_ms=160, duration_ms=1, status="Error"
                )
    db = tmp_path / "sorted.duckdb"
    kit.write_file(db)

    def stamp(ms: int) -> str:
        seconds, ns = divmod(at_ms(ms), 10**9)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ns:09d}Z"

    windows = ["--left-since", stamp(0), "--left-until", stamp(300_000)]
    windows += ["--right-since", stamp(600_000), "--right-until", stamp(900_000)]
    flow = auto_flow_id("gw", "checkout")
    base = ["compare", "--db", str(db), "--flow", flow, *windows, "--format", "json"]
    by_latency = json.loads(cli(*base).stdout)["deltas"]
    by_errors = json.loads(cli(*base, "--sort", "errors").stdout)["deltas"]
    assert by_latency[0]["operation"] == "slow step"
    # A step on one side only counts with its one error rate (it came last).
    assert [d["operation"] for d in by_errors[:2]] == ["fallback", "failing step"]
    assert by_errors[0]["right_error_rate"] == 1.0 and by_errors[0]["error_rate_delta"] is None
    assert by_errors[1]["error_rate_delta"] == 0.5
    assert sorted(d["operation"] for d in by_errors) == sorted(d["operation"] for d in by_latency)


def test_a_damaged_file_is_named_not_a_traceback(tmp_path: Path) -> None:
    """A file cut short opens (its header is whole) and fails at its first read of a
    lost block: a read command printed DuckDB's traceback."""
    whole = tmp_path / "whole.duckdb"
    samples = Path(__file__).resolve().parents[2] / "sample_traces"
    assert CliRunner().invoke(main, ["import", "--db", str(whole), str(samples / "normal.jsonl")])
    cut = tmp_path / "cut.duckdb"
    cut.write_bytes(whole.read_bytes()[:300_000])
    for command in (["flows"], ["map"], ["traces"], ["sql", "SELECT * FROM otel_traces"]):
        window = [] if command[0] == "sql" else ["--since", "30000d"]
        result = CliRunner().invoke(main, [*command, "--db", str(cut), *window])
        assert result.exit_code == 1, result.output
        assert f"{cut}: not a usable DuckDB database" in result.output
        assert "Traceback" not in result.output and result.exception is not None


def test_trace_lists_its_events_in_time_order(tmp_path: Path) -> None:
    """Logs and exceptions are what a Jaeger user opens a trace for; the table showed
    none, and JSON had no events."""
    from flowscope.testing.traces import EventSpec, TraceKit

    kit = TraceKit()
    root = kit.trace(trace_id="c" * 32).span(
        "shop", "checkout", kind="Server", start_ms=0, duration_ms=50
    )
    root.child(
        "shop",
        "pay",
        start_ms=10,
        duration_ms=20,
        events=[EventSpec(0.5 * i, "retry", {"attempt": i}) for i in range(24, 0, -1)],
    )
    root.child(
        "shop",
        "charge",
        start_ms=11,
        duration_ms=1,
        status="Error",
        events=[EventSpec(0.25, "exception", {"exception.type": "Declined"})],
    )
    path = kit_file(kit, tmp_path / "events.duckdb")
    out = cli("trace", "c" * 32, "--db", str(path)).stdout
    listed = out.split("events:\n", 1)[1].splitlines()
    assert listed[0].split() == ["at_ms", "span", "event", "attributes"]
    assert listed[2].split() == ["10.5", "shop:", "pay", "retry", "attempt=1"]
    assert listed[3].split() == ["11", "shop:", "pay", "retry", "attempt=2"]
    assert listed[4].split() == ["11.25", "shop:", "charge", "exception", "exception.type=Declined"]
    assert "... and 5 more (--format json has them)" in out
    spans = cli_json("trace", "c" * 32, "--db", str(path))["spans"]
    assert [len(s["events"]) for s in spans] == [0, 24, 1]


def test_trace_shows_status_messages_and_links(tmp_path: Path) -> None:
    """The table showed "Error" without the span's reason, and nothing of its links: a
    consumer's trace gave no way to the producer's."""
    from flowscope.testing.traces import LinkSpec, TraceKit

    kit = TraceKit()
    root = kit.trace(trace_id="e" * 32).span(
        "mailer",
        "process mail",
        kind="Consumer",
        start_ms=0,
        duration_ms=9,
        status="Error",
        status_message="email\nbounced: " + "x" * 80,
        links=[LinkSpec("f" * 32, "1" * 16, {})],
    )
    root.child("mailer", "send", start_ms=1, duration_ms=2, status="Ok")
    out = cli("trace", "e" * 32, "--db", str(kit_file(kit, tmp_path / "l.duckdb"))).stdout
    assert "Error: email bounced: xxx" in out and "xxx…" in out and "email\n" not in out
    listed = out.split("links:\n", 1)[1].splitlines()
    assert listed[0].split() == ["span", "trace_id", "span_id"]
    assert listed[2].split() == ["mailer:", "process", "mail", "f" * 32, "1" * 16]


def test_long_service_names_keep_the_operation(tmp_path: Path) -> None:
    """Cut from the right at 70 columns, a long service name hid the operation: two
    steps of one service read the same in flow, trace and compare tables."""
    from flowscope.testing.traces import TraceKit

    service = "order-management-and-settlement-reconciliation-service-eu-west-1-prod"
    kit = TraceKit()
    root = kit.trace(trace_id="d" * 32).span(
        service, "GET /a", kind="Server", start_ms=0, duration_ms=9
    )
    root.child(
        service,
        "SELECT 注文",
        kind="Client",
        start_ms=1,
        duration_ms=2,
        attributes={"db.system": "postgresql"},
    )
    root.child(service, "call 🚀", start_ms=4, duration_ms=2)
    path = kit_file(kit, tmp_path / "long.duckdb")
    out = cli("trace", "d" * 32, "--db", str(path)).stdout
    assert "SELECT 注文" in out and "call 🚀" in out
    flow_id = auto_flow_id(service, "GET /a")
    steps = cli(
        "flow",
        flow_id,
        "--since",
        "2025-12-31T00:00:00Z",
        "--until",
        "2026-01-02",
        "--db",
        str(path),
    )
    assert "SELECT 注文 -> postgresql" in steps.stdout and "call 🚀" in steps.stdout


def test_exception_events_show_their_type_and_message_first(tmp_path: Path) -> None:
    from flowscope.testing.traces import EventSpec, TraceKit

    kit = TraceKit()
    attributes = {
        "exception.escaped": "False",
        "exception.message": "order 142: matching rejected",
        "exception.stacktrace": "Traceback (most recent call last): ...",
        "exception.type": "MatchingFailure",
    }
    kit.trace(trace_id="e" * 32).span(
        "m", "match", start_ms=0, duration_ms=3, events=[EventSpec(1, "exception", attributes)]
    )
    path = kit_file(kit, tmp_path / "exc.duckdb")
    out = cli("trace", "e" * 32, "--db", str(path)).stdout
    row = out.split("events:\n", 1)[1].splitlines()[2]
    assert "exception  exception.type=MatchingFailure exception.message=order 142: matching" in row
    assert "Traceback" not in out


def test_a_comparison_says_when_a_window_is_empty(local_db: Path) -> None:
    """Both windows empty printed a bare header; one empty listed every step as new."""
    db = ["--db", str(local_db)]
    empty = ["--left-since", "2020-01-01T00:00:00Z", "--left-until", "2020-01-02T00:00:00Z"]
    full = ["--right-since", SINCE, "--right-until", UNTIL]
    neither = cli(
        "compare", "--flow", ORDERS, *empty, *[a.replace("left", "right") for a in empty], *db
    )
    assert f"(neither window holds a trace of flow {ORDERS})" in neither.stderr
    left = cli("compare", "--flow", ORDERS, *empty, *full, *db)
    assert "(the left window holds no trace of flow" in left.stderr


def test_output_that_cannot_be_written_is_one_line(local_db: Path) -> None:
    """`> out.csv` on a full disk ended in a traceback."""
    import subprocess
    import sys

    for command in (
        ["flows"],
        ["flows", "--format", "json"],
        ["sql", "--format", "csv", "SELECT 1"],
    ):
        with open("/dev/full", "w") as full:
            done = subprocess.run(
                [sys.executable, "-m", "flowscope.cli", *command, "--db", str(local_db)],
                stdout=full,
                stderr=subprocess.PIPE,
                text=True,
                timeout=120,
            )
        assert done.returncode == 1, command
        assert done.stderr.strip() == "flowscope: cannot write the output: No space left on device"


def test_an_empty_sql_answer_says_so(local_db: Path) -> None:
    result = cli("sql", "--db", str(local_db), "SELECT 1 AS x WHERE false")
    assert result.stdout.split() == ["x", "-"] and "(no rows)" in result.stderr


def test_an_event_sent_without_a_time_is_listed_at_its_spans_start(tmp_path: Path) -> None:
    """Time 0 (unset in OTLP) is stored as sent: the event came first in the list, at
    minus 56 years from the trace's start."""
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    from flowscope.collector.flatten import flatten_request
    from flowscope.store.writer import SpanWriter
    from flowscope.testing.otlp import request_for, span_id, trace_id

    start = 1_767_225_600_000_000_000
    root = Span(
        trace_id=trace_id(7),
        span_id=span_id(1),
        name="job",
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=start,
        end_time_unix_nano=start + 10_000_000,
        events=[Span.Event(name="early", time_unix_nano=start + 1_000_000)],
    )
    child = Span(
        trace_id=trace_id(7),
        span_id=span_id(2),
        parent_span_id=span_id(1),
        name="step",
        start_time_unix_nano=start + 2_000_000,
        end_time_unix_nano=start + 3_000_000,
        events=[Span.Event(name="no-time", time_unix_nano=0)],
    )
    path = tmp_path / "no-time.duckdb"
    database = Database(path)
    try:
        writer = SpanWriter(database, journal=False)
        writer.start()
        batch = flatten_request(request_for("svc", [root, child])).batch
        writer.write(batch.table, batch.keys)
        writer.shutdown()
    finally:
        database.close()
    out = cli("trace", trace_id(7).hex(), "--db", str(path)).stdout
    listed = out.split("events:\n", 1)[1].splitlines()
    assert [row.split()[:4] for row in listed[2:4]] == [
        ["1", "svc:", "job", "early"],
        ["?", "svc:", "step", "no-time"],
    ]


def test_plausible_slips_get_messages_that_say_what_to_do(local_db: Path) -> None:
    """A new user's slips (new-user reviewer): each got a message about something else,
    or none."""
    db = ["--db", str(local_db)]
    # nargs=2 took --db for the second version and the file for a trace id.
    one_version = cli("compare", "--flow", ORDERS, "--versions", "1.0", *db, ok=False)
    assert one_version.exit_code == 2
    assert "takes two service.versions, got '1.0' and then '--db'" in one_version.stderr
    no_baseline = cli("compare", "--trace", SLOWEST_ORDER_TRACE, *db, ok=False)
    assert no_baseline.exit_code == 2
    assert "--trace compares a trace with its flow's step P50s: add --baseline" in (
        no_baseline.stderr
    )
    # One digit lost in copying: the message showed a leading 0 nobody typed.
    short = cli("trace", SLOWEST_ORDER_TRACE[:-1], *db, ok=False)
    assert "has 31 hex digits: a shorter id than 32 is read with zeros in front" in short.stderr
    # A whole id that starts with 0 is no shorter one.
    zero = cli("trace", "0" + "e" * 31, *db, ok=False)
    assert zero.stderr == f"flowscope: no trace '0{'e' * 31}' in the database\n"
    # A 0x id's prefix is no digit: "0x1 has 3 hex digits" (diff reviewer).
    prefixed = cli("trace", "0xabc", *db, ok=False)
    assert "('abc' has 3 hex digits: a shorter id" in prefixed.stderr
    # A bare prefix said "no trace '' in the database".
    bare = cli("trace", "0x", *db, ok=False)
    assert bare.stderr == "flowscope: '0x' holds no trace id: one is up to 32 hex digits\n"
    # A traceparent header or log field, and a 0x id, as pasted from elsewhere.
    for pasted in (f"00-{SLOWEST_ORDER_TRACE}-00f067aa0ba902b7-01", f"0x{SLOWEST_ORDER_TRACE}"):
        assert cli_json("trace", pasted, *db)["trace_id"] == SLOWEST_ORDER_TRACE
    empty_by = cli("flows", "--by", "", *db, ok=False)
    assert empty_by.exit_code == 2 and "is empty; give an attribute key" in empty_by.stderr
    # httpx: "Request URL has an unsupported protocol 'localhost://'".
    no_scheme = cli("flows", "--server", "localhost:4", ok=False)
    assert no_scheme.exit_code == 2 and "give it as http://localhost:4" in no_scheme.stderr


@pytest.mark.parametrize("fmt", ["json", "mermaid", "dot"])
def test_an_empty_window_says_so_whatever_the_format(local_db: Path, fmt: str) -> None:
    """Only tables said so: `map --format mermaid` drew an empty chart without a word."""
    db = ["--db", str(local_db)]
    for command in (["map"], ["flows"], ["flow", ORDERS], ["traces"]):
        if fmt != "json" and command[0] in ("flows", "traces"):
            continue  # tables and JSON only
        result = cli(*command, "--format", fmt, *db)
        assert "(nothing in the last hour" in result.stderr, (command, result.stderr)


def test_a_baseline_window_without_the_flow_says_so(local_db: Path) -> None:
    db = ["--db", str(local_db)]
    elsewhere = ["--since", "2020-01-01T00:00:00Z", "--until", "2020-01-02T00:00:00Z"]
    view = cli("trace", SLOWEST_ORDER_TRACE, *elsewhere, *db)
    assert f"(the window holds none of flow {ORDERS}'s traces, so no step P50s" in view.stderr
    baseline = cli("compare", "--trace", SLOWEST_ORDER_TRACE, "--baseline", *elsewhere, *db)
    assert "(the baseline window holds none of the trace's flow's traces" in baseline.stderr


def test_a_trace_without_its_root_gets_no_window_hint(tmp_path: Path) -> None:
    """It said how to put each span next to its step's P50, which gave a blank column:
    a trace without a root is in no flow."""
    from flowscope.testing.traces import TraceKit

    kit = TraceKit()
    kit.trace(trace_id="d" * 32).span(
        "shop", "pay", parent="ab" * 8, start_ms=0, duration_ms=5, kind="Server"
    )
    db = ["--db", str(kit_file(kit, tmp_path / "rootless.duckdb"))]
    bare = cli("trace", "d" * 32, *db)
    assert "add --since" not in bare.stderr
    windowed = cli("trace", "d" * 32, "--since", "2020-01-01T00:00:00Z", *db)
    assert "(the trace has no root span (yet), so it is in no flow" in windowed.stderr


def test_compare_table_tells_steps_that_print_alike_apart(tmp_path: Path) -> None:
    """Two steps printed as the same row (a second parentless span named like the
    root), and "under" was cut from the path at a " > " in a span's name."""
    from flowscope.testing.traces import TraceKit

    kit = TraceKit()
    kit.trace(start_ms=0).span("y", "GET /y", kind="Server", start_ms=0, duration_ms=30)
    right = kit.trace(start_ms=1000)
    right.span("y", "GET /y", kind="Server", start_ms=0, duration_ms=100)
    right.span("y", "GET /y", kind="Server", start_ms=5, duration_ms=100, parent="")
    chain = kit.trace(start_ms=2000)
    chain.span("wf", "job", kind="Server", start_ms=0, duration_ms=50).child(
        "wf", "state A > B", kind="Internal", start_ms=1, duration_ms=20
    ).child("wf", "persist", kind="Internal", start_ms=2, duration_ms=5)
    two = kit.trace(start_ms=3000).span("wf", "job", kind="Server", start_ms=0, duration_ms=50)
    for state in ("A", "B"):
        two.child("wf", f"state {state}", kind="Internal", start_ms=1, duration_ms=20).child(
            "wf", "persist", kind="Internal", start_ms=2, duration_ms=5
        )
    db = tmp_path / "alike.duckdb"
    database = Database(db)
    try:
        kit.write(database)
    finally:
        database.close()
    first, second, third = kit.spans[0].trace_id, kit.spans[1].trace_id, kit.spans[3].trace_id
    fourth = kit.spans[-1].trace_id
    base = ["compare", first, second, "--db", str(db)]
    deltas = json.loads(cli(*base, "--format", "json").stdout)["deltas"]
    out = cli(*base, "--columns", "step,left_ms").stdout
    assert len({d["step_id"] for d in deltas}) == 2
    for delta in deltas:
        assert f"y: GET /y [{delta['step_id']}]" in out
    out = cli("compare", third, third, "--db", str(db), "--columns", "step,under").stdout
    assert "wf: state A > B  wf job\n" in out
    assert "wf: persist      wf state A > B\n" in out
    # Rows that differ only in a column left out are told apart too.
    deltas = json.loads(cli("compare", fourth, fourth, "--db", str(db), "--format", "json").stdout)
    persists = [d["step_id"] for d in deltas["deltas"] if d["operation"] == "persist"]
    out = cli("compare", fourth, fourth, "--db", str(db), "--columns", "step,left_ms").stdout
    assert len(persists) == 2 and all(f"wf: persist [{i}]" in out for i in persists)


def test_a_span_search_finds_rootless_traces_and_names_a_misspelt_service(
    tmp_path: Path,
) -> None:
    """A rootless trace was not found by --service (Jaeger and Tempo list it), and a
    misspelt service matched nothing as if it had no traces."""
    from flowscope.testing.traces import TraceKit

    kit = TraceKit()
    kit.trace(start_ms=0).span("web", "GET /", kind="Server", start_ms=0, duration_ms=5)
    kit.trace(start_ms=10, trace_id="feedface" * 4).span(
        "payments", "charge", kind="Server", start_ms=0, duration_ms=250, parent="00000000deadbeef"
    )
    db = ["--db", str(kit_file(kit, tmp_path / "orphan.duckdb")), *WINDOW]
    rootless = cli_json("traces", *db, "--service", "payments")["traces"]
    assert rootless == [
        {
            "trace_id": "feedface" * 4,
            "flow": "",
            "root_service": "payments",
            "root_operation": "charge",
            "start": rootless[0]["start"],
            "duration_ms": 250.0,
            "spans": 1,
            "services": 1,
            "errors": 0,
            "status": "",
            "has_root": False,
        }
    ]
    table = cli("traces", *db, "--columns", "trace_id,flow,duration_ms").stdout
    assert [f"{'feedface' * 4}", "(no root span)", "250"] in [
        [cell.strip() for cell in line.split("  ") if cell.strip()] for line in table.splitlines()
    ]
    # In no flow: a flow's list leaves it out.
    (web,) = cli_json("flows", *db)["flows"]
    assert "feedface" not in cli("traces", *db, "--flow", web["id"]).stdout
    misspelt = cli("traces", *db, "--service", "paymnts")
    assert misspelt.stderr == (
        "(no span of service 'paymnts' in the window; did you mean: payments)\n"
    )
    quoted = cli("traces", *db, "--service", "pay'ments", "--attr", "a=it's")
    assert 'no span of service "pay\'ments"' in quoted.stderr
    # A name holding a placeholder's name stays a name (diff reviewer).
    injected = cli("traces", *db, "--service", "x$operation", "--operation", ") OR TRUE OR (")
    assert "no span of service 'x$operation' in the window" in injected.stderr
    # A line break in a value ended a comment the value was written into.
    broken = cli("traces", *db, "--service", "pay\nments", "--attr", "k=a\nb")
    assert "no span of service 'pay\\nments' in the window" in broken.stderr


def test_a_trace_lists_attributes_with_span_ids(local_db: Path) -> None:
    """Two spans read "gateway: POST", one failing: nothing told which was which, nor
    what either was sent. The failing spans' attributes are listed; --attributes lists
    every span's and each service's resource."""
    db = ["--db", str(local_db)]
    view = cli_json("trace", SLOWEST_ORDER_TRACE, *db)
    failing = [s for s in view["spans"] if s["status"] == "Error"]
    out = cli("trace", SLOWEST_ORDER_TRACE, *db).stdout
    section = out.split("attributes of the failing spans (--attributes: every span's):\n")[1]
    assert section.split("\n\n")[0].count("  span ") == len(failing)
    every = cli("trace", SLOWEST_ORDER_TRACE, *db, "--attributes").stdout
    listed = every.split("attributes:\n")[1].split("\n\nevents:")[0]
    for span in view["spans"]:
        assert f"{span['service']}: {span['operation']}  span {span['span_id']}" in listed
    assert "  resource of gateway:\n" in listed


def test_a_long_critical_path_lists_its_longest_segments(tmp_path: Path) -> None:
    """A 10,000-span trace printed 19,998 critical-path lines (scale reviewer)."""
    from flowscope.cli_analysis import MAX_PATH_SHOWN
    from flowscope.testing.traces import TraceKit

    kit = TraceKit()
    root = kit.trace(start_ms=0, trace_id="ba" * 16).span(
        "batch", "run", kind="Server", start_ms=0, duration_ms=1_000
    )
    for n in range(100):  # one after another: the path goes through each
        root.child("batch", f"item {n}", start_ms=1 + 10 * n, duration_ms=8 if n == 42 else 3)
    db = ["--db", str(kit_file(kit, tmp_path / "batch.duckdb"))]
    segments = cli_json("trace", "ba" * 16, *db)["critical_path"]
    assert len(segments) > MAX_PATH_SHOWN
    table = cli("trace", "ba" * 16, *db).stdout.split("critical path:\n")[1].splitlines()
    assert len(table) == 2 + MAX_PATH_SHOWN + 1
    assert any("item 42" in line for line in table)  # the longest is kept
    left_out = len(segments) - MAX_PATH_SHOWN
    assert table[-1].startswith(f"... and {left_out:,} shorter segments, ")
    starts = [float(line.split()[-2]) for line in table[2:-1]]
    assert starts == sorted(starts)  # still in time order


def test_a_service_on_two_instances_names_the_spans_each_ran(tmp_path: Path) -> None:
    """Two resources of one service, and nothing told which ran the failing span."""
    from flowscope.testing.traces import TraceKit

    kit = TraceKit()
    root = kit.trace(start_ms=0, trace_id="be" * 16).span(
        "web", "GET /", kind="Server", start_ms=0, duration_ms=10
    )
    for n in (1, 2):
        root.child(
            "backend",
            "GET /x",
            kind="Server",
            start_ms=n,
            duration_ms=2,
            status="Error" if n == 2 else "Unset",
            resource={"host.name": f"be-{n}"},
        )
    db = ["--db", str(kit_file(kit, tmp_path / "two.duckdb"))]
    spans = {
        s["resource"].get("host.name"): s["span_id"]
        for s in cli_json("trace", "be" * 16, *db)["spans"]
    }
    out = cli("trace", "be" * 16, *db, "--attributes").stdout
    assert f"  resource of backend (span {spans['be-2']}):\n    host.name = be-2" in out
    assert "  resource of web:\n" in out  # one resource: no span list


def test_attributes_a_view_leaves_out_are_named_with_the_sql_that_has_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flowscope.analyzer import trace_view
    from flowscope.testing.traces import TraceKit

    monkeypatch.setattr(trace_view, "MAX_ATTRIBUTES", 3)
    monkeypatch.setattr(trace_view, "MAX_NESTED_ATTRIBUTES", 2)
    kit = TraceKit(resources={"web": {"host.name": "w1", "zone": "z"}})
    kit.trace(start_ms=0, trace_id="ad" * 16).span(
        "web",
        "GET /",
        kind="Server",
        start_ms=0,
        duration_ms=10,
        attributes={"a": 1, "b": 2, "c": 3, "d": 4, "e": 5},
    )
    db = ["--db", str(kit_file(kit, tmp_path / "wide.duckdb"))]
    (span,) = cli_json("trace", "ad" * 16, *db)["spans"]
    out = cli("trace", "ad" * 16, *db, "--attributes").stdout
    where = (
        f"FROM otel_traces WHERE TraceId = '{'ad' * 16}' AND SpanId = '{span['span_id']}' "
        "AND ServiceName = 'web'"
    )
    assert (
        "    c = 3\n    ... and 2 more that the view leaves out; SQL has them: "
        f"SELECT SpanAttributes {where}\n"
    ) in out
    assert (
        "    service.name = web\n    ... and 1 more that the view leaves out; SQL has them: "
        f"SELECT ResourceAttributes {where}\n"
    ) in out


def test_the_sql_for_a_zipkin_server_half_names_the_id_it_is_stored_under(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server half is shown under an id of its own: the SQL named that id, no row."""
    from flowscope.analyzer import trace_view
    from flowscope.testing.traces import TraceKit

    monkeypatch.setattr(trace_view, "MAX_ATTRIBUTES", 1)
    kit = TraceKit()
    trace = kit.trace(start_ms=0, trace_id="ae" * 16)
    root = trace.span("web", "GET /checkout", kind="Server", start_ms=0, duration_ms=100)
    call = root.child("web", "GET", kind="Client", start_ms=10, duration_ms=60)
    trace.span(
        "payments",
        "POST /pay",
        kind="Server",
        start_ms=15,
        duration_ms=50,
        parent=root,
        span_id=call.span_id,
        status="Error",
        attributes={"a": 1, "b": 2},
    )
    db = ["--db", str(kit_file(kit, tmp_path / "zipkin.duckdb"))]
    shown = {
        s["service"] + s["kind"]: s["span_id"] for s in cli_json("trace", "ae" * 16, *db)["spans"]
    }
    assert shown["paymentsServer"] != call.span_id  # the half's own id
    out = cli("trace", "ae" * 16, *db).stdout
    assert (
        f"SELECT SpanAttributes FROM otel_traces WHERE TraceId = '{'ae' * 16}' AND "
        f"SpanId = '{call.span_id}' AND ServiceName = 'payments'"
    ) in out


def test_the_cli_bounds_of_a_trace_list_are_the_apis() -> None:
    """Kept apart so that a command's start loads no httpx or analyzer."""
    from flowscope import analysis_sources, cli_analysis
    from flowscope.analyzer.model import TRACE_ORDERS

    assert cli_analysis.MAX_TRACES == analysis_sources.MAX_TRACES
    assert tuple(cli_analysis.FIRST_SHOWN) == TRACE_ORDERS
