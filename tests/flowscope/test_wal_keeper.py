"""DuckDB's checkpointed WAL is freed by the keeper, in steps, not by DuckDB's unlink."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from flowscope.collector.flatten import flatten_request
from flowscope.store import wal_keeper
from flowscope.store.database import Database
from flowscope.store.wal_keeper import WalKeeper, spent_wal_dir
from flowscope.store.writer import SpanWriter
from flowscope.testing.otlp import realistic_request


def _write(writer: SpanWriter, seed: int) -> None:
    batch = flatten_request(realistic_request(4, seed=seed)).batch
    writer.write(batch.table, batch.keys, timeout=60)


def test_a_checkpointed_wal_is_freed_by_the_keeper(tmp_path: Path) -> None:
    database = Database(tmp_path / "kept.duckdb")
    writer = SpanWriter(database, derive_interval_s=None)
    writer.start()
    keeper = WalKeeper(database.path, poll_s=3600)  # this test polls, not its thread
    keeper.start()
    try:
        _write(writer, 1)
        wal = Path(f"{database.path}.wal")
        keeper.poll()
        assert wal.stat().st_nlink == 2  # the keeper holds a second name
        size = wal.stat().st_size
        writer.run_task(lambda cursor: cursor.execute("CHECKPOINT")).result(60)
        assert not wal.exists()  # DuckDB let go of it; its blocks are still held
        assert [p.stat().st_nlink for p in spent_wal_dir(database.path).iterdir()] == [1]
        keeper.poll()
        assert keeper.releaser.wait_idle(30)
        assert keeper.releaser.stats.files == 1
        assert keeper.releaser.stats.bytes >= size  # the checkpoint's own entry came after
        assert list(spent_wal_dir(database.path).iterdir()) == []
        _write(writer, 2)  # a new WAL: held in turn
        keeper.poll()
        assert wal.stat().st_nlink == 2
    finally:
        writer.shutdown()
        database.close()
        keeper.shutdown()
    assert not spent_wal_dir(database.path).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.duckdb"]


def test_names_left_by_a_crash_are_removed_at_start(tmp_path: Path) -> None:
    database_path = str(tmp_path / "crashed.duckdb")
    spent = spent_wal_dir(database_path)
    spent.mkdir()
    (spent / "1234").write_bytes(b"a WAL checkpointed before the crash")
    (spent / "99.free").write_bytes(b"half freed")
    keeper = WalKeeper(database_path)
    keeper.start()
    assert list(spent.iterdir()) == []
    keeper.shutdown()
    assert not spent.exists()


def test_a_wal_replaced_while_it_is_linked_is_not_held_under_the_wrong_inode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database_path = str(tmp_path / "raced.duckdb")
    wal = Path(f"{database_path}.wal")
    wal.write_bytes(b"first")
    other = tmp_path / "newer"
    other.write_bytes(b"second")
    real_link = os.link

    def replaced_meanwhile(source: Any, target: Any) -> None:
        real_link(other, target)  # what the name points at by the time we link it

    keeper = WalKeeper(database_path, poll_s=3600)
    keeper.start()
    try:
        monkeypatch.setattr(wal_keeper.os, "link", replaced_meanwhile)
        keeper.poll()
        assert list(spent_wal_dir(database_path).iterdir()) == []
        monkeypatch.setattr(wal_keeper.os, "link", real_link)
        keeper.poll()
        assert [p.name for p in spent_wal_dir(database_path).iterdir()] == [str(wal.stat().st_ino)]
    finally:
        keeper.shutdown()
    assert wal.exists() and not spent_wal_dir(database_path).exists()


def test_without_hard_links_the_keeper_stands_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database_path = str(tmp_path / "fat.duckdb")
    Path(f"{database_path}.wal").write_bytes(b"wal")

    def unsupported(source: Any, target: Any) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(wal_keeper.os, "link", unsupported)
    keeper = WalKeeper(database_path, poll_s=3600)
    keeper.start()
    keeper.poll()
    keeper.poll()
    assert not spent_wal_dir(database_path).exists()
    keeper.shutdown()
    assert Path(f"{database_path}.wal").read_bytes() == b"wal"  # DuckDB's, untouched
