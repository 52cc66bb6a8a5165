"""The span table: the ClickHouse exporter's columns first, every OTLP field kept, versions checked."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from flowscope.collector.flatten import flatten_request
from flowscope.store import sql_files
from flowscope.store.columns import BATCH_SCHEMA, DICTIONARY_COLUMNS, SPAN_SCHEMA, as_batch
from flowscope.store.database import SCHEMA_VERSION, Database, StoreError
from flowscope.testing.otlp import key_values, span_id, trace_id

# DESIGN.md §3: the OpenTelemetry Collector ClickHouse exporter's otel_traces, in order.
CLICKHOUSE_COLUMNS = [
    ("Timestamp", "TIMESTAMP_NS", None),
    ("TraceId", "VARCHAR", None),
    ("SpanId", "VARCHAR", None),
    ("ParentSpanId", "VARCHAR", "''"),
    ("TraceState", "VARCHAR", "''"),
    ("SpanName", "VARCHAR", None),
    ("SpanKind", "VARCHAR", None),
    ("ServiceName", "VARCHAR", None),
    ("ResourceAttributes", "MAP(VARCHAR, VARCHAR)", None),
    ("ScopeName", "VARCHAR", "''"),
    ("ScopeVersion", "VARCHAR", "''"),
    ("SpanAttributes", "MAP(VARCHAR, VARCHAR)", None),
    ("Duration", "BIGINT", None),
    ("StatusCode", "VARCHAR", None),
    ("StatusMessage", "VARCHAR", "''"),
    (
        "Events",
        'STRUCT("Timestamp" TIMESTAMP_NS, "Name" VARCHAR, "Attributes" MAP(VARCHAR, VARCHAR))[]',
        None,
    ),
    (
        "Links",
        'STRUCT("TraceId" VARCHAR, "SpanId" VARCHAR, "TraceState" VARCHAR, "Attributes" MAP(VARCHAR, VARCHAR))[]',
        None,
    ),
]


def _columns(database: Database) -> list[tuple[str, str, bool, str | None]]:
    rows = database.reader().execute(
        "SELECT column_name, data_type, is_nullable, column_default FROM duckdb_columns() "
        "WHERE table_name = 'otel_traces' ORDER BY column_index"
    )
    return [(str(n), str(t), bool(null), d) for n, t, null, d in rows.fetchall()]


def _unquoted(type_name: str) -> str:
    # DuckDB quotes struct field names only where they are keywords ("Timestamp", "Name").
    return type_name.replace('"', "")


def test_first_columns_are_the_clickhouse_exporters(database: Database) -> None:
    columns = _columns(database)
    head = [(name, _unquoted(kind), default) for name, kind, _, default in columns[:17]]
    assert head == [(n, _unquoted(t), d) for n, t, d in CLICKHOUSE_COLUMNS]
    assert not any(nullable for _, _, nullable, _ in columns), "every column is NOT NULL"
    # flowscope's own columns come after, all with defaults, so an INSERT listing only
    # the exporter's 17 columns (as ClickHouse-bound SQL would) still works.
    assert all(default is not None for *_, default in columns[17:])


def test_span_schema_matches_the_table(database: Database) -> None:
    table = database.reader().sql("SELECT * FROM otel_traces LIMIT 0").to_arrow_table()
    # The writer adds CommitSeq, the last column; batches carry every other one.
    assert table.schema.names[-1] == "CommitSeq"
    table = table.drop_columns(["CommitSeq"])
    assert table.schema.names == SPAN_SCHEMA.names
    for stored, produced in zip(table.schema, SPAN_SCHEMA, strict=True):
        assert stored.type == produced.type, stored.name
        assert not produced.nullable, produced.name


def test_batch_schema_is_the_span_schema_with_dictionaries() -> None:
    assert BATCH_SCHEMA.names == SPAN_SCHEMA.names
    for batch_field, span_field in zip(BATCH_SCHEMA, SPAN_SCHEMA, strict=True):
        if span_field.name in DICTIONARY_COLUMNS:
            assert batch_field.type == pa.dictionary(pa.int32(), span_field.type)
        else:
            assert batch_field.type == span_field.type


def test_as_batch_takes_plain_tables_and_refuses_others() -> None:
    batch = flatten_request(_full_request()).batch.table
    assert batch.schema.equals(BATCH_SCHEMA)
    assert as_batch(batch) is batch
    plain = pa.Table.from_pylist(batch.to_pylist(), schema=SPAN_SCHEMA)
    converted = as_batch(plain)
    assert converted.schema.equals(BATCH_SCHEMA)
    assert converted.to_pylist() == batch.to_pylist()
    with pytest.raises(ValueError, match="SPAN_SCHEMA or BATCH_SCHEMA"):
        as_batch(plain.drop_columns(["Flags"]))


def test_flattened_spans_insert_into_the_table(database: Database) -> None:
    """A batch built to BATCH_SCHEMA goes in with the writer's exact INSERT and reads back."""
    request = _full_request()
    batch = flatten_request(request).batch
    cursor = database.writer_cursor()
    try:
        cursor.register("incoming_spans", batch.table)
        cursor.execute(sql_files.query("insert_spans"), {"seq": 1})
        cursor.unregister("incoming_spans")
    finally:
        cursor.close()
    stored = database.reader().sql("SELECT * EXCLUDE (CommitSeq) FROM otel_traces")
    assert stored.to_arrow_table().to_pylist() == batch.table.to_pylist()


