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
in-process path does, and sends each record (number, Arrow IPC payload)
down a pipe, in number order; the server's writer commits it and answers with the
highest number moved, which frees the child's queue and journal segments. A
``ping`` answered by a ``pong`` behind every record already sent lets a read wait
for every acknowledged span (``sync``).
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import queue
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from flowscope.collector.decode_pool import die_with_parent, group_signals_held
from flowscope.collector.ingest import IngestCounters
from flowscope.collector.receivers import Receivers, ReceiverSettings
from flowscope.logs import LOG_FORMAT
from flowscope.store import journal as journal_file
from flowscope.store.dedup import RecentSpanKeys
from flowscope.store.journal import Journal, JournalError
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
    receivers: ReceiverSettings
    max_queued_spans: int
    max_queued_bytes: int
    journal_dir: str
    first_seq: int
    dedup_window: int
    server_pid: int
    log_level: int = logging.WARNING
    # The dedup window's warm keys, oldest first: ``dedup.KEY_BYTES`` each.
    dedup_keys: bytes = b""


@dataclass
class ChildStats:
    counters: IngestCounters = field(default_factory=IngestCounters)
    queued_spans: int = 0
    queued_bytes: int = 0
    duplicate_spans: int = 0
    dedup_window_spans: int = 0


def settle_heap() -> None:
    """Take what is allocated so far out of the cyclic garbage collector's full passes.

    A full (generation 2) pass walks every tracked object while holding the
    interpreter lock. With the modules a server imports and the dedup window's million
    keys, each took 120-190 ms (docs/benchmarks.md, "Soak"), and one in the ingest
    process held every acknowledgement in flight that long. What exists once a process
    has started (modules, classes, the warmed window) lives as long as the process.
    """
    gc.collect()
    gc.freeze()


