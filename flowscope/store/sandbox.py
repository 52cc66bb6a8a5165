"""The read-only SQL sandbox behind the SQL endpoint.

One SELECT/WITH statement, no file, network, ATTACH, INSTALL/LOAD, PRAGMA or SET;
a time limit and a row limit; a refusal names the rule that refused the query.
The checks are layered: DuckDB's own parser classifies the statement, DuckDB's
parse tree (``json_serialize_sql``) is walked for table references and function
calls, and the query runs inside a transaction that is always rolled back.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import string
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb
from duckdb.sqltypes import DuckDBPyType

from flowscope.store import sql_files
from flowscope.store.database import Database, file_failure
from flowscope.store.sql_hints import hinted


class SqlRefused(Exception):
    """The sandbox refused the query; ``rule`` is the short id of the rule that did."""

    def __init__(self, rule: str, reason: str) -> None:
        self.rule = rule
        self.message = f"refused by rule {rule}: {reason}"
        super().__init__(self.message)


class SqlError(Exception):
    """The query was allowed but DuckDB failed to run it (unknown column, bad cast...)."""


class SqlStopped(SqlError):
    """The query was stopped from outside (a server stopping), not by its time limit."""


def stopped_by_close(database: Database) -> SqlStopped:
    """A query stopped by the close of its file: a server's stop, or close() on another
    thread of a reader's."""
    return SqlStopped(f"the query was stopped: {database.stop_reason}")


@dataclass(frozen=True)
class SqlResult:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    elapsed_ms: float
    # DuckDB's name of each column's type (TIMESTAMP_NS, DOUBLE, MAP(VARCHAR, VARCHAR),
    # ...): the values are JSON data, which says no more than text for a time.
    types: list[str]


_ONLY = "only one SELECT or WITH query over the flowscope tables is allowed"
MAX_SQL_CHARS = 100_000
# Rows stop once the values hold about this many characters: the row limit alone let
# 300 rows of 1 MB NUL strings make a 1.8 GB answer.
MAX_ANSWER_CHARS = 32_000_000
# Lists, maps, structs and JSON in a value nest at most this deep: 3,000 levels of JSON
# made a RecursionError (a 500, a CLI traceback) in converting and sizing the value.
MAX_VALUE_DEPTH = 100
_BY_TYPE: dict[str, tuple[str, str]] = {
    "PRAGMA": ("no-pragma", "PRAGMA statements are not allowed"),
    "SET": ("no-set", "SET/RESET statements change settings and are not allowed"),
    "VARIABLE_SET": ("no-set", "SET VARIABLE statements are not allowed"),
    "ATTACH": ("no-attach", "ATTACH opens other databases and is not allowed"),
    "DETACH": ("no-attach", "DETACH is not allowed"),
    "LOAD": ("no-extensions", "INSTALL and LOAD of extensions are not allowed"),
    "EXTENSION": ("no-extensions", "extension statements are not allowed"),
    "COPY": ("no-file-access", "COPY reads or writes files and is not allowed"),
    "COPY_DATABASE": ("no-file-access", "COPY FROM DATABASE is not allowed"),
    "EXPORT": ("no-file-access", "EXPORT DATABASE writes files and is not allowed"),
    # A PIVOT without a list of values after IN (none, or a subquery): DuckDB first
    # creates a type of the column's values ("MULTI statements are not" named nothing
    # a user wrote).
    "MULTI": (
        "select-only",
        "the query runs several statements: a PIVOT whose IN is not a list of values "
        "(none, or a subquery) first creates a type of the column's values; name them: "
        "PIVOT ... ON col IN ('a', 'b') ...",
    ),
}
# First keywords of statements DuckDB files under another type (USE is SET, COPY
# FROM DATABASE is PRAGMA) or under a type this Python API does not know.
_BY_KEYWORD: dict[str, tuple[str, str]] = {
    "USE": ("no-attach", "USE switches databases and is not allowed"),
    "COPY": _BY_TYPE["COPY"],
    "INSTALL": _BY_TYPE["LOAD"],
    "LOAD": _BY_TYPE["LOAD"],
    "FORCE": _BY_TYPE["LOAD"],
    "UPDATE EXTENSIONS": _BY_TYPE["EXTENSION"],
    "IMPORT": ("no-file-access", "IMPORT DATABASE reads files and is not allowed"),
    "CHECKPOINT": ("read-only", "CHECKPOINT writes the database file and is not allowed"),
    "FORCE CHECKPOINT": ("read-only", "CHECKPOINT writes the database file and is not allowed"),
    # DuckDB's type for ANALYZE is VACUUM: "(VACUUM statements are not)" named nothing
    # the user wrote.
    "ANALYZE": ("select-only", f"{_ONLY} (ANALYZE statements are not)"),
}
_TABLES_ONLY = "only the flowscope tables can be queried"
_REASONS = {
    "no-file-access": f"reads local files; {_TABLES_ONLY}",
    "no-network": "reaches other servers or their credentials",
    "no-pragma": "is a PRAGMA in table-function form",
    "no-set": "changes settings",
    "no-environment": "reads the server's environment variables",
    "no-dynamic-sql": "runs SQL or scans a table named by a string, which the sandbox cannot check",
    "read-only": "changes the database file, a sequence or the log",
    "no-server-state": "reads the server's settings or its log",
    "crashes-duckdb": (
        "crashes DuckDB 2.0.1 on deeply nested JSON (a segfault, which would stop the "
        "server); the other json_* functions and ->, ->> read such values"
    ),
    "no-variant": (
        "makes or reads VARIANT values: DuckDB 2.0.1 crashes (a segfault, which would stop "
        "the server) reading one made of JSON nested thousands of levels deep; read JSON "
        "with the json_* functions, -> and ->>"
    ),
}
# Table functions refused, per rule (a trailing * matches any suffix); of these, the
# names in _SCALARS are refused as scalar calls too (``histogram`` is also an aggregate).
# The json_*_sql/plan scalars take SQL text: json_serialize_plan binds it (reading the
# files it names, unchecked), the others parse or rebuild it for a call that runs it.
_SQL_TEXT = (
    "json_serialize_plan json_serialize_sql json_deserialize_sql json_execute_serialized_sql"
)
# Functions that walk a JSON value by recursion, without a depth limit: one 10,000
# levels deep (repeat('[', 10000) || ...) crashed the process (crash fuzz).
_CRASHING = "json_contains json_transform json_transform_strict from_json from_json_strict"
# Without these and the type itself no query holds a VARIANT, so none can be made of
# JSON by an implicit cast either ([stats(1), j] casts j): converting one nested
# 5,000 levels deep to Python, or 20,000 to text, crashed the process (crash fuzz).
_VARIANTS = "stats variant_*"
_SCALARS = frozenset(
    {"getenv", "nextval", "setval", "setseed", "write_log", "current_setting"}
    | set(_SQL_TEXT.split())
    | set(_CRASHING.split())
    | {name for name in _VARIANTS.split() if not name.endswith("*")}
)
_SCALAR_PREFIXES = tuple(name[:-1] for name in _VARIANTS.split() if name.endswith("*"))
_REFUSED_FUNCTIONS = {
    "no-file-access": "glob sniff_csv read_* parquet_* iceberg_* delta_* sqlite_*",
    "no-network": "postgres_* mysql_* duckdb_secrets which_secret",
    "no-pragma": "pragma_*",
    "no-set": "set_* setseed enable_logging disable_logging enable_profiling disable_profiling",
    "no-environment": "getenv",
    "no-dynamic-sql": f"query query_table histogram histogram_values {_SQL_TEXT}",
    "read-only": "checkpoint force_checkpoint nextval setval write_log truncate_duckdb_logs",
    "no-server-state": "current_setting",
    "crashes-duckdb": _CRASHING,
    "no-variant": _VARIANTS,
}
# DuckDB's built-in views over what the refused functions above return (and any
# pragma_* name: the view pragma_database_list).
_REFUSED_VIEWS = {"pg_settings": "no-server-state", "duckdb_logs": "no-server-state"}
_FUNCTIONS = {
    n: r for r, names in _REFUSED_FUNCTIONS.items() for n in names.split() if "*" not in n
}
_PREFIXES = [
    (n[:-1], r) for r, names in _REFUSED_FUNCTIONS.items() for n in names.split() if "*" in n
]
_TABLE_FUNCTIONS = frozenset(
    "range generate_series unnest repeat repeat_row json_each json_tree test_all_types "
    "duckdb_columns duckdb_constraints duckdb_databases duckdb_dependencies duckdb_functions "
    "duckdb_indexes duckdb_keywords duckdb_schemas duckdb_sequences duckdb_tables duckdb_types "
    "duckdb_views pg_timezone_names icu_calendar_names".split()
)
_PATH_CHARS = "./\\:*?"
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_LINE_END = re.compile(r"[\r\n]")