# --- every OTLP field has a column ------------------------------------------------------
#
# "Message.field" -> the columns it lands in ("Events.Name" is the Name field of the
# Events structs). NESTED marks a message field whose own fields are listed under its
# type. A field OTLP adds later has no entry, and test_every_otlp_field_is_mapped fails.
NESTED = "nested"
FIELD_COLUMNS: dict[str, str | tuple[str, ...]] = {
    "ResourceSpans.resource": NESTED,
    "ResourceSpans.scope_spans": NESTED,
    "ResourceSpans.schema_url": ("ResourceSchemaUrl",),
    "Resource.attributes": ("ResourceAttributes", "ServiceName"),
    "Resource.dropped_attributes_count": ("ResourceDroppedAttributesCount",),
    "Resource.entity_refs": NESTED,
    "EntityRef.schema_url": ("ResourceEntityRefs.SchemaUrl",),
    "EntityRef.type": ("ResourceEntityRefs.Type",),
    "EntityRef.id_keys": ("ResourceEntityRefs.IdKeys",),
    "EntityRef.description_keys": ("ResourceEntityRefs.DescriptionKeys",),
    "ScopeSpans.scope": NESTED,
    "ScopeSpans.spans": NESTED,
    "ScopeSpans.schema_url": ("ScopeSchemaUrl",),
    "InstrumentationScope.name": ("ScopeName",),
    "InstrumentationScope.version": ("ScopeVersion",),
    "InstrumentationScope.attributes": ("ScopeAttributes",),
    "InstrumentationScope.dropped_attributes_count": ("ScopeDroppedAttributesCount",),
    "Span.trace_id": ("TraceId",),
    "Span.span_id": ("SpanId",),
    "Span.trace_state": ("TraceState",),
    "Span.parent_span_id": ("ParentSpanId",),
    "Span.flags": ("Flags",),
    "Span.name": ("SpanName",),
    "Span.kind": ("SpanKind",),
    "Span.start_time_unix_nano": ("Timestamp", "Duration"),
    "Span.end_time_unix_nano": ("Duration",),
    "Span.attributes": ("SpanAttributes",),
    "Span.dropped_attributes_count": ("DroppedAttributesCount",),
    "Span.events": NESTED,
    "Span.dropped_events_count": ("DroppedEventsCount",),
    "Span.links": NESTED,
    "Span.dropped_links_count": ("DroppedLinksCount",),
    "Span.status": NESTED,
    "Event.time_unix_nano": ("Events.Timestamp",),
    "Event.name": ("Events.Name",),
    "Event.attributes": ("Events.Attributes",),
    "Event.dropped_attributes_count": ("EventsDroppedAttributesCount",),
    "Link.trace_id": ("Links.TraceId",),
    "Link.span_id": ("Links.SpanId",),
    "Link.trace_state": ("Links.TraceState",),
    "Link.attributes": ("Links.Attributes",),
    "Link.dropped_attributes_count": ("LinksDroppedAttributesCount",),
    "Link.flags": ("LinksFlags",),
    "Status.message": ("StatusMessage",),
    "Status.code": ("StatusCode",),
}
# Attributes are stored whole, as maps: KeyValue/AnyValue are not walked into.
LEAF_MESSAGES = {KeyValue.DESCRIPTOR.full_name}


