"""Derived tables for the analyzer: per-call edges and per-trace facts, kept up to date.

The writer numbers its commits (``otel_traces.CommitSeq``) and writes nothing but
spans. ``derive(cursor)`` runs on the derive thread (``deriver.py``): it takes in the
spans committed since its last pass (``sql/dv_intake.sql``: queues their traces,
counts them per service and minute, keeps SERVER/CONSUMER durations), then loads
the spans of the queued traces (one zone-map-pruned range scan per cluster of nearby
traces, bounds taken from the queue and ``trace_index``), recomputes their
``edge_calls``/``trace_index``/``trace_links`` rows with the SQL in
``sql/dv_*.sql`` and replaces the old rows (adding the difference to the per-minute
``edge_minutes``). Parents often arrive after their
children, so a trace is derived again whenever any of its spans arrives; its rows
are always a function of all its stored spans.

Readers never wait for that: ``prepare_reads(cursor)`` derives the still-queued
traces (and those with spans not taken in yet) into temporary tables of the reader's
own cursor (the same SQL, so the same numbers) and creates the ``a_*`` views the
analyzer queries, which put those rows in place of the stored ones and add the
untaken spans' counts. With nothing pending the views are the stored tables.

Under heavy ingest that on-the-fly derivation repeats, for every read, work the derive
thread is about to do (a fixed ~65 ms idle, 2-4x that with the cores busy). So when
many traces wait or the last pass derived many (``SETTLED_MIN_TRACES``) and the derive
thread's last pass started at most ``SETTLED_MAX_LAG_S`` ago, a read is *settled*: it
answers from the stored rows and the spans taken in, exactly as of that pass.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.store import sql_files
from flowscope.store.database import Database

log = logging.getLogger(__name__)

# A read answers as of the derive thread's last pass (a settled read) only under heavy
# ingest: when at least this many traces wait, or the last pass derived this many. A
# few waiting traces cost little to derive on the fly, and right after sending a
# handful of traces a user sees them. The last pass counts too because right after a
# pass few traces wait even under heavy ingest: reads would alternate between settled
# and exact, each exact one paying for an on-the-fly derivation (~100 ms under load),
# and an all-time count could go back by the newest second between two questions.
SETTLED_MIN_TRACES = 256
# ... and only when that pass started at most this long ago (the thread passes every
# second while spans arrive): the "queryable within 2 s of the ack" bound.
SETTLED_MAX_LAG_S = 2.0


@dataclass(frozen=True)
class DerivationResult:
    traces: int  # traces derived (queued plus those linked to them)
    spans: int  # spans loaded to do it
    clusters: int  # range scans of otel_traces
    elapsed_s: float


def run_script(cursor: Any, text: str, params: dict[str, Any] | None = None) -> None:
    """Run every statement, each with the named parameters it mentions.

    DuckDB binds parameters only in the last statement of a multi-statement call.
    """
    for statement in sql_files.statements(text):
        used = {k: v for k, v in (params or {}).items() if f"${k}" in statement}
        cursor.execute(statement, used)


def _run(cursor: Any, name: str, params: dict[str, Any] | None = None) -> None:
    run_script(cursor, sql_files.query(name), params)


def _one(cursor: Any, name: str, params: dict[str, Any] | None = None) -> tuple[Any, ...]:
    # fetchall: a half-read result blocks the cursor (register, the next statement).
    rows = cursor.execute(sql_files.query(name), params or {}).fetchall()
    return tuple(rows[0])


def queue_size(cursor: Any) -> int:
    return int(_one(cursor, "derive_queue_size")[0])


def _load(cursor: Any, want: str, in_scope: bool, ids: dict[int, str]) -> list[pa.Table]:
    """The spans of the traces ``want`` selects, one Arrow table per range scan; the
    ids of those traces go into ``ids`` (by the hash the spans carry)."""
    _run(cursor, want)
    _run(cursor, "dv_plan_load")
    for key, trace_id in cursor.execute(sql_files.query("dv_load_trace_ids")).fetchall():
        ids[int(key)] = str(trace_id)
    tables = []
    for cluster, lo, hi in cursor.execute(sql_files.query("dv_load_clusters")).fetchall():
        tables.append(
            _load_spans(cursor, {"cluster": cluster, "lo": lo, "hi": hi, "in_scope": in_scope})
        )
    return tables


def _load_spans(cursor: Any, params: dict[str, Any]) -> pa.Table:
    table = cursor.sql(sql_files.query("dv_load_spans"), params=params).to_arrow_table()
    # A pass holds every loaded span's maps to its end: spans of 10 KB attributes took
    # one to 12.5 GB and past the 60 s a stop gives it. No rule reads a long value.
    for name in ("Attributes", "Resource"):
        column = table.column(name)
        table = table.set_column(
            table.schema.get_field_index(name), name, without_long_values(column)
        )
    return table


# The longest attribute value a pass keeps (see _load_spans): URLs, routes and peer names
# come far under it, and no flow is grouped or matched by a longer value.
LONGEST_KEPT_VALUE = 8192


def without_long_values(maps: pa.ChunkedArray) -> pa.ChunkedArray:
    """``maps`` without the entries whose value is over ``LONGEST_KEPT_VALUE`` bytes;
    the same object when none is (the usual case: one length pass, no copy)."""
    return pa.chunked_array(
        [_chunk_without_long_values(chunk) for chunk in maps.chunks], type=maps.type
    )


def _chunk_without_long_values(chunk: pa.MapArray) -> pa.MapArray:
    offsets = chunk.offsets.to_numpy(zero_copy_only=False)
    # keys and items are the whole children, also of a sliced chunk: its own part
    first, end = int(offsets[0]), int(offsets[-1])
    values = chunk.items.slice(first, end - first)
    keep = pc.fill_null(pc.less_equal(pc.binary_length(values), LONGEST_KEPT_VALUE), True)
    if pc.all(keep).as_py() is not False:
        return chunk
    kept = np.concatenate([[0], np.cumsum(keep.to_numpy(zero_copy_only=False))])
    return pa.MapArray.from_arrays(
        pa.array(kept[offsets - first], pa.int32()),
        chunk.keys.slice(first, end - first).filter(keep),
        values.filter(keep),
        type=chunk.type,
        mask=chunk.is_null() if chunk.null_count else None,
    )


def _no_pause() -> None:
    """A pass that never pauses (readers deriving on the fly, tools)."""


def _derive_into_temp(
    cursor: Any,
    only_trace: str | None = None,
    pause: Callable[[], None] = _no_pause,
    only_traces: Sequence[str] | None = None,
    bare: bool = False,
) -> tuple[int, int, int, tuple[int, int]]:
    """Fill the dv_* temp tables for the queued traces (or just ``only_trace``, if it is
    queued, or those of ``only_traces`` that are): (traces, spans, range scans, where
    the derived traces' spans lie).

    SQL loads the spans (range scans pruned by zone maps) and stores the results;
    the rules themselves run vectorized in ``analyzer/derived_rows.py``. ``pause`` is
    called between the steps (see ``derive``).
    """
    from flowscope.analyzer.derived_rows import derive_rows

    _run(cursor, "dv_begin")
    if only_traces is not None:
        with _registered(cursor, "dv_only_in", only_traces):
            _run(cursor, "dv_queue_subset")
    _run(cursor, "dv_scope_bare" if bare else "dv_scope")
    if only_trace is not None:
        _run(cursor, "dv_scope_trace", {"trace_id": only_trace})
    ids: dict[int, str] = {}
    scope = _load(cursor, "dv_want_scope", True, ids)
    _run(cursor, "dv_scope_nos")  # from the scope's dv_known: before the linked load
    lo, hi = cursor.execute(sql_files.query("dv_load_range")).fetchall()[0]
    linked: list[str] = []
    for table in scope:
        for targets in table.column("LinkTraceIds").to_pylist():
            linked.extend(targets or [])
    context: list[pa.Table] = []
    if linked:  # most passes link nowhere: 5 statements (~8 ms) that would load nothing
        with _registered(cursor, "dv_linked_in", linked):
            context = _load(cursor, "dv_want_context", False, ids)
    # With nothing to load, an empty table of the right shape.
    tables = scope + context or [
        _load_spans(cursor, {"cluster": -1, "lo": 0, "hi": 0, "in_scope": True})
    ]
    spans = pa.concat_tables(tables)
    pause()
    rows = derive_rows(spans, ids)
    pause()
    inputs = {
        "dv_traces_in": rows.traces,
        "dv_edge_calls_in": rows.edge_calls,
        "dv_edge_keys_in": rows.edge_keys,
        "dv_links_in": rows.links,
        "dv_span_steps_in": rows.span_steps,
        "dv_step_keys_in": rows.step_keys,
    }
    for name, table in inputs.items():
        cursor.register(name, table)
    try:
        _run(cursor, "dv_store_rows")
    finally:
        for name in inputs:
            cursor.unregister(name)
    lo, hi = lo or 0, hi or 0
    _run(cursor, "dv_edge_minutes", {"lo": lo, "hi": hi})
    traces = int(cursor.execute("SELECT count(*) FROM dv_scope").fetchall()[0][0])
    return traces, spans.num_rows, len(scope) + len(context), (lo, hi)


@contextmanager
def _transaction(cursor: Any) -> Iterator[None]:
    """Commit what the block wrote, or roll all of it back if it raised."""
    cursor.execute("BEGIN")
    try:
        yield
        cursor.execute("COMMIT")
    except BaseException:
        try:
            cursor.execute("ROLLBACK")
        except duckdb.Error:
            # A COMMIT that failed (a full disk) ended the transaction itself: the
            # ROLLBACK's "no transaction is active" chained onto the real error, in a
            # traceback a second in the log.
            pass
        raise


def derive(
    cursor: Any,
    pause: Callable[[], None] = _no_pause,
    only: Sequence[str] | None = None,
    bare: bool = False,
) -> DerivationResult | None:
    """Derive and store the rows of every queued trace (on the derive thread, or on
    the writer thread of a writer without one).

    One transaction: a failure leaves the queue as it was, to be retried. ``pause``
    is called between its steps (each 5-100 ms): the derive thread waits there for
    analyzer reads in progress. Nothing waits on the open transaction meanwhile
    (readers see the last commit; the writer only appends spans).
    ``only``: derive just these queued traces, and take in no new spans (triage);
    ``bare``: without the traces linked to them.
    """
    if queue_size(cursor) == 0:
        return None
    started = time.perf_counter()
    with _transaction(cursor):
        if only is None:
            _run(cursor, "dv_intake")
        traces, spans, scans = _derive_queued(cursor, pause, only, bare)
    result = DerivationResult(traces, spans, scans, time.perf_counter() - started)
    log.debug("derived %d traces (%d spans) in %.1f ms", traces, spans, result.elapsed_s * 1e3)
    return result


def _derive_queued(
    cursor: Any, pause: Callable[[], None], only: Sequence[str] | None, bare: bool
) -> tuple[int, int, int]:
    """Derive the queued traces and store their rows, in the caller's transaction:
    traces, spans and scans."""
    pause()
    traces, spans, scans, (lo, hi) = _derive_into_temp(
        cursor, pause=pause, only_traces=only, bare=bare
    )
    queued, first, last = _one(cursor, "dv_queue_range")
    pause()
    _run(cursor, "dv_persist", {"lo": lo, "hi": hi})
    pause()
    _run(cursor, "compact_edge_minutes", {"lo": lo, "hi": hi})
    if queued:
        _run(cursor, "compact_service_minutes", {"lo": first, "hi": last})
    pause()  # the last before the COMMIT
    return traces, spans, scans


# Failures that say nothing about the traces being derived: a full disk, memory, a
# conflict or an interrupt. Triage sets no trace aside for them.
_NOT_THE_DATA = (
    duckdb.FatalException,  # the database's failure (``Database.note_error``)
    duckdb.IOException,
    duckdb.OutOfMemoryException,
    duckdb.TransactionException,
    duckdb.InterruptException,
    MemoryError,
    OSError,
)


def set_aside_failing(cursor: Any) -> list[tuple[str, BaseException]]:
    """When every pass fails, find the queued traces that make it fail and take them
    out of the queue, so that the others are derived again (and reads, which derive
    the queue themselves, answer again). Their spans stay stored; a trace set aside
    is queued again when more of its spans arrive.

    The queue is derived in halves, each committed when it succeeds; a half that fails
    is split again, down to single traces. A trace is set aside only for a failure
    that concerns the data (not ``_NOT_THE_DATA``): a full disk fails every half.
    Returns the traces set aside, each with its error; raises what fails otherwise.
    """
    with _transaction(cursor):
        _run(cursor, "dv_intake")
    queued = _queued_traces(cursor)
    failing: list[tuple[str, BaseException]] = []
    halves = [queued]
    while halves:
        part = halves.pop()
        try:
            derive(cursor, only=part)
        except Exception as exc:
            if _not_the_datas(exc):
                raise
            if len(part) == 1 and not _derives_bare(cursor, part):
                failing.append((part[0], exc))
            elif len(part) > 1:
                middle = len(part) // 2
                halves += [part[middle:], part[:middle]]
    if failing:
        with _transaction(cursor), _registered(cursor, "dv_only_in", [t for t, _ in failing]):
            _run(cursor, "derive_queue_drop")
    return failing


def _derives_bare(cursor: Any, trace: list[str]) -> bool:
    """Does the one trace derive (and commit) without the traces linked to it? Then a
    linked trace made it fail, and that trace is not to be set aside for it."""
    try:
        derive(cursor, only=trace, bare=True)
    except Exception as exc:
        if _not_the_datas(exc):
            raise
        return False
    return True


def _not_the_datas(exc: Exception) -> bool:
    """A failure triage blames no trace for: ``_NOT_THE_DATA``, or a MemoryError DuckDB
    reports under another type ("exporting a stream from the object registered as
    'dv_traces_in' failed: MemoryError" was an InvalidInputException; cap review)."""
    return isinstance(exc, _NOT_THE_DATA) or _SHORT_OF_MEMORY.search(str(exc)) is not None


# Python's MemoryError as DuckDB quotes it (its name alone, after a colon), or DuckDB's
# own: not any text that holds the word (a trace's data may).
_SHORT_OF_MEMORY = re.compile(r"(?:^|: )MemoryError$|Out of Memory Error:", re.MULTILINE)


@contextmanager
def _registered(cursor: Any, name: str, trace_ids: Sequence[str]) -> Iterator[None]:
    cursor.register(name, pa.table({"TraceId": pa.array(list(trace_ids), pa.string())}))
    try:
        yield
    finally:
        cursor.unregister(name)


def prepare_reads(
    cursor: Any, only_trace: str | None = None, settled_ok: bool = False, last_pass_traces: int = 0
) -> int:
    """Point this cursor's ``a_*`` views at derived rows of what still waits, if any.

    ``only_trace``: the reader asks about that one trace only, so only it is derived
    (under steady ingest the queue holds a second of traces; deriving them all for a
    trace lookup would cost more than the lookup). The other queued traces' rows read
    as last stored: right for that trace, not for the others.
    With nothing waiting the views stay as ``read_snapshot`` made them: the stored
    tables (``overlay_none``). So they do too when ``settled_ok`` (the derive thread
    passed recently) and ``SETTLED_MIN_TRACES`` or more traces wait or that pass
    derived (``last_pass_traces``): a settled read.
    Returns how many traces were derived on the fly because they were still queued.
    Call it inside the reader's transaction so the views and the queries that
    follow see one snapshot.
    """
    if only_trace is not None:
        waiting = bool(_one(cursor, "derive_queue_has", {"trace_id": only_trace})[0])
    else:
        if settled_ok and last_pass_traces >= SETTLED_MIN_TRACES:
            return 0  # settled whatever waits: no need to count it (~5-10 ms under load)
        queued = queue_size(cursor)
        waiting = queued > 0 and not (settled_ok and queued >= SETTLED_MIN_TRACES)
    if not waiting:
        return 0
    traces, _spans, _scans, _range = _derive_into_temp(cursor, only_trace)
    _run(cursor, "overlay_pending")
    return traces


def retention(cursor: Any, cutoff: Any) -> int:
    """Delete the spans that started before ``cutoff`` and the derived rows they leave
    behind, in one transaction; on the derive thread when there is one
    (``Deriver.run_task``). Returns how many spans.

    One transaction, so a read sees both or neither: with the spans deleted first on
    their own, lists went on naming deleted traces, whose lookups gave 404, until the
    derived rows followed (up to a derivation pass later). The traces it cuts are
    derived again in it too: until the next pass, a settled read counted such a
    trace's deleted root in the flows, its steps gone. If one of them fails to derive,
    the sweep deletes without deriving them, and leaves them to the passes (whose
    triage sets such a trace aside): one bad trace must not stop retention."""
    try:
        return _retention(cursor, cutoff, derive_cut=True)
    except _NOT_THE_DATA:
        raise  # a full disk, say: the sweep without deriving would fail the same way
    except Exception as exc:
        log.debug("retention: deriving the traces it cut failed (%s); left to the passes", exc)
        return _retention(cursor, cutoff, derive_cut=False)


def _retention(cursor: Any, cutoff: Any, derive_cut: bool) -> int:
    with _transaction(cursor):
        # Take in every committed span first (as a pass starts by doing): the derive
        # mark then reaches the newest commit. Deleting all the spans of a commit that
        # no pass had taken in yet left both marks below it, and after a crash the
        # journal replayed it: deleted spans came back.
        _run(cursor, "dv_intake")
        before = _queue_rows(cursor) if derive_cut else {}
        deleted = int(_one(cursor, "delete_older_than", {"cutoff": cutoff})[0])
        _run(cursor, "derived_retention", {"cutoff": cutoff})
        if derive_cut:
            # Only the traces it cut, told by the queue rows it added (also to a trace
            # ingest had queued already): the rest of the queue is the next pass's,
            # which then derives as many as it would have (reads stay settled by its
            # size).
            after = _queue_rows(cursor)
            cut = [trace for trace, rows in after.items() if rows > before.get(trace, 0)]
            if cut:
                _derive_queued(cursor, _no_pause, cut, False)
    return deleted


def _queue_rows(cursor: Any) -> dict[str, int]:
    return dict(cursor.execute(sql_files.query("derive_queue_counts")).fetchall())


def _queued_traces(cursor: Any) -> list[str]:
    return [row[0] for row in cursor.execute(sql_files.query("derive_queue_traces")).fetchall()]


def commit_mark(cursor: Any) -> int:
    """The last commit's number (``CommitSeq``)."""
    return int(_one(cursor, "max_commit_seq")[0])


def arrived_expired(cursor: Any, since_seq: int, cutoff: Any) -> int:
    """Spans committed after ``since_seq`` that had started before ``cutoff``."""
    return int(_one(cursor, "arrived_expired", {"seq": since_seq, "cutoff": cutoff})[0])


_snapshots = threading.local()


_warned_at = [float("-inf")]


def _warn_stored_rows_only(exc: BaseException) -> None:
    """Log a read that could not derive what waits, at most once a minute."""
    if time.monotonic() - _warned_at[0] >= 60.0:
        _warned_at[0] = time.monotonic()
        log.warning(
            "reads answer from the derived rows as of the last pass: deriving the "
            "queued traces failed (%s: %s)",
            type(exc).__name__,
            exc,
        )


@contextmanager
def read_snapshot(
    database: Database, only_trace: str | None = None, settled: bool = True
) -> Iterator[int]:
    """Run the analyzer's reads on this thread in one snapshot, derived tables current.

    Opens a transaction on the thread's read cursor, prepares the ``a_*`` views
    (``prepare_reads``) and rolls back at the end, dropping the temporary tables.
    Nested use on the same thread joins the outer snapshot (whatever it derived).
    ``only_trace``: see ``prepare_reads``; such a read is never settled.
    ``settled``: may answer as of the derive thread's last pass (see the module
    docstring); False always derives what waits. Yields how many queued traces were
    derived on the fly.
    """
    active: set[int] = _snapshots.__dict__.setdefault("active", set())
    if id(database) in active:
        yield 0
        return
    cursor = database.reader()
    # The stored-table views, created once per cursor outside any transaction: a
    # snapshot with nothing waiting then creates nothing (7 statements, ~4 ms), and one
    # that overlays derived rows has its views rolled back to these at the end.
    # Weakly keyed: by id(), the cursor outlived its Database, and with it DuckDB's
    # lock on the file: a notebook that ran `flowscope.open(...)` twice and closed
    # the second could not write the file until its kernel restarted.
    ready: weakref.WeakKeyDictionary[Database, Any] = _snapshots.__dict__.setdefault(
        "stored_views", weakref.WeakKeyDictionary()
    )
    if ready.get(database) is not cursor:
        _run(cursor, "overlay_none")
        ready[database] = cursor
    lag = database.derived_lag() if settled and only_trace is None else None
    settled_ok = lag is not None and lag <= SETTLED_MAX_LAG_S
    last_pass_traces = database.derived_pass_traces()
    if not (settled_ok and last_pass_traces >= SETTLED_MIN_TRACES):
        # A read that may be exact waits for every span acknowledged before it,
        # including those the writer is still moving out of the journal. Only a read
        # already known to be settled skips this (it stops at the derive mark, which
        # lags the moved spans anyway); under light ingest a recent pass alone did
        # not make it settled, and acknowledged traces were missing from the answer.
        database.await_writes(only_trace)
    with database.read_activity.reading():
        _begin(cursor)
        active.add(id(database))
        try:
            try:
                derived = prepare_reads(cursor, only_trace, settled_ok, last_pass_traces)
            except _NOT_THE_DATA:  # an interrupt among them
                raise
            except Exception as exc:
                if database.closed:
                    # Closed under the read (a notebook's close() beside its threads):
                    # no fault of derivation's, which the warning blamed.
                    raise
                # A queued trace the rules cannot take (the derive thread sets it aside
                # after 3 failed passes, and again each time more of its spans arrive):
                # answer from the stored rows, as of the last pass, rather than fail.
                _warn_stored_rows_only(exc)
                _roll_back(cursor)
                cursor.execute("BEGIN TRANSACTION")
                derived = 0
            yield derived
        finally:
            active.discard(id(database))
            _roll_back(cursor)


# An interrupt meant for the read (its client left: the API interrupts it again every
# quarter second until it ends) may land on its ROLLBACK instead; tried this often.
ROLLBACK_TRIES = 20


def _roll_back(cursor: Any) -> None:
    """End the read's transaction, also when an interrupt lands on the ROLLBACK: one
    failed left the thread's cursor in an aborted transaction, and every later request
    on that worker thread, /healthz too, failed until the server restarted (diff
    review)."""
    interrupted = False
    for attempt in range(ROLLBACK_TRIES):
        try:
            cursor.execute("ROLLBACK")
            return
        except duckdb.InterruptException:
            if attempt == ROLLBACK_TRIES - 1:
                raise
            interrupted = True
        except duckdb.TransactionException:
            # The interrupted one had rolled back after all (DuckDB may raise once the
            # work is done): a server stopping answered 500 with "no transaction is
            # active" instead of its 503 (diff review).
            if not interrupted:
                raise
            return


def _begin(cursor: Any) -> None:
    """Begin the read's transaction; one an earlier read left open (its ROLLBACK failed)
    is rolled back first, not kept failing this thread's reads."""
    try:
        cursor.execute("BEGIN TRANSACTION")
    except duckdb.TransactionException:
        _roll_back(cursor)
        cursor.execute("BEGIN TRANSACTION")
