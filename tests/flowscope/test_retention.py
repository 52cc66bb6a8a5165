"""Retention (flowscope/store/retention.py): what a sweep deletes, and what it says."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from flowscope.store.database import Database
from flowscope.store.retention import RetentionSweeper
from flowscope.store.writer import SpanWriter
from flowscope.testing.traces import TraceKit
from flowscope.testing.waiting import wait_until


def _old_trace(kit: TraceKit, start_ms: float) -> None:
    # The kit's times are 2026-01-01 onwards: older than any retention of days.
    root = kit.trace(start_ms=start_ms).span(
        "gateway", "GET /", kind="Server", start_ms=0, duration_ms=5
    )
    root.child("gateway", "SELECT", kind="Client", start_ms=1, duration_ms=2)


def test_the_first_sweep_warns_with_the_way_to_keep_spans(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    kit = TraceKit()
    _old_trace(kit, 0)
    writer = SpanWriter(database, journal=False)
    writer.start()
    try:
        kit.write(database, writer=writer)
        sweeper = RetentionSweeper(writer, timedelta(days=7))
        with caplog.at_level(logging.INFO, logger="flowscope.store.retention"):
            sweeper.start()
            wait_until(lambda: sweeper.deleted == 2, "the first sweep")
            sweeper.shutdown()
            first = [r for r in caplog.records if r.name == "flowscope.store.retention"]
            assert [r.levelno for r in first] == [logging.WARNING]
            message = first[0].getMessage()
            assert "retention 7d: deleted 2 spans" in message
            assert "--retention off" in message
            caplog.clear()
            # Later sweeps delete as configured, quietly.
            written = len(kit.spans)
            _old_trace(kit, 10)
            kit.write(database, kit.spans[written:], writer=writer)
            assert sweeper.sweep() == 2
            assert [r.levelno for r in caplog.records] == [logging.INFO]
    finally:
        writer.shutdown()
    assert database.span_count() == 0


def test_a_sweep_with_nothing_old_says_nothing(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    writer = SpanWriter(database, journal=False)
    writer.start()
    try:
        with caplog.at_level(logging.INFO, logger="flowscope.store.retention"):
            assert RetentionSweeper(writer, timedelta(days=7)).sweep(at_start=True) == 0
    finally:
        writer.shutdown()
    assert not caplog.records
