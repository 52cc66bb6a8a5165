"""Reads in progress, as the derive thread sees them."""

from __future__ import annotations

import threading

from flowscope.store.read_activity import ReadActivity


def test_idle_without_reads_and_busy_while_one_runs() -> None:
    activity = ReadActivity()
    assert activity.wait_idle(0) and activity.active == 0
    with activity.reading():
        with activity.reading():
            assert activity.active == 2
        assert not activity.wait_idle(0.01)
    assert activity.active == 0 and activity.wait_idle(0)


def test_a_waiter_wakes_when_the_last_read_ends() -> None:
    activity = ReadActivity()
    entered, results = threading.Event(), []
    release = threading.Event()

    def read() -> None:
        with activity.reading():
            entered.set()
            release.wait(30)

    reader = threading.Thread(target=read)
    reader.start()
    assert entered.wait(30)
    waiter = threading.Thread(target=lambda: results.append(activity.wait_idle(60)))
    waiter.start()
    release.set()
    waiter.join(60)
    reader.join(60)
    assert results == [True]


def test_a_read_that_raises_still_ends() -> None:
    activity = ReadActivity()
    try:
        with activity.reading():
            raise ValueError("query failed")
    except ValueError:
        pass
    assert activity.active == 0
