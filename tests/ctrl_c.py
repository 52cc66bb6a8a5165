"""Ctrl-C pressed at a read of a file, as a terminal or a notebook kernel sends it."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

# The Ctrl-C comes once the read's thread is there, within this long.
READ_THREAD_WAIT_S = 5.0


@contextmanager
def ctrl_c_at_the_read() -> Iterator[Callable[[], float]]:
    """Within the block, SIGINT reaches the main thread once a new `flowscope-read`
    thread runs (the query's: the block's reader must be new), and the block must end
    in KeyboardInterrupt. Yields a function
    giving the seconds from the block's start to its end; the read's thread was seen
    if it returns (an assertion otherwise)."""
    running = threading.Event()
    # A reader's thread lives as long as the reader: one of an earlier reader's is no
    # sign of this read.
    before = set(read_threads())

    def press() -> None:
        deadline = time.monotonic() + READ_THREAD_WAIT_S
        while time.monotonic() < deadline:
            if set(read_threads()) - before:
                running.set()
                break
            time.sleep(0.01)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    presser = threading.Thread(target=press)
    # As at a terminal: a run started in the background of a non-interactive shell
    # inherits SIGINT ignored, and Python then installs no handler for it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()
    took: list[float] = []
    try:
        with pytest.raises(KeyboardInterrupt):
            presser.start()
            yield lambda: took[0]
    finally:
        took.append(time.monotonic() - started)
        signal.signal(signal.SIGINT, previous)
        presser.join()
    assert running.is_set(), "no flowscope-read thread ran the query"


def read_threads() -> list[threading.Thread]:
    """The reads' threads alive now (`flowscope-read`, a reader's for its life)."""
    return [t for t in threading.enumerate() if t.name.startswith("flowscope-read")]


# The CLI with Ctrl-C's handler set, as at a terminal: a test run in the background of a
# non-interactive shell has SIGINT ignored, and its children inherit that. Set in the
# child itself: a preexec_fn runs between fork and exec, unsafe beside gRPC's threads
# (a CI run's child printed nothing).
_WITH_SIGINT = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'flowscope'; runpy.run_module('flowscope.cli', run_name='__main__')"
)


def cli_with_ctrl_c() -> list[str]:
    """The command line starting `flowscope` (add its arguments) with Ctrl-C handled."""
    return [sys.executable, "-c", _WITH_SIGINT]
