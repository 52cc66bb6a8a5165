"""A service's SQLite database: a pool of traced connections used from worker threads.

Queries are real SQL on a real file. Connections are traced by the official
DB-API instrumentation, the code path ``SQLite3Instrumentor.instrument_connection``
takes, plus the database's name (``db.name``) so the service map shows one node
per database instead of one "sqlite" for all of them. Statements run on the
service's own thread pool, never on the event loop, with the caller's trace
context carried over so each statement's span is a child of the request's.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry.instrumentation import dbapi
from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
from opentelemetry.instrumentation.sqlite3.version import __version__ as sqlite3_instrumentation
from opentelemetry.sdk.trace import TracerProvider

T = TypeVar("T")
Row = tuple[Any, ...]
DelaySource = Callable[[], float]  # seconds every statement should take longer (a fault)

_NOT_STATEMENTS = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


class _NamedConnection(sqlite3.Connection):
    """A connection that knows its database's name, for the instrumentation's ``db.name``."""

    database: str = ""


class Session:
    """What a unit of work sees: one connection, one transaction."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        # cursor().execute, not connection.execute: only cursors are traced.
        cursor = self._connection.cursor()
        try:
            cursor.execute(sql, tuple(params))
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an INSERT/UPDATE/DELETE; the row id for an INSERT, else the rows changed."""
        cursor = self._connection.cursor()
        try:
            cursor.execute(sql, tuple(params))
            is_insert = sql.lstrip().upper().startswith("INSERT")
            return int(cursor.lastrowid if is_insert else cursor.rowcount)
        finally:
            cursor.close()


class SqliteDatabase:
    def __init__(
        self,
        name: str,
        path: Path,
        provider: TracerProvider,
        schema: str,
        *,
        pool_size: int = 8,
        statement_delay: DelaySource | None = None,
    ) -> None:
        self.name = name
        self.path = path
        # The schema is made on an untraced connection: start-up DDL is not a flow.
        with sqlite3.connect(path) as setup:
            setup.execute("PRAGMA journal_mode=WAL")
            setup.executescript(schema)
        setup.close()
        self._pool: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._raw: list[sqlite3.Connection] = []
        for _ in range(pool_size):
            self._pool.put(self._connect(provider, statement_delay))
        self._executor = ThreadPoolExecutor(pool_size, thread_name_prefix=f"sqlite-{name}")
        self._closed = False

    def _connect(self, provider: TracerProvider, statement_delay: DelaySource | None) -> Any:
        raw = sqlite3.connect(
            self.path, timeout=30.0, check_same_thread=False, factory=_NamedConnection
        )
        raw.database = self.name
        raw.execute("PRAGMA synchronous=NORMAL")
        if statement_delay is not None:
            raw.set_trace_callback(_delaying(statement_delay))
        self._raw.append(raw)
        return dbapi.instrument_connection(
            SQLite3Instrumentor.__module__,
            raw,
            "sqlite",
            {"database": "database"},
            version=sqlite3_instrumentation,
            tracer_provider=provider,
        )

    def _in_transaction(self, work: Callable[[Session], T]) -> T:
        connection = self._pool.get()
        try:
            result = work(Session(connection))
            connection.commit()
            return result
        except BaseException:
            connection.rollback()
            raise
        finally:
            self._pool.put(connection)

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one transaction on a pool thread, in the caller's trace context."""
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, context.run, self._in_transaction, work)

    def run_untraced(self, work: Callable[[Session], T]) -> T:
        """For start-up data: a plain connection, so loading reference data makes no spans."""
        with sqlite3.connect(self.path, timeout=30.0) as plain:
            result = work(Session(plain))
        plain.close()
        return result

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True)
        for raw in self._raw:
            raw.close()


def _delaying(delay: DelaySource) -> Callable[[str], None]:
    """A trace callback that makes each statement slower, inside its span.

    SQLite calls it when a statement starts running, i.e. inside ``execute`` and
    so inside the statement's span: the database itself looks slow.
    """

    def on_statement(sql: str) -> None:
        seconds = delay()
        if seconds > 0 and not sql.lstrip().upper().startswith(_NOT_STATEMENTS):
            time.sleep(seconds)

    return on_statement
