"""Decoding: the C fast path in the calling thread, the Python path in worker processes.

Ordinary protobuf requests are flattened by the C fast path (collector/fast_flatten.py,
about 2 µs a span) right where they arrive: shipping them to another process would
cost more than flattening them. The Python path (about 23 µs a span) handles JSON,
unusual requests and installs without the extension; it runs in worker processes so
it is not bound by one interpreter's GIL, except for small requests, for which
shipping costs more than it saves.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from multiprocessing import resource_tracker

import pyarrow as pa

from flowscope.collector.decode import decode_fast, decode_python
from flowscope.collector.decode_budget import check_expansion
from flowscope.collector.errors import Unavailable
from flowscope.collector.flatten import FlattenResult, SpanBatch
from flowscope.store.columns import BATCH_SCHEMA
from flowscope.store.dedup import split_keys
from flowscope.store.table_size import table_bytes

log = logging.getLogger(__name__)


PR_SET_PDEATHSIG = 1
# What a terminal or a process manager sends the whole process group.
GROUP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


_TRACKER_QUIET = "ignore:resource_tracker:UserWarning"


@contextmanager
def group_signals_held() -> Iterator[None]:
    """Start child processes inside this: they begin with ``GROUP_SIGNALS`` blocked.

    A spawned child imports its modules (grpc, duckdb: about a second) before it can
    ignore the signals meant for the server; a Ctrl-C then killed it with a traceback,
    and the server reported that its ingest process "ended unexpectedly". The mask is
    inherited across fork and exec; ``die_with_parent`` lifts it once the signals are
    ignored. Here they stay pending, so the server still gets its Ctrl-C."""
    # Starting a child starts multiprocessing's resource tracker the first time, which
    # unblocks these signals after its own start (the same trick, for the tracker).
    # It ignores SIGINT and SIGTERM but not SIGHUP: a closed terminal killed it, and
    # its replacement printed five tracebacks over semaphores it did not know. Started
    # with SIGHUP blocked, it keeps it blocked (it unblocks only the two it ignores).
    # After a SIGKILL of the server it unlinks the semaphores left and warns about each
    # kind ("There appear to be 5 leaked semaphore objects"), which read as damage: the
    # warning is its own, given its own -W (it takes the interpreter's flags).
    hangup = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    sys.warnoptions.append(_TRACKER_QUIET)
    try:
        resource_tracker.ensure_running()
    finally:
        sys.warnoptions.remove(_TRACKER_QUIET)
        signal.pthread_sigmask(signal.SIG_SETMASK, hangup)
    held = signal.pthread_sigmask(signal.SIG_BLOCK, GROUP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def die_with_parent(parent_pid: int | None = None) -> None:
    """Worker initializer: a SIGKILLed server must not leave workers holding its pipes.

    ``parent_pid``: the process that started this one. If it died before the signal
    was armed, nothing would ever send it: leave at once (before, such workers lived
    on, ignoring SIGTERM, and kept multiprocessing's resource tracker alive too)."""
    # Ctrl-C reaches the whole process group; the server shuts its workers down itself,
    # and a worker's own KeyboardInterrupt would only print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal: the server's too
    # Started inside group_signals_held: what came meanwhile is now ignored or, for a
    # SIGTERM the caller does not ignore, acted on.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, GROUP_SIGNALS)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(0)


def _ready() -> bool:
    return True


def decode_for_transfer(
    body: bytes, content_type: str
) -> tuple[pa.Buffer, bytes, int, list[str], str]:
    """Runs in a worker: decode, then pack the table as Arrow IPC and the keys as one blob."""
    result = decode_python(body, content_type)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, BATCH_SCHEMA) as stream:
        stream.write_table(result.batch.table)
    keys = b"".join(result.batch.keys)
    return sink.getvalue(), keys, result.rejected, result.reasons, result.warning


def unpack(
    buffer: pa.Buffer, keys: bytes, rejected: int, reasons: list[str], warning: str
) -> FlattenResult:
    table = pa.ipc.open_stream(buffer).read_all()
    return FlattenResult(SpanBatch(table, split_keys(keys)), rejected, reasons, warning)


class DecodePool:
    def __init__(self, workers: int, *, inline_below_bytes: int = 32 * 1024) -> None:
        if workers < 0:
            raise ValueError("decode workers must be >= 0")
        self.workers = workers
        self.inline_below_bytes = inline_below_bytes
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        if self.workers and self._executor is None:
            # spawn, not fork: this process already runs gRPC and DuckDB threads.
            context = multiprocessing.get_context("spawn")
            executor = ProcessPoolExecutor(
                self.workers,
                mp_context=context,
                initializer=die_with_parent,
                initargs=(os.getpid(),),
            )
            # Spawn every worker now, from this long-lived thread: the parent-death
            # signal is tied to the thread that forked, and a request thread may end.
            with group_signals_held():  # submit spawns them, in this thread
                started = [executor.submit(_ready) for _ in range(self.workers)]
            for future in started:
                future.result()
            self._executor = executor

    def shutdown(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def decode(self, body: bytes, content_type: str) -> FlattenResult:
        """The request's spans, refused (RequestTooLarge) when their resources and
        scopes, stored with each span, would come to too much (``check_expansion``)."""
        result = self._decode(body, content_type)
        table = result.batch.table
        # The writer queue's weight of the spans (store/table_size.table_bytes), measured
        # once here: measured again by the journal sink and by the server's writer, it
        # took 15-20 % of the ingest rate of 8- and 80-span requests (review).
        result.batch.weight = table_bytes(table, expanded=check_expansion(table))
        return result

    def _decode(self, body: bytes, content_type: str) -> FlattenResult:
        fast = decode_fast(body, content_type)
        if fast is not None:
            return fast
        executor = self._executor
        if executor is None or len(body) < self.inline_below_bytes:
            return decode_python(body, content_type)
        try:
            packed = executor.submit(decode_for_transfer, body, content_type).result()
        except BrokenProcessPool as exc:
            self._replace(executor)
            raise Unavailable("a decode worker died; retry") from exc
        return unpack(*packed)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is broken:
                log.error("decode worker pool broke; starting a new one")
                broken.shutdown(wait=False, cancel_futures=True)
                self._executor = None
                self.start()
