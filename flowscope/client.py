"""``flowscope.open``: the analyzer from Python, for notebooks and scripts.

::

    import flowscope

    fs = flowscope.open("flowscope.duckdb")          # or "http://127.0.0.1:8686"
    busiest = fs.flows(since="24h")[0]
    steps = fs.flow(busiest.id, since="24h").df()
    steps.sort_values("p95_ms", ascending=False)[["service", "operation", "p95_ms"]]

Each call returns a typed result holding the analyzer's records
(``flowscope.analyzer.model``) with ``.df()`` for a pandas DataFrame. A file is
opened read-only (or read through the server that holds it); a URL is read
through the JSON API. docs/python_api.md has the whole tour.
"""

from __future__ import annotations

import math
import numbers
import os
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType, UnionType
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    Literal,
    TypeVar,
    Union,
    cast,
    get_args,
    get_origin,
    get_type_hints,
    overload,
)

from flowscope.analysis_sources import AnalysisSource, RemoteSource, SqlRows, open_source
from flowscope.analyzer.errors import AnalysisError
from flowscope.analyzer.model import (
    Comparison,
    CriticalSegment,
    Edge,
    Flow,
    FlowDetail,
    Node,
    Record,
    ServiceMap,
    Step,
    StepDelta,
    TraceSpan,
    TraceSummary,
    TraceView,
    group_columns,
    unset_by,
)
from flowscope.interrupts import InterruptibleReads
from flowscope.store.database import StoreError

if TYPE_CHECKING:
    import pandas as pd

    from flowscope.analyzer.diagrams.formats import FlowFormat, MapFormat

R = TypeVar("R", bound=Record)
_TIME_COLUMNS = ("start",)  # RFC 3339 strings that become timezone-aware timestamps


def _dtypes(record_type: type) -> dict[str, str]:
    """pandas dtypes of a record's number fields: float64 for a float, or for a float
    or int that may be None (NaN; a comparison's left_calls was int64, float64 or
    object by its rows), int64 for an int, bool for a bool."""
    dtypes: dict[str, str] = {}
    for name, hint in get_type_hints(record_type).items():
        if hint in (float, float | None, int | None):
            dtypes[name] = "float64"
        elif hint is int:
            dtypes[name] = "int64"
        elif hint is bool:
            dtypes[name] = "bool"
    return dtypes


def _is_text(hint: Any) -> bool:
    """A field of text: ``str`` (or None), or a ``Literal`` of strings (a kind)."""
    if get_origin(hint) in (Union, UnionType):  # X | None: what X is
        options = [arg for arg in get_args(hint) if arg is not type(None)]
        if len(options) != 1:
            return False
        hint = options[0]
    if get_origin(hint) is Literal:
        return all(isinstance(arg, str) for arg in get_args(hint))
    return hint is str


def records_frame(records: Sequence[Record], record_type: type[Record]) -> pd.DataFrame:
    """One row per record, one column per field; ``group`` (``--by`` values) is spread
    into one column per attribute, and ``start`` becomes a UTC timestamp."""
    import pandas as pd

    from flowscope.sql_frame import text_dtype

    columns = [f.name for f in fields(record_type) if f.name != "group"]
    rows = [r.as_dict() for r in records]
    group_keys = sorted({key for row in rows for key in row.get("group") or {}})
    named = dict(zip(group_keys, group_columns(group_keys, columns), strict=True))
    for row in rows:
        group = row.pop("group", None) or {}
        for key, column in named.items():
            row[column] = group.get(key)
    frame = pd.DataFrame(rows, columns=columns + list(named.values()))
    # Numbers by their fields' types: an empty answer's columns, and a column of only
    # None (a trace's step_p50_ms without a baseline), were of dtype object.
    frame = frame.astype({k: v for k, v in _dtypes(record_type).items() if k in frame.columns})
    # Text as pandas reads it where there is some (pandas 3's str), also in an empty
    # frame or a column of only None: they were object, and concatenated frames
    # turned a full one's text columns into object too (notebook review).
    hints = get_type_hints(record_type)
    text = [f.name for f in fields(record_type) if _is_text(hints[f.name])]
    frame = frame.astype({name: text_dtype() for name in text if name in frame.columns})
    for name in _TIME_COLUMNS:
        if name in frame.columns:
            # nanoseconds: span times are stored to the nanosecond
            stamps = pd.to_datetime(frame[name], utc=True, format="ISO8601")
            frame[name] = stamps.astype("datetime64[ns, UTC]")
    return frame


