"""Ctrl-C: held off while a DuckDB file is being closed or its writer stopped, and
taken at once while a read of a file runs.

A KeyboardInterrupt raised inside ``SpanWriter.shutdown`` or ``Database.close`` (the
import had printed its last file and was finishing) left the connection busy with
the call it cut short; the close then failed ("connection is busy with another
call") and DuckDB aborted the process ("FATAL: exception not rethrown", SIGABRT),
leaving its WAL behind. Held until the block ends, the interrupt comes after.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, wait
from contextlib import contextmanager
from types import FrameType
from typing import Any


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


class InterruptibleReads:
    """A file read's calls (an analysis source's methods), run on a thread of their own
    so that Ctrl-C stops them.

    In the main thread a DuckDB query holds off Python's signal handler until it ends:
    Ctrl-C during a long ``flowscope sql`` waited for its ``--timeout`` (up to a day)
    and then printed a traceback, and a notebook's "interrupt kernel" waited for a
    ``flowscope.open(...).sql()`` to end. Here the main thread only waits; Ctrl-C
    interrupts the query and raises KeyboardInterrupt."""

    def __init__(self, source: Any, database: Any) -> None:
        self._source, self._database = source, database
        self.stopped_cleanly = True  # False: a read still ran when Ctrl-C gave up on it

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._source, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            running: Future[Any] = Future()

            def run() -> None:
                try:
                    running.set_result(value(*args, **kwargs))
                except BaseException as exc:  # handed to the waiting main thread
                    running.set_exception(exc)

            # Until the read is known to have ended, the file must not be closed: a
            # Ctrl-C between two lines here would otherwise close it under the read.
            self.stopped_cleanly = False
            try:
                # A daemon: a query that will not stop must not hold the exit for its
                # --timeout (up to a day).
                threading.Thread(target=run, name="flowscope-read", daemon=True).start()
                return running.result()
            except KeyboardInterrupt:
                self._stop(running)
                raise
            finally:
                self.stopped_cleanly = running.done()

        return call

    def _stop(self, running: Future[Any]) -> None:
        """Interrupt the read until it ends, before the file is closed (which a busy
        cursor refuses): again and again, as a statement that began after one
        interrupt (the sandbox's checks come first) takes the next. Ctrl-C pressed
        again meanwhile does not cut this short."""
        deadline = time.monotonic() + INTERRUPT_WAIT_S
        while not running.done() and time.monotonic() < deadline:
            try:
                self._database.interrupt_reads()
                wait([running], timeout=0.05)
            except KeyboardInterrupt:
                continue


INTERRUPT_WAIT_S = 10.0
