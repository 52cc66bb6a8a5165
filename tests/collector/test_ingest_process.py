"""`flowscope serve` receives OTLP in a process of its own, ahead of analysis in priority."""

from __future__ import annotations

import gc
import os
import signal
import socket
import time
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import pytest

from flowscope.collector.flatten import flatten_request
from flowscope.collector.ingest_process import (
    SERVER_NICENESS,
    IngestProcess,
    IngestSettings,
    settle_heap,
)
from flowscope.collector.receivers import ReceiverSettings
from flowscope.server import FlowscopeServer, ServeConfig
from flowscope.store import journal as journal_file
from flowscope.store.database import Database, StoreError
from flowscope.store.journal import Journal, journal_path
from flowscope.store.table_size import table_bytes
from flowscope.store.writer import SpanWriter
from flowscope.testing.otlp import realistic_request
from flowscope.testing.posting import post_realistic
from flowscope.testing.server import server_in_process, start_server_process
from flowscope.testing.waiting import wait_until


def _send(base: str, seed: int) -> int:
    return post_realistic(base, seed, 10)


def _listener(root: psutil.Process, url: str) -> psutil.Process:
    """The process (the server or one of its descendants) listening on ``url``'s port."""
    port = urlsplit(url).port
    for process in [root, *root.children(recursive=True)]:
        for connection in process.net_connections(kind="tcp"):
            if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
                return process
    raise AssertionError(f"nothing listens on {url}")


def _thread_nice(process: psutil.Process) -> set[int]:
    return {os.getpriority(os.PRIO_PROCESS, thread.id) for thread in process.threads()}


def test_receivers_run_apart_and_the_server_yields_to_them(tmp_path: Path) -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    server = start_server_process(tmp_path / "apart.duckdb")
    try:
        main = psutil.Process(server.process.pid)
        receiver = _listener(main, server.endpoints.http)
        assert receiver.pid != main.pid and receiver.ppid() == main.pid
        assert _listener(main, f"http://{server.endpoints.grpc}").pid == receiver.pid
        assert _listener(main, server.endpoints.ui).pid == main.pid  # the API stays
        # Every thread of the server (DuckDB's workers too) runs below the receivers.
        assert _thread_nice(main) == {max(base, SERVER_NICENESS)}
        assert _thread_nice(receiver) == {base}
        sent = _send(server.endpoints.http, 1)
        health = httpx.get(
            f"{server.endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60
        ).json()
        assert health["spans"] == sent  # acknowledged in the child, counted here at once
        assert health["ingest"]["accepted_spans"] == sent
        assert health["writer"]["dedup_window_spans"] == sent
        assert _send(server.endpoints.http, 1) == sent  # a retry: dropped by the window
        health = httpx.get(
            f"{server.endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60
        ).json()
        assert health["spans"] == sent and health["writer"]["duplicate_spans"] == sent
    finally:
        assert server.stop(signal.SIGTERM) == 0
    # No journal and no spent WAL left (store/wal_keeper.py): only the file.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["apart.duckdb"]


def test_no_ingest_process_keeps_the_receivers_in_the_server(tmp_path: Path) -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    server = start_server_process(tmp_path / "together.duckdb", "--no-ingest-process")
    try:
        main = psutil.Process(server.process.pid)
        assert _listener(main, server.endpoints.http).pid == main.pid
        assert _thread_nice(main) == {base}
        sent = _send(server.endpoints.http, 2)
        assert (
            httpx.get(f"{server.endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60).json()[
                "spans"
            ]
            == sent
        )
    finally:
        assert server.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize("mode", ["--ingest-process", "--no-ingest-process"])
