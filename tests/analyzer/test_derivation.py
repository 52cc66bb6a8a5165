"""Derived tables: same answers whether derivation ran or not, in any arrival order, in
read-only files, after retention, and for spans sent over real OTLP."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowscope.analyzer.analysis import Analysis
from flowscope.analyzer.model import Window
from flowscope.analyzer.window import format_ns
from flowscope.store import database as database_module
from flowscope.store import derivation
from flowscope.store.database import Database
from flowscope.store.retention import delete_older_than
from flowscope.store.wal_keeper import wal_path
from flowscope.store.writer import SpanWriter
from flowscope.testing.server import Endpoints, server_in_process
from flowscope.testing.traces import TraceKit, at_ms
from flowscope.testing.waiting import wait_until
from tests.derivation_faults import failing_for

from .conftest import HOUR
from .test_service_map import KAFKA
from .test_steps import two_orders


def mixed_kit() -> TraceKit:
    """Flows, rpc/virtual/async edges, a link across traces, an orphan."""
    kit = two_orders()
    producer_trace = kit.trace(start_ms=120_000)
    root = producer_trace.span("orders", "POST /fund", kind="Server", start_ms=0, duration_ms=30)
    producer = root.child(
        "orders", "publish", kind="Producer", start_ms=5, duration_ms=2, attributes=KAFKA
    )
    kit.trace(start_ms=120_010).span(
        "billing", "process", kind="Consumer", start_ms=0, duration_ms=9, links=[producer.link()]
    )
    kit.trace(start_ms=120_020).span(
        "orders", "GET", kind="Server", start_ms=0, duration_ms=4, parent="00000000deadbeef"
    )
    return kit


def answers(analysis: Analysis) -> dict[str, Any]:
    flows = analysis.flows(HOUR)
    first = sorted({t.trace_id for t in analysis.traces(HOUR, limit=100)})
    return {
        "map": analysis.service_map(HOUR).as_dict(),
        "flows": [f.as_dict() for f in flows],
        "flows_by": [f.as_dict() for f in analysis.flows(HOUR, by="customer.tier")],
        "steps": [analysis.flow(f.id, HOUR).as_dict() for f in flows],
        "traces": [t.as_dict() for t in analysis.traces(HOUR, limit=100)],
        "views": [analysis.trace(t, HOUR).as_dict() for t in first],
        # Without a baseline only the asked trace is derived on the fly.
        "lone_views": [analysis.trace(t).as_dict() for t in first],
    }


def write(
    database: Database, kit: TraceKit, *, derive: bool, batches: list[list[Any]] | None = None
) -> None:
    writer = SpanWriter(database, derive_interval_s=1.0 if derive else None)
    writer.start()
    try:
        for batch in batches or [kit.spans]:
            kit.write(database, batch, writer=writer)
    finally:
        writer.shutdown()


def queued(database: Database) -> int:
    return int(database.fetch("derive_queue_size")[0][0])


def assert_edge_minutes_agree(database: Database) -> None:
    """edge_minutes holds one row per (minute, edge, bucket), counting edge_calls."""
    reader = database.reader()
    stored = reader.execute(
        "SELECT Minute, EdgeKey, Bucket, Calls, Errors FROM edge_minutes ORDER BY ALL"
    ).fetchall()
    counted = reader.execute(
        "SELECT date_trunc('minute', Ts), EdgeKey, Bucket, count(*),"
        " count(*) FILTER (WHERE IsError) FROM edge_calls GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert stored == counted


def test_answers_are_the_same_before_and_after_derivation(database: Database) -> None:
    kit = mixed_kit()
    write(database, kit, derive=False)
    assert queued(database) > 0
    analysis = Analysis(database)
    before = answers(analysis)
    assert before["map"]["edges"] and before["steps"]
    writer = SpanWriter(database, derive_interval_s=None)  # derive by hand, below
    writer.start()
    result = writer.run_task(derivation.derive).result()
    writer.shutdown()
    assert result is not None and result.traces == len({s.trace_id for s in kit.spans})
    assert queued(database) == 0
    assert answers(analysis) == before
    assert_edge_minutes_agree(database)


def test_a_pass_pauses_between_its_steps_and_reads_answer_meanwhile(
    database: Database,
) -> None:
    """The derive thread waits for analyzer reads at these pauses with the pass's
    transaction open: the reads must neither block on it nor see half of it."""
    kit = mixed_kit()
    write(database, kit, derive=False)
    before = answers(Analysis(database))
    during: list[dict[str, Any] | None] = []

    def pause() -> None:
        got: list[dict[str, Any]] = []
        reader = threading.Thread(target=lambda: got.append(answers(Analysis(database))))
        reader.start()
        reader.join(120)
        during.append(got[0] if got else None)

    writer = SpanWriter(database, derive_interval_s=None)  # derive by hand, below
    writer.start()
    result = writer.run_task(lambda cursor: derivation.derive(cursor, pause)).result()
    writer.shutdown()
    assert result is not None
    assert len(during) >= 5
    assert all(answer == before for answer in during)
    assert queued(database) == 0 and answers(Analysis(database)) == before


def test_a_trace_lookup_derives_only_that_trace(database: Database) -> None:
    kit = mixed_kit()
    write(database, kit, derive=False)
    pending = queued(database)
    assert pending > 2
    trace_id = kit.spans[0].trace_id
    with derivation.read_snapshot(database, only_trace=trace_id) as derived:
        assert derived == 1
    with derivation.read_snapshot(database, only_trace="0" * 32) as derived:
        assert derived == 0
    with derivation.read_snapshot(database) as derived:
        assert derived == pending


def test_arrival_order_does_not_matter(tmp_path: Path) -> None:
    kit = mixed_kit()
    at_once = Database(tmp_path / "at_once.duckdb")
    write(at_once, kit, derive=True)
    expected = answers(Analysis(at_once))
    at_once.close()
    # Leaves first, then their parents, one level per commit, derived in between.
    depth: dict[str, int] = {}
    by_id = {s.span_id: s for s in kit.spans}
    for span in kit.spans:
        level, at = 0, span
        while at.parent_span_id in by_id:
            level, at = level + 1, by_id[at.parent_span_id]
        depth[span.span_id] = level
    levels = sorted(set(depth.values()), reverse=True)
    batches = [[s for s in kit.spans if depth[s.span_id] == level] for level in levels]
    piecemeal = Database(tmp_path / "piecemeal.duckdb")
    for batch in batches:
        write(piecemeal, kit, derive=True, batches=[batch])
    assert queued(piecemeal) == 0
    assert answers(Analysis(piecemeal)) == expected
    # Calls counted when a trace was first derived were taken back when it was again.
    assert_edge_minutes_agree(piecemeal)
    piecemeal.close()


def test_read_only_file_with_pending_derivation(db_path: Path) -> None:
    kit = mixed_kit()
    database = Database(db_path)
    write(database, kit, derive=True)
    expected = answers(Analysis(database))
    database.close()
    pending = Database(db_path.with_name("pending.duckdb"))
    write(pending, kit, derive=False)
    pending.close()
    read_only = Database(db_path.with_name("pending.duckdb"), read_only=True)
    assert queued(read_only) > 0
    assert answers(Analysis(read_only)) == expected
    read_only.close()


def test_retention_drops_derived_rows_and_rederives_straddling_traces(database: Database) -> None:
    kit = TraceKit()
    for start in (0, 60_000):
        root = kit.trace(start_ms=start).span("a", "op", kind="Server", start_ms=0, duration_ms=50)
        root.child("b", "op", kind="Server", start_ms=10, duration_ms=20)
    straddling = kit.trace(start_ms=119_990)
    root = straddling.span("a", "slow", kind="Server", start_ms=0, duration_ms=100)
    root.child("b", "op", kind="Server", start_ms=30, duration_ms=20)
    write(database, kit, derive=True)
    writer = SpanWriter(database)
    writer.start()
    cutoff = datetime.fromtimestamp(at_ms(120_000) / 1e9, UTC)
    deleted = delete_older_than(writer, cutoff)
    assert deleted == 5
    # The trace it cut is derived again in the sweep's own transaction: until the next
    # pass, its index row held the deleted root (settled reads counted it in the flow,
    # its steps gone).
    reader = database.reader()
    assert reader.execute("SELECT count(*) FROM derive_queue").fetchall() == [(0,)]
    assert reader.execute("SELECT RootSpanId FROM trace_index").fetchall() == [("",)]
    writer.shutdown()
    analysis = Analysis(database)
    everything = Window(0, at_ms(3_600_000))
    # Only the straddling trace's child is left: no root, so no flow; its call is gone.
    assert analysis.flows(everything) == []
    assert analysis.service_map(everything).edges == []
    assert [n.id for n in analysis.service_map(everything).nodes] == ["b"]
    assert database.fetch("span_count")[0][0] == 1
    assert_edge_minutes_agree(database)
    # The straddling trace, derived again, kept its number (3, the last start); the
    # rows of every trace retention dropped went with it, and numbers go on after 3.
    assert reader.execute("SELECT TraceNo FROM trace_index").fetchall() == [(3,)]
    assert reader.execute("SELECT count(*) FROM span_steps").fetchall() == [(0,)]
    assert reader.execute("SELECT count(*) FROM edge_calls").fetchall() == [(0,)]
    later = TraceKit()
    later.trace(start_ms=200_000).span("a", "op", kind="Server", start_ms=0, duration_ms=5)
    write(database, later, derive=True)
    numbered = reader.execute("SELECT TraceNo FROM trace_index ORDER BY ALL").fetchall()
    assert numbered == [(3,), (4,)]


def test_a_cut_trace_already_queued_is_derived_in_the_sweep_too(database: Database) -> None:
    """A trace with a late span waiting (queued by ingest) that the sweep also cut was
    left out of the sweep's derivation: its index kept the deleted root until the next
    pass."""
    kit = TraceKit()
    cut = kit.trace(start_ms=119_990)
    root = cut.span("a", "slow", kind="Server", start_ms=0, duration_ms=100)
    root.child("b", "op", kind="Server", start_ms=30, duration_ms=20)
    late = root.child("c", "late", kind="Server", start_ms=60, duration_ms=5)
    write(database, kit, derive=True, batches=[kit.spans[:2]])
    # No derive thread (one derives what waits when it starts): the late span waits.
    writer = SpanWriter(database, derive_interval_s=None)
    writer.start()
    try:
        kit.write(database, [late.spec], writer=writer)
        cutoff = datetime.fromtimestamp(at_ms(120_000) / 1e9, UTC).replace(tzinfo=None)
        sweep = writer.run_task(lambda cursor: derivation.retention(cursor, cutoff))
        assert sweep.result() == 1
        reader = database.reader()
        assert reader.execute("SELECT count(*) FROM derive_queue").fetchall() == [(0,)]
        assert reader.execute("SELECT RootSpanId FROM trace_index").fetchall() == [("",)]
    finally:
        writer.shutdown()


def test_a_cut_trace_that_fails_to_derive_does_not_stop_retention(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deriving the cut traces in the sweep made one that cannot be derived fail every
    sweep: nothing was deleted any more. The sweep now deletes, and leaves that trace
    to the passes (and their triage)."""
    kit = TraceKit()
    kit.trace(start_ms=0).span("a", "op", kind="Server", start_ms=0, duration_ms=50)
    cut = kit.trace(start_ms=119_990)
    cut.span("a", "slow", kind="Server", start_ms=0, duration_ms=100).child(
        "b", "op", kind="Server", start_ms=30, duration_ms=20
    )
    write(database, kit, derive=True)
    poison = kit.spans[1].trace_id
    failing_for(monkeypatch, poison)
    writer = SpanWriter(database, derive_interval_s=3600)  # no pass meanwhile
    writer.start()
    try:
        cutoff = datetime.fromtimestamp(at_ms(120_000) / 1e9, UTC)
        assert delete_older_than(writer, cutoff) == 2
        reader = database.reader()
        assert reader.execute("SELECT count(*) FROM otel_traces").fetchall() == [(1,)]
        queued = reader.execute("SELECT DISTINCT TraceId FROM derive_queue").fetchall()
        assert queued == [(poison,)]  # for the passes
    finally:
        monkeypatch.undo()  # the writer's last pass derives again
        writer.shutdown()


