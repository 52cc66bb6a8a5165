"""The single writer thread: group commit, ack once durable, bounded queue, dedup.

Receivers call ``submit`` from any thread. It drops spans seen recently (dedup),
appends the rest to the span journal (store/journal.py), fsyncs it together with
concurrent requests, and resolves the returned future: an OTLP success answer
means the spans are on disk. The writer thread drains everything queued (up to
``max_batch_spans``) and moves it into ``otel_traces`` in one commit; reads that
must see acknowledged spans wait for it (``await_moved``). ``write`` skips the
journal and resolves at the commit, for bulk loads that keep no client waiting.
A full queue refuses at once (``QueueFull``) so receivers can answer "retry
later" instead of buffering without bound.
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
import pyarrow.compute as pc

from flowscope.logs import RepeatedFailures
from flowscope.store import sql_files
from flowscope.store.database import Database, StoreError, WritesBehind, insert_spans, no_writer
from flowscope.store.dedup import RecentSpanKeys, StoredSpan, only_new
from flowscope.store.deriver import Deriver, DeriverStopped
from flowscope.store.journal import Journal, JournalError
from flowscope.store.one_piece import one_piece
from flowscope.store.table_size import table_bytes

# A journalled batch the database refused is retried (it is acknowledged), backing off
# up to this long between attempts.
RETRY_MAX_S = 5.0
# A commit of fewer journalled spans than LINGER_SPANS waits up to LINGER_S for more
# (they are acknowledged already; see SpanWriter._gather).
LINGER_S = 0.25
LINGER_SPANS = 4096
# What may wait for commits, and what one commit may take, in bytes (table_size):
# realistic spans weigh ~700 bytes, so 200,000 of them (the span limit) ~140 MB, and a
# full batch of 32,768 ~22 MB. Spans of 8 MB attributes in one 2.9 GB commit took the
# server to 17.8 GB: DuckDB takes several times a batch's weight to insert it.
MAX_QUEUED_BYTES = 256 * 2**20
MAX_BATCH_BYTES = 64 * 2**20
# How long a read waits for acknowledged spans to reach the table before it answers
# without them (only a failing disk makes it wait that long).
AWAIT_MOVED_S = 10.0

log = logging.getLogger(__name__)
T = TypeVar("T")


class QueueFull(Exception):
    """More spans, or bytes of them, are waiting than the writer queue's limits; try
    again shortly (when ``larger_than_queue``, only once the queue is empty)."""

    def __init__(self, message: str, larger_than_queue: bool = False) -> None:
        super().__init__(message)
        self.larger_than_queue = larger_than_queue


@dataclass(frozen=True)
class Load:
    """Spans, and what they weigh in memory (store/table_size.table_bytes)."""

    spans: int
    bytes: int

    def __add__(self, other: Load) -> Load:
        return Load(self.spans + other.spans, self.bytes + other.bytes)

    def __sub__(self, other: Load) -> Load:
        return Load(self.spans - other.spans, self.bytes - other.bytes)

    def within(self, limit: Load) -> bool:
        return self.spans <= limit.spans and self.bytes <= limit.bytes


NO_LOAD = Load(0, 0)


def check_room(queued: Load, request: Load, limit: Load) -> None:
    """QueueFull, saying why, when ``request`` does not fit beside ``queued``.

    Spans and bytes both count: a queue of 200,000 spans held 17.8 GB when each span
    carried an 8 MB attribute, and the commits of such spans outlasted a stop. A
    request over a whole limit is taken when the queue is empty, else it could never
    be; under steady traffic the queue seldom is, so its refusal says that rather than
    "retry later" alone (a reviewer's 250,000-span request was refused as if the queue
    were merely busy, for as long as the traffic lasted)."""
    # Raised here, not returned to be raised: a caller's local naming the error made a
    # reference cycle (error, traceback, the caller's frame, that local), and the
    # refused request's spans in that frame waited for the cyclic collector (gigabytes
    # under a flood of large requests, grpc_receiver.py).
    if not queued.spans or (queued + request).within(limit):
        return
    if request.spans > limit.spans:
        raise QueueFull(
            f"the request holds {request.spans} spans, more than the writer queue's limit "
            f"of {limit.spans}: it is taken only when the queue is empty (it holds "
            f"{queued.spans}); send smaller requests or raise --max-queued-spans",
            larger_than_queue=True,
        )
    if request.bytes > limit.bytes:
        raise QueueFull(
            f"the request's spans come to {_size(request.bytes)} once decoded, more than the "
            f"writer queue's limit of {_size(limit.bytes)}: it is taken only when the queue "
            f"is empty (it holds {queued.spans} spans); send smaller requests or raise "
            "--max-queued-bytes",
            larger_than_queue=True,
        )
    if queued.spans + request.spans > limit.spans:
        raise QueueFull(f"writer queue holds {queued.spans} spans (limit {limit.spans})")
    raise QueueFull(
        f"writer queue holds {_size(queued.bytes)} of spans (limit {_size(limit.bytes)})"
    )


def _size(size: int) -> str:
    if size < 2**20:
        return f"{size / 2**10:,.1f} KiB"
    return f"{size / 2**20:,.1f} MiB"


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
    table: pa.Table  # only the spans not seen before: its rows are the new spans
    load: Load
    seq: int
    journalled: bool
    future: Future[int] | None  # resolved at the commit (not journalled)


@dataclass
class _TaskItem:
    task: Callable[[Any], Any]
    future: Future[Any]


class _Flush:
    """A reader waits for the queued spans: commit them now."""


_FLUSH = _Flush()
_Queued = _SpanItem | _TaskItem | _Flush | None


class SpanWriter:
    def __init__(
        self,
        database: Database,
        *,
        max_queued_spans: int = 200_000,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
        max_batch_spans: int = 32_768,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        dedup_window: int = 1_000_000,
        derive_interval_s: float | None = 1.0,
        journal: bool = True,
        linger_s: float = LINGER_S,
        linger_spans: int = LINGER_SPANS,
        external_journal: bool = False,
    ) -> None:
        self.database = database
        self.max_queued = Load(max_queued_spans, max_queued_bytes)
        self.max_batch = Load(max_batch_spans, max_batch_bytes)
        self.linger_s = linger_s
        self.linger_spans = linger_spans
        self.stats = WriteStats()
        self._dedup = RecentSpanKeys(dedup_window)
        self._queue: queue.SimpleQueue[_Queued] = queue.SimpleQueue()
        self._queued = NO_LOAD
        self._queued_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._accepting = False
        # Which thread shutdown found still committing ("the writer", "the derive
        # thread"), or None; the database must not be closed under it (see shutdown).
        self.stuck: str | None = None
        self._failures = RepeatedFailures(log)  # of span commits
        self._insert_sql = sql_files.query("insert_spans")
        # Every submitted batch takes the next number, in queue order; a commit stores
        # the highest it holds as CommitSeq (journal records carry the same numbers).
        self._next_seq = 1
        self._submit_lock = threading.Lock()
        self._moved_seq = 0
        self._moved = threading.Condition()
        self._use_journal = journal and database.journal_dir is not None and not external_journal
        # Another process appends the journal and numbers its records (the ingest
        # process, collector/ingest_process.py): its records arrive by take_journalled,
        # and spans submitted here take no number of their own (see _take).
        self.external_journal = external_journal
        # Called on the writer thread with the highest record number each commit moved.
        self.moved_listener: Callable[[int], None] | None = None
        self._journal: Journal | None = None
        # A commit given up at the stop: nothing after it is committed (``_commit``).
        self._abandoned = False
        self._stopping = threading.Event()
        # Journalled requests not yet moved: their numbers and trace ids (under _moved).
        self._pending_traces: dict[int, set[str]] = {}
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
        if self.database.journal_dir is not None and (self._use_journal or self.external_journal):
            # What an earlier writer on this Database left (commits refused until it
            # stopped; records from before the file was opened were replayed then), before
            # numbering on: a record left there would share its number with a new one.
            self.database.replay_journal(strict=True)
        if self._use_journal:
            assert self.database.journal_dir is not None
            try:
                self._journal = Journal(self.database.journal_dir)
            except JournalError as exc:  # the CLI reports a StoreError in one line
                raise StoreError(str(exc)) from exc
        self._moved_seq = self.database.moved_seq()
        self._next_seq = self._moved_seq + 1
        self._stopping.clear()
        if self.deriver is not None:
            self.deriver.start()
        self._accepting = True
        self._thread = threading.Thread(target=self._run, name="flowscope-writer", daemon=True)
        self._thread.start()
        self.database.await_writes = self._await_acknowledged

    def shutdown(self, timeout: float = 30.0, derive_timeout: float = 60.0) -> None:
        """Stop accepting, commit everything already queued, stop the thread, then the
        derive thread (which finishes a due pass). Safe twice."""
        with self._submit_lock:
            self._accepting = False
        thread = self._thread
        if thread is None:
            return
        if self.deriver is not None:
            self.deriver.hold()  # its last pass follows the last commit (Deriver.hold)
        self._stopping.set()
        self._queue.put(None)
        thread.join(timeout)
        # Still inside a commit: the connection is busy, and closing the database under
        # it crashed the process. Whoever closes the database asks this first.
        self.stuck = "the writer" if thread.is_alive() else None
        self._thread = None
        self.database.await_writes = no_writer
        if self._journal is not None:
            # Spans the database did not take stay in the journal for the next open.
            self._journal.close(all_moved=self._moved_seq >= self._next_seq - 1)
            self._journal = None
        if self.deriver is not None:
            self.deriver.shutdown(derive_timeout)
            if self.deriver.stuck and self.stuck is None:
                # A pass that outlasted the stop (its commit checkpointing gigabytes of
                # spans): closing under it exited 1, "the connection is busy".
                self.stuck = "the derive thread"

    @property
    def running(self) -> bool:
        return self._accepting and self._thread is not None

    @property
    def queued_spans(self) -> int:
        return self._queued.spans

    @property
    def queued_bytes(self) -> int:
        return self._queued.bytes

    @property
    def next_seq(self) -> int:
        """The number the next journal record takes."""
        return self._next_seq

    @property
    def dedup_window_size(self) -> int:
        return len(self._dedup)

    # -- producers -------------------------------------------------------------
    def submit(
        self, table: pa.Table, keys: list[bytes], *, durable: bool = True, weight: int | None = None
    ) -> Future[int]:
        """Take spans; the future gives how many were new (not seen recently).
        ``weight``: their ``table_bytes``, when the decoder measured it.

        ``durable``: resolved once they are on disk in the journal (what an OTLP
        acknowledgement waits for); without a journal, or with False, once committed.
        """
        future: Future[int] = Future()
        journalled = durable and self._use_journal
        # Outside the lock: the request's traces, for lookups that must wait for it (a
        # retried span's trace may be among them: such a lookup waits a commit for nothing).
        traces = set(pc.unique(table.column("TraceId")).to_pylist()) if journalled else set()
        load = Load(table.num_rows, table_bytes(table) if weight is None else weight)
        with self._submit_lock:
            item = self._take(table, load, keys, journalled, None if journalled else future, traces)
            if item is not None:
                self._queue.put(item)
            last = self._next_seq - 1
        if item is None and table.num_rows and not journalled and self._moved_seq < last:
            # Every span a retry of spans maybe not yet committed: answered after the
            # commits queued before it, as their requests are.
            return self.run_task(lambda _cursor: 0)
        if item is None:
            if table.num_rows and journalled:
                assert self._journal is not None
                self._journal.sync(last)  # as JournalSink.submit: the first copies durable
            future.set_result(0)
        elif journalled:
            assert self._journal is not None
            self._journal.sync(item.seq)
            future.set_result(item.table.num_rows)
        return future

    def _take(
        self,
        table: pa.Table,
        load: Load,
        keys: list[bytes],
        journalled: bool,
        future: Future[int] | None,
        traces: set[str],
    ) -> _SpanItem | None:
        # Under _submit_lock: dedup, numbering, journal order and queue order agree.
        rows = table.num_rows
        if not self._accepting or self._thread is None:
            raise WriterClosed("the span writer is not running")
        if self.external_journal:
            # Record numbers (CommitSeq) are the ingest process's to give; a number taken
            # here could pass a record still on its way and hide it from replay.
            raise WriterClosed("spans reach this writer through the ingest process only")
        if rows == 0:
            return None
        check_room(self._queued, load, self.max_queued)
        failing = self._failures.last
        if journalled and failing is not None:
            # Acknowledged spans would take the room a commit needs: a disk freed while
            # exporters kept sending filled again with journal, and commits never
            # caught up (journal_sink.STALLED_AFTER_S is the ingest process's rule).
            raise QueueFull(f"span commits are failing ({failing})")
        table, digests = only_new(self._dedup, table, keys)
        if not digests:
            self.stats.duplicate_spans += rows
            return None
        seq = self._next_seq
        if journalled:
            assert self._journal is not None
            self._journal.append(seq, table)  # raises before anything is remembered
            with self._moved:
                self._pending_traces[seq] = traces
        self._next_seq += 1
        self._dedup.remember(digests)
        self.stats.duplicate_spans += rows - len(digests)
        if len(digests) < rows:
            load = Load(table.num_rows, table_bytes(table))
        with self._queued_lock:
            self._queued += load
        return _SpanItem(table, load, seq, journalled, future)

    def take_journalled(self, seq: int, table: pa.Table, weight: int | None = None) -> None:
        """Queue journal record ``seq``, appended and acknowledged by another process
        (``weight``: its ``table_bytes``, as that process measured it).

        Records must arrive in number order. Not refused when the queue is full: the
        spans are acknowledged already (the other process enforces the limit).
        """
        traces = set(pc.unique(table.column("TraceId")).to_pylist())
        load = Load(table.num_rows, table_bytes(table) if weight is None else weight)
        with self._submit_lock:
            if not self._accepting or self._thread is None:
                raise WriterClosed("the span writer is not running")
            if seq < self._next_seq:
                raise ValueError(f"journal record {seq} arrived after {self._next_seq - 1}")
            with self._moved:
                self._pending_traces[seq] = traces
            self._next_seq = seq + 1
            with self._queued_lock:
                self._queued += load
            # Deduplicated where it was appended: every span in it is new.
            self._queue.put(_SpanItem(table, load, seq, True, None))

    def remember_stored(self, spans: list[StoredSpan]) -> None:
        """Put stored spans in the dedup window, so that copies of them submitted next
        are dropped (an import reading again a path it read long ago)."""
        with self._submit_lock:
            self._dedup.warm(spans)

    def write(self, table: pa.Table, keys: list[bytes], timeout: float | None = None) -> int:
        """Store spans, bypassing the journal; returns how many were new once committed."""
        return self.submit(table, keys, durable=False).result(timeout)

    def await_moved(self, seq: int | None = None, timeout: float | None = None) -> bool:
        """Wait until spans numbered up to ``seq`` (default: all taken so far) are in
        ``otel_traces``; False if they are not within ``timeout`` seconds."""
        target = self._next_seq - 1 if seq is None else seq
        if threading.current_thread() is self._thread:
            return self._moved_seq >= target  # the writer cannot wait for itself
        if self._moved_seq >= target:
            return True
        self._queue.put(_FLUSH)  # the writer may be lingering for more spans
        with self._moved:
            return self._moved.wait_for(
                lambda: self._moved_seq >= target, AWAIT_MOVED_S if timeout is None else timeout
            )

    def run_task(self, task: Callable[[Any], T]) -> Future[T]:
        """Run ``task(cursor)`` on the writer thread, between span commits."""
        future: Future[T] = Future()
        # Under the lock shutdown takes to stop accepting: a task is queued before the
        # stop marker, so it runs or fails, and never waits behind a stopped thread.
        with self._submit_lock:
            if not self.running:
                raise WriterClosed("the span writer is not running")
            self._queue.put(_TaskItem(task, future))
        return future

    def run_derived_task(self, task: Callable[[Any], T]) -> Future[T]:
        """Run ``task(cursor)`` where the derived tables are written: on the derive
        thread between its passes (``Deriver.run_task``), or on the writer thread when
        this writer has no derive thread."""
        if self.deriver is None:
            return self.run_task(task)
        if not self.running:
            raise WriterClosed("the span writer is not running")
        try:
            return self.deriver.run_task(task)
        except DeriverStopped as exc:
            raise WriterClosed(str(exc)) from exc

    def _await_acknowledged(self, trace_id: str | None = None) -> None:
        if trace_id is None:
            moved = self.await_moved()
        else:
            # A trace lookup waits only for the queued requests that hold its spans, so
            # looking up a trace that has arrived does not wait for everyone else's.
            with self._moved:
                seqs = [seq for seq, ids in self._pending_traces.items() if trace_id in ids]
            moved = not seqs or self.await_moved(max(seqs))
        if not moved:
            # Before, the read went on without them: a trace just acknowledged was
            # "not in the database", and counts were short, with nothing to say so.
            if self.last_error:
                why = f" (the last commit failed: {self.last_error})"
            else:  # committing, but behind: it read as a stuck store (ops review)
                why = (
                    f": the writer is behind, {self.queued_spans:,} spans wait for it "
                    "(spans arrive faster than it commits them; fewer senders or a smaller "
                    "--max-queued-spans shorten the wait)"
                )
            raise WritesBehind(
                f"acknowledged spans were still not committed after a {AWAIT_MOVED_S:g} s "
                f"wait{why}; an answer now would miss them, so try again"
            )

    # -- the writer thread -----------------------------------------------------
    def _run(self) -> None:
        cursor = self.database.writer_cursor()
        stopping = False
        try:
            while not stopping:
                batch, tasks, load, stopping = self._gather(self._queue.get())
                if batch and self._abandoned:
                    self._leave(batch, load)
                elif batch:
                    self._commit(cursor, batch, load)
                for task in tasks:
                    self._run_task(cursor, task)
        finally:
            cursor.close()
            self._fail_pending()

    def _gather(self, item: _Queued) -> tuple[list[_SpanItem], list[_TaskItem], Load, bool]:
        """The next commit's spans (and tasks to run after it), starting with ``item``.

        Journalled spans are already acknowledged, so a small batch of them waits up to
        ``linger_s`` for more: a commit costs ~12 ms however few spans it holds, and
        fewer, larger commits leave the cores to the receivers. Anything someone waits
        on (a ``write``, a task, a reader's flush, shutdown) ends the wait. A commit takes
        at most ``max_batch`` spans or bytes, plus the request that passes either.
        """
        batch: list[_SpanItem] = []
        tasks: list[_TaskItem] = []
        load = NO_LOAD
        stopping = urgent = False
        deadline: float | None = None
        while True:
            if item is None:
                stopping = True
            elif isinstance(item, _SpanItem):
                batch.append(item)
                load += item.load
                urgent = urgent or not item.journalled
            elif isinstance(item, _TaskItem):
                tasks.append(item)
                urgent = True
            else:  # _FLUSH
                urgent = True
            if load.spans >= self.max_batch.spans or load.bytes >= self.max_batch.bytes:
                break
            if stopping:
                break
            try:
                item = self._queue.get_nowait()
                continue
            except queue.Empty:
                pass
            if urgent or not batch or load.spans >= self.linger_spans:
                break
            if deadline is None:
                deadline = time.monotonic() + self.linger_s
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                item = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
        return batch, tasks, load, stopping

    def _commit(self, cursor: Any, batch: list[_SpanItem], load: Load) -> None:
        last_seq = batch[-1].seq
        error = self._insert(cursor, batch)
        if error is not None:
            # Acknowledged spans must not be lost: retry those until the database takes
            # them, or until shutdown (then the journal keeps them for the next open).
            # Spans of ``write`` fail their caller, as nobody has been told they are stored.
            for item in batch:
                if item.future is not None and not item.journalled:
                    item.future.set_exception(error)
            batch = [item for item in batch if item.journalled]
            delay = 0.05
            while batch and error is not None and not self._stopping.is_set():
                self._stopping.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                error = self._insert(cursor, batch)
            if error is not None and batch:
                self._release(load)
                # Stopping: the journal holds them, and no later commit may land. One
                # that did moved the journal's mark past them: its records were dropped,
                # and a replay starts after the stored CommitSeq (failure review: 196,608
                # acknowledged spans lost, the exit 0).
                self._abandoned = True
                return
        self._release(load)
        self.database.note_committed(load.bytes)
        self._mark_moved(last_seq)
        if self._journal is not None:
            self._journal.moved(last_seq)
        if self.moved_listener is not None:
            self.moved_listener(last_seq)
        for item in batch:
            if item.future is not None:
                item.future.set_result(item.table.num_rows)

    def _leave(self, batch: list[_SpanItem], load: Load) -> None:
        """Spans queued behind a commit given up at the stop: left in the journal for
        the next open; a ``write`` waiting on one is told it was not stored."""
        self._release(load)
        for item in batch:
            if item.future is not None and not item.future.done():
                item.future.set_exception(WriterClosed("the span writer stopped"))

    def _insert(self, cursor: Any, batch: list[_SpanItem]) -> Exception | None:
        """One commit of the batch's spans; the error if the database refused it."""
        table = one_piece(pa.concat_tables([item.table for item in batch]))
        started = time.perf_counter()
        seq = batch[-1].seq
        try:
            self.database.refuse_if_failed()
            insert_spans(cursor, table, seq, self._insert_sql)
        except Exception as exc:  # a failed commit must not end the thread
            self.database.note_error(exc)
            if self._landed(cursor, seq):
                log.warning("span commit %d reported %r after its spans were stored", seq, exc)
            else:
                # Auto-committed: no roll back. The spans stay queued and in the journal:
                # an error every retry read as spans lost (ops review).
                self._failures.failed(
                    exc, "span commit failed (its spans wait in the span journal and are retried)"
                )
                self.stats.failed_commits += 1
                return exc
        self._failures.succeeded("span commits land again")
        if self.deriver is not None:
            self.deriver.notify()
        self.stats.commits += 1
        self.stats.committed_spans += table.num_rows
        log.debug(
            "committed %d spans in %.1f ms", table.num_rows, (time.perf_counter() - started) * 1e3
        )
        return None

    @property
    def last_error(self) -> str | None:
        """Why the last span commit failed, while commits fail; None once one lands."""
        return self._failures.last

    def _landed(self, cursor: Any, seq: int) -> bool:
        """Whether commit ``seq`` is stored after all (an out-of-memory error in the
        clean-up after it, say); False when that cannot be told either."""
        try:
            self.database.refuse_if_failed()
            rows = cursor.execute(sql_files.query("commit_landed"), {"seq": seq}).fetchall()
        except Exception as exc:
            self.database.note_error(exc)
            return False
        return bool(rows and rows[0][0])

    def _mark_moved(self, seq: int) -> None:
        with self._moved:
            self._moved_seq = max(self._moved_seq, seq)
            for done in [n for n in self._pending_traces if n <= seq]:
                del self._pending_traces[done]
            self._moved.notify_all()

    def _run_task(self, cursor: Any, item: _TaskItem) -> None:
        try:
            self.database.refuse_if_failed()
            item.future.set_result(item.task(cursor))
        except Exception as exc:
            self.database.note_error(exc)  # a task's statements are flowscope's too
            item.future.set_exception(exc)

    def _release(self, load: Load) -> None:
        with self._queued_lock:
            self._queued -= load

    def _fail_pending(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if not isinstance(item, _SpanItem | _TaskItem):
                continue
            if item.future is None or item.future.done():
                continue
            item.future.set_exception(WriterClosed("the span writer stopped"))


__all__ = ["Load", "QueueFull", "SpanWriter", "WriteStats", "WriterClosed"]
