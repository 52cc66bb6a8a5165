"""Decode workers never outlive the process that started them."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
from multiprocessing.connection import Connection

import pytest

from flowscope.collector.decode_pool import die_with_parent, group_signals_held

SCRIPT = """
import os, sys
from flowscope.collector.decode_pool import die_with_parent
die_with_parent(int(sys.argv[1]) if sys.argv[1] != "ppid" else os.getppid())
print("alive")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux")
def test_a_worker_whose_starter_is_gone_leaves_at_once() -> None:
    """A server killed while its workers started: its workers' parent is already some
    other process (init), and no parent-death signal would ever reach them. Before,
    they lived on, ignoring SIGTERM."""
    not_its_parent = str(os.getpid() + 1)  # its parent is this process
    gone = subprocess.run(
        [sys.executable, "-c", SCRIPT, not_its_parent], capture_output=True, text=True, timeout=60
    )
    assert (gone.returncode, gone.stdout) == (0, "")
    kept = subprocess.run(
        [sys.executable, "-c", SCRIPT, "ppid"], capture_output=True, text=True, timeout=60
    )
    assert (kept.returncode, kept.stdout) == (0, "alive\n")


def _boot(conn: Connection) -> None:
    die_with_parent(os.getppid())
    conn.send("up")


def test_a_ctrl_c_while_a_child_boots_does_not_kill_it() -> None:
    """The terminal's Ctrl-C reaches the whole group. Before, a child still importing
    its modules died of it with a traceback (the server then said its ingest process
    "ended unexpectedly"); started with the group's signals held, it lives. (The
    unheld case, which showed the old death, raced the child's start: under load the
    signal came after the child had already set it aside, and the check failed.)"""
    context = multiprocessing.get_context("spawn")
    mine, theirs = context.Pipe()
    process = context.Process(target=_boot, args=(theirs,))
    with group_signals_held():
        process.start()
    os.kill(process.pid, signal.SIGINT)  # held until the child sets it aside
    process.join(60)
    assert process.exitcode == 0 and mine.recv() == "up"


def test_a_workers_result_keeps_its_warning() -> None:
    """A request decoded in a worker lost what ``partial_success`` says of strings
    that were not UTF-8 (collector/utf8_repair.py)."""
    from flowscope.collector.decode_pool import DecodePool
    from flowscope.testing.otlp import realistic_request

    request = realistic_request(1, seed=3)
    request.resource_spans[0].scope_spans[0].spans[0].name = "MARKER"
    body = request.SerializeToString().replace(b"MARKER", b"MA\xffKER")
    pool = DecodePool(1, inline_below_bytes=0)
    pool.start()
    try:
        result = pool.decode(body, "application/x-protobuf")
    finally:
        pool.shutdown()
    assert result.warning.startswith("1 string(s) were not valid UTF-8")
    assert result.batch.table.num_rows == 8