def test_retention_of_a_whole_producer_trace_rederives_its_consumers(
    database: Database,
) -> None:
    """Before, the consumer kept its async call from the deleted producer: an edge and
    a node of 0 spans in the map that the remaining spans do not give."""
    kit = TraceKit()
    root = kit.trace(start_ms=0).span("prod", "POST", kind="Server", start_ms=0, duration_ms=50)
    producer = root.child("prod", "publish orders", kind="Producer", start_ms=10, duration_ms=5)
    kit.trace(start_ms=200_000).span(
        "cons", "process", kind="Consumer", start_ms=0, duration_ms=20, links=[producer.link()]
    )
    write(database, kit, derive=True)
    everything = Window(0, at_ms(3_600_000))
    assert [e.rule for e in Analysis(database).service_map(everything).edges] == ["async"]
    writer = SpanWriter(database)
    writer.start()
    assert delete_older_than(writer, datetime.fromtimestamp(at_ms(100_000) / 1e9, UTC)) == 2
    writer.shutdown()  # the derive thread derives what retention queued, then stops
    service_map = Analysis(database).service_map(everything)
    assert service_map.edges == []
    assert [n.id for n in service_map.nodes] == ["cons"]
    assert_edge_minutes_agree(database)


def test_retention_inside_a_minute_keeps_that_minutes_later_calls(database: Database) -> None:
    kit = TraceKit()
    for start in (125_000, 140_000, 150_000):  # one minute; the cutoff falls after the first
        root = kit.trace(start_ms=start).span("a", "op", kind="Server", start_ms=0, duration_ms=50)
        root.child("b", "op", kind="Server", start_ms=10, duration_ms=start / 10_000)
    write(database, kit, derive=True)
    writer = SpanWriter(database)
    writer.start()
    cutoff = datetime.fromtimestamp(at_ms(130_000) / 1e9, UTC)
    assert delete_older_than(writer, cutoff) == 2
    writer.shutdown()
    assert_edge_minutes_agree(database)
    (edge,) = Analysis(database).service_map(Window(0, at_ms(3_600_000))).edges
    assert (edge.calls, edge.p50_ms, edge.p99_ms) == (2, 14.5, pytest.approx(14.99))