def _past_leading_noise(sql: str) -> str:
    """``sql`` from its first keyword: past blank space, parentheses and comments as
    DuckDB reads them (a line comment also ends at a carriage return; block comments
    nest). A regex stopped at the first ``*/`` of ``/* /* */ */ USE memory``, and the
    refusal named a rule of DuckDB's statement type (SET) instead of USE's."""
    at, end = 0, len(sql)
    while at < end:
        if sql[at].isspace() or sql[at] == "(":
            at += 1
        elif sql.startswith("--", at):
            line_end = _LINE_END.search(sql, at)
            at = line_end.end() if line_end else end
        elif sql.startswith("/*", at):
            depth = 0
            while at < end:
                if sql.startswith("/*", at):
                    depth, at = depth + 1, at + 2
                elif sql.startswith("*/", at):
                    depth, at = depth - 1, at + 2
                    if depth == 0:
                        break
                else:
                    at += 1
        else:
            break
    return sql[at:]


_WORD = re.compile(r"[A-Za-z_]+")


def _first_keywords(sql: str) -> str:
    """The statement's first keyword (two for UPDATE EXTENSIONS and FORCE CHECKPOINT),
    upper case. A keyword ends where its letters do: `ANALYZE;`, `USE/**/memory` (split
    at blank space, "ANALYZE;" matched no keyword)."""
    rest = _past_leading_noise(sql)
    first = _WORD.match(rest)
    if first is None:
        return ""
    word = first[0].upper()
    if word in ("UPDATE", "FORCE"):
        second = _WORD.match(_past_leading_noise(rest[first.end() :]))
        pair = f"{word} {second[0].upper()}" if second else word
        if pair in ("UPDATE EXTENSIONS", "FORCE CHECKPOINT"):
            return pair
    return word


