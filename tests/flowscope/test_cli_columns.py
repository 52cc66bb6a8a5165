"""``--columns`` on the read commands' tables, and the hint when a table is wider than
the terminal (a real pseudo-terminal as the command's stdout)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest
from click.testing import CliRunner, Result

from flowscope.analyzer.flows import auto_flow_id
from flowscope.cli import main
from tests.analysis_scenario import (
    FASTEST_ORDER_TRACE,
    SINCE,
    SLOWEST_ORDER_TRACE,
    UNTIL,
    scenario_file,
)

WINDOW = ["--since", SINCE, "--until", UNTIL]
ORDERS = auto_flow_id("gateway", "POST /orders")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(scenario_file(tmp_path_factory.mktemp("columns") / "spans.duckdb"))


def cli(db: str, *args: str, ok: bool = True) -> Result:
    result = CliRunner(env={"FLOWSCOPE_TOKEN": ""}).invoke(main, [*args, "--db", db])
    assert (result.exit_code == 0) is ok, result.output + result.stderr
    return result


def header(text: str) -> list[str]:
    return text.splitlines()[0].split()


def test_columns_pick_and_order_a_tables_fields(db: str) -> None:
    out = cli(db, "flows", *WINDOW, "--columns", "p95_ms, id,traces").stdout
    assert header(out) == ["p95_ms", "id", "traces"]
    assert ORDERS in out
    out = cli(db, "traces", *WINDOW, "--columns", "trace_id,root_operation").stdout
    assert header(out) == ["trace_id", "root_operation"]
    assert SLOWEST_ORDER_TRACE in out


def test_a_flows_step_tree_keeps_its_label_column_when_chosen(db: str) -> None:
    out = cli(db, "flow", ORDERS, *WINDOW, "--columns", "step,calls,peer").stdout
    table = out.split("\n\n", 1)[1]
    assert header(table) == ["step", "calls", "peer"]
    assert "gateway: POST /orders" in table
    # Without the label, a step's own fields name it.
    table = cli(db, "flow", ORDERS, *WINDOW, "--columns", "service,operation").stdout
    assert header(table.split("\n\n", 1)[1]) == ["service", "operation"]


def test_group_values_are_shown_beside_the_chosen_columns(db: str) -> None:
    out = cli(db, "flows", *WINDOW, "--by", "wallet.provider", "--columns", "id").stdout
    assert header(out) == ["id", "wallet.provider"]


def test_the_maps_two_tables_each_show_the_names_they_have(db: str) -> None:
    out = cli(db, "map", *WINDOW, "--columns", "source,target,id,kind,calls").stdout
    edges, nodes = out.split("\n\n")
    assert header(edges) == ["source", "target", "calls"]
    assert header(nodes) == ["id", "kind"]
    # A table none of the names belong to is left out.
    out = cli(db, "map", *WINDOW, "--columns", "id,spans").stdout
    assert "\n\n" not in out and header(out) == ["id", "spans"]


def test_a_comparison_shows_the_step_and_the_step_it_is_under(db: str) -> None:
    args = ["compare", FASTEST_ORDER_TRACE, SLOWEST_ORDER_TRACE, "--columns", "step,under,delta_ms"]
    table = cli(db, *args).stdout.split("\n\n", 1)[1]
    assert header(table) == ["step", "under", "delta_ms"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["flows", "--columns", "id,p96_ms"], "no column p96_ms: --columns takes id, name,"),
        (["flows", "--columns", "id,group"], "no column group:"),
        (["flows", "--columns", "id,,traces"], "has an empty name"),
        (["flows", "--columns", "id,traces,id"], "id given twice"),
        (["flows", "--columns", "id", "--format", "json"], "--format json has no table"),
        (["map", "--columns", "id,p96_ms"], "no column p96_ms"),
        (["flow", ORDERS, "--columns", "under"], "no column under"),
    ],
)
def test_wrong_columns_are_usage_errors(db: str, args: list[str], message: str) -> None:
    result = cli(db, *args, ok=False)
    assert result.exit_code == 2
    assert message in result.stderr


def run_on_terminal(db: str, columns: int, *args: str) -> tuple[str, str]:
    """The command with a pseudo-terminal as its stdout: its output and its stderr."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "FLOWSCOPE_TOKEN": ""}
    command = [sys.executable, "-m", "flowscope.cli", *args, "--db", db]
    process = subprocess.Popen(command, stdout=secondary, stderr=subprocess.PIPE, env=env)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the command closed the terminal's last writer
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    return b"".join(chunks).decode(), stderr.decode()


def test_a_table_wider_than_the_terminal_says_how_to_narrow_it(db: str) -> None:
    out, err = run_on_terminal(db, 100, "map", *WINDOW)
    widest = max(len(line) for line in out.splitlines())
    assert widest > 100
    # Once, though the map prints two tables.
    assert err.count("--columns picks") == 1, err
    assert f"the table is {widest} columns wide, the terminal 100" in err
    _, err = run_on_terminal(db, widest, "map", *WINDOW)
    assert "--columns" not in err
    _, err = run_on_terminal(db, 100, "flows", *WINDOW, "--columns", "id,traces")
    assert "--columns" not in err


def test_no_hint_when_the_table_goes_to_a_file_or_pipe(db: str) -> None:
    env = {**os.environ, "COLUMNS": "40", "FLOWSCOPE_TOKEN": ""}
    done = subprocess.run(
        [sys.executable, "-m", "flowscope.cli", "flows", *WINDOW, "--db", db],
        capture_output=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert b"--columns" not in done.stderr and len(done.stdout.splitlines()[0]) > 40


def test_a_by_values_header_does_not_change_with_the_columns_shown(db: str) -> None:
    """`--by name --columns id,traces` headed the value `name`, which read as the flow's
    own name; with `name` shown it was `group.name`."""
    out = cli(db, "flows", *WINDOW, "--by", "name", "--columns", "id,traces").stdout
    assert header(out) == ["id", "traces", "group.name"]
    out = cli(db, "flow", ORDERS, *WINDOW, "--by", "service", "--columns", "step,calls").stdout
    assert header(out.split("\n\n", 1)[1]) == ["step", "calls", "group.service"]


def test_a_map_table_is_shown_only_with_what_names_its_rows(db: str) -> None:
    """`map --columns id,p95_ms` printed the edges' P95s with no source or target."""
    out = cli(db, "map", *WINDOW, "--columns", "id,p95_ms").stdout
    assert "\n\n" not in out and header(out) == ["id", "p95_ms"]
    result = cli(db, "map", *WINDOW, "--columns", "p95_ms,calls", ok=False)
    assert result.exit_code == 2
    assert "names the edges' rows by source or target, or the nodes' by id" in result.stderr


def test_a_map_column_left_out_with_its_table_is_named(db: str) -> None:
    """`map --columns source,kind`: kind is a node's, whose table needs id; it was left
    out without a word, where a wrong name is an error."""
    result = cli(db, "map", *WINDOW, "--columns", "source,kind")
    assert header(result.stdout) == ["source"]
    assert "(not shown: kind; the edges' table shows with source or target" in result.stderr
    both = cli(db, "map", *WINDOW, "--columns", "source,id,kind")
    assert "not shown" not in both.stderr
