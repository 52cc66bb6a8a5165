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


def _times(column: pd.Series, type_name: str) -> pd.Series:
    import pandas as pd

    # A BC time: the answer writes it with a year pandas would take (-44-03-15T...Z)
    # and then fail to print; as text it stays readable.
    if column.dropna().astype(str).str.startswith("-").any():
        raise ValueError("a time before year 1")
    zoned = type_name in _ZONED_TIMES
    parsed = pd.to_datetime(column, format="ISO8601", utc=zoned)
    # One unit a type, whatever the values: pandas reads it from the text, and a column
    # of NULLs (an empty window) came in seconds, which merge_asof refused to join.
    unit = "ns" if type_name.endswith("_NS") else "us"
    dtype = pd.api.types.pandas_dtype(
        f"datetime64[{unit}, UTC]" if zoned else f"datetime64[{unit}]"
    )
    return parsed.astype(dtype)


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
    if type_name in _LOCAL_TIMES or type_name in _ZONED_TIMES:
        return lambda column: _times(column, type_name)
    if type_name == "INTERVAL":
        return lambda column: pd.to_timedelta(column).astype("timedelta64[us]")
    return None


# Types whose values an answer carries as text (a time of day, a UUID, bytes escaped).
_TEXT_TYPES = {
    *("VARCHAR", "UUID", "JSON", "BLOB", "BIT", "BIGNUM"),
    *("TIME", "TIME_NS", "TIME WITH TIME ZONE", "TIMETZ"),
}


def _reads_as_text(type_name: str) -> bool:
    return type_name in _TEXT_TYPES or type_name.startswith("ENUM(")


def text_dtype() -> Any:
    """The dtype pandas gives a column of text: ``str`` from pandas 3, object before."""
    import pandas as pd

    return pd.Series(["text"]).dtype


def sql_frame(
    columns: Sequence[str], types: Sequence[str], rows: Sequence[Sequence[Any]]
) -> pd.DataFrame:
    """The rows as a DataFrame; ``types`` (DuckDB's names, one a column, or none from
    a server that does not send them) decide each column's dtype."""
    import pandas as pd

    # Columns by position: a query may name two columns alike.
    frame = pd.DataFrame(list(rows), columns=range(len(columns)), dtype=object)
    known = types if len(types) == len(columns) else [""] * len(columns)
    for index, type_name in enumerate(known):
        convert = _converter(type_name)
        if convert is not None:
            try:
                frame[index] = convert(frame[index])
                continue
            except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime):
                pass  # kept as the answer has it
        # The others as pandas reads them (text, HUGEINT past 64 bits), a column at a
        # time: over the whole frame, two text columns stayed object and one became str.
        frame[index] = frame[index].infer_objects()
        if _reads_as_text(type_name) and frame[index].isna().all():
            # No value to infer from (an empty answer, all NULL): text as a full
            # column's is, pandas 3's str, not object (notebook review).
            frame[index] = frame[index].astype(text_dtype())
    frame.columns = pd.Index(list(columns))
    return frame
