"""What the benchmarks share besides load: a fresh database file, and the machine."""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path


def remove_database(path: Path) -> None:
    """Delete a database file with its WAL and journal, if there."""
    for stale in (path, Path(f"{path}.wal")):
        stale.unlink(missing_ok=True)
    shutil.rmtree(f"{path}.journal", ignore_errors=True)


def fresh_database(directory: Path, name: str) -> Path:
    """``directory/name``, with nothing left there by an earlier run."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    remove_database(path)
    return path


def machine() -> dict[str, object]:
    return {"cpus": os.cpu_count(), "python": platform.python_version()}