def _walk(descriptor: Descriptor, seen: dict[str, FieldDescriptor]) -> None:
    for field in descriptor.fields:
        seen[f"{descriptor.name}.{field.name}"] = field
        nested = field.message_type
        if nested is not None and nested.full_name not in LEAF_MESSAGES:
            _walk(nested, seen)


def _otlp_fields() -> dict[str, FieldDescriptor]:
    seen: dict[str, FieldDescriptor] = {}
    _walk(ResourceSpans.DESCRIPTOR, seen)
    return seen


def test_the_walk_reaches_every_span_message() -> None:
    reached = {name.split(".")[0] for name in _otlp_fields()}
    for message in (ResourceSpans, ScopeSpans, Span, Span.Event, Span.Link, Status):
        assert message.DESCRIPTOR.name in reached
    for other in (Resource, InstrumentationScope):
        assert other.DESCRIPTOR.name in reached


def test_every_otlp_field_is_mapped() -> None:
    fields = _otlp_fields()
    unmapped = sorted(set(fields) - set(FIELD_COLUMNS))
    assert not unmapped, f"OTLP fields with no column in otel_traces: {unmapped}"
    stale = sorted(set(FIELD_COLUMNS) - set(fields))
    assert not stale, f"mapping entries for fields OTLP does not have: {stale}"
    for name, field in fields.items():
        is_container = (
            field.message_type is not None and field.message_type.full_name not in LEAF_MESSAGES
        )
        assert (FIELD_COLUMNS[name] == NESTED) == is_container, name


def _struct_field(kind: pa.DataType, name: str) -> pa.DataType | None:
    if pa.types.is_list(kind):
        kind = kind.value_type
    if not pa.types.is_struct(kind):
        return None
    index = kind.get_field_index(name)
    return kind.field(index).type if index >= 0 else None


def test_every_mapped_column_exists(database: Database) -> None:
    table = database.reader().sql("SELECT * FROM otel_traces LIMIT 0").to_arrow_table()
    for name, columns in FIELD_COLUMNS.items():
        if columns == NESTED:
            continue
        for column in columns:
            top, _, inner = column.partition(".")
            assert top in table.schema.names, f"{name}: no column {top}"
            if inner:
                kind = table.schema.field(top).type
                assert _struct_field(kind, inner) is not None, f"{name}: {top} has no {inner}"


# --- and flatten really fills them --------------------------------------------------------


def _full_request() -> ExportTraceServiceRequest:
    """One span with an event, a link and an entity ref: every message the mapping names exists."""
    span = Span(
        trace_id=trace_id(1),
        span_id=span_id(2),
        parent_span_id=span_id(1),
        name="op",
        start_time_unix_nano=1_767_225_600_000_000_000,
        end_time_unix_nano=1_767_225_600_005_000_000,
    )
    event = span.events.add(time_unix_nano=1_767_225_600_001_000_000, name="e")
    event.attributes.extend(key_values({"a": 1}))
    link = span.links.add(trace_id=trace_id(7), span_id=span_id(7))
    link.attributes.extend(key_values({"l": "x"}))
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(key_values({"service.name": "svc"}))
    resource_spans.resource.entity_refs.add(type="service", id_keys=["service.name"])
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "scope"
    scope_spans.spans.append(span)
    return request


_LOCATE: dict[str, Callable[[ExportTraceServiceRequest], Any]] = {
    "ResourceSpans": lambda r: r.resource_spans[0],
    "Resource": lambda r: r.resource_spans[0].resource,
    "EntityRef": lambda r: r.resource_spans[0].resource.entity_refs[0],
    "ScopeSpans": lambda r: r.resource_spans[0].scope_spans[0],
    "InstrumentationScope": lambda r: r.resource_spans[0].scope_spans[0].scope,
    "Span": lambda r: r.resource_spans[0].scope_spans[0].spans[0],
    "Status": lambda r: r.resource_spans[0].scope_spans[0].spans[0].status,
    "Event": lambda r: r.resource_spans[0].scope_spans[0].spans[0].events[0],
    "Link": lambda r: r.resource_spans[0].scope_spans[0].spans[0].links[0],
}
_INTEGER_TYPES = {
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_ENUM,
}