class Records(Generic[R]):
    """A list of records that also gives a DataFrame."""

    def __init__(self, records: list[R], record_type: type[R]) -> None:
        self.records = records
        self.record_type = record_type

    def df(self) -> pd.DataFrame:
        return records_frame(self.records, self.record_type)

    def __iter__(self) -> Iterator[R]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    @overload
    def __getitem__(self, index: int) -> R: ...
    @overload
    def __getitem__(self, index: slice) -> Records[R]: ...
    def __getitem__(self, index: int | slice) -> R | Records[R]:
        # A slice keeps .df(): `flows[:5].df()` met a plain list.
        if isinstance(index, slice):
            return Records(self.records[index], self.record_type)
        return self.records[index]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Records):
            return NotImplemented
        return (self.records, self.record_type) == (other.records, other.record_type)

    __hash__ = None  # type: ignore[assignment]  # a list's: equal by content

    def __repr__(self) -> str:
        return f"<{len(self.records)} {self.record_type.__name__} records>"


@dataclass(frozen=True)
class MapResult:
    service_map: ServiceMap

    @property
    def nodes(self) -> Records[Node]:
        return Records(self.service_map.nodes, Node)

    @property
    def edges(self) -> Records[Edge]:
        return Records(self.service_map.edges, Edge)

    def df(self) -> pd.DataFrame:
        """The edges (``.nodes.df()`` has the nodes)."""
        return self.edges.df()

    def diagram(self, format: MapFormat = "mermaid") -> str:
        """The map as text; ValueError for any other ``format``."""
        from flowscope.analyzer.diagrams import formats

        _check_format(format, formats.MapFormat)
        return formats.MAP_DIAGRAMS[format](self.service_map)


@dataclass(frozen=True)
class FlowResult:
    detail: FlowDetail

    @property
    def flow(self) -> Flow:
        return self.detail.flow

    @property
    def steps(self) -> Records[Step]:
        return Records(self.detail.steps, Step)

    def df(self) -> pd.DataFrame:
        """The steps, one row each."""
        return self.steps.df()

    def diagram(self, format: FlowFormat = "mermaid-sequence") -> str:
        """The flow as text; split by ``by=``, one block per value (docs/diagrams.md).
        ValueError for any other ``format``."""
        from flowscope.analyzer.diagrams import formats

        _check_format(format, formats.FlowFormat)
        return formats.FLOW_DIAGRAMS[format](self.detail)


def _warn_unset_by(by: str | None, groups: list[dict[str, str]]) -> None:
    """As the CLI says it: a misspelt ``by=`` (user_tier for user.tier) gave a column of
    '' and no word, a typo that looked like an answer."""
    if by and unset_by(by, groups):  # by="" is no grouping, as None
        warnings.warn(
            f"no trace in the window has a value for {by!r} as a resource or span "
            "attribute: every group is empty; is the name right?",
            stacklevel=3,  # the caller of flows() or flow()
        )


def _check_format(format: str, accepted: Any) -> None:
    # Typing does not stop a notebook: an unknown format would otherwise fall through
    # to the default diagram, looking like an answer.
    formats = get_args(accepted)
    if format not in formats:
        raise ValueError(
            f"unknown diagram format {format!r}: use one of {', '.join(map(repr, formats))}"
        )


