"""flowscope/interrupts.py: a Ctrl-C while a file is closed or a writer stopped comes
after the close, not in the middle of it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowscope.cli import main
from flowscope.interrupts import interrupts_deferred
from flowscope.store.database import Database
from flowscope.store.writer import SpanWriter
from flowscope.testing.otlp import realistic_request


@pytest.fixture(autouse=True)
def terminal_sigint() -> Iterator[None]:
    """SIGINT as at a terminal (a suite run in the background has it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_an_interrupt_in_the_block_comes_after_it() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("the block ran to its end")
    assert done == ["the block ran to its end"]
    with interrupts_deferred():
        pass  # nothing caught: nothing raised
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_while_an_import_finishes_closes_the_file_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import had printed its last file and was stopping its writer: a Ctrl-C there
    left DuckDB's connection busy, and DuckDB aborted the process (SIGABRT, its WAL
    left behind)."""
    spans = tmp_path / "spans.pb"
    spans.write_bytes(realistic_request(2, seed=3).SerializeToString())
    db = tmp_path / "finishing.duckdb"
    shutdown = SpanWriter.shutdown

    def pressed_meanwhile(self: SpanWriter, *args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # as the user presses Ctrl-C
        shutdown(self, *args, **kwargs)

    monkeypatch.setattr(SpanWriter, "shutdown", pressed_meanwhile)
    result = CliRunner().invoke(main, ["import", "--db", str(db), str(spans), "--no-progress"])
    assert result.exit_code == 130, result.output
    assert f"{spans}: otlp-protobuf, 16 spans, 16 new" in result.stdout
    assert "flowscope: interrupted as it finished; every file above is done" in result.stderr
    monkeypatch.undo()
    assert not Path(f"{db}.wal").exists()  # closed whole
    database = Database(db, read_only=True)
    try:
        assert database.span_count() == 16
    finally:
        database.close()


def test_ctrl_c_that_duckdb_took_itself_is_one_line_and_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside a query of the main thread (opening a file reads its catalog) DuckDB takes
    the Ctrl-C and raises "Query interrupted": a traceback with status 1."""
    import flowscope.cli_analysis as cli_analysis

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("Query interrupted")

    monkeypatch.setattr(cli_analysis, "analysis_source", interrupted)
    result = CliRunner().invoke(main, ["traces", "--db", str(tmp_path / "x.duckdb")])
    assert result.exit_code == 130
    assert result.stderr == "flowscope: interrupted\n"


def test_the_console_script_exits_with_ctrl_c_ignored() -> None:
    """Past the answer a Ctrl-C in the interpreter's teardown, where Python's handler
    is gone, killed the process by the signal with no word (status -2)."""
    with pytest.raises(SystemExit) as ended:
        _run_with(["--version"])
    assert ended.value.code == 0
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def _run_with(argv: list[str]) -> None:
    import sys

    from flowscope.console import run

    saved = sys.argv
    sys.argv = ["flowscope", *argv]
    try:
        run()
    finally:
        sys.argv = saved


def test_ctrl_c_while_the_cli_loads_is_one_line_and_130() -> None:
    """The console script imports the CLI (click, DuckDB, the commands) before any
    handler of flowscope's runs: a Ctrl-C then printed a KeyboardInterrupt traceback
    with status 1. The signal is sent as the CLI's module starts loading."""
    script = textwrap.dedent(
        """
        import builtins, os, signal, sys
        signal.signal(signal.SIGINT, signal.default_int_handler)
        load = builtins.__import__
        def pressing(name, *args, **kwargs):
            if name == "flowscope.cli":
                os.kill(os.getpid(), signal.SIGINT)
            return load(name, *args, **kwargs)
        builtins.__import__ = pressing
        sys.argv = ["flowscope", "flows"]
        from flowscope.console import run
        run()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stderr, done.stdout) == (130, "flowscope: interrupted\n", "")


def test_duckdb_is_imported_with_ctrl_c_held() -> None:
    """A Ctrl-C that lands in DuckDB's native import (about 75 ms, in the first read)
    came out as an ImportError ("error while initializing the extension") or a process
    abort, 3 runs in 100 of a Ctrl-C 0.14-0.25 s into `flowscope map`."""
    script = textwrap.dedent(
        """
        import builtins, signal, sys
        signal.signal(signal.SIGINT, signal.default_int_handler)
        load = builtins.__import__
        seen = []
        def watching(name, *args, **kwargs):
            if name == "duckdb" and "duckdb" not in sys.modules:
                seen.append(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
            return load(name, *args, **kwargs)
        builtins.__import__ = watching
        sys.argv = ["flowscope", "flows", "--db", "/nonexistent/x.duckdb"]
        from flowscope.console import run
        try:
            run()
        except SystemExit:
            pass
        print("taken by Python's handler:", seen[:1])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert "taken by Python's handler: [False]" in done.stdout, done.stdout + done.stderr


def test_ctrl_c_while_the_arguments_are_read_is_one_line_and_130(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """click said "Aborted!" with status 1, the status docs/cli.md gives failures."""
    import click

    def pressed(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(click.core.Parameter, "process_value", pressed)
    result = CliRunner().invoke(main, ["flows"])
    assert (result.exit_code, result.stderr) == (130, "flowscope: interrupted\n")


def test_ctrl_c_in_a_read_command_is_one_line_and_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """click said "Aborted!" with status 1, the status docs/cli.md gives failures."""
    import flowscope.cli_analysis as cli_analysis

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_analysis, "analysis_source", interrupted)
    result = CliRunner().invoke(main, ["flows", "--db", str(tmp_path / "x.duckdb")])
    assert result.exit_code == 130
    assert result.stderr == "flowscope: interrupted\n"


def test_reads_run_on_one_thread_and_ctrl_c_stops_only_its_query() -> None:
    """A thread per call made each call build its cursor and snapshot views again
    (2,000 trace views 50 % slower); and Ctrl-C interrupted every read cursor of the
    file, a query another thread of the caller ran too."""
    import threading
    from concurrent.futures import Future

    from flowscope.interrupts import InterruptibleReads

    class Source:
        def where_am_i(self) -> threading.Thread:
            return threading.current_thread()

    interrupted: list[object] = []

    class Reads:
        def interrupt_reads(self, only: object) -> None:
            interrupted.append(only)

    reads = InterruptibleReads(Source(), Reads())
    first, second = reads.where_am_i(), reads.where_am_i()
    assert first is second and first is not threading.current_thread()
    still: Future[None] = Future()
    threading.Timer(0.3, still.set_result, [None]).start()  # it ends after a few
    reads._stop(still, first)
    assert interrupted and set(interrupted) == {first}
    reads.finish()
    assert not first.is_alive()


def test_help_and_version_do_not_load_duckdb() -> None:
    """Loading DuckDB up front (for Ctrl-C's sake) made --help and --version 70 ms
    slower, and a broken DuckDB broke --version."""
    script = textwrap.dedent(
        """
        import sys
        sys.argv = ["flowscope", "--version"]
        from flowscope.console import run
        try:
            run()
        except SystemExit:
            pass
        print("duckdb loaded:", "duckdb" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert "duckdb loaded: False" in done.stdout, done.stdout + done.stderr