# -- the child -----------------------------------------------------------------------
def _child_main(settings: IngestSettings, conn: Connection) -> None:
    # SIGTERM to the process group (as Ctrl-C sends SIGINT) is the server's to handle:
    # it stops this process itself, after the spans in flight are acknowledged.
    # Ignored before die_with_parent lets the held signals in.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    die_with_parent(settings.server_pid)
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT)
    outgoing: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
    sender = threading.Thread(target=_send_all, args=(conn, outgoing), name="ingest-sender")
    sender.start()
    receivers: Receivers | None = None
    journal: Journal | None = None
    try:
        journal = Journal(Path(settings.journal_dir))
        if journal.segments():
            # The server replays the journal before it starts us; records still here
            # would share numbers with the ones we append.
            raise JournalError(f"{journal.directory} holds records that were not replayed")
        dedup = RecentSpanKeys(settings.dedup_window)
        dedup.warm_keys(settings.dedup_keys)
        sink = JournalSink(
            journal,
            lambda seq, payload, weight: outgoing.put(("record", seq, payload, weight)),
            first_seq=settings.first_seq,
            max_queued_spans=settings.max_queued_spans,
            max_queued_bytes=settings.max_queued_bytes,
            dedup=dedup,
        )
        receivers = Receivers(sink, settings.receivers)
        receivers.start()  # stops what it started if it cannot listen
        settle_heap()
        outgoing.put(("ready", *receivers.ports))
    except Exception as exc:  # reported to the server, which says it in one line
        outgoing.put(("failed", str(exc) or type(exc).__name__))
        if journal is not None:
            # Nothing was appended: an empty journal goes, segments found there stay.
            journal.close(all_moved=not journal.segments())
        outgoing.put(None)
        sender.join()
        return

    def stats() -> ChildStats:
        return ChildStats(
            receivers.ingest.counters,
            sink.queued_spans,
            sink.queued_bytes,
            sink.duplicate_spans,
            sink.dedup_window_size,
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
                receivers.shutdown()
                sink.close()
                outgoing.put(("stopped", stats()))
            elif kind == "exit":
                break
    finally:
        receivers.shutdown()
        sink.close()
        # Records the server did not commit stay for the next open's replay.
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

    def __init__(
        self,
        writer: SpanWriter,
        settings: IngestSettings,
        child: Callable[[IngestSettings, Connection], None] = _child_main,
    ) -> None:
        self.writer = writer
        self.settings = settings
        self.child = child  # the process's entry point (a stand-in in tests)
        self.grpc_port = 0
        self.http_port = 0
        # Called with a message if the child ends, or its records stop, on their own.
        self.on_exit: Callable[[str], None] | None = None
        self.failed = ""
        self._process: Any = None
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._answers = threading.Condition()
        self._ready: tuple[Any, ...] | None = None
        self._waiting: set[int] = set()  # pings someone still waits for
        self._pongs: dict[int, ChildStats] = {}
        self._next_ping = 0
        self._stopped = False
        self._gone = False  # the reader has stopped: no answer comes any more
        self._started = False
        self._stopping = False
        self._last_stats = ChildStats()

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")
        mine, theirs = context.Pipe(duplex=True)
        process = context.Process(
            target=self.child, args=(self.settings, theirs), name="flowscope-ingest"
        )
        with group_signals_held():
            process.start()
        theirs.close()
        self._process, self._conn = process, mine
        # The warm keys (up to 33 MB) live on in the child only.
        self.settings = replace(self.settings, dedup_keys=b"")
        # Reading starts at once: a request may be acknowledged before "ready" arrives,
        # and its commit must be reported back like any other.
        self.writer.moved_listener = self._send_moved
        self._reader = threading.Thread(
            target=self._read, args=(mine,), name="ingest-reader", daemon=True
        )
        self._reader.start()
        with self._answers:
            self._answers.wait_for(lambda: self._ready is not None or self._gone, START_TIMEOUT_S)
            ready = self._ready if not self._gone else None
            self._started = ready is not None
            if ready is None:
                self._stopping = True
                failed = self.failed
        if ready is None:
            if process.is_alive() and not failed:
                process.kill()  # it never came up; the shutdown must not wait for it
            raise OSError(failed or f"the ingest process did not start within {START_TIMEOUT_S:g}s")
        _, self.grpc_port, self.http_port = ready

    def _send(self, message: tuple[Any, ...]) -> bool:
        with self._send_lock:
            if self._conn is None:
                return False
            try:
                self._conn.send(message)
            except (BrokenPipeError, OSError):
                return False
        return True

    def _send_moved(self, seq: int) -> None:
        self._send(("moved", seq))

    def _read(self, conn: Connection) -> None:
        reason = ""
        try:
            while True:
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    break
                kind = message[0]
                if kind == "record":
                    _, seq, payload, weight = message
                    try:
                        self.writer.take_journalled(seq, journal_file.decode(payload), weight)
                    except WriterClosed:
                        log.warning(
                            "journal record %d arrived after the writer stopped; "
                            "the journal keeps it for the next open",
                            seq,
                        )
                elif kind == "ready":
                    with self._answers:
                        self._ready = message
                        self._answers.notify_all()
                elif kind == "failed":
                    reason = message[1]
                elif kind in ("pong", "stopped"):
                    with self._answers:
                        if kind == "stopped":
                            self._stopped = True
                        elif message[1] in self._waiting:
                            self._pongs[message[1]] = message[2]
                        self._last_stats = message[-1]
                        self._answers.notify_all()
        except Exception:
            # A record that cannot be taken must not be skipped (a later one would
            # pass it): take none any more. The journal keeps them for the next open.
            log.exception("reading from the ingest process failed")
            reason = "the records of the ingest process could not be taken (see the log above)"
        finally:
            if not reason and not self._stopping:
                process = self._process
                if process is not None:
                    process.join(1.0)  # its exit code, once the pipe has closed
                code = process.exitcode if process is not None else None
                reason = f"the OTLP ingest process ended unexpectedly (exit code {code})"
            with self._answers:
                if not self._stopping:
                    self.failed = reason
                self._gone = True
                # A start still waiting reports the failure itself.
                report = self._started and not self._stopping
                self._answers.notify_all()
        if report and self.on_exit is not None:
            self.on_exit(reason)

    def sync(self, timeout: float = SYNC_TIMEOUT_S) -> ChildStats:
        """Once every record the child acknowledged so far is queued in the writer."""
        with self._answers:
            number = self._next_ping
            self._next_ping += 1
            self._waiting.add(number)
        try:
            if not self._send(("ping", number)):
                return self._last_stats
            with self._answers:
                self._answers.wait_for(lambda: number in self._pongs or self._gone, timeout)
                return self._pongs.pop(number, self._last_stats)
        finally:
            with self._answers:
                self._waiting.discard(number)
                self._pongs.pop(number, None)

    @property
    def counters(self) -> IngestCounters:
        return self.sync().counters

    @property
    def last_stats(self) -> ChildStats:
        """The child's numbers as of its latest answer (``sync`` brings them up to date)."""
        with self._answers:
            return self._last_stats

    def stop_receiving(self) -> None:
        """Stop the receivers; returns once every record they took is with the writer."""
        self._stopping = True
        if self._send(("stop",)):
            with self._answers:
                self._answers.wait_for(lambda: self._stopped or self._gone, STOP_TIMEOUT_S)

    def shutdown(self) -> None:
        """After the writer committed: let the child drop its journal and exit. Safe twice."""
        self._stopping = True
        self._send(("exit",))
        reader = self._reader
        if reader is not None and not reader.is_alive():
            self._close()  # nobody reads: the child's sender must not block on a full pipe
        process, self._process = self._process, None
        if process is not None:
            process.join(STOP_TIMEOUT_S)
            if process.is_alive():
                process.kill()
                process.join()
        if reader is not None and reader is not threading.current_thread():
            reader.join(STOP_TIMEOUT_S)
            self._reader = None
        self._close()
        self.writer.moved_listener = None

    def _close(self) -> None:
        with self._send_lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


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
