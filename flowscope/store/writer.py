"""The single writer thread: group commit, ack after commit, bounded queue, dedup.

Receivers call ``submit`` from any thread and wait on the returned future; the
writer drains everything queued (up to ``max_batch_spans``), inserts it in one
transaction, commits, and only then resolves the futures — so an OTLP success
answer means the spans are in the WAL on disk. A full queue refuses at once
(``QueueFull``) so receivers can answer "retry later" instead of buffering
without bound.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import pyarrow as pa

from flowscope.store import sql_files
from flowscope.store.columns import as_batch
from flowscope.store.database import Database
from flowscope.store.dedup import RecentSpanKeys
from flowscope.store.deriver import Deriver

log = logging.getLogger(__name__)
T = TypeVar("T")


class QueueFull(Exception):
    """More spans are waiting than ``max_queued_spans``; try again shortly."""


class WriterClosed(Exception):
    """The writer is not running (not started, stopping, or failed)."""


@dataclass
class WriteStats:
    committed_spans: int = 0
    duplicate_spans: int = 0
    commits: int = 0
    failed_commits: int = 0


@dataclass
class _SpanItem:
    table: pa.Table
    keys: list[bytes]
    future: Future[int]


@dataclass
class _TaskItem:
    task: Callable[[Any], Any]
    future: Future[Any]


class SpanWriter:
    def __init__(
        self,
        database: Database,
        *,
        max_queued_spans: int = 200_000,
        max_batch_spans: int = 32_768,
        dedup_window: int = 1_000_000,
        derive_interval_s: float | None = 1.0,
    ) -> None:
        self.database = database
        self.max_queued_spans = max_queued_spans
        self.max_batch_spans = max_batch_spans
        self.stats = WriteStats()
        self._dedup = RecentSpanKeys(dedup_window)
        self._queue: queue.SimpleQueue[_SpanItem | _TaskItem | None] = queue.SimpleQueue()
        self._queued_spans = 0
        self._queued_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._accepting = False
        self._insert_sql = sql_files.query("insert_spans")
        self._seq = 0  # the last commit's CommitSeq (set at start from the file)
        # Derived tables (store/derivation.py) are brought up to date on their own
        # thread at most this often while spans arrive, and at shutdown; None: never.
        self.deriver = (
            Deriver(database, derive_interval_s) if derive_interval_s is not None else None
        )

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        if self._dedup.capacity:
            self._dedup.warm(self.database.recent_span_keys(self._dedup.capacity))
        self._seq = int(self.database.fetch("max_commit_seq")[0][0])
        if self.deriver is not None:
            self.deriver.start()
        self._accepting = True
        self._thread = threading.Thread(target=self._run, name="flowscope-writer", daemon=True)
        self._thread.start()

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop accepting, commit everything already queued, stop the thread. Safe twice."""
        self._accepting = False
        thread = self._thread
        if thread is None:
            return
        self._queue.put(None)
        thread.join(timeout)
        self._thread = None
        if self.deriver is not None:
            self.deriver.shutdown()

    @property
    def running(self) -> bool:
        return self._accepting and self._thread is not None

    @property
    def queued_spans(self) -> int:
        return self._queued_spans

    @property
    def dedup_window_size(self) -> int:
        return len(self._dedup)

    # -- producers -------------------------------------------------------------
    def submit(self, table: pa.Table, keys: list[bytes]) -> Future[int]:
        """Queue spans; the future gives how many were new once committed."""
        future: Future[int] = Future()
        rows = table.num_rows
        if not self.running:
            raise WriterClosed("the span writer is not running")
        if rows == 0:
            future.set_result(0)
            return future
        table = as_batch(table)
        with self._queued_lock:
            if self._queued_spans and self._queued_spans + rows > self.max_queued_spans:
                raise QueueFull(
                    f"writer queue holds {self._queued_spans} spans (limit {self.max_queued_spans})"
                )
            self._queued_spans += rows
        self._queue.put(_SpanItem(table, keys, future))
        return future

    def write(self, table: pa.Table, keys: list[bytes], timeout: float | None = None) -> int:
        return self.submit(table, keys).result(timeout)

    def run_task(self, task: Callable[[Any], T]) -> Future[T]:
        """Run ``task(cursor)`` on the writer thread, between span commits."""
        future: Future[T] = Future()
        if not self.running:
            raise WriterClosed("the span writer is not running")
        self._queue.put(_TaskItem(task, future))
        return future

    # -- the writer thread -----------------------------------------------------
    def _run(self) -> None:
        cursor = self.database.writer_cursor()
        stopping = False
        try:
            while not stopping:
                item = self._queue.get()
                batch: list[_SpanItem] = []
                tasks: list[_TaskItem] = []
                size = 0
                while True:
                    if item is None:
                        stopping = True
                    elif isinstance(item, _SpanItem):
                        batch.append(item)
                        size += item.table.num_rows
                    else:
                        tasks.append(item)
                    if size >= self.max_batch_spans or stopping:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    self._commit(cursor, batch, size)
                for task in tasks:
                    self._run_task(cursor, task)
        finally:
            cursor.close()
            self._fail_pending()

    def _commit(self, cursor: Any, batch: list[_SpanItem], size: int) -> None:
        keys: list[bytes] = []
        for item in batch:
            keys.extend(item.keys)
        mask, digests = self._dedup.new_mask(keys)
        table = pa.concat_tables([item.table for item in batch])
        new_rows = len(digests)
        if new_rows != len(mask):
            table = table.filter(pa.array(mask, pa.bool_()))
        started = time.perf_counter()
        try:
            if new_rows:
                cursor.register("incoming_spans", table)
                try:
                    # Only the spans, in one auto-committed statement: queueing and
                    # counting them is the derive thread's (sql/dv_intake.sql). Every
                    # DuckDB call costs ~0.4 ms here, so small commits count them.
                    cursor.execute(self._insert_sql, {"seq": self._seq + 1})
                finally:
                    cursor.unregister("incoming_spans")
        except Exception as exc:  # a failed commit must fail its requests, not the thread
            log.exception("span commit failed")  # auto-committed: nothing to roll back
            self.stats.failed_commits += 1
            self._release(size)
            for item in batch:
                item.future.set_exception(exc)
            return
        if new_rows:
            self._seq += 1
        self._dedup.remember(digests)
        if new_rows and self.deriver is not None:
            self.deriver.notify()
        self.stats.commits += 1
        self.stats.committed_spans += new_rows
        self.stats.duplicate_spans += len(mask) - new_rows
        self._release(size)
        log.debug("committed %d spans in %.1f ms", new_rows, (time.perf_counter() - started) * 1e3)
        # Resolve each request with the count of its own spans that were new.
        position = 0
        for item in batch:
            count = item.table.num_rows
            item.future.set_result(sum(mask[position : position + count]))
            position += count

    def _run_task(self, cursor: Any, item: _TaskItem) -> None:
        try:
            item.future.set_result(item.task(cursor))
        except Exception as exc:
            item.future.set_exception(exc)

    def _release(self, size: int) -> None:
        with self._queued_lock:
            self._queued_spans -= size

    def _fail_pending(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None and not item.future.done():
                item.future.set_exception(WriterClosed("the span writer stopped"))


__all__ = ["QueueFull", "SpanWriter", "WriteStats", "WriterClosed"]
