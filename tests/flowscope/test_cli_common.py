"""Finding the server that holds a database file (``<db>.server.json``)."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import timedelta
from pathlib import Path

import click
import duckdb
import pytest
from click.testing import CliRunner

from flowscope.cli_common import (
    SLOW_OPEN_BYTES,
    display_width,
    emit,
    left_to_replay,
    render_rows,
    render_table,
    running_server,
    unique_names,
)
from flowscope.store.journal import Journal
from flowscope.testing.ports import free_port
from flowscope.testing.server import server_in_process


def test_the_server_named_in_the_file_is_used_once_it_confirms(tmp_path: Path) -> None:
    db = tmp_path / "held.duckdb"
    with server_in_process(db, ingest_process=False) as (server, endpoints):
        found = running_server(str(db))
        assert found is not None and found.ui_url == endpoints.ui
        assert found.otlp_http_url == endpoints.http

        # A file a killed server left, naming ports that another server holds now:
        # before, imports and queries of this file went to that server's database.
        stale = tmp_path / "killed.duckdb"
        info = json.loads(Path(f"{db}.server.json").read_text(encoding="utf-8"))
        Path(f"{stale}.server.json").write_text(
            json.dumps({**info, "pid": os.getpid() + 100_000}), encoding="utf-8"
        )
        assert running_server(str(stale)) is None
    # ... or ports nothing listens on any more.
    gone = {**info, "ui_url": f"http://127.0.0.1:{free_port()}"}
    Path(f"{stale}.server.json").write_text(json.dumps(gone), encoding="utf-8")
    assert running_server(str(stale)) is None
    assert running_server(str(tmp_path / "never-served.duckdb")) is None


def test_a_file_named_through_a_link_finds_its_server(tmp_path: Path) -> None:
    """server.json was looked up by the path as typed: a symbolic link to a file a
    server held gave "in use by another process"."""
    db = tmp_path / "real.duckdb"
    link = tmp_path / "link.duckdb"
    link.symlink_to(db)
    with server_in_process(link, ingest_process=False) as (_server, endpoints):
        for name in (db, link):
            found = running_server(str(name))
            assert found is not None and found.ui_url == endpoints.ui


def test_json_rows_keep_every_column_of_a_repeated_name() -> None:
    """``select 1 as a, 2 as a`` printed ``{"a": 2}``: a self-join lost a column."""
    assert unique_names(["a", "a", "b", "a"]) == ["a", "a_2", "b", "a_3"]
    assert unique_names(["a", "a", "a_2"]) == ["a", "a_3", "a_2"]
    rows = json.loads(render_rows(["a", "a", "b"], [[1, 2, 3]], "json"))
    assert rows == [{"a": 1, "a_2": 2, "b": 3}]


def test_csv_keeps_floats_exact() -> None:
    """CSV shared the table's 6 digits: an epoch in seconds became 1.79649e+09."""
    text = render_rows(["epoch_s", "x"], [[1796493402.40171, 1234567.891]], "csv")
    assert list(csv.reader(io.StringIO(text))) == [
        ["epoch_s", "x"],
        ["1796493402.40171", "1234567.891"],
    ]


def test_tables_show_control_characters_and_align_wide_ones() -> None:
    """A newline in a name split its row, an ESC sequence reached the terminal, and
    CJK text or emoji (two columns each) pushed the next columns out of line."""
    text = render_table(["name", "n"], [["new\nline\x1b[31m", 1], ["サービス", 22], ["ok", 3]])
    lines = text.splitlines()
    assert len(lines) == 5
    assert lines[2].startswith("new\\nline\\x1b[31m")
    assert "\x1b" not in text
    ends = {display_width(line) for line in lines[2:]}
    assert len(ends) == 1  # the numbers end in one column


