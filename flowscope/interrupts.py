"""Ctrl-C held off while a DuckDB file is being closed or its writer stopped.

A KeyboardInterrupt raised inside ``SpanWriter.shutdown`` or ``Database.close`` (the
import had printed its last file and was finishing) left the connection busy with
the call it cut short; the close then failed ("connection is busy with another
call") and DuckDB aborted the process ("FATAL: exception not rethrown", SIGABRT),
leaving its WAL behind. Held until the block ends, the interrupt comes after.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Run the block with SIGINT recorded, not raised; then act on it as the handler
    before would have (KeyboardInterrupt for Python's own). Only the main thread
    takes signals: elsewhere the block just runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        caught.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and callable(previous):
        previous(signal.SIGINT, None)  # default_int_handler raises KeyboardInterrupt
