"""Schema 5 -> 6 (smaller derived rows): an upgraded file gives the same answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from flowscope.analyzer.analysis import Analysis
from flowscope.store.database import SCHEMA_VERSION, Database

from .conftest import HOUR
from .test_derivation import answers, assert_edge_minutes_agree, mixed_kit


def everything(analysis: Analysis) -> dict[str, Any]:
    flows = [f.id for f in analysis.flows(HOUR)]
    return answers(analysis) | {
        "flow_maps": {f: analysis.service_map(HOUR, f).as_dict() for f in flows}
    }


def make_schema_5(path: Path) -> None:
    """Give a file the schema-5 shapes: shares as DOUBLE fractions, calls naming their
    traces by id."""
    con = duckdb.connect(str(path))
    try:
        con.execute("ALTER TABLE span_steps RENAME COLUMN CpNano TO CpFraction")
        con.execute("ALTER TABLE span_steps ALTER CpFraction TYPE DOUBLE USING CpFraction / 1e9")
        con.execute("ALTER TABLE edge_calls ADD COLUMN TraceId VARCHAR")
        con.execute("ALTER TABLE edge_calls ADD COLUMN SourceTraceId VARCHAR NOT NULL DEFAULT ''")
        con.execute(
            "UPDATE edge_calls SET TraceId = t.TraceId FROM trace_index t"
            " WHERE t.TraceKey = edge_calls.TraceKey"
        )
        con.execute(
            "UPDATE edge_calls SET SourceTraceId = t.TraceId FROM trace_index t"
            " WHERE t.TraceKey = edge_calls.SourceTraceKey"
        )
        linked = con.execute("SELECT count(*) FROM edge_calls WHERE SourceTraceId <> ''")
        assert linked.fetchone() == (1,)  # the kit's call across traces
        con.execute("ALTER TABLE edge_calls DROP COLUMN SourceTraceKey")
        con.execute("UPDATE schema_meta SET version = 5")
    finally:
        con.close()


def test_schema_5_files_are_upgraded_in_place_with_the_same_answers(tmp_path: Path) -> None:
    path = tmp_path / "five.duckdb"
    database = Database(path)
    mixed_kit().write(database)
    expected = everything(Analysis(database))
    database.close()
    make_schema_5(path)
    upgraded = Database(path)
    assert upgraded.fetch("schema_version")[0][0] == SCHEMA_VERSION == 6
    assert everything(Analysis(upgraded)) == expected
    assert_edge_minutes_agree(upgraded)
    # New traces derive into the upgraded tables as into fresh ones.
    mixed_kit().write(upgraded)
    assert everything(Analysis(upgraded)) == expected  # the same spans again: deduplicated
    upgraded.close()
