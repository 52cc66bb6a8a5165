"""A SQL answer as a pandas DataFrame with its columns' types.

The answer's values are JSON data (docs/api.md): a time is text, a NULL in an integer
column would make pandas' column float, and a NaN came back as None. With DuckDB's name
of each column's type the frame gets datetimes, timedeltas, nullable integers and
floats again. A column pandas cannot hold so (an infinite or BC time, a time past
2262) stays as the answer has it: nothing is lost to NaT.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

_INTEGERS = {
    "TINYINT": "Int8",
    "SMALLINT": "Int16",
    "INTEGER": "Int32",
    "BIGINT": "Int64",
    "UTINYINT": "UInt8",
    "USMALLINT": "UInt16",
    "UINTEGER": "UInt32",
    "UBIGINT": "UInt64",
}
_LOCAL_TIMES = {"TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "DATE"}
_ZONED_TIMES = {"TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ_NS"}


def _whole_numbers(column: pd.Series) -> pd.Series:
    """A HUGEINT column (what sum() of a BIGINT is) as Int64 or UInt64 when its values
    fit, so a NULL does not make it float; else left as Python ints."""
    for dtype in ("Int64", "UInt64"):
        try:
            return column.astype(dtype)
        except (OverflowError, TypeError, ValueError):
            continue
    raise ValueError("beyond 64 bits")


def _times(column: pd.Series, *, utc: bool) -> pd.Series:
    import pandas as pd

    # A BC time: the answer writes it with a year pandas would take (-44-03-15T...Z)
    # and then fail to print; as text it stays readable.
    if column.dropna().astype(str).str.startswith("-").any():
        raise ValueError("a time before year 1")
    return pd.to_datetime(column, format="ISO8601", utc=utc)


def _converter(type_name: str) -> Callable[[pd.Series], pd.Series] | None:
    import pandas as pd

    if type_name in _INTEGERS:
        dtype = pd.api.types.pandas_dtype(_INTEGERS[type_name])
        return lambda column: column.astype(dtype)
    if type_name in ("HUGEINT", "UHUGEINT"):
        return _whole_numbers
    if type_name in ("FLOAT", "DOUBLE") or type_name.startswith("DECIMAL"):
        return lambda column: column.astype("float64")  # None (NULL, NaN) -> NaN
    if type_name == "BOOLEAN":
        return lambda column: column.astype("boolean")
    if type_name in _LOCAL_TIMES:
        return lambda column: _times(column, utc=False)
    if type_name in _ZONED_TIMES:
        return lambda column: _times(column, utc=True)
    if type_name == "INTERVAL":
        return lambda column: pd.to_timedelta(column)
    return None


def sql_frame(
    columns: Sequence[str], types: Sequence[str], rows: Sequence[Sequence[Any]]
) -> pd.DataFrame:
    """The rows as a DataFrame; ``types`` (DuckDB's names, one a column, or none from
    a server that does not send them) decide each column's dtype."""
    import pandas as pd

    # Columns by position: a query may name two columns alike.
    frame = pd.DataFrame(list(rows), columns=range(len(columns)), dtype=object)
    for index, type_name in enumerate(types if len(types) == len(columns) else []):
        convert = _converter(type_name)
        if convert is not None:
            try:
                frame[index] = convert(frame[index])
                continue
            except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime):
                pass  # kept as the answer has it
    frame = frame.infer_objects()  # the others as pandas would read them (HUGEINT, text)
    frame.columns = pd.Index(list(columns))
    return frame
