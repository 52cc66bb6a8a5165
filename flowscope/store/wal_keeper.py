"""DuckDB's checkpointed write-ahead log, freed a few megabytes at a time.

DuckDB deletes its WAL (``<db>.wal``, up to the 256 MB checkpoint threshold) at the
end of each checkpoint, every ~30 s at 10,000 spans/s. On a filesystem that
discards freed blocks, that one unlink held the span journal's fsyncs, and so the
OTLP acknowledgements, for up to 211 ms (docs/benchmarks.md, "Soak"). DuckDB has
no setting for how it deletes the file, so while the server runs this keeper holds
a second name for each WAL it sees, in ``<db>.spent-wal/``: DuckDB's unlink (or a
newer DuckDB's rename of another file over it) then frees nothing, and once the
keeper's name is the last one left it frees the blocks in steps
(``store/file_release.py``).

The names are only ever read by the keeper: DuckDB opens its WAL by its own name,
so one left by a crash is not replayed, and the next keeper removes it.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from pathlib import Path

from flowscope.store.file_release import Releaser

log = logging.getLogger(__name__)

POLL_S = 0.2
# link() failing so means this filesystem has no hard links for us: stand aside.
NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK}


def wal_path(database_path: str) -> Path:
    """Where DuckDB keeps a database file's write-ahead log."""
    return Path(f"{database_path}.wal")


def wal_bytes(database_path: str) -> int:
    """The size of that log now (0 when there is none)."""
    wal = wal_path(database_path)
    return wal.stat().st_size if wal.exists() else 0


def spent_wal_dir(database_path: str) -> Path:
    return Path(f"{database_path}.spent-wal")


class WalKeeper:
    def __init__(self, database_path: str, *, poll_s: float = POLL_S) -> None:
        self.wal = wal_path(database_path)
        # Names DuckDB writes a live WAL under (newer versions write the next one
        # beside the current and rename it over): never freed while one names it.
        self.live = [self.wal, Path(f"{database_path}.checkpoint.wal")]
        self.directory = spent_wal_dir(database_path)
        self.poll_s = poll_s
        self.releaser = Releaser("flowscope-wal-release")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._disabled = False

    def start(self) -> None:
        """Remove names a crash left, then look for the WAL every ``poll_s`` seconds."""
        if self._thread is not None:
            return
        self.releaser = Releaser("flowscope-wal-release")  # a closed one frees at once
        self._remove_all()
        try:
            self.directory.mkdir(exist_ok=True)
        except OSError as exc:
            self._disable(exc)
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="flowscope-wal-keeper", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop looking; free what is held at once (after the database closed, nothing
        acknowledges any more). Safe twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.releaser.close()
        self._remove_all()

    def poll(self) -> None:
        """Hold the current WAL, and hand over each held one DuckDB has let go of."""
        if self._disabled:
            return
        self._hold_current()
        live = self._live_inodes()
        for path in self._held_paths():
            try:
                status = path.stat()
            except FileNotFoundError:
                continue
            # DuckDB dropped its name: the checkpoint is done with this WAL. (Both checks:
            # a filesystem that miscounts links must not get a live WAL truncated.)
            if status.st_nlink == 1 and (status.st_dev, status.st_ino) not in live:
                freeing = path.with_name(path.name + ".free")  # not looked at again
                try:
                    path.rename(freeing)
                except FileNotFoundError:
                    continue
                self.releaser.release(freeing)

    def _live_inodes(self) -> set[tuple[int, int]]:
        found = set()
        for name in self.live:
            try:
                status = name.stat()
            except FileNotFoundError:
                continue
            found.add((status.st_dev, status.st_ino))
        return found

    def _hold_current(self) -> None:
        try:
            inode = self.wal.stat().st_ino
        except FileNotFoundError:
            return
        name = self.directory / str(inode)  # held under its inode number
        if name.exists():
            return
        try:
            os.link(self.wal, name)
        except FileNotFoundError:
            return  # deleted since: a checkpoint beat us to it
        except OSError as exc:
            if exc.errno in NO_LINKS:
                self._disable(exc)
                return
            raise
        # The WAL may have been replaced between the stat and the link: keep a name only
        # under the inode it really names, or the held WAL's count never drops to 1.
        if name.stat().st_ino != inode:
            name.unlink()

    def _held_paths(self) -> list[Path]:
        try:
            return [path for path in self.directory.iterdir() if path.name.isdigit()]
        except FileNotFoundError:
            return []

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
            except Exception as exc:  # tried again at the next poll
                log.warning("WAL keeper: %s", exc)

    def _remove_all(self) -> None:
        try:
            paths = list(self.directory.iterdir())
        except OSError:
            paths = []
        for path in paths:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:  # e.g. a folder someone put there: leave it
                log.warning("WAL keeper: cannot remove %s: %s", path, exc)
        try:
            self.directory.rmdir()
        except OSError:
            pass  # absent, or something else was put there: leave it

    def _disable(self, exc: OSError) -> None:
        log.warning(
            "%s: DuckDB's WAL will be deleted at once after each checkpoint (%s)", self.wal, exc
        )
        self._disabled = True
        self._remove_all()


__all__ = ["WalKeeper", "spent_wal_dir", "wal_path"]
