"""serve stops on a signal whichever of its threads the kernel hands it to."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from flowscope.testing.server import start_server_process
from flowscope.testing.thread_signal import TGKILL, signal_another_thread


@pytest.mark.skipif(os.uname().machine not in TGKILL, reason="tgkill's number is per machine")
def test_a_sigterm_handed_to_another_thread_stops_serve(tmp_path: Path) -> None:
    """The main thread waited for the stop without a timeout, and Python runs a handler
    only in the main thread: a SIGTERM the kernel gave another thread left serve up for
    good (a CI run's stop timed out; its main thread was still waiting 10 minutes on)."""
    server = start_server_process(tmp_path / "stop.duckdb")
    try:
        signal_another_thread(server.process.pid, signal.SIGTERM)
        assert server.process.wait(30) == 0
    except subprocess.TimeoutExpired:
        server.stop(signal.SIGKILL)
        raise
    server.stop()
    assert any("stopped" in line for line in server.output), server.output
