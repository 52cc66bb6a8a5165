"""The loaded spans of a derivation pass, as numpy arrays (see ``derived_rows``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.analyzer.shared_ids import unshare
from flowscope.analyzer.span_attributes import attribute_columns

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
BOOL = npt.NDArray[np.bool_]


class Strings:
    """A string column as dictionary codes (-1 for null) and its dictionary."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        encoded = pc.dictionary_encode(column.combine_chunks())
        indices = encoded.indices
        self.codes: I64 = pc.fill_null(indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        self.values: list[str] = [str(v) for v in encoded.dictionary.to_pylist()]

    def name(self, code: int) -> str:
        return self.values[code] if code >= 0 else ""


def rows_of(keys: U64, wanted: U64) -> I64:
    """Row of each wanted key among ``keys`` (-1 when absent, or 0: no parent)."""
    if len(keys) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    at = np.minimum(np.searchsorted(ordered, wanted), len(ordered) - 1)
    found = (ordered[at] == wanted) & (wanted != 0)
    rows: I64 = np.where(found, order[at], -1).astype(np.int64)
    return rows


def bools(column: pa.ChunkedArray) -> BOOL:
    values: BOOL = pc.fill_null(column, False).to_numpy(zero_copy_only=False).astype(bool)
    return values


@dataclass(frozen=True)
class Spans:
    col: dict[str, pa.ChunkedArray]
    trace: I64  # trace index (into keys)
    keys: U64  # fs_trace_key(TraceId) per trace index (sql/004_keys.sql)
    names: pa.Array  # trace id per trace index
    span_keys: U64  # fs_span_key per span (sql/004_keys.sql); a server half's own key
    parent: I64
    is_half: BOOL  # the server half of a span id shared with its client (shared_ids)
    start: I64
    duration: I64
    is_error: BOOL
    in_scope: BOOL
    service: Strings
    operation: Strings
    kind: Strings
    is_server: BOOL
    is_client: BOOL
    is_producer: BOOL
    is_consumer: BOOL


def load_spans(table: pa.Table, trace_ids: dict[int, str]) -> Spans:
    col = {name: table.column(name) for name in table.column_names}
    read = attribute_columns(
        col["Attributes"].combine_chunks(),
        col["SpanKind"].combine_chunks(),
        col["SpanName"].combine_chunks(),
        pc.is_valid(col["RootSpanId"]).to_numpy(zero_copy_only=False),
    )
    col.update((name, pa.chunked_array([values])) for name, values in read.items())
    trace_key = col["TraceKey"].to_numpy().astype(np.uint64)
    keys, trace = np.unique(trace_key, return_inverse=True)
    kind = Strings(col["SpanKind"])

    def is_kind(name: str) -> BOOL:
        code = kind.values.index(name) if name in kind.values else -2
        flags: BOOL = kind.codes == code
        return flags

    service = Strings(col["ServiceName"])
    is_server, is_client = is_kind("Server"), is_kind("Client")
    unshared = unshare(
        col["SpanKey"].to_numpy().astype(np.uint64),
        col["ParentKey"].to_numpy().astype(np.uint64),
        is_server,
        is_client,
        service.codes,
        service.values,
    )
    span_keys = unshared.span_keys
    return Spans(
        col=col,
        trace=trace.astype(np.int64),
        keys=keys.astype(np.uint64),
        names=pa.array([trace_ids[int(k)] for k in keys.tolist()], pa.string()),
        span_keys=span_keys,
        parent=rows_of(span_keys, unshared.parent_keys),
        is_half=unshared.is_half,
        start=col["Start"].to_numpy().astype(np.int64),
        duration=col["Duration"].to_numpy().astype(np.int64),
        is_error=bools(col["IsError"]),
        in_scope=bools(col["InScope"]),
        service=service,
        operation=Strings(col["SpanName"]),
        kind=kind,
        is_server=is_server,
        is_client=is_client,
        is_producer=is_kind("Producer"),
        is_consumer=is_kind("Consumer"),
    )
