"""Retention: the only thing that ever deletes spans (DESIGN.md §6)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from flowscope.durations import format_duration
from flowscope.store.derivation import arrived_expired, commit_mark, retention
from flowscope.store.deriver import DeriverStopped
from flowscope.store.writer import SpanWriter, WriterClosed

log = logging.getLogger(__name__)


SWEEP_TIMEOUT_S = 600.0


def delete_older_than(
    writer: SpanWriter, cutoff: datetime, timeout_s: float = SWEEP_TIMEOUT_S
) -> int:
    """Delete spans that started before ``cutoff`` (UTC) and their derived rows, in one
    transaction (``derivation.retention``); returns how many spans.

    It runs where the derived tables are written (``SpanWriter.run_derived_task``):
    run beside a derivation pass, the two deleted the same rows and DuckDB failed one.
    The writer thread goes on committing new spans meanwhile (they are other rows).
    It waits at most ``timeout_s`` (TimeoutError): a sweep that cannot finish says so
    in the log instead of stopping retention without a word.
    """
    at = cutoff.replace(tzinfo=None)
    deleted: int = writer.run_derived_task(lambda cursor: retention(cursor, at)).result(timeout_s)
    return deleted


class RetentionSweeper:
    """Runs ``delete_older_than`` at start and then periodically."""

    def __init__(
        self, writer: SpanWriter, keep: timedelta, interval: timedelta | None = None
    ) -> None:
        self.writer = writer
        self.keep = keep
        self.interval = interval or min(timedelta(minutes=10), max(keep / 10, timedelta(seconds=1)))
        self.deleted = 0
        self.last_sweep: datetime | None = None  # when the last sweep ended (UTC)
        self.last_cutoff: datetime | None = None  # the start it deleted spans before
        self.last_deleted = 0
        # The last sweep's commit mark and cutoff (see ``sweep``).
        self._previous: tuple[int, datetime] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="flowscope-retention", daemon=True
            )
            self._thread.start()

    def shutdown(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(10)

    def sweep(self, at_start: bool = False) -> int:
        cutoff = (datetime.now(UTC) - self.keep).replace(tzinfo=None)
        previous = self._previous

        def task(cursor: Any) -> tuple[int, int, int]:
            # Counted before they go: spans stored since the last sweep that were older
            # than its cutoff were past the retention when they arrived.
            late = arrived_expired(cursor, previous[0], min(previous[1], cutoff)) if previous else 0
            mark = commit_mark(cursor)
            return retention(cursor, cutoff), late, mark

        deleted, late, mark = self.writer.run_derived_task(task).result(SWEEP_TIMEOUT_S)
        self._previous = (mark, cutoff)
        self.deleted += deleted
        self.last_deleted, self.last_cutoff = deleted, cutoff
        self.last_sweep = datetime.now(UTC).replace(tzinfo=None)
        if deleted and at_start:
            # Serving an older file (a recording, a copy) deletes what it holds before
            # anyone looks: say so where the user sees it, with the way to keep it.
            log.warning(
                "retention %s: deleted %d spans that started before %s "
                "(--retention off keeps every span)",
                format_duration(self.keep),
                deleted,
                cutoff.isoformat(timespec="seconds"),
            )
        elif late:
            # Old files imported into a running server were deleted without a word
            # above INFO: the normal sweeps' level.
            log.warning(
                "retention %s: deleted %d spans, %d of them already older than that when "
                "they arrived (old files imported, a replay, or a sender's clock behind); "
                "--retention off keeps every span",
                format_duration(self.keep),
                deleted,
                late,
            )
        elif deleted:
            log.info("retention: deleted %d spans older than %s", deleted, cutoff.isoformat())
        return deleted

    def _run(self) -> None:
        at_start = True
        while not self._stop.is_set():
            try:
                self.sweep(at_start)
            except (WriterClosed, DeriverStopped):  # stopping
                return
            except Exception as exc:
                self.writer.database.note_error(exc)
                log.exception("retention sweep failed")
            at_start = False
            self._stop.wait(self.interval.total_seconds())
