"""DuckDB's block counts, read on a thread of their own so that a checkpoint holding
them does not hold the caller."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from flowscope.store.block_counts import BlockCounts, Blocks
from flowscope.testing.waiting import wait_until

WAIT_S = 0.05


class HeldRead:
    """A read that waits until let go, as ``pragma_database_size()`` waits out a
    checkpoint; counts how often it was started."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.started = 0
        self.answer = (262144, 10, 2)

    def __call__(self) -> tuple[int, int, int]:
        self.started += 1
        self.go.wait(30)
        return self.answer


def _read_after(counts: BlockCounts, done: Callable[[Blocks | None], bool]) -> Blocks:
    """The counts once ``done`` says so (a read let go ends on its own thread)."""
    found: list[Blocks | None] = [None]

    def read() -> bool:
        found[0] = counts.get(30)
        return done(found[0])

    wait_until(read, "the block counts")
    assert found[0] is not None
    return found[0]


def test_a_held_read_gives_the_last_counts_and_is_not_started_twice() -> None:
    read = HeldRead()
    counts = BlockCounts(read)
    assert counts.get(WAIT_S) is None  # nothing read yet, and the caller was not held
    before = time.monotonic()
    assert counts.get(30) is None  # the read still waits: not waited for again
    assert time.monotonic() - before < 10
    assert read.started == 1  # nor started again
    read.go.set()
    blocks = _read_after(counts, lambda b: b is not None)
    assert (blocks.block_size, blocks.used, blocks.free) == (262144, 10, 2)

    # Held again: the counts read before are given, with when they were read.
    read.go.clear()
    read.answer = (262144, 11, 1)
    held = counts.get(WAIT_S)
    assert held == blocks
    read.go.set()
    fresh = _read_after(counts, lambda b: b is not None and b.used == 11)
    assert (fresh.used, fresh.free) == (11, 1)
    assert fresh.read_at >= blocks.read_at


def test_a_failed_read_keeps_the_last_counts_and_the_next_one_tries_again() -> None:
    answers: list[tuple[int, int, int] | Exception] = [(4096, 3, 0), RuntimeError("closing")]

    def read() -> tuple[int, int, int]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    counts = BlockCounts(read)
    first = counts.get(30)
    assert first is not None and first.used == 3
    assert counts.get(30) == first  # the failed read changed nothing
    answers.append((4096, 4, 0))
    again = counts.get(30)
    assert again is not None and again.used == 4


def test_a_read_that_could_not_start_does_not_stop_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Recorded as waiting before its thread started, a read whose thread could not
    start (a process at its thread limit) was waited on by every later call, and the
    counts never came again."""
    counts = BlockCounts(lambda: (4096, 5, 1))

    def no_thread(_thread: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "start", no_thread)
        with pytest.raises(RuntimeError):
            counts.get(WAIT_S)
    blocks = counts.get(30)
    assert blocks is not None and blocks.used == 5