def _change(message: Any, field: FieldDescriptor) -> None:
    """Give ``field`` another valid value (ids keep their length, so the span stays valid)."""
    name = field.name
    if field.message_type is not None:  # attributes: change the first value, else add one
        attributes = getattr(message, name)
        if attributes:
            attributes[0].value.string_value = "changed"
        else:
            attributes.extend(key_values({"added": 1}))
    elif field.is_repeated:
        getattr(message, name).append("added")
    elif field.type == FieldDescriptor.TYPE_BYTES:
        size = len(getattr(message, name)) or 8
        setattr(message, name, bytes([0xAB]) * size)
    elif field.type == FieldDescriptor.TYPE_STRING:
        setattr(message, name, getattr(message, name) + "-changed")
    elif field.type in _INTEGER_TYPES:
        setattr(message, name, getattr(message, name) + 1)
    else:
        raise AssertionError(f"no way to change {name} of type {field.type}")


@pytest.mark.parametrize(
    "name", sorted(n for n, columns in FIELD_COLUMNS.items() if columns != NESTED)
)
def test_changing_a_field_changes_exactly_its_columns(name: str) -> None:
    baseline = flatten_request(_full_request()).batch.table
    changed_request = _full_request()
    message_name, _, field_name = name.partition(".")
    message = _LOCATE[message_name](changed_request)
    _change(message, message.DESCRIPTOR.fields_by_name[field_name])
    result = flatten_request(changed_request)
    assert result.rejected == 0
    changed = result.batch.table
    assert baseline.num_rows == changed.num_rows == 1
    differing = {
        column
        for column in SPAN_SCHEMA.names
        if not baseline.column(column).equals(changed.column(column))
    }
    columns = FIELD_COLUMNS[name]
    assert differing == {column.split(".")[0] for column in columns}


# --- databases flowscope must not use -----------------------------------------------------


def test_other_schema_version_is_refused_naming_the_file(db_path: Path) -> None:
    Database(db_path).close()
    connection = duckdb.connect(str(db_path))
    connection.execute("UPDATE schema_meta SET version = ?", [SCHEMA_VERSION + 1])
    connection.close()
    for read_only in (False, True):
        with pytest.raises(StoreError) as refused:
            Database(db_path, read_only=read_only)
        message = str(refused.value)
        assert str(db_path) in message
        assert f"version {SCHEMA_VERSION + 1}" in message


def test_an_empty_schema_meta_is_refused_without_a_version_none(db_path: Path) -> None:
    Database(db_path).close()
    connection = duckdb.connect(str(db_path))
    connection.execute("DELETE FROM schema_meta")
    connection.close()
    for read_only in (False, True):
        with pytest.raises(StoreError, match="holds no flowscope schema version") as refused:
            Database(db_path, read_only=read_only)
        assert str(db_path) in str(refused.value) and "None" not in str(refused.value)


def test_foreign_duckdb_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    connection = duckdb.connect(str(path))
    connection.execute("CREATE TABLE invoices (id INTEGER)")
    connection.close()
    for read_only in (False, True):
        with pytest.raises(StoreError) as refused:
            Database(path, read_only=read_only)
        assert str(path) in str(refused.value)
        assert "not a flowscope one" in str(refused.value)
    # Refusing must leave the file as it was: no flowscope tables were added.
    connection = duckdb.connect(str(path), read_only=True)
    tables = connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    connection.close()
    assert tables == [("invoices",)]


def test_file_that_is_not_duckdb_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.duckdb"
    path.write_bytes(b"these are not the spans you are looking for\n" * 200)
    with pytest.raises(StoreError) as refused:
        Database(path)
    assert str(path) in str(refused.value)


