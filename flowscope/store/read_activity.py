"""Analyzer reads in progress, so background work can let them finish first.

On two cores a derivation pass that starts while someone waits for a map or a flow
takes half the machine from that answer. The derive thread asks ``wait_idle`` before
a pass; a read marks itself with ``reading`` (``derivation.read_snapshot``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ReadActivity:
    def __init__(self) -> None:
        self._active = 0
        self._idle = threading.Condition()

    @property
    def active(self) -> int:
        return self._active

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._idle:
            self._active += 1
        try:
            yield
        finally:
            with self._idle:
                self._active -= 1
                if self._active == 0:
                    self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until no read is in progress or ``timeout`` seconds passed; True if idle."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)


__all__ = ["ReadActivity"]
