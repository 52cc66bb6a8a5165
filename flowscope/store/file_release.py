"""Deleting big files a few megabytes at a time, off the threads that acknowledge.

On ext4 mounted with ``discard`` (the machine of docs/benchmarks.md; many cloud
images mount so), freeing a file's blocks sends the device discard requests from
the filesystem's journal commit, and every fsync in the meantime waits for that
commit. Unlinking a 256 MB file held other files' fsyncs for up to 73-112 ms, where
truncating it 4 MB at a time with 10 ms pauses held them at most 4.1 ms. Each
OTLP acknowledgement waits for an fsync of the span journal, so the span
journal's spent segments and DuckDB's checkpointed WAL (``store/wal_keeper.py``)
are freed this way, on a thread of their own.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

STEP_BYTES = 4 * 1024 * 1024
PAUSE_S = 0.01


def shrink_away(
    path: Path,
    *,
    step_bytes: int = STEP_BYTES,
    pause_s: float = PAUSE_S,
    hurry: threading.Event | None = None,
) -> int:
    """Truncate ``path`` from its end ``step_bytes`` at a time, then remove it; the
    bytes it held. Once ``hurry`` is set the rest goes at once (shutdown)."""
    hurry = hurry or threading.Event()
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return 0
    try:
        size = freed = os.fstat(fd).st_size
        while size > 0:
            size = max(0, size - step_bytes)
            os.ftruncate(fd, size)
            if size and hurry.wait(pause_s):  # the pause paces the frees
                break
    finally:
        os.close(fd)
    path.unlink(missing_ok=True)
    return freed


@dataclass
class ReleaseStats:
    files: int = 0
    bytes: int = 0
    failures: int = 0


class Releaser:
    """A thread that frees the files handed to ``release``, one after another."""

    def __init__(self, name: str, *, step_bytes: int = STEP_BYTES, pause_s: float = PAUSE_S):
        self.name = name
        self.step_bytes = step_bytes
        self.pause_s = pause_s
        self.stats = ReleaseStats()
        self._queue: queue.SimpleQueue[Path | None] = queue.SimpleQueue()
        self._hurry = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition(self._lock)
        self._waiting = 0

    def release(self, path: Path) -> None:
        """Free ``path`` soon; nothing else may write or delete it meanwhile."""
        # Under the lock close takes: a path is queued ahead of the stop marker, or, once
        # closed, removed here (nothing left to be gentle for).
        with self._lock:
            if self._hurry.is_set():
                path.unlink(missing_ok=True)
                return
            self._waiting += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._queue.put(path)

    def wait_idle(self, timeout: float) -> bool:
        """True once every file handed over so far is freed (within ``timeout`` s)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._waiting == 0, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Free what is left at once and stop the thread. Safe twice."""
        with self._lock:
            self._hurry.set()
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while (path := self._queue.get()) is not None:
            try:
                freed = shrink_away(
                    path, step_bytes=self.step_bytes, pause_s=self.pause_s, hurry=self._hurry
                )
                self.stats.files += 1
                self.stats.bytes += freed
            except Exception as exc:  # a file left behind costs disk, not spans
                self.stats.failures += 1
                log.warning("could not free %s: %s", path, exc)
            with self._idle:
                self._waiting -= 1
                self._idle.notify_all()


__all__ = ["ReleaseStats", "Releaser", "shrink_away"]
