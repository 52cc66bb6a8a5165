"""DuckDB's errors for a ClickHouse user's first queries come with a hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowscope.store.database import Database
from flowscope.store.sandbox import SqlError, run_sandboxed
from flowscope.store.sql_hints import hinted


@pytest.mark.parametrize(
    ("sql", "hint"),
    [
        (
            # The ClickHouse exporter's README query, as pasted (a user review).
            "SELECT count(*) FROM otel_traces WHERE Timestamp >= now() - INTERVAL 1 HOUR",
            "Hint: Timestamp is a TIMESTAMP_NS in UTC; compare it with "
            "now()::TIMESTAMP_NS - INTERVAL 1 HOUR (docs/schema.md).",
        ),
        (
            "SELECT toString(SpanAttributes) FROM otel_traces",
            "Hint: toString is ClickHouse's; in DuckDB it is CAST(x AS VARCHAR).",
        ),
        (
            "SELECT Events.Name FROM otel_traces",
            "Hint: Events is a list of structs here (a Nested column in ClickHouse): "
            "Events[1].Name is the first one's, list_transform(Events, lambda e: e.Name) "
            "all of them.",
        ),
        (
            "SELECT list_filter(map_keys(SpanAttributes), k -> k LIKE 'http.%') FROM otel_traces",
            "Hint: write lambda k: ... (SET is not allowed here).",
        ),
    ],
)
def test_clickhouse_habits_get_a_hint(tmp_path: Path, sql: str, hint: str) -> None:
    database = Database(tmp_path / "hints.duckdb")
    try:
        with pytest.raises(SqlError) as failed:
            run_sandboxed(database, sql)
    finally:
        database.close()
    assert str(failed.value).endswith("\n" + hint)
    assert "SET lambda_syntax" not in str(failed.value)


def test_other_errors_are_left_as_they_are() -> None:
    message = (
        'Catalog Error: Scalar Function with name nosuch does not exist!\nDid you mean "cosh"?'
    )
    assert hinted(message) == message