@dataclass(frozen=True)
class TraceResult:
    view: TraceView

    @property
    def spans(self) -> Records[TraceSpan]:
        return Records(self.view.spans, TraceSpan)

    @property
    def critical_path(self) -> Records[CriticalSegment]:
        return Records(self.view.critical_path, CriticalSegment)

    def df(self) -> pd.DataFrame:
        """The spans in tree order (``.critical_path.df()`` has the path)."""
        return self.spans.df()


@dataclass(frozen=True)
class ComparisonResult:
    comparison: Comparison

    @property
    def deltas(self) -> Records[StepDelta]:
        return Records(self.comparison.deltas, StepDelta)

    def df(self) -> pd.DataFrame:
        """Per-step deltas, the biggest first."""
        return self.deltas.df()


@dataclass(frozen=True)
class SqlResult:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    # DuckDB's name of each column's type (TIMESTAMP_NS, BIGINT, ...)
    types: list[str] = field(default_factory=list)

    def df(self) -> pd.DataFrame:
        """The rows, each column of the dtype its type reads as (docs/python_api.md)."""
        from flowscope.sql_frame import sql_frame

        return sql_frame(self.columns, self.types, self.rows)


# A window bound as the Python API takes it: CLI text, or a datetime (a naive one is UTC).
Bound = str | datetime | None


def _bound(name: str, value: Bound) -> str | None:
    """``value`` as the window text the analyses take; AnalysisError naming ``name``
    for anything else (an int gave a bare TypeError)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime) and value != value:  # pandas' NaT, a datetime
        raise AnalysisError(
            f"{name}: NaT is no time (the min or max of an empty column, say); "
            "give a duration back from now ('1h'), an RFC 3339 time or a datetime"
        )
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    raise _wrong_type(
        name, value, "a duration back from now ('1h'), an RFC 3339 time or a datetime"
    )


def _attribute_pairs(attributes: Any) -> list[tuple[str, str]]:
    """``attributes`` as (key, value) pairs of text, values as the store keeps them:
    stringified as the exporter does (500 -> "500", True -> "true")."""
    if attributes is None:
        return []
    if not isinstance(attributes, Mapping):
        raise _wrong_type("attributes", attributes, "a dict of attribute names to values")
    pairs = []
    for key, value in attributes.items():
        _typed("attributes", key, _TEXT, "a dict whose keys are attribute names")
        if "=" in key:  # a server reads attr=KEY=VALUE up to the first '='
            raise AnalysisError(f"attributes: {key!r} holds '=', which no attribute name may")
        if isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", "") == "b":
            value = "true" if value else "false"  # numpy's bool too
        elif isinstance(value, numbers.Integral):  # numpy's too, as limit= takes them
            value = str(int(value))
        _typed(f"attributes[{key!r}]", value, _TEXT, "text, an int or a bool")
        pairs.append((key, value))
    return pairs


def _wrong_type(name: str, value: Any, what: str) -> AnalysisError:
    return AnalysisError(f"{name}: {value!r} is {type(value).__name__}; give {what}")


# Rows ``sql`` returns unless told otherwise (the CLI's and a server's default too).
DEFAULT_SQL_ROWS = 10_000


def _typed(name: str, value: Any, kinds: tuple[type, ...], what: str) -> None:
    """AnalysisError naming ``name`` unless ``value`` is one of ``kinds``: a file and a
    server took a None id each their own way (a TypeError and an AnalysisError)."""
    if not isinstance(value, kinds):
        raise _wrong_type(name, value, what)


def _whole(name: str, value: Any) -> int:
    """``value`` as an int: any integer (numpy's too), never a bool or a float (a float
    limit gave 6 rows from a file and a 400 from a server)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _wrong_type(name, value, "a whole number")
    return int(value)


