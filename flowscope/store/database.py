"""The DuckDB file: opening, schema, and per-thread read cursors.

Only this package opens DuckDB connections (DESIGN.md §2). A ``Database``
owns one connection; the writer thread gets its own cursor through
``writer_cursor()``, readers get one cursor per thread through ``reader()``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from flowscope.logs import error_line
from flowscope.store import sql_files
from flowscope.store.block_counts import BlockCounts
from flowscope.store.dedup import StoredSpan
from flowscope.store.journal import (
    Journal,
    JournalBusy,
    JournalError,
    has_segments,
    held_elsewhere,
    journal_bytes,
    journal_path,
)
from flowscope.store.journal import (
    in_use as journal_in_use,
)
from flowscope.store.read_activity import ReadActivity
from flowscope.store.wal_keeper import wal_bytes

log = logging.getLogger(__name__)

CHECKPOINT_THRESHOLD = "256MB"
# DuckDB's full checkpoints (no other transaction open: a restart's first commit, a
# stop's close, a quiet moment) merge the small row groups that busier checkpoints
# leave into full ones, rewriting every row of them. Over spans of 10 KB attributes
# that was gigabytes: a restart's checkpoint took 99 s (4.5 s without merges) and a
# stop outlasted its wait; this machine rewrites ~19 MB/s of such spans. Without
# merges, though, every checkpoint leaves a block or more per table for good (100
# imports of 2,000 spans: 160 MB against 25). So a checkpoint's merges may rewrite at
# most this much of otel_traces (merges_within).
MERGE_BYTES_MAX = 64 * 2**20
ROW_GROUP_MERGES = 100  # DuckDB's default, when allowed
ROW_GROUP_ROWS = 122_880  # DuckDB's row group size: a group with fewer is "small"
BLOCK_BYTES = 256 * 2**10  # DuckDB's block size
# Merges are looked at again after this long (between derive passes), and once this
# much more has been committed (Database.note_committed): spans of large attributes
# grow the small row groups that much in seconds, and a first look only after 60 s
# let merges of them stall commits for up to 17 s.
MERGE_REVIEW_S = 60.0
MERGE_REVIEW_BYTES = 128 * 2**20
# How long a disk-usage read waits for DuckDB's block counts before it takes the last
# ones read: they wait for a checkpoint in progress (store/block_counts.py).
BLOCKS_WAIT_S = 0.2
# 2: otel_traces gained ResourceEntityRefs (OTLP Resource.entity_refs).
# 3: span_steps gained RootKey (migrated in place from 2: sql/migrate_to_3.sql).
# 4: step_keys gained Peer (migrated in place from 3: sql/migrate_to_4.sql).
# 5: edge_minutes, calls per edge and minute (filled from edge_calls: sql/fill_5.sql).
# 6: span_steps.CpFraction DOUBLE became CpNano UINTEGER; edge_calls names traces by
#    64-bit key only (TraceId went, SourceTraceId became SourceTraceKey): migrate_to_6.sql.
# 7: trace_index numbers its traces (TraceNo); span_steps and edge_calls name their
#    trace by that number instead of TraceKey: migrate_to_7.sql.
# 8: the keys naming traces and spans in derived data (004_keys.sql) read the ids'
#    digits: DuckDB's string hash merged patterned ids (fill_8.sql).
SCHEMA_VERSION = 8
MIGRATIONS = {
    2: "migrate_to_3",
    3: "migrate_to_4",
    4: "migrate_to_5",
    5: "migrate_to_6",
    6: "migrate_to_7",
    7: "migrate_to_8",
}  # found version -> the script that brings it to the next
# Version reached -> the script that fills its new tables, run once the schema files
# have created them.
FILLS = {5: "fill_5", 7: "fill_7", 8: "fill_8"}


@dataclass(frozen=True)
class DiskUsage:
    file_bytes: int  # the database file
    used_bytes: int | None  # its blocks that hold data (None: not read yet)
    free_bytes: int | None  # its blocks left free by checkpoints, reused as it grows
    blocks_age_s: float | None  # since those two were read (a checkpoint holds them)
    wal_bytes: int  # DuckDB's write-ahead log beside it, emptied by each checkpoint
    journal_bytes: int  # the span journal's segments: uncommitted spans, and their segment


def no_derive_thread() -> float | None:
    """``Database.derived_lag`` while no derive thread runs: no lag known, reads exact."""
    return None


def no_derive_pass() -> int:
    """``Database.derived_pass_traces`` while no derive thread runs: no pass derived any."""
    return 0


class WriteBarrier(Protocol):
    def __call__(self, trace_id: str | None = None) -> None:
        """Return once acknowledged spans (of ``trace_id`` only, if given) are stored;
        ``WritesBehind`` if they are not within the writer's wait."""


def no_writer(trace_id: str | None = None) -> None:
    """``Database.await_writes`` while no writer runs: nothing acknowledged is unstored."""


REPLAY_BATCH_SPANS = 32_768


def insert_spans(cursor: Any, table: pa.Table, seq: int, sql: str) -> None:
    """Insert a span batch stamped ``CommitSeq = seq`` (``sql``: sql/insert_spans.sql).

    Only the spans, in one auto-committed statement: queueing and counting them is
    the derive thread's (sql/dv_intake.sql), as every DuckDB call costs ~0.4 ms.
    """
    cursor.register("incoming_spans", table)
    try:
        cursor.execute(sql, {"seq": seq})
    finally:
        try:
            cursor.unregister("incoming_spans")
        except duckdb.Error:
            pass  # out of memory, say: the next batch's register replaces it


