"""Rates per minute: counts over the part of the window that holds stored data.

A window larger than the data (``--since 30d`` on a day-old database, or "all
time") would otherwise dilute every rate, so the denominator is the window
clipped to [first stored span start, last stored span end]; never less than one
millisecond.
"""

from __future__ import annotations

from flowscope.analyzer.model import Window
from flowscope.store.database import Database

_MIN_MINUTES = 1e-3 / 60  # one millisecond


def clipped_minutes(window: Window, first_ns: int | None, last_ns: int | None) -> float:
    if first_ns is None or last_ns is None:
        return window.minutes
    since = max(window.since_ns, first_ns)
    until = min(window.until_ns, last_ns)
    return max((until - since) / 60e9, _MIN_MINUTES)


def rate_minutes(database: Database, window: Window) -> float:
    """Minutes to divide counts by (inside ``read_snapshot``: reads a_trace_index)."""
    first, last = database.fetch("data_extent")[0]
    return clipped_minutes(window, first, last)