def test_bidirectional_controls_show_as_escapes() -> None:
    """A right-to-left override in a value reversed the rest of its line on screen."""
    text = render_table(["v", "n"], [["pay\u202elap", 1], ["\u2067x\u2069", 2]])
    assert "pay\\u202elap" in text and "\\u2067x\\u2069" in text
    assert not any(c in text for c in "\u202e\u2067\u2069")


def test_csv_reads_back_to_the_same_cells_and_writes_values_as_json_does() -> None:
    """A lone carriage return went out unquoted (a row break to every reader), a
    boolean was True where the same one in a list was true, and text in a map was
    written with \\u escapes."""
    rows = [["a\rb", True, [True], {"name": "Jürgen 日本"}], ["x\ny", False, None, 'q"r']]
    text = render_rows(["v", "b", "l", "m"], rows, "csv")
    assert list(csv.reader(io.StringIO(text, newline=""))) == [
        ["v", "b", "l", "m"],
        ["a\rb", "true", "[true]", '{"name": "Jürgen 日本"}'],
        ["x\ny", "false", "", 'q"r'],
    ]
    assert "\r\n" not in text.replace("a\rb", "")  # rows end in "\n", as before


def test_csv_tells_null_from_empty_text_as_duckdb_does(tmp_path: Path) -> None:
    """Both were written bare (sandbox review)."""
    text = render_rows(["x", "y"], [[None, "a"], ["", "b"], ['"', ""]], "csv")
    assert text == 'x,y\n,a\n"",b\n"""",""'
    (tmp_path / "r.csv").write_text(text + "\n")
    rows = duckdb.sql(
        f"SELECT x, y FROM read_csv('{tmp_path / 'r.csv'}', all_varchar = true, allow_quoted_nulls = false)"
    ).fetchall()
    assert rows == [(None, "a"), ("", "b"), ('"', "")]
    # A blank line would be no row to most readers: one NULL of one column is quoted.
    assert render_rows(["x"], [[None], [""]], "csv") == 'x\n""\n""'


def test_invisible_characters_show_as_escapes() -> None:
    """Zero-width characters made two names look alike and pushed columns out of line;
    a line separator split the line on some terminals."""
    text = render_table(["v", "n"], [["zw\u200b\u200bx", 1], ["b\ufeffo\u2028m\u00ad", 2]])
    assert "zw\\u200b\\u200bx" in text and "b\\ufeffo\\u2028m\\xad" in text
    assert not any(c in text for c in "\u200b\ufeff\u2028\u00ad")


def test_tables_never_cut_ids() -> None:
    long_id = "svc-" + "x" * 200
    table = render_table(["id", "name"], [[long_id, "y" * 200]], max_width=60)
    assert long_id in table and "y" * 60 not in table


def test_long_names_are_cut_in_the_middle_and_other_text_at_its_end() -> None:
    """Cut at their ends, two services differing in their last characters read alike."""
    base = "com.example.platform.enterprise.integration.legacy.mainframe.primary.shard-"
    attributes = "exception.type=Failure exception.message=" + "z" * 80
    table = render_table(
        ["target", "attributes"], [[base + "0042", attributes], [base + "0043", attributes]]
    )
    first, second = table.splitlines()[2:]
    assert first.startswith("com.example.platform.enterpris….mainframe.primary.shard-0042 ")
    assert "shard-0043" in second
    assert "exception.type=Failure exception.message=zzz" in first and first.endswith("z…")
    assert max(display_width(line) for line in table.splitlines()) <= 60 + 2 + 60
    # A query's columns are its author's names: SQL values are cut at their end.
    sql_table = render_rows(["name"], [[attributes]], "table").splitlines()[2]
    assert sql_table.startswith("exception.type=Failure") and sql_table.endswith("z…")
    # A combining mark taken from the end without its letter would sit on the "…".
    accented = render_table(["service"], [["x" * 70 + "e\u0301" * 10]]).splitlines()[2]
    assert "…\u0301" not in accented and accented.endswith("e\u0301")
    # Wide characters count double on either side of the cut.
    cut = render_table(["service"], [["注文" * 40 + "-eu"]]).splitlines()[2]
    assert cut == "注文" * 7 + "注…" + "文注" * 6 + "文-eu" and display_width(cut) == 60