def test_a_file_cut_short_is_refused_with_a_message_not_a_traceback(tmp_path: Path) -> None:
    """Before, `flowscope import` into a truncated file ended in an IOException
    traceback from the first read past the cut."""
    from click.testing import CliRunner

    from flowscope.cli import main
    from flowscope.store.writer import SpanWriter
    from flowscope.testing.otlp import realistic_request

    path = tmp_path / "cut.duckdb"
    database = Database(path)
    writer = SpanWriter(database, journal=False)
    writer.start()
    batch = flatten_request(realistic_request(3000, seed=4)).batch
    writer.write(batch.table, batch.keys)
    writer.shutdown()
    database.close()
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 4)
    spans = tmp_path / "more.pb"
    spans.write_bytes(realistic_request(2, seed=5).SerializeToString())
    result = CliRunner().invoke(main, ["import", "--db", str(path), str(spans), "--no-progress"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{path}: not a usable DuckDB database" in result.stderr
    # `serve` read the spans first for its duplicate window: a traceback (ops review).
    served = subprocess.run(
        [sys.executable, "-m", "flowscope.cli", "serve", "--db", str(path), "--grpc-port", "0"]
        + ["--http-port", "0", "--ui-port", "0", "--retention", "off"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert served.returncode == 1, served.stderr
    assert "Traceback" not in served.stderr
    assert f"flowscope: {path}: not a usable DuckDB database" in served.stderr


def test_a_read_write_open_takes_this_releases_views(db_path: Path) -> None:
    """The views live in the file: one made before negative durations were clamped kept
    its old view, and derivation kept taking in negative durations through it."""
    Database(db_path).close()
    connection = duckdb.connect(str(db_path))
    connection.execute(
        "CREATE OR REPLACE VIEW span_service_facts AS "
        "SELECT Timestamp, CommitSeq, TraceId, ServiceName, Duration, "
        "CAST(-1 AS SMALLINT) AS Bucket, false AS IsError FROM otel_traces"
    )
    connection.close()
    Database(db_path).close()
    connection = duckdb.connect(str(db_path), read_only=True)
    [(text,)] = connection.execute(
        "SELECT sql FROM duckdb_views() WHERE view_name = 'span_service_facts'"
    ).fetchall()
    connection.close()
    assert "greatest(Duration, 0)" in text


def test_a_machine_that_cannot_open_a_good_file_does_not_blame_the_file(tmp_path: Path) -> None:
    """A full disk, a memory limit or a write-protected folder was reported as "not a
    usable DuckDB database", and an operator might have deleted a good file."""
    from flowscope.store.database import StoreError, file_failure

    path = tmp_path / "good.duckdb"
    Database(path).close()
    with pytest.raises(StoreError) as refused:
        Database(path, memory_limit="1KB")
    assert "cannot open it now (the file itself may be fine): Out of Memory" in str(refused.value)
    full = file_failure(
        "f.duckdb", duckdb.IOException('Could not write "f.wal": No space left on device')
    )
    assert "cannot open it now" in str(full)
    # A journal's replay under --memory-limit 20MB (review).
    replay = file_failure(
        "f.duckdb",
        duckdb.TransactionException(
            "TransactionContext Error: Failed to commit: could not allocate block of size "
            "256.0 KiB (18.9 MiB/19.0 MiB used)"
        ),
    )
    assert "cannot open it now" in str(replay)
    damaged = file_failure("f.duckdb", duckdb.IOException("Could not read enough bytes"))
    assert "not a usable DuckDB database" in str(damaged)


@contextmanager
def _held(path: Path, read_only: bool, *argv: str) -> Iterator[int]:
    """Another process with ``path`` open (its command line ends in ``argv``): its pid."""
    import subprocess
    import sys

    code = (
        "import sys; from flowscope.store.database import Database; "
        f"d = Database({str(path)!r}, read_only={read_only}); print('open', flush=True); "
        "sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        yield holder.pid
    finally:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.wait(30)
        holder.stdout.close()


def test_a_file_held_by_a_reader_names_it_in_flowscopes_words(tmp_path: Path) -> None:
    """serve on a file a reader had open printed DuckDB's advice to use its CLI's
    -readonly flag; it now says which process holds it and what may be holding it."""
    from flowscope.store.database import DatabaseLocked

    path = tmp_path / "held.duckdb"
    Database(path).close()
    with _held(path, True) as pid, pytest.raises(DatabaseLocked) as held:
        Database(path)
    message = str(held.value)
    assert f"is in use by process {pid}" in message
    assert "flowscope.open" in message and "-readonly" not in message


def test_read_cursors_of_finished_threads_are_let_go(db_path: Path) -> None:
    """Every thread's cursor was kept (to interrupt it): the API's worker threads come
    and go, and a long-running server leaked ~58 KB a thread."""
    import threading

    database = Database(db_path)
    try:
        for _ in range(3):
            threads = [threading.Thread(target=database.reader) for _ in range(20)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        database.reader()
        assert len(database._readers) <= 21
        database.interrupt_reads()  # nothing runs: a no-op, not an error
    finally:
        database.close()


def test_a_read_of_a_file_an_import_writes_names_the_import(tmp_path: Path) -> None:
    """It said "no flowscope server of it answers (one still starting, or another
    program)" for a `flowscope import` writing the file, and for a stopping server."""
    from flowscope.store.database import DatabaseLocked

    path = tmp_path / "importing.duckdb"
    # its command line reads like `flowscope import`
    with _held(path, False, "/usr/bin/flowscope", "import") as pid:
        with pytest.raises(DatabaseLocked) as held:
            Database(path, read_only=True)
    assert str(held.value) == (
        f"{path} is being written by `flowscope import` (process {pid}); read it once that ends"
    )


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        ("spans.jsonl", b'{"resourceSpans": []}\n', "it does not start as DuckDB files do"),
        ("data.json", b'{"a": 1}', "it does not start as DuckDB files do"),
        ("table.csv", b"a,b\n1,2\n", "it does not start as DuckDB files do"),
        ("junk.duckdb", bytes(range(256)) * 8, "it does not start as DuckDB files do"),
        ("empty.duckdb", b"", "it is empty"),
    ],
)
def test_a_file_that_is_not_a_database_is_refused_not_opened_in_memory(
    tmp_path: Path, name: str, content: bytes, why: str
) -> None:
    """DuckDB 2 opens a .json, .jsonl or .csv file as an in-memory database: `import
    --db spans.jsonl` said every span was new and stored none, and the file was as
    before; `serve` acknowledged spans it lost at exit."""
    from click.testing import CliRunner

    from flowscope.cli import main
    from flowscope.testing.otlp import realistic_request

    path = tmp_path / name
    path.write_bytes(content)
    spans = tmp_path / "more.pb"
    spans.write_bytes(realistic_request(2, seed=5).SerializeToString())
    result = CliRunner().invoke(main, ["import", "--db", str(path), str(spans), "--no-progress"])
    assert result.exit_code == 1, result.output
    assert f"{path}: not a usable DuckDB database ({why})" in result.stderr
    assert path.read_bytes() == content
    for read_only in (False, True):
        with pytest.raises(StoreError, match="not a usable DuckDB database"):
            Database(path, read_only=read_only)
    assert path.read_bytes() == content


def test_opening_a_file_again_in_one_process_keeps_its_lock(tmp_path: Path) -> None:
    """A second open (a notebook cell run again) checked the file's header by opening
    and closing it, which dropped every POSIX lock the process held on it, DuckDB's
    among them: `serve` then wrote under the open handle (notebook review)."""
    import subprocess
    import sys

    path = tmp_path / "twice.duckdb"
    Database(path).close()
    write = (
        "import sys; from flowscope.store.database import Database, DatabaseLocked\n"
        "try:\n    Database(sys.argv[1]).close()\nexcept DatabaseLocked:\n    sys.exit(3)\n"
    )
    first = Database(path, read_only=True)
    try:
        second = Database(path, read_only=True)
        try:
            refused = subprocess.run([sys.executable, "-c", write, str(path)], timeout=120)
            assert refused.returncode == 3, "a writer opened the file under two handles"
        finally:
            second.close()
        refused = subprocess.run([sys.executable, "-c", write, str(path)], timeout=120)
        assert refused.returncode == 3, "closing one handle let a writer in under the other"
    finally:
        first.close()
    assert subprocess.run([sys.executable, "-c", write, str(path)], timeout=120).returncode == 0


def _locked_by_us(path: Path) -> bool:
    """Whether this process holds a POSIX lock on ``path`` (Linux's /proc/locks)."""
    import os

    status = os.stat(path)
    inode = f":{status.st_ino} "
    pid = f" {os.getpid()} "
    with open("/proc/locks", encoding="ascii") as locks:
        return any("POSIX" in line and pid in line and inode in line for line in locks)


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="Linux's /proc/locks")
def test_threads_opening_one_file_together_keep_its_lock(tmp_path: Path) -> None:
    """One thread's header check, between another's connect and its count, closed a
    descriptor of the file and dropped DuckDB's lock (diff review: 7 of 20 trials)."""
    import threading

    path = tmp_path / "together.duckdb"
    Database(path).close()
    for _ in range(15):
        start = threading.Barrier(6)
        handles: list[Database] = []

        def open_it(start: threading.Barrier, handles: list[Database]) -> None:
            start.wait()
            handles.append(Database(path, read_only=True))

        threads = [threading.Thread(target=open_it, args=(start, handles)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        try:
            assert len(handles) == 6
            assert _locked_by_us(path), "the lock went while six handles were open"
        finally:
            for handle in handles:
                handle.close()


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="Linux's /proc/locks")
def test_a_file_opened_again_by_a_hard_link_keeps_its_lock(tmp_path: Path) -> None:
    """DuckDB took the link for a second file: its second instance's close dropped the
    lock the first still needed (diff review). Opened by the first path, it is one."""
    import os

    path = tmp_path / "linked.duckdb"
    Database(path).close()
    link = tmp_path / "link.duckdb"
    os.link(path, link)
    for first, second in ((path, link), (link, path)):
        one = Database(first, read_only=True)
        try:
            other = Database(second, read_only=True)
            other.close()
            assert _locked_by_us(path), f"closing {second.name} dropped the lock of {first.name}"
        finally:
            one.close()
    assert not _locked_by_us(path)


def test_a_file_opened_by_a_relative_path_is_found_again_after_a_chdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry kept the relative path: opened again by its absolute path after a
    chdir, the handle read another file of that name there (diff review)."""
    Database(tmp_path / "b.duckdb").close()
    (tmp_path / "other").mkdir()
    impostor = Database(tmp_path / "other" / "b.duckdb")
    impostor.writer_cursor().execute("CREATE TABLE impostor (x INTEGER)")
    impostor.close()
    monkeypatch.chdir(tmp_path)
    first = Database("b.duckdb", read_only=True)
    try:
        monkeypatch.chdir(tmp_path / "other")
        second = Database(tmp_path / "b.duckdb", read_only=True)
        try:
            tables = second.reader().execute("SELECT table_name FROM duckdb_tables()").fetchall()
            assert ("impostor",) not in tables
        finally:
            second.close()
    finally:
        first.close()


def test_a_file_open_here_in_another_mode_is_not_called_unusable(tmp_path: Path) -> None:
    """DuckDB refuses a second open with other settings; the file was called "not a
    usable DuckDB database" (diff review)."""
    path = tmp_path / "modes.duckdb"
    Database(path).close()
    first = Database(path, read_only=True)
    try:
        with pytest.raises(StoreError, match="this process has the file open already") as refused:
            Database(path)
        assert "not a usable" not in str(refused.value)
    finally:
        first.close()
    Database(path).close()


def test_a_lock_held_by_a_process_that_has_ended_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import started as its server was killed was refused, naming the dead server
    as the holder (durability review): its lock went with it."""
    from flowscope.store import database as database_module
    from flowscope.store.database import DatabaseLocked
    from flowscope.testing.waiting import wait_until

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait(30)
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])  # not waited for: a zombie
    status = Path(f"/proc/{zombie.pid}/status")
    wait_until(lambda: "\nState:\tZ" in status.read_text(), "the child to become a zombie")
    real_connect = duckdb.connect
    path = tmp_path / "spans.duckdb"
    Database(path).close()

    def refused_once_by(holder: int) -> Callable[..., Any]:
        refusals = [
            duckdb.IOException(
                f'IO Error: Could not set lock on file "{path}": Conflicting lock is held '
                f"in /usr/bin/python3 (PID {holder}) by user root."
            )
        ]

        def connect(*args: Any, **kwargs: Any) -> Any:
            if refusals:
                raise refusals.pop()
            return real_connect(*args, **kwargs)

        return connect

    for holder in (ended.pid, zombie.pid):
        monkeypatch.setattr(database_module.duckdb, "connect", refused_once_by(holder))
        Database(path).close()
    monkeypatch.setattr(database_module.duckdb, "connect", refused_once_by(os.getpid()))
    with pytest.raises(DatabaseLocked, match=f"is in use by process {os.getpid()}"):
        Database(path)
    zombie.wait(30)
