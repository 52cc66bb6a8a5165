"""Every long-lived part: shutdown() is safe without start() and twice, and releases what start() took.

STYLE habit 4. "Released" is checked from outside: the threads start() began have
ended, the ports it listened on refuse connections, the processes it spawned are gone.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import duckdb
import grpc
import httpx
import psutil
import pytest
from fastapi import FastAPI

from flowscope.collector.decode_pool import DecodePool
from flowscope.collector.grpc_receiver import GrpcReceiver
from flowscope.collector.http_receiver import create_otlp_http_app
from flowscope.collector.ingest import Ingest
from flowscope.collector.receivers import Receivers, ReceiverSettings
from flowscope.dashboard.app import AppContext, create_app
from flowscope.http_server import HttpServer
from flowscope.server import FlowscopeServer, ServeConfig, server_info_path
from flowscope.store.database import Database
from flowscope.store.retention import RetentionSweeper
from flowscope.store.writer import SpanWriter, WriterClosed
from flowscope.testing.otlp import realistic_request
from flowscope.testing.posting import post_realistic
from flowscope.testing.server import server_in_process
from flowscope.testing.waiting import wait_until

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class LongLived(Protocol):
    def start(self) -> None: ...
    def shutdown(self) -> None: ...


@dataclass
class Part:
    thing: LongLived
    ports: Callable[[], list[int]] = lambda: []  # where it listens once started
    stopped: Callable[[], bool] = lambda: True  # its own view, after shutdown
    exercise: Callable[[], None] = lambda: None  # one real request, once started
    extra_checks: list[Callable[[], None]] = field(default_factory=list)


@dataclass
class Env:
    tmp_path: Path
    stack: ExitStack
    _database: Database | None = None

    @property
    def database(self) -> Database:
        if self._database is None:
            self._database = Database(self.tmp_path / "parts.duckdb")
            self.stack.callback(self._database.close)
        return self._database

    def running_writer(self) -> SpanWriter:
        writer = SpanWriter(self.database)
        writer.start()
        self.stack.callback(writer.shutdown)
        return writer


def _span_writer(env: Env) -> Part:
    writer = SpanWriter(env.database)
    return Part(writer, stopped=lambda: not writer.running)


def _retention_sweeper(env: Env) -> Part:
    sweeper = RetentionSweeper(env.running_writer(), timedelta(days=1))
    return Part(sweeper)


def _decode_pool(env: Env) -> Part:
    return Part(DecodePool(1))


def _grpc_export(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        export = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        export(realistic_request(1).SerializeToString(), timeout=30)


def _grpc_receiver(env: Env) -> Part:
    receiver = GrpcReceiver(Ingest(env.running_writer()), "127.0.0.1", 0)
    return Part(
        receiver,
        ports=lambda: [receiver.port] if receiver.port else [],
        exercise=lambda: _grpc_export(f"127.0.0.1:{receiver.port}"),
    )


def _http_server_otlp(env: Env) -> Part:
    server = HttpServer(
        create_otlp_http_app(Ingest(env.running_writer())), "127.0.0.1", 0, "otlp-test"
    )

    return Part(
        server,
        ports=lambda: [server.port],
        exercise=lambda: post_realistic(f"http://127.0.0.1:{server.port}", 0, 1),
    )


def _receivers(env: Env) -> Part:
    settings = ReceiverSettings("127.0.0.1", 0, 0, None, 1 << 20, decode_workers=1)
    receivers = Receivers(env.running_writer(), settings)

    def exercise() -> None:
        grpc_port, http_port = receivers.ports
        _grpc_export(f"127.0.0.1:{grpc_port}")
        post_realistic(f"http://127.0.0.1:{http_port}", 0, 1)

    return Part(
        receivers,
        ports=lambda: list(receivers.ports) if receivers.http is not None else [],
        exercise=exercise,
    )


def _http_server_dashboard(env: Env) -> Part:
    app: FastAPI = create_app(AppContext(env.database))
    server = HttpServer(app, "127.0.0.1", 0, "ui-test")

    def get() -> None:
        url = f"http://127.0.0.1:{server.port}/healthz"
        assert httpx.get(url, timeout=30).status_code == 200

    return Part(server, ports=lambda: [server.port], exercise=get)


def _flowscope_server(env: Env, ingest_process: bool = True) -> Part:
    db = env.tmp_path / "server.duckdb"
    config = ServeConfig(
        db=str(db),
        grpc_port=0,
        http_port=0,
        ui_port=0,
        decode_workers=1,
        retention=timedelta(1),
        ingest_process=ingest_process,
    )
    server = FlowscopeServer(config)

    def ports() -> list[int]:
        receivers = server.receivers.ports if server.receivers is not None else ()
        return [*receivers, *([server.ui.port] if server.ui is not None else [])]

    def exercise() -> None:
        _grpc_export(server.grpc_address)
        post_realistic(server.otlp_http_url, 1, 1)
        assert httpx.get(f"{server.ui_url}/healthz", timeout=30).json()["spans"] == 16

    def file_released() -> None:
        assert not server_info_path(str(db)).exists()
        if db.exists():  # a second opener gets the file: the server closed it
            Database(db).close()

    part = Part(server, ports=ports, exercise=exercise)
    part.extra_checks.append(file_released)
    return part


PARTS: dict[str, Callable[[Env], Part]] = {
    "SpanWriter": _span_writer,
    "RetentionSweeper": _retention_sweeper,
    "DecodePool": _decode_pool,
    "GrpcReceiver": _grpc_receiver,
    "HttpServer-otlp": _http_server_otlp,
    "HttpServer-dashboard": _http_server_dashboard,
    "FlowscopeServer": _flowscope_server,
    "FlowscopeServer-in-process": lambda env: _flowscope_server(env, ingest_process=False),
    "Receivers": _receivers,
}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with ExitStack() as stack:
        yield Env(tmp_path, stack)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as probe:
            # A closed port in the ephemeral range can be the one the kernel picks for
            # the probe itself, which then connects to itself: nothing listens there.
            return probe.getsockname() != probe.getpeername()
    except OSError:
        return False


def _spawned_workers() -> set[int]:
    """Child processes running multiprocessing workers (not the long-lived resource tracker)."""
    out = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                out.add(child.pid)
        except psutil.Error:
            continue  # it ended while we looked
    return out


def _eventually(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll a real condition: stopped threads and processes take a moment to be reaped."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            return False
        pause.wait(0.01)
    return True


@pytest.mark.parametrize("name", sorted(PARTS))
def test_shutdown_without_start_is_safe_twice(name: str, env: Env) -> None:
    part = PARTS[name](env)
    threads_before = set(threading.enumerate())
    ports = part.ports()
    part.thing.shutdown()
    part.thing.shutdown()
    assert part.stopped()
    assert not [p for p in ports if _listening(p)]
    assert not [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    for check in part.extra_checks:
        check()


@pytest.mark.parametrize("name", sorted(PARTS))
def test_shutdown_after_start_is_safe_twice_and_releases_everything(name: str, env: Env) -> None:
    part = PARTS[name](env)
    threads_before = set(threading.enumerate())
    workers_before = _spawned_workers()
    part.thing.start()
    part.thing.start()  # a second start is a no-op, not a second set of threads or ports
    ports = part.ports()
    assert all(_listening(p) for p in ports), f"{name} does not listen on {ports}"
    part.exercise()
    started_threads = [t for t in threading.enumerate() if t not in threads_before]
    spawned = _spawned_workers() - workers_before

    part.thing.shutdown()
    part.thing.shutdown()

    assert part.stopped()
    assert not [p for p in ports if _listening(p)], f"{name} still listens"
    assert _eventually(lambda: not any(t.is_alive() for t in started_threads)), (
        f"{name} left threads running: {[t.name for t in started_threads if t.is_alive()]}"
    )
    assert _eventually(lambda: not (spawned & _spawned_workers())), f"{name} left worker processes"
    for check in part.extra_checks:
        check()


def test_span_writer_shutdown_commits_what_was_accepted(database: Database) -> None:
    batch = (
        Ingest(SpanWriter(database))
        .decoder.decode(realistic_request(10).SerializeToString(), "application/x-protobuf")
        .batch
    )
    writer = SpanWriter(database)
    writer.start()
    futures = [writer.submit(batch.table, batch.keys)]
    writer.shutdown()
    assert futures[0].result(0) == 80  # resolved by the time shutdown returns
    assert database.span_count() == 80
    with pytest.raises(WriterClosed):
        writer.submit(batch.table, batch.keys)


def test_writer_task_after_shutdown_is_refused(database: Database) -> None:
    writer = SpanWriter(database)
    writer.start()
    writer.shutdown()
    with pytest.raises(WriterClosed):
        writer.run_task(lambda cursor: cursor)


@pytest.mark.parametrize("thread", ["the writer", "the derive thread"])
def test_a_stop_during_a_long_commit_leaves_the_database_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, thread: str
) -> None:
    """Before, the stop closed the database under the commit: DuckDB refused ("the
    connection is busy"), and the process aborted in its C++ at exit. The derive
    thread was not asked at all: a pass still committing when its wait ran out (spans
    of 8 MB attributes) had `flowscope serve` exit 1 with a traceback."""
    from flowscope import server as server_module
    from flowscope.testing.server import server_in_process

    waited = "WRITER_STOP_S" if thread == "the writer" else "DERIVE_STOP_S"
    monkeypatch.setattr(server_module, waited, 0.2)
    release = threading.Event()
    with server_in_process(tmp_path / "busy.duckdb", ingest_process=False) as (server, _):
        assert server.writer is not None
        started = threading.Event()

        def long_commit(_cursor: Any) -> None:
            started.set()
            release.wait(60)

        if thread == "the writer":
            server.writer.run_task(long_commit)
        else:
            server.writer.run_derived_task(long_commit)
        assert started.wait(30)
    # server_in_process stopped it: the thread was still busy.
    assert server.failure == f"{thread} was still committing when it had to stop"
    assert server.database is not None
    release.set()
    server.database.close()  # now the commit is over, it closes


def test_closing_interrupts_reads_still_running(tmp_path: Path) -> None:
    """A long /api/sql query at SIGTERM kept its cursor busy: closing the file failed
    ("connection is busy"), the server exited 1 (or aborted) and left server.json."""
    from flowscope.store.database import Database

    database = Database(tmp_path / "busy.duckdb")
    running = threading.Event()
    outcome: list[BaseException] = []

    def read() -> None:
        cursor = database.reader()
        cursor.create_function("mark", lambda x: running.set() or x, ["BIGINT"], "BIGINT")
        try:
            cursor.execute("SELECT sum(mark(range)) FROM range(10000000000)").fetchall()
        except BaseException as exc:
            outcome.append(exc)

    reading = threading.Thread(target=read)
    reading.start()
    assert running.wait(30)
    database.close()  # raised ResourceInUseException
    reading.join(30)
    assert not reading.is_alive() and "Interrupt" in type(outcome[0]).__name__


def _invalidate(cursor: Any) -> None:
    """Make DuckDB invalidate the database, as a checkpoint that ran out of memory does."""
    cursor.execute("SET debug_checkpoint_abort = 'before_header'")
    cursor.execute("CHECKPOINT")


def test_a_database_duckdb_invalidated_stops_the_server_and_loses_no_acknowledged_span(
    tmp_path: Path,
) -> None:
    """DuckDB refuses every statement after a fatal error: the server went on answering
    500s in plain text (health included) and retrying its commits for good."""
    db = tmp_path / "fatal.duckdb"
    failures: list[str] = []
    with server_in_process(db) as (server, endpoints):
        server.on_failure = failures.append
        post_realistic(endpoints.http, traces=2, seed=1)
        assert server.writer is not None and server.database is not None
        with pytest.raises(duckdb.FatalException):
            server.writer.run_task(_invalidate).result(30)
        post_realistic(endpoints.http, traces=3, seed=2)  # acknowledged: into the journal
        wait_until(lambda: failures, "the server to report the failure")
        assert failures[0].startswith(f"DuckDB can no longer use {db}: FATAL Error")
        assert server.failure == failures[0]
        health = httpx.get(f"{endpoints.ui}/healthz", timeout=30)
        assert health.status_code == 503
        assert health.json()["status"] == "failed" and health.json()["failure"] == failures[0]
        for answer in (
            httpx.get(f"{endpoints.ui}/api/flows", timeout=30),
            httpx.post(f"{endpoints.ui}/api/sql", json={"sql": "SELECT 1"}, timeout=30),
        ):
            assert answer.status_code == 503, answer.text
            assert answer.json()["detail"]["message"] == failures[0]
        assert len(failures) == 1  # told once
    with server_in_process(db) as (server, endpoints):
        assert server.database is not None and server.database.span_count() == 5 * 8
