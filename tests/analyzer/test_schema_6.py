"""Schema 5 -> 6 (smaller derived rows): an upgraded file gives the same answers."""

from __future__ import annotations

from pathlib import Path

from flowscope.analyzer.analysis import Analysis
from flowscope.store.database import SCHEMA_VERSION, Database

from .old_schemas import everything, later_kit, make_schema_5
from .test_derivation import assert_edge_minutes_agree, mixed_kit


def test_schema_5_files_are_upgraded_in_place_with_the_same_answers(tmp_path: Path) -> None:
    fresh = Database(tmp_path / "six.duckdb")
    mixed_kit().write(fresh)
    later_kit().write(fresh)
    expected_later = everything(Analysis(fresh))
    fresh.close()
    path = tmp_path / "five.duckdb"
    database = Database(path)
    mixed_kit().write(database)
    expected = everything(Analysis(database))
    database.close()
    assert make_schema_5(path) == 1  # the kit's call across traces
    upgraded = Database(path)
    assert upgraded.fetch("schema_version")[0][0] == SCHEMA_VERSION
    assert everything(Analysis(upgraded)) == expected
    assert_edge_minutes_agree(upgraded)
    # New traces derive into the upgraded tables as into a file made new.
    later_kit().write(upgraded)
    assert everything(Analysis(upgraded)) == expected_later
    assert_edge_minutes_agree(upgraded)
    upgraded.close()
