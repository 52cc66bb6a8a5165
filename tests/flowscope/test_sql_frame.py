"""SQL answers as DataFrames: the columns' DuckDB types decide their dtypes."""

from __future__ import annotations

import pandas as pd

from flowscope.sql_frame import sql_frame


def test_types_decide_the_dtypes_and_a_big_unsigned_keeps_its_digits() -> None:
    frame = sql_frame(
        ["key", "at", "at"],
        ["UBIGINT", "TIMESTAMP_NS", "VARCHAR"],
        [[2**64 - 1, "2026-01-01T00:00:00.000000001", "x"], [None, None, None]],
    )
    assert list(frame.columns) == ["key", "at", "at"]  # repeated names kept, in place
    assert [str(t) for t in frame.dtypes] == ["UInt64", "datetime64[ns]", "str"]
    assert frame.iloc[0, 0] == 2**64 - 1
    assert frame.iloc[0, 1] == pd.Timestamp("2026-01-01T00:00:00.000000001")


def test_a_time_pandas_cannot_hold_stays_text() -> None:
    frame = sql_frame(["d"], ["DATE"], [["0045-03-15 (BC)"], ["2026-01-02"]])
    assert frame["d"].tolist() == ["0045-03-15 (BC)", "2026-01-02"]


def test_without_types_the_values_are_read_as_pandas_reads_them() -> None:
    # An older server sends no types.
    frame = sql_frame(["n", "at"], [], [[1, "2026-01-01T00:00:00.000000000"], [2, None]])
    assert (
        str(frame["n"].dtype) == "int64" and frame["at"].iloc[0] == "2026-01-01T00:00:00.000000000"
    )


def test_a_hugeint_with_a_null_keeps_its_digits() -> None:
    # sum() of a BIGINT is a HUGEINT: a group without rows gave NULL, and the column float.
    frame = sql_frame(["s", "big"], ["HUGEINT", "HUGEINT"], [[2**53 + 1, 2**70], [None, None]])
    assert str(frame["s"].dtype) == "Int64" and frame["s"].iloc[0] == 2**53 + 1
    assert frame["big"].iloc[0] == 2**70  # past 64 bits: Python ints


def test_a_time_before_year_one_stays_text() -> None:
    frame = sql_frame(["z"], ["TIMESTAMP WITH TIME ZONE"], [["-44-03-15T00:00:00.000000Z"], [None]])
    assert frame["z"].iloc[0] == "-44-03-15T00:00:00.000000Z"


def test_a_time_type_has_one_unit_whatever_its_values() -> None:
    """An empty window's NULL times came in seconds, and merge_asof refused the join."""
    types = ["TIMESTAMP_NS", "TIMESTAMP", "TIMESTAMPTZ_NS", "DATE", "INTERVAL"]
    units = ["datetime64[ns]", "datetime64[us]", "datetime64[ns, UTC]", "datetime64[us]"]
    units.append("timedelta64[us]")
    for rows in ([], [[None] * 5]):
        assert [str(t) for t in sql_frame(list("abcde"), types, rows).dtypes] == units


def test_text_columns_read_alike_however_many_there_are() -> None:
    """Inferred over the whole frame, two text columns stayed object and one became str."""
    one = sql_frame(["s", "n"], ["VARCHAR", "BIGINT"], [["a", 1]])
    two = sql_frame(["s", "t"], ["VARCHAR", "VARCHAR"], [["a", "b"]])
    assert str(one["s"].dtype) == str(two["s"].dtype) == str(two["t"].dtype)
