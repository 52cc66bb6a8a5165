"""DuckDB's checkpointed write-ahead log, freed a few megabytes at a time.

DuckDB deletes its WAL (``<db>.wal``, up to the 256 MB checkpoint threshold) at the
end of each checkpoint, every ~30 s at 10,000 spans/s. On a filesystem that
discards freed blocks that one unlink held the span journal's fsyncs, and so the
OTLP acknowledgements, for 100-200 ms (docs/benchmarks.md, "Soak"). DuckDB has no
setting for how it deletes the file, so while the server runs this keeper holds a
second name for each WAL it sees, in ``<db>.spent-wal/``: DuckDB's unlink then
frees nothing, and once the keeper finds its name the last one left it frees the
blocks in steps (``store/file_release.py``).

The names are only ever read by the keeper: DuckDB opens its WAL by its own name,
so one left by a crash is not replayed, and the next keeper removes it.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from flowscope.store.file_release import Releaser

log = logging.getLogger(__name__)

POLL_S = 0.2


def spent_wal_dir(database_path: str) -> Path:
    return Path(f"{database_path}.spent-wal")


class WalKeeper:
    def __init__(self, database_path: str, *, poll_s: float = POLL_S) -> None:
        self.wal = Path(f"{database_path}.wal")
        self.directory = spent_wal_dir(database_path)
        self.poll_s = poll_s
        self.releaser = Releaser("flowscope-wal-release")
        self._held: set[int] = set()  # inodes with a name in self.directory
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._disabled = False

    def start(self) -> None:
        """Remove names a crash left, then look for the WAL every ``poll_s`` seconds."""
        if self._thread is not None:
            return
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
        for path in self._held_paths():
            try:
                links = path.stat().st_nlink
            except FileNotFoundError:
                continue
            if links == 1:  # DuckDB deleted its name: the checkpoint is done with it
                self._held.discard(int(path.name))
                freeing = path.with_name(path.name + ".free")  # not looked at again
                path.rename(freeing)
                self.releaser.release(freeing)

    def _hold_current(self) -> None:
        try:
            inode = self.wal.stat().st_ino
        except FileNotFoundError:
            return
        if inode in self._held:
            return
        name = self.directory / str(inode)
        try:
            os.link(self.wal, name)
        except FileNotFoundError:
            return  # deleted since: a checkpoint beat us to it
        except FileExistsError:
            pass
        except OSError as exc:  # no hard links on this filesystem
            self._disable(exc)
            return
        # The WAL may have been replaced between the stat and the link: keep a name only
        # under the inode it really names, or the held WAL's count never drops to 1.
        if name.stat().st_ino != inode:
            name.unlink()
            return
        self._held.add(inode)

    def _held_paths(self) -> list[Path]:
        try:
            return [path for path in self.directory.iterdir() if path.name.isdigit()]
        except FileNotFoundError:
            return []

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
            except OSError as exc:
                log.warning("WAL keeper: %s", exc)

    def _remove_all(self) -> None:
        try:
            paths = list(self.directory.iterdir())
        except FileNotFoundError:
            paths = []
        for path in paths:
            path.unlink(missing_ok=True)
        self._held.clear()
        try:
            self.directory.rmdir()
        except OSError:
            pass  # absent, or something else was put there: leave it

    def _disable(self, exc: OSError) -> None:
        log.info("DuckDB's WAL will be deleted at once after checkpoints: %s", exc)
        self._disabled = True
        self._remove_all()


__all__ = ["WalKeeper", "spent_wal_dir"]
