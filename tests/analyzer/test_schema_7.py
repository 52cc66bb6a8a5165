"""Schema 6 -> 7 (traces numbered): an upgraded file gives the same answers, and
derivation numbers each trace once, in time order, for good."""

from __future__ import annotations

from pathlib import Path

from flowscope.analyzer.analysis import Analysis
from flowscope.store import derivation
from flowscope.store.database import SCHEMA_VERSION, Database
from flowscope.testing.traces import TraceKit

from .conftest import HOUR
from .old_schemas import everything, later_kit, make_schema_6
from .test_derivation import assert_edge_minutes_agree, mixed_kit, write


def numbers(database: Database) -> dict[str, int]:
    """TraceId -> TraceNo as stored."""
    rows = database.reader().execute("SELECT TraceId, TraceNo FROM trace_index").fetchall()
    return dict(rows)


def handed_out(database: Database) -> int:
    row = database.reader().execute("SELECT HandedOut FROM trace_numbers").fetchone()
    assert row is not None
    return int(row[0])


def test_schema_6_files_are_upgraded_in_place_with_the_same_answers(tmp_path: Path) -> None:
    fresh = Database(tmp_path / "seven.duckdb")
    mixed_kit().write(fresh)
    later_kit().write(fresh)
    expected_later = everything(Analysis(fresh))
    fresh.close()
    path = tmp_path / "six.duckdb"
    database = Database(path)
    mixed_kit().write(database)
    expected = everything(Analysis(database))
    database.close()
    make_schema_6(path)
    upgraded = Database(path)
    assert upgraded.fetch("schema_version")[0][0] == SCHEMA_VERSION == 7
    assert everything(Analysis(upgraded)) == expected
    assert_edge_minutes_agree(upgraded)
    # Every stored trace got a number of its own, in order of first span start.
    by_start = (
        upgraded.reader()
        .execute("SELECT TraceNo FROM trace_index ORDER BY FirstTs, TraceId")
        .fetchall()
    )
    assert [n for (n,) in by_start] == list(range(1, len(by_start) + 1))
    assert handed_out(upgraded) == len(by_start)
    # New traces derive into the upgraded tables as into a file made as schema 7.
    later_kit().write(upgraded)
    assert everything(Analysis(upgraded)) == expected_later
    assert_edge_minutes_agree(upgraded)
    upgraded.close()


def test_traces_keep_their_number_when_derived_again(database: Database) -> None:
    kit = TraceKit()
    first = kit.trace(start_ms=1_000, trace_id="a1" * 16)
    root = first.span("web", "GET /quote", kind="Server", start_ms=0, duration_ms=50)
    late = root.child("prices", "lookup", kind="Server", start_ms=10, duration_ms=20)
    for start_ms, trace_id in ((2_000, "b2" * 16), (500, "c3" * 16)):
        kit.trace(start_ms=start_ms, trace_id=trace_id).span(
            "web", "GET /quote", kind="Server", start_ms=0, duration_ms=30
        )
    early = [s for s in kit.spans if s is not late.spec]
    write(database, kit, derive=True, batches=[early])
    # Numbered by first span start within the pass.
    expected = {"c3" * 16: 1, "a1" * 16: 2, "b2" * 16: 3}
    assert numbers(database) == expected and handed_out(database) == 3
    # A late span: its trace is derived again under the number it had.
    write(database, kit, derive=True, batches=[[late.spec]])
    assert numbers(database) == expected and handed_out(database) == 3
    reader = database.reader()
    steps = reader.execute("SELECT TraceNo, count(*) FROM span_steps GROUP BY ALL ORDER BY ALL")
    assert steps.fetchall() == [(1, 1), (2, 2), (3, 1)]
    assert reader.execute("SELECT DISTINCT TraceNo FROM edge_calls").fetchall() == [(2,)]
    flow = Analysis(database).flows(HOUR)[0]
    assert flow.traces == 3
    # A new trace gets the next number, whatever its start.
    later = TraceKit()
    later.trace(start_ms=100, trace_id="d4" * 16).span(
        "web", "GET /quote", kind="Server", start_ms=0, duration_ms=5
    )
    write(database, later, derive=True)
    assert numbers(database) == expected | {"d4" * 16: 4} and handed_out(database) == 4
    assert Analysis(database).flow(flow.id, HOUR).flow.traces == 4


def test_a_reader_numbers_waiting_traces_for_its_snapshot_only(database: Database) -> None:
    kit = mixed_kit()
    write(database, kit, derive=False)
    assert handed_out(database) == 0
    with derivation.read_snapshot(database, settled=False) as derived:
        assert derived == len({s.trace_id for s in kit.spans})
        reader = database.reader()
        rows = reader.execute("SELECT TraceNo FROM a_trace_index ORDER BY TraceNo").fetchall()
        assert [n for (n,) in rows] == list(range(1, derived + 1))
        # The overlay's per-span rows name those numbers.
        orphans = reader.execute(
            "SELECT count(*) FROM a_span_steps ANTI JOIN a_trace_index USING (TraceNo)"
        ).fetchone()
        assert orphans == (0,)
    assert handed_out(database) == 0 and numbers(database) == {}