# DuckDB's fatal error: the database is invalidated, every later statement fails with
# it until the file is opened again (``Database.note_error``).
DatabaseFailed = duckdb.FatalException
# What invalidates the database when flowscope's own statements raise it, as DuckDB
# would have (its invalidation is off: the open's config says why).
_INVALIDATING = (duckdb.FatalException, duckdb.InternalException)


class StoreError(Exception):
    """A database that cannot be used, with a message naming the file."""


# Errors of the machine, not of the file: a full disk, a memory limit, permissions.
_NOT_THE_FILE = (
    "no space left on device",
    "out of memory",
    # Under --memory-limit, a replay's commit: "TransactionContext Error: Failed to
    # commit: could not allocate block" was called not a usable DuckDB database.
    "could not allocate",
    "failed to allocate",
    "permission denied",
    "operation not permitted",
    "read-only file system",
)


def _locked_message(path: str, text: str, read_only: bool) -> str:
    """Who holds the file, in flowscope's words: DuckDB's own advice (its CLI's
    -readonly flag) means nothing to a flowscope user."""
    holder = re.search(r"\(PID (\d+)\)", text)
    who = f"process {holder[1]}" if holder else "another process"
    command = _flowscope_command(int(holder[1])) if holder else None
    if read_only and command == "import":
        return f"{path} is being written by `flowscope import` ({who}); read it once that ends"
    if read_only and command in ("serve", "demo"):
        return (
            f"{path} is held by `flowscope {command}` ({who}), which does not answer: it is "
            "starting or stopping; try again in a moment"
        )
    if read_only:
        return (
            f"{path} is held for writing by {who}, and no flowscope server of it answers "
            "(one still starting, or another program)"
        )
    return (
        f"{path} is in use by {who}: a `flowscope serve` or `import` writing it, or a "
        "reader (`flowscope sql`, `flowscope.open`) with it open; stop that and try again"
    )


def _holder_ended(text: str) -> bool:
    """A lock error naming a process that is no more (or a zombie, whose locks went as
    it exited)."""
    holder = re.search(r"\(PID (\d+)\)", text) if "lock" in text.lower() else None
    if holder is None:
        return False
    try:
        status = Path(f"/proc/{holder[1]}/status").read_text()
    except FileNotFoundError:
        return Path("/proc/self").exists()  # no /proc: nothing known
    except OSError:
        return False
    return re.search(r"^State:\s+Z", status, re.MULTILINE) is not None


_SUBCOMMANDS = ("serve", "demo", "import")


def _flowscope_command(pid: int) -> str | None:
    """``serve``, ``demo`` or ``import`` when process ``pid`` runs that flowscope command
    (its command line, where the system shows it), else None."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    for name, following in zip(args, args[1:], strict=False):
        if name.rsplit("/", 1)[-1] == "flowscope" and following in _SUBCOMMANDS:
            return following
    return None


def file_failure(path: str, exc: Exception) -> StoreError:
    """The refusal of a file that failed to open or read (a damaged file can open, and
    fail at its first read of a lost block): "not a usable DuckDB database" only
    when the file is to blame. A full disk said so too, and an operator might have
    deleted a good file (it opened with every span once space was freed)."""
    text = str(exc)
    if isinstance(exc, duckdb.OutOfMemoryException) or any(
        words in text.lower() for words in _NOT_THE_FILE
    ):
        return StoreError(f"{path}: cannot open it now (the file itself may be fine): {text}")
    return StoreError(f"{path}: not a usable DuckDB database: {text}")


_BYTE_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?i?B|bytes)\s*$", re.IGNORECASE)


def _byte_size(text: str) -> int | None:
    """A size as DuckDB writes its settings ('19.1 GiB', '512.0 KiB', '0 bytes')."""
    match = _BYTE_SIZE.match(text)
    if match is None:
        return None
    unit = match[2].upper()
    if unit == "BYTES" or unit == "B":
        return int(float(match[1]))
    base = 1024 if "I" in unit else 1000
    return int(float(match[1]) * base ** ("KMGTP".index(unit[0]) + 1))


# A DuckDB file's main header: an 8-byte checksum, then these bytes.
_MAGIC = b"DUCK"


class _OpenFiles:
    """The database files this process has open in DuckDB, by device and inode, each
    with the path DuckDB was given and how many handles have it. A file open already
    is opened again by that path: DuckDB keeps one instance per path, and a hard link's
    second instance dropped the file's lock when it closed (diff review)."""

    def __init__(self) -> None:
        self.opening = threading.Lock()  # held across a header check, connect and count
        self._lock = threading.Lock()
        self._open: dict[tuple[int, int], tuple[str, int]] = {}

    def path_of(self, path: str) -> str | None:
        """The path the file at ``path`` is open by in this process, if it is open."""
        key = _file_key(path)
        with self._lock:
            held = self._open.get(key) if key is not None else None
        return held[0] if held else None

    def add(self, path: str) -> tuple[int, int] | None:
        key = _file_key(path)
        if key is not None:
            with self._lock:
                # Absolute: a relative one, given again after a chdir, named another
                # file (diff review).
                opened_as, count = self._open.get(key, (os.path.abspath(path), 0))
                self._open[key] = (opened_as, count + 1)
        return key

    def remove(self, key: tuple[int, int] | None) -> None:
        if key is None:
            return
        with self._lock:
            opened_as, count = self._open.get(key, ("", 1))
            if count > 1:
                self._open[key] = (opened_as, count - 1)
            else:
                self._open.pop(key, None)