def test_retention_during_a_derivation_pass_waits_for_it_instead_of_failing_it(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit = TraceKit()
    early = kit.trace(start_ms=0).span("a", "op", kind="Server", start_ms=0, duration_ms=50)
    early.child("b", "op", kind="Server", start_ms=10, duration_ms=20)
    later = kit.trace(start_ms=60_000).span("a", "op", kind="Server", start_ms=0, duration_ms=50)
    later.child("b", "op", kind="Server", start_ms=10, duration_ms=20)
    write(database, kit, derive=True)
    # A pass that derives the early trace again, held where it re-counts that trace's
    # minute of edge_minutes: retention deletes the same minute's rows.
    held, release = threading.Event(), threading.Event()
    run = derivation._run

    def holding(cursor: Any, name: str, params: dict[str, Any] | None = None) -> None:
        if name == "compact_edge_minutes" and not release.is_set():
            held.set()
            release.wait(60)
        run(cursor, name, params)

    monkeypatch.setattr(derivation, "_run", holding)
    writer = SpanWriter(database, journal=False, derive_interval_s=0.0)
    writer.start()
    try:
        early.child("c", "op", kind="Server", start_ms=30, duration_ms=5)
        kit.write(database, kit.spans[-1:], writer=writer)
        wait_until(held.is_set, "a pass re-counting the early trace's minute")
        cutoff = datetime.fromtimestamp(at_ms(30_000) / 1e9, UTC)
        sweep = threading.Thread(target=delete_older_than, args=(writer, cutoff))
        sweep.start()
        assert writer.deriver is not None
        deriver = writer.deriver
        # The sweep waits for the pass, on its thread: spans and derived rows go in one
        # transaction. Before, the spans went at once, and reads listed the early trace,
        # whose lookup then failed, until the derived rows followed.
        wait_until(lambda: deriver.tasks_waiting == 1 or not sweep.is_alive(), "the sweep")
        assert database.fetch("span_count")[0][0] == 5
        analysis = Analysis(database)
        listed = analysis.traces(Window(0, at_ms(3_600_000)))
        assert len(listed) == 2 and all(analysis.trace(t.trace_id).spans for t in listed)
        release.set()
        sweep.join(60)
        assert not sweep.is_alive()
        assert deriver.failures == 0
    finally:
        release.set()
        writer.shutdown()
    assert_edge_minutes_agree(database)
    (edge,) = Analysis(database).service_map(Window(0, at_ms(3_600_000))).edges
    assert (edge.source, edge.target, edge.calls) == ("a", "b", 1)
    assert database.span_count() == 2


def test_spans_after_retention_emptied_the_table_and_a_restart_are_derived(
    database: Database,
) -> None:
    old, new = TraceKit(), TraceKit()
    old.trace(start_ms=0).span("a", "old", kind="Server", start_ms=0, duration_ms=5)
    new.trace(start_ms=200_000).span("a", "new", kind="Server", start_ms=0, duration_ms=5)
    write(database, old, derive=True)
    writer = SpanWriter(database)
    writer.start()
    cutoff = datetime.fromtimestamp(at_ms(100_000) / 1e9, UTC)
    assert delete_older_than(writer, cutoff) == 1
    writer.shutdown()
    # The table is empty, the derive mark is not: a restarted writer numbers its
    # commits above the mark, or derivation would never take them in.
    write(database, new, derive=True)
    flows = Analysis(database).flows(Window(0, at_ms(3_600_000)))
    assert [(f.root_operation, f.traces) for f in flows] == [("new", 1)]
    assert queued(database) == 0


def post_spans(endpoints: Endpoints, kit: TraceKit, spans: list[Any]) -> None:
    """Send ``spans`` of ``kit`` to a server over OTLP/HTTP protobuf; they are acknowledged."""
    response = httpx.post(
        f"{endpoints.http}/v1/traces",
        content=kit.request(spans).SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=30,
    )
    assert response.status_code == 200


def test_spans_sent_over_otlp_http_are_analyzed(tmp_path: Path) -> None:
    kit = mixed_kit()
    with server_in_process(tmp_path / "served.duckdb") as (server, endpoints):
        post_spans(endpoints, kit, kit.spans)
        assert server.database is not None
        served = answers(Analysis(server.database))
    local = Database(tmp_path / "local.duckdb")
    write(local, kit, derive=True)
    assert served == answers(Analysis(local))
    edges = {(e["source"], e["target"], e["rule"]) for e in served["map"]["edges"]}
    assert ("orders", "billing", "async") in edges and ("gateway", "orders", "rpc") in edges
    local.close()


def test_a_step_calling_several_peers_names_the_least(tmp_path: Path) -> None:
    kit = TraceKit()
    for i, namespace in enumerate(["shop", "archive", "zeta"]):
        root = kit.trace(start_ms=1_000 * i).span(
            "orders", "POST /orders", kind="Server", start_ms=0, duration_ms=10
        )
        root.child(
            "orders",
            "SELECT",
            kind="Client",
            start_ms=1,
            duration_ms=2,
            attributes={"db.system": "postgresql", "db.namespace": namespace},
        )
    names = []
    for order in (kit.spans, list(reversed(kit.spans))):
        database = Database(tmp_path / f"{len(names)}.duckdb")
        # One trace at a time, derived in between: the stored name is updated.
        for k in range(0, 6, 2):
            write(database, kit, derive=True, batches=[order[k : k + 2]])
            assert queued(database) == 0
        analysis = Analysis(database)
        (flow,) = analysis.flows(HOUR)
        names.append({s.operation: s.peer for s in analysis.flow(flow.id, HOUR).steps})
        database.close()
    assert names == [{"POST /orders": None, "SELECT": "postgresql/archive"}] * 2


# Whole minutes in the middle, partial ones at both ends (the map reads those from spans).
PARTIAL = Window(at_ms(30_500), at_ms(3_590_250))


def aggregates(analysis: Analysis) -> dict[str, Any]:
    flows = analysis.flows(HOUR)
    return {
        "map": analysis.service_map(HOUR).as_dict(),
        "map_partial": analysis.service_map(PARTIAL).as_dict(),
        "flow_maps": [analysis.service_map(HOUR, flow=f.id).as_dict() for f in flows],
        "flows": [f.as_dict() for f in flows],
        "flows_by": [f.as_dict() for f in analysis.flows(HOUR, by="customer.tier")],
        "steps": [analysis.flow(f.id, HOUR).as_dict() for f in flows],
        "steps_by": [analysis.flow(f.id, HOUR, by="customer.tier").as_dict() for f in flows],
        "traces": [t.as_dict() for t in analysis.traces(HOUR, limit=100)],
    }


def test_a_settled_read_answers_as_of_the_last_pass(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit = mixed_kit()
    lone = kit.trace(start_ms=100_000).span(
        "gateway", "POST /orders", kind="Server", start_ms=0, duration_ms=50
    )
    write(database, kit, derive=True)
    analysis = Analysis(database)
    at_pass = aggregates(analysis)
    taken = len(kit.spans)
    # A late span of a derived trace, naming its --by group for the first time (its
    # clock a little behind, so it starts within the spans the trace had).
    lone.child(
        "gateway",
        "SELECT",
        kind="Client",
        start_ms=-2,
        duration_ms=4,
        attributes={"customer.tier": "late", "db.system": "postgresql"},
    )
    # Spans of new traces in a partial first minute, a whole minute and a partial last
    # minute, committed after the pass and not derived.
    for start in (40_000, 125_000, 3_589_000):
        root = kit.trace(start_ms=start).span(
            "gateway",
            "POST /orders",
            kind="Server",
            start_ms=0,
            duration_ms=70,
            attributes={"customer.tier": "silver"},
        )
        root.child("orders", "POST /orders", kind="Server", start_ms=5, duration_ms=900)
    write(database, kit, derive=False, batches=[kit.spans[taken:]])
    waiting = queued(database)
    assert waiting == 4
    fetched: list[str] = []
    fetch = database.fetch

    def recording(name: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        fetched.append(name)
        return fetch(name, params)

    monkeypatch.setattr(database, "fetch", recording)
    monkeypatch.setattr(derivation, "SETTLED_MIN_TRACES", waiting)

    # No derive thread: every read derives what waits.
    exact = aggregates(analysis)
    assert exact != at_pass

    monkeypatch.setattr(database, "derived_lag", lambda: 0.5)
    with derivation.read_snapshot(database) as derived:
        assert derived == 0
    fetched.clear()
    assert aggregates(analysis) == at_pass
    # The services' minute counts and durations agreed: no fallback to the raw spans.
    assert "map_services" not in fetched
    # Asked for by id, a new trace is there, with and without a baseline.
    new_trace = kit.spans[-1].trace_id
    assert analysis.trace(new_trace).as_dict()["spans"]
    assert analysis.trace(new_trace, HOUR).as_dict()["spans"]
    with derivation.read_snapshot(database, settled=False) as derived:
        assert derived == waiting

    # The last pass too long ago, or too few traces waiting: exact again.
    monkeypatch.setattr(database, "derived_lag", lambda: derivation.SETTLED_MAX_LAG_S + 0.1)
    assert aggregates(analysis) == exact
    monkeypatch.setattr(database, "derived_lag", lambda: 0.5)
    monkeypatch.setattr(derivation, "SETTLED_MIN_TRACES", waiting + 1)
    assert aggregates(analysis) == exact
    # ... unless the last pass derived that many: ingest is busy, only the pass just
    # ended leaves few waiting.
    monkeypatch.setattr(database, "derived_pass_traces", lambda: waiting + 1)
    assert aggregates(analysis) == at_pass
    monkeypatch.setattr(database, "derived_pass_traces", lambda: waiting)
    assert aggregates(analysis) == exact


def test_a_busy_server_answers_settled_reads_over_its_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wiring end to end: the server's derive thread reports its lag, the API's
    reads settle on its last pass while it is busy, and a trace by id is still there."""
    monkeypatch.setattr(derivation, "SETTLED_MIN_TRACES", 1)
    monkeypatch.setattr(derivation, "SETTLED_MAX_LAG_S", 600.0)  # however slow the machine
    real_derive = derivation.derive
    hold, held, release = threading.Event(), threading.Event(), threading.Event()

    def maybe_held(cursor: Any, *pause: Any) -> Any:
        if hold.is_set():
            held.set()
            release.wait(60)
        return real_derive(cursor, *pause)

    monkeypatch.setattr(derivation, "derive", maybe_held)
    kit = mixed_kit()
    window = {"since": format_ns(HOUR.since_ns), "until": format_ns(HOUR.until_ns)}

    with (
        server_in_process(tmp_path / "busy.duckdb") as (_server, endpoints),
        httpx.Client(base_url=endpoints.ui, timeout=30) as ui,
    ):

        def derivation_state() -> dict[str, Any]:
            state: dict[str, Any] = ui.get("/healthz").json()["derivation"]
            return state

        try:
            post_spans(endpoints, kit, list(kit.spans))
            wait_until(
                lambda: (
                    (d := derivation_state())["pending_traces"] == 0
                    and d["last_pass_age_s"] is not None
                ),
                "the first spans to be derived",
            )
            before = ui.get("/api/flows", params=window).json()["flows"]
            taken = len(kit.spans)
            kit.trace(start_ms=130_000).span(
                "gateway", "POST /orders", kind="Server", start_ms=0, duration_ms=80
            )
            hold.set()
            post_spans(endpoints, kit, kit.spans[taken:])
            assert held.wait(30), "the derive thread never started its next pass"
            state = derivation_state()
            assert state["pending_traces"] == 1 and state["last_pass_age_s"] is not None
            assert ui.get("/api/flows", params=window).json()["flows"] == before
            lookup = ui.get(f"/api/traces/{kit.spans[-1].trace_id}")
            assert lookup.status_code == 200 and len(lookup.json()["spans"]) == 1
        finally:
            release.set()
        wait_until(lambda: derivation_state()["pending_traces"] == 0, "the held pass to end")
        after = ui.get("/api/flows", params=window).json()["flows"]
        assert sum(f["traces"] for f in after) == sum(f["traces"] for f in before) + 1


def test_a_transaction_whose_commit_failed_raises_that_failure(tmp_path: Path) -> None:
    """A COMMIT that fails (a full disk) ends the transaction: the ROLLBACK after it
    raised "no transaction is active", chained onto the real error in the log."""
    database = Database(tmp_path / "commit.duckdb")
    try:
        cursor = database.writer_cursor()
        with pytest.raises(ValueError, match="the real error"), derivation._transaction(cursor):
            cursor.execute("COMMIT")  # the transaction is gone, as after a failed commit
            raise ValueError("the real error")
    finally:
        database.close()


def test_a_read_the_files_close_cut_short_does_not_blame_derivation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """close() beside a notebook's reading threads logged "deriving the queued traces
    failed (ConnectionException: Connection already closed!)" (notebook review): the
    read fails as closed, and derivation is not named."""
    database = Database(tmp_path / "closing.duckdb")
    try:

        def cut_short(*_args: Any) -> int:
            raise RuntimeError("Connection already closed!")

        monkeypatch.setattr(derivation, "prepare_reads", cut_short)
        monkeypatch.setattr(Database, "closed", property(lambda _self: True))
        with pytest.raises(RuntimeError, match="already closed"):
            with derivation.read_snapshot(database):
                pass
        assert "deriving the queued traces failed" not in caplog.text
        monkeypatch.setattr(Database, "closed", property(lambda _self: False))
        monkeypatch.setattr(derivation, "_warned_at", [float("-inf")])
        with derivation.read_snapshot(database) as derived:  # open: the stored rows answer
            assert derived == 0
        assert "deriving the queued traces failed (RuntimeError" in caplog.text
    finally:
        monkeypatch.undo()
        database.close()


def test_an_interrupt_that_lands_on_a_reads_rollback_does_not_break_its_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API interrupts an abandoned analysis every quarter second until it ends; one
    landing on read_snapshot's closing ROLLBACK left the worker thread's cursor in an
    aborted transaction, and every later request on that thread, /healthz too, failed
    until the server restarted (diff review)."""
    import duckdb

    database = Database(tmp_path / "rollback.duckdb")
    kit = TraceKit()
    kit.trace(start_ms=0).span("gateway", "GET /", kind="Server", start_ms=0, duration_ms=5)
    kit.write(database)
    analysis = Analysis(database)
    real = database.reader()
    interrupts = [1]

    done_first: list[bool] = []  # the interrupted ROLLBACK had rolled back after all

    class Cursor:  # the thread's cursor, its next ROLLBACK interrupted once
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def execute(self, query: str, *args: Any) -> Any:
            if query == "ROLLBACK" and interrupts:
                interrupts.pop()
                if done_first:
                    real.execute(query)
                raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")
            return real.execute(query, *args)

    monkeypatch.setattr(database, "reader", lambda: Cursor())
    try:
        assert analysis.flows(HOUR)[0].traces == 1  # its ROLLBACK tried again
        assert not interrupts
        # A transaction an earlier read left open is ended, not failed on.
        real.execute("BEGIN TRANSACTION")
        assert analysis.flows(HOUR)[0].traces == 1
        # DuckDB may raise the interrupt once the ROLLBACK is done: the one tried again
        # finds no transaction, which a stopping server answered as a 500 (diff review).
        interrupts.append(1)
        done_first.append(True)
        assert analysis.flows(HOUR)[0].traces == 1
        assert not interrupts
    finally:
        monkeypatch.undo()
        database.close()


def test_a_pass_keeps_no_attribute_value_over_8_kib() -> None:
    """A pass held every loaded span's maps to its end: spans of 10 KB attributes took
    one to 12.5 GB. Sliced chunks (as DuckDB hands them over) keep their own entries."""
    import pyarrow as pa

    from flowscope.store.derivation import LONGEST_KEPT_VALUE, without_long_values

    maps = pa.array(
        [
            [("a", "x"), ("b", "y" * (LONGEST_KEPT_VALUE + 1))],
            [],
            [("c", "z" * LONGEST_KEPT_VALUE), ("d", "w" * 9000)],
            [("e", "1")],
        ],
        pa.map_(pa.string(), pa.string()),
    )
    kept = without_long_values(pa.chunked_array([maps.slice(1), maps.slice(0, 1)]))
    assert [[(k, len(v)) for k, v in row] for row in kept.to_pylist()] == [
        [],
        [("c", LONGEST_KEPT_VALUE)],
        [("e", 1)],
        [("a", 1)],
    ]
    short = pa.chunked_array([maps.slice(3)])
    same = without_long_values(short).chunks[0]
    assert same.buffers()[1].address == short.chunks[0].buffers()[1].address  # not copied


def test_a_pass_in_progress_does_not_stop_the_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB skips its automatic checkpoints while an open transaction holds an
    update, and a pass moved its mark by an UPDATE at its start: under a flood of
    large spans passes ran back to back and the WAL grew to 2 GB (13 GB in a
    review's flood) before a checkpoint came. Commits made while a pass runs must
    still checkpoint."""
    monkeypatch.setattr(database_module, "CHECKPOINT_THRESHOLD", "1MB")
    database = Database(tmp_path / "wal.duckdb")
    wal = wal_path(database.path)
    kit = mixed_kit()
    write(database, kit, derive=False)
    big = TraceKit()
    for n in range(3):
        payload = {"payload": os.urandom(2**20).hex()}  # 2 MB each, as random as the WAL
        big.trace(start_ms=200_000 + n).span(
            "uploads", "PUT /blob", kind="Server", start_ms=0, duration_ms=1, attributes=payload
        )
    writer = SpanWriter(database, derive_interval_s=None)
    writer.start()
    sizes: list[int] = []

    def commit_big_spans() -> None:  # with the pass's transaction open, past its intake
        if sizes:
            return
        for span in big.spans:
            big.write(database, [span], writer=writer)
            sizes.append(wal.stat().st_size if wal.exists() else 0)

    try:
        result = derivation.derive(database.writer_cursor(), commit_big_spans)
    finally:
        writer.shutdown()
        database.close()
    assert result is not None and len(sizes) == 3
    # 6 MB committed over a 1 MB threshold: a checkpoint empties the WAL on the way.
    assert min(sizes) < 2**20, f"WAL after each 2 MB commit: {sizes}"


def test_the_derivation_marks_stay_one_row_each(database: Database) -> None:
    """The mark and the trace-number count move by a row added and the older ones
    deleted; a pass that numbers no new trace (a trace derived again) adds none."""
    kit = mixed_kit()
    write(database, kit, derive=True)
    first = kit.spans[0]
    for n in range(2):  # each its own pass, over a trace numbered already
        again = TraceKit()
        again.trace(start_ms=0, trace_id=first.trace_id).span(
            "orders",
            "late child",
            start_ms=1,
            duration_ms=1,
            parent=first.span_id,
            span_id=f"{0xFEED0000 + n:016x}",
        )
        write(database, again, derive=True)

    def rows(table: str) -> int:
        return int(database.reader().execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])

    assert queued(database) == 0
    assert rows("derive_state") == 1 and rows("trace_numbers") == 1
