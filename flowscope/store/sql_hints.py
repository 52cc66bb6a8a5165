"""A line of advice under DuckDB's error for what a ClickHouse, Tempo or older DuckDB
user writes first: the otel_traces columns are the ClickHouse exporter's, so its
README's queries are the first ones pasted, and DuckDB's own errors for them point
nowhere (or to a SET the sandbox refuses)."""

from __future__ import annotations

import re

# ClickHouse functions users reach for, and the DuckDB for them.
_CLICKHOUSE = {
    "toString": "CAST(x AS VARCHAR)",
    "arrayMap": "list_transform(list, lambda x: ...)",
    "arrayFilter": "list_filter(list, lambda x: ...)",
    "arrayJoin": "unnest(list)",
    "has": "list_contains(list, x), or map_contains(map, key)",
    "mapKeys": "map_keys(map)",
    "mapValues": "map_values(map)",
    "toStartOfMinute": "date_trunc('minute', Timestamp)",
    "toStartOfHour": "date_trunc('hour', Timestamp)",
    "toStartOfDay": "date_trunc('day', Timestamp)",
    "toStartOfInterval": "time_bucket(INTERVAL '5 minutes', Timestamp)",
    "toIntervalSecond": "INTERVAL n SECOND",
    "toIntervalMinute": "INTERVAL n MINUTE",
    "toIntervalHour": "INTERVAL n HOUR",
    "toIntervalDay": "INTERVAL n DAY",
    "toDateTime": "CAST(x AS TIMESTAMP)",
    "toDateTime64": "CAST(x AS TIMESTAMP_NS)",
    "toUnixTimestamp": "epoch(Timestamp)",
    "now64": "now()::TIMESTAMP_NS",
    "uniq": "count(DISTINCT x), or approx_count_distinct(x)",
    "uniqExact": "count(DISTINCT x)",
    "quantileExact": "quantile_cont(x, 0.95)",
    "quantiles": "quantile_cont(x, [0.5, 0.95, 0.99])",
    "toFloat64": "CAST(x AS DOUBLE)",
    "toInt64": "CAST(x AS BIGINT)",
    "toUInt64": "CAST(x AS UBIGINT)",
}
_BY_LOWER = {name.lower(): (name, duckdb) for name, duckdb in _CLICKHOUSE.items()}
_MISSING = re.compile(
    r"Catalog Error: (?:Scalar|Aggregate|Table) Function with name (\w+) does not exist"
)
_NESTED = re.compile(r"Cannot extract field '([^']*)' from expression \"(Events|Links)\"")
_TIME_COMPARE = "Cannot compare values of type TIMESTAMP_NS and type TIMESTAMP WITH TIME ZONE"
_OLD_LAMBDA = "Deprecated lambda arrow (->)"


def hinted(message: str) -> str:
    """``message`` (DuckDB's error for a user's query) with a hint added where one of
    the habits above explains it, and DuckDB's advice to SET something, which the
    sandbox refuses, taken out."""
    if _OLD_LAMBDA in message:
        kept = [line for line in message.splitlines() if "SET lambda_syntax" not in line]
        return "\n".join(kept) + "\nHint: write lambda k: ... (SET is not allowed here)."
    if _TIME_COMPARE in message:
        return (
            f"{message}\nHint: Timestamp is a TIMESTAMP_NS in UTC; compare it with "
            "now()::TIMESTAMP_NS - INTERVAL 1 HOUR (docs/schema.md)."
        )
    nested = _NESTED.search(message)
    if nested:
        field, column = nested.groups()
        return (
            f"{message}\nHint: {column} is a list of structs here (a Nested column in "
            f"ClickHouse): {column}[1].{field} is the first one's, "
            f"list_transform({column}, lambda e: e.{field}) all of them."
        )
    missing = _MISSING.search(message)
    if missing and missing[1].lower() in _BY_LOWER:
        name, duckdb = _BY_LOWER[missing[1].lower()]
        return f"{message}\nHint: {name} is ClickHouse's; in DuckDB it is {duckdb}."
    return message
