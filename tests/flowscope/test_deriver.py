"""The derivation thread beside the writer: no conflicts, nothing missed, commits never wait."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from flowscope.analyzer.analysis import Analysis
from flowscope.analyzer.model import Window
from flowscope.store import derivation
from flowscope.store import deriver as deriver_module
from flowscope.store import writer as writer_module
from flowscope.store.database import Database
from flowscope.store.deriver import Deriver
from flowscope.store.writer import SpanWriter, WriterClosed
from flowscope.testing.traces import TraceKit, at_ms
from flowscope.testing.waiting import wait_until
from tests.derivation_faults import failing_for

EVERYTHING = Window(0, at_ms(24 * 3_600_000))


def checkout_kit(traces: int) -> TraceKit:
    kit = TraceKit()
    for i in range(traces):
        root = kit.trace(start_ms=i * 10).span(
            "web", "POST /checkout", kind="Server", start_ms=0, duration_ms=40 + i % 13
        )
        call = root.child("web", "POST", kind="Client", start_ms=2, duration_ms=30)
        call.child(
            "payments",
            "POST /charge",
            kind="Server",
            start_ms=3,
            duration_ms=20 + i % 7,
            status="Error" if i % 9 == 0 else "Unset",
        )
        root.child(
            "web",
            "SELECT",
            kind="Client",
            start_ms=35,
            duration_ms=3,
            attributes={"db.system": "postgresql"},
        )
    return kit


def answers(database: Database) -> dict[str, Any]:
    analysis = Analysis(database)
    flows = analysis.flows(EVERYTHING)
    return {
        "map": analysis.service_map(EVERYTHING).as_dict(),
        "flows": [f.as_dict() for f in flows],
        "steps": [analysis.flow(f.id, EVERYTHING).as_dict() for f in flows],
    }


def queued(database: Database) -> int:
    return int(database.fetch("derive_queue_size")[0][0])


def taken_in(database: Database) -> bool:
    """Has a derivation pass taken in every committed span?"""
    rows = database.reader().execute(
        "SELECT (SELECT max(DerivedSeq) FROM derive_state)"
        " >= (SELECT coalesce(max(CommitSeq), 0) FROM otel_traces)"
    )
    return bool(rows.fetchall()[0][0])


def test_deriving_while_spans_are_committed(tmp_path: Path) -> None:
    """Many small commits, each span of a trace in a different one, derived continuously."""
    kit = checkout_kit(300)
    expected_db = Database(tmp_path / "expected.duckdb")
    kit.write(expected_db)
    expected = answers(expected_db)
    expected_db.close()

    database = Database(tmp_path / "busy.duckdb")
    writer = SpanWriter(database, derive_interval_s=0.0)
    writer.start()
    assert writer.deriver is not None
    # Spans by position in their trace: every trace is committed in four parts.
    parts = [kit.spans[offset::4] for offset in range(4)]
    chunks = [part[i : i + 25] for part in parts for i in range(0, len(part), 25)]
    errors: list[BaseException] = []

    def send(mine: list[list[Any]]) -> None:
        try:
            for chunk in mine:
                kit.write(database, chunk, writer=writer)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def send_all(some: list[list[list[Any]]]) -> None:
        threads = [threading.Thread(target=send, args=(some[k::3],)) for k in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # The first two parts of every trace, then a pass over them, then the rest: every
    # trace is derived half-written and derived again as its spans arrive. (Waiting for
    # the pass, rather than hoping one falls inside the writes: on a busy machine the
    # writes once ended before a second pass.)
    half = len(chunks) // 2
    send_all(chunks[:half])
    wait_until(lambda: taken_in(database), "a pass over the first half of each trace")
    passes_between = writer.deriver.passes
    send_all(chunks[half:])
    writer.shutdown()
    assert errors == []
    assert writer.deriver.failures == 0
    assert passes_between >= 1 and writer.deriver.passes > passes_between
    assert queued(database) == 0, "a clean stop derives everything queued"
    assert answers(database) == expected
    database.close()


def test_commits_do_not_wait_for_derivation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = Database(tmp_path / "slow.duckdb")
    started, release = threading.Event(), threading.Event()
    real_derive = derivation.derive

    def slow_derive(cursor: Any, *pause: Any) -> Any:
        started.set()
        release.wait(30)
        return real_derive(cursor, *pause)

    monkeypatch.setattr(derivation, "derive", slow_derive)
    writer = SpanWriter(database, derive_interval_s=0.0)
    writer.start()
    kit = checkout_kit(20)
    try:
        kit.write(database, kit.spans[:40], writer=writer)
        assert started.wait(30)
        # Derivation is stuck; commits still go through at once.
        began = time.monotonic()
        assert kit.write(database, kit.spans[40:], writer=writer) == len(kit.spans) - 40
        assert time.monotonic() - began < 10
        assert queued(database) > 0
    finally:
        release.set()
        writer.shutdown()
    assert queued(database) == 0
    database.close()


def test_at_a_stop_the_last_commits_go_before_any_new_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Passes went on beside the writer's last commits at a stop, and a pass's commit
    (a checkpoint) held those up ~20 s at a time: under a flood of mid-sized spans the
    stop outlasted its 30 s and exited 1 (review)."""
    from flowscope.collector.flatten import flatten_request
    from flowscope.testing.otlp import realistic_request

    database = Database(tmp_path / "stop.duckdb")
    events: list[str] = []
    real_derive, real_insert = derivation.derive, writer_module.insert_spans

    def logged_derive(cursor: Any, *args: Any) -> Any:
        events.append("derive")
        return real_derive(cursor, *args)

    def logged_insert(*args: Any) -> None:
        real_insert(*args)
        events.append("insert")

    monkeypatch.setattr(derivation, "derive", logged_derive)
    monkeypatch.setattr(writer_module, "insert_spans", logged_insert)
    batches = [flatten_request(realistic_request(2, seed=seed)).batch for seed in range(6)]
    writer = SpanWriter(database, derive_interval_s=0.0, max_batch_spans=batches[0].spans)
    writer.start()
    held, release = threading.Event(), threading.Event()

    def hold(_cursor: Any) -> None:
        held.set()
        release.wait(30)

    writer.run_task(hold)
    assert held.wait(30)
    for batch in batches:  # six commits wait behind the task
        writer.submit(batch.table, batch.keys, durable=False)
    stopping = threading.Thread(target=writer.shutdown)
    stopping.start()
    wait_until(lambda: writer.deriver is not None and writer.deriver._held, "the hold")
    release.set()
    stopping.join(60)
    assert events == ["insert"] * 6 + ["derive"]
    assert queued(database) == 0  # the last pass derived them all
    database.close()