@pytest.mark.parametrize("option", ["--http-port", "--grpc-port", "--ui-port"])
def test_a_port_in_use_fails_the_start_in_one_line_and_leaves_nothing(
    tmp_path: Path, mode: str, option: str
) -> None:
    """Not even the database it made for the start: an empty 270 KB file was left."""
    db = tmp_path / "taken.duckdb"
    kept = tmp_path / "kept.duckdb"
    Database(kept).close()  # a file that was there before stays, empty or not
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for path in (db, kept):
            with pytest.raises(RuntimeError) as failed:
                start_server_process(path, option, str(port), mode)
            assert f"cannot listen on 127.0.0.1:{port}" in str(failed.value)
            assert "Traceback" not in str(failed.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.duckdb"]


def test_a_dead_ingest_process_stops_the_server_and_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "orphaned.duckdb"
    server = start_server_process(db)
    try:
        acked = sum(_send(server.endpoints.http, seed) for seed in range(5))
        receiver = _listener(psutil.Process(server.process.pid), server.endpoints.http)
        receiver.send_signal(signal.SIGKILL)
        code = server.process.wait(60)
    finally:
        server.stop(signal.SIGKILL)
    output = "".join(server.output)
    assert code == 1, output
    assert "the OTLP ingest process ended unexpectedly" in output
    reopened = Database(db)
    try:
        assert reopened.span_count() == acked
    finally:
        reopened.close()


def test_in_process_server_shares_the_counters_of_its_ingest_process(tmp_path: Path) -> None:
    with server_in_process(tmp_path / "embedded.duckdb", decode_workers=0) as (server, endpoints):
        assert isinstance(server.ingest, IngestProcess)
        sent = _send(endpoints.http, 3)
        counters = server.ingest.counters
        assert (counters.requests, counters.accepted_spans) == (1, sent)
        assert server.database is not None and server.database.span_count() == sent


def _early_child(settings: IngestSettings, conn: Connection) -> None:
    """A stand-in child: a request acknowledged before the receivers say they are ready.

    It exits with status 3 if the server never says that record moved."""
    batch = flatten_request(realistic_request(2, seed=9)).batch
    payload = journal_file.encode(batch.table)
    conn.send(("record", settings.first_seq, payload, table_bytes(batch.table)))
    conn.send(("ready", 1111, 2222))
    moved = 0
    while (message := conn.recv())[0] != "exit":
        if message[0] == "moved":
            moved = max(moved, message[1])
    if moved < settings.first_seq:
        os._exit(3)


def _dying_child(settings: IngestSettings, conn: Connection) -> None:
    """A stand-in child that ends before it is ready, saying nothing."""
    os._exit(5)


def _settings(database: Database, writer: SpanWriter) -> IngestSettings:
    return IngestSettings(
        receivers=ReceiverSettings(
            host="127.0.0.1",
            grpc_port=0,
            http_port=0,
            token=None,
            max_request_bytes=1 << 20,
            decode_workers=0,
        ),
        max_queued_spans=1000,
        max_queued_bytes=1 << 26,
        journal_dir=str(journal_path(database.path)),
        first_seq=writer.next_seq,
        dedup_window=0,
        server_pid=os.getpid(),
    )


def test_a_record_before_ready_is_taken_and_the_start_goes_on(tmp_path: Path) -> None:
    database = Database(tmp_path / "early.duckdb")
    writer = SpanWriter(database, external_journal=True, derive_interval_s=None)
    writer.start()
    ingest = IngestProcess(writer, _settings(database, writer), child=_early_child)
    try:
        ingest.start()
        process = ingest._process
        assert (ingest.grpc_port, ingest.http_port) == (1111, 2222)
        assert writer.await_moved() and database.span_count() == 16
    finally:
        ingest.shutdown()
        writer.shutdown()
        database.close()
    assert process.exitcode == 0  # the record's commit was reported back


def test_a_child_that_dies_before_ready_fails_the_start_once(tmp_path: Path) -> None:
    database = Database(tmp_path / "stillborn.duckdb")
    writer = SpanWriter(database, external_journal=True, derive_interval_s=None)
    writer.start()
    reported: list[str] = []
    ingest = IngestProcess(writer, _settings(database, writer), child=_dying_child)
    ingest.on_exit = reported.append
    try:
        with pytest.raises(OSError, match=r"ended unexpectedly \(exit code 5\)"):
            ingest.start()
    finally:
        ingest.shutdown()
        writer.shutdown()
        database.close()
    assert reported == []  # the start says it; the running server's hook is not called


def test_the_child_leaves_records_it_refuses_to_append_after(tmp_path: Path) -> None:
    database = Database(tmp_path / "leftover.duckdb")
    directory = journal_path(database.path)
    assert directory is not None
    writer = SpanWriter(database, external_journal=True, derive_interval_s=None)
    writer.start()  # replays what is there: the records below come after it
    old = Journal(directory)
    old.append(1, flatten_request(realistic_request(1, seed=1)).batch.table)
    old.sync(1)
    old.close(all_moved=False)
    ingest = IngestProcess(writer, _settings(database, writer))
    try:
        with pytest.raises(OSError, match="holds records that were not replayed"):
            ingest.start()
    finally:
        ingest.shutdown()
        writer.shutdown()
    kept = Journal(directory, wait_s=0)
    assert [r.seq for r in kept.records()] == [1]
    kept.close(all_moved=False)
    database.close()


def test_a_journal_still_held_with_records_refuses_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "held.duckdb"
    Database(db).close()
    directory = journal_path(str(db))
    assert directory is not None
    holder = Journal(directory)  # as a dying ingest process of a killed server would
    holder.append(1, flatten_request(realistic_request(1, seed=1)).batch.table)
    holder.sync(1)
    monkeypatch.setattr(journal_file, "LOCK_WAIT_S", 0.2)
    server = FlowscopeServer(ServeConfig(db=str(db), grpc_port=0, http_port=0, ui_port=0))
    try:
        with pytest.raises(StoreError, match="cannot be replayed"):
            server.start()
    finally:
        server.shutdown()
        holder.close(all_moved=False)
    reopened = Database(db)  # once let go, the record is replayed
    try:
        assert reopened.span_count() == 8
    finally:
        reopened.close()


def test_health_says_failed_when_the_ingest_process_is_gone(tmp_path: Path) -> None:
    with server_in_process(tmp_path / "gone.duckdb", decode_workers=0) as (server, endpoints):
        main = psutil.Process(os.getpid())
        _listener(main, endpoints.http).send_signal(signal.SIGKILL)

        def status() -> str:
            return str(
                httpx.get(f"{endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60).json()[
                    "status"
                ]
            )

        wait_until(lambda: status() == "failed", "healthz to report the receivers gone")
        health = httpx.get(f"{endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60)
        assert health.status_code == 503  # what a liveness probe looks at
        assert "ingest process ended unexpectedly" in health.json()["failure"]
        # What serve and demo read for their exit code.
        assert server.failure == health.json()["failure"]


def test_settling_the_heap_takes_what_exists_out_of_full_passes() -> None:
    before = gc.get_freeze_count()
    try:
        settle_heap()
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()


def test_acknowledged_traces_are_in_the_next_answer_under_light_ingest(tmp_path: Path) -> None:
    """One trace at a time, each listed right after its acknowledgement. Before, a
    derive pass under 2 s old let the read skip waiting for the spans still moving out
    of the journal, yet the read was not a settled one: 9 of 10 traces were missing."""
    server = start_server_process(tmp_path / "light.duckdb")
    try:
        missing = []
        for seed in range(1, 13):
            request = realistic_request(1, seed=seed, start_ns=time.time_ns() - 1_000_000)
            response = httpx.post(
                f"{server.endpoints.http}/v1/traces",
                content=request.SerializeToString(),
                headers={"Content-Type": "application/x-protobuf"},
            )
            assert response.status_code == 200
            trace_id = request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
            listed = httpx.get(
                f"{server.endpoints.ui}/api/traces", params={"since": "5m", "limit": 1000}
            ).json()["traces"]
            if trace_id not in {trace["trace_id"] for trace in listed}:
                missing.append(seed)
        assert missing == []
    finally:
        assert server.stop(signal.SIGTERM) == 0


def test_a_hangup_to_the_whole_group_stops_it_without_tracebacks(tmp_path: Path) -> None:
    """A closed terminal signals the whole group, multiprocessing's resource tracker too:
    it died of SIGHUP, and its replacement printed five KeyError tracebacks over the
    semaphores it had never seen."""
    server = start_server_process(tmp_path / "group.duckdb", session=True)
    try:
        sent = _send(server.endpoints.http, 2)
        os.killpg(server.process.pid, signal.SIGHUP)
        assert server.process.wait(60) == 0
    finally:
        server.stop(signal.SIGKILL)
    output = "".join(server.output)
    assert "Traceback" not in output and "resource_tracker" not in output, output
    database = Database(tmp_path / "group.duckdb", read_only=True)
    try:
        assert database.span_count() == sent
    finally:
        database.close()


def test_a_closed_terminal_stops_the_server_cleanly(tmp_path: Path) -> None:
    """SIGHUP (a closed terminal or ssh session, sent to the whole process group)
    killed the server: journal, WAL and server.json were left behind. It now stops
    as for SIGTERM, and the ingest process ignores it like the other group signals."""
    server = start_server_process(tmp_path / "hangup.duckdb")
    try:
        main = psutil.Process(server.process.pid)
        receiver = _listener(main, server.endpoints.http)
        sent = _send(server.endpoints.http, 3)
        receiver.send_signal(signal.SIGHUP)  # the group: the child too, first or not
    finally:
        assert server.stop(signal.SIGHUP) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hangup.duckdb"]
    database = Database(tmp_path / "hangup.duckdb", read_only=True)
    try:
        assert database.span_count() == sent
    finally:
        database.close()