def _check_statement(cursor: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Rule layer 1: DuckDB's parser says what kind of statement this is."""
    try:
        sql.encode()
    except UnicodeEncodeError as exc:  # JSON's "\ud800": DuckDB's binding raised TypeError
        raise SqlRefused(
            "syntax",
            f"the query is not valid UTF-8 text: character {exc.start + 1} is a lone "
            f"surrogate ({sql[exc.start]!r})",
        ) from exc
    try:
        statements = cursor.extract_statements(sql)
    except duckdb.Error as exc:
        raise SqlRefused("syntax", f"DuckDB cannot parse the query: {without_stack(exc)}") from exc
    if not statements:
        raise SqlRefused("syntax", "no statement: the query is empty")
    if len(statements) > 1:
        raise SqlRefused(
            "one-statement", f"{len(statements)} statements given; send exactly one query"
        )
    keyword = _first_keywords(statements[0].query)
    try:
        kind = statements[0].type.name
    except ValueError as exc:  # a statement type this Python API has no name for
        raise SqlRefused(*_BY_KEYWORD.get(keyword, ("select-only", _ONLY))) from exc
    if kind == "SELECT":
        return
    if keyword in _BY_KEYWORD and kind in ("SET", "PRAGMA", "LOAD", "CALL", "VACUUM"):
        raise SqlRefused(*_BY_KEYWORD[keyword])
    # DuckDB's type of a few statements is another's (TRUNCATE is a DELETE): name what
    # the user wrote (sandbox review).
    said = _SAID_AS.get(keyword, kind.replace("_", " "))
    rule, reason = _BY_TYPE.get(kind, ("select-only", f"{_ONLY} ({said} statements are not)"))
    raise SqlRefused(rule, reason)


_SAID_AS = {
    "TRUNCATE": "TRUNCATE",
    "DEALLOCATE": "DEALLOCATE",
    "COMMENT": "COMMENT ON",
    "MERGE": "MERGE INTO",
}


def _function_rule(name: str, *, table: bool) -> tuple[str, str] | None:
    lowered = name.lower()
    if not table and lowered not in _SCALARS and not lowered.startswith(_SCALAR_PREFIXES):
        return None
    rule = _FUNCTIONS.get(lowered) or next((r for p, r in _PREFIXES if lowered.startswith(p)), None)
    if rule:
        return rule, _REASONS[rule]
    if lowered not in _TABLE_FUNCTIONS:
        allowed = ", ".join(sorted(_TABLE_FUNCTIONS))
        return "allowed-functions", f"is not an allowed table function (allowed: {allowed})"
    return None


def _check_name(parts: list[str]) -> None:
    for name in parts:
        if _URL.match(name):
            raise SqlRefused("no-network", f"{name!r} is a URL; {_TABLES_ONLY}")
        if any(ch in name for ch in _PATH_CHARS):
            raise SqlRefused("no-file-access", f"{name!r} looks like a file path; {_TABLES_ONLY}")
    last = parts[-1].lower() if parts else ""
    rule = _REFUSED_VIEWS.get(last) or ("no-pragma" if last.startswith("pragma_") else None)
    if rule:
        raise SqlRefused(rule, f"{parts[-1]} {_REASONS[rule]}")


class _Catalog:
    """The tables and views, read once per check on first use (a query naming 2,827
    dotted names ran one catalog query per name: 6.2 s, before its time limit began)."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection) -> None:
        self._cursor = cursor
        self._places: dict[str, list[tuple[str, str]]] | None = None
        self._widths: dict[str, int] | None = None

    def width(self, name: str) -> int:
        """The columns of the table or view ``name`` (the widest of that name), or
        ``UNKNOWN_WIDTH`` for one not in the catalog (a system view)."""
        if self._widths is None:
            rows = self._cursor.execute(sql_files.query("sandbox_widths")).fetchall()
            self._widths = {str(table): int(columns) for table, columns in rows}
        return self._widths.get(name.lower(), UNKNOWN_WIDTH)

    def holds(self, parts: list[str]) -> bool:
        if self._places is None:
            self._places = {}
            for name, database, schema in self._cursor.execute(
                sql_files.query("sandbox_catalog")
            ).fetchall():
                self._places.setdefault(name, []).append((database.lower(), schema.lower()))
        *prefix, table = parts
        wanted = [p.lower() for p in prefix]
        for database, schema in self._places.get(table.lower(), []):
            # Two parts name a schema or a database (of a table in its main schema), as
            # DuckDB's binder tries both.
            names = [[database, schema], [schema]]
            if schema == "main":
                names.append([database])
            if not wanted or wanted in names:
                return True
        return False


def _check_reference(catalog: _Catalog, parts: list[str]) -> None:
    """A table name is a table or a view; failing that, DuckDB would try it as a file.

    DuckDB joins the parts of ``a.csv`` (schema ``a``, table ``csv``) back into a file
    name when no such table exists, so the joined name is checked, unless the catalog
    holds that table or view (``main.otel_traces`` has a dot too)."""
    _check_name(parts)
    joined = ".".join(parts)
    if not any(ch in joined for ch in _PATH_CHARS) or catalog.holds(parts):
        return
    if len(parts) > 1 and catalog.holds(parts[-1:]):
        # A query ported from ClickHouse names the exporter's database (otel.otel_traces,
        # Grafana's "otel"."otel_traces"): "looks like a file path" sent users looking
        # for a file.
        prefix = ".".join(parts[:-1])
        raise SqlRefused(
            "no-file-access",
            f"{joined!r} is no table here: write {parts[-1]} (flowscope keeps its tables in "
            f"one database, with no {prefix!r}); a dotted name that is no table would be "
            "read as a file path",
        )
    _check_name([joined])


def _url_in(node: Any) -> str | None:
    if isinstance(node, str):
        return node if _URL.match(node) else None
    values = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    return next((url for url in map(_url_in, values) if url), None)


def _refuse_function(node: dict[str, Any], *, table: bool) -> None:
    name = str(node.get("function_name", ""))
    refusal = _function_rule(name, table=table)
    if refusal is None:
        return
    url = _url_in(node.get("arguments"))
    if url and refusal[0] == "no-file-access":
        raise SqlRefused("no-network", f"{name} would fetch {url!r}; {_TABLES_ONLY}")
    raise SqlRefused(refusal[0], f"{name} {refusal[1]}")


# Arguments DuckDB works on without stopping for the time limit, given as a value
# made as the query runs (or read from a column, which a subquery can fill with one of
# any length): each function's (position, parameter name, what it is, how many
# arguments it takes then, 0: any). Such an argument must be a string literal of at
# most MAX_NAME_CHARS (MAX_PATTERN_CHARS for a pattern). Crash fuzz, against a 10 s
# limit: list_aggregate([1], repeat('x', 10000000)) bound for 423 s and
# timezone(repeat('x', 10000000), ...) ~150 s (DuckDB looks such a name up, and for
# similar ones to suggest); regexp_extract_all(s, repeat('[a-z]', 50000)) ran 580 s.
_NAME, _ZONE, _PATTERN = "the aggregate's name", "the time zone", "the pattern"
_LITERAL_ARGUMENTS = {
    **{
        name: (1, "function_name", _NAME, 0)
        for name in ("list_aggregate", "array_aggregate", "list_aggr", "array_aggr", "aggregate")
    },
    "to_aggregate_state": (1, "name", _NAME, 0),
    "timezone": (0, "timezone", _ZONE, 2),  # also `x AT TIME ZONE zone`
    "make_timestamptz": (6, "timezone", _ZONE, 7),
    **{
        name: (1, "regex", _PATTERN, 0)
        for name in (
            "regexp_matches",  # also `s ~ p`
            "regexp_full_match",  # also `s SIMILAR TO p`
            "regexp_replace",
            "regexp_extract",
            "regexp_extract_all",
            "regexp_split_to_array",
            "string_split_regex",
            "str_split_regex",
        )
    },
    "regexp_split_to_table": (1, "pattern", _PATTERN, 0),
}
MAX_NAME_CHARS = 256
MAX_PATTERN_CHARS = 1_000
_WHY = {
    _NAME: "DuckDB looks it up, and for similar names to suggest",
    _ZONE: "DuckDB looks it up, and for similar names to suggest",
    _PATTERN: "DuckDB compiles and matches it",
}


def _check_literal_argument(node: dict[str, Any]) -> None:
    name = str(node.get("function_name", ""))
    literal_argument = _LITERAL_ARGUMENTS.get(name.lower())
    arguments = node.get("arguments")
    if literal_argument is None or not isinstance(arguments, list):
        return
    position, parameter, what, count = literal_argument
    given = [a for a in arguments if isinstance(a, dict)]
    if count and len(given) != count:
        return  # another form, without the name (timezone(ts), make_timestamptz(micros))
    by_name = [a for a in given if str(a.get("name", "")).lower() == parameter]
    if not by_name and len(given) <= position:
        return
    argument = (by_name or given[position : position + 1])[0].get("expression")
    most = MAX_PATTERN_CHARS if what == _PATTERN else MAX_NAME_CHARS
    if isinstance(argument, dict) and argument.get("class") == "CONSTANT":
        literal = argument.get("literal")
        if isinstance(literal, dict) and len(str(literal.get("text", ""))) <= most:
            return
    raise SqlRefused(
        "query-size",
        f"{name} takes {what} as a string literal of at most {most:,} characters: "
        f"{_WHY[what]} without stopping for the time limit, and one made as the query "
        "runs (or read from a column, which a subquery can fill) can be of any length",
    )


def _walk(
    node: Any,
    tables: list[list[str]],
    shows: list[list[str]],
    sizes: list[int],
    in_join: bool = False,
    ctes: dict[str, Any] | None = None,
    scope: frozenset[str] = frozenset(),
) -> None:
    """Rule layer 2: statements, table references and function calls in DuckDB's parse
    tree. Table names are collected in ``tables`` for the catalog check, and the names
    a ``SHOW x`` gives in ``shows``: a table x it describes, or the setting x when no
    table has that name (SHOW temp_directory), so a table it must be. ``sizes`` counts
    the ``*`` expressions and the select lists' entries, and keeps the most tables one
    FROM joins (``_check_sizes``); ``in_join``: ``node`` is a side of a join. ``scope``
    holds the CTEs a table name here may name (lower case): such a reference is
    counted, not checked against the catalog."""
    if isinstance(node, list):
        for item in node:
            _walk(item, tables, shows, sizes, ctes=ctes, scope=scope)
        return
    if not isinstance(node, dict):
        return
    entries = [e for e in (node.get("cte_map") or {}).get("map") or [] if isinstance(e, dict)]
    if entries:
        scope = _walk_ctes(entries, tables, shows, sizes, ctes, scope)
    kind = node.get("type")
    if kind == "JOIN" and not in_join:
        sizes[2] = max(sizes[2], _joined_tables(node, ctes or {}))
    if kind == "STAR":
        sizes[0] += 1
    if isinstance(node.get("select_list"), list):
        sizes[1] += len(node["select_list"])
    if isinstance(kind, str) and kind.endswith("_QUERY_NODE"):  # INSERT/UPDATE/DELETE in a WITH
        statement = kind.removesuffix("_QUERY_NODE")
        if statement == "COPY":
            raise SqlRefused(
                "no-file-access", f"COPY inside a WITH reads or writes files; {_TABLES_ONLY}"
            )
        raise SqlRefused("read-only", f"{statement} inside a WITH {_REASONS['read-only']}")
    if kind in ("BASE_TABLE", "SHOW_REF"):
        parts = [node.get("catalog_name"), node.get("schema_name"), node.get("table_name")]
        named = [str(p).strip('"') for p in parts if p]
        # The name as DuckDB has it (a quote kept: """x.csv" is no CTE x.csv), folded as
        # DuckDB folds a CTE's name, ASCII letters only (Python's lower() made the
        # Kelvin sign a k, and "É.csv" a CTE "é.csv" DuckDB read as a file; diff review).
        table = str(node.get("table_name") or "")
        cte = kind == "BASE_TABLE" and len(named) == 1 and _cte_name(table) in scope
        tables.append([] if cte else named)
        if kind == "SHOW_REF" and node.get("show_type") == "SHOW" and named:
            shows.append(named)
    if kind == "TABLE_FUNCTION" and isinstance(node.get("function"), dict):
        _refuse_function(node["function"], table=True)
    if isinstance(node.get("function_name"), str):  # scalar, aggregate and window calls
        _refuse_function(node, table=False)
        _check_literal_argument(node)
    if node.get("class") == "TYPE" and str(node.get("type_name", "")).lower() == "variant":
        raise SqlRefused("no-variant", f"the VARIANT type {_REASONS['no-variant']}")
    for key, value in node.items():
        if isinstance(value, dict | list) and not (entries and key == "cte_map"):
            inner = scope
            if kind == "RECURSIVE_CTE_NODE" and key == "right":
                # Only the recursive part sees its own CTE; the anchor's name is a file
                # (``WITH RECURSIVE "x.csv" AS (SELECT * FROM "x.csv" UNION ALL ...)``).
                inner = scope | {_cte_name(str(node.get("cte_name", "")))}
            _walk(value, tables, shows, sizes, in_join=kind == "JOIN", ctes=ctes, scope=inner)


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _cte_name(name: str) -> str:
    """A CTE's name as DuckDB compares it: ASCII letters in either case alike."""
    return name.translate(_ASCII_LOWER)


def _walk_ctes(
    entries: list[dict[str, Any]],
    tables: list[list[str]],
    shows: list[list[str]],
    sizes: list[int],
    ctes: dict[str, Any] | None,
    scope: frozenset[str],
) -> frozenset[str]:
    """Walk a WITH's CTEs, each seeing only those before it (a recursive one itself in
    its recursive part, ``_walk``), as DuckDB binds them; returns the scope of the query
    they belong to.

    A name is taken for a CTE only where DuckDB would bind it to one: elsewhere it reads
    ``"x.csv"`` as a file, so a CTE of that name must not let a reference outside its
    query through (``SELECT * FROM (WITH "x.csv" AS (...) SELECT 1), "x.csv"``)."""
    for entry in entries:
        _walk(entry.get("value"), tables, shows, sizes, ctes=ctes, scope=scope)
        scope = scope | {_cte_name(str(entry.get("key", "")))}
    return scope


# How deep subqueries and CTEs are looked into for the tables of one join problem.
_MAX_EXPANSION = 8


def _joined_tables(join: dict[str, Any], ctes: dict[str, Any]) -> int:
    """The tables (and table functions, VALUES lists) DuckDB orders as one join problem
    from this join, counted up to just past ``MAX_JOINED_TABLES``: a subquery's and a
    CTE's own joins count where they are joined, as DuckDB plans them together (eight
    subqueries of 64 tables each joined took 57 s; diff review). A CTE counts wherever
    it is named, materialized or not, and a set operation as all of its branches."""
    count = 0
    stack: list[tuple[Any, int]] = [(join, 0)]
    while stack and count <= MAX_JOINED_TABLES:
        ref, depth = stack.pop()
        kind = ref.get("type") if isinstance(ref, dict) else None
        name = str(ref.get("table_name", "")).lower() if kind == "BASE_TABLE" else ""
        if kind == "JOIN":
            stack.extend(((ref.get("left"), depth), (ref.get("right"), depth)))
        elif kind == "SUBQUERY" and depth < _MAX_EXPANSION:
            node = (ref.get("subquery") or {}).get("node")
            stack.extend((side, depth + 1) for side in _from_tables(node))
        elif name in ctes and not ref.get("schema_name") and depth < _MAX_EXPANSION:
            stack.extend((side, depth + 1) for side in _from_tables(ctes[name]))
        else:
            count += 1
    return count


def _from_tables(node: Any) -> list[Any]:
    """What a query node selects from: its FROM, or each branch's of a set operation
    (one level; deeper ones count as one table each)."""
    if not isinstance(node, dict):
        return [None]
    if node.get("type") == "SELECT_NODE":
        return [node.get("from_table")]
    branches = node.get("children") or [node.get("left"), node.get("right")]
    return [b.get("from_table") if isinstance(b, dict) else None for b in branches]


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    """Every object of a parse tree, without recursion (a tree can be deep)."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            yield item
            stack.extend(v for v in item.values() if isinstance(v, dict | list))


def _ctes(tree: Any, found: dict[str, Any]) -> dict[str, Any]:
    """Every CTE the statement defines, by name (lower case), wherever it is."""
    for node in _nodes(tree):
        for entry in (node.get("cte_map") or {}).get("map") or []:
            if isinstance(entry, dict) and isinstance(entry.get("value"), dict):
                found[str(entry.get("key", "")).lower()] = entry["value"].get("query_node")
    return found


def _check_tree(cursor: duckdb.DuckDBPyConnection, sql: str, *, sizes: bool = True) -> None:
    rows = cursor.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchall()
    tables: list[list[str]] = []
    shows: list[list[str]] = []
    counts = [0, 0, 0]
    try:
        tree = json.loads(rows[0][0]) if rows else {"error": True, "error_message": "no answer"}
        if not tree.get("error"):
            statements = tree.get("statements", [])
            _walk(statements, tables, shows, counts, ctes=_ctes(statements, {}))
    except RecursionError as exc:
        raise SqlRefused("syntax", "the query is nested too deeply to be checked") from exc
    if tree.get("error"):
        raise SqlRefused(
            "select-only",
            f"the query cannot be inspected ({tree.get('error_message')}); "
            "write it as a plain SELECT (PIVOT needs an IN list of values)",
        )
    catalog = _Catalog(cursor)
    if sizes:
        _check_sizes(counts[0], counts[1], len(tables), counts[2])
        statements = tree.get("statements")
        _check_widths(statements if isinstance(statements, list) else [], catalog)
    for parts in tables:
        if parts:  # not a CTE's name
            _check_reference(catalog, parts)
    for parts in shows:
        if not catalog.holds(parts):
            raise SqlRefused(
                "no-server-state", f"SHOW {'.'.join(parts)} {_REASONS['no-server-state']}"
            )


# Binding a query is not stopped by the time limit, and DuckDB binds a wide select
# list in time that grows with the square of its columns: 45,000 `*` (which the size
# limit let through) would bind for most of an hour, and 1,000 over otel_traces take
# 0.6 s (sandbox review). These bound the columns a query can name.
MAX_STARS = 64
MAX_SELECT_ITEMS = 5_000
MAX_TABLE_REFERENCES = 256
MAX_COLUMNS = 2_000  # of the answer, as DESCRIBE names them
# Nor is planning stopped, and DuckDB orders a join's tables (subqueries' and CTEs'
# joined with them) in time that grows steeply with their number: 64 took 0.12 s,
# 100 0.9 s, 128 3.2 s, 255 96 s against a 10 s limit (sandbox review).
MAX_JOINED_TABLES = 64


def _check_sizes(stars: int, select_items: int, tables: int, joined: int = 0) -> None:
    for count, limit, what in (
        (stars, MAX_STARS, "* expressions (each stands for all of a table's columns)"),
        (select_items, MAX_SELECT_ITEMS, "entries in its select lists"),
        (tables, MAX_TABLE_REFERENCES, "table references"),
        (
            joined,
            MAX_JOINED_TABLES,
            "tables joined together (a subquery's or CTE's counted where it is joined)",
        ),
    ):
        if count > limit:
            raise SqlRefused(
                "query-size",
                f"the query has {count:,} {what}; the limit is {limit:,}, which bounds the "
                "work of checking, binding and planning it before its time limit applies",
            )


MAX_TOTAL_WIDTH = 50_000  # columns of all its SELECTs together, as estimated
MAX_STRUCT_FIELDS = 1_000  # of a struct literal: s.* of 2,000 fields x 20 bound for 7 s
MAX_LAMBDA_DEPTH = 8  # 20 nested lambdas took 3.3 GB to bind (diff review)
MAX_BOUND_REFERENCES = 4_096  # table references once CTEs are put in where named
# Leaves of one column's type (struct fields, list items' fields, ...): the wrapping
# ``_guarded`` writes visits each; 2^14 made a 10.6 MB query (diff review).
MAX_TYPE_LEAVES = 2_000
MAX_GROUPING_SETS = 1_024  # a CUBE of 15 columns (32,768) ran 23 s past a 1 s limit
UNKNOWN_WIDTH = 64  # the columns assumed of a table function or a system view


@dataclass
class _Sizing:
    """What ``_check_widths`` estimates with: the catalog's widths, the widest struct
    literal of the query (what ``s.*`` or ``unnest(s)`` may expand to), and each
    SELECT's estimated width."""

    catalog: _Catalog
    struct_width: int
    # The fields of every struct literal multiplied: how many leaves a struct built of
    # them, one inside the next through CTEs, may hold (``unnest(s, recursive := true)``
    # of 16 nested pairs expanded to 65,536 columns, bound for 134 s; diff review).
    struct_leaves: int = 1
    widths: list[int] = field(default_factory=list)
    # Table references as DuckDB binds them: a CTE's body again at each reference (a
    # chain of 22 CTEs each joining the one before to itself bound 2^22 tables: 15 s
    # and 2.1 GB under a 1 s limit; diff review).
    references: int = 0
    cte_references: dict[str, int] = field(default_factory=dict)


def _struct_literals(tree: Any) -> list[int]:
    """The fields of each struct literal (``{...}``, ``struct_pack``, ``row``) in ``tree``."""
    return [
        len(node.get("arguments") or node.get("children") or [])
        for node in _nodes(tree)
        if str(node.get("function_name", "")).lower() in ("struct_pack", "row")
    ]


def _check_widths(statements: list[Any], catalog: _Catalog) -> None:
    """Refuse a query whose SELECTs would expand too wide to bind within the limit:
    each ``*`` stands for its FROM's columns, nested ones multiply (32 ``*`` in two
    levels over 500 columns are 128,000 columns, bound for 36 s under a 1 s limit;
    diff review). Estimated from the parse tree, from above: a join as wide as its
    sides together, a table function as ``UNKNOWN_WIDTH``."""
    literals = _struct_literals(statements)
    leaves = 1
    for count in literals:
        leaves = min(leaves * max(count, 1), 10**9)
    sizing = _Sizing(catalog, max(literals, default=0), leaves)
    if sizing.struct_width > MAX_STRUCT_FIELDS:
        raise SqlRefused(
            "query-size",
            f"a struct of {sizing.struct_width:,} fields; the limit is {MAX_STRUCT_FIELDS:,} "
            "(each field may become a column, which DuckDB binds before the time limit applies)",
        )
    try:
        for statement in statements:
            if isinstance(statement, dict) and isinstance(statement.get("node"), dict):
                _node_width(statement["node"], {}, sizing)
    except RecursionError as exc:
        raise SqlRefused("syntax", "the query is nested too deeply to be checked") from exc
    if sizing.references > MAX_BOUND_REFERENCES:
        raise SqlRefused(
            "query-size",
            f"it names tables over {MAX_BOUND_REFERENCES:,} times once its CTEs are put in "
            "where they are named (each time binds the CTE again); that limit bounds the work "
            "of binding it before its time limit applies",
        )
    widest, total = max(sizing.widths, default=0), sum(sizing.widths)
    if widest > MAX_COLUMNS or total > MAX_TOTAL_WIDTH:
        raise SqlRefused(
            "query-size",
            f"its widest SELECT would be about {widest:,} columns ({total:,} in all, each * "
            f"counted as the columns it stands for); the limits are {MAX_COLUMNS:,} and "
            f"{MAX_TOTAL_WIDTH:,}, which bound the work of binding it before its time limit "
            "applies",
        )


def _node_width(node: dict[str, Any], ctes: dict[str, int], sizing: _Sizing) -> int:
    """The estimated columns of a query node; each SELECT's go into ``widths``."""
    ctes = dict(ctes)
    for entry in (node.get("cte_map") or {}).get("map") or []:
        query = (entry.get("value") or {}).get("query_node")
        if isinstance(query, dict):
            name = str(entry.get("key", "")).lower()
            before = sizing.references
            ctes[name] = _node_width(query, ctes, sizing)
            sizing.cte_references[name] = max(1, sizing.references - before)
    kind = node.get("type")
    if kind == "SELECT_NODE":
        sets = node.get("group_sets") or []
        if len(sets) > MAX_GROUPING_SETS:
            raise SqlRefused(
                "query-size",
                f"the query groups by {len(sets):,} grouping sets (CUBE, ROLLUP); the limit "
                f"is {MAX_GROUPING_SETS:,}",
            )
        source = _ref_width(node.get("from_table"), ctes, sizing)
        items = node.get("select_list") or []
        width = sum(_item_width(item, source, sizing) for item in items)
        sizing.widths.append(width)
    else:  # a set operation, a recursive CTE: as wide as its widest side
        parts = [node.get("left"), node.get("right"), *(node.get("children") or [])]
        found = [_node_width(p, ctes, sizing) for p in parts if isinstance(p, dict)]
        width = max(found, default=UNKNOWN_WIDTH)
    # The expressions everywhere else (a scalar, EXISTS or IN subquery; a set
    # operation's ORDER BY and LIMIT): each place left out was a way around the limits
    # (diff reviews).
    for key, value in node.items():
        if key not in _QUERY_PARTS:
            _expression_subqueries(value, ctes, sizing)
    return width


# The parts of query nodes and FROM items that the width estimate follows itself.
_QUERY_PARTS = frozenset(
    {"from_table", "cte_map", "left", "right", "children", "source", "subquery", "query"}
)


def _item_width(item: Any, source: int, sizing: _Sizing) -> int:
    """The estimated columns of one select item over ``source`` columns: a ``*`` all of
    them; one qualified by a name (a table's, or a struct column's: ``s.*``) or an
    ``unnest`` (a struct's fields) as many as the widest struct literal of the query,
    a recursive ``unnest`` as their fields multiplied, at least ``UNKNOWN_WIDTH`` (the
    flowscope tables' structs have fewer)."""
    struct = max(sizing.struct_width, UNKNOWN_WIDTH)
    if _has_star(item):
        qualified = isinstance(item, dict) and bool(item.get("relation_name"))
        return max(source, struct) if qualified else source
    if _holds(item, lambda n: str(n.get("function_name", "")).lower() in ("unnest", "unpack")):
        recursive = _holds(item, lambda n: str(n.get("name", "")).lower() == "recursive")
        return max(struct, sizing.struct_leaves) if recursive else struct
    return 1


def _holds(expression: Any, test: Callable[[dict[str, Any]], bool]) -> bool:
    """Whether a node of ``expression`` outside its subqueries passes ``test``."""
    if isinstance(expression, list):
        return any(_holds(item, test) for item in expression)
    if not isinstance(expression, dict) or expression.get("class") == "SUBQUERY":
        return False
    return test(expression) or any(
        _holds(v, test) for v in expression.values() if isinstance(v, dict | list)
    )


def _has_star(expression: Any) -> bool:
    """Whether a select item expands a ``*`` (``COLUMNS(*) + 1`` too), not counting
    one in a subquery of it (``count(*)`` has none)."""
    return _holds(expression, lambda n: n.get("class") == "STAR")


def _expression_subqueries(
    expression: Any, ctes: dict[str, int], sizing: _Sizing, lambdas: int = 0
) -> None:
    """Size the queries within ``expression``, and refuse lambdas nested deeper than
    ``MAX_LAMBDA_DEPTH`` (``lambdas``: the lambda bodies it is in)."""
    if isinstance(expression, list):
        for item in expression:
            _expression_subqueries(item, ctes, sizing, lambdas)
        return
    if not isinstance(expression, dict):
        return
    if expression.get("class") == "SUBQUERY":
        subquery = (expression.get("subquery") or {}).get("node")
        if isinstance(subquery, dict):
            _node_width(subquery, ctes, sizing)
        _expression_subqueries(expression.get("child"), ctes, sizing, lambdas)
        return
    if str(expression.get("type", "")).endswith("_NODE") and "class" not in expression:
        _node_width(expression, ctes, sizing)  # a query where an expression may be
        return
    if expression.get("class") == "LAMBDA":
        # Counted through the bodies only: `j -> 'a' -> 'b'` (JSON) parses as lambdas
        # nested through their left sides, and was refused as nested lambdas.
        if lambdas + 1 > MAX_LAMBDA_DEPTH:
            raise SqlRefused(
                "query-size",
                f"lambdas nested over {MAX_LAMBDA_DEPTH} deep; DuckDB binds each level in "
                "twice the time and memory of the one inside it, before the time limit applies",
            )
        _expression_subqueries(expression.get("lhs"), ctes, sizing, lambdas)
        _expression_subqueries(expression.get("expr"), ctes, sizing, lambdas + 1)
        return
    for value in expression.values():
        if isinstance(value, dict | list):
            _expression_subqueries(value, ctes, sizing, lambdas)


def _ref_width(ref: Any, ctes: dict[str, int], sizing: _Sizing) -> int:
    """The estimated columns of a FROM item."""
    if not isinstance(ref, dict):
        return 0
    kind = ref.get("type")
    for key, value in ref.items():  # VALUES rows, PIVOT's aggregates, a join's condition
        if key not in _QUERY_PARTS:
            _expression_subqueries(value, ctes, sizing)
    if kind == "SHOW_REF":  # DESCRIBE or SUMMARIZE binds its query
        query = ref.get("query")
        if isinstance(query, dict):
            _node_width(query, ctes, sizing)
        return UNKNOWN_WIDTH
    if kind == "PIVOT":
        # Each IN list multiplies the columns (45 x 45 x 45 values: 91,125 columns), for
        # each aggregate.
        source = _ref_width(ref.get("source"), ctes, sizing)
        columns = 1
        for pivot in ref.get("pivots") or []:
            columns *= max(1, len(pivot.get("entries") or []))
        return columns * max(1, len(ref.get("aggregates") or [])) + source

    if kind == "EMPTY":
        return 0
    if kind == "BASE_TABLE":
        name = str(ref.get("table_name", "")).lower()
        if name in ctes and not ref.get("schema_name"):
            sizing.references = min(
                sizing.references + sizing.cte_references.get(name, 1), MAX_BOUND_REFERENCES + 1
            )
            return ctes[name]
        sizing.references += 1
        return sizing.catalog.width(name)
    if kind == "SUBQUERY":
        subquery = (ref.get("subquery") or {}).get("node")
        return _node_width(subquery, ctes, sizing) if isinstance(subquery, dict) else 0
    if kind == "JOIN":
        return sum(_ref_width(ref.get(side), ctes, sizing) for side in ("left", "right"))
    if kind == "EXPRESSION_LIST":
        values = ref.get("values") or []
        return len(values[0]) if values and isinstance(values[0], list) else 0
    return UNKNOWN_WIDTH


def _check_width(described: _Described) -> None:
    names = described[0]
    if len(names) > MAX_COLUMNS:
        raise SqlRefused(
            "answer-size",
            f"the answer has {len(names):,} columns; the limit is {MAX_COLUMNS:,}; select fewer",
        )


def check_sql(cursor: duckdb.DuckDBPyConnection, sql: str, *, sizes: bool = True) -> None:
    """Raise ``SqlRefused`` unless ``sql`` is one SELECT the sandbox allows. ``sizes``:
    also bound its width (False for the sandbox's own wrapping of a checked query,
    whose entries a user did not write)."""
    _check_statement(cursor, sql)
    _check_tree(cursor, sql, sizes=sizes)


def _without_trailing(sql: str) -> str:
    """``sql`` minus trailing semicolons and comments, so it can be a subquery."""
    tokens = duckdb.tokenize(sql)
    cut = len(sql)
    for position, kind in reversed(tokens):
        text = sql[position:cut].strip()
        if kind != duckdb.token_type.comment and text != ";":
            break
        cut = position
    return sql[:cut]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _identifier(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _text_expr(
    expr: str, kind: DuckDBPyType | None, depth: int = 0, lambdas: int = 0
) -> str | None:
    """SQL for ``expr``'s value with the times Python cannot hold made ISO 8601 text:
    nanosecond ones (a datetime keeps microseconds) and zoned ones (no pytz needed),
    in lists, structs and maps. None when the type holds no such time. A type Python
    cannot name (``kind`` None: an aggregate's state) comes as its text; so does a
    list or map that holds such times ``MAX_LAMBDAS`` lists or maps deep (``lambdas``:
    how deep this one is)."""
    if kind is None:
        return f"CAST({expr} AS VARCHAR)"
    name = str(kind.id)  # a plain str: the stubs do not know every id (timestamptz_ns)
    if name == "timestamp_ns":
        return f"strftime({expr}, '%Y-%m-%dT%H:%M:%S.%n')"
    if name == "timestamp with time zone":
        return f"strftime({expr} AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ')"
    if name == "timestamptz_ns":
        return f"strftime({expr} AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%nZ')"
    if name in ("time with time zone", "time_ns"):
        return f"CAST({expr} AS VARCHAR)"
    # Python holds an infinite date or timestamp as its last (or first) one, so
    # 9999-12-31 and 0001-01-01, real dates, came out as "infinity" / "-infinity".
    # Outside years 1-9999 (which ISO 8601 text cannot hold without a sign), DuckDB's
    # own text, as before: '0045-03-15 (BC)'.
    if name in _DATES:
        form = "%Y-%m-%d" if name == "date" else "%Y-%m-%dT%H:%M:%S.%f"
        return (
            f"CASE WHEN year({expr}) BETWEEN 1 AND 9999 OR isinf({expr}) "
            f"THEN strftime({expr}, '{form}') ELSE CAST({expr} AS VARCHAR) END"
        )
    var = f"v{depth}"
    if name in ("list", "array", "map") and lambdas >= MAX_LAMBDAS:
        return None if not _holds_times(kind) else f"CAST({expr} AS VARCHAR)"
    if name in ("list", "array"):
        inner = _text_expr(var, _children(kind)[0][1], depth + 1, lambdas + 1)
        return None if inner is None else f"list_transform({expr}, lambda {var}: {inner})"
    if name == "struct":
        fields = _member_texts(expr, _children(kind), "struct_extract", depth, lambdas)
        if fields is None:
            return None
        packed = ", ".join(f"{_identifier(field)} := {text}" for field, text in fields)
        return f"CASE WHEN {expr} IS NULL THEN NULL ELSE struct_pack({packed}) END"
    if name == "union":
        # The first child is the union's tag (UTINYINT), not a member.
        members = _member_texts(expr, _children(kind)[1:], "union_extract", depth, lambdas)
        if members is None:
            return None
        # One union_value per member: DuckDB's CASE unites them into one union type.
        cases = " ".join(
            f"WHEN {_literal(tag)} THEN union_value({_identifier(tag)} := {text})"
            for tag, text in members
        )
        return f"CASE union_tag({expr}) {cases} END"
    if name == "map":
        (_, key_kind), (_, value_kind) = _children(kind)
        if key_kind.id in _NESTED:
            # Python gets such a map as {"key": [...], "value": [...]} (a list is no dict
            # key): the keys become their JSON text.
            key: str | None = f"CAST(to_json({var}.key) AS VARCHAR)"
        else:
            key = _text_expr(f"{var}.key", key_kind, depth + 1, lambdas + 1)
        value = _text_expr(f"{var}.value", value_kind, depth + 1, lambdas + 1)
        if key is None and value is None:
            return None
        entry = f"struct_pack(key := {key or var + '.key'}, value := {value or var + '.value'})"
        return f"map_from_entries(list_transform(map_entries({expr}), lambda {var}: {entry}))"
    return None


_NESTED = frozenset({"list", "array", "struct", "map", "union", "variant"})
# DuckDB binds lambdas nested in lambdas in time and memory that double with each
# level: 17 lists of a zoned time took 6 s (past the time limit, which binding does
# not heed) and 1.5 GB, and 21 would take ~24 GB.
MAX_LAMBDAS = 4
_TIMES = frozenset(
    {"timestamp_ns", "timestamp with time zone", "timestamptz_ns", "time with time zone", "time_ns"}
)
# Made text too, where lambdas may reach them (a list of them MAX_LAMBDAS deep stays as
# it is): Python holds their infinities as real dates.
_DATES = frozenset({"date", "timestamp", "timestamp_s", "timestamp_ms"})
_HAS_CHILDREN = frozenset({"list", "array", "struct", "map", "union", "tuple"})


def _holds_times(kind: DuckDBPyType) -> bool:
    """Whether ``kind`` holds a time ``_text_expr`` makes text (without recursion)."""
    kinds = [kind]
    while kinds:
        kind = kinds.pop()
        if kind.id in _TIMES:
            return True
        if kind.id in _HAS_CHILDREN:
            kinds.extend(child for _, child in _children(kind))
    return False


def _type_shape(kind: DuckDBPyType) -> tuple[int, int]:
    """How many levels of lists, structs and maps ``kind`` nests, and how many types
    without children it holds (without recursion); the walk stops once the leaves pass
    ``MAX_TYPE_LEAVES``, a type refused for them whatever its depth."""
    deepest = leaves = 0
    kinds = [(kind, 0)]
    while kinds and leaves <= MAX_TYPE_LEAVES:
        kind, depth = kinds.pop()
        deepest = max(deepest, depth)
        children = _children(kind) if kind.id in _HAS_CHILDREN else []
        if children:
            kinds.extend((child, depth + 1) for _, child in children)
        else:
            leaves += 1
    return deepest, leaves


def _member_texts(
    expr: str, members: list[tuple[str, DuckDBPyType]], extract: str, depth: int, lambdas: int
) -> list[tuple[str, str]] | None:
    """(name, SQL) per member of a struct or union (``extract`` reads one out), each
    member's value made text as ``_text_expr`` does where it needs to be; None when no
    member holds such a time."""
    values = [(name, f"{extract}({expr}, {_literal(name)})", child) for name, child in members]
    texts = [_text_expr(value, child, depth + 1, lambdas) for _, value, child in values]
    if all(text is None for text in texts):
        return None
    return [(name, text or value) for (name, value, _), text in zip(values, texts, strict=True)]


def _children(kind: DuckDBPyType) -> list[tuple[str, DuckDBPyType]]:
    # An ARRAY's children also hold its size, an ENUM's its values: only types matter.
    return [(name, child) for name, child in kind.children if isinstance(child, DuckDBPyType)]


def _size_expr(expr: str, kind: DuckDBPyType | None) -> str | None:
    """SQL for about how many characters ``expr``'s value takes (strings by their
    length, blobs by their bytes, bit strings by their bits, lists by their items and
    those items' text); None for a fixed-size type.
    At most one lambda deep: DuckDB binds nested lambdas in time and memory that
    double with each level (16 levels of lists took 4.6 s and 1.7 GB), so a list of
    nested values is measured by its text. Any other type, and one Python cannot name
    (``kind`` None), by its text: a GEOMETRY of 200 MB went unmeasured into Python."""
    if kind is None:
        return _text_length(expr)
    name = kind.id
    if name in _FIXED_SIZE:
        return None
    if name == "varchar":
        return f"coalesce(length({expr}), 0)"
    if name == "blob":
        return f"coalesce(octet_length({expr}), 0)"
    if name == "bit":  # written one character a bit: its bytes counted 8x too few
        return f"coalesce(bit_length({expr}), 0)"
    if name in ("list", "array"):
        return _list_size(expr, _children(kind)[0][1])
    if name == "struct":
        members = [
            _size_expr(f"struct_extract({expr}, {_literal(field)})", child)
            for field, child in _children(kind)
        ]
        sized = [member for member in members if member is not None]
        # Summed flat, as a row's columns are: a chain of + nested a level a member,
        # and a struct of 170 lists was refused as too deep to be checked.
        return f"list_sum([{', '.join(sized)}])" if sized else None
    if name == "map":
        (_, key_kind), (_, value_kind) = _children(kind)
        keys = _list_size(f"map_keys({expr})", key_kind)
        return f"{keys} + {_list_size(f'map_values({expr})', value_kind)}"
    return _text_length(expr)  # bignum, variant, union, geometry, and types to come


_FIXED_SIZE = frozenset(
    "boolean tinyint smallint integer bigint hugeint utinyint usmallint uinteger ubigint "
    "uhugeint float double decimal date time time_ns timestamp timestamp_s timestamp_ms "
    "timestamp_ns timestamptz_ns interval uuid enum null".split()
    + ["time with time zone", "timestamp with time zone"]
)


def _text_length(expr: str) -> str:
    return f"coalesce(length(CAST({expr} AS VARCHAR)), 0)"


def _list_size(expr: str, item: DuckDBPyType) -> str:
    """``_size_expr`` of a list (or array) of ``item``s."""
    items = f"2 * coalesce(len({expr}), 0)"  # a list of a billion numbers is large too
    if item.id in _NESTED:
        return _text_length(expr)
    # Numbers and times by their text: counted 2 characters each, a list of 15M
    # BIGINTs of 19 digits got 10x past the cap into Python (2.8 GB).
    inner = _size_expr("z", item) or "length(CAST(z AS VARCHAR))"
    return f"{items} + coalesce(list_sum(list_transform({expr}, lambda z: {inner})), 0)"


# The name of the size column a guarded query adds last (``_guarded``).
_SIZE_COLUMN = "flowscope_row_bytes"


def _guarded(sql: str, kinds: list[DuckDBPyType | None]) -> tuple[str, bool] | None:
    """``sql`` with its columns' times as text (``_text_expr``) and, when a value can
    be large, a last column with the row's size in bytes (``_size_expr``): a row over
    ``MAX_ANSWER_CHARS`` comes with its values NULL, so no value that big is ever
    made a Python object (a list of 30 strings of 100 MB took 8.8 GB before it was
    refused). None when neither applies; else the SQL and whether it is guarded."""
    names = [f"c{index}" for index in range(len(kinds))]
    texts = [_text_expr(name, kind) for name, kind in zip(names, kinds, strict=True)]
    sizes = [_size_expr(name, kind) for name, kind in zip(names, kinds, strict=True)]
    sized = [size for size in sizes if size is not None]
    if not sized and all(text is None for text in texts):
        return None
    exprs = [text or name for name, text in zip(names, texts, strict=True)]
    body = _without_trailing(sql)
    if not sized:
        return (
            f"SELECT {', '.join(exprs)} FROM (\n{body}\n) AS sandboxed({', '.join(names)})",
            False,
        )
    inner = (
        # One flat sum: `a + b + ...` nests a level a column, and 330 text columns
        # were refused as nested too deeply to be checked.
        f"SELECT {', '.join(exprs)}, list_sum([{', '.join(sized)}]) AS {_SIZE_COLUMN} "
        f"FROM (\n{body}\n) AS sandboxed({', '.join(names)})"
    )
    over = f"{_SIZE_COLUMN} > {MAX_ANSWER_CHARS}"
    outer = [f"CASE WHEN {over} THEN NULL ELSE {name} END" for name in names]
    return (
        f"SELECT {', '.join(outer)}, {_SIZE_COLUMN} FROM (\n{inner}\n) "
        f"AS guarded({', '.join(names)}, {_SIZE_COLUMN})",
        True,
    )


# How often a query looks whether its caller gave up on it (``cancel``).
CANCEL_POLL_S = 0.1


# How often a fired limit interrupts again, until its caller is done.
REINTERRUPT_S = 0.05
# The share of DuckDB's memory limit past which a server's sandboxed query is stopped
# (looked at every CANCEL_POLL_S): the rest is the server's own work's. A checkpoint
# that found no memory left beside a query holding it all (a recursive CTE doubling a
# string) failed with DuckDB's fatal error, and the server stopped (cap review).
MAX_QUERY_MEMORY_SHARE = 0.8


class _Deadline:
    """Interrupts the cursor's query after ``seconds``, once ``cancel`` is set (its
    caller went away), or once DuckDB's buffers hold over ``MAX_QUERY_MEMORY_SHARE`` of
    its memory limit (``memory``: that share now), never after ``__exit__``."""

    def __init__(
        self,
        cursor: duckdb.DuckDBPyConnection,
        seconds: float,
        cancel: threading.Event | None = None,
        memory: Callable[[], float | None] | None = None,
    ) -> None:
        self._cursor = cursor
        self._lock = threading.Lock()
        self._active = True
        self.fired = False  # by the time limit
        self.cancelled = False  # by ``cancel``
        self.over_memory = False  # by ``memory``
        self._seconds = seconds
        self._cancel = cancel
        self._memory = memory
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="flowscope-sql-limit", daemon=True)

    def _watch(self) -> None:
        end = time.monotonic() + self._seconds
        why = "time"
        polls = self._cancel is not None or self._memory is not None
        while (left := end - time.monotonic()) > 0:
            if self._done.wait(min(left, CANCEL_POLL_S) if polls else left):
                return
            if self._cancel is not None and self._cancel.is_set():
                why = "cancel"
                break
            share = self._memory() if self._memory is not None else None
            if share is not None and share > MAX_QUERY_MEMORY_SHARE:
                why = "memory"
                break
        # Again until the caller is done: an interrupt while no statement runs (the
        # checks in Python between them) is lost, and the next one ran without a limit,
        # answered after 126 s under a 1 s limit (sandbox review).
        while True:
            self._interrupt(why)
            if self._done.wait(REINTERRUPT_S):
                return

    def _interrupt(self, why: str) -> None:
        with self._lock:
            if self._active:
                self.fired, self.cancelled = why == "time", why == "cancel"
                self.over_memory = why == "memory"
                self._cursor.interrupt()

    def check(self, over: Exception, gone: Exception, full: Exception) -> None:
        """Raise ``over``, ``gone`` or ``full`` once the time limit fired, the caller went
        away or the memory share was passed: work between statements is not stopped by
        an interrupt."""
        if self.fired:
            raise over
        if self.cancelled:
            raise gone
        if self.over_memory:
            raise full

    def __enter__(self) -> _Deadline:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._active = False
        self._done.set()


# A column's type, or None for one the Python API cannot name (an aggregate's state).
# The result's column names, types (None where the Python API cannot parse one) and
# DuckDB's names of those types.
_Described = tuple[list[str], list[DuckDBPyType | None], list[str]]


def _fetch(
    cursor: duckdb.DuckDBPyConnection,
    sql: str,
    limit: int,
    described: _Described,
    in_time: Callable[[], None] = lambda: None,
) -> tuple[list[str], list[str], list[Any], bool]:
    """Run ``sql`` (with its times as text and its rows' sizes, ``_guarded``) and fetch
    up to ``limit`` rows as JSON data (``json_value``), fewer once they hold
    ``MAX_ANSWER_CHARS`` (then True: cut by size), with the columns' names and types.
    No DataFrames in this frame for DuckDB's Python replacement scans to find."""
    names, kinds, type_names = described
    for name, kind in zip(names, kinds, strict=True):
        # Converting a value walks its type: 600 levels of structs were a RecursionError
        # (a 500, a CLI traceback).
        depth, leaves = _type_shape(kind) if kind is not None else (0, 0)
        if leaves > MAX_TYPE_LEAVES:
            raise SqlRefused(
                "answer-size",
                f"column {name!r} has a type of over {MAX_TYPE_LEAVES:,} fields (structs in "
                "lists, maps or structs), more than an answer may hold; select less of it",
            )
        if depth > MAX_VALUE_DEPTH:
            raise SqlRefused(
                "answer-size",
                f"column {name!r} is nested over {MAX_VALUE_DEPTH} levels deep (lists, maps "
                "or structs), more than an answer may hold; select less of it",
            )
    wrapping = _guarded(sql, kinds)
    if wrapping is None:
        cursor.execute(sql)
        description = cursor.description or []
        columns = [str(d[0]) for d in description]
        types = type_names if len(type_names) == len(columns) else [str(d[1]) for d in description]
        return columns, types, *_fetch_rows(cursor, limit, guarded=False)
    wrapped, guarded = wrapping
    check_sql(cursor, wrapped, sizes=False)
    in_time()  # ``in_time`` raises once the limit fired while checking, in Python
    try:
        cursor.execute(wrapped)
        # (The types DESCRIBE named: the wrapped query's own are text for the times it
        # turned into text.)
        return names, type_names, *_fetch_rows(cursor, limit, guarded=guarded)
    except duckdb.Error as exc:
        body_line = wrapped[: wrapped.index(_without_trailing(sql))].count("\n")
        unwrapped = _unwrapped(exc, body_line)
        if unwrapped is exc:
            raise
        raise unwrapped from exc


def _fetch_rows(
    cursor: duckdb.DuckDBPyConnection, limit: int, *, guarded: bool
) -> tuple[list[Any], bool]:
    """``_fetch``'s rows, and whether they were cut by size; ``guarded``: each row ends
    with its size (``_guarded``)."""
    rows: list[Any] = []
    size = 0
    # A row at a time: the answer's size is checked before the next row is made Python
    # objects (64 at once could be 64 rows just under the limit; 10,000 rows of
    # spans fetch no slower so).
    while len(rows) < limit:
        fetched = cursor.fetchone()
        if fetched is None:
            break
        raw = fetched[:-1] if guarded else fetched
        if guarded and fetched[-1] > MAX_ANSWER_CHARS:
            size += int(fetched[-1])  # its values came as NULL
        else:
            row = [json_value(value) for value in raw]  # refuses a value nested too deep
            size += sum(_size(value) for value in row)
        if size > MAX_ANSWER_CHARS:
            if not rows:  # a value is never cut: one row that big is refused
                raise SqlRefused(
                    "answer-size",
                    f"its first row alone holds about {size:,} characters, over the "
                    f"{MAX_ANSWER_CHARS:,} an answer may; select less of it",
                )
            return rows, True  # this row and any after it left out
        rows.append(row)
    return rows, False


_LINE = re.compile(r"^LINE (\d+):", re.M)


def without_stack(exc: duckdb.Error) -> str:
    """DuckDB's message without the native stack trace an internal error carries (~40
    lines of library paths and addresses, which reached the API's answer)."""
    return str(exc).split("\n\nStack Trace:", 1)[0]


def _unwrapped(exc: duckdb.Error, body_line: int) -> duckdb.Error:
    """``exc`` as the user's query would have it: its lines counted from the query,
    not from the wrapping before it (``body_line`` lines; a conversion error quoted
    "LINE 3" of a one-line query)."""
    text = _LINE.sub(lambda m: f"LINE {max(1, int(m[1]) - body_line)}:", without_stack(exc))
    try:
        return type(exc)(text)
    except TypeError:  # a class that takes more than a message: as it came
        return exc


def _size(value: Any) -> int:
    """The characters a value (JSON data, ``json_value``) takes in the JSON answer.
    (Exact types, not isinstance: 10,000 span rows size in 79 ms, 88 before.)"""
    kind = type(value)
    if kind is str:
        return len(_quoted(value)) if len(value) <= _SLICE else _text_size(value)
    if kind is dict:
        if not value:
            return 2
        keys = sum(map(_text_size, value))
        return 1 + 2 * len(value) + keys + sum(map(_size, value.values()))  # {"k":v,...}
    if kind is list:
        return 1 + max(len(value), 1) + sum(map(_size, value))  # [v,...]
    if value is None or value is True:
        return 4
    if value is False:
        return 5
    return len(repr(value))  # an int or a float


def _text_size(text: str) -> int:
    """A string's length in JSON, quoted and escaped: a control character takes six
    characters ('\\u0001'), a quote or backslash two. (Counting only NUL, 30 million
    chr(1) made a 180 MB answer.) A long one is escaped a slice at a time: a copy of
    it escaped whole could take six times its memory."""
    if len(text) <= _SLICE:
        return len(_quoted(text))
    slices = range(0, len(text), _SLICE)
    return 2 + sum(len(_quoted(text[start : start + _SLICE])) - 2 for start in slices)


_SLICE = 65_536
_quoted = json.encoder.encode_basestring  # as json.dumps(ensure_ascii=False) writes it


def _describe(cursor: duckdb.DuckDBPyConnection, sql: str) -> _Described:
    """The result's column names and types, from binding the query without running it
    (outside the transaction: a failure would abort it); nothing for a statement
    DESCRIBE cannot take (``DESCRIBE t`` itself), whose times then stay as they are."""
    try:
        described = cursor.execute(f"DESCRIBE {_without_trailing(sql)}").fetchall()
    except duckdb.Error:
        return [], [], []
    # DESCRIBE quotes the NULL type ("NULL"), which DuckDB itself names NULL.
    type_names = [str(row[1]).replace('"NULL"', "NULL") for row in described]
    return [str(row[0]) for row in described], [_type(str(row[1])) for row in described], type_names


def _type(name: str) -> DuckDBPyType | None:
    """The type DESCRIBE names, None where the Python API cannot parse it (an
    ``AGGREGATE_STATE``: the whole query went unguarded, its huge values and its
    nanoseconds into Python)."""
    try:
        return DuckDBPyType(name)
    except (duckdb.Error, ValueError, TypeError):
        return None


def run_sandboxed(
    database: Database,
    sql: str,
    *,
    row_limit: int = 10_000,
    timeout_s: float = 10.0,
    cancel: threading.Event | None = None,
) -> SqlResult:
    """Check ``sql`` against the sandbox rules, run it in a rolled-back transaction;
    ``cancel`` set stops it (SqlStopped): its caller went away."""
    if row_limit < 0:
        raise ValueError(f"the row limit must be >= 0, not {row_limit}")
    if not 0 < timeout_s < math.inf:  # also NaN: a timer would fire at once
        raise ValueError(f"the time limit must be a number of seconds > 0, not {timeout_s}")
    if len(sql) > MAX_SQL_CHARS:
        # Checking and binding run before (and outside) the time limit: a 3.9 MB IN list
        # took 20 s of them.
        raise SqlRefused(
            "query-size", f"the query is {len(sql):,} characters; the limit is {MAX_SQL_CHARS:,}"
        )
    cursor = database.reader()
    check_sql(cursor, sql)
    database.await_writes()  # every acknowledged span is queryable
    started = time.perf_counter()
    over = SqlRefused(
        "time-limit", f"the query ran longer than the {timeout_s:g} s limit and was stopped"
    )
    # One deadline from the DESCRIBE on: binding alone evaluates constant arguments,
    # which a query can make take minutes.
    # A server's (read-write) database: its span commits and checkpoints need room
    # in DuckDB's memory too. A file read on its own has no other work.
    memory = None if database.read_only else database.buffer_share
    deadline = _Deadline(cursor, timeout_s, cancel, memory)
    gone = SqlStopped("the query was stopped: its client went away")
    full = SqlRefused(
        "memory-limit",
        f"DuckDB's memory (--memory-limit) was over {MAX_QUERY_MEMORY_SHARE:.0%} full while "
        "the query ran (by it, or by the queries and work beside it), and the server needs "
        "room there to store spans, so the query was stopped; try again, narrow it (a "
        "window of Timestamp, fewer rows or columns at once), or start the server with a "
        "larger --memory-limit",
    )
    try:
        with deadline:
            described = _describe(cursor, sql)
            deadline.check(over, gone, full)  # the DESCRIBE was stopped (it says nothing else)
            _check_width(described)
            try:
                cursor.execute("BEGIN TRANSACTION")
            except duckdb.Error as exc:
                if deadline.fired:
                    raise over from exc
                if deadline.over_memory:
                    raise full from exc
                if database.note_error(exc):
                    raise  # no fault of the query's: the server answers 503
                raise SqlError(f"cannot start a read transaction: {exc}") from exc
            columns, types, raw, cut = _fetch(
                cursor, sql, row_limit + 1, described, lambda: deadline.check(over, gone, full)
            )
            deadline.check(over, gone, full)
    except duckdb.Error as exc:
        if deadline.fired:
            raise over from exc
        if deadline.cancelled:
            raise gone from exc
        if deadline.over_memory:
            raise full from exc
        if isinstance(exc, duckdb.InternalException):
            # A defect of DuckDB's that this query alone runs into: not one of the
            # errors after which the server cannot go on (``Database.note_error``).
            raise SqlError(
                f"{without_stack(exc)} (a defect of DuckDB's, met by this query; "
                "nothing else is affected)"
            ) from exc
        if database.note_error(exc):
            raise  # no fault of the query's: the server answers 503
        if isinstance(exc, duckdb.OutOfMemoryException):
            raise SqlError(_needs_more_memory(str(exc).split("\n", 1)[0])) from exc
        if isinstance(exc, duckdb.InterruptException):
            raise stopped_by_close(database) from exc
        if isinstance(exc, duckdb.IOException):  # a damaged file: name it
            raise SqlError(str(file_failure(database.path, exc))) from exc
        raise SqlError(hinted(without_stack(exc))) from exc
    except (OverflowError, ValueError) as exc:  # an INTERVAL of 10^8 years, say
        raise SqlError(f"a value of the result has no Python form: {exc}") from exc
    except MemoryError as exc:  # its answer made Python objects past what the machine has
        raise SqlError(_needs_more_memory("the answer's values did not fit")) from exc
    finally:
        try:
            cursor.execute("ROLLBACK")
        except duckdb.Error:
            pass  # no transaction left to roll back
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    return SqlResult(columns, raw[:row_limit], cut or len(raw) > row_limit, elapsed_ms, types)


def _needs_more_memory(what: str) -> str:
    # DuckDB's own advice (SET threads, SET memory_limit) is refused here.
    return (
        f"the query needs more memory than the server may use ({what}); select less at "
        "once, or start the server with a larger --memory-limit"
    )


def _duration(value: dt.timedelta) -> str:
    micros = abs(value) // dt.timedelta(microseconds=1)
    days, micros = divmod(micros, 86_400_000_000)
    seconds = Decimal(micros) / Decimal(1_000_000)
    return f"{'-' if value < dt.timedelta(0) else ''}P{days}DT{seconds.normalize():f}S"


def _key(value: Any, depth: int) -> str:
    converted = json_value(value, depth)
    return converted if isinstance(converted, str) else json.dumps(converted)


def json_value(value: Any, depth: int = 0) -> Any:
    """A DuckDB Python value as JSON-serialisable data; ``SqlRefused`` (answer-size)
    for one nested over ``MAX_VALUE_DEPTH`` levels (``depth``: this one's)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, dt.datetime | dt.date):
        # DuckDB hands its infinite timestamps and dates over as Python's extremes. (Only
        # dates in lists nested past _text_expr's reach now: columns' dates and times
        # come as text, and VARIANTs are refused.)
        if value in (dt.datetime.max, dt.date.max):
            return "infinity"
        if value in (dt.datetime.min, dt.date.min):
            return "-infinity"
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            # A zoned one (no query makes one a Python object now; a VARIANT did): in
            # UTC with Z, as columns' are.
            # (isoformat, not strftime: %Y does not pad years before 1000)
            return (
                value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
                + "Z"
            )
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return _duration(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict | list | tuple | set | frozenset):
        if depth >= MAX_VALUE_DEPTH:
            raise SqlRefused(
                "answer-size",
                f"a value of the result is nested over {MAX_VALUE_DEPTH} levels deep (lists, "
                "maps, structs or JSON), more than an answer may hold; select less of it",
            )
        if isinstance(value, dict):
            return {_key(k, depth + 1): json_value(v, depth + 1) for k, v in value.items()}
        return [json_value(v, depth + 1) for v in value]
    return str(value)