def _number(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _wrong_type(name, value, "a number or None")
    return float(value)


def _flag(name: str, value: Any) -> bool | None:
    """True, False or None; numpy's bool too (what a DataFrame cell holds)."""
    numpy_bool = type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")
    if value is None or isinstance(value, bool) or numpy_bool:
        return None if value is None else bool(value)
    raise _wrong_type(name, value, "True, False or None")


_TEXT = (str,)
_TEXT_OR_NONE = (str, type(None))


def _window(since: Bound, until: Bound) -> tuple[str | None, str | None]:
    return _bound("since", since), _bound("until", until)


class _ClosedMidCall:
    """A source whose calls, when the handle was closed while they ran, raise the
    handle's "closed" AnalysisError: a thread's read cut short by ``close()`` in another
    raised DuckDB's InterruptException, a message blaming derivation, or "cannot reach"
    a server that was up."""

    def __init__(self, owner: Flowscope, source: AnalysisSource) -> None:
        self._owner = owner
        self._source = source

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._source, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attribute(*args, **kwargs)
            except Exception as exc:
                if self._owner._closed:
                    raise AnalysisError(
                        f"{self._owner.where} was closed while this call ran: open it again"
                    ) from exc
                raise

        return call


class Flowscope:
    """The analyses of one store. Windows are ``since``/``until`` as on the CLI:
    a duration back from now (``15m``, ``7d``) or RFC 3339; the default is the last hour."""

    def __init__(self, source: AnalysisSource) -> None:
        self._source = source
        self._closed = False
        database = getattr(source, "database", None)
        # A file's reads, asked from the main thread, run on a thread of their own:
        # there DuckDB held off Ctrl-C (a notebook's "interrupt kernel") until the
        # query ended, up to its time limit, and then raised "Query interrupted".
        self._interruptible = None if database is None else InterruptibleReads(source, database)

    @property
    def source(self) -> AnalysisSource:
        """What the analyses ask; AnalysisError once closed (a file's closed cursor,
        a new thread's closed store and a closed HTTP client raised three other
        errors)."""
        if self._closed:
            raise AnalysisError(f"{self.where} is closed: open it again")
        return self._source

    @property
    def _reads(self) -> AnalysisSource:
        """``source``, its calls from the main thread stopped by Ctrl-C on a file, and
        a call that ``close()`` from another thread cut short said to be so."""
        source = self.source
        if (
            self._interruptible is not None
            and threading.current_thread() is threading.main_thread()
        ):
            source = cast(AnalysisSource, self._interruptible)
        return cast(AnalysisSource, _ClosedMidCall(self, source))

    @property
    def where(self) -> str:
        return self._source.where

    def map(self, since: Bound = None, until: Bound = None, flow: str | None = None) -> MapResult:
        _typed("flow", flow, _TEXT_OR_NONE, "a flow id or None")
        return MapResult(self._reads.service_map(*_window(since, until), flow))

    def flows(
        self, since: Bound = None, until: Bound = None, by: str | None = None
    ) -> Records[Flow]:
        _typed("by", by, _TEXT_OR_NONE, "an attribute name or None")
        found = self._reads.flows(*_window(since, until), by)
        _warn_unset_by(by, [f.group for f in found])
        return Records(found, Flow)

    def flow(
        self,
        flow_id: str,
        since: Bound = None,
        until: Bound = None,
        by: str | None = None,
    ) -> FlowResult:
        _typed("flow_id", flow_id, _TEXT, "a flow id")
        _typed("by", by, _TEXT_OR_NONE, "an attribute name or None")
        detail = self._reads.flow(flow_id, *_window(since, until), by)
        _warn_unset_by(by, [s.group for s in detail.steps])
        return FlowResult(detail)

    def traces(
        self,
        since: Bound = None,
        until: Bound = None,
        *,
        service: str | None = None,
        operation: str | None = None,
        flow: str | None = None,
        min_duration_ms: float | None = None,
        error: bool | None = None,
        limit: int = 20,
        attributes: Mapping[str, str | int | bool] | None = None,
        max_duration_ms: float | None = None,
        sort: str = "slowest",
    ) -> Records[TraceSummary]:
        """Traces rooted in the window, slowest first (``sort``: "fastest", "recent" or
        "spans" for another order); ``attributes``: a span has every
        one, its own or its resource's, all on one span (with ``service``/``operation``,
        that span), as Jaeger's tag search."""
        for name, value in (("service", service), ("operation", operation), ("flow", flow)):
            _typed(name, value, _TEXT_OR_NONE, "a string or None")
        found = self._reads.traces(
            *_window(since, until),
            service=service,
            operation=operation,
            flow=flow,
            attributes=_attribute_pairs(attributes),
            min_duration_ms=_number("min_duration_ms", min_duration_ms),
            max_duration_ms=_number("max_duration_ms", max_duration_ms),
            error=_flag("error", error),
            limit=_whole("limit", limit),
            sort=sort,
        )
        return Records(found, TraceSummary)

    def trace(self, trace_id: str, since: Bound = None, until: Bound = None) -> TraceResult:
        """One trace; ``since``/``until`` choose the window of its flow's step P50s."""
        _typed("trace_id", trace_id, _TEXT, "a trace id (hex text)")
        return TraceResult(self._reads.trace(trace_id, *_window(since, until)))

    def compare_traces(self, left_id: str, right_id: str) -> ComparisonResult:
        _typed("left_id", left_id, _TEXT, "a trace id (hex text)")
        _typed("right_id", right_id, _TEXT, "a trace id (hex text)")
        return ComparisonResult(self._reads.compare(left=left_id, right=right_id))

    def compare_baseline(
        self, trace_id: str, since: Bound = None, until: Bound = None
    ) -> ComparisonResult:
        _typed("trace_id", trace_id, _TEXT, "a trace id (hex text)")
        since, until = _window(since, until)
        return ComparisonResult(self._reads.compare(trace=trace_id, since=since, until=until))

    def compare_windows(
        self,
        flow_id: str,
        left: tuple[Bound, Bound],
        right: tuple[Bound, Bound],
    ) -> ComparisonResult:
        """``left``/``right`` are (since, until) pairs, e.g. ``("2h", "1h"), ("1h", None)``;
        each needs a since, an until or both."""
        _typed("flow_id", flow_id, _TEXT, "a flow id")
        for side, pair in (("left", left), ("right", right)):
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                # A string unpacked into two characters: "left_until: invalid time 'h'".
                raise AnalysisError(
                    f"compare_windows: {side} must be a (since, until) pair, e.g. "
                    f"{side}=('2h', '1h'); got {pair!r}"
                )
            since, until = pair
            if not since and not until:
                # Neither bound would be the last hour, maybe the other side's window
                # too: deltas of 0 that read as "no change".
                raise AnalysisError(
                    f"compare_windows: {side} needs a since, an until or both, "
                    f"e.g. {side}=('2h', '1h'); got {(since, until)!r}"
                )
        return ComparisonResult(
            self._reads.compare(
                flow=flow_id,
                left_since=_bound("left_since", left[0]),
                left_until=_bound("left_until", left[1]),
                right_since=_bound("right_since", right[0]),
                right_until=_bound("right_until", right[1]),
            )
        )

    def compare_versions(
        self,
        flow_id: str,
        left_version: str,
        right_version: str,
        since: Bound = None,
        until: Bound = None,
    ) -> ComparisonResult:
        _typed("flow_id", flow_id, _TEXT, "a flow id")
        _typed("left_version", left_version, _TEXT, "a service.version value")
        _typed("right_version", right_version, _TEXT, "a service.version value")
        since, until = _window(since, until)
        return ComparisonResult(
            self._reads.compare(
                flow=flow_id,
                left_version=left_version,
                right_version=right_version,
                since=since,
                until=until,
            )
        )

    def sql(self, query: str, limit: int | None = None, timeout_s: float = 10.0) -> SqlResult:
        """One read-only SELECT over ``otel_traces`` (the sandbox of ``flowscope sql``).
        ``limit``: most rows returned, at least 1 (default 10,000, and an answer cut there
        warns); ``timeout_s``: the query's time limit (as ``flowscope sql --timeout``); a
        server caps both at its own limits."""
        _typed("query", query, _TEXT, "a SELECT as text")
        asked = limit is not None
        limit = _whole("limit", limit) if limit is not None else DEFAULT_SQL_ROWS
        if limit < 1:  # refused the same way on a file and through a server
            raise AnalysisError(f"limit must be at least 1, not {limit}")
        # A file read here had a fixed 10 s limit: a long analysis ran from the CLI only.
        seconds = _number("timeout_s", timeout_s)
        if seconds is None or not math.isfinite(seconds) or seconds <= 0:
            raise AnalysisError(
                f"timeout_s must be a positive number of seconds, not {timeout_s!r}"
            )
        rows: SqlRows = self._reads.sql(query, limit, seconds)
        # Only .truncated said so: a per-minute count over the rows undercounted.
        if rows.truncated and len(rows.rows) < min(limit, rows.row_limit):
            warnings.warn(
                f"the answer stopped at {len(rows.rows):,} rows: its values reached the size "
                "limit (about 32 million characters); select less, or aggregate in the query",
                stacklevel=2,
            )
        elif rows.truncated and rows.row_limit < limit:
            warnings.warn(
                f"the server returned {len(rows.rows):,} rows, its limit ({limit:,} were "
                "asked for); aggregate in the query, or read the file itself",
                stacklevel=2,
            )
        elif rows.truncated and not asked:
            # At the default limit: a count of traces in pandas gave 920 of 2,743 without
            # a word (notebook review), where the CLI says "stopped at 10000 rows".
            warnings.warn(
                f"the answer stopped at {len(rows.rows):,} rows, the default limit; more "
                "rows matched: pass a larger limit=, or aggregate in the query",
                stacklevel=2,
            )
        return SqlResult(rows.columns, rows.rows, rows.truncated, rows.types)

    def close(self) -> None:
        self._closed = True
        if self._interruptible is not None:
            self._interruptible.finish()
        try:
            self._source.close()
        except StoreError as exc:  # a read Ctrl-C could not stop still holds the file
            raise AnalysisError(f"{exc}; the file is released when this process ends") from exc

    def __enter__(self) -> Flowscope:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<flowscope {self.where}>"


def open_store(path_or_url: Any, token: Any, flows: Any) -> Flowscope:
    """``flowscope.open``'s work (its arguments are described there, and checked here)."""
    # Checked here as other arguments are: token=123 met a raw AttributeError, and
    # open(5) said "5: no such database".
    _typed("path_or_url", path_or_url, (str, os.PathLike), "a file path or a server URL")
    path_or_url = path_or_url if isinstance(path_or_url, str) else Path(os.fspath(path_or_url))
    if isinstance(path_or_url, str) and path_or_url.startswith("~"):
        path_or_url = os.path.expanduser(path_or_url)  # as pandas reads "~/x.csv"
    _typed("token", token, _TEXT_OR_NONE, "a bearer token as text, or None")
    if str(path_or_url) == "":  # the store's own message named the CLI's --db
        raise AnalysisError(
            "path_or_url: an empty path names no file; give a flowscope DuckDB file's path "
            "or the API URL that flowscope serve prints"
        )
    source = open_source(path_or_url, token=token, flows=flows, names="python")
    if flows is not None and isinstance(source, RemoteSource):
        # The CLI says so too: an UnknownFlow for a flow the yaml names gave no clue.
        warnings.warn(
            f"reading through the server at {source.where}: its flows apply, not the flows given",
            stacklevel=3,  # the caller of flowscope.open
        )
    return Flowscope(source)
