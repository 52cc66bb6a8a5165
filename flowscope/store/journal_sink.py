"""Where the ingest process puts spans: dedup, the span journal, an acknowledgement.

In the ingest process (collector/ingest_process.py) the receivers hand decoded
spans to ``JournalSink.submit`` instead of a ``SpanWriter``: the same bounded
queue check, dedup window and numbering, the same journal append and shared
fsync before the acknowledgement. Each record then goes to ``forward`` (the
server process's writer, which moves it into DuckDB) in number order, and comes
back as ``moved`` once committed, which frees its place in the queue and lets its
journal segment go.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

import pyarrow as pa

from flowscope.store.dedup import RecentSpanKeys, only_new
from flowscope.store.journal import Journal
from flowscope.store.table_size import table_bytes
from flowscope.store.writer import (
    MAX_QUEUED_BYTES,
    NO_LOAD,
    Load,
    QueueFull,
    WriterClosed,
    check_room,
)

log = logging.getLogger(__name__)

# forward(record number, the record's Arrow IPC payload, its spans' weight in bytes)
Forward = Callable[[int, bytes, int], None]

# Spans are refused ("retry later") while the oldest record forwarded has waited this
# long for its commit. Under a full disk, space freed while exporters kept sending
# went to the journal: it grew by what was freed within 2 s, commits never found room
# again, and the server stayed degraded for good. Refused, the room is the writer's.
STALLED_AFTER_S = 10.0


class JournalSink:
    def __init__(
        self,
        journal: Journal,
        forward: Forward,
        *,
        first_seq: int,
        max_queued_spans: int = 200_000,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
        dedup: RecentSpanKeys | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.journal = journal
        self._clock = clock
        self.forward = forward
        self.max_queued = Load(max_queued_spans, max_queued_bytes)
        self.duplicate_spans = 0
        self._dedup = dedup if dedup is not None else RecentSpanKeys()
        self._next_seq = first_seq
        self._lock = threading.Lock()
        self._accepting = True
        # Records forwarded and not yet moved, in number order: (number, spans and bytes).
        self._unmoved: deque[tuple[int, Load]] = deque()
        self._queued = NO_LOAD
        self._oldest_since = 0.0  # when the oldest unmoved record became the oldest
        # Refusing for stalled commits, said in the log once: the writer's errors alone
        # did not say that senders were told to retry, nor when that ended (ops review).
        self._stalled = False

    @property
    def queued_spans(self) -> int:
        return self._queued.spans

    @property
    def queued_bytes(self) -> int:
        return self._queued.bytes

    @property
    def dedup_window_size(self) -> int:
        return len(self._dedup)

    def submit(
        self, table: pa.Table, keys: list[bytes], *, weight: int | None = None
    ) -> Future[int]:
        """Take spans (``weight``: their ``table_bytes``, when known); the future gives
        how many were new, once they are on disk."""
        future: Future[int] = Future()
        rows = table.num_rows
        load = Load(rows, table_bytes(table) if weight is None else weight)
        with self._lock:
            if not self._accepting:
                raise WriterClosed("the span writer is not running")
            if rows == 0:
                future.set_result(0)
                return future
            check_room(self._queued, load, self.max_queued)
            if self._unmoved and (waited := self._clock() - self._oldest_since) >= STALLED_AFTER_S:
                if not self._stalled:
                    self._stalled = True
                    log.warning(
                        "no spans committed for %.0f s: OTLP requests are answered 'retry "
                        "later' until commits land again (the acknowledged spans wait in "
                        "the span journal; the server's log says why commits fail)",
                        waited,
                    )
                raise QueueFull(
                    f"no spans committed for {waited:.0f}s (is the disk full? see the log)"
                )
            table, digests = only_new(self._dedup, table, keys)
            self.duplicate_spans += rows - len(digests)
            if digests:
                self._append(table, digests, load if len(digests) == rows else None)
            # The last record appended: this request's, or when every span was a retry,
            # one as new as the record holding their first copies. Answered at once, a
            # retry sent while that record's fsync ran was acknowledged before the
            # spans were durable (durability review).
            seq = self._next_seq - 1
        self.journal.sync(seq)
        future.set_result(len(digests))
        return future

    def _append(self, table: pa.Table, digests: list[int], load: Load | None) -> None:
        """Under the lock: journal the new spans, remember them, pass them on
        (``load``: theirs, None when duplicates were filtered out of it)."""
        seq = self._next_seq
        payload = self.journal.append(seq, table)  # raises before anything is remembered
        self._next_seq += 1
        self._dedup.remember(digests)
        if not self._unmoved:
            self._oldest_since = self._clock()
        if load is None:
            load = Load(table.num_rows, table_bytes(table))
        self._unmoved.append((seq, load))
        self._queued += load
        # Under the lock, so records reach the writer in number order; the writer may
        # store a record before its fsync ends, which only makes it durable twice.
        self.forward(seq, payload, load.bytes)

    def moved(self, seq: int) -> None:
        """The writer committed every record up to ``seq``."""
        with self._lock:
            while self._unmoved and self._unmoved[0][0] <= seq:
                self._queued -= self._unmoved.popleft()[1]
            self._oldest_since = self._clock()
            if self._stalled:
                self._stalled = False
                log.warning("spans are committed again: OTLP requests are taken again")
        self.journal.moved(seq)

    def close(self) -> None:
        """Refuse further spans (the receivers have stopped)."""
        with self._lock:
            self._accepting = False