def test_machine_output_keeps_escape_sequences_off_a_terminal() -> None:
    """click.echo strips ANSI sequences when stdout is not a terminal: a CSV file lost
    them from values, and a DOT file merged two services named apart by them."""

    @click.command()
    def show() -> None:
        emit('"\x1b[31mred\x1b[0m" -> "red"')

    assert CliRunner().invoke(show).output == '"\x1b[31mred\x1b[0m" -> "red"\n'


def test_a_zero_duration_in_any_unit_means_off() -> None:
    """``--retention 0s`` failed with 'retention must be positive', though --help says
    '0 keeps all' and a bare 0 did."""
    from datetime import timedelta

    from flowscope.cli_common import DurationType

    duration = DurationType()
    assert [duration.convert(v, None, None) for v in ("0", "0s", "0d", "off")] == [None] * 4
    assert duration.convert("7d", None, None) == timedelta(days=7)
    # Refused as no duration while ' 5m' was taken (lifecycle review).
    assert [duration.convert(v, None, None) for v in (" 0 ", "00", "0.0", " off ")] == [None] * 4
    assert duration.convert(" 5m ", None, None) == timedelta(minutes=5)


def test_a_retention_over_a_century_is_refused_as_a_bad_value() -> None:
    """It was refused later, by the server's config, in another form than every other
    bad value ("Error: retention over ..." without "Invalid value for '--retention'")."""
    from flowscope.cli import main

    result = CliRunner().invoke(main, ["serve", "--retention", "5300w"])
    assert result.exit_code == 2
    assert (
        "Invalid value for '--retention': retention over 100 years keeps everything: use 'off'"
        in result.output
    )


def test_a_duration_under_a_microsecond_is_refused_not_off() -> None:
    """`--retention 0.0000001s` rounded to 0 and kept every span, as 'off' does."""
    from flowscope.cli_common import DurationType

    with pytest.raises(click.BadParameter, match="shorter than a microsecond"):
        DurationType().convert("0.0000001s", None, None)
    assert DurationType().convert("0.001ms", None, None) == timedelta(microseconds=1)


def test_durations_are_written_back_as_given() -> None:
    """Whole seconds were all that was written: --retention 1500ms read "1s" in the
    server's messages, and 0.5s "0s", which reads as retention off."""
    from flowscope.durations import format_duration, parse_duration

    for text, written in (
        ("1500ms", "1500ms"),
        ("0.5s", "500ms"),
        ("0.001ms", "0.001ms"),
        ("7d", "7d"),
        ("90m", "90m"),
        ("36h", "36h"),
        ("90s", "90s"),
    ):
        assert format_duration(parse_duration(text)) == written
        assert parse_duration(written) == parse_duration(text)


def test_only_a_failed_write_of_the_output_is_called_so() -> None:
    """An EIO reading a journal segment was reported as "cannot write the output"."""
    import errno

    from flowscope.cli import _raised_writing

    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    try:
        click.echo("x", file=Full())
    except OSError as exc:
        assert _raised_writing(exc)
    try:
        Path("/nonexistent-dir/x").read_bytes()
    except OSError as exc:
        assert not _raised_writing(exc)
    read_error = OSError(errno.EIO, "Input/output error")
    try:
        raise read_error
    except OSError as exc:
        assert not _raised_writing(exc)


def test_an_op_label_keeps_the_operation_of_a_service_with_control_characters() -> None:
    """Measured raw, escapes made the label longer than the table's cut, which then
    took the operation and the peer again."""
    from flowscope.cli_common import op_label, shown

    service = "a\x1b[31mred\x1b[0m-service-with-escapes-and-a-long-name-here-and-more"
    label = op_label(service, "GET /orders/{id}", tail=" -> postgresql")
    assert shown(label).endswith(": GET /orders/{id} -> postgresql")
    assert display_width(shown(label)) <= 70


