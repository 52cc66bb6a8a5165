"""The derivation thread: keeps the analyzer's derived tables current beside the writer.

Deriving costs more per span than inserting (it reloads each queued trace whole and
rebuilds its rows), so it runs on its own thread and cursor: a commit never waits
for it, and an acknowledgement never waits for a commit that waits for it. The
writer calls ``notify`` after each commit with new spans; the deriver starts at
most once per ``interval_s`` and, under load, simply finds a longer queue, which
it derives at a lower cost per span. A pass lets analyzer reads in progress finish,
before it starts and between its steps (``_read_pauses``): on two cores a pass takes
half the machine from them.

The writer only appends spans (and retention deletes them); this thread alone writes
the queue, the mark and the derived tables, so their transactions do not conflict:
whatever else changes them (retention's ``retention``) runs here too, between
passes, through ``run_task``. DuckDB fails the later of two transactions that delete
the same row, and a sweep on the writer thread did fail passes that way while
re-counting a minute both touched (docs/benchmarks.md, "Disk under retention").
A failed pass leaves everything as it was and is retried; readers derive whatever is
still pending themselves (``derivation.prepare_reads``), so answers stay exact
whether or not this thread has caught up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from flowscope.logs import RepeatedFailures, is_machine_error
from flowscope.store import derivation
from flowscope.store.database import (
    MERGE_REVIEW_S,
    Database,
    no_derive_pass,
    no_derive_thread,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


class DeriverStopped(Exception):
    """The derive thread is not running, so a task for it cannot run."""


# The longest a pass waits, in all, for analyzer reads in progress (``_read_pauses``).
MAX_YIELD_S = 0.5
# Failed passes in a row after which the queue is searched for the traces that make
# them fail (``_triage``): a transient failure (a conflict, a full disk) passes sooner.
TRIAGE_AFTER = 3
# Failed passes in a row are retried ever later, doubling up to this: a full disk
# logged two errors a second for as long as it lasted.
MAX_RETRY_S = 30.0


class Deriver:
    def __init__(self, database: Database, interval_s: float = 1.0) -> None:
        if interval_s < 0:
            raise ValueError("derive interval must be >= 0")
        self.database = database
        self.interval_s = interval_s
        self.passes = 0
        self.failures = 0
        self.set_aside = 0  # traces triage took out of the queue (``_triage``)
        self._failures = RepeatedFailures(log)  # of passes
        self._triage_failures = RepeatedFailures(log)
        self._due: float | None = None  # monotonic time of the next pass; None: nothing waits
        self._last_start = float("-inf")
        self._retry_at = float("-inf")  # no pass before this, after failed ones
        # Start of the last pass that succeeded: every span committed before it is in
        # the derived tables. None: no pass yet, or the last one failed.
        self._settled_at: float | None = None
        self._last_traces = 0  # traces the last successful pass derived
        self._last_took = 0.0  # seconds it took
        self._stopping = False
        self._held = False  # no pass starts until shutdown (hold)
        self.stuck = False  # shutdown found the thread still in a pass or task
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._tasks: list[tuple[Callable[[Any], Any], Future[Any]]] = []  # under _condition

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = self._held = False
        if derivation.queue_size(self.database.reader()):
            self._due = time.monotonic()  # left queued by a stop that skipped it
        self.database.derived_lag = self.lag
        self.database.derived_pass_traces = self.last_pass_traces
        self._thread = threading.Thread(target=self._run, name="flowscope-derive", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Spans were committed: derive them within ``interval_s``."""
        with self._condition:
            if self._due is None:
                self._due = max(
                    time.monotonic(), self._last_start + self.interval_s, self._retry_at
                )
                self._condition.notify()

    def run_task(self, task: Callable[[Any], T]) -> Future[T]:
        """Run ``task(cursor)`` on this thread before its next pass; when the task
        queued traces, that pass is due at once.

        For whatever else writes the derived tables or the queue: done here, it never
        runs beside a pass (see the module docstring). Tasks asked for before a stop
        still run; ``DeriverStopped`` is raised when the thread is not running, and set
        on any task left waiting if the thread ends some other way.
        """
        future: Future[T] = Future()
        with self._condition:
            if self._thread is None or self._stopping:
                raise DeriverStopped("the derive thread is not running")
            self._tasks.append((task, future))
            self._condition.notify()
        return future

    @property
    def failing(self) -> str | None:
        """Why passes fail, once TRIAGE_AFTER have failed in a row; None otherwise."""
        return self._failures.last if self._failures.in_row >= TRIAGE_AFTER else None

    @property
    def tasks_waiting(self) -> int:
        with self._condition:
            return len(self._tasks)

    def hold(self) -> None:
        """Start no pass until ``shutdown``, which runs the last one: the writer's last
        commits at a stop went on beside passes whose commits checkpointed for ~20 s at
        a time, and outlasted the stop (exit 1) under a flood of mid-sized spans. A pass
        under way goes on."""
        with self._condition:
            self._held = True

    def shutdown(self, timeout: float = 60.0) -> None:
        """Finish a pass that is due (so a clean stop leaves nothing queued) and stop."""
        thread = self._thread
        if thread is None:
            return
        self.database.derived_lag = no_derive_thread
        self.database.derived_pass_traces = no_derive_pass
        with self._condition:
            self._stopping = True
            self._condition.notify()
        thread.join(timeout)
        # Still in a transaction: closing the database under it failed ("connection is
        # busy"). Whoever closes the database asks this first, through the writer.
        self.stuck = thread.is_alive()
        self._thread = None

    def _run(self) -> None:
        cursor = None
        try:
            cursor = self.database.writer_cursor()
            while True:
                with self._condition:
                    while self._due is None and not self._tasks and not self._stopping:
                        self._condition.wait()
                    tasks, self._tasks = self._tasks, []
                if tasks:
                    self._run_tasks(cursor, tasks)
                    continue
                with self._condition:
                    if self._due is None:
                        return  # stopping with nothing queued
                    delay = self._due - time.monotonic()
                    if delay > 0 and not self._stopping:
                        self._condition.wait(delay)
                        continue
                    if self._held and not self._stopping:
                        self._condition.wait()  # until shutdown
                        continue
                    self._due = None
                    stopping = self._stopping
                self._pass(cursor, yield_to_reads=not stopping)
                if stopping:
                    return
        finally:
            # However the thread ends, no task waits for it: those queued fail, and
            # run_task refuses new ones (a sweep would otherwise wait for good).
            with self._condition:
                self._stopping = True
                left, self._tasks = self._tasks, []
            for _task, future in left:
                if future.set_running_or_notify_cancel():
                    future.set_exception(DeriverStopped("the derive thread stopped"))
            if cursor is not None:
                cursor.close()

    def _run_tasks(
        self, cursor: object, tasks: list[tuple[Callable[[Any], Any], Future[Any]]]
    ) -> None:
        for i, (task, future) in enumerate(tasks):
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while it waited
            try:
                self.database.refuse_if_failed()
                future.set_result(task(cursor))
            except Exception as exc:
                self.database.note_error(exc)  # a task's statements are flowscope's too
                future.set_exception(exc)
            except BaseException as exc:
                future.set_exception(exc)
                with self._condition:  # the thread ends: the rest fail in _run
                    self._tasks[:0] = tasks[i + 1 :]
                raise
        # What a task queued (retention queues the traces it cut) is derived next.
        try:
            queued = derivation.queue_size(cursor) > 0
        except Exception:  # a pass will say what is wrong; this thread must not end
            queued = True
        if queued:
            with self._condition:
                if self._due is None:
                    self._due = time.monotonic()

    def lag(self) -> float | None:
        """Seconds since the last successful pass started (what the derived tables
        miss is at most what was committed since), or None if there was none."""
        settled_at = self._settled_at
        return None if settled_at is None else time.monotonic() - settled_at

    def last_pass_traces(self) -> int:
        """How many traces the last successful pass derived (0 before the first)."""
        return self._last_traces

    def _read_pauses(self) -> tuple[Callable[[], None], list[float]]:
        """A pause for the pass's steps, and the seconds it waited in all.

        It waits while analyzer reads are in progress: on two cores a pass takes half
        the machine from them. All of a pass's pauses together last at most
        ``MAX_YIELD_S``, and never so long that the pass would end past settled reads'
        lag bound (they would turn exact, each deriving on the fly): the budget is what
        the bound leaves after twice the last pass's own duration.
        """
        waited = [0.0]
        settled_at = self._settled_at
        if settled_at is None:
            return lambda: None, waited
        since = time.monotonic() - settled_at
        allowance = min(MAX_YIELD_S, derivation.SETTLED_MAX_LAG_S - since - 2 * self._last_took)
        deadline = time.monotonic() + allowance
        activity = self.database.read_activity

        def pause() -> None:
            left = deadline - time.monotonic()
            if left > 0 and activity.active:
                began = time.monotonic()
                activity.wait_idle(left)
                waited[0] += time.monotonic() - began

        return pause, waited

    def _pass(self, cursor: object, yield_to_reads: bool = True) -> None:
        try:
            pause, waited = self._read_pauses() if yield_to_reads else (lambda: None, [0.0])
            pause()  # before the pass starts taking the cores
            started = self._last_start = time.monotonic()
            result = derivation.derive(cursor, self._unless_failed(pause))
            self._last_took = time.monotonic() - started - waited[0]
            self._last_traces = result.traces if result is not None else 0
            self._settled_at = started  # before the count: whoever sees a pass sees its lag
            self.passes += 1
            # Between passes, where a look at the storage map holds up no commit.
            self.database.review_row_group_merges(every_s=MERGE_REVIEW_S)
            self._retry_at = float("-inf")
            self._failures.succeeded("deriving analysis tables again")
        except Exception as exc:  # the queue stays; readers derive it themselves meanwhile
            self.database.note_error(exc)
            self._settled_at = None
            self._last_traces = 0
            self.failures += 1
            in_row = self._failures.in_row + 1
            retry_in = min(MAX_RETRY_S, self.interval_s * 2 ** (in_row - 1))
            self._failures.failed(
                exc, f"deriving analysis tables failed; retrying in {retry_in:.1f}s"
            )
            # A full disk is no trace's fault: searching the queue for one only failed
            # too, and its error said some trace made derivation fail.
            machine = is_machine_error(exc)
            if not machine and in_row >= TRIAGE_AFTER and self._triage(cursor):
                retry_in = 0.0
            with self._condition:
                self._retry_at = time.monotonic() + retry_in
                if not self._stopping:
                    # A commit during the pass set a due time from the old backoff.
                    self._due = max(self._due or 0.0, self._retry_at)

    def _unless_failed(self, pause: Callable[[], None]) -> Callable[[], None]:
        """``pause``, refused once the database has failed: a pass under way when
        another statement failed went on to its COMMIT (diff review)."""

        def checked() -> None:
            self.database.refuse_if_failed()
            pause()

        return checked

    def _triage(self, cursor: object) -> bool:
        """Take the traces that make every pass fail out of the queue (logged, each
        with its error): one trace the rules cannot take stopped the analysis of every
        other, and every read that derives the queue itself, for good (a span near
        the end of TIMESTAMP_NS did). True if any was set aside."""
        try:
            self.database.refuse_if_failed()
            failing = derivation.set_aside_failing(cursor)
        except Exception as exc:
            self.database.note_error(exc)
            self._triage_failures.failed(
                exc, "could not find which queued traces make derivation fail"
            )
            return False
        self._triage_failures.succeeded()
        for trace_id, error in failing:
            log.error(
                "trace %s cannot be derived and is left out of the analysis (its spans "
                "stay stored; it is tried again when more of its spans arrive): %s",
                trace_id,
                error,
            )
        self.set_aside += len(failing)
        if failing:  # the passes start over: their failures were those traces'
            self._failures.succeeded()
        return bool(failing)


__all__ = ["Deriver", "DeriverStopped"]
