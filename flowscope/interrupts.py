"""Ctrl-C: held off while a DuckDB file is being closed or its writer stopped, and
taken at once while a read of a file runs.

A KeyboardInterrupt raised inside ``SpanWriter.shutdown`` or ``Database.close`` (the
import had printed its last file and was finishing) left the connection busy with
the call it cut short; the close then failed ("connection is busy with another
call") and DuckDB aborted the process ("FATAL: exception not rethrown", SIGABRT),
leaving its WAL behind. Held until the block ends, the interrupt comes after.
"""

from __future__ import annotations

import queue
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from contextlib import contextmanager
from types import FrameType
from typing import Any, NoReturn


def exit_interrupted() -> NoReturn:
    """End a command stopped by Ctrl-C: one line and 130 (128 + SIGINT), as a shell
    reports it."""
    sys.stderr.write("flowscope: interrupted\n")
    sys.exit(130)


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
    interrupts the query and raises KeyboardInterrupt.

    One worker thread serves the calls, so its read cursor, and the views a snapshot
    builds once per cursor, are reused: a thread per call made 2,000 trace views 50 %
    slower. Ctrl-C interrupts that thread's query only, not one another thread of the
    caller runs on the same file."""

    def __init__(self, source: Any, database: Any) -> None:
        self._source, self._database = source, database
        self.stopped_cleanly = True  # False: a read still ran when Ctrl-C gave up on it
        self._worker: _Worker | None = None

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._source, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            running: Future[Any] = Future()
            worker = self._worker
            if worker is None:
                # Whole or not at all: a Ctrl-C just after the thread's start left it
                # running with no reader to end it.
                with interrupts_deferred():
                    worker = self._worker = _Worker()
                    weakref.finalize(self, worker.retire)  # a dropped reader's thread ends
            # Until the read is known to have ended, the file must not be closed: a
            # Ctrl-C between two lines here would otherwise close it under the read.
            self.stopped_cleanly = False
            try:
                worker.submit(lambda: value(*args, **kwargs), running)
                return running.result()
            except KeyboardInterrupt:
                self._stop(running, worker.thread)
                raise
            finally:
                self.stopped_cleanly = running.done()
                if not running.done():  # a read that would not stop keeps its thread
                    worker.retire()
                    self._worker = None

        return call

    def finish(self) -> None:
        """Let the worker thread end (it ends by itself with the process otherwise)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.retire()
            worker.thread.join(INTERRUPT_WAIT_S)

    def _stop(self, running: Future[Any], thread: threading.Thread | None) -> None:
        """Interrupt the read until it ends, before the file is closed (which a busy
        cursor refuses): again and again, as a statement that began after one
        interrupt (the sandbox's checks come first) takes the next. Ctrl-C pressed
        again meanwhile does not cut this short."""
        deadline = time.monotonic() + INTERRUPT_WAIT_S
        while not running.done() and time.monotonic() < deadline:
            try:
                self._database.interrupt_reads(thread)
                wait([running], timeout=0.05)
            except KeyboardInterrupt:
                continue


class _Worker:
    """A daemon thread running the calls given to it, one at a time. A daemon: a
    query that will not stop must not hold the exit for its --timeout (up to a day)."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self.thread = threading.Thread(target=self._serve, name="flowscope-read", daemon=True)
        self.thread.start()

    def submit(self, function: Callable[[], Any], running: Future[Any]) -> None:
        self._calls.put((function, running))

    def retire(self) -> None:
        """End the thread once the call it runs, if any, has ended."""
        self._calls.put(None)

    def _serve(self) -> None:
        while (item := self._calls.get()) is not None:
            _run(*item)
            # Nothing of the call is kept while the next is awaited: its function held
            # the source, and so a dropped reader's file stayed open.
            del item


def _run(function: Callable[[], Any], running: Future[Any]) -> None:
    try:
        running.set_result(function())
    except BaseException as exc:  # handed to the waiting main thread
        running.set_exception(exc)


INTERRUPT_WAIT_S = 10.0
