"""The console script's entry point: what it does before any command runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flowscope.store.database import Database


def _flowscope(*args: str | bytes, **env: str | bytes) -> subprocess.CompletedProcess[bytes]:
    environment = {k.encode(): v.encode() for k, v in os.environ.items()}
    environment.update(
        (k.encode(), v if isinstance(v, bytes) else v.encode()) for k, v in env.items()
    )
    return subprocess.run(
        [sys.executable, "-m", "flowscope.cli", *args],
        capture_output=True,
        env=environment,
        timeout=120,
        check=False,
    )


def test_a_legacy_output_encoding_writes_escapes_not_a_traceback(tmp_path: Path) -> None:
    """A de_DE.ISO-8859-1 terminal met a UnicodeEncodeError traceback for a name in CJK."""
    db = tmp_path / "a.duckdb"
    Database(db).close()
    result = _flowscope(
        "sql", "SELECT '漢字 é' AS name", "--db", str(db), PYTHONIOENCODING="latin-1"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode("latin-1").splitlines()[-1].strip() == "\\u6f22\\u5b57 é"


def test_an_argument_that_is_not_utf8_is_refused_in_one_line(tmp_path: Path) -> None:
    """It met a TypeError traceback in DuckDB, or a warning that derivation failed."""
    db = tmp_path / "a.duckdb"
    Database(db).close()
    for args in ((b"sql", b"select \xff", b"--db", str(db).encode()), (b"trace", b"\xff")):
        result = _flowscope(*args)
        assert result.returncode == 2
        assert (
            result.stderr.decode()
            == "flowscope: argument '"
            + args[1].decode("utf-8", "backslashreplace")
            + "' is not valid UTF-8\n"
        )
    # The variables options are read from too: DuckDB met it with a traceback.
    result = _flowscope("flows", FLOWSCOPE_DB=b"/tmp/x\xff.duckdb")
    assert result.returncode == 2
    assert result.stderr == b"flowscope: $FLOWSCOPE_DB '/tmp/x\\xff.duckdb' is not valid UTF-8\n"


def test_output_its_reader_closes_ends_the_command_with_0(tmp_path: Path) -> None:
    """`| head -1` gave 1 when the output outgrew the pipe before head left and 0 when
    it did not: by timing, and so by command (map 1, sql 0)."""
    from flowscope.testing.traces import TraceKit

    kit = TraceKit()
    root = kit.trace().span("gateway", "GET /", kind="Server", start_ms=0, duration_ms=100)
    for n in range(1500):  # a map table of 1,500 edges: more than a pipe holds
        root.child(f"service-{n:04d}", "GET /x", kind="Server", start_ms=1, duration_ms=5)
    db = tmp_path / "a.duckdb"
    kit.write_file(db)
    command = [sys.executable, "-m", "flowscope.cli", "map", "--since", "2025-12-31"]
    with subprocess.Popen(
        [*command, "--until", "2026-01-02", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline()  # more than a pipe holds is still to come
        process.stdout.close()
        assert process.wait(120) == 0
        assert process.stderr.read() == b""


def test_a_flowscope_variable_no_option_reads_is_warned_of(tmp_path: Path) -> None:
    """FLOWSCOPE_RETENTION=off was ignored without a word, and serve's default retention
    then deleted an imported file's older spans."""
    db = tmp_path / "a.duckdb"
    Database(db).close()
    result = _flowscope("sql", "SELECT 1 AS x", "--db", str(db), FLOWSCOPE_RETENTION="off")
    assert result.returncode == 0, result.stderr
    warning = result.stderr.decode().splitlines()[0]
    assert warning.startswith("flowscope: warning: $FLOWSCOPE_RETENTION is not read")
    # sql has no --retention: "give --retention instead" named an option it refuses.
    assert warning.endswith("only); --retention is an option of demo and serve")
    serve = _flowscope("serve", "--help", FLOWSCOPE_RETENTION="off")
    assert serve.stderr.decode().splitlines()[0].endswith("only); give --retention instead")
    # flowscope's own option goes before the command: `sql --verbose` is refused.
    verbose = _flowscope("sql", "SELECT 1 AS x", "--db", str(db), FLOWSCOPE_VERBOSE="1")
    assert (
        verbose.stderr.decode()
        .splitlines()[0]
        .endswith("only); give --verbose before the command instead (flowscope --verbose ...)")
    )
    # Names no option has are not flowscope's business: Kubernetes sets these in every
    # pod of a namespace with a Service named flowscope; a Dockerfile may pin a version.
    quiet = _flowscope(
        "sql",
        "SELECT 1 AS x",
        "--db",
        str(db),
        FLOWSCOPE_DB=str(db),
        FLOWSCOPE_SERVICE_HOST="10.0.0.1",
        FLOWSCOPE_PORT="tcp://10.0.0.1:4318",
        FLOWSCOPE_PORT_4318_TCP_ADDR="10.0.0.1",
        FLOWSCOPE_VERSION="0.1",
    )
    assert b"warning" not in quiet.stderr, quiet.stderr


def test_the_variables_options_read_are_the_ones_known() -> None:
    import click

    from flowscope.cli import main
    from flowscope.console import OPTION_VARIABLES

    def envvars(command: click.Command) -> set[str]:
        found = {str(p.envvar) for p in command.params if isinstance(p, click.Option) and p.envvar}
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                found |= envvars(sub)
        return found

    # --db's default reads FLOWSCOPE_DB itself (an empty one is unset: cli_common).
    assert envvars(main) | {"FLOWSCOPE_DB"} == OPTION_VARIABLES