def _file_key(path: str) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


_FILES_OPEN = _OpenFiles()


def _not_duckdb(path: str) -> str:
    """Why ``path`` is not a DuckDB file, or "" when it is one or nothing yet."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8 + len(_MAGIC))
    except FileNotFoundError:
        return ""
    except IsADirectoryError:
        return "it is a directory"
    except OSError:
        return ""  # unreadable here: DuckDB's own open says why
    if not head:
        return "it is empty"
    return "" if head[8:] == _MAGIC else "it does not start as DuckDB files do"


def read_failure(path: str, exc: duckdb.Error) -> str:
    """What to say of a read of ``path`` that failed: ``file_failure``'s words when
    the file (or the machine) may be to blame, else DuckDB's own error, for a value
    it could not take (a string that is not UTF-8) is no damaged file."""
    if isinstance(
        exc,
        duckdb.IOException
        | duckdb.CatalogException
        | duckdb.SerializationException
        | duckdb.InternalException
        | duckdb.OutOfMemoryException,
    ):
        return str(file_failure(path, exc))
    return f"{path}: {exc}"


# How long closing waits for interrupted reads to end (they stop within milliseconds).
CLOSE_READS_WAIT_S = 10.0


class DatabaseLocked(StoreError):
    """Another process (usually a running ``flowscope serve``) holds the file."""


# How long a read waits for another reader that is replaying the span journal.
REPLAY_WAIT_S = 30.0


class WritesBehind(StoreError):
    """Acknowledged spans are not in the table yet, and not soon: the writer cannot
    commit (a full disk, say). An answer now would miss them without saying so."""


class Database:
    def __init__(
        self,
        path: str | Path,
        *,
        read_only: bool = False,
        memory_limit: str = "",
        upgrade: bool = True,
    ) -> None:
        """``upgrade``: a read-write open migrates an older schema (False: refuses it,
        as a read-only open does)."""
        if not str(path).strip():
            # DuckDB opens "" in memory: every span acknowledged into it was lost.
            raise StoreError("no database file named (an empty path); give one with --db")
        self.path = str(path)
        self._block_counts = BlockCounts(self._read_block_counts)
        self.read_only = read_only
        self.upgrade = upgrade and not read_only
        config: dict[str, Any] = {
            # flowscope needs only the extensions built into the wheel (json, parquet,
            # icu). A query naming another one's function or type (the SQL endpoint runs
            # users' queries) must fail, not fetch and load code from the network.
            "autoinstall_known_extensions": False,
            # On while the file opens, off right after (below): replaying a WAL can
            # need DuckDB's own core_functions, which it loads like an extension (an
            # upgrade's ALTER ... round() left a file no open could replay).
            "autoload_known_extensions": True,
            # No Python object a query names (a local variable, a DataFrame) is a table.
            "python_enable_replacements": False,
            # No file but this database (and its WAL and temp directory) and no network:
            # flowscope reads and writes nothing else through DuckDB, and a query past
            # the SQL sandbox's checks (json_serialize_plan bound SQL that read files)
            # then cannot either. Arrow scans, CHECKPOINT and spilling still work.
            "enable_external_access": False,
            # DuckDB takes an internal error (a defect of its own) for a fatal one and
            # refuses every later statement: one user's SELECT over /api/sql (a cast of
            # TIMESTAMP_MS's last value to TIMESTAMP_S) stopped the server. flowscope
            # keeps that restricted mode itself instead (``note_error``), for the
            # errors of its own statements, not for an error of a user's query.
            "disable_database_invalidation": True,
        }
        if memory_limit:
            config["memory_limit"] = memory_limit
        if not read_only:
            # DuckDB checkpoints every 16 MB of WAL by default, rewriting half-filled
            # row groups each time: the file ends up ~1.9x larger (docs/benchmarks.md).
            config["checkpoint_threshold"] = CHECKPOINT_THRESHOLD
            # The open's own checkpoint (of a crashed server's WAL) merges no row
            # groups; review_row_group_merges decides after it.
            config["max_vacuum_tasks"] = 0
        if read_only and not Path(self.path).exists():
            raise StoreError(
                f"{self.path}: no such database (run `flowscope serve` or `flowscope import` first)"
            )
        self.journal_dir = journal_path(self.path)
        replaying = read_only and has_segments(self.journal_dir)
        if replaying:
            # Acknowledged spans a stopped server had not moved yet: bring them in
            # (read-write, briefly) so this read sees every acknowledged span; but a
            # read never upgrades the file (older releases could not read it after).
            try:
                _replay_for_read(self.path, memory_limit)
            except DatabaseLocked:
                raise
            except (StoreError, duckdb.Error) as exc:  # a read-only or full disk: readable
                log.warning(
                    "%s: the span journal was not replayed (%s); this read leaves out the "
                    "acknowledged spans it holds",
                    self.path,
                    exc,
                )
        deadline = time.monotonic() + REPLAY_WAIT_S
        while True:
            try:
                self._connection = self._connect(config)
                break
            except DatabaseLocked:
                # Another reader replaying the journal holds it read-write a moment
                # longer than its segments last (this read may have found none).
                if not (read_only and _replay_in_progress(self.path)):
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        # Spans are stored in UTC: so is now() for users' SQL, whatever the machine's
        # zone (`Timestamp > now()::TIMESTAMP_NS - INTERVAL 1 HOUR` matched nothing
        # east of UTC). Before autoloading ends: the setting needs icu.
        self._connection.execute("SET GLOBAL TimeZone = 'UTC'")
        self._connection.execute("SET GLOBAL autoload_known_extensions = false")
        self._local = threading.local()
        # Each live thread's read cursor, to interrupt; a dead thread's is dropped (the
        # API's worker threads come and go: kept, they leaked ~58 KB a cursor).
        self._readers: list[tuple[threading.Thread, duckdb.DuckDBPyConnection]] = []
        self._lock = threading.Lock()
        self._probe: duckdb.DuckDBPyConnection | None = None  # buffer_share's cursor
        self._probe_lock = threading.Lock()
        self._closed = False
        self._merges = 0  # merge tasks a checkpoint may run; none, as the open's config has
        self._merges_reviewed = float("-inf")
        self._merges_reviewed_bytes = 0
        self._merge_review = threading.Lock()  # one look at a time, none at the close
        # What the span writer has committed (Load.bytes), counted by its thread.
        self.committed_bytes = 0
        # What stops its reads when it closes, for their message: a server sets its own.
        self.stop_reason = "its file is being closed"
        # Set by stop_reads: reads are being stopped for good (a server stopping), also
        # those DuckDB cannot interrupt inside one function call.
        self.reads_stopped = threading.Event()
        # Seconds since the derived tables last took in every committed span, or None
        # when no derive thread keeps them current (store/deriver.py sets it while it
        # runs). Reads may then answer as of that moment (derivation.read_snapshot).
        self.derived_lag: Callable[[], float | None] = no_derive_thread
        # How many traces its last successful pass derived: how busy ingest is.
        self.derived_pass_traces: Callable[[], int] = no_derive_pass
        # Analyzer reads in progress: the derive thread lets them finish first.
        self.read_activity = ReadActivity()
        # Blocks until spans acknowledged so far are in otel_traces (the writer sets it
        # while it runs: acknowledged spans may still be in the journal for a moment).
        self.await_writes: WriteBarrier = no_writer
        # Why DuckDB invalidated the database (a fatal error: every later statement on
        # it fails until the file is opened again), once it has; see ``note_error``.
        self.failed: str | None = None
        self.on_failed: Callable[[str], None] | None = None
        try:
            self._check_schema()
            if not read_only:
                self.replay_journal()
                self.review_row_group_merges()
        except duckdb.Error as exc:
            self._close_connection()  # a refused file stays closed, not half open
            # A damaged file (cut short, say) fails at its first read, not at connect;
            # a full disk at the journal's replay.
            raise file_failure(self.path, exc) from exc
        except BaseException:
            self._close_connection()
            raise

    def _connect(self, config: dict[str, Any]) -> duckdb.DuckDBPyConnection:
        # One open at a time in this process: another thread's header check, between
        # this one's connect and its count, dropped the lock too (diff review).
        with _FILES_OPEN.opening:
            return self._connect_alone(config)

    def _connect_alone(self, config: dict[str, Any]) -> duckdb.DuckDBPyConnection:
        # Not when this process has the file open already (a notebook cell run again):
        # closing the check's descriptor dropped every POSIX lock the process held on
        # the file, DuckDB's among them, and `serve` then wrote under the open handle
        # (notebook review). A file DuckDB has open is a DuckDB file.
        opened_as = _FILES_OPEN.path_of(self.path)
        if opened_as is None and (why := _not_duckdb(self.path)):
            # DuckDB 2 opens a .json, .jsonl, .csv or .parquet file as an in-memory
            # database with a view of it: spans imported or acknowledged into it were
            # lost when the process ended, and the file's own content never changed.
            raise StoreError(
                f"{self.path}: not a usable DuckDB database ({why}); name a new file or a "
                "flowscope database"
            )
        try:
            try:
                connection = duckdb.connect(
                    opened_as or self.path, read_only=self.read_only, config=config
                )
            except duckdb.IOException as exc:
                if not _holder_ended(str(exc)):
                    raise
                # Held by a process that has ended since (a server killed as an import
                # started through it): its lock is gone with it, and the import was
                # refused naming a dead process (durability review).
                connection = duckdb.connect(
                    opened_as or self.path, read_only=self.read_only, config=config
                )
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" in text.lower():
                raise DatabaseLocked(_locked_message(self.path, text, self.read_only)) from exc
            raise StoreError(f"{self.path}: cannot open: {text}") from exc
        except duckdb.Error as exc:
            if "with a different configuration" in str(exc):
                # Open here already, read-only where this is not (or the reverse): the
                # file was called unusable (diff review).
                raise StoreError(
                    f"{self.path}: this process has the file open already "
                    f"({'read-write' if self.read_only else 'read-only'} or with other "
                    "settings): close that handle first"
                ) from exc
            raise file_failure(self.path, exc) from exc
        self._open_as = _FILES_OPEN.add(self.path)
        return connection

    def _close_connection(self) -> None:
        # In turn with opens: one between this close and the count's could connect by
        # the path this handle's instance had, gone with it (a link since removed).
        with _FILES_OPEN.opening:
            try:
                self._connection.close()
            finally:
                _FILES_OPEN.remove(self._open_as)

    def _check_schema(self) -> None:
        con = self._connection
        tables = {
            row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
        if "schema_meta" in tables:
            version = con.execute(sql_files.query("schema_version")).fetchall()
            found = version[0][0] if version else None
            if found in MIGRATIONS and self.upgrade:
                self._migrate(found)
                return
            if found in MIGRATIONS:
                raise StoreError(
                    f"{self.path} has flowscope schema version {found}; open it once read-write "
                    f"(e.g. `flowscope serve --db {self.path} --retention off`, which keeps its "
                    f"older spans) to upgrade it to {SCHEMA_VERSION}."
                )
            if found is None:  # the table is there, empty: it said "version None"
                raise StoreError(
                    f"{self.path}: its schema_meta table holds no flowscope schema version; "
                    "not a flowscope database this release can read. Use a new --db."
                )
            if found != SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has flowscope schema version {found}; this flowscope reads "
                    f"version {SCHEMA_VERSION}. Use a flowscope release that matches, or a new --db."
                )
            if not self.read_only:
                # The views are code, stored in the file: take this release's (a file
                # kept the view of the release that made it, and with it an old rule
                # for what derivation takes in). The tables exist: IF NOT EXISTS.
                con.execute("BEGIN")
                self._create_schema()
                con.execute("COMMIT")
            return
        if tables:
            raise StoreError(
                f"{self.path} is a DuckDB database but not a flowscope one "
                f"(no schema_meta table; found {', '.join(sorted(tables))})"
            )
        if self.read_only:
            raise StoreError(f"{self.path} is empty: no spans have been stored in it yet")
        con.execute("BEGIN")
        self._create_schema()
        con.execute("INSERT INTO schema_meta VALUES (?)", [SCHEMA_VERSION])
        con.execute("COMMIT")

    def _create_schema(self) -> None:
        for _name, text in sql_files.schema_scripts():
            self._connection.execute(text)

    def _migrate(self, found: int) -> None:
        """Bring an older file to SCHEMA_VERSION, one version per script, in one transaction."""
        con = self._connection
        con.execute("BEGIN")
        try:
            version = found
            while version != SCHEMA_VERSION:
                for statement in sql_files.statements(sql_files.query(MIGRATIONS[version])):
                    con.execute(statement)
                version += 1
            # The schema files only create what is missing: rerun, they add the new
            # tables and views to the upgraded file.
            self._create_schema()
            for reached in range(found + 1, SCHEMA_VERSION + 1):
                if reached in FILLS:
                    for statement in sql_files.statements(sql_files.query(FILLS[reached])):
                        con.execute(statement)
            con.execute("COMMIT")
        except Exception as exc:
            con.execute("ROLLBACK")
            raise StoreError(f"{self.path}: upgrading schema {found} failed: {exc}") from exc
        # Into the file now, not at the next checkpoint (256 MB of WAL away): a crash
        # before it left the upgrade to a WAL replay.
        con.execute("CHECKPOINT")
        log.warning(
            "%s: upgraded from flowscope schema %d to %d (older releases cannot read it now)",
            self.path,
            found,
            SCHEMA_VERSION,
        )

    def replay_journal(self, *, strict: bool = False) -> int:
        """Insert the journal's records the database lacks, then empty it; spans added.

        Skipped while a live writer (in this process or another) holds the journal:
        it moves those records itself. ``strict``: refuse instead, for a writer about
        to number new records after the stored ones.
        """
        if not has_segments(self.journal_dir):
            return 0
        assert self.journal_dir is not None
        try:
            journal = Journal(self.journal_dir)
        except JournalBusy as exc:
            if strict:
                raise StoreError(
                    f"{self.path}: {exc}, so its records cannot be replayed; "
                    "is another flowscope process still stopping?"
                ) from exc
            return 0
        except JournalError as exc:
            raise StoreError(f"{self.path}: {exc}") from exc
        added = 0
        try:
            moved = self.moved_seq()
            pending: list[pa.Table] = []
            size = 0
            last = moved
            for record in journal.records():
                if record.seq <= moved:
                    continue
                pending.append(record.table)
                size += record.table.num_rows
                last = max(last, record.seq)
                if size >= REPLAY_BATCH_SPANS:
                    added += self._insert(pending, last)
                    pending, size = [], 0
            if pending:
                added += self._insert(pending, last)
            journal.close(all_moved=True)
        except BaseException:
            journal.close(all_moved=False)
            raise
        if added:
            # A warning: the process that acknowledged them stopped before committing
            # them (a crash, a SIGKILL), which an operator restarting it wants to see;
            # at INFO a restart after a crash said nothing (lifecycle review).
            log.warning(
                "%s: replayed %d acknowledged spans from the journal: the process that "
                "took them stopped before committing them; they are committed now",
                self.path,
                added,
            )
        return added

    def _insert(self, tables: list[pa.Table], seq: int) -> int:
        table = pa.concat_tables(tables)
        insert_spans(self._connection, table, seq, sql_files.query("insert_spans"))
        return int(table.num_rows)

    def moved_seq(self) -> int:
        """The highest CommitSeq ever stored (derivation remembers it past retention)."""
        rows = self._connection.execute(sql_files.query("max_commit_seq")).fetchall()
        return int(rows[0][0]) if rows else 0

    def _no_more_checkpoints(self) -> None:
        """Keep DuckDB from writing what it holds into the file from here on: it
        checkpoints as the connection closes, which its invalidation (off, see the
        open's config) used to skip, and would store whatever state the failure left
        (diff review). Its debug abort stops every checkpoint before the file's header
        is written: the file stays as the last good checkpoint left it, and the next
        open replays the WAL. (The caller holds ``_lock``.)"""
        if self._closed or self.read_only:
            return
        try:
            cursor = self._connection.cursor()
            try:
                cursor.execute("SET GLOBAL debug_checkpoint_abort = 'before_header'")
            finally:
                cursor.close()
        except duckdb.Error as exc:
            log.warning("%s: checkpoints not stopped (%s)", self.path, error_line(exc))

    def refuse_if_failed(self) -> None:
        """DuckDB's restricted mode, kept here (the open's config turns DuckDB's off):
        once a statement of flowscope's has failed fatally, no read or write runs. A
        commit past a WAL that a failed write left half-written is one a restart's
        replay may never reach, and the journal would have let go of its spans."""
        if self.failed is not None:
            raise DatabaseFailed(self.failed)

    def reader(self) -> duckdb.DuckDBPyConnection:
        """This thread's read cursor (created on first use)."""
        self.refuse_if_failed()
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            with self._lock:
                if self._closed:
                    raise StoreError(f"{self.path} is closed")
                cursor = self._connection.cursor()
                self._readers = [(t, c) for t, c in self._readers if t.is_alive()]
                self._readers.append((threading.current_thread(), cursor))
            self._local.cursor = cursor
        return cursor

    def stop_reads(self) -> None:
        """Stop the reads in progress for good: interrupted now, and ``reads_stopped``
        set for those that wait on one DuckDB cannot interrupt."""
        self.reads_stopped.set()
        self.interrupt_reads()

    def interrupt_reads(self, only: threading.Thread | None = None) -> None:
        """Stop the queries the read cursors are running (a Ctrl-C of the CLI, whose
        main thread cannot take the signal while DuckDB runs a query in it); ``only``:
        that thread's, not another thread's read of the same file."""
        with self._lock:
            readers = [
                cursor
                for thread, cursor in self._readers
                if thread.is_alive() and (only is None or thread is only)
            ]
        for cursor in readers:
            try:
                cursor.interrupt()
            except duckdb.Error:
                pass  # closed meanwhile

    def _close_readers(self, readers: list[duckdb.DuckDBPyConnection]) -> None:
        """Close the read cursors, interrupting those still running a query (an
        /api/sql query at SIGTERM): closing the file under one failed ("connection is
        busy") or aborted the process, and left the server's discovery file behind.
        A busy cursor refuses to close, so it is interrupted and asked again. Every one
        is interrupted first: a busy cursor does not always refuse, its ``close`` may
        instead wait for the query to end (a test's endless query hung 8 runs in 40 on
        a loaded machine, blocked in ``close``)."""
        deadline = time.monotonic() + CLOSE_READS_WAIT_S
        for cursor in readers:
            try:
                cursor.interrupt()
            except duckdb.Error:
                pass  # closed already
        while readers:
            busy = []
            for cursor in readers:
                try:
                    cursor.close()
                except duckdb.ResourceInUseException:
                    cursor.interrupt()
                    busy.append(cursor)
                except duckdb.Error:
                    pass  # closed already
            readers = busy
            if readers and time.monotonic() > deadline:
                raise StoreError(f"{self.path}: {len(readers)} reads would not stop")
            if readers:
                time.sleep(0.01)  # the interrupted query unwinding, checked every 10 ms

    def note_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` is DuckDB's fatal error, after which it refuses every
        statement ("database has been invalidated"; a checkpoint that failed, say for
        lack of memory). The first is kept in ``failed`` and told to ``on_failed``
        once: the server can only stop (its acknowledged spans are in the journal,
        replayed at the next open), which a supervisor's restart then undoes."""
        if not isinstance(exc, _INVALIDATING):
            return False
        with self._lock:
            first = self.failed is None
            if first:
                self.failed = f"DuckDB can no longer use {self.path}: {error_line(exc)}"
                self._no_more_checkpoints()
        if first and self.on_failed is not None:
            self.on_failed(self.failed or "")
        return True

    def review_row_group_merges(self, every_s: float = 0.0) -> bool:
        """Let DuckDB's full checkpoints run as many merges of small row groups as
        rewrite at most MERGE_BYTES_MAX of otel_traces (``merges_within``); whether any.
        ``every_s``: not again within that long of the last look (each look reads the
        table's storage map, which waits for no checkpoint: 0.1 s over a 569 MB file,
        up to 0.75 s over 4-10 GB). A failed look leaves the setting as it was, and
        says why in the log. See also ``note_committed``."""
        if every_s and time.monotonic() - self._merges_reviewed < every_s:
            return self._merges > 0
        with self._merge_review:
            self._look_at_merges()
        return self._merges > 0

    def note_committed(self, size: int) -> None:
        """The span writer's count of what it has committed (``Load.bytes``). Once
        MERGE_REVIEW_BYTES more than at the last look, merges are looked at again, on a
        thread of its own: spans of large attributes can grow the small row groups that
        fast, and the look is no work for the writer's thread."""
        self.committed_bytes += size
        if self.committed_bytes - self._merges_reviewed_bytes < MERGE_REVIEW_BYTES:
            return
        if self._closed or not self._merge_review.acquire(blocking=False):
            return  # closing, or a look under way
        self._merges_reviewed_bytes = self.committed_bytes
        try:
            threading.Thread(
                target=self._review_aside, name="flowscope-merge-review", daemon=True
            ).start()
        except RuntimeError:  # no thread to be had: the next commit asks again
            self._merge_review.release()

    def _review_aside(self) -> None:
        try:
            self._look_at_merges()
        finally:
            self._merge_review.release()

    def _look_at_merges(self) -> None:
        """One look, on a cursor of its own (the caller holds ``_merge_review``)."""
        try:
            with self._lock:
                if self._closed or self.failed is not None:
                    return
                cursor = self._connection.cursor()
        except duckdb.Error as exc:  # no cursor to be had (a database DuckDB gave up on)
            log.warning("%s: row-group merges not looked at (%s)", self.path, error_line(exc))
            return
        try:
            failure = self._review_merges(cursor)
        finally:
            cursor.close()
        if failure is not None:
            self.note_error(failure)  # the restricted mode's, if it is DuckDB's failure

    def _review_merges(self, cursor: duckdb.DuckDBPyConnection) -> duckdb.Error | None:
        """One look; its error, if it failed (logged here)."""
        self._merges_reviewed = time.monotonic()
        self._merges_reviewed_bytes = self.committed_bytes
        try:
            query = sql_files.query("small_row_groups")
            rows = cursor.execute(query, {"full_rows": ROW_GROUP_ROWS}).fetchall()
            merges = merges_within(rows[0][0] * BLOCK_BYTES, rows[0][1])
            if merges != self._merges:
                cursor.execute(f"SET GLOBAL max_vacuum_tasks = {merges}")
                self._merges = merges
        except duckdb.Error as exc:
            log.warning(
                "%s: row-group merges left at %d a checkpoint (%s)",
                self.path,
                self._merges,
                error_line(exc),
            )
            return exc
        return None

    def writer_cursor(self) -> duckdb.DuckDBPyConnection:
        if self.read_only:
            raise StoreError(f"{self.path} is open read-only")
        self.refuse_if_failed()
        with self._lock:
            return self._connection.cursor()

    def span_count(self) -> int:
        """Every span acknowledged so far (waits for the writer to commit them)."""
        self.await_writes()
        return self.stored_span_count()

    def stored_span_count(self) -> int:
        """The spans committed to ``otel_traces`` now."""
        rows = self.fetch("span_count")
        return int(rows[0][0]) if rows else 0

    def disk_usage(self, blocks_wait_s: float = BLOCKS_WAIT_S) -> DiskUsage | None:
        """What the store takes on disk; None for a database without a file. The block
        counts are the last read within ``blocks_wait_s`` (a checkpoint holds them)."""
        path = Path(self.path)
        if self.journal_dir is None or not path.exists():
            return None
        if self._closed:  # the counts' own read would fail, and the last ones be given
            raise StoreError(f"{self.path} is closed")
        blocks = self._block_counts.get(blocks_wait_s)
        return DiskUsage(
            file_bytes=path.stat().st_size,
            used_bytes=blocks.block_size * blocks.used if blocks else None,
            free_bytes=blocks.block_size * blocks.free if blocks else None,
            blocks_age_s=round(time.monotonic() - blocks.read_at, 3) if blocks else None,
            wal_bytes=wal_bytes(self.path),
            journal_bytes=journal_bytes(self.journal_dir),
        )

    def _read_block_counts(self) -> tuple[int, int, int]:
        rows = self.fetch("database_size")
        block, _total, used, free = rows[0] if rows else (0, 0, 0, 0)
        return int(block), int(used), int(free)

    def recent_span_keys(self, limit: int) -> list[StoredSpan]:
        """(TraceId, SpanId, is SERVER, ServiceName) of the spans stored last, oldest first.
        The server's first read of the spans: a file cut short (a copy that stopped) opens
        and fails here, which was a traceback out of ``serve``."""
        try:
            query = self.reader().execute(sql_files.query("recent_span_keys"), {"limit": limit})
            rows = query.fetchall()
        except duckdb.Error as exc:
            raise file_failure(str(self.path), exc) from exc
        return [(t, s, bool(server), name) for t, s, server, name in reversed(rows)]

    def stored_span_keys_among(
        self, trace_ids: list[str], lo_ns: int, hi_ns: int
    ) -> list[StoredSpan]:
        """(TraceId, SpanId, is SERVER, ServiceName) of stored spans of ``trace_ids``
        that started from ``lo_ns`` to ``hi_ns``."""
        rows = self.fetch(
            "stored_span_keys_among", {"trace_ids": trace_ids, "lo": lo_ns, "hi": hi_ns}
        )
        return [(t, s, bool(server), name) for t, s, server, name in rows]

    def imported_file(self, sha256: str) -> tuple[str, int, Any] | None:
        rows = self.fetch("imported_file", {"sha256": sha256})
        return (str(rows[0][0]), int(rows[0][1]), rows[0][2]) if rows else None

    def buffer_share(self) -> float | None:
        """The share of DuckDB's memory limit its buffers hold now (1.0 when even this
        count could not be had for lack of memory); None when it cannot be told."""
        with self._probe_lock:
            if self._closed or self.failed is not None:
                return None
            try:
                if self._probe is None:
                    self._probe = self._connection.cursor()
                rows = self._probe.execute(sql_files.query("buffer_memory")).fetchall()
            except duckdb.OutOfMemoryException:
                return 1.0
            except duckdb.Error:
                return None
        limit = _byte_size(str(rows[0][1]))
        return None if not limit else float(rows[0][0]) / limit

    def fetch(self, name: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of the named query in ``sql/NAME.sql`` on this thread's read cursor."""
        return self.reader().execute(sql_files.query(name), params or {}).fetchall()

    def fetch_arrow(self, name: str, params: dict[str, Any] | None = None) -> pa.Table:
        """The named query's result as an Arrow table (columnar, for large results)."""
        return self.reader().sql(sql_files.query(name), params=params or {}).to_arrow_table()

    @property
    def closed(self) -> bool:
        """Whether ``close`` has begun (reads in progress are being stopped)."""
        return self._closed

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True  # no read cursor is made from here on
            readers = [cursor for _, cursor in self._readers]
        self._close_readers(readers)
        with self._probe_lock:  # after a count under way; none starts once closed
            if self._probe is not None:
                self._probe.close()
                self._probe = None
        # After a look under way (its cursor must not outlive the connection).
        with self._merge_review, self._lock:
            try:
                if not self.read_only and self.failed is None:
                    self._review_merges(self._connection)
                    self._connection.execute("CHECKPOINT")
            except duckdb.Error as exc:
                log.warning("%s: no checkpoint at close (%s)", self.path, exc)
            finally:
                self._close_connection()


def merges_within(small_bytes: int, small_rows: int) -> int:
    """How many merge tasks a checkpoint may run, over small row groups of spans of
    ``small_bytes`` in ``small_rows`` rows, to rewrite at most MERGE_BYTES_MAX: every
    one while they are that small together, else as many as fit of the largest a
    task can be (rows of three full row groups, as DuckDB merges at most into three)."""
    if small_bytes <= MERGE_BYTES_MAX or small_rows <= 0:
        return ROW_GROUP_MERGES
    largest_task = 3 * ROW_GROUP_ROWS * small_bytes / small_rows
    return min(ROW_GROUP_MERGES, int(MERGE_BYTES_MAX // largest_task))


def _replay_for_read(path: str, memory_limit: str) -> None:
    """Bring a stopped server's journal into the file for a read: a brief read-write
    open that does not upgrade the schema (an older one is refused, and the read then
    says how to upgrade). Readers take turns (``<db>.replaying``, locked while one
    replays): started together after a crash, all but the one replaying failed as "in
    use". Within its turn a reader that finds the file locked meets no other reader:
    a running server holds it (its journal always has a segment), and the read goes
    to the server at once."""
    if journal_in_use(journal_path(path)) and not _replay_in_progress(path):
        # A running server's (not a reader's, replaying in its turn): this fails at
        # once, as "in use", and the read goes to the server.
        Database(path, memory_limit=memory_limit, upgrade=False).close()
        return
    with _replay_turn(path):
        if has_segments(journal_path(path)):  # else the reader before this one did it
            Database(path, memory_limit=memory_limit, upgrade=False).close()


def _replay_marker(path: str) -> Path:
    return Path(f"{path}.replaying")


@contextlib.contextmanager
def _replay_turn(path: str) -> Iterator[None]:
    """Hold the readers' replay turn (an flock on ``<db>.replaying``), waiting up to
    REPLAY_WAIT_S for another reader's; without it (a folder this process cannot
    write, the wait over) the replay is tried all the same."""
    try:
        descriptor = os.open(_replay_marker(path), os.O_CREAT | os.O_RDWR, 0o644)
    except OSError:
        yield
        return
    try:
        deadline = time.monotonic() + REPLAY_WAIT_S
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)  # another reader's replay: seconds at most
        yield
    finally:
        if not has_segments(journal_path(path)):
            # Replayed: no reader needs turns now (those waiting hold the old file, and
            # find nothing to replay), so the marker does not stay beside the database.
            with contextlib.suppress(OSError):
                _replay_marker(path).unlink()
        os.close(descriptor)  # lets go of the turn


def _replay_in_progress(path: str) -> bool:
    """Another reader holds the replay turn (and with it, briefly, the file)."""
    return held_elsewhere(_replay_marker(path))


def remove_new_database(path: str) -> None:
    """Delete a database file this process created and closed without storing anything
    in it, with the WAL and span journal a close leaves none of (so: if any)."""
    for leftover in (Path(path), Path(path + ".wal")):
        leftover.unlink(missing_ok=True)
    journal = journal_path(path)
    if journal is not None and journal.is_dir() and not any(journal.iterdir()):
        journal.rmdir()
