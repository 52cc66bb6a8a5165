"""The OTLP receivers in a process of their own, so analysis does not delay acks.

On two cores, answering the analyzer's questions and deriving the analysis tables
took the interpreter lock and the CPUs from the threads that acknowledge OTLP
requests: ack P99 40-53 ms at 10,000 spans/s while questions ran, against about
20 idle (docs/benchmarks.md). Lowering the priority of those threads inside one
process did not help, as a low-priority thread holding the interpreter lock
stalls everyone. So ``flowscope serve`` runs the receivers, decoding, dedup and the
span journal in a child process (this module), and lowers its own priority: the
database, the writer, derivation and the API stay in the server process, which
alone opens DuckDB (DESIGN.md §2).

The child acknowledges a request once its spans are fsynced in the journal, as the
in-process path does, and sends each record (number, new spans, Arrow IPC payload)
down a pipe, in number order; the server's writer commits it and answers with the
highest number moved, which frees the child's queue and journal segments. A
``ping`` answered by a ``pong`` behind every record already sent lets a read wait
for every acknowledged span (``sync``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import threading
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from flowscope.collector.decode_pool import DecodePool, die_with_parent
from flowscope.collector.grpc_receiver import GrpcReceiver
from flowscope.collector.http_receiver import create_otlp_http_app
from flowscope.collector.ingest import Ingest, IngestCounters
from flowscope.http_server import HttpServer
from flowscope.store import journal as journal_file
from flowscope.store.dedup import RecentSpanKeys
from flowscope.store.journal import Journal
from flowscope.store.journal_sink import JournalSink
from flowscope.store.writer import SpanWriter, WriterClosed

log = logging.getLogger(__name__)
START_TIMEOUT_S = 60.0
SYNC_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 30.0
# How much lower the server process runs than its receivers (nice steps).
SERVER_NICENESS = 10


@dataclass(frozen=True)
class IngestSettings:
    host: str
    grpc_port: int
    http_port: int
    token: str | None
    max_request_bytes: int
    max_queued_spans: int
    decode_workers: int
    journal_dir: str
    first_seq: int
    dedup_window: int
    # The dedup window's warm keys, oldest first: 16-byte trace id + 8-byte span id each.
    dedup_keys: bytes = b""


@dataclass
class ChildStats:
    counters: IngestCounters = field(default_factory=IngestCounters)
    queued_spans: int = 0
    duplicate_spans: int = 0
    dedup_window_spans: int = 0


# -- the child -----------------------------------------------------------------------
def _child_main(settings: IngestSettings, conn: Connection) -> None:
    die_with_parent()
    # SIGTERM to the process group (as Ctrl-C sends SIGINT) is the server's to handle:
    # it stops this process itself, after the spans in flight are acknowledged.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    outgoing: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
    sender = threading.Thread(target=_send_all, args=(conn, outgoing), name="ingest-sender")
    sender.start()
    parts: list[Any] = []
    sink: JournalSink | None = None
    try:
        dedup = RecentSpanKeys(settings.dedup_window)
        keys = settings.dedup_keys
        dedup.remember([hash(keys[i : i + 24]) for i in range(0, len(keys), 24)])
        journal = Journal(Path(settings.journal_dir))
        sink = JournalSink(
            journal,
            lambda seq, new, payload: outgoing.put(("record", seq, new, payload)),
            first_seq=settings.first_seq,
            max_queued_spans=settings.max_queued_spans,
            dedup=dedup,
        )
        decoder = DecodePool(settings.decode_workers)
        decoder.start()
        parts.append(decoder)
        ingest = Ingest(sink, decoder=decoder)
        grpc = GrpcReceiver(
            ingest,
            settings.host,
            settings.grpc_port,
            token=settings.token,
            max_bytes=settings.max_request_bytes,
        )
        grpc.start()
        parts.append(grpc)
        app = create_otlp_http_app(
            ingest, token=settings.token, max_bytes=settings.max_request_bytes
        )
        http = HttpServer(app, settings.host, settings.http_port, "otlp")
        http.start()
        parts.append(http)
        outgoing.put(("ready", grpc.port, http.port))
    except Exception as exc:  # reported to the server, which says it in one line
        outgoing.put(("failed", f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)))
        for part in reversed(parts):
            part.shutdown()
        outgoing.put(None)
        sender.join()
        return

    def stats() -> ChildStats:
        assert sink is not None
        return ChildStats(
            ingest.counters, sink.queued_spans, sink.duplicate_spans, sink.dedup_window_size
        )

    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break  # the server is gone; its parent-death signal ends us anyway
            kind = message[0]
            if kind == "moved":
                sink.moved(message[1])
            elif kind == "ping":
                outgoing.put(("pong", message[1], stats()))
            elif kind == "stop":
                # Receivers first: they finish the requests in flight, whose records are
                # then all queued before "stopped".
                for part in reversed(parts):
                    part.shutdown()
                parts.clear()
                sink.close()
                outgoing.put(("stopped", sink.last_seq, stats()))
            elif kind == "exit":
                break
    finally:
        for part in reversed(parts):
            part.shutdown()
        sink.close()
        journal.close(all_moved=sink.queued_spans == 0)
        outgoing.put(None)
        sender.join()


def _send_all(conn: Connection, outgoing: queue.SimpleQueue[tuple[Any, ...] | None]) -> None:
    # Off the acknowledging threads: a server slow to read the pipe must not delay acks.
    while (message := outgoing.get()) is not None:
        try:
            conn.send(message)
        except (BrokenPipeError, OSError):
            return


# -- the server's side -----------------------------------------------------------------
class IngestProcess:
    """Starts the child, feeds its records to ``writer``, and stops it."""

    def __init__(self, writer: SpanWriter, settings: IngestSettings) -> None:
        self.writer = writer
        self.settings = settings
        self.grpc_port = 0
        self.http_port = 0
        self.on_exit: Any = None  # called with a message if the child ends on its own
        self._process: Any = None
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._answers = threading.Condition()
        self._pongs: dict[int, ChildStats] = {}
        self._next_ping = 0
        self._stopped: ChildStats | None = None
        self._gone = False
        self._stopping = False
        self._last_stats = ChildStats()

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")
        mine, theirs = context.Pipe(duplex=True)
        process = context.Process(
            target=_child_main, args=(self.settings, theirs), name="flowscope-ingest"
        )
        process.start()
        theirs.close()
        self._process, self._conn = process, mine
        try:
            if not mine.poll(START_TIMEOUT_S):
                raise OSError(f"the ingest process did not start within {START_TIMEOUT_S:g}s")
            message = mine.recv()
        except EOFError as exc:
            raise OSError(f"the ingest process exited at start (code {process.exitcode})") from exc
        if message[0] == "failed":
            process.join(STOP_TIMEOUT_S)
            raise OSError(message[1])
        _, self.grpc_port, self.http_port = message
        self.writer.moved_listener = self._send_moved
        self._reader = threading.Thread(target=self._read, name="ingest-reader", daemon=True)
        self._reader.start()

    def _send(self, message: tuple[Any, ...]) -> bool:
        conn = self._conn
        if conn is None or self._gone:
            return False
        with self._send_lock:
            try:
                conn.send(message)
            except (BrokenPipeError, OSError):
                return False
        return True

    def _send_moved(self, seq: int) -> None:
        self._send(("moved", seq))

    def _read(self) -> None:
        assert self._conn is not None
        reason = ""
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "record":
                _, seq, new, payload = message
                try:
                    self.writer.take_journalled(seq, journal_file.decode(payload), new)
                except WriterClosed:
                    pass  # stopping: the journal keeps it for the next open
                except Exception:
                    # A record that cannot be taken must not be skipped (a later one
                    # would pass it): stop taking any, as if the child had died. The
                    # journal keeps them all for the next open.
                    log.exception("journal record %d from the ingest process", seq)
                    reason = f"journal record {seq} from the ingest process could not be taken"
                    break
            elif kind in ("pong", "stopped"):
                with self._answers:
                    if kind == "pong":
                        self._pongs[message[1]] = message[2]
                    else:
                        self._stopped = message[2]
                    self._last_stats = message[2]
                    self._answers.notify_all()
        with self._answers:
            self._gone = True
            self._answers.notify_all()
        if not self._stopping and self.on_exit is not None:
            if not reason:
                process = self._process
                if process is not None:
                    process.join(STOP_TIMEOUT_S)  # its exit code, once the pipe has closed
                code = process.exitcode if process is not None else None
                reason = f"the OTLP ingest process ended unexpectedly (exit code {code})"
            self.on_exit(reason)

    def sync(self, timeout: float = SYNC_TIMEOUT_S) -> ChildStats:
        """Once every record the child acknowledged so far is queued in the writer."""
        with self._answers:
            number = self._next_ping
            self._next_ping += 1
        if not self._send(("ping", number)):
            return self._last_stats
        with self._answers:
            self._answers.wait_for(lambda: number in self._pongs or self._gone, timeout)
            return self._pongs.pop(number, self._last_stats)

    @property
    def counters(self) -> IngestCounters:
        return self.sync().counters

    def stop_receiving(self) -> None:
        """Stop the receivers; returns once every record they took is with the writer."""
        self._stopping = True
        if self._send(("stop",)):
            with self._answers:
                self._answers.wait_for(
                    lambda: self._stopped is not None or self._gone, STOP_TIMEOUT_S
                )

    def shutdown(self) -> None:
        """After the writer committed: let the child drop its journal and exit. Safe twice."""
        self._stopping = True
        self._send(("exit",))
        process, self._process = self._process, None
        if process is not None:
            process.join(STOP_TIMEOUT_S)
            if process.is_alive():
                process.kill()
                process.join()
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT_S)
            self._reader = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.writer.moved_listener = None


def lower_priority() -> None:
    """This process (the server, not the ingest process) yields the CPUs to the receivers.

    A nice value belongs to each thread on Linux, and new threads take their creator's:
    every thread running now (DuckDB's workers among them) is lowered, and the ones
    started later follow.
    """
    tasks = Path(f"/proc/{os.getpid()}/task")
    for task in tasks.iterdir() if tasks.is_dir() else []:
        try:
            tid = int(task.name)
            current = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, max(current, SERVER_NICENESS)))
        except (OSError, ValueError):
            continue  # the thread ended meanwhile; a lower value stays
