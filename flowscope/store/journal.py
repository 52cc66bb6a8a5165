"""The span journal: where acknowledged spans are durable before DuckDB holds them.

A DuckDB commit costs ~12 ms however few spans it holds (docs/benchmarks.md), so
acknowledging an OTLP request only after its commit made every exporter wait for
the commits queued before its own. Instead the receiving thread appends the
request's new spans to this journal, fsyncs it (fsyncs of concurrent requests are
shared), and answers; the writer thread moves the spans into ``otel_traces``
behind it. The journal is the commit an acknowledgement waits for; opening the
database replays whatever it holds that DuckDB does not (``replay``).

Layout: a directory ``<database>.journal`` of segment files named by their first
record's sequence number. A record is a header (magic, sequence number, payload
length, CRC-32 of the payload) followed by the spans as one Arrow IPC stream in
``otel_traces`` column order. Sequence numbers are the writer's ``CommitSeq``
values: a writer commit stores the highest sequence number it holds, so the
stored spans say how far the journal has been moved. A last record that fails its
check ends its segment: a crash in the middle of an append leaves one, and that
request was never acknowledged. A damaged record with whole ones after it (the disk
failed) is skipped, and logged as the loss it is.

One writer owns a journal at a time: it holds an exclusive ``flock`` on the
directory's ``lock`` file, so a second process, or a second ``Database`` in the
same process, never replays records the live writer is still moving.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from flowscope.store.file_release import Releaser

log = logging.getLogger(__name__)

MAGIC = b"FSJ1"
HEADER = struct.Struct("<4sQII")  # magic, sequence number, payload bytes, CRC-32
SEGMENT_BYTES = 64 * 1024 * 1024
SUFFIX = ".seg"
# A moved segment is renamed so (replay reads only SUFFIX files) and freed in steps
# (store/file_release.py): unlinking 64 MB at once stalled the acknowledging fsyncs.
SPENT_SUFFIX = ".spent"
# How long opening waits for the lock of a journal in use (see Journal.__init__).
LOCK_WAIT_S = 5.0
LOCK_POLL_S = 0.02


class JournalError(Exception):
    """The journal cannot be used (in use by another writer, or unwritable)."""


class JournalBusy(JournalError):
    """Another writer holds the journal."""


@dataclass(frozen=True)
class Record:
    seq: int
    table: pa.Table


def journal_path(database_path: str) -> Path | None:
    """Where a database file's journal lives; None for an in-memory database."""
    if not database_path or database_path.startswith(":memory:"):
        return None
    return Path(database_path + ".journal")


def journal_bytes(directory: Path) -> int:
    """Bytes of the journal's segments (spans not committed yet, and what shares their
    segment); the writer may delete segments meanwhile. Spent ones being freed are not
    counted."""
    total = 0
    try:
        entries = list(directory.glob("*" + SUFFIX))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            total += entry.stat().st_size
        except FileNotFoundError:
            continue
    return total


def has_segments(directory: Path | None) -> bool:
    return directory is not None and any(directory.glob("*" + SUFFIX))


def in_use(directory: Path | None) -> bool:
    """A live writer (a server's ingest side, an import) holds the journal's lock."""
    return directory is not None and held_elsewhere(directory / "lock")


