"""DuckDB's block counts of the file, read without making the caller wait out a
checkpoint.

``pragma_database_size()`` waits for a checkpoint in progress to end: 11.7 s behind
one that wrote 2 GB of WAL (measured), and under a flood of large spans /healthz,
which reports the counts, went unanswered for 16 s. A ``BlockCounts`` reads them on
a thread of its own, one read at a time; a caller waits for it only so long, then
gets the last counts read, with when they were read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from flowscope.logs import error_line

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Blocks:
    block_size: int
    used: int  # blocks holding data
    free: int  # blocks left free by checkpoints
    read_at: float  # time.monotonic() of the read


class BlockCounts:
    def __init__(self, read: Callable[[], tuple[int, int, int]]) -> None:
        """``read``: (block size, used blocks, free blocks), on the calling thread."""
        self._read = read
        self._lock = threading.Lock()
        self._last: Blocks | None = None
        self._reading: threading.Event | None = None

    def get(self, wait_s: float) -> Blocks | None:
        """Counts read now if they come within ``wait_s``, else the last ones read (None
        before any). A read still waiting on a checkpoint is not started again, nor
        waited for: the caller gets the last counts at once."""
        with self._lock:
            if self._reading is not None:
                return self._last
            done = threading.Event()
            reader = threading.Thread(
                target=self._run, args=(done,), name="flowscope-block-counts", daemon=True
            )
            reader.start()  # before it is recorded: one that failed to start waits on nothing
            self._reading = done
        done.wait(wait_s)
        with self._lock:
            return self._last

    def _run(self, done: threading.Event) -> None:
        try:
            size, used, free = self._read()
            blocks = Blocks(size, used, free, time.monotonic())
            with self._lock:
                self._last = blocks
        except Exception as exc:  # a closing file, say: the caller keeps the last counts
            log.debug("block counts not read: %s", error_line(exc))
        finally:
            with self._lock:
                self._reading = None
            done.set()