def test_a_failed_pass_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = Database(tmp_path / "retry.duckdb")
    real_derive = derivation.derive
    calls: list[int] = []

    def flaky(cursor: Any, *pause: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("transient")
        return real_derive(cursor, *pause)

    monkeypatch.setattr(derivation, "derive", flaky)
    writer = SpanWriter(database, derive_interval_s=0.05)
    writer.start()
    kit = checkout_kit(5)
    kit.write(database, writer=writer)
    wait_until(lambda: queued(database) == 0, "the retried pass")
    writer.shutdown()
    assert writer.deriver is not None and writer.deriver.failures == 1
    assert queued(database) == 0
    database.close()


def failing_passes(monkeypatch: pytest.MonkeyPatch, times: int, error: Exception) -> None:
    """Derivation passes raise ``error`` ``times`` times, then run as ever."""
    real_derive = derivation.derive
    left = [times]

    def failing(cursor: Any, *args: Any, **kwargs: Any) -> Any:
        if left[0] > 0:
            left[0] -= 1
            raise error
        return real_derive(cursor, *args, **kwargs)

    monkeypatch.setattr(derivation, "derive", failing)


def test_the_same_failure_again_is_logged_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A full disk failed every pass, and each logged a traceback: ~40 in 20 s. (Now
    none: a full disk is no error of flowscope's, flowscope/logs.py.)"""
    import duckdb

    database = Database(tmp_path / "full.duckdb")
    failing_passes(
        monkeypatch, 6, duckdb.IOException('Could not write file "x.wal": No space left on device')
    )
    writer = SpanWriter(database, derive_interval_s=0.01)
    with caplog.at_level(logging.WARNING, logger="flowscope.store.deriver"):
        writer.start()
        checkout_kit(3).write(database, writer=writer)
        wait_until(lambda: queued(database) == 0, "a pass once the disk has room")
        writer.shutdown()
    logged = [r for r in caplog.records if r.name == "flowscope.store.deriver"]
    # Its end is said: errors are logged by default, and they just stopped.
    assert logged[-1].levelno == logging.WARNING
    assert logged[-1].getMessage() == "deriving analysis tables again, after 6 failed"
    records = logged[:-1]
    # One line a failed pass, and no search of the queue for a trace to blame: a full
    # disk logged that search's failure too, saying some trace made derivation fail.
    assert len(records) == 6, [r.getMessage() for r in records]
    assert not any(r.exc_info for r in records)
    assert "No space left on device" in records[0].getMessage()
    assert all("(again: " in r.getMessage() for r in records[1:])
    assert all("(again: Could not write file" in r.getMessage() for r in records[1:])
    database.close()


def test_failed_passes_are_retried_ever_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Each failed pass in a row doubles the wait before the next, up to MAX_RETRY_S:
    a full disk logged two errors a second for as long as it lasted."""
    from flowscope.store import deriver as deriver_module

    monkeypatch.setattr(deriver_module, "MAX_RETRY_S", 0.8)
    database = Database(tmp_path / "slow.duckdb")
    failing_passes(monkeypatch, 6, RuntimeError("IO Error: No space left on device"))
    writer = SpanWriter(database, derive_interval_s=0.1)
    with caplog.at_level(logging.ERROR, logger="flowscope.store.deriver"):
        writer.start()
        checkout_kit(2).write(database, writer=writer)
        wait_until(lambda: queued(database) == 0, "a pass after the failures")
        writer.shutdown()
    waits = [r.getMessage().split("retrying in ")[1][:3] for r in caplog.records]
    assert waits == ["0.1", "0.2", "0.4", "0.8", "0.8", "0.8"]
    database.close()


def test_queued_traces_left_by_a_stop_are_derived_at_start(tmp_path: Path) -> None:
    database = Database(tmp_path / "left.duckdb")
    skipping = SpanWriter(database, derive_interval_s=None)
    skipping.start()
    kit = checkout_kit(5)
    kit.write(database, writer=skipping)
    skipping.shutdown()
    assert queued(database) > 0
    deriver = Deriver(database, interval_s=1.0)
    deriver.start()
    deriver.shutdown()
    assert deriver.passes == 1
    assert queued(database) == 0
    database.close()


def test_negative_interval_is_refused(database: Database) -> None:
    with pytest.raises(ValueError, match="interval"):
        Deriver(database, interval_s=-1)


def test_lag_is_the_age_of_the_last_successful_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = Database(tmp_path / "lag.duckdb")
    assert database.derived_lag() is None, "no derive thread keeps the tables"
    real_derive = derivation.derive
    failing = threading.Event()

    def maybe_failing(cursor: Any, *pause: Any) -> Any:
        if failing.is_set():
            raise RuntimeError("transient")
        return real_derive(cursor, *pause)

    monkeypatch.setattr(derivation, "derive", maybe_failing)
    writer = SpanWriter(database, derive_interval_s=0.05)
    writer.start()
    deriver = writer.deriver
    assert deriver is not None
    assert database.derived_lag() is None, "no pass yet"
    assert database.derived_pass_traces() == 0
    kit = checkout_kit(6)
    kit.write(database, kit.spans[:12], writer=writer)
    wait_until(lambda: deriver.passes >= 1, "a pass")
    first = database.derived_lag()
    assert first is not None and 0 <= first < 30
    derived = {span.trace_id for span in kit.spans[:12]}
    assert 1 <= database.derived_pass_traces() <= len(derived)
    later = database.derived_lag()
    assert later is not None and later >= first
    failing.set()
    kit.write(database, kit.spans[12:], writer=writer)
    wait_until(lambda: deriver.failures >= 1, "a failed pass")
    assert database.derived_lag() is None, "after a failure only exact reads"
    assert database.derived_pass_traces() == 0
    failing.clear()
    wait_until(lambda: queued(database) == 0, "the retry")
    wait_until(lambda: database.derived_lag() is not None, "the lag after the retry")
    writer.shutdown()
    assert database.derived_lag() is None, "the thread stopped"
    assert database.derived_pass_traces() == 0
    database.close()


def first_pass_done(database: Database) -> tuple[SpanWriter, Deriver, TraceKit]:
    """A writer with a derive thread that has derived the first 12 spans of a kit."""
    writer = SpanWriter(database, derive_interval_s=0.05)
    writer.start()
    deriver = writer.deriver
    assert deriver is not None
    kit = checkout_kit(6)
    kit.write(database, kit.spans[:12], writer=writer)
    wait_until(lambda: deriver.passes >= 1, "a first pass")
    return writer, deriver, kit


def test_a_due_pass_lets_reads_in_progress_finish_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(derivation, "SETTLED_MAX_LAG_S", 600.0)  # budget for any machine
    monkeypatch.setattr(deriver_module, "MAX_YIELD_S", 600.0)
    database = Database(tmp_path / "yield.duckdb")
    activity = database.read_activity
    yielding = threading.Event()
    real_wait = activity.wait_idle

    def observed_wait(timeout: float) -> bool:
        yielding.set()
        return real_wait(timeout)

    monkeypatch.setattr(activity, "wait_idle", observed_wait)
    writer, deriver, kit = first_pass_done(database)
    assert not yielding.is_set(), "nothing was reading"
    with activity.reading():
        passes = deriver.passes
        kit.write(database, kit.spans[12:], writer=writer)
        assert yielding.wait(30), "the due pass waits for the read"
        assert deriver.passes == passes and queued(database) > 0
    wait_until(lambda: deriver.passes > passes and queued(database) == 0, "the pass after it")
    writer.shutdown()
    database.close()


def test_a_pass_does_not_wait_past_the_settled_lag_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waiting longer would leave settled reads older than their bound: they would all
    turn exact, each deriving on the fly, costing the reads more than the pass does."""
    monkeypatch.setattr(derivation, "SETTLED_MAX_LAG_S", 0.0)
    database = Database(tmp_path / "bound.duckdb")
    writer, deriver, kit = first_pass_done(database)
    with database.read_activity.reading():
        passes = deriver.passes
        kit.write(database, kit.spans[12:], writer=writer)
        wait_until(lambda: deriver.passes > passes, "a pass while the read goes on")
    writer.shutdown()
    database.close()


def test_tasks_run_on_the_derive_thread_and_a_failing_one_stops_nothing(
    database: Database,
) -> None:
    writer = SpanWriter(database, journal=False)
    writer.start()
    assert writer.deriver is not None
    try:

        def where(cursor: Any) -> str:
            return threading.current_thread().name

        def failing(cursor: Any) -> None:
            cursor.execute("SELECT * FROM no_such_table")

        assert writer.run_derived_task(where).result(30) == "flowscope-derive"
        with pytest.raises(Exception, match="no_such_table"):
            writer.run_derived_task(failing).result(30)
        assert writer.run_derived_task(where).result(30) == "flowscope-derive"
        # Spans committed after a task are derived as ever.
        checkout_kit(3).write(database, writer=writer)
        wait_until(lambda: queued(database) == 0 and writer.deriver.passes > 0, "a pass")
    finally:
        writer.shutdown()
    assert [f.traces for f in Analysis(database).flows(EVERYTHING)] == [3]
    with pytest.raises(WriterClosed):
        writer.run_derived_task(where)


def test_without_a_derive_thread_tasks_run_on_the_writer_thread(database: Database) -> None:
    writer = SpanWriter(database, journal=False, derive_interval_s=None)
    writer.start()
    try:
        name = writer.run_derived_task(lambda cursor: threading.current_thread().name)
        assert name.result(30) == "flowscope-writer"
    finally:
        writer.shutdown()


def test_tasks_asked_for_before_a_stop_run_and_one_asked_for_after_is_refused(
    database: Database,
) -> None:
    deriver = Deriver(database, interval_s=0.0)
    deriver.start()
    release = threading.Event()
    first = deriver.run_task(lambda cursor: release.wait(30))
    wait_until(lambda: deriver.tasks_waiting == 0, "the first task running")
    second = deriver.run_task(lambda cursor: "ran")  # waits behind the first
    stopper = threading.Thread(target=deriver.shutdown)
    stopper.start()
    release.set()
    stopper.join(30)
    assert first.result(30) is True
    assert second.result(30) == "ran"
    with pytest.raises(deriver_module.DeriverStopped):
        deriver.run_task(lambda cursor: None)


def test_a_writer_started_again_after_a_stop_derives_again(database: Database) -> None:
    """A stop holds the derive thread's passes (Deriver.hold); started again, it must
    derive as before."""
    writer = SpanWriter(database, derive_interval_s=0.0)
    writer.start()
    writer.shutdown()
    writer.start()
    try:
        kit = checkout_kit(3)
        kit.write(database, writer=writer)
        wait_until(lambda: queued(database) == 0 and taken_in(database), "a pass")
    finally:
        writer.shutdown()


class _Fatal(BaseException):
    """What no task catches: it ends the thread."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_derive_thread_that_ends_fails_the_tasks_waiting_and_refuses_more(
    database: Database,
) -> None:
    deriver = Deriver(database, interval_s=0.0)
    deriver.start()
    release = threading.Event()

    def fatal(cursor: Any) -> None:
        release.wait(30)
        raise _Fatal

    first = deriver.run_task(fatal)
    wait_until(lambda: deriver.tasks_waiting == 0, "the first task running")
    second = deriver.run_task(lambda cursor: "never")
    release.set()
    with pytest.raises(_Fatal):
        first.result(30)
    with pytest.raises(deriver_module.DeriverStopped):
        second.result(30)  # instead of waiting for good
    with pytest.raises(deriver_module.DeriverStopped):
        deriver.run_task(lambda cursor: None)
    deriver.shutdown()


def test_a_span_at_the_end_of_time_does_not_stop_derivation(tmp_path: Path) -> None:
    """A span within 10 s of TIMESTAMP_NS's last value (ingest accepts it) overflowed
    the clustering of traces to load: every pass failed, so no trace was derived again
    and flows, map and traces answered errors, across restarts."""
    database = Database(tmp_path / "edge.duckdb")
    kit = checkout_kit(3)
    root = kit.trace(start_ms=-50).span(  # before the others: their PreviousEnd
        "web", "GET /clock", kind="Server", start_ms=0, duration_ms=5
    )
    late = root.child("web", "late clock", kind="Internal", start_ms=1, duration_ms=0)
    spec = next(s for s in kit.spans if s.span_id == late.span_id)
    spec.start_ns = 2**63 - 2
    kit.write(database)
    assert queued(database) == 0
    flows = {f["name"]: f["traces"] for f in answers(database)["flows"]}
    assert flows == {"web POST /checkout": 3, "web GET /clock": 1}
    database.close()


def test_a_trace_that_fails_every_pass_is_set_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One trace the rules could not take failed every pass, and so stopped the
    analysis of every other trace (and every read, which derives the queue itself)."""
    kit = checkout_kit(6)
    poison = kit.spans[0].trace_id
    failing_for(monkeypatch, poison)
    database = Database(tmp_path / "aside.duckdb")
    writer = SpanWriter(database, derive_interval_s=0.05)
    writer.start()
    kit.write(database, writer=writer)
    assert writer.deriver is not None
    wait_until(lambda: queued(database) == 0 and taken_in(database), "the others derived")
    writer.shutdown()
    assert writer.deriver.set_aside == 1 and writer.deriver.failures == 3
    assert f"trace {poison} cannot be derived" in caplog.text
    assert "the rules cannot take this trace" in caplog.text
    flows = answers(database)["flows"]
    assert [(f["name"], f["traces"]) for f in flows] == [("web POST /checkout", 5)]
    assert database.span_count() == len(kit.spans)  # its spans stay stored
    database.close()


@pytest.mark.parametrize(
    "failure",
    [
        duckdb.IOException("No space left on device"),
        # Python's MemoryError in an Arrow stream DuckDB read, under another type (cap
        # review): triage took it for the traces'.
        duckdb.InvalidInputException(
            "Invalid Input Error: exporting a stream from the object registered as "
            "'dv_traces_in' failed: MemoryError"
        ),
    ],
    ids=["full-disk", "memory-error"],
)
def test_a_failure_that_is_not_the_datas_sets_nothing_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    """A full disk fails every half of the queue: no trace is to blame."""
    from flowscope.analyzer import derived_rows

    def full(spans: Any, ids: dict[int, str]) -> Any:
        raise failure

    monkeypatch.setattr(derived_rows, "derive_rows", full)
    database = Database(tmp_path / "full.duckdb")
    writer = SpanWriter(database, derive_interval_s=0.05)
    writer.start()
    checkout_kit(4).write(database, writer=writer)
    assert writer.deriver is not None
    deriver = writer.deriver
    wait_until(lambda: deriver.failures >= 5, "failed passes past the triage")
    failing = deriver.failing
    writer.shutdown()
    assert deriver.set_aside == 0 and queued(database) > 0
    assert failing is not None and str(failure).split(":")[0] in failing
    database.close()


def test_a_trace_failing_through_a_linked_one_is_not_set_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Deriving a producer's trace again loads the consumers linked to it: one that
    failed made the producer's trace look underivable, and both were set aside."""
    kit = TraceKit()
    producer = kit.trace(start_ms=0).span(
        "orders", "publish", kind="Producer", start_ms=0, duration_ms=2
    )
    consumer = kit.trace(start_ms=5).span(
        "billing", "process", kind="Consumer", start_ms=0, duration_ms=9, links=[producer.link()]
    )
    database = Database(tmp_path / "linked.duckdb")
    kit.write(database)  # both derived: the link is known
    failing_for(monkeypatch, consumer.trace_id)
    later = [
        producer.child("orders", "late", start_ms=1, duration_ms=1).spec,
        consumer.child("billing", "bad", start_ms=1, duration_ms=1).spec,
    ]
    writer = SpanWriter(database, derive_interval_s=0.05)
    writer.start()
    kit.write(database, later, writer=writer)
    assert writer.deriver is not None
    wait_until(lambda: queued(database) == 0 and taken_in(database), "triage")
    writer.shutdown()
    assert writer.deriver.set_aside == 1
    assert f"trace {consumer.trace_id} cannot be derived" in caplog.text
    assert f"trace {producer.trace_id} cannot" not in caplog.text
    spans = Analysis(database).trace(producer.trace_id).spans
    assert sorted(s.operation for s in spans) == ["late", "publish"]  # derived again
    database.close()


def test_reads_answer_from_stored_rows_when_what_waits_cannot_be_derived(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads derive the queue themselves: with a trace the rules cannot take queued
    (before the derive thread sets it aside, or with none), every read failed."""
    database = Database(tmp_path / "stored.duckdb")
    checkout_kit(4).write(database)  # derived and stored
    kit = TraceKit()
    poison = kit.trace(start_ms=100, trace_id="ab" * 16).span(
        "web", "GET /odd", kind="Server", start_ms=0, duration_ms=5, span_id="cd" * 8
    )
    failing_for(monkeypatch, poison.trace_id)
    queuing = SpanWriter(database, derive_interval_s=None)  # no pass: it stays queued
    queuing.start()
    kit.write(database, writer=queuing)
    queuing.shutdown()
    assert queued(database) > 0 or not taken_in(database)  # waits for derivation
    flows = answers(database)["flows"]
    assert [(f["name"], f["traces"]) for f in flows] == [("web POST /checkout", 4)]
    database.close()


def test_the_backoff_holds_while_spans_keep_arriving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit during a failing pass set the next pass from the previous backoff:
    under traffic, passes came at once after "retrying in 0.1s" and 8.7 s after
    "retrying in 25.6s"."""
    import threading
    import time

    from flowscope.store import deriver as deriver_module

    monkeypatch.setattr(deriver_module, "MAX_RETRY_S", 0.8)
    database = Database(tmp_path / "busy.duckdb")
    attempts: list[float] = []
    real_derive = derivation.derive

    committed = threading.Event()

    def failing(cursor: Any, *args: Any, **kwargs: Any) -> Any:
        attempts.append(time.monotonic())
        if len(attempts) <= 5:
            committed.clear()
            committed.wait(5)  # a commit lands while this pass runs
            raise RuntimeError("IO Error: No space left on device")
        return real_derive(cursor, *args, **kwargs)

    monkeypatch.setattr(derivation, "derive", failing)
    writer = SpanWriter(database, derive_interval_s=0.1)
    writer.start()
    stop = threading.Event()

    def traffic() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            kit = TraceKit()
            kit.trace(start_ms=n, trace_id=f"{n:032x}").span(
                "web", "GET", kind="Server", start_ms=0, duration_ms=1
            )
            kit.write(database, writer=writer)
            committed.set()
            stop.wait(0.02)

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        wait_until(lambda: len(attempts) > 5, "a pass after the failures")
    finally:
        stop.set()
        sender.join()
        writer.shutdown()
    # From the start of each failed pass to the next: at least the backoff it logged.
    gaps = [b - a for a, b in zip(attempts, attempts[1:6], strict=False)]
    for gap, wanted in zip(gaps, [0.1, 0.2, 0.4, 0.8, 0.8], strict=True):
        assert gap >= wanted * 0.9, gaps
    database.close()


def test_a_pass_under_way_when_the_database_fails_does_not_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB's invalidation is off (flowscope keeps it: ``Database.refuse_if_failed``),
    and a pass that started before another statement failed went on to its COMMIT."""
    database = Database(tmp_path / "failing.duckdb")
    skipping = SpanWriter(database, derive_interval_s=None)
    skipping.start()
    checkout_kit(3).write(database, writer=skipping)
    skipping.shutdown()
    from flowscope.analyzer import derived_rows

    real_rows = derived_rows.derive_rows

    def failing_meanwhile(*args: Any, **kwargs: Any) -> Any:
        database.note_error(duckdb.FatalException("a statement elsewhere failed"))
        return real_rows(*args, **kwargs)

    monkeypatch.setattr(derived_rows, "derive_rows", failing_meanwhile)
    deriver = Deriver(database, interval_s=1.0)
    deriver.start()
    deriver.shutdown()
    assert deriver.passes == 0 and deriver.failures >= 1
    monkeypatch.setattr(database, "failed", None)  # to read what is stored
    assert queued(database) > 0
    database.close()