def held_elsewhere(lock_file: Path) -> bool:
    """Another open of ``lock_file`` holds its ``flock`` (False when there is no such
    file, or none this process may read). Opened for reading: a reader running as
    another user than the server may not write it, and took a live server's journal
    for a crashed one's (a false "not replayed" warning)."""
    try:
        descriptor = os.open(lock_file, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(descriptor)  # lets go of it, if it was taken
    return False


def flock_holder(lock_file: Path) -> int | None:
    """The process holding ``lock_file``'s ``flock``, as ``/proc/locks`` names it (None
    where the system does not say). A refusal then says whom to wait for or stop."""
    try:
        info = lock_file.stat()
        table = Path("/proc/locks").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    candidates: list[int] = []
    for line in table.splitlines():
        # "3: FLOCK  ADVISORY  WRITE 2915 fe:00:2147129 0 EOF"; a waiter's line has "->"
        # in second place, and is not the holder. Matched by inode: the device printed
        # is the filesystem's, which on btrfs and overlayfs is not the st_dev of stat.
        fields = line.split()
        if len(fields) > 5 and fields[1] == "FLOCK":
            number, inode = fields[4], fields[5].rsplit(":", 1)[-1]
            if inode == str(info.st_ino) and number.isdigit() and int(number) > 0:
                candidates.append(int(number))
    unknown: list[int] = []
    for pid in candidates:
        holds = _has_open(pid, info)
        if holds:
            return pid
        if holds is None:
            unknown.append(pid)
    # Another user's process, whose descriptors this one may not list: named only when
    # it is the one such lock on an inode of that number.
    return unknown[0] if len(unknown) == len(candidates) == 1 else None


def _has_open(pid: int, info: os.stat_result) -> bool | None:
    """Whether process ``pid`` has the file of ``info`` open (None: cannot tell)."""
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except FileNotFoundError:
        # Gone: it took the lock and exited, leaving it to a forked child that still
        # holds it (/proc/locks keeps the taker's number).
        return False
    except OSError:  # another user's process
        return None
    for descriptor in descriptors:
        try:
            target = descriptor.stat()
        except OSError:
            continue
        if (target.st_dev, target.st_ino) == (info.st_dev, info.st_ino):
            return True
    return False


def _holder_words(pid: int | None) -> str:
    if pid is None:
        return ""
    return " (this process)" if pid == os.getpid() else f" (process {pid})"


def encode(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    return bytes(sink.getvalue())


def decode(payload: bytes) -> pa.Table:
    return pa.ipc.open_stream(payload).read_all()


def _segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{SUFFIX}"


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_segment(path: Path) -> Iterator[Record]:
    """The segment's records: past a damaged one, from the next whole record on.

    A crash in the middle of an append leaves an incomplete last record, never
    acknowledged. A damaged record with whole ones after it is damage to acknowledged
    spans (the disk, or an edit): its bytes are skipped and logged as an error, and the
    records after it are read. They were dropped with the tail, called "never
    acknowledged" (ops review). The check is the payload's CRC alone, as before: a
    record's number is not checked against its neighbours', so one damaged number
    costs no other record."""
    data = path.read_bytes()
    offset, last_seq = 0, None
    while offset + HEADER.size <= len(data):
        record = _record_at(data, offset)
        if record is None:
            following = _next_record(data, offset + 1)
            if following is None:
                break
            log.error(
                "%s: skipped %d damaged bytes %s; the spans in them are lost (the records "
                "after them are read)",
                path,
                following - offset,
                "at the segment's start" if last_seq is None else f"after record {last_seq}",
            )
            offset = following
            continue
        seq, start, end = record
        yield Record(seq, decode(data[start:end]))
        offset, last_seq = end, seq
    if offset != len(data):
        log.warning(
            "%s: dropped %d bytes after the last complete record (an append a crash cut short; "
            "it was never acknowledged)",
            path,
            len(data) - offset,
        )


def _record_at(data: bytes, offset: int) -> tuple[int, int, int] | None:
    """(sequence number, payload start, payload end) of a whole record at ``offset``,
    or None."""
    if offset + HEADER.size > len(data):
        return None
    magic, seq, length, crc = HEADER.unpack_from(data, offset)
    start = offset + HEADER.size
    end = start + length
    if magic != MAGIC or end > len(data):
        return None
    return (seq, start, end) if zlib.crc32(data[start:end]) == crc else None


def _next_record(data: bytes, offset: int) -> int | None:
    """Where the next whole record at or after ``offset`` begins, or None."""
    while (found := data.find(MAGIC, offset)) >= 0:
        if _record_at(data, found) is not None:
            return found
        offset = found + 1
    return None


class Journal:
    """An open journal directory, locked for this writer."""

    def __init__(
        self, directory: Path, *, segment_bytes: int = SEGMENT_BYTES, wait_s: float | None = None
    ) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise JournalError(f"{directory}: cannot open the span journal: {exc}") from exc
        deadline = time.monotonic() + (LOCK_WAIT_S if wait_s is None else wait_s)
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if time.monotonic() >= deadline:
                    os.close(self._lock_fd)
                    by = _holder_words(flock_holder(directory / "lock"))
                    raise JournalBusy(
                        f"{directory} is in use by another flowscope writer{by}"
                    ) from exc
            # Whoever opens a journal holds the database file, so the holder is an
            # ingest process whose server was killed, dying too (parent-death signal).
            time.sleep(LOCK_POLL_S)
        self._append_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self._appended = 0  # the last sequence number written (not yet necessarily synced)
        self._synced = 0  # every record up to this one is on disk
        # Closed segments still on disk: (path, last sequence number in it).
        self._closed: list[tuple[Path, int]] = []
        self._current: Path | None = None
        self._closed_for_good = False
        for spent in directory.glob("*" + SPENT_SUFFIX):  # left by a crash: nothing waits yet
            try:
                spent.unlink(missing_ok=True)
            except OSError as exc:  # costs disk, not spans: go on
                log.warning("cannot remove %s: %s", spent, exc)
        self._releaser = Releaser("flowscope-journal-release")

    # -- reading ---------------------------------------------------------------
    def segments(self) -> list[Path]:
        return sorted(self.directory.glob("*" + SUFFIX))

    def records(self) -> Iterator[Record]:
        for path in self.segments():
            yield from read_segment(path)

    def discard_all(self) -> None:
        """Delete every segment: their records are all in the database."""
        for path in self.segments():
            path.unlink()
        _fsync_directory(self.directory)

    # -- appending -------------------------------------------------------------
    def append(self, seq: int, table: pa.Table) -> bytes:
        """Write one record (not yet synced: call ``sync(seq)`` before acknowledging).

        Callers serialise appends and pass increasing sequence numbers. Returns the
        record's payload (the spans as Arrow IPC), for a writer in another process.
        """
        payload = encode(table)
        header = HEADER.pack(MAGIC, seq, len(payload), zlib.crc32(payload))
        with self._append_lock:
            if self._closed_for_good:
                raise JournalError(f"{self.directory}: the journal is closed")
            if self._fd is None or self._size >= self.segment_bytes:
                self._roll(seq)
            assert self._fd is not None
            try:
                written = os.writev(self._fd, [header, payload])
                if written != len(header) + len(payload):
                    raise JournalError(f"{self.directory}: short write to the span journal")
            except (OSError, JournalError):
                # A torn record ends its segment for replay: cut it off, and put the
                # records that follow in a new segment in case that fails too.
                try:
                    os.ftruncate(self._fd, self._size)
                except OSError:
                    pass
                self._size = self.segment_bytes
                raise
            self._size += written
            self._appended = seq
        return payload

    def _roll(self, first_seq: int) -> None:
        # Under _append_lock; takes _sync_lock so no sync uses the descriptor it closes.
        path = self.directory / _segment_name(first_seq)
        with self._sync_lock:
            if self._fd is not None:
                assert self._current is not None
                os.fsync(self._fd)
                os.close(self._fd)
                self._synced = self._appended
                # After a failed first append the same record opens the same segment
                # again: it is not closed, and must not go when earlier records move.
                if self._current != path:
                    self._closed.append((self._current, self._appended))
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._current = path
            self._size = 0
        _fsync_directory(self.directory)

    def sync(self, seq: int) -> None:
        """Return once record ``seq`` is on disk; one fsync serves every waiting caller."""
        with self._sync_lock:
            if self._synced >= seq or self._fd is None:
                return
            target = self._appended  # written before the fsync below starts
            os.fsync(self._fd)
            self._synced = max(self._synced, target)

    def moved(self, seq: int) -> None:
        """Records up to ``seq`` are committed to the database: drop the segments they fill."""
        with self._append_lock:
            keep: list[tuple[Path, int]] = []
            for path, last in self._closed:
                if last <= seq:
                    spent = path.with_suffix(SPENT_SUFFIX)
                    try:
                        path.rename(spent)
                    except FileNotFoundError:
                        continue
                    self._releaser.release(spent)
                else:
                    keep.append((path, last))
            self._closed = keep

    def close(self, *, all_moved: bool) -> None:
        """Stop appending; with ``all_moved`` the segments go (a clean shutdown)."""
        with self._append_lock:
            self._closed_for_good = True
            self._releaser.close()  # what it has not freed yet goes at once
            with self._sync_lock:
                if self._fd is not None:
                    os.fsync(self._fd)
                    os.close(self._fd)
                    self._fd = None
            if all_moved:
                self.discard_all()
                self._closed = []
        if all_moved:
            # Nothing left to replay: no trace of the journal beside the database. (The
            # database file's own lock keeps a second writer away meanwhile.)
            (self.directory / "lock").unlink(missing_ok=True)
            try:
                self.directory.rmdir()
            except OSError:
                pass  # something else was put there: leave it
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)


__all__ = [
    "Journal",
    "JournalBusy",
    "JournalError",
    "Record",
    "encode",
    "has_segments",
    "journal_path",
    "read_segment",
]
