"""The SQL registry and the files in flowscope/store/sql agree (STYLE habit 6)."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from flowscope.store import sql_files

ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = ROOT / "flowscope" / "store" / "sql"
# Where production code lives; tests do not count as a use of a query.
SOURCE_DIRS = ("flowscope", "collector", "analyzer", "dashboard", "reference_app", "bench")
SCHEMA_FILE = re.compile(r"^\d{3}_.+\.sql$")
# A query loaded by name: query("x"), fetch("x", ...), fetch_arrow("x", ...).
LOADED_BY_NAME = re.compile(r"""\b(?:query|fetch|fetch_arrow)\(\s*["'](\w+)["']""")


def _python_sources() -> dict[Path, str]:
    """Each source file once: flowscope/collector and friends are links to the top-level folders."""
    sources: dict[Path, str] = {}
    for directory in SOURCE_DIRS:
        for path in sorted((ROOT / directory).rglob("*.py")):
            sources.setdefault(path.resolve(), path.read_text(encoding="utf-8"))
    return sources


def test_registry_lists_exactly_the_query_files() -> None:
    on_disk = sorted(p.stem for p in SQL_DIR.glob("*.sql") if not SCHEMA_FILE.match(p.name))
    assert sql_files.query_names() == on_disk
    assert [name for name, _ in sql_files.schema_scripts()] == sorted(
        p.name for p in SQL_DIR.glob("*.sql") if SCHEMA_FILE.match(p.name)
    )
    assert not [p.name for p in SQL_DIR.iterdir() if p.suffix != ".sql"]


@pytest.mark.parametrize("name", sql_files.query_names())
def test_every_query_loads_and_parses(name: str) -> None:
    text = sql_files.query(name)
    assert text == (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")
    connection = duckdb.connect(":memory:")
    try:
        statements = connection.extract_statements(text)
    finally:
        connection.close()
    # Most files hold one query; scripts the writer runs as a unit may hold several.
    assert statements, f"{name}.sql holds no statement"


def test_unknown_query_name_is_a_key_error_naming_the_file() -> None:
    with pytest.raises(KeyError, match=r"no_such_query\.sql"):
        sql_files.query("no_such_query")


def test_schema_scripts_create_the_schema_in_order_on_an_empty_database() -> None:
    scripts = sql_files.schema_scripts()
    assert scripts, "no NNN_*.sql schema files"
    numbers = [int(name[:3]) for name, _ in scripts]
    assert numbers == sorted(set(numbers)), "schema file numbers must be unique and ordered"
    connection = duckdb.connect(":memory:")
    try:
        for name, text in scripts:
            try:
                connection.execute(text)
            except duckdb.Error as exc:
                pytest.fail(f"{name} does not run after the files before it: {exc}")
        tables = {
            row[0]
            for row in connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
        # And again: the scripts use IF NOT EXISTS, so reopening a database never fails.
        for _name, text in scripts:
            connection.execute(text)
    finally:
        connection.close()
    assert {"otel_traces", "schema_meta", "imported_files"} <= tables


def test_every_query_file_is_used_by_the_code() -> None:
    sources = _python_sources()
    assert any(path.name == "database.py" for path in sources), "source tree not found"
    text = "\n".join(sources.values())
    unused = [
        name
        for name in sql_files.query_names()
        if not re.search(rf"""["']{re.escape(name)}["']""", text)
    ]
    assert not unused, f"SQL files no Python code loads: {unused}"


def test_every_query_the_code_loads_has_a_file() -> None:
    names = set(sql_files.query_names())
    missing = sorted(
        f"{path.name}: {name}"
        for path, text in _python_sources().items()
        for name in LOADED_BY_NAME.findall(text)
        if name not in names
    )
    assert not missing, f"queries loaded by name with no SQL file: {missing}"


def test_no_result_is_left_half_read() -> None:
    # DuckDB keeps a result's snapshot until it is read to the end: a fetchone() left
    # on an idle thread's cursor kept retention's deleted rows from being reclaimed
    # (tests/flowscope/test_retention.py). Results are read whole: fetchall(), arrow().
    half_read = [
        str(path.relative_to(ROOT))
        for path, text in _python_sources().items()
        if path.is_relative_to(ROOT) and "bench" not in path.parts
        for _ in re.finditer(r"\.fetch(?:one|many)\(", text)
    ]
    # The sandbox's fetchone: its transaction is rolled back, which ends the result.
    assert half_read == ["flowscope/store/sandbox.py"]
