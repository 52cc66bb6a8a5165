"""Older files are upgraded in place with the same answers (schema 5 -> 6: smaller
derived rows; 6 -> 7: traces numbered; 7 -> 8: keys from the ids' digits), and
derivation numbers each trace once, in time order, for good."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flowscope.analyzer.analysis import Analysis
from flowscope.store import derivation, sql_files
from flowscope.store.database import SCHEMA_VERSION, Database
from flowscope.testing.traces import TraceKit

from .conftest import HOUR
from .old_schemas import (
    SCHEMA_7_KEYS,
    everything,
    later_kit,
    make_schema_5,
    make_schema_6,
    make_schema_7,
)
from .test_derivation import assert_edge_minutes_agree, mixed_kit, write
from .test_trace_keys import alike_kit


def numbers(database: Database) -> dict[str, int]:
    """TraceId -> TraceNo as stored."""
    rows = database.reader().execute("SELECT TraceId, TraceNo FROM trace_index").fetchall()
    return dict(rows)


def handed_out(database: Database) -> int:
    return int(database.reader().execute("SELECT HandedOut FROM trace_numbers").fetchall()[0][0])


def layout(database: Database) -> list[tuple[str, str, str, bool]]:
    """(table, column, type, nullable) of every stored table, in column order."""
    rows = database.reader().execute(
        "SELECT c.table_name, c.column_name, c.data_type, c.is_nullable"
        " FROM duckdb_columns() c JOIN duckdb_tables() t USING (database_name, table_name)"
        " WHERE NOT t.temporary AND database_name = current_database()"
        " ORDER BY c.table_name, c.column_index"
    )
    return [tuple(row) for row in rows.fetchall()]


def orphans(database: Database) -> list[int]:
    """Per-call and per-span rows whose trace number names no stored trace."""
    reader = database.reader()
    return [
        int(
            reader.execute(
                f"SELECT count(*) FROM {t} ANTI JOIN trace_index USING (TraceNo)"
            ).fetchall()[0][0]
        )
        for t in ("edge_calls", "span_steps")
    ]


def _schema_5(path: Path) -> None:
    assert make_schema_5(path) == 1  # the kit's call across traces


# Each makes a file of the current schema into one of an older one, as it was stored.
OLD_SCHEMAS: dict[int, Callable[[Path], None]] = {
    5: _schema_5,
    6: make_schema_6,
    7: make_schema_7,
}


@pytest.mark.parametrize("version", OLD_SCHEMAS)
def test_older_files_are_upgraded_in_place_with_the_same_answers(
    tmp_path: Path, version: int
) -> None:
    kit = mixed_kit()
    by_id = {s.span_id for s in kit.spans}
    # A span that arrives after the upgrade, into a trace numbered by the upgrade.
    late = next(s for s in kit.spans if s.parent_span_id in by_id)
    early = [s for s in kit.spans if s is not late]
    fresh = Database(tmp_path / "seven.duckdb")
    kit.write(fresh, early)
    kit.write(fresh, [late])
    later_kit().write(fresh)
    expected_later = everything(Analysis(fresh))
    fresh_layout = layout(fresh)
    fresh.close()
    path = tmp_path / f"schema-{version}.duckdb"
    database = Database(path)
    kit.write(database, early)
    expected = everything(Analysis(database))
    database.close()
    OLD_SCHEMAS[version](path)
    upgraded = Database(path)
    assert upgraded.fetch("schema_version")[0][0] == SCHEMA_VERSION == 8
    assert layout(upgraded) == fresh_layout
    assert orphans(upgraded) == [0, 0]
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
    # A late span derives its upgraded trace again under its number; new traces derive
    # into the upgraded tables as into a file made new.
    numbered = numbers(upgraded)
    kit.write(upgraded, [late])
    assert numbers(upgraded) == numbered and orphans(upgraded) == [0, 0]
    later_kit().write(upgraded)
    assert everything(Analysis(upgraded)) == expected_later
    assert_edge_minutes_agree(upgraded)
    upgraded.close()


def test_traces_a_schema_7_file_merged_are_derived_again_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit = alike_kit()
    fresh = Database(tmp_path / "fresh.duckdb")
    kit.write(fresh)
    expected = everything(Analysis(fresh))
    fresh.close()
    # Derived as schema 7 derived them, under DuckDB's hash of the ids.
    path = tmp_path / "seven.duckdb"
    scripts = sql_files.schema_scripts()
    with monkeypatch.context() as patched:
        patched.setattr(
            sql_files,
            "schema_scripts",
            lambda: [(n, SCHEMA_7_KEYS if n == "004_keys.sql" else s) for n, s in scripts],
        )
        database = Database(path)
        kit.write(database)
        merged = everything(Analysis(database))
        database.close()
    assert len(merged["flows"]) == 1  # the two traces were one
    make_schema_7(path)
    upgraded = Database(path)
    assert upgraded.fetch("schema_version")[0][0] == SCHEMA_VERSION
    assert everything(Analysis(upgraded)) == expected  # derived again on the fly
    write(upgraded, TraceKit(), derive=True, batches=[])
    assert everything(Analysis(upgraded)) == expected  # and stored
    assert orphans(upgraded) == [0, 0]
    assert_edge_minutes_agree(upgraded)
    keys = upgraded.reader().execute("SELECT count(DISTINCT TraceKey) FROM trace_index")
    assert keys.fetchone() == (2,)
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
    by_id = {s.span_id for s in kit.spans}
    late = next(s for s in kit.spans if s.parent_span_id in by_id)
    fresh = TraceKit()
    fresh.trace(start_ms=1_000, trace_id="e5" * 16).span(
        "web", "GET /quote", kind="Server", start_ms=0, duration_ms=5
    )
    write(database, kit, derive=True, batches=[[s for s in kit.spans if s is not late]])
    stored = numbers(database)
    last = handed_out(database)
    assert sorted(stored.values()) == list(range(1, last + 1))
    # A late span for a numbered trace and a new trace wait for derivation.
    write(database, kit, derive=False, batches=[[late]])
    write(database, fresh, derive=False)
    before: dict[str, list[Any]] = {}
    with derivation.read_snapshot(database, settled=False) as derived:
        assert derived == 2
        reader = database.reader()
        seen = dict(reader.execute("SELECT TraceId, TraceNo FROM a_trace_index").fetchall())
        # Stored traces keep their numbers, the re-derived one too; the new one gets
        # the next number, for this snapshot only.
        assert seen == stored | {"e5" * 16: last + 1}
        for table in ("a_span_steps", "a_edge_calls"):
            orphans = reader.execute(
                f"SELECT count(*) FROM {table} ANTI JOIN a_trace_index USING (TraceNo)"
            ).fetchone()
            assert orphans == (0,)
        before["steps"] = reader.execute(
            "SELECT TraceNo, StepKey, Duration FROM a_span_steps ORDER BY ALL"
        ).fetchall()
        before["edges"] = reader.execute(
            "SELECT TraceNo, EdgeKey, LatencyNs FROM a_edge_calls ORDER BY ALL"
        ).fetchall()
    assert handed_out(database) == last and numbers(database) == stored
    # What the reader saw is what derivation stores (the re-derived trace's old rows
    # set aside, not counted twice).
    write(database, TraceKit(), derive=True, batches=[])
    reader = database.reader()
    assert numbers(database) == stored | {"e5" * 16: last + 1}
    assert (
        before["steps"]
        == reader.execute(
            "SELECT TraceNo, StepKey, Duration FROM span_steps ORDER BY ALL"
        ).fetchall()
    )
    assert (
        before["edges"]
        == reader.execute(
            "SELECT TraceNo, EdgeKey, LatencyNs FROM edge_calls ORDER BY ALL"
        ).fetchall()
    )


def _crash_after_opening(path: Path) -> None:
    """Open (and so upgrade) the file in a process that then dies without closing it."""
    code = f"import os\nfrom flowscope.store.database import Database\nDatabase({str(path)!r})\nos._exit(0)\n"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("wal_left", [False, True])
def test_an_upgrade_survives_a_crash_right_after_it(tmp_path: Path, wal_left: bool) -> None:
    """Before, the upgrade stayed in the WAL until a checkpoint 256 MB away, and its
    ALTER ... round() could not be replayed with autoloading off: after a crash no
    open of the file worked. Now the upgrade is checkpointed, and a WAL that needs
    DuckDB's core functions replays anyway (``wal_left``: a WAL written like it)."""
    path = tmp_path / "five.duckdb"
    database = Database(path)
    mixed_kit().write(database)
    expected = everything(Analysis(database))
    database.close()
    make_schema_5(path)
    if wal_left:  # a change logged with round() and never checkpointed
        code = (
            "import duckdb, os\n"
            f"c = duckdb.connect({str(path)!r}, config={{'checkpoint_threshold': '1GB'}})\n"
            "c.execute('ALTER TABLE span_steps ALTER CpFraction TYPE DOUBLE USING round(CpFraction, 9)')\n"
            "os._exit(0)\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
        assert Path(f"{path}.wal").stat().st_size > 0
    _crash_after_opening(path)
    assert not Path(f"{path}.wal").exists() or wal_left
    reopened = Database(path)
    try:
        assert reopened.fetch("schema_version")[0][0] == SCHEMA_VERSION
        assert everything(Analysis(reopened)) == expected
    finally:
        reopened.close()
