"""Big files are freed a few megabytes at a time, on a thread of their own."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from flowscope.store import file_release
from flowscope.store.file_release import Releaser, shrink_away


def _file(path: Path, size: int) -> Path:
    path.write_bytes(b"x" * size)
    return path


def test_a_file_is_truncated_from_its_end_in_steps_then_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    real = os.ftruncate

    def recording(fd: int, size: int) -> None:
        sizes.append(size)
        real(fd, size)

    monkeypatch.setattr(file_release.os, "ftruncate", recording)
    path = _file(tmp_path / "big", 10_240)
    assert shrink_away(path, step_bytes=4096, pause_s=0) == 10_240
    assert sizes == [6144, 2048, 0]
    assert not path.exists()
    assert shrink_away(path) == 0  # gone already: nothing to do


def test_the_releaser_frees_what_it_is_given_in_the_background(tmp_path: Path) -> None:
    releaser = Releaser("test-release", step_bytes=1024, pause_s=0)
    paths = [_file(tmp_path / f"f{i}", 5000 + i) for i in range(3)]
    for path in paths:
        releaser.release(path)
    assert releaser.wait_idle(30)
    assert not any(path.exists() for path in paths)
    assert (releaser.stats.files, releaser.stats.bytes) == (3, 15_003)
    releaser.close()


def test_closing_frees_the_rest_at_once(tmp_path: Path) -> None:
    # One byte per step and an hour between steps: only the close can finish it.
    releaser = Releaser("test-release", step_bytes=1, pause_s=3600)
    started = threading.Event()
    path = _file(tmp_path / "slow", 100)
    real = os.ftruncate

    def noting(fd: int, size: int) -> None:
        real(fd, size)
        started.set()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(file_release.os, "ftruncate", noting)
        releaser.release(path)
        assert started.wait(30)
        releaser.close()
    assert not path.exists()
    assert releaser.stats.files == 1
    late = _file(tmp_path / "late", 10)
    releaser.release(late)  # after the close: at once, on the caller's thread
    assert not late.exists()