def test_small_numbers_in_a_table_are_not_in_exponent_form() -> None:
    """An events table showed 5e-06 beside 0.001 in one column (migrator review)."""
    from flowscope.cli_common import _cell

    assert [_cell(v) for v in (5e-06, -5e-06, 1.234e-05, 0.001, 0.0, 12.5)] == [
        "0.000005",
        "-0.000005",
        "0.000012",
        "0.001",
        "0",
        "12.5",
    ]
    # Under a nanosecond (a median of 0 and 1 ns) it is not 0 (diff review).
    assert [_cell(v) for v in (5e-07, -5e-07, 1e-09)] == ["5e-07", "-5e-07", "1e-09"]


def test_demos_duration_is_a_positive_one() -> None:
    """0 made the demo run until Ctrl-C, and 00 or 0.0 did too once zero's spellings
    meant off (diff review): its --duration wants a positive duration."""
    from flowscope.cli import main

    for value in ("0", "00", "0.0", "0s", "off"):
        result = CliRunner().invoke(main, ["demo", "--duration", value])
        assert result.exit_code == 2, value
        assert "give a positive duration, e.g. 30s or 5m" in result.output


def test_a_signal_during_the_stop_wait_cannot_deadlock_it() -> None:
    """The wait was ``requested.wait(0.2)`` in a loop, and the signal handler, which
    runs on the same (main) thread, calls ``requested.set()``: a signal that came while
    the wait held the event's lock blocked on that lock for good (a serve ignored
    SIGTERM for 30 minutes in a test run; py-spy showed set() under wait()). Here the
    handler runs exactly there, as it did then."""
    import signal as signals
    import threading

    from flowscope.cli_common import StopRequest

    stop = StopRequest()
    entered = threading.Event()

    class HandlerInsideTheLock(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            entered.set()
            with self._cond:  # type: ignore[attr-defined]
                stop._on_signal(signals.SIGTERM, None)
            return super().wait(timeout)

    stop.requested = HandlerInsideTheLock()
    waiting = threading.Thread(target=stop.wait, daemon=True)
    waiting.start()
    waiting.join(1)
    if not entered.is_set():  # a wait that takes no lock: the signal comes to it so
        stop._on_signal(signals.SIGTERM, None)
    waiting.join(10)
    assert not waiting.is_alive(), "the stop wait deadlocked in its signal handler"


def test_what_is_left_to_replay_is_named_only_when_large(tmp_path: Path) -> None:
    db = str(tmp_path / "left.duckdb")
    assert left_to_replay(db) == ""  # nothing beside it
    wal = Path(f"{db}.wal")
    with wal.open("wb") as out:
        out.truncate(SLOW_OPEN_BYTES // 2)
    assert left_to_replay(db) == ""  # opens fast enough to say nothing
    journal = Path(f"{db}.journal")
    journal.mkdir()
    with (journal / f"{1:020d}.seg").open("wb") as out:
        out.truncate(SLOW_OPEN_BYTES)
    said = left_to_replay(db)
    assert "write-ahead log holds 32 MB" in said and "span journal 64 MB" in said


def test_a_running_servers_wal_is_not_taken_for_a_crashed_ones(tmp_path: Path) -> None:
    """A second serve on a held file said the first had not stopped cleanly."""
    db = str(tmp_path / "held.duckdb")
    with Path(f"{db}.wal").open("wb") as out:
        out.truncate(SLOW_OPEN_BYTES)
    journal = Journal(Path(f"{db}.journal"))  # its lock held, as a live server's is
    try:
        assert left_to_replay(db) == ""
    finally:
        journal.close(all_moved=True)
    assert "write-ahead log holds 64 MB" in left_to_replay(db)
