"""Decode workers never outlive the process that started them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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
